"""Curve shapes shared by every law: one anneal between two values, and knot interpolation."""

from __future__ import annotations

from collections.abc import Sequence

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike

from jaxlr._src.numeric import half_cosine, safe_div, safe_sqrt
from jaxlr._src.steps import Sum, progress, reached

#: Shapes of a phase that moves from ``a`` to ``b`` as its progress ``p`` goes 0 -> 1.
SHAPES = ("linear", "cosine", "1-sqrt", "exponential", "inverse")
#: Shapes that need both endpoints > 0 (they interpolate in log or reciprocal space).
POSITIVE_SHAPES = ("exponential", "inverse")


def anneal(a: ArrayLike, b: ArrayLike, p: ArrayLike, shape: str) -> jax.Array:
    r"""Moves from ``a`` (``p = 0``) to ``b`` (``p = 1``) along ``shape``.

    linear: :math:`a + (b-a)p`; cosine: :math:`b + (a-b)\tfrac12(1+\cos\pi p)`;
    1-sqrt: :math:`b + (a-b)(1-\sqrt p)` (Hägele et al. 2024); exponential: :math:`a (b/a)^p`;
    inverse: :math:`1 / ((1-p)/a + p/b)` (linear in ``1/value``).

    Args:
        a: the value at ``p = 0``.
        b: the value at ``p = 1``.
        p: progress in [0, 1] (an array).
        shape: one of ``SHAPES`` (static).

    Examples:
        >>> from jaxlr.schedules import anneal
        >>> [round(float(anneal(1.0, 0.0, 0.25, s)), 4) for s in ("linear", "cosine", "1-sqrt")]
        [0.75, 0.8536, 0.5]
        >>> round(float(anneal(1.0, 0.01, 0.5, "exponential")), 4)
        0.1
    """
    if shape == "linear":
        return a + (b - a) * p
    if shape == "cosine":
        return b + (a - b) * half_cosine(p)
    if shape == "1-sqrt":
        return b + (a - b) * (1.0 - safe_sqrt(p))
    if shape == "exponential":
        la = jnp.log(jnp.maximum(a, jnp.finfo(jnp.result_type(a)).tiny))
        lb = jnp.log(jnp.maximum(b, jnp.finfo(jnp.result_type(b)).tiny))
        return jnp.exp(la + (lb - la) * p)
    if shape == "inverse":
        return safe_div(a * b, (1.0 - p) * b + p * a)
    raise ValueError(f"anneal: shape must be one of {SHAPES}, got shape={shape!r}")


def rise(a: ArrayLike, b: ArrayLike, p: ArrayLike, shape: str) -> jax.Array:
    """A warmup from ``a`` to ``b``: the decay ``b -> a`` of the same shape played backwards.

    For linear and cosine this equals ``anneal(a, b, p)``; a 1-sqrt warmup starts slowly and
    ends steeply, mirroring the 1-sqrt cooldown.
    """
    return anneal(b, a, 1.0 - p, shape)


def segments(
    step: jax.Array,
    knots: Sequence[ArrayLike],
    values: Sequence[ArrayLike],
    shapes: Sequence[tuple[str, bool]],
) -> jax.Array:
    """Piecewise curve through ``(knots[i], values[i])``; flat before the first and after the last.

    ``shapes[i] = (shape, rising)`` gives the curve between knot ``i`` and ``i + 1``: ``anneal``
    (``rising=False``) or ``rise`` (``rising=True``). A zero-length piece is a jump.
    """
    out = None
    for i, (shape, rising) in enumerate(shapes):
        p = progress(step, knots[i], Sum(knots[i + 1]) - knots[i])
        curve = (rise if rising else anneal)(values[i], values[i + 1], p, shape)
        out = curve if out is None else jnp.where(reached(step, knots[i]), curve, out)
    return jnp.where(reached(step, knots[0]), out, jnp.broadcast_to(values[0], out.shape))
