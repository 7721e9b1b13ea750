"""Population checkpoints with orbax-checkpoint (the optional extra ``jaxlr[checkpoint]``).

A checkpoint holds the whole carry of every member (state, configuration, divergence flags,
step, PBT key) and the metrics so far, as host arrays, plus a fingerprint of the run (members,
search space, state structure, shapes and dtypes, PBT settings) in ``fingerprint.json``. Resume
refuses a checkpoint whose fingerprint differs, so no member is dropped or reinterpreted.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import jax
import numpy as np

from jaxlr._src.validate import Checker


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


def _describe(tree: Any) -> list:
    return [
        (
            jax.tree_util.keystr(p),
            list(np.shape(a)),
            str(np.asarray(a).dtype) if not hasattr(a, "dtype") else str(a.dtype),
        )
        for p, a in jax.tree_util.tree_flatten_with_path(tree)[0]
    ]


def fingerprint(pop) -> dict:
    """What must match for a resume: members, search space values, state structure, settings."""
    digest = hashlib.sha256()
    for p, a in jax.tree_util.tree_flatten_with_path(pop.configs)[0]:
        digest.update(jax.tree_util.keystr(p).encode())
        digest.update(np.ascontiguousarray(a).tobytes())
    return {
        "num_members": pop.num_members,
        "configs": _describe(pop.configs),
        "configs_sha256": digest.hexdigest(),
        "state": _describe(pop.abstract_state()),
        "state_structure": str(jax.tree.structure(pop.abstract_state())),
        "loss": pop.loss,
        "divergence_threshold": pop.threshold,
        "member_batches": pop.member_batches,
        **{k: v for k, v in pop.fingerprint_extra.items()},
    }


def _drop_empty(tree: dict) -> dict:
    return {k: v for k, v in tree.items() if v is not None and not (isinstance(v, dict) and not v)}


def save(pop, directory: str | Path) -> None:
    """Writes the population's carry and metrics at its current step (synchronously)."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    fp = directory / "fingerprint.json"
    mine = fingerprint(pop)
    if fp.exists() and json.loads(fp.read_text()) != json.loads(json.dumps(mine)):
        Checker(pop._fn).fail(
            f"checkpoint_dir={str(directory)!r} holds a checkpoint of another "
            f"run; use a new directory"
        )
    fp.write_text(json.dumps(mine, indent=1))
    carry = pop.host_carry()
    metrics, extra = pop.host_metrics()
    tree = _drop_empty({"carry": _drop_empty(carry._asdict()), "metrics": metrics, "extra": extra})
    mgr = _manager(directory)
    try:
        mgr.save(pop.steps_done, args=_orbax().args.StandardSave(tree))
        mgr.wait_until_finished()
    finally:
        mgr.close()


def restore(pop, directory: str | Path) -> bool:
    """Loads the latest checkpoint in ``directory`` into ``pop``; False when there is none.

    Raises:
        ValueError: the checkpoint's fingerprint differs from ``pop``'s (another search space,
            state structure, member count or setting).
    """
    directory = Path(directory)
    fp = directory / "fingerprint.json"
    if not fp.exists():
        return False
    theirs, mine = json.loads(fp.read_text()), json.loads(json.dumps(fingerprint(pop)))
    if theirs != mine:
        diff = sorted(k for k in set(theirs) | set(mine) if theirs.get(k) != mine.get(k))
        Checker(pop._fn).fail(
            f"checkpoint_dir={str(directory)!r} holds an incompatible checkpoint (it differs in "
            f"{diff}); resume needs the same configs, state structure and settings"
        )
    mgr = _manager(directory)
    try:
        step = mgr.latest_step()
        if step is None:
            return False
        tree = mgr.restore(step, args=_orbax().args.StandardRestore())
    finally:
        mgr.close()
    from jaxlr.sweep._population import Carry

    c = tree["carry"]
    carry = Carry(c.get("state"), c["config"], c["alive"], c["bad_step"], c["step"], c["key"])
    pop._load(carry)
    if "metrics" in tree:
        pop._load_history(tree["metrics"], tree.get("extra", {}))
    return True
