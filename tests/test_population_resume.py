"""Population checkpoints (orbax): SIGKILL mid-run, resume bit-identical; incompatible refused."""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import jax.numpy as jnp
import numpy as np
import pytest
from test_population import KEY, batches, init_fn
from test_population_halving import with_val
from test_population_pbt import CONFIGS, FAST, SPACE, T

import jaxlr

OPTS = dict(
    key=KEY,
    num_steps=T,
    interval=4,
    metric="val",
    space=SPACE,
    progress=False,
    checkpoint_every=4,
    compiler_options=FAST,
)

_KILLED = textwrap.dedent("""
    import os, signal, sys
    sys.path.insert(0, sys.argv[1])
    import jaxlr
    from test_population import batches, init_fn
    from test_population_halving import with_val
    from test_population_resume import CONFIGS, OPTS

    def dying():
        for i, b in enumerate(batches(steps=16)):
            if i == 10:  # after the checkpoint at step 8, mid-way through the next interval
                os.kill(os.getpid(), signal.SIGKILL)
            yield b

    jaxlr.sweep.pbt(init_fn, with_val, CONFIGS, dying(), checkpoint_dir=sys.argv[2], **OPTS)
""")


def test_a_killed_run_resumes_bit_identical(tmp_path):
    killed = tmp_path / "killed"
    proc = subprocess.run(
        [sys.executable, "-c", _KILLED, str(Path(__file__).parent), str(killed)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-3000:]
    assert (killed / "steps" / "8").exists() and not (killed / "steps" / "12").exists()
    resumed = jaxlr.sweep.pbt(
        init_fn, with_val, CONFIGS, batches(steps=T), checkpoint_dir=str(killed), **OPTS
    )
    straight = jaxlr.sweep.pbt(
        init_fn,
        with_val,
        CONFIGS,
        batches(steps=T),
        checkpoint_dir=str(tmp_path / "straight"),
        **OPTS,
    )
    assert resumed.info["steps"] == T and len(resumed) == len(straight) == 8
    for name in ("val", "loss", "lr"):
        np.testing.assert_array_equal(resumed.metrics[name], straight.metrics[name])
    np.testing.assert_array_equal(resumed.lineage, straight.lineage)
    np.testing.assert_array_equal(resumed.hyperparameters["lr"], straight.hyperparameters["lr"])

    # The same directory with another search space or another state structure is refused.
    other = jaxlr.sweep.grid(lr=np.linspace(0.01, 0.2, 8), momentum=0.5)
    with pytest.raises(
        ValueError,
        match=r"pbt: checkpoint_dir=.* holds an incompatible "
        r"checkpoint \(it differs in \['configs_sha256'\]\)",
    ):
        jaxlr.sweep.pbt(
            init_fn, with_val, other, batches(steps=T), checkpoint_dir=str(killed), **OPTS
        )

    def init_bigger(cfg, key):
        return {**init_fn(cfg, key), "extra": jnp.zeros(2)}

    def step_bigger(state, cfg, batch):
        new, m = with_val({"w": state["w"], "m": state["m"]}, cfg, batch)
        return {**new, "extra": state["extra"]}, m

    with pytest.raises(ValueError, match=r"differs in \['state', 'state_structure'\]"):
        jaxlr.sweep.pbt(
            init_bigger, step_bigger, CONFIGS, batches(steps=T), checkpoint_dir=str(killed), **OPTS
        )


def test_checkpoints_without_orbax_name_the_extra(monkeypatch):
    from jaxlr.sweep import _checkpoint

    monkeypatch.setitem(sys.modules, "orbax.checkpoint", None)
    with pytest.raises(ImportError, match=r"pip install 'jaxlr\[checkpoint\]'"):
        _checkpoint._orbax()


def test_checkpoint_options_go_together():
    with pytest.raises(ValueError, match=r"give checkpoint_dir and checkpoint_every together"):
        jaxlr.sweep.Population(init_fn, with_val, CONFIGS, key=KEY, progress=False).train(
            batches(), 2, checkpoint_every=2
        )
