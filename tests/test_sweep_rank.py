"""Successive halving ranked by each member's predicted final metric (rank="predicted").

The problem: gradient descent on a diagonal quadratic, L(w) = 1/2 sum_i lam_i w_i^2 with lam_i
log-spaced over [1e-3, 1], so the loss of a run is an exact NumPy recursion,
w_{t+1} = (1 - eta_t lam) w_t. Members have a warmup to a constant LR; the one with the highest
peak warms up longest: it is the worst at the first rung and the best at the end.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxlr
from jaxlr.sweep import _rank

LAM = np.logspace(-3, 0, 32)
T, RUNG = 100, 20
PEAKS = [0.3, 0.5, 0.8, 1.5, 0.5]
WARMUPS = [0.0, 0.0, 0.0, 60.0, 0.0]
BAD = [0.0, 0.0, 0.0, 0.0, 1.0]  # member 4 reports val = -1: no law fits it
CONFIGS = jaxlr.sweep.zip(peak_value=PEAKS, warmup_steps=WARMUPS, bad=BAD)


def schedule(c):
    return jaxlr.schedules.warmup(
        jaxlr.schedules.constant(value=c["peak_value"]), warmup_steps=c["warmup_steps"]
    )


def lr(c, step):
    return schedule(c)(step)


def init_fn(c, key):
    return {"w": jnp.ones(LAM.size), "t": jnp.zeros((), jnp.int32)}


def step_fn(state, c, batch):
    eta = schedule(c)(state["t"])
    w = state["w"] - eta * jnp.asarray(LAM, jnp.float32) * state["w"]
    loss = 0.5 * jnp.sum(jnp.asarray(LAM, jnp.float32) * w * w)
    val = jnp.where(c["bad"] > 0, -1.0, loss)
    return {"w": w, "t": state["t"] + 1}, {"loss": loss, "lr": eta, "val": val}


def np_lrs(peak, warmup):
    t = np.arange(T, dtype=float)
    return peak * (np.minimum(t / warmup, 1.0) if warmup > 0 else np.ones(T))


def np_curve(peak, warmup):
    """The loss after steps 1..T, by the NumPy recursion."""
    w, out = np.ones(LAM.size), []
    for eta in np_lrs(peak, warmup):
        w = w - eta * LAM * w
        out.append(0.5 * np.sum(LAM * w * w))
    return np.array(out)


CURVES = np.stack([np_curve(p, w) for p, w in zip(PEAKS, WARMUPS)])
VALS = np.where(np.asarray(BAD)[:, None] > 0, -1.0, CURVES)  # the ranked metric
GOOD = [i for i, b in enumerate(BAD) if not b]
TRUE_WINNER = GOOD[int(np.argmin(CURVES[GOOD, -1]))]


def halve(rank):
    return jaxlr.sweep.successive_halving(
        init_fn,
        step_fn,
        CONFIGS,
        (np.float32(0) for _ in range(T)),
        key=jax.random.key(0),
        rungs=[RUNG, T],
        eta=2.5,  # keep 2 of 5
        metric="val",
        steps_per_call=RUNG,
        progress=False,
        rank=rank,
        planned_lr=lr if rank == "predicted" else None,
    )


@pytest.fixture(scope="module")
def results():
    return {rank: halve(rank) for rank in ("value", "predicted")}


def test_problem_is_the_short_horizon_trap():
    # NumPy alone: the long-warmup, high-peak member is the worst real member at the rung and
    # the best at the end.
    assert TRUE_WINNER == 3
    assert int(np.argmax(CURVES[GOOD, RUNG - 1])) == 3


def test_population_follows_the_numpy_recursion(results):
    res = results["predicted"]
    np.testing.assert_allclose(res.metrics["loss"][:, :RUNG], CURVES[:, :RUNG], rtol=2e-4)
    for i in res.info["survivors"]:
        np.testing.assert_allclose(res.metrics["loss"][i], CURVES[i], rtol=2e-4)


def test_value_ranking_cuts_the_winner_predicted_keeps_it(results):
    value, predicted = results["value"].info["survivors"], results["predicted"].info["survivors"]
    assert TRUE_WINNER not in value
    assert TRUE_WINNER in predicted
    # among the members that reached the end, the predicted search found the true best final loss
    reached = [i for i in predicted if not BAD[i]]
    assert CURVES[reached, -1].min() == CURVES[GOOD, -1].min()
    assert results["predicted"].info["rank"] == "predicted"
    assert results["value"].info["rank"] == "value"
    assert "predicted" not in results["value"].info


def test_predictions_order_the_members_as_their_true_final_loss(results):
    pred = results["predicted"].info["predicted"][:, 0]
    assert np.isfinite(pred[GOOD]).all()
    assert list(np.argsort(pred[GOOD])) == list(np.argsort(CURVES[GOOD, -1]))


def test_failed_fit_is_ranked_by_its_value_and_counted(results):
    res = results["predicted"]
    assert res.info["rank_fallbacks"] == [1]  # member 4's val = -1: no positive points
    assert np.isnan(res.info["predicted"][4, 0])
    assert 4 in res.info["survivors"]  # ranked by its value, -1, the best: kept
    assert 4 in results["value"].info["survivors"]


def np_fit(y, area):
    """The least-squares fit of L0 + A area^-alpha to y (relative residuals, L0, A >= 0) over
    the exponents ALPHAS, by NumPy: (objective, L0, A, alpha)."""
    best = (np.inf,)
    for alpha in _rank.ALPHAS:
        x = area**-alpha
        m, b = np.stack([np.ones_like(x), x], 1) / y[:, None], np.ones_like(y)
        cands = [np.linalg.lstsq(m, b, rcond=None)[0]]
        cands = [c for c in cands if (c >= 0).all()]
        cands += [np.array([0.0, m[:, 1] @ b / (m[:, 1] @ m[:, 1])])]
        cands += [np.array([m[:, 0] @ b / (m[:, 0] @ m[:, 0]), 0.0])]
        for c in cands:
            obj = np.sum(((c[0] + c[1] * x - y) / y) ** 2)
            if obj < best[0]:
                best = (obj, c[0], c[1], alpha)
    return best


def test_prediction_is_the_law_at_the_numpy_least_squares_fit():
    lrs = np.stack([np_lrs(p, w) for p, w in zip(PEAKS, WARMUPS)])
    for rung in (RUNG, 2 * RUNG):
        steps = np.arange(1, rung + 1)
        out = _rank.predict_final(VALS[:, :rung], steps, lrs, final=T)
        assert out.ok.tolist() == [True, True, True, True, False]  # member 4: no positive value
        for i in GOOD:
            s1 = np.cumsum(lrs[i] / lrs[i].max())
            half = steps[rung // 2 :]  # the second half of the curve so far
            obj, l0, a, alpha = np_fit(CURVES[i, half - 1], s1[half - 1])
            np.testing.assert_allclose(out.params[i], [l0, a, alpha], rtol=1e-6, atol=1e-12)
            np.testing.assert_allclose(out.rms[i], np.sqrt(obj / half.size), rtol=1e-6)
            np.testing.assert_allclose(out.value[i], l0 + a * s1[T - 1] ** -alpha, rtol=1e-9)
            # the law describes the curve within 2%; from 5x to 20x less LR area than at the end,
            # it predicts the final loss within 35%
            assert out.rms[i] < 0.02
            assert abs(out.value[i] / CURVES[i, -1] - 1) < 0.35


def test_fresh_steps_are_the_evaluation_steps():
    assert _rank.fresh_steps(5, 1).tolist() == [1, 2, 3, 4, 5]
    assert _rank.fresh_steps(12, 4).tolist() == [1, 4, 8, 12]


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(rank="median"), "rank must be one of"),
        (dict(rank="predicted"), "rank='predicted' needs planned_lr="),
        (dict(rank="predicted", planned_lr=lr, mode="max"), "needs mode='min', got mode='max'"),
        (dict(rank="value", planned_lr=lr), "planned_lr= is used by rank='predicted' only"),
        (dict(rank="predicted", planned_lr=lambda c, t: -c["peak_value"]), "finite and >= 0"),
        (dict(rank="predicted", planned_lr=lambda c, t: jnp.ones(2)), "must return a scalar LR"),
    ],
)
def test_bad_rank_arguments_raise_before_training(kwargs, match):
    with pytest.raises(ValueError, match=f"successive_halving: .*{match}"):
        jaxlr.sweep.successive_halving(
            init_fn,
            step_fn,
            CONFIGS,
            iter(()),
            key=jax.random.key(0),
            rungs=[RUNG, T],
            metric="val",
            progress=False,
            **kwargs,
        )


def test_auto_never_imports_sweep():
    """``sweep`` ranks with ``auto``'s laws; the reverse import would make a layer circle."""
    import ast
    import pathlib

    import jaxlr.auto

    found = []
    for path in pathlib.Path(jaxlr.auto.__file__).parent.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = (
                [node.module or ""]
                if isinstance(node, ast.ImportFrom)
                else [a.name for a in node.names]
                if isinstance(node, ast.Import)
                else []
            )
            found += [f"{path.name}: {n}" for n in names if n.startswith("jaxlr.sweep")]
    assert found == []


def test_rung_prediction_uses_the_applied_lr_then_the_planned_one_and_fresh_evaluations():
    from jaxlr.sweep._halving import _predict

    rung, every = 40, 4
    planned = np.stack([np_lrs(p, w) for p, w in zip(PEAKS, WARMUPS)])
    applied = 0.5 * planned  # the step reported half its planned LR so far
    curves = {"val": VALS.copy(), "lr": applied}
    idx = np.array([1, 3])  # the members still running
    pred, ok = _predict(curves, idx, rung, "val", planned, T, every=1)
    lrs = np.concatenate([applied[idx, :rung], planned[idx, rung:]], axis=1)
    want = _rank.predict_final(VALS[idx, :rung], np.arange(1, rung + 1), lrs, final=T)
    np.testing.assert_array_equal(pred, want.value)
    assert ok.all()
    plan = _rank.predict_final(VALS[idx, :rung], np.arange(1, rung + 1), planned[idx], final=T)
    assert not np.allclose(pred, plan.value, rtol=1e-3)  # the applied LR made a difference
    # without an lr metric, the planned LR throughout; an eval_fn metric: fresh evaluations only
    pred, _ = _predict({"val": VALS}, idx, rung, "val", planned, T, every=every)
    steps = _rank.fresh_steps(rung, every)
    want = _rank.predict_final(VALS[idx][:, steps - 1], steps, planned[idx], final=T)
    np.testing.assert_array_equal(pred, want.value)
    assert steps.tolist() == [1, *range(every, rung + 1, every)]


def test_an_eval_fn_does_not_thin_a_step_metric_curve():
    """Ranking by a ``step_fn`` metric with an unrelated ``eval_fn``: the step metric is fresh
    at every step, so the predictions are those without ``eval_fn`` (they used to keep only the
    evaluation steps: every fit failed and fell back to the value)."""
    lam = jnp.logspace(-3, 0, 32)

    def sched(c):
        return jaxlr.schedules.warmup(
            jaxlr.schedules.constant(value=c["peak"]), warmup_steps=c["warmup"]
        )

    def step(s, c, batch):
        w = s["w"] - sched(c)(s["t"]) * lam * s["w"]
        return {"w": w, "t": s["t"] + 1}, {"loss": 0.5 * jnp.sum(lam * w * w)}

    cf = jaxlr.sweep.zip(peak=[0.3, 0.8, 1.5], warmup=[0.0, 0.0, 60.0])
    runs = [
        jaxlr.sweep.successive_halving(
            lambda c, key: {"w": jnp.ones(32), "t": jnp.zeros((), jnp.int32)}, step, cf,
            (0.0 for _ in range(100)), key=jax.random.key(0), rungs=[25, 100], metric="loss",
            progress=False, steps_per_call=25, rank="predicted",
            planned_lr=lambda c, t: sched(c)(t), **kw,
        )
        for kw in ({}, {"eval_fn": lambda s, c: {"val": jnp.sum(s["w"])}, "eval_every": 25})
    ]  # fmt: skip
    assert runs[0].info["rank_fallbacks"] == runs[1].info["rank_fallbacks"] == [0]
    np.testing.assert_array_equal(runs[1].info["predicted"], runs[0].info["predicted"])
    assert runs[1].info["survivors"] == runs[0].info["survivors"]


# -- PBT ranked by prediction (pbt(rank="predicted")) ----------------------------------------
# Each member's loss is an exact loss-curve law of the LR area it has spent,
# L = L0 + A S^-ALPHA, S = sum of the applied LRs (ALPHA on the fit's grid of exponents), so the
# prediction at an exploit must be the law at the member's true final area: NumPy's sum of its
# planned LRs. The highest peak warms up for most of the run: it is the worst now and the best
# at the end.
L0, A_LAW, ALPHA, T_PBT, INTERVAL = 0.1, 2.0, 0.5, 160, 40
PBT_PEAKS, PBT_WARMUPS = [0.2, 0.5, 1.0, 3.0], [0.0, 0.0, 0.0, 100.0]
PBT_CONFIGS = jaxlr.sweep.zip(peak_value=PBT_PEAKS, warmup_steps=PBT_WARMUPS)


def planned(c, step):  # the LR of (0-based) step: the warmup's value one step on, never 0
    return schedule(c)(step + 1)


def law_init(c, key):
    return {"area": jnp.zeros(()), "t": jnp.zeros((), jnp.int32)}


def law_step(state, c, batch):
    eta = planned(c, state["t"])
    area = state["area"] + eta
    return {"area": area, "t": state["t"] + 1}, {"loss": L0 + A_LAW * area**-ALPHA, "lr": eta}


def np_final(peak, warmup, start=0):
    t = np.arange(start, T_PBT) + 1.0
    return (peak * (np.minimum(t / warmup, 1.0) if warmup > 0 else np.ones(t.size))).sum()


def run_pbt(rank, step_fn=law_step, metric="loss", configs=PBT_CONFIGS, **kw):
    return jaxlr.sweep.pbt(
        law_init,
        step_fn,
        configs,
        (np.float32(0) for _ in range(T_PBT)),
        key=jax.random.key(0),
        num_steps=T_PBT,
        interval=INTERVAL,
        metric=metric,
        space={"peak_value": ("log_uniform", 0.1, 5.0)},
        fraction=0.25,
        progress=False,
        rank=rank,
        planned_lr=planned if rank == "predicted" else None,
        **kw,
    )


@pytest.fixture(scope="module")
def pbt_results():
    return {rank: run_pbt(rank) for rank in ("value", "predicted")}


def test_pbt_predicts_each_slots_final_loss_from_its_lr_area(pbt_results):
    res = pbt_results["predicted"]
    assert ALPHA in np.round(_rank.ALPHAS, 6)
    truth = [L0 + A_LAW * np_final(p, w) ** -ALPHA for p, w in zip(PBT_PEAKS, PBT_WARMUPS)]
    # the first exploit: every slot still holds its own member and config
    np.testing.assert_allclose(res.info["predicted"][0], truth, rtol=1e-4)
    assert int(np.argmin(truth)) == 3 and res.info["rank_fallbacks"][0] == 0
    # later exploits: a slot's curve is its lineage's and its plan its current (perturbed)
    # config's; the law holds along any lineage, so the prediction is the law at the LR area
    # the slot's lineage applied (NumPy, walking the lineage back) plus what its config plans
    for r in (1, 2):
        e = (r + 1) * INTERVAL - 1  # the exploit after step e (0-based), before its copies
        want = []
        for i in range(4):
            cur, area = i, res.metrics["lr"][i, e]
            for s in range(e - 1, -1, -1):
                cur = res.lineage[s, cur]
                area += res.metrics["lr"][cur, s]
            peak = res.perturbed["peak_value"][e, i]
            ahead = np_final(peak, PBT_WARMUPS[cur], start=e + 1)  # cur: the root member
            want.append(L0 + A_LAW * (area + ahead) ** -ALPHA)
        np.testing.assert_allclose(res.info["predicted"][r], want, rtol=1e-4)


def test_pbt_ranked_by_prediction_copies_the_slow_starter(pbt_results):
    value, predicted = pbt_results["value"], pbt_results["predicted"]
    e = INTERVAL - 1
    now = value.metrics["loss"][:, e]
    assert int(np.argmin(now)) != 3  # the slow starter is not the best yet ...
    # ... ranked by value, the bottom slot copies the best now; ranked by prediction, the
    # slow starter (the best at the end)
    worst = int(np.argmax(now))
    assert value.lineage[e, worst] == int(np.argmin(now))
    assert predicted.lineage[e, worst] == 3
    # the same training up to there: only the ranking differs
    np.testing.assert_array_equal(
        predicted.metrics["loss"][:, : e + 1], value.metrics["loss"][:, : e + 1]
    )


def test_pbt_predicted_ranking_resumes_bit_identical(tmp_path):
    def interrupted():
        for i in range(T_PBT):
            if i == 100:  # after the checkpoint at step 80
                raise KeyboardInterrupt
            yield np.float32(0)

    with pytest.raises(KeyboardInterrupt):
        jaxlr.sweep.pbt(
            law_init, law_step, PBT_CONFIGS, interrupted(), key=jax.random.key(0),
            num_steps=T_PBT, interval=INTERVAL, metric="loss",
            space={"peak_value": ("log_uniform", 0.1, 5.0)}, fraction=0.25, progress=False,
            rank="predicted", planned_lr=planned, checkpoint_dir=str(tmp_path),
            checkpoint_every=INTERVAL,
        )  # fmt: skip
    assert (tmp_path / "steps" / "80").exists()
    resumed = run_pbt("predicted", checkpoint_dir=str(tmp_path), checkpoint_every=INTERVAL)
    straight = run_pbt("predicted")
    np.testing.assert_array_equal(resumed.info["predicted"], straight.info["predicted"])
    np.testing.assert_array_equal(resumed.lineage, straight.lineage)
    np.testing.assert_array_equal(resumed.metrics["loss"], straight.metrics["loss"])
    # a run ranked by value is another run
    with pytest.raises(ValueError, match=r"pbt: checkpoint_dir=.* incompatible checkpoint"):
        run_pbt("value", checkpoint_dir=str(tmp_path), checkpoint_every=INTERVAL)


@pytest.mark.parametrize(
    "kw, match",
    [
        (dict(rank="predicted"), "rank='predicted' needs planned_lr="),
        (dict(rank="predicted", planned_lr=planned, mode="max"), "needs mode='min'"),
        (dict(rank="value", planned_lr=planned), "planned_lr= is used by rank='predicted'"),
        (dict(rank="best"), "rank"),
        (dict(rank="predicted", planned_lr=lambda c, t: jnp.nan), "finite and >= 0"),
    ],
)
def test_pbt_rank_arguments_are_checked(kw, match):
    args = dict(key=jax.random.key(0), num_steps=T_PBT, interval=INTERVAL, metric="loss")
    with pytest.raises(ValueError, match=r"^pbt: .*" + match):
        jaxlr.sweep.pbt(
            law_init, law_step, PBT_CONFIGS, iter([]), space={"peak_value": ("uniform", 0.1, 5.0)},
            progress=False, **args, **kw,
        )  # fmt: skip


def shifted_step(state, c, batch):
    """``law_step`` whose slow starter reports ``val`` = its loss times ``c["factor"]`` after
    the steps ``c["start"]..c["stop"]`` (config leaves: one compiled program for every case)."""
    state, m = law_step(state, c, batch)
    hit = (c["warmup_steps"] > 0) & (state["t"] >= c["start"]) & (state["t"] <= c["stop"])
    return state, {**m, "val": jnp.where(hit, m["loss"] * c["factor"], m["loss"])}


def shifted(factor, start, stop):
    return {**PBT_CONFIGS, **jaxlr.sweep.zip(factor=[factor] * 4, start=[start] * 4,
                                              stop=[stop] * 4)}  # fmt: skip


@pytest.mark.parametrize("jump", [1e4, np.inf])
def test_pbt_ranks_a_slot_whose_metric_just_jumped_by_its_value(jump):
    # the slow starter (the best prediction) reports a validation loss that jumps just before
    # the first exploit: a law fitted to its curve before the jump no longer describes it, so
    # it is ranked by its value (the worst) and replaced, as with rank="value"
    res = run_pbt("predicted", shifted_step, "val", shifted(jump, INTERVAL - 2, T_PBT))
    assert np.isnan(res.info["predicted"][0, 3])
    assert np.isfinite(res.info["predicted"][0, :3]).all()
    assert res.info["rank_fallbacks"][0] == (1 if np.isfinite(jump) else 0)
    assert res.lineage[INTERVAL - 1, 3] != 3  # replaced


def test_pbt_predicted_needs_a_scalar_applied_lr_and_takes_any_callable_plan():
    def step(state, c, batch):
        state, m = law_step(state, c, batch)
        return state, {**m, "lr": jnp.stack([m["lr"], m["lr"]])}  # an LR per parameter group

    with pytest.raises(ValueError, match=r"^pbt: rank='predicted' .* one scalar LR per member"):
        jaxlr.sweep.pbt(
            law_init, step, PBT_CONFIGS, (np.float32(0) for _ in range(20)),
            key=jax.random.key(0), num_steps=20, interval=10, metric="loss",
            space={"peak_value": ("uniform", 0.1, 5.0)}, progress=False, rank="predicted",
            planned_lr=planned,
        )  # fmt: skip

    class Plan:  # callable, compares by value, not hashable
        def __eq__(self, other):
            return isinstance(other, Plan)

        __hash__ = None

        def __call__(self, c, t):
            return planned(c, t)

    out = _rank.check_rank(
        jaxlr._src.validate.Checker("pbt"), "predicted", Plan(), "min", PBT_CONFIGS, 150
    )
    want = [[np_final(p, w) - np_final(p, w, start=t + 1) for t in range(150)]
            for p, w in zip(PBT_PEAKS, PBT_WARMUPS)]  # fmt: skip
    np.testing.assert_allclose(out, np.diff(np.c_[np.zeros(4), want], axis=1), rtol=1e-5)


@pytest.mark.parametrize("factor", [0.7, 1.3])
def test_a_slot_off_its_law_is_ranked_by_its_value_on_the_predictions_scale(factor):
    # the slow starter's metric moves by `factor` at the first exploit (better or worse): its
    # law no longer describes it, so it is ranked by its value times the median predicted
    # remaining gain of the others (NumPy: the exact law's final / now), on their scale
    res = run_pbt("predicted", shifted_step, "val", shifted(factor, INTERVAL, INTERVAL))
    now = np.array(
        [L0 + A_LAW * (np_final(p, w) - np_final(p, w, start=INTERVAL)) ** -ALPHA
         for p, w in zip(PBT_PEAKS, PBT_WARMUPS)]
    )  # fmt: skip
    final = np.array([L0 + A_LAW * np_final(p, w) ** -ALPHA
                      for p, w in zip(PBT_PEAKS, PBT_WARMUPS)])  # fmt: skip
    score = final.copy()
    score[3] = now[3] * factor * np.median(final[:3] / now[:3])
    np.testing.assert_allclose(res.info["predicted"][0, :3], final[:3], rtol=1e-4)
    assert np.isnan(res.info["predicted"][0, 3]) and res.info["rank_fallbacks"][0] == 1
    top, bottom = int(np.argmin(score)), int(np.argmax(score))
    want = np.arange(4)
    want[bottom] = top
    np.testing.assert_array_equal(res.lineage[INTERVAL - 1], want)
    assert (top == 3) == (factor < 1)  # a slot that just improved is not overwritten


def test_a_noisy_metric_is_not_taken_for_a_jump():
    # the exact law times 20% multiplicative noise: the fit's own scatter widens the tolerance,
    # so nearly every slot is ranked by its prediction once it has 7 entries
    def step(state, c, batch):
        state, m = law_step(state, c, batch)
        key = jax.random.fold_in(jax.random.key(5), state["t"] * 7 + (c["peak_value"] * 10))
        noisy = m["loss"] * (1.0 + 0.2 * jax.random.normal(key))
        return state, {**m, "val": noisy}

    res = jaxlr.sweep.pbt(
        law_init, step, PBT_CONFIGS, (np.float32(0) for _ in range(T_PBT)),
        key=jax.random.key(0), num_steps=T_PBT, interval=20, metric="val",
        space={"peak_value": ("log_uniform", 0.1, 5.0)}, fraction=0.25, progress=False,
        rank="predicted", planned_lr=planned,
    )  # fmt: skip
    later = res.info["rank_fallbacks"][1:]  # 13+ entries from the second exploit on
    assert len(later) == 6 and sum(later) <= 4, later  # 3 of 24 (12 with a fixed 25%)


def test_pbt_warns_when_no_exploit_can_rank_by_prediction():
    with pytest.warns(UserWarning, match=r"pbt: rank='predicted' cannot act: .* sees 5 of the 7"):
        run = jaxlr.sweep.pbt(
            law_init, law_step, PBT_CONFIGS, (np.float32(0) for _ in range(10)),
            key=jax.random.key(0), num_steps=10, interval=5, metric="loss",
            space={"peak_value": ("log_uniform", 0.1, 5.0)}, progress=False,
            rank="predicted", planned_lr=planned,
        )  # fmt: skip
    assert run.info["rank_fallbacks"] == [4]


def test_the_fit_uses_the_last_half_of_the_finite_points_of_a_curve_with_gaps():
    # 8 finite points of an exact law, a NaN between each two: the fit must use the last 4
    # finite points (not every point past the middle entry), so 7 gapped points fit, 6 do not
    area = np.arange(1.0, 17.0)
    y = 0.1 + 2.0 * area**-0.5
    gapped = np.where(np.arange(16) % 2 == 1, y, np.nan)
    for keep, ok in ((16, True), (14, True), (12, False)):  # 8, 7 and 6 finite points
        cut = np.where(np.arange(16) < keep, gapped, np.nan)
        with jax.enable_x64(True):
            pred, good, params, _ = _rank._fit_predict(
                jnp.asarray(cut[None]), jnp.asarray(np.r_[area, 100.0][None])
            )
        assert bool(good[0]) == ok
        if ok:
            np.testing.assert_allclose(float(pred[0]), 0.1 + 2.0 * 100.0**-0.5, rtol=1e-9)
    # the points used: poison the first half of the finite points with a wrong law; the fit
    # of the last half is still exact
    wrong = gapped.copy()
    wrong[[1, 3, 5, 7]] *= 3.0
    with jax.enable_x64(True):
        at = jnp.asarray(np.r_[area, 100.0][None])
        pred = _rank._fit_predict(jnp.asarray(wrong[None]), at)[0][0]
    np.testing.assert_allclose(float(pred), 0.1 + 2.0 * 100.0**-0.5, rtol=1e-9)


class _Members(NamedTuple):  # the state users have: parameters and an Optax state
    w: jax.Array
    opt: Any


def _optax_pbt(report_lr):
    # gradient descent on the quadratic of the halving tests, by optax.sgd(1.0) chained with
    # jaxlr's scale_by_schedule (the schedule held in the Optax state); the applied LR comes
    # either from an "lr" metric or from the Optax state (jaxlr.transforms.current_lr)
    import optax

    lam = jnp.asarray(LAM, jnp.float32)

    def tx(c):
        return optax.chain(optax.sgd(1.0), jaxlr.transforms.scale_by_schedule(schedule(c)))

    def init(c, key):
        w = jnp.ones(LAM.size)
        return _Members(w, tx(c).init(w))

    def step(s, c, batch):
        u, opt = tx(c).update(lam * s.w, s.opt, s.w)
        w = s.w + u
        m = {"loss": 0.5 * jnp.sum(lam * w * w)}
        if report_lr:  # the LR this update applied, computed from the schedule
            m["lr"] = schedule(c)(s.opt[1].count)
        return _Members(w, opt), m

    return jaxlr.sweep.pbt(
        init, step, jaxlr.sweep.zip(peak_value=PBT_PEAKS[:3], warmup_steps=[0.0, 0.0, 40.0]),
        (np.float32(0) for _ in range(T)), key=jax.random.key(0), num_steps=T, interval=20,
        metric="loss", space={"peak_value": ("log_uniform", 0.1, 1.5)}, progress=False,
        rank="predicted", planned_lr=lr,
    )  # fmt: skip


def test_pbt_predicted_reads_the_applied_lr_from_an_optax_state():
    from_state, from_metric = _optax_pbt(False), _optax_pbt(True)
    # before the first exploit every slot applies its own warmup: NumPy's formula
    want = [np_lrs(p, w)[:20] for p, w in zip(PBT_PEAKS[:3], [0.0, 0.0, 40.0])]
    np.testing.assert_allclose(from_state.lr_history[:, :20], want, rtol=1e-6)
    np.testing.assert_allclose(from_state.lr_history, from_metric.metrics["lr"], rtol=1e-6)
    assert np.isfinite(from_metric.info["predicted"][-1]).all()
    np.testing.assert_allclose(
        from_state.info["predicted"], from_metric.info["predicted"], rtol=1e-5
    )
    np.testing.assert_array_equal(from_state.lineage, from_metric.lineage)
