r"""Keras 3's ``keras.optimizers.schedules`` under their own names, as jaxlr schedules.

Each constructor takes the Keras keyword arguments (``name`` is accepted and ignored) and
returns a :class:`jaxlr.schedules.Schedule` whose value at step ``t`` equals the Keras schedule
called with ``t``. Keras counts from the step of the update (``optimizer.iterations``), and its
boundaries switch *after* the boundary step (``PiecewiseConstantDecay`` gives ``values[0]`` at
``t == boundaries[0]``), unlike torch; ``CosineDecay``'s ``decay_steps`` excludes the warmup.
"""

from __future__ import annotations

from collections.abc import Sequence

import jax.numpy as jnp
from jax.typing import ArrayLike

from jaxlr._src import steps
from jaxlr._src.numeric import as_float, half_cosine, safe_div, safe_pow
from jaxlr._src.validate import Checker
from jaxlr.schedules import (
    Schedule,
    cosine,
    exponential,
    inverse_time,
    piecewise_constant,
    polynomial,
    warmup_cosine,
)

__all__ = [
    "CosineDecay",
    "CosineDecayRestarts",
    "ExponentialDecay",
    "InverseTimeDecay",
    "PiecewiseConstantDecay",
    "PolynomialDecay",
]


def _decay_steps(c: Checker, name: str, value) -> None:
    a = c.finite(name, value)
    if a is not None and not bool((a > 0).all()):
        c.fail(f"{name} must be > 0 (Keras's check), got {name}={a.tolist()!r}")


def ExponentialDecay(
    *,
    initial_learning_rate: ArrayLike,
    decay_steps: ArrayLike,
    decay_rate: ArrayLike,
    staircase: bool = False,
    name: str | None = None,
) -> Schedule:
    r"""Exponential decay (Keras ``ExponentialDecay``): native
    :func:`jaxlr.schedules.exponential`.

    .. math:: \eta(t) = \eta_0\, r^{t / D} \quad (\lfloor t/D \rfloor \text{ if staircase})

    Args:
        initial_learning_rate: ``eta_0``.
        decay_steps: ``D`` > 0.
        decay_rate: ``r`` > 0.
        staircase: integer exponent (static).
        name: ignored.

    Raises:
        ValueError: ``decay_steps`` <= 0 (Keras's check), ``decay_rate`` <= 0, NaN.

    Examples:
        >>> from jaxlr.compat.keras import ExponentialDecay
        >>> s = ExponentialDecay(initial_learning_rate=1.0, decay_steps=10, decay_rate=0.5)
        >>> round(float(s(20)), 4)
        0.25

    References:
        Keras ``keras.optimizers.schedules.ExponentialDecay``.
    """
    del name
    c = Checker("ExponentialDecay")
    _decay_steps(c, "decay_steps", decay_steps)
    c.positive("decay_rate", decay_rate)
    return exponential(
        init_value=initial_learning_rate,
        decay_rate=decay_rate,
        period_steps=decay_steps,
        staircase=staircase,
    )


def PiecewiseConstantDecay(
    *, boundaries: Sequence[ArrayLike], values: Sequence[ArrayLike], name: str | None = None
) -> Schedule:
    r"""Constant pieces, switching *after* each boundary (Keras ``PiecewiseConstantDecay``).

    .. math:: \eta(t) = v_0\ (t \le b_0), \quad v_i\ (b_{i-1} < t \le b_i), \quad v_n\ (t > b_{n-1})

    Native :func:`jaxlr.schedules.piecewise_constant` with ``right=True``.

    Args:
        boundaries: ``n`` sorted steps.
        values: ``n + 1`` learning rates.
        name: ignored.

    Raises:
        ValueError: ``len(values) != len(boundaries) + 1`` (Keras's check), unsorted, NaN.

    Examples:
        >>> from jaxlr.compat.keras import PiecewiseConstantDecay
        >>> s = PiecewiseConstantDecay(boundaries=[10], values=[1.0, 0.1])
        >>> [float(s(t)) for t in (10, 11)]
        [1.0, 0.1]

    References:
        Keras ``PiecewiseConstantDecay``.
    """
    del name
    c = Checker("PiecewiseConstantDecay")
    if len(boundaries) != len(values) - 1:
        c.fail(
            f"len(boundaries) must be len(values) - 1 (Keras's check), got "
            f"boundaries={list(boundaries)!r}, values={list(values)!r}"
        )
    return piecewise_constant(boundaries=boundaries, values=values, right=True)


def PolynomialDecay(
    *,
    initial_learning_rate: ArrayLike,
    decay_steps: ArrayLike,
    end_learning_rate: ArrayLike = 0.0001,
    power: ArrayLike = 1.0,
    cycle: bool = False,
    name: str | None = None,
) -> Schedule:
    r"""Polynomial decay (Keras ``PolynomialDecay``), optionally cycling.

    .. math:: \eta(t) = (\eta_0 - \eta_e)(1 - t/D')^{p} + \eta_e

    Without ``cycle``: :math:`t` is clamped to :math:`D' = D` (native
    :func:`jaxlr.schedules.polynomial`). With ``cycle``: :math:`D' = D \lceil t/D \rceil`
    (:math:`D` at ``t = 0``), so each boundary restarts from a lower value.

    Args:
        initial_learning_rate: ``eta_0``.
        decay_steps: ``D`` > 0.
        end_learning_rate: ``eta_e``.
        power: ``p`` > 0.
        cycle: restart after ``D`` (static).
        name: ignored.

    Raises:
        ValueError: ``decay_steps`` <= 0 (Keras's check), ``power`` <= 0, NaN.

    Examples:
        >>> from jaxlr.compat.keras import PolynomialDecay
        >>> s = PolynomialDecay(initial_learning_rate=1.0, decay_steps=10, end_learning_rate=0.0,
        ...                     cycle=True)
        >>> [round(float(s(t)), 4) for t in (5, 10, 15)]
        [0.5, 0.0, 0.25]

    References:
        Keras ``PolynomialDecay``.
    """
    del name
    c = Checker("PolynomialDecay")
    _decay_steps(c, "decay_steps", decay_steps)
    c.choice("cycle", cycle, (False, True))
    if not cycle:
        return polynomial(
            init_value=initial_learning_rate,
            end_value=end_learning_rate,
            total_steps=decay_steps,
            power=power,
        )
    c.finite("initial_learning_rate", initial_learning_rate)
    c.finite("end_learning_rate", end_learning_rate)
    c.positive("power", power)
    return CyclingPolynomialDecay(
        initial_learning_rate=initial_learning_rate,
        decay_steps=decay_steps,
        end_learning_rate=end_learning_rate,
        power=power,
    )


class CyclingPolynomialDecay(
    Schedule, name="keras.PolynomialDecay", counts=("decay_steps",), constructor=PolynomialDecay
):
    r"""Keras ``PolynomialDecay`` with ``cycle=True`` (built by :func:`PolynomialDecay`, which
    takes Keras's arguments): :math:`(\eta_0 - \eta_e)(1 - t/D')^{p} + \eta_e` with
    :math:`D' = D \lceil t/D \rceil` (:math:`D` at ``t = 0``).

    Examples:
        >>> from jaxlr.compat.keras import CyclingPolynomialDecay, PolynomialDecay
        >>> s = PolynomialDecay(initial_learning_rate=1.0, decay_steps=10, cycle=True)
        >>> isinstance(s, CyclingPolynomialDecay), round(float(s(15)), 4)
        (True, 0.2501)
    """

    initial_learning_rate: ArrayLike
    decay_steps: ArrayLike
    end_learning_rate: ArrayLike = 0.0001
    power: ArrayLike = 1.0
    cycle: bool = True

    def check(self, c: Checker) -> None:
        _decay_steps(c, "decay_steps", self.decay_steps)
        c.choice("cycle", self.cycle, (True,))
        c.finite("initial_learning_rate", self.initial_learning_rate)
        c.finite("end_learning_rate", self.end_learning_rate)
        c.positive("power", self.power)

    def law(self, step):
        q, r = steps.divide(step, self.decay_steps)  # ceil(step / decay_steps), exactly
        t = steps.to_float(step)
        periods = jnp.where(t == 0, 1.0, q + jnp.where(r > 0.0, 1.0, 0.0))
        p = safe_div(t, self.decay_steps * periods)
        return (self.initial_learning_rate - self.end_learning_rate) * safe_pow(
            1.0 - p, self.power
        ) + self.end_learning_rate


def InverseTimeDecay(
    *,
    initial_learning_rate: ArrayLike,
    decay_steps: ArrayLike,
    decay_rate: ArrayLike,
    staircase: bool = False,
    name: str | None = None,
) -> Schedule:
    r"""Inverse-time decay (Keras ``InverseTimeDecay``): native
    :func:`jaxlr.schedules.inverse_time`.

    .. math:: \eta(t) = \eta_0 / (1 + r\,t/D) \quad (\lfloor t/D \rfloor \text{ if staircase})

    Args:
        initial_learning_rate: ``eta_0``.
        decay_steps: ``D`` > 0.
        decay_rate: ``r`` >= 0.
        staircase: integer exponent (static).
        name: ignored.

    Raises:
        ValueError: ``decay_steps`` <= 0 (Keras's check), negative ``decay_rate``, NaN.

    Examples:
        >>> from jaxlr.compat.keras import InverseTimeDecay
        >>> float(InverseTimeDecay(initial_learning_rate=1.0, decay_steps=10, decay_rate=1.0)(10))
        0.5

    References:
        Keras ``InverseTimeDecay``.
    """
    del name
    c = Checker("InverseTimeDecay")
    _decay_steps(c, "decay_steps", decay_steps)
    return inverse_time(
        init_value=initial_learning_rate,
        decay_rate=decay_rate,
        period_steps=decay_steps,
        staircase=staircase,
    )


def CosineDecay(
    *,
    initial_learning_rate: ArrayLike,
    decay_steps: ArrayLike,
    alpha: ArrayLike = 0.0,
    name: str | None = None,
    warmup_target: ArrayLike | None = None,
    warmup_steps: ArrayLike = 0,
) -> Schedule:
    r"""Cosine decay with optional linear warmup (Keras ``CosineDecay``).

    Without ``warmup_target``: native :func:`jaxlr.schedules.cosine` from :math:`\eta_0` to
    :math:`\alpha\eta_0` over ``decay_steps``. With it: native
    :func:`jaxlr.schedules.warmup_cosine`, a linear ramp :math:`\eta_0 \to P` over ``W`` steps,
    then cosine :math:`P \to \alpha P` over ``decay_steps`` *more* steps (Keras's
    ``decay_steps`` excludes the warmup; jaxlr's ``total_steps`` includes it).

    .. math:: \eta(t) = P\bigl((1 - \alpha)\tfrac12(1 + \cos(\pi \min(t - W, D)/D)) + \alpha\bigr)
        \quad (t \ge W)

    Args:
        initial_learning_rate: ``eta_0``.
        decay_steps: ``D`` > 0.
        alpha: the final fraction.
        name: ignored.
        warmup_target: ``P``, or ``None`` for no warmup.
        warmup_steps: ``W``.

    Raises:
        ValueError: ``decay_steps`` <= 0 (Keras's check), negative ``warmup_steps``, NaN.

    Examples:
        >>> from jaxlr.compat.keras import CosineDecay
        >>> s = CosineDecay(initial_learning_rate=0.0, decay_steps=100, warmup_target=1.0,
        ...                 warmup_steps=10)
        >>> [round(float(s(t)), 4) for t in (5, 10, 60, 110)]
        [0.5, 1.0, 0.5, 0.0]

    References:
        Loshchilov & Hutter, SGDR, 2017; Keras ``CosineDecay``.
    """
    del name
    c = Checker("CosineDecay")
    _decay_steps(c, "decay_steps", decay_steps)
    c.finite("alpha", alpha)
    if warmup_target is None:
        return cosine(
            init_value=initial_learning_rate,
            total_steps=decay_steps,
            end_value=as_float(initial_learning_rate) * alpha,
        )
    c.finite("warmup_target", warmup_target)
    c.nonnegative("warmup_steps", warmup_steps)
    return warmup_cosine(
        peak_value=warmup_target,
        warmup_steps=warmup_steps,
        total_steps=as_float(warmup_steps) + decay_steps,
        init_value=initial_learning_rate,
        end_value=as_float(warmup_target) * alpha,
    )


def CosineDecayRestarts(
    *,
    initial_learning_rate: ArrayLike,
    first_decay_steps: ArrayLike,
    t_mul: ArrayLike = 2.0,
    m_mul: ArrayLike = 1.0,
    alpha: ArrayLike = 0.0,
    name: str | None = None,
) -> Schedule:
    r"""Cosine decay with warm restarts, Keras's formula (Keras ``CosineDecayRestarts``).

    With :math:`f = t / T_0`, restart :math:`i = \lfloor \log(1 - f(1 - m_t)) / \log m_t \rfloor`
    (:math:`\lfloor f \rfloor` when :math:`m_t = 1`), corrected by one where the float logarithm
    lands on the wrong side of a restart step, and :math:`u` the fraction of cycle ``i`` done:

    .. math:: \eta(t) = \eta_0\bigl((1 - \alpha)\, m_m^{i}\,\tfrac12(1 + \cos \pi u) + \alpha\bigr)

    Unlike :func:`jaxlr.schedules.sgdr` the floor :math:`\alpha\eta_0` does not decay with the
    peaks, and ``t_mul`` < 1 (shrinking periods) is allowed as in Keras; the periods then sum
    to :math:`T_0 / (1 - m_t)`, and from that step on the value is NaN, as Keras's is.

    Args:
        initial_learning_rate: ``eta_0``.
        first_decay_steps: ``T_0`` > 0.
        t_mul: ``m_t`` > 0, period growth.
        m_mul: ``m_m``, peak factor per restart.
        alpha: floor as a fraction of ``eta_0``.
        name: ignored.

    Raises:
        ValueError: ``first_decay_steps`` <= 0 (Keras's check), ``t_mul`` <= 0, NaN.

    Examples:
        >>> from jaxlr.compat.keras import CosineDecayRestarts
        >>> s = CosineDecayRestarts(initial_learning_rate=1.0, first_decay_steps=10)
        >>> [round(float(s(t)), 4) for t in (0, 5, 10, 20)]
        [1.0, 0.5, 1.0, 0.5]

    References:
        Loshchilov & Hutter, SGDR, 2017; Keras ``CosineDecayRestarts``.
    """
    del name
    c = Checker("CosineDecayRestarts")
    _decay_steps(c, "first_decay_steps", first_decay_steps)
    c.finite("initial_learning_rate", initial_learning_rate)
    c.positive("t_mul", t_mul)
    c.finite("m_mul", m_mul)
    c.finite("alpha", alpha)
    return CosineDecayRestartsSchedule(
        initial_learning_rate=initial_learning_rate,
        first_decay_steps=first_decay_steps,
        t_mul=t_mul,
        m_mul=m_mul,
        alpha=alpha,
    )


class CosineDecayRestartsSchedule(
    Schedule,
    name="keras.CosineDecayRestarts",
    counts=("first_decay_steps",),
    constructor=CosineDecayRestarts,
):
    r"""The schedule :func:`CosineDecayRestarts` builds (a class of its own because Keras's
    ``name`` argument cannot be a field: ``name`` is the family name).

    Examples:
        >>> from jaxlr.compat.keras import CosineDecayRestarts, CosineDecayRestartsSchedule
        >>> s = CosineDecayRestarts(initial_learning_rate=1.0, first_decay_steps=10, name="x")
        >>> s == CosineDecayRestartsSchedule(initial_learning_rate=1.0, first_decay_steps=10)
        True
    """

    initial_learning_rate: ArrayLike
    first_decay_steps: ArrayLike
    t_mul: ArrayLike = 2.0
    m_mul: ArrayLike = 1.0
    alpha: ArrayLike = 0.0

    def check(self, c: Checker) -> None:
        _decay_steps(c, "first_decay_steps", self.first_decay_steps)
        c.finite("initial_learning_rate", self.initial_learning_rate)
        c.positive("t_mul", self.t_mul)
        c.finite("m_mul", self.m_mul)
        c.finite("alpha", self.alpha)

    def law(self, step):
        # the cycle and the place in it, exact for integer steps and periods
        # (steps.restart_cycle)
        i, u, length = steps.restart_cycle(step, self.first_decay_steps, self.t_mul)
        frac = u / length
        # m_mul**i with a finite gradient at m_mul = 0, i = 0 (0**0 = 1, derivative 0 there)
        first = i == 0
        mult = jnp.where(first, 1.0, jnp.where(first, 1.0, self.m_mul) ** jnp.where(first, 1.0, i))
        decayed = mult * half_cosine(frac)
        return self.initial_learning_rate * ((1.0 - self.alpha) * decayed + self.alpha)
