"""Loss-curve laws of the LR schedule: the momentum law and the multi-power law; fit, predict,
optimize."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import partial
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.typing import ArrayLike

from jaxlr._src.validate import Checker
from jaxlr.auto._util import as_numpy_curve, huber
from jaxlr.schedules import Schedule, piecewise_interpolate


def _steps_arrays(lrs: jax.Array, warmup_steps: ArrayLike):
    """Cumulative LR sum ``S1(t)`` and the post-warmup decrements ``eta_{k-1} - eta_k``."""
    t = lrs.shape[-1]
    k = jnp.arange(1, t + 1, dtype=lrs.dtype)
    prev = jnp.concatenate([lrs[:1], lrs[:-1]])
    delta = jnp.where(k > warmup_steps, prev - lrs, 0.0)
    return jnp.cumsum(lrs), delta


def _power_term(s1: jax.Array, a: ArrayLike, alpha: ArrayLike) -> jax.Array:
    tiny = jnp.finfo(s1.dtype).tiny
    return a * jnp.exp(-alpha * jnp.log(jnp.maximum(s1, tiny)))


def momentum_law(
    lrs: ArrayLike,
    *,
    L0: ArrayLike,
    A: ArrayLike,
    alpha: ArrayLike,
    C: ArrayLike,
    decay: ArrayLike = 0.999,
    warmup_steps: ArrayLike = 0.0,
) -> jax.Array:
    r"""The momentum law of Tissue et al.: loss at every step of an LR sequence.

    .. math::
        L(s) = L_0 + A\,S_1(s)^{-\alpha} - C\,S_2(s), \qquad
        S_1(s) = \sum_{i \le s} \eta_i, \qquad S_2(s) = \sum_{i \le s} m_i, \\
        m_i = \lambda\, m_{i-1} + (\eta_{i-1} - \eta_i), \quad m_0 = 0,

    where :math:`S_1` is the forward area (all steps, warmup included) and :math:`S_2` the
    annealing area: the LR decrements, accumulated with momentum :math:`\lambda` (``decay``).
    Decrements during the first ``warmup_steps`` steps are not counted (:math:`\eta_0 := \eta_1`).
    Differentiable in the LR sequence and every parameter.

    Args:
        lrs: ``[T]`` the LR of steps ``1..T``.
        L0, A, alpha, C: the law's parameters.
        decay: :math:`\lambda`, the momentum of the annealing area (the paper uses 0.999).
        warmup_steps: steps whose LR changes are warmup, not annealing.

    Returns:
        ``[T]`` the predicted loss after each step.

    Examples:
        >>> import jax.numpy as jnp
        >>> from jaxlr import auto
        >>> lrs = jnp.array([1.0, 1.0, 0.5, 0.5])
        >>> auto.momentum_law(lrs, L0=1.0, A=1.0, alpha=1.0, C=0.1, decay=0.5).round(4).tolist()
        [2.0, 1.5, 1.35, 1.2583]

    References:
        Tissue, Wang & Wang, Scaling Law with Learning Rate Annealing, 2024 (arXiv:2408.11029).
    """
    lrs = jnp.asarray(lrs, dtype=jnp.result_type(lrs, float))
    s1, delta = _steps_arrays(lrs, warmup_steps)
    _, m = jax.lax.scan(lambda mm, d: (decay * mm + d,) * 2, jnp.zeros((), lrs.dtype), delta)
    return L0 + _power_term(s1, A, alpha) - C * jnp.cumsum(m)


def multi_power_law(
    lrs: ArrayLike,
    *,
    L0: ArrayLike,
    A: ArrayLike,
    B: ArrayLike,
    C: ArrayLike,
    alpha: ArrayLike,
    beta: ArrayLike,
    gamma: ArrayLike,
    warmup_steps: ArrayLike = 0.0,
    steps: ArrayLike | None = None,
) -> jax.Array:
    r"""The multi-power law of Luo et al.: loss at chosen steps of an LR sequence.

    .. math::
        L(t) = L_0 + A\,S_1(t)^{-\alpha} - L_D(t), \qquad S_1(t) = \sum_{\tau \le t}\eta_\tau, \\
        L_D(t) = B \sum_{k \le t} (\eta_{k-1} - \eta_k)\,
            G\bigl(\eta_k^{-\gamma} S_k(t)\bigr), \quad S_k(t) = \sum_{\tau=k}^{t} \eta_\tau,
            \quad G(x) = 1 - (C x + 1)^{-\beta}.

    :math:`S_1` includes the warmup area (the paper's :math:`S_1 + S_W`); decrements within the
    first ``warmup_steps`` steps do not count, and :math:`\eta_0 := \eta_1`. The cost is
    ``len(steps) x T``, so evaluate a subset of steps for long curves. An LR of 0 is floored at
    the smallest normal float in :math:`\eta_k^{-\gamma}` (its term then saturates,
    :math:`G \to 1`). Differentiable in the LR sequence and every parameter.

    Args:
        lrs: ``[T]`` the LR of steps ``1..T``.
        L0, A, B, C, alpha, beta, gamma: the law's parameters.
        warmup_steps: steps whose LR changes are warmup, not annealing.
        steps: 1-based steps to evaluate (integers in ``1..T``); all steps when None.

    Returns:
        The predicted loss at ``steps``.

    Examples:
        >>> import jax.numpy as jnp
        >>> from jaxlr import auto
        >>> lrs = jnp.array([1.0, 1.0, 0.5, 0.5])
        >>> p = dict(L0=1.0, A=1.0, B=1.0, C=1.0, alpha=1.0, beta=1.0, gamma=0.0)
        >>> auto.multi_power_law(lrs, **p).round(4).tolist()
        [2.0, 1.5, 1.2333, 1.0833]

    References:
        Luo et al., A Multi-Power Law for Loss Curve Prediction Across Learning Rate Schedules,
        ICLR 2025.
    """
    lrs = jnp.asarray(lrs, dtype=jnp.result_type(lrs, float))
    t = lrs.shape[-1]
    at = jnp.arange(1, t + 1) if steps is None else jnp.asarray(steps, jnp.int32)
    s1, delta = _steps_arrays(lrs, warmup_steps)
    tiny = jnp.finfo(lrs.dtype).tiny
    # S_k(t) = S1(t) - S1(k) + eta_k; entries with k > t are masked (and clipped to stay finite).
    sk = s1[at - 1][:, None] - (s1 - lrs)[None, :]
    x = jnp.maximum(sk, 0.0) * jnp.exp(-gamma * jnp.log(jnp.maximum(lrs, tiny)))
    g = 1.0 - jnp.exp(-beta * jnp.log1p(C * x))
    mask = jnp.arange(1, t + 1)[None, :] <= at[:, None]
    ld = B * jnp.sum(jnp.where(mask, delta * g, 0.0), axis=-1)
    return L0 + _power_term(s1[at - 1], A, alpha) - ld


# ---------------------------------------------------------------------------------------------
# the two laws behind one interface: evaluation at steps, scale change, random starts


class _Law(NamedTuple):
    names: tuple[str, ...]
    evaluate: Callable[..., jax.Array]  # (lrs, params, warmup_steps, steps, decay) -> loss
    rescale: Callable[[dict, Any], dict]  # params for lrs -> params for lrs / s


def _eval_momentum(lrs, p, warmup_steps, steps, decay):
    return momentum_law(lrs, decay=decay, warmup_steps=warmup_steps, **p)[steps - 1]


def _eval_mpl(lrs, p, warmup_steps, steps, decay):
    return multi_power_law(lrs, warmup_steps=warmup_steps, steps=steps, **p)


def _rescale_momentum(p, s):
    return {**p, "A": p["A"] * s ** (-p["alpha"]), "C": p["C"] * s}


def _rescale_mpl(p, s):
    return {
        **p,
        "A": p["A"] * s ** (-p["alpha"]),
        "B": p["B"] * s,
        "C": p["C"] * s ** (1.0 - p["gamma"]),
    }


LAWS = {
    "momentum": _Law(("L0", "A", "alpha", "C"), _eval_momentum, _rescale_momentum),
    "multi_power": _Law(("L0", "A", "B", "C", "alpha", "beta", "gamma"), _eval_mpl, _rescale_mpl),
}


class LossCurve(NamedTuple):
    """One training run: the LR of every step and the loss measured at some steps.

    Attributes:
        lrs: ``[T]`` LR of steps ``1..T``.
        losses: ``[n]`` measured losses.
        steps: ``[n]`` the 1-based steps they were measured after; ``1..n`` when None (then
            ``n`` must equal ``T``).
        warmup_steps: warmup length of the run's schedule.
    """

    lrs: Any
    losses: Any
    steps: Any = None
    warmup_steps: float = 0.0


class LawFit(NamedTuple):
    """A fitted law (see :func:`fit_law`). Parameters are in the units of the given LRs."""

    law: str  # "momentum" or "multi_power"
    params: dict[str, float]  # the best start
    starts: dict[str, np.ndarray]  # [num_starts] every start's optimum
    objective: np.ndarray  # [num_starts] mean Huber loss of log residuals
    good: np.ndarray  # [num_starts] bool: within rel_tol of the best objective
    decay: float  # the momentum law's lambda (unused by the multi-power law)
    num_points: int  # finite loss points used
    num_masked: int  # NaN / inf loss points dropped
    message: str


def _check_curve(fn: str, i: int, curve: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
    curve = curve if isinstance(curve, LossCurve) else LossCurve(*curve)
    lrs = as_numpy_curve(fn, f"curves[{i}].lrs", curve.lrs)
    loss = as_numpy_curve(fn, f"curves[{i}].losses", curve.losses)
    if not np.isfinite(lrs).all() or (lrs < 0).any():
        bad = lrs[~np.isfinite(lrs) | (lrs < 0)][0]
        raise ValueError(
            f"{fn}: curves[{i}].lrs must be finite and >= 0, got curves[{i}].lrs containing {bad!r}"
        )
    if curve.steps is None:
        if lrs.shape[0] != loss.shape[0]:
            raise ValueError(
                f"{fn}: curves[{i}]: len(lrs)={lrs.shape[0]} != len(losses)="
                f"{loss.shape[0]}; give steps= when losses are measured sparsely"
            )
        steps = np.arange(1, lrs.shape[0] + 1)
    else:
        steps = np.asarray(curve.steps).astype(np.int64)
        if steps.shape != loss.shape:
            raise ValueError(
                f"{fn}: curves[{i}]: len(steps)={steps.size} != len(losses)={loss.size}"
            )
        if steps.size and (steps.min() < 1 or steps.max() > lrs.shape[0]):
            raise ValueError(
                f"{fn}: curves[{i}].steps must lie in 1..len(lrs)={lrs.shape[0]}, "
                f"got {steps.min()}..{steps.max()}"
            )
    return lrs, loss, steps, float(curve.warmup_steps)


def _subsample(n: int, max_points: int) -> np.ndarray:
    if n <= max_points:
        return np.arange(n)
    return np.unique(np.round(np.geomspace(1, n, max_points)).astype(int) - 1)


def _random_starts(law: str, key: jax.Array, n: int, data: list) -> dict[str, jax.Array]:
    """Data-scaled random starts (LRs normalized to a peak of 1)."""
    lo = min(float(loss.min()) for _, loss, _, _ in data)
    first = max(data, key=lambda d: d[1][0])
    s1_first = float(np.sum(first[0][: first[2][0]]))
    ks = jax.random.split(key, 7)
    u = lambda k, a, b: jax.random.uniform(k, (n,), minval=a, maxval=b)
    lu = lambda k, a, b: jnp.exp(u(k, np.log(a), np.log(b)))
    l0 = lo * u(ks[0], 0.3, 0.97)
    alpha = u(ks[1], 0.2, 1.2)
    a = jnp.maximum(first[1][0] - l0, 1e-6) * s1_first**alpha * lu(ks[2], 0.3, 3.0)
    span = max(max(float(loss.max()) for _, loss, _, _ in data) - lo, 1e-3 * lo)
    p = {"L0": l0, "A": a, "alpha": alpha}
    if law == "momentum":
        t = max(d[0].shape[0] for d in data)
        p["C"] = span / t * lu(ks[3], 1e-3, 1.0)
    else:
        p.update(
            B=span * lu(ks[3], 0.1, 3.0),
            C=lu(ks[4], 0.1, 10.0),
            beta=u(ks[5], 0.2, 1.0),
            gamma=u(ks[6], 0.2, 0.8),
        )
    return p


def fit_law(
    law: str,
    curves: Sequence[LossCurve | tuple],
    *,
    key: jax.Array,
    num_starts: int = 16,
    num_iters: int = 100,
    huber_delta: float = 1e-3,
    max_points: int = 128,
    decay: float = 0.999,
    rel_tol: float = 0.05,
) -> LawFit:
    r"""Fits a loss-curve law to one or more training runs, from many random starts at once.

    Minimizes the mean Huber loss of log residuals,
    :math:`\frac1n\sum_i \mathrm{Huber}_\delta(\log \hat L(t_i) - \log L(t_i))`, over all the
    curves' finite points (at most ``max_points`` per curve, log-spaced in step). Every
    parameter is positive and optimized in log space; LRs are normalized to a peak of 1 during
    the fit and the parameters converted back. ``num_starts`` data-scaled random starts run a
    Huber-robust Levenberg-Marquardt (Gauss-Newton with IRLS weights) in one ``vmap`` in float64
    (inside a local ``jax.enable_x64`` context; the global setting is untouched). Starts within
    ``rel_tol`` of the best objective are "good"; their
    spread is the fit's uncertainty (:func:`predict_loss` returns it as a band).

    Args:
        law: ``"momentum"`` (:func:`momentum_law`) or ``"multi_power"`` (:func:`multi_power_law`).
        curves: :class:`LossCurve` s or tuples ``(lrs, losses[, steps[, warmup_steps]])``.
        key: PRNG key for the random starts.
        num_starts: number of starts (static).
        num_iters: Levenberg-Marquardt iterations per start.
        huber_delta: Huber threshold on log residuals.
        max_points: points per curve used in the fit.
        decay: the momentum law's :math:`\lambda` (fixed, not fitted).
        rel_tol: relative objective tolerance defining the good starts.

    Returns:
        A :class:`LawFit`. NaN / inf losses are dropped and counted in ``num_masked`` (and in
        ``message``).

    Raises:
        ValueError: an unknown law, no curves, ``len(lrs) != len(losses)`` without ``steps``,
            steps outside the run, negative or non-finite LRs, or fewer finite points than the
            law's parameters plus one.

    Examples:
        >>> import jax, numpy as np
        >>> from jaxlr import auto
        >>> lrs = np.r_[np.ones(200), np.linspace(1, 0.1, 100)]
        >>> true = dict(L0=2.0, A=1.0, alpha=0.5, C=0.002)
        >>> loss = np.asarray(auto.momentum_law(lrs, **true))
        >>> f = auto.fit_law("momentum", [(lrs, loss)], key=jax.random.key(0), num_starts=4)
        >>> {k: round(v, 2) for k, v in f.params.items()}
        {'L0': 2.0, 'A': 1.0, 'alpha': 0.5, 'C': 0.0}

    References:
        Tissue et al., Scaling Law with Learning Rate Annealing, 2024; Luo et al., A Multi-Power
        Law for Loss Curve Prediction Across Learning Rate Schedules, ICLR 2025; Hoffmann et al.,
        Training Compute-Optimal Large Language Models, 2022 (Huber on log residuals).
    """
    fn = "fit_law"
    c = Checker(fn)
    c.choice("law", law, tuple(LAWS))
    c.key("key", key)
    if len(curves) == 0:
        c.fail("curves must hold at least one curve, got curves=[]")
    c.positive("huber_delta", huber_delta)
    c.between("decay", decay, 0.0, 1.0)
    spec = LAWS[law]
    data, masked = [], 0
    scale = 0.0
    for i, cv in enumerate(curves):
        lrs, loss, steps, warm = _check_curve(fn, i, cv)
        ok = np.isfinite(loss) & (loss > 0)
        masked += int((~ok).sum())
        loss, steps = loss[ok], steps[ok]
        pick = _subsample(loss.size, max_points)
        data.append((lrs, loss[pick], steps[pick], warm))
        scale = max(scale, float(lrs.max()))
    n_points = sum(d[1].size for d in data)
    n_par = len(spec.names)
    if n_points < n_par + 1:
        c.fail(
            f"the {law} law has {n_par} parameters and needs at least {n_par + 1} finite "
            f"loss points, got {n_points} (after dropping {masked} NaN/inf/non-positive)"
        )
    if scale <= 0:
        c.fail("every LR is 0; the laws need a positive LR somewhere")

    starts = _random_starts(law, key, num_starts, [(d[0] / scale, *d[1:]) for d in data])
    with jax.enable_x64(True):
        unit = tuple(
            (jnp.asarray(lr / scale), jnp.log(jnp.asarray(ls)), jnp.asarray(st), jnp.asarray(w))
            for lr, ls, st, w in data
        )
        theta0 = {k: jnp.log(jnp.asarray(v, jnp.float64)) for k, v in starts.items()}
        theta, obj = _fit_starts(
            theta0, unit, jnp.asarray(decay), jnp.asarray(huber_delta), law=law, num_iters=num_iters
        )
        obj = np.asarray(obj)
        obj = np.where(np.isfinite(obj), obj, np.inf)
        raw = {k: np.exp(np.asarray(v)) for k, v in theta.items()}
        raw = {k: np.asarray(v) for k, v in spec.rescale(raw, 1.0 / scale).items()}
    best = int(np.argmin(obj))
    good = obj <= obj[best] * (1.0 + rel_tol) + 1e-12
    message = (
        f"fit_law: {law} law on {len(data)} curve(s), {n_points} points; "
        f"{int(good.sum())} of {num_starts} starts within {rel_tol:g} of the best "
        f"objective {obj[best]:.3g}"
    )
    if masked:
        message += f"; dropped {masked} NaN/inf/non-positive loss value(s)"
    params = {k: float(raw[k][best]) for k in spec.names}
    return LawFit(law, params, raw, obj, good, float(decay), n_points, masked, message)


@partial(jax.jit, static_argnames=("law", "num_iters"))
def _fit_starts(theta0, unit, decay, delta, *, law, num_iters):
    """Every start's robust Levenberg-Marquardt run at once (``vmap``) on normalized curves."""
    spec = LAWS[law]

    def residuals(theta):
        p = {k: jnp.exp(theta[i]) for i, k in enumerate(spec.names)}
        out = []
        for lr, log_loss, st, w in unit:
            pred = spec.evaluate(lr, p, w, st, decay)
            out.append(_safe_log(pred, log_loss - 5.0) - log_loss)
        return jnp.concatenate(out)

    def objective(theta):
        r = residuals(theta)
        return jnp.where(jnp.all(jnp.isfinite(r)), jnp.mean(huber(r, delta)), jnp.inf)

    run = lambda t: _levenberg_marquardt(residuals, objective, t, delta, num_iters)
    theta = jnp.stack([theta0[k] for k in spec.names], axis=-1)
    best, value = jax.vmap(run)(theta)
    return {k: best[:, i] for i, k in enumerate(spec.names)}, value


def _safe_log(x: jax.Array, log_floor: jax.Array) -> jax.Array:
    """``log x`` above ``e^log_floor``, continued linearly below (finite, with a slope, for
    predictions that went non-positive)."""
    floor = jnp.exp(log_floor)
    return jnp.where(x >= floor, jnp.log(jnp.maximum(x, floor)), log_floor + (x - floor) / floor)


def _levenberg_marquardt(residuals, objective, theta, delta, num_iters):
    r"""Huber-robust Levenberg-Marquardt: IRLS weights :math:`\min(1, \delta/|r|)` on the
    Gauss-Newton system, damping :math:`\mu` times its diagonal; a static number of iterations."""
    n = theta.shape[0]

    def body(carry, _):
        th, val, mu = carry
        r = residuals(th)
        jac = jax.jacfwd(residuals)(th)
        ok = jnp.isfinite(r) & jnp.all(jnp.isfinite(jac), axis=-1)
        r, jac = jnp.where(ok, r, 0.0), jnp.where(ok[:, None], jac, 0.0)
        w = jnp.where(jnp.abs(r) <= delta, 1.0, delta / jnp.maximum(jnp.abs(r), 1e-300))
        a = jac.T @ (w[:, None] * jac)
        g = jac.T @ (w * r)
        d = jnp.diag(a) + 1e-12
        step = jnp.linalg.solve(a + mu * jnp.diag(d) + 1e-15 * jnp.eye(n), -g)
        trial = th + jnp.clip(step, -2.0, 2.0)  # at most a factor e^2 per parameter per step
        tv = objective(trial)
        better = tv < val
        return (
            jnp.where(better, trial, th),
            jnp.where(better, tv, val),
            jnp.clip(jnp.where(better, mu / 3.0, mu * 4.0), 1e-10, 1e10),
        ), None

    init = (theta, objective(theta), jnp.asarray(1e-2, theta.dtype))
    (th, val, _), _ = jax.lax.scan(body, init, None, length=num_iters)
    return th, val


class LawPrediction(NamedTuple):
    """A predicted loss curve with its multi-start band."""

    steps: np.ndarray  # [n] 1-based steps
    loss: np.ndarray  # [n] prediction of the best start
    low: np.ndarray  # [n] smallest prediction over the good starts
    high: np.ndarray  # [n] largest prediction over the good starts


@partial(jax.jit, static_argnames=("law",))
def _predict_all(params, lrs, warmup_steps, steps, decay, *, law):
    ev = LAWS[law].evaluate
    return jax.vmap(lambda p: ev(lrs, p, warmup_steps, steps, decay))(params)


def predict_loss(
    fit: LawFit, lrs: ArrayLike, *, steps: ArrayLike | None = None, warmup_steps: float = 0.0
) -> LawPrediction:
    """Predicts the loss curve of any LR sequence with a fitted law (float64).

    Args:
        fit: the output of :func:`fit_law`.
        lrs: ``[T]`` the LR of steps ``1..T`` (e.g. ``schedule(jnp.arange(T))``).
        steps: 1-based steps to predict; all ``1..T`` when None.
        warmup_steps: warmup length of this schedule.

    Returns:
        A :class:`LawPrediction`: the best start's curve and the min / max over the good starts
        (the uncertainty of the fit).

    Raises:
        ValueError: ``lrs`` not 1-D, negative or non-finite; steps outside ``1..T``.

    Examples:
        >>> import jax, numpy as np
        >>> from jaxlr import auto
        >>> lrs = np.r_[np.ones(200), np.linspace(1, 0.1, 100)]
        >>> loss = np.asarray(auto.momentum_law(lrs, L0=2.0, A=1.0, alpha=0.5, C=0.002))
        >>> f = auto.fit_law("momentum", [(lrs, loss)], key=jax.random.key(0), num_starts=4)
        >>> p = auto.predict_loss(f, np.ones(300), steps=[300])
        >>> round(float(p.loss[0]), 3)
        2.058

    References:
        Tissue et al. 2024; Luo et al., ICLR 2025 (see :func:`fit_law`).
    """
    lrs, _, st, _ = _check_curve(
        "predict_loss",
        0,
        LossCurve(
            lrs,
            np.zeros(np.size(steps) if steps is not None else np.size(lrs)),
            steps,
            warmup_steps,
        ),
    )
    with jax.enable_x64(True):
        stacked = {k: jnp.asarray(np.r_[fit.params[k], v[fit.good]]) for k, v in fit.starts.items()}
        out = np.asarray(
            _predict_all(
                stacked,
                jnp.asarray(lrs),
                jnp.asarray(warmup_steps),
                jnp.asarray(st),
                jnp.asarray(fit.decay),
                law=fit.law,
            )
        )
    best, band = out[0], out[1:]
    return LawPrediction(st, best, band.min(0), band.max(0))


@partial(jax.jit, static_argnames=("law", "total_steps", "num_knots", "num_iters"))
def _optimize(
    params, warmup, peak, init, low, decay, lr, *, law, total_steps, num_knots, num_iters
):
    ev = LAWS[law].evaluate
    dtype = peak.dtype
    i = jnp.arange(total_steps, dtype=dtype)  # lrs[i] is the LR of step i + 1 (the laws' 1..T)
    knots = warmup + (total_steps - warmup) * jnp.arange(num_knots + 1, dtype=dtype) / num_knots
    warm_lrs = init + (peak - init) * i / jnp.maximum(warmup, 1.0)
    end = jnp.asarray([total_steps])

    def values(z):
        return low + (peak - low) * jnp.concatenate(
            [jnp.ones(1, dtype), jnp.cumprod(jax.nn.sigmoid(z))]
        )

    def lrs_of(z):
        return jnp.where(i < warmup, warm_lrs, jnp.interp(i, knots, values(z)))

    def final_loss(z):
        return ev(lrs_of(z), params, warmup, end, decay)[0]

    opt = optax.adam(lr)

    def body(carry, _):
        z, s = carry
        u, s = opt.update(jax.grad(final_loss)(z), s)
        return (optax.apply_updates(z, u), s), None

    z0 = jnp.full(num_knots, 4.0, dtype)
    (z, _), _ = jax.lax.scan(body, (z0, opt.init(z0)), None, length=num_iters)
    return lrs_of(z), final_loss(z), knots, values(z)


class OptimizedSchedule(NamedTuple):
    """A schedule found by :func:`optimize_schedule` (arrays only, so it jits and vmaps)."""

    schedule: Schedule  # piecewise-linear through the optimized knots (warmup included)
    lrs: jax.Array  # [total_steps] its per-step LR
    predicted_loss: jax.Array  # [] the fitted law's final loss for it


def optimize_schedule(
    fit: LawFit,
    *,
    total_steps: int,
    peak_value: ArrayLike,
    warmup_steps: ArrayLike = 0,
    init_value: ArrayLike = 0.0,
    min_value: ArrayLike = 0.0,
    num_knots: int = 16,
    num_iters: int = 500,
    learning_rate: ArrayLike = 0.05,
) -> OptimizedSchedule:
    r"""The non-increasing schedule with the lowest final loss under a fitted law.

    After a linear warmup from ``init_value`` to ``peak_value`` over :math:`W` =
    ``warmup_steps``, the schedule passes through ``num_knots + 1`` evenly spaced knots
    :math:`k_j = W + (T - W) j / n` whose values are monotone by construction,

    .. math:: v_0 = P, \qquad v_j = m + (P - m) \prod_{i \le j} \sigma(z_i),

    (:math:`\sigma` the logistic function, :math:`m` = ``min_value``, :math:`P` =
    ``peak_value``), linearly interpolated between knots. The logits :math:`z` are optimized by
    Adam on the law's predicted loss at ``total_steps`` (gradient through the law, computed in
    float64; the results come back in the default float dtype).
    The peak is held fixed: the laws reward a larger LR sum without bound.

    Static and traced arguments: ``warmup_steps``, ``peak_value``, ``init_value``,
    ``min_value`` and ``learning_rate`` are data (``jax.jit`` / ``jax.vmap`` over them reuse one
    compilation). Three arguments are static, because they are shapes or trip counts:
    ``total_steps`` (the length of the LR sequence the law integrates and of the returned
    ``lrs``), ``num_knots`` (the number of logits) and ``num_iters`` (the Adam loop's length);
    ``fit`` is read on the host (its parameters become float64 arrays, its law picks the code).

    Args:
        fit: the output of :func:`fit_law`.
        total_steps: the step budget, warmup included (static int).
        peak_value: the LR after warmup.
        warmup_steps: linear warmup length (may be fractional; 0 starts at the peak).
        init_value: LR at step 0 of the warmup.
        min_value: the lowest LR allowed.
        num_knots: knots after warmup (static int).
        num_iters: Adam iterations (static int).
        learning_rate: Adam step size on the logits.

    Returns:
        An :class:`OptimizedSchedule`: a :func:`jaxlr.schedules.piecewise_interpolate` schedule
        (knots ``0, W, k_1, ..., k_n``), its per-step LRs and the predicted final loss.

    Raises:
        ValueError: a non-int ``total_steps`` / ``num_knots`` / ``num_iters``; for concrete
            values, ``total_steps < warmup_steps + num_knots + 1``, ``peak_value <= min_value``,
            or negative values. Traced values are not checked (an invalid one gives NaN or a
            schedule outside the bounds).

    Examples:
        >>> import jax, numpy as np
        >>> from jaxlr import auto
        >>> lrs = np.r_[np.ones(300), np.linspace(1, 0.0, 100)]
        >>> loss = np.asarray(auto.momentum_law(lrs, L0=2.0, A=1.0, alpha=0.5, C=0.002))
        >>> f = auto.fit_law("momentum", [(lrs, loss)], key=jax.random.key(0), num_starts=4)
        >>> o = auto.optimize_schedule(f, total_steps=400, peak_value=1.0, num_knots=8)
        >>> bool(o.lrs[-1] < 0.2), bool(o.predicted_loss < loss[-1])
        (True, True)

    References:
        Luo et al., A Multi-Power Law for Loss Curve Prediction Across Learning Rate Schedules,
        ICLR 2025 (schedule optimization through the fitted law).
    """
    c = Checker("optimize_schedule")
    for name, v, lo in (
        ("num_knots", num_knots, 1),
        ("num_iters", num_iters, 0),
        ("total_steps", total_steps, num_knots + 1),
    ):
        if isinstance(v, bool) or not isinstance(v, int) or v < lo:
            c.fail(f"{name} must be an int >= {lo}, got {name}={v!r}")
    w = c.nonnegative("warmup_steps", warmup_steps)
    if w is not None and not bool(w + num_knots + 1 <= total_steps):
        c.fail(
            f"total_steps must be >= warmup_steps + num_knots + 1, got "
            f"total_steps={total_steps}, warmup_steps={warmup_steps!r}, num_knots={num_knots}"
        )
    low = c.nonnegative("min_value", min_value)
    c.nonnegative("init_value", init_value)
    c.positive("learning_rate", learning_rate)
    peak = c.finite("peak_value", peak_value)
    if peak is not None and low is not None and not bool(peak > low):
        c.fail(
            f"peak_value must be > min_value, got peak_value={peak_value!r}, "
            f"min_value={min_value!r}"
        )
    with jax.enable_x64(True):
        f = partial(jnp.asarray, dtype=jnp.float64)
        params = {k: f(v) for k, v in fit.params.items()}
        lrs, loss, knots, v = _optimize(
            params,
            f(warmup_steps),
            f(peak_value),
            f(init_value),
            f(min_value),
            f(fit.decay),
            f(learning_rate),
            law=fit.law,
            total_steps=total_steps,
            num_knots=num_knots,
            num_iters=num_iters,
        )
        # the warmup knot (0, init) always exists: with W = 0 it is a zero-length piece, a jump
        bounds = jnp.concatenate([jnp.zeros(1, knots.dtype), knots])
        values = jnp.concatenate([f(init_value)[None], v])
    # results in the caller's float dtype (float32 unless x64 is on): no float64 arrays leak out
    out = partial(jnp.asarray, dtype=jnp.result_type(float))
    sched = piecewise_interpolate(boundaries=out(bounds), values=out(values))
    return OptimizedSchedule(sched, out(lrs), out(loss))
