"""Gradient-safe arithmetic: every branch of a ``jnp.where`` stays finite over the whole domain."""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike


def float_dtype() -> jnp.dtype:
    """The default float dtype (float32, or float64 under ``jax_enable_x64``)."""
    return jnp.result_type(float)


def as_float(x: ArrayLike) -> jax.Array:
    """``x`` as an array of the default float dtype (tracers keep tracing)."""
    return jnp.asarray(x, dtype=float_dtype())


def safe_div(num: ArrayLike, den: ArrayLike, default: ArrayLike = 0.0) -> jax.Array:
    """``num / den`` where ``den != 0``, else ``default``; the gradient is finite everywhere."""
    ok = den != 0
    return jnp.where(ok, num / jnp.where(ok, den, 1.0), default)


def safe_pow(base: ArrayLike, exponent: ArrayLike) -> jax.Array:
    """``base ** exponent`` for ``base >= 0``, ``0 ** e = 0``; finite gradients at ``base = 0``."""
    pos = base > 0
    return jnp.where(pos, jnp.exp(exponent * jnp.log(jnp.where(pos, base, 1.0))), 0.0)


def safe_sqrt(x: ArrayLike) -> jax.Array:
    """``sqrt(max(x, 0))`` whose gradient at 0 is 0 instead of infinite."""
    pos = x > 0
    return jnp.where(pos, jnp.sqrt(jnp.where(pos, x, 1.0)), 0.0)


def progress(step: ArrayLike, start: ArrayLike, length: ArrayLike) -> jax.Array:
    """Fraction of a phase ``[start, start + length)`` done at ``step``, clipped to [0, 1].

    A phase of length 0 counts as done from its start on.
    """
    done = jnp.where(step >= start, 1.0, 0.0)
    return jnp.clip(safe_div(step - start, length, done), 0.0, 1.0)
