"""Curvature-driven LR control: the sharpness cap (with catapult and GeN modes) and warmup.

Both transforms adapt the in-loop estimators of :mod:`jaxlr.sharpness` (batch sharpness, or the
sharpness tracker's lambda_max) through one builder, :class:`_Curvature`.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.flatten_util import ravel_pytree
from jax.typing import ArrayLike

from jaxlr import sharpness
from jaxlr._src.numeric import as_float, safe_div
from jaxlr._src.validate import Checker, concrete, key_data, renamed
from jaxlr.schedules import Schedule
from jaxlr.sharpness._batch import (
    METHODS,
    BatchSharpnessState,
    running_init,
    running_push,
    running_quantile,
    sample_along,
)
from jaxlr.sharpness._hvp import bind_batch, flat_operator, krylov_dtype
from jaxlr.sharpness._precond import first_moment
from jaxlr.sharpness._tracker import TrackerState, init_state, track, upper_estimate
from jaxlr.transforms._common import (
    as_schedule,
    check_unit_lr,
    floats,
    held,
    lr_state,
    require,
    require_params,
    scale_updates,
)

_KINDS = ("gd", "heavy_ball", "nesterov", "adam")
QUANTITIES = ("batch_sharpness", "lambda_max")
# The ring of batch-sharpness samples is sorted at every sample: a bound on its static size.
MAX_WINDOW = 10_000


def _check_unit_lr(c: Checker, optimizer, *, owner: str) -> None:
    """:func:`check_unit_lr`, its warning pointed at the user's line through the
    :func:`renamed` wrapper (one frame deeper than ``check_unit_lr`` assumes)."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        check_unit_lr(c.fn, optimizer, owner=owner)
    for w in caught:
        warnings.warn(w.message, w.category, stacklevel=4)


def _check_adam(c: Checker, optimizer, b1) -> None:
    """Refuses an Adam chain whose direction is not ``m_hat / P`` with the constants read.

    The preconditioned sample and threshold read ``P`` with the ``b2``/``eps``/``eps_root`` of
    an ``inject_hyperparams`` state, else Optax's defaults, and use this transform's ``b1``;
    Optax keeps those in a closure, where they cannot be read. Two probe updates on three
    coordinates (one at the scale of ``eps``) must give ``s * m_hat / P`` with one ``s > 0``
    (the optimizer's own LR, which ``check_unit_lr`` reports), else this raises.
    """
    b1 = concrete(b1)
    if b1 is None or b1.size != 1:  # traced or swept: nothing to probe against
        return
    b1 = float(b1.reshape(()))
    with jax.ensure_compile_time_eval():
        params = jnp.zeros(3)
        state = optimizer.init(params)
        scale = None
        for t, g in enumerate(([1.0, 1e-8, -2.0], [3.0, -3e-8, 0.5]), start=1):
            d, state = optimizer.update(jnp.asarray(g), state, params)
            mu = first_moment(state)
            if mu is None:
                return  # no Adam state: preconditioner() names the problem at the first update
            want = -(mu / (1.0 - b1**t)) / sharpness.preconditioner(state)  # a descent step
            d, want = concrete(d), concrete(want)
            if d is None or want is None:
                return  # traced hyperparameters inside the optimizer
            scale = d[0] / want[0] if scale is None else scale
            if not (scale > 0 and np.allclose(d, scale * want, rtol=1e-4, atol=0.0)):
                c.fail(
                    "kind='adam' reads Adam's constants as b1 (this function's, "
                    f"b1={b1:g}) and b2, eps, eps_root from an optax.inject_hyperparams state "
                    "or Optax's defaults (0.999, 1e-8, 0), but the optimizer's direction is not "
                    "m_hat / P with them (it keeps other values in a closure, where they cannot "
                    "be read): pass its b1 as b1= and build it as "
                    "optax.inject_hyperparams(optax.adam)(learning_rate=1.0, b2=..., eps=...), "
                    f"got optimizer={optimizer!r}"
                )


def _due(count: jax.Array, every: jax.Array) -> jax.Array:
    """``count % every == 0`` in integers (exact for every int32 count; ``every`` a whole
    number >= 1, validated at construction, clamped to [1, 2^30] when traced)."""
    return count % jnp.clip(every, 1, 2**30).astype(count.dtype) == 0


def _finite(tree) -> jax.Array:
    """True when every entry of ``tree`` is finite, read off one scalar: the squared norm, in
    float32 or wider (one fused product where a test per leaf costs XLA:CPU three small kernels
    a leaf). A direction so large that its squared norm overflows reads as non-finite too: its
    step is skipped, never applied."""
    x = ravel_pytree(tree)[0]
    x = x.astype(jnp.promote_types(x.dtype, jnp.float32))
    return jnp.isfinite(jnp.vdot(x, x))


class _Measured(NamedTuple):
    """What :meth:`_Curvature.measure` found for one update."""

    loss_fn: Callable[..., jax.Array]
    direction: Any  # the wrapped optimizer's unit-LR update
    inner_state: Any
    refresh: jax.Array  # () bool: a new estimate was taken
    est: Any  # the estimator's new memory (BatchSharpnessState or TrackerState)
    raw: jax.Array  # () the raw estimate (sample or Rayleigh quotient)
    lam: jax.Array  # () the curvature the LR uses (NaN: none yet)
    crit: jax.Array  # () the critical LR c / lam (inf: no limit; 0: no estimate)
    none: jax.Array  # () bool: no estimate yet, the update is skipped


class _Curvature:
    """The builder both transforms share: static configuration of the in-loop estimate.

    ``quantity="batch_sharpness"``: every ``every`` updates, one sample of batch sharpness on this
    update's batch along this update's direction (:func:`jaxlr.sharpness.batch_sharpness`;
    ``kind="adam"`` uses the preconditioned quotient with ``P`` read from the wrapped
    optimizer's state) joins a ring of the last ``window`` samples; the value the LR uses is
    the ``quantile`` of the ring, or this update's own sample when that is larger (a step whose
    own sample is over the edge backs off at once). ``quantity="lambda_max"``: the sharpness
    tracker (:func:`jaxlr.sharpness.tracker_update`, block size 2: the previous eigenvector and
    a Krylov chain from it plus a random direction, ``init_iters`` products for the cold start,
    ``num_iters`` after) on the loss of this update's batch, the Rayleigh quotient when
    converged, an upper estimate when not, smoothed by ``decay``.

    Until a finite value exists (a NaN batch at the first update) the estimate is NaN, every
    update re-estimates, and the transforms skip the step (LR 0, state unchanged) instead of
    reading the missing value as "no limit".
    """

    def __init__(
        self,
        c: Checker,
        optimizer,
        *,
        loss_fn,
        quantity,
        method,
        window,
        kind,
        num_iters,
        init_iters,
        tol,
        key,
        every,
        decay,
        quantile,
        momentum,
        b1,
    ):
        c.choice("quantity", quantity, QUANTITIES)
        c.choice("method", method, METHODS)
        c.choice("kind", kind, _KINDS)
        c.integer("num_iters", num_iters, minimum=2, static=True)
        c.integer("init_iters", init_iters, minimum=2, static=True)
        c.integer("window", window, minimum=1, maximum=MAX_WINDOW, static=True)
        if kind == "adam" and optimizer is None:
            c.fail(
                "kind='adam' needs the optimizer whose state holds the preconditioner, "
                "got optimizer=None"
            )
        if loss_fn is not None and not callable(loss_fn):
            c.fail(
                f"loss_fn must be callable (loss_fn(params) or loss_fn(params, batch)), got "
                f"loss_fn={loss_fn!r}"
            )
        c.integer("every", every, minimum=1)
        c.between("decay", decay, 0.0, 1.0)
        c.between("quantile", quantile, 0.0, 1.0)
        # 1 would make the threshold (2 + 2 b1) / (1 - b1) infinite: the cap silently off
        c.between("momentum", momentum, 0.0, 1.0, open_hi=True)
        c.between("b1", b1, 0.0, 1.0, open_hi=True)
        c.nonnegative("tol", tol)
        self.c, self.loss_fn = c, loss_fn
        self.quantity, self.method, self.window = quantity, method, window
        self.kind, self.num_iters, self.init_iters = kind, num_iters, init_iters
        self.key = key_data(c.fn, key, seeds=True)
        if self.key.shape != (2,):  # the state keeps raw threefry data (it serializes)
            c.fail(f"key must be a threefry PRNG key (jax.random.key(seed)), got key={key!r}")
        self.inner = None if optimizer is None else optax.with_extra_args_support(optimizer)
        if kind == "adam":
            _check_adam(c, self.inner, b1)

    def threshold_constant(self, h) -> jax.Array:
        """``c`` with stability threshold ``c / eta``: the critical LR is ``c / lambda``."""
        return sharpness.stability_threshold(1.0, kind=self.kind, momentum=h.momentum, b1=h.b1)

    @staticmethod
    def times(x: jax.Array, crit: jax.Array) -> jax.Array:
        """``x * crit`` where ``crit`` may be ``inf`` (no limit), with a finite gradient in ``x``
        (a bare product would give ``0 * inf = NaN`` through the branch a ``where`` drops)."""
        ok = jnp.isfinite(crit)
        return jnp.where(ok, x * jnp.where(ok, crit, 1.0), jnp.inf)

    def critical_lr(self, h, lam: jax.Array) -> jax.Array:
        """``c / lambda`` for ``lambda > 0``; ``inf`` (no limit) for a non-positive curvature;
        0 (no step) while there is no estimate (NaN)."""
        return jnp.where(
            lam > 0,
            safe_div(self.threshold_constant(h), lam),
            jnp.where(jnp.isnan(lam), 0.0, jnp.inf),
        )

    def init(self, params):
        flat = ravel_pytree(params)[0]
        if not jnp.issubdtype(flat.dtype, jnp.floating):
            self.c.fail(f"params must be floating point, got dtype={flat.dtype}")
        if self.quantity == "batch_sharpness":
            est = running_init(self.window, krylov_dtype(flat.dtype))
        else:
            est = init_state(flat, self.key, block_size=2)
        inner = None if self.inner is None else self.inner.init(params)
        return est, inner

    def loss(self, loss_fn):
        loss_fn = self.loss_fn if loss_fn is None else loss_fn
        return require(self.c, "loss_fn", loss_fn)

    def direction(self, updates, inner_state, params, extra):
        if self.inner is None:
            return updates, inner_state
        return self.inner.update(updates, inner_state, params, **extra)

    def _lambda_max(self, loss_fn, batch, params, inner_state, cs: TrackerState, first, h):
        flat, _, op = flat_operator(
            loss_fn, params, matvec=None, batches=None, batch=batch, fn_name=self.c.fn
        )
        if self.kind == "adam":
            p = ravel_pytree(sharpness.preconditioner(inner_state))[0].astype(flat.dtype)
            d = safe_div(1.0, jnp.sqrt(p))  # P^-1/2, which is 0 where P = inf
            hess = op
            op = lambda x: d * hess(d * x)  # noqa: E731
        budget = jnp.where(first, self.init_iters, self.num_iters)
        most = max(self.init_iters, self.num_iters)
        return track(op, cs, num_iters=most, tol=h.tol, budget=budget)[1]

    def refresh(self, state, loss_fn, batch, params, inner_state, updates, direction, probe):
        """(refreshed?, estimator state, raw estimate, value the LR uses) after this update.

        ``probe`` is the LR this update would take (the step of ``method="loss_rise"``).
        """
        h = state.hyperparams
        prev = state.sharpness
        have_prev = jnp.isfinite(prev)
        refresh = _due(state.count, h.every) | ~have_prev  # re-estimate until one is finite
        if self.quantity == "batch_sharpness":
            loss = bind_batch(loss_fn, batch, self.c.fn)
            grads = None if self.inner is None else updates
            eta = jnp.where(jnp.isfinite(probe) & (probe > 0), probe, 1.0)
            dtype = state.curvature.samples.dtype
            q = h.quantile

            # Everything but the held estimate runs inside the cond: the steps between samples
            # compute nothing (no product, no ring update, no sort).
            def sample(rs):
                adam = self.kind == "adam"
                precond = sharpness.preconditioner(inner_state) if adam else None
                d = jax.tree.map(jnp.negative, direction)  # theta <- theta - eta d
                s = sample_along(
                    loss,
                    params,
                    d,
                    method=self.method,
                    grads=grads,
                    value=None,
                    precond=precond,
                    learning_rate=eta,
                )
                raw = s.sharpness.astype(dtype)
                rs = running_push(rs, raw, True, s.loss.astype(dtype))
                est = running_quantile(rs, q)
                # this update's own sample when larger: a step over the edge backs off at once
                own = jnp.where(jnp.isfinite(raw), raw, -jnp.inf)
                lam = jnp.where(jnp.isnan(est), est, jnp.maximum(est, own))
                return rs._replace(estimate=est), raw, lam

            def hold(rs):
                return rs, jnp.full((), jnp.nan, dtype), rs.estimate

            rs, raw, lam = jax.lax.cond(refresh, sample, hold, state.curvature)
            return refresh, rs, raw, lam.astype(prev.dtype)
        first = ~have_prev
        cs = jax.lax.cond(
            refresh,
            lambda cs: self._lambda_max(loss_fn, batch, params, inner_state, cs, first, h),
            lambda cs: cs,
            state.curvature,
        )
        lam = upper_estimate(cs)
        ok = jnp.isfinite(lam)
        # a non-finite estimate (NaN loss) keeps the last value; before any, it stays NaN
        lam = jnp.where(ok, lam, prev)
        smooth = jnp.where(
            have_prev & ok,
            h.decay * jnp.where(have_prev, prev, 0.0) + (1.0 - h.decay) * jnp.where(ok, lam, 0.0),
            lam,
        )
        smooth = jnp.where(refresh, smooth, prev).astype(prev.dtype)
        return refresh, cs, cs.eigenvalue, smooth

    def measure(self, updates, state, params, loss_fn, batch, extra_args, probe) -> _Measured:
        """Everything both transforms do before choosing their LR: the wrapped optimizer's
        direction, the refreshed estimate and the critical LR it gives."""
        loss_fn = self.loss(loss_fn)
        require_params(self.c, params)
        direction, inner_state = self.direction(
            updates,
            state.inner_state,
            params,
            {"loss_fn": loss_fn, **({} if batch is None else {"batch": batch}), **extra_args},
        )
        refresh, est, raw, lam = self.refresh(
            state, loss_fn, batch, params, inner_state, updates, direction, probe
        )
        crit = self.critical_lr(state.hyperparams, lam)
        return _Measured(
            loss_fn, direction, inner_state, refresh, est, raw, lam, crit, jnp.isnan(lam)
        )

    @staticmethod
    def finish(m: _Measured, state):
        """``(direction, inner state, num_skipped)`` to keep: zero updates and the old inner
        state while there is no estimate, or when the direction is not finite (a NaN batch
        mid-run), counted in ``num_skipped``: a skipped step never poisons the params or the
        wrapped optimizer's state, and never passes unnoticed."""
        none = m.none | ~_finite(m.direction)
        direction = jax.tree.map(lambda u: jnp.where(none, jnp.zeros_like(u), u), m.direction)
        inner_state = jax.tree.map(
            lambda new, old: jnp.where(none, old, new), m.inner_state, state.inner_state
        )
        return direction, inner_state, state.num_skipped + none.astype(jnp.int32)

    @staticmethod
    def eigenvalue(m: _Measured, state) -> jax.Array:
        """The last raw estimate: this update's when it refreshed, else the one held."""
        return jnp.where(m.refresh, m.raw.astype(state.eigenvalue.dtype), state.eigenvalue)

    @staticmethod
    def converged(est) -> jax.Array:
        if isinstance(est, BatchSharpnessState):
            return jnp.isfinite(est.sample)  # a sample is exact (or O(eta)): nothing to converge
        return est.converged


def _check_tracking_args(c: Checker, *, schedule, fraction, hysteresis):
    if schedule is not None:  # a negative LR would train uphill
        schedule = held(as_schedule(c, "schedule", schedule, nonnegative=True))
    c.positive("fraction", fraction)
    c.nonnegative("hysteresis", hysteresis)
    return schedule


class CapHyperparams(NamedTuple):
    """Hyperparameters of :func:`sharpness_cap` (arrays: sweep them with ``vmap``)."""

    fraction: jax.Array
    kappa: jax.Array
    hysteresis: jax.Array
    max_value: jax.Array
    tol: jax.Array
    every: jax.Array
    decay: jax.Array
    quantile: jax.Array
    momentum: jax.Array
    b1: jax.Array


@lr_state
class SharpnessCapState(NamedTuple):
    """State of :func:`sharpness_cap`."""

    count: jax.Array  # () int32, updates done
    # () int32, updates skipped (LR 0, params and inner state kept): no estimate yet (a NaN
    # estimate) or a non-finite direction (a NaN batch)
    num_skipped: jax.Array
    lr: jax.Array  # () LR applied by the last update
    cap: jax.Array  # () fraction x critical LR after hysteresis (inf before the first estimate)
    eigenvalue: jax.Array  # () last raw estimate: batch-sharpness sample or Rayleigh quotient
    # () the curvature the LR used: max(upper quantile, own sample) of batch sharpness, or
    # lambda_max (conservative when not converged, EMA); NaN while there is no estimate
    sharpness: jax.Array
    converged: jax.Array  # () bool: the last estimate met tol (else sharpness is conservative)
    rho: jax.Array  # () lr * sharpness / c: 1 is the edge of stability
    init_lr: jax.Array  # () the LR chosen from lambda_0 (mode factor x critical LR)
    gen: jax.Array  # () EMA of the GeN step size g.d / d'Hd (mode "gen")
    # the estimator's memory; its type says the quantity capped: BatchSharpnessState (ring of
    # batch-sharpness samples) or TrackerState (warm-start vectors, key, certificate)
    curvature: BatchSharpnessState | TrackerState
    inner_state: Any  # the wrapped optimizer's state (None in chain mode)
    schedule: Schedule | None  # the base LR schedule, held whole (None: chosen from lambda_0)
    hyperparams: CapHyperparams


@renamed(learning_rate="schedule", ema="decay")
def sharpness_cap(
    optimizer: optax.GradientTransformation | None = None,
    *,
    schedule: Schedule | ArrayLike | None = None,
    loss_fn: Callable[..., jax.Array] | None = None,
    mode: str = "cap",
    fraction: ArrayLike = 0.9,
    kappa: ArrayLike = 1.5,
    quantity: str = "batch_sharpness",
    method: str = "forward_over_forward",
    kind: str = "gd",
    momentum: ArrayLike = 0.0,
    b1: ArrayLike = 0.9,
    every: ArrayLike = 1,
    window: int = 50,
    quantile: ArrayLike = 0.9,
    num_iters: int = 20,
    init_iters: int = 30,
    tol: ArrayLike = 1e-3,
    decay: ArrayLike = 0.0,
    hysteresis: ArrayLike = 0.05,
    max_value: ArrayLike | None = None,
    key: jax.Array | int = 0,
) -> optax.GradientTransformationExtraArgs:
    r"""Keeps the effective LR below the edge of stability of batch sharpness (or lambda_max).

    ``quantity="batch_sharpness"`` (the default, for minibatch training): every ``every``
    updates one sample of :func:`jaxlr.sharpness.batch_sharpness` is taken on this update's
    ``batch`` along this update's own direction :math:`d` (the wrapped optimizer's unit-LR
    update; :math:`s = d^\top H_B d / d^\top d`, for SGD :math:`g^\top H_B g/g^\top g`; for
    ``kind="adam"`` the preconditioned :math:`d^\top H_B d / d^\top P d` with P from the
    optimizer's state), by ``method`` (forward-over-forward by default, about one gradient; no
    Lanczos, no loop). Single-batch samples are noisy and heavy-tailed, so the value used is
    an upper quantile of the last ``window`` samples, or this update's own sample when larger:

    .. math::
        \bar\lambda_t = \max\bigl(Q_q(s_{t-w+1}, \dots, s_t),\ s_t\bigr)

    so a step whose own batch would rise (:math:`\eta s_t > c`) backs off at once, and the
    first update is safe (its own sample sets its LR: the cold start costs nothing extra) with
    ``method="forward_over_forward"`` or ``"hvp"``. With ``method="loss_rise"`` the sample is a
    secant at the probe LR: far past the edge on a saturating loss it reads close to
    :math:`2/\eta` and the LR shrinks only slowly (measured: step 1 at 24x the edge), so give it
    a safe ``schedule`` to start or use the default method. Under minibatch SGD batch
    sharpness, not :math:`\lambda_{\max}`, is what settles at
    :math:`2/\eta` (Andreyev & Beneventano): a healthy run often has
    :math:`\eta\lambda_{\max}(H_B) > 2`.

    ``quantity="lambda_max"`` (conservative: it bounds every direction, not the step's, at
    ~10-30 products per estimate): every ``every`` updates the top Hessian eigenvalue of the
    loss on this update's ``batch`` is estimated by the sharpness tracker
    (:func:`jaxlr.sharpness.tracker_update` with a block of 2: Rayleigh-Ritz on the previous
    eigenvector and a Krylov chain from it plus a random direction; a cold start of
    ``init_iters`` products first, then warm starts that stop once the relative residual is
    below ``tol``, at most ``num_iters`` products). The
    value used is the Rayleigh quotient :math:`\hat\lambda = \theta` when converged
    (:math:`r \le \mathrm{tol}\,|\theta|`, so :math:`|\theta - \lambda_i| \le r` for an
    eigenvalue) and, when not (``converged`` is False in the state), the upper estimate
    :math:`\hat\lambda = \max\bigl(\theta + r,\ \theta/(1-\epsilon_k)\bigr)`,
    :math:`\epsilon_k = \min\bigl(0.9, (\ln(1.648\sqrt n/0.01)/(2k-1))^2\bigr)` after
    :math:`k` Krylov steps (the products less the one of the carried eigenvector) on :math:`n`
    parameters, which bounds :math:`\lambda_{\max}` with
    99% probability for a random start (Kuczynski & Wozniakowski), smoothed by
    :math:`\bar\lambda \leftarrow \mu\bar\lambda + (1-\mu)\hat\lambda`. With the
    stability threshold :math:`c/\eta` of the optimizer (``kind``: :math:`c = 2` for GD,
    :math:`2+2\beta` heavy-ball, :math:`(2+2\beta)/(1+2\beta)` Nesterov,
    :math:`(2+2\beta_1)/(1-\beta_1)` Adam on the preconditioned operator
    :math:`P^{-1/2} H P^{-1/2}`) the critical LR is :math:`\eta_c = c/\bar\lambda` and

    .. math::
        \text{cap}: \eta_t = \min\bigl(\eta_{\text{base}}(t),\ C_t,\ \eta_{\max}\bigr),\quad
        C_t \approx f\,\eta_c \qquad
        \text{catapult}: \eta_t = \min(\kappa\,\eta_c(\lambda_0), \eta_{\max}) \qquad
        \text{gen}: \eta_t = \min\Bigl(\eta_{\text{base}}(t),\ C_t,\
        \overline{\tfrac{-g\cdot d}{d^\top H d}},\ \eta_{\max}\Bigr)

    :math:`C_t` follows :math:`f\eta_c` down at once and up only when :math:`f\eta_c` exceeds it
    by more than ``hysteresis`` (relative), so the LR does not chatter. ``rho`` records
    :math:`\eta_t\bar\lambda/c` with the :math:`\bar\lambda` the cap used (1 is the edge of
    stability). A zero or negative curvature sets no limit: the LR is the base LR, or
    :math:`\eta_{\max}` (``max_value``) when there is none, so it stays finite. The update is
    :math:`\eta_t d_t`; ``update`` needs ``params`` and the loss (``loss_fn=`` here or in the
    call) and takes ``batch=`` as data, so one compiled step serves every batch. While there is
    no estimate (a NaN loss at the first update) or the direction is not finite (a NaN batch),
    the update is skipped (LR 0, the wrapped optimizer's state kept) and counted in the
    state's ``num_skipped``.

    The estimate is the sharpness of the loss on the batch given. With a new minibatch per
    update and ``every=1`` (the default) it is the minibatch's own :math:`\lambda_{\max}` at
    these params; with ``every > 1`` pass a fixed probe batch (or the full data), since
    minibatch sharpness varies from batch to batch by far more than the cap's margin.
    Under ``vmap`` the ``lax.cond`` that skips the estimate between refreshes runs both branches.

    Args:
        optimizer: an Optax transform making the unit-LR direction from raw gradients
            (``optax.sgd(1.0, momentum=0.9)``, ``optax.adam(1.0)``); required for
            ``kind="adam"`` (its state gives :math:`P`; Optax keeps ``b1``/``b2``/``eps`` in a
            closure, so non-default ones must be injected, ``optax.inject_hyperparams(
            optax.adam)(learning_rate=1.0, b2=0.99)``, and ``b1`` passed here too: two probe
            updates at construction check the direction is :math:`\hat m/P` with the constants
            read, and refuse the optimizer otherwise). ``None``: a chain element that scales
            the incoming updates.
        schedule: the base LR (a number >= 0 or a jaxlr schedule), the LR capped; ``None``
            chooses it from :math:`\lambda_0`: :math:`f\eta_c(\lambda_0)` (cap),
            :math:`\kappa\eta_c(\lambda_0)` (catapult, which requires ``None``), unbounded (gen).
        loss_fn: the loss whose curvature is measured, ``loss_fn(params)`` or
            ``loss_fn(params, batch)``; it may also be passed to ``update`` (which wins).
            Build one from a flax NNX module with :func:`jaxlr.sharpness.nnx_loss`.
        quantity: ``"batch_sharpness"`` or ``"lambda_max"`` (static): what is capped. The
            state's ``curvature`` says which (a ``BatchSharpnessState`` ring of samples, or a
            ``TrackerState`` with the warm start and certificate) and ``sharpness`` holds the
            estimate used.
        method: how batch sharpness is sampled: ``"forward_over_forward"``, ``"hvp"`` or
            ``"loss_rise"`` (static; see :func:`jaxlr.sharpness.batch_sharpness`; the
            loss-rise probe is the LR this update would take without the new sample, 1.0
            before any LR is known).
        every: updates between estimates (a whole number >= 1); between them the last value is
            used (for batch sharpness: the quantile of the samples held).
        window: static number of batch-sharpness samples held, 1 to ``MAX_WINDOW`` = 10,000
            (the ring is sorted at every sample). The default 50 makes the 0.9 quantile a stable
            order statistic: with 20, the independent Monte-Carlo batch sharpness exceeded the
            edge on 2 of 30 measured steps of ``experiments/stochastic_stability.py`` at 3x the
            edge (1 of 3 batch orders); with 50, on none (3 batch orders).
        quantile: :math:`q` in [0, 1], the quantile of the held samples that is used. It is
            computed when a sample is taken and held until the next one, so a ``quantile``
            changed in a live state acts from the next sample (up to ``every`` steps later).
        num_iters: static maximum of products per lambda_max estimate; the loop stops
            (skipping the rest) once the relative residual is below ``tol``.
        init_iters: static product budget of the first (cold-start) lambda_max estimate.
        tol: relative residual that counts as converged (lambda_max).
        mode: ``"cap"``, ``"catapult"`` or ``"gen"`` (static).
        fraction: ``f`` > 0, the cap as a fraction of the critical LR.
        kappa: :math:`\kappa`, catapult LR in units of :math:`\eta_c(\lambda_0)`; the catapult
            phase of Lewkowycz et al. is :math:`1 < \kappa < 2` for GD.
        kind: ``"gd"``, ``"heavy_ball"``, ``"nesterov"`` or ``"adam"`` (static).
        momentum: :math:`\beta` of heavy-ball / Nesterov.
        b1: Adam's :math:`\beta_1`.
        decay: :math:`\mu` in [0, 1], the weight of the old value in the exponential moving
            average of the lambda_max estimates (and of the GeN step); 0 uses the last estimate.
        hysteresis: relative margin before the cap is raised again.
        max_value: :math:`\eta_{\max}` > 0, the largest LR ever applied; default: no bound
            beyond ``schedule`` when it is given, 1.0 when the LR comes from
            :math:`\lambda` (so flat or concave curvature gives a finite LR).
        key: int seed or PRNG key of the random starts (the state keeps its raw ``uint32``
            data, so it serializes).

    Returns:
        An ``optax.GradientTransformationExtraArgs`` with a :class:`SharpnessCapState`.

    Raises:
        ValueError: unknown ``mode``/``kind``, out-of-range numbers (a negative
            ``schedule`` included), ``every`` not a whole number, ``window`` above
            ``MAX_WINDOW`` (10,000), ``kind="adam"`` without an optimizer or with one whose
            direction is not :math:`\hat m/P` with the constants read (see ``optimizer``),
            ``schedule`` given with ``mode="catapult"``, a ``key`` that is not a PRNG key;
            at trace time, a missing loss or ``params``.

    Examples:
        >>> import jax, jax.numpy as jnp, optax, jaxlr
        >>> def loss(w, batch):  # H_B = mean(batch) * diag(4, 1)
        ...     return 0.5 * jnp.mean(batch) * (4.0 * w[0] ** 2 + w[1] ** 2)
        >>> tx = jaxlr.transforms.sharpness_cap(schedule=0.6, loss_fn=loss)
        >>> w = jnp.array([1.0, 0.0])  # g along the sharp axis: g'Hg / g'g = 4 * mean(batch)
        >>> state = tx.init(w)
        >>> @jax.jit
        ... def step(w, state, batch):
        ...     u, state = tx.update(-jax.grad(loss)(w, batch), state, w, batch=batch)
        ...     return optax.apply_updates(w, u), state
        >>> for b in (jnp.ones(4), jnp.full(4, 2.0)):  # one compiled step, two batches
        ...     w, state = step(w, state, b)
        >>> # samples 4, then 8: max(quantile_0.9(4, 8), 8) = 8 and 0.9 * 2 / 8 = 0.225
        >>> [round(float(x), 3) for x in (state.sharpness, state.lr, state.rho)]
        [8.0, 0.225, 0.9]

    References:
        Andreyev & Beneventano, Edge of Stochastic Stability: Revisiting the Edge of Stability
        for SGD, arXiv:2412.20553, 2024;
        Cohen et al., Gradient Descent on Neural Networks Typically Occurs at the Edge of
        Stability, ICLR 2021; Cohen et al., Adaptive Gradient Methods at the Edge of Stability,
        2022; Lewkowycz et al., The large learning rate phase of deep learning: the catapult
        mechanism, 2020; Bu & Xu, Gradient descent with generalized Newton's method (GeN),
        ICLR 2025; Kuczynski & Wozniakowski, Estimating the largest eigenvalue by the power and
        Lanczos algorithms with a random start, SIAM J. Matrix Anal. Appl. 1992.
    """
    c = Checker("sharpness_cap")
    if optimizer is not None:
        _check_unit_lr(c, optimizer, owner="sharpness_cap sets the LR and reports rho from it")
    c.choice("mode", mode, ("cap", "catapult", "gen"))
    base = _check_tracking_args(c, schedule=schedule, fraction=fraction, hysteresis=hysteresis)
    c.positive("kappa", kappa)
    if mode == "catapult" and base is not None:
        c.fail(
            f"mode='catapult' chooses the LR from lambda_0; schedule must be None, got "
            f"schedule={schedule!r}"
        )
    if max_value is None:
        max_value = jnp.inf if base is not None else 1.0
    else:
        c.positive("max_value", max_value)
    curv = _Curvature(
        c,
        optimizer,
        loss_fn=loss_fn,
        quantity=quantity,
        method=method,
        window=window,
        kind=kind,
        num_iters=num_iters,
        init_iters=init_iters,
        tol=tol,
        key=key,
        every=every,
        decay=decay,
        quantile=quantile,
        momentum=momentum,
        b1=b1,
    )
    hp = CapHyperparams(
        **floats(
            c.fn,
            fraction=fraction,
            kappa=kappa,
            hysteresis=hysteresis,
            max_value=max_value,
            tol=tol,
            every=every,
            decay=decay,
            quantile=quantile,
            momentum=momentum,
            b1=b1,
        )
    )

    def init_fn(params):
        curvature, inner = curv.init(params)
        nan = jnp.full_like(hp.fraction, jnp.nan)
        inf = jnp.full_like(hp.fraction, jnp.inf)
        lr = nan if base is None else jnp.minimum(as_float(base(0.0)), hp.max_value)
        return SharpnessCapState(
            jnp.zeros([], jnp.int32),
            jnp.zeros([], jnp.int32),
            lr,
            inf,
            nan,
            nan,
            jnp.asarray(False),
            nan,
            nan,
            nan,
            curvature,
            inner,
            base,
            hp,
        )

    def update_fn(updates, state, params=None, *, loss_fn=None, batch=None, **extra_args):
        h = state.hyperparams
        if state.schedule is not None:
            scheduled = as_float(state.schedule(state.count))
        else:
            scheduled = state.init_lr
        probe = jnp.minimum(jnp.minimum(scheduled, state.cap), h.max_value)
        m = curv.measure(updates, state, params, loss_fn, batch, extra_args, probe)
        loss_fn, direction, inner_state = m.loss_fn, m.direction, m.inner_state
        refresh, curvature, smooth, crit, none = m.refresh, m.est, m.lam, m.crit, m.none
        first = ~jnp.isfinite(state.sharpness) & ~none  # the first update with an estimate
        factor = h.kappa if mode == "catapult" else h.fraction
        init_lr = jnp.where(first, curv.times(factor, crit), state.init_lr)
        if state.schedule is not None:
            base_lr = scheduled
        elif mode == "gen":
            base_lr = jnp.full_like(init_lr, jnp.inf)
        else:
            base_lr = init_lr
        target = curv.times(h.fraction, crit)
        raise_cap = target > state.cap * (1.0 + h.hysteresis)
        cap = jnp.where((target < state.cap) | raise_cap | first, target, state.cap)
        cap = jnp.where(none, state.cap, cap)
        gen = state.gen
        if mode == "catapult":
            lr = base_lr
        else:
            lr = jnp.minimum(base_lr, cap)
        if mode == "gen":
            bound = bind_batch(loss_fn, batch, "sharpness_cap")
            grads = updates if curv.inner is not None else jax.grad(bound)(params)
            neg = jax.tree.map(jnp.negative, direction)

            def gen_step(_):
                return as_float(sharpness.gen_step_size(bound, params, grads, neg)).astype(
                    gen.dtype
                )

            raw = jax.lax.cond(refresh, gen_step, lambda _: gen, None)
            # NaN before the first estimate, inf when d'Hd <= 0: keep both out of the products
            ok = jnp.isfinite(raw) & ~first
            prev, now = jnp.where(ok, gen, 0.0), jnp.where(ok, raw, 0.0)
            mixed = jnp.where(ok, h.decay * prev + (1.0 - h.decay) * now, raw)
            gen = jnp.where(first, raw, jnp.where(refresh, mixed, gen))
            lr = jnp.minimum(lr, jnp.where(gen > 0, gen, lr))
        lr = jnp.where(none, 0.0, jnp.minimum(lr, h.max_value))
        direction, inner_state, num_skipped = curv.finish(m, state)
        # A skipped step's LR is 0 and so is its ratio (the public function refuses a zero LR,
        # which eagerly, outside jit, raised on a skipped step).
        safe_lr = jnp.where(none, 1.0, lr)
        rho = sharpness.stability_ratio(safe_lr, smooth, kind=kind, momentum=h.momentum, b1=h.b1)
        rho = jnp.where(none, 0.0, rho)
        new = SharpnessCapState(
            optax.safe_increment(state.count),
            num_skipped,
            lr,
            cap,
            curv.eigenvalue(m, state),
            smooth,
            curv.converged(curvature),
            as_float(rho).astype(lr.dtype),
            init_lr,
            gen,
            curvature,
            inner_state,
            state.schedule,
            h,
        )
        return scale_updates(direction, lr), new

    return optax.GradientTransformationExtraArgs(init_fn, update_fn)


class WarmupHyperparams(NamedTuple):
    """Hyperparameters of :func:`sharpness_warmup` (arrays: sweep them with ``vmap``)."""

    target: jax.Array
    growth: jax.Array
    init_value: jax.Array  # NaN: chosen from lambda_0 as init_ratio x critical LR
    init_ratio: jax.Array
    peak_value: jax.Array
    tol: jax.Array
    every: jax.Array
    decay: jax.Array
    quantile: jax.Array
    momentum: jax.Array
    b1: jax.Array


@lr_state
class SharpnessWarmupState(NamedTuple):
    """State of :func:`sharpness_warmup`."""

    count: jax.Array  # () int32, updates done
    num_skipped: jax.Array  # () int32, updates skipped (as in SharpnessCapState)
    lr: jax.Array  # () LR applied by the last update
    done: jax.Array  # () bool, warmup over (eta lambda reached the target, or the peak)
    end_step: jax.Array  # () the update at which warmup ended (0 until then)
    end_lr: jax.Array  # () the LR at the end of warmup; the after-schedule multiplies it
    eigenvalue: jax.Array  # () last raw estimate: batch-sharpness sample or Rayleigh quotient
    sharpness: jax.Array  # () the curvature the LR used (as in SharpnessCapState)
    converged: jax.Array  # () bool: the last estimate met tol
    rho: jax.Array  # () lr * sharpness / c
    curvature: BatchSharpnessState | TrackerState  # the estimator's memory (see the cap's)
    inner_state: Any  # the wrapped optimizer's state (None in chain mode)
    schedule: Schedule  # the after-warmup multiplier schedule, held whole
    hyperparams: WarmupHyperparams


@renamed(ema="decay")
def sharpness_warmup(
    optimizer: optax.GradientTransformation | None = None,
    *,
    schedule: Schedule | ArrayLike = 1.0,
    loss_fn: Callable[..., jax.Array] | None = None,
    target: ArrayLike = 0.9,
    growth: ArrayLike = 1.05,
    init_value: ArrayLike | None = None,
    init_ratio: ArrayLike = 0.1,
    peak_value: ArrayLike = 1.0,
    quantity: str = "batch_sharpness",
    method: str = "forward_over_forward",
    kind: str = "gd",
    momentum: ArrayLike = 0.0,
    b1: ArrayLike = 0.9,
    every: ArrayLike = 1,
    window: int = 50,
    quantile: ArrayLike = 0.9,
    num_iters: int = 20,
    init_iters: int = 30,
    tol: ArrayLike = 1e-3,
    decay: ArrayLike = 0.0,
    key: jax.Array | int = 0,
) -> optax.GradientTransformationExtraArgs:
    r"""A warmup of data-dependent length: the LR grows until :math:`\eta\lambda` hits a target.

    With :math:`\eta_c = c/\bar\lambda` the critical LR of the optimizer (see
    :func:`sharpness_cap`, whose estimator this shares) and
    :math:`\rho = \eta/\eta_c = \eta\bar\lambda/c`:

    .. math::
        \eta_0 = \min(I \ \text{or}\ r\,\eta_c(\lambda_0),\ \eta_{\text{peak}}), \qquad
        \eta_t = \min\bigl(\gamma\,\eta_{t-1},\ \rho^\star\eta_c(\bar\lambda_t),\ \eta_{\text{peak}}
        \bigr) \ \text{while warming up}

    Warmup ends at the first update where :math:`\eta_t = \rho^\star\eta_c` (for GD:
    :math:`\eta_t\lambda_t = 2\rho^\star`) or :math:`\eta_t = \eta_{\text{peak}}`; from then on
    :math:`\eta_t = \eta_{\text{end}}\, s(t - t_{\text{end}})`, where ``schedule`` ``s`` is a
    multiplier (``s(0) = 1`` continues smoothly; e.g. ``cosine(init_value=1.0, ...)``), held
    whole in the state. Because sharpness typically falls while the LR rises (and warmup exists
    to let it fall), the warmup lasts as long as the model needs rather than a fixed number of
    steps. A zero or negative curvature sets no limit: the LR grows to ``peak_value`` (from
    ``init_ratio * peak_value`` when the first sample is not positive). While
    there is no estimate (a NaN batch at the first update) the update is skipped (LR 0) and
    warmup neither starts nor ends.

    Args:
        optimizer, loss_fn, quantity, method, kind, momentum, b1, every, window, quantile,
            num_iters, init_iters, tol, decay, key: as in :func:`sharpness_cap` (by default the
            curvature is batch sharpness, :math:`\bar\lambda` its running upper quantile).
        schedule: multiplier after warmup (jaxlr schedule or number), evaluated at the steps
            since the handover.
        target: :math:`\rho^\star` > 0, the end point as a fraction of the critical LR.
        growth: :math:`\gamma` >= 1, the LR factor per update while warming up.
        init_value: :math:`\eta_0` > 0; ``None`` chooses :math:`r\,\eta_c(\lambda_0)`.
        init_ratio: :math:`r` > 0.
        peak_value: :math:`\eta_{\text{peak}}` > 0, the largest LR warmup reaches (it also ends
            warmup); finite, so flat or concave curvature gives a finite LR.

    Returns:
        An ``optax.GradientTransformationExtraArgs`` with a :class:`SharpnessWarmupState`.

    Raises:
        ValueError: out-of-range numbers (negative or infinite ``peak_value``, negative
            ``init_value``), unknown ``kind``, ``kind="adam"`` without optimizer, a ``key`` that
            is not a PRNG key; at trace time, a missing loss or ``params``.

    Examples:
        >>> import jax, jax.numpy as jnp, optax, jaxlr
        >>> loss = lambda w: 0.5 * (4.0 * w[0] ** 2 + w[1] ** 2)  # lambda_max = 4
        >>> tx = jaxlr.transforms.sharpness_warmup(target=0.8, growth=1.5, init_value=0.05)
        >>> w = jnp.array([1.0, 1.0])
        >>> state = tx.init(w)
        >>> step = jax.jit(lambda g, s, w: tx.update(-g, s, w, loss_fn=loss))
        >>> for _ in range(10):
        ...     u, state = step(jax.grad(loss)(w), state, w)
        ...     w = optax.apply_updates(w, u)
        >>> # 0.05 * 1.5**t first exceeds 0.8 * 2 / 4 = 0.4 at t = 6, where it stops at 0.4
        >>> bool(state.done), int(state.end_step), round(float(state.end_lr * 4.0), 3)
        (True, 6, 1.6)

    References:
        Kalra & Barkeshli, Why Warmup the Learning Rate? Underlying Mechanisms and Improvements,
        NeurIPS 2024; Gilmer et al., A Loss Curvature Perspective on Training Instabilities of
        Deep Learning Models, ICLR 2022 (arXiv 2021).
    """
    c = Checker("sharpness_warmup")
    if optimizer is not None:
        _check_unit_lr(c, optimizer, owner="sharpness_warmup sets the LR from the curvature")
    after = held(as_schedule(c, "schedule", schedule))
    c.positive("target", target)
    c.at_least("growth", growth, 1.0)
    if init_value is not None:
        c.positive("init_value", init_value)
    c.positive("init_ratio", init_ratio)
    c.positive("peak_value", peak_value)
    curv = _Curvature(
        c,
        optimizer,
        loss_fn=loss_fn,
        quantity=quantity,
        method=method,
        window=window,
        kind=kind,
        num_iters=num_iters,
        init_iters=init_iters,
        tol=tol,
        key=key,
        every=every,
        decay=decay,
        quantile=quantile,
        momentum=momentum,
        b1=b1,
    )
    hp = WarmupHyperparams(
        **floats(
            c.fn,
            target=target,
            growth=growth,
            init_value=jnp.nan if init_value is None else init_value,
            init_ratio=init_ratio,
            peak_value=peak_value,
            tol=tol,
            every=every,
            decay=decay,
            quantile=quantile,
            momentum=momentum,
            b1=b1,
        )
    )

    def init_fn(params):
        curvature, inner = curv.init(params)
        nan = jnp.full_like(hp.target, jnp.nan)
        return SharpnessWarmupState(
            jnp.zeros([], jnp.int32),
            jnp.zeros([], jnp.int32),
            nan,
            jnp.asarray(False),
            jnp.zeros([], jnp.int32),
            nan,
            nan,
            nan,
            jnp.asarray(False),
            nan,
            curvature,
            inner,
            after,
            hp,
        )

    def update_fn(updates, state, params=None, *, loss_fn=None, batch=None, **extra_args):
        h = state.hyperparams
        probe = jnp.where(
            state.done,
            jnp.where(state.done, state.end_lr, 0.0) * state.schedule(0.0),
            state.lr * h.growth,
        )
        m = curv.measure(updates, state, params, loss_fn, batch, extra_args, probe)
        curvature, smooth, crit, none = m.est, m.lam, m.crit, m.none
        first = ~jnp.isfinite(state.sharpness)  # no update has been taken yet
        # No limit yet (a zero or negative first sample): start at init_ratio x peak_value and
        # grow, measuring each step, rather than at peak_value (which would end warmup at once).
        from_crit = jnp.where(
            jnp.isfinite(crit), curv.times(h.init_ratio, crit), h.init_ratio * h.peak_value
        )
        start = jnp.where(jnp.isnan(h.init_value), from_crit, h.init_value)
        start = jnp.minimum(start, h.peak_value)
        grown = jnp.where(first, start, jnp.where(first, 0.0, state.lr) * h.growth)
        limit = jnp.minimum(curv.times(h.target, crit), h.peak_value)
        ends = ~state.done & (grown >= limit) & ~none
        warm_lr = jnp.minimum(grown, limit)
        done = state.done | ends
        end_step = jnp.where(ends, state.count, state.end_step)
        end_lr = jnp.where(ends, warm_lr, state.end_lr)
        since = as_float(jnp.maximum(state.count - end_step, 0))
        lr = jnp.where(done, jnp.where(done, end_lr, 0.0) * state.schedule(since), warm_lr)
        lr = jnp.where(none, 0.0, lr)
        direction, inner_state, num_skipped = curv.finish(m, state)
        # A skipped step applies LR 0 and its ratio is 0 (the public function refuses a zero LR,
        # which eagerly, outside jit, raised on a skipped step).
        safe_lr = jnp.where(none, 1.0, lr)
        rho = sharpness.stability_ratio(safe_lr, smooth, kind=kind, momentum=h.momentum, b1=h.b1)
        rho = jnp.where(none, 0.0, rho)
        new = SharpnessWarmupState(
            optax.safe_increment(state.count),
            num_skipped,
            lr,
            done,
            end_step,
            end_lr,
            curv.eigenvalue(m, state),
            smooth,
            curv.converged(curvature),
            as_float(rho).astype(lr.dtype),
            curvature,
            inner_state,
            state.schedule,
            h,
        )
        return scale_updates(direction, lr), new

    return optax.GradientTransformationExtraArgs(init_fn, update_fn)
