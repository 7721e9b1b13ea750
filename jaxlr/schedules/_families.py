"""The schedule families: a private pure law each, and its public validating constructor.

Every law takes ``step`` and the hyperparameters as keyword arguments, and is a few lines of
``jnp`` arithmetic with no Python branch on a hyperparameter value, so every numeric
hyperparameter can be traced (jit, vmap, grad). The step arrives as it comes (an integer or
float array) and the step-count hyperparameters (``counts=`` at registration) as float leaves:
integer decisions (which piece, stair or cycle; elapsed steps) go through ``jaxlr._src.steps``,
exact for every int32 step, and the rest is plain float arithmetic.
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
from jaxlr._src.validate import Checker, renamed
from jaxlr.schedules._core import Schedule, make, register
from jaxlr.schedules._shapes import POSITIVE_SHAPES, SHAPES, anneal


def _like(step: jax.Array, value: ArrayLike) -> jax.Array:
    value = jnp.asarray(value)
    return jnp.broadcast_to(value, jnp.shape(step)).astype(value.dtype)


# ---------------------------------------------------------------------------------------------
# constant, linear, polynomial


def _constant(step, *, value):
    return _like(step, value)


@register("constant", _constant, counts=())
def constant(*, value: ArrayLike) -> Schedule:
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
    Checker("constant").finite("value", value)
    return make("constant", dict(value=value))


def _linear(step, *, init_value, end_value, total_steps, begin_steps):
    p = progress(step, begin_steps, total_steps - begin_steps)
    return init_value + (end_value - init_value) * p


@register("linear", _linear, counts=("total_steps", "begin_steps"))
def linear(
    *,
    init_value: ArrayLike,
    end_value: ArrayLike,
    total_steps: ArrayLike,
    begin_steps: ArrayLike = 0,
) -> Schedule:
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
    c = Checker("linear")
    c.finite("init_value", init_value)
    c.finite("end_value", end_value)
    c.nonnegative("total_steps", total_steps)
    c.nonnegative("begin_steps", begin_steps)
    c.not_greater("begin_steps", begin_steps, "total_steps", total_steps)
    return make(
        "linear",
        dict(
            init_value=init_value,
            end_value=end_value,
            total_steps=total_steps,
            begin_steps=begin_steps,
        ),
    )


def _polynomial(step, *, init_value, end_value, total_steps, power, begin_steps):
    p = progress(step, begin_steps, total_steps - begin_steps)
    return end_value + (init_value - end_value) * safe_pow(1.0 - p, power)


@register("polynomial", _polynomial, counts=("total_steps", "begin_steps"))
def polynomial(
    *,
    init_value: ArrayLike,
    end_value: ArrayLike,
    total_steps: ArrayLike,
    power: ArrayLike = 1.0,
    begin_steps: ArrayLike = 0,
) -> Schedule:
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
    c = Checker("polynomial")
    c.finite("init_value", init_value)
    c.finite("end_value", end_value)
    c.nonnegative("total_steps", total_steps)
    c.positive("power", power)
    c.nonnegative("begin_steps", begin_steps)
    c.not_greater("begin_steps", begin_steps, "total_steps", total_steps)
    return make(
        "polynomial",
        dict(
            init_value=init_value,
            end_value=end_value,
            total_steps=total_steps,
            power=power,
            begin_steps=begin_steps,
        ),
    )


# ---------------------------------------------------------------------------------------------
# exponential, inverse time, step, multistep


def _exponent(step, begin_steps, period_steps, staircase):
    """``max(step - B, 0) / P`` (floored exactly if staircase); a traced period <= 0 is clamped
    to the smallest positive normal float, and the count saturates at the largest finite float."""
    if staircase:  # which stair: exact for integer steps and periods
        return steps.floor_div(steps.shift_from(step, begin_steps), period_steps)
    e = jnp.maximum(elapsed(step, begin_steps), 0.0)
    big = jnp.finfo(e.dtype).max
    return jnp.minimum(e / at_least(period_steps, tiny(e)), big)


def _exponential(
    step, *, init_value, decay_rate, period_steps, begin_steps, staircase, end_value=None
):
    factor = power_of(decay_rate, _exponent(step, begin_steps, period_steps, staircase))
    value = saturate(init_value * factor)
    if end_value is not None:
        value = jnp.where(
            decay_rate < 1.0, jnp.maximum(value, end_value), jnp.minimum(value, end_value)
        )
    return value


@register("exponential", _exponential, counts=("period_steps", "begin_steps"))
@renamed(transition_steps="period_steps")
def exponential(
    *,
    init_value: ArrayLike,
    decay_rate: ArrayLike,
    period_steps: ArrayLike,
    begin_steps: ArrayLike = 0,
    staircase: bool = False,
    end_value: ArrayLike | None = None,
) -> Schedule:
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
    limit after step 0).

    Examples:
        >>> import jaxlr
        >>> s = jaxlr.schedules.exponential(init_value=1.0, decay_rate=0.5, period_steps=10)
        >>> round(float(s(20)), 4), round(float(s(5)), 4)
        (0.25, 0.7071)

    References:
        PyTorch ``ExponentialLR``; Keras ``ExponentialDecay``; Optax ``exponential_decay``.
    """
    c = Checker("exponential")
    c.finite("init_value", init_value)
    c.positive("decay_rate", decay_rate)
    c.positive("period_steps", period_steps)
    c.nonnegative("begin_steps", begin_steps)
    c.flag("staircase", staircase)
    params = dict(
        init_value=init_value,
        decay_rate=decay_rate,
        period_steps=period_steps,
        begin_steps=begin_steps,
    )
    if end_value is not None:
        c.finite("end_value", end_value)
        params["end_value"] = end_value
    return make("exponential", params, dict(staircase=staircase))


def _inverse_time(step, *, init_value, decay_rate, period_steps, staircase):
    e = _exponent(step, 0.0, period_steps, staircase)
    return init_value / (1.0 + jnp.maximum(decay_rate, 0.0) * e)


@register("inverse_time", _inverse_time, counts=("period_steps",))
@renamed(transition_steps="period_steps")
def inverse_time(
    *,
    init_value: ArrayLike,
    decay_rate: ArrayLike,
    period_steps: ArrayLike,
    staircase: bool = False,
) -> Schedule:
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
    c = Checker("inverse_time")
    c.finite("init_value", init_value)
    c.nonnegative("decay_rate", decay_rate)
    c.positive("period_steps", period_steps)
    c.flag("staircase", staircase)
    return make(
        "inverse_time",
        dict(init_value=init_value, decay_rate=decay_rate, period_steps=period_steps),
        dict(staircase=staircase),
    )


def _step(step, *, init_value, period_steps, decay_rate):
    return saturate(init_value * power_of(decay_rate, steps.floor_div(step, period_steps)))


@register("step", _step, counts=("period_steps",))
@renamed(step_size="period_steps")
def step(*, init_value: ArrayLike, period_steps: ArrayLike, decay_rate: ArrayLike) -> Schedule:
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
    c = Checker("step")
    c.finite("init_value", init_value)
    c.positive("period_steps", period_steps)
    c.positive("decay_rate", decay_rate)
    return make(
        "step", dict(init_value=init_value, period_steps=period_steps, decay_rate=decay_rate)
    )


def _multistep(step, *, init_value, boundaries, decay_rate):
    rates = jnp.broadcast_to(decay_rate, boundaries.shape)
    passed = reached(step[..., None], boundaries)
    # a product of rates > 1 saturates rather than overflowing to inf
    return saturate(init_value * saturate(jnp.prod(jnp.where(passed, rates, 1.0), axis=-1)))


@register("multistep", _multistep, counts=("boundaries",))
def multistep(
    *, init_value: ArrayLike, boundaries: ArrayLike, decay_rate: ArrayLike = 0.1
) -> Schedule:
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
    c = Checker("multistep")
    c.finite("init_value", init_value)
    b = c.vector("boundaries", boundaries, min_len=1)
    c.nonnegative("boundaries", boundaries)
    c.sorted("boundaries", boundaries)
    r = c.positive("decay_rate", decay_rate)
    if b is not None and r is not None and r.ndim > 0:
        c.same_length("boundaries", b, "decay_rate", r)
    return make(
        "multistep", dict(init_value=init_value, boundaries=boundaries, decay_rate=decay_rate)
    )


def _piecewise_constant(step, *, boundaries, values, right):
    t = step[..., None]
    passed = steps.passed(t, boundaries) if right else reached(t, boundaries)
    index = jnp.sum(passed, axis=-1)
    return jnp.take(values, index)


@register("piecewise_constant", _piecewise_constant, counts=("boundaries",))
def piecewise_constant(
    *, boundaries: ArrayLike, values: ArrayLike, right: bool = False
) -> Schedule:
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
    c = Checker("piecewise_constant")
    b = c.vector("boundaries", boundaries, min_len=1)
    v = c.vector("values", values, min_len=2)
    c.sorted("boundaries", boundaries)
    if b is not None and v is not None:
        c.same_length("boundaries", b, "values", v, offset=1)
    c.flag("right", right)
    return make("piecewise_constant", dict(boundaries=boundaries, values=values), dict(right=right))


def _piecewise_interpolate(step, *, boundaries, values, shape):
    # One piece looked up, not one evaluated per knot: the trace does not grow with the knots.
    n = boundaries.shape[-1]
    passed = reached(step[..., None], boundaries)  # exact, like every decision
    i = jnp.clip(jnp.sum(passed, axis=-1) - 1, 0, n - 2)[..., None]

    def at(x, j):
        return jnp.take_along_axis(jnp.broadcast_to(x, passed.shape), j, axis=-1)[..., 0]

    k0, k1 = at(boundaries, i), at(boundaries, i + 1)
    curve = anneal(at(values, i), at(values, i + 1), progress(step, k0, k1 - k0), shape)
    return jnp.where(passed[..., 0], curve, at(values, jnp.zeros_like(i)))


@register("piecewise_interpolate", _piecewise_interpolate, counts=("boundaries",))
@renamed(interpolation="shape")
def piecewise_interpolate(
    *, boundaries: ArrayLike, values: ArrayLike, shape: str = "linear"
) -> Schedule:
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
    c = Checker("piecewise_interpolate")
    b = c.vector("boundaries", boundaries, min_len=2)
    v = c.vector("values", values, min_len=2)
    c.sorted("boundaries", boundaries)
    if b is not None and v is not None:
        c.same_length("boundaries", b, "values", v)
    c.choice("shape", shape, SHAPES)
    if shape in POSITIVE_SHAPES:
        c.positive("values", values)
    return make(
        "piecewise_interpolate", dict(boundaries=boundaries, values=values), dict(shape=shape)
    )


# ---------------------------------------------------------------------------------------------
# inverse square root, Noam


def _inverse_sqrt(step, *, peak_value, warmup_steps, timescale, init_value, warmup_shape):
    if warmup_shape == "linear":
        warm = init_value + (peak_value - init_value) * progress(step, 0.0, warmup_steps)
    else:
        warm = _like(step, peak_value)
    after = reached(step, warmup_steps)
    tau = at_least(timescale, tiny(timescale))
    denom = jnp.where(after, elapsed(step, warmup_steps) + tau, tau)
    decay = peak_value * jnp.sqrt(safe_div(tau, denom, 1.0))
    return jnp.where(after, decay, warm)


@register("inverse_sqrt", _inverse_sqrt, counts=("warmup_steps",))
@renamed(warmup="warmup_shape")
def inverse_sqrt(
    *,
    peak_value: ArrayLike,
    warmup_steps: ArrayLike,
    timescale: ArrayLike | None = None,
    init_value: ArrayLike = 0.0,
    warmup_shape: str = "linear",
) -> Schedule:
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
    c = Checker("inverse_sqrt")
    c.finite("peak_value", peak_value)
    c.nonnegative("warmup_steps", warmup_steps)
    c.finite("init_value", init_value)
    c.choice("warmup_shape", warmup_shape, ("linear", "constant"))
    if timescale is None:
        timescale = warmup_steps
        c.positive("timescale (default: warmup_steps)", timescale)
    else:
        c.positive("timescale", timescale)
    return make(
        "inverse_sqrt",
        dict(
            peak_value=peak_value,
            warmup_steps=warmup_steps,
            timescale=timescale,
            init_value=init_value,
        ),
        dict(warmup_shape=warmup_shape),
    )


def _noam(step, *, d_model, warmup_steps, factor):
    t = to_float(step)  # a smooth law: the rounded step is as accurate as float allows
    w = jnp.maximum(warmup_steps, 1.0)
    shape = jnp.where(t < w, t * w**-1.5, jax.lax.rsqrt(jnp.maximum(t, w)))
    return factor * jax.lax.rsqrt(at_least(d_model, tiny(t))) * shape


@register("noam", _noam, counts=())
@renamed(scale="factor")
def noam(
    *, d_model: ArrayLike, warmup_steps: ArrayLike = 4000, factor: ArrayLike = 1.0
) -> Schedule:
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
    c = Checker("noam")
    c.positive("d_model", d_model)
    c.at_least("warmup_steps", warmup_steps, 1)
    c.finite("factor", factor)
    return make("noam", dict(d_model=d_model, warmup_steps=warmup_steps, factor=factor))


# ---------------------------------------------------------------------------------------------
# cosine family


def _cosine(step, *, init_value, total_steps, end_value, power, k):
    p = safe_pow(progress(step, 0.0, total_steps), k)
    return end_value + (init_value - end_value) * safe_pow(half_cosine(p), power)


@register("cosine", _cosine, counts=("total_steps",))
@renamed(exponent="power")
def cosine(
    *,
    init_value: ArrayLike,
    total_steps: ArrayLike,
    end_value: ArrayLike = 0.0,
    power: ArrayLike = 1.0,
    k: ArrayLike = 1.0,
) -> Schedule:
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
    c = Checker("cosine")
    c.finite("init_value", init_value)
    c.nonnegative("total_steps", total_steps)
    c.finite("end_value", end_value)
    c.positive("power", power)
    c.positive("k", k)
    return make(
        "cosine",
        dict(init_value=init_value, total_steps=total_steps, end_value=end_value, power=power, k=k),
    )


def _warmup_cosine(step, *, peak_value, warmup_steps, total_steps, init_value, end_value, power):
    warm = init_value + (peak_value - init_value) * progress(step, 0.0, warmup_steps)
    p = progress(step, warmup_steps, total_steps - warmup_steps)
    decay = end_value + (peak_value - end_value) * safe_pow(half_cosine(p), power)
    return jnp.where(reached(step, warmup_steps), decay, warm)


@register("warmup_cosine", _warmup_cosine, counts=("warmup_steps", "total_steps"))
@renamed(exponent="power")
def warmup_cosine(
    *,
    peak_value: ArrayLike,
    warmup_steps: ArrayLike,
    total_steps: ArrayLike,
    init_value: ArrayLike = 0.0,
    end_value: ArrayLike = 0.0,
    power: ArrayLike = 1.0,
) -> Schedule:
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
    c = Checker("warmup_cosine")
    c.finite("peak_value", peak_value)
    c.nonnegative("warmup_steps", warmup_steps)
    c.nonnegative("total_steps", total_steps)
    c.not_greater("warmup_steps", warmup_steps, "total_steps", total_steps)
    c.finite("init_value", init_value)
    c.finite("end_value", end_value)
    c.positive("power", power)
    return make(
        "warmup_cosine",
        dict(
            peak_value=peak_value,
            warmup_steps=warmup_steps,
            total_steps=total_steps,
            init_value=init_value,
            end_value=end_value,
            power=power,
        ),
    )


def _sgdr(
    step,
    *,
    peak_value,
    period_steps,
    period_mult,
    peak_decay,
    end_value,
    cycle_warmup_steps,
    cycle_limit=None,
):
    # cycles found exactly for integer steps, periods and multipliers (steps.restart_cycle)
    i, u, length = steps.restart_cycle(step, period_steps, at_least(period_mult, 1.0))
    peak = saturate(peak_value * power_of(peak_decay, i))
    warm = end_value + (peak - end_value) * progress(u, 0.0, cycle_warmup_steps)
    p = progress(u, cycle_warmup_steps, length - cycle_warmup_steps)
    value = jnp.where(u < cycle_warmup_steps, warm, anneal(peak, end_value, p, "cosine"))
    if cycle_limit is not None:
        value = jnp.where(i >= cycle_limit, end_value, value)
    return value


@register("sgdr", _sgdr, counts=("period_steps", "cycle_warmup_steps"))
def sgdr(
    *,
    peak_value: ArrayLike,
    period_steps: ArrayLike,
    period_mult: ArrayLike = 1.0,
    peak_decay: ArrayLike = 1.0,
    end_value: ArrayLike = 0.0,
    cycle_warmup_steps: ArrayLike = 0.0,
    cycle_limit: ArrayLike | None = None,
) -> Schedule:
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
    c = Checker("sgdr")
    c.finite("peak_value", peak_value)
    c.positive("period_steps", period_steps)
    c.at_least("period_mult", period_mult, 1)
    c.positive("peak_decay", peak_decay)
    c.finite("end_value", end_value)
    c.nonnegative("cycle_warmup_steps", cycle_warmup_steps)
    c.not_greater("cycle_warmup_steps", cycle_warmup_steps, "period_steps", period_steps)
    params = dict(
        peak_value=peak_value,
        period_steps=period_steps,
        period_mult=period_mult,
        peak_decay=peak_decay,
        end_value=end_value,
        cycle_warmup_steps=cycle_warmup_steps,
    )
    if cycle_limit is not None:
        c.at_least("cycle_limit", cycle_limit, 1)
        params["cycle_limit"] = cycle_limit
    return make("sgdr", params)


def _tanh(step, *, init_value, total_steps, end_value, lower, upper):
    p = progress(step, 0.0, total_steps)
    x = lower + (upper - lower) * p
    value = end_value + 0.5 * (init_value - end_value) * (1.0 - jnp.tanh(x))
    return jnp.where(reached(step, total_steps), end_value, value)


@register("tanh", _tanh, counts=("total_steps",))
def tanh(
    *,
    init_value: ArrayLike,
    total_steps: ArrayLike,
    end_value: ArrayLike = 0.0,
    lower: ArrayLike = -7.0,
    upper: ArrayLike = 3.0,
) -> Schedule:
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
    c = Checker("tanh")
    c.finite("init_value", init_value)
    c.positive("total_steps", total_steps)
    c.finite("end_value", end_value)
    lo, hi = c.finite("lower", lower), c.finite("upper", upper)
    if lo is not None and hi is not None and not bool(np.all(lo < hi)):
        c.fail(f"upper must exceed lower, got lower={lower!r}, upper={upper!r}")
    return make(
        "tanh",
        dict(
            init_value=init_value,
            total_steps=total_steps,
            end_value=end_value,
            lower=lower,
            upper=upper,
        ),
    )
