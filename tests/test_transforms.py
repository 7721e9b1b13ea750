"""jaxlr.transforms without sharpness: scheduled scaling, injection, plateau, GreedyLR, HD."""

from __future__ import annotations

import re

import chex
import flax.serialization
import jax
import jax.numpy as jnp
import numpy as np
import optax
import orbax.checkpoint as ocp
import pytest
from flax import nnx
from oracles import Spec, ref

import jaxlr.transforms as T
from jaxlr import schedules as S

FAST = {"xla_backend_optimization_level": 0}  # compile-bound tests: skip LLVM's optimizations


def jit(fun):
    """jax.jit without LLVM's optimizations: these tests compile far longer than they run."""
    return jax.jit(fun, compiler_options=FAST)


OPTIMIZERS = {
    "sgd": optax.sgd,
    "adagrad": optax.adagrad,
    "rmsprop": optax.rmsprop,
    "adam": optax.adam,
    "adamw": optax.adamw,
    "radam": optax.radam,
}

# A fixed, sign-changing loss sequence with negative values, plateaus and improvements.
LOSSES = [0.5, 0.2, 0.2, 0.21, 0.2, -0.1, -0.1, -0.3, -0.3, -0.3, -0.3, -0.31, -0.5, -0.5]


def _lr_trajectory(tx, n, *, values=None, params=None):
    params = jnp.ones(3) if params is None else params
    state = tx.init(params)
    out = []
    for i in range(n):
        extra = {} if values is None else {"value": values[i]}
        _, state = tx.update(jnp.full(3, 0.1 * (i + 1)), state, params, **extra)
        out.append(float(T.current_lr(state)))
    return out, state


# ------------------------------------------------------------------------------ scale_by_schedule


def test_scale_by_schedule_matches_optax_and_schedule():
    s = S.warmup_cosine(peak_value=0.3, warmup_steps=3, total_steps=10)
    ours, ref = T.scale_by_schedule(s), optax.scale_by_schedule(s)
    g = jnp.array([1.0, -2.0])
    so, sr = ours.init(g), ref.init(g)
    for t in range(12):
        uo, so = ours.update(g, so)
        ur, sr = ref.update(g, sr)
        np.testing.assert_allclose(uo, ur, rtol=1e-6)
        np.testing.assert_allclose(float(so.lr), float(s(t)), rtol=1e-6)


def _cosine_ref(init_value, total_steps, t):
    """NumPy cosine decay to 0, written from the formula."""
    return init_value * 0.5 * (1.0 + np.cos(np.pi * min(t, total_steps) / total_steps))


def test_scale_by_schedule_edit_and_sweep_compile_once():
    tx = T.scale_by_schedule(S.cosine(init_value=1.0, total_steps=10))

    @jit
    @chex.assert_max_traces(n=1)
    def step(state):
        return tx.update(jnp.ones(2), state)

    state = step(tx.init(jnp.zeros(2)))[1]
    assert float(step(state)[0][0]) == pytest.approx(_cosine_ref(1.0, 10, 1), rel=1e-6)
    # an edit is a new state holding a new schedule; the compiled update is reused
    rebuilt = state._replace(schedule=S.cosine(init_value=0.3, total_steps=4))
    assert float(step(rebuilt)[0][0]) == pytest.approx(_cosine_ref(0.3, 4, 1), rel=1e-6)
    doubled = state._replace(
        schedule=jax.tree_util.tree_map_with_path(
            lambda path, x: 2.0 * x if jax.tree_util.keystr(path).endswith("init_value") else x,
            state.schedule,
        )
    )
    assert float(step(doubled)[0][0]) == pytest.approx(_cosine_ref(2.0, 10, 1), rel=1e-6)
    # vmap over stacked states equals the NumPy formula per value
    peaks = jnp.array([0.9, 0.5, 0.1])
    stacked = jax.vmap(lambda v: state._replace(schedule=S.cosine(init_value=v, total_steps=10)))(
        peaks
    )
    u, _ = jit(jax.vmap(lambda st: tx.update(jnp.ones(2), st)))(stacked)
    np.testing.assert_allclose(u[:, 0], [_cosine_ref(float(v), 10, 1) for v in peaks], rtol=1e-6)


def _containers(x, out):
    """ids of the mutable containers (dicts, lists) reachable in a state."""
    if isinstance(x, (dict, list)):
        out.add(id(x))
    children = x.values() if isinstance(x, dict) else x if isinstance(x, (tuple, list)) else ()
    for c in children:
        _containers(c, out)
    return out


def _edits():
    """transform, extra update args, an edit of a state that returns a new state."""
    m = S.cyclic_momentum(base_momentum=0.5, max_momentum=0.9, up_steps=3)
    return {
        "scale_by_schedule": (
            T.scale_by_schedule(S.cosine(init_value=1.0, total_steps=10)),
            {},
            lambda s: s._replace(schedule=S.cosine(init_value=5.0, total_steps=3)),
        ),
        "inject_schedules": (
            T.inject_schedules(optax.sgd, learning_rate=0.1, momentum=m),
            {},
            lambda s: s._replace(hyperparams={**s.hyperparams, "learning_rate": jnp.float32(7.0)}),
        ),
        "reduce_on_plateau": (
            T.reduce_on_plateau(factor=0.5, patience=0),
            {"value": 1.0},
            lambda s: s._replace(hyperparams=s.hyperparams._replace(factor=jnp.float32(0.9))),
        ),
        "hypergradient": (
            T.hypergradient(init_value=0.1, hyper_lr=0.01),
            {},
            lambda s: s._replace(hyperparams=s.hyperparams._replace(hyper_lr=jnp.float32(3.0))),
        ),
    }


@pytest.mark.parametrize("name", sorted(_edits()))
def test_editing_a_state_never_changes_an_earlier_one(name):
    chex.clear_trace_counter()
    tx, extra, edit = _edits()[name]
    p = jnp.ones(2)
    s0 = tx.init(p)
    _, s1 = tx.update(jnp.full(2, 0.5), s0, p, **extra)
    before = jax.tree.map(np.array, s0)
    s2 = edit(s1)
    # in-place writes into s1's dicts (the old documented edit) must not reach s0 either
    if name == "inject_schedules":
        s1.hyperparams["learning_rate"] = jnp.float32(9.0)
        s1.schedules["momentum"] = S.constant(value=0.0)
    jax.tree.map(np.testing.assert_array_equal, s0, before)
    assert not _containers(s0, set()) & _containers(s1, set())  # no shared mutable container
    # the edit takes effect in the new state, through the same compiled update
    step = jit(chex.assert_max_traces(lambda s: tx.update(jnp.full(2, 0.5), s, p, **extra)[0], n=1))
    assert not np.allclose(step(s1), step(s2))


def test_current_lr_multiplies_factors_and_rejects_closures():
    inj = optax.inject_hyperparams(optax.adam)(learning_rate=0.1)
    tx = optax.chain(inj, T.scale_by_schedule(0.5), T.reduce_on_plateau(init_value=0.2))
    state = tx.init(jnp.zeros(2))
    assert float(T.current_lr(state)) == pytest.approx(0.1 * 0.5 * 0.2)
    with pytest.raises(ValueError, match="current_lr: no learning rate"):
        T.current_lr(optax.sgd(1e-3).init(jnp.zeros(2)))


def _applied_lr(tx, unit, steps, *, values=None):
    """The LR a chain applied, measured as its update over the unit-LR optimizer's update."""
    p = jnp.array([1.0, -2.0, 0.5])
    st, su, out = tx.init(p), unit.init(p), []
    for t in range(steps):
        g = jnp.cos(p + t)
        extra = {} if values is None else {"value": values[t]}
        u, st = tx.update(g, st, p, **extra)
        uu, su = unit.update(g, su, p)
        out.append((float(u[0] / uu[0]), st))
    return out


def test_current_lr_reads_optax_contrib_reduce_on_plateau_scale():
    inj = optax.inject_hyperparams(optax.adam)(learning_rate=0.01)
    tx = optax.chain(inj, optax.contrib.reduce_on_plateau(factor=0.5, patience=1))
    runs = _applied_lr(tx, optax.adam(1.0), 8, values=[1.0] * 8)
    for applied, state in runs:
        assert float(T.current_lr(state)) == pytest.approx(applied, rel=1e-4)
    assert runs[-1][0] < 0.005  # the plateau did scale the LR down


def test_current_lr_needs_the_lr_of_an_optax_optimizer_it_cannot_see():
    s = S.cosine(init_value=0.5, total_steps=10)
    tx = optax.chain(optax.adam(1e-3), T.scale_by_schedule(s))
    runs = _applied_lr(tx, optax.adam(1.0), 4)
    with pytest.raises(
        ValueError,
        match="current_lr: state holds an Optax optimizer state "
        r"\(ScaleByAdamState\).*optimizer_lr",
    ):
        T.current_lr(runs[-1][1])
    for applied, state in runs:
        assert float(T.current_lr(state, optimizer_lr=1e-3)) == pytest.approx(applied, rel=1e-4)
    # a wrapped optimizer is read the same way
    with pytest.warns(UserWarning, match="learning_rate=0.001"):  # the detector sees it
        hx = T.hypergradient(optax.adam(1e-3), init_value=0.1, hyper_lr=0.0)
    state = hx.init(jnp.zeros(2))
    with pytest.raises(ValueError, match="ScaleByAdamState"):
        T.current_lr(state)
    assert float(T.current_lr(state, optimizer_lr=1e-3)) == pytest.approx(1e-4)


def test_current_lr_of_plain_optax_with_a_schedule_reads_its_count():
    spec = Spec("warmup_cosine", peak_value=0.1, warmup_steps=3, total_steps=10)
    s = spec.build()
    runs = _applied_lr(optax.adamw(s, weight_decay=0.0), optax.adamw(1.0, weight_decay=0.0), 8)
    with pytest.raises(ValueError, match="optax.scale_by_schedule state.*optimizer_lr=schedule"):
        T.current_lr(runs[0][1])
    for t, (applied, state) in enumerate(runs):
        lr = T.current_lr(state, optimizer_lr=s)
        assert float(lr) == pytest.approx(applied, rel=1e-4, abs=1e-9)
        assert float(lr) == pytest.approx(ref(spec, t), rel=1e-5, abs=1e-9)
    with pytest.raises(ValueError, match="optimizer_lr is a schedule but state holds no"):
        T.current_lr(T.scale_by_schedule(0.1).init(jnp.zeros(1)), optimizer_lr=s)


def test_bad_arguments_name_function_argument_value():
    with pytest.raises(ValueError, match="scale_by_schedule: schedule must be .*lambda"):
        T.scale_by_schedule(lambda t: 0.1)
    with pytest.raises(
        ValueError,
        match=r"reduce_on_plateau: factor must be in \(0, 1\], got "
        r"factor=1.5",
    ):
        T.reduce_on_plateau(factor=1.5)
    with pytest.raises(ValueError, match="greedy_lr: mode must be one of"):
        T.greedy_lr(mode="lowest")
    with pytest.raises(ValueError, match="reduce_on_plateau: window must be an int"):
        T.reduce_on_plateau(window=0)
    with pytest.raises(ValueError, match="hypergradient: hyper_lr must be >= 0, got hyper_lr=-1"):
        T.hypergradient(init_value=0.1, hyper_lr=-1.0)
    with pytest.raises(ValueError, match="inject_schedules: sgd takes no argument b1"):
        T.inject_schedules(optax.sgd, learning_rate=0.1, b1=0.9)
    tx = T.reduce_on_plateau()
    with pytest.raises(
        ValueError, match="reduce_on_plateau: update needs the keyword argument value="
    ):
        tx.update(jnp.ones(1), tx.init(jnp.ones(1)))


# ------------------------------------------------------------------------------ inject_schedules


def test_inject_schedules_matches_optax_inject_hyperparams():
    lr = S.one_cycle(peak_value=0.1, total_steps=20)
    m = S.one_cycle_momentum(total_steps=20)
    for factory, arg in ((optax.sgd, "momentum"), (optax.adam, "b1")):
        ours = T.inject_schedules(factory, learning_rate=lr, **{arg: m})
        ref = optax.inject_hyperparams(factory)(learning_rate=lr, **{arg: m})
        w = jnp.array([1.0, -2.0, 3.0])
        so, sr = ours.init(w), ref.init(w)
        for t in range(8):
            g = jnp.sin(w + t)
            uo, so = ours.update(g, so, w)
            ur, sr = ref.update(g, sr, w)
            np.testing.assert_allclose(uo, ur, rtol=1e-5, atol=1e-7)
        assert float(so.hyperparams[arg]) == pytest.approx(float(m(7)), rel=1e-6)
        assert float(T.current_lr(so)) == pytest.approx(float(lr(7)), rel=1e-6)


def test_inject_schedules_heavy_ball_numpy_reference():
    m = S.cyclic_momentum(base_momentum=0.5, max_momentum=0.9, up_steps=3)
    tx = T.inject_schedules(optax.sgd, learning_rate=0.1, momentum=m)
    w = np.array([1.0, -1.0])
    state, buf, wj = tx.init(jnp.asarray(w)), np.zeros(2), jnp.asarray(w)
    for t in range(7):
        g = 2.0 * w
        buf = g + float(m(t)) * buf  # optax.trace: b_t = g_t + beta_t b_{t-1}
        w = w - 0.1 * buf
        u, state = tx.update(2.0 * wj, state, wj)
        wj = optax.apply_updates(wj, u)
    np.testing.assert_allclose(wj, w, rtol=1e-5)


# ------------------------------------------------------------------------------ plateau, greedy


def _plateau_reference(
    losses, *, factor, patience, threshold, mode, threshold_mode, cooldown, min_value
):
    """The rule written directly from its definition, |best| for the relative margin."""
    lr, best, bad, cool, out = 1.0, None, 0, 0, []
    for x in losses:
        if best is None:
            better = True
        else:
            margin = threshold * (abs(best) if threshold_mode == "rel" else 1.0)
            better = x < best - margin if mode == "min" else x > best + margin
        if better:
            best, bad = x, 0
        else:
            bad += 1
        if cool > 0:
            cool, bad = cool - 1, 0
        if bad > patience:
            lr, cool, bad = max(lr * factor, min_value), cooldown, 0
        out.append(lr)
    return out


@pytest.mark.parametrize("mode", ["min", "max"])
@pytest.mark.parametrize("threshold_mode", ["rel", "abs"])
def test_reduce_on_plateau_reference_negative_losses(mode, threshold_mode):
    kw = dict(
        factor=0.5,
        patience=1,
        threshold=0.05,
        mode=mode,
        threshold_mode=threshold_mode,
        cooldown=1,
        min_value=0.1,
    )
    losses = LOSSES if mode == "min" else [-x for x in LOSSES]
    got, _ = _lr_trajectory(T.reduce_on_plateau(**kw), len(losses), values=losses)
    np.testing.assert_allclose(got, _plateau_reference(losses, **kw), rtol=1e-6)


def test_reduce_on_plateau_hand_computed_negative():
    # rel 5%: -0.1 -> -0.104 is no improvement (needs < -0.105); torch's rule would call it one.
    losses = [-0.1, -0.104, -0.104, -0.2, -0.2, -0.2]
    got, _ = _lr_trajectory(
        T.reduce_on_plateau(factor=0.5, patience=1, threshold=0.05), len(losses), values=losses
    )
    assert got == [1.0, 1.0, 0.5, 0.5, 0.5, 0.25]


def test_reduce_on_plateau_equals_torch_on_positive_losses():
    import torch  # a pinned test dependency: its absence must fail, not skip

    rng = np.random.default_rng(0)
    decay = np.maximum(np.exp(-0.1 * np.arange(60)), 0.2)
    losses = list(np.round(decay + 0.03 * rng.random(60), 3))
    p = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([p], lr=1.0)
    sched = torch.optim.lr_scheduler.ReduceLROnPlateau(
        opt, factor=0.5, patience=3, threshold=0.02, cooldown=2, min_lr=0.01
    )
    ref = []
    for x in losses:
        sched.step(x)
        ref.append(opt.param_groups[0]["lr"])
    got, _ = _lr_trajectory(
        T.reduce_on_plateau(factor=0.5, patience=3, threshold=0.02, cooldown=2, min_value=0.01),
        60,
        values=losses,
    )
    np.testing.assert_allclose(got, ref, rtol=1e-6)
    assert min(ref) < 0.1  # the sequence does exercise several decreases


def test_reduce_on_plateau_smoothing_window():
    # window 2 averages: 1, 1.5 (1, 2), 2.5 (2, 3), 2 (3, 1) ... never below 1 -> decrease
    got, _ = _lr_trajectory(
        T.reduce_on_plateau(factor=0.5, patience=1, window=2), 4, values=[1.0, 2.0, 3.0, 1.0]
    )
    assert got == [1.0, 1.0, 0.5, 0.5]


def test_greedy_lr_hand_computed():
    tx = T.greedy_lr(factor=0.5, patience=1, warmup_steps=1, min_value=0.25, max_value=4.0)
    losses = [5.0, 4.0, 3.0, 2.0, 1.0, 0.5, 0.4, 0.4, 0.4, 0.4, 0.4, 0.4, 0.4]
    got, _ = _lr_trajectory(tx, len(losses), values=losses)
    # improvements 1,2 -> x2 at obs 2 (lr 2), warmup eats obs 3, streak 1,2 at obs 4,5 -> 4 ...
    assert got == [1.0, 2.0, 2.0, 2.0, 4.0, 4.0, 4.0, 4.0, 2.0, 2.0, 1.0, 1.0, 0.5]


# ------------------------------------------------------------------------------ hypergradient


def _hd_reference(direction_fn, *, alpha, beta, steps, multiplicative=False):
    w = np.array([1.0, -2.0, 0.5])
    a_diag = np.array([1.0, 3.0, 0.2])
    prev, state, alphas = np.zeros(3), None, []
    for t in range(steps):
        g = a_diag * w
        h = g @ prev
        if multiplicative:
            den = np.linalg.norm(g) * np.linalg.norm(prev)
            alpha = alpha * (1 - beta * (h / den if den > 0 else 0.0))
        else:
            alpha = alpha - beta * h
        d, state = direction_fn(g, state, t)
        w, prev = w + alpha * d, d
        alphas.append(alpha)
    return w, alphas


def _adam_direction(g, state, t, b1=0.9, b2=0.999, eps=1e-8):
    m, v = state if state is not None else (np.zeros(3), np.zeros(3))
    m, v = b1 * m + (1 - b1) * g, b2 * v + (1 - b2) * g * g
    mh, vh = m / (1 - b1 ** (t + 1)), v / (1 - b2 ** (t + 1))
    return -mh / (np.sqrt(vh) + eps), (m, v)


@pytest.mark.parametrize("kind", ["sgd", "adam", "sgd-multiplicative"])
def test_hypergradient_matches_numpy_reference(kind):
    multiplicative = kind.endswith("multiplicative")
    if kind == "adam":
        ref_dir, opt, beta = _adam_direction, optax.adam(1.0), 1e-3
    else:
        ref_dir, opt, beta = (lambda g, s, t: (-g, s)), None, 0.02
    w_ref, a_ref = _hd_reference(
        ref_dir, alpha=0.05, beta=beta, steps=6, multiplicative=multiplicative
    )
    tx = T.hypergradient(opt, init_value=0.05, hyper_lr=beta, multiplicative=multiplicative)
    a_diag = jnp.array([1.0, 3.0, 0.2])
    w = jnp.array([1.0, -2.0, 0.5])
    state, alphas = tx.init(w), []
    step = jit(tx.update)
    for _ in range(6):
        u, state = step(a_diag * w, state, w)
        w = optax.apply_updates(w, u)
        alphas.append(float(T.current_lr(state, optimizer_lr=1.0)))
    np.testing.assert_allclose(alphas, a_ref, rtol=1e-4)
    np.testing.assert_allclose(w, w_ref, rtol=1e-4, atol=1e-6)
    assert abs(a_ref[-1] - a_ref[0]) > 1e-3  # the LR did adapt


# ------------------------------------------------------------------------------ every transform


def _all_transforms():
    return {
        "scale_by_schedule": lambda: T.scale_by_schedule(
            S.warmup_cosine(peak_value=0.1, warmup_steps=2, total_steps=10)
        ),
        "reduce_on_plateau": lambda: T.reduce_on_plateau(factor=0.5, patience=0, init_value=0.1),
        "greedy_lr": lambda: T.greedy_lr(factor=0.5, patience=0, init_value=0.1),
    }


@pytest.mark.parametrize("name", sorted(_all_transforms()))
def test_chains_with_every_optax_optimizer(name):
    """chain(opt(1.0), tx) == opt(1.0) updates times the LR current_lr reports."""
    params = {"w": jnp.array([1.0, -2.0]), "b": jnp.array(0.5)}
    losses = [1.0, 0.5, 0.7, 0.2]
    # The LR each transform must apply, derived independently of current_lr (which could be
    # wrong in the same way as the scaling): the schedule's oracle, or the plateau rule.
    sched = Spec("warmup_cosine", peak_value=0.1, warmup_steps=2, total_steps=10)
    expected = {
        "scale_by_schedule": [ref(sched, t) for t in range(len(losses))],
        "reduce_on_plateau": [
            0.1 * v
            for v in _plateau_reference(
                losses,
                factor=0.5,
                patience=0,
                threshold=1e-4,
                mode="min",
                threshold_mode="rel",
                cooldown=0,
                min_value=0.0,
            )
        ],
    }.get(name)
    for opt_name, factory in OPTIMIZERS.items():
        base, chained = factory(1.0), optax.chain(factory(1.0), _all_transforms()[name]())
        sb, sc = base.init(params), chained.init(params)
        for t, loss in enumerate(losses):
            g = jax.tree.map(lambda p, t=t: jnp.cos(p + t), params)
            ub, sb = base.update(g, sb, params)
            uc, sc = chained.update(g, sc, params, value=loss)
            lr = T.current_lr(sc, optimizer_lr=1.0)
            if expected is not None:
                assert float(lr) == pytest.approx(expected[t], rel=1e-5), (opt_name, t)
            jax.tree.map(
                lambda a, b, lr=lr, o=opt_name: np.testing.assert_allclose(
                    a, lr * b, rtol=2e-5, atol=1e-7, err_msg=o
                ),
                uc,
                ub,
            )


class _Tiny(nnx.Module):
    def __init__(self):
        self.lin = nnx.Linear(3, 1, rngs=nnx.Rngs(0))

    def __call__(self, x):
        return self.lin(x)[:, 0]


def _nnx_transforms():
    return {
        **_all_transforms(),
        "inject_schedules": lambda: T.inject_schedules(
            optax.adam,
            learning_rate=S.one_cycle(peak_value=0.1, total_steps=10),
            b1=S.one_cycle_momentum(total_steps=10),
        ),
        "hypergradient": lambda: T.hypergradient(optax.adam(1.0), init_value=0.05, hyper_lr=1e-3),
    }


@pytest.mark.parametrize("name", sorted(_nnx_transforms()))
def test_nnx_optimizer_and_checkpoint_restore(name, tmp_path):
    """nnx.Optimizer.update(model, grads, value=loss) equals the pure optax loop, and a state
    serialized with flax.serialization mid-run continues with identical LRs and parameters."""
    x = jnp.linspace(-1, 1, 12).reshape(4, 3)
    y = jnp.array([0.5, -1.0, 2.0, 0.0])
    loss_of = lambda m: jnp.mean((m(x) - y) ** 2)
    model = _Tiny()
    tx = _nnx_transforms()[name]()
    opt = nnx.Optimizer(model, tx, wrt=nnx.Param)
    params = nnx.state(model, nnx.Param)
    graphdef = nnx.graphdef(model)
    pure = lambda p: loss_of(nnx.merge(graphdef, p))
    p_ref, s_ref = jax.tree.map(jnp.asarray, nnx.to_pure_dict(params)), None
    s_ref = tx.init(p_ref)
    pure_loss = lambda p: pure(_as_state(params, p))
    lrs = []
    for _ in range(5):
        loss, grads = nnx.value_and_grad(loss_of)(model)
        opt.update(model, grads, value=loss)
        l_ref, g_ref = jax.value_and_grad(pure_loss)(p_ref)
        u, s_ref = tx.update(g_ref, s_ref, p_ref, value=l_ref)
        p_ref = optax.apply_updates(p_ref, u)
        lrs.append(float(T.current_lr(s_ref, optimizer_lr=1.0)))
    got = nnx.to_pure_dict(nnx.state(model, nnx.Param))
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7), got, p_ref)
    # checkpoint -> restore -> continue == uninterrupted: orbax for every state (a schedule is
    # a pytree), flax.serialization for states made of NamedTuples and arrays only
    with ocp.StandardCheckpointer() as ckpt:
        ckpt.save(tmp_path / "opt", s_ref)
        ckpt.wait_until_finished()
        restored = [ckpt.restore(tmp_path / "opt", tx.init(p_ref))]
    if name not in ("scale_by_schedule", "inject_schedules"):
        blob = flax.serialization.to_bytes(s_ref)
        restored.append(flax.serialization.from_bytes(tx.init(p_ref), blob))
    runs = []
    for s in (s_ref, *restored):
        p, out = p_ref, []
        for _ in range(3):
            l_, g_ = jax.value_and_grad(pure_loss)(p)
            u, s = tx.update(g_, s, p, value=l_)
            p = optax.apply_updates(p, u)
            out.append(float(T.current_lr(s, optimizer_lr=1.0)))
        runs.append((out, p))
    for other in runs[1:]:
        assert runs[0][0] == other[0]
        jax.tree.map(np.testing.assert_array_equal, runs[0][1], other[1])
    assert len(set(lrs + runs[0][0])) > 1 or name == "reduce_on_plateau"


def _as_state(template, pure_dict):
    state = jax.tree.map(lambda v: v, template)
    nnx.replace_by_pure_dict(state, pure_dict)
    return state


def test_vmap_over_hyperparameters_equals_loop():
    """Transforms built inside vmap from traced hyperparameters equal a Python loop."""
    losses = jnp.asarray(LOSSES)

    def run(factor, patience, threshold):
        tx = T.reduce_on_plateau(factor=factor, patience=patience, threshold=threshold)
        gx = T.greedy_lr(factor=factor, patience=patience, threshold=threshold)
        hx = T.hypergradient(init_value=factor, hyper_lr=threshold)

        def body(carry, loss):
            s1, s2, s3 = carry
            _, s1 = tx.update(jnp.ones(2), s1, value=loss)
            _, s2 = gx.update(jnp.ones(2), s2, value=loss)
            _, s3 = hx.update(jnp.full(2, loss), s3, jnp.ones(2))
            return (s1, s2, s3), (s1.lr, s2.lr, s3.lr)

        init = (tx.init(jnp.ones(2)), gx.init(jnp.ones(2)), hx.init(jnp.ones(2)))
        return jax.lax.scan(body, init, losses)[1]

    factors = jnp.array([0.5, 0.3, 0.8])
    patiences = jnp.array([0.0, 1.0, 2.0])
    thresholds = jnp.array([0.01, 0.1, 0.001])
    batched = jit(jax.vmap(run))(factors, patiences, thresholds)
    for i in range(3):
        single = run(float(factors[i]), float(patiences[i]), float(thresholds[i]))
        for b, s in zip(batched, single, strict=True):
            np.testing.assert_allclose(b[i], s, rtol=1e-6)


# ------------------------------------------------------------------------- bad and extreme input


def test_negative_learning_rates_and_non_bool_flags_rejected_at_construction():
    with pytest.raises(
        ValueError, match="scale_by_schedule: schedule must be >= 0, got schedule=-1"
    ):
        T.scale_by_schedule(-1.0)
    with pytest.raises(ValueError, match="inject_schedules: learning_rate must be >= 0"):
        T.inject_schedules(optax.sgd, learning_rate=-0.1)
    with pytest.raises(ValueError, match="hypergradient: multiplicative must be True or False"):
        T.hypergradient(init_value=0.1, hyper_lr=0.01, multiplicative="False")
    with pytest.raises(ValueError, match="reduce_on_plateau: steps_per_epoch must be None or"):
        T.reduce_on_plateau(steps_per_epoch=0)
    with pytest.raises(
        ValueError, match="reduce_on_plateau: steps_per_epoch needs observe_in_update=True"
    ):
        T.reduce_on_plateau(steps_per_epoch=2, observe_in_update=False)
    with pytest.raises(ValueError, match="observe: state holds no plateau state"):
        T.observe(optax.sgd(1.0).init(jnp.zeros(1)), 1.0)
    tx = T.greedy_lr(observe_in_update=False)
    with pytest.raises(ValueError, match="greedy_lr: update got value=... but"):
        tx.update(jnp.ones(1), tx.init(jnp.ones(1)), value=1.0)
    with pytest.raises(ValueError, match="reduce_on_plateau: mode must be a string"):
        T.reduce_on_plateau(mode=np.array(["min", "max"]))
    with pytest.raises(ValueError, match="inject_schedules: nesterov looks like a flag"):
        T.inject_schedules(optax.sgd, learning_rate=0.1, nesterov=np.array(True))


def _run_hd(tx, grads):
    w = jnp.ones(3)
    state, lrs = tx.init(w), []
    step = jit(tx.update)
    for g in grads:
        u, state = step(jnp.asarray(g, jnp.float32), state, w)
        lrs.append(float(state.lr))
    return lrs, state, u


@pytest.mark.parametrize("multiplicative", [False, True])
def test_hypergradient_skips_non_finite_and_survives_huge_gradients(multiplicative):
    kw = dict(init_value=0.1, hyper_lr=0.01, multiplicative=multiplicative)
    g = [[1.0, -2.0, 0.5], [0.5, -1.0, 0.3], [0.2, 0.4, -0.1], [0.3, -0.2, 0.1]]
    clean, _, _ = _run_hd(T.hypergradient(**kw), g)
    bad = [g[0], [np.nan, 0.0, 0.0], g[1], g[2], g[3]]
    lrs, state, u = _run_hd(T.hypergradient(**kw), bad)
    assert np.isfinite(lrs).all() and int(state.num_skipped) >= 1
    assert lrs[1] == lrs[0]  # the NaN step kept the LR
    assert bool(jnp.all(jnp.isfinite(u)))
    assert len(set(lrs[2:])) > 1  # and it keeps adapting afterwards
    # 1e30 gradients: finite in float32, their products are not
    lrs, state, u = _run_hd(T.hypergradient(**kw), [[1e30 * x for x in gi] for gi in g])
    assert np.isfinite(lrs).all() and bool(jnp.all(jnp.isfinite(u)))
    if multiplicative:  # the normalized rule is scale-free: same LRs as the unscaled run
        np.testing.assert_allclose(lrs, clean, rtol=1e-5)
    else:
        assert int(state.num_skipped) >= 1


@pytest.mark.parametrize("bad", [-np.inf, np.nan, np.inf])
def test_plateau_skips_non_finite_metrics(bad):
    clean = [1.0, 0.9, 0.8, 0.8, 0.8, 0.7, 0.6]
    losses = clean[:1] + [bad] + clean[1:]
    kw = dict(
        factor=0.5,
        patience=1,
        threshold=1e-4,
        mode="min",
        threshold_mode="rel",
        cooldown=0,
        min_value=0.0,
    )
    tx = T.reduce_on_plateau(factor=0.5, patience=1)
    got, state = _lr_trajectory(tx, len(losses), values=losses)
    want = _plateau_reference(clean, **kw)
    np.testing.assert_allclose(got, want[:1] + want[:1] + want[1:], rtol=1e-6)
    assert int(state.num_skipped) == 1 and float(state.best) == pytest.approx(0.6)
    assert min(want) < 1.0  # the clean run does decrease, so skipping is what keeps it equal


def _torch_per_epoch(values, *, spe, lr, **cfg):
    """torch's per-epoch loop: spe optimizer steps per epoch, then scheduler.step(val)."""
    import torch  # a pinned test dependency: its absence must fail, not skip

    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=lr)
    sched = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, **cfg)
    out = []
    for v in values:
        out += [opt.param_groups[0]["lr"]] * spe
        sched.step(v)
    return out


@pytest.mark.parametrize("cadence", ["steps_per_epoch", "observe"])
@pytest.mark.parametrize("compat", [False, True])
def test_per_epoch_plateau_reproduces_torch_loop(compat, cadence):
    """A linear model trained with SGD; the validation loss after each epoch drives the plateau.

    jaxlr (steps_per_epoch, value = the last finished epoch's validation loss at every update;
    or observe(state, val_loss) after each epoch) and torch's loop (train an epoch, then
    scheduler.step(val_loss)) apply the same LR at every step; torch replays jaxlr's validation
    losses, so the comparison is of the two rules.
    """
    from jaxlr.compat import torch as C

    spe, epochs, lr = 4, 12, 0.3
    cfg = dict(factor=0.5, patience=1, threshold=0.01, cooldown=1, min_lr=0.01)
    rng = np.random.default_rng(0)
    x, xv = rng.normal(size=(spe * 8, 3)), rng.normal(size=(32, 3))
    w_true = np.array([1.0, -2.0, 0.5])
    y, yv = x @ w_true + 0.5 * rng.normal(size=len(x)), xv @ w_true + 0.5 * rng.normal(size=32)
    by_update = cadence == "steps_per_epoch"
    when = dict(steps_per_epoch=spe) if by_update else dict(observe_in_update=False)
    if compat:
        plateau = C.ReduceLROnPlateau(lr=lr, **when, **cfg)
    else:
        plateau = T.reduce_on_plateau(
            init_value=lr,
            threshold_mode="signed_rel",
            min_decrease=1e-8,
            **when,
            **{k if k != "min_lr" else "min_value": v for k, v in cfg.items()},
        )
    tx = optax.chain(optax.sgd(1.0), plateau)
    loss = lambda w, a, b: jnp.mean((a @ w - b) ** 2)
    step = jit(
        lambda w, s, a, b, v: tx.update(
            jax.grad(loss)(w, a, b), s, w, **({"value": v} if by_update else {})
        )
    )
    w, state = jnp.zeros(3), tx.init(jnp.zeros(3))
    val, vals, lrs = jnp.nan, [], []  # no validation loss before the first epoch
    for _ in range(epochs):
        for b in range(spe):
            sl = slice(8 * b, 8 * b + 8)
            u, state = step(w, state, jnp.asarray(x[sl]), jnp.asarray(y[sl]), val)
            w = optax.apply_updates(w, u)
            lrs.append(float(T.current_lr(state, optimizer_lr=1.0)))
        val = loss(w, jnp.asarray(xv), jnp.asarray(yv))
        vals.append(float(val))
        if not by_update:
            state = T.observe(state, val)
    want = _torch_per_epoch(vals, spe=spe, lr=lr, **cfg)[: len(lrs)]
    np.testing.assert_allclose(lrs, want, rtol=1e-6)
    assert len(set(want)) >= 3  # several reductions happened


def test_hypergradient_nan_gradient_never_poisons_the_inner_state():
    """Issue 21 item 7: a NaN gradient skips the step; Adam's moments stay those of the clean
    run (checked against optax.adam run on the finite gradients only)."""
    g = [jnp.array([1.0, -2.0]), jnp.array([np.nan, 0.5]), jnp.array([0.5, 0.25])]
    tx = T.hypergradient(optax.adam(1.0), init_value=0.1, hyper_lr=0.01)
    w = jnp.zeros(2)
    state = tx.init(w)
    step = jit(tx.update)
    us = []
    for gi in g:
        u, state = step(gi, state, w)
        us.append(u)
    np.testing.assert_array_equal(us[1], np.zeros(2))  # the NaN step moves nothing
    assert bool(jnp.all(jnp.isfinite(us[2])))
    adam = optax.adam(1.0)
    ref_state = adam.init(w)
    for gi in (g[0], g[2]):
        d, ref_state = adam.update(gi, ref_state, w)
    chex.assert_trees_all_close(state.inner_state, ref_state, rtol=1e-6)
    assert int(state.num_skipped) == 1 and np.isfinite(float(state.lr))
    clean = T.hypergradient(optax.adam(1.0), init_value=0.1, hyper_lr=0.01)
    s2 = clean.init(w)
    for gi in (g[0], g[2]):
        u2, s2 = clean.update(gi, s2, w)
    np.testing.assert_allclose(us[2], u2, rtol=1e-6)  # as if the bad batch never came
    assert float(state.lr) == pytest.approx(float(s2.lr), rel=1e-6)


@pytest.mark.parametrize(
    "make, lr",
    [
        (lambda: optax.adam(1e-3), 1e-3),
        (lambda: optax.adamw(3e-4, weight_decay=0.1), 3e-4),
        (lambda: optax.sgd(0.1), 0.1),
        (lambda: optax.sgd(0.01, momentum=0.9), 0.01),
        (lambda: optax.rmsprop(1e-3), 1e-3 / np.sqrt(0.1)),  # unit-LR rmsprop: 1/sqrt(1-decay)
        (lambda: optax.chain(optax.clip_by_global_norm(1.0), optax.lion(1e-4)), 1e-4),
    ],
)
@pytest.mark.parametrize("wrapper", ["hypergradient", "sharpness_cap", "sharpness_warmup"])
def test_non_unit_inner_lr_is_warned_about(make, lr, wrapper):
    """Issue 21 deliverable 3: an inner optimizer with a built-in LR is named, with the fix."""
    build = {
        "hypergradient": lambda o: T.hypergradient(o, init_value=0.1, hyper_lr=0.0),
        "sharpness_cap": lambda o: T.sharpness_cap(o, schedule=0.5),
        "sharpness_warmup": lambda o: T.sharpness_warmup(o),
    }[wrapper]
    with pytest.warns(UserWarning, match=f"{wrapper}: optimizer looks built with") as rec:
        build(make())
    msg = str(rec[0].message)
    assert f"learning_rate={lr:.3g}" in msg and "learning_rate=1.0" in msg
    assert rec[0].filename == __file__  # points at the user's line


@pytest.mark.parametrize(
    "make",
    [
        lambda: optax.adam(1.0),
        lambda: optax.nadam(1.0),
        lambda: optax.rmsprop(1.0),
        lambda: optax.sgd(1.0, momentum=0.9, nesterov=True),
        lambda: optax.adafactor(1.0),  # relative step size: nothing can be told, no word
        lambda: optax.adadelta(1.0),
        lambda: optax.inject_hyperparams(optax.adam)(learning_rate=1.0),
        lambda: optax.multi_transform({"a": optax.adam(1e-3)}, {"w": "a"}),  # needs its labels
    ],
)
def test_unit_or_unknown_inner_lr_is_left_alone(make):
    import warnings

    from jaxlr.transforms._common import inner_lr

    # None (cannot be told) or a unit-LR reading: 1 for Adam-family first steps, 1.9 for
    # Nesterov at momentum 0.9, up to 1 / sqrt(1 - 0.9) for rmsprop's g / sqrt(0.1 g^2)
    found = inner_lr(make())
    assert found is None or 0.9 <= found[0] <= 1.0 / np.sqrt(0.1) + 1e-4, found
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        T.hypergradient(make(), init_value=0.1, hyper_lr=0.0)
        T.sharpness_cap(make(), schedule=0.5)
    assert [str(w.message) for w in rec] == []


def test_injected_inner_lr_is_warned_about_at_step_0():
    import warnings

    from jaxlr.transforms._common import inner_lr

    opt = optax.inject_hyperparams(optax.adam)(learning_rate=1e-3)
    lr, how = inner_lr(opt)
    assert lr == pytest.approx(1e-3) and how == "its optax.inject_hyperparams state"
    for build in (
        lambda: T.hypergradient(opt, init_value=0.1, hyper_lr=0.0),
        lambda: T.sharpness_cap(opt, schedule=0.5),
        lambda: T.sharpness_warmup(opt),
    ):
        with warnings.catch_warnings(record=True) as rec:
            warnings.simplefilter("always")
            build()
        messages = [str(w.message) for w in rec if issubclass(w.category, UserWarning)]
        assert len(messages) == 1, messages
        assert re.search(r"learning_rate=0\.001 .*at step 0.*learning_rate=1\.0", messages[0])


@pytest.mark.parametrize(
    "make",
    [
        # an injected warmup from 0 to the unit LR: its step-0 value says nothing
        lambda: optax.inject_hyperparams(optax.adam)(
            learning_rate=optax.linear_schedule(0.0, 1.0, 100)
        ),
        lambda: optax.MultiSteps(optax.adam(1.0), 4),  # the first update accumulates: zero
        lambda: optax.scale_by_adam(),  # no sign flip: a negative reading
    ],
)
def test_readings_that_say_nothing_about_the_lr_give_no_word(make):
    import warnings

    from jaxlr.transforms._common import inner_lr

    found = inner_lr(make())  # zero or negative: says nothing about the LR
    assert found is None or found[0] <= 0.0, found
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        T.hypergradient(make(), init_value=0.1, hyper_lr=0.0)
    assert [str(w.message) for w in rec] == []


def test_inner_lr_probe_under_a_trace_and_with_traced_lr():
    """Built inside jit (a sweep builds its transforms there): the probe runs on constants; a
    traced inner LR cannot be told and is left alone."""
    import warnings

    def build(lr):
        with warnings.catch_warnings(record=True) as rec:
            warnings.simplefilter("always")
            T.hypergradient(optax.adam(lr), init_value=0.1, hyper_lr=0.0)
            T.hypergradient(optax.adam(1e-3), init_value=0.1, hyper_lr=0.0)
        assert len(rec) == 1 and "learning_rate=0.001" in str(rec[0].message)
        return lr

    jit(build)(jnp.asarray(1e-3))
