"""Metrics per member and step: JSON lines always, TensorBoard event files with tensorboardX."""

from __future__ import annotations

import json
import math
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jaxlr._src.typing import PyTree
from jaxlr.sweep._configs import leaf_name

_FN = "MetricsLogger"


def _json_value(v: Any) -> Any:
    """A JSON value: non-finite floats become ``null`` (JSON has no NaN)."""
    if isinstance(v, float):
        return v if math.isfinite(v) else None
    if isinstance(v, list):
        return [_json_value(x) for x in v]
    return v


_FIELDS = ("member", "step")  # every JSON line's own fields


def _check_names(fn: str, what: str, names: Any) -> None:
    taken = [n for n in names if n in _FIELDS]
    if taken:
        raise ValueError(
            f"{fn}: {what} names {list(_FIELDS)} are the fields of every JSON line, got "
            f"{what} {taken[0]!r}; rename it"
        )


def _flat(metrics: PyTree) -> dict[str, np.ndarray]:
    return {
        leaf_name(p): np.asarray(v) for p, v in jax.tree_util.tree_flatten_with_path(metrics)[0]
    }


class MetricsLogger:
    r"""Writes metrics per member and step as JSON lines and TensorBoard event files.

    Every call appends one JSON object per member to ``log_dir/metrics.jsonl``:
    ``{"member": name, "step": t, <metric>: value, ...}`` (non-finite values are written as
    ``null``). With ``tensorboard=True`` each member also gets its own TensorBoard run,
    ``log_dir/<member>/events.out.tfevents...``, with one scalar per metric (tag = metric name),
    so TensorBoard overlays the members of a sweep in one chart per metric.

    Three ways in:

    - :meth:`log`: ``step`` and a dict of metrics, each a scalar (one run) or a ``[K]`` array
      (one value per member of a sweep or population); call it outside ``vmap``. Inside
      ``jax.jit`` (traced values) it logs through ``jax.debug.callback``.
    - :meth:`log_result`: a whole :class:`jaxlr.sweep.SweepResult`, every curve entry at its
      step index, scalar metrics at the last step, hyperparameters in every JSON line.
    - :meth:`log_lr`: the LR actually applied at ``step``, read from an optimizer state with
      :func:`jaxlr.transforms.current_lr` (the LR of jaxlr transforms and of
      ``optax.inject_hyperparams`` states), logged as ``learning_rate`` the way Hugging Face's
      ``Trainer`` logs ``lr_scheduler.get_last_lr()``.

    Args:
        log_dir: the folder to write (created with its parents).
        tensorboard: also write TensorBoard event files (needs ``tensorboardX``).
        flush_secs: how often TensorBoard writers flush; :meth:`flush` and :meth:`close` flush.

    Raises:
        ValueError: ``log_dir`` cannot be created or written (raised at construction).
        ImportError: ``tensorboard=True`` without tensorboardX (``pip install
            'jaxlr[tensorboard]'``).

    Examples:
        >>> import json, tempfile, numpy as np, jaxlr
        >>> d = tempfile.mkdtemp()
        >>> with jaxlr.sweep.MetricsLogger(d, tensorboard=False) as log:
        ...     log.log(0, {"loss": np.array([1.0, 2.0])})
        >>> for line in open(f"{d}/metrics.jsonl"):
        ...     print(json.loads(line))
        {'member': 'member_0', 'step': 0, 'loss': 1.0}
        {'member': 'member_1', 'step': 0, 'loss': 2.0}
    """

    def __init__(self, log_dir: str | Path, *, tensorboard: bool = True, flush_secs: int = 30):
        self.log_dir = Path(log_dir)
        try:
            self.log_dir.mkdir(parents=True, exist_ok=True)
            probe = self.log_dir / ".jaxlr-write-test"
            probe.write_text("")
            probe.unlink()
        except OSError as e:
            raise ValueError(
                f"{_FN}: log_dir cannot be written, got log_dir={str(log_dir)!r} "
                f"({e.strerror or e})"
            ) from None
        self._tb = None
        if tensorboard:
            try:
                import tensorboardX
            except ImportError:
                raise ImportError(
                    f"{_FN}(tensorboard=True) needs tensorboardX, an optional "
                    "extra: pip install 'jaxlr[tensorboard]'"
                ) from None
            self._tb = tensorboardX
        self.flush_secs = flush_secs
        self._writers: dict[str, Any] = {}
        self._jsonl = (self.log_dir / "metrics.jsonl").open("a")
        self._lock = threading.Lock()

    @property
    def jsonl_path(self) -> Path:
        """The JSON lines file (``log_dir/metrics.jsonl``)."""
        return self.log_dir / "metrics.jsonl"

    def _writer(self, member: str):
        if member not in self._writers:
            self._writers[member] = self._tb.SummaryWriter(
                logdir=str(self.log_dir / member), flush_secs=self.flush_secs
            )
        return self._writers[member]

    def _write(self, rows: list[tuple[str, int, dict[str, Any], dict[str, Any]]]) -> None:
        """rows: (member, step, metrics to plot, extra JSON fields)."""
        with self._lock:
            for member, step, values, extra in rows:
                line = {"member": member, "step": int(step), **extra, **values}
                self._jsonl.write(json.dumps({k: _json_value(v) for k, v in line.items()}) + "\n")
                if self._tb is not None:
                    w = self._writer(member)
                    for tag, v in values.items():
                        if isinstance(v, (int, float)) and not isinstance(v, bool):
                            w.add_scalar(tag, v, int(step))
            self._jsonl.flush()

    def _host_log(self, step: Any, metrics: dict[str, Any], members: Sequence[str] | None):
        _check_names(f"{_FN}.log", "metric", metrics)
        flat = {k: np.asarray(v) for k, v in metrics.items()}
        sizes = {k: (v.shape[0] if v.ndim else None) for k, v in flat.items()}
        batched = {s for s in sizes.values() if s is not None}
        if len(batched) > 1 or any(v.ndim > 1 for v in flat.values()):
            raise ValueError(
                f"{_FN}.log: metrics must be scalars or [K] arrays of one K, got "
                f"shapes { {k: v.shape for k, v in flat.items()} }"
            )
        k = batched.pop() if batched else None
        if k is None and members is None:
            names = ["run"]  # one run: TensorBoard run folder log_dir/run
        else:
            names = _member_names(members, k or 1, f"{_FN}.log")
        step = np.asarray(step)
        rows = []
        for i, member in enumerate(names):
            values = {n: (v[i] if v.ndim else v).item() for n, v in flat.items()}
            rows.append((member, int(step[i] if step.ndim else step), values, {}))
        self._write(rows)

    def log(self, step: Any, metrics: PyTree, *, members: Sequence[str] | None = None) -> None:
        """Logs ``metrics`` at ``step``: scalars for one run, ``[K]`` arrays for ``K`` members.

        Args:
            step: the step (an int; or ``[K]`` per member).
            metrics: a pytree of scalars or ``[K]`` arrays (flat names, e.g. ``train.loss``).
            members: ``K`` member names (also the TensorBoard run folders); default
                ``member_0 ... member_{K-1}``, or ``run`` for scalars.

        Raises:
            ValueError: metrics of different ``K``, or with more than one axis; a wrong number
                of member names.
        """
        flat = _flat(metrics) if not _traced(metrics, step) else None
        if flat is not None:
            self._host_log(step, flat, members)
            return
        names = [leaf_name(p) for p, _ in jax.tree_util.tree_flatten_with_path(metrics)[0]]
        _check_names(f"{_FN}.log", "metric", names)  # at trace time, not in the callback
        if members is not None:
            _member_names(members, len(members), f"{_FN}.log")
        leaves = jax.tree.leaves(metrics)
        jax.debug.callback(
            lambda s, *vs: self._host_log(s, dict(zip(names, vs)), members), step, *leaves
        )

    def log_lr(
        self,
        step: Any,
        opt_state: PyTree,
        *,
        name: str = "learning_rate",
        every: int = 1,
        members: Sequence[str] | None = None,
        optimizer_lr: Any = None,
    ) -> None:
        r"""Logs the learning rate ``opt_state`` applied at ``step`` (eager or inside ``jit``).

        .. math:: \eta_t = \prod_i \eta_i(\text{opt\_state}) \quad (\text{see }
            :func:`jaxlr.transforms.current_lr`)

        Call it after ``tx.update`` of step ``t``: a jaxlr transform's ``lr`` and an injected
        ``learning_rate`` then hold the LR that update used. A state with a sweep axis logs
        one value per member.

        Args:
            step: the step index (int, may be traced).
            opt_state: the optimizer state after the update.
            name: the metric name (Hugging Face's ``Trainer`` uses ``learning_rate``).
            every: log when ``step % every == 0`` (static int >= 1).
            members: member names when the state has a sweep axis.
            optimizer_lr: the LR of an Optax optimizer in ``opt_state`` whose LR is a closure
                constant, not state (``1.0`` for the recommended ``optax.chain(optax.adam(1.0),
                jaxlr_transform)``); passed to :func:`jaxlr.transforms.current_lr`.

        Raises:
            ValueError: ``every`` not an int >= 1; no learning rate in ``opt_state``; an Optax
                optimizer state whose LR is not state without ``optimizer_lr``.

        Examples:
            >>> import tempfile, json, jax, jax.numpy as jnp, optax, jaxlr
            >>> tx = optax.chain(optax.sgd(1.0), jaxlr.transforms.scale_by_schedule(
            ...     jaxlr.schedules.cosine(init_value=0.5, total_steps=4)))
            >>> d = tempfile.mkdtemp()
            >>> log = jaxlr.sweep.MetricsLogger(d, tensorboard=False)
            >>> @jax.jit
            ... def train_step(w, state, t):
            ...     u, state = tx.update(2.0 * w, state)
            ...     log.log_lr(t, state)
            ...     return w + u, state
            >>> w, state = jnp.ones(()), tx.init(jnp.ones(()))
            >>> for t in range(4):
            ...     w, state = train_step(w, state, t)
            >>> jax.effects_barrier(); log.close()
            >>> [round(json.loads(x)["learning_rate"], 4) for x in open(log.jsonl_path)]
            [0.5, 0.4268, 0.25, 0.0732]

            With Adam at a unit LR (the README's chain), say so with ``optimizer_lr=1.0``:

            >>> tx = optax.chain(optax.adam(1.0), jaxlr.transforms.scale_by_schedule(
            ...     jaxlr.schedules.cosine(init_value=0.5, total_steps=4)))
            >>> state = tx.init(jnp.ones(()))
            >>> _, state = tx.update(jnp.ones(()), state)
            >>> with jaxlr.sweep.MetricsLogger(tempfile.mkdtemp(), tensorboard=False) as log:
            ...     log.log_lr(0, state, optimizer_lr=1.0)
            >>> json.loads(open(log.jsonl_path).read())["learning_rate"]
            0.5
        """
        if isinstance(every, bool) or not isinstance(every, int) or every < 1:
            raise ValueError(f"{_FN}.log_lr: every must be an int >= 1, got every={every!r}")
        from jaxlr.transforms import current_lr

        lr = current_lr(opt_state, optimizer_lr=optimizer_lr)
        if every == 1:
            self.log(step, {name: lr}, members=members)
            return
        if not _traced(lr, step):
            if int(step) % every == 0:
                self.log(step, {name: lr}, members=members)
            return
        jax.lax.cond(
            jnp.asarray(step) % every == 0,
            lambda s, v: self.log(s, {name: v}, members=members),
            lambda s, v: None,
            jnp.asarray(step),
            lr,
        )

    def log_result(self, result: Any, *, members: Sequence[str] | None = None) -> None:
        """Logs a :class:`jaxlr.sweep.SweepResult`: every member's curves, step by step.

        A curve metric ``[K, T]`` is logged at steps ``0..T-1`` (its index along the step axis),
        a scalar metric ``[K]`` at the last step; each JSON line also holds the member's
        hyperparameters (labels applied) and ``diverged``. Trailing metric axes become tags
        ``name.0``, ``name.1``, ...

        Args:
            result: a :class:`jaxlr.sweep.SweepResult`.
            members: names of the first ``len(members)`` members (the rest are not logged);
                default ``member_0 ...``.

        Raises:
            ValueError: more member names than members.
        """
        k = len(result)
        n = k if members is None else len(members)
        if n > k:
            raise ValueError(f"{_FN}.log_result: got {n} member names for {k} members")
        names = _member_names(members, n, f"{_FN}.log_result")
        _check_names(f"{_FN}.log_result", "hyperparameter", result.hyperparameters)
        metrics = {}
        for name, m in result.flat_metrics.items():
            m = np.asarray(m)
            if m.ndim <= 2:
                metrics[name] = m.reshape(k, -1) if m.ndim == 2 else m
            else:
                for j, col in enumerate(np.moveaxis(m.reshape(k, m.shape[1], -1), -1, 0)):
                    metrics[f"{name}.{j}"] = col
        _check_names(f"{_FN}.log_result", "metric", metrics)
        steps = max([m.shape[1] for m in metrics.values() if m.ndim == 2], default=1)
        rows = []
        for i, member in enumerate(names):
            extra = {a: result.label(a, i) for a in result.hyperparameters}
            extra["diverged"] = bool(result.diverged[i])
            for t in range(steps):
                values = {}
                for name, m in metrics.items():
                    if m.ndim == 2 and t < m.shape[1]:
                        values[name] = float(m[i, t])
                    elif m.ndim == 1 and t == steps - 1:
                        values[name] = float(m[i])
                rows.append((member, t, values, extra))
        self._write(rows)

    def flush(self) -> None:
        """Flushes the JSON lines and every TensorBoard writer."""
        with self._lock:
            self._jsonl.flush()
            for w in self._writers.values():
                w.flush()

    def close(self) -> None:
        """Flushes and closes the files (call ``jax.effects_barrier()`` first after ``jit``)."""
        with self._lock:
            for w in self._writers.values():
                w.close()
            self._writers.clear()
            self._jsonl.close()

    def __enter__(self) -> MetricsLogger:
        return self

    def __exit__(self, *exc) -> None:
        jax.effects_barrier()
        self.close()


def _traced(*trees: Any) -> bool:
    return any(isinstance(x, jax.core.Tracer) for x in jax.tree.leaves(trees))


def _member_names(members: Sequence[str] | None, k: int, fn: str) -> list[str]:
    if members is None:
        return [f"member_{i}" for i in range(k)]
    members = [str(m) for m in members]
    if len(members) != k:
        raise ValueError(f"{fn}: members must name the {k} members, got {len(members)} names")
    if len(set(members)) != len(members):
        raise ValueError(f"{fn}: member names must be distinct, got members={members}")
    for m in members:
        # A member name is also its TensorBoard run folder under log_dir: it must stay inside.
        parts = m.replace("\\", "/").split("/")
        if (
            not m
            or m.startswith(("/", "\\"))
            or any(p in ("", ".", "..") for p in parts)
            or parts[0] == "metrics.jsonl"  # the logger's own file in log_dir
        ):
            raise ValueError(
                f"{fn}: member names must be relative folder names inside log_dir (no '..', "
                f"'.', empty or absolute parts, not 'metrics.jsonl'), got member {m!r}"
            )
    return members
