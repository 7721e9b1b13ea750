"""Exact integer steps past float32's 2^24 (issue 12, item 1).

Every piecewise decision (which piece, which stair, which cycle) is exact for integer steps and
integer step counts up to 2^31 (optax's int32 counters; Python ints beyond), and the value inside
a piece is as accurate as float32 allows. The references are Python integer arithmetic written
from the constructors' arguments (the documented formulas), never jaxlr's laws.
"""

from __future__ import annotations

import math
import pickle

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxlr
from jaxlr.compat import keras as K
from jaxlr.compat import torch as T
from jaxlr.compat import transformers as H

S = jaxlr.schedules
B = 2**30  # 1073741824; B % 100 == 24
INT32_MAX = 2**31 - 1


def _cos(u, n):
    return 0.5 * (1.0 + math.cos(math.pi * u / n))


def _tri(t, up, down):
    within = t % (up + down)
    return within / up if within <= up else (up + down - within) / down


# name -> (schedule, steps, reference(t) from the constructor's arguments)
CASES = {
    "piecewise_constant": (
        S.piecewise_constant(boundaries=[B + 1, B + 3], values=[1.0, 0.5, 0.25]),
        [B, B + 1, B + 2, B + 3, B + 4],
        lambda t: [1.0, 0.5, 0.25][(t >= B + 1) + (t >= B + 3)],
    ),
    "step": (
        S.step(init_value=1.0, period_steps=B + 1, decay_rate=0.5),
        [B, B + 1, B + 2, 2 * B + 1, 2 * B + 2, 3 * B + 3],
        lambda t: 0.5 ** (t // (B + 1)),
    ),
    "multistep": (
        S.multistep(init_value=1.0, boundaries=[30_000_001, B + 7], decay_rate=[0.1, 0.5]),
        [30_000_000, 30_000_001, B + 6, B + 7],
        lambda t: (0.1 if t >= 30_000_001 else 1.0) * (0.5 if t >= B + 7 else 1.0),
    ),
    "exponential_staircase": (
        S.exponential(
            init_value=1.0, decay_rate=0.5, period_steps=B + 1, begin_steps=3, staircase=True
        ),
        [B + 3, B + 4, 2 * B + 5, 2 * B + 6],
        lambda t: 0.5 ** (max(t - 3, 0) // (B + 1)),
    ),
    "linear_late": (
        S.linear(init_value=1.0, end_value=0.0, begin_steps=B, total_steps=B + 100),
        [B - 1, B, B + 25, B + 50, B + 99, B + 100, B + 101],
        lambda t: 1.0 - min(max((t - B) / 100, 0.0), 1.0),
    ),
    "warmup_cosine": (
        S.warmup_cosine(peak_value=1.0, warmup_steps=B + 1, total_steps=B + 101),
        [B + 1, B + 26, B + 51, B + 100, B + 101],
        lambda t: t / (B + 1) if t < B + 1 else _cos(min(t - B - 1, 100), 100),
    ),
    "wsd_late_decay": (
        S.wsd(peak_value=1.0, total_steps=B + 1000, warmup_steps=100, decay_steps=100),
        [B + 899, B + 900, B + 925, B + 950, B + 999, B + 1000],
        lambda t: 1.0 - min(max((t - (B + 900)) / 100, 0.0), 1.0),
    ),
    "sgdr": (
        S.sgdr(peak_value=1.0, period_steps=100),
        [B + 75, B + 76, B + 101, B + 126, 2**31 + 52],
        lambda t: _cos(t % 100, 100),
    ),
    "cyclic": (
        S.cyclic(init_value=0.0, peak_value=1.0, up_steps=50, down_steps=50),
        [B + 26, B + 51, B + 76, 2**31 + 25, 2**31 + 52],
        lambda t: _tri(t, 50, 50),
    ),
    "join": (
        S.join(
            [S.constant(value=1.0), S.step(init_value=0.5, period_steps=10, decay_rate=0.5)],
            boundaries=[B + 1],
        ),
        [B, B + 1, B + 10, B + 11],
        lambda t: 1.0 if t < B + 1 else 0.5 * 0.5 ** ((t - B - 1) // 10),
    ),
    "per_epoch": (
        S.per_epoch(S.piecewise_constant(boundaries=[1], values=[1.0, 0.5]), steps_per_epoch=B + 1),
        [B, B + 1],
        lambda t: 1.0 if t // (B + 1) < 1 else 0.5,
    ),
    "tanh_end": (
        S.tanh(init_value=1.0, total_steps=B + 1),
        [B + 1, B + 2],
        lambda t: 0.0,
    ),
    "torch.StepLR": (
        T.StepLR(step_size=B + 1, gamma=0.1, lr=1.0),
        [B, B + 1],
        lambda t: 0.1 ** (t // (B + 1)),
    ),
    "torch.MultiStepLR": (
        T.MultiStepLR(milestones=[B + 1], gamma=0.1, lr=1.0),
        [B, B + 1],
        lambda t: 0.1 if t >= B + 1 else 1.0,
    ),
    "torch.ConstantLR": (
        T.ConstantLR(factor=0.5, total_iters=B + 1, lr=1.0),
        [B, B + 1],
        lambda t: 0.5 if t < B + 1 else 1.0,
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
        K.PiecewiseConstantDecay(boundaries=[B + 1], values=[1.0, 0.5]),
        [B + 1, B + 2],
        lambda t: 1.0 if t <= B + 1 else 0.5,
    ),
    "keras.ExponentialDecay": (
        K.ExponentialDecay(
            initial_learning_rate=1.0, decay_steps=B + 1, decay_rate=0.5, staircase=True
        ),
        [B, B + 1],
        lambda t: 0.5 ** (t // (B + 1)),
    ),
    "keras.CosineDecayRestarts": (
        K.CosineDecayRestarts(initial_learning_rate=1.0, first_decay_steps=100, t_mul=1.0),
        [B + 75, B + 76, B + 126],
        lambda t: _cos(t % 100, 100),
    ),
    "transformers.hard_restarts": (
        H.get_cosine_with_hard_restarts_schedule_with_warmup(
            num_warmup_steps=10, num_training_steps=10 + B, num_cycles=4, lr=1.0
        ),
        [10 + B // 4 - 1, 10 + B // 4, 10 + B // 2 + 1, 10 + B - 1, 10 + B],
        lambda t: 0.0 if t - 10 >= B else _cos((4 * (t - 10)) % B, B),
    ),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_decisions_past_2_24_are_exact(name):
    s, steps, ref = CASES[name]
    want = np.array([ref(t) for t in steps])
    # Python ints (any size), and the int32 counters optax keeps (traced, under jit)
    got = np.array([float(s(t)) for t in steps])
    np.testing.assert_allclose(got, want, rtol=2e-6, atol=1e-7, err_msg=f"{name} (Python ints)")
    small = [t for t in steps if t <= INT32_MAX]
    traced = np.asarray(jax.jit(lambda t: s(t))(jnp.asarray(small, jnp.int32)))
    np.testing.assert_allclose(
        traced, want[: len(small)], rtol=2e-6, atol=1e-7, err_msg=f"{name} (int32, jit)"
    )


def test_noise_window_is_exact_past_2_24():
    base = S.constant(value=1.0)
    s = S.noise(base, key=jax.random.key(0), start_step=B + 1, end_step=B + 3, pct=0.5)
    got = np.asarray(jax.jit(lambda t: s(t))(jnp.asarray([B, B + 1, B + 2, B + 3], jnp.int32)))
    assert got[0] == 1.0 and got[3] == 1.0  # outside [start, end): exactly the base
    assert got[1] != 1.0 and got[2] != 1.0 and got[1] != got[2]  # two different draws


def test_exact_counts_survive_config_pickle_replace_and_jit_arguments():
    s = S.step(init_value=1.0, period_steps=B + 1, decay_rate=0.5)
    assert int(s.hyperparameters["period_steps"]) == B + 1
    assert "1073741825" in repr(s)
    assert s.to_config()["args"]["period_steps"] == B + 1
    t = jnp.int32(B)
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
    assert len(traces) == 1  # the kept remainder is static: editing a value does not retrace


def test_an_edited_count_leaf_drops_the_remainder_it_no_longer_matches():
    s = S.step(init_value=1.0, period_steps=B + 1, decay_rate=0.5)
    leaves, treedef = jax.tree.flatten_with_path(s)
    edited = jax.tree.unflatten(  # the period's leaf doubled: 2^31 (the remainder stays static)
        treedef, [x * 2.0 if p[-1].name == "period_steps" else x for p, x in leaves]
    )
    assert float(edited.period_steps) == 2.0**31
    # the leaf is taken as it now is: step 2^31 starts stair 1 (with the old remainder of +1
    # the period would be 2^31 + 1 and the step still on stair 0)
    assert float(edited(2**31)) == 0.5
    assert float(edited(2**31 - 1)) == 1.0


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


def test_float32_leaves_and_structure_unchanged_for_ordinary_counts():
    s = S.step(init_value=1.0, period_steps=1000, decay_rate=0.5)
    assert s._residuals == ()  # nothing was lost: same tree as before, no static remainder
    assert jax.tree.structure(s) == jax.tree.structure(s.replace(period_steps=2000))
    assert all(leaf.dtype == jnp.float32 for leaf in jax.tree.leaves(s))


def test_exact_arithmetic_matches_python_integers():
    """The primitives against Python integers, on values built every way a law builds them:
    split from Python ints and int32 counters, and differences of those (negative high parts)."""
    from jaxlr._src import exact

    rng = np.random.default_rng(0)
    mags = [2**8, 2**20, 2**24 + 3, 2**28, 2**30, INT32_MAX]
    a = [int(rng.integers(0, m)) for m in mags for _ in range(20)]
    b = [int(rng.integers(1, m)) for m in mags for _ in range(20)]
    c = [int(rng.integers(0, 2**31 - 1)) for _ in a]
    ea = exact.split(np.asarray(a, np.int64))
    eb = exact.split(jnp.asarray(b, jnp.int32))
    ec = exact.split(jnp.asarray(c, jnp.int32))
    shifted = (ea + ec) - ec  # the same values with other high and low parts
    # a count below 2^8 is (0, n): minus a float start, its high part is negative
    small = [int(rng.integers(0, 256)) for _ in a]
    start = [int(rng.integers(0, n + 1)) for n in small]
    late = exact.split(jnp.asarray(small, jnp.int32)) - jnp.asarray(start, jnp.float32)
    cases = (
        (ea, a),
        (shifted, a),
        (ea - eb, [p - q for p, q in zip(a, b)]),
        (late, [n - d for n, d in zip(small, start)]),
    )
    for x, xs in cases:
        vals = np.asarray(exact.value(x), np.float64)
        np.testing.assert_allclose(vals, np.asarray(xs, np.float64), rtol=1e-7)
        np.testing.assert_array_equal(np.asarray(x >= eb), [p >= q for p, q in zip(xs, b)])
        np.testing.assert_array_equal(np.asarray(x < eb), [p < q for p, q in zip(xs, b)])
        q, r = exact.divmod_steps(x, eb)
        want_q = [p // d for p, d in zip(xs, b)]
        want_r = [p % d for p, d in zip(xs, b)]
        ok = [p >= 0 for p in xs]  # the exact (integer) path; negatives go through floats
        got_q = np.asarray(q.hi, np.float64) + np.asarray(q.lo, np.float64)
        got_r = np.asarray(r.hi, np.float64) + np.asarray(r.lo, np.float64)
        np.testing.assert_array_equal(got_q[ok], np.asarray(want_q, np.float64)[ok])
        np.testing.assert_array_equal(got_r[ok], np.asarray(want_r, np.float64)[ok])
        np.testing.assert_allclose(got_r, want_r, atol=2.0**8)  # floats: within rounding
        floors = np.asarray(exact.floor_uint(x), np.float64)
        np.testing.assert_array_equal(floors[ok], np.asarray(xs, np.float64)[ok])


def test_stacked_members_keep_exact_counts_even_when_they_differ():
    members = [S.step(init_value=v, period_steps=B + 1, decay_rate=0.5) for v in (1.0, 2.0)]
    st = jaxlr.sweep.stack(members)
    got = jax.vmap(lambda s: s(jnp.int32(B)))(st)
    np.testing.assert_array_equal(np.asarray(got), [1.0, 2.0])  # still stair 0 at 2^30
    # members that differ in such counts stack with int32 count leaves (exact)
    mixed = [S.step(init_value=1.0, period_steps=p, decay_rate=0.5) for p in (B + 1, B + 3, 1000)]
    st = jaxlr.sweep.stack(mixed)
    assert st.period_steps.dtype == jnp.int32
    got = jax.vmap(lambda s: s(jnp.int32(B + 2)))(st)
    want = [0.5 ** ((B + 2) // p) for p in (B + 1, B + 3, 1000)]
    np.testing.assert_array_equal(np.asarray(got), want)
    # past int32 there is no exact leaf to stack into: a clear error, not a rounded sweep
    far = [S.step(init_value=1.0, period_steps=p, decay_rate=0.5) for p in (2**33 + 1, 2**33 + 3)]
    with pytest.raises(ValueError, match="kept exactly as static structure"):
        jaxlr.sweep.stack(far)


def test_counts_traced_as_int32_stay_exact_under_vmap_and_jit():
    values = jnp.array([1.0, 0.5])
    bs = jnp.array([[B + 1], [B + 3]], jnp.int32)
    got = jax.vmap(lambda b: S.piecewise_constant(boundaries=b, values=values)(jnp.int32(B + 2)))(
        bs
    )
    np.testing.assert_array_equal(np.asarray(got), [0.5, 1.0])
    f = jax.jit(lambda p: S.step(init_value=1.0, period_steps=p, decay_rate=0.5)(jnp.int32(B)))
    assert float(f(jnp.int32(B + 1))) == 1.0 and float(f(jnp.int32(B))) == 0.5


N29 = 2**29 + 1  # a first period float32 cannot hold; periods double


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
        length, warm, c = int(rng.integers(2**26, 2**28)), int(rng.integers(0, 10**5)), 3
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
    s = S.piecewise_interpolate(boundaries=[B, B + 1, B + 1, B + 101], values=[0.0, 1.0, 0.5, 0.0])
    got = [float(s(t)) for t in (B - 1, B, B + 1, B + 51, B + 101)]
    np.testing.assert_allclose(got, [0.0, 0.0, 0.5, 0.25, 0.0], atol=1e-7)


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
    from jaxlr._src import exact

    # a step before 0 is in cycle 0, before its start: the end value (as before), never NaN
    s = S.sgdr(peak_value=1.0, period_steps=10)
    assert float(s(-11)) == 0.0 and float(s(-1)) == 0.0
    assert np.isfinite(float(jax.grad(s)(-11.0)))
    # a start past the unsigned range is no start: 2^32 - 1 with m = 3, first = 1 is cycle 20
    i, _, _ = exact.restart_cycle(jnp.uint32(2**32 - 1), 1, 3.0)
    assert float(i) == max(j for j in range(40) if (3**j - 1) // 2 <= 2**32 - 1)
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
