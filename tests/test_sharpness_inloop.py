"""lambda_max inside a minibatch train step: batch as data, cold start, accuracy, edges, keys.

References are independent of the estimator: dense Hessians (``jax.hessian`` + NumPy
``eigvalsh`` in float64) of the loss on the same params and the same batch.
"""

from __future__ import annotations

import flax.serialization
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from jax.flatten_util import ravel_pytree

import jaxlr.transforms as T
from jaxlr import sharpness as sh

RNG = np.random.default_rng(0)
NB, B = 10, 8  # ten minibatches of eight examples
XS = jnp.asarray(RNG.normal(size=(NB, B, 3)), jnp.float32)
YS = jnp.asarray(RNG.normal(size=(NB, B, 2)), jnp.float32)
P0 = {
    "w1": jnp.asarray(RNG.normal(size=(3, 4)), jnp.float32),
    "b1": jnp.zeros(4, jnp.float32),
    "w2": jnp.asarray(RNG.normal(size=(4, 2)) * 0.5, jnp.float32),
}
TRACES = {"loss": 0, "step": 0}
FAST = {"xla_backend_optimization_level": 0}  # compile-bound tests: skip LLVM's optimizations


def jit(fun):
    """jax.jit without LLVM's optimizations: these tests compile far longer than they run."""
    return jax.jit(fun, compiler_options=FAST)


def loss_fn(p, batch):
    TRACES["loss"] += 1  # Python side effect: runs once per trace, never per call
    x, y = batch
    return 0.5 * jnp.mean(jnp.sum((jnp.tanh(x @ p["w1"] + p["b1"]) @ p["w2"] - y) ** 2, -1))


@jit
def _hessian(p, batch):
    flat, unravel = ravel_pytree(p)
    return jax.hessian(lambda f: loss_fn(unravel(f), batch))(flat)


def dense(p, batch, precond=None):
    """lambda_max of the Hessian (or of P^-1/2 H P^-1/2) from the dense float64 matrix."""
    h = np.asarray(_hessian(p, batch), np.float64)
    if precond is not None:
        d = 1.0 / np.sqrt(np.asarray(ravel_pytree(precond)[0], np.float64))
        h = d[:, None] * h * d
    return np.linalg.eigvalsh(0.5 * (h + h.T))[-1]


def test_top_eigenvalue_batch_is_data_one_trace():
    """One compiled estimator serves ten batches; each estimate equals the dense lambda_max."""
    TRACES["loss"] = 0
    key = jax.random.key(0)
    got = [
        float(
            sh.top_eigenvalue(
                loss_fn, P0, batch=(XS[i], YS[i]), key=key, num_iters=30, tol=1e-4
            ).eigenvalue
        )
        for i in range(NB)
    ]
    traces = TRACES["loss"]
    ref = [dense(P0, (XS[i], YS[i])) for i in range(NB)]
    np.testing.assert_allclose(got, ref, rtol=1e-3)
    assert traces <= 2  # grad inside linearize traces loss_fn once or twice, in ONE compile
    assert len(set(np.round(ref, 3))) == NB  # the batches really differ


def _capped_loop(tx, steps, lr_scale=1.0):
    """A jitted minibatch SGD loop (a new batch each step); per-step params, LR and state."""
    TRACES["step"] = 0

    @jit
    def step(p, s, batch):
        TRACES["step"] += 1
        g = jax.grad(loss_fn)(p, batch)
        u, s = tx.update(g, s, p, batch=batch)
        return optax.apply_updates(p, u), s

    p, s, rows = P0, tx.init(P0), []
    for i in range(steps):
        batch = (XS[i % NB] * lr_scale, YS[i % NB])
        p_new, s = step(p, s, batch)
        rows.append((p, batch, s))
        p = p_new
    return rows


def test_cap_minibatch_loop_cold_start_and_every_step_under_the_edge():
    """Defaults (every=1, Lanczos to tol=1e-3, cold start of 30 products) on a new batch each
    step: one trace for 10 steps; the LR's lambda matches the dense lambda of the step's own
    params and batch (step 0 included), and eta * lambda_true stays under 2 * fraction."""
    tx = T.sharpness_cap(optax.sgd(1.0), quantity="lambda_max", schedule=2.0, loss_fn=loss_fn)
    rows = _capped_loop(tx, NB)
    assert TRACES["step"] == 1
    for i, (p, batch, s) in enumerate(rows):
        lam = dense(p, batch)
        assert bool(s.converged), i
        # two eigenvalues 1.1% apart at step 9: Lanczos may stop on the lower one (error < gap)
        np.testing.assert_allclose(float(s.sharpness), lam, rtol=2e-2, err_msg=f"step {i}")
        assert float(s.lr) * lam <= 2 * 0.9 * 1.02 < 2, (i, float(s.lr), lam)
        np.testing.assert_allclose(float(s.rho), float(s.lr) * float(s.sharpness) / 2, rtol=1e-5)
    assert int(rows[0][2].curvature.num_hvps) > int(rows[1][2].curvature.num_hvps)  # warm start


def test_batch_sharpness_cap_minibatch_loop_every_step_under_the_edge():
    """The default quantity on a new batch each step: the estimate the LR used is at least the
    step's own batch sharpness g'H_B g / g'g (dense float64 Hessian of the step's own batch at
    the step's own params), so eta * s_t <= 2 * fraction on every step; one trace."""
    tx = T.sharpness_cap(optax.sgd(1.0), schedule=2.0, loss_fn=loss_fn, window=4)
    rows = _capped_loop(tx, NB)
    assert TRACES["step"] == 1
    own = []
    for i, (p, batch, s) in enumerate(rows):
        h = np.asarray(_hessian(p, batch), np.float64)
        g = np.asarray(ravel_pytree(jax.grad(loss_fn)(p, batch))[0], np.float64)
        own.append(g @ h @ g / (g @ g))
        np.testing.assert_allclose(float(s.eigenvalue), own[-1], rtol=1e-4, err_msg=f"step {i}")
        q = np.quantile(own[-4:], 0.9)
        np.testing.assert_allclose(float(s.sharpness), max(q, own[-1]), rtol=1e-4)
        assert float(s.lr) * own[-1] <= 2 * 0.9 * (1 + 1e-5), (i, float(s.lr), own[-1])
    assert min(float(r[2].lr) for r in rows) < 2.0  # the cap binds


def test_cap_adam_preconditioned_minibatch_loop():
    """kind="adam": lambda_max(P^-1/2 H P^-1/2) with P from this step's Adam state, per batch."""
    tx = T.sharpness_cap(
        optax.adam(1.0), quantity="lambda_max", schedule=1.0, kind="adam", loss_fn=loss_fn
    )
    c = (2 + 2 * 0.9) / (1 - 0.9)
    for i, (p, batch, s) in enumerate(_capped_loop(tx, 4)):
        lam = dense(p, batch, sh.preconditioner(s.inner_state))
        np.testing.assert_allclose(float(s.sharpness), lam, rtol=2e-2, err_msg=f"step {i}")
        assert float(s.lr) * lam <= 0.9 * c * 1.01


def test_not_converged_is_conservative_and_says_so():
    """A budget too small to converge: the state says so and the LR uses the random-start
    upper estimate (Kuczynski-Wozniakowski, 99%), above the dense lambda_max: the safe side."""
    tx = T.sharpness_cap(
        optax.sgd(1.0),
        quantity="lambda_max",
        schedule=2.0,
        loss_fn=loss_fn,
        num_iters=4,
        init_iters=4,
        tol=1e-6,
    )
    for p, batch, s in _capped_loop(tx, 3):
        assert not bool(s.converged)
        theta, k = float(s.curvature.eigenvalue), int(s.curvature.num_hvps) - 1
        eps = min(0.9, (np.log(1.648 * np.sqrt(26) / 0.01) / (2 * k - 1)) ** 2)
        want = max(theta + float(s.curvature.residual), theta / (1 - eps))
        np.testing.assert_allclose(float(s.sharpness), want, rtol=1e-5)
        assert theta <= dense(p, batch) * (1 + 1e-4) <= float(s.sharpness)


def test_flat_and_concave_curvature_give_finite_lr_under_jit_and_vmap():
    """lambda_max = 0 (linear loss) and < 0 (concave): no limit. The cap gives its documented
    maximum; the warmup, with no positive sample to start from, starts at init_ratio x
    peak_value and grows by ``growth`` a step towards peak_value (defaults 0.1, 1.05, 1)."""

    def loss(w, a):
        return 0.5 * a * jnp.sum(w**2) + jnp.sum(w)

    def run(a):
        out = []
        for tx in (T.sharpness_cap(loss_fn=loss), T.sharpness_warmup(loss_fn=loss)):

            def step(carry, _, tx=tx):
                w, s = carry
                u, s = tx.update(-jax.grad(loss)(w, a), s, w, batch=a)
                return (w + u, s), s.lr

            (w, _), lrs = jax.lax.scan(step, (jnp.ones(3), tx.init(jnp.ones(3))), None, length=3)
            out.append((lrs, w))
        return out

    (cap_lr, cap_w), (warm_lr, warm_w) = jit(jax.vmap(run))(jnp.array([0.0, -1.0]))
    assert np.isfinite(np.asarray(cap_w)).all() and np.isfinite(np.asarray(warm_w)).all()
    np.testing.assert_array_equal(cap_lr, np.ones((2, 3)))  # max_value default, no base LR
    want = 0.1 * 1.05 ** np.arange(3)  # init_ratio x peak_value x growth^t
    np.testing.assert_allclose(warm_lr, np.stack([want, want]), rtol=1e-6)


def test_tracker_more_iterations_than_dimension():
    """diag(3, 1, -5): with more products than dimensions, never above lambda_max = 3, and no
    spurious Ritz value 0 from an exhausted direction when the spectrum is negative."""
    loss = lambda x: 0.5 * jnp.sum(jnp.array([3.0, 1.0, -5.0]) * x**2)  # noqa: E731
    neg = lambda x: -0.5 * jnp.sum(jnp.array([1.0, 2.0, 3.0]) * x**2)  # noqa: E731
    update = {  # compile-bound: one FAST compile per loss
        f: jit(lambda s, f=f: sh.tracker_update(f, jnp.ones(3), s, num_iters=10))
        for f in (loss, neg)
    }
    state = sh.tracker_init(jnp.ones(3), key=jax.random.key(1))
    for _ in range(3):
        eig, state = update[loss](state)
        assert float(eig.eigenvalue) <= 3.0 + 1e-5
    np.testing.assert_allclose(float(eig.eigenvalue), 3.0, rtol=1e-5)
    eig, _ = update[neg](state)
    np.testing.assert_allclose(float(eig.eigenvalue), -1.0, rtol=1e-5)


@pytest.mark.parametrize("bad", ["abc", None, 0.0, True, jnp.zeros(3)])
def test_bad_keys_rejected_at_construction(bad):
    for make, name in (
        (lambda: T.sharpness_cap(key=bad), "sharpness_cap"),
        (lambda: T.sharpness_warmup(key=bad), "sharpness_warmup"),
        (lambda: sh.tracker_init(jnp.ones(3), key=bad), "tracker_init"),
        (lambda: sh.top_eigenvalue(jnp.sum, jnp.ones(3), key=bad), "top_eigenvalue"),
    ):
        with pytest.raises(ValueError, match=f"{name}: key must be"):
            make()


def test_typed_key_state_serializes_and_negative_lrs_are_rejected():
    tx = T.sharpness_cap(
        quantity="lambda_max", loss_fn=lambda w: jnp.sum(w**2), key=jax.random.key(3)
    )
    state = tx.init(jnp.ones(2))
    assert state.curvature.key.dtype == jnp.uint32
    back = flax.serialization.from_bytes(state, flax.serialization.to_bytes(state))
    jax.tree.map(np.testing.assert_array_equal, back, state)
    for make, msg in (
        (lambda: T.sharpness_cap(schedule=-1.0), "sharpness_cap: schedule must be >= 0"),
        (lambda: T.sharpness_cap(max_value=0.0), "sharpness_cap: max_value must be > 0"),
        (lambda: T.sharpness_warmup(peak_value=-1.0), "sharpness_warmup: peak_value must be > 0"),
        (lambda: T.sharpness_warmup(peak_value=jnp.inf), "sharpness_warmup: peak_value must be"),
        (lambda: T.sharpness_warmup(init_value=-1.0), "sharpness_warmup: init_value must be > 0"),
    ):
        with pytest.raises(ValueError, match=msg):
            make()


def test_bfloat16_nnx_model_matches_float32_estimate():
    """bf16 params: products in bf16, Krylov basis and reductions in float32; the estimate is
    within bf16 product noise of the float32 model's (same weights); the tracker and the cap
    run (top_k_eigenvalues and spectral_density share the same flat operator)."""
    from flax import nnx

    class MLP(nnx.Module):
        def __init__(self, dtype):
            rngs = nnx.Rngs(0)
            self.l1 = nnx.Linear(3, 16, dtype=dtype, param_dtype=dtype, rngs=rngs)
            self.l2 = nnx.Linear(16, 2, dtype=dtype, param_dtype=dtype, rngs=rngs)

        def __call__(self, x):
            return self.l2(jnp.tanh(self.l1(x)))

    def mse(model, batch):
        x, y = batch
        return 0.5 * jnp.mean((model(x.astype(model.l1.dtype)).astype(jnp.float32) - y) ** 2)

    batch, key = (XS[0], YS[0]), jax.random.key(0)
    model16 = MLP(jnp.bfloat16)
    weights = nnx.state(model16, nnx.Param)  # bf16 weights; the reference runs them in f32
    out = {}
    for dtype in (jnp.float32, jnp.bfloat16):
        model = nnx.eval_shape(lambda dtype=dtype: MLP(dtype))  # no init: weights come next
        nnx.update(model, jax.tree.map(lambda w, dtype=dtype: w.astype(dtype), weights))
        loss, params = sh.nnx_loss(model, mse), nnx.state(model, nnx.Param)
        e = jit(  # compile-bound: the estimator compiled without LLVM's optimizations
            lambda p, loss=loss: sh.top_eigenvalue(
                loss, p, batch=batch, key=key, num_iters=30, tol=1e-3
            )
        )(params)
        assert e.eigenvalue.dtype == jnp.float32
        assert jax.tree.leaves(e.eigenvector)[0].dtype == dtype
        out[dtype] = float(e.eigenvalue)
    np.testing.assert_allclose(out[jnp.bfloat16], out[jnp.float32], rtol=5e-2)
    tx = T.sharpness_cap(  # bf16 products cannot reach the default tol=1e-3
        optax.sgd(1.0),
        quantity="lambda_max",
        schedule=1.0,
        loss_fn=loss,
        num_iters=10,
        init_iters=20,
        tol=1e-2,
    )

    @jit  # the tracker, the gradient and the capped update in one compile
    def tracked_and_capped(p):
        eig, _ = sh.tracker_update(loss, p, sh.tracker_init(p, key=key), batch=batch)
        u, s = tx.update(jax.grad(loss)(p, batch), tx.init(p), p, batch=batch)
        return eig, u, s

    eig, u, s = tracked_and_capped(params)
    assert jax.tree.leaves(u)[0].dtype == jnp.bfloat16
    assert np.isfinite([float(eig.eigenvalue), float(s.lr)]).all()
    np.testing.assert_allclose(float(s.sharpness), out[jnp.float32], rtol=5e-2)
