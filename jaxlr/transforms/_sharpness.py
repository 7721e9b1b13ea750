"""Curvature-driven LR control: the sharpness cap (with catapult and GeN modes) and warmup."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax
from jax.typing import ArrayLike

from jaxlr import sharpness
from jaxlr._src.numeric import as_float, safe_div
from jaxlr._src.validate import Checker
from jaxlr.schedules import Schedule
from jaxlr.transforms._common import (
    ScheduleSlot,
    as_schedule,
    floats,
    lr_state,
    require,
    require_params,
    scale_updates,
)

_KINDS = ("gd", "heavy_ball", "nesterov", "adam")


class _Curvature:
    """Static configuration of the warm-started lambda_max tracking shared by both transforms.

    Every ``every`` updates it advances the tracker of :mod:`jaxlr.sharpness` by ``num_iters``
    products (of the Hessian, or of :math:`P^{-1/2} H P^{-1/2}` for ``kind="adam"``, with ``P``
    read from the wrapped optimizer's state) and smooths the estimate with an EMA.
    """

    def __init__(self, c: Checker, optimizer, *, kind, num_iters, block_size, key, every, ema,
                 momentum, b1):
        c.choice("kind", kind, _KINDS)
        if not isinstance(num_iters, int) or num_iters < 1:
            c.fail(f"num_iters must be an int >= 1, got num_iters={num_iters!r}")
        if not isinstance(block_size, int) or not 2 <= block_size <= num_iters:
            c.fail(f"block_size must be an int in [2, num_iters], got block_size={block_size!r}, "
                   f"num_iters={num_iters!r}")
        if kind == "adam" and optimizer is None:
            c.fail("kind='adam' needs the optimizer whose state holds the preconditioner, "
                   "got optimizer=None")
        c.at_least("every", every, 1.0)
        c.between("ema", ema, 0.0, 1.0)
        c.between("momentum", momentum, 0.0, 1.0)
        c.between("b1", b1, 0.0, 1.0)
        self.kind, self.num_iters, self.block_size = kind, num_iters, block_size
        self.key = jax.random.PRNGKey(key) if isinstance(key, int) else key
        self.inner = None if optimizer is None else optax.with_extra_args_support(optimizer)
        self.hp = floats(every=every, ema=ema, momentum=momentum, b1=b1)

    def threshold_constant(self, h) -> jax.Array:
        """``c`` with stability threshold ``c / eta``: the critical LR is ``c / lambda``."""
        return sharpness.stability_threshold(1.0, kind=self.kind, momentum=h["momentum"],
                                             b1=h["b1"])

    @staticmethod
    def times(x: jax.Array, crit: jax.Array) -> jax.Array:
        """``x * crit`` where ``crit`` may be ``inf`` (no limit), with a finite gradient in ``x``
        (a bare product would give ``0 * inf = NaN`` through the branch a ``where`` drops)."""
        ok = jnp.isfinite(crit)
        return jnp.where(ok, x * jnp.where(ok, crit, 1.0), jnp.inf)

    def critical_lr(self, h, lam: jax.Array) -> jax.Array:
        """``c / lambda`` for ``lambda > 0``; ``inf`` (no limit) for a non-positive curvature."""
        return jnp.where(lam > 0, safe_div(self.threshold_constant(h), lam), jnp.inf)

    def init(self, params):
        size = sum(jnp.size(p) for p in jax.tree.leaves(params))
        # a block cannot be wider than the parameter space (tiny problems, tests)
        block = max(2, min(self.block_size, size))
        tracker = sharpness.tracker_init(params, key=self.key, block_size=block)
        inner = None if self.inner is None else self.inner.init(params)
        return tracker, inner

    def direction(self, updates, inner_state, params, extra):
        if self.inner is None:
            return updates, inner_state
        return self.inner.update(updates, inner_state, params, **extra)

    def matvec(self, loss_fn, params, inner_state) -> Callable | None:
        if self.kind != "adam":
            return None
        scale = jax.tree.map(lambda p: jax.lax.rsqrt(p),
                             sharpness.preconditioner(inner_state))

        def op(v):
            hv = sharpness.hvp(loss_fn, params, jax.tree.map(jnp.multiply, scale, v))
            return jax.tree.map(jnp.multiply, scale, hv)

        return op

    def refresh(self, state, loss_fn, params, inner_state):
        """(refreshed?, raw lambda, smoothed lambda, tracker) after this update."""
        h = state.hyperparams
        first = state.count == 0
        refresh = (jnp.mod(as_float(state.count), h["every"]) == 0) | first
        op = self.matvec(loss_fn, params, inner_state)

        def track(tracker):
            eig, tracker = sharpness.tracker_update(loss_fn, params, tracker,
                                                    num_iters=self.num_iters, matvec=op)
            return as_float(eig.eigenvalue).astype(state.eigenvalue.dtype), tracker

        lam, tracker = jax.lax.cond(refresh, track, lambda t: (state.eigenvalue, t),
                                    state.tracker)
        prev = jnp.where(first, 0.0, state.sharpness)  # NaN until the first estimate
        smooth = h["ema"] * prev + (1.0 - h["ema"]) * lam
        smooth = jnp.where(first, lam, jnp.where(refresh, smooth, state.sharpness))
        return refresh, lam, smooth, tracker


def _check_tracking_args(c: Checker, *, learning_rate, fraction, hysteresis):
    if learning_rate is not None:
        learning_rate = as_schedule(c, "learning_rate", learning_rate)
    c.positive("fraction", fraction)
    c.nonnegative("hysteresis", hysteresis)
    return learning_rate


@lr_state
class SharpnessCapState(NamedTuple):
    """State of :func:`sharpness_cap`."""

    count: jax.Array  # () int32, updates done
    lr: jax.Array  # () LR applied by the last update
    cap: jax.Array  # () fraction x critical LR after hysteresis (inf before the first estimate)
    eigenvalue: jax.Array  # () last raw lambda_max estimate
    sharpness: jax.Array  # () EMA of lambda_max
    rho: jax.Array  # () lambda / threshold(lr): 1 is the edge of stability
    init_lr: jax.Array  # () the LR chosen from lambda_0 (mode factor x critical LR)
    gen: jax.Array  # () EMA of the GeN step size g.d / d'Hd (mode "gen")
    tracker: Any  # jaxlr.sharpness.TrackerState, warm start of the eigenvector block
    inner_state: Any  # the wrapped optimizer's state (None in chain mode)
    schedule: dict[str, jax.Array]  # base LR schedule leaves (empty if chosen from lambda_0)
    hyperparams: dict[str, jax.Array]  # fraction, kappa, hysteresis, every, ema, momentum, b1


def sharpness_cap(
    optimizer: optax.GradientTransformation | None = None,
    *,
    learning_rate: ArrayLike | Schedule | None = None,
    mode: str = "cap",
    fraction: ArrayLike = 0.9,
    kappa: ArrayLike = 1.5,
    kind: str = "gd",
    momentum: ArrayLike = 0.0,
    b1: ArrayLike = 0.9,
    every: ArrayLike = 10,
    num_iters: int = 5,
    block_size: int = 3,
    ema: ArrayLike = 0.0,
    hysteresis: ArrayLike = 0.05,
    key: jax.Array | int = 0,
) -> optax.GradientTransformationExtraArgs:
    r"""Keeps the effective LR below the edge of stability measured by :math:`\lambda_{\max}`.

    Every ``every`` updates the top Hessian eigenvalue is re-estimated with a warm-started
    tracker (``num_iters`` Hessian-vector products) and smoothed,
    :math:`\bar\lambda \leftarrow \mu\bar\lambda + (1-\mu)\lambda`. With the stability
    threshold :math:`c/\eta` of the optimizer (``kind``: :math:`c = 2` for GD, :math:`2+2\beta`
    heavy-ball, :math:`(2+2\beta)/(1+2\beta)` Nesterov, :math:`(2+2\beta_1)/(1-\beta_1)` Adam on
    the preconditioned operator :math:`P^{-1/2} H P^{-1/2}`) the critical LR is
    :math:`\eta_c = c/\bar\lambda` and

    .. math::
        \text{cap}: \eta_t = \min\bigl(\eta_{\text{base}}(t),\ C_t\bigr),\quad
        C_t \approx f\,\eta_c \qquad
        \text{catapult}: \eta_t = \kappa\,\eta_c(\lambda_0) \qquad
        \text{gen}: \eta_t = \min\Bigl(\eta_{\text{base}}(t),\ C_t,\
        \overline{\tfrac{-g\cdot d}{d^\top H d}}\Bigr)

    :math:`C_t` follows :math:`f\eta_c` down at once and up only when :math:`f\eta_c` exceeds it
    by more than ``hysteresis`` (relative), so the LR does not chatter. ``rho`` records
    :math:`\eta_t\bar\lambda/c`, which is 1 at the edge of stability. The GeN step is measured
    along the unit-LR update :math:`d` and smoothed like :math:`\lambda`. The update is
    :math:`\eta_t d_t`; the call needs ``loss_fn=`` (the loss of ``params`` on the current batch,
    deterministic) and ``params``.

    Args:
        optimizer: an Optax transform making the unit-LR direction from raw gradients
            (``optax.sgd(1.0, momentum=0.9)``, ``optax.adam(1.0)``); required for
            ``kind="adam"`` (its state gives :math:`P`; Optax keeps ``b2``/``eps`` in a closure,
            so non-default ones must be injected: ``optax.inject_hyperparams(optax.adam)(
            learning_rate=1.0, b2=0.99)``). ``None``: a chain element that scales the incoming
            updates.
        learning_rate: the base LR (number or jaxlr schedule); ``None`` chooses it from
            :math:`\lambda_0`: :math:`f\eta_c(\lambda_0)` (cap), :math:`\kappa\eta_c(\lambda_0)`
            (catapult, which requires ``None``), unbounded (gen).
        mode: ``"cap"``, ``"catapult"`` or ``"gen"`` (static).
        fraction: ``f`` > 0, the cap as a fraction of the critical LR.
        kappa: :math:`\kappa`, catapult LR in units of :math:`\eta_c(\lambda_0)`; the catapult
            phase of Lewkowycz et al. is :math:`1 < \kappa < 2` for GD.
        kind: ``"gd"``, ``"heavy_ball"``, ``"nesterov"`` or ``"adam"`` (static).
        momentum: :math:`\beta` of heavy-ball / Nesterov.
        b1: Adam's :math:`\beta_1`.
        every: updates between estimates (>= 1).
        num_iters: Hessian-vector products per estimate (static).
        block_size: tracker block size (static).
        ema: :math:`\mu` in [0, 1]; 0 uses the last estimate.
        hysteresis: relative margin before the cap is raised again.
        key: PRNG key (or int seed) of the tracker's random start.

    Returns:
        An ``optax.GradientTransformationExtraArgs`` with a :class:`SharpnessCapState`.

    Raises:
        ValueError: unknown ``mode``/``kind``, out-of-range numbers, ``kind="adam"`` without an
            optimizer, ``learning_rate`` given with ``mode="catapult"``; at trace time, a missing
            ``loss_fn=`` or ``params``.

    Examples:
        >>> import jax, jax.numpy as jnp, optax, jaxlr
        >>> loss = lambda w: 0.5 * (4.0 * w[0] ** 2 + w[1] ** 2)  # lambda_max = 4
        >>> tx = jaxlr.transforms.sharpness_cap(learning_rate=0.6, fraction=0.9, every=1)
        >>> w = jnp.array([1.0, 1.0])
        >>> state = tx.init(w)
        >>> step = jax.jit(lambda g, s, w: tx.update(-g, s, w, loss_fn=loss))
        >>> for _ in range(20):
        ...     u, state = step(jax.grad(loss)(w), state, w)
        ...     w = optax.apply_updates(w, u)
        >>> [round(float(x), 3) for x in (state.sharpness, state.lr, state.rho)]
        [4.0, 0.45, 0.9]

    References:
        Cohen et al., Gradient Descent on Neural Networks Typically Occurs at the Edge of
        Stability, ICLR 2021; Cohen et al., Adaptive Gradient Methods at the Edge of Stability,
        2022; Lewkowycz et al., The large learning rate phase of deep learning: the catapult
        mechanism, 2020; Bu & Xu, Gradient descent with generalized Newton's method (GeN),
        ICLR 2025.
    """
    c = Checker("sharpness_cap")
    c.choice("mode", mode, ("cap", "catapult", "gen"))
    base = _check_tracking_args(c, learning_rate=learning_rate, fraction=fraction,
                                hysteresis=hysteresis)
    c.positive("kappa", kappa)
    if mode == "catapult" and base is not None:
        c.fail(f"mode='catapult' chooses the LR from lambda_0; learning_rate must be None, got "
               f"learning_rate={learning_rate!r}")
    curv = _Curvature(c, optimizer, kind=kind, num_iters=num_iters, block_size=block_size,
                      key=key, every=every, ema=ema, momentum=momentum, b1=b1)
    slot = None if base is None else ScheduleSlot(base)
    hp = {**curv.hp, **floats(fraction=fraction, kappa=kappa, hysteresis=hysteresis)}

    def init_fn(params):
        tracker, inner = curv.init(params)
        nan = jnp.full_like(hp["fraction"], jnp.nan)
        inf = jnp.full_like(hp["fraction"], jnp.inf)
        leaves = {} if slot is None else slot.init()
        lr = nan if slot is None else slot(leaves, 0)
        return SharpnessCapState(jnp.zeros([], jnp.int32), lr, inf, nan, nan, nan, nan, nan,
                                 tracker, inner, leaves, dict(hp))

    def update_fn(updates, state, params=None, *, loss_fn=None, **extra_args):
        require(c, "loss_fn", loss_fn)
        require_params(c, params)
        h = state.hyperparams
        direction, inner_state = curv.direction(updates, state.inner_state, params,
                                                {"loss_fn": loss_fn, **extra_args})
        refresh, lam, smooth, tracker = curv.refresh(state, loss_fn, params, inner_state)
        crit = curv.critical_lr(h, smooth)
        first = state.count == 0
        factor = h["kappa"] if mode == "catapult" else h["fraction"]
        init_lr = jnp.where(first, curv.times(factor, curv.critical_lr(h, lam)), state.init_lr)
        if slot is not None:
            base_lr = slot(state.schedule, state.count)
        elif mode == "gen":
            base_lr = jnp.full_like(init_lr, jnp.inf)
        else:
            base_lr = init_lr
        target = curv.times(h["fraction"], crit)
        raise_cap = target > state.cap * (1.0 + h["hysteresis"])
        cap = jnp.where((target < state.cap) | raise_cap | first, target, state.cap)
        gen = state.gen
        if mode == "catapult":
            lr = base_lr
        else:
            lr = jnp.minimum(base_lr, cap)
        if mode == "gen":
            grads = updates if curv.inner is not None else jax.grad(loss_fn)(params)
            neg = jax.tree.map(jnp.negative, direction)

            def gen_step(_):
                return as_float(sharpness.gen_step_size(loss_fn, params, grads, neg)).astype(
                    gen.dtype)

            raw = jax.lax.cond(refresh, gen_step, lambda _: gen, None)
            # NaN before the first estimate, inf when d'Hd <= 0: keep both out of the products
            ok = jnp.isfinite(raw) & ~first
            prev, now = jnp.where(ok, gen, 0.0), jnp.where(ok, raw, 0.0)
            mixed = jnp.where(ok, h["ema"] * prev + (1.0 - h["ema"]) * now, raw)
            gen = jnp.where(first, raw, jnp.where(refresh, mixed, gen))
            lr = jnp.minimum(lr, jnp.where(gen > 0, gen, lr))
        rho = sharpness.stability_ratio(lr, smooth, kind=kind, momentum=h["momentum"], b1=h["b1"])
        new = SharpnessCapState(optax.safe_increment(state.count), lr, cap, lam, smooth,
                                as_float(rho).astype(lr.dtype), init_lr, gen, tracker,
                                inner_state, state.schedule, h)
        return scale_updates(direction, lr), new

    return optax.GradientTransformationExtraArgs(init_fn, update_fn)


@lr_state
class SharpnessWarmupState(NamedTuple):
    """State of :func:`sharpness_warmup`."""

    count: jax.Array  # () int32, updates done
    lr: jax.Array  # () LR applied by the last update
    done: jax.Array  # () bool, warmup over (eta lambda reached the target, or the peak)
    end_step: jax.Array  # () the update at which warmup ended (0 until then)
    end_lr: jax.Array  # () the LR at the end of warmup; the after-schedule multiplies it
    eigenvalue: jax.Array  # () last raw lambda_max estimate
    sharpness: jax.Array  # () EMA of lambda_max
    rho: jax.Array  # () lambda / threshold(lr)
    tracker: Any  # jaxlr.sharpness.TrackerState
    inner_state: Any  # the wrapped optimizer's state (None in chain mode)
    schedule: dict[str, jax.Array]  # leaves of the after-warmup multiplier schedule
    hyperparams: dict[str, jax.Array]  # target, growth, init_value/init_ratio, peak_value, ...


def sharpness_warmup(
    optimizer: optax.GradientTransformation | None = None,
    *,
    schedule: Schedule | ArrayLike = 1.0,
    target: ArrayLike = 0.9,
    growth: ArrayLike = 1.05,
    init_value: ArrayLike | None = None,
    init_ratio: ArrayLike = 0.1,
    peak_value: ArrayLike = jnp.inf,
    kind: str = "gd",
    momentum: ArrayLike = 0.0,
    b1: ArrayLike = 0.9,
    every: ArrayLike = 1,
    num_iters: int = 5,
    block_size: int = 3,
    ema: ArrayLike = 0.0,
    key: jax.Array | int = 0,
) -> optax.GradientTransformationExtraArgs:
    r"""A warmup of data-dependent length: the LR grows until :math:`\eta\lambda` hits a target.

    With :math:`\eta_c = c/\bar\lambda` the critical LR of the optimizer (see
    :func:`sharpness_cap`) and :math:`\rho = \eta/\eta_c = \eta\bar\lambda/c`:

    .. math::
        \eta_0 = I \ \text{or}\ r\,\eta_c(\lambda_0), \qquad
        \eta_t = \min\bigl(\gamma\,\eta_{t-1},\ \rho^\star\eta_c(\bar\lambda_t),\ \eta_{\text{peak}}
        \bigr) \ \text{while warming up}

    Warmup ends at the first update where :math:`\eta_t = \rho^\star\eta_c` (for GD:
    :math:`\eta_t\lambda_t = 2\rho^\star`) or :math:`\eta_t = \eta_{\text{peak}}`; from then on
    :math:`\eta_t = \eta_{\text{end}}\, s(t - t_{\text{end}})`, where ``schedule`` ``s`` is a
    multiplier (``s(0) = 1`` continues smoothly; e.g. ``cosine(init_value=1.0, ...)``). Because
    sharpness typically falls while the LR rises (and warmup exists to let it fall), the warmup
    lasts as long as the model needs rather than a fixed number of steps.

    Args:
        optimizer, kind, momentum, b1, every, num_iters, block_size, ema, key: as in
            :func:`sharpness_cap`; ``loss_fn=`` and ``params`` are required in ``update``.
        schedule: multiplier after warmup (jaxlr schedule or number), evaluated at the steps
            since the handover.
        target: :math:`\rho^\star` > 0, the end point as a fraction of the critical LR.
        growth: :math:`\gamma` >= 1, the LR factor per update while warming up.
        init_value: :math:`\eta_0`; ``None`` chooses :math:`r\,\eta_c(\lambda_0)`.
        init_ratio: :math:`r` > 0.
        peak_value: an upper bound that also ends warmup.

    Returns:
        An ``optax.GradientTransformationExtraArgs`` with a :class:`SharpnessWarmupState`.

    Raises:
        ValueError: out-of-range numbers, unknown ``kind``, ``kind="adam"`` without optimizer;
            at trace time, a missing ``loss_fn=`` or ``params``.

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
    after = as_schedule(c, "schedule", schedule)
    c.positive("target", target)
    c.at_least("growth", growth, 1.0)
    if init_value is not None:
        c.positive("init_value", init_value)
    c.positive("init_ratio", init_ratio)
    c.number("peak_value", peak_value)
    curv = _Curvature(c, optimizer, kind=kind, num_iters=num_iters, block_size=block_size,
                      key=key, every=every, ema=ema, momentum=momentum, b1=b1)
    slot = ScheduleSlot(after)
    hp = {**curv.hp, **floats(target=target, growth=growth, init_ratio=init_ratio,
                              peak_value=peak_value,
                              init_value=jnp.nan if init_value is None else init_value)}

    def init_fn(params):
        tracker, inner = curv.init(params)
        nan = jnp.full_like(hp["target"], jnp.nan)
        return SharpnessWarmupState(jnp.zeros([], jnp.int32), nan, jnp.asarray(False),
                                    jnp.zeros([], jnp.int32), nan, nan, nan, nan, tracker, inner,
                                    slot.init(), dict(hp))

    def update_fn(updates, state, params=None, *, loss_fn=None, **extra_args):
        require(c, "loss_fn", loss_fn)
        require_params(c, params)
        h = state.hyperparams
        direction, inner_state = curv.direction(updates, state.inner_state, params,
                                                {"loss_fn": loss_fn, **extra_args})
        _, lam, smooth, tracker = curv.refresh(state, loss_fn, params, inner_state)
        crit = curv.critical_lr(h, smooth)
        first = state.count == 0
        start = jnp.where(jnp.isnan(h["init_value"]), curv.times(h["init_ratio"], crit),
                          h["init_value"])
        grown = jnp.where(first, start, jnp.where(first, 0.0, state.lr) * h["growth"])
        limit = jnp.minimum(curv.times(h["target"], crit), h["peak_value"])
        ends = ~state.done & (grown >= limit)
        warm_lr = jnp.minimum(grown, limit)
        done = state.done | ends
        end_step = jnp.where(ends, state.count, state.end_step)
        end_lr = jnp.where(ends, warm_lr, state.end_lr)
        since = jnp.maximum(state.count - end_step, 0)
        lr = jnp.where(done, jnp.where(done, end_lr, 0.0) * slot(state.schedule, since), warm_lr)
        rho = sharpness.stability_ratio(lr, smooth, kind=kind, momentum=h["momentum"], b1=h["b1"])
        new = SharpnessWarmupState(optax.safe_increment(state.count), lr, done, end_step, end_lr,
                                   lam, smooth, as_float(rho).astype(lr.dtype), tracker,
                                   inner_state, state.schedule, h)
        return scale_updates(direction, lr), new

    return optax.GradientTransformationExtraArgs(init_fn, update_fn)
