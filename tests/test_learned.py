"""jaxlr.transforms.learned_lr (the learned LR controller), its features and bad input; the
meta-training in jaxlr.auto (OpenES, tasks, checkpoints, saved policies)."""

from __future__ import annotations

import json
import math
import re

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

import jaxlr
from jaxlr import transforms as T


class Const:
    """A policy returning ``params["o"]`` whatever the features (a known output)."""

    def __init__(self, features):
        self.features = tuple(features)

    def init_carry(self):
        return jnp.zeros(0)

    def __call__(self, params, x, carry):
        return params["o"], carry


def _run(tx, grads, values, params=None, **extra_per_step):
    """Eager loop of ``tx.update``; returns the states after each update."""
    state = tx.init(params if params is not None else grads[0])
    update = jax.jit(tx.update)
    states = []
    for i, (g, v) in enumerate(zip(grads, values, strict=True)):
        extra = {k: vals[i] for k, vals in extra_per_step.items()}
        _, state = update(g, state, params, value=jnp.asarray(v), **extra)
        states.append(state)
    return states


def _tx(features, *, o=0.0, **kw):
    kw = {"init_value": 0.1, "min_value": 1e-3, "max_value": 1.0, "every": 2, **kw}
    return T.learned_lr(Const(features), {"o": jnp.asarray(o)}, **kw)


# -- features: each on a case with a known value ---------------------------------------------
def test_loss_change_is_the_change_of_log_smoothed_loss():
    tx = _tx(("loss_change",), decay=0.0)
    g = [jnp.ones(2)] * 5
    states = _run(tx, g, [1.0, 3.0, 2.0, 5.0, 4.0])
    # decision at t=2: log(L_2 / L_0); at t=4: log(L_4 / L_2)
    assert states[2].features[0] == pytest.approx(math.log(2.0), abs=1e-6)
    assert states[4].features[0] == pytest.approx(math.log(2.0), abs=1e-6)
    # a constant loss under a smoothing EMA: no change
    states = _run(_tx(("loss_change",), decay=0.9), g, [0.7] * 5)
    assert abs(float(states[4].features[0])) < 1e-6


def test_val_gap_is_log_val_over_train():
    tx = _tx(("val_gap",), decay=0.5)
    states = _run(tx, [jnp.ones(2)] * 3, [0.5] * 3, val_loss=[1.0] * 3)
    assert states[2].features[0] == pytest.approx(math.log(2.0), abs=1e-6)


def test_grad_norm_is_relative_to_the_running_mean_of_earlier_norms():
    tx = _tx(("grad_norm",), decay=0.5)
    g = [jnp.array([1.0, 0.0]), jnp.array([0.0, 1.0]), jnp.array([math.e, 0.0])]
    states = _run(tx, g, [1.0] * 3)
    assert states[2].features[0] == pytest.approx(1.0, abs=1e-6)  # log(e / 1)


def test_update_ratio_progress_and_log_lr():
    w = jnp.ones(4)
    tx = _tx(("update_ratio", "progress", "log_lr"), o=1.0, every=5, total_steps=20)
    states = _run(tx, [w] * 11, [1.0] * 11, params=w)
    # t=5: lr 0.1, |d| = |w| = 2; progress 5/20; log_lr 0 (before the decision)
    np.testing.assert_allclose(states[5].features, [math.log(0.1), 0.25, 0.0], atol=1e-6)
    # t=10: the LR doubled at t=5
    np.testing.assert_allclose(states[10].features, [math.log(0.2), 0.5, math.log(2.0)], atol=1e-6)


def test_stability_is_the_stability_ratio_of_the_given_sharpness():
    tx = _tx(("stability",), kind="heavy_ball", momentum=0.5)
    states = _run(tx, [jnp.ones(2)] * 3, [1.0] * 3, sharpness=[10.0] * 3)
    # eta * lambda / (2 + 2 beta) = 0.1 * 10 / 3
    assert states[2].features[0] == pytest.approx(1.0 / 3.0, rel=1e-6)
    est = jaxlr.sharpness.top_eigenvalue(
        lambda w: 0.5 * (10.0 * w[0] ** 2 + w[1] ** 2), jnp.ones(2), key=jax.random.key(0)
    )
    states = _run(_tx(("stability",)), [jnp.ones(2)] * 3, [1.0] * 3, sharpness=[est] * 3)
    assert states[2].features[0] == pytest.approx(0.5, rel=1e-4)  # an estimate NamedTuple


# -- the decision rule: bounded factor, hard bounds ----------------------------------------------
def test_lr_moves_by_at_most_max_factor_and_stays_within_bounds():
    for o, expected in ((5.0, [0.1, 0.1, 0.3, 0.3, 0.5, 0.5]), (-0.5, None)):
        tx = _tx(("progress",), o=o, max_factor=3.0, max_value=0.5, total_steps=6)
        lrs = [float(s.lr) for s in _run(tx, [jnp.ones(1)] * 6, [1.0] * 6)]
        if expected is None:  # half the largest log step: / sqrt(3) at t = 2 and 4
            expected = [0.1, 0.1] + [0.1 / 3**0.5] * 2 + [0.1 / 3.0] * 2
        np.testing.assert_allclose(lrs, expected, rtol=1e-5)


def test_non_finite_loss_and_policy_output_are_skipped():
    tx = _tx(("loss_change",), decay=0.0)
    states = _run(tx, [jnp.ones(1)] * 3, [1.0, jnp.nan, 2.0])
    assert int(states[-1].num_skipped) == 1
    assert states[2].features[0] == pytest.approx(math.log(2.0), abs=1e-6)
    states = _run(_tx(("progress",), o=jnp.nan, total_steps=4), [jnp.ones(1)] * 3, [1.0] * 3)
    assert float(states[-1].lr) == pytest.approx(0.1) and int(states[-1].num_skipped) == 1


# -- population, chaining, NNX, export ----------------------------------------------------------
POLICY = T.mlp_policy(("loss_change", "grad_norm", "progress", "log_lr"), hidden=4)


def _quadratic_run(params, steps=12):
    tx = optax.chain(
        optax.sgd(1.0, momentum=0.5),
        T.learned_lr(
            POLICY,
            params,
            init_value=0.05,
            min_value=1e-3,
            max_value=1.0,
            every=3,
            total_steps=steps,
        ),
    )
    scale = jnp.array([1.0, 4.0, 9.0])
    loss = lambda w: 0.5 * jnp.sum(scale * w**2)

    def body(carry, _):
        w, s = carry
        v, g = jax.value_and_grad(loss)(w)
        u, s = tx.update(g, s, w, value=v)
        return (optax.apply_updates(w, u), s), T.current_lr(s, optimizer_lr=1.0)

    w0 = jnp.ones(3)
    (w, _), lrs = jax.lax.scan(body, (w0, tx.init(w0)), None, length=steps)
    return loss(w), lrs


def _members(k=3):
    out = []
    for i in range(k):
        p = POLICY.init(jax.random.key(i))
        p["v"] = jax.random.normal(jax.random.key(10 + i), (4,))
        out.append(p)
    return out


def test_stacked_policies_vmap_equals_loop():
    members = _members()
    stacked = jax.tree.map(lambda *x: jnp.stack(x), *members)
    losses, lrs = jax.jit(jax.vmap(_quadratic_run))(stacked)
    for i, p in enumerate(members):
        loss_i, lrs_i = jax.jit(_quadratic_run)(p)
        np.testing.assert_allclose(lrs[i], lrs_i, rtol=1e-5)
        np.testing.assert_allclose(losses[i], loss_i, rtol=1e-5)
    assert len({round(float(x), 6) for x in lrs[:, -1]}) > 1  # the members differ


def test_exported_schedule_retrains_to_the_same_result():
    p = _members(1)[0]
    loss, lrs = jax.jit(_quadratic_run)(p)
    s = T.applied_schedule(lrs)
    tx = optax.chain(optax.sgd(1.0, momentum=0.5), T.scale_by_schedule(s))
    scale = jnp.array([1.0, 4.0, 9.0])
    f = lambda w: 0.5 * jnp.sum(scale * w**2)
    w = jnp.ones(3)
    state = tx.init(w)
    for _ in range(12):
        u, state = tx.update(jax.grad(f)(w), state, w)
        w = optax.apply_updates(w, u)
    np.testing.assert_allclose(f(w), loss, rtol=1e-5)
    np.testing.assert_allclose([s(t) for t in range(12)], lrs, rtol=1e-6)


def test_sharpness_cap_stays_a_hard_limit_in_a_chain():
    lam = 10.0
    loss = lambda w: 0.5 * lam * jnp.sum(w**2)
    up = T.learned_lr(
        Const(("log_lr",)),
        {"o": jnp.asarray(1.0)},
        init_value=0.25,
        min_value=0.01,
        max_value=1.0,
        every=1,
    )
    tx = optax.chain(optax.sgd(1.0), up, T.sharpness_cap(schedule=1.0, loss_fn=loss))
    w = jnp.ones(2)
    state = tx.init(w)
    cap = 0.9 * 2.0 / lam

    @jax.jit
    def step(w, state):
        v, g = jax.value_and_grad(loss)(w)
        u, state = tx.update(g, state, w, value=v)
        return optax.apply_updates(w, u), state

    lrs = []
    for _ in range(5):
        w, state = step(w, state)
        lrs.append(float(T.current_lr(state, optimizer_lr=1.0)))
    assert max(lrs) <= cap * (1 + 1e-5)
    np.testing.assert_allclose(lrs, [0.25 * cap, 0.5 * cap, cap, cap, cap], rtol=1e-4)


def test_nnx_optimizer_update_with_value():
    x = jnp.linspace(-1, 1, 12).reshape(4, 3)
    y = jnp.array([0.5, -1.0, 2.0, 0.0])
    model = nnx.Linear(3, 1, rngs=nnx.Rngs(0))
    loss_of = lambda m: jnp.mean((m(x)[:, 0] - y) ** 2)
    tx = optax.chain(optax.sgd(1.0), _tx(("loss_change", "log_lr"), o=-1.0))
    opt = nnx.Optimizer(model, tx, wrt=nnx.Param)
    p = jax.tree.map(jnp.asarray, nnx.to_pure_dict(nnx.state(model, nnx.Param)))
    s = tx.init(p)
    graphdef = nnx.graphdef(model)
    template = nnx.state(model, nnx.Param)

    def pure(q):
        st = jax.tree.map(lambda v: v, template)
        nnx.replace_by_pure_dict(st, q)
        return loss_of(nnx.merge(graphdef, st))

    for _ in range(5):
        loss, grads = nnx.value_and_grad(loss_of)(model)
        opt.update(model, grads, value=loss)
        lv, g = jax.value_and_grad(pure)(p)
        u, s = tx.update(g, s, p, value=lv)
        p = optax.apply_updates(p, u)
    got = nnx.to_pure_dict(nnx.state(model, nnx.Param))
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5), got, p)
    assert float(T.current_lr(s, optimizer_lr=1.0)) == pytest.approx(0.025)  # /2 at t=2, 4


def test_wrapping_an_optimizer_sees_raw_gradients():
    tx = _tx(("grad_norm",), decay=0.5, optimizer=optax.adam(1.0))
    g = [jnp.array([1.0, 0.0]), jnp.array([1.0, 0.0]), jnp.array([4.0, 0.0])]
    states = _run(tx, g, [1.0] * 3, params=jnp.zeros(2))
    assert states[2].features[0] == pytest.approx(math.log(4.0), abs=1e-6)
    assert float(T.current_lr(states[-1], optimizer_lr=1.0)) == pytest.approx(0.1)


# -- bad input -----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "kw, match",
    [
        ({"min_value": 0.5, "max_value": 0.5}, "min_value must be < max_value"),
        ({"min_value": 0.0}, "min_value must be > 0"),
        ({"every": 0}, "every must be an integer >= 1"),
        ({"every": 2.5}, "every must be an integer"),
        ({"init_value": 2.0}, "init_value must be <= max_value"),
        ({"max_factor": 0.5}, "max_factor must be >= 1"),
        ({"decay": 1.0}, "decay must be < 1"),
    ],
)
def test_bad_arguments(kw, match):
    with pytest.raises(ValueError, match=f"learned_lr: {match}"):
        _tx(("log_lr",), **kw)


def test_bad_policies_and_missing_feature_inputs():
    with pytest.raises(ValueError, match="learned_lr: the policy must return a scalar"):
        T.learned_lr(
            Const(("log_lr",)), {"o": jnp.zeros(2)}, init_value=0.1, min_value=0.01, max_value=1.0
        )
    wide = T.mlp_policy(("log_lr", "progress", "grad_norm"))
    with pytest.raises(ValueError, match="cannot be applied to params with 1 features"):
        T.learned_lr(
            T.mlp_policy(("log_lr",)),
            wide.init(jax.random.key(0)),
            init_value=0.1,
            min_value=0.01,
            max_value=1.0,
        )
    with pytest.raises(ValueError, match="features must be names from"):
        T.mlp_policy(("log_lr", "sharpness"))
    with pytest.raises(ValueError, match="progress feature needs total_steps"):
        _tx(("progress",))
    tx = _tx(("stability",))
    state = tx.init(jnp.ones(2))
    with pytest.raises(ValueError, match="update needs the keyword argument sharpness="):
        tx.update(jnp.ones(2), state, value=1.0)
    tx = _tx(("val_gap",))
    with pytest.raises(ValueError, match="val_loss="):
        tx.update(jnp.ones(2), tx.init(jnp.ones(2)), value=1.0)
    with pytest.raises(ValueError, match="value="):
        tx.update(jnp.ones(2), tx.init(jnp.ones(2)), val_loss=1.0)
    with pytest.raises(ValueError, match="applied_schedule: lrs must be a non-empty"):
        T.applied_schedule([])


# -- meta-training (jaxlr.auto) -----------------------------------------------------------------
SCALES = np.array([1.0, 4.0])


def _quad_task(total_steps=20, max_value=1.0, name="quadratic"):
    f = lambda w, batch=None: 0.5 * jnp.sum(jnp.asarray(SCALES, jnp.float32) * w**2) + 0.1
    return jaxlr.auto.Task(
        name,
        init_fn=lambda k: jnp.ones(2),
        loss_fn=f,
        batch_fn=lambda k, t: None,
        val_fn=f,
        optimizer=optax.sgd(1.0),
        total_steps=total_steps,
        init_value=0.05,
        min_value=0.005,
        max_value=max_value,
    )


def _closed_form_val(lr, steps):
    """Gradient descent on 0.5 * sum(s w^2) + 0.1 from w = 1: w_T = (1 - lr s)^T."""
    return 0.5 * np.sum(SCALES * (1.0 - lr * SCALES) ** (2 * steps)) + 0.1


META_POLICY = T.mlp_policy(("progress", "log_lr"), hidden=4)


@pytest.fixture(scope="module")
def meta_run(tmp_path_factory):
    d = tmp_path_factory.mktemp("meta")
    kw = dict(key=jax.random.key(0), population=6, sigma=0.5, learning_rate=0.2, every=5)
    full = jaxlr.auto.meta_train(
        META_POLICY, [_quad_task()], num_generations=6, **kw, progress=False
    )
    first = jaxlr.auto.meta_train(
        META_POLICY,
        [_quad_task()],
        num_generations=3,
        **kw,
        checkpoint_dir=d,
        checkpoint_every=3,
        progress=False,
    )
    resumed = jaxlr.auto.meta_train(
        META_POLICY,
        [_quad_task()],
        num_generations=6,
        **kw,
        checkpoint_dir=d,
        checkpoint_every=3,
        progress=False,
    )
    return full, first, resumed, d


def test_fitness_is_log_val_over_the_best_constant_lr(meta_run):
    full, *_ = meta_run
    grid = 0.05 * np.array([0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 32.0])
    vals = np.array([_closed_form_val(lr, 20) for lr in grid])
    vals = np.where(
        np.isfinite(vals) & (np.abs(1 - grid[:, None] * SCALES) < 1).all(1), vals, np.inf
    )
    best = int(np.argmin(vals))
    np.testing.assert_allclose(full.reference, [vals[best]], rtol=1e-4)
    np.testing.assert_allclose(full.reference_lr, [grid[best]], rtol=1e-6)
    # generation 0's mean is the initial policy: a constant LR at init_value
    expected = np.log(_closed_form_val(0.05, 20) / vals[best])
    assert full.mean_fitness[0] == pytest.approx(expected, rel=1e-4)
    assert full.mean_fitness[-1] < 0.25 * full.mean_fitness[0]  # the search learned something
    assert full.fitness.shape == (6, 6)


def test_diverged_members_score_the_cap_and_never_poison_the_search():
    # near the edge (2 / 4 = 0.5): members that raise the LR diverge on the stiff coordinate
    task = _quad_task(max_value=4.0)._replace(init_value=0.4)
    res = jaxlr.auto.meta_train(
        META_POLICY,
        [task],
        key=jax.random.key(1),
        population=8,
        sigma=3.0,
        num_generations=2,
        every=2,
        max_factor=4.0,
        grid=(0.5, 1.0),
        progress=False,
    )
    assert res.diverged.sum() > 0
    assert np.isfinite(res.fitness).all() and res.fitness.max() <= 3.0 + 1e-6
    assert np.isclose(res.fitness, 3.0).any()  # the cap (diverged_score)
    assert np.isfinite(jax.flatten_util.ravel_pytree(res.params)[0]).all()


def test_meta_training_resumes_from_its_checkpoint_identically(meta_run):
    full, first, resumed, _ = meta_run
    assert first.fitness.shape[0] == 3
    np.testing.assert_array_equal(resumed.fitness, full.fitness)
    jax.tree.map(np.testing.assert_array_equal, resumed.params, full.params)


def test_saved_policy_applies_to_a_new_task_in_one_line(meta_run, tmp_path):
    full, *_ = meta_run
    jaxlr.auto.save_policy(tmp_path / "p", full.policy, full.params)
    longer = _quad_task(total_steps=40)  # a new horizon
    key = jax.random.key(3)
    run = jaxlr.auto.run_task(
        longer, jaxlr.auto.policy_tx(*jaxlr.auto.load_policy(tmp_path / "p"), longer, every=5), key
    )
    ref = jaxlr.auto.run_task(
        longer, jaxlr.auto.policy_tx(full.policy, full.params, longer, every=5), key
    )
    np.testing.assert_array_equal(run.lrs, ref.lrs)
    # the LR the policy used, exported, retrains from scratch to the same loss
    sched = T.applied_schedule(run.lrs)
    again = jaxlr.auto.run_task(
        longer, lambda opt: optax.chain(opt, T.scale_by_schedule(sched)), key
    )
    np.testing.assert_allclose(again.val_loss, run.val_loss, rtol=1e-5)
    with pytest.raises(ValueError, match="load_policy: no policy.json"):
        jaxlr.auto.load_policy(tmp_path / "missing")


def test_meta_train_bad_input():
    with pytest.raises(ValueError, match="meta_train: population must be even"):
        jaxlr.auto.meta_train(META_POLICY, [_quad_task()], key=jax.random.key(0), population=5)
    with pytest.raises(ValueError, match="meta_train: tasks must be a non-empty"):
        jaxlr.auto.meta_train(META_POLICY, [], key=jax.random.key(0))


def test_recurrent_policy_carry_moves_only_at_decisions():
    policy = T.mlp_policy(("progress", "log_lr"), hidden=3, recurrent=True)
    p = policy.init(jax.random.key(0))
    tx = T.learned_lr(
        policy, p, init_value=0.1, min_value=0.01, max_value=1.0, every=3, total_steps=9
    )
    states = _run(tx, [jnp.ones(1)] * 7, [1.0] * 7)
    carries = np.stack([np.asarray(s.carry) for s in states])
    changed = [i for i in range(1, 7) if not np.array_equal(carries[i], carries[i - 1])]
    assert changed == [3, 6] and not carries[:3].any()
    # the carry is the policy's hidden state: tanh(W x + U h + b) at the decision's features
    x = np.asarray(states[3].features)
    expected = np.tanh(x @ np.asarray(p["w"]) + np.asarray(p["b"]))
    np.testing.assert_allclose(carries[3], expected, rtol=1e-5)
    with pytest.raises(ValueError, match="mlp_policy: hidden must be an int >= 1"):
        T.mlp_policy(hidden=0)
    with pytest.raises(ValueError, match="mlp_policy: recurrent must be one of"):
        T.mlp_policy(recurrent=1)


# -- review fixes: non-finite gradients, long runs, grad through the transform -----------------
def test_non_finite_gradient_skips_the_wrapped_optimizer_step():
    tx = _tx(("log_lr",), o=-1.0, optimizer=optax.adam(1.0))
    w = jnp.zeros(2)
    state = tx.init(w)
    update = jax.jit(tx.update)
    grads = [jnp.array([1.0, 2.0]), jnp.array([3.0, -1.0]), jnp.array([jnp.nan, 1.0])]
    for g in grads:  # the NaN comes at the decision step t = 2
        u, state = update(g, state, w, value=jnp.asarray(1.0))
    np.testing.assert_array_equal(u, np.zeros(2))
    assert int(state.num_skipped) == 1 and float(state.lr) == pytest.approx(0.1)
    # the inner Adam state equals a run that never saw the NaN gradient
    adam = optax.adam(1.0)
    ref = adam.init(w)
    for g in grads[:2]:
        _, ref = adam.update(g, ref, w)
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-6), state.inner_state, ref)
    # and the next finite gradient steps normally
    u, state = update(jnp.ones(2), state, w, value=jnp.asarray(1.0))
    assert np.isfinite(u).all() and np.abs(np.asarray(u)).min() > 0


def test_decisions_stay_exact_on_counts_past_float32_precision():
    for every in (2, 3):
        tx = _tx(("log_lr",), o=-1.0, every=every)
        update = jax.jit(tx.update)
        state0 = tx.init(jnp.ones(1))
        for count in (2**24 + 1, 2**24 + 3, 2**30, 2**30 + 1, 2**31 - 3):
            state = state0._replace(count=jnp.asarray(count, jnp.int32))
            _, s = update(jnp.ones(1), state, value=jnp.asarray(1.0))
            expected = 0.05 if count % every == 0 else 0.1  # halved at a decision
            assert float(s.lr) == pytest.approx(expected), (every, count)


def test_grad_through_the_transform_is_finite_at_a_zero_gradient():
    policy = T.mlp_policy(("grad_norm", "update_ratio"), hidden=2)  # reads both norms
    tx = T.learned_lr(
        policy,
        policy.init(jax.random.key(0)),
        init_value=0.1,
        min_value=1e-3,
        max_value=1.0,
        every=2,
    )
    w = jnp.zeros(2)
    state = tx.init(w)._replace(count=jnp.asarray(2, jnp.int32))  # a decision step

    def f(g, p):
        u, _ = tx.update(g, state, p, value=jnp.asarray(1.0))
        return jnp.sum(u)

    dg, dp = jax.grad(f, argnums=(0, 1))(jnp.zeros(2), w)
    # the initial policy keeps the LR and the clipped features are flat at 0: d/dg = lr, as
    # for plain SGD, and d/dparams = 0
    np.testing.assert_allclose(dg, [0.1, 0.1], rtol=1e-6)
    np.testing.assert_array_equal(dp, np.zeros(2))


def test_nan_gradient_at_a_decision_keeps_the_last_features():
    tx = _tx(("update_ratio",), o=-1.0)
    g = [jnp.ones(2)] * 4 + [jnp.full(2, jnp.nan)]
    states = _run(tx, g, [1.0] * 5, params=jnp.ones(2))
    assert np.isfinite(states[2].features).all()
    np.testing.assert_array_equal(states[4].features, states[2].features)
    assert float(states[4].lr) == pytest.approx(0.05) and int(states[4].num_skipped) == 1


def test_resuming_under_other_settings_is_refused_before_any_generation(meta_run):
    d = meta_run[3]
    kw = dict(key=jax.random.key(0), population=6, sigma=0.5, learning_rate=0.2, every=5)
    task = _quad_task()
    changes = [
        ({"key": jax.random.key(1)}, ["key"]),
        ({"sigma": 0.25}, ["sigma"]),
        ({"learning_rate": 0.1, "every": 4}, ["every", "learning_rate"]),
        ({"population": 4}, ["population"]),
        ({"num_seeds": 3, "max_factor": 3.0}, ["max_factor", "num_seeds"]),
        ({"tasks": [task._replace(total_steps=10)]}, ["tasks"]),
        ({"tasks": [task._replace(optimizer=optax.adam(1.0))]}, ["tasks"]),  # sgd in the run
        ({"policy": T.mlp_policy(("log_lr", "progress"), hidden=4)}, ["policy"]),  # same count
    ]
    for change, names in changes:
        args = {"policy": META_POLICY, "tasks": [task], **kw, **change}
        with pytest.raises(
            ValueError, match=re.escape(f"holds another search (differs in {names})")
        ):
            jaxlr.auto.meta_train(
                args.pop("policy"),
                args.pop("tasks"),
                num_generations=9,
                checkpoint_dir=d,
                progress=False,
                **args,
            )
    # the settings are a readable JSON record next to the checkpoints
    saved = json.loads((d / "search.json").read_text())
    assert saved["sigma"] == 0.5 and saved["policy"] == META_POLICY.to_config()


def test_save_policy_validates_params_and_keeps_their_dtype(tmp_path):
    params = META_POLICY.init(jax.random.key(0))
    stacked = jax.tree.map(lambda x: jnp.stack([x, x]), params)
    with pytest.raises(ValueError, match="save_policy: params must fit mlp_policy"):
        jaxlr.auto.save_policy(tmp_path / "a", META_POLICY, stacked)
    recurrent = T.mlp_policy(META_POLICY.features, hidden=4, recurrent=True)
    with pytest.raises(ValueError, match="save_policy: params must fit"):
        jaxlr.auto.save_policy(tmp_path / "b", recurrent, params)  # no "u"
    half = jax.tree.map(lambda x: x.astype(jnp.bfloat16), params)
    jaxlr.auto.save_policy(tmp_path / "c", META_POLICY, half)
    policy, loaded = jaxlr.auto.load_policy(tmp_path / "c")
    assert policy == META_POLICY
    for k in params:
        assert loaded[k].dtype == jnp.bfloat16, k
        np.testing.assert_array_equal(np.asarray(loaded[k], np.float32), half[k].astype(float))
