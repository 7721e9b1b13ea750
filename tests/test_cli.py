"""The ``jaxlr`` command line: list, plot and their errors."""

from __future__ import annotations

import matplotlib.image

from jaxlr import compat, schedules
from jaxlr.cli import main


def test_list_prints_every_catalog_entry(capsys):
    assert main(["list"]) == 0
    lines = capsys.readouterr().out.splitlines()
    native, peers = schedules.catalog(), compat.catalog()
    assert [ln.split()[0] for ln in lines] == list(native) + list(peers)
    # each line's repr is a parseable expression of that schedule
    for ln, s in zip(lines, native.values()):
        assert schedules.parse(ln.split(maxsplit=1)[1]) == s


def test_list_prints_the_torch_keras_and_hugging_face_names(capsys):
    """Issue 21: the README says ``jaxlr list`` prints the peers' names; it printed none."""
    assert main(["list"]) == 0
    lines = {ln.split()[0]: ln.split(maxsplit=1)[1] for ln in capsys.readouterr().out.splitlines()}
    for name in ("torch.OneCycleLR", "keras.CosineDecay", "transformers.get_wsd_schedule"):
        assert name in lines
    assert {n.split(".")[0] for n in lines if "." in n} >= {"torch", "keras", "transformers"}
    parsed = 0
    for name, s in compat.catalog().items():
        if "<function" in lines[name]:  # a user function (lr_lambda) has no expression
            continue
        assert schedules.parse(lines[name], lookup=compat.lookup) == s, name
        parsed += 1
    assert parsed >= 30


def test_plot_writes_a_png_of_the_expressions(tmp_path, capsys):
    out = tmp_path / "lr.png"
    code = main(
        [
            "plot",
            "warmup_cosine(peak_value=1e-3, warmup_steps=100, total_steps=1000)",
            "presets.bert(total_steps=1000, peak_value=1e-3)",
            "-o",
            str(out),
            "--log",
        ]
    )
    assert code == 0 and capsys.readouterr().out.strip() == str(out)
    image = matplotlib.image.imread(out)
    assert image.shape[0] > 100 and image.shape[1] > 100


def test_plot_rejects_a_bad_expression_with_exit_code_2(tmp_path, capsys):
    assert main(["plot", "warmup_cosine(peak_value=1e-3", "-o", str(tmp_path / "x.png")]) == 2
    assert "parse" in capsys.readouterr().err
