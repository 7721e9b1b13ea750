"""Plots of schedules and spectra (matplotlib, headless-safe).

Every function returns the matplotlib ``Figure`` it drew and, given ``path``, also writes it.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from typing import Any

import jax
import numpy as np

from jaxlr.schedules import Schedule, catalog

__all__ = ["gallery", "schedules", "spectral_density"]


def _pyplot():
    import matplotlib

    if not os.environ.get("DISPLAY") and matplotlib.get_backend().lower() not in ("agg", "pdf"):
        matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _as_named(schedules: Schedule | Sequence[Schedule] | Mapping[str, Schedule]):
    if isinstance(schedules, Schedule):
        return {schedules.name or type(schedules).__name__: schedules}
    if isinstance(schedules, Mapping):
        items = dict(schedules)
    else:
        items = {f"{i}: {s.name or type(s).__name__}": s for i, s in enumerate(schedules)}
    for label, s in items.items():
        if not isinstance(s, Schedule):
            raise ValueError(f"plot.schedules: {label!r} is not a jaxlr schedule, got {s!r}")
    if not items:
        raise ValueError("plot.schedules: schedules is empty")
    return items


def _save(fig, path):
    if path is not None:
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        fig.savefig(path, dpi=110, bbox_inches="tight")
    return fig


def schedules(
    schedules: Schedule | Sequence[Schedule] | Mapping[str, Schedule],
    *,
    total_steps: int = 1000,
    num_points: int = 1000,
    log: bool = False,
    ax: Any = None,
    title: str | None = None,
    path: str | None = None,
):
    """Draws one or several schedules on one axis, learning rate against step.

    Args:
        schedules: a schedule, a list of them, or a dict from label to schedule.
        total_steps: the last step drawn (``> 0``).
        num_points: samples between 0 and ``total_steps``.
        log: logarithmic LR axis.
        ax: an existing matplotlib axis to draw on (a new figure otherwise).
        title: the axis title.
        path: where to write the figure (PNG, SVG, PDF by extension), if given.

    Returns:
        The matplotlib figure.

    Examples:
        >>> import jaxlr
        >>> s = jaxlr.schedules.warmup_cosine(peak_value=1e-3, warmup_steps=100, total_steps=1000)
        >>> fig = jaxlr.plot.schedules({"warmup_cosine": s}, total_steps=1000)
        >>> [round(float(y), 6) for y in fig.axes[0].lines[0].get_ydata()[[0, 100, -1]]]
        [0.0, 0.001, 0.0]
    """
    items = _as_named(schedules)
    if not (isinstance(total_steps, (int, float)) and total_steps > 0):
        raise ValueError(
            f"plot.schedules: total_steps must be > 0, got total_steps={total_steps!r}"
        )
    plt = _pyplot()
    fig = ax.figure if ax is not None else plt.subplots(figsize=(7, 4))[0]
    ax = ax if ax is not None else fig.axes[0]
    steps = np.linspace(0, total_steps, int(num_points) + 1)
    for label, s in items.items():
        ax.plot(steps, np.asarray(s(steps)), label=label)
    ax.set_xlabel("step")
    ax.set_ylabel("learning rate")
    if log:
        ax.set_yscale("log")
    if title:
        ax.set_title(title)
    if len(items) > 1:
        ax.legend(fontsize=7)
    return _save(fig, path)


def gallery(path: str | None = None, *, total_steps: int = 1000, columns: int = 6):
    """Draws every entry of :func:`jaxlr.schedules.catalog`, one small panel each.

    Args:
        path: where to write the PNG, if given.
        total_steps: steps drawn per panel.
        columns: panels per row.

    Returns:
        The matplotlib figure (one axis per catalog entry).

    Examples:
        >>> import jaxlr
        >>> fig = jaxlr.plot.gallery()
        >>> len(fig.axes) == len(jaxlr.schedules.catalog())
        True
    """
    entries = catalog()
    plt = _pyplot()
    rows = math.ceil(len(entries) / columns)
    fig, axes = plt.subplots(rows, columns, figsize=(2.6 * columns, 1.9 * rows), squeeze=False)
    steps = np.linspace(0, total_steps, 501)
    # every panel's curve from one compiled call: op-by-op evaluation of ~40 schedules
    # compiles hundreds of small kernels and takes several times longer
    curves = jax.jit(lambda t: [s(t) for s in entries.values()])(steps)
    for ax, name, curve in zip(axes.ravel(), entries, curves):
        ax.plot(steps, np.asarray(curve), lw=1.2)
        ax.set_title(name, fontsize=8)
        ax.tick_params(labelsize=6)
        ax.yaxis.get_offset_text().set_fontsize(6)
    for ax in axes.ravel()[len(entries) :]:
        fig.delaxes(ax)
    fig.suptitle(f"jaxlr schedule catalog ({len(entries)} entries), steps 0..{total_steps}")
    fig.tight_layout()
    return _save(fig, path)


def spectral_density(
    grid: Any, density: Any, *, log: bool = True, ax: Any = None, path: str | None = None
):
    """Draws a Hessian spectral density (e.g. from ``jaxlr.sharpness.spectral_density``).

    Args:
        grid: eigenvalue grid, shape ``(n,)``.
        density: density values on ``grid``, shape ``(n,)`` (or ``(k, n)`` for several runs).
        log: logarithmic density axis (the bulk near zero dwarfs the outliers otherwise).
        ax: an existing axis to draw on.
        path: where to write the figure, if given.

    Returns:
        The matplotlib figure.

    Examples:
        >>> import numpy as np, jaxlr
        >>> g = np.linspace(-1, 3, 50)
        >>> fig = jaxlr.plot.spectral_density(g, np.exp(-g**2))
        >>> len(fig.axes[0].lines)
        1
    """
    grid = np.asarray(grid)
    dens = np.atleast_2d(np.asarray(density))
    if grid.ndim != 1 or dens.shape[-1] != grid.shape[0]:
        raise ValueError(
            f"plot.spectral_density: density must end with len(grid)={grid.shape}, "
            f"got density shape {dens.shape}"
        )
    plt = _pyplot()
    fig = ax.figure if ax is not None else plt.subplots(figsize=(6, 3.5))[0]
    ax = ax if ax is not None else fig.axes[0]
    for d in dens:
        ax.plot(grid, np.maximum(d, 1e-12) if log else d)
    if log:
        ax.set_yscale("log")
    ax.set_xlabel("eigenvalue")
    ax.set_ylabel("density")
    return _save(fig, path)
