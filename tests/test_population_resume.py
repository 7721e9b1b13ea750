"""Population checkpoints (orbax): SIGKILL mid-run, resume bit-identical; incompatible refused."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx
from test_population import CONFIGS as CONFIGS_SMALL
from test_population import KEY, D, N, batches, init_fn, step_fn
from test_population_halving import with_val
from test_population_pbt import CONFIGS, FAST

import jaxlr
from jaxlr.sweep import Population


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


# -- any pytree state: Optax states (tuples of NamedTuples), NamedTuples, typed keys, NNX -------
class Noisy(NamedTuple):
    w: jax.Array
    key: jax.Array  # a typed PRNG key (jax.random.key)


GRAPHDEF = nnx.graphdef(nnx.Linear(D, 1, rngs=nnx.Rngs(0)))
TX = optax.scale_by_adam()
ANY_CONFIGS = jaxlr.sweep.grid(lr=[0.01, 0.03, 0.1, 0.3])
ANY_OPTS = dict(
    key=KEY,
    num_steps=8,
    interval=2,
    metric="val",
    space={"lr": ("log_uniform", 1e-3, 0.5)},
    progress=False,
    checkpoint_every=2,
    compiler_options=FAST,
)


def init_any(cfg, key):
    k1, k2, k3 = jax.random.split(key, 3)
    params = {"w": 0.1 * jax.random.normal(k1, (D,))}
    linear = nnx.split(nnx.Linear(D, 1, rngs=nnx.Rngs(params=k2)))[1]
    return {"optax": (params, TX.init(params)), "noisy": Noisy(jnp.zeros(D), k3), "nnx": linear}


def step_any(state, cfg, batch):
    """Adam on a linear model (an Optax state), noisy SGD driven by a typed key in a NamedTuple,
    and SGD on an NNX Linear (its nnx.State); every part shows up in the metrics."""
    x, y = batch["x"], batch["y"]
    params, opt = state["optax"]
    loss, g = jax.value_and_grad(lambda p: jnp.mean((x @ p["w"] - y) ** 2))(params)
    u, opt = TX.update(g, opt)
    params = jax.tree.map(lambda p, d: p - cfg["lr"] * d, params, u)
    key, sub = jax.random.split(state["noisy"].key)
    w = state["noisy"].w
    noisy_loss = jnp.mean((x @ w - y) ** 2)
    w = w - cfg["lr"] * (2.0 * x.T @ (x @ w - y) / N + 0.1 * jax.random.normal(sub, (D,)))

    def nnx_loss(st):
        return jnp.mean((nnx.merge(GRAPHDEF, st)(x)[:, 0] - y) ** 2)

    lin_loss, gm = jax.value_and_grad(nnx_loss)(state["nnx"])
    linear = jax.tree.map(lambda p, d: p - cfg["lr"] * d, state["nnx"], gm)
    new = {"optax": (params, opt), "noisy": Noisy(w, key), "nnx": linear}
    return new, {"loss": loss, "val": loss + noisy_loss + lin_loss, "lr": cfg["lr"]}


_KILLED_ANY = textwrap.dedent("""
    import os, signal, sys
    sys.path.insert(0, sys.argv[1])
    import jaxlr
    from test_population import batches
    from test_population_resume import ANY_CONFIGS, ANY_OPTS, init_any, step_any

    def dying():
        for i, b in enumerate(batches(steps=8)):
            if i == 5:  # after the checkpoint at step 4
                os.kill(os.getpid(), signal.SIGKILL)
            yield b

    jaxlr.sweep.pbt(init_any, step_any, ANY_CONFIGS, dying(), checkpoint_dir=sys.argv[2],
                    **ANY_OPTS)
""")


def test_a_killed_pbt_with_optax_namedtuple_key_and_nnx_state_resumes_bit_identical(tmp_path):
    killed = tmp_path / "killed"
    proc = subprocess.run(
        [sys.executable, "-c", _KILLED_ANY, str(Path(__file__).parent), str(killed)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-3000:]
    assert (killed / "steps" / "4").exists() and not (killed / "steps" / "6").exists()
    resumed = jaxlr.sweep.pbt(
        init_any, step_any, ANY_CONFIGS, batches(steps=8), checkpoint_dir=str(killed), **ANY_OPTS
    )
    straight = jaxlr.sweep.pbt(
        init_any,
        step_any,
        ANY_CONFIGS,
        batches(steps=8),
        checkpoint_dir=str(tmp_path / "straight"),
        **ANY_OPTS,
    )
    assert resumed.info["steps"] == 8
    assert np.isfinite(straight.metrics["val"]).all()
    for name in ("val", "loss", "lr"):
        np.testing.assert_array_equal(resumed.metrics[name], straight.metrics[name])
    np.testing.assert_array_equal(resumed.lineage, straight.lineage)
    np.testing.assert_array_equal(resumed.hyperparameters["lr"], straight.hyperparameters["lr"])

    # The same directory with another search space or another state structure is refused.
    other = jaxlr.sweep.grid(lr=[0.01, 0.03, 0.1, 0.2])
    with pytest.raises(
        ValueError,
        match=r"pbt: checkpoint_dir=.* holds an incompatible "
        r"checkpoint \(it differs in \['configs_sha256'\]\)",
    ):
        jaxlr.sweep.pbt(
            init_any, step_any, other, batches(steps=8), checkpoint_dir=str(killed), **ANY_OPTS
        )

    def init_bigger(cfg, key):
        return {**init_any(cfg, key), "extra": jnp.zeros(2)}

    def step_bigger(state, cfg, batch):
        new, m = step_any({k: v for k, v in state.items() if k != "extra"}, cfg, batch)
        return {**new, "extra": state["extra"]}, m

    with pytest.raises(ValueError, match=r"differs in \['state', 'state_structure'\]"):
        jaxlr.sweep.pbt(
            init_bigger,
            step_bigger,
            ANY_CONFIGS,
            batches(steps=8),
            checkpoint_dir=str(killed),
            **ANY_OPTS,
        )


def test_population_train_resumes_any_state_with_its_types(tmp_path):
    """Population.train: resume after 4 of 6 steps equals 6 straight steps, leaf for leaf,
    and the state comes back with its own types (Optax NamedTuples, typed key, nnx.State)."""
    kw = dict(key=KEY, progress=False, compiler_options=FAST)
    first = Population(init_any, step_any, ANY_CONFIGS, **kw)
    first.train(batches(steps=4), 4, checkpoint_dir=str(tmp_path), checkpoint_every=2)
    resumed = Population(init_any, step_any, ANY_CONFIGS, **kw)
    resumed.train(batches(steps=6), 6, checkpoint_dir=str(tmp_path), checkpoint_every=2)
    straight = Population(init_any, step_any, ANY_CONFIGS, **kw).train(batches(steps=6), 6)
    state = resumed.carries[0].state
    assert isinstance(state["optax"], tuple) and isinstance(
        state["optax"][1], optax.ScaleByAdamState
    )
    assert isinstance(state["noisy"], Noisy) and isinstance(state["nnx"], nnx.State)
    assert jax.dtypes.issubdtype(state["noisy"].key.dtype, jax.dtypes.prng_key)
    a, b = resumed.host_carry(), straight.host_carry()
    assert jax.tree.structure(a) == jax.tree.structure(b)
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
        np.testing.assert_array_equal(x, y)
    np.testing.assert_array_equal(resumed.result().metrics["val"], straight.result().metrics["val"])
    # The host copy of a typed key is its key data: the same numbers as the device key.
    np.testing.assert_array_equal(
        a.state["noisy"].key,
        np.asarray(jax.random.key_data(straight.carries[0].state["noisy"].key)),
    )


# -- self-checking checkpoints: damaged steps fall back, foreign steps are refused --------------
def _pop(configs=CONFIGS_SMALL):
    return Population(init_fn, step_fn, configs, key=KEY, progress=False, compiler_options=FAST)


@pytest.fixture(scope="module")
def straight6():
    return _pop().train(batches(steps=6), 6).host_carry()


def _checkpointed(directory, steps=4, configs=CONFIGS_SMALL):
    _pop(configs).train(
        batches(steps=steps), steps, checkpoint_dir=str(directory), checkpoint_every=2
    )


def _resume(directory, configs=CONFIGS_SMALL):
    return _pop(configs).train(
        batches(steps=6), 6, checkpoint_dir=str(directory), checkpoint_every=2
    )


def _assert_same(pop, carry):
    for x, y in zip(jax.tree.leaves(pop.host_carry()), jax.tree.leaves(carry)):
        np.testing.assert_array_equal(x, y)


def test_a_truncated_latest_step_falls_back_to_the_intact_one(tmp_path, straight6):
    _checkpointed(tmp_path)
    for f in (tmp_path / "steps" / "4").rglob("*"):
        if f.is_file():
            f.write_bytes(f.read_bytes()[: f.stat().st_size // 2])
    with pytest.warns(RuntimeWarning, match=r"step 4 .* is damaged .*resuming from step 2"):
        pop = _resume(tmp_path)
    assert pop.steps_done == 6 and (tmp_path / "corrupt" / "4").is_dir()
    _assert_same(pop, straight6)


def test_damaged_arrays_fail_their_checksum(tmp_path, straight6):
    """A step whose arrays read back without error but differ from what was saved."""
    _checkpointed(tmp_path)
    ocdbt = [f for f in (tmp_path / "steps" / "4" / "carry").rglob("*") if f.is_file()]
    big = max(ocdbt, key=lambda f: f.stat().st_size)
    raw = bytearray(big.read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    big.write_bytes(bytes(raw))
    with pytest.warns(RuntimeWarning, match=r"step 4 .* is damaged"):
        pop = _resume(tmp_path)
    _assert_same(pop, straight6)


def test_a_truncated_fingerprint_is_read_from_the_steps(tmp_path, straight6):
    _checkpointed(tmp_path)
    fp = tmp_path / "fingerprint.json"
    fp.write_text(fp.read_text()[:20])
    with pytest.warns(RuntimeWarning, match=r"fingerprint.json' cannot be read"):
        pop = _resume(tmp_path)
    _assert_same(pop, straight6)
    json.loads(fp.read_text())  # written again, whole


def test_foreign_steps_are_refused_even_without_a_fingerprint(tmp_path):
    other = jaxlr.sweep.grid(lr=[0.02, 0.05, 0.2], momentum=[0.0, 0.9])
    _checkpointed(tmp_path / "a")
    _checkpointed(tmp_path / "b", configs=other)
    # Another run's steps/ in a reused directory whose fingerprint.json was deleted.
    (tmp_path / "b" / "fingerprint.json").unlink()
    shutil.rmtree(tmp_path / "b" / "steps")
    shutil.copytree(tmp_path / "a" / "steps", tmp_path / "b" / "steps")
    with pytest.raises(
        ValueError,
        match=r"Population: checkpoint_dir=.* holds an incompatible checkpoint "
        r"\(step 4's fingerprint differs in \['configs_sha256'\]\)",
    ):
        _resume(tmp_path / "b", configs=other)


def test_the_fingerprint_is_written_once_and_atomically(tmp_path, monkeypatch):
    from jaxlr.sweep import _checkpoint

    _checkpointed(tmp_path, steps=2)
    fp = tmp_path / "fingerprint.json"
    before = fp.stat().st_mtime_ns, fp.read_text()
    _resume(tmp_path)  # saves at steps 4 and 6
    assert (fp.stat().st_mtime_ns, fp.read_text()) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fingerprint.json", "steps"]

    def crash(fd):
        raise OSError("disk full")

    monkeypatch.setattr(_checkpoint.os, "fsync", crash)
    with pytest.raises(OSError, match="disk full"):
        _checkpoint._write_atomic(fp, "{}")
    assert fp.read_text() == before[1]  # a failed write leaves the old file whole
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fingerprint.json", "steps"]


def test_checkpoint_dir_that_is_a_file_and_save_before_training(tmp_path):
    f = tmp_path / "file"
    f.write_text("")
    with pytest.raises(
        ValueError,
        match=r"Population.train: checkpoint_dir must be a directory, got "
        r"checkpoint_dir='.*file', which is a file",
    ):
        _pop().train(batches(steps=2), 2, checkpoint_dir=str(f), checkpoint_every=1)
    with pytest.raises(
        ValueError,
        match=r"Population.save: there is nothing to save before train\(\) has run "
        r"a step, got steps_done=0",
    ):
        _pop().save(str(tmp_path / "d"))


def test_no_intact_step_is_refused_and_nothing_is_moved(tmp_path):
    _checkpointed(tmp_path)
    for f in (tmp_path / "steps").rglob("*"):
        if f.is_file():
            f.write_bytes(b"")
    with pytest.raises(
        ValueError,
        match=r"Population: checkpoint_dir=.* holds no intact checkpoint of this run: step 4: "
        r"its metadata cannot be read.*; step 2: its metadata cannot be read",
    ):
        _resume(tmp_path)
    assert sorted(p.name for p in (tmp_path / "steps").iterdir()) == ["2", "4"]


def test_steps_without_their_own_fingerprint_are_not_trusted(tmp_path):
    """Steps of an older jaxlr (no meta item) cannot be checked, so they are not resumed."""
    _checkpointed(tmp_path)
    for step in ("2", "4"):
        shutil.rmtree(tmp_path / "steps" / step / "meta")
    with pytest.raises(
        ValueError,
        match=r"holds no intact checkpoint of this run: step 4: it holds no fingerprint of its "
        r"own \(written by a jaxlr before checkpoints checked themselves",
    ):
        _resume(tmp_path)


class Metrics(NamedTuple):
    loss: jax.Array
    lr: jax.Array


def step_tuple_metrics(state, cfg, batch):
    state, m = step_fn(state, cfg, batch)
    return state, Metrics(m["loss"], m["lr"])


def test_metrics_that_are_not_dicts_resume_in_their_own_type(tmp_path):
    kw = dict(key=KEY, loss=None, progress=False, compiler_options=FAST)
    first = Population(init_fn, step_tuple_metrics, CONFIGS_SMALL, **kw)
    first.train(batches(steps=4), 4, checkpoint_dir=str(tmp_path), checkpoint_every=2)
    resumed = Population(init_fn, step_tuple_metrics, CONFIGS_SMALL, **kw)
    resumed.train(batches(steps=6), 6, checkpoint_dir=str(tmp_path), checkpoint_every=2)
    straight = Population(init_fn, step_tuple_metrics, CONFIGS_SMALL, **kw)
    straight.train(batches(steps=6), 6)
    a, b = resumed.host_metrics()[0], straight.host_metrics()[0]
    assert isinstance(a, Metrics) and a.loss.shape == (6, 6)
    np.testing.assert_array_equal(a.loss, b.loss)
    np.testing.assert_array_equal(a.lr, b.lr)


# -- second review: seeds, overwrites, read-only copies, static fields, name clashes -----------
def test_another_seeds_run_is_another_run(tmp_path):
    _checkpointed(tmp_path)
    other = Population(
        init_fn,
        step_fn,
        CONFIGS_SMALL,
        key=jax.random.key(8),
        progress=False,
        compiler_options=FAST,
    )
    with pytest.raises(ValueError, match=r"incompatible checkpoint .*differs in \['key'\]"):
        other.train(batches(steps=6), 6, checkpoint_dir=str(tmp_path), checkpoint_every=2)


def test_save_replaces_a_step_it_already_holds(tmp_path):
    _checkpointed(tmp_path)  # steps 2 and 4 of batches(seed=0)
    p = _pop().train(batches(steps=4, seed=1), 4)
    p.save(str(tmp_path))
    q = _pop().train(batches(steps=4, seed=1), 4, checkpoint_dir=str(tmp_path), checkpoint_every=2)
    assert q.steps_done == 4
    _assert_same(q, p.host_carry())  # the step saved last, not the first run's step 4


def test_a_copy_that_cannot_be_written_still_resumes(tmp_path, straight6, monkeypatch):
    from jaxlr.sweep import _checkpoint

    _checkpointed(tmp_path)
    for f in (tmp_path / "steps" / "4").rglob("*"):
        if f.is_file():
            f.write_bytes(b"")

    def refuse(*args, **kwargs):
        raise PermissionError("read-only")

    monkeypatch.setattr(_checkpoint.os, "replace", refuse)
    with pytest.warns(RuntimeWarning, match=r"step 4 left in place: the directory cannot"):
        pop = _pop().train(batches(steps=6), 2, checkpoint_dir=str(tmp_path), checkpoint_every=2)
    assert pop.steps_done == 2 and (tmp_path / "steps" / "4").is_dir()
    monkeypatch.undo()
    ref = _pop().train(batches(steps=2), 2).host_carry()
    _assert_same(pop, ref)


class _WithStatic:
    """A pytree with a static field holding a function, like flax's TrainState.apply_fn."""

    def __init__(self, w, fn):
        self.w, self.fn = w, fn


jax.tree_util.register_pytree_node(
    _WithStatic, lambda s: ((s.w,), s.fn), lambda fn, ch: _WithStatic(ch[0], fn)
)


def test_static_functions_in_the_state_do_not_change_the_fingerprint():
    from jaxlr.sweep import _checkpoint

    def make():
        def apply_fn(x):  # a new function object (another address) each time, like a new process
            return x

        def init(cfg, key):
            return _WithStatic(jnp.zeros(2), apply_fn)

        return Population(init, step_fn, CONFIGS_SMALL, key=KEY, progress=False)

    a, b = make(), make()
    assert "0x" in str(jax.tree.structure(a.abstract_state()))
    assert _checkpoint.fingerprint(a) == _checkpoint.fingerprint(b)


def test_metric_names_that_flatten_alike_are_refused_at_the_first_save(tmp_path):
    def step_clash(state, cfg, batch):
        state, m = step_fn(state, cfg, batch)
        return state, {"loss": m["loss"], "a": {"b": m["loss"]}, "a.b": m["loss"]}

    pop = Population(init_fn, step_clash, CONFIGS_SMALL, key=KEY, progress=False)
    with pytest.raises(ValueError, match=r"distinct names once flattened, got \['metrics.a.b'\]"):
        pop.train(batches(steps=2), 2, checkpoint_dir=str(tmp_path), checkpoint_every=2)


def test_a_population_with_eval_every_resumes_with_its_latest_evaluation(tmp_path):
    """The latest evaluation is part of the carry: a resume at step 4 (evaluated last after
    step 2, next after step 5) reports the same held values as a straight run."""

    def eval_fn(state, cfg):
        return {"val": jnp.sum(state["w"] ** 2)}

    def pop(**kw):
        return Population(
            init_fn,
            step_fn,
            CONFIGS_SMALL,
            key=KEY,
            progress=False,
            compiler_options=FAST,
            eval_fn=eval_fn,
            eval_every=3,
            **kw,
        )

    pop().train(batches(steps=4), 4, checkpoint_dir=str(tmp_path), checkpoint_every=2)
    resumed = pop().train(batches(steps=6), 6, checkpoint_dir=str(tmp_path), checkpoint_every=2)
    straight = pop().train(batches(steps=6), 6)
    a, b = resumed.result().metrics["val"], straight.result().metrics["val"]
    np.testing.assert_array_equal(a, b)
    assert (a[:, 3] == a[:, 2]).all() and (a[:, 4] == a[:, 2]).all() and (a[:, 5] != a[:, 2]).all()
    for x, y in zip(jax.tree.leaves(resumed.host_carry()), jax.tree.leaves(straight.host_carry())):
        np.testing.assert_array_equal(x, y)
    with pytest.raises(ValueError, match=r"holds an incompatible checkpoint"):
        Population(
            init_fn,
            step_fn,
            CONFIGS_SMALL,
            key=KEY,
            progress=False,
            compiler_options=FAST,
            eval_fn=eval_fn,
            eval_every=2,
        ).train(batches(steps=6), 6, checkpoint_dir=str(tmp_path), checkpoint_every=2)


def _choice_step(w, cfg, t):
    lr = jnp.where(cfg["opt"] == 0, 0.1, 0.05) * jnp.where(cfg["s"].right, 1.0, 0.5)
    w = w - lr * 2.0 * (w - t)
    return w, {"loss": (w - t) ** 2}


def _choice_pop(choices, right=False):
    S = jaxlr.schedules
    configs = {
        "opt": jaxlr.sweep.Choice(np.array([0, 1], np.int32), choices),
        "s": jaxlr.sweep.stack(
            [S.piecewise_constant(boundaries=[2.0], values=[1.0, 0.5], right=right)] * 2
        ),
    }
    return Population(lambda c, k: jnp.zeros(()), _choice_step, configs, key=KEY, progress=False)


@pytest.mark.parametrize(
    "other", [dict(choices=("sgd", "adam")), dict(choices=("adam", "sgd"), right=True)]
)
def test_a_checkpoint_of_other_static_config_data_is_another_run(tmp_path, other):
    """The review's reproduction: the same indices with the choice strings swapped (or a
    schedule's static field changed) resumed silently, reporting the other optimizer."""
    data = [np.float32(3.0)] * 4
    _choice_pop(("adam", "sgd")).train(
        iter(data), 4, checkpoint_dir=str(tmp_path), checkpoint_every=2
    )
    with pytest.raises(
        ValueError, match=r"incompatible checkpoint .*differs in \['configs_structure'\]"
    ):
        _choice_pop(**other).train(iter(data), 4, checkpoint_dir=str(tmp_path), checkpoint_every=2)
    # the same run resumes
    _choice_pop(("adam", "sgd")).train(
        iter(data), 4, checkpoint_dir=str(tmp_path), checkpoint_every=2
    )
