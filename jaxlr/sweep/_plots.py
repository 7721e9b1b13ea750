"""Sweep plots, drawn on ``matplotlib.figure.Figure`` (Agg canvas, no pyplot, no display)."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def _figure(title: str):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6.4, 4.2), layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    ax.set_title(title)
    ax.grid(True, which="both", alpha=0.3)
    return fig, ax


def _groups(result, by):
    if by is None:
        return {"all": np.arange(len(result))}
    out: dict = {}
    for i in range(len(result)):
        out.setdefault(result.label(by, i), []).append(i)
    return {g: np.asarray(v) for g, v in out.items()}


def _colors(n):
    from matplotlib import colormaps

    cmap = colormaps["tab10" if n <= 10 else "viridis"]
    return [cmap(i if n <= 10 else i / max(n - 1, 1)) for i in range(n)]


def final_vs(result, *, metric, x, by):
    """Final ``metric`` against hyperparameter ``x`` on a log axis; diverged members as crosses."""
    fig, ax = _figure(f"final {metric} vs {x}")
    xs = np.asarray(result.hyperparameters[x], float)
    ys = np.asarray(result.final(metric), float)
    groups = _groups(result, by)
    for color, (g, idx) in zip(_colors(len(groups)), groups.items(), strict=True):
        # Several members may share x (another axis): plot the best one at each x.
        ux = np.unique(xs[idx])
        best = [
            np.nanmin(
                np.where(result.diverged[idx][xs[idx] == u], np.nan, ys[idx][xs[idx] == u]),
                initial=np.inf,
            )
            for u in ux
        ]
        best = np.where(np.isfinite(best), best, np.nan)
        ax.plot(ux, best, "o-", color=color, label=str(g) if by else None)
        bad = idx[result.diverged[idx]]
        if bad.size:
            top = np.nanmax(np.where(np.isfinite(ys), ys, np.nan)) if np.isfinite(ys).any() else 1
            ax.plot(xs[bad], np.full(bad.size, top), "x", color=color)
    ax.set_xscale("log")
    ax.set_xlabel(x)
    ax.set_ylabel(f"final {metric} (best over other axes; x = diverged)")
    if by:
        ax.legend(title=by, fontsize="small")
    return fig


def curves(result, *, metric, by, log_y):
    """``metric`` against the step for every member, one colour per group of ``by``."""
    fig, ax = _figure(f"{metric} curves")
    m = np.asarray(result.metric(metric), float)
    groups = _groups(result, by)
    for color, (g, idx) in zip(_colors(len(groups)), groups.items(), strict=True):
        for j, i in enumerate(idx):
            ax.plot(
                np.arange(m.shape[1]),
                m[i],
                color=color,
                alpha=0.5,
                lw=0.8,
                label=str(g) if by and j == 0 else None,
            )
    finite = m[np.isfinite(m)]
    # LR curves start at 0 under warmup and may end at 0: zeros are masked, not a linear axis.
    if log_y and np.all(finite >= 0) and np.any(finite > 0):
        ax.set_yscale("log", nonpositive="mask")
    ax.set_xlabel("step")
    ax.set_ylabel(metric)
    if by:
        ax.legend(title=by, fontsize="small")
    return fig


def sharpness(result, *, sharpness, lr, by):
    r"""``eta * lambda_max`` against the step, with the gradient-descent stability limit 2."""
    fig, ax = _figure(r"stability: $\eta\,\lambda_{max}$")
    lam = np.asarray(result.metric(sharpness), float)
    eta = np.asarray(result.metric(lr), float)
    # lambda_max may be recorded every n steps: sample the LR at the same steps.
    every = max(eta.shape[1] // lam.shape[1], 1)
    prod = lam * eta[:, ::every][:, : lam.shape[1]]
    steps = np.arange(lam.shape[1]) * every
    groups = _groups(result, by)
    for color, (g, idx) in zip(_colors(len(groups)), groups.items(), strict=True):
        for j, i in enumerate(idx):
            ax.plot(
                steps,
                prod[i],
                color=color,
                alpha=0.5,
                lw=0.8,
                label=str(g) if by and j == 0 else None,
            )
    ax.axhline(2.0, color="k", ls="--", lw=1, label="GD limit 2")
    finite = prod[np.isfinite(prod) & (prod > 0)]
    if finite.size:
        ax.set_yscale("log")
    ax.set_xlabel("step")
    ax.set_ylabel(r"$\eta\,\lambda_{max}$")
    ax.legend(title=by, fontsize="small")
    return fig


def save_all(result, out_dir: Path, *, by, x, loss, lr, sharpness: str) -> list[Path]:
    """Writes every plot whose metrics exist; returns the paths."""
    out_dir.mkdir(parents=True, exist_ok=True)
    have = result.flat_metrics
    figs = {}
    if loss in have and x in result.hyperparameters:
        figs["final_loss_vs_peak_lr.png"] = final_vs(result, metric=loss, x=x, by=by)
    if loss in have and have[loss].ndim > 1:
        figs["loss_curves.png"] = curves(result, metric=loss, by=by, log_y=True)
    if lr in have and have[lr].ndim > 1:
        figs["lr_curves.png"] = curves(result, metric=lr, by=by, log_y=True)
    if sharpness in have and lr in have and have[sharpness].ndim > 1:
        figs["sharpness_times_lr.png"] = globals()["sharpness"](
            result, sharpness=sharpness, lr=lr, by=by
        )
    paths = []
    for name, fig in figs.items():
        fig.savefig(out_dir / name, dpi=110)
        paths.append(out_dir / name)
    return paths
