"""AutoLRS made parallel: per stage, try k LRs at once by vmap, forecast, keep the best."""

from __future__ import annotations

import math
from collections.abc import Callable
from functools import partial
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import ArrayLike

from jaxlr._src.divergence import diverged_entries, healthy
from jaxlr._src.validate import Checker, renamed
from jaxlr.auto._util import huber, loss_step, scan_steps
from jaxlr.schedules import Schedule, piecewise_constant

# Decay rates b of a exp(b u) + c on time normalized to u in [0, 1] over the exploration window:
# from nearly linear (0.05) to a plateau reached within 1/50 of the window.
_B_GRID = -np.geomspace(1.0, 50.0, 48)


def _fit_one_b(u: jax.Array, y: jax.Array, b: jax.Array, delta: jax.Array):
    """Robust (Huber IRLS, 3 passes) least squares of ``y ~ a exp(b u) + c`` for a fixed ``b``."""
    x = jnp.exp(b * u)
    w = jnp.ones_like(y)
    for _ in range(3):
        sw, sx, sy = jnp.sum(w), jnp.sum(w * x), jnp.sum(w * y)
        sxx, sxy = jnp.sum(w * x * x), jnp.sum(w * x * y)
        det = sw * sxx - sx * sx
        ok = det > 1e-12 * sw * sxx
        a = jnp.where(ok, (sw * sxy - sx * sy) / jnp.where(ok, det, 1.0), 0.0)
        c = jnp.where(ok, (sy - a * sx) / sw, sy / sw)
        r = y - (a * x + c)
        ar = jnp.abs(r)
        w = jnp.where(ar <= delta, 1.0, delta / jnp.maximum(ar, 1e-30))
    return a, c, jnp.sum(huber(r, delta))


@jax.jit
def exp_forecast(losses: ArrayLike, horizon: ArrayLike) -> jax.Array:
    r"""Forecasts a loss series with :math:`L(t) = a e^{b t} + c`, robustly, at ``horizon``.

    For each decay rate ``b`` on a fixed log-spaced grid the model is linear in ``(a, c)``,
    solved in closed form by iteratively reweighted least squares with Huber weights (so a few
    spikes do not move it); the ``b`` with the smallest Huber loss wins. The Huber threshold is
    1.345 times the noise scale estimated from the first differences,
    :math:`\sigma = 1.4826\,\mathrm{median}|\Delta L| / \sqrt 2`. A series with a NaN or an
    infinity (a diverged run) forecasts ``+inf``. Works under ``jit`` and ``vmap``.

    Args:
        losses: the ``[n]`` observed losses at steps ``1..n`` (``n >= 3``).
        horizon: the step (1-based, may exceed ``n``) at which to forecast.

    Returns:
        The forecast loss, a scalar.

    Examples:
        >>> import jax.numpy as jnp
        >>> from jaxlr import auto
        >>> t = jnp.arange(1.0, 41.0)
        >>> y = 2.0 * jnp.exp(-0.1 * t) + 0.5
        >>> y = y.at[7].add(3.0)  # a spike
        >>> round(float(auto.exp_forecast(y, 200)), 3)
        0.5

    References:
        Jin et al., AutoLRS: Automatic Learning-Rate Schedule by Bayesian Optimization on the
        Fly, ICLR 2021 (the exponential forecasting model).
    """
    y = jnp.asarray(losses, dtype=float)
    n = y.shape[-1]
    finite = ~jnp.any(diverged_entries(y, None))
    y = jnp.where(jnp.isfinite(y), y, 0.0)
    u = jnp.arange(n, dtype=y.dtype) / (n - 1)
    h = (jnp.asarray(horizon, y.dtype) - 1.0) / (n - 1)
    sigma = 1.4826 * jnp.median(jnp.abs(jnp.diff(y))) / math.sqrt(2.0)
    delta = 1.345 * jnp.maximum(sigma, 1e-8 * (jnp.max(jnp.abs(y)) + 1e-30))
    bs = jnp.asarray(_B_GRID, y.dtype)
    fit = jax.vmap(lambda b: _fit_one_b(u, y, b, delta))
    _, _, score = fit(bs)
    # refine b by the vertex of a parabola through the best grid point and its neighbours
    i = jnp.clip(jnp.argmin(score), 1, bs.shape[0] - 2)
    f0, f1, f2 = score[i - 1], score[i], score[i + 1]
    curv = f0 - 2.0 * f1 + f2
    shift = jnp.where(curv > 0, 0.5 * (f0 - f2) / jnp.where(curv > 0, curv, 1.0), 0.0)
    step = jnp.log(bs[i + 1] / bs[i])
    cand = jnp.stack([bs[jnp.argmin(score)], bs[i] * jnp.exp(jnp.clip(shift, -1.0, 1.0) * step)])
    a, c, sc = fit(cand)
    j = jnp.argmin(sc)
    pred = a[j] * jnp.exp(cand[j] * h) + c[j]
    return jnp.where(finite & jnp.isfinite(pred), pred, jnp.inf)


def _gp_lcb_argmin(
    x: jax.Array,
    y: jax.Array,
    grid: jax.Array,
    kappa: float,
    lengthscale: float = 0.4,
    noise: float = 0.05,
) -> jax.Array:
    """Argmin over ``grid`` of the GP lower confidence bound ``mu - kappa sigma``.

    Zero-mean GP with an RBF kernel on standardized targets; non-finite targets are dropped.
    """
    ok = np.isfinite(y)
    x, y = x[ok], y[ok]
    if x.size == 0:
        return grid[grid.size // 2]
    y = (y - y.mean()) / (y.std() + 1e-12)
    k = lambda a, b: np.exp(-0.5 * ((a[:, None] - b[None, :]) / lengthscale) ** 2)
    kxx = k(x, x) + noise * np.eye(x.size)
    kgx = k(grid, x)
    sol = np.linalg.solve(kxx, np.stack([y, *kgx], axis=1))
    mu = kgx @ sol[:, 0]
    var = 1.0 - np.sum(kgx * sol[:, 1:].T, axis=1)
    return grid[np.argmin(mu - kappa * np.sqrt(np.maximum(var, 0.0)))]


class Stage(NamedTuple):
    """One AutoLRS stage: the candidates tried, their forecasts and the LR kept."""

    start: int  # first step of the stage
    steps: int  # tau: steps trained in this stage (exploration of the winner included)
    explore_steps: int  # tau': steps each candidate ran before the forecast
    candidates: np.ndarray  # [k] LRs tried at once
    forecasts: np.ndarray  # [k] forecast loss at step tau (inf: diverged)
    lr: float  # the LR trained for the stage


class AutoLRSResult(NamedTuple):
    """The outcome of :func:`autolrs`."""

    state: Any  # the trained state after the last stage
    lrs: np.ndarray  # [steps_done] LR of each trained step
    losses: np.ndarray  # [steps_done] loss of each trained step
    stages: list[Stage]
    schedule: Schedule  # the LR trajectory as a piecewise-constant jaxlr schedule
    extra_steps: int  # exploration steps of the candidates that were not kept (overhead)
    message: str


_forecast_all = jax.jit(jax.vmap(exp_forecast, in_axes=(0, None)))


@partial(jax.jit, static_argnames=("step_fn", "num_steps"))
def _explore(step_fn, state, lrs, key, *, num_steps):
    """Every candidate LR from ``state``: their states, ``[k, n]`` losses, and which stayed
    healthy (the sweeps' divergence rule: finite losses and a finite state)."""
    step = loss_step("autolrs", step_fn, state, {"lr": lrs[0]}, key)
    states, curves = jax.vmap(lambda lr: scan_steps(step, state, {"lr": lr}, key, num_steps))(lrs)
    return states, curves, healthy(curves, states, None)


@partial(jax.jit, static_argnames=("step_fn", "num_steps"))
def _train(step_fn, state, lr, key, *, num_steps):
    step = loss_step("autolrs", step_fn, state, {"lr": lr}, key)
    return scan_steps(step, state, {"lr": lr}, key, num_steps)


@renamed(min_lr="min_value", max_lr="max_value")
def autolrs(
    step_fn: Callable[[Any, Any, jax.Array], tuple[Any, Any]],
    state: Any,
    *,
    key: jax.Array,
    total_steps: int,
    min_value: float,
    max_value: float,
    num_candidates: int = 8,
    tau: int = 50,
    max_tau: int = 800,
    explore_fraction: float = 0.25,
    shrink: float = 0.5,
    min_width: float = 4.0,
    kappa: float = 1.0,
) -> AutoLRSResult:
    r"""AutoLRS, parallel: each stage tries ``k`` LRs at once and trains with the best.

    Training runs in stages of :math:`\tau` steps. At the start of a stage, ``k`` candidate LRs,
    log-spaced over the current search interval, each run :math:`\tau' = \lceil f\tau \rceil`
    steps from the same state *at once* (``vmap`` over the LR, ``lax.scan`` over steps, the same
    data keys for every candidate). Each loss series is forecast to step :math:`\tau` with
    :func:`exp_forecast` (:math:`a e^{bt} + c`, closed-form robust least squares over a grid of
    ``b``); the candidate with the lowest forecast continues from its explored state for the
    remaining :math:`\tau - \tau'` steps. A small Gaussian process over (log LR, forecast) then
    picks the centre of the next stage's interval by its lower confidence bound
    :math:`\mu - \kappa\sigma`; the interval shrinks by ``shrink`` (to a ratio ``min_width``
    between its ends) unless the pick is at an edge, where it only moves. :math:`\tau`
    doubles every stage up to ``max_tau``; the last stage is cut to ``total_steps``.

    Any train step works: ``step_fn(state, config, key) -> (state, metrics)``, jaxlr's one step
    convention (docs/sweeps.md, "The step function"), a pure function of a pytree state (params
    and optimizer state), the config ``{"lr": lr}`` and a data key, returning metrics with a
    ``"loss"``. A candidate diverged by the sweeps' rule (a loss or a state that is not finite)
    forecasts ``+inf`` and is never kept.

    Args:
        step_fn: the user's train step (static: keep one function object to avoid
            recompiles). The older form ``step_fn(state, lr, key) -> (state, loss)`` is still
            accepted: a step that does not take the config dict and return a metrics dict is
            called that way (told apart by tracing, before anything compiles).
        state: the initial state pytree.
        key: PRNG key; step ``i`` of stage ``s`` uses ``fold_in(fold_in(key, s), i)``.
        total_steps: steps of the trained trajectory (exploration of the losers is extra).
        min_value, max_value: the global search range of the LR (concrete: the search between
            stages runs on the host, so these are Python numbers, not traced values).
        num_candidates: ``k`` (>= 2).
        tau: first stage length; doubles each stage up to ``max_tau``.
        explore_fraction: :math:`\tau'/\tau` in (0, 1]; at least 4 steps are explored.
        shrink: factor on the log-width of the search interval per stage, in (0, 1].
        min_width: smallest ratio ``hi / lo`` of the search interval (> 1).
        kappa: LCB exploration weight (>= 0).

    Returns:
        An :class:`AutoLRSResult` with the final state, the per-step LR and loss, every stage's
        candidates and forecasts, the schedule followed, and the number of extra (exploration)
        steps. If every candidate of a stage diverges, training stops there and ``message`` says
        so (the state is the one before that stage).

    Raises:
        ValueError: non-positive or inverted LR range, ``num_candidates < 2``, ``tau < 4``,
            ``max_tau < tau``, ``total_steps < 1``, or a fraction outside its range.
        TypeError: the old spellings ``min_lr`` / ``max_lr``.

    Examples:
        >>> import jax, jax.numpy as jnp
        >>> from jaxlr import auto
        >>> def step(x, config, key):  # noisy gradient descent on x^2 / 2
        ...     g = x + 0.1 * jax.random.normal(key, x.shape)
        ...     return x - config["lr"] * g, {"loss": 0.5 * jnp.sum(x**2)}
        >>> r = auto.autolrs(step, jnp.ones(4), key=jax.random.key(0), total_steps=40,
        ...                  min_value=1e-3, max_value=1.0, num_candidates=4, tau=20,
        ...                  max_tau=20)
        >>> len(r.lrs), [s.steps for s in r.stages]
        (40, [20, 20])

    References:
        Jin et al., AutoLRS: Automatic Learning-Rate Schedule by Bayesian Optimization on the
        Fly, ICLR 2021.
    """
    c = Checker("autolrs")
    c.key("key", key)
    if not callable(step_fn):
        c.fail(f"step_fn must be callable, got step_fn={step_fn!r}")
    c.positive("min_value", min_value)
    c.positive("max_value", max_value)
    if not max_value > min_value:
        c.fail(
            f"max_value must be > min_value, got min_value={min_value!r}, max_value={max_value!r}"
        )
    for name, value, lo in (
        ("total_steps", total_steps, 1),
        ("num_candidates", num_candidates, 2),
        ("tau", tau, 4),
        ("max_tau", max_tau, tau),
    ):
        if not isinstance(value, int) or value < lo:
            c.fail(f"{name} must be an int >= {lo}, got {name}={value!r}")
    c.between("explore_fraction", explore_fraction, 0.0, 1.0, open_lo=True)
    c.between("shrink", shrink, 0.0, 1.0, open_lo=True)
    c.nonnegative("kappa", kappa)
    if not min_width > 1:
        c.fail(f"min_width must be > 1, got min_width={min_width!r}")

    g_lo, g_hi = math.log(min_value), math.log(max_value)
    lo, hi = g_lo, g_hi
    t, s = 0, 0
    lrs, losses, stages = [], [], []
    extra = 0
    message = f"autolrs: trained {total_steps} steps"
    while t < total_steps:
        steps = min(tau * 2**s, max_tau, total_steps - t)
        explore = min(steps, max(4, math.ceil(explore_fraction * steps)))
        k_stage = jax.random.fold_in(key, s)
        cands = np.exp(np.linspace(lo, hi, num_candidates))
        states, curves, ok = _explore(
            step_fn, state, jnp.asarray(cands, float), k_stage, num_steps=explore
        )
        fc = np.asarray(_forecast_all(curves, jnp.asarray(steps, float)))
        fc = np.where(np.asarray(ok), fc, np.inf)  # a diverged candidate is never kept
        if not np.isfinite(fc).any():
            message = (
                f"autolrs: stage {s} (step {t}): every candidate LR in "
                f"[{cands[0]:.3g}, {cands[-1]:.3g}] diverged; stopped after {t} of "
                f"{total_steps} steps. Lower min_value."
            )
            extra += explore * num_candidates
            break
        best = int(np.argmin(np.where(np.isfinite(fc), fc, np.inf)))
        lr = float(cands[best])
        state = jax.tree.map(lambda a, i=best: a[i], states)
        curve = np.asarray(curves[best])
        if steps > explore:
            state, rest = _train(
                step_fn,
                state,
                jnp.asarray(lr, float),
                jax.random.fold_in(k_stage, 1 << 20),
                num_steps=steps - explore,
            )
            curve = np.concatenate([curve, np.asarray(rest)])
        extra += explore * (num_candidates - 1)
        lrs.append(np.full(steps, lr))
        losses.append(curve)
        stages.append(Stage(t, steps, explore, cands, fc, lr))
        # GP / LCB over this stage's candidates picks the next interval's centre.
        x = (np.log(cands) - lo) / max(hi - lo, 1e-12) * 2.0 - 1.0
        grid = np.linspace(-1.0, 1.0, 65)
        centre_u = _gp_lcb_argmin(x, fc, grid, kappa)
        centre = lo + (centre_u + 1.0) / 2.0 * (hi - lo)
        at_edge = abs(centre_u) > 0.95
        half = (hi - lo) / 2.0 * (1.0 if at_edge else shrink)
        half = max(half, math.log(min_width) / 2.0)
        lo, hi = centre - half, centre + half
        if lo < g_lo:  # shift (not clip) at the global ends, keeping the width
            lo, hi = g_lo, min(g_hi, g_lo + 2.0 * half)
        if hi > g_hi:
            lo, hi = max(g_lo, g_hi - 2.0 * half), g_hi
        t += steps
        s += 1

    lrs_a = np.concatenate(lrs) if lrs else np.zeros(0)
    loss_a = np.concatenate(losses) if losses else np.zeros(0)
    if stages:
        schedule = piecewise_constant(
            boundaries=[st.start + st.steps for st in stages[:-1]] or [stages[0].steps],
            values=[st.lr for st in stages] + ([stages[0].lr] if len(stages) == 1 else []),
        )
    else:
        schedule = piecewise_constant(boundaries=[0.0], values=[0.0, 0.0])
    return AutoLRSResult(state, lrs_a, loss_a, stages, schedule, extra, message)
