"""One vocabulary (DESIGN.md), enforced on every public signature outside ``jaxlr.compat``.

The compat layer mirrors the peers' names exactly; every other public function, class and method
uses jaxlr's names, and every renamed argument raises a ``TypeError`` naming the new spelling.
"""

from __future__ import annotations

import inspect

import pytest

import jaxlr
from jaxlr import auto, schedules, sharpness, sweep, transforms

MODULES = {
    "jaxlr.schedules": schedules,
    "jaxlr.schedules.presets": schedules.presets,
    "jaxlr.transforms": transforms,
    "jaxlr.sharpness": sharpness,
    "jaxlr.sweep": sweep,
    "jaxlr.auto": auto,
}

# forbidden argument name -> the vocabulary's name for the concept
FORBIDDEN = {
    "exponent": "power",
    "step_size": "period_steps",
    "transition_steps": "period_steps",
    "interpolation": "shape",
    "anneal": "shape",
    "anneal_strategy": "shape",
    "warmup": "warmup_shape (a curve) or warmup_steps (a count)",
    "end_ratio": "end_value",
    "alpha": "end_value",
    # torch's names
    "gamma": "decay_rate",
    "pct_start": "warmup_fraction",
    "div_factor": "init_value",
    "final_div_factor": "end_value",
    "T_max": "total_steps",
    "T_0": "period_steps",
    "T_mult": "period_mult",
    "eta_min": "end_value",
    "base_lr": "init_value",
    "milestones": "boundaries",
    "last_epoch": "step",
    "total_iters": "total_steps",
    "step_size_up": "up_steps",
    # keras's and Hugging Face's names
    "initial_learning_rate": "init_value",
    "end_learning_rate": "end_value",
    "warmup_target": "peak_value",
    "t_mul": "period_mult",
    "m_mul": "peak_decay",
    "num_warmup_steps": "warmup_steps",
    "num_training_steps": "total_steps",
    "lr_end": "end_value",
    # bounds and wrapped optimizers
    "min_lr": "min_value",
    "max_lr": "max_value",
    "inner": "optimizer",
}
# Names in files other branches own. Until they are renamed these are expected to fail; strict
# xfail turns the fix into a failure that says to drop the entry here.
PENDING: dict[str, str] = {}  # forbidden names still in use elsewhere (none)
# Fitted parameters of published loss-curve laws keep the paper's Greek letters.
PAPER_SYMBOLS = {"jaxlr.auto.momentum_law", "jaxlr.auto.multi_power_law"}
# Names allowed in one module only because they mean something else there.
SCHEDULE_ONLY = {"kind": "distribution"}  # sharpness's kind is an optimizer family, not a shape


def _callables(module):
    for name in module.__all__:
        obj = getattr(module, name)
        if inspect.ismodule(obj):
            continue
        if inspect.isclass(obj):
            if issubclass(obj, tuple) and hasattr(obj, "_fields"):
                yield f"{name}", obj, list(obj._fields)  # NamedTuple fields are public names
            else:
                yield from _signature(f"{name}", obj)
            for meth_name, meth in vars(obj).items():
                if not meth_name.startswith("_") and callable(meth):
                    yield from _signature(f"{name}.{meth_name}", meth)
        elif callable(obj):
            yield from _signature(name, obj)


def _signature(name, fn):
    try:
        params = inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return
    yield name, fn, list(params)


def _public_names():
    out = []
    for mod_name, module in MODULES.items():
        for name, _, params in _callables(module):
            out.extend((mod_name, f"{mod_name}.{name}", p) for p in params)
    return out


NAMES = _public_names()


def test_the_scan_sees_the_public_api():
    seen = {where for _, where, _ in NAMES}
    for where in (
        "jaxlr.schedules.cosine",
        "jaxlr.schedules.presets.minicpm_wsd",
        "jaxlr.transforms.scale_by_schedule",
        "jaxlr.auto.lr_range_test",
    ):
        assert where in seen, where
    assert len(seen) > 60


@pytest.mark.parametrize(
    "old",
    [
        pytest.param(o, marks=pytest.mark.xfail(strict=True, reason=PENDING[o]))
        if o in PENDING
        else o
        for o in sorted(FORBIDDEN)
    ],
)
def test_no_public_signature_uses_a_forbidden_name(old):
    hits = sorted(where for _, where, p in NAMES if p == old and where not in PAPER_SYMBOLS)
    assert not hits, f"{old!r} (write {FORBIDDEN[old]!r}) in {hits}"


def test_schedules_use_no_kind_argument():
    hits = sorted(
        where for mod, where, p in NAMES if p in SCHEDULE_ONLY and mod.startswith("jaxlr.schedules")
    )
    assert not hits, hits


def test_scan_would_catch_a_forbidden_name():
    """The scan reads real signatures: a function with a torch name is found."""

    def bad(*, gamma=0.1):
        return gamma

    assert ["gamma"] == [p for _, _, params in _signature("bad", bad) for p in params]


S = schedules
RENAMED = [
    (S.cosine, dict(init_value=1.0, total_steps=10, exponent=2.0), "power"),
    (S.warmup_cosine, dict(peak_value=1.0, warmup_steps=1, total_steps=10, exponent=2.0), "power"),
    (S.step, dict(init_value=1.0, step_size=10, decay_rate=0.5), "period_steps"),
    (S.exponential, dict(init_value=1.0, decay_rate=0.5, transition_steps=10), "period_steps"),
    (S.inverse_time, dict(init_value=1.0, decay_rate=0.5, transition_steps=10), "period_steps"),
    (
        S.piecewise_interpolate,
        dict(boundaries=[0, 1], values=[1, 0], interpolation="linear"),
        "shape",
    ),
    (S.inverse_sqrt, dict(peak_value=1.0, warmup_steps=10, warmup="constant"), "warmup_shape"),
    (S.cyclic, dict(init_value=0.1, peak_value=1.0, up_steps=10, gamma=0.99), "decay_rate"),
    (S.cyclic_momentum, dict(up_steps=10, gamma=0.99), "decay_rate"),
    (S.one_cycle, dict(peak_value=1.0, total_steps=100, pct_start=0.3), "warmup_fraction"),
    (S.one_cycle, dict(peak_value=1.0, total_steps=100, div_factor=25.0), "init_value"),
    (S.one_cycle, dict(peak_value=1.0, total_steps=100, final_div_factor=1e4), "end_value"),
    (S.one_cycle, dict(peak_value=1.0, total_steps=100, anneal="cos"), "shape"),
    (S.one_cycle_momentum, dict(total_steps=100, pct_start=0.3), "warmup_fraction"),
    (S.one_cycle_momentum, dict(total_steps=100, anneal="linear"), "shape"),
    (S.swa, dict(init_value=1.0, swa_value=0.1, anneal="cos"), "shape"),
    (S.presets.llm_cosine, dict(total_steps=100, end_ratio=0.1), "end_value"),
    (S.presets.minicpm_wsd, dict(total_steps=100, end_ratio=0.1), "end_value"),
]


@pytest.mark.parametrize(
    "fn,kwargs,new", RENAMED, ids=[f"{f.__name__}-{i}" for i, (f, _, _) in enumerate(RENAMED)]
)
def test_an_old_spelling_raises_naming_the_new_one(fn, kwargs, new):
    with pytest.raises(TypeError, match=f"is now '{new}'"):
        fn(**kwargs)


def test_noise_renamed_kind():
    import jax

    with pytest.raises(TypeError, match="is now 'distribution'"):
        S.noise(
            S.constant(value=1.0), key=jax.random.key(0), begin_steps=0, end_steps=1, kind="uniform"
        )


def test_total_steps_is_the_whole_length_in_linear_and_polynomial():
    """total_steps is the step where end_value is reached, begin_steps included."""
    lin = S.linear(init_value=1.0, end_value=0.0, total_steps=300, begin_steps=100)
    pol = S.polynomial(init_value=1.0, end_value=0.0, total_steps=300, begin_steps=100, power=2)
    assert [float(lin(t)) for t in (100, 200, 300)] == [1.0, 0.5, 0.0]
    assert [float(pol(t)) for t in (100, 200, 300)] == [1.0, 0.25, 0.0]
    for fn in (S.linear, S.polynomial):
        with pytest.raises(ValueError, match="begin_steps must be <= total_steps"):
            fn(init_value=1.0, end_value=0.0, total_steps=50, begin_steps=100)


def test_minicpm_takes_warmup_steps_or_warmup_fraction_never_one_for_the_other():
    steps = S.presets.minicpm_wsd(total_steps=1000, peak_value=1.0, warmup_steps=0.5)
    frac = S.presets.minicpm_wsd(total_steps=1000, peak_value=1.0, warmup_fraction=0.5)
    assert float(steps(1)) == 1.0  # half a step of warmup, not half the run
    assert float(frac(250)) == 0.5
    with pytest.raises(ValueError, match="minicpm_wsd: give at most one"):
        S.presets.minicpm_wsd(total_steps=1000, warmup_steps=10, warmup_fraction=0.1)


def test_one_cycle_defaults_are_absolute_values_from_the_peak():
    s = S.one_cycle(peak_value=2.0, total_steps=100)
    assert float(s(0)) == pytest.approx(2.0 / 25)
    assert float(s(100)) == pytest.approx(2.0 / 25e4)
    t = S.one_cycle(peak_value=2.0, total_steps=100, init_value=0.5, end_value=0.01)
    assert [float(t(x)) for x in (0, 30, 100)] == pytest.approx([0.5, 2.0, 0.01])


def test_the_package_exposes_schedules():
    assert jaxlr.schedules is S
