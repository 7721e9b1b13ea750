"""Population checkpoints with orbax-checkpoint (the optional extra ``jaxlr[checkpoint]``).

A checkpoint directory holds

- ``fingerprint.json``: what must match for a resume (members, search space, state structure,
  shapes and dtypes, settings), written atomically (a temporary file, then ``os.replace``);
- ``steps/<step>/``: one orbax step per save with three items: ``meta`` (JSON: the fingerprint
  again, the path, shape and dtype of every saved array and the SHA-256 of their bytes),
  ``carry`` (the whole carry of every member: state and configuration as flat lists of leaves,
  divergence flags, step, PBT key) and ``history`` (the metrics so far).

Restore builds its target from the population itself (the state's own tree structure, shapes
and dtypes, typed PRNG keys as key data), so any pytree state comes back as it was: Optax
states, NamedTuples, typed keys, flax NNX states. It checks each step before using it: a step
whose fingerprint differs is another run's (refused with ``ValueError``); a step that cannot be
read or whose arrays do not match their description and checksum is damaged: resume falls back
to the newest intact step with a warning, and moves the damaged ones to ``corrupt/<step>``.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import warnings
from pathlib import Path
from typing import Any

import jax
import numpy as np

from jaxlr._src.validate import Checker
from jaxlr.sweep._carry import Carry
from jaxlr.sweep._configs import leaf_name

_FORMAT = 2  # the layout above; steps written by an older jaxlr lack the ``meta`` item


def _orbax():
    try:
        import orbax.checkpoint as ocp
    except ImportError:
        raise ImportError(
            "population checkpoints need orbax-checkpoint: pip install 'jaxlr[checkpoint]'"
        ) from None
    return ocp


def _manager(directory: str | Path):
    ocp = _orbax()
    options = ocp.CheckpointManagerOptions(max_to_keep=2, enable_async_checkpointing=False)
    return ocp.CheckpointManager(Path(directory).resolve() / "steps", options=options)


def check_directory(c: Checker, directory: Any, name: str = "checkpoint_dir") -> None:
    """A checkpoint directory is a path that is not an existing file."""
    if not isinstance(directory, (str, os.PathLike)):
        c.fail(f"{name} must be a path (str or os.PathLike), got {name}={directory!r}")
    if Path(directory).exists() and not Path(directory).is_dir():
        c.fail(f"{name} must be a directory, got {name}={str(directory)!r}, which is a file")


def _describe(tree: Any) -> list:
    return [
        [jax.tree_util.keystr(p), list(np.shape(a)), str(np.asarray(a).dtype)]
        if not hasattr(a, "dtype")
        else [jax.tree_util.keystr(p), list(np.shape(a)), str(a.dtype)]
        for p, a in jax.tree_util.tree_flatten_with_path(tree)[0]
    ]


def _by_name(tree: Any, fn: str = "Population.save") -> dict:
    """Leaves by readable name (``metrics.loss``): the same for a NamedTuple or tuple of
    metrics and the dict or list orbax gives back for it."""
    named = [(leaf_name(p), a) for p, a in jax.tree_util.tree_flatten_with_path(tree)[0]]
    names = [n for n, _ in named]
    clash = sorted({n for n in names if names.count(n) > 1})
    if clash:  # {"a": {"b": x}, "a.b": y} would save and then never resume
        Checker(fn).fail(
            f"step_fn's metrics must have distinct names once flattened, got {clash} more "
            f"than once (rename the nested or the dotted one)"
        )
    return dict(named)


def _structure(tree: Any) -> str:
    """The tree structure as text without memory addresses: static fields holding functions
    or objects (a flax ``TrainState``'s ``apply_fn`` and ``tx``) print ``at 0x...``, which
    changes from one process to the next."""
    return re.sub(r" at 0x[0-9a-fA-F]+", "", str(jax.tree.structure(tree)))


def _digest(tree: Any) -> str:
    """SHA-256 of every leaf's path, dtype, shape and bytes, in tree order."""
    h = hashlib.sha256()
    for p, a in jax.tree_util.tree_flatten_with_path(tree)[0]:
        a = np.ascontiguousarray(a)
        h.update(f"{jax.tree_util.keystr(p)}|{a.dtype}|{a.shape}|".encode())
        h.update(a.tobytes())
    return h.hexdigest()


def fingerprint(pop) -> dict:
    """What must match for a resume: members, search space values, state structure, settings."""
    digest = hashlib.sha256()
    for p, a in jax.tree_util.tree_flatten_with_path(pop.configs)[0]:
        digest.update(jax.tree_util.keystr(p).encode())
        digest.update(np.ascontiguousarray(a).tobytes())
    fp = {
        "num_members": pop.num_members,
        "configs": _describe(pop.configs),
        "configs_sha256": digest.hexdigest(),
        # the configs' static data: a Choice's strings, a schedule's static fields
        "configs_structure": _structure(pop.configs),
        "state": _describe(pop.abstract_state()),
        "state_structure": _structure(pop.abstract_state()),
        # the population's key: another seed's run is another run
        "key": [pop._impl, hashlib.sha256(np.ascontiguousarray(pop._pkey).tobytes()).hexdigest()],
        "loss": pop.loss,
        "divergence_threshold": pop.threshold,
        "member_batches": pop.member_batches,
        **({"eval_every": pop.eval_every} if pop.eval_fn is not None else {}),
        **{k: v for k, v in pop.fingerprint_extra.items()},
    }
    return json.loads(json.dumps(fp))  # the form it has once read back from JSON


def _read_json(path: Path, fn: str) -> Any:
    """The JSON in ``path``; ``None`` when it is missing or unreadable (with a warning)."""
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as e:
        warnings.warn(
            f"{fn}: {str(path)!r} cannot be read ({type(e).__name__}: {e}); each checkpoint "
            f"step's own fingerprint is checked instead, and the file is written again",
            RuntimeWarning,
            stacklevel=4,
        )
        return None


def _write_atomic(path: Path, text: str) -> None:
    """Writes ``text`` to ``path`` so a reader sees the old file or the new one, never a part."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "w") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def _differs(fn: str, directory: Path, theirs: Any, mine: dict, where: str) -> None:
    theirs = theirs if isinstance(theirs, dict) else {}
    diff = sorted(k for k in set(theirs) | set(mine) if theirs.get(k) != mine.get(k))
    Checker(fn).fail(
        f"checkpoint_dir={str(directory)!r} holds an incompatible checkpoint ({where} differs "
        f"in {diff}); resume needs the same configs, state structure and settings"
    )


def _carry_data(carry) -> dict:
    """The carry as saved: state and configuration as flat lists of leaves (host arrays)."""
    data = {
        "state": [np.asarray(a) for a in jax.tree.leaves(carry.state)],
        "config": [np.asarray(a) for a in jax.tree.leaves(carry.config)],
        "alive": np.asarray(carry.alive),
        "bad_step": np.asarray(carry.bad_step),
        "step": np.asarray(carry.step),
        "key": np.asarray(carry.key),
    }
    if jax.tree.leaves(carry.evals):  # the latest evaluation (populations with an eval_fn)
        data["evals"] = [np.asarray(a) for a in jax.tree.leaves(carry.evals)]
    if jax.tree.leaves(carry.memory):  # the policy's record of each member
        data["memory"] = [np.asarray(a) for a in jax.tree.leaves(carry.memory)]
    return data


def _carry_target(pop) -> dict:
    """What :func:`_carry_data` of ``pop`` holds, built from the population alone."""
    k = pop.num_members
    canon = jax.dtypes.canonicalize_dtype
    target = {
        "state": [np.zeros(s.shape, s.dtype) for s in jax.tree.leaves(pop._host_state_struct())],
        "config": [np.zeros(np.shape(a), canon(a.dtype)) for a in jax.tree.leaves(pop.configs)],
        "alive": np.zeros(k, bool),
        "bad_step": np.zeros(k, np.int32),
        "step": np.zeros((), np.int32),
        "key": np.zeros_like(pop._pkey),
    }
    evals = pop.evals_struct()
    if jax.tree.leaves(evals):
        target["evals"] = [np.zeros(a.shape, a.dtype) for a in jax.tree.leaves(evals)]
    memory = pop.policy.memory(k)
    if jax.tree.leaves(memory):
        target["memory"] = [  # as the devices hold them (float64 -> float32 without x64)
            np.zeros(np.shape(a), canon(np.asarray(a).dtype)) for a in jax.tree.leaves(memory)
        ]
    return target


def save(pop, directory: str | Path) -> None:
    """Writes the population's carry and metrics at its current step (synchronously)."""
    ocp = _orbax()
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    fp = directory / "fingerprint.json"
    mine = fingerprint(pop)
    theirs = _read_json(fp, pop._fn)
    if theirs is not None and theirs != mine:
        Checker(pop._fn).fail(
            f"checkpoint_dir={str(directory)!r} holds a checkpoint of another "
            f"run; use a new directory"
        )
    if theirs is None:
        _write_atomic(fp, json.dumps(mine, indent=1))
    data = _carry_data(pop.host_carry())
    metrics, extra = pop.host_metrics()
    history = {k: v for k, v in (("metrics", metrics), ("extra", extra)) if jax.tree.leaves(v)}
    meta = {
        "format": _FORMAT,
        "step": pop.steps_done,
        "fingerprint": mine,
        "carry": _describe(data),
        "carry_sha256": _digest(data),
        "history": _describe(_by_name(history, pop._fn)),
        "history_sha256": _digest(_by_name(history, pop._fn)),
    }
    items = {"meta": ocp.args.JsonSave(meta), "carry": ocp.args.StandardSave(data)}
    if history:
        items["history"] = ocp.args.StandardSave(history)
    mgr = _manager(directory)
    try:
        if pop.steps_done in mgr.all_steps():  # orbax skips an existing step: save replaces it
            mgr.delete(pop.steps_done)
        mgr.save(pop.steps_done, args=ocp.args.Composite(**items))
        mgr.wait_until_finished()
    finally:
        mgr.close()


class _Damaged(Exception):
    """A checkpoint step that cannot be used (unreadable, or its data fails its own check)."""


def _load_step(pop, mgr, step: int, mine: dict, directory: Path) -> tuple[dict, dict]:
    """The verified carry data and history of ``step``; ``_Damaged`` if it cannot be trusted,
    ``ValueError`` if it is another run's."""
    ocp = _orbax()
    if not (directory / "steps" / str(step) / "meta").is_dir():
        raise _Damaged(
            "it holds no fingerprint of its own (written by a jaxlr before checkpoints checked "
            "themselves, or not a population checkpoint)"
        )
    try:
        meta = mgr.restore(step, args=ocp.args.Composite(meta=ocp.args.JsonRestore()))["meta"]
    except Exception as e:  # noqa: BLE001 -- a truncated or missing file shows many ways
        raise _Damaged(f"its metadata cannot be read: {type(e).__name__}: {e}") from None
    if not isinstance(meta, dict) or meta.get("format") != _FORMAT:
        raise _Damaged(
            f"it was not written by this version of jaxlr (format "
            f"{meta.get('format') if isinstance(meta, dict) else None}, expected {_FORMAT})"
        )
    if meta.get("fingerprint") != mine:
        _differs(pop._fn, directory, meta.get("fingerprint"), mine, f"step {step}'s fingerprint")
    target = _carry_target(pop)
    if meta.get("carry") != _describe(target) or meta.get("step") != step:
        raise _Damaged("its description does not match this population's carry")
    items = {"carry": ocp.args.StandardRestore(target)}
    if meta.get("history"):
        items["history"] = ocp.args.StandardRestore()
    try:
        got = mgr.restore(step, args=ocp.args.Composite(**items))
    except Exception as e:  # noqa: BLE001
        raise _Damaged(f"its arrays cannot be read: {type(e).__name__}: {e}") from None
    data = jax.tree.map(np.asarray, dict(got["carry"]))
    history = jax.tree.map(np.asarray, dict(got["history"])) if "history" in items else {}
    if _describe(data) != meta["carry"] or _digest(data) != meta["carry_sha256"]:
        raise _Damaged("its carry does not match the checksum saved with it")
    named = _by_name(history)
    if _describe(named) != meta["history"] or _digest(named) != meta["history_sha256"]:
        raise _Damaged("its metrics do not match the checksum saved with it")
    if int(data["step"]) != step:
        raise _Damaged(f"its carry is at step {int(data['step'])}")
    return data, history


def _set_aside(directory: Path, step: int) -> Path | None:
    """Moves ``steps/<step>`` to ``corrupt/<step>`` (``<step>.1``, ... if that is taken);
    ``None`` when the directory cannot be written (a read-only copy still resumes)."""
    try:
        (directory / "corrupt").mkdir(exist_ok=True)
    except OSError:
        return None
    n = 0
    while True:
        aside = directory / "corrupt" / (f"{step}.{n}" if n else str(step))
        if not aside.exists():
            break
        n += 1
    try:
        os.replace(directory / "steps" / str(step), aside)
    except FileNotFoundError:  # another process of a multi-host run moved it first
        pass
    except OSError:
        return None
    return aside


def restore(pop, directory: str | Path) -> bool:
    """Loads the newest intact checkpoint in ``directory`` into ``pop``; False when there is none.

    Raises:
        ValueError: the checkpoint's fingerprint (``fingerprint.json`` or a step's own) differs
            from ``pop``'s (another search space, state structure, member count or setting),
            or no step in ``directory`` is intact.
    """
    directory = Path(directory)
    mine = fingerprint(pop)
    theirs = _read_json(directory / "fingerprint.json", pop._fn)
    if theirs is not None and theirs != mine:
        _differs(pop._fn, directory, theirs, mine, "it")
    if not (directory / "steps").is_dir():
        return False
    mgr = _manager(directory)
    damaged: list[tuple[int, str]] = []
    loaded = None
    try:
        steps = sorted(mgr.all_steps(), reverse=True)
        for step in steps:
            try:
                loaded = step, *_load_step(pop, mgr, step, mine, directory)
                break
            except _Damaged as e:
                damaged.append((step, str(e)))
    finally:
        mgr.close()
    if loaded is None:
        if not damaged:
            return False
        Checker(pop._fn).fail(
            f"checkpoint_dir={str(directory)!r} holds no intact checkpoint of this run: "
            + "; ".join(f"step {s}: {why}" for s, why in damaged)
        )
    step, data, history = loaded
    for s, why in damaged:  # the next saves must not meet them
        aside = _set_aside(directory, s)
        warnings.warn(
            f"{pop._fn}: checkpoint step {s} in checkpoint_dir={str(directory)!r} is damaged "
            f"({why}); resuming from step {step}, the newest intact one "
            + (
                f"(step {s} moved to {str(aside)!r})"
                if aside is not None
                else f"(step {s} left in place: the directory cannot be written)"
            ),
            RuntimeWarning,
            stacklevel=3,
        )
    if theirs is None:
        try:
            _write_atomic(directory / "fingerprint.json", json.dumps(mine, indent=1))
        except OSError:  # a read-only copy: the steps carry their own fingerprint
            pass
    state = jax.tree.unflatten(jax.tree.structure(pop._host_state_struct()), data["state"])
    config = jax.tree.unflatten(jax.tree.structure(pop.configs), data["config"])
    evals = pop.evals_struct()
    evals = jax.tree.unflatten(jax.tree.structure(evals), data.get("evals", []))
    memory = pop.policy.memory(pop.num_members)
    memory = jax.tree.unflatten(jax.tree.structure(memory), data.get("memory", []))
    pop._load(
        Carry(
            state, config, data["alive"], data["bad_step"], data["step"], data["key"], evals, memory
        )
    )
    if "metrics" in history:
        pop._load_history(history["metrics"], history.get("extra", {}))
    return True
