"""Schedule refinement from an earlier run's gradient norms (Defazio et al. 2023)."""

from __future__ import annotations

import numpy as np
from jax.typing import ArrayLike

from jaxlr._src.validate import Checker
from jaxlr.auto._util import as_numpy_curve
from jaxlr.schedules import Schedule, piecewise_interpolate


def _median_filter(x: np.ndarray, width: int) -> np.ndarray:
    """Centred running median of odd ``width``, the ends padded with the nearest value."""
    half = width // 2
    padded = np.pad(x, half, mode="edge")
    windows = np.lib.stride_tricks.sliding_window_view(padded, width)
    return np.median(windows, axis=-1)


def refine_schedule(
    grad_norms: ArrayLike,
    *,
    peak_value: float,
    smoothing: float = 0.05,
    kind: str = "gd",
) -> Schedule:
    r"""A schedule refined from the gradient norms of an earlier run of the same length.

    With :math:`\hat g_t` the gradient norms of steps :math:`t = 1..T` smoothed by a running
    median over :math:`\lceil\tau T\rceil` steps (``smoothing`` :math:`= \tau`), weights
    :math:`w_t = \hat g_t^{-2}` (SGD, ``kind="gd"``) or :math:`w_t = \hat g_t^{-1}` (Adam-family
    methods, ``kind="adam"``, with :math:`\ell_1` norms of the gradients), the refined step size
    is

    .. math::
        \eta_t \propto w_t \sum_{p=t+1}^{T} w_p, \qquad \max_t \eta_t = \texttt{peak\_value}

    so constant norms give linear decay :math:`\eta_t = P (T - t)/(T - 1)` to 0 at the last
    step, growing norms late in training give a faster final decay, and small early norms a
    warmup. Step ``s = t - 1`` of the returned schedule is :math:`\eta_t`.

    Args:
        grad_norms: ``[T]`` the gradient norm of every step of the earlier run (concrete;
            :math:`\ell_2` for SGD, :math:`\ell_1` for Adam).
        peak_value: the largest LR of the refined schedule (the tuned LR of the earlier run).
        smoothing: :math:`\tau` in [0, 1], the median filter's width as a fraction of ``T``
            (0: no smoothing).
        kind: ``"gd"`` (SGD and momentum, :math:`w = \hat g^{-2}`) or ``"adam"``
            (:math:`w = \hat g^{-1}`).

    Returns:
        A ``jaxlr.schedules.piecewise_interpolate`` schedule through :math:`(s, \eta_{s+1})`,
        :math:`s = 0..T-1` (0 from the last step on).

    Raises:
        ValueError: ``grad_norms`` not 1-D, shorter than 2, non-finite or not positive;
            ``peak_value`` not > 0; ``smoothing`` outside [0, 1]; unknown ``kind``.

    Examples:
        >>> import jaxlr
        >>> s = jaxlr.auto.refine_schedule([1.0] * 5, peak_value=0.4)  # constant norms
        >>> [round(float(s(t)), 3) for t in range(5)]  # linear decay
        [0.4, 0.3, 0.2, 0.1, 0.0]

    References:
        Defazio, Cutkosky, Mehta & Mishchenko, When, Why and How Much? Adaptive Learning Rate
        Scheduling by Refinement (Optimal Linear Decay Learning Rate Schedules and Further
        Refinements), arXiv:2310.07831, 2023.
    """
    c = Checker("refine_schedule")
    g = as_numpy_curve(c.fn, "grad_norms", grad_norms)
    if g.size < 2:
        c.fail(f"grad_norms must hold at least 2 steps, got {g.size}")
    c.positive("grad_norms", g)
    c.positive("peak_value", peak_value)
    c.between("smoothing", smoothing, 0.0, 1.0)
    c.choice("kind", kind, ("gd", "adam"))
    n = g.size
    width = max(1, int(np.ceil(float(smoothing) * n)))
    width += 1 - width % 2  # odd: a centred window
    smooth = _median_filter(g, width) if width > 1 else g
    w = smooth ** (-2.0 if kind == "gd" else -1.0)
    tail = np.concatenate([np.cumsum(w[::-1])[::-1][1:], [0.0]])  # sum_{p > t} w_p
    eta = w * tail
    eta = float(peak_value) * eta / eta.max()
    return piecewise_interpolate(boundaries=np.arange(n, dtype=np.float32), values=eta)
