"""jaxlr.sharpness on real models (float64 dense Hessians), Optax preconditioners, stability."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import linen, nnx
from jax.flatten_util import ravel_pytree

from jaxlr import sharpness as sh

RNG = np.random.default_rng(0)
X = RNG.normal(size=(16, 4))
Y = RNG.integers(0, 3, size=16)


def xent(logits):
    return optax.softmax_cross_entropy_with_integer_labels(logits, jnp.asarray(Y)).mean()


def dense_spectrum(loss, params):
    flat, unravel = ravel_pytree(params)
    # one compiled program: jax.hessian run eagerly dispatches (and compiles) op by op, 10x slower
    h = jax.jit(jax.hessian(lambda f: loss(unravel(f))))(flat)
    return np.linalg.eigvalsh(np.asarray(h)), np.asarray(h)


def plain_mlp():
    k1, k2 = jax.random.split(jax.random.key(0))
    params = {
        "w1": jax.random.normal(k1, (4, 6), jnp.float64),
        "b1": jnp.zeros(6, jnp.float64),
        "w2": jax.random.normal(k2, (6, 3), jnp.float64),
    }
    loss = lambda p: xent(jnp.tanh(jnp.asarray(X) @ p["w1"] + p["b1"]) @ p["w2"])
    return loss, params


def nnx_mlp():
    class MLP(nnx.Module):
        def __init__(self, rngs):
            self.l1 = nnx.Linear(4, 6, rngs=rngs, param_dtype=jnp.float64)
            self.drop = nnx.Dropout(0.5, rngs=rngs)
            self.l2 = nnx.Linear(6, 3, rngs=rngs, param_dtype=jnp.float64)

        def __call__(self, x):
            return self.l2(self.drop(jnp.tanh(self.l1(x))))

    model = MLP(nnx.Rngs(0))
    model.eval()  # explicit mode: dropout off, so the loss is a function of the params only
    graphdef, params, rest = nnx.split(model, nnx.Param, ...)
    loss = lambda p: xent(nnx.merge(graphdef, p, rest)(jnp.asarray(X)))
    return loss, params


def linen_mlp():
    class MLP(linen.Module):
        @linen.compact
        def __call__(self, x):
            x = jnp.tanh(linen.Dense(6, param_dtype=jnp.float64)(x))
            return linen.Dense(3, param_dtype=jnp.float64)(x)

    model = MLP()
    variables = model.init(jax.random.key(1), jnp.asarray(X))
    loss = lambda p: xent(model.apply(p, jnp.asarray(X)))
    return loss, variables


@pytest.mark.parametrize("build", [nnx_mlp, linen_mlp])
def test_flax_mlp_lambda_max_vs_dense_float64(build):
    with jax.enable_x64(True):
        loss, params = build()
        exact, _ = dense_spectrum(loss, params)
        e = sh.top_eigenvalue(loss, params, key=jax.random.key(0), num_iters=exact.size + 1, tol=0)
        assert e.eigenvalue.dtype == jnp.float64
        assert float(e.eigenvalue) == pytest.approx(exact[-1], rel=1e-9)
        assert jax.tree.structure(e.eigenvector) == jax.tree.structure(params)


def test_plain_mlp_all_estimators_vs_dense_float64():
    with jax.enable_x64(True):
        loss, params = plain_mlp()
        exact, h = dense_spectrum(loss, params)
        n = exact.size
        key = jax.random.key(0)
        e = sh.top_eigenvalue(loss, params, key=key, num_iters=n + 1, tol=0.0)
        assert float(e.eigenvalue) == pytest.approx(exact[-1], rel=1e-9)
        assert float(e.residual) < 1e-7 * abs(exact[-1])
        # default budget and tolerance: certified 1e-3 within 20 products from a random start
        quick = sh.top_eigenvalue(loss, params, key=jax.random.key(3))
        assert bool(quick.converged) and int(quick.num_hvps) <= 20
        assert abs(float(quick.eigenvalue) - exact[-1]) <= 1e-3 * abs(exact[-1])
        top = sh.top_k_eigenvalues(loss, params, k=3, key=key, num_iters=n + 3, tol=0.0)
        np.testing.assert_allclose(top.eigenvalue, exact[::-1][:3], rtol=1e-8)
        tr = sh.hutchinson_trace(loss, params, key=key, num_probes=64)
        assert abs(float(tr.trace) - exact.sum()) < 4 * float(tr.std_error)
        p = np.exp(np.random.default_rng(1).normal(size=n))
        precond = ravel_pytree(params)[1](jnp.asarray(p))
        pe = sh.preconditioned_top_eigenvalue(
            loss, params, precond, key=key, num_iters=n + 1, tol=0.0
        )
        d = 1 / np.sqrt(p)
        dense_pre = np.linalg.eigvalsh(d[:, None] * h * d[None, :])[-1]
        assert float(pe.eigenvalue) == pytest.approx(dense_pre, rel=1e-9)


def _steps(tx, grads, params):
    state = tx.init(params)
    for g in grads:
        updates, state = tx.update(g, state, params)
        yield updates, state


def test_preconditioner_reproduces_each_optax_update():
    params = jnp.zeros(5)
    grads = [jnp.asarray(RNG.normal(size=5), jnp.float32) for _ in range(8)]
    lr = 0.1

    def ema(b, t):  # optax's bias-corrected first moment after t gradients
        m = sum((1 - b) * b ** (t - 1 - i) * grads[i] for i in range(t))
        return m / (1 - b**t)

    cases = {
        "adam": (optax.adam(lr), {}, lambda t: ema(0.9, t)),
        "adamw": (optax.adamw(lr, weight_decay=0.0), {}, lambda t: ema(0.9, t)),
        "radam": (optax.radam(lr), {"kind": "radam"}, lambda t: ema(0.9, t)),
        "adam_eps_root": (
            optax.adam(lr, b2=0.9, eps=1e-2, eps_root=1e-3),
            {"b2": 0.9, "eps": 1e-2, "eps_root": 1e-3},
            lambda t: ema(0.9, t),
        ),
        "rmsprop": (optax.rmsprop(lr), {}, lambda t: grads[t - 1]),
        "rmsprop_torch": (
            optax.rmsprop(lr, decay=0.8, eps=1e-3, eps_in_sqrt=False, bias_correction=True),
            {"decay": 0.8, "eps": 1e-3, "eps_in_sqrt": False},
            lambda t: grads[t - 1],
        ),
        "adagrad": (optax.adagrad(lr), {}, lambda t: grads[t - 1]),
        "injected": (
            optax.inject_hyperparams(optax.adam)(learning_rate=lr, b2=0.95, eps=1e-3),
            {},
            lambda t: ema(0.9, t),
        ),
    }
    for name, (tx, kw, direction) in cases.items():
        for t, (updates, state) in enumerate(_steps(tx, grads, params), start=1):
            p = sh.preconditioner(state, **kw)
            np.testing.assert_allclose(
                updates, -lr * direction(t) / p, rtol=2e-5, atol=1e-7, err_msg=f"{name} t={t}"
            )


def test_radam_is_unpreconditioned_before_rectification():
    tx = optax.radam(0.1)
    state = tx.init(jnp.zeros(2))
    _, state = tx.update(jnp.array([3.0, 4.0]), state)
    np.testing.assert_array_equal(sh.preconditioner(state, kind="radam"), [1.0, 1.0])


def _bisect(diverges, lo, hi, iters=30):
    """Critical curvature: largest lambda in [lo, hi] for which the run stays bounded."""
    for _ in range(iters):
        mid = 0.5 * (lo + hi)
        lo, hi = (lo, mid) if diverges(mid) else (mid, hi)
    return 0.5 * (lo + hi)


def _runner(tx, state0, steps=3000):
    """Runs ``tx`` on lambda x^2 / 2 from x = 1e-12; True once |x| exceeds 100x its start.

    Starting tiny keeps Adam's |g| far below sqrt(nu), so its preconditioner stays pinned.
    """

    @jax.jit
    def grows(lam):
        def step(carry, _):
            x, s = carry
            u, s = tx.update(lam * x, s, x)
            return (x + u, s), jnp.abs(x[0])

        _, xs = jax.lax.scan(step, (jnp.full((1,), 1e-12), state0), None, length=steps)
        return ~(jnp.max(xs) <= 1e-10)  # NaN after an overflow counts as divergence

    return lambda lam: bool(grows(jnp.float32(lam)))


def _pinned_adam(lr, b1):
    """optax.adam in steady state with a frozen preconditioner P = sqrt(nu) = 2.

    A huge step count makes both bias corrections 1 (no start-up transient) and b2 = 1 - 1e-6
    keeps nu ~ 4 while |g| stays tiny, so only Adam's EMA momentum acts on H / P.
    """
    tx = optax.adam(lr, b1=b1, b2=1.0 - 1e-6)
    adam, *rest = tx.init(jnp.zeros(1))
    adam = adam._replace(count=jnp.asarray(10**8, jnp.int32), nu=jnp.full((1,), 4.0))
    return tx, (adam, *rest)


@pytest.mark.parametrize(
    "kind, make, kw",
    [
        ("gd", lambda: optax.sgd(0.1), {}),
        ("heavy_ball", lambda: optax.sgd(0.1, momentum=0.9), {"momentum": 0.9}),
        ("nesterov", lambda: optax.sgd(0.1, momentum=0.5, nesterov=True), {"momentum": 0.5}),
        ("adam", lambda: _pinned_adam(0.1, 0.9), {"b1": 0.9}),
    ],
)
def test_stability_threshold_by_bisection_with_optax(kind, make, kw):
    made = make()
    tx, state0 = (made, made.init(jnp.zeros(1))) if hasattr(made, "update") else made
    # the sharpness the optimizer feels: lambda for SGD, lambda / P for Adam (P read by jaxlr)
    p = float(sh.preconditioner(state0)[0]) if kind == "adam" else 1.0
    threshold = float(sh.stability_threshold(0.1, kind=kind, **kw))
    found = _bisect(_runner(tx, state0), 0.0, 3 * threshold * p) / p
    assert found == pytest.approx(threshold, rel=1e-2)
    assert float(sh.stability_ratio(0.1, found, kind=kind, **kw)) == pytest.approx(1.0, rel=1e-2)
    assert float(sh.critical_learning_rate(found, kind=kind, **kw)) == pytest.approx(0.1, rel=1e-2)


def tiny_cnn():
    x = jnp.asarray(RNG.normal(size=(3, 5, 5, 1)))
    k1, k2 = jax.random.split(jax.random.key(2))
    params = {
        "conv": jax.random.normal(k1, (3, 3, 1, 2), jnp.float64) * 0.5,
        "head": jax.random.normal(k2, (2 * 5 * 5, 3), jnp.float64) * 0.2,
    }

    def loss(p):
        h = jax.lax.conv_general_dilated(
            x, p["conv"], (1, 1), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC")
        )
        logits = jnp.tanh(h).reshape(3, -1) @ p["head"]
        return optax.softmax_cross_entropy_with_integer_labels(logits, jnp.asarray(Y[:3])).mean()

    return loss, params


def test_convolution_unrolled_on_cpu_vs_dense_float64():
    from jaxlr.sharpness._hvp import flat_operator, should_unroll

    with jax.enable_x64(True):
        loss, params = tiny_cnn()
        flat, _, op = flat_operator(loss, params, matvec=None, batches=None, fn_name="t")
        mlp_loss, mlp_params = plain_mlp()
        mflat, _, mop = flat_operator(mlp_loss, mlp_params, matvec=None, batches=None, fn_name="t")
        # the default form: unrolled for a convolution on XLA:CPU (slow inside loops), not else
        assert should_unroll(op, flat, 20) == (jax.default_backend() == "cpu")
        assert not should_unroll(op, flat, 1000) and not should_unroll(mop, mflat, 20)
        exact, _ = dense_spectrum(loss, params)
        key = jax.random.key(0)
        # a budget of 18 (the loop converges in 15): the unrolled form's compile grows with it
        runs = {
            unroll: sh.top_eigenvalue(loss, params, key=key, num_iters=18, tol=1e-6, unroll=unroll)
            for unroll in (None, False)
        }
        for e in runs.values():  # the unrolled and the looped form agree with eigh
            assert float(e.eigenvalue) == pytest.approx(exact[-1], rel=1e-6)
            assert bool(e.converged)
        # the loop exits early; the unrolled form spends (and reports) its whole budget
        assert int(runs[False].num_hvps) < 18
        if jax.default_backend() == "cpu":
            assert int(runs[None].num_hvps) == 18
        # the two-pass mode against full Lanczos and the dense Hessian, on the MLP
        full = sh.top_eigenvalue(mlp_loss, mlp_params, key=key, num_iters=40, tol=1e-9)
        two = sh.top_eigenvalue(
            mlp_loss, mlp_params, key=key, num_iters=80, tol=1e-9, method="lanczos_two_pass"
        )
        mexact, _ = dense_spectrum(mlp_loss, mlp_params)
        assert float(two.eigenvalue) == pytest.approx(mexact[-1], rel=1e-8)
        assert float(two.eigenvalue) == pytest.approx(float(full.eigenvalue), rel=1e-8)
        assert bool(two.converged) and float(two.residual) < 1e-6 * abs(mexact[-1])
