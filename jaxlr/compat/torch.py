r"""PyTorch's ``torch.optim.lr_scheduler`` under its own names, as jaxlr schedules.

Each constructor takes the scheduler's keyword arguments minus ``optimizer``, plus ``lr`` (the
optimizer's initial learning rate), and returns a :class:`jaxlr.schedules.Schedule` whose value
at step ``t`` equals ``scheduler.get_last_lr()[0]`` after ``t`` calls of ``scheduler.step()``.
Torch computes most of them recursively (each step multiplies the previous LR); jaxlr evaluates
the equal closed form, which agrees with the recursion to float rounding (checked against the
real torch in ``tests/parity``). ``ReduceLROnPlateau`` reacts to a metric, so it is an Optax
transform instead.

Known torch quirks are kept, because parity means parity (``docs/porting.md`` lists them):
``CosineAnnealingLR`` rises again after ``T_max``, ``ConstantLR``/``LinearLR`` with
``total_iters=0`` keep the start factor forever, ``ReduceLROnPlateau``'s relative threshold
misjudges negative metrics.
"""

from __future__ import annotations

import dataclasses
import inspect
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.typing import ArrayLike

from jaxlr._src import steps
from jaxlr._src.numeric import as_float, half_cosine, safe_div, safe_pow
from jaxlr._src.steps import elapsed, reached, to_float
from jaxlr._src.validate import Checker, concrete
from jaxlr.compat._common import callable_arg
from jaxlr.schedules import (
    Schedule,
    constant,
    cyclic,
    exponential,
    join,
    multistep,
    product,
    scale,
    sgdr,
    step,
    swa,
)
from jaxlr.transforms import reduce_on_plateau

__all__ = [
    "ChainedScheduler",
    "ConstantLR",
    "CosineAnnealingLR",
    "CosineAnnealingWarmRestarts",
    "CyclicLR",
    "ExponentialLR",
    "LRAndMomentum",
    "LambdaLR",
    "LinearLR",
    "MultiStepLR",
    "MultiplicativeLR",
    "OneCycleLR",
    "PolynomialLR",
    "ReduceLROnPlateau",
    "SWALR",
    "SequentialLR",
    "StepLR",
]


def _counts(milestones: Any, *, sort: bool = False) -> Any:
    """Milestones as a vector, exact when concrete (ints past float32's 2^24 stay ints)."""
    given = concrete(milestones)
    if given is None:
        m = jnp.asarray(milestones, dtype=float).reshape(-1)
        return jnp.sort(m) if sort else m
    m = np.asarray(given).reshape(-1)
    if m.dtype == object or m.dtype == bool:
        m = m.astype(np.float64)
    return np.sort(m) if sort else m


def _lr(c: Checker, lr: Any) -> None:
    c.finite("lr", lr)


def _peer_arguments(fn: Callable, name: str, kwargs: dict[str, Any]) -> dict[str, Any]:
    """``fn``'s keyword arguments filled with its defaults (a companion takes the same ones);
    the LR arguments a momentum schedule does not use may be left out."""
    sig = inspect.signature(fn)
    unknown = sorted(set(kwargs) - set(sig.parameters))
    if unknown:
        Checker(name).fail(f"unknown arguments {unknown}; it takes {fn.__name__}'s arguments")
    return {
        k: kwargs.get(k, p.default if p.default is not p.empty else None)
        for k, p in sig.parameters.items()
    }


class LRAndMomentum(NamedTuple):
    """A learning-rate schedule and its momentum co-schedule from one call (a pytree of two).

    Built by ``OneCycleLR.with_momentum(...)`` and ``CyclicLR.with_momentum(...)``, which take
    the scheduler's arguments once (``.momentum(...)`` alone needs them repeated). Both fields
    are schedules of the optimizer step; pass them to ``optax.inject_hyperparams``
    (``learning_rate=p.lr, momentum=p.momentum``, or ``b1=`` for Adam), as torch writes both
    into the optimizer.

    Examples:
        >>> from jaxlr.compat.torch import OneCycleLR
        >>> p = OneCycleLR.with_momentum(max_lr=1.0, total_steps=100)
        >>> [round(float(x), 4) for x in (p.lr(0), p.momentum(0), p.lr(29), p.momentum(29))]
        [0.04, 0.95, 1.0, 0.85]
    """

    lr: Schedule
    momentum: Schedule


# ---------------------------------------------------------------------------------------------
# LambdaLR, MultiplicativeLR


class LambdaLR(Schedule, name="torch.LambdaLR"):
    r"""``lr`` times a user factor of the step (``torch.optim.lr_scheduler.LambdaLR``).

    .. math:: \eta(t) = \eta_0\,f(t)

    Args:
        lr_lambda: ``f``, a jax-traceable function of the step (a float array holding integral
            values; torch passes a Python int). Static: it is part of the schedule's structure.
        lr: ``eta_0``, the optimizer's initial learning rate.

    Raises:
        ValueError: ``lr_lambda`` not callable, NaN ``lr``.

    Examples:
        >>> from jaxlr.compat.torch import LambdaLR
        >>> s = LambdaLR(lr_lambda=lambda t: 0.5 ** t, lr=1.0)
        >>> [float(s(t)) for t in (0, 1, 2)]
        [1.0, 0.5, 0.25]

    References:
        PyTorch ``torch.optim.lr_scheduler.LambdaLR``.
    """

    lr: ArrayLike
    lr_lambda: Callable[[jax.Array], ArrayLike]

    def check(self, c: Checker) -> None:
        callable_arg(c, "lr_lambda", self.lr_lambda)
        _lr(c, self.lr)

    def law(self, step):
        return jnp.broadcast_to(self.lr * jnp.asarray(self.lr_lambda(step), step.dtype), step.shape)


class MultiplicativeLR(Schedule, name="torch.MultiplicativeLR"):
    r"""Multiply the LR by a user factor at every step (``MultiplicativeLR``).

    .. math:: \eta(t) = \eta_0 \prod_{i=1}^{t} f(i)

    The product is a ``lax.fori_loop`` whose trip count is the step itself, so the schedule jits
    and vmaps over steps (a vmapped loop runs to the largest step), costs ``O(t)`` per value and
    is not reverse-mode differentiable in the step or ``f``'s closure; ``lr`` is.

    Args:
        lr_lambda: ``f``, a jax-traceable function of the step (static).
        lr: ``eta_0``.

    Raises:
        ValueError: ``lr_lambda`` not callable, NaN ``lr``.

    Examples:
        >>> from jaxlr.compat.torch import MultiplicativeLR
        >>> s = MultiplicativeLR(lr_lambda=lambda t: 0.5, lr=1.0)
        >>> [float(v) for v in s(jnp.arange(4))]
        [1.0, 0.5, 0.25, 0.125]

    References:
        PyTorch ``torch.optim.lr_scheduler.MultiplicativeLR``.
    """

    lr: ArrayLike
    lr_lambda: Callable[[jax.Array], ArrayLike]

    def check(self, c: Checker) -> None:
        callable_arg(c, "lr_lambda", self.lr_lambda)
        _lr(c, self.lr)

    def law(self, step):
        def one(t):
            def body(i, acc):
                return acc * jnp.asarray(self.lr_lambda(jnp.asarray(i, t.dtype)), t.dtype)

            return jax.lax.fori_loop(
                1, jnp.floor(t).astype(jnp.int32) + 1, body, jnp.ones((), t.dtype)
            )

        return self.lr * jax.vmap(one)(step.reshape(-1)).reshape(step.shape)


# ---------------------------------------------------------------------------------------------
# StepLR, MultiStepLR, ExponentialLR


def StepLR(*, step_size: ArrayLike, gamma: ArrayLike = 0.1, lr: ArrayLike) -> Schedule:
    r"""Multiply by ``gamma`` every ``step_size`` steps: native :func:`jaxlr.schedules.step`.

    .. math:: \eta(t) = \eta_0\,\gamma^{\lfloor t / S \rfloor}

    Args:
        step_size: ``S``, a positive integer (torch divides by it).
        gamma: ``gamma`` > 0 (torch also accepts ``gamma <= 0``; jaxlr's log-space law does not).
        lr: ``eta_0``.

    Raises:
        ValueError: ``step_size`` not a positive integer, ``gamma`` <= 0, NaN.

    Examples:
        >>> from jaxlr.compat.torch import StepLR
        >>> s = StepLR(step_size=30, gamma=0.1, lr=0.1)
        >>> [round(float(s(t)), 6) for t in (29, 30)]
        [0.1, 0.01]

    References:
        PyTorch ``StepLR``; He et al., Deep Residual Learning, 2016.
    """
    c = Checker("StepLR")
    c.integer("step_size", step_size, minimum=1)
    c.positive("gamma", gamma)
    _lr(c, lr)
    return step(init_value=lr, period_steps=step_size, decay_rate=gamma)


def MultiStepLR(*, milestones: Sequence[int], gamma: ArrayLike = 0.1, lr: ArrayLike) -> Schedule:
    r"""Multiply by ``gamma`` at each milestone: native :func:`jaxlr.schedules.multistep`.

    .. math:: \eta(t) = \eta_0\,\gamma^{\#\{i:\ m_i \le t\}}

    Milestones are sorted first; a repeated milestone applies ``gamma`` once per repetition,
    as torch's ``Counter`` does. No milestone gives a constant.

    Args:
        milestones: step indices (non-negative integers, any order).
        gamma: the factor, > 0.
        lr: ``eta_0``.

    Raises:
        ValueError: a negative or non-integer milestone, ``gamma`` <= 0, NaN.

    Examples:
        >>> from jaxlr.compat.torch import MultiStepLR
        >>> s = MultiStepLR(milestones=[20, 10], gamma=0.5, lr=1.0)
        >>> [float(s(t)) for t in (9, 10, 20)]
        [1.0, 0.5, 0.25]

    References:
        PyTorch ``MultiStepLR``.
    """
    c = Checker("MultiStepLR")
    m = _counts(milestones, sort=True)
    c.integer("milestones", m, minimum=0)
    c.positive("gamma", gamma)
    _lr(c, lr)
    if m.shape[0] == 0:
        return constant(value=lr)
    return multistep(init_value=lr, boundaries=m, decay_rate=gamma)


def ExponentialLR(*, gamma: ArrayLike, lr: ArrayLike) -> Schedule:
    r"""Multiply by ``gamma`` every step: native :func:`jaxlr.schedules.exponential`.

    .. math:: \eta(t) = \eta_0\,\gamma^{t}

    Args:
        gamma: ``gamma`` > 0.
        lr: ``eta_0``.

    Raises:
        ValueError: ``gamma`` <= 0, NaN.

    Examples:
        >>> from jaxlr.compat.torch import ExponentialLR
        >>> round(float(ExponentialLR(gamma=0.9, lr=1.0)(2)), 4)
        0.81

    References:
        PyTorch ``ExponentialLR``.
    """
    c = Checker("ExponentialLR")
    c.positive("gamma", gamma)
    _lr(c, lr)
    return exponential(init_value=lr, decay_rate=gamma, period_steps=1)


# ---------------------------------------------------------------------------------------------
# ConstantLR, LinearLR, PolynomialLR: torch's total_iters <= 0 keeps the first factor forever


class ConstantLR(Schedule, name="torch.ConstantLR", counts=("total_iters",)):
    r"""``lr * factor`` for the first ``total_iters`` steps, then ``lr`` (``ConstantLR``).

    .. math:: \eta(t) = \eta_0 f\ (t < N), \quad \eta_0\ (t \ge N)

    Torch quirk kept: with ``total_iters <= 0`` the factor is never undone. (With ``factor=0``
    torch divides by zero at step ``N``; jaxlr returns ``lr`` there.)

    Args:
        factor: ``f`` in [0, 1].
        total_iters: ``N``.
        lr: ``eta_0``.

    Raises:
        ValueError: ``factor`` outside [0, 1] (torch's check), NaN.

    Examples:
        >>> from jaxlr.compat.torch import ConstantLR
        >>> s = ConstantLR(factor=0.5, total_iters=3, lr=1.0)
        >>> [float(s(t)) for t in (0, 2, 3)]
        [0.5, 0.5, 1.0]

    References:
        PyTorch ``ConstantLR``.
    """

    lr: ArrayLike
    factor: ArrayLike = 1.0 / 3
    total_iters: ArrayLike = 5

    def check(self, c: Checker) -> None:
        c.between("factor", self.factor, 0.0, 1.0)
        c.finite("total_iters", self.total_iters)
        _lr(c, self.lr)

    def law(self, step):
        undone = reached(step, self.total_iters) & (self.total_iters > 0.0)
        return jnp.where(
            undone, self.lr * self.factor * safe_div(1.0, self.factor, 1.0), self.lr * self.factor
        )


class LinearLR(Schedule, name="torch.LinearLR", counts=("total_iters",)):
    r"""Linear factor from ``start_factor`` to ``end_factor`` over ``total_iters`` (``LinearLR``).

    .. math:: \eta(t) = \eta_0\bigl(s + (e - s)\min(t, N)/N\bigr)

    Torch quirk kept: with ``total_iters <= 0`` the factor stays ``start_factor``.

    Args:
        start_factor: ``s`` in (0, 1].
        end_factor: ``e`` in [0, 1].
        total_iters: ``N``.
        lr: ``eta_0``.

    Raises:
        ValueError: ``start_factor`` outside (0, 1] (so ``start_factor=0`` is rejected, as by
            torch), ``end_factor`` outside [0, 1], NaN.

    Examples:
        >>> from jaxlr.compat.torch import LinearLR
        >>> s = LinearLR(start_factor=0.5, total_iters=4, lr=1.0)
        >>> [float(s(t)) for t in (0, 2, 4, 9)]
        [0.5, 0.75, 1.0, 1.0]

    References:
        PyTorch ``LinearLR``.
    """

    lr: ArrayLike
    start_factor: ArrayLike = 1.0 / 3
    end_factor: ArrayLike = 1.0
    total_iters: ArrayLike = 5

    def check(self, c: Checker) -> None:
        c.between("start_factor", self.start_factor, 0.0, 1.0, open_lo=True)
        c.between("end_factor", self.end_factor, 0.0, 1.0)
        c.finite("total_iters", self.total_iters)
        _lr(c, self.lr)

    def law(self, step):
        p = jnp.clip(safe_div(to_float(step), self.total_iters), 0.0, 1.0)
        ramp = self.start_factor + (self.end_factor - self.start_factor) * p
        return self.lr * jnp.where(self.total_iters > 0.0, ramp, self.start_factor)


class PolynomialLR(Schedule, name="torch.PolynomialLR", counts=("total_iters",)):
    r"""Polynomial decay to 0 at ``total_iters``, then 0 (``PolynomialLR``).

    .. math:: \eta(t) = \eta_0\,(1 - \min(t, N)/N)^{p}

    The law of :func:`jaxlr.schedules.polynomial` with ``end_value=0``, plus torch's quirk that
    ``total_iters <= 0`` keeps ``lr`` forever.

    Args:
        total_iters: ``N``.
        power: ``p`` > 0.
        lr: ``eta_0``.

    Raises:
        ValueError: ``power`` <= 0 (torch divides by zero at ``N`` for ``p < 0``), NaN.

    Examples:
        >>> from jaxlr.compat.torch import PolynomialLR
        >>> s = PolynomialLR(total_iters=4, power=2.0, lr=1.0)
        >>> [float(s(t)) for t in (0, 2, 4, 8)]
        [1.0, 0.25, 0.0, 0.0]

    References:
        PyTorch ``PolynomialLR``.
    """

    lr: ArrayLike
    total_iters: ArrayLike = 5
    power: ArrayLike = 1.0

    def check(self, c: Checker) -> None:
        c.finite("total_iters", self.total_iters)
        c.positive("power", self.power)
        _lr(c, self.lr)

    def law(self, step):
        left = safe_div(jnp.maximum(-elapsed(step, self.total_iters), 0.0), self.total_iters, 1.0)
        return self.lr * jnp.where(self.total_iters > 0.0, safe_pow(left, self.power), 1.0)


# ---------------------------------------------------------------------------------------------
# cosine annealing


class CosineAnnealingLR(Schedule, name="torch.CosineAnnealingLR", counts=("T_max",)):
    r"""Cosine annealing from ``lr`` to ``eta_min`` over ``T_max`` steps (``CosineAnnealingLR``).

    .. math:: \eta(t) = \eta_{min} + (\eta_0 - \eta_{min})\,\tfrac12\bigl(1 + \cos(\pi t / T)\bigr)

    Torch quirk kept: the cosine is not clamped, so after ``T_max`` the LR rises back to ``lr``
    at ``2 T_max`` (period ``2 T_max``). :func:`jaxlr.schedules.cosine` is the clamped native
    form. Evaluated with a period-reduced :math:`\sin^2` so values near ``eta_min`` keep full
    relative precision in float32.

    Args:
        T_max: ``T`` > 0 (torch divides by it).
        eta_min: the floor.
        lr: ``eta_0``.

    Raises:
        ValueError: ``T_max`` <= 0, NaN.

    Examples:
        >>> from jaxlr.compat.torch import CosineAnnealingLR
        >>> s = CosineAnnealingLR(T_max=10, lr=1.0)
        >>> [round(float(s(t)), 4) for t in (0, 5, 10, 15, 20)]
        [1.0, 0.5, 0.0, 0.5, 1.0]

    References:
        Loshchilov & Hutter, SGDR, 2017; PyTorch ``CosineAnnealingLR``.
    """

    lr: ArrayLike
    T_max: ArrayLike
    eta_min: ArrayLike = 0.0

    def check(self, c: Checker) -> None:
        c.positive("T_max", self.T_max)
        c.finite("eta_min", self.eta_min)
        _lr(c, self.lr)

    def law(self, step):
        _, u = steps.divide(step, 2.0 * self.T_max)
        return self.eta_min + (self.lr - self.eta_min) * half_cosine(u, self.T_max)


def CosineAnnealingWarmRestarts(
    *, T_0: ArrayLike, T_mult: ArrayLike = 1, eta_min: ArrayLike = 0.0, lr: ArrayLike
) -> Schedule:
    r"""Cosine annealing with warm restarts: native :func:`jaxlr.schedules.sgdr`.

    Cycle ``i`` lasts :math:`T_0 m^i` steps; inside it, at :math:`u` steps from its start,

    .. math:: \eta = \eta_{min} + (\eta_0 - \eta_{min})\,\tfrac12\bigl(1 + \cos(\pi u / T_i)\bigr)

    Args:
        T_0: first period, a positive integer.
        T_mult: period growth ``m``, an integer >= 1 (torch rejects other values).
        eta_min: the floor.
        lr: ``eta_0``.

    Raises:
        ValueError: ``T_0`` not a positive integer, ``T_mult`` not an integer >= 1, NaN.

    Examples:
        >>> from jaxlr.compat.torch import CosineAnnealingWarmRestarts
        >>> s = CosineAnnealingWarmRestarts(T_0=10, T_mult=2, lr=1.0)
        >>> [round(float(s(t)), 4) for t in (0, 5, 10, 20, 30)]
        [1.0, 0.5, 1.0, 0.5, 1.0]

    References:
        Loshchilov & Hutter, SGDR, 2017; PyTorch ``CosineAnnealingWarmRestarts``.
    """
    c = Checker("CosineAnnealingWarmRestarts")
    c.integer("T_0", T_0, minimum=1)
    c.integer("T_mult", T_mult, minimum=1)
    c.finite("eta_min", eta_min)
    _lr(c, lr)
    return sgdr(peak_value=lr, period_steps=T_0, period_mult=T_mult, end_value=eta_min)


# ---------------------------------------------------------------------------------------------
# CyclicLR


def _check_cyclic(c: Checker, step_size_up, step_size_down, mode, scale_fn, scale_mode) -> None:
    c.positive("step_size_up", step_size_up)
    c.positive("step_size_down", step_size_down)
    if scale_fn is None:
        c.choice("mode", mode, ("triangular", "triangular2", "exp_range"))
    else:
        callable_arg(c, "scale_fn", scale_fn)
        c.choice("scale_mode", scale_mode, ("cycle", "iterations"))


def CyclicLR(
    *,
    base_lr: ArrayLike,
    max_lr: ArrayLike,
    step_size_up: ArrayLike = 2000,
    step_size_down: ArrayLike | None = None,
    mode: str = "triangular",
    gamma: ArrayLike = 1.0,
    scale_fn: Callable[[jax.Array], ArrayLike] | None = None,
    scale_mode: str = "cycle",
    cycle_momentum: bool = True,
    base_momentum: ArrayLike = 0.8,
    max_momentum: ArrayLike = 0.9,
    lr: ArrayLike | None = None,
) -> Schedule:
    r"""Cyclical learning rate (``CyclicLR``): native :func:`jaxlr.schedules.cyclic`.

    With :math:`C = U + D`, :math:`c = \lfloor 1 + t/C \rfloor`, :math:`x = 1 + t/C - c`,
    :math:`h = x/\rho` (:math:`x \le \rho = U/C`) else :math:`(x-1)/(\rho-1)`:

    .. math:: \eta(t) = b + (M - b)\,h\,g, \quad g = 1,\ 2^{1-c},\ \gamma^{t}\ \text{or}\
        \mathrm{scale\_fn}(c \text{ or } t)

    ``CyclicLR.momentum(...)`` (same arguments) returns the momentum co-schedule
    :math:`M_m - (M_m - b_m) h g` that torch writes into the optimizer's momentum or ``beta1``;
    ``CyclicLR.with_momentum(...)`` returns both as an :class:`LRAndMomentum`.

    Args:
        base_lr, max_lr: ``b`` and ``M``.
        step_size_up, step_size_down: ``U`` > 0 and ``D`` > 0 (``D`` defaults to ``U``).
        mode: ``"triangular"``, ``"triangular2"`` or ``"exp_range"``; ignored with ``scale_fn``.
        gamma: ``exp_range``'s factor per step.
        scale_fn: optional jax-traceable ``g`` (static), of the cycle or the step by
            ``scale_mode`` (``"cycle"`` or ``"iterations"``).
        cycle_momentum, base_momentum, max_momentum: used by ``CyclicLR.momentum``.
        lr: accepted and ignored, as torch ignores the optimizer's LR here.

    Raises:
        ValueError: unknown ``mode`` without ``scale_fn`` (torch's check), non-positive step
            sizes, NaN.

    Examples:
        >>> from jaxlr.compat.torch import CyclicLR
        >>> s = CyclicLR(base_lr=0.1, max_lr=1.0, step_size_up=10)
        >>> [round(float(s(t)), 4) for t in (0, 5, 10, 20)]
        [0.1, 0.55, 1.0, 0.1]
        >>> m = CyclicLR.momentum(base_lr=0.1, max_lr=1.0, step_size_up=10)
        >>> [round(float(m(t)), 4) for t in (0, 10)]
        [0.9, 0.8]

    References:
        Smith, Cyclical Learning Rates for Training Neural Networks, 2017; PyTorch ``CyclicLR``.
    """
    del cycle_momentum, base_momentum, max_momentum, lr
    down = step_size_up if step_size_down is None else step_size_down
    c = Checker("CyclicLR")
    _check_cyclic(c, step_size_up, down, mode, scale_fn, scale_mode)
    c.finite("base_lr", base_lr)
    c.finite("max_lr", max_lr)
    if scale_fn is not None:
        return ScaledCyclicLR(
            base_lr=base_lr,
            max_lr=max_lr,
            step_size_up=step_size_up,
            step_size_down=down,
            scale_fn=scale_fn,
            scale_mode=scale_mode,
        )
    return cyclic(
        init_value=base_lr,
        peak_value=max_lr,
        up_steps=step_size_up,
        down_steps=down,
        mode=mode,
        decay_rate=gamma,
    )


class ScaledCyclicLR(
    Schedule,
    name="torch.CyclicLR",
    counts=("step_size_up", "step_size_down"),
    constructor=CyclicLR,
):
    r""":func:`CyclicLR` with a user ``scale_fn``: torch's triangle times ``scale_fn`` of the
    cycle or the step (built by :func:`CyclicLR`, which takes torch's arguments).

    .. math:: \eta(t) = b + (M - b)\,h\,\mathrm{scale\_fn}(c \text{ or } t)

    Examples:
        >>> from jaxlr.compat.torch import CyclicLR, ScaledCyclicLR
        >>> s = CyclicLR(base_lr=0.0, max_lr=1.0, step_size_up=2, scale_fn=lambda c: 1.0 / c)
        >>> isinstance(s, ScaledCyclicLR), [float(s(t)) for t in (2, 6)]
        (True, [1.0, 0.5])
    """

    base_lr: ArrayLike
    max_lr: ArrayLike
    step_size_up: ArrayLike
    step_size_down: ArrayLike
    scale_fn: Callable[[jax.Array], ArrayLike]
    scale_mode: str = "cycle"

    def check(self, c: Checker) -> None:
        _check_cyclic(
            c, self.step_size_up, self.step_size_down, None, self.scale_fn, self.scale_mode
        )
        c.finite("base_lr", self.base_lr)
        c.finite("max_lr", self.max_lr)

    def law(self, step):
        # the native triangle (its law finds the cycle exactly for integer steps)
        h = cyclic(
            init_value=0.0,
            peak_value=1.0,
            up_steps=self.step_size_up,
            down_steps=self.step_size_down,
        ).law(step)
        if self.scale_mode == "cycle":
            x = steps.floor_div(step, steps.Sum(self.step_size_up, self.step_size_down)) + 1.0
        else:
            x = to_float(step)
        return self.base_lr + (self.max_lr - self.base_lr) * h * jnp.asarray(
            self.scale_fn(x), h.dtype
        )


def _cyclic_lr_momentum(**kwargs: Any) -> Schedule:
    r"""The momentum co-schedule of :func:`CyclicLR`, taking the same arguments.

    .. math:: \beta(t) = M_m - (M_m - b_m)\,h\,g

    :func:`CyclicLR` from ``max_momentum`` towards ``base_momentum``; like torch it takes any
    finite momenta (torch's own tests cycle between 1 and 5). With ``cycle_momentum=False`` torch
    never writes the momentum; this then returns the constant ``max_momentum`` (pass the
    optimizer's own momentum there).

    Examples:
        >>> from jaxlr.compat.torch import CyclicLR
        >>> m = CyclicLR.momentum(base_lr=0.1, max_lr=1.0, step_size_up=4, base_momentum=0.5)
        >>> [round(float(m(t)), 4) for t in (0, 2, 4)]
        [0.9, 0.7, 0.5]
    """
    a = _peer_arguments(CyclicLR, "CyclicLR.momentum", kwargs)
    c = Checker("CyclicLR.momentum")
    down = a["step_size_up"] if a["step_size_down"] is None else a["step_size_down"]
    _check_cyclic(c, a["step_size_up"], down, a["mode"], a["scale_fn"], a["scale_mode"])
    c.finite("base_momentum", a["base_momentum"])
    c.finite("max_momentum", a["max_momentum"])
    if not a["cycle_momentum"]:
        return constant(value=a["max_momentum"])
    # torch's momentum is its LR formula with the two ends swapped (any finite values, as in torch)
    a.update(base_lr=a.pop("max_momentum"), max_lr=a.pop("base_momentum"))
    del a["cycle_momentum"], a["lr"]
    return CyclicLR(**a)


CyclicLR.momentum = _cyclic_lr_momentum


def _cyclic_lr_with_momentum(**kwargs: Any) -> LRAndMomentum:
    """:func:`CyclicLR` and ``CyclicLR.momentum`` from one set of ``CyclicLR``'s arguments.

    Examples:
        >>> import jax.numpy as jnp, optax
        >>> from jaxlr.compat.torch import CyclicLR
        >>> p = CyclicLR.with_momentum(base_lr=0.01, max_lr=0.1, step_size_up=10)
        >>> tx = optax.inject_hyperparams(optax.sgd)(learning_rate=p.lr, momentum=p.momentum)
        >>> h = tx.init(jnp.zeros(2)).hyperparams
        >>> [round(float(h[k]), 4) for k in ("learning_rate", "momentum")]
        [0.01, 0.9]
    """
    return LRAndMomentum(CyclicLR(**kwargs), CyclicLR.momentum(**kwargs))


CyclicLR.with_momentum = _cyclic_lr_with_momentum


# ---------------------------------------------------------------------------------------------
# OneCycleLR: torch's knots sit one step before the native ones (at pct*T - 1 and T - 1)


def _one_cycle_phases(step, values, total_steps, pct_start, anneal_strategy, three_phase):
    """Torch's one-cycle phases through the knot ``values`` (the LR's or the momentum's)."""
    inside = steps.before(step, total_steps)  # from T on, the value at T
    up = total_steps * pct_start
    # knots as sums (steps.Sum): exact in integers where float32 cannot hold T - 1
    ends = (
        [steps.Sum(up, -1.0), steps.Sum(up * 2.0, -2.0), steps.Sum(total_steps, -1.0)]
        if three_phase
        else [steps.Sum(up, -1.0), steps.Sum(total_steps, -1.0)]
    )
    starts = [0.0, *ends[:-1]]

    def phase(i):
        a, b = values[i], values[i + 1]
        num = jnp.where(inside, elapsed(step, starts[i]), steps.value(total_steps - starts[i]))
        den = steps.value(ends[i] - starts[i])
        if anneal_strategy == "cos":
            return b + (a - b) * half_cosine(num, den)
        return (b - a) * safe_div(num, den) + a

    n = len(ends)
    out = phase(n - 1)  # the last phase also extrapolates to step T, as torch does
    for i in range(n - 2, -1, -1):
        within = jnp.where(inside, ~steps.passed(step, ends[i]), total_steps <= ends[i].value())
        out = jnp.where(within, phase(i), out)
    return out


def _check_one_cycle(
    c: Checker, total_steps, epochs, steps_per_epoch, pct_start, anneal_strategy, three_phase
):
    if total_steps is not None:
        c.integer("total_steps", total_steps, minimum=1)
    elif epochs is not None and steps_per_epoch is not None:
        c.integer("epochs", epochs, minimum=1)
        c.integer("steps_per_epoch", steps_per_epoch, minimum=1)
        total_steps = jnp.asarray(epochs) * jnp.asarray(steps_per_epoch)
    else:
        c.fail(
            "give total_steps, or epochs and steps_per_epoch (torch needs the cycle length), "
            f"got total_steps=None, epochs={epochs!r}, steps_per_epoch={steps_per_epoch!r}"
        )
    c.between("pct_start", pct_start, 0.0, 1.0)
    c.choice("anneal_strategy", anneal_strategy, ("cos", "linear"))
    c.choice("three_phase", three_phase, (False, True))
    up, total = concrete(pct_start), concrete(total_steps)
    if up is not None and total is not None and float(up * total) == 1.0:
        c.fail(
            f"pct_start * total_steps must not be 1 (torch's first phase would have length 0 "
            f"and divide by zero), got pct_start={up.item()!r}, total_steps={total.item()!r}"
        )
    return total_steps


class OneCycleLR(Schedule, name="torch.OneCycleLR", counts=("total_steps",)):
    r"""The one-cycle policy exactly as torch's ``OneCycleLR`` steps it.

    With :math:`I = M/d`, :math:`L = I/f` and :math:`u = pT`, the LR moves through the knots
    :math:`(0, I)`, :math:`(u - 1, M)`, :math:`(T - 1, L)` (three-phase: :math:`(u-1, M)`,
    :math:`(2u - 2, I)`, :math:`(T - 1, L)`), each phase annealed by
    :math:`\mathrm{cos}(a, b, q) = b + \tfrac12 (a - b)(1 + \cos \pi q)` or linearly, with
    :math:`q` the fraction of the phase done. Torch's last call (step ``T``) extrapolates the
    last phase to :math:`q > 1`; that value is kept. Torch raises past ``T``; jaxlr holds the
    value at ``T``. The native :func:`jaxlr.schedules.one_cycle` puts the knots at :math:`pT`
    and :math:`T` instead.

    ``OneCycleLR.momentum(...)`` (same arguments) gives the momentum co-schedule through
    :math:`(0, M_m)`, :math:`(u - 1, b_m)`, :math:`(T - 1, M_m)`;
    ``OneCycleLR.with_momentum(...)`` returns both as an :class:`LRAndMomentum`.

    Args:
        max_lr: ``M``.
        total_steps: ``T``; or give ``epochs`` and ``steps_per_epoch`` (``T`` is their product).
        pct_start: ``p`` in [0, 1].
        anneal_strategy: ``"cos"`` or ``"linear"`` (static).
        div_factor, final_div_factor: ``d`` and ``f``.
        three_phase: torch's three-phase form (static).
        cycle_momentum, base_momentum, max_momentum: used by ``OneCycleLR.momentum``.
        lr: accepted and ignored (torch sets the start LR from ``max_lr / div_factor``).

    Raises:
        ValueError: no length (torch's check), non-integer or non-positive lengths,
            ``pct_start`` outside [0, 1], ``pct_start * total_steps == 1``, unknown strategy.

    Examples:
        >>> from jaxlr.compat.torch import OneCycleLR
        >>> s = OneCycleLR(max_lr=1.0, total_steps=101, pct_start=0.2, anneal_strategy="linear",
        ...                div_factor=10.0, final_div_factor=10.0)
        >>> [round(float(s(t)), 4) for t in (0, 19.2, 100)]
        [0.1, 1.0, 0.01]

    References:
        Smith & Topin, Super-Convergence, 2018; PyTorch ``OneCycleLR``.
    """

    max_lr: ArrayLike
    total_steps: ArrayLike | None = None
    pct_start: ArrayLike = 0.3
    div_factor: ArrayLike = 25.0
    final_div_factor: ArrayLike = 1e4
    anneal_strategy: str = "cos"
    three_phase: bool = False
    # torch's arguments that only size the cycle or serve the momentum co-schedule
    epochs: dataclasses.InitVar[ArrayLike | None] = None
    steps_per_epoch: dataclasses.InitVar[ArrayLike | None] = None
    cycle_momentum: dataclasses.InitVar[bool] = True
    base_momentum: dataclasses.InitVar[ArrayLike] = 0.85
    max_momentum: dataclasses.InitVar[ArrayLike] = 0.95
    lr: dataclasses.InitVar[ArrayLike | None] = None

    def check(self, c: Checker, epochs, steps_per_epoch, *unused) -> None:
        total = _check_one_cycle(
            c,
            self.total_steps,
            epochs,
            steps_per_epoch,
            self.pct_start,
            self.anneal_strategy,
            self.three_phase,
        )
        self._set("total_steps", total)
        c.finite("max_lr", self.max_lr)
        c.positive("div_factor", self.div_factor)
        c.positive("final_div_factor", self.final_div_factor)

    def law(self, step):
        start = self.max_lr / self.div_factor
        low = start / self.final_div_factor
        values = [start, self.max_lr, start, low] if self.three_phase else [start, self.max_lr, low]
        return _one_cycle_phases(
            step, values, self.total_steps, self.pct_start, self.anneal_strategy, self.three_phase
        )


def _one_cycle_lr_momentum(**kwargs: Any) -> Schedule:
    r"""The momentum co-schedule of :func:`OneCycleLR`, taking the same arguments.

    Knots :math:`(0, M_m)`, :math:`(pT - 1, b_m)`, :math:`(T - 1, M_m)` (three-phase adds
    :math:`(2pT - 2, M_m)`), annealed like the LR. With ``cycle_momentum=False`` torch never
    writes the momentum; this then returns the constant ``max_momentum``.

    Examples:
        >>> from jaxlr.compat.torch import OneCycleLR
        >>> m = OneCycleLR.momentum(max_lr=1.0, total_steps=101, pct_start=0.2)
        >>> [round(float(m(t)), 4) for t in (0, 19.2, 100)]
        [0.95, 0.85, 0.95]
    """
    a = _peer_arguments(OneCycleLR, "OneCycleLR.momentum", kwargs)
    c = Checker("OneCycleLR.momentum")
    total = _check_one_cycle(
        c,
        a["total_steps"],
        a["epochs"],
        a["steps_per_epoch"],
        a["pct_start"],
        a["anneal_strategy"],
        a["three_phase"],
    )
    c.finite("base_momentum", a["base_momentum"])
    c.finite("max_momentum", a["max_momentum"])
    if not a["cycle_momentum"]:
        return constant(value=a["max_momentum"])
    return OneCycleLRMomentum(
        total_steps=total,
        pct_start=a["pct_start"],
        base_momentum=a["base_momentum"],
        max_momentum=a["max_momentum"],
        anneal_strategy=a["anneal_strategy"],
        three_phase=a["three_phase"],
    )


class OneCycleLRMomentum(
    Schedule,
    name="torch.OneCycleLR.momentum",
    counts=("total_steps",),
    constructor=_one_cycle_lr_momentum,
):
    r"""The momentum co-schedule of :class:`OneCycleLR` (built by ``OneCycleLR.momentum``,
    which takes ``OneCycleLR``'s arguments): knots :math:`(0, M_m)`, :math:`(pT - 1, b_m)`,
    :math:`(T - 1, M_m)`, annealed like the LR.

    Examples:
        >>> from jaxlr.compat.torch import OneCycleLR, OneCycleLRMomentum
        >>> m = OneCycleLRMomentum(total_steps=101, pct_start=0.2)
        >>> m == OneCycleLR.momentum(max_lr=1.0, total_steps=101, pct_start=0.2)
        True
    """

    total_steps: ArrayLike
    pct_start: ArrayLike = 0.3
    base_momentum: ArrayLike = 0.85
    max_momentum: ArrayLike = 0.95
    anneal_strategy: str = "cos"
    three_phase: bool = False

    def check(self, c: Checker) -> None:
        _check_one_cycle(
            c, self.total_steps, None, None, self.pct_start, self.anneal_strategy, self.three_phase
        )
        c.finite("base_momentum", self.base_momentum)
        c.finite("max_momentum", self.max_momentum)

    def law(self, step):
        values = [self.max_momentum, self.base_momentum, self.max_momentum, self.max_momentum]
        values = values[: 4 if self.three_phase else 3]
        return _one_cycle_phases(
            step, values, self.total_steps, self.pct_start, self.anneal_strategy, self.three_phase
        )


OneCycleLR.momentum = staticmethod(_one_cycle_lr_momentum)


def _one_cycle_lr_with_momentum(**kwargs: Any) -> LRAndMomentum:
    """:func:`OneCycleLR` and ``OneCycleLR.momentum`` from one set of ``OneCycleLR``'s arguments.

    Examples:
        >>> import jax.numpy as jnp, optax
        >>> from jaxlr.compat.torch import OneCycleLR
        >>> p = OneCycleLR.with_momentum(max_lr=0.1, total_steps=100)
        >>> tx = optax.inject_hyperparams(optax.sgd)(learning_rate=p.lr, momentum=p.momentum)
        >>> h = tx.init(jnp.zeros(2)).hyperparams
        >>> [round(float(h[k]), 4) for k in ("learning_rate", "momentum")]
        [0.004, 0.95]
    """
    return LRAndMomentum(OneCycleLR(**kwargs), OneCycleLR.momentum(**kwargs))


OneCycleLR.with_momentum = staticmethod(_one_cycle_lr_with_momentum)


# ---------------------------------------------------------------------------------------------
# SWALR, SequentialLR, ChainedScheduler


def SWALR(
    *,
    swa_lr: ArrayLike,
    anneal_epochs: ArrayLike = 10,
    anneal_strategy: str = "cos",
    lr: ArrayLike,
) -> Schedule:
    r"""Anneal from ``lr`` to ``swa_lr`` (``torch.optim.swa_utils.SWALR``): native
    :func:`jaxlr.schedules.swa`.

    .. math:: \eta(t) = S\,\alpha + \eta_0 (1 - \alpha), \quad
        \alpha = a\bigl(\min(1, t/A)\bigr),\ a(x) = \tfrac12(1 - \cos \pi x)\ \text{or}\ x

    Torch recovers :math:`\eta_0` from the previous LR at each step; the closed form is equal.
    Inside torch's ``SequentialLR`` a SWALR starts from the LR current at its milestone: pass
    that value as ``lr``.

    Args:
        swa_lr: ``S``.
        anneal_epochs: ``A``, an integer >= 0 (0 jumps to ``swa_lr`` at once).
        anneal_strategy: ``"cos"`` or ``"linear"``.
        lr: ``eta_0``, the LR when SWA starts.

    Raises:
        ValueError: ``anneal_epochs`` not an integer >= 0, unknown strategy (torch's checks), NaN.

    Examples:
        >>> from jaxlr.compat.torch import SWALR
        >>> s = SWALR(swa_lr=0.5, anneal_epochs=10, lr=1.0)
        >>> [round(float(s(t)), 4) for t in (0, 5, 10)]
        [1.0, 0.75, 0.5]

    References:
        Izmailov et al., Averaging Weights Leads to Wider Optima, 2018; PyTorch ``SWALR``.
    """
    c = Checker("SWALR")
    c.integer("anneal_epochs", anneal_epochs, minimum=0)
    c.choice("anneal_strategy", anneal_strategy, ("cos", "linear"))
    c.finite("swa_lr", swa_lr)
    _lr(c, lr)
    return swa(
        init_value=lr,
        swa_value=swa_lr,
        anneal_steps=anneal_epochs,
        shape="cosine" if anneal_strategy == "cos" else "linear",
    )


def SequentialLR(
    *, schedulers: Sequence[Schedule], milestones: Sequence[int], lr: ArrayLike | None = None
) -> Schedule:
    r"""Run schedules one after another (``SequentialLR``): native :func:`jaxlr.schedules.join`.

    .. math:: \eta(t) = s_i(t - m_{i-1}) \quad (m_{i-1} \le t < m_i)

    At a milestone torch restarts the next scheduler at its epoch 0 (closed form), so each
    schedule runs on its own clock from its milestone on; the switch happens at ``t = m``.

    Args:
        schedulers: compat (or native) schedules, built with the same ``lr``.
        milestones: ``len(schedulers) - 1`` sorted integer steps.
        lr: accepted and ignored (the schedules carry it).

    Raises:
        ValueError: no schedule, a milestone count other than ``len(schedulers) - 1`` (torch's
            checks), unsorted milestones, a ``MultiplicativeLR`` after the first position (torch
            then multiplies the previous schedule's last LR; not reproduced).

    Examples:
        >>> from jaxlr.compat.torch import ConstantLR, ExponentialLR, SequentialLR
        >>> s = SequentialLR(schedulers=[ConstantLR(factor=0.1, total_iters=2, lr=1.0),
        ...                              ExponentialLR(gamma=0.9, lr=1.0)], milestones=[2])
        >>> [round(float(s(t)), 4) for t in (0, 1, 2, 3)]
        [0.1, 0.1, 1.0, 0.9]

    References:
        PyTorch ``SequentialLR``.
    """
    del lr
    c = Checker("SequentialLR")
    schedulers = list(schedulers)
    if not schedulers:
        c.fail("schedulers must hold at least one scheduler, got 0")
    m = _counts(milestones)
    if m.shape[0] != len(schedulers) - 1:
        c.fail(
            f"len(milestones) must be len(schedulers) - 1 = {len(schedulers) - 1}, got "
            f"milestones={list(milestones)!r}"
        )
    for i, s in enumerate(schedulers):
        if not isinstance(s, Schedule):
            c.fail(f"schedulers[{i}] must be a jaxlr schedule, got {s!r}")
        if i > 0 and s.name == "torch.MultiplicativeLR":
            c.fail(
                f"schedulers[{i}] is a MultiplicativeLR, which torch restarts from the "
                "previous schedule's LR; put it first or use LambdaLR"
            )
    c.integer("milestones", m, minimum=0)
    if len(schedulers) == 1:
        return schedulers[0]
    return join(schedulers, boundaries=m)


_FACTOR_SCHEDULES = (
    "step",
    "multistep",
    "constant",
    "exponential",
    "torch.ConstantLR",
    "torch.LinearLR",
    "torch.PolynomialLR",
    "torch.MultiplicativeLR",
)


def ChainedScheduler(*, schedulers: Sequence[Schedule], lr: ArrayLike) -> Schedule:
    r"""Step several schedulers together (``ChainedScheduler``): a native
    :func:`jaxlr.schedules.product` of their factors.

    .. math:: \eta(t) = \eta_0 \prod_i \frac{s_i(t)}{\eta_0}

    Torch's chaining multiplies the factors only for schedulers whose step multiplies the current
    LR: ``StepLR``, ``MultiStepLR``, ``ConstantLR``, ``LinearLR``, ``ExponentialLR``,
    ``PolynomialLR`` and ``MultiplicativeLR``. The others set the LR from their own base LR
    (``LambdaLR``, ``CyclicLR``, ``OneCycleLR``, warm restarts, ``SWALR``) or add to it
    (``CosineAnnealingLR`` past ``T_max``), so torch's chained result depends on their order;
    they are rejected. Chain native schedules with :func:`jaxlr.schedules.product` instead.

    Args:
        schedulers: compat schedules built with this ``lr``.
        lr: ``eta_0``, the optimizer's initial LR.

    Raises:
        ValueError: no scheduler (torch's check), or one whose step is not a multiplication.

    Examples:
        >>> from jaxlr.compat.torch import ChainedScheduler, ConstantLR, ExponentialLR
        >>> s = ChainedScheduler(schedulers=[ConstantLR(factor=0.1, total_iters=2, lr=1.0),
        ...                                  ExponentialLR(gamma=0.9, lr=1.0)], lr=1.0)
        >>> [round(float(s(t)), 4) for t in (0, 1, 2)]
        [0.1, 0.09, 0.81]

    References:
        PyTorch ``ChainedScheduler``.
    """
    c = Checker("ChainedScheduler")
    schedulers = list(schedulers)
    if not schedulers:
        c.fail("schedulers must hold at least one scheduler, got 0")
    for i, s in enumerate(schedulers):
        if not (isinstance(s, Schedule) and s.name in _FACTOR_SCHEDULES):
            c.fail(
                f"schedulers[{i}] must be a scheduler whose step multiplies the LR (StepLR, "
                "MultiStepLR, ConstantLR, LinearLR, ExponentialLR, PolynomialLR, "
                "MultiplicativeLR); torch's chain of the others depends on their order, "
                f"got {s!r}"
            )
    _lr(c, lr)
    if len(schedulers) == 1:
        return schedulers[0]
    return scale(product(schedulers), factor=safe_div(1.0, as_float(lr)) ** (len(schedulers) - 1))


# ---------------------------------------------------------------------------------------------
# ReduceLROnPlateau


def ReduceLROnPlateau(
    *,
    lr: ArrayLike,
    mode: str = "min",
    factor: ArrayLike = 0.1,
    patience: ArrayLike = 10,
    threshold: ArrayLike = 1e-4,
    threshold_mode: str = "rel",
    cooldown: ArrayLike = 0,
    min_lr: ArrayLike = 0.0,
    eps: ArrayLike = 1e-8,
    steps_per_epoch: int | None = None,
    observe_in_update: bool = True,
) -> optax.GradientTransformationExtraArgs:
    r"""Torch's ``ReduceLROnPlateau`` as an Optax transform that scales updates by the LR.

    It is :func:`jaxlr.transforms.reduce_on_plateau` with torch's arguments: ``lr`` is
    ``init_value``, ``min_lr`` is ``min_value``, ``eps`` is ``min_decrease``, and torch's
    relative threshold is ``threshold_mode="signed_rel"``. ``update(updates, state,
    params=None, *, value)`` first takes in ``value`` exactly as ``scheduler.step(value)`` does,
    then multiplies ``updates`` by the resulting LR, so after values :math:`v_1 \dots v_t` the
    scale is torch's ``get_last_lr()[0]``. Per value: improvement is :math:`v < b(1 - \theta)`
    (min, rel), :math:`v < b - \theta` (min, abs), :math:`v > b(1 + \theta)` (max, rel) or
    :math:`v > b + \theta` (max, abs); without it the bad-step count grows; during cooldown it
    is reset; when it exceeds ``patience`` the LR becomes :math:`\max(\eta f, \eta_{min})` (if
    that lowers it by more than ``eps``) and cooldown starts.

    Torch's per-epoch loop (``for epoch: train; scheduler.step(val_loss)``) is
    ``steps_per_epoch=k``: pass the last finished epoch's metric at every update; it is taken
    in at the first update of each epoch after the first, and every update is scaled, so the
    LR of each training step equals torch's. Or, at any cadence: ``observe_in_update=False``
    and ``jaxlr.transforms.observe(state, val_loss)`` where torch calls ``scheduler.step``.

    Torch quirk kept: in ``rel`` mode with negative metrics :math:`b(1 - \theta)` lies *above*
    ``b`` in min mode (and :math:`b(1 + \theta)` *below* it in max mode), so a slightly worse
    value counts as an improvement. The native ``threshold_mode="rel"`` is negative-safe. Deliberate
    difference: a NaN or infinite metric is skipped (counted in ``state.num_skipped``), where
    torch counts NaN as a bad epoch and lets ``-inf`` become ``best`` for good.

    Args:
        lr: the optimizer's initial learning rate.
        mode: ``"min"`` or ``"max"`` (static).
        factor: ``f`` < 1.
        patience: bad steps tolerated before a reduction.
        threshold: ``theta``.
        threshold_mode: ``"rel"`` or ``"abs"`` (static).
        cooldown: steps after a reduction during which bad steps are not counted.
        min_lr: ``eta_min``, the floor.
        eps: the smallest reduction applied.
        steps_per_epoch: ``None`` (every update takes in ``value``) or the updates per epoch.
        observe_in_update: ``False``: updates take no ``value=`` (use
            ``jaxlr.transforms.observe``).

    Returns:
        An ``optax.GradientTransformationExtraArgs`` with a
        :class:`jaxlr.transforms.PlateauState`: the current LR is ``state.lr`` (and
        ``jaxlr.transforms.current_lr`` reads it in any chain), every numeric hyperparameter is
        an array in ``state.hyperparams``, so they can be traced (jit, vmap over a sweep).

    Raises:
        ValueError: ``factor`` >= 1 and unknown modes (torch's checks), NaN.

    Examples:
        >>> import jax.numpy as jnp
        >>> from jaxlr.compat.torch import ReduceLROnPlateau
        >>> tx = ReduceLROnPlateau(lr=1.0, patience=1, factor=0.5)
        >>> state = tx.init(None)
        >>> for v in [3.0, 2.0, 2.0, 2.0, 2.0]:
        ...     u, state = tx.update(jnp.ones(()), state, value=v)
        >>> float(u), float(state.lr)
        (0.5, 0.5)

    References:
        PyTorch ``torch.optim.lr_scheduler.ReduceLROnPlateau``.
    """
    c = Checker("ReduceLROnPlateau")
    for name, option in (("mode", mode), ("threshold_mode", threshold_mode)):
        if not isinstance(option, str):
            c.fail(f"{name} must be a string (a static option), got {name}={option!r}")
    c.choice("mode", mode, ("min", "max"))
    c.choice("threshold_mode", threshold_mode, ("rel", "abs"))
    f = c.finite("factor", factor)
    if f is not None and bool((f >= 1.0).any()):
        c.fail(f"factor must be < 1.0 (torch's check), got factor={f.tolist()!r}")
    _lr(c, lr)
    for name, v in (
        ("patience", patience),
        ("threshold", threshold),
        ("cooldown", cooldown),
        ("min_lr", min_lr),
        ("eps", eps),
    ):
        c.number(name, v)
    return reduce_on_plateau(
        factor=factor,
        patience=patience,
        threshold=threshold,
        threshold_mode="signed_rel" if threshold_mode == "rel" else "abs",
        mode=mode,
        cooldown=cooldown,
        min_value=min_lr,
        init_value=lr,
        steps_per_epoch=steps_per_epoch,
        observe_in_update=observe_in_update,
        min_decrease=eps,
    )
