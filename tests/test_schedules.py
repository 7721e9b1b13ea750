"""Every schedule law against an independent Python oracle, bad input, configs, parsing."""

from __future__ import annotations

import json
import math

import jax
import numpy as np
import pytest
from oracles import CASES, ORACLES, ref

import jaxlr
from jaxlr import schedules as S

CATALOG = S.catalog()

# Every boundary of the catalog's hyperparameters (multiples of 50 up to 1000) and one step either
# side, fractional steps, and steps far past the end (2**33 needs steps as real numbers).
STEPS = sorted(
    {0.0, 1.0, 149.5, 333.25, 1010.0, 5000.0, 1e6, 2.0**31 + 2**8, 2.0**33}
    | {float(b + d) for b in range(0, 1001, 50) for d in (-1, 0, 1) if b + d >= 0}
)


def test_every_catalog_entry_has_an_oracle_case():
    assert set(CASES) == set(CATALOG)
    assert {c.name for c in CASES.values()} <= set(ORACLES)


@pytest.mark.parametrize("name", sorted(CATALOG))
def test_catalog_entry_matches_oracle(name):
    """The oracle reads the constructor's arguments (tests/oracles.py CASES), never the
    schedule's attributes, so what a constructor converts or defaults is checked too."""
    case = CASES[name]
    s = case.build()
    assert s == CATALOG[name], "the oracle case drifted from catalog()"
    steps = np.asarray(STEPS, np.float32)
    got = np.asarray(jax.jit(lambda t: s(t))(steps))
    want = np.array([ref(case, t) for t in steps])
    known = ~np.isnan(want)  # the noise combinator's random window has no pointwise oracle
    np.testing.assert_allclose(
        got[known], want[known], rtol=1e-5, atol=1e-6 * np.abs(want[known]).max()
    )


@pytest.mark.parametrize("name", sorted(CATALOG))
def test_int_float_and_array_steps_agree(name):
    s = CATALOG[name]
    assert s(7).dtype == s(7.0).dtype == jax.numpy.float32
    np.testing.assert_array_equal(np.asarray(s(np.arange(5))), [float(s(i)) for i in range(5)])
    assert s(np.zeros((2, 3))).shape == (2, 3)


def test_noise_stays_inside_its_band_and_window():
    base = S.cosine(init_value=1.0, total_steps=1000)
    s = S.noise(base, key=jax.random.key(3), begin_steps=100, end_steps=500, pct=0.2)
    t = np.arange(0, 1000, dtype=np.float32)
    ratio = np.asarray(s(t)) / np.asarray(base(t))
    inside = (t >= 100) & (t < 500)
    np.testing.assert_allclose(ratio[~inside], 1.0, rtol=1e-6)
    assert np.all(np.abs(ratio[inside] - 1) <= 0.2 + 1e-6)
    assert np.std(ratio[inside]) > 0.01  # it is noisy
    # Deterministic in (key, floor(step)); another key gives another sequence.
    again = S.noise(base, key=jax.random.key(3), begin_steps=100, end_steps=500, pct=0.2)
    np.testing.assert_array_equal(np.asarray(again(t)), np.asarray(s(t)))
    factor = lambda x: float(s(x)) / float(base(x))  # noqa: E731
    assert math.isclose(factor(200.0), factor(200.7), rel_tol=1e-6)
    other = S.noise(base, key=jax.random.key(4), begin_steps=100, end_steps=500, pct=0.2)
    assert not np.allclose(np.asarray(other(t))[inside], np.asarray(s(t))[inside])


# -- presets against the recipes' published formulas -------------------------------------------


def test_transformer_preset_is_the_paper_formula():
    s = S.presets.transformer()
    for t in (1, 100, 3999, 4000, 4001, 100_000):
        want = 512**-0.5 * min(t**-0.5, t * 4000**-1.5)
        assert math.isclose(float(s(t)), want, rel_tol=1e-6)


def test_bert_preset_warms_up_ten_percent_then_decays_linearly_to_zero():
    s = S.presets.bert(total_steps=10_000, peak_value=1e-4)
    for t in (0, 500, 1000, 5500, 10_000, 12_000):
        want = 1e-4 * (t / 1000 if t < 1000 else max(0.0, (10_000 - t) / 9000))
        assert math.isclose(float(s(t)), want, rel_tol=1e-5, abs_tol=1e-12)


def test_deepseek_preset_steps_to_31_6_and_10_percent_at_80_and_90_percent():
    s = S.presets.deepseek_step(total_steps=10_000, peak_value=1.0, warmup_steps=100)
    got = [float(s(t)) for t in (50, 100, 7999, 8000, 8999, 9000, 12_000)]
    np.testing.assert_allclose(got, [0.5, 1.0, 1.0, 0.316, 0.316, 0.1, 0.1], rtol=1e-6)


def test_minicpm_preset_decays_exponentially_to_a_tenth_over_the_last_tenth():
    s = S.presets.minicpm_wsd(total_steps=1000, peak_value=1.0)  # warmup 1% -> 10 steps
    got = [float(s(t)) for t in (5, 10, 899, 900, 950, 1000)]
    want = [0.5, 1.0, 1.0, 1.0, 0.1**0.5, 0.1]
    np.testing.assert_allclose(got, want, rtol=1e-5)


def test_wsd_decay_fraction_is_a_share_of_total_steps():
    s = S.wsd(peak_value=1.0, total_steps=100, warmup_steps=10, decay_fraction=0.2)
    np.testing.assert_allclose([float(s(t)) for t in (79, 80, 90, 100)], [1, 1, 0.5, 0], atol=1e-6)


def test_resnet_preset_divides_by_ten_at_30_60_90_epochs():
    s = S.presets.resnet_step(steps_per_epoch=100)
    got = [float(s(t)) for t in (0, 2999, 3000, 5999, 6000, 9000, 20_000)]
    np.testing.assert_allclose(got, [0.1, 0.1, 0.01, 0.01, 1e-3, 1e-4, 1e-4], rtol=1e-6)


# -- bad input: a ValueError naming the function, the argument and the value ---------------------

BAD = [
    (S.constant, dict(value=float("nan")), ["constant", "value", "nan"]),
    (
        S.linear,
        dict(init_value=1.0, end_value=0.0, total_steps=-5),
        ["linear", "total_steps", "-5"],
    ),
    (
        S.polynomial,
        dict(init_value=1.0, end_value=0.0, total_steps=10, power=-1.0),
        ["polynomial", "power", "-1"],
    ),
    (
        S.exponential,
        dict(init_value=1.0, decay_rate=0.5, period_steps=0),
        ["exponential", "period_steps", "0"],
    ),
    (
        S.exponential,
        dict(init_value=1.0, decay_rate=-0.5, period_steps=10),
        ["exponential", "decay_rate", "-0.5"],
    ),
    (S.step, dict(init_value=1.0, period_steps=0, decay_rate=0.1), ["step", "period_steps", "0"]),
    (S.multistep, dict(init_value=1.0, boundaries=[20, 10]), ["multistep", "boundaries", "20"]),
    (
        S.multistep,
        dict(init_value=1.0, boundaries=[10, 20], decay_rate=[0.1, 0.2, 0.3]),
        ["multistep", "decay_rate"],
    ),
    (
        S.piecewise_constant,
        dict(boundaries=[10, 20], values=[1.0, 0.1]),
        ["piecewise_constant", "values"],
    ),
    (
        S.piecewise_interpolate,
        dict(boundaries=[0, 10], values=[1.0, 0.1], shape="cubic"),
        ["piecewise_interpolate", "shape", "cubic"],
    ),
    (
        S.warmup_cosine,
        dict(peak_value=1.0, warmup_steps=20, total_steps=10),
        ["warmup_cosine", "total_steps", "warmup_steps", "10", "20"],
    ),
    (S.cosine, dict(init_value=1.0, total_steps=-1), ["cosine", "total_steps", "-1"]),
    (
        S.inverse_sqrt,
        dict(peak_value=1.0, warmup_steps=10, warmup_shape="cubic"),
        ["inverse_sqrt", "warmup_shape", "cubic"],
    ),
    (S.noam, dict(d_model=0), ["noam", "d_model", "0"]),
    (
        S.sgdr,
        dict(peak_value=1.0, period_steps=10, period_mult=0.5),
        ["sgdr", "period_mult", "0.5"],
    ),
    (
        S.cyclic,
        dict(init_value=0.1, peak_value=1.0, up_steps=10, mode="sawtooth"),
        ["cyclic", "mode", "sawtooth"],
    ),
    (
        S.one_cycle,
        dict(peak_value=1.0, total_steps=100, warmup_fraction=1.5),
        ["one_cycle", "warmup_fraction", "1.5"],
    ),
    (
        S.one_cycle,
        dict(peak_value=1.0, total_steps=100, warmup_fraction=0.6, three_phase=True),
        ["one_cycle", "warmup_fraction", "0.6"],
    ),
    (
        S.wsd,
        dict(peak_value=1.0, total_steps=100, warmup_steps=50, decay_steps=60),
        ["wsd", "warmup_steps + decay_steps", "total_steps"],
    ),
    (
        S.wsd,
        dict(peak_value=1.0, total_steps=100, warmup_steps=10),
        ["wsd", "decay_steps", "decay_fraction"],
    ),
    (
        S.wsd,
        dict(
            peak_value=1.0,
            total_steps=100,
            warmup_steps=10,
            decay_steps=10,
            decay_shape="exponential",
        ),
        ["wsd", "end_value", "0"],
    ),
    (
        S.infinite,
        dict(
            peak_value=1.0,
            constant_value=0.5,
            total_steps=10,
            warmup_steps=5,
            cooldown_steps=5,
            decay_steps=5,
        ),
        ["infinite", "total_steps"],
    ),
    (S.swa, dict(init_value=1.0, swa_value=0.1, anneal_steps=-1), ["swa", "anneal_steps", "-1"]),
    (S.tanh, dict(init_value=1.0, total_steps=-1), ["tanh", "total_steps", "-1"]),
    (
        S.per_epoch,
        dict(schedule=S.constant(value=1.0), steps_per_epoch=0),
        ["per_epoch", "steps_per_epoch", "0"],
    ),
    (
        S.join,
        dict(schedules=[S.constant(value=1.0)] * 2, boundaries=[10, 20]),
        ["join", "boundaries"],
    ),
    (
        S.warmup,
        dict(schedule=S.constant(value=1.0), warmup_steps=-3),
        ["warmup", "warmup_steps", "-3"],
    ),
    (
        S.clip,
        dict(schedule=S.constant(value=1.0), min_value=1.0, max_value=0.5),
        ["clip", "min_value", "max_value"],
    ),
    (S.presets.bert, dict(total_steps=100, warmup_fraction=2.0), ["bert", "warmup_fraction", "2"]),
    (
        S.inverse_time,
        dict(init_value=1.0, decay_rate=-1.0, period_steps=10),
        ["inverse_time", "decay_rate", "-1"],
    ),
    (
        S.noise,
        dict(
            schedule=S.constant(value=1.0),
            key=jax.random.key(0),
            begin_steps=0,
            end_steps=10,
            distribution="laplace",
        ),
        ["noise", "distribution", "laplace"],
    ),
    (
        S.noise,
        dict(schedule=S.constant(value=1.0), key=jax.random.key(0), begin_steps=10, end_steps=5),
        ["noise", "begin_steps", "end_steps", "10", "5"],
    ),
    (S.product, dict(schedules=[]), ["product", "schedules", "0"]),
    (
        S.scale,
        dict(schedule=S.constant(value=1.0), factor=float("inf")),
        ["scale", "factor", "inf"],
    ),
    (S.one_cycle_momentum, dict(total_steps=-1), ["one_cycle_momentum", "total_steps", "-1"]),
    (
        S.swa,
        dict(init_value=1.0, swa_value=0.1, anneal_steps=10, shape="cubic"),
        ["swa", "shape", "cubic"],
    ),
    (S.presets.resnet_step, dict(steps_per_epoch=0), ["resnet_step", "steps_per_epoch", "0"]),
    (S.presets.transformer, dict(d_model=-1), ["d_model", "-1"]),
    (
        S.presets.llm_cosine,
        dict(total_steps=100, peak_value=1e-3, warmup_steps=200),
        ["warmup_steps", "total_steps", "200"],
    ),
    (
        S.presets.minicpm_wsd,
        dict(total_steps=100, peak_value=1e-2, decay_fraction=1.5),
        ["decay_fraction", "1.5"],
    ),
    (
        S.presets.deepseek_step,
        dict(total_steps=100, warmup_steps=200),
        ["deepseek_step", "warmup_steps", "200"],
    ),
    (
        S.piecewise_constant,
        dict(boundaries=[10, 5], values=[1.0, 0.5, 0.1]),
        ["piecewise_constant", "boundaries", "sorted"],
    ),
]


@pytest.mark.parametrize(
    "fn,kwargs,words", BAD, ids=[f"{b[0].__name__}-{i}" for i, b in enumerate(BAD)]
)
def test_bad_input_is_a_value_error_naming_function_argument_and_value(fn, kwargs, words):
    kwargs = dict(kwargs)
    args = (kwargs.pop("schedule"),) if "schedule" in kwargs else ()
    if "schedules" in kwargs:
        args = (kwargs.pop("schedules"),)
    with pytest.raises(ValueError) as err:
        fn(*args, **kwargs)
    msg = str(err.value)
    for w in words:
        assert w in msg, f"{w!r} missing from {msg!r}"


def test_non_schedule_child_is_rejected():
    with pytest.raises(ValueError, match="warmup: schedule"):
        S.warmup(lambda t: 0.1, warmup_steps=10)


# -- configs, repr, parse -------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(CATALOG))
def test_config_round_trip_through_json(name):
    s = CATALOG[name]
    text = json.dumps(S.to_config(s))
    back = S.from_config(text)
    assert back == s
    steps = np.asarray([0.0, 123.0, 999.0], np.float32)
    np.testing.assert_array_equal(np.asarray(back(steps)), np.asarray(s(steps)))


@pytest.mark.parametrize("name", sorted(CATALOG))
def test_repr_parses_back_to_an_equal_schedule(name):
    s = CATALOG[name]
    assert S.parse(repr(s)) == s


def test_parse_reads_presets_and_rejects_code():
    s = S.parse("presets.bert(total_steps=1000, peak_value=1e-4)")
    assert s == S.presets.bert(total_steps=1000, peak_value=1e-4)
    with pytest.raises(ValueError, match="parse"):
        S.parse("__import__('os').system('true')")
    with pytest.raises(ValueError, match="parse"):
        S.parse("cosine(init_value=1.0, total_steps=10) + 1")


def test_from_config_rejects_unknown_names():
    with pytest.raises(ValueError, match="no_such_schedule"):
        S.from_config({"name": "no_such_schedule", "args": {}})


def test_every_registered_family_is_in_the_catalog():
    families = {s.name for s in CATALOG.values()}
    # doctest examples (doc_*) and tests define families of their own, and the
    # peer-compat laws (torch.*, keras.*, transformers.*, tested against the peers in
    # tests/parity) are not native catalog entries
    native = {
        n
        for n in S.names()
        if "." not in n
        and not n.startswith("doc_")
        and S.constructor(n).__module__.startswith("jaxlr.schedules.")
    }
    assert native <= families
    assert {"cosine", "warmup", "wsd", "select"} <= native  # the filter keeps the built-ins


def test_top_level_package_exposes_schedules():
    assert jaxlr.schedules is S and isinstance(jaxlr.__version__, str)


def test_select_ranges_over_families_in_one_compiled_vmap():
    """select's index is data: a stacked batch of selects runs each member's own family."""
    from oracles import Spec

    family = [
        Spec("constant", value=0.5),
        Spec("cosine", init_value=1.0, total_steps=100),
        Spec("step", init_value=1.0, period_steps=30, decay_rate=0.1),
    ]
    built = [f.build() for f in family]
    members = [S.select(i, built) for i in (2, 0, 1, 2)]
    batch = jax.tree.map(lambda *xs: jax.numpy.stack(xs), *members)
    steps = np.asarray([0.0, 29.0, 30.0, 50.0, 99.0, 500.0], np.float32)
    traces = []

    @jax.jit
    def run(b):
        traces.append(1)
        return jax.vmap(lambda s: s(steps))(b)

    got = np.asarray(run(batch))
    want = [[ref(family[i], t) for t in steps] for i in (2, 0, 1, 2)]
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-8)
    other = jax.tree.map(lambda x: x, batch)  # same structure, new values: no retrace
    run(jax.tree.map(lambda x: x * 1.0, other))
    assert len(traces) == 1
    with pytest.raises(ValueError, match="select: index must be an integer in \\[0, 3\\)"):
        S.select(3, built)
    with pytest.raises(ValueError, match="select: schedules must hold at least 1"):
        S.select(0, [])
