"""Schedule-aware ranking: each member's predicted final metric under its own LR schedule.

Ranking members by their metric *so far* favours schedules that make early progress (a high
peak LR behind a long warmup looks bad early and wins late: the short-horizon bias). Here a
loss-curve law of :mod:`jaxlr.auto` is fitted to each member's curve so far, in one compiled,
member-vmapped call, and evaluated at the search's last step with the member's LR sequence over
the whole horizon. ``sweep`` imports the laws from ``auto``; ``auto`` never imports ``sweep``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxlr._src.validate import Checker
from jaxlr.auto._laws import _levenberg_marquardt, _power_term, _safe_log
from jaxlr.auto._util import huber
from jaxlr.sweep._configs import unwrap

RANKS = ("value", "predicted")
# Fixed shapes, so one compiled fit serves every rung and every population size.
MAX_POINTS = 64
NUM_STARTS = 8
NUM_ITERS = 60
HUBER_DELTA = 1e-2
MAX_RMS = 0.05  # log residuals: the law describes the curve within ~5%


def planned_lrs(c: Checker, lr: Callable[[Any, Any], Any], configs: Any, total: int) -> np.ndarray:
    """``[K, total]`` float64: ``lr(config, step)`` of every member at steps ``0..total-1``."""
    steps = jnp.arange(total)
    try:
        out = jax.jit(jax.vmap(lambda cf: jax.vmap(lambda t: lr(cf, t))(steps)))(unwrap(configs))
    except Exception as e:  # noqa: BLE001 - re-raised with the argument named
        c.fail(f"lr must be a callable (config, step) -> scalar LR, calling it failed: {e!r}")
    out = np.asarray(out, np.float64)
    k = jax.tree.leaves(configs)[0].shape[0]
    if out.shape != (k, total):
        c.fail(f"lr(config, step) must return a scalar LR, got shape {out.shape[2:]} per step")
    bad = ~np.isfinite(out) | (out < 0)
    if bad.any():
        i, t = np.argwhere(bad)[0]
        c.fail(
            f"lr(config, step) must be finite and >= 0, got {out[i, t]!r} for member {i} at "
            f"step {t}"
        )
    return out


def fresh_steps(upto: int, eval_every: int) -> np.ndarray:
    """1-based steps up to ``upto`` whose metric is fresh: all, or the evaluation steps
    (the first and every ``eval_every``-th) when an ``eval_fn`` runs every ``eval_every``."""
    s = np.arange(1, upto + 1)
    return s if eval_every == 1 else s[(s == 1) | (s % eval_every == 0)]


class Prediction(NamedTuple):
    """Each member's predicted final metric (see :func:`predict_final`)."""

    value: np.ndarray  # [k] the law at the final step
    ok: np.ndarray  # [k] bool: the fit is usable (False: rank by the value so far)
    params: np.ndarray  # [k, 3] the fitted L0, A, alpha (A for the LR in units of the peak)
    rms: np.ndarray  # [k] root mean square of the fit's log residuals


def predict_final(
    values: np.ndarray,
    steps: np.ndarray,
    lrs: np.ndarray,
    *,
    final: int,
    key: jax.Array,
    rows: int | None = None,
) -> Prediction:
    r"""Each member's loss-curve law fitted to ``values`` and evaluated at step ``final``.

    The law is the power part of the momentum law (:func:`jaxlr.auto.momentum_law` with
    :math:`C = 0`): the loss as a function of the forward area, the LR summed so far,

    .. math:: L(s) = L_0 + A\,S_1(s)^{-\alpha}, \qquad S_1(s) = \sum_{i \le s} \eta_i,

    fitted to the second half of the points so far (the first half is the transient from
    initialization, which the law does not describe) by the Huber-robust Levenberg-Marquardt of
    :func:`jaxlr.auto.fit_law` on log residuals, from ``NUM_STARTS`` data-scaled starts, and
    evaluated at :math:`S_1(\text{final})` of the member's whole LR sequence: a long warmup or
    a high peak that has not yet spent its LR area is credited with it. The annealing term
    :math:`C\,S_2` is left out: a prefix rarely identifies it, and fitted to the start of a
    decay its linear extrapolation ran negative. One compiled call (fixed shapes) serves every
    member and every rung.

    Args:
        values: ``[k, n]`` each member's metric after the 1-based ``steps`` ``[n]``.
        steps: ``[n]`` increasing 1-based steps.
        lrs: ``[k, T]`` each member's LR at steps ``1..T`` (``T >= final``, past and planned).
        final: the 1-based step to predict.
        key: PRNG key of the random starts (the same for every member).
        rows: pad the members to this many (one compiled shape for every rung of a search).

    Returns:
        A :class:`Prediction`; ``ok`` is False where the fit failed: fewer than 4 positive
        finite points in the second half, a non-finite objective or prediction, a
        non-positive prediction, or log residuals whose root mean square exceeds ``MAX_RMS``
        (the law does not describe the curve, e.g. a loss rising at a too-high LR).
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
        out = _fit_predict(jnp.asarray(vals), jnp.asarray(s1[:, np.r_[st, final] - 1]), key)
        pred, ok, theta, rms = (np.asarray(a)[:k] for a in out)
    return Prediction(pred, ok & (peak[:, 0] > 0), np.exp(theta), rms)


@jax.jit
def _fit_predict(vals, s1, key):
    """Per member: ``vals [n]`` at forward areas ``s1 [n + 1]`` (the last: the step to predict).
    Returns the prediction, whether the fit is usable, the log parameters and the RMS of the
    log residuals."""
    u = jax.random.uniform(key, (NUM_STARTS, 3), jnp.float64)

    def law(theta, area):
        l0, a, alpha = jnp.exp(theta)
        return l0 + _power_term(area, a, alpha)

    def member(y, area):
        n = jnp.sum(jnp.isfinite(y))
        mask = jnp.isfinite(y) & (y > 0) & (jnp.arange(y.shape[0]) >= n // 2)
        log_y = jnp.log(jnp.where(mask, y, 1.0))
        lo = jnp.min(jnp.where(mask, y, jnp.inf))
        first = jnp.argmax(mask)  # the first point used
        count = jnp.sum(mask)

        def residuals(theta):
            pred = law(theta, area[:-1])
            return jnp.where(mask, _safe_log(pred, log_y - 5.0) - log_y, 0.0)

        def objective(theta):
            r = residuals(theta)
            value = jnp.sum(huber(r, HUBER_DELTA)) / jnp.maximum(count, 1)
            return jnp.where(jnp.all(jnp.isfinite(r)), value, jnp.inf)

        def start(v):
            # data-scaled starts, as fit_law's
            l0 = lo * (0.3 + 0.67 * v[0])
            alpha = 0.2 + v[1]
            scale = jnp.exp(jnp.log(0.3) + jnp.log(10.0) * v[2])
            a = jnp.maximum(y[first] - l0, 1e-6) * area[first] ** alpha * scale
            return jnp.log(jnp.stack([l0, a, alpha]))

        run = lambda t: _levenberg_marquardt(residuals, objective, t, HUBER_DELTA, NUM_ITERS)
        theta, obj = jax.vmap(run)(jax.vmap(start)(u))
        best = jnp.argmin(jnp.where(jnp.isfinite(obj), obj, jnp.inf))
        r = residuals(theta[best])
        rms = jnp.sqrt(jnp.sum(r * r) / jnp.maximum(count, 1))
        pred = law(theta[best], area[-1])
        ok = (count >= 4) & jnp.isfinite(obj[best]) & jnp.isfinite(pred) & (pred > 0)
        return pred, ok & (rms <= MAX_RMS), theta[best], rms

    return jax.vmap(member)(vals, s1)
