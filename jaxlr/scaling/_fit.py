"""Cross-scale laws: per-scale optima from sweeps -> weighted least squares in log space."""

from __future__ import annotations

import json
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxlr._src.validate import Checker
from jaxlr.scaling._optimum import ESTIMATORS, Optimum, draws

VARIABLES = ("N", "D", "B", "C")  # model size, data (tokens or steps x batch), batch, compute
TARGETS = ("lr", "batch_size")
MAX_REACH = 8.0  # predictions past this multiple of the largest fitted scale need force=True


class Prediction(NamedTuple):
    """A predicted optimum with its bootstrap interval."""

    value: float  # the predicted optimal LR (or batch size)
    low: float  # 2.5% / 97.5% bootstrap interval
    high: float
    reach: dict  # variable -> requested value / largest fitted value (> 1: extrapolation)


class HeldOut(NamedTuple):
    """One row of :meth:`ScalingFit.leave_one_scale_out`."""

    scale: dict  # the held-out scale's variables
    predicted: float  # the optimum predicted from the other scales
    low: float  # its interval
    high: float
    optimum: float  # the held-out scale's own fitted optimum
    factor_error: float  # max(predicted / optimum, optimum / predicted)
    loss_regret: float  # loss at the predicted value / best grid loss - 1 (interpolated)


def _fmt(scale: Mapping[str, float]) -> str:
    return ", ".join(f"{k}={v:g}" for k, v in scale.items())


def _members(results, *, scale, lr, metric, batch, fn) -> dict[str, np.ndarray]:
    """The flat member arrays of one sweep result per scale."""
    c = Checker(fn)
    results = list(results)
    for name, values in scale.items():
        if len(values) != len(results):
            c.fail(
                f"{name} must give one value per result ({len(results)} results), "
                f"got {len(values)} values"
            )
    cols: dict[str, list] = {"eta": [], "loss": [], "diverged": [], "batch": []}
    cols.update({name: [] for name in scale})
    for i, r in enumerate(results):
        if lr not in r.hyperparameters:
            c.fail(f"result {i} has no hyperparameter lr={lr!r}, known: {list(r.hyperparameters)}")
        swept = [
            name
            for name, v in r.hyperparameters.items()
            if name not in (lr, batch)
            and "seed" not in name.lower()
            and len(np.unique(np.asarray(v).reshape(len(r), -1), axis=0)) > 1
        ]
        if swept:
            c.fail(
                f"result {i} also sweeps {swept} (besides lr={lr!r}); members differing in "
                f"them would be averaged as seeds, giving the optimum of no configuration: "
                f"filter the results to one value of {swept}, or pass eta= / loss= arrays "
                f"of one configuration"
            )
        eta = np.asarray(r.hyperparameters[lr], float).reshape(len(r), -1)[:, 0]
        cols["eta"].append(eta)
        cols["loss"].append(np.asarray(r.score(metric), float))
        cols["diverged"].append(np.asarray(r.diverged, bool))
        if batch is not None:
            if batch not in r.hyperparameters:
                c.fail(f"result {i} has no hyperparameter batch={batch!r}")
            cols["batch"].append(np.asarray(r.hyperparameters[batch], float))
        for name, values in scale.items():
            cols[name].append(np.full(len(r), float(values[i])))
    out = {k: np.concatenate(v) for k, v in cols.items() if v}
    return out


def _grid(members: dict, *, names, target, fn):
    """Groups members by scale; returns scale values and padded ``[S, G, H, K]`` tensors."""
    c = Checker(fn)
    key_cols = [members[n] for n in names]
    keys = sorted(set(zip(*key_cols, strict=True))) if names else [()]
    if len(keys) < 3:
        c.fail(
            f"a scaling law needs at least 3 scales, got {len(keys)}: "
            f"{[_fmt(dict(zip(names, k, strict=True))) for k in keys]}"
        )
    gx = members["batch"] if target == "batch_size" else members["eta"]
    gh = members["eta"] if target == "batch_size" else np.zeros_like(gx)
    per = []
    for k in keys:
        where = np.ones(len(gx), bool)
        for n, v in zip(names, k, strict=True):
            where &= members[n] == v
        label = _fmt(dict(zip(names, k, strict=True))) or "the only scale"
        xs, hs = np.unique(gx[where]), np.unique(gh[where])
        if np.any(xs <= 0):
            c.fail(f"scale {label}: the swept values must be > 0, got {xs[xs <= 0].tolist()}")
        loss, div = members["loss"][where], members["diverged"][where]
        cells = [[np.flatnonzero((gx[where] == x) & (gh[where] == h)) for h in hs] for x in xs]
        counts = {len(i) for row in cells for i in row}
        if len(counts) != 1 or 0 in counts:
            c.fail(
                f"scale {label}: every grid point needs the same number of seeds, got counts "
                f"{sorted(counts)} (a rectangular sweep: values x seeds)"
            )
        if "seed" in members:
            for row, x in zip(cells, xs, strict=True):
                for i in row:
                    sd = members["seed"][where][i]
                    if len(np.unique(sd)) != len(sd):
                        c.fail(f"scale {label}: {target} {x:g} repeats a seed: {sd.tolist()}")
        bad = ~np.isfinite(loss) & ~div
        if bad.any():
            c.fail(
                f"scale {label}: non-finite losses at {target} "
                f"{np.unique(gx[where][bad]).tolist()} of members not marked diverged; mark "
                f"them (diverged=...) or drop them"
            )
        lk = np.stack([np.stack([loss[i] for i in row]) for row in cells])  # [G, H, K]
        ok = np.stack([np.stack([~div[i].any() for i in row]) for row in cells])  # [G, H]
        if not ok.any():
            c.fail(f"scale {label}: every member diverged; lower the {target} grid")
        if len(xs) < 3:
            c.fail(f"scale {label}: needs at least 3 {target} values, got {xs.tolist()}")
        mean = np.where(ok, np.where(ok[..., None], lk, 0.0).mean(-1), np.inf).min(-1)
        j = int(np.argmin(mean))
        if j in (0, len(xs) - 1):
            side = "smallest" if j == 0 else "largest"
            c.fail(
                f"scale {label}: the best {target} {xs[j]:g} is the {side} of its grid "
                f"[{xs[0]:g} .. {xs[-1]:g}]; widen the grid past it"
            )
        trained = np.flatnonzero(ok.any(-1))
        if j in (trained[0], trained[-1]):
            side = "smallest" if j == trained[0] else "largest"
            c.fail(
                f"scale {label}: the best {target} {xs[j]:g} is the {side} that trained "
                f"[{xs[trained[0]]:g} .. {xs[trained[-1]]:g}] (the values past it diverged), "
                f"so the optimum may lie between it and the diverged ones; refine the grid there"
            )
        per.append((k, xs, lk, ok, mean))
    s, g = len(per), max(len(p[1]) for p in per)
    h, k = max(p[2].shape[1] for p in per), max(p[2].shape[2] for p in per)
    x = np.zeros((s, g))
    loss = np.zeros((s, g, h, k))
    valid = np.zeros((s, g, h), bool)
    seeds = np.zeros(s, np.int32)
    for i, (_, xs, lk, ok, _) in enumerate(per):
        lx = np.log(xs)
        x[i, : len(lx)] = lx
        x[i, len(lx) :] = lx[-1]
        loss[i, : lk.shape[0], : lk.shape[1], : lk.shape[2]] = np.where(np.isfinite(lk), lk, 0.0)
        valid[i, : ok.shape[0], : ok.shape[1]] = ok
        seeds[i] = lk.shape[2]
    scales = np.asarray([k for k, *_ in per], float).reshape(s, len(names))
    curves = [(xs, mean) for _, xs, _, _, mean in per]
    return scales, x, loss, valid, seeds, curves


def _design(logs: np.ndarray, center: np.ndarray, quadratic_col: int | None) -> np.ndarray:
    z = logs - center
    cols = [np.ones(len(z)), *z.T]
    if quadratic_col is not None:
        cols.append(z[:, quadratic_col] ** 2)
    return np.stack(cols, 1)


def _check_collinear(z: np.ndarray, names: Sequence[str], c: Checker) -> None:
    """Fails when the centered log scale variables ``z [S, V]`` are (nearly) collinear."""
    if z.shape[1] < 2:
        return
    u = z / np.linalg.norm(z, axis=0)
    _, sv, vt = np.linalg.svd(u, full_matrices=False)
    if sv[-1] > 1e-6 * sv[0]:
        return
    null = vt[-1]
    which = [n for n, v in zip(names, null, strict=True) if abs(v) > 1e-3]
    c.fail(
        f"the scale variables {which} are collinear across the scales (one log is a linear "
        f"combination of the others: condition number {sv[0] / max(sv[-1], 1e-300):.3g}), so "
        f"their exponents cannot be separated; drop one of them or vary them independently"
    )


def _wls(a: np.ndarray, w: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Coefficients ``[..., P]`` of ``y [..., S]`` on ``a [S, P]`` with weights ``w [S]``."""
    sw = np.sqrt(w)
    pinv = np.linalg.pinv(a * sw[:, None])  # [P, S]
    beta = (y * sw) @ pinv.T
    return beta


def _wls_jax(a, w, y):
    """:func:`_wls` in JAX, by the normal equations (``P`` is small)."""
    aw = a * w[:, None]
    return (
        jnp.linalg.solve(aw.T @ a, (y * w) @ a).T
        if y.ndim == 1
        else jnp.linalg.solve(aw.T @ a, ((y * w) @ a).T).T
    )


class ScalingFit:
    r"""A fitted scaling law of the optimal LR (or batch size): what :func:`fit` returns.

    .. math::
        \log x^* = a + \sum_k b_k (\log v_k - \bar{\log v_k}) \;[+\; q (\log N - \bar{\log N})^2]

    Attributes:
        target: ``"lr"`` or ``"batch_size"``.
        variables: the scale variables, in the order of the exponents (``("N",)``, ...).
        coef / low / high: ``[P]`` coefficients (intercept, exponents, quadratic term) and their
            bootstrap interval (2.5%, 97.5%).
        names: ``[P]`` the coefficients' names.
        exponents: ``{variable: (value, low, high)}``.
        curved: with ``quadratic=True``, whether the quadratic term's interval excludes 0
            (the log-linear law bends); ``None`` otherwise.
        scales: ``[S, V]`` the fitted scales; optima: one :class:`Optimum` per scale.
        chi2: reduced chi-square of the fit (> 1: scatter beyond seed noise; the interval was
            widened by its square root).
        info: the estimator, resamples and the seconds of the compiled bootstrap call.

    Examples:
        >>> import numpy as np, jaxlr
        >>> widths = np.array([64.0, 128.0, 256.0, 512.0])
        >>> etas = np.logspace(-4, 0, 17)
        >>> best = 0.3 * widths**-1.0  # a law with exponent -1
        >>> loss = (np.log(etas)[None] - np.log(best)[:, None]) ** 2 + 1.0
        >>> f = jaxlr.scaling.fit(eta=np.tile(etas, 4), loss=loss.ravel(),
        ...                       N=np.repeat(widths, 17), num_resamples=100)
        >>> round(f.exponents["N"][0], 3)
        -1.0
    """

    def __init__(self, record: Mapping[str, Any]):
        self.record = dict(record)
        r = self.record
        self.target = r["target"]
        self.variables = tuple(r["variables"])
        self.names = tuple(r["names"])
        self.coef = np.asarray(r["coef"], float)
        self.low = np.asarray(r["low"], float)
        self.high = np.asarray(r["high"], float)
        self.center = np.asarray(r["center"], float)
        self.scales = np.asarray(r["scales"], float).reshape(-1, len(self.variables))
        self.optima = [Optimum(**o) for o in r["optima"]]
        self.chi2 = float(r["chi2"])
        self.quadratic = bool(r["quadratic"])
        self.curved = r["curved"]
        self.info = dict(r.get("info", {}))
        self._draws = np.asarray(r["coef_draws"], float)
        self._opt_draws = np.asarray(r["optimum_draws"], float)  # [R, S] log x*
        self._weights = np.asarray(r["weights"], float)
        self._curves = [(np.asarray(a, float), np.asarray(b, float)) for a, b in r["curves"]]

    def __repr__(self) -> str:
        ex = ", ".join(
            f"{k}^{v[0]:.3g} [{v[1]:.3g}, {v[2]:.3g}]" for k, v in self.exponents.items()
        )
        head = f"{self.target}* = {np.exp(self.coef[0]):.3g} x {ex}"
        return f"ScalingFit({head}; S={len(self.scales)})"

    @property
    def exponents(self) -> dict[str, tuple[float, float, float]]:
        """``{variable: (exponent, low, high)}``."""
        return {
            v: (float(self.coef[1 + i]), float(self.low[1 + i]), float(self.high[1 + i]))
            for i, v in enumerate(self.variables)
        }

    def _row(self, scale: Mapping[str, Any], fn: str, force: bool) -> tuple[np.ndarray, dict]:
        c = Checker(fn)
        missing = [v for v in self.variables if v not in scale]
        extra = [k for k in scale if k not in self.variables]
        if missing or extra:
            c.fail(
                f"needs exactly the fitted variables {list(self.variables)}, got {sorted(scale)}"
            )
        logs, reach = [], {}
        for i, v in enumerate(self.variables):
            value = c.positive(v, scale[v])
            top, bottom = self.scales[:, i].max(), self.scales[:, i].min()
            reach[v] = float(value) / top
            outside = max(float(value) / top, bottom / float(value))
            if outside > MAX_REACH and not force:
                far, ref = ("largest", top) if float(value) > top else ("smallest", bottom)
                c.fail(
                    f"{v}={float(value):g} is {outside:.3g}x the {far} fitted {v}={ref:g}, "
                    f"past the {MAX_REACH:g}x limit of extrapolation; pass force=True to "
                    f"extrapolate anyway"
                )
            logs.append(np.log(float(value)))
        q = self.variables.index("N") if self.quadratic else None
        return _design(np.asarray([logs]), self.center, q)[0], reach

    def predict(self, *, force: bool = False, **scale: float) -> Prediction:
        r"""The optimum at a new scale, :math:`\exp(a + \sum_k b_k \log v_k)`, with its interval.

        Args:
            force: allow predictions past 8x the fitted range of a variable.
            **scale: one value per fitted variable (``N=4096``, ``D=1e9``, ...).

        Returns:
            A :class:`Prediction` (value, 2.5%/97.5% interval, reach per variable).

        Raises:
            ValueError: a missing or unknown variable, a non-positive value, or a value more
                than 8x beyond the fitted scales without ``force=True``.

        Examples:
            >>> import numpy as np, jaxlr
            >>> widths, etas = np.array([32.0, 64, 128, 256]), np.logspace(-4, 0, 17)
            >>> loss = (np.log(etas)[None] - np.log(0.1 / widths)[:, None]) ** 2
            >>> f = jaxlr.scaling.fit(eta=np.tile(etas, 4), loss=loss.ravel(),
            ...                       N=np.repeat(widths, 17), num_resamples=100)
            >>> round(f.predict(N=1024).value * 1024, 3)
            0.1
        """
        row, reach = self._row(scale, "ScalingFit.predict", force)
        logs = self._draws @ row
        return Prediction(
            float(np.exp(row @ self.coef)),
            float(np.exp(np.percentile(logs, 2.5))),
            float(np.exp(np.percentile(logs, 97.5))),
            reach,
        )

    def leave_one_scale_out(self) -> list[HeldOut]:
        r"""Refits without each scale in turn and predicts it from the others.

        The factor error is :math:`\exp|\log \hat x - \log x^*|`; the loss regret is the held-out
        scale's mean loss at the prediction (linear interpolation of its grid in log x) over its
        best grid loss, minus 1 (NaN when the prediction falls outside its grid).

        Returns:
            One :class:`HeldOut` per scale, in the order of :attr:`scales`.

        Raises:
            ValueError: fewer than 3 scales would be left to fit.

        Examples:
            >>> import numpy as np, jaxlr
            >>> widths, etas = np.array([32.0, 64, 128, 256]), np.logspace(-4, 0, 17)
            >>> loss = (np.log(etas)[None] - np.log(0.1 / widths)[:, None]) ** 2 + 1
            >>> f = jaxlr.scaling.fit(eta=np.tile(etas, 4), loss=loss.ravel(),
            ...                       N=np.repeat(widths, 17), num_resamples=100)
            >>> [round(h.factor_error, 2) for h in f.leave_one_scale_out()]
            [1.0, 1.0, 1.0, 1.0]
        """
        s = len(self.scales)
        n_params = len(self.coef)
        if s - 1 < max(3, n_params):
            raise ValueError(
                f"ScalingFit.leave_one_scale_out: needs at least {max(3, n_params) + 1} scales "
                f"to leave one out, the fit has {s}"
            )
        q = self.variables.index("N") if self.quadratic else None
        a = _design(np.log(self.scales), self.center, q)
        y = np.log([o.value for o in self.optima])
        rows = []
        for i in range(s):
            keep = np.arange(s) != i
            beta = _wls(a[keep], self._weights[keep], y[keep])
            beta_draws = _wls(a[keep], self._weights[keep], self._opt_draws[:, keep])
            pred = float(a[i] @ beta)
            spread = (beta_draws - beta) @ a[i]
            grid, curve = self._curves[i]
            ok = np.isfinite(curve)
            inside = grid[ok].min() <= np.exp(pred) <= grid[ok].max()
            at = np.interp(pred, np.log(grid[ok]), curve[ok]) if inside else np.nan
            rows.append(
                HeldOut(
                    dict(zip(self.variables, self.scales[i].tolist(), strict=True)),
                    float(np.exp(pred)),
                    float(np.exp(pred + np.percentile(spread, 2.5))),
                    float(np.exp(pred + np.percentile(spread, 97.5))),
                    self.optima[i].value,
                    float(np.exp(abs(pred - y[i]))),
                    float(at / np.nanmin(curve[ok]) - 1.0),
                )
            )
        return rows

    def schedule(self, family: str, *, force: bool = False, **kwargs: Any):
        """A jaxlr schedule whose peak (or initial) LR is the predicted optimum.

        Args:
            family: a schedule name (``"wsd"``, ``"warmup_cosine"``, ``"cosine"``, ... any
                ``jaxlr.schedules.names()`` entry with ``peak_value``, ``init_value`` or
                ``value``).
            force: passed to :meth:`predict`.
            **kwargs: the scale variables (``N=...``) and the schedule's other arguments.

        Returns:
            The schedule (the predicted LR as its peak).

        Raises:
            ValueError: a fit of the batch size, an unknown family, or what :meth:`predict`
                raises.

        Examples:
            >>> import numpy as np, jaxlr
            >>> widths, etas = np.array([32.0, 64, 128, 256]), np.logspace(-4, 0, 17)
            >>> loss = (np.log(etas)[None] - np.log(0.1 / widths)[:, None]) ** 2
            >>> f = jaxlr.scaling.fit(eta=np.tile(etas, 4), loss=loss.ravel(),
            ...                       N=np.repeat(widths, 17), num_resamples=100)
            >>> s = f.schedule("wsd", N=512, total_steps=1000, warmup_steps=100, decay_fraction=0.2)
            >>> round(float(s(500)) * 512, 3)
            0.1
        """
        from jaxlr import schedules

        if self.target != "lr":
            raise ValueError("ScalingFit.schedule: this fit predicts the batch size, not an LR")
        scale = {k: kwargs.pop(k) for k in list(kwargs) if k in self.variables}
        eta = self.predict(force=force, **scale).value
        return schedules.constructor(family)(**{_peak_argument(family): eta}, **kwargs)

    # -- persistence -----------------------------------------------------------------------
    def to_json(self) -> str:
        """The fit as JSON text (:func:`load_fit` reads it back; ``jaxlr recommend --fit``)."""

        def plain(v):
            if isinstance(v, dict):
                return {k: plain(x) for k, x in v.items()}
            if isinstance(v, (list, tuple)):
                return [plain(x) for x in v]
            if isinstance(v, np.ndarray):
                return plain(v.tolist())
            if isinstance(v, (np.floating, float)):
                return float(v) if np.isfinite(v) else None
            if isinstance(v, np.integer):
                return int(v)
            return v

        return json.dumps(plain(self.record))

    def save(self, path: str | Path) -> Path:
        """Writes :meth:`to_json` to ``path`` and returns it.

        Examples:
            >>> import numpy as np, jaxlr, tempfile, pathlib
            >>> widths, etas = np.array([32.0, 64, 128, 256]), np.logspace(-4, 0, 17)
            >>> loss = (np.log(etas)[None] - np.log(0.1 / widths)[:, None]) ** 2
            >>> f = jaxlr.scaling.fit(eta=np.tile(etas, 4), loss=loss.ravel(),
            ...                       N=np.repeat(widths, 17), num_resamples=100)
            >>> p = f.save(pathlib.Path(tempfile.mkdtemp()) / "fit.json")
            >>> g = jaxlr.scaling.load_fit(p)
            >>> g.predict(N=512).value == f.predict(N=512).value
            True
        """
        path = Path(path)
        path.write_text(self.to_json())
        return path

    def plot(self, path: str | Path | None = None):
        """The optimum per scale with its interval, the fitted law and its band, against the
        first variable (log-log); a ``matplotlib.figure.Figure`` (Agg), saved when ``path``
        is given.

        Examples:
            >>> import numpy as np, jaxlr
            >>> widths, etas = np.array([32.0, 64, 128, 256]), np.logspace(-4, 0, 17)
            >>> loss = (np.log(etas)[None] - np.log(0.1 / widths)[:, None]) ** 2
            >>> f = jaxlr.scaling.fit(eta=np.tile(etas, 4), loss=loss.ravel(),
            ...                       N=np.repeat(widths, 17), num_resamples=100)
            >>> len(f.plot().axes[0].lines) >= 2
            True
        """
        from jaxlr.sweep._plots import _figure

        v = self.variables[0]
        fig, ax = _figure(f"optimal {self.target} vs {v}")
        xs = self.scales[:, 0]
        val = np.array([o.value for o in self.optima])
        err = np.array(
            [[o.value - o.low for o in self.optima], [o.high - o.value for o in self.optima]]
        )
        ax.errorbar(xs, val, yerr=np.maximum(err, 0), fmt="o", capsize=3, label="per-scale optimum")
        if len(self.variables) == 1:
            grid = np.geomspace(xs.min() / 2, xs.max() * 4, 50)
            q = 0 if self.quadratic else None
            a = _design(np.log(grid)[:, None], self.center, q)
            logs = self._draws @ a.T
            ax.plot(grid, np.exp(a @ self.coef), "-", label=repr(self).split("(", 1)[1][:-1])
            ax.fill_between(
                grid,
                np.exp(np.percentile(logs, 2.5, 0)),
                np.exp(np.percentile(logs, 97.5, 0)),
                alpha=0.25,
                label="95% interval",
            )
        ax.set(xscale="log", yscale="log", xlabel=v, ylabel=f"optimal {self.target}")
        ax.legend(fontsize=7)
        if path is not None:
            fig.savefig(path, dpi=100)
        return fig


def _peak_argument(family: str) -> str:
    import inspect

    from jaxlr import schedules

    params = inspect.signature(schedules.constructor(family)).parameters
    for name in ("peak_value", "init_value", "value"):
        if name in params:
            return name
    raise ValueError(
        f"ScalingFit.schedule: family {family!r} has no peak_value, init_value or value"
    )


def load_fit(path: str | Path) -> ScalingFit:
    """Reads a fit written by :meth:`ScalingFit.save`.

    Examples:
        >>> import numpy as np, jaxlr, tempfile, pathlib
        >>> widths, etas = np.array([32.0, 64, 128, 256]), np.logspace(-4, 0, 17)
        >>> loss = (np.log(etas)[None] - np.log(0.1 / widths)[:, None]) ** 2
        >>> f = jaxlr.scaling.fit(eta=np.tile(etas, 4), loss=loss.ravel(),
        ...                       N=np.repeat(widths, 17), num_resamples=100)
        >>> jaxlr.scaling.load_fit(f.save(pathlib.Path(tempfile.mkdtemp()) / "f.json")).variables
        ('N',)
    """
    text = Path(path).read_text()
    record = json.loads(text)
    if not isinstance(record, dict) or "coef_draws" not in record:
        raise ValueError(f"load_fit: {str(path)!r} is not a ScalingFit saved by ScalingFit.save")
    for field in ("coef", "low", "high", "center", "coef_draws", "weights"):
        if None in np.asarray(record.get(field, []), object).ravel().tolist():
            raise ValueError(
                f"load_fit: {str(path)!r} has null (NaN) values in {field!r}: the saved fit is "
                f"degenerate (e.g. collinear scale variables); refit it"
            )
    nan = lambda v: np.nan if v is None else v  # noqa: E731
    record["optima"] = [{k: nan(x) for k, x in o.items()} for o in record["optima"]]
    record["curves"] = [(a, [np.nan if x is None else x for x in b]) for a, b in record["curves"]]
    return ScalingFit(record)


def fit(
    results: Sequence[Any] | None = None,
    *,
    eta: Any = None,
    loss: Any = None,
    diverged: Any = None,
    batch_size: Any = None,
    seed: Any = None,
    N: Any = None,
    D: Any = None,
    B: Any = None,
    C: Any = None,
    lr: str = "peak_value",
    metric: str | None = None,
    batch: str | None = None,
    target: str = "lr",
    estimator: str = "quadratic",
    quadratic: bool = False,
    window: int = 2,
    tolerance: float = 0.0025,
    num_resamples: int = 1000,
    key: jax.Array | None = None,
) -> ScalingFit:
    r"""Fits the optimal LR (or batch size) across scales: per-scale optima, then a power law.

    Per scale (a distinct combination of the scale variables ``N``, ``D``, ``B``, ``C``), the
    mean loss over seeds at each grid value :math:`x` (the LR; the batch size with
    ``target="batch_size"``, the loss then minimized over the LR) gives the optimum
    :math:`x^*` by one of two estimators:

    - ``"quadratic"``: weighted least squares of the loss on
      :math:`(1, \log x, \log^2 x)` over the ``window`` grid points on each side of the best
      one; :math:`x^*` is the vertex (the grid point if the parabola opens down), and the
      curvature :math:`\partial^2 L / \partial (\log x)^2` is reported;
    - ``"near_optimal"`` (Step Law): the geometric mean of the grid values whose loss is within
      ``tolerance`` (0.25%) of the best.

    A bootstrap (``num_resamples`` draws: each grid point's seed mean redrawn from the scale's
    pooled seed residuals; with one seed, the grid points reweighted by Dirichlet(1) weights)
    gives each scale's interval and a variance :math:`\sigma_s^2` of :math:`\log x^*_s`
    (floored at ``(grid step / 10)^2`` in the weights). Across scales,

    .. math::
        \log x^*_s = a + \sum_k b_k (\log v_{k,s} - \overline{\log v_k})
        \;[+\, q\,(\log N_s - \overline{\log N})^2] + \epsilon_s,
        \quad \text{weights } 1/\sigma_s^2,

    fitted for the point estimate and for every draw; when the reduced chi-square
    :math:`\chi^2_\nu` exceeds 1 (scatter beyond seed noise) the draws' spread is widened by
    :math:`\sqrt{\chi^2_\nu}`. All of it (every scale, every draw) is one compiled call.

    When to trust it:

    - The interval needs seeds. With one seed per grid point the Dirichlet reweighting does
      not see the loss noise, and the exponent's nominal 95% interval under-covers (76 of 100
      synthetic fits covered the true exponent with noise sd 0.02, 4 scales, 11 LRs over 4
      decades). Use at least 3 seeds per grid point before reading the interval as 95%.
    - The batch-size law needs a fine LR grid. The loss at each batch size is minimized over
      the LR *grid points*, not over a fitted LR, so a coarse LR grid biases the batch-size
      optimum: with 9 LRs over 4 decades a true exponent 0.5 came out 0.570 [0.526, 0.605]
      (interval excluding the truth); with 33 LRs, 0.4998. Use several LRs per octave there.
    - A scale whose optimum sits at an end of its grid, or at the last value that trained
      before divergence, is refused: its optimum is only a bound.

    Args:
        results: one :class:`jaxlr.sweep.SweepResult` / ``PopulationResult`` per scale (members:
            LR grid x seeds); the scale variables then give one value per result.
        eta, loss, diverged, batch_size, seed: instead of ``results``, flat per-member arrays
            (the scale variables then give one value per member); ``diverged`` marks members
            to skip (default: none; a non-finite loss must be marked); members sharing a scale
            and a grid value are seeds (``seed``, optional, checks that none repeats).
        N, D, B, C: scale variables (model size, data, batch size, compute); the law uses the
            ones given.
        lr: the results' LR hyperparameter name.
        metric: the results' metric to minimize (default: the validation loss if reported,
            else ``loss``), its final value.
        batch: the results' batch-size hyperparameter (``target="batch_size"``).
        target: ``"lr"`` or ``"batch_size"`` (swept batch sizes, LR minimized out per batch).
        estimator: ``"quadratic"`` or ``"near_optimal"``.
        quadratic: add a term in :math:`(\log N)^2`; ``curved`` says whether its interval
            excludes 0.
        window: grid points on each side of the best used by the quadratic.
        tolerance: the near-optimal set's relative tolerance.
        num_resamples: bootstrap draws.
        key: PRNG key (default ``jax.random.key(0)``).

    Returns:
        A :class:`ScalingFit`.

    Raises:
        ValueError: fewer than 3 scales; a scale whose best grid value is at an end of its grid
            (widen it) or of its trained (not diverged) values, whose members all diverged, with
            non-finite losses not marked diverged, fewer than 3 grid values or unequal seed
            counts; collinear scale variables (``D = 20 N``, or ``C = 6 N D`` with ``N`` and
            ``D``); ``results`` that sweep another hyperparameter besides the LR (and the batch
            size, and seeds); bad arguments.

    Examples:
        >>> import numpy as np, jaxlr
        >>> widths, etas = np.array([32.0, 64, 128, 256]), np.logspace(-4, 0, 17)
        >>> loss = (np.log(etas)[None] - np.log(0.1 / widths)[:, None]) ** 2
        >>> f = jaxlr.scaling.fit(eta=np.tile(etas, 4), loss=loss.ravel(),
        ...                       N=np.repeat(widths, 17), num_resamples=100)
        >>> round(f.exponents["N"][0], 3), round(float(np.exp(f.coef[0])) * 90.5, 2)
        (-1.0, 0.1)

    References:
        Li et al., Predictable Scale: Part I -- Optimal Hyperparameter Scaling Law in Large
        Language Model Pretraining (Step Law), 2025; DeepSeek-AI, DeepSeek LLM, 2024.
    """
    fn = "fit"
    c = Checker(fn)
    c.choice("target", target, TARGETS)
    c.choice("estimator", estimator, ESTIMATORS)
    c.flag("quadratic", quadratic)
    for name, v in (("window", window), ("num_resamples", num_resamples)):
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            c.fail(f"{name} must be an int >= 1, got {name}={v!r}")
    c.positive("tolerance", tolerance)
    given = {n: v for n, v in zip(VARIABLES, (N, D, B, C), strict=True) if v is not None}
    if target == "batch_size" and "B" in given:
        c.fail("B is the swept variable of target='batch_size'; pass it as batch_size= / batch=")
    if not given:
        c.fail("give at least one scale variable (N, D, B or C)")
    if quadratic and "N" not in given:
        c.fail("quadratic=True adds a (log N)^2 term and needs N")
    if results is not None:
        if eta is not None or loss is not None:
            c.fail("give either results or eta= / loss= arrays, not both")
        if target == "batch_size" and batch is None:
            c.fail("target='batch_size' needs batch=, the results' batch-size hyperparameter")
        members = _members(
            results,
            scale=given,
            lr=lr,
            metric=metric,
            batch=batch if target == "batch_size" else None,
            fn=fn,
        )
    else:
        if eta is None or loss is None:
            c.fail("give results, or eta= and loss= arrays (one entry per member)")
        members = {"eta": np.asarray(eta, float).ravel(), "loss": np.asarray(loss, float).ravel()}
        m = len(members["eta"])
        members["diverged"] = (
            np.zeros(m, bool) if diverged is None else np.asarray(diverged, bool).ravel()
        )
        if target == "batch_size":
            if batch_size is None:
                c.fail("target='batch_size' needs batch_size= (one entry per member)")
            members["batch"] = np.asarray(batch_size, float).ravel()
        if seed is not None:
            members["seed"] = np.asarray(seed).ravel()
        for n, v in given.items():
            members[n] = np.asarray(v, float).ravel()
        for n, v in members.items():
            if len(v) != m:
                c.fail(f"{n} has {len(v)} entries, eta has {m}")
    names = tuple(given)
    scales, x, lk, valid, seeds, curves = _grid(members, names=names, target=target, fn=fn)
    s = len(scales)
    q = names.index("N") if quadratic else None
    n_params = 1 + len(names) + (q is not None)
    if s < n_params + 1:
        c.fail(f"{n_params} coefficients need at least {n_params + 1} scales, got {s}")
    logs = np.log(scales)
    if np.any(np.ptp(logs, 0) == 0):
        const = [n for n, p in zip(names, np.ptp(logs, 0), strict=True) if p == 0]
        c.fail(f"the scale variables {const} take one value only; drop them")
    center = logs.mean(0)
    a = _design(logs, center, q)
    terms = [*names] + (["N^2"] if q is not None else [])
    _check_collinear(a[:, 1:], terms, c)
    step = np.array([np.median(np.diff(xi[valid[i].any(-1)])) for i, xi in enumerate(x)])
    key = jax.random.key(0) if key is None else key

    start = time.perf_counter()
    out = _PROGRAM(
        jnp.asarray(x, jnp.float32),
        jnp.asarray(lk, jnp.float32),
        jnp.asarray(valid),
        jnp.asarray(seeds),
        key,
        jnp.float32(tolerance),
        jnp.asarray(a, jnp.float32),
        jnp.asarray(step, jnp.float32),
        estimator=estimator,
        window=window,
        num_resamples=num_resamples,
    )
    point, curv, opt_draws, weights, beta, beta_draws, chi2 = jax.tree.map(np.asarray, out)
    seconds = time.perf_counter() - start
    optima = []
    for i in range(s):
        grid, mean = curves[i]
        best = float(np.min(mean))
        near = grid[np.isfinite(mean) & (mean <= best + tolerance * abs(best))]
        d = opt_draws[:, i]
        optima.append(
            dict(
                value=float(np.exp(point[i])),
                low=float(np.exp(np.percentile(d, 2.5))),
                high=float(np.exp(np.percentile(d, 97.5))),
                log_se=float(np.std(d)),
                curvature=float(curv[i]),
                loss=best,
                grid_best=float(grid[int(np.argmin(mean))]),
                near_low=float(near.min()),
                near_high=float(near.max()),
            )
        )
    names_p = ["intercept", *terms]
    low = np.percentile(beta_draws, 2.5, 0)
    high = np.percentile(beta_draws, 97.5, 0)
    curved = None if q is None else bool(low[-1] > 0 or high[-1] < 0)
    record = dict(
        target=target,
        variables=list(names),
        names=names_p,
        coef=beta,
        low=low,
        high=high,
        center=center,
        scales=scales,
        optima=optima,
        chi2=float(chi2),
        quadratic=quadratic,
        curved=curved,
        coef_draws=beta_draws,
        optimum_draws=opt_draws,
        weights=weights,
        curves=[(g, np.where(np.isfinite(m), m, np.nan)) for g, m in curves],
        info=dict(
            estimator=estimator,
            num_resamples=num_resamples,
            window=window,
            tolerance=tolerance,
            bootstrap_seconds=seconds,
        ),
    )
    return ScalingFit(record)


def _program(x, loss, valid, seeds, key, tolerance, a, step, *, estimator, window, num_resamples):
    """Per-scale optima and their draws, then the weighted fit of every draw: one program."""
    point, curv, d = draws(
        x,
        loss,
        valid,
        seeds,
        key,
        tolerance,
        estimator=estimator,
        window=window,
        num_resamples=num_resamples,
    )
    var = jnp.var(d, 0)
    # The weights' floor keeps a scale with (nearly) no spread from owning the fit; the
    # chi-square compares the scatter with the spread itself.
    w = 1.0 / jnp.maximum(var, (step / 10) ** 2)
    beta = _wls_jax(a, w, point)
    resid = point - a @ beta
    dof = jnp.maximum(a.shape[0] - a.shape[1], 1)
    chi2 = jnp.sum(resid**2 / jnp.maximum(var, (step / 100) ** 2)) / dof
    beta_draws = _wls_jax(a, w, d)
    # Scatter beyond seed noise widens the draws around the point estimate (Birge ratio).
    widen = jnp.sqrt(jnp.maximum(chi2, 1.0))
    beta_draws = beta + widen * (beta_draws - jnp.mean(beta_draws, 0))
    return point, curv, d, w, beta, beta_draws, chi2


_PROGRAM = jax.jit(_program, static_argnames=("estimator", "window", "num_resamples"))
