"""The result of a sweep: per-member hyperparameters, metrics, divergence, tables, plots."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import jax
import numpy as np

from jaxlr.sweep._configs import leaf_name


def _flat(tree: Any) -> dict[str, np.ndarray]:
    return {leaf_name(p): np.asarray(v) for p, v in jax.tree_util.tree_flatten_with_path(tree)[0]}


def _scalar(v: np.ndarray) -> Any:
    return v.item() if v.ndim == 0 else v.tolist()


class SweepResult:
    r"""What :func:`jaxlr.sweep.run` returns: ``K`` members, their hyperparameters and metrics.

    Metrics are host NumPy arrays with leading axis ``K``. A metric's *final* value is its last
    entry along the step axis (axis 1) for a curve, the value itself for a scalar metric.
    Diverged members stay in every table and plot input; :meth:`best` skips them.

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
        k = len(next(iter(self.hyperparameters.values())))
        self.diverged = np.zeros(k, bool)
        self.diverged_step = np.full(k, -1)
        if loss is not None and isinstance(self.metrics, Mapping) and loss in self.metrics:
            curve = np.asarray(self.metrics[loss], float)
            bad = ~np.isfinite(curve)
            if divergence_threshold is not None:
                bad |= np.where(np.isfinite(curve), curve, 0.0) > divergence_threshold
            bad = bad.reshape(k, *curve.shape[1:2], -1).any(-1) if curve.ndim > 1 else bad
            if bad.ndim == 1:
                self.diverged = bad
            else:
                self.diverged = bad.any(1)
                self.diverged_step = np.where(self.diverged, bad.argmax(1), -1)

    def __len__(self) -> int:
        return len(self.diverged)

    def __repr__(self) -> str:
        return (f"SweepResult(K={len(self)}, hyperparameters={list(self.hyperparameters)}, "
                f"metrics={list(self.flat_metrics)}, diverged={int(self.diverged.sum())})")

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
        names = self.labels.get(axis)
        return names[int(v)] if names is not None else _scalar(v)

    def member(self, i: int) -> dict[str, Any]:
        """Member ``i``: hyperparameters (labels applied), final metrics, divergence."""
        rec: dict[str, Any] = {"index": int(i)}
        rec.update({a: self.label(a, i) for a in self.hyperparameters})
        rec.update({m: _scalar(np.asarray(self.final(m)[i])) for m in self.flat_metrics})
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
            raise ImportError("SweepResult.to_pandas needs pandas: pip install pandas; "
                              "records() gives the same table as dicts") from None
        return pd.DataFrame.from_records(self.records())

    def best(self, metric: str = "loss", *, mode: str = "min", by: str | None = None) -> Any:
        """The member with the best final ``metric`` among non-diverged, finite members.

        Args:
            metric: the metric to rank by.
            mode: ``"min"`` or ``"max"``.
            by: an axis; returns ``{value or label: best record}`` per value of that axis.

        Returns:
            The best member's record (:meth:`member`), or a dict of them with ``by``; a group
            whose members all diverged maps to ``None``.
        """
        if mode not in ("min", "max"):
            raise ValueError(f"SweepResult.best: mode must be 'min' or 'max', got mode={mode!r}")
        score = np.asarray(self.final(metric), float)
        score = np.where(np.isfinite(score) & ~self.diverged,
                         score if mode == "min" else -score, np.inf)
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

    # -- plots (jaxlr.sweep._plots) ----------------------------------------------------------
    def plot_final(self, metric: str = "loss", *, x: str = "peak_value", by: str | None = None):
        """Final ``metric`` vs ``x`` (log x axis), one line per value of ``by``; a Figure."""
        from jaxlr.sweep import _plots

        return _plots.final_vs(self, metric=metric, x=x, by=by)

    def plot_curves(self, metric: str = "loss", *, by: str | None = None, log_y: bool = True):
        """``metric`` against the step for every member, coloured by ``by``; a Figure."""
        from jaxlr.sweep import _plots

        return _plots.curves(self, metric=metric, by=by, log_y=log_y)

    def plot_sharpness(self, sharpness: str = "lambda_max", *, lr: str = "lr",
                       by: str | None = None):
        r"""The product :math:`\eta_t \lambda_{max}(t)` per member, with the GD limit 2."""
        from jaxlr.sweep import _plots

        return _plots.sharpness(self, sharpness=sharpness, lr=lr, by=by)

    def save_plots(self, out_dir: str | Path, *, by: str | None = None, x: str = "peak_value",
                   loss: str = "loss", lr: str = "lr", sharpness: str = "lambda_max") -> list[Path]:
        """Writes the plots whose inputs exist (PNG) and returns their paths."""
        from jaxlr.sweep import _plots

        return _plots.save_all(self, Path(out_dir), by=by, x=x, loss=loss, lr=lr,
                               sharpness=sharpness)
