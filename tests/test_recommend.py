"""recommend(): the framework's choices, the schedules it builds (vs NumPy), and bad input."""

from __future__ import annotations

import math

import numpy as np
import pytest

from jaxlr.cli import main
from jaxlr.recommend import DATA, SCALES, TASKS, recommend


@pytest.mark.parametrize(("task", "scale", "data", "name", "optimizer"), [
    ("classification", "small", "static", "one_cycle", "sgd+momentum"),
    ("generation", "small", "static", "warmup_cosine", "adam"),
    ("reinforcement", "small", "static", "one_cycle", "adam"),
    ("classification", "large", "static", "presets.bert", "adamw"),
    ("generation", "large", "static", "presets.llm_cosine", "adamw"),
    ("reinforcement", "large", "static", "presets.llm_cosine", "adamw"),
    ("generation", "large", "continual", "infinite", "adamw"),
    ("classification", "small", "continual", "infinite", "adamw"),
])
def test_choices(task, scale, data, name, optimizer):
    r = recommend(task=task, scale=scale, data=data, total_steps=1000)
    assert (r.name, r.optimizer) == (name, optimizer)
    assert r.reasons and all(isinstance(s, str) and s for s in r.reasons)
    assert task in r.reasons[0] and scale in r.reasons[0] and data in r.reasons[0]


def test_every_grid_point_answers():
    for task in TASKS:
        for scale in SCALES:
            for data in DATA:
                r = recommend(task=task, scale=scale, data=data, total_steps=500)
                assert float(r.schedule(0)) >= 0.0
                assert math.isclose(float(np.max([r.schedule(t) for t in range(0, 501, 5)])),
                                    r.peak_value, rel_tol=1e-5)


def _numpy_llm_cosine(t, peak, total, warm):
    t = np.asarray(t, float)
    rise = peak * t / warm
    p = np.clip((t - warm) / (total - warm), 0, 1)
    end = 0.1 * peak
    return np.where(t < warm, rise, end + 0.5 * (peak - end) * (1 + np.cos(np.pi * p)))


def _numpy_bert(t, peak, total):
    return np.interp(t, [0, 0.1 * total, total], [0, peak, 0])


def _numpy_one_cycle(t, peak, total):
    # PyTorch OneCycleLR defaults: 30% cosine rise from peak/25, cosine fall to peak/25e4.
    t = np.asarray(t, float)
    lo, end, up = peak / 25, peak / 25 / 1e4, 0.3 * total

    def cos(a, b, f):
        return b + (a - b) / 2 * (1 + np.cos(np.pi * f))

    return np.where(t <= up, cos(lo, peak, t / up), cos(peak, end, (t - up) / (total - up)))


@pytest.mark.parametrize(("kw", "oracle"), [
    (dict(task="generation", scale="large"), lambda t: _numpy_llm_cosine(t, 3e-4, 1000, 100)),
    (dict(task="classification", scale="large"), lambda t: _numpy_bert(t, 1e-4, 1000)),
    (dict(task="classification", peak_value=0.2), lambda t: _numpy_one_cycle(t, 0.2, 1000)),
])
def test_schedule_values_match_numpy(kw, oracle):
    r = recommend(total_steps=1000, **kw)
    steps = np.array([0, 50, 99, 100, 101, 300, 550, 999, 1000])
    got = np.array([float(r.schedule(t)) for t in steps])
    np.testing.assert_allclose(got, oracle(steps), rtol=1e-4, atol=1e-9)


def test_continual_is_decay_free_until_the_final_anneal():
    r = recommend(data="continual", total_steps=1000, peak_value=1.0)
    # warmup 10 steps, cooldown to 1/3 over 100, constant until the last 100 steps, anneal to 0
    got = [float(r.schedule(t)) for t in (10, 110, 500, 900, 1000)]
    np.testing.assert_allclose(got, [1.0, 1 / 3, 1 / 3, 1 / 3, 0.0], atol=1e-6)


@pytest.mark.parametrize(("kw", "match"), [
    (dict(task="vision"), "recommend: task must be one of .*got task='vision'"),
    (dict(scale="huge"), "recommend: scale must be one of .*got scale='huge'"),
    (dict(data="stream"), "recommend: data must be one of .*got data='stream'"),
    (dict(total_steps=0), "recommend: total_steps must be > 0, got total_steps=0"),
    (dict(total_steps=10.5), "recommend: total_steps must be an int > 0, got total_steps=10.5"),
    (dict(total_steps=True), "recommend: total_steps must be an int"),
    (dict(peak_value=-1e-3), r"recommend: peak_value must be > 0, got peak_value=-0.001"),
    (dict(peak_value=float("nan")), "recommend: peak_value must not be NaN"),
])
def test_bad_input(kw, match):
    with pytest.raises(ValueError, match=match):
        recommend(**kw)


def test_cli(capsys):
    assert main(["recommend", "--task", "generation", "--scale", "large", "--steps", "1000"]) == 0
    out = capsys.readouterr().out
    assert "presets.llm_cosine" in out and "adamw" in out and "warmup" in out
    assert main(["recommend", "--steps", "0"]) == 2
    assert "total_steps must be > 0" in capsys.readouterr().err
