"""Gradient-safe arithmetic: every branch of a ``jnp.where`` stays finite over the whole domain."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import ArrayLike


def float_dtype() -> jnp.dtype:
    """The default float dtype (float32, or float64 under ``jax_enable_x64``)."""
    return jnp.result_type(float)


def as_float(x: ArrayLike) -> jax.Array:
    """``x`` as an array of the default float dtype (tracers keep tracing)."""
    return jnp.asarray(x, dtype=float_dtype())


def _one(x: ArrayLike) -> np.ndarray:
    """1 in ``x``'s dtype (a typed constant: no conversion in the traced program)."""
    return np.asarray(1, jnp.result_type(x))


def safe_div(num: ArrayLike, den: ArrayLike, default: ArrayLike = 0.0) -> jax.Array:
    """``num / den`` where ``den != 0``, else ``default``; the gradient is finite everywhere."""
    ok = den != 0
    return jnp.where(ok, num / jnp.where(ok, den, _one(den)), default)


def safe_pow(base: ArrayLike, exponent: ArrayLike) -> jax.Array:
    """``base ** exponent`` for ``base >= 0``, ``0 ** e = 0``; finite gradients at ``base = 0``."""
    pos = base > 0
    # XLA's pow (a quarter of exp(e log b)'s cost on CPU); the inner where keeps the gradient
    # finite at base = 0 for exponents below 1
    return jnp.where(pos, jnp.power(jnp.where(pos, base, _one(base)), exponent), 0 * _one(base))


def safe_sqrt(x: ArrayLike) -> jax.Array:
    """``sqrt(max(x, 0))`` whose gradient at 0 is 0 instead of infinite."""
    pos = x > 0
    return jnp.where(pos, jnp.sqrt(jnp.where(pos, x, _one(x))), 0 * _one(x))


def times(x: ArrayLike, factor: float) -> jax.Array | np.ndarray:
    """``x * factor`` for a default computed at construction: in float64 on the host when ``x``
    is concrete (so a value that overflows float32 is reported as itself when it becomes a
    leaf, not as an infinite default), in traced float math otherwise."""
    if isinstance(x, jax.core.Tracer):
        return as_float(x) * factor
    return np.asarray(x, np.float64) * factor


def at_least(x: ArrayLike, lo: ArrayLike) -> jax.Array:
    """``max(x, lo)`` whose gradient with respect to ``x`` is 0 (not NaN) where ``x < lo``.

    The clamp for traced invalid hyperparameters (a period <= 0, a rate <= 0): a law evaluated at
    the clamped value may have an infinite derivative there, which ``jnp.maximum`` would multiply
    by 0 into NaN; the double ``where`` drops it.
    """
    return jnp.where(x > lo, x, lo)


def tiny(x: ArrayLike) -> jax.Array:
    """The smallest positive normal number of ``x``'s float dtype."""
    return jnp.asarray(jnp.finfo(jnp.result_type(x)).tiny, jnp.result_type(x))


def saturate(x: ArrayLike) -> jax.Array:
    """``x`` clipped to the largest finite magnitude of its dtype (inf becomes finite)."""
    x = jnp.asarray(x)
    big = np.asarray(jnp.finfo(x.dtype).max, x.dtype)
    return jax.lax.clamp(-big, x, big)


def power_of(base: ArrayLike, exponent: ArrayLike) -> jax.Array:
    """``base ** exponent`` for a rate ``base > 0`` (a traced ``base <= 0`` is clamped to the
    smallest positive float), saturating below the largest finite float: never inf, so
    ``0 * power_of(...)`` is 0, not NaN."""
    rate = at_least(base, tiny(exponent))
    dtype = jnp.result_type(exponent)
    log_max = np.asarray(np.log(jnp.finfo(dtype).max) - 1.0, dtype)  # exp() stays finite
    return jnp.exp(jnp.minimum(exponent * jnp.log(rate), log_max))


def half_cosine(num: ArrayLike, den: ArrayLike = 1.0) -> jax.Array:
    r"""The half-cosine :math:`\tfrac12(1 + \cos(\pi\,num/den))`, the one copy every law uses.

    The argument is reduced to one period first (exact for integer ``num`` and ``den``), then
    :math:`\tfrac12(1 + \cos \pi u) = \sin^2(\tfrac\pi2 (1 - |u|))`, whose small values are not
    the difference of two numbers near 1 (full relative precision near the zeros, so a cosine
    decay to 0 ends in 1e-12, not in float32 rounding noise). ``den = 0`` gives 1.

    Examples:
        >>> from jaxlr._src.numeric import half_cosine
        >>> [round(float(half_cosine(p)), 4) for p in (0.0, 0.25, 0.5, 1.0)]
        [1.0, 0.8536, 0.5, 0.0]
        >>> float(half_cosine(3, 4)) == float(half_cosine(0.75))
        True
    """
    if isinstance(den, float) and den == 1.0:  # cos^2 is even: the identity holds for every u
        return jnp.sin(0.5 * jnp.pi * (1.0 - num)) ** 2
    period = 2.0 * den
    u = num - period * jnp.round(safe_div(num, period))
    return jnp.sin(0.5 * jnp.pi * safe_div(den - jnp.abs(u), den, 1.0)) ** 2
