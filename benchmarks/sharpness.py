"""Sharpness benchmark: Lanczos vs power iteration, HVP cost, jaxlr vs PyHessian.

Run: ``.venv/bin/python -m benchmarks.sharpness`` (a few minutes on 2 CPU cores). Prints one line
per measurement and returns them as a dict from :func:`main`.

Measured on two models trained briefly on scikit-learn's digits (512 images, full batch):
an MLP 64-128-128-10 (26,122 parameters) and a one-block transformer over the image rows
(width 32, single-head attention, 9,034 parameters).

1. Products (HVPs) needed for relative error 1e-3 and 1e-6 on lambda_max, Lanczos (full
   reorthogonalization) vs power iteration, from a random start, in float64, against a
   150-step Lanczos reference whose residual certifies it. For Lanczos the count includes the
   final product that certifies the returned vector (``top_eigenvalue(num_iters=count)``).
2. Time of one HVP over one gradient (float32, jitted): ``jaxlr.sharpness.hvp`` (jvp of grad)
   and the linearized operator the estimators iterate on (amortized per product).
3. One lambda_max estimate, jaxlr (``top_eigenvalue``, 20 products max, tol 1e-3) vs PyHessian
   0.1 (``hessian(...).eigenvalues()``, its defaults: up to 100 power steps, tol 1e-3) on the
   same MLP weights and data, CPU, float32: wall time ratio (jaxlr compiled once beforehand,
   compile time reported separately) and relative errors against the float64 reference.
"""

from __future__ import annotations

import time

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.flatten_util import ravel_pytree

from jaxlr import sharpness as sh
from jaxlr.sharpness import _krylov
from jaxlr.sharpness._hvp import flat_operator

HIDDEN = 128


def _data(dtype):
    from sklearn.datasets import load_digits

    digits = load_digits()
    x = (digits.data[:512] / 16.0).astype(dtype)
    y = digits.target[:512].astype(np.int32)
    return jnp.asarray(x), jnp.asarray(y)


def _init_mlp(key, dtype):
    sizes = [64, HIDDEN, HIDDEN, 10]
    keys = jax.random.split(key, len(sizes) - 1)
    return [
        {
            "w": jax.random.normal(k, (a, b), dtype) * np.sqrt(1.0 / a),
            "b": jnp.zeros((b,), dtype),
        }
        for k, a, b in zip(keys, sizes[:-1], sizes[1:], strict=True)
    ]


def _mlp(params, x):
    for layer in params[:-1]:
        x = jnp.tanh(x @ layer["w"] + layer["b"])
    return x @ params[-1]["w"] + params[-1]["b"]


def _init_transformer(key, dtype, d=32):
    ks = jax.random.split(key, 7)
    normal = lambda k, shape, fan_in: jax.random.normal(k, shape, dtype) / np.sqrt(fan_in)
    return {
        "embed": normal(ks[0], (8, d), 8),
        "pos": normal(ks[1], (8, d), 1) * 0.1,
        "qkv": normal(ks[2], (d, 3 * d), d),
        "out": normal(ks[3], (d, d), d),
        "mlp1": normal(ks[4], (d, 2 * d), d),
        "mlp2": normal(ks[5], (2 * d, d), 2 * d),
        "head": normal(ks[6], (d, 10), d),
        "bias": jnp.zeros((10,), dtype),
    }


def _layer_norm(h):
    mean = h.mean(-1, keepdims=True)
    return (h - mean) / jnp.sqrt(((h - mean) ** 2).mean(-1, keepdims=True) + 1e-5)


def _transformer(params, x):
    """One pre-norm block (single-head attention + MLP) over the 8 rows of each 8x8 image."""
    h = x.reshape(-1, 8, 8) @ params["embed"] + params["pos"]
    q, k, v = jnp.split(_layer_norm(h) @ params["qkv"], 3, axis=-1)
    att = jax.nn.softmax(q @ k.transpose(0, 2, 1) / np.sqrt(q.shape[-1]), axis=-1)
    h = h + (att @ v) @ params["out"]
    h = h + jax.nn.gelu(_layer_norm(h) @ params["mlp1"]) @ params["mlp2"]
    return _layer_norm(h).mean(1) @ params["head"] + params["bias"]


def _loss(model, x, y):
    return lambda p: optax.softmax_cross_entropy_with_integer_labels(model(p, x), y).mean()


def _trained(model, init, dtype, steps=100):
    """Params after ``steps`` of full-batch SGD in float32, cast to ``dtype``; the loss."""
    x, y = _data(np.float32)
    params = init(jax.random.key(0), jnp.float32)
    tx = optax.sgd(0.2)
    loss = _loss(model, x, y)

    @jax.jit
    def train(params):
        def step(carry, _):
            p, s = carry
            u, s = tx.update(jax.grad(loss)(p), s)
            return (optax.apply_updates(p, u), s), None

        return jax.lax.scan(step, (params, tx.init(params)), None, length=steps)[0][0]

    params = jax.tree.map(lambda a: np.asarray(a).astype(dtype), train(params))
    x, y = _data(dtype)
    return jax.tree.map(jnp.asarray, params), _loss(model, x, y)


STARTS = 8  # random start vectors per model; the counts reported are the worst of them


def _histories(loss, params, steps_lanczos=60, steps_power=300):
    """Relative-error histories (one row per random start) of Lanczos and power iteration.

    Row ``i``, column ``j``: the estimate after ``j + 1`` products (Lanczos: the top Ritz value
    after ``j + 1`` steps; power: the Rayleigh quotient of the ``j``-th iterate).
    """
    flat, _, op = flat_operator(loss, params, matvec=None, batches=None, fn_name="benchmark")
    n, dtype = flat.shape[0], flat.dtype
    keys = jax.random.split(jax.random.key(7), STARTS)
    v0 = jax.vmap(lambda k: _krylov.start_vector(None, k, n, dtype))(keys)

    @jax.jit
    def lanczos(v0):
        run = jax.vmap(lambda v, k: _krylov.lanczos(op, v, k, steps_lanczos))(v0, keys)
        theta, s = jax.vmap(_krylov.ritz)(run)
        y = jnp.einsum("bm,bmn->bn", s[:, :, -1], run.basis)
        lam, res = jax.vmap(lambda y: _krylov.rayleigh(op, y))(y)
        return run.alphas, run.betas, lam, res

    @jax.jit
    def power(v0):
        def body(v, _):
            w = jax.vmap(op)(v)
            mu = jnp.sum(v * w, axis=1)
            return w / jnp.linalg.norm(w, axis=1, keepdims=True), mu

        return jax.lax.scan(body, v0, None, length=steps_power)[1].T

    a, b, lam, res = (np.asarray(t) for t in lanczos(v0))
    ritz = np.empty((STARTS, steps_lanczos))
    for i in range(STARTS):
        for j in range(1, steps_lanczos + 1):
            t = np.diag(a[i, :j]) + np.diag(b[i, : j - 1], 1) + np.diag(b[i, : j - 1], -1)
            ritz[i, j - 1] = np.linalg.eigvalsh(t)[-1]
    best = int(np.argmax(lam))
    return ritz, np.asarray(power(v0)), float(lam[best]), float(res[best])


def _products_needed(history, reference, rtol):
    """Worst case over the starts of the products after which the error stays <= rtol."""
    counts = []
    for row in history:
        bad = np.nonzero(np.abs(row - reference) > rtol * abs(reference))[0]
        if bad.size and bad[-1] == len(row) - 1:
            return None  # not reached within the budget
        counts.append(int(bad[-1]) + 2 if bad.size else 1)
    return max(counts)


def _convergence(name, model, init, results):
    with jax.enable_x64(True):
        params, loss = _trained(model, init, jnp.float64)
        n = ravel_pytree(params)[0].shape[0]
        ritz, power, lam, res = _histories(loss, params)
        out = {"params": n, "lambda_max": lam, "reference_residual": res}
        for tol in (1e-3, 1e-6):
            lanczos = _products_needed(ritz, lam, tol)
            # + 1: the final product top_eigenvalue spends on the returned vector
            out[f"lanczos_hvps_{tol:g}"] = None if lanczos is None else lanczos + 1
            out[f"power_hvps_{tol:g}"] = _products_needed(power, lam, tol)
        budget = out["lanczos_hvps_0.001"]
        errs = []
        for seed in range(3):  # fresh starts: the public estimator with that budget
            e = sh.top_eigenvalue(loss, params, key=jax.random.key(100 + seed), num_iters=budget)
            errs.append(abs(float(e.eigenvalue) - lam) / abs(lam))
        out["top_eigenvalue_rel_err_at_budget"] = max(errs)
        e = sh.top_eigenvalue(loss, params, key=jax.random.key(200))  # defaults: 20, tol 1e-3
        out["default_hvps"] = int(e.num_hvps)
        out["default_rel_err"] = abs(float(e.eigenvalue) - lam) / abs(lam)
    results[name] = out
    print(
        f"{name}: {n} params, lambda_max={lam:.6g} (certified residual {res:.1e}); HVPs for "
        f"rel err 1e-3 (worst of {STARTS} random starts): Lanczos {out['lanczos_hvps_0.001']} "
        f"vs power {out['power_hvps_0.001']}; 1e-6: Lanczos {out['lanczos_hvps_1e-06']} vs "
        f"power {out['power_hvps_1e-06']}; top_eigenvalue(num_iters={budget}) worst rel err "
        f"over 3 new starts {out['top_eigenvalue_rel_err_at_budget']:.1e}; defaults "
        f"(num_iters=20, tol=1e-3): {out['default_hvps']} HVPs, rel err "
        f"{out['default_rel_err']:.1e}"
    )
    return lam


def _best_time(fn, repeats=20):
    jax.block_until_ready(fn())
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        jax.block_until_ready(fn())
        times.append(time.perf_counter() - t)
    return float(np.median(times))


def _hvp_cost(name, model, init, results):
    params, loss = _trained(model, init, jnp.float32)
    v = jax.tree.map(jnp.ones_like, params)
    grad = jax.jit(jax.grad(loss))
    hvp = jax.jit(lambda p, v: sh.hvp(loss, p, v))
    t_grad = _best_time(lambda: grad(params))
    t_hvp = _best_time(lambda: hvp(params, v))

    @jax.jit
    def lin_products(p):  # the estimators' operator: linearized once, then 20 products
        flat, _, op = flat_operator(loss, p, matvec=None, batches=None, fn_name="benchmark")
        return jax.lax.scan(lambda x, _: (op(x) / 100.0, None), flat, None, length=20)[0]

    t_lin = (_best_time(lambda: lin_products(params), repeats=5) - t_grad) / 20
    out = {"hvp_over_grad": t_hvp / t_grad, "linearized_hvp_over_grad": t_lin / t_grad}
    results[name].update(out)
    print(
        f"{name}: one HVP / one gradient = {out['hvp_over_grad']:.2f} (jvp of grad), "
        f"{out['linearized_hvp_over_grad']:.2f} (linearized operator, per product)"
    )


def _pyhessian(lam_ref, results):
    import importlib

    import torch

    pyh = importlib.import_module("pyhessian.hessian")  # the module (the package exports a class)

    torch.set_num_threads(2)
    params, loss = _trained(_mlp, _init_mlp, jnp.float32)
    x, y = _data(np.float32)
    layers = []
    for i, layer in enumerate(params):
        lin = torch.nn.Linear(*layer["w"].shape)
        with torch.no_grad():
            lin.weight.copy_(torch.from_numpy(np.asarray(layer["w"]).T.copy()))
            lin.bias.copy_(torch.from_numpy(np.asarray(layer["b"]).copy()))
        layers.append(lin)
        if i < len(params) - 1:
            layers.append(torch.nn.Tanh())
    net = torch.nn.Sequential(*layers).eval()
    tx, ty = torch.tensor(np.asarray(x)), torch.tensor(np.asarray(y)).long()
    with torch.no_grad():
        torch_loss = float(torch.nn.functional.cross_entropy(net(tx), ty))
    assert abs(torch_loss - float(loss(params))) < 1e-4, "ported weights disagree"

    count = {"hvps": 0}
    original = pyh.hessian_vector_product

    def counted(*args, **kwargs):
        count["hvps"] += 1
        return original(*args, **kwargs)

    pyh.hessian_vector_product = counted
    torch.manual_seed(0)
    t = time.perf_counter()
    hess = pyh.hessian(net, torch.nn.CrossEntropyLoss(), data=(tx, ty), cuda=False)
    eig, _ = hess.eigenvalues()
    t_torch = time.perf_counter() - t
    pyh.hessian_vector_product = original

    estimate = jax.jit(lambda p, k: sh.top_eigenvalue(loss, p, key=k, num_iters=20, tol=1e-3))
    t = time.perf_counter()
    jax.block_until_ready(estimate(params, jax.random.key(0)))
    t_compile = time.perf_counter() - t
    e = estimate(params, jax.random.key(1))
    t_jax = _best_time(lambda: estimate(params, jax.random.key(1)), repeats=5)
    out = {
        "pyhessian_seconds": t_torch,
        "pyhessian_hvps": count["hvps"],
        "pyhessian_rel_err": abs(eig[0] - lam_ref) / abs(lam_ref),
        "jaxlr_seconds": t_jax,
        "jaxlr_compile_seconds": t_compile,
        "jaxlr_hvps": int(e.num_hvps),
        "jaxlr_rel_err": abs(float(e.eigenvalue) - lam_ref) / abs(lam_ref),
        "jaxlr_certified_rel_residual": float(e.residual) / abs(float(e.eigenvalue)),
        "speedup": t_torch / t_jax,
        "speedup_incl_compile": t_torch / (t_jax + t_compile),
    }
    results["pyhessian"] = out
    print(
        f"lambda_max of the MLP: PyHessian {t_torch:.3f} s, {out['pyhessian_hvps']} HVPs, "
        f"rel err {out['pyhessian_rel_err']:.1e}; jaxlr {t_jax:.4f} s (+{t_compile:.2f} s "
        f"compile once), {out['jaxlr_hvps']} HVPs, rel err {out['jaxlr_rel_err']:.1e}; "
        f"speedup {out['speedup']:.1f}x ({out['speedup_incl_compile']:.1f}x with compile)"
    )


def main() -> dict:
    """Runs every measurement, prints one line each, returns them as a nested dict."""
    results: dict = {}
    lam_mlp = _convergence("mlp", _mlp, _init_mlp, results)
    _convergence("transformer", _transformer, _init_transformer, results)
    _hvp_cost("mlp", _mlp, _init_mlp, results)
    _hvp_cost("transformer", _transformer, _init_transformer, results)
    _pyhessian(lam_mlp, results)
    return results


if __name__ == "__main__":
    main()
