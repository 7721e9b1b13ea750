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
4. Step-time overhead (minibatch SGD, batch 64, a new batch every step, 200 steps in one
   compiled scan, median of 5): ``sharpness_cap(every=1, 10, 100)`` over the plain step, for
   the MLP and the transformer.
5. In-loop accuracy on a minibatch loss (MLP, SGD with base LR 2.0 above the edge so the cap
   binds, a new batch of 64 each step, 60 steps): per-step relative error of the lambda the
   cap used against a converged Lanczos (60 products, tol 1e-7) on the same params and the
   same batch, and the fraction of steps with eta * lambda_true <= 2; for the shipped defaults,
   for every=10 on the minibatch and on a fixed probe batch, for the estimators tried along the
   shipped cap's trajectory (the old 3-product tracker, cold Lanczos, pure warm start), and
   for the preconditioned (Adam) estimate.
6. lambda_max to 1e-3 relative error, jaxlr vs PyHessian at equal accuracy: PyHessian's
   relative-change stop is tightened until its error is <= 1e-3; 5 repeats each, median, warm.
7. Scale: a 1.3M-parameter MLP (256-1024-1024-10, synthetic batch of 256): time and peak
   memory (XLA's compile-time memory analysis) of one HVP and of a 20-product lambda_max
   estimate over one gradient.
8. Batch sharpness (``batch_errors``): each cheap sample of g'H_B g / g'g (forward-over-forward,
   one HVP, the loss-rise test at two probe LRs), float32, against the exact directional form
   from an HVP in float64, on 20 minibatches of 64 at the trained params of the MLP, the
   transformer and a small CNN (two 3x3 convolutions, 8 and 16 channels).
9. The batch-sharpness cap's step cost (``batch_overhead``): as 4, for each quantity / method
   (lambda_max skipped on the CNN), every = 1, 10, 100, on the three models; plain and capped
   loops timed alternately (process CPU time on CPU), ratio of the fastest of 7 runs each.
10. Lanczos at scale (``lanczos_scale``): at 1.3M and 10.5M parameters, time and peak memory in
   gradient units of a 20-product estimate by full Lanczos and by the basis-free two-pass mode,
   with their errors against a 60-product reference.
11. Convolutions (``conv_lanczos``): a 20-product estimate on a small CNN as a while loop and in
   the default (on XLA:CPU: unrolled) form, in gradient times.
"""

from __future__ import annotations

import functools
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


BATCH = 64


def _minibatches(steps, seed=0):
    rng = np.random.default_rng(seed)
    return jnp.asarray(np.stack([rng.choice(512, BATCH, replace=False) for _ in range(steps)]))


def _batch_loss(model):
    def loss(p, batch):
        x, y = batch
        return optax.softmax_cross_entropy_with_integer_labels(model(p, x), y).mean()

    return loss


def _sgd_loop(loss, tx, x, y, idx, history=False):
    """A jitted scan of minibatch steps of ``tx`` (batch passed to ``update`` as data).

    Returns the final carry; with ``history`` the state of every step too. Off for timing: a
    training loop does not stack its optimizer state each step, and doing so wrote ~30 scalars
    and the ring per step into the scan's outputs (0.45x the plain MLP step, all of it
    charged to the cap, whose plain SGD reference has an empty state).
    """

    @jax.jit
    def run(params):
        def step(carry, i):
            p, s = carry
            batch = (x[i], y[i])
            g = jax.grad(loss)(p, batch)
            u, s = tx.update(g, s, p, batch=batch)
            return (optax.apply_updates(p, u), s), (s if history else None)

        return jax.lax.scan(step, (params, tx.init(params)), idx)

    return run


def _step_overhead(name, model, init, results):
    params, _ = _trained(model, init, jnp.float32)
    x, y = _data(np.float32)
    loss, idx = _batch_loss(model), _minibatches(200)
    plain = optax.sgd(0.05)
    plain_tx = optax.GradientTransformationExtraArgs(
        plain.init, lambda u, s, p=None, **kw: plain.update(u, s, p)
    )
    plain_run = _sgd_loop(loss, plain_tx, x, y, idx)
    times = {"plain": _best_time(lambda: plain_run(params), 5)}
    out = {}
    for every in (1, 10, 100):
        tx = jaxlr_cap(schedule=0.05, loss_fn=loss, every=every)
        run = _sgd_loop(loss, tx, x, y, idx)
        times[every] = _best_time(lambda run=run: run(params), 5)
        out[f"cap_every_{every}_over_plain"] = times[every] / times["plain"]
    results[name].update(out)
    print(
        f"{name}: step time sharpness_cap(every=1/10/100) over the plain SGD step: "
        + ", ".join(f"{out[f'cap_every_{k}_over_plain']:.2f}x" for k in (1, 10, 100))
    )


def jaxlr_cap(**kw):
    """``sharpness_cap(optax.sgd(1.0), ...)``; the lambda_max quantity unless one is named (the
    overhead and in-loop sections measure the Lanczos cap)."""
    from jaxlr.transforms import sharpness_cap

    kw.setdefault("quantity", "lambda_max")
    return sharpness_cap(optax.sgd(1.0), **kw)


def _errors(est, true, lr, c=2.0):
    rel = np.abs(np.asarray(est) - true) / np.abs(true)
    return {
        "median": float(np.median(rel)),
        "p95": float(np.quantile(rel, 0.95)),
        "max": float(rel.max()),
        "under_edge": float(np.mean(np.asarray(lr) * true <= c)),
    }


def _inloop(results, steps=60):
    params0, _ = _trained(_mlp, _init_mlp, jnp.float32)
    x, y = _data(np.float32)
    loss, idx = _batch_loss(_mlp), _minibatches(steps, seed=3)
    probe_idx = jnp.arange(256)

    @jax.jit
    def truth(p, i, precond=None):
        batch = (x[i], y[i])
        key = jax.random.key(99)
        if precond is None:
            return sh.top_eigenvalue(
                loss, p, batch=batch, key=key, num_iters=60, tol=1e-7
            ).eigenvalue
        return sh.preconditioned_top_eigenvalue(
            loss, p, precond, batch=batch, key=key, num_iters=60, tol=1e-7
        ).eigenvalue

    def trajectory(tx, probe=False):
        @jax.jit
        def run(params):
            def step(carry, i):
                p, s = carry
                batch = (x[i], y[i])
                b = (x[probe_idx], y[probe_idx]) if probe else batch
                g = jax.grad(loss)(p, batch)
                u, s = tx.update(g, s, p, batch=b)
                return (optax.apply_updates(p, u), s), (p, s)

            return jax.lax.scan(step, (params, tx.init(params)), idx)[1]

        return run(params0)

    out = {}
    designs = {
        "defaults (every=1, warm+random Lanczos, tol 1e-3)": (
            jaxlr_cap(schedule=2.0, loss_fn=loss),
            False,
        ),
        "tried: tol 1e-2 (every=1, warm+random Lanczos)": (
            jaxlr_cap(schedule=2.0, loss_fn=loss, tol=1e-2),
            False,
        ),
        "every=10 on the minibatch": (jaxlr_cap(schedule=2.0, loss_fn=loss, every=10), False),
        "every=10 on a fixed probe batch (256)": (
            jaxlr_cap(schedule=2.0, loss_fn=loss, every=10),
            True,
        ),
    }
    shipped = None
    for label, (tx, probe) in designs.items():
        ps, states = trajectory(tx, probe)
        cols = [probe_idx] * steps if probe else list(idx)
        true = np.array(
            [float(truth(jax.tree.map(lambda a, t=t: a[t], ps), cols[t])) for t in range(steps)]
        )
        row = _errors(states.sharpness, true, states.lr)
        row["hvps_per_step"] = float(states.curvature.total_hvps[-1]) / steps
        row["first_step_rel_err"] = float(abs(states.sharpness[0] - true[0]) / true[0])
        out[label] = row
        if shipped is None:
            shipped = (ps, true, states)
    ps, true, states = shipped
    # other estimators along the shipped cap's trajectory (same params, same batches)
    step_params = [jax.tree.map(lambda a, t=t: a[t], ps) for t in range(steps)]
    tracker = jax.jit(
        lambda p, i, st: sh.tracker_update(loss, p, st, batch=(x[i], y[i]), num_iters=3)
    )
    st = sh.tracker_init(params0, key=jax.random.key(0))
    lanczos = jax.jit(
        lambda p, i, k, v0: sh.top_eigenvalue(
            loss, p, batch=(x[i], y[i]), key=k, num_iters=20, tol=1e-3, v0=v0
        )
    )
    est = {
        "old tracker (3 products, every=1)": [],
        "cold Lanczos each step (tol 1e-3)": [],
        "pure warm start (previous vector, tol 1e-3)": [],
    }
    hv = {k: 0 for k in est}
    v0 = None
    for t in range(steps):
        e, st = tracker(step_params[t], idx[t], st)
        est["old tracker (3 products, every=1)"].append(float(e.eigenvalue))
        hv["old tracker (3 products, every=1)"] += 3
        e = lanczos(
            step_params[t], idx[t], jax.random.key(t), jax.tree.map(jnp.zeros_like, params0)
        )
        est["cold Lanczos each step (tol 1e-3)"].append(float(e.eigenvalue))
        hv["cold Lanczos each step (tol 1e-3)"] += int(e.num_hvps)
        w = lanczos(
            step_params[t],
            idx[t],
            jax.random.key(t),
            jax.tree.map(jnp.zeros_like, params0) if v0 is None else v0,
        )
        v0 = w.eigenvector
        est["pure warm start (previous vector, tol 1e-3)"].append(float(w.eigenvalue))
        hv["pure warm start (previous vector, tol 1e-3)"] += int(w.num_hvps)
    for label, values in est.items():
        row = _errors(values, true, 1.8 / np.asarray(values))  # the LR a 0.9 cap would use
        row["hvps_per_step"] = hv[label] / steps
        out[label + " [on the shipped trajectory]"] = row
    # the preconditioned (Adam) estimate
    from jaxlr.transforms import sharpness_cap

    tx = sharpness_cap(
        optax.adam(1.0), schedule=0.05, kind="adam", loss_fn=loss, quantity="lambda_max"
    )
    ps, states = trajectory(tx)
    true = np.array(
        [
            float(
                truth(
                    jax.tree.map(lambda a, t=t: a[t], ps),
                    idx[t],
                    sh.preconditioner(jax.tree.map(lambda a, t=t: a[t], states.inner_state)),
                )
            )
            for t in range(steps)
        ]
    )
    row = _errors(states.sharpness, true, states.lr, c=38.0)
    row["hvps_per_step"] = float(states.curvature.total_hvps[-1]) / steps
    out["adam preconditioned, defaults"] = row
    results["inloop"] = out
    for label, row in out.items():
        first = row.get("first_step_rel_err")
        print(
            f"in-loop {label}: rel err median {row['median']:.2%} p95 {row['p95']:.2%} max "
            f"{row['max']:.2%}; eta*lambda_true under the edge on {row['under_edge']:.1%} of "
            f"steps; {row['hvps_per_step']:.1f} HVPs/step"
            + ("" if first is None else f"; first step rel err {first:.2%}")
        )


def _pyhessian_equal_accuracy(lam_ref, results, repeats=5):
    import importlib

    import torch

    pyh = importlib.import_module("pyhessian.hessian")
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
    hess = pyh.hessian(net, torch.nn.CrossEntropyLoss(), data=(tx, ty), cuda=False)
    chosen = None
    for tol in (1e-3, 1e-4, 1e-5, 1e-6):
        torch.manual_seed(0)
        err = abs(hess.eigenvalues(maxIter=1000, tol=tol)[0][0] - lam_ref) / abs(lam_ref)
        if err <= 1e-3:
            chosen = tol
            break
    t_torch = []
    for r in range(repeats):
        torch.manual_seed(r)
        t = time.perf_counter()
        hess.eigenvalues(maxIter=1000, tol=chosen)
        t_torch.append(time.perf_counter() - t)
    estimate = jax.jit(lambda p, k: sh.top_eigenvalue(loss, p, key=k, num_iters=20, tol=1e-3))
    jax.block_until_ready(estimate(params, jax.random.key(0)))
    t_jax, errs = [], []
    for r in range(repeats):
        t = time.perf_counter()
        e = jax.block_until_ready(estimate(params, jax.random.key(r + 1)))
        t_jax.append(time.perf_counter() - t)
        errs.append(abs(float(e.eigenvalue) - lam_ref) / abs(lam_ref))
    out = {
        "pyhessian_tol_for_1e-3": chosen,
        "pyhessian_seconds": float(np.median(t_torch)),
        "jaxlr_seconds": float(np.median(t_jax)),
        "jaxlr_max_rel_err": max(errs),
        "speedup_at_1e-3": float(np.median(t_torch) / np.median(t_jax)),
    }
    results["pyhessian_equal_accuracy"] = out
    print(
        f"lambda_max to 1e-3 rel err: PyHessian (tol {chosen:g}) {out['pyhessian_seconds']:.3f}"
        f" s vs jaxlr {out['jaxlr_seconds']:.4f} s (max rel err {max(errs):.1e}), median of "
        f"{repeats}: {out['speedup_at_1e-3']:.1f}x"
    )


def _memory(compiled) -> int:
    m = compiled.memory_analysis()
    return int(m.temp_size_in_bytes + m.argument_size_in_bytes + m.output_size_in_bytes)


def _scale(results, widths=(256, 1024, 1024, 10), batch=256):
    """A >= 1M-parameter MLP on synthetic data: one HVP, one lambda_max estimate (20 products)
    and one gradient, timed (median of 5) and their peak memory from XLA's memory analysis."""
    key = jax.random.key(0)
    params = []
    for k, a, b in zip(
        jax.random.split(key, len(widths) - 1), widths[:-1], widths[1:], strict=True
    ):
        params.append({"w": jax.random.normal(k, (a, b)) / np.sqrt(a), "b": jnp.zeros(b)})
    n = ravel_pytree(params)[0].shape[0]
    kx, ky = jax.random.split(jax.random.key(1))
    batch_ = (
        jax.random.normal(kx, (batch, widths[0])),
        jax.random.randint(ky, (batch,), 0, widths[-1]),
    )
    loss = _batch_loss(_mlp)
    v = jax.tree.map(jnp.ones_like, params)
    fns = {
        "grad": (jax.jit(jax.grad(loss)), (params, batch_)),
        "hvp": (jax.jit(lambda p, b, v: sh.hvp(lambda q: loss(q, b), p, v)), (params, batch_, v)),
        "top_eigenvalue": (
            jax.jit(
                lambda p, b: sh.top_eigenvalue(
                    loss, p, batch=b, key=jax.random.key(2), num_iters=20, tol=0.0
                )
            ),
            (params, batch_),
        ),
    }
    t, mem = {}, {}
    for name, (fn, args) in fns.items():
        mem[name] = _memory(fn.lower(*args).compile())
        t[name] = _best_time(lambda fn=fn, args=args: fn(*args), repeats=5)
    out = {
        "params": n,
        "hvp_over_grad_time": t["hvp"] / t["grad"],
        "top_eigenvalue_20_over_grad_time": t["top_eigenvalue"] / t["grad"],
        "hvp_over_grad_memory": mem["hvp"] / mem["grad"],
        "top_eigenvalue_20_over_grad_memory": mem["top_eigenvalue"] / mem["grad"],
        "grad_seconds": t["grad"],
        "grad_bytes": mem["grad"],
    }
    results["scale"] = out
    print(
        f"scale: MLP {'-'.join(map(str, widths))} ({n:,} params, batch {batch}): HVP / grad "
        f"time {out['hvp_over_grad_time']:.2f}, top_eigenvalue(20 products) / grad time "
        f"{out['top_eigenvalue_20_over_grad_time']:.1f}; peak memory HVP / grad "
        f"{out['hvp_over_grad_memory']:.2f}, top_eigenvalue / grad "
        f"{out['top_eigenvalue_20_over_grad_memory']:.2f} (grad {mem['grad'] / 2**20:.0f} MiB)"
    )


# -- batch sharpness: the cheap cap's step cost and its estimators' accuracy ----------------------


def _init_cnn(key, dtype):
    ks = jax.random.split(key, 3)
    return {
        "c1": jax.random.normal(ks[0], (3, 3, 1, 8), dtype) / 3.0,
        "c2": jax.random.normal(ks[1], (3, 3, 8, 16), dtype) / np.sqrt(72.0),
        "head": jax.random.normal(ks[2], (16, 10), dtype) / 4.0,
        "bias": jnp.zeros((10,), dtype),
    }


def _cnn(params, x):
    """Two 3x3 convolutions (8 and 16 channels, tanh) over the 8x8 image, mean pool, linear."""
    h = x.reshape(-1, 8, 8, 1)
    for name in ("c1", "c2"):
        h = jnp.tanh(
            jax.lax.conv_general_dilated(
                h, params[name], (1, 1), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC")
            )
        )
    return h.mean((1, 2)) @ params["head"] + params["bias"]


MODELS = {
    "mlp": (_mlp, _init_mlp),
    "transformer": (_transformer, _init_transformer),
    "cnn": (_cnn, _init_cnn),
}
# (quantity, method) of the sharpness_cap modes timed; lambda_max is skipped on the CNN, where
# Lanczos inside lax.scan hits XLA:CPU's slow convolutions in loop bodies (issue 23 item 4).
CAP_MODES = (
    ("batch_sharpness", "forward_over_forward"),
    ("batch_sharpness", "hvp"),
    ("batch_sharpness", "loss_rise"),
    ("lambda_max", "forward_over_forward"),
)


def _batch_cap_overhead(name, results, steps=200, repeats=7):
    """Step time of ``sharpness_cap`` (each quantity / method, every = 1, 10, 100) over the
    plain SGD step: minibatch SGD, batch 64, a new batch each step, ``steps`` in one compiled
    scan (the state is not stacked per step). On a shared machine the plain and the capped loop
    are timed alternately (CPU time of the process on CPU) and the ratio is of the fastest of
    ``repeats`` runs each (load only ever adds time)."""
    model, init = MODELS[name]
    params, _ = _trained(model, init, jnp.float32)
    x, y = _data(np.float32)
    loss, idx = _batch_loss(model), _minibatches(steps)
    plain = optax.sgd(0.05)
    plain_tx = optax.GradientTransformationExtraArgs(
        plain.init, lambda u, s, p=None, **kw: plain.update(u, s, p)
    )
    plain_run = _sgd_loop(loss, plain_tx, x, y, idx)
    jax.block_until_ready(plain_run(params))

    # On CPU the process's CPU time: on a shared machine wall time also counts the waits for a
    # core (measured here: ratios of wall times moved by +-10% between runs, of CPU times +-2%).
    clock = time.process_time if jax.default_backend() == "cpu" else time.perf_counter

    def timed(fn):
        t = clock()
        jax.block_until_ready(fn())
        return clock() - t

    out = {}
    for quantity, method in CAP_MODES:
        if name == "cnn" and quantity == "lambda_max":
            continue
        label = quantity if quantity == "lambda_max" else method
        for every in (1, 10, 100):
            tx = jaxlr_cap(
                schedule=0.05, loss_fn=loss, every=every, quantity=quantity, method=method
            )
            run = _sgd_loop(loss, tx, x, y, idx)
            jax.block_until_ready(run(params))
            pairs = [
                (timed(lambda: plain_run(params)), timed(lambda run=run: run(params)))
                for _ in range(repeats)
            ]
            out[f"{label}_every_{every}_over_plain"] = min(c for _, c in pairs) / min(
                p for p, _ in pairs
            )
        print(
            f"{name}: step time sharpness_cap({label}, every=1/10/100) over the plain SGD step: "
            + ", ".join(f"{out[f'{label}_every_{k}_over_plain']:.2f}x" for k in (1, 10, 100)),
            flush=True,
        )
    results.setdefault(name, {})["batch_cap_overhead"] = out


def _batch_estimator_errors(name, results, num_batches=20, etas=(0.05, 0.5)):
    """Relative error of each cheap batch-sharpness sample (float32) against the exact
    directional form g'H_B g / g'g from an exact HVP in float64, over ``num_batches``
    minibatches of 64 at the trained params; ``loss_rise`` at each probe LR in ``etas``."""
    model, init = MODELS[name]
    params, _ = _trained(model, init, jnp.float32)
    x, y = _data(np.float32)
    loss, idx = _batch_loss(model), _minibatches(num_batches, seed=7)
    with jax.enable_x64(True):
        p64 = jax.tree.map(lambda a: jnp.asarray(a, jnp.float64), params)
        x64 = jnp.asarray(x, jnp.float64)

        @jax.jit
        def exact(i):
            bound = lambda p: loss(p, (x64[i], y[i]))  # noqa: E731
            g = jax.grad(bound)(p64)
            hg = sh.hvp(bound, p64, g)
            gf, hf = ravel_pytree(g)[0], ravel_pytree(hg)[0]
            return jnp.vdot(gf, hf) / jnp.vdot(gf, gf)

        ref = np.array([float(exact(i)) for i in idx])

    @functools.partial(jax.jit, static_argnames="method")
    def cheap(i, method, eta=1.0):
        batch = (x[i], y[i])
        return sh.batch_sharpness(
            loss, params, batch=batch, method=method, learning_rate=eta
        ).sharpness

    out = {}
    variants = [("forward_over_forward", None), ("hvp", None)]
    variants += [("loss_rise", eta) for eta in etas]
    for method, eta in variants:
        got = np.array(
            [float(cheap(i, method) if eta is None else cheap(i, method, eta)) for i in idx]
        )
        rel = np.abs(got - ref) / np.abs(ref)
        label = method if eta is None else f"{method}_eta_{eta}"
        out[label] = {"median": float(np.median(rel)), "max": float(rel.max())}
    results.setdefault(name, {})["batch_estimator_errors"] = out
    print(
        f"{name}: batch-sharpness sample, relative error vs float64 exact g'Hg/g'g "
        f"(median / max over {num_batches} batches): "
        + "; ".join(f"{k} {v['median']:.1e} / {v['max']:.1e}" for k, v in out.items()),
        flush=True,
    )


def _random_mlp(widths, batch):
    """A random-init MLP with ``widths`` and a synthetic classification batch."""
    params = []
    keys = jax.random.split(jax.random.key(0), len(widths) - 1)
    for k, a, b in zip(keys, widths[:-1], widths[1:], strict=True):
        params.append({"w": jax.random.normal(k, (a, b)) / np.sqrt(a), "b": jnp.zeros(b)})
    kx, ky = jax.random.split(jax.random.key(1))
    data = (
        jax.random.normal(kx, (batch, widths[0])),
        jax.random.randint(ky, (batch,), 0, widths[-1]),
    )
    return params, data


LANCZOS_SCALES = ((256, 1024, 1024, 10), (1024, 2048, 2048, 2048, 10))


def _lanczos_scale(results, scales=LANCZOS_SCALES, batch=256, budget=20, repeats=3):
    """Lanczos at 1.3M and 10.5M parameters, in gradient units: time (median of ``repeats``,
    compiled beforehand) and peak memory (XLA's memory analysis: arguments + outputs + temps)
    of ``top_eigenvalue`` with ``budget`` products (tol 0, every product spent) for full
    Lanczos (stored basis) and the basis-free two-pass mode, and the accuracy of each against
    a 3 x ``budget``-product full Lanczos reference (relative error and certified residual).
    """
    loss = _batch_loss(_mlp)
    out = {}
    for widths in scales:
        params, data = _random_mlp(widths, batch)
        n = ravel_pytree(params)[0].shape[0]

        def estimate(method, num_iters):
            return jax.jit(
                lambda p, b: sh.top_eigenvalue(
                    loss,
                    p,
                    batch=b,
                    key=jax.random.key(2),
                    num_iters=num_iters,
                    tol=0.0,
                    method=method,
                )
            )

        fns = {
            "grad": jax.jit(jax.grad(loss)),
            "lanczos": estimate("lanczos", budget),
            "lanczos_two_pass": estimate("lanczos_two_pass", budget),
        }
        ref = estimate("lanczos", 3 * budget)(params, data)
        lam_ref = float(ref.eigenvalue)
        row = {"params": n, "reference": lam_ref, "reference_residual": float(ref.residual)}
        for name, fn in fns.items():
            mem = _memory(fn.lower(params, data).compile())
            t = _best_time(lambda fn=fn, p=params, b=data: fn(p, b), repeats=repeats)
            row[name] = {"seconds": t, "bytes": mem}
            if name != "grad":
                e = fn(params, data)
                row[name]["rel_err"] = abs(float(e.eigenvalue) - lam_ref) / abs(lam_ref)
                row[name]["residual"] = float(e.residual)
                row[name]["num_hvps"] = int(e.num_hvps)
        g = row["grad"]
        for name in ("lanczos", "lanczos_two_pass"):
            r = row[name]
            r["over_grad_time"] = r["seconds"] / g["seconds"]
            r["over_grad_memory"] = r["bytes"] / g["bytes"]
            print(
                f"lanczos_scale: MLP {'-'.join(map(str, widths))} ({n:,} params, batch {batch}),"
                f" {name} {r['num_hvps']} products: time {r['over_grad_time']:.1f} gradients, "
                f"peak memory {r['over_grad_memory']:.2f} gradients (grad "
                f"{g['bytes'] / 2**20:.0f} MiB), rel err {r['rel_err']:.1e} vs a "
                f"{3 * budget}-product reference (residual {r['residual']:.1e})",
                flush=True,
            )
        out[n] = row
    results["lanczos_scale"] = out


def _cnn(params, x):
    dn = ("NHWC", "HWIO", "NHWC")
    h = x
    for name in ("c1", "c2"):
        h = jax.nn.relu(
            jax.lax.conv_general_dilated(h, params[name], (1, 1), "SAME", dimension_numbers=dn)
        )
        h = jax.lax.reduce_window(h, -jnp.inf, jax.lax.max, (1, 2, 2, 1), (1, 2, 2, 1), "VALID")
    return h.reshape(h.shape[0], -1) @ params["w"]


def _conv_lanczos(results, batch=64, repeats=3):
    """Lanczos on a small CNN (two 3x3 convolutions, 16 and 32 channels, on 28x28 inputs; 20,400
    parameters): a 20-product ``top_eigenvalue`` (tol 0) as a while loop (``unroll=False``) and
    in the default form (unrolled on XLA:CPU for a convolution), in gradient times, with their
    compile times."""
    k = jax.random.split(jax.random.key(0), 5)
    params = {
        "c1": jax.random.normal(k[0], (3, 3, 1, 16)) * 0.3,
        "c2": jax.random.normal(k[1], (3, 3, 16, 32)) * 0.1,
        "w": jax.random.normal(k[2], (32 * 7 * 7, 10)) * 0.02,
    }
    data = (
        jax.random.normal(k[3], (batch, 28, 28, 1)),
        jax.random.randint(k[4], (batch,), 0, 10),
    )
    loss = _batch_loss(_cnn)
    n = ravel_pytree(params)[0].shape[0]

    def estimate(unroll):
        return jax.jit(
            lambda p, b: sh.top_eigenvalue(
                loss, p, batch=b, key=jax.random.key(2), num_iters=20, tol=0.0, unroll=unroll
            )
        )

    fns = {"grad": jax.jit(jax.grad(loss)), "loop": estimate(False), "default": estimate(None)}
    t, compile_s = {}, {}
    for name, fn in fns.items():
        start = time.perf_counter()
        fn.lower(params, data).compile()
        compile_s[name] = time.perf_counter() - start
        t[name] = _best_time(lambda fn=fn: fn(params, data), repeats=repeats)
    out = {
        "params": n,
        "loop_over_grad": t["loop"] / t["grad"],
        "default_over_grad": t["default"] / t["grad"],
        "compile_seconds": compile_s,
    }
    results["conv_lanczos"] = out
    print(
        f"conv_lanczos: CNN ({n:,} params, batch {batch}), top_eigenvalue 20 products: while loop"
        f" {out['loop_over_grad']:.1f} gradients (compile {compile_s['loop']:.1f} s), default "
        f"(unrolled on CPU) {out['default_over_grad']:.1f} gradients (compile "
        f"{compile_s['default']:.1f} s)",
        flush=True,
    )


def _reference_lambda() -> float:
    """lambda_max of the trained MLP in float64 (Lanczos, 150 products, certified residual)."""
    with jax.enable_x64(True):
        params, loss = _trained(_mlp, _init_mlp, jnp.float64)
        return float(
            sh.top_eigenvalue(
                loss, params, key=jax.random.key(5), num_iters=150, tol=0.0
            ).eigenvalue
        )


PARTS = (
    "convergence",
    "hvp",
    "pyhessian",
    "overhead",
    "inloop",
    "scale",
    "batch_overhead",
    "batch_errors",
    "lanczos_scale",
    "conv_lanczos",
)


def main(parts: tuple[str, ...] = PARTS) -> dict:
    """Runs the measurements named in ``parts`` (all by default), prints one line each and
    returns them as a nested dict. ``python -m benchmarks.sharpness inloop overhead`` runs two.
    """
    results: dict = {"mlp": {}, "transformer": {}}
    lam_mlp = None
    if "convergence" in parts:
        lam_mlp = _convergence("mlp", _mlp, _init_mlp, results)
        _convergence("transformer", _transformer, _init_transformer, results)
    if "hvp" in parts:
        _hvp_cost("mlp", _mlp, _init_mlp, results)
        _hvp_cost("transformer", _transformer, _init_transformer, results)
    if "pyhessian" in parts:
        lam_mlp = _reference_lambda() if lam_mlp is None else lam_mlp
        _pyhessian(lam_mlp, results)
        _pyhessian_equal_accuracy(lam_mlp, results)
    if "overhead" in parts:
        _step_overhead("mlp", _mlp, _init_mlp, results)
        _step_overhead("transformer", _transformer, _init_transformer, results)
    if "inloop" in parts:
        _inloop(results)
    if "scale" in parts:
        _scale(results)
    if "batch_errors" in parts:
        for name in MODELS:
            _batch_estimator_errors(name, results)
    if "batch_overhead" in parts:
        for name in MODELS:
            _batch_cap_overhead(name, results)
    if "lanczos_scale" in parts:
        _lanczos_scale(results)
    if "conv_lanczos" in parts:
        _conv_lanczos(results)
    return results


if __name__ == "__main__":
    import sys

    main(tuple(sys.argv[1:]) or PARTS)
