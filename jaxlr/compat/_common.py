"""Helpers shared by the peer-compatible constructors (private)."""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import ArrayLike

from jaxlr._src.numeric import safe_div
from jaxlr._src.validate import Checker


def half_cos(num: ArrayLike, den: ArrayLike) -> jax.Array:
    r"""``(1 + cos(pi num / den)) / 2`` with full relative precision near its zeros.

    The argument is reduced to one period first (exact for integer ``num`` and ``den``), then
    :math:`\tfrac12(1 + \cos \pi u) = \sin^2(\tfrac\pi2 (1 - |u|))`, whose small values are not the
    difference of two numbers near 1. ``den = 0`` gives 1.
    """
    period = 2.0 * den
    u = num - period * jnp.round(safe_div(num, period))
    return jnp.sin(0.5 * jnp.pi * safe_div(den - jnp.abs(u), den, 1.0)) ** 2


def integer(c: Checker, name: str, value: Any, *, minimum: int) -> None:
    """Checks that a concrete value is an integer (an integral float counts) >= ``minimum``."""
    a = c.finite(name, value)
    if a is None:
        return
    if not (bool(np.all(a == np.round(a))) and bool(np.all(a >= minimum))):
        c.fail(f"{name} must be an integer >= {minimum}, got {name}={a.tolist()!r}")


def callable_arg(c: Checker, name: str, fn: Any) -> None:
    if not callable(fn):
        c.fail(f"{name} must be a jax-traceable function of the step, got {name}={fn!r}")
