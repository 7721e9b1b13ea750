"""Exact integer steps past float32's 2^24 (issue 12, item 1; issue 22, item 1).

Every piecewise decision (which piece, which stair, which cycle) is exact for integer steps up to
2^31 (optax's int32 counters, Python ints below 2^31) against step counts float32 holds exactly,
and the value inside a piece is as accurate as float32 allows. A Python int past 2^31 is a float
step (exact to a multiple of 256 below 2^32): its reference is taken at that float. A count
float32 cannot hold exactly is refused at construction. The references are Python integer
arithmetic written from the constructors' arguments (the documented formulas), never jaxlr's laws.
"""

from __future__ import annotations

import math
import pickle

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxlr
from jaxlr._src import steps as st
from jaxlr.compat import keras as K
from jaxlr.compat import torch as T
from jaxlr.compat import transformers as H

S = jaxlr.schedules
B = 2**30  # 1073741824; float32 holds the multiples of 128 around it
C = B + 128  # the next count float32 holds: steps C - 1, C, C + 1 are distinct int32 steps
INT32_MAX = 2**31 - 1


def _cos(u, n):
    return 0.5 * (1.0 + math.cos(math.pi * u / n))


def _tri(t, up, down):
    within = t % (up + down)
    return within / up if within <= up else (up + down - within) / down


# name -> (schedule, steps, reference(t) from the constructor's arguments)
CASES = {
    "piecewise_constant": (
        S.piecewise_constant(boundaries=[C, C + 256], values=[1.0, 0.5, 0.25]),
        [C - 1, C, C + 1, C + 255, C + 256],
        lambda t: [1.0, 0.5, 0.25][(t >= C) + (t >= C + 256)],
    ),
    "step": (
        S.step(init_value=1.0, period_steps=C, decay_rate=0.5),
        [C - 1, C, C + 1, 2 * C - 1, 2 * C, 3 * C + 3],
        lambda t: 0.5 ** (t // C),
    ),
    "multistep": (
        S.multistep(init_value=1.0, boundaries=[30_000_002, C + 128], decay_rate=[0.1, 0.5]),
        [30_000_001, 30_000_002, C + 127, C + 128],
        lambda t: (0.1 if t >= 30_000_002 else 1.0) * (0.5 if t >= C + 128 else 1.0),
    ),
    "exponential_staircase": (
        S.exponential(
            init_value=1.0, decay_rate=0.5, period_steps=C, begin_steps=3, staircase=True
        ),
        [C + 2, C + 3, 2 * C + 2, 2 * C + 3],
        lambda t: 0.5 ** (max(t - 3, 0) // C),
    ),
    "linear_late": (
        S.linear(init_value=1.0, end_value=0.0, begin_steps=B, total_steps=B + 128),
        [B - 1, B, B + 32, B + 64, B + 127, B + 128, B + 129],
        lambda t: 1.0 - min(max((t - B) / 128, 0.0), 1.0),
    ),
    "warmup_cosine": (
        S.warmup_cosine(peak_value=1.0, warmup_steps=C, total_steps=C + 128),
        [C - 1, C, C + 32, C + 64, C + 127, C + 128],
        lambda t: t / C if t < C else _cos(min(t - C, 128), 128),
    ),
    "wsd_late_decay": (
        S.wsd(peak_value=1.0, total_steps=B + 1024, warmup_steps=100, decay_steps=128),
        [B + 895, B + 896, B + 928, B + 960, B + 1023, B + 1024],
        lambda t: 1.0 - min(max((t - (B + 896)) / 128, 0.0), 1.0),
    ),
    "sgdr": (
        S.sgdr(peak_value=1.0, period_steps=100),
        [B + 75, B + 76, B + 101, B + 126, INT32_MAX, 2**31 + 52],
        lambda t: _cos(t % 100, 100),
    ),
    "cyclic": (
        S.cyclic(init_value=0.0, peak_value=1.0, up_steps=50, down_steps=50),
        [B + 26, B + 51, B + 76, INT32_MAX, 2**31 + 25, 2**31 + 52],
        lambda t: _tri(t, 50, 50),
    ),
    "join": (
        S.join(
            [S.constant(value=1.0), S.step(init_value=0.5, period_steps=10, decay_rate=0.5)],
            boundaries=[C],
        ),
        [C - 1, C, C + 9, C + 10],
        lambda t: 1.0 if t < C else 0.5 * 0.5 ** ((t - C) // 10),
    ),
    "per_epoch": (
        S.per_epoch(S.piecewise_constant(boundaries=[1], values=[1.0, 0.5]), steps_per_epoch=C),
        [C - 1, C],
        lambda t: 1.0 if t // C < 1 else 0.5,
    ),
    "tanh_end": (
        S.tanh(init_value=1.0, total_steps=C),
        [C, C + 1],
        lambda t: 0.0,
    ),
    "torch.StepLR": (
        T.StepLR(step_size=C, gamma=0.1, lr=1.0),
        [C - 1, C],
        lambda t: 0.1 ** (t // C),
    ),
    "torch.MultiStepLR": (
        T.MultiStepLR(milestones=[C], gamma=0.1, lr=1.0),
        [C - 1, C],
        lambda t: 0.1 if t >= C else 1.0,
    ),
    "torch.ConstantLR": (
        T.ConstantLR(factor=0.5, total_iters=C, lr=1.0),
        [C - 1, C],
        lambda t: 0.5 if t < C else 1.0,
    ),
    "torch.CosineAnnealingWarmRestarts": (
        T.CosineAnnealingWarmRestarts(T_0=100, lr=1.0),
        [B + 75, B + 76, B + 126],
        lambda t: _cos(t % 100, 100),
    ),
    "torch.CosineAnnealingLR": (
        T.CosineAnnealingLR(T_max=100, lr=1.0),  # torch's closed form: period 2 T_max
        [B + 76, B + 126, B + 176],
        lambda t: _cos(t % 200, 100),
    ),
    "torch.CyclicLR": (
        T.CyclicLR(base_lr=0.0, max_lr=1.0, step_size_up=50, cycle_momentum=False),
        [B + 26, B + 51, 2**31 + 25],
        lambda t: _tri(t, 50, 50),
    ),
    "keras.PiecewiseConstantDecay": (
        K.PiecewiseConstantDecay(boundaries=[C], values=[1.0, 0.5]),
        [C, C + 1],
        lambda t: 1.0 if t <= C else 0.5,
    ),
    "keras.ExponentialDecay": (
        K.ExponentialDecay(
            initial_learning_rate=1.0, decay_steps=C, decay_rate=0.5, staircase=True
        ),
        [C - 1, C],
        lambda t: 0.5 ** (t // C),
    ),
    "keras.CosineDecayRestarts": (
        K.CosineDecayRestarts(initial_learning_rate=1.0, first_decay_steps=100, t_mul=1.0),
        [B + 75, B + 76, B + 126],
        lambda t: _cos(t % 100, 100),
    ),
    "transformers.hard_restarts": (
        H.get_cosine_with_hard_restarts_schedule_with_warmup(
            num_warmup_steps=128, num_training_steps=128 + B, num_cycles=4, lr=1.0
        ),
        [128 + B // 4 - 1, 128 + B // 4, 128 + B // 2 + 1, 128 + B - 1, 128 + B],
        lambda t: 0.0 if t - 128 >= B else _cos((4 * (t - 128)) % B, B),
    ),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_decisions_past_2_24_are_exact(name):
    s, steps, ref = CASES[name]
    want = np.array([ref(t) for t in steps])
    # Python ints, and the int32 counters optax keeps (traced, under jit)
    small = [t for t in steps if t <= INT32_MAX]
    got = np.array([float(s(t)) for t in small])
    np.testing.assert_allclose(
        got, want[: len(small)], rtol=2e-6, atol=1e-7, err_msg=f"{name} (Python ints)"
    )
    # a Python int past int32 is a float32 step: exact to a multiple of 256 (documented), so
    # its value is the reference at a step at most 256 away (plus float32 rounding inside)
    for t in steps[len(small) :]:
        near = [ref(x) for x in range(t - 512, t + 513)]
        assert np.isclose(float(s(t)), near, rtol=2e-6, atol=1e-6).any(), (name, t)
    traced = np.asarray(jax.jit(lambda t: s(t))(jnp.asarray(small, jnp.int32)))
    np.testing.assert_allclose(
        traced, want[: len(small)], rtol=2e-6, atol=1e-7, err_msg=f"{name} (int32, jit)"
    )


def test_noise_window_is_exact_past_2_24():
    base = S.constant(value=1.0)
    s = S.noise(base, key=jax.random.key(0), begin_steps=C, end_steps=C + 128, pct=0.5)
    got = np.asarray(jax.jit(lambda t: s(t))(jnp.asarray([C - 1, C, C + 1, C + 128], jnp.int32)))
    assert got[0] == 1.0 and got[3] == 1.0  # outside [start, end): exactly the base
    assert got[1] != 1.0 and got[2] != 1.0 and got[1] != got[2]  # two different draws


@pytest.mark.parametrize(
    "build, arg, value, near",
    [
        (lambda v: S.step(init_value=1.0, period_steps=v, decay_rate=0.5), "period_steps",
         B + 1, (B, C)),
        (lambda v: S.linear(init_value=1.0, end_value=0.0, total_steps=v), "total_steps",
         2**25 + 1, (2**25, 2**25 + 4)),
        (lambda v: S.piecewise_constant(boundaries=[10, v], values=[1.0, 0.5, 0.1]),
         "boundaries", np.int64(C + 1), (C, C + 128)),
        (lambda v: T.StepLR(step_size=v, gamma=0.1, lr=1.0), "period_steps", B + 1, (B, C)),
    ],
    ids=["step", "linear", "piecewise_constant", "torch.StepLR"],
)  # fmt: skip
def test_a_count_float32_cannot_hold_is_refused_with_the_nearest_values(build, arg, value, near):
    with pytest.raises(
        ValueError, match=rf"{arg}={int(value)} .*nearest are {near[0]} and {near[1]}"
    ):
        build(value)
    assert (
        float(getattr(build(near[1]), arg if arg != "step_size" else "period_steps").max())
        == (near[1])
    )


def test_exact_counts_survive_config_pickle_replace_and_jit_arguments():
    s = S.step(init_value=1.0, period_steps=C, decay_rate=0.5)
    assert int(s.hyperparameters["period_steps"]) == C
    assert str(C) in repr(s)
    assert s.to_config()["args"]["period_steps"] == C
    t = jnp.int32(C - 1)
    for again in (
        S.from_config(s.to_config()),
        S.parse(repr(s)),
        pickle.loads(pickle.dumps(s)),
        s.replace(init_value=2.0),
        jax.tree.map(lambda x: x, s),
    ):
        assert float(again(t)) == float(again.init_value), again
        assert float(again(t + 1)) == 0.5 * float(again.init_value), again
    traces = []

    @jax.jit
    def f(sched, t):
        traces.append(None)
        return sched(t)

    assert float(f(s, t)) == 1.0 and float(f(s.replace(init_value=3.0), t)) == 3.0
    assert float(f(s.replace(period_steps=C + 256), t + 256)) == 1.0  # a new count, no retrace
    assert len(traces) == 1


def test_one_compilation_serves_every_count_past_2_24():
    @jax.jit
    @chex.assert_max_traces(n=1)
    def f(sched, t):
        return sched(t)

    for k in range(4):  # counts float32 holds past 2^24: B + 128 k
        s = S.step(init_value=1.0, period_steps=B + 128 * (k + 1), decay_rate=0.5)
        assert float(f(s, jnp.int32(B + 128 * (k + 1) - 1))) == 1.0
        assert float(f(s, jnp.int32(B + 128 * (k + 1)))) == 0.5
    cyc = [S.sgdr(peak_value=1.0, period_steps=2**25 + 4 * k) for k in range(3)]
    g = jax.jit(chex.assert_max_traces(lambda s, t: s(t), n=1))
    for k, s in enumerate(cyc):
        assert float(g(s, jnp.int32(2**25 + 4 * k))) == 1.0  # the restart, exactly


def test_an_edited_count_leaf_is_taken_as_it_is():
    s = S.step(init_value=1.0, period_steps=C, decay_rate=0.5)
    leaves, treedef = jax.tree.flatten_with_path(s)
    edited = jax.tree.unflatten(  # the period's leaf doubled: 2^31 + 256
        treedef, [x * 2.0 if p[-1].name == "period_steps" else x for p, x in leaves]
    )
    assert float(edited.period_steps) == 2.0 * C
    assert float(edited(2 * C)) == 0.5  # a Python int past int32: a float step
    assert float(edited(INT32_MAX)) == 1.0  # an int32 step below the period: exact
    assert float(edited(jnp.int32(INT32_MAX))) == 1.0


def test_vmap_over_int32_steps_and_gradients_through_the_exact_remainder():
    s = S.cyclic(init_value=0.0, peak_value=1.0, up_steps=50, down_steps=50)
    got = jax.vmap(s)(jnp.asarray([B + 26, B + 51, INT32_MAX], jnp.int32))
    want = [_tri(t, 50, 50) for t in (B + 26, B + 51, INT32_MAX)]
    np.testing.assert_allclose(np.asarray(got), want, rtol=1e-6)
    t = float(2**24 + 10)  # within = 26: rising, d/dt = 1/50
    assert float(jax.grad(s)(t)) == pytest.approx(1 / 50, rel=1e-6)
    # the remainder's derivative with respect to the period: d/dup of within/up at fixed t
    g = jax.grad(
        lambda up: S.cyclic(init_value=0.0, peak_value=1.0, up_steps=up, down_steps=50)(260.0)
    )(50.0)  # 260 = 2 * 100 + 60: within = 260 - 2 (up + 50), falling
    h = 1e-2
    fd = [
        float(S.cyclic(init_value=0.0, peak_value=1.0, up_steps=50.0 + d, down_steps=50)(260.0))
        for d in (-h, h)
    ]
    assert float(g) == pytest.approx((fd[1] - fd[0]) / (2 * h), rel=1e-3)


def test_float32_leaves_and_one_structure_for_every_count():
    s = S.step(init_value=1.0, period_steps=1000, decay_rate=0.5)
    for big in (C, 2**31, 2**40):  # counts past 2^24 leave nothing static
        assert jax.tree.structure(s) == jax.tree.structure(s.replace(period_steps=big))
    assert all(leaf.dtype == jnp.float32 for leaf in jax.tree.leaves(s.replace(period_steps=C)))


def test_step_arithmetic_matches_python_integers():
    """The helpers against Python integers, for int32 steps and counts float32 holds."""
    rng = np.random.default_rng(0)
    mags = [2**8, 2**20, 2**24 + 3, 2**28, 2**30, INT32_MAX]
    a = [int(rng.integers(-1000, m)) for m in mags for _ in range(20)]
    b = [int(np.float32(rng.integers(1, m))) for m in mags for _ in range(20)]
    b = [x if x <= INT32_MAX else 2**31 - 128 for x in b]
    t, c = jnp.asarray(a, jnp.int32), jnp.asarray(b, jnp.float32)
    np.testing.assert_array_equal(np.asarray(st.reached(t, c)), [p >= q for p, q in zip(a, b)])
    np.testing.assert_array_equal(np.asarray(st.before(t, c)), [p < q for p, q in zip(a, b)])
    np.testing.assert_array_equal(np.asarray(st.passed(t, c)), [p > q for p, q in zip(a, b)])
    np.testing.assert_array_equal(
        np.asarray(st.elapsed(t, c)), np.float32([p - q for p, q in zip(a, b)])
    )
    q, r = st.divide(t, c)
    np.testing.assert_array_equal(np.asarray(q), np.float32([p // d for p, d in zip(a, b)]))
    np.testing.assert_array_equal(np.asarray(r), np.float32([p % d for p, d in zip(a, b)]))
    np.testing.assert_array_equal(
        np.asarray(st.epoch(t, c)), [p // d for p, d in zip(a, b)]
    )  # an integer epoch, exactly
    # non-whole counts: step >= c iff step >= ceil(c); elapsed keeps the fraction
    half = c + 0.5
    ok = np.asarray(b) < 2**23  # where float32 holds c + 0.5
    np.testing.assert_array_equal(
        np.asarray(st.reached(t, half))[ok], np.asarray([p >= q + 0.5 for p, q in zip(a, b)])[ok]
    )
    # d elapsed / dc = -1, d r / dp = -q (float and integer steps alike)
    assert float(jax.grad(lambda c: st.elapsed(jnp.int32(5), c))(2.5)) == -1.0
    assert float(jax.grad(lambda p: st.divide(jnp.int32(25), p)[1])(10.0)) == -2.0
    assert float(jax.grad(lambda p: st.divide(25.0, p)[1])(10.0)) == -2.0


def test_restart_cycles_match_python_integers():
    rng = np.random.default_rng(2)
    f = jax.jit(st.restart_cycle)
    for _ in range(200):
        m = int(rng.choice([1, 2, 3]))
        first = int(np.float32(rng.integers(1, 2 ** int(rng.integers(1, 25)))))
        t = int(rng.integers(0, 2**31))
        i = 0
        while m > 1 and first * ((m ** (i + 1) - 1) // (m - 1)) <= t:
            i += 1
        start = first * ((m**i - 1) // (m - 1)) if m > 1 else first * (t // first)
        i = i if m > 1 else t // first
        got_i, got_u, _ = f(jnp.int32(t), jnp.float32(first), jnp.float32(m))
        assert float(got_i) == float(np.float32(i)) and float(got_u) == float(np.float32(t - start))


def test_stacked_members_keep_exact_counts_even_when_they_differ():
    members = [S.step(init_value=v, period_steps=C, decay_rate=0.5) for v in (1.0, 2.0)]
    stacked = jaxlr.sweep.stack(members)
    got = jax.vmap(lambda s: s(jnp.int32(C - 1)))(stacked)
    np.testing.assert_array_equal(np.asarray(got), [1.0, 2.0])  # still stair 0 at C - 1
    # members that differ in such counts stack as float32 leaves and decide exactly
    periods = (C, C + 256, 1000)
    mixed = [S.step(init_value=1.0, period_steps=p, decay_rate=0.5) for p in periods]
    stacked = jaxlr.sweep.stack(mixed)
    assert stacked.period_steps.dtype == jnp.float32
    got = jax.vmap(lambda s: s(jnp.int32(C + 128)))(stacked)
    np.testing.assert_array_equal(np.asarray(got), [0.5 ** ((C + 128) // p) for p in periods])
    # and the stacked tree is differentiable in every leaf (float steps inside a stair)
    lin = jaxlr.sweep.stack(
        [S.linear(init_value=1.0, end_value=0.0, total_steps=p) for p in (2.0**30, 2.0**31)]
    )
    g = jax.grad(lambda s: jnp.sum(jax.vmap(lambda m: m(2.0**29))(s)))(lin)
    np.testing.assert_allclose(np.asarray(g.total_steps), [2.0**29 / 2.0**60, 2.0**29 / 2.0**62])


def test_counts_traced_as_int32_become_float32_leaves_and_stay_exact():
    values = jnp.array([1.0, 0.5])
    bs = jnp.array([[C], [C + 256]], jnp.int32)
    got = jax.vmap(lambda b: S.piecewise_constant(boundaries=b, values=values)(jnp.int32(C + 128)))(
        bs
    )
    np.testing.assert_array_equal(np.asarray(got), [0.5, 1.0])
    f = jax.jit(lambda p: S.step(init_value=1.0, period_steps=p, decay_rate=0.5)(jnp.int32(B)))
    assert float(f(jnp.int32(C))) == 1.0 and float(f(jnp.int32(B))) == 0.5


N29 = 2**29 + 64  # a first period past 2^24 (float32 holds it); periods double


@pytest.mark.parametrize(
    "build",
    [
        lambda: S.sgdr(peak_value=1.0, period_steps=N29, period_mult=2.0),
        lambda: T.CosineAnnealingWarmRestarts(T_0=N29, T_mult=2, lr=1.0),
        lambda: K.CosineDecayRestarts(initial_learning_rate=1.0, first_decay_steps=N29),
    ],
    ids=["sgdr", "torch.CosineAnnealingWarmRestarts", "keras.CosineDecayRestarts"],
)
def test_growing_restart_periods_restart_on_the_exact_step(build):
    s = build()
    starts = [0, N29, 3 * N29]  # F (2^i - 1)
    steps = [t + d for t in starts[1:] for d in (-1, 0, 1)]
    got = np.asarray(jax.jit(lambda t: s(t))(jnp.asarray(steps, jnp.int32)))

    def ref(t):
        i = max(j for j, st in enumerate(starts) if st <= t)
        return _cos(t - starts[i], N29 * 2**i)

    np.testing.assert_allclose(got, [ref(t) for t in steps], atol=1e-6)


def test_hard_restarts_with_several_cycles_restart_on_the_exact_step():
    rng = np.random.default_rng(1)
    for _ in range(10):
        # counts float32 holds (multiples of 64 below 2^29)
        length = 64 * int(rng.integers(2**20, 2**22))
        warm, c = 64 * int(rng.integers(0, 10**3)), 3
        s = H.get_cosine_with_hard_restarts_schedule_with_warmup(
            num_warmup_steps=warm, num_training_steps=warm + length, num_cycles=c, lr=1.0
        )
        steps = [warm + (k * length) // c + d for k in (1, 2) for d in (-1, 0, 1, 2)]
        steps.append(warm + length - 1)
        got = np.asarray(jax.jit(lambda t, s=s: s(t))(jnp.asarray(steps, jnp.int32)))
        want = [_cos((c * (t - warm)) % length, length) for t in steps]
        np.testing.assert_allclose(got, want, atol=1e-5)


def test_piecewise_interpolate_traces_the_same_program_for_10_or_1000_knots():
    def size(n):
        s = S.piecewise_interpolate(boundaries=np.arange(n) * 10, values=np.linspace(1, 0, n))
        return len(jax.make_jaxpr(lambda t: s(t))(jnp.int32(5)).eqns)

    assert size(1000) == size(10)
    s = S.piecewise_interpolate(boundaries=[B, C, C, C + 256], values=[0.0, 1.0, 0.5, 0.0])
    got = [float(s(t)) for t in (B - 1, B, B + 64, C, C + 128, C + 256)]
    np.testing.assert_allclose(got, [0.0, 0.0, 0.5, 0.5, 0.25, 0.0], atol=1e-7)


def test_python_ints_past_int64_are_numbers_and_past_float64_say_so():
    s = S.piecewise_constant(boundaries=[2**70], values=[1.0, 0.5])  # was "must be a number"
    assert float(s(2**70 - 2**60)) == 1.0 and float(s(2**70)) == 0.5
    with pytest.raises(ValueError, match=r"value must be finite, got an integer of 401 digits"):
        S.constant(value=10**400)


@pytest.mark.parametrize("bad", [None, 1j, jnp.complex64(1.0)])
def test_steps_that_are_not_real_numbers_raise(bad):
    with pytest.raises(TypeError, match="step: step must be a real number or array"):
        S.step(init_value=1.0, period_steps=10, decay_rate=0.5)(bad)


def test_infinite_steps_give_the_limit_not_nan():
    inf = float("inf")
    assert float(S.step(init_value=1.0, period_steps=10, decay_rate=0.5)(inf)) == 0.0
    cyc = S.cyclic(init_value=0.0, peak_value=1.0, up_steps=50)
    assert np.isfinite(float(cyc(inf))) and np.isfinite(float(jax.grad(cyc)(inf)))
    assert np.isnan(float(S.step(init_value=1.0, period_steps=10, decay_rate=0.5)(float("nan"))))


def test_second_review_restart_edges_and_user_callables():
    # a step before 0 is in cycle 0, before its start: the end value (as before), never NaN
    s = S.sgdr(peak_value=1.0, period_steps=10)
    assert float(s(-11)) == 0.0 and float(s(-1)) == 0.0
    assert np.isfinite(float(jax.grad(s)(-11.0)))
    # a start past the integer range is no start: 2^31 - 1 with m = 3, first = 1 is cycle 20
    i, _, _ = st.restart_cycle(jnp.int32(INT32_MAX), 1.0, 3.0)
    assert float(i) == max(j for j in range(40) if (3**j - 1) // 2 <= INT32_MAX)
    # a user's scale_fn may branch in Python, and a schedule holding it is not cached by jit
    import gc
    import weakref

    class Scale:
        def __call__(self, x):
            return 1.0 if x < 2 else 0.5

    fn = Scale()
    alive = weakref.ref(fn)
    c = T.CyclicLR(base_lr=0.0, max_lr=1.0, step_size_up=2, scale_fn=fn, cycle_momentum=False)
    assert float(c(3)) == pytest.approx(0.5)  # cycle 1, half-way down; scale_fn(1) = 1.0
    assert float(c(7)) == pytest.approx(0.25)  # cycle 2: scale_fn(2) = 0.5
    del c, fn
    gc.collect()
    assert alive() is None


def test_operations_per_evaluation_against_optax():
    """Ops traced for one int32 step (``benchmarks/schedule_ops.py``), printed and bounded.

    Issue 22's target is 2x Optax's count. linear and warmup_cosine meet it; cosine is at 2.09x
    (its k-decay and power each cost a guarded pow); the staircase and sgdr carry an exact integer
    path, a float fallback for non-whole periods and saturation, and stay above it. The bounds
    hold today's counts so the core cannot silently grow again (before issue 22: linear 39,
    cosine 51, warmup_cosine 86, exponential staircase 183, sgdr 830).
    """
    from benchmarks.schedule_ops import op_counts

    bounds = {
        "linear": 2.0,
        "cosine": 2.1,
        "warmup_cosine": 2.0,
        "exponential_staircase": 4.0,
        "sgdr": 4.0,
    }
    counts = op_counts()
    for name, (ours, theirs) in counts.items():
        print(f"{name}: jaxlr {ours} ops, optax {theirs} ops, ratio {ours / theirs:.2f}")
    assert {n: ours / theirs <= bounds[n] for n, (ours, theirs) in counts.items()} == {
        n: True for n in bounds
    }, counts


def test_a_traced_negative_length_is_a_jump_at_the_start():
    # linear's documented behaviour for a traced total_steps < begin_steps: the value jumps from
    # init_value to end_value at begin_steps (a phase of length <= 0 is done from its start on)
    def value(total, t):
        s = S.linear(init_value=1.0, end_value=0.0, total_steps=total, begin_steps=10)
        return s(t)

    got = [float(jax.jit(value)(jnp.float32(5.0), jnp.int32(t))) for t in (0, 9, 10, 11, 100)]
    assert got == [1.0, 1.0, 0.0, 0.0, 0.0]
    # the fraction itself, for lengths -5, 0 and 10, against the formula written out
    for length in (-5.0, 0.0, 10.0):
        for t in (0, 7, 10, 11, 15, 30):
            want = float(t >= 10) if length <= 0 else min(max((t - 10) / length, 0.0), 1.0)
            got = float(st.progress(jnp.int32(t), 10.0, length))
            assert got == pytest.approx(want), (length, t)


# Boundaries and periods a law builds from several counts (issue 22, review item 1): each count
# is float32-exact, their sum or difference is not (2**25 + 3), and the phase must still start on
# its exact step. References: Python integers from the constructors' arguments.
_U, _D = 3, 2**25  # a cycle of 2**25 + 3 steps
_L = _U + _D


def _wsd_ref(t, total, warmup, decay):
    if t < warmup:
        return t / warmup
    start = total - decay
    return 1.0 if t < start else 1.0 - min(t - start, decay) / decay


SUM_CASES = {
    "cyclic": (
        S.cyclic(init_value=0.0, peak_value=1.0, up_steps=_U, down_steps=_D),
        [k * _L + j for k in (1, 5, 60) for j in (-1, 0, 1, 2, 3, 4)],
        lambda t: _tri(t, _U, _D),
    ),
    "cyclic_long_up": (
        S.cyclic(init_value=0.0, peak_value=1.0, up_steps=_D, down_steps=_U),
        [k * _L + j for k in (1, 5) for j in (-3, -2, -1, 0, 1)],
        lambda t: _tri(t, _D, _U),
    ),
    "torch.CyclicLR": (
        T.CyclicLR(
            base_lr=0.0, max_lr=1.0, step_size_up=_U, step_size_down=_D, cycle_momentum=False
        ),
        [k * _L + j for k in (1, 5, 60) for j in (-1, 0, 1, 2, 3, 4)],
        lambda t: _tri(t, _U, _D),
    ),
    "torch.CyclicLR_triangular2": (
        T.CyclicLR(
            base_lr=0.0,
            max_lr=1.0,
            step_size_up=_U,
            step_size_down=_D,
            mode="triangular2",
            cycle_momentum=False,
        ),
        [k * _L + j for k in (1, 5) for j in (-1, 0, 1, 2, 3)],
        lambda t: _tri(t, _U, _D) * 0.5 ** (t // _L),
    ),
    "wsd": (
        S.wsd(peak_value=1.0, total_steps=2**25 + 8, warmup_steps=3, decay_steps=5),
        [2**25 + k for k in range(2, 10)],
        lambda t: _wsd_ref(t, 2**25 + 8, 3, 5),
    ),
    "wsd_no_warmup": (
        S.wsd(peak_value=1.0, total_steps=2**25 + 4, warmup_steps=0, decay_steps=3),
        [2**25 + k for k in range(-1, 6)],
        lambda t: _wsd_ref(t, 2**25 + 4, 0, 3),
    ),
    "infinite": (
        S.infinite(
            peak_value=1.0,
            constant_value=0.5,
            total_steps=2**25 + 8,
            warmup_steps=1,
            cooldown_steps=1,
            decay_steps=5,
        ),
        [2**25 + k for k in range(2, 10)],
        lambda t: 0.5 * (1.0 - min(max(t - (2**25 + 3), 0), 5) / 5),
    ),
    "transformers.get_wsd_schedule": (
        H.get_wsd_schedule(
            num_warmup_steps=3,
            num_stable_steps=2**25,
            num_decay_steps=4,
            decay_type="linear",
            lr=1.0,
        ),
        [2**25 + k for k in range(2, 9)],
        lambda t: 1.0 - min(max(t - (2**25 + 3), 0), 4) / 4,
    ),
}


@pytest.mark.parametrize("name", sorted(SUM_CASES))
def test_boundaries_built_from_several_counts_are_exact(name):
    s, ts, ref = SUM_CASES[name]
    want = np.array([ref(t) for t in ts])
    assert max(ts) <= INT32_MAX
    got = np.array([float(s(t)) for t in ts])
    np.testing.assert_allclose(got, want, rtol=2e-6, atol=1e-7, err_msg=f"{name} (Python ints)")
    traced = np.asarray(jax.jit(lambda t: s(t))(jnp.asarray(ts, jnp.int32)))
    np.testing.assert_allclose(traced, want, rtol=2e-6, atol=1e-7, err_msg=f"{name} (int32)")


def test_a_sum_of_counts_is_added_in_integers_when_whole():
    t = jnp.asarray([2**25 + 2, 2**25 + 3, 2**25 + 4], jnp.int32)
    b = st.Sum(jnp.float32(2**25), 3.0)
    assert np.asarray(st.reached(t, b)).tolist() == [False, True, True]
    assert np.asarray(st.passed(t, b)).tolist() == [False, False, True]
    assert np.asarray(st.elapsed(t, b)).tolist() == [-1.0, 0.0, 1.0]
    assert np.asarray(st.shift(t, b)).tolist() == [-1, 0, 1]
    q, r = st.divide(jnp.int32(7 * (2**25 + 3) + 2), b)
    assert (float(q), float(r)) == (7.0, 2.0)
    assert float(st.floor_div(jnp.int32(7 * (2**25 + 3) - 1), b)) == 6.0
    # a part that is not whole: the float sum (ceil for reached, as for one count)
    assert np.asarray(st.reached(jnp.asarray([3, 4], jnp.int32), st.Sum(1.5, 2.0))).tolist() == [
        False,
        True,
    ]
    # saturates instead of wrapping past int32
    assert not bool(st.reached(jnp.int32(INT32_MAX), st.Sum(2.0**30 * 1.5, 2.0**30 * 1.5)))
    # gradients flow into every part
    g = jax.grad(lambda a, d: st.elapsed(jnp.int32(2**25 + 9), st.Sum(a, -d)), argnums=(0, 1))
    assert [float(x) for x in g(jnp.float32(2**25 + 8), jnp.float32(5.0))] == [-1.0, 1.0]


def test_a_derived_stable_length_is_not_rounded_to_float32():
    # T - W - D = 2**25 + 1, which float32 cannot hold: refused, never rounded silently
    with pytest.raises(ValueError, match="num_stable_steps"):
        H.get_wsd_schedule(
            num_warmup_steps=3, num_decay_steps=0, num_training_steps=2**25 + 4, lr=1.0
        )
    s = H.get_wsd_schedule(
        num_warmup_steps=3, num_decay_steps=5, num_training_steps=2**25 + 8, lr=1.0
    )
    assert float(s.num_stable_steps) == 2**25


@pytest.mark.parametrize("begin, period", [(3.5, 2.5), (3.5, 2.0), (0.25, 3.0), (3.0, 2.5)])
def test_staircase_stairs_from_a_start_that_is_not_whole_follow_the_formula(begin, period):
    s = S.exponential(
        init_value=1.0, decay_rate=0.5, period_steps=period, begin_steps=begin, staircase=True
    )
    ts = list(range(0, 16))
    want = [0.5 ** math.floor(max(t - begin, 0.0) / period) for t in ts]
    assert [float(s(t)) for t in ts] == want  # Python ints
    assert [float(s(float(t))) for t in ts] == want  # floats
    got = jax.jit(lambda t: s(t))(jnp.asarray(ts, jnp.int32))
    assert np.asarray(got).tolist() == want


def test_a_traced_infinite_period_gives_finite_values_not_nan():
    t = jnp.asarray([0, 5, 2**30], jnp.int32)
    tf = t.astype(jnp.float32)
    inf = jnp.float32(jnp.inf)
    for step in (t, tf):
        q, r = jax.jit(st.divide)(step, inf)  # never a period: quotient 0, the step itself
        assert np.asarray(q).tolist() == [0.0, 0.0, 0.0]
        assert np.asarray(r).tolist() == np.asarray(tf).tolist()
        i, u, _ = jax.jit(st.restart_cycle)(step, inf, 2.0)
        assert np.asarray(i).tolist() == [0.0, 0.0, 0.0]
        assert np.asarray(u).tolist() == np.asarray(tf).tolist()
        within, _ = jax.jit(st.cycle_position)(step, 0.0, inf, 3.0)
        assert np.asarray(within).tolist() == (3 * np.asarray(tf)).tolist()
    # the families: as step/exponential with an infinite period, the first period never ends
    ref = [float(S.step(init_value=1.0, period_steps=2.0**100, decay_rate=0.5)(x)) for x in t]
    for build in (
        lambda p: S.sgdr(peak_value=1.0, period_steps=p),
        lambda p: S.step(init_value=1.0, period_steps=p, decay_rate=0.5),
        lambda p: S.exponential(init_value=1.0, decay_rate=0.5, period_steps=p, staircase=True),
        lambda p: T.CosineAnnealingWarmRestarts(T_0=p, lr=1.0),
    ):
        got = jax.jit(lambda p: build(p)(t))(inf)
        assert np.asarray(got).tolist() == ref
        g = jax.grad(lambda p: build(p)(t).sum())(inf)
        assert np.isfinite(np.asarray(g)).all()
    g = jax.grad(lambda p: st.divide(t, p)[1].sum())(inf)
    assert np.isfinite(np.asarray(g))


@pytest.mark.parametrize("m", [2, 3, 4, 5, 7, 8, 10, 16, 100, 1000, 2**15, 2**16 - 1])
def test_restart_cycles_are_exact_at_every_cycle_start_below_2_31(m):
    # the documented range: whole first >= 1, whole mult in [2, 2^16), int32 steps >= 0;
    # sgdr(period_steps=1, period_mult=4) at 1431655764 is cycle 15's last step, not cycle 16
    f = jax.jit(lambda t, first, mult: st.restart_cycle(t, first, mult)[:2])
    for first in (1, 3, 7, 100):
        starts, s, i = [], 0, 0
        while s < 2**31:
            starts.append(s)
            s, i = s + first * m**i, i + 1
        ts = sorted({x for s in starts for x in (s - 1, s, s + 1) if 0 <= x < 2**31} | {INT32_MAX})
        want_i = [max(k for k, s in enumerate(starts) if s <= t) for t in ts]
        want_u = [t - starts[k] for t, k in zip(ts, want_i)]
        got_i, got_u = f(jnp.asarray(ts, jnp.int32), jnp.float32(first), jnp.float32(m))
        assert np.asarray(got_i).tolist() == want_i, (m, first)
        assert np.asarray(got_u).tolist() == np.float32(want_u).tolist(), (m, first)
    s = S.sgdr(peak_value=1.0, period_steps=1, period_mult=4)
    got = float(jax.jit(lambda t: s(t))(jnp.int32(1431655764)))
    assert got == pytest.approx(_cos(4**15 - 1, 4**15), abs=1e-6)


@pytest.mark.parametrize("staircase", [False, True])
def test_negative_int32_steps_agree_with_floats_in_the_documented_range(staircase):
    # documented: exact while step > begin_steps - 2**31 (Schedule's "Steps" paragraph)
    begin = 10**9
    s = S.exponential(
        init_value=1.0, decay_rate=0.5, period_steps=10, begin_steps=begin, staircase=staircase
    )
    edge = begin - 2**31 + 1  # the most negative step in the range
    ts = [edge, edge + 1, edge + 1000, -1, 0, begin - 1, begin, begin + 10, begin + 25]
    want = [0.5 ** ((max(t - begin, 0) // 10) if staircase else max(t - begin, 0) / 10) for t in ts]
    got = jax.jit(lambda t: s(t))(jnp.asarray(ts, jnp.int32))
    np.testing.assert_allclose(np.asarray(got), want, rtol=1e-6)
