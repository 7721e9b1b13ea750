"""The schedule families: one class each (fields, ``check``, ``law``); the lowercase public
constructor is the class itself (``cosine = Cosine``).

Every law reads the hyperparameters from ``self`` and is a few lines of ``jnp`` arithmetic with
no Python branch on a hyperparameter value, so every numeric hyperparameter can be traced (jit,
vmap, grad). The step arrives as it comes (an integer or float array) and the step-count
hyperparameters (the class's ``counts``) as float leaves: integer decisions (which piece, stair
or cycle; elapsed steps) go through ``jaxlr._src.steps``, exact for every int32 step, and the
rest is plain float arithmetic.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import ArrayLike

from jaxlr._src import steps
from jaxlr._src.numeric import (
    at_least,
    half_cosine,
    power_of,
    safe_div,
    safe_pow,
    saturate,
    tiny,
)
from jaxlr._src.steps import elapsed, progress, reached, to_float
from jaxlr._src.validate import Checker
from jaxlr.schedules._core import Schedule
from jaxlr.schedules._shapes import POSITIVE_SHAPES, SHAPES, anneal


def _like(step: jax.Array, value: ArrayLike) -> jax.Array:
    value = jnp.asarray(value)
    return jnp.broadcast_to(value, jnp.shape(step)).astype(value.dtype)


# ---------------------------------------------------------------------------------------------
# constant, linear, polynomial


class Constant(Schedule, name="constant", counts=()):
    r"""A constant learning rate.

    .. math:: \eta(t) = v

    Args:
        value: the learning rate.

    Returns:
        A schedule; ``s(step)`` is ``value`` shaped like ``step``.

    Raises:
        ValueError: a concrete NaN or infinite ``value``.

    Traced arguments: every argument may be traced.

    Examples:
        >>> import jaxlr
        >>> float(jaxlr.schedules.constant(value=0.1)(1000))
        0.1
    """

    value: ArrayLike

    def check(self, c: Checker) -> None:
        c.finite("value", self.value)

    def law(self, step):
        return _like(step, self.value)


constant = Constant


class Linear(Schedule, name="linear", counts=("total_steps", "begin_steps")):
    r"""Linear from ``init_value`` to ``end_value`` over ``[begin_steps, total_steps]``.

    .. math:: \eta(t) = I + (E - I)\,\mathrm{clip}\bigl((t - B)/(T - B), 0, 1\bigr)

    Args:
        init_value: value up to ``begin_steps``.
        end_value: value from ``total_steps`` on.
        total_steps: ``T``, the step at which ``end_value`` is reached (the whole length,
            ``begin_steps`` included; Optax's ``transition_steps`` is ``T - B``).
        begin_steps: ``B``, steps held at ``init_value`` before the transition.

    Raises:
        ValueError: concrete negative ``begin_steps``, ``total_steps`` < ``begin_steps``, or NaN.

    Traced arguments: a traced ``total_steps`` < ``begin_steps`` behaves as a jump at
    ``begin_steps``.

    Examples:
        >>> import jaxlr
        >>> s = jaxlr.schedules.linear(init_value=1.0, end_value=0.0, total_steps=100)
        >>> [round(float(s(t)), 2) for t in (0, 25, 100, 200)]
        [1.0, 0.75, 0.0, 0.0]

    References:
        PyTorch ``LinearLR``; Optax ``linear_schedule``.
    """

    init_value: ArrayLike
    end_value: ArrayLike
    total_steps: ArrayLike
    begin_steps: ArrayLike = 0

    def check(self, c: Checker) -> None:
        c.finite("init_value", self.init_value)
        c.finite("end_value", self.end_value)
        c.nonnegative("total_steps", self.total_steps)
        c.nonnegative("begin_steps", self.begin_steps)
        c.not_greater("begin_steps", self.begin_steps, "total_steps", self.total_steps)

    def law(self, step):
        p = progress(step, self.begin_steps, self.total_steps - self.begin_steps)
        return self.init_value + (self.end_value - self.init_value) * p


linear = Linear


class Polynomial(Schedule, name="polynomial", counts=("total_steps", "begin_steps")):
    r"""Polynomial decay from ``init_value`` to ``end_value`` (Optax ``polynomial_schedule``).

    .. math:: \eta(t) = E + (I - E)\,(1 - p)^{k}, \quad p = \mathrm{clip}((t - B)/(T - B), 0, 1)

    Args:
        init_value: value up to ``begin_steps``.
        end_value: value from ``total_steps`` on.
        total_steps: ``T``, the step at which ``end_value`` is reached (``begin_steps``
            included; Optax's ``transition_steps`` is ``T - B``).
        power: exponent ``k`` > 0 (1 is linear).
        begin_steps: ``B``, steps held at ``init_value`` first.

    Raises:
        ValueError: concrete negative lengths, ``total_steps`` < ``begin_steps``,
            ``power`` <= 0, or NaN.

    Traced arguments: a traced ``total_steps`` < ``begin_steps`` behaves as a jump at
    ``begin_steps``.

    Examples:
        >>> import jaxlr
        >>> s = jaxlr.schedules.polynomial(init_value=1.0, end_value=0.0, total_steps=10, power=2)
        >>> round(float(s(5)), 4)
        0.25

    References:
        PyTorch ``PolynomialLR``; Keras ``PolynomialDecay``; Optax ``polynomial_schedule``.
    """

    init_value: ArrayLike
    end_value: ArrayLike
    total_steps: ArrayLike
    power: ArrayLike = 1.0
    begin_steps: ArrayLike = 0

    def check(self, c: Checker) -> None:
        c.finite("init_value", self.init_value)
        c.finite("end_value", self.end_value)
        c.nonnegative("total_steps", self.total_steps)
        c.positive("power", self.power)
        c.nonnegative("begin_steps", self.begin_steps)
        c.not_greater("begin_steps", self.begin_steps, "total_steps", self.total_steps)

    def law(self, step):
        p = progress(step, self.begin_steps, self.total_steps - self.begin_steps)
        return self.end_value + (self.init_value - self.end_value) * safe_pow(1.0 - p, self.power)


polynomial = Polynomial


# ---------------------------------------------------------------------------------------------
# exponential, inverse time, step, multistep


def _exponent(step, begin_steps, period_steps, staircase):
    """``max(step - B, 0) / P`` (floored exactly if staircase); a traced period <= 0 is clamped
    to the smallest positive normal float, and the count saturates at the largest finite float."""
    if staircase:  # which stair: exact for integer steps, a whole period and a whole start
        return steps.floor_div(step, period_steps, start=begin_steps)
    e = jnp.maximum(elapsed(step, begin_steps), 0.0)
    big = jnp.finfo(e.dtype).max
    return jnp.minimum(e / at_least(period_steps, tiny(e)), big)


class Exponential(
    Schedule,
    name="exponential",
    counts=("period_steps", "begin_steps"),
    renamed=dict(transition_steps="period_steps"),
):
    r"""Exponential decay: the rate multiplies the LR once per ``period_steps``.

    .. math:: \eta(t) = I\,r^{e}, \quad e = \max(t - B, 0)/P \ \ (\lfloor\cdot\rfloor
        \text{ if staircase}),

    then clamped at ``end_value`` (from below when ``r < 1``, from above when ``r > 1``).

    Args:
        init_value: LR at ``begin_steps``.
        decay_rate: ``r`` > 0 applied per ``period_steps``.
        period_steps: ``P`` > 0, the period of one factor ``r`` (Optax's ``transition_steps``).
        begin_steps: steps held at ``init_value`` first.
        staircase: decay in discrete jumps (static, a bool).
        end_value: optional floor (or ceiling for ``r > 1``).

    Raises:
        ValueError: concrete ``decay_rate`` <= 0, ``period_steps`` <= 0, negative
            ``begin_steps``, a non-bool ``staircase``, or NaN.
        TypeError: the old spelling ``transition_steps``.

    Growth (``r > 1``) without ``end_value`` saturates at the dtype's largest finite value
    instead of overflowing to inf. Traced arguments: a traced ``period_steps`` or
    ``decay_rate`` <= 0 is clamped to the smallest positive float (the LR then jumps to its
    limit after step 0). Integer steps: exact for every int32 step >= 0, and for a negative one
    while ``step > begin_steps - 2**31`` (closer to :math:`-2^{31}` the integer difference
    wraps; see :class:`Schedule`).

    Examples:
        >>> import jaxlr
        >>> s = jaxlr.schedules.exponential(init_value=1.0, decay_rate=0.5, period_steps=10)
        >>> round(float(s(20)), 4), round(float(s(5)), 4)
        (0.25, 0.7071)

    References:
        PyTorch ``ExponentialLR``; Keras ``ExponentialDecay``; Optax ``exponential_decay``.
    """

    init_value: ArrayLike
    decay_rate: ArrayLike
    period_steps: ArrayLike
    begin_steps: ArrayLike = 0
    staircase: bool = False
    end_value: ArrayLike | None = None

    def check(self, c: Checker) -> None:
        c.finite("init_value", self.init_value)
        c.positive("decay_rate", self.decay_rate)
        c.positive("period_steps", self.period_steps)
        c.nonnegative("begin_steps", self.begin_steps)
        c.flag("staircase", self.staircase)
        if self.end_value is not None:
            c.finite("end_value", self.end_value)

    def law(self, step):
        factor = power_of(
            self.decay_rate, _exponent(step, self.begin_steps, self.period_steps, self.staircase)
        )
        value = saturate(self.init_value * factor)
        if self.end_value is not None:
            value = jnp.where(
                self.decay_rate < 1.0,
                jnp.maximum(value, self.end_value),
                jnp.minimum(value, self.end_value),
            )
        return value


exponential = Exponential


class InverseTime(
    Schedule,
    name="inverse_time",
    counts=("period_steps",),
    renamed=dict(transition_steps="period_steps"),
):
    r"""Inverse-time decay.

    .. math:: \eta(t) = I / (1 + r\,t/P) \quad (\lfloor t/P \rfloor \text{ if staircase})

    Args:
        init_value: LR at step 0.
        decay_rate: ``r`` >= 0.
        period_steps: ``P`` > 0 (Keras's ``decay_steps``).
        staircase: decay in discrete jumps (static, a bool).

    Raises:
        ValueError: concrete negative ``decay_rate``, ``period_steps`` <= 0, a non-bool
            ``staircase``, or NaN.
        TypeError: the old spelling ``transition_steps``.

    Traced arguments: a traced ``period_steps`` <= 0 is clamped to the smallest positive float,
    a traced negative ``decay_rate`` to 0.

    Examples:
        >>> import jaxlr
        >>> s = jaxlr.schedules.inverse_time(init_value=1.0, decay_rate=1.0, period_steps=10)
        >>> float(s(10))
        0.5

    References:
        Keras ``InverseTimeDecay``.
    """

    init_value: ArrayLike
    decay_rate: ArrayLike
    period_steps: ArrayLike
    staircase: bool = False

    def check(self, c: Checker) -> None:
        c.finite("init_value", self.init_value)
        c.nonnegative("decay_rate", self.decay_rate)
        c.positive("period_steps", self.period_steps)
        c.flag("staircase", self.staircase)

    def law(self, step):
        e = _exponent(step, 0.0, self.period_steps, self.staircase)
        return self.init_value / (1.0 + jnp.maximum(self.decay_rate, 0.0) * e)


inverse_time = InverseTime


class Step(Schedule, name="step", counts=("period_steps",), renamed=dict(step_size="period_steps")):
    r"""Step decay: multiply by ``decay_rate`` every ``period_steps`` steps (the ResNet schedule).

    .. math:: \eta(t) = I\,r^{\lfloor t / P \rfloor}

    Args:
        init_value: LR for the first ``period_steps`` steps.
        period_steps: ``P`` > 0 (PyTorch's ``step_size``).
        decay_rate: ``r`` > 0 (PyTorch's ``gamma``).

    Raises:
        ValueError: concrete ``period_steps`` <= 0, ``decay_rate`` <= 0, or NaN.
        TypeError: the old spelling ``step_size``.

    Growth (``r > 1``) saturates at the dtype's largest finite value. Traced arguments: a
    traced ``period_steps`` or ``decay_rate`` <= 0 is clamped to the smallest positive float.

    Examples:
        >>> import jaxlr
        >>> s = jaxlr.schedules.step(init_value=0.1, period_steps=30, decay_rate=0.1)
        >>> [round(float(s(t)), 6) for t in (29, 30, 60)]
        [0.1, 0.01, 0.001]

    References:
        He et al., Deep Residual Learning for Image Recognition, 2016; PyTorch ``StepLR``.
    """

    init_value: ArrayLike
    period_steps: ArrayLike
    decay_rate: ArrayLike

    def check(self, c: Checker) -> None:
        c.finite("init_value", self.init_value)
        c.positive("period_steps", self.period_steps)
        c.positive("decay_rate", self.decay_rate)

    def law(self, step):
        return saturate(
            self.init_value * power_of(self.decay_rate, steps.floor_div(step, self.period_steps))
        )


step = Step


class Multistep(
    Schedule, name="multistep", counts=("boundaries",), vectors=("boundaries", "decay_rate")
):
    r"""Multiply by a factor at each boundary (PyTorch ``MultiStepLR``).

    .. math:: \eta(t) = I \prod_{i:\, b_i \le t} \gamma_i

    Args:
        init_value: LR before the first boundary.
        boundaries: sorted steps at which the factor applies (from that step on).
        decay_rate: one factor for all boundaries, or one per boundary.

    Raises:
        ValueError: unsorted or negative boundaries, a ``decay_rate`` array whose length differs
            from the boundaries', or NaN.

    Traced arguments: every argument may be traced; traced unsorted boundaries each apply their
    factor from their own step on, and a product of factors above the float range saturates.

    Examples:
        >>> import jaxlr
        >>> s = jaxlr.schedules.multistep(init_value=1.0, boundaries=[10, 20], decay_rate=0.5)
        >>> [float(s(t)) for t in (9, 10, 20)]
        [1.0, 0.5, 0.25]

    References:
        PyTorch ``MultiStepLR``.
    """

    init_value: ArrayLike
    boundaries: ArrayLike
    decay_rate: ArrayLike = 0.1

    def check(self, c: Checker) -> None:
        c.finite("init_value", self.init_value)
        b = c.vector("boundaries", self.boundaries, min_len=1)
        c.nonnegative("boundaries", self.boundaries)
        c.sorted("boundaries", self.boundaries)
        r = c.positive("decay_rate", self.decay_rate)
        if b is not None and r is not None and r.ndim > 0:
            c.same_length("boundaries", b, "decay_rate", r)

    def law(self, step):
        rates = jnp.broadcast_to(self.decay_rate, self.boundaries.shape)
        passed = reached(step[..., None], self.boundaries)
        # a product of rates > 1 saturates rather than overflowing to inf
        return saturate(
            self.init_value * saturate(jnp.prod(jnp.where(passed, rates, 1.0), axis=-1))
        )


multistep = Multistep


class PiecewiseConstant(
    Schedule, name="piecewise_constant", counts=("boundaries",), vectors=("boundaries", "values")
):
    r"""Absolute values between boundaries (Keras ``PiecewiseConstantDecay``).

    .. math:: \eta(t) = v_i \quad\text{for}\quad b_{i-1} \le t < b_i

    Args:
        boundaries: sorted steps, ``n`` of them.
        values: ``n + 1`` learning rates.
        right: switch after the boundary (``b_{i-1} < t \le b_i``, the Keras convention) instead
            of at it (the PyTorch convention). Static.

    Raises:
        ValueError: unsorted boundaries, ``len(values) != len(boundaries) + 1``, or NaN.

    Traced arguments: traced boundaries may be unsorted: the value index counts the
    boundaries passed.

    Examples:
        >>> import jaxlr
        >>> s = jaxlr.schedules.piecewise_constant(boundaries=[10], values=[1.0, 0.1])
        >>> [float(s(t)) for t in (9, 10)]
        [1.0, 0.1]

    References:
        Keras ``PiecewiseConstantDecay``.
    """

    boundaries: ArrayLike
    values: ArrayLike
    right: bool = False

    def check(self, c: Checker) -> None:
        b = c.vector("boundaries", self.boundaries, min_len=1)
        v = c.vector("values", self.values, min_len=2)
        c.sorted("boundaries", self.boundaries)
        if b is not None and v is not None:
            c.same_length("boundaries", b, "values", v, offset=1)
        c.flag("right", self.right)

    def law(self, step):
        t = step[..., None]
        passed = steps.passed(t, self.boundaries) if self.right else reached(t, self.boundaries)
        index = jnp.sum(passed, axis=-1)
        return jnp.take(self.values, index)


piecewise_constant = PiecewiseConstant


class PiecewiseInterpolate(
    Schedule,
    name="piecewise_interpolate",
    counts=("boundaries",),
    vectors=("boundaries", "values"),
    renamed=dict(interpolation="shape"),
):
    r"""Curve through knots ``(b_i, v_i)``; flat before the first knot and after the last.

    .. math:: \eta(t) = \mathrm{anneal}\bigl(v_i, v_{i+1}, (t - b_i)/(b_{i+1} - b_i)\bigr)
        \quad (b_i \le t < b_{i+1})

    Args:
        boundaries: sorted knot steps (at least 2).
        values: the LR at each knot (same length).
        shape: ``"linear"``, ``"cosine"``, ``"1-sqrt"``, ``"exponential"`` or ``"inverse"``
            (static; see :func:`jaxlr.schedules.anneal`).

    Raises:
        ValueError: unsorted knots, mismatched lengths, an unknown shape, NaN.
        TypeError: the old spelling ``interpolation``.

    Traced arguments: traced knots out of order make a later piece win from its knot on;
    traced non-positive values of a log-space shape are clamped to the smallest positive float.

    Examples:
        >>> import jaxlr
        >>> s = jaxlr.schedules.piecewise_interpolate(boundaries=[0, 10, 20],
        ...                                           values=[0.0, 1.0, 0.5])
        >>> [float(s(t)) for t in (5, 10, 15, 30)]
        [0.5, 1.0, 0.75, 0.5]

    References:
        Optax ``piecewise_interpolate_schedule`` (multiplicative form).
    """

    boundaries: ArrayLike
    values: ArrayLike
    shape: str = "linear"

    def check(self, c: Checker) -> None:
        b = c.vector("boundaries", self.boundaries, min_len=2)
        v = c.vector("values", self.values, min_len=2)
        c.sorted("boundaries", self.boundaries)
        if b is not None and v is not None:
            c.same_length("boundaries", b, "values", v)
        c.choice("shape", self.shape, SHAPES)
        if self.shape in POSITIVE_SHAPES:
            c.positive("values", self.values)

    def law(self, step):
        n = self.boundaries.shape[-1]
        passed = reached(step[..., None], self.boundaries)  # exact, like every decision
        i = jnp.clip(jnp.sum(passed, axis=-1) - 1, 0, n - 2)[..., None]

        def at(x, j):
            return jnp.take_along_axis(jnp.broadcast_to(x, passed.shape), j, axis=-1)[..., 0]

        k0, k1 = at(self.boundaries, i), at(self.boundaries, i + 1)
        curve = anneal(
            at(self.values, i), at(self.values, i + 1), progress(step, k0, k1 - k0), self.shape
        )
        return jnp.where(passed[..., 0], curve, at(self.values, jnp.zeros_like(i)))


piecewise_interpolate = PiecewiseInterpolate


# ---------------------------------------------------------------------------------------------
# inverse square root, Noam


class InverseSqrt(
    Schedule, name="inverse_sqrt", counts=("warmup_steps",), renamed=dict(warmup="warmup_shape")
):
    r"""Warmup, then inverse-square-root decay.

    .. math:: \eta(t) = P\sqrt{\tau / (t - W + \tau)} \quad (t \ge W)

    Before ``W``: a linear ramp from ``init_value`` (``warmup_shape="linear"``: fairseq, Hugging
    Face) or ``peak_value`` held flat (``warmup_shape="constant"``: T5's ``1/sqrt(max(t, W))``).
    With the default ``timescale = W`` the decay is fairseq's ``P sqrt(W / t)``; Hugging Face's
    ``get_inverse_sqrt_schedule`` passes its own ``timescale``.

    Args:
        peak_value: LR at ``warmup_steps``.
        warmup_steps: ``W`` >= 0.
        timescale: ``tau`` > 0; defaults to ``warmup_steps`` (then ``warmup_steps`` must be > 0).
        init_value: start of the linear warmup.
        warmup_shape: ``"linear"`` or ``"constant"`` (static).

    Raises:
        ValueError: negative ``warmup_steps``, ``timescale`` <= 0, unknown ``warmup_shape``, NaN.
        TypeError: the old spelling ``warmup``.

    Traced arguments: a traced ``timescale`` <= 0 is clamped to the smallest positive float.

    Examples:
        >>> import jaxlr
        >>> s = jaxlr.schedules.inverse_sqrt(peak_value=1.0, warmup_steps=100)
        >>> [float(s(t)) for t in (50, 100, 400)]
        [0.5, 1.0, 0.5]

    References:
        Vaswani et al., Attention Is All You Need, 2017; Ott et al., fairseq, 2019;
        Raffel et al., T5, 2020.
    """

    peak_value: ArrayLike
    warmup_steps: ArrayLike
    timescale: ArrayLike | None = None
    init_value: ArrayLike = 0.0
    warmup_shape: str = "linear"

    def check(self, c: Checker) -> None:
        c.finite("peak_value", self.peak_value)
        c.nonnegative("warmup_steps", self.warmup_steps)
        c.finite("init_value", self.init_value)
        c.choice("warmup_shape", self.warmup_shape, ("linear", "constant"))
        if self.timescale is None:
            self._set("timescale", self.warmup_steps)
            c.positive("timescale (default: warmup_steps)", self.timescale)
        else:
            c.positive("timescale", self.timescale)

    def law(self, step):
        if self.warmup_shape == "linear":
            warm = self.init_value + (self.peak_value - self.init_value) * progress(
                step, 0.0, self.warmup_steps
            )
        else:
            warm = _like(step, self.peak_value)
        after = reached(step, self.warmup_steps)
        tau = at_least(self.timescale, tiny(self.timescale))
        denom = jnp.where(after, elapsed(step, self.warmup_steps) + tau, tau)
        decay = self.peak_value * jnp.sqrt(safe_div(tau, denom, 1.0))
        return jnp.where(after, decay, warm)


inverse_sqrt = InverseSqrt


class Noam(Schedule, name="noam", counts=(), renamed=dict(scale="factor")):
    r"""The Transformer schedule: linear warmup then inverse square root.

    .. math:: \eta(t) = s\, d^{-1/2} \min(t^{-1/2},\ t\,W^{-3/2})

    Args:
        d_model: model width ``d`` > 0.
        warmup_steps: ``W`` >= 1 (4000 in the paper).
        factor: overall factor ``s`` (as in :func:`scale`).

    Raises:
        ValueError: ``d_model`` <= 0, ``warmup_steps`` < 1, or NaN.

    Traced arguments: a traced ``warmup_steps`` below 1 is clamped to 1, a traced ``d_model``
    <= 0 to the smallest positive float.

    Examples:
        >>> import jaxlr
        >>> s = jaxlr.schedules.noam(d_model=512, warmup_steps=4000)
        >>> round(float(s(4000)), 7)
        0.0006988

    References:
        Vaswani et al., Attention Is All You Need, 2017 (section 5.3).
    """

    d_model: ArrayLike
    warmup_steps: ArrayLike = 4000
    factor: ArrayLike = 1.0

    def check(self, c: Checker) -> None:
        c.positive("d_model", self.d_model)
        c.at_least("warmup_steps", self.warmup_steps, 1)
        c.finite("factor", self.factor)

    def law(self, step):
        t = to_float(step)  # a smooth law: the rounded step is as accurate as float allows
        w = jnp.maximum(self.warmup_steps, 1.0)
        shape = jnp.where(t < w, t * w**-1.5, jax.lax.rsqrt(jnp.maximum(t, w)))
        return self.factor * jax.lax.rsqrt(at_least(self.d_model, tiny(t))) * shape


noam = Noam


# ---------------------------------------------------------------------------------------------
# cosine family


class Cosine(Schedule, name="cosine", counts=("total_steps",), renamed=dict(exponent="power")):
    r"""Cosine annealing to a floor, with a power (Optax's ``exponent``) and k-decay.

    .. math:: \eta(t) = E + (I - E)\,\Bigl[\tfrac12\bigl(1 + \cos(\pi\,p^{k})\bigr)\Bigr]^{e},
        \quad p = \min(t/T, 1)

    Args:
        init_value: LR at step 0.
        total_steps: ``T``, the decay length; ``end_value`` after it.
        end_value: the floor ``E``.
        power: ``e`` > 0 (Optax's ``exponent``).
        k: ``k`` > 0 of k-decay (1 is plain cosine; larger keeps the LR high longer).

    Raises:
        ValueError: negative ``total_steps``, ``power`` or ``k`` <= 0, NaN.
        TypeError: the old spelling ``exponent``.

    Traced arguments: a traced ``total_steps`` <= 0 gives ``end_value`` from step 0; traced
    ``power`` or ``k`` <= 0 are not clamped, and the value stays finite.

    Examples:
        >>> import jaxlr
        >>> s = jaxlr.schedules.cosine(init_value=1.0, total_steps=100, end_value=0.1)
        >>> [round(float(s(t)), 4) for t in (0, 50, 100, 150)]
        [1.0, 0.55, 0.1, 0.1]

    References:
        Loshchilov & Hutter, SGDR, 2017; Zhang et al., k-decay, 2020.
    """

    init_value: ArrayLike
    total_steps: ArrayLike
    end_value: ArrayLike = 0.0
    power: ArrayLike = 1.0
    k: ArrayLike = 1.0

    def check(self, c: Checker) -> None:
        c.finite("init_value", self.init_value)
        c.nonnegative("total_steps", self.total_steps)
        c.finite("end_value", self.end_value)
        c.positive("power", self.power)
        c.positive("k", self.k)

    def law(self, step):
        p = safe_pow(progress(step, 0.0, self.total_steps), self.k)
        return self.end_value + (self.init_value - self.end_value) * safe_pow(
            half_cosine(p), self.power
        )


cosine = Cosine


class WarmupCosine(
    Schedule,
    name="warmup_cosine",
    counts=("warmup_steps", "total_steps"),
    renamed=dict(exponent="power"),
):
    r"""Linear warmup to ``peak_value``, then cosine decay to ``end_value``.

    .. math::
        \eta(t) = I + (P - I)\,t/W \ (t < W), \quad
        E + (P - E)\Bigl[\tfrac12\bigl(1 + \cos(\pi \min(1, \tfrac{t - W}{T - W}))\bigr)\Bigr]^{e}
        \ (t \ge W)

    Args:
        peak_value: LR at the end of warmup.
        warmup_steps: warmup length ``W``; 0 disables warmup.
        total_steps: schedule length ``T``, warmup included; steps past it give ``end_value``.
        init_value: LR at step 0.
        end_value: final LR.
        power: ``e`` > 0 (Optax's ``exponent``).

    Raises:
        ValueError: a concrete ``warmup_steps`` < 0, ``total_steps`` < ``warmup_steps``, NaN.
        TypeError: the old spelling ``exponent``.

    Traced arguments: every argument may be traced; ``total_steps < warmup_steps`` then behaves
    as a jump to ``end_value`` at ``warmup_steps``.

    Examples:
        >>> import jaxlr
        >>> s = jaxlr.schedules.warmup_cosine(peak_value=1.0, warmup_steps=10, total_steps=110)
        >>> [round(float(s(t)), 4) for t in (5, 10, 60, 110)]
        [0.5, 1.0, 0.5, 0.0]

    References:
        Loshchilov & Hutter, SGDR: Stochastic Gradient Descent with Warm Restarts, 2017;
        Goyal et al., Accurate, Large Minibatch SGD, 2017 (warmup).
    """

    peak_value: ArrayLike
    warmup_steps: ArrayLike
    total_steps: ArrayLike
    init_value: ArrayLike = 0.0
    end_value: ArrayLike = 0.0
    power: ArrayLike = 1.0

    def check(self, c: Checker) -> None:
        c.finite("peak_value", self.peak_value)
        c.nonnegative("warmup_steps", self.warmup_steps)
        c.nonnegative("total_steps", self.total_steps)
        c.not_greater("warmup_steps", self.warmup_steps, "total_steps", self.total_steps)
        c.finite("init_value", self.init_value)
        c.finite("end_value", self.end_value)
        c.positive("power", self.power)

    def law(self, step):
        warm = self.init_value + (self.peak_value - self.init_value) * progress(
            step, 0.0, self.warmup_steps
        )
        p = progress(step, self.warmup_steps, self.total_steps - self.warmup_steps)
        decay = self.end_value + (self.peak_value - self.end_value) * safe_pow(
            half_cosine(p), self.power
        )
        return jnp.where(reached(step, self.warmup_steps), decay, warm)


warmup_cosine = WarmupCosine


class Sgdr(Schedule, name="sgdr", counts=("period_steps", "cycle_warmup_steps")):
    r"""Cosine annealing with warm restarts (SGDR).

    Cycle ``i`` starts at :math:`s_i = T_0 (m^i - 1)/(m - 1)` (:math:`i T_0` when ``m = 1``),
    lasts :math:`T_i = T_0 m^i` and peaks at :math:`P d^i`. Inside it, with :math:`u = t - s_i`:

    .. math:: \eta = E + (P d^i - E)\,u/W \ (u < W), \quad
        E + (P d^i - E)\,\tfrac12\bigl(1 + \cos(\pi\,\tfrac{u - W}{T_i - W})\bigr) \ (u \ge W)

    After ``cycle_limit`` cycles the LR stays at ``end_value``.

    Args:
        peak_value: ``P``, the first cycle's peak.
        period_steps: ``T_0`` > 0, the first cycle's length.
        period_mult: ``m`` >= 1, growth of each next period (PyTorch's ``T_mult``).
        peak_decay: ``d`` > 0, factor on the peak per cycle (timm's ``cycle_decay``).
        end_value: ``E``, the floor each cycle anneals to.
        cycle_warmup_steps: ``W``, a linear warmup at the start of every cycle.
        cycle_limit: optional number of cycles, after which the LR stays at ``end_value``.

    Raises:
        ValueError: ``period_steps`` <= 0, ``period_mult`` < 1, ``peak_decay`` <= 0,
            ``cycle_warmup_steps`` outside [0, ``period_steps``], ``cycle_limit`` < 1, NaN.

    Traced arguments: a traced ``period_steps`` <= 0 is clamped to the smallest positive float,
    ``period_mult`` below 1 to 1; peaks past the float range saturate.

    Examples:
        >>> import jaxlr
        >>> s = jaxlr.schedules.sgdr(peak_value=1.0, period_steps=10, period_mult=2)
        >>> [round(float(s(t)), 4) for t in (0, 5, 10, 20, 30)]
        [1.0, 0.5, 1.0, 0.5, 1.0]

    References:
        Loshchilov & Hutter, SGDR: Stochastic Gradient Descent with Warm Restarts, 2017.
    """

    peak_value: ArrayLike
    period_steps: ArrayLike
    period_mult: ArrayLike = 1.0
    peak_decay: ArrayLike = 1.0
    end_value: ArrayLike = 0.0
    cycle_warmup_steps: ArrayLike = 0.0
    cycle_limit: ArrayLike | None = None

    def check(self, c: Checker) -> None:
        c.finite("peak_value", self.peak_value)
        c.positive("period_steps", self.period_steps)
        c.at_least("period_mult", self.period_mult, 1)
        c.positive("peak_decay", self.peak_decay)
        c.finite("end_value", self.end_value)
        c.nonnegative("cycle_warmup_steps", self.cycle_warmup_steps)
        c.not_greater(
            "cycle_warmup_steps", self.cycle_warmup_steps, "period_steps", self.period_steps
        )
        if self.cycle_limit is not None:
            c.at_least("cycle_limit", self.cycle_limit, 1)

    def law(self, step):
        i, u, length = steps.restart_cycle(step, self.period_steps, at_least(self.period_mult, 1.0))
        peak = saturate(self.peak_value * power_of(self.peak_decay, i))
        warm = self.end_value + (peak - self.end_value) * progress(u, 0.0, self.cycle_warmup_steps)
        p = progress(u, self.cycle_warmup_steps, length - self.cycle_warmup_steps)
        value = jnp.where(
            u < self.cycle_warmup_steps, warm, anneal(peak, self.end_value, p, "cosine")
        )
        if self.cycle_limit is not None:
            value = jnp.where(i >= self.cycle_limit, self.end_value, value)
        return value


sgdr = Sgdr


class Tanh(Schedule, name="tanh", counts=("total_steps",)):
    r"""Hyperbolic-tangent decay (timm ``TanhLRScheduler``).

    .. math:: \eta(t) = E + \tfrac12 (I - E)\bigl(1 - \tanh(l (1 - p) + u\,p)\bigr),
        \quad p = t/T \ (t < T); \quad E \ (t \ge T)

    Args:
        init_value: ``I`` (reached only approximately at t = 0, as in timm).
        total_steps: ``T`` > 0.
        end_value: ``E``, from ``T`` on.
        lower: ``l`` (timm ``lb``, -7).
        upper: ``u`` (timm ``ub``, 3); must exceed ``lower``.

    Raises:
        ValueError: ``total_steps`` <= 0, ``lower`` >= ``upper``, NaN.

    Traced arguments: a traced ``total_steps`` <= 0 behaves as a jump to ``end_value``.

    Examples:
        >>> import jaxlr
        >>> s = jaxlr.schedules.tanh(init_value=1.0, total_steps=100)
        >>> round(float(s(70)), 4), float(s(100))
        (0.5, 0.0)

    References:
        Hsueh et al., Stochastic Gradient Descent with Hyperbolic-Tangent Decay, 2019.
    """

    init_value: ArrayLike
    total_steps: ArrayLike
    end_value: ArrayLike = 0.0
    lower: ArrayLike = -7.0
    upper: ArrayLike = 3.0

    def check(self, c: Checker) -> None:
        c.finite("init_value", self.init_value)
        c.positive("total_steps", self.total_steps)
        c.finite("end_value", self.end_value)
        lo, hi = c.finite("lower", self.lower), c.finite("upper", self.upper)
        if lo is not None and hi is not None and not bool(np.all(lo < hi)):
            c.fail(f"upper must exceed lower, got lower={self.lower!r}, upper={self.upper!r}")

    def law(self, step):
        p = progress(step, 0.0, self.total_steps)
        x = self.lower + (self.upper - self.lower) * p
        value = self.end_value + 0.5 * (self.init_value - self.end_value) * (1.0 - jnp.tanh(x))
        return jnp.where(reached(step, self.total_steps), self.end_value, value)


tanh = Tanh
