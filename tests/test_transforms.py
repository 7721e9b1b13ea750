"""jaxlr.transforms without sharpness: scheduled scaling, injection, plateau, GreedyLR, HD."""

from __future__ import annotations

import flax.serialization
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx
from oracles import Spec, ref

import jaxlr.transforms as T
from jaxlr import schedules as S

OPTIMIZERS = {
    "sgd": optax.sgd, "adagrad": optax.adagrad, "rmsprop": optax.rmsprop, "adam": optax.adam,
    "adamw": optax.adamw, "radam": optax.radam,
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


def test_scale_by_schedule_edit_and_sweep_compile_once():
    tx = T.scale_by_schedule(S.exponential(init_value=1.0, decay_rate=0.5, period_steps=1))
    traces = []

    @jax.jit
    def step(state):
        traces.append(1)
        return tx.update(jnp.ones(2), state)

    state = tx.init(jnp.zeros(2))
    state = step(state)[1]
    assert float(step(state)[0][0]) == pytest.approx(0.5)
    edited = state._replace(schedule={**state.schedule, "decay_rate": jnp.float32(0.25)})
    assert float(step(edited)[0][0]) == pytest.approx(0.25)
    assert len(traces) == 1
    # vmap over stacked states equals the per-value loop (NumPy formula 0.9**1, 0.5**1, ...)
    rates = jnp.array([0.9, 0.5, 0.1])
    stacked = jax.vmap(lambda r: state._replace(schedule={**state.schedule, "decay_rate": r}))(
        rates)
    u, _ = jax.vmap(lambda st: tx.update(jnp.ones(2), st))(stacked)
    np.testing.assert_allclose(u[:, 0], np.asarray(rates), rtol=1e-6)


def test_current_lr_multiplies_factors_and_rejects_closures():
    inj = optax.inject_hyperparams(optax.adam)(learning_rate=0.1)
    tx = optax.chain(inj, T.scale_by_schedule(0.5), T.reduce_on_plateau(init_value=0.2))
    state = tx.init(jnp.zeros(2))
    assert float(T.current_lr(state)) == pytest.approx(0.1 * 0.5 * 0.2)
    with pytest.raises(ValueError, match="current_lr: no learning rate"):
        T.current_lr(optax.adam(1e-3).init(jnp.zeros(2)))


def test_bad_arguments_name_function_argument_value():
    with pytest.raises(ValueError, match="scale_by_schedule: schedule must be .*lambda"):
        T.scale_by_schedule(lambda t: 0.1)
    with pytest.raises(ValueError, match=r"reduce_on_plateau: factor must be in \(0, 1\], got "
                                         r"factor=1.5"):
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
    with pytest.raises(ValueError, match="reduce_on_plateau: update needs the keyword argument "
                                         "value="):
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

def _plateau_reference(losses, *, factor, patience, threshold, mode, threshold_mode, cooldown,
                       min_value):
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
    kw = dict(factor=0.5, patience=1, threshold=0.05, mode=mode, threshold_mode=threshold_mode,
              cooldown=1, min_value=0.1)
    losses = LOSSES if mode == "min" else [-x for x in LOSSES]
    got, _ = _lr_trajectory(T.reduce_on_plateau(**kw), len(losses), values=losses)
    np.testing.assert_allclose(got, _plateau_reference(losses, **kw), rtol=1e-6)


def test_reduce_on_plateau_hand_computed_negative():
    # rel 5%: -0.1 -> -0.104 is no improvement (needs < -0.105); torch's rule would call it one.
    losses = [-0.1, -0.104, -0.104, -0.2, -0.2, -0.2]
    got, _ = _lr_trajectory(T.reduce_on_plateau(factor=0.5, patience=1, threshold=0.05),
                            len(losses), values=losses)
    assert got == [1.0, 1.0, 0.5, 0.5, 0.5, 0.25]


def test_reduce_on_plateau_equals_torch_on_positive_losses():
    import torch  # a pinned test dependency: its absence must fail, not skip
    rng = np.random.default_rng(0)
    decay = np.maximum(np.exp(-0.1 * np.arange(60)), 0.2)
    losses = list(np.round(decay + 0.03 * rng.random(60), 3))
    p = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([p], lr=1.0)
    sched = torch.optim.lr_scheduler.ReduceLROnPlateau(
        opt, factor=0.5, patience=3, threshold=0.02, cooldown=2, min_lr=0.01)
    ref = []
    for x in losses:
        sched.step(x)
        ref.append(opt.param_groups[0]["lr"])
    got, _ = _lr_trajectory(T.reduce_on_plateau(factor=0.5, patience=3, threshold=0.02,
                                                cooldown=2, min_value=0.01), 60, values=losses)
    np.testing.assert_allclose(got, ref, rtol=1e-6)
    assert min(ref) < 0.1  # the sequence does exercise several decreases


def test_reduce_on_plateau_smoothing_window():
    # window 2 averages: 1, 1.5 (1, 2), 2.5 (2, 3), 2 (3, 1) ... never below 1 -> decrease
    got, _ = _lr_trajectory(T.reduce_on_plateau(factor=0.5, patience=1, window=2), 4,
                            values=[1.0, 2.0, 3.0, 1.0])
    assert got == [1.0, 1.0, 0.5, 0.5]


def test_greedy_lr_hand_computed():
    tx = T.greedy_lr(factor=0.5, patience=1, warmup=1, min_value=0.25, max_value=4.0)
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
    w_ref, a_ref = _hd_reference(ref_dir, alpha=0.05, beta=beta, steps=6,
                                 multiplicative=multiplicative)
    tx = T.hypergradient(opt, init_value=0.05, hyper_lr=beta, multiplicative=multiplicative)
    a_diag = jnp.array([1.0, 3.0, 0.2])
    w = jnp.array([1.0, -2.0, 0.5])
    state, alphas = tx.init(w), []
    step = jax.jit(tx.update)
    for _ in range(6):
        u, state = step(a_diag * w, state, w)
        w = optax.apply_updates(w, u)
        alphas.append(float(T.current_lr(state)))
    np.testing.assert_allclose(alphas, a_ref, rtol=1e-4)
    np.testing.assert_allclose(w, w_ref, rtol=1e-4, atol=1e-6)
    assert abs(a_ref[-1] - a_ref[0]) > 1e-3  # the LR did adapt


# ------------------------------------------------------------------------------ every transform

def _all_transforms():
    return {
        "scale_by_schedule": lambda: T.scale_by_schedule(
            S.warmup_cosine(peak_value=0.1, warmup_steps=2, total_steps=10)),
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
        "reduce_on_plateau": [0.1 * v for v in _plateau_reference(
            losses, factor=0.5, patience=0, threshold=1e-4, mode="min", threshold_mode="rel",
            cooldown=0, min_value=0.0)],
    }.get(name)
    for opt_name, factory in OPTIMIZERS.items():
        base, chained = factory(1.0), optax.chain(factory(1.0), _all_transforms()[name]())
        sb, sc = base.init(params), chained.init(params)
        for t, loss in enumerate(losses):
            g = jax.tree.map(lambda p, t=t: jnp.cos(p + t), params)
            ub, sb = base.update(g, sb, params)
            uc, sc = chained.update(g, sc, params, value=loss)
            lr = T.current_lr(sc)
            if expected is not None:
                assert float(lr) == pytest.approx(expected[t], rel=1e-5), (opt_name, t)
            jax.tree.map(lambda a, b, lr=lr, o=opt_name: np.testing.assert_allclose(
                a, lr * b, rtol=2e-5, atol=1e-7, err_msg=o), uc, ub)


class _Tiny(nnx.Module):
    def __init__(self):
        self.lin = nnx.Linear(3, 1, rngs=nnx.Rngs(0))

    def __call__(self, x):
        return self.lin(x)[:, 0]


def _nnx_transforms():
    return {**_all_transforms(),
            "inject_schedules": lambda: T.inject_schedules(
                optax.adam, learning_rate=S.one_cycle(peak_value=0.1, total_steps=10),
                b1=S.one_cycle_momentum(total_steps=10)),
            "hypergradient": lambda: T.hypergradient(optax.adam(1.0), init_value=0.05,
                                                     hyper_lr=1e-3)}


@pytest.mark.parametrize("name", sorted(_nnx_transforms()))
def test_nnx_optimizer_and_checkpoint_restore(name):
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
        lrs.append(float(T.current_lr(s_ref)))
    got = nnx.to_pure_dict(nnx.state(model, nnx.Param))
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7), got, p_ref)
    # checkpoint -> restore -> continue == uninterrupted
    blob = flax.serialization.to_bytes(s_ref)
    restored = flax.serialization.from_bytes(tx.init(p_ref), blob)
    runs = []
    for s in (s_ref, restored):
        p, out = p_ref, []
        for _ in range(3):
            l_, g_ = jax.value_and_grad(pure_loss)(p)
            u, s = tx.update(g_, s, p, value=l_)
            p = optax.apply_updates(p, u)
            out.append(float(T.current_lr(s)))
        runs.append((out, p))
    assert runs[0][0] == runs[1][0]
    jax.tree.map(np.testing.assert_array_equal, runs[0][1], runs[1][1])
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
    batched = jax.jit(jax.vmap(run))(factors, patiences, thresholds)
    for i in range(3):
        single = run(float(factors[i]), float(patiences[i]), float(thresholds[i]))
        for b, s in zip(batched, single, strict=True):
            np.testing.assert_allclose(b[i], s, rtol=1e-6)
