"""The main job: ``jaxlr demo --quick`` (jaxlr.demo.run with quick=True), run once for the suite,
through the command line: the grid, successive halving and PBT on the same search space."""

from __future__ import annotations

import contextlib
import io
import json
import math

import numpy as np
import pytest
from oracles import Spec, ref

from jaxlr import demo
from jaxlr.cli import main


def _family(name, peak, warmup, total):
    """The demo's member schedules as constructor calls (what its docs say it runs)."""
    return {
        "constant": Spec("warmup", Spec("constant", value=peak), warmup_steps=warmup),
        "step": Spec(
            "warmup",
            Spec("step", init_value=peak, period_steps=(total - warmup) / 3, decay_rate=0.1),
            warmup_steps=warmup,
        ),
        "cosine": Spec(
            "warmup",
            Spec("cosine", init_value=peak, total_steps=total - warmup),
            warmup_steps=warmup,
        ),
        "warmup_cosine": Spec(
            "warmup_cosine", peak_value=peak, warmup_steps=warmup, total_steps=total
        ),
        "one_cycle": Spec(
            "one_cycle",
            peak_value=peak,
            total_steps=total,
            warmup_fraction=max(warmup, 0.05 * total) / total,
        ),
        "wsd": Spec(
            "wsd", peak_value=peak, total_steps=total, warmup_steps=warmup, decay_fraction=0.2
        ),
    }[name]


@pytest.fixture(scope="module")
def quick(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo") / "report"
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        assert main(["demo", "--quick", "--out", str(out)]) == 0
    return (
        out,
        json.loads((out / "records.json").read_text()),
        json.loads((out / "search.json").read_text()),
        buf.getvalue(),
    )


def test_demo_writes_report_table_and_plots(quick):
    path, records, _, stdout = quick
    assert sorted(p.name for p in path.iterdir()) == [
        "final_loss_vs_peak_lr.png",
        "loss_curves.png",
        "lr_curves.png",
        "records.json",
        "report.md",
        "search.json",
        "sharpness_times_lr.png",
    ]
    report = (path / "report.md").read_text()
    assert "| schedule | best peak LR | warmup |" in report and "| schedule |" in stdout
    assert str(path.resolve()) in stdout
    for fam in demo.FAMILIES:
        assert f"| {fam} |" in report
    header = (
        "| method | selected member (by val loss) | peak LR applied | val loss | test loss "
        "| member-steps | wall time (s) | compile (s) |"
    )
    assert header in report and header in stdout
    for method in ("grid", "successive halving", "PBT"):
        assert f"| {method} |" in stdout


def test_demo_members_follow_their_schedule_and_learn(quick):
    _, records, _, _ = quick
    setting = demo._setting(True)
    steps = setting["steps"]
    assert len(records) == len(demo.FAMILIES) * len(setting["peaks"]) * len(setting["warmups"])
    assert {r["schedule"] for r in records} == set(demo.FAMILIES)
    for r in records:
        # The recorded LR of the last step is that family's value by the independent oracle
        # (tests/oracles.py never calls jaxlr's laws), so the switch and the laws are both checked.
        law = _family(r["schedule"], r["peak_value"], r["warmup_steps"], float(steps))
        expected = ref(law, steps - 1)
        assert r["lr_final"] == pytest.approx(expected, rel=1e-5, abs=1e-9)
        assert not r["diverged"]
        assert math.isfinite(r["lambda_max"]) and r["lambda_max"] > 0
    best = max(records, key=lambda r: r["test_accuracy"])
    assert best["test_accuracy"] > 0.5  # chance is 0.1 on ten digits
    assert best["train_loss"] < np.log(10.0)  # below the loss of the untrained uniform guess


def test_halving_and_pbt_search_the_same_space_as_the_grid(quick):
    _, records, search, _ = quick
    setting = demo._setting(True)
    k, steps = len(records), setting["steps"]
    rungs = demo.rungs(steps, setting["unit"])
    sizes, work, prev = [k], 0, 0
    for r in rungs:
        work += sizes[-1] * (r - prev)
        sizes.append(max(1, sizes[-1] // 3))
        prev = r
    halving = search["halving"]
    assert halving["member_steps"] == work < k * steps
    # A survivor trained from a NumPy iterator equals the same member of the in-device grid,
    # on the validation split it is selected by and on the test split it is reported on.
    for i in halving["survivors"]:
        assert halving["records"][i]["val_loss"] == pytest.approx(records[i]["val_loss"], rel=1e-4)
    chosen = halving["selected"]
    assert chosen["index"] in halving["survivors"]
    assert chosen["test_loss"] == pytest.approx(records[chosen["index"]]["test_loss"], rel=1e-4)
    # Validation and test are different splits.
    assert all(r["val_loss"] != r["test_loss"] for r in records)
    pbt = search["pbt"]
    assert pbt["member_steps"] == k * steps and len(pbt["lr_path"]) == steps
    winner = pbt["records"][pbt["winner"]]
    assert (
        winner["val_loss"] <= min(r["val_loss"] for r in pbt["records"] if not r["diverged"]) + 1e-9
    )
    assert winner["val_loss"] < np.log(10.0)
    assert pbt["selected"]["index"] == pbt["winner"]
    assert math.isfinite(pbt["selected"]["test_loss"])


def test_the_comparison_names_the_lr_each_selected_member_applied(quick):
    _, records, search, stdout = quick
    rows = {line.split(" | ")[0].strip("| "): line.split(" | ") for line in stdout.splitlines()}
    assert rows["PBT"][2] == f"{max(search['pbt']['lr_path']):.2g}"
    grid_best = min((r for r in records if not r["diverged"]), key=lambda r: r["val_loss"])
    assert rows["grid"][3] == f"{grid_best['val_loss']:.4f}"
    assert rows["grid"][4] == f"{grid_best['test_loss']:.4f}"


def test_pbt_perturbs_the_peak_held_in_the_optimizer_state_and_it_acts(quick):
    """The demo's members keep their schedule in the optimizer state (scale_by_schedule); PBT
    perturbs its peak (the schedule's ``factor`` leaf) and the exploit writes it there: the LR
    each final slot applied at the last step, read from its optimizer state, is its family's
    value at its final (perturbed) peak by the independent oracle, not its parent's."""
    _, records, search, _ = quick
    steps = demo._setting(True)["steps"]
    founders = {r["peak_value"] for r in records}
    final = search["pbt"]["records"]
    assert any(
        all(r["peak_value"] != pytest.approx(f, rel=1e-6) for f in founders) for r in final
    )  # some slot ends on a perturbed peak
    for r in final:
        if r["diverged"]:
            continue
        law = _family(r["schedule"], r["peak_value"], r["warmup_steps"], float(steps))
        assert r["lr_final"] == pytest.approx(ref(law, steps - 1), rel=1e-5, abs=1e-9)
