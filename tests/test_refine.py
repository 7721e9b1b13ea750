"""jaxlr.auto.refine_schedule against the closed form of Defazio et al. (2023), in plain loops."""

from __future__ import annotations

import numpy as np
import pytest

import jaxlr
from jaxlr.auto import refine_schedule


def _reference(norms, peak, power):
    """eta_t = w_t * sum_{p>t} w_p, w = g^-power, scaled to peak (a double loop)."""
    w = [g**-power for g in norms]
    eta = [w[t] * sum(w[p] for p in range(t + 1, len(w))) for t in range(len(w))]
    return [peak * e / max(eta) for e in eta]


def test_constant_norms_give_linear_decay():
    T = 50
    s = refine_schedule(np.full(T, 3.0), peak_value=0.1)
    lin = jaxlr.schedules.linear(init_value=0.1, end_value=0.0, total_steps=T - 1)
    steps = np.arange(T)
    np.testing.assert_allclose(s(steps), 0.1 * (T - 1 - steps) / (T - 1), atol=1e-7)
    np.testing.assert_allclose(s(steps), lin(steps), atol=1e-7)


@pytest.mark.parametrize("kind, power", [("gd", 2.0), ("adam", 1.0)])
def test_varying_norms_match_the_closed_form(kind, power):
    rng = np.random.default_rng(0)
    norms = np.exp(rng.normal(size=30))
    s = refine_schedule(norms, peak_value=0.5, smoothing=0.0, kind=kind)
    np.testing.assert_allclose(s(np.arange(30)), _reference(norms, 0.5, power), rtol=1e-5)


def test_median_smoothing_removes_a_spike_and_growing_norms_anneal_fast():
    norms = np.ones(40)
    norms[10] = 100.0
    s = refine_schedule(norms, peak_value=1.0, smoothing=0.1)
    np.testing.assert_allclose(s(np.arange(40)), (39 - np.arange(40)) / 39, atol=1e-6)
    growing = refine_schedule(np.linspace(1.0, 3.0, 40), peak_value=1.0, smoothing=0.0)
    # rising norms: more of the budget early, a faster decay at the end than linear
    assert float(growing(30)) < (39 - 30) / 39
    assert float(growing(0)) == pytest.approx(1.0)


@pytest.mark.parametrize(
    "args, match",
    [
        ({"grad_norms": [1.0]}, "at least 2"),
        ({"grad_norms": [1.0, 0.0]}, "grad_norms must be > 0"),
        ({"grad_norms": [1.0, np.nan]}, "grad_norms must not be NaN"),
        ({"grad_norms": [[1.0, 2.0]]}, "must be 1-D"),
        ({"peak_value": 0.0}, "peak_value must be > 0"),
        ({"smoothing": 2.0}, "smoothing must be in"),
        ({"kind": "sgd"}, "kind must be one of"),
    ],
)
def test_bad_input(args, match):
    kw = {"grad_norms": [1.0, 2.0, 3.0], "peak_value": 0.1, **args}
    with pytest.raises(ValueError, match=f"refine_schedule: .*{match}"):
        refine_schedule(kw.pop("grad_norms"), **kw)
