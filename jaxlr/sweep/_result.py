"""The result of a sweep: per-member hyperparameters, metrics, divergence, tables, plots."""

from __future__ import annotations

import csv
import math
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import jax
import numpy as np

from jaxlr._src.divergence import diverged_entries
from jaxlr.sweep._configs import is_choice, leaf_name


def _flat(tree: Any) -> dict[str, np.ndarray]:
    """Leaf name -> array; a :class:`~jaxlr.sweep.Choice` as its strings."""
    leaves = jax.tree_util.tree_flatten_with_path(tree, is_leaf=is_choice)[0]
    return {leaf_name(p): v.labels() if is_choice(v) else np.asarray(v) for p, v in leaves}


def _scalar(v: np.ndarray) -> Any:
    return v.item() if v.ndim == 0 else v.tolist()


REDUCTIONS = ("last", "min", "max", "mean_last")

# Metric names taken for a validation loss when best() is not told which metric to rank by.
_VALIDATION = re.compile(r"^(val|valid|validation|eval)([._/-].*)?[._/-]?loss$")


def _is_lr(name: str) -> bool:
    """A learning-rate curve: its last name component is ``lr`` or ``learning_rate``."""
    return name.rsplit(".", 1)[-1] in ("lr", "learning_rate")


def _shortest(v: float) -> str:
    """The shortest decimal that reads back to ``v``: at float32 precision when ``v`` is a
    float32 value (no ``0.10000000149011612`` for ``np.float32(0.1)``), else ``repr``."""
    if math.isfinite(v) and float(np.float32(v)) == v:
        return str(np.float32(v))
    return repr(v)


def _csv_cell(v: Any) -> Any:
    if isinstance(v, float):
        return _shortest(v)
    if isinstance(v, list):
        return "[" + ", ".join(str(_csv_cell(x)) for x in v) + "]"
    return v


def _cell(v: Any) -> str:
    if isinstance(v, bool) or v is None:
        return str(v)
    if isinstance(v, float):
        return f"{v:.4g}"
    if isinstance(v, list):
        return "[" + ", ".join(_cell(x) for x in v) + "]"
    return str(v)


class SweepResult:
    r"""What :func:`jaxlr.sweep.run` returns: ``K`` members, their hyperparameters and metrics.

    Metrics are host NumPy arrays with leading axis ``K``. A metric's *final* value is its last
    entry along the step axis (axis 1) for a curve, the value itself for a scalar metric.
    Diverged members stay in every table and plot input; :meth:`best` skips them. Without
    pandas: :meth:`records` (dicts), :meth:`to_markdown`, :meth:`to_text`, :meth:`to_rich` (with
    rich) and :meth:`to_csv`; :meth:`best` ranks by a metric and a reduction (:meth:`score`),
    by default a validation loss when the train function reports one.

    Divergence: member ``i`` diverged when its loss curve :math:`L_i` has an entry that is NaN,
    infinite, or above the threshold; ``diverged_step[i]`` is the first such index (``-1`` for
    healthy members, and for a diverged scalar loss, whose step is unknown).

    Attributes:
        configs: the configuration pytree (NumPy leaves, leading axis ``K``).
        metrics: the metrics pytree (NumPy leaves, leading axis ``K``).
        hyperparameters: flat dict name -> ``[K, ...]`` array of the configuration leaves.
        diverged: ``[K]`` bool.
        diverged_step: ``[K]`` int, first non-finite index of the loss, ``-1`` if none.
        labels: names for integer-coded configuration axes.
        info: chunking, devices, trace/compile/run seconds, compiled memory in bytes.

    Examples:
        >>> import numpy as np, jaxlr
        >>> r = jaxlr.sweep.SweepResult({"peak_value": np.array([0.1, 1.0])},
        ...                             {"loss": np.array([[1.0, 0.5], [1.0, np.nan]])})
        >>> r.diverged.tolist(), r.diverged_step.tolist(), r.best("loss")["peak_value"]
        ([False, True], [-1, 1], 0.1)
    """

    def __init__(
        self,
        configs: Any,
        metrics: Any,
        *,
        loss: str | None = "loss",
        divergence_threshold: float | None = None,
        labels: Mapping[str, Sequence[str]] | None = None,
        info: Mapping[str, Any] | None = None,
    ):
        self.configs = jax.tree.map(np.asarray, configs)
        self.metrics = jax.tree.map(np.asarray, metrics)
        self.hyperparameters = _flat(self.configs)
        self.labels = {k: list(v) for k, v in (labels or {}).items()}
        self.info = dict(info or {})
        self.loss = loss
        # The metric and mode the search itself ranked by (PBT, successive halving): the
        # default of best(), tables and plots; None: a validation loss, else ``loss``.
        self.rank_metric: str | None = None
        self.rank_mode = "min"
        k = len(next(iter(self.hyperparameters.values())))
        self.diverged = np.zeros(k, bool)
        self.diverged_step = np.full(k, -1)
        if loss is not None and isinstance(self.metrics, Mapping) and loss in self.metrics:
            curve = np.asarray(self.metrics[loss], float)
            bad = diverged_entries(curve, divergence_threshold)
            bad = bad.reshape(k, *curve.shape[1:2], -1).any(-1) if curve.ndim > 1 else bad
            if bad.ndim == 1:
                self.diverged = bad
            else:
                self.diverged = bad.any(1)
                self.diverged_step = np.where(self.diverged, bad.argmax(1), -1)

    def __len__(self) -> int:
        return len(self.diverged)

    @property
    def compile_seconds(self) -> float:
        """Seconds this search spent building compiled programs: tracing, lowering and XLA
        compilation (``info["trace_seconds"] + info["compile_seconds"]``, the latter XLA's
        part alone); 0.0 when every program came from the compile cache. Wall time minus
        this is what the search costs once compiled.

        Examples:
            >>> import numpy as np, jaxlr
            >>> r = jaxlr.sweep.SweepResult({"lr": np.array([0.1])}, {"loss": np.array([1.0])},
            ...     info={"trace_seconds": 0.5, "compile_seconds": 1.0})
            >>> r.compile_seconds
            1.5
        """
        return float(self.info.get("trace_seconds", 0.0) + self.info.get("compile_seconds", 0.0))

    def __repr__(self) -> str:
        return (
            f"SweepResult(K={len(self)}, hyperparameters={list(self.hyperparameters)}, "
            f"metrics={list(self.flat_metrics)}, diverged={int(self.diverged.sum())})"
        )

    @property
    def flat_metrics(self) -> dict[str, np.ndarray]:
        """Metrics as a flat dict name -> ``[K, ...]`` array."""
        return _flat(self.metrics)

    def metric(self, name: str) -> np.ndarray:
        """The metric ``name`` (a flat name, e.g. ``"loss"``) as a ``[K, ...]`` array."""
        flat = self.flat_metrics
        if name not in flat:
            raise ValueError(f"SweepResult: unknown metric {name!r}, known: {list(flat)}")
        return flat[name]

    def final(self, name: str) -> np.ndarray:
        """The final value of a metric per member: ``m[:, -1]`` for curves, ``m`` for scalars."""
        m = self.metric(name)
        return m[:, -1] if m.ndim > 1 else m

    def label(self, axis: str, i: int) -> Any:
        """Member ``i``'s value on ``axis``, as its label when ``labels`` names it."""
        v = self.hyperparameters[axis][i]
        if isinstance(v, (str, np.str_)):  # a string choice
            return str(v)
        names = self.labels.get(axis)
        return names[int(v)] if names is not None else _scalar(v)

    def member(self, i: int) -> dict[str, Any]:
        """Member ``i``: hyperparameters (labels applied), final metrics, divergence.

        A metric's field holds its final value. A learning-rate curve (a metric named ``lr`` or
        ``learning_rate``, or ending in ``.lr``) gives two fields that say which LR they hold:
        ``lr_final`` (the LR of the last step) and ``lr_peak`` (the largest LR applied); the
        configured hyperparameters keep their own names (``peak_value``, ``end_value``).
        A metric field whose name is taken (by a hyperparameter, ``index``, ``diverged`` or
        ``diverged_step``) is written ``metric:<name>``, so neither value hides the other.

        Examples:
            >>> import numpy as np, jaxlr
            >>> r = jaxlr.sweep.SweepResult({"lr": np.array([0.1])},
            ...                             {"loss": np.array([0.5]), "lr": np.array([0.07])})
            >>> rec = r.member(0)
            >>> rec["lr"], rec["metric:lr"], rec["loss"]
            (0.1, 0.07, 0.5)
        """
        taken = {"index", "diverged", "diverged_step", *self.hyperparameters}
        rec: dict[str, Any] = {"index": int(i)}
        rec.update({a: self.label(a, i) for a in self.hyperparameters})

        def put(field: str, value: Any) -> None:
            rec[f"metric:{field}" if field in taken else field] = value

        for name, m in self.flat_metrics.items():
            if _is_lr(name) and m.ndim > 1:
                put(f"{name}_final", _scalar(np.asarray(m[i, -1])))
                put(f"{name}_peak", _scalar(np.asarray(np.max(m[i], axis=0))))
            else:
                put(name, _scalar(np.asarray(m[i, -1] if m.ndim > 1 else m[i])))
        rec.update(diverged=bool(self.diverged[i]), diverged_step=int(self.diverged_step[i]))
        return rec

    def records(self) -> list[dict[str, Any]]:
        """One dict per member (see :meth:`member`), ready for ``json`` or a DataFrame."""
        return [self.member(i) for i in range(len(self))]

    def to_pandas(self):
        """The records as a ``pandas.DataFrame`` (requires pandas)."""
        try:
            import pandas as pd
        except ImportError:
            raise ImportError(
                "SweepResult.to_pandas needs pandas: pip install pandas; "
                "records() gives the same table as dicts"
            ) from None
        return pd.DataFrame.from_records(self.records())

    @property
    def default_metric(self) -> str:
        """The metric :meth:`best` ranks by when none is named: the search's own ``metric``
        (PBT, successive halving), else a validation loss if the train function reports one
        (``val_loss``, ``valid_loss``, ``eval_loss``, ``val.loss``, ..., the first in metric
        order), otherwise the divergence ``loss``."""
        names = list(self.flat_metrics)
        if self.rank_metric is not None and self.rank_metric in names:
            return self.rank_metric
        for name in names:
            if _VALIDATION.match(name):
                return name
        if self.loss is not None and self.loss in names:
            return self.loss
        raise ValueError(
            f"SweepResult: no validation loss and no {self.loss!r} metric to rank "
            f"by; name one, known: {names}"
        )

    def score(
        self, metric: str | None = None, *, reduction: str = "last", last_n: int | None = None
    ) -> np.ndarray:
        r"""One number per member: ``metric`` reduced over its step axis.

        For a curve :math:`m_i(t)`, :math:`t = 0..T-1`:

        .. math::
            \text{last}: m_i(T-1), \quad \text{min}: \min_t m_i(t), \quad
            \text{max}: \max_t m_i(t), \quad
            \text{mean\_last}: \tfrac1n \sum_{t=T-n}^{T-1} m_i(t)

        A scalar metric is its own value under ``last``, ``min`` and ``max``. NaN propagates
        (a member with a NaN in the window scores NaN).

        Args:
            metric: a flat metric name; ``None`` takes :attr:`default_metric`.
            reduction: one of ``"last"``, ``"min"``, ``"max"``, ``"mean_last"``.
            last_n: the window of ``"mean_last"`` (an int in ``[1, T]``); only with it.

        Returns:
            A float ``[K]`` array.

        Raises:
            ValueError: an unknown metric or reduction, ``last_n`` missing, out of range or
                given to another reduction, a metric with more than one step axis, or
                ``mean_last`` over ``last_n > 1`` entries of a scalar metric.

        Examples:
            >>> import numpy as np, jaxlr
            >>> r = jaxlr.sweep.SweepResult({"peak_value": np.array([0.1, 1.0])},
            ...                             {"loss": np.array([[4.0, 1.0, 3.0], [4.0, 2.0, 2.0]])})
            >>> r.score("loss", reduction="min").tolist(), r.score(reduction="last").tolist()
            ([1.0, 2.0], [3.0, 2.0])
            >>> r.score("loss", reduction="mean_last", last_n=2).tolist()
            [2.0, 2.0]
        """
        fn = "SweepResult.score"
        if reduction not in REDUCTIONS:
            raise ValueError(
                f"{fn}: reduction must be one of {REDUCTIONS}, got reduction={reduction!r}"
            )
        name = self.default_metric if metric is None else metric
        m = np.asarray(self.metric(name), float)
        if m.ndim > 2:
            raise ValueError(
                f"{fn}: metric {name!r} must be [K] or [K, steps] to rank by, got shape {m.shape}"
            )
        if reduction != "mean_last":
            if last_n is not None:
                raise ValueError(
                    f"{fn}: last_n is the window of reduction='mean_last', got "
                    f"last_n={last_n!r} with reduction={reduction!r}"
                )
            if m.ndim == 1:
                return m
            return {"last": lambda: m[:, -1], "min": lambda: m.min(1), "max": lambda: m.max(1)}[
                reduction
            ]()
        steps = m.shape[1] if m.ndim == 2 else 1
        if (
            isinstance(last_n, bool)
            or not isinstance(last_n, (int, np.integer))
            or not 1 <= last_n <= steps
        ):
            raise ValueError(
                f"{fn}: reduction='mean_last' needs last_n, an int in [1, {steps}] "
                f"(the steps of metric {name!r}), got last_n={last_n!r}"
            )
        return m if m.ndim == 1 else m[:, -last_n:].mean(1)

    def best(
        self,
        metric: str | None = None,
        *,
        mode: str | None = None,
        reduction: str = "last",
        last_n: int | None = None,
        by: str | None = None,
    ) -> Any:
        """The best member among non-diverged members with a finite score.

        Members are ranked by :meth:`score` (``metric`` reduced by ``reduction``); with no
        ``metric``, by :attr:`default_metric` (a validation loss when the train function
        reports one).

        Args:
            metric: the metric to rank by; ``None``: :attr:`default_metric`.
            mode: ``"min"`` or ``"max"``; ``None``: the search's own mode when ranking by its
                metric (PBT's or halving's ``mode``), else ``"min"``.
            reduction: ``"last"``, ``"min"``, ``"max"`` or ``"mean_last"`` (see :meth:`score`).
            last_n: the window of ``"mean_last"``.
            by: an axis; returns ``{value or label: best record}`` per value of that axis.

        Returns:
            The best member's record (:meth:`member`), or a dict of them with ``by``; ``None``
            (for a group: maps to ``None``) when every member diverged.

        Raises:
            ValueError: an unknown metric, mode or reduction (see :meth:`score`).

        Examples:
            >>> import numpy as np, jaxlr
            >>> r = jaxlr.sweep.SweepResult(
            ...     {"peak_value": np.array([0.1, 1.0])},
            ...     {"loss": np.array([[3.0, 1.0], [3.0, 2.0]]),
            ...      "val_loss": np.array([[5.0, 3.2], [2.0, 3.5]])})
            >>> r.default_metric, r.best()["peak_value"], r.best(reduction="min")["peak_value"]
            ('val_loss', 0.1, 1.0)
        """
        if mode is None:
            mode = self._mode(metric)
        if mode not in ("min", "max"):
            raise ValueError(f"SweepResult.best: mode must be 'min' or 'max', got mode={mode!r}")
        score = self.score(metric, reduction=reduction, last_n=last_n)
        score = np.where(
            np.isfinite(score) & ~self.diverged, score if mode == "min" else -score, np.inf
        )
        if by is None:
            if not np.isfinite(score).any():
                return None
            return self.member(int(np.argmin(score)))
        groups = {}
        for i in range(len(self)):
            groups.setdefault(self.label(by, i), []).append(i)
        out = {}
        for g, idx in groups.items():
            sub = score[idx]
            out[g] = self.member(idx[int(np.argmin(sub))]) if np.isfinite(sub).any() else None
        return out

    def _mode(self, metric: str | None) -> str:
        """The default mode for ``metric``: the search's own mode for its own metric."""
        if self.rank_metric is not None and metric in (None, self.rank_metric):
            return self.rank_mode
        return "min"

    # -- tables ------------------------------------------------------------------------------
    def table_order(self) -> np.ndarray:
        """Member indices in table order: best first by :meth:`best`'s default ranking
        (:attr:`default_metric`, last value, lower is better unless the search ranked with
        ``mode="max"``), diverged and non-finite scores last, ties in member order; member
        order when there is no metric to rank by.

        Examples:
            >>> import numpy as np, jaxlr
            >>> r = jaxlr.sweep.SweepResult({"peak_value": np.array([0.1, 0.3, 1.0])},
            ...                             {"loss": np.array([0.5, 0.25, np.nan])})
            >>> r.table_order().tolist()
            [1, 0, 2]
        """
        try:
            score = self.score()
        except ValueError:
            return np.arange(len(self))
        score = score if self._mode(None) == "min" else -score
        score = np.where(np.isfinite(score) & ~self.diverged, score, np.inf)
        return np.argsort(score, kind="stable")

    def _table(
        self, columns: Sequence[str] | None, fn: str, sort: bool = True
    ) -> tuple[list[str], list[list]]:
        records = self.records()
        if sort:
            records = [records[i] for i in self.table_order()]
        known = list(records[0])
        if columns is None:
            columns = known
        else:
            columns = list(columns)
            unknown = [col for col in columns if col not in known]
            if unknown:
                raise ValueError(f"SweepResult.{fn}: unknown columns {unknown}, known: {known}")
        return columns, [[r[col] for col in columns] for r in records]

    def to_markdown(self, columns: Sequence[str] | None = None, *, sort: bool = True) -> str:
        """The records as a GitHub markdown table, one row per member (floats to 4 digits).

        Args:
            columns: record fields to show, in order; ``None``: all of them.
            sort: rows best first (:meth:`table_order`); ``False``: member order.

        Returns:
            The table as a string.

        Raises:
            ValueError: a column that is not a record field.

        Examples:
            >>> import numpy as np, jaxlr
            >>> r = jaxlr.sweep.SweepResult({"peak_value": np.array([0.1, 1.0])},
            ...                             {"loss": np.array([0.25, np.nan])})
            >>> print(r.to_markdown(["peak_value", "loss", "diverged"]))
            | peak_value | loss | diverged |
            | --- | --- | --- |
            | 0.1 | 0.25 | False |
            | 1 | nan | True |
        """
        cols, rows = self._table(columns, "to_markdown", sort)
        lines = ["| " + " | ".join(cols) + " |", "| " + " | ".join("---" for _ in cols) + " |"]
        lines += ["| " + " | ".join(_cell(v) for v in row) + " |" for row in rows]
        return "\n".join(lines)

    def to_text(self, columns: Sequence[str] | None = None, *, sort: bool = True) -> str:
        """The records as an aligned plain-text table for a terminal (no dependency).

        Args:
            columns: record fields to show, in order; ``None``: all of them.
            sort: rows best first (:meth:`table_order`); ``False``: member order.

        Returns:
            The table as a string; numbers are right-aligned.

        Raises:
            ValueError: a column that is not a record field.

        Examples:
            >>> import numpy as np, jaxlr
            >>> r = jaxlr.sweep.SweepResult({"peak_value": np.array([0.1, 1.0])},
            ...                             {"loss": np.array([0.25, 0.5])})
            >>> print(r.to_text(["index", "peak_value", "loss"]))
            index  peak_value  loss
                0         0.1  0.25
                1           1   0.5
        """
        cols, rows = self._table(columns, "to_text", sort)
        cells = [[_cell(v) for v in row] for row in rows]
        width = [max([len(c)] + [len(r[j]) for r in cells]) for j, c in enumerate(cols)]
        numeric = [
            all(isinstance(r[j], (int, float)) and not isinstance(r[j], bool) for r in rows)
            for j in range(len(cols))
        ]

        def line(values):
            return "  ".join(
                v.rjust(w) if num else v.ljust(w) for v, w, num in zip(values, width, numeric)
            ).rstrip()

        return "\n".join([line(cols)] + [line(r) for r in cells])

    def to_rich(
        self, columns: Sequence[str] | None = None, *, title: str | None = None, sort: bool = True
    ):
        """The records as a ``rich.table.Table`` (requires ``rich``); diverged rows in red.

        ``rich.print(result)`` shows the same table (``__rich__``).

        Args:
            columns: record fields to show, in order; ``None``: all of them.
            title: the table's title.
            sort: rows best first (:meth:`table_order`); ``False``: member order.

        Returns:
            A ``rich.table.Table``.

        Raises:
            ImportError: rich is not installed (:meth:`to_text` needs nothing).
            ValueError: a column that is not a record field.

        Examples:
            >>> import numpy as np, jaxlr
            >>> r = jaxlr.sweep.SweepResult({"peak_value": np.array([0.1])},
            ...                             {"loss": np.array([0.25])})
            >>> r.to_rich().row_count
            1
        """
        try:
            from rich.table import Table
        except ImportError:
            raise ImportError(
                "SweepResult.to_rich needs rich: pip install rich; to_text() and "
                "to_markdown() need nothing"
            ) from None
        cols, rows = self._table(columns, "to_rich", sort)
        order = self.table_order() if sort else np.arange(len(self))
        table = Table(title=title)
        for j, col in enumerate(cols):
            numeric = all(
                isinstance(r[j], (int, float)) and not isinstance(r[j], bool) for r in rows
            )
            table.add_column(col, justify="right" if numeric else "left")
        for i, row in enumerate(rows):
            bad = self.diverged[order[i]]
            table.add_row(*(_cell(v) for v in row), style="red" if bad else None)
        return table

    def __rich__(self):
        return self.to_rich(title=repr(self))

    def to_csv(
        self, path: str | Path, columns: Sequence[str] | None = None, *, sort: bool = True
    ) -> Path:
        """Writes the records as CSV (a header row, one row per member; lists as JSON-like text).

        A float is written as the shortest decimal that reads back to the same value: for a
        value of float32 precision (a float32 hyperparameter or metric), the shortest that
        reads back to that float32 (``0.1``, not ``0.10000000149011612``); otherwise Python's
        ``repr`` (float64 round trip).

        Args:
            path: the file to write (its folder must exist).
            columns: record fields to write, in order; ``None``: all of them.
            sort: rows best first (:meth:`table_order`); ``False``: member order.

        Returns:
            The path written.

        Raises:
            ValueError: a column that is not a record field.

        Examples:
            >>> import csv, tempfile, pathlib, numpy as np, jaxlr
            >>> r = jaxlr.sweep.SweepResult({"peak_value": np.array([0.1, 1.0])},
            ...                             {"loss": np.array([0.25, 0.5])})
            >>> p = r.to_csv(pathlib.Path(tempfile.mkdtemp()) / "sweep.csv")
            >>> next(csv.DictReader(p.open()))["loss"]
            '0.25'
        """
        cols, rows = self._table(columns, "to_csv", sort)
        path = Path(path)
        with path.open("w", newline="") as f:
            w = csv.writer(f)
            w.writerow(cols)
            w.writerows([[_csv_cell(v) for v in row] for row in rows])
        return path

    # -- plots (jaxlr.sweep._plots) ----------------------------------------------------------
    def plot_final(
        self, metric: str | None = None, *, x: str = "peak_value", by: str | None = None
    ):
        """Final ``metric`` vs ``x`` (log x axis), one line per value of ``by``; a Figure.

        ``metric`` defaults to the one :meth:`best` ranks by (:attr:`default_metric`)."""
        from jaxlr.sweep import _plots

        return _plots.final_vs(self, metric=metric or self.default_metric, x=x, by=by)

    def plot_curves(self, metric: str | None = None, *, by: str | None = None, log_y: bool = True):
        """``metric`` against the step for every member, coloured by ``by``; a Figure.

        ``metric`` defaults to the one :meth:`best` ranks by (:attr:`default_metric`)."""
        from jaxlr.sweep import _plots

        return _plots.curves(self, metric=metric or self.default_metric, by=by, log_y=log_y)

    def plot_sharpness(
        self, sharpness: str = "lambda_max", *, lr: str = "lr", by: str | None = None
    ):
        r"""The product :math:`\eta_t \lambda_{max}(t)` per member, with the GD limit 2."""
        from jaxlr.sweep import _plots

        return _plots.sharpness(self, sharpness=sharpness, lr=lr, by=by)

    def save_plots(
        self,
        out_dir: str | Path,
        *,
        by: str | None = None,
        x: str = "peak_value",
        loss: str | None = None,
        lr: str = "lr",
        sharpness: str = "lambda_max",
    ) -> list[Path]:
        """Writes the plots whose inputs exist (PNG) and returns their paths.

        ``loss``: the metric of the final-value and curve plots, by default the one :meth:`best`
        ranks by (:attr:`default_metric`, a validation loss when there is one)."""
        from jaxlr.sweep import _plots

        if loss is None:
            try:
                loss = self.default_metric
            except ValueError:
                loss = "loss"
        return _plots.save_all(
            self, Path(out_dir), by=by, x=x, loss=loss, lr=lr, sharpness=sharpness
        )
