"""Schedules at their edges (issue 12): the reproductions of the hostile-input probe, kept small.

- every law is finite for valid concrete configurations over the whole step range (item 4);
- traced invalid values are clamped as the docstrings say, never NaN or inf (item 4);
- Python ints past 2^31 are accepted where users write step counts (item 10);
- static flags are real bools, and documented open bounds are enforced (item 15).
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxlr import schedules as S

STEPS = jnp.asarray([0.0, 1.0, 5.0, 99.0, 100.0, 1e4, 2.0**24 + 1, 2.0**31, 2.0**33, 1e12, 3e38])
BASE = S.cosine(init_value=1.0, total_steps=100)
TINY = float(jnp.finfo(jnp.float32).tiny)  # the documented clamp of a traced length or rate <= 0


def _finite(x):
    return bool(np.all(np.isfinite(np.asarray(x))))


# -- item 4: valid configurations that used to evaluate to NaN / inf ------------------------------


def test_exponential_and_step_growth_from_zero_is_zero_not_nan():
    """0 * inf was NaN: a growing rate from init_value=0 stays 0."""
    e = S.exponential(init_value=0.0, decay_rate=2.0, period_steps=1)
    s = S.step(init_value=0.0, period_steps=1, decay_rate=2.0)
    assert float(e(200)) == 0.0 and float(s(200)) == 0.0


def test_growth_saturates_at_the_largest_float_instead_of_inf():
    big = float(jnp.finfo(jnp.float32).max)
    for sched in (
        S.exponential(init_value=1.0, decay_rate=2.0, period_steps=1),
        S.step(init_value=1.0, period_steps=1, decay_rate=2.0),
    ):
        assert float(sched(10)) == pytest.approx(1024.0)  # exact where representable
        v = float(sched(1000))
        assert math.isfinite(v) and v > 1e37 and v <= big


def test_cyclic_exp_range_with_a_growing_rate_stays_finite():
    s = S.cyclic(init_value=0.1, peak_value=1.0, up_steps=50, mode="exp_range", decay_rate=1.01)
    v = np.asarray(jax.jit(s)(jnp.arange(19_000, 20_001, dtype=jnp.float32)))
    assert _finite(v)
    # where the height is 0 (cycle ends) the LR is the low value, not 0 * inf
    assert float(s(19_000)) == pytest.approx(0.1)


EXTREME = {
    "step_rate_1e30": lambda: S.step(init_value=1.0, period_steps=10, decay_rate=1e30),
    "exponential_rate_1e30": lambda: S.exponential(
        init_value=1.0, decay_rate=1e30, period_steps=1e-3
    ),
    "multistep_rate_1e30": lambda: S.multistep(
        init_value=1.0, boundaries=[10, 20], decay_rate=1e30
    ),
    "cyclic_rate_1e30": lambda: S.cyclic(
        init_value=0.1, peak_value=1.0, up_steps=10, mode="exp_range", decay_rate=1e30
    ),
    "cyclic_huge_period": lambda: S.cyclic(init_value=0.1, peak_value=1.0, up_steps=1e30),
    "sgdr_mult_1e30": lambda: S.sgdr(peak_value=1.0, period_steps=10, period_mult=1e30),
    "sgdr_peak_decay_1e30": lambda: S.sgdr(peak_value=1.0, period_steps=10, peak_decay=1e30),
    "sgdr_tiny_period": lambda: S.sgdr(peak_value=1.0, period_steps=1e-30),
    "inverse_time_tiny_period": lambda: S.inverse_time(
        init_value=1.0, decay_rate=1e30, period_steps=1e-30
    ),
    "noam_huge_warmup": lambda: S.noam(d_model=1e-30, warmup_steps=1e30),
    "inverse_sqrt_tiny_timescale": lambda: S.inverse_sqrt(
        peak_value=1.0, warmup_steps=0, timescale=1e-30
    ),
    "wsd_exponential_tiny_end": lambda: S.wsd(
        peak_value=1e30, total_steps=100, decay_steps=50, end_value=1e-30, decay_shape="exponential"
    ),
    "cosine_high_power": lambda: S.cosine(init_value=1.0, total_steps=1e-30, power=1e30, k=1e30),
}


@pytest.mark.parametrize("name", sorted(EXTREME))
def test_valid_extreme_configurations_are_finite_over_the_whole_step_range(name):
    assert _finite(jax.jit(EXTREME[name]())(STEPS)), name


# -- item 4: traced invalid values are clamped ---------------------------------------------------

TRACED = {
    # name: (build from one traced value, documented clamp: an equal concrete schedule)
    "step.period_steps": (
        lambda v: S.step(init_value=1.0, period_steps=v, decay_rate=0.5),
        lambda: S.step(init_value=1.0, period_steps=TINY, decay_rate=0.5),
    ),
    "exponential.period_steps": (
        lambda v: S.exponential(init_value=1.0, decay_rate=0.5, period_steps=v),
        lambda: S.exponential(init_value=1.0, decay_rate=0.5, period_steps=TINY),
    ),
    "step.decay_rate": (
        lambda v: S.step(init_value=1.0, period_steps=10, decay_rate=v),
        lambda: S.step(init_value=1.0, period_steps=10, decay_rate=TINY),
    ),
    "inverse_time.period_steps": (
        lambda v: S.inverse_time(init_value=1.0, decay_rate=0.5, period_steps=v),
        lambda: S.inverse_time(init_value=1.0, decay_rate=0.5, period_steps=TINY),
    ),
    "noam.d_model": (
        lambda v: S.noam(d_model=v, warmup_steps=10),
        lambda: S.noam(d_model=TINY, warmup_steps=10),
    ),
    "cyclic.up_steps": (
        lambda v: S.cyclic(init_value=0.1, peak_value=1.0, up_steps=v, down_steps=10),
        lambda: S.cyclic(init_value=0.1, peak_value=1.0, up_steps=TINY, down_steps=10),
    ),
    "cyclic_momentum.up_steps": (
        lambda v: S.cyclic_momentum(up_steps=v, down_steps=10),
        lambda: S.cyclic_momentum(up_steps=TINY, down_steps=10),
    ),
    "inverse_sqrt.timescale": (
        lambda v: S.inverse_sqrt(peak_value=1.0, warmup_steps=10, timescale=v),
        lambda: S.inverse_sqrt(peak_value=1.0, warmup_steps=10, timescale=TINY),
    ),
    "sgdr.period_steps": (
        lambda v: S.sgdr(peak_value=1.0, period_steps=v),
        lambda: S.sgdr(peak_value=1.0, period_steps=TINY),
    ),
    "per_epoch.steps_per_epoch": (
        lambda v: S.per_epoch(BASE, steps_per_epoch=v),
        lambda: S.per_epoch(BASE, steps_per_epoch=TINY),
    ),
    "sgdr.period_mult": (
        lambda v: S.sgdr(peak_value=1.0, period_steps=10, period_mult=v),
        lambda: S.sgdr(peak_value=1.0, period_steps=10, period_mult=1.0),
    ),
}


@pytest.mark.parametrize("name", sorted(TRACED))
def test_traced_invalid_values_are_clamped_as_documented(name):
    build, clamped = TRACED[name]
    bad = jnp.asarray([0.0, -1.0])  # built inside jit(vmap): the constructor sees tracers
    got = np.asarray(jax.jit(jax.vmap(lambda v: build(v)(STEPS)))(bad))
    assert _finite(got), (name, got)
    want = np.asarray(clamped()(STEPS))
    np.testing.assert_allclose(got, np.stack([want, want]), rtol=1e-6)


def test_concrete_invalid_values_still_raise():
    with pytest.raises(ValueError, match="step: period_steps must be > 0"):
        S.step(init_value=1.0, period_steps=0, decay_rate=0.5)
    with pytest.raises(ValueError, match="noam: d_model must be > 0"):
        S.noam(d_model=0)
    with pytest.raises(ValueError, match="cyclic: up_steps must be > 0"):
        S.cyclic(init_value=0.1, peak_value=1.0, up_steps=0)


# -- item 10: Python ints past 2^31 --------------------------------------------------------------


def test_python_ints_past_int32_are_step_counts_too():
    t = 2**33
    w = S.wsd(peak_value=1.0, total_steps=t, decay_fraction=0.1)
    assert float(w(0.5 * t)) == 1.0 and float(w(0.95 * t)) == pytest.approx(0.5, rel=1e-5)
    m = S.presets.minicpm_wsd(total_steps=t, peak_value=1.0)
    assert float(m(0.5 * t)) == 1.0 and float(m(t)) == pytest.approx(0.1, rel=1e-5)
    i = S.infinite(
        peak_value=1.0,
        constant_value=0.5,
        total_steps=2**34,
        warmup_steps=2**31,
        cooldown_steps=2**31,
        decay_steps=2**31,
    )
    assert float(i(2**31)) == 1.0 and float(i(2**33)) == 0.5
    with pytest.raises(ValueError, match="warmup_steps \\+ decay_steps must be <= total_steps"):
        S.wsd(peak_value=1.0, total_steps=2**33, warmup_steps=2**33, decay_steps=2**32)


# -- item 15: static flags and open bounds -------------------------------------------------------

FLAGS = [
    (
        lambda v: S.exponential(init_value=1.0, decay_rate=0.5, period_steps=10, staircase=v),
        "exponential",
        "staircase",
    ),
    (
        lambda v: S.inverse_time(init_value=1.0, decay_rate=0.5, period_steps=10, staircase=v),
        "inverse_time",
        "staircase",
    ),
    (
        lambda v: S.one_cycle(peak_value=1.0, total_steps=100, warmup_fraction=0.25, three_phase=v),
        "one_cycle",
        "three_phase",
    ),
]


@pytest.mark.parametrize("build,fn,arg", FLAGS, ids=[f"{f}-{a}" for _, f, a in FLAGS])
@pytest.mark.parametrize("value", [1, 0, "False", np.bool_(True)])
def test_static_flags_must_be_bools(build, fn, arg, value):
    with pytest.raises(ValueError, match=f"{fn}: {arg} must be"):
        build(value)
    assert build(True) is not None and build(False) is not None


def test_tanh_needs_upper_strictly_above_lower():
    with pytest.raises(ValueError, match="tanh: upper must exceed lower"):
        S.tanh(init_value=1.0, total_steps=100, lower=1.0, upper=1.0)
    assert math.isfinite(float(S.tanh(init_value=1.0, total_steps=100, lower=1.0, upper=2.0)(5)))


@pytest.mark.parametrize("pct", [1.0, 0.0, 1.5])
def test_noise_pct_is_in_the_open_interval(pct):
    with pytest.raises(ValueError, match="noise: pct must be in \\(0, 1\\)"):
        S.noise(BASE, key=jax.random.key(0), begin_steps=0, end_steps=10, pct=pct)


@pytest.mark.parametrize("key", ["abc", None, 0.0, [1.5, 2.0], -1])
def test_noise_rejects_what_is_not_a_key(key):
    with pytest.raises(ValueError, match="noise: key must be a PRNG key"):
        S.noise(BASE, key=key, begin_steps=0, end_steps=10)


# -- item 1: exact integer steps past float32's 2^24 ---------------------------------------------


def test_piecewise_constant_decides_exactly_past_2_24():
    s = S.piecewise_constant(boundaries=[2**30 + 128], values=[1.0, 0.5])
    assert float(s(jnp.int32(2**30 + 127))) == 1.0 and float(s(jnp.int32(2**30 + 128))) == 0.5
    with pytest.raises(ValueError, match="nearest are 1073741824 and 1073741952"):
        S.piecewise_constant(boundaries=[2**30 + 1], values=[1.0, 0.5])


def test_step_decides_its_stair_exactly_past_2_24():
    s = S.step(init_value=1.0, period_steps=2**30 + 128, decay_rate=0.5)
    assert float(s(jnp.int32(2**30 + 127))) == 1.0 and float(s(jnp.int32(2**30 + 128))) == 0.5


def test_multistep_decides_exactly_past_2_24():
    s = S.multistep(init_value=1.0, boundaries=[30_000_002])
    assert float(s(30_000_001)) == 1.0  # optax gives 1.0
    assert float(s(30_000_002)) == pytest.approx(0.1)


def test_cyclic_position_is_exact_to_2_31_and_float_past_it():
    s = S.cyclic(init_value=0.0, peak_value=1.0, up_steps=50, down_steps=50)
    t = 2**31 - 1
    within = t % 100  # 47: on the way up
    assert float(s(t)) == pytest.approx(within / 50, rel=1e-6)
    assert float(s(jnp.int32(t))) == pytest.approx(within / 50, rel=1e-6)
    # a Python int past int32 is a float32 step (documented): 2^31 + 25 is 2^31, within 48
    assert float(s(2**31 + 25)) == pytest.approx((2**31 % 100) / 50, rel=1e-6)
