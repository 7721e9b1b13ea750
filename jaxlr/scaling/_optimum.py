"""Per-scale optima of a swept variable (the LR, or the batch size) with bootstrap draws.

One scale's sweep is a loss tensor ``[G, H, K]``: ``G`` grid points of the optimized variable
``x`` (log LR), ``H`` points of a variable minimized out (the LR when the batch size is the
target; ``H = 1`` otherwise) and ``K`` seeds. Scales of different sizes are padded to one shape
with a validity mask, so every scale and every bootstrap draw is one vmapped, jitted program.
"""

from __future__ import annotations

from functools import partial
from typing import NamedTuple

import jax
import jax.numpy as jnp

ESTIMATORS = ("quadratic", "near_optimal")
_BIG = 1e30  # a loss that never wins a min (invalid grid points)


class Optimum(NamedTuple):
    """One scale's optimum of the swept variable (``x`` is the LR or the batch size)."""

    value: float  # the estimate x*
    low: float  # bootstrap interval (2.5%, 97.5%) of x*
    high: float
    log_se: float  # bootstrap standard deviation of log x*
    curvature: float  # d^2 loss / d(log x)^2 at x* (quadratic estimator; NaN otherwise)
    loss: float  # the best grid point's loss (mean over seeds)
    grid_best: float  # the grid point with the lowest mean loss
    near_low: float  # the near-optimal set (within ``tolerance`` of the best): its range
    near_high: float


def _solve3(m, b):
    """``m^{-1} b`` for a 3x3 ``m`` by Cramer's rule (cheap to compile under nested vmaps)."""

    def det(a):
        return (
            a[0, 0] * (a[1, 1] * a[2, 2] - a[1, 2] * a[2, 1])
            - a[0, 1] * (a[1, 0] * a[2, 2] - a[1, 2] * a[2, 0])
            + a[0, 2] * (a[1, 0] * a[2, 1] - a[1, 1] * a[2, 0])
        )

    d = det(m)
    d = jnp.where(d == 0, 1e-30, d)
    return jnp.stack([det(m.at[:, i].set(b)) for i in range(3)]) / d


def _quadratic(x, y, w):
    """Weighted least squares of ``y ~ c0 + c1 d + c2 d^2`` (``d = x - x0``); returns the
    vertex (NaN when the parabola opens down or the window is degenerate) and ``2 c2``."""
    x0 = jnp.sum(w * x) / jnp.maximum(jnp.sum(w), 1e-30)
    d = x - x0
    a = jnp.stack([jnp.ones_like(d), d, d * d], -1)
    aw = a * w[:, None]
    c = _solve3(aw.T @ a + 1e-9 * jnp.eye(3), aw.T @ y)
    enough = jnp.sum(w > 0) >= 3
    ok = enough & (c[2] > 0)
    vertex = jnp.where(ok, x0 - c[1] / (2 * jnp.where(ok, c[2], 1.0)), jnp.nan)
    return vertex, jnp.where(enough, 2 * c[2], jnp.nan)


def _estimate(x, curve, valid, *, estimator, window, tolerance, weights):
    """x* of one mean-loss curve ``[G]`` over grid ``x`` ``[G]`` (log scale)."""
    masked = jnp.where(valid, curve, _BIG)
    j = jnp.argmin(masked)
    best = masked[j]
    idx = jnp.arange(x.shape[0])
    if estimator == "quadratic":
        win = valid & (jnp.abs(idx - j) <= window)
        w = win * weights
        # Losses relative to the best one keep float32 accurate for nearly flat curves.
        vertex, curv = _quadratic(x, jnp.where(win, curve - best, 0.0), w)
        lo = jnp.min(jnp.where(win, x, jnp.inf))
        hi = jnp.max(jnp.where(win, x, -jnp.inf))
        # A parabola that opens down (or a vertex past the window) falls back to the grid point.
        est = jnp.where(jnp.isfinite(vertex), jnp.clip(vertex, lo, hi), x[j])
        return est, curv
    near = valid & (curve <= best + tolerance * jnp.abs(best))
    w = near * weights
    return jnp.sum(w * x) / jnp.maximum(jnp.sum(w), 1e-30), jnp.nan


def _profile(mean, valid):
    """``[G, H]`` mean losses -> minimized over ``H``: ``[G]``, and which ``G`` trained."""
    return jnp.min(jnp.where(valid, mean, _BIG), -1), valid.any(-1)


def _seed_mean(loss, n):
    """The mean over the first ``n`` of ``K`` seeds: ``[..., K] -> [...]``."""
    real = jnp.arange(loss.shape[-1]) < n
    return jnp.sum(jnp.where(real, loss, 0.0), -1) / n


@partial(jax.jit, static_argnames=("estimator", "window", "num_resamples"))
def draws(
    x, loss, valid, seeds, key, tolerance, *, estimator, window, num_resamples
) -> tuple[jax.Array, jax.Array, jax.Array]:
    """The estimate and ``num_resamples`` bootstrap draws of log x* for every scale.

    Args:
        x: ``[S, G]`` log grid (padded entries anything finite).
        loss: ``[S, G, H, K]`` losses (invalid entries anything finite).
        valid: ``[S, G, H]`` grid points that trained (every seed finite, none diverged).
        seeds: ``[S]`` number of real seeds per scale (the first ``seeds[s]`` of ``K``).
        key: PRNG key.
        tolerance: the near-optimal set's relative loss tolerance.

    Returns:
        ``(estimate [S], curvature [S], draws [num_resamples, S])``. With several seeds, a draw
        adds to every grid point's mean the mean of ``n`` seed residuals drawn with replacement
        from the scale's pool (every trained grid point's deviations from its own mean, scaled
        by ``sqrt(n / (n - 1))``): pooling keeps the noise estimate stable with 3 seeds, where
        resampling each point's own 3 seeds would not. With one seed, a draw reweights the grid
        points instead (Bayesian bootstrap, Dirichlet(1) weights).
    """
    s_, g_, h_, k_ = loss.shape
    est = partial(_estimate, estimator=estimator, window=window, tolerance=tolerance)

    mean = jax.vmap(_seed_mean)(loss, seeds)  # [S, G, H]

    def one_scale(xs, m, vs):
        curve, ok = _profile(m, vs)
        return est(xs, curve, ok, weights=jnp.ones(g_))

    point, curv = jax.vmap(one_scale)(x, mean, valid)
    inflate = jnp.sqrt(seeds / jnp.maximum(seeds - 1, 1))[:, None, None, None]
    real = valid[..., None] & (jnp.arange(k_) < seeds[:, None, None, None])
    resid = jnp.where(real, inflate * (loss - mean[..., None]), 0.0).reshape(s_, -1)
    order = jnp.argsort(~real.reshape(s_, -1), axis=-1, stable=True)  # real residuals first
    pool = jnp.take_along_axis(resid, order, axis=-1)
    count = jnp.maximum(real.reshape(s_, -1).sum(-1), 1)[:, None, None, None]

    def one_draw(k):
        ka, kb = jax.random.split(k)
        u = jax.random.uniform(ka, (s_, g_, h_, k_))
        pick = jnp.floor(u * count).astype(jnp.int32).reshape(s_, -1)
        noise = jnp.take_along_axis(pool, pick, axis=-1).reshape(s_, g_, h_, k_)
        resampled = mean + jax.vmap(_seed_mean)(noise, seeds)
        # Dirichlet(1) weights, scaled to mean 1: normalized standard exponentials.
        e = jax.random.exponential(kb, (s_, g_))
        dirichlet = g_ * e / e.sum(-1, keepdims=True)

        def scale(xs, m, vs, n, w):
            curve, ok = _profile(m, vs)
            weights = jnp.where(n > 1, jnp.ones(g_), w)
            return est(xs, curve, ok, weights=weights)[0]

        return jax.vmap(scale)(x, resampled, valid, seeds, dirichlet)

    keys = jax.random.split(key, num_resamples)
    return point, curv, jax.vmap(one_draw)(keys)
