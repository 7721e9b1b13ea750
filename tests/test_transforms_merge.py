"""jaxlr.transforms checkpoint merging (WSM): weights, wrappers, eval_params, by hand."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import jaxlr
from jaxlr import transforms as T


def test_decay_merge_round_trip():
    rng = np.random.default_rng(0)
    for k in (1, 2, 5, 17):
        w = np.sort(rng.uniform(0, 1, k))[::-1]
        c = np.asarray(T.decay_to_merge_weights(w))
        assert c.shape == (k + 1,) and (c >= -1e-7).all()
        np.testing.assert_allclose(c.sum(), 1.0, rtol=1e-6)
        np.testing.assert_allclose(c, np.r_[1 - w[0], w[:-1] - w[1:], w[-1]], atol=1e-7)
        np.testing.assert_allclose(T.merge_to_decay_weights(c), w, rtol=1e-5, atol=1e-7)


def test_linear_decay_merge_equals_hand_weighted_average():
    k, every = 4, 3
    lin = jaxlr.schedules.linear(init_value=1.0, end_value=0.0, total_steps=k * every)
    w = np.asarray(T.decay_weights(lin, decay_steps=k * every, num_checkpoints=k))
    np.testing.assert_allclose(w, [0.875, 0.625, 0.375, 0.125])
    c = T.decay_to_merge_weights(w)
    tx = T.window_merging(optax.sgd(0.1), weights=c, every=every)
    grads = jax.random.normal(jax.random.key(0), (20, 3))
    p = {"a": jnp.zeros(3)}
    s = tx.init(p)
    snaps = []
    for i, g in enumerate(grads, start=1):
        u, s = tx.update({"a": g}, s, p)
        p = optax.apply_updates(p, u)
        if i % every == 0:
            snaps.append(np.asarray(p["a"], np.float64))
    hand = sum(cj * th for cj, th in zip(np.asarray(c, np.float64), snaps[-(k + 1) :], strict=True))
    np.testing.assert_allclose(T.eval_params(s, p)["a"], hand, rtol=1e-5, atol=1e-7)
    assert int(s.count) == k + 1


def test_merge_equals_decayed_lr_run_when_gradients_do_not_depend_on_params():
    # WSM's identity: with gradients independent of the params, merging constant-LR checkpoints
    # with c = decay_to_merge_weights(w) equals training block i at LR eta * w_i.
    k, every, eta = 5, 4, 0.1
    w = np.array([0.9, 0.7, 0.4, 0.2, 0.05])
    grads = np.random.default_rng(1).normal(size=(k * every, 2))
    theta = np.zeros(2)
    snaps = [theta.copy()]
    for i, g in enumerate(grads, start=1):
        theta = theta - eta * g
        if i % every == 0:
            snaps.append(theta.copy())
    merged = T.merge_params(jnp.asarray(np.stack(snaps)), T.decay_to_merge_weights(w))
    decayed = -eta * sum(w[i // every] * g for i, g in enumerate(grads))
    np.testing.assert_allclose(merged, decayed, rtol=1e-5, atol=1e-6)


def test_window_with_few_snapshots_renormalizes():
    tx = T.window_merging(optax.sgd(1.0), weights=[0.1, 0.2, 0.7])
    p = jnp.zeros(1)
    s = tx.init(p)
    np.testing.assert_allclose(T.eval_params(s, p), [0.0])  # no snapshot yet: params
    for g in (-1.0, -2.0):
        u, s = tx.update(jnp.full(1, g), s, p)
        p = optax.apply_updates(p, u)
    # snapshots 1 and 3 take the two newest weights, renormalized: (0.2 * 1 + 0.7 * 3) / 0.9
    np.testing.assert_allclose(T.eval_params(s, p), [(0.2 + 2.1) / 0.9], rtol=1e-6)


@pytest.mark.parametrize("decay", [1.0, 0.8])
def test_average_merging_matches_numpy(decay):
    tx = T.average_merging(optax.sgd(0.5), decay=decay, every=2)
    grads = np.random.default_rng(2).normal(size=(10, 3))
    p = jnp.zeros(3)
    s = tx.init(p)
    ref, n = np.zeros(3), 0
    for i, g in enumerate(grads, start=1):
        u, s = tx.update(jnp.asarray(g, jnp.float32), s, p)
        p = optax.apply_updates(p, u)
        if i % 2 == 0:
            n += 1
            ref = ref + max(1 - decay, 1 / n) * (np.asarray(p, np.float64) - ref)
    np.testing.assert_allclose(T.eval_params(s, p), ref, rtol=1e-5)


def test_evaluate_merges_is_a_loop_over_merge_params():
    snaps = {"w": jax.random.normal(jax.random.key(0), (4, 3)), "b": jnp.arange(4.0)}
    recipes = jnp.asarray([[0, 0, 0, 1.0], [0.25] * 4, T.decay_to_merge_weights([0.5, 0.3, 0.1])])
    f = lambda p: jnp.sum(p["w"] ** 2) + p["b"]
    got = T.evaluate_merges(f, snaps, recipes)
    want = [f(T.merge_params(snaps, r)) for r in recipes]
    np.testing.assert_allclose(got, want, rtol=1e-6)


def test_eval_params_finds_state_in_chain_and_schedule_free():
    tx = optax.chain(optax.clip(1.0), T.average_merging(optax.sgd(1.0)))
    p = jnp.zeros(2)
    s = tx.init(p)
    u, s = tx.update(jnp.ones(2), s, p)
    p = optax.apply_updates(p, u)
    np.testing.assert_allclose(T.eval_params(s, p), p)
    sf = optax.contrib.schedule_free_adamw(0.1)
    s = sf.init(p)
    u, s = sf.update(jnp.ones(2), s, p)
    np.testing.assert_allclose(T.eval_params(s, p), optax.contrib.schedule_free_eval_params(s, p))
    with pytest.raises(ValueError, match="eval_params: opt_state holds no"):
        T.eval_params(optax.sgd(1.0).init(p), p)


def test_window_merging_under_jit_with_nnx_optimizer():
    nnx = pytest.importorskip("flax.nnx")
    model = nnx.Linear(2, 1, rngs=nnx.Rngs(0))
    opt = nnx.Optimizer(model, T.window_merging(optax.sgd(0.1), weights=[0.5, 0.5]), wrt=nnx.Param)

    @nnx.jit
    def step(model, opt):
        loss, g = nnx.value_and_grad(lambda m: jnp.sum(m(jnp.ones((1, 2))) ** 2))(model)
        opt.update(model, g)
        return loss

    for _ in range(3):
        step(model, opt)
    # nnx keeps arrays in Variables: compare the pure arrays with the hand-computed merge
    state = nnx.pure(opt.opt_state)
    snaps = state.snapshots
    assert int(state.count) == 2
    kernel = nnx.pure(nnx.state(model, nnx.Param))["kernel"]
    np.testing.assert_allclose(snaps["kernel"][1], kernel)
    merged = T.merge_params(snaps, state.weights)
    np.testing.assert_allclose(merged["kernel"], 0.5 * (snaps["kernel"][0] + kernel), rtol=1e-6)


@pytest.mark.parametrize(
    "fn, args, match",
    [
        (T.decay_to_merge_weights, ([0.2, 0.5],), "decay must be non-increasing"),
        (T.decay_to_merge_weights, ([1.5],), r"decay must be in \[0, 1\]"),
        (T.merge_to_decay_weights, ([0.5, 0.6],), "weights must sum to 1"),
        (
            lambda w: T.window_merging(optax.sgd(1.0), weights=w),
            ([0.5, 0.6],),
            "window_merging: weights must sum to 1",
        ),
        (
            lambda d: T.average_merging(optax.sgd(1.0), decay=d),
            (1.5,),
            r"average_merging: decay must be in \[0, 1\]",
        ),
    ],
)
def test_merge_bad_input(fn, args, match):
    with pytest.raises(ValueError, match=match) as err:
        fn(*args)
    assert "got" in str(err.value), str(err.value)  # the offending value is shown


def test_wrapped_optimizer_is_named_optimizer():
    tx = T.window_merging(optimizer=optax.sgd(1.0), weights=[1.0])
    assert isinstance(tx, optax.GradientTransformationExtraArgs)
    for fn, kw in ((T.window_merging, {"weights": [1.0]}), (T.average_merging, {})):
        with pytest.raises(TypeError, match=f"{fn.__name__}: argument 'inner' is now 'optimizer'"):
            fn(inner=optax.sgd(1.0), **kw)
