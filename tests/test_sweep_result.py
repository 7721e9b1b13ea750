"""SweepResult without pandas: reductions, default validation metric, LR fields, tables, CSV."""

from __future__ import annotations

import csv

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxlr

T = 12
PEAKS = np.array([0.05, 0.2, 0.45, 3.0])  # lr * 2 > 2: gradient descent on a quadratic diverges
WARMUP = 4.0


def train_fn(cfg):
    """GD on the train loss (w - 3)^2 under warmup-cosine; the validation loss is (w - 2.5)^2."""
    s = jaxlr.schedules.warmup_cosine(
        peak_value=cfg["peak_value"], warmup_steps=WARMUP, total_steps=T
    )

    def step(w, t):
        lr = s(t)
        return w - lr * 2.0 * (w - 3.0), ((w - 3.0) ** 2, (w - 2.5) ** 2, lr)

    _, (loss, val, lr) = jax.lax.scan(step, 0.0, jnp.arange(T))
    return {"loss": loss, "val_loss": val, "lr": lr}


def numpy_run(peak):
    """The same run in NumPy (warmup-cosine written out from its arguments)."""
    w, out = 0.0, []
    for t in range(T):
        if t < WARMUP:
            lr = peak * t / WARMUP
        else:
            lr = 0.5 * peak * (1 + np.cos(np.pi * (t - WARMUP) / (T - WARMUP)))
        out.append(((w - 3.0) ** 2, (w - 2.5) ** 2, lr))
        w = w - lr * 2.0 * (w - 3.0)
    return np.array(out).T


@pytest.fixture(scope="module")
def res():
    return jaxlr.sweep.run(
        train_fn, jaxlr.sweep.grid(peak_value=PEAKS), progress=False, divergence_threshold=100.0
    )


@pytest.fixture(scope="module")
def ref():
    loss, val, lr = np.stack([numpy_run(p) for p in PEAKS], axis=1)
    return {"loss": loss, "val_loss": val, "lr": lr}


def test_run_matches_numpy(res, ref):
    for k in ref:
        np.testing.assert_allclose(res.metric(k), ref[k], rtol=1e-4, atol=1e-6)
    assert res.diverged.tolist() == [False, False, False, True]


@pytest.mark.parametrize(
    "reduction,last_n,numpy_reduce",
    [
        ("last", None, lambda m: m[:, -1]),
        ("min", None, lambda m: m.min(1)),
        ("max", None, lambda m: m.max(1)),
        ("mean_last", 3, lambda m: m[:, -3:].mean(1)),
        ("mean_last", T, lambda m: m.mean(1)),
    ],
)
def test_score_and_best_follow_the_named_reduction(res, ref, reduction, last_n, numpy_reduce):
    expected = numpy_reduce(ref["val_loss"])
    np.testing.assert_allclose(
        res.score("val_loss", reduction=reduction, last_n=last_n), expected, rtol=1e-4
    )
    healthy = np.flatnonzero(~res.diverged)
    want = healthy[np.argmin(expected[healthy])]
    assert res.best("val_loss", reduction=reduction, last_n=last_n)["index"] == want
    want_max = healthy[np.argmax(expected[healthy])]
    assert res.best("val_loss", mode="max", reduction=reduction, last_n=last_n)["index"] == want_max


def test_best_defaults_to_the_validation_loss(res, ref):
    assert res.default_metric == "val_loss"
    healthy = np.flatnonzero(~res.diverged)
    by_val = healthy[np.argmin(ref["val_loss"][healthy, -1])]
    by_train = healthy[np.argmin(ref["loss"][healthy, -1])]
    assert by_val != by_train  # the two rankings differ here, so the default is observable
    assert res.best()["index"] == by_val
    assert res.best("loss")["index"] == by_train
    for name in ("eval_loss", "valid.loss", "validation/loss", "val_ce_loss"):
        r = jaxlr.sweep.SweepResult(
            {"a": np.zeros(2)}, {"loss": np.array([1.0, 2.0]), name: np.array([2.0, 1.0])}
        )
        assert r.default_metric == name and r.best()["index"] == 1
    no_val = jaxlr.sweep.SweepResult(
        {"a": np.zeros(2)}, {"loss": np.array([2.0, 1.0]), "value_loss": np.zeros(2)}
    )
    assert no_val.default_metric == "loss" and no_val.best()["index"] == 1


def test_records_say_which_lr_they_hold(res, ref):
    for i, rec in enumerate(res.records()):
        assert "lr" not in rec
        assert rec["lr_final"] == pytest.approx(ref["lr"][i, -1], rel=1e-5, abs=1e-9)
        assert rec["lr_peak"] == pytest.approx(PEAKS[i], rel=1e-5)  # reached at step WARMUP
        assert rec["peak_value"] == pytest.approx(PEAKS[i])
        assert rec["val_loss"] == pytest.approx(ref["val_loss"][i, -1], rel=1e-4)


def test_markdown_and_text_tables_hold_the_records(res):
    recs = res.records()
    md = res.to_markdown().splitlines()
    header = [c.strip() for c in md[0].strip("|").split("|")]
    assert header == list(recs[0]) and md[1].count("---") == len(header)
    assert len(md) == 2 + len(res)
    shown = []
    for line in md[2:]:
        cells = dict(zip(header, (c.strip() for c in line.strip("|").split("|"))))
        rec = recs[int(cells["index"])]
        assert float(cells["val_loss"]) == pytest.approx(rec["val_loss"], rel=1e-3)
        assert cells["diverged"] == str(rec["diverged"])
        shown.append(rec["index"])
    # rows best first by the metric best() ranks by (every member is healthy here)
    assert shown == np.argsort(res.score(), kind="stable").tolist()
    assert shown[0] == res.best()["index"] and sorted(shown) == list(range(len(res)))
    txt = res.to_text(["index", "peak_value", "lr_peak"], sort=False).splitlines()
    assert txt[0].split() == ["index", "peak_value", "lr_peak"]
    assert [float(v) for v in txt[3].split()] == pytest.approx([2, 0.45, 0.45], rel=1e-3)
    assert len({len(x) for x in txt[1:]}) == 1  # right-aligned numbers: equal widths


def test_rich_table(res):
    rich = pytest.importorskip("rich")
    from rich.console import Console

    table = res.to_rich(["index", "peak_value", "diverged"])
    assert table.row_count == len(res) and [c.header for c in table.columns] == [
        "index",
        "peak_value",
        "diverged",
    ]
    console = Console(record=True, width=120, color_system=None)
    console.print(res)
    text = console.export_text()
    assert "0.45" in text and "True" in text and "SweepResult(K=4" in text
    assert rich is not None


def test_csv_round_trip(res, tmp_path):
    path = res.to_csv(tmp_path / "sweep.csv")
    rows = list(csv.DictReader(path.open()))
    recs = res.records()
    assert len(rows) == len(recs) and list(rows[0]) == list(recs[0])
    assert [int(r["index"]) for r in rows] == res.table_order().tolist()
    for row in rows:
        rec = recs[int(row["index"])]
        # float32 metrics round-trip exactly at their own precision, without noise digits
        assert np.float32(row["val_loss"]) == np.float32(rec["val_loss"])
        assert np.float32(row["lr_final"]) == np.float32(rec["lr_final"])
        assert row["val_loss"] == str(np.float32(rec["val_loss"]))
        assert row["diverged"] == str(rec["diverged"])


def test_csv_writes_float32_values_without_noise_digits(tmp_path):
    r = jaxlr.sweep.SweepResult(
        {"peak_value": np.array([0.1, 0.3], np.float32), "wd": np.array([0.1, 1 / 3])},
        {"loss": np.array([[1.0, 0.7], [1.0, 0.2]], np.float32)},
    )
    rows = list(csv.DictReader(r.to_csv(tmp_path / "r.csv", sort=False).open()))
    assert [x["peak_value"] for x in rows] == ["0.1", "0.3"]  # not 0.10000000149011612
    assert [x["loss"] for x in rows] == ["0.7", "0.2"]
    assert [x["wd"] for x in rows] == ["0.1", repr(1 / 3)]  # float64 keeps its 17 digits
    assert float(rows[1]["wd"]) == 1 / 3
    sorted_rows = list(csv.DictReader(r.to_csv(tmp_path / "s.csv").open()))
    assert [x["index"] for x in sorted_rows] == ["1", "0"]  # best (lowest loss) first


def test_plots_default_to_the_metric_best_ranks_by(res):
    assert res.default_metric == "val_loss"
    ax = res.plot_curves().axes[0]
    np.testing.assert_allclose(ax.lines[0].get_ydata(), res.metric("val_loss")[0])
    assert "val_loss" in res.plot_final().axes[0].get_title()


def test_lr_curves_on_a_log_axis(res):
    assert res.metric("lr")[:, 0].max() == 0.0  # warmup starts at 0: a zero on the curve
    ax = res.plot_curves("lr").axes[0]
    assert ax.get_yscale() == "log"
    assert res.plot_final("val_loss").axes[0].get_xscale() == "log"


def test_bad_input_names_it(res):
    with pytest.raises(
        ValueError,
        match=r"SweepResult.score: reduction must be one of .*"
        r"got reduction='median'",
    ):
        res.best(reduction="median")
    with pytest.raises(
        ValueError,
        match=r"reduction='mean_last' needs last_n.*\[1, 12\].*"
        r"last_n=None",
    ):
        res.best(reduction="mean_last")
    with pytest.raises(ValueError, match=r"last_n=13"):
        res.score("loss", reduction="mean_last", last_n=13)
    with pytest.raises(ValueError, match=r"last_n is the window of reduction='mean_last'"):
        res.score("loss", reduction="min", last_n=2)
    with pytest.raises(ValueError, match=r"unknown metric 'test_loss'"):
        res.best("test_loss")
    with pytest.raises(ValueError, match=r"to_markdown: unknown columns \['lr'\]"):
        res.to_markdown(["index", "lr"])
    with pytest.raises(ValueError, match=r"mode must be 'min' or 'max'"):
        res.best(mode="best")
    with pytest.raises(ValueError, match=r"no validation loss and no None metric"):
        jaxlr.sweep.SweepResult({"a": np.zeros(2)}, {"acc": np.ones(2)}, loss=None).best()


def test_a_metric_named_like_a_hyperparameter_or_a_record_field_hides_nothing(tmp_path):
    r = jaxlr.sweep.SweepResult(
        {"lr": np.array([0.1, 1.0])},
        {
            "loss": np.array([[1.0, 0.5], [1.0, 0.25]]),
            "lr": np.array([0.07, 0.7]),  # a scalar metric named like the hyperparameter
            "diverged": np.array([3.0, 4.0]),
        },
    )
    rec = r.member(1)
    assert (rec["lr"], rec["metric:lr"], rec["loss"]) == (1.0, 0.7, 0.25)
    assert (rec["diverged"], rec["metric:diverged"]) == (False, 4.0)
    rows = list(csv.DictReader(r.to_csv(tmp_path / "r.csv", sort=False).open()))
    assert [(x["lr"], x["metric:lr"]) for x in rows] == [("0.1", "0.07"), ("1.0", "0.7")]
    rows = list(csv.DictReader(r.to_csv(tmp_path / "s.csv").open()))  # best (loss 0.25) first
    assert [(x["lr"], x["metric:lr"]) for x in rows] == [("1.0", "0.7"), ("0.1", "0.07")]


def _acc_step(w, cfg, t):
    w = w - cfg["lr"] * 2.0 * (w - t)
    return w, {"loss": (w - t) ** 2, "lr": cfg["lr"]}


def _acc_eval(w, cfg):
    return {"acc": -((w - 1.0) ** 2)}  # an eval_fn metric, not a loss: higher is better


@pytest.mark.parametrize("search", ["pbt", "successive_halving"])
def test_a_search_ranks_its_tables_best_and_plots_by_its_own_metric_and_mode(search, tmp_path):
    """The review's reproduction: PBT with metric='acc', mode='max' named one winner while
    best(), the tables and the CSV ranked by the train loss, lowest first."""
    steps = 6
    common = dict(key=jax.random.key(0), metric="acc", mode="max", progress=False)
    common.update(eval_fn=_acc_eval)
    configs = jaxlr.sweep.grid(lr=[0.01, 0.03, 0.1, 0.3])
    data = (np.float32(3.0) for _ in range(steps))
    init = lambda c, k: jnp.zeros(())  # noqa: E731
    if search == "pbt":
        r = jaxlr.sweep.pbt(
            init,
            _acc_step,
            configs,
            data,
            num_steps=steps,
            interval=3,
            fraction=0.5,
            space={"lr": ("log_uniform", 1e-3, 0.5)},
            **common,
        )
        top = r.winner
    else:
        r = jaxlr.sweep.successive_halving(
            init, _acc_step, configs, data, rungs=[2, steps], eta=2, **common
        )
        (top,) = r.info["survivors"][:1]
    final = r.metrics["acc"][:, -1]
    # independent: the highest final accuracy among the members that ran to the end
    assert top == int(np.nanargmax(np.where(np.isnan(final), -np.inf, final)))
    assert r.default_metric == "acc"
    assert r.best()["index"] == top == int(r.table_order()[0])
    assert r.to_text(["index", "acc"]).splitlines()[1].split()[0] == str(top)
    rows = list(csv.DictReader(r.to_csv(tmp_path / "r.csv").open()))
    assert rows[0]["index"] == str(top)
    assert r.best("loss")["index"] == int(np.nanargmin(r.metrics["loss"][:, -1]))  # min there
    assert r.best("acc", mode="min")["index"] != top
