"""recommend(): the decision table, the schedules it builds (vs NumPy), the code it prints
(pasted and run against NumPy optimizer updates), and bad input."""

from __future__ import annotations

import itertools
import math

import jax.numpy as jnp
import numpy as np
import pytest

import jaxlr
from jaxlr.cli import main
from jaxlr.recommend import DATA, SCALES, TASKS, format_recommendation, recommend

GRID = list(itertools.product(TASKS, SCALES, DATA))


@pytest.mark.parametrize(
    ("task", "scale", "data", "name", "optimizer"),
    [
        ("classification", "small", "static", "one_cycle", "sgd+momentum"),
        ("generation", "small", "static", "warmup_cosine", "adam"),
        ("reinforcement", "small", "static", "one_cycle", "adam"),
        ("classification", "large", "static", "presets.bert", "adamw"),
        ("generation", "large", "static", "presets.llm_cosine", "adamw"),
        ("reinforcement", "large", "static", "presets.llm_cosine", "adamw"),
        ("generation", "large", "continual", "infinite", "adamw"),
        ("classification", "small", "continual", "infinite", "adamw"),
    ],
)
def test_choices(task, scale, data, name, optimizer):
    r = recommend(task=task, scale=scale, data=data, total_steps=1000)
    assert (r.name, r.optimizer) == (name, optimizer)
    assert r.reasons and all(isinstance(s, str) and s for s in r.reasons)
    assert task in r.reasons[0] and scale in r.reasons[0] and data in r.reasons[0]


def test_every_grid_point_answers():
    steps = jnp.arange(0, 501, 5)
    for task, scale, data in GRID:
        r = recommend(task=task, scale=scale, data=data, total_steps=500)
        lrs = np.asarray(r.schedule(steps))
        assert lrs.min() >= 0.0
        assert math.isclose(float(lrs.max()), r.peak_value, rel_tol=1e-5)
        # the expression reads back (jaxlr.schedules.parse) to the same schedule
        back = jaxlr.schedules.parse(r.expression)
        np.testing.assert_allclose(np.asarray(back(steps)), lrs, rtol=1e-7)


def _numpy_updates(optimizer, lrs, g, p0):
    """The first len(lrs) updates of optax's sgd(momentum=0.9) / adam / adamw (default
    hyperparameters) for a constant gradient ``g``, from their published formulas."""
    p, trace, m, v, out = p0.copy(), 0.0, 0.0, 0.0, []
    for k, lr in enumerate(lrs, start=1):
        if optimizer == "sgd+momentum":
            trace = g + 0.9 * trace
            u = -lr * trace
        else:
            m, v = 0.9 * m + 0.1 * g, 0.999 * v + 0.001 * g**2
            direction = (m / (1 - 0.9**k)) / (np.sqrt(v / (1 - 0.999**k)) + 1e-8)
            if optimizer == "adamw":
                direction = direction + 1e-4 * p
            u = -lr * direction
        out.append(u)
        p = p + u
    return np.array(out)


@pytest.mark.parametrize(("task", "scale", "data"), GRID)
def test_pasted_code_builds_the_schedule_and_the_optimizer(task, scale, data):
    r = recommend(task=task, scale=scale, data=data, total_steps=200)
    ns: dict = {}
    exec(r.code, ns)  # what a user pastes
    steps = jnp.arange(0, 201, 7)
    np.testing.assert_allclose(
        np.asarray(ns["schedule"](steps)), np.asarray(r.schedule(steps)), rtol=1e-7
    )
    tx = ns["optimizer"]
    g, p = np.array([0.5, -2.0, 3.0], np.float32), np.array([1.0, 2.0, -1.0], np.float32)
    params, state, got = jnp.asarray(p), tx.init(jnp.asarray(p)), []
    for _ in range(25):  # 25 steps reach past every recipe's warmup at 200 steps
        u, state = tx.update(jnp.asarray(g), state, params)
        params = params + u
        got.append(np.asarray(u))
    lrs = [float(r.schedule(k)) for k in range(25)]  # optax evaluates the schedule at 0, 1, ...
    want = _numpy_updates(r.optimizer, np.array(lrs), g.astype(np.float64), p.astype(np.float64))
    np.testing.assert_allclose(np.array(got), want, rtol=2e-4, atol=1e-9)
    assert np.abs(want[-1]).max() > 0  # the LR reached the update


@pytest.mark.parametrize(("task", "scale", "data"), GRID)
def test_text_is_code_and_this_projects_measurements(task, scale, data):
    r = recommend(task=task, scale=scale, data=data, total_steps=300)
    text = format_recommendation(r)
    assert "seed" not in text.lower()
    assert "experiments/results/" in text and "docs/choosing.md" in text
    assert f"    schedule = jaxlr.schedules.{r.expression}" in text
    assert f"    optimizer = {r.optimizer_code}" in text
    lines = text.splitlines()
    expr = lines[
        lines.index("The schedule as an expression (jaxlr plot, jaxlr.schedules.parse):") + 1
    ].strip()
    steps = jnp.arange(0, 301, 10)
    np.testing.assert_allclose(
        np.asarray(jaxlr.schedules.parse(expr)(steps)), np.asarray(r.schedule(steps)), rtol=1e-7
    )
    assert "total_steps=300, as given." in text and "assumed" not in text


def test_says_which_total_steps_it_assumed():
    r = recommend(task="generation")
    assert r.assumed_total_steps and r.total_steps == 10_000
    text = format_recommendation(r)
    assert "total_steps=10000 was assumed (no step count was given)" in text
    assert "--steps N" in text
    # the assumed count is the one the schedule was built with: 10% warmup of 10000 steps
    assert float(r.schedule(1000)) == pytest.approx(1e-3) and float(r.schedule(500)) < 1e-3
    given = recommend(task="generation", total_steps=10_000)
    assert not given.assumed_total_steps
    assert "as given" in format_recommendation(given)


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


@pytest.mark.parametrize(
    ("kw", "oracle"),
    [
        (dict(task="generation", scale="large"), lambda t: _numpy_llm_cosine(t, 3e-4, 1000, 100)),
        (dict(task="classification", scale="large"), lambda t: _numpy_bert(t, 1e-4, 1000)),
        (dict(task="classification", peak_value=0.2), lambda t: _numpy_one_cycle(t, 0.2, 1000)),
    ],
)
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


@pytest.mark.parametrize(
    ("kw", "match"),
    [
        (dict(task="vision"), "recommend: task must be one of .*got task='vision'"),
        (dict(scale="huge"), "recommend: scale must be one of .*got scale='huge'"),
        (dict(data="stream"), "recommend: data must be one of .*got data='stream'"),
        (dict(total_steps=0), "recommend: total_steps must be > 0, got total_steps=0"),
        (dict(total_steps=10.5), "recommend: total_steps must be an int > 0, got total_steps=10.5"),
        (dict(total_steps=True), "recommend: total_steps must be an int"),
        (dict(peak_value=-1e-3), r"recommend: peak_value must be > 0, got peak_value=-0.001"),
        (dict(peak_value=float("nan")), "recommend: peak_value must not be NaN"),
    ],
)
def test_bad_input(kw, match):
    with pytest.raises(ValueError, match=match):
        recommend(**kw)


def test_cli(capsys):
    assert main(["recommend", "--task", "generation", "--scale", "large", "--steps", "1000"]) == 0
    out = capsys.readouterr().out
    assert "presets.llm_cosine" in out and "adamw" in out and "warmup" in out
    assert "seed" not in out.lower()
    assert main(["recommend", "--task", "vision"]) == 2  # the library's ValueError, one line
    assert "recommend: task must be one of" in capsys.readouterr().err


# -- recommend_lr: the peak LR from a scaling law -------------------------------------------------
@pytest.fixture(scope="module")
def width_fit():
    # The doctests' shape (4 widths x 17 LRs x 1 seed, 100 draws): one compiled program.
    widths, etas = np.array([32.0, 64, 128, 256]), np.logspace(-4, 0, 17)
    loss = (np.log(etas)[None] - np.log(0.1 / widths)[:, None]) ** 2
    return jaxlr.scaling.fit(
        eta=np.tile(etas, 4), loss=loss.ravel(), N=np.repeat(widths, 17), num_resamples=100
    )


def _run_code(code: str):
    namespace: dict = {}
    exec(code, namespace)  # noqa: S102 - the pasted code must run as printed
    return namespace


def test_recommend_lr_from_a_fit_and_its_json(width_fit, tmp_path):
    from jaxlr.recommend import format_lr_recommendation, recommend_lr

    p = width_fit.predict(N=1024)
    r = recommend_lr(fit=width_fit, N=1024, family="wsd", total_steps=500)
    assert r.learning_rate == pytest.approx(p.value, rel=1e-5)
    assert (r.low, r.high) == (p.low, p.high) and r.low <= r.high
    assert r.learning_rate == pytest.approx(0.1 / 1024, rel=1e-3)  # the synthetic law
    ns = _run_code(r.code)
    sched = ns["schedule"]
    assert float(sched(250)) == pytest.approx(r.learning_rate, rel=1e-6)  # WSD's stable phase
    assert float(sched(499)) < 0.01 * r.learning_rate  # decayed over the last 20%
    assert isinstance(ns["optimizer"], type(__import__("optax").adamw(1e-3)))
    path = width_fit.save(tmp_path / "fit.json")
    again = recommend_lr(fit=str(path), N=1024, family="wsd", total_steps=500)
    assert again.expression == r.expression
    text = format_lr_recommendation(r)
    assert f"95% interval {p.low:.3g} .. {p.high:.3g}" in text and r.expression in text


def test_recommend_lr_presets_match_their_formulas():
    from jaxlr.recommend import recommend_lr

    r = recommend_lr(N=3e8, D=2e10, total_steps=100)
    assert r.learning_rate == pytest.approx(1.79 * 3e8**-0.713 * 2e10**0.307, rel=1e-5)
    assert r.batch_size == pytest.approx(0.58 * 2e10**0.571)
    assert r.low is None
    d = recommend_lr(C=1e19, family="cosine", total_steps=100)
    assert d.learning_rate == pytest.approx(0.3118 * 1e19**-0.125, rel=1e-5)
    assert float(_run_code(d.code)["schedule"](0)) == pytest.approx(d.learning_rate, rel=1e-6)


def test_recommend_lr_errors(width_fit):
    from jaxlr.recommend import recommend_lr

    for kw, match in [
        # No preset named: the message names what is missing, not a preset never passed.
        (dict(N=1e9), r"needs N and D \(the step_law preset\) or C .*missing \['D'\]"),
        (dict(B=256), r"got \['B'\]: missing \['C'\]"),
        (dict(preset="step_law", C=1e20), r"preset='step_law' needs exactly \['D', 'N'\]"),
        (dict(fit=width_fit, N=1e6), r"N=1e\+06 is 3.91e\+03x the largest fitted N=256"),
        (dict(fit=width_fit, N=512, preset="step_law"), "give a fit or a preset, not both"),
        (dict(N=1e9, D=1e11, family="step"), "family must be one of"),
        (dict(preset="chinchilla"), "preset must be one of"),
    ]:
        with pytest.raises(ValueError, match=match):
            recommend_lr(**kw)


def test_cli_recommend_with_a_fit_and_a_preset(width_fit, tmp_path, capsys):
    path = width_fit.save(tmp_path / "fit.json")
    assert main(["recommend", "--fit", str(path), "-N", "1024", "--steps", "300"]) == 0
    out = capsys.readouterr().out
    code = out.split("Paste into your training script:\n\n", 1)[1].split("\n\n")[0:2]
    ns = _run_code("\n\n".join(code).replace("\n    ", "\n").strip())
    assert float(ns["schedule"](30)) == pytest.approx(width_fit.predict(N=1024).value, rel=1e-5)
    assert main(["recommend", "-C", "1e20", "--steps", "300"]) == 0
    assert "peak LR 0.000986" in capsys.readouterr().out
    assert main(["recommend", "--fit", str(path), "-N", "1e6"]) == 2
    assert "force=True" in capsys.readouterr().err
    assert main(["recommend", "--fit", str(path), "-N", "1e6", "--force"]) == 0
    capsys.readouterr()
    assert main(["recommend", "-C", "1e20", "--peak", "0.1"]) == 2
    assert "--peak and a scaling law" in capsys.readouterr().err
