r"""Hugging Face ``transformers.optimization`` schedule builders, as jaxlr schedules.

Each builder takes the Hugging Face keyword arguments minus ``optimizer``, plus ``lr`` (the
optimizer's learning rate), and returns a :class:`jaxlr.schedules.Schedule` whose value at step
``t`` is ``lr * lr_lambda(t)``, what the returned ``LambdaLR`` reports after ``t`` steps.
Hugging Face's ``num_training_steps`` *includes* the warmup, and every warmup is
``t / max(1, num_warmup_steps)``, starting from 0.
"""

from __future__ import annotations

import dataclasses

import jax.numpy as jnp
import numpy as np
from jax.typing import ArrayLike

from jaxlr._src import steps
from jaxlr._src.numeric import as_float, half_cosine, safe_sqrt
from jaxlr._src.steps import Sum, before, elapsed, reached, to_float
from jaxlr._src.validate import Checker, concrete
from jaxlr.schedules import (
    Schedule,
    constant,
    inverse_sqrt,
    linear,
    polynomial,
    warmup,
)

__all__ = [
    "get_constant_schedule",
    "get_constant_schedule_with_warmup",
    "get_cosine_schedule_with_warmup",
    "get_cosine_with_hard_restarts_schedule_with_warmup",
    "get_cosine_with_min_lr_schedule_with_warmup",
    "get_inverse_sqrt_schedule",
    "get_linear_schedule_with_warmup",
    "get_polynomial_decay_schedule_with_warmup",
    "get_wsd_schedule",
]


def _ramp(step, warmup_steps):
    return to_float(step) / jnp.maximum(warmup_steps, 1.0)


def _check_lengths(c: Checker, num_warmup_steps, num_training_steps, *, strict=False) -> None:
    c.nonnegative("num_warmup_steps", num_warmup_steps)
    c.nonnegative("num_training_steps", num_training_steps)
    w, t = concrete(num_warmup_steps), concrete(num_training_steps)
    if (
        w is not None
        and t is not None
        and (bool((t <= w).any()) if strict else bool((t < w).any()))
    ):
        rel = ">" if strict else ">="
        c.fail(
            f"num_training_steps must be {rel} num_warmup_steps, got num_training_steps="
            f"{t.tolist()!r}, num_warmup_steps={w.tolist()!r}"
        )


def get_constant_schedule(*, lr: ArrayLike) -> Schedule:
    r"""A constant LR (``get_constant_schedule``): native :func:`jaxlr.schedules.constant`.

    .. math:: \eta(t) = \eta_0

    Args:
        lr: ``eta_0``.

    Examples:
        >>> from jaxlr.compat.transformers import get_constant_schedule
        >>> float(get_constant_schedule(lr=0.1)(7))
        0.1

    References:
        Hugging Face ``transformers.get_constant_schedule``.
    """
    return constant(value=lr)


def get_constant_schedule_with_warmup(*, num_warmup_steps: ArrayLike, lr: ArrayLike) -> Schedule:
    r"""Linear warmup from 0, then constant: native :func:`jaxlr.schedules.warmup`.

    .. math:: \eta(t) = \eta_0 \min(1, t / W)

    Args:
        num_warmup_steps: ``W`` >= 0.
        lr: ``eta_0``.

    Raises:
        ValueError: negative ``num_warmup_steps``, NaN.

    Examples:
        >>> from jaxlr.compat.transformers import get_constant_schedule_with_warmup
        >>> s = get_constant_schedule_with_warmup(num_warmup_steps=4, lr=1.0)
        >>> [float(s(t)) for t in (0, 2, 4)]
        [0.0, 0.5, 1.0]

    References:
        Hugging Face ``transformers.get_constant_schedule_with_warmup``.
    """
    Checker("get_constant_schedule_with_warmup").nonnegative("num_warmup_steps", num_warmup_steps)
    return warmup(constant(value=lr), warmup_steps=num_warmup_steps)


def get_linear_schedule_with_warmup(
    *, num_warmup_steps: ArrayLike, num_training_steps: ArrayLike, lr: ArrayLike
) -> Schedule:
    r"""Linear warmup, then linear decay to 0 at ``num_training_steps`` (BERT's schedule).

    .. math:: \eta(t) = \eta_0\, t/W\ (t < W), \quad \eta_0 \max\bigl(0, (T - t)/(T - W)\bigr)

    Native :func:`jaxlr.schedules.warmup` of :func:`jaxlr.schedules.linear`.

    Args:
        num_warmup_steps: ``W``.
        num_training_steps: ``T`` >= ``W``, warmup included.
        lr: ``eta_0``.

    Raises:
        ValueError: negative lengths, ``T < W``, NaN.

    Examples:
        >>> from jaxlr.compat.transformers import get_linear_schedule_with_warmup
        >>> s = get_linear_schedule_with_warmup(num_warmup_steps=10, num_training_steps=110, lr=1.0)
        >>> [float(s(t)) for t in (5, 10, 60, 200)]
        [0.5, 1.0, 0.5, 0.0]

    References:
        Devlin et al., BERT, 2019; Hugging Face ``get_linear_schedule_with_warmup``.
    """
    c = Checker("get_linear_schedule_with_warmup")
    _check_lengths(c, num_warmup_steps, num_training_steps)
    decay = as_float(num_training_steps) - num_warmup_steps
    return warmup(
        linear(init_value=lr, end_value=0.0, total_steps=decay), warmup_steps=num_warmup_steps
    )


def get_cosine_schedule_with_warmup(
    *,
    num_warmup_steps: ArrayLike,
    num_training_steps: ArrayLike,
    num_cycles: ArrayLike = 0.5,
    lr: ArrayLike,
) -> Schedule:
    r"""Linear warmup, then a cosine wave (``get_cosine_schedule_with_warmup``).

    .. math:: \eta(t) = \eta_0 \max\Bigl(0, \tfrac12\bigl(1 + \cos(2\pi c\,\tfrac{t - W}{T - W})
        \bigr)\Bigr) \quad (t \ge W)

    Hugging Face quirk kept: the progress is not clamped, so past ``T`` the cosine rises again
    (the native :func:`jaxlr.schedules.warmup_cosine` holds its end value).

    Args:
        num_warmup_steps: ``W``.
        num_training_steps: ``T`` >= ``W``, warmup included.
        num_cycles: ``c`` (0.5: one half-cosine down to 0).
        lr: ``eta_0``.

    Raises:
        ValueError: negative lengths, ``T < W``, NaN.

    Examples:
        >>> from jaxlr.compat.transformers import get_cosine_schedule_with_warmup
        >>> s = get_cosine_schedule_with_warmup(num_warmup_steps=10, num_training_steps=110, lr=1.0)
        >>> [round(float(s(t)), 4) for t in (5, 10, 60, 110, 160)]
        [0.5, 1.0, 0.5, 0.0, 0.5]

    References:
        Loshchilov & Hutter, SGDR, 2017; Hugging Face ``get_cosine_schedule_with_warmup``.
    """
    c = Checker("get_cosine_schedule_with_warmup")
    _check_lengths(c, num_warmup_steps, num_training_steps)
    c.finite("num_cycles", num_cycles)
    c.finite("lr", lr)
    return CosineWithMinLR(
        lr=lr,
        num_warmup_steps=num_warmup_steps,
        num_training_steps=num_training_steps,
        num_cycles=num_cycles,
        min_lr_rate=0.0,
    )


class CosineWithMinLR(
    Schedule,
    name="transformers.get_cosine_with_min_lr_schedule_with_warmup",
    counts=("num_warmup_steps", "num_training_steps"),
):
    r"""Linear warmup, then a cosine wave above a floor (``..._with_min_lr_...``).

    .. math:: \eta(t) = \eta_0 \max\bigl(0, w(t)(1 - m) + m\bigr), \quad
        w(t) = \tfrac12\bigl(1 + \cos(2\pi c\,\tfrac{t - W}{T - W})\bigr) \quad (t \ge W)

    with :math:`m` = ``min_lr_rate`` or ``min_lr / lr``. Unclamped past ``T`` like
    :func:`get_cosine_schedule_with_warmup`.

    Args:
        num_warmup_steps: ``W``.
        num_training_steps: ``T`` >= ``W``.
        num_cycles: ``c``.
        min_lr: the floor as an LR; or
        min_lr_rate: the floor as a fraction of ``lr`` (give exactly one).
        lr: ``eta_0``.

    Raises:
        ValueError: both or neither of ``min_lr`` / ``min_lr_rate`` (Hugging Face's check),
            negative lengths, ``T < W``, NaN.

    Examples:
        >>> from jaxlr.compat.transformers import get_cosine_with_min_lr_schedule_with_warmup
        >>> s = get_cosine_with_min_lr_schedule_with_warmup(
        ...     num_warmup_steps=0, num_training_steps=100, min_lr_rate=0.1, lr=1.0)
        >>> [round(float(s(t)), 4) for t in (0, 50, 100)]
        [1.0, 0.55, 0.1]

    References:
        Hugging Face ``get_cosine_with_min_lr_schedule_with_warmup``.
    """

    lr: ArrayLike
    num_warmup_steps: ArrayLike
    num_training_steps: ArrayLike
    num_cycles: ArrayLike = 0.5
    min_lr_rate: ArrayLike | None = None
    min_lr: dataclasses.InitVar[ArrayLike | None] = None

    def check(self, c: Checker, min_lr: ArrayLike | None) -> None:
        if (min_lr is None) == (self.min_lr_rate is None):
            c.fail(
                f"give exactly one of min_lr and min_lr_rate, got min_lr={min_lr!r}, "
                f"min_lr_rate={self.min_lr_rate!r}"
            )
        if min_lr is not None:
            c.finite("min_lr", min_lr)
            self._set("min_lr_rate", as_float(min_lr) / self.lr)
        _check_lengths(c, self.num_warmup_steps, self.num_training_steps)
        c.finite("num_cycles", self.num_cycles)
        c.finite("min_lr_rate", self.min_lr_rate)
        c.finite("lr", self.lr)

    def law(self, step):
        length = jnp.maximum(self.num_training_steps - self.num_warmup_steps, 1.0)
        wave = half_cosine(elapsed(step, self.num_warmup_steps) * (2.0 * self.num_cycles), length)
        factor = jnp.maximum(wave * (1.0 - self.min_lr_rate) + self.min_lr_rate, 0.0)
        return self.lr * jnp.where(
            before(step, self.num_warmup_steps), _ramp(step, self.num_warmup_steps), factor
        )


get_cosine_with_min_lr_schedule_with_warmup = CosineWithMinLR


class CosineWithHardRestarts(
    Schedule,
    name="transformers.get_cosine_with_hard_restarts_schedule_with_warmup",
    counts=("num_warmup_steps", "num_training_steps"),
):
    r"""Linear warmup, then ``num_cycles`` cosine decays with hard restarts, 0 after ``T``.

    .. math:: \eta(t) = \eta_0\,\tfrac12\bigl(1 + \cos(\pi\,\{c\,p\})\bigr), \quad
        p = \tfrac{t - W}{T - W} < 1; \qquad 0 \ (p \ge 1)

    with :math:`\{x\}` the fractional part.

    Args:
        num_warmup_steps: ``W``.
        num_training_steps: ``T`` >= ``W``.
        num_cycles: ``c``, the number of restarts.
        lr: ``eta_0``.

    Raises:
        ValueError: negative lengths, ``T < W``, NaN.

    Examples:
        >>> from jaxlr.compat.transformers import (
        ...     get_cosine_with_hard_restarts_schedule_with_warmup as hard)
        >>> s = hard(num_warmup_steps=0, num_training_steps=100, num_cycles=2, lr=1.0)
        >>> [round(float(s(t)), 4) for t in (0, 25, 50, 100)]
        [1.0, 0.5, 1.0, 0.0]

    References:
        Hugging Face ``get_cosine_with_hard_restarts_schedule_with_warmup``.
    """

    lr: ArrayLike
    num_warmup_steps: ArrayLike
    num_training_steps: ArrayLike
    num_cycles: ArrayLike = 1

    def check(self, c: Checker) -> None:
        _check_lengths(c, self.num_warmup_steps, self.num_training_steps)
        c.finite("num_cycles", self.num_cycles)
        c.finite("lr", self.lr)

    def law(self, step):
        # exact for integer steps and cycles
        within, length = steps.cycle_position(
            step, self.num_warmup_steps, self.num_training_steps, self.num_cycles
        )
        wave = half_cosine(within, length)
        done = reached(step, jnp.maximum(self.num_training_steps, self.num_warmup_steps + 1.0))
        factor = jnp.where(done, 0.0, wave)
        return self.lr * jnp.where(
            before(step, self.num_warmup_steps), _ramp(step, self.num_warmup_steps), factor
        )


get_cosine_with_hard_restarts_schedule_with_warmup = CosineWithHardRestarts


def get_polynomial_decay_schedule_with_warmup(
    *,
    num_warmup_steps: ArrayLike,
    num_training_steps: ArrayLike,
    lr_end: ArrayLike = 1e-7,
    power: ArrayLike = 1.0,
    lr: ArrayLike,
) -> Schedule:
    r"""Linear warmup, then polynomial decay to ``lr_end``: native
    :func:`jaxlr.schedules.warmup` of :func:`jaxlr.schedules.polynomial`.

    .. math:: \eta(t) = (\eta_0 - \eta_e)\bigl(1 - \tfrac{t - W}{T - W}\bigr)^{p} + \eta_e
        \quad (W \le t \le T), \qquad \eta_e\ (t > T)

    Args:
        num_warmup_steps: ``W``.
        num_training_steps: ``T`` > ``W`` (Hugging Face divides by ``T - W``).
        lr_end: ``eta_e`` < ``lr``.
        power: ``p`` > 0.
        lr: ``eta_0``.

    Raises:
        ValueError: ``lr <= lr_end`` (Hugging Face's check), ``T <= W``, ``power`` <= 0, NaN.

    Examples:
        >>> from jaxlr.compat.transformers import get_polynomial_decay_schedule_with_warmup
        >>> s = get_polynomial_decay_schedule_with_warmup(
        ...     num_warmup_steps=0, num_training_steps=10, lr_end=0.0, power=2.0, lr=1.0)
        >>> round(float(s(5)), 4)
        0.25

    References:
        Hugging Face ``get_polynomial_decay_schedule_with_warmup``.
    """
    c = Checker("get_polynomial_decay_schedule_with_warmup")
    _check_lengths(c, num_warmup_steps, num_training_steps, strict=True)
    c.finite("lr", lr)
    c.finite("lr_end", lr_end)
    a, b = concrete(lr), concrete(lr_end)
    if a is not None and b is not None and not bool((a > b).all()):
        c.fail(
            f"lr_end must be smaller than lr (Hugging Face's check), got lr_end={b.tolist()!r},"
            f" lr={a.tolist()!r}"
        )
    decay = as_float(num_training_steps) - num_warmup_steps
    return warmup(
        polynomial(init_value=lr, end_value=lr_end, total_steps=decay, power=power),
        warmup_steps=num_warmup_steps,
    )


def get_inverse_sqrt_schedule(
    *, num_warmup_steps: ArrayLike, timescale: ArrayLike | None = None, lr: ArrayLike
) -> Schedule:
    r"""Linear warmup, then inverse square root: native :func:`jaxlr.schedules.inverse_sqrt`.

    .. math:: \eta(t) = \eta_0 \sqrt{\tau / (t - W + \tau)} \quad (t \ge W)

    Args:
        num_warmup_steps: ``W``.
        timescale: ``tau`` > 0; defaults to ``W``, or 10000 when ``W = 0``, as in Hugging Face.
        lr: ``eta_0``.

    Raises:
        ValueError: negative ``W``, ``timescale`` <= 0, NaN.

    Examples:
        >>> from jaxlr.compat.transformers import get_inverse_sqrt_schedule
        >>> s = get_inverse_sqrt_schedule(num_warmup_steps=100, lr=1.0)
        >>> [float(s(t)) for t in (50, 100, 400)]
        [0.5, 1.0, 0.5]

    References:
        Vaswani et al., Attention Is All You Need, 2017; Hugging Face
        ``get_inverse_sqrt_schedule``.
    """
    c = Checker("get_inverse_sqrt_schedule")
    c.nonnegative("num_warmup_steps", num_warmup_steps)
    if timescale is None:
        w = as_float(num_warmup_steps)
        timescale = jnp.where(w == 0, 10_000.0, w)
    return inverse_sqrt(peak_value=lr, warmup_steps=num_warmup_steps, timescale=timescale)


_WSD_SHAPES = ("linear", "cosine", "1-sqrt")


class WSDSchedule(
    Schedule,
    name="transformers.get_wsd_schedule",
    counts=("num_warmup_steps", "num_stable_steps", "num_decay_steps"),
):
    r"""Warmup-stable-decay (``get_wsd_schedule``).

    With :math:`m` = ``min_lr_ratio`` and phase progress :math:`p`: warmup
    :math:`\max(0, r(p)(1 - m) + m)` with :math:`r = p`, :math:`\tfrac12(1 - \cos\pi p)` or
    :math:`1 - \sqrt{1 - p}`; stable 1; decay :math:`\max(0, d(p)(1 - m) + m)` with
    :math:`d = 1 - p`, :math:`\tfrac12(1 + \cos 2\pi c p)` or :math:`1 - \sqrt p`; then
    :math:`m`; all times ``lr``. With ``num_cycles = 0.5`` this is the native
    :func:`jaxlr.schedules.wsd` (init and end ``m * lr``); other ``num_cycles`` need this law.

    Args:
        num_warmup_steps: ``W``.
        num_decay_steps: ``D``.
        num_training_steps: ``T``; the stable phase is ``T - W - D`` unless
        num_stable_steps: ``S`` is given (it wins, as in Hugging Face).
        warmup_type, decay_type: ``"linear"``, ``"cosine"`` or ``"1-sqrt"`` (static).
        min_lr_ratio: ``m``.
        num_cycles: ``c`` of the cosine decay.
        lr: ``eta_0``.

    Raises:
        ValueError: neither ``T`` nor ``S`` (Hugging Face's check), unknown types, negative
            lengths (``W + D > T`` included), NaN.

    Examples:
        >>> from jaxlr.compat.transformers import get_wsd_schedule
        >>> s = get_wsd_schedule(num_warmup_steps=10, num_decay_steps=20, num_training_steps=100,
        ...                      decay_type="linear", lr=1.0)
        >>> [round(float(s(t)), 4) for t in (5, 10, 80, 90, 100)]
        [0.5, 1.0, 1.0, 0.5, 0.0]

    References:
        Hu et al., MiniCPM, 2024; Hugging Face ``get_wsd_schedule``.
    """

    lr: ArrayLike
    num_warmup_steps: ArrayLike
    num_stable_steps: ArrayLike | None = None
    num_decay_steps: ArrayLike
    min_lr_ratio: ArrayLike = 0.0
    num_cycles: ArrayLike = 0.5
    warmup_type: str = "linear"
    decay_type: str = "cosine"
    num_training_steps: dataclasses.InitVar[ArrayLike | None] = None

    def check(self, c: Checker, num_training_steps: ArrayLike | None) -> None:
        if num_training_steps is None and self.num_stable_steps is None:
            c.fail(
                "give num_training_steps or num_stable_steps (Hugging Face's check), got neither"
            )
        c.choice("warmup_type", self.warmup_type, _WSD_SHAPES)
        c.choice("decay_type", self.decay_type, _WSD_SHAPES)
        c.nonnegative("num_warmup_steps", self.num_warmup_steps)
        c.nonnegative("num_decay_steps", self.num_decay_steps)
        if self.num_stable_steps is None:
            parts = (num_training_steps, self.num_warmup_steps, self.num_decay_steps)
            if all(concrete(x) is not None for x in parts):  # in float64: float32 would round
                t, w, d = (np.asarray(concrete(x), np.float64) for x in parts)
                stable = t - w - d
            else:
                stable = as_float(num_training_steps) - self.num_warmup_steps - self.num_decay_steps
            c.nonnegative("num_training_steps - num_warmup_steps - num_decay_steps", stable)
            self._set("num_stable_steps", stable)
        c.nonnegative("num_stable_steps", self.num_stable_steps)
        c.finite("min_lr_ratio", self.min_lr_ratio)
        c.finite("num_cycles", self.num_cycles)
        c.finite("lr", self.lr)

    def law(self, step):
        m = self.min_lr_ratio
        p = _ramp(step, self.num_warmup_steps)
        rise = {
            "linear": p,
            "cosine": 1.0 - half_cosine(p, 1.0),
            "1-sqrt": 1.0 - safe_sqrt(1.0 - p),
        }
        start = Sum(self.num_warmup_steps, self.num_stable_steps)  # exact (steps.Sum)
        length = jnp.maximum(self.num_decay_steps, 1.0)
        q = elapsed(step, start) / length
        fall = {
            "linear": 1.0 - q,
            "cosine": half_cosine(elapsed(step, start) * (2.0 * self.num_cycles), length),
            "1-sqrt": 1.0 - safe_sqrt(q),
        }
        out = jnp.where(
            before(step, start + self.num_decay_steps),
            jnp.maximum(fall[self.decay_type] * (1.0 - m) + m, 0.0),
            m,
        )
        out = jnp.where(before(step, start), 1.0, out)
        out = jnp.where(
            before(step, self.num_warmup_steps),
            jnp.maximum(rise[self.warmup_type] * (1.0 - m) + m, 0.0),
            out,
        )
        return self.lr * out


get_wsd_schedule = WSDSchedule
