"""Schedule-aware ranking: each member's predicted final metric under its own LR schedule.

Ranking members by their metric *so far* favours schedules that make early progress (a high
peak LR behind a long warmup looks bad early and wins late: the short-horizon bias). Here a
loss-curve law of :mod:`jaxlr.auto` is fitted to each member's curve so far, in one compiled,
member-vmapped call, and evaluated at the search's last step with the member's LR sequence over
the whole horizon. ``sweep`` imports the laws from ``auto``; ``auto`` never imports ``sweep``.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxlr._src.validate import Checker
from jaxlr.auto._laws import _power_term
from jaxlr.sweep._configs import size, unwrap

RANKS = ("value", "predicted")
# Fixed shapes (points per curve; members padded to the search's K): one compiled fit serves
# every rung of a search.
MAX_POINTS = 64
ALPHAS = np.linspace(0.02, 2.0, 100)  # the exponents tried (the laws' fits find 0.2 to 1.2)


def planned_lrs(c: Checker, lr: Callable[[Any, Any], Any], configs: Any, total: int) -> np.ndarray:
    """``[K, total]`` float64: ``lr(config, step)`` (a search's ``planned_lr``) of every member
    at steps ``0..total-1``."""
    steps = jnp.arange(total)
    # A new program per call: a cache keyed on the function would keep it, and all it closes
    # over, alive for the process (and refuse an unhashable callable).
    plan = jax.jit(jax.vmap(lambda cf: jax.vmap(lambda t: lr(cf, t))(steps)))
    try:
        out = plan(unwrap(configs))
    except Exception as e:  # noqa: BLE001 - re-raised with the argument named
        c.fail(
            f"planned_lr must be a callable (config, step) -> scalar LR, calling it failed: {e!r}"
        )
    out = np.asarray(out, np.float64)
    k = size(configs)
    if out.shape != (k, total):
        c.fail(
            f"planned_lr(config, step) must return a scalar LR, got shape {out.shape[2:]} per step"
        )
    bad = ~np.isfinite(out) | (out < 0)
    if bad.any():
        i, t = np.argwhere(bad)[0]
        c.fail(
            f"planned_lr(config, step) must be finite and >= 0, got {out[i, t]!r} for member "
            f"{i} at step {t}"
        )
    return out


def check_rank(
    c: Checker, rank: str, planned_lr: Any, mode: str, configs: Any, total: int
) -> np.ndarray | None:
    """Checks a search's ``rank`` and ``planned_lr`` arguments; with ``rank="predicted"``,
    returns :func:`planned_lrs` over ``total`` steps (``None`` otherwise)."""
    c.choice("rank", rank, RANKS)
    if rank == "value":
        if planned_lr is not None:
            c.fail(f"planned_lr= is used by rank='predicted' only, got rank={rank!r}")
        return None
    if mode != "min":
        c.fail(
            "rank='predicted' fits a loss-curve law (a decreasing, positive metric) and "
            f"needs mode='min', got mode={mode!r}"
        )
    if not callable(planned_lr):
        c.fail(
            f"rank='predicted' needs planned_lr=, a callable (config, step) -> LR, got "
            f"planned_lr={planned_lr!r}"
        )
    return planned_lrs(c, planned_lr, configs, total)


def fresh_steps(upto: int, eval_every: int) -> np.ndarray:
    """1-based steps up to ``upto`` whose metric is fresh: all, or the evaluation steps
    (the first and every ``eval_every``-th) when an ``eval_fn`` runs every ``eval_every``."""
    s = np.arange(1, upto + 1)
    return s if eval_every == 1 else s[(s == 1) | (s % eval_every == 0)]


class Prediction(NamedTuple):
    """Each member's predicted final metric (see :func:`predict_final`)."""

    value: np.ndarray  # [k] the law at the final step
    ok: np.ndarray  # [k] bool: the fit is usable (False: rank by the value so far)
    params: np.ndarray  # [k, 3] the fitted L0, A, alpha (A for the LR in units of its peak)
    rms: np.ndarray  # [k] root mean square of the fit's relative residuals


def predict_final(
    values: np.ndarray,
    steps: np.ndarray,
    lrs: np.ndarray,
    *,
    final: int,
    rows: int | None = None,
) -> Prediction:
    r"""Each member's loss-curve law fitted to ``values`` and evaluated at step ``final``.

    The law is the power part of the momentum law (:func:`jaxlr.auto.momentum_law` with
    :math:`C = 0`): the loss as a function of the forward area, the LR summed so far,

    .. math:: L(s) = L_0 + A\,S_1(s)^{-\alpha}, \qquad S_1(s) = \sum_{i \le s} \eta_i,

    with the LR in units of the member's peak. It is fitted to the second half of the points
    so far (the first half is the transient from initialization, which the law does not
    describe) by least squares on relative residuals,
    :math:`\min \sum_i (L(s_i) - y_i)^2 / y_i^2` over :math:`L_0, A \ge 0`, exactly
    (closed form) for each :math:`\alpha` of ``ALPHAS``, the best :math:`\alpha` kept: no
    random starts, no iterations, one small compiled call for every member and every rung
    (fixed shapes). The prediction is the law at :math:`S_1(\text{final})` of the member's
    whole LR sequence: a long warmup or a high peak that has not yet spent its LR area is
    credited with it. The annealing term :math:`C\,S_2` is left out: a prefix rarely
    identifies it (fitted to the start of a decay, its linear extrapolation ran negative).

    Args:
        values: ``[k, n]`` each member's metric after the 1-based ``steps`` ``[n]``.
        steps: ``[n]`` increasing 1-based steps.
        lrs: ``[k, T]`` each member's LR at steps ``1..T`` (``T >= final``, past and planned).
        final: the 1-based step to predict.
        rows: pad the members to this many (one compiled shape for every rung of a search).

    Returns:
        A :class:`Prediction`; ``ok`` is False where the fit failed: fewer than 4 positive
        finite points in the second half (the law has 3 parameters), an LR that is 0
        throughout, or a non-finite or non-positive prediction.
    """
    k, n = values.shape
    pick = np.unique(np.round(np.linspace(0, n - 1, min(n, MAX_POINTS))).astype(int))
    vals = np.full((max(k, rows or 0), MAX_POINTS), np.nan)
    st = np.full(MAX_POINTS, final, np.int64)
    vals[:k, : pick.size] = values[:, pick]
    st[: pick.size] = steps[pick]
    peak = lrs.max(axis=1, keepdims=True)
    s1 = np.ones((vals.shape[0], lrs.shape[1]))
    s1[:k] = np.cumsum(lrs / np.where(peak > 0, peak, 1.0), axis=1)  # in units of the peak LR
    with jax.enable_x64(True):
        out = _fit_predict(jnp.asarray(vals), jnp.asarray(s1[:, np.r_[st, final] - 1]))
        pred, ok, params, rms = (np.asarray(a)[:k] for a in out)
    return Prediction(pred, ok & (peak[:, 0] > 0), params, rms)


def fit_member(y: jax.Array, area: jax.Array) -> tuple[jax.Array, ...]:
    """One member's fit (traceable, in the dtype of ``y``): ``y [n]`` the metric at forward
    areas ``area[:-1]`` (NaN: no point), ``area[-1]`` the area to predict at. Returns the
    prediction, whether it is usable, ``(L0, A, alpha)`` and the RMS of the relative residuals
    (see :func:`predict_final`)."""
    alphas = jnp.asarray(ALPHAS, y.dtype)
    finite = jnp.isfinite(y)
    n = jnp.sum(finite)
    # the last half of the finite points (by their order among the finite ones: a curve may
    # have gaps, e.g. a metric evaluated every few entries)
    mask = finite & (y > 0) & (jnp.cumsum(finite) > n // 2)
    y = jnp.where(mask, y, 1.0)
    w = jnp.where(mask, 1.0 / (y * y), 0.0)  # relative residuals
    count = jnp.sum(mask)

    def at(alpha):
        x = jnp.where(mask, _power_term(area[:-1], 1.0, alpha), 0.0)  # area 0: x = inf
        sw, sx, sxx = jnp.sum(w), jnp.sum(w * x), jnp.sum(w * x * x)
        sy, sxy = jnp.sum(w * y), jnp.sum(w * x * y)
        det = sw * sxx - sx * sx
        a = (sw * sxy - sx * sy) / jnp.where(det > 0, det, 1.0)
        free = jnp.stack([(sy - a * sx) / sw, a])
        # the least-squares optimum over L0, A >= 0: free, or on an edge (L0 = 0 or A = 0)
        zero = jnp.zeros_like(sy)
        cands = jnp.stack([free, jnp.stack([zero, sxy / sxx]), jnp.stack([sy / sw, zero])])
        feasible = jnp.stack([(det > 0) & jnp.all(free >= 0), sxx > 0, sw > 0])
        res = cands[:, :1] + cands[:, 1:] * x[None] - y[None]
        obj = jnp.where(feasible, jnp.sum(w * res * res, axis=1), jnp.inf)
        i = jnp.argmin(obj)
        return cands[i], obj[i]

    coef, obj = jax.vmap(at)(alphas)
    j = jnp.argmin(obj)
    (l0, a), alpha = coef[j], alphas[j]
    rms = jnp.sqrt(obj[j] / jnp.maximum(count, 1))
    pred = l0 + _power_term(area[-1], a, alpha)
    ok = (count >= 4) & jnp.isfinite(obj[j]) & jnp.isfinite(pred) & (pred > 0)
    return pred, ok, jnp.stack([l0, a, alpha]), rms


# A small program whose compile costs more than its run: LLVM's optimizations are skipped.
@partial(jax.jit, compiler_options={"xla_backend_optimization_level": 0})
def _fit_predict(vals, s1):
    """:func:`fit_member` of every member (``vals [k, n]``, ``s1 [k, n + 1]``)."""
    return jax.vmap(fit_member)(vals, s1)
