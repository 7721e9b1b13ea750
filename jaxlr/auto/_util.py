"""Small helpers shared by the ``jaxlr.auto`` modules (private)."""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import ArrayLike


def tree_where(cond: ArrayLike, on_true: Any, on_false: Any) -> Any:
    """``jnp.where(cond, a, b)`` leaf by leaf over two pytrees of one structure."""
    return jax.tree.map(lambda a, b: jnp.where(cond, a, b), on_true, on_false)


def huber(x: ArrayLike, delta: ArrayLike) -> jax.Array:
    r"""Huber loss :math:`\tfrac12 x^2` for :math:`|x| \le \delta`, else
    :math:`\delta(|x| - \tfrac12\delta)`."""
    a = jnp.abs(x)
    return jnp.where(a <= delta, 0.5 * x * x, delta * (a - 0.5 * delta))


def scan_steps(step_fn, state: Any, lr: ArrayLike, key: jax.Array, num_steps: int):
    """Runs ``step_fn(state, lr, key_i) -> (state, loss)`` for a static number of steps.

    The key of step ``i`` is ``fold_in(key, i)``, so runs that share ``key`` see the same data.
    Returns the final state and the ``[num_steps]`` losses.
    """

    def body(s, i):
        s, loss = step_fn(s, lr, jax.random.fold_in(key, i))
        return s, loss

    return jax.lax.scan(body, state, jnp.arange(num_steps))


def as_numpy_curve(fn: str, name: str, value: Any) -> np.ndarray:
    """A 1-D float64 NumPy copy of ``value``; ValueError naming ``fn`` and ``name`` otherwise."""
    a = np.asarray(value, dtype=np.float64)
    if a.ndim != 1:
        raise ValueError(f"{fn}: {name} must be 1-D, got shape {a.shape}")
    return a
