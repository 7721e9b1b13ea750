"""Pytree helpers shared by the sweep driver and the ``jaxlr.auto`` searches (private)."""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike


def tree_where(mask: ArrayLike, on_true: Any, on_false: Any) -> Any:
    """``jnp.where(mask, a, b)`` leaf by leaf over two pytrees of one structure.

    ``mask`` covers the leading axes of every leaf (a scalar for one member, ``[K]`` for a
    member axis) and is broadcast over the rest: a member keeps its whole ``on_true`` state or
    its whole ``on_false`` state.
    """
    mask = jnp.asarray(mask)

    def pick(a, b):
        m = mask.reshape(mask.shape + (1,) * (jnp.ndim(a) - mask.ndim))
        return jnp.where(m, a, b)

    return jax.tree.map(pick, on_true, on_false)
