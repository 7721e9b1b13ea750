"""Small helpers shared by the ``jaxlr.auto`` modules (private)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import ArrayLike

from jaxlr._src.validate import Checker

# What calling a step function in the wrong form raises (a dict where a number was meant, an
# array indexed by "lr"): the sign to try the other form. Anything else is the user's error.
_WRONG_FORM = (TypeError, KeyError, IndexError, AttributeError)


def huber(x: ArrayLike, delta: ArrayLike) -> jax.Array:
    r"""Huber loss :math:`\tfrac12 x^2` for :math:`|x| \le \delta`, else
    :math:`\delta(|x| - \tfrac12\delta)`."""
    a = jnp.abs(x)
    return jnp.where(a <= delta, 0.5 * x * x, delta * (a - 0.5 * delta))


def loss_step(fn: str, step_fn: Callable, state: Any, config: Any, batch: Any) -> Callable:
    """``step_fn`` as ``(state, config, batch) -> (state, loss)``, ``config`` a dict with an
    ``"lr"`` (and ``"hparam"`` for the range test's second hyperparameter).

    The convention: ``step_fn(state, config, batch) -> (state, metrics)``, the loss its
    ``"loss"`` metric. The older form: ``step_fn(state, lr, key[, hparam]) -> (state, loss)``.
    Which one ``step_fn`` is written in is told by tracing it on the shapes of a first call's
    ``state``, ``config`` and ``batch`` (arrays or tracers; nothing runs): called from inside
    the caller's compiled function, the test is made once per compile, not per call. A step
    that takes the config dict and returns ``(state, metrics)`` with metrics a dict follows the
    convention; otherwise the older form is tried, and if that fails too, the convention's error
    is raised (with the older form's as a note).
    """
    c = Checker(fn)

    def older(state, config, batch):
        extra = (config["hparam"],) if "hparam" in config else ()
        return step_fn(state, config["lr"], batch, *extra)

    def convention(state, config, batch):
        state, metrics = step_fn(state, config, batch)
        return state, metrics["loss"]

    try:
        out = jax.eval_shape(step_fn, state, config, batch)
    except _WRONG_FORM as e:
        error, out = e, None
    else:
        error = None
        metrics = out[1] if isinstance(out, tuple) and len(out) == 2 else None
        if isinstance(metrics, Mapping):
            if "loss" not in metrics:
                c.fail(
                    f"step_fn's metrics need a 'loss' entry (the loss the search follows), "
                    f"got metrics={sorted(metrics)}"
                )
            return convention
    try:
        jax.eval_shape(older, state, config, batch)
    except _WRONG_FORM as e:
        if error is None:
            c.fail(
                f"step_fn(state, config, batch) must return (state, metrics) with metrics a "
                f"dict holding 'loss', got {out!r}"
            )
        error.add_note(f"{fn}: step_fn is not the older form (state, lr, key) either: {e}")
        raise error from None
    return older


def scan_steps(step: Callable, state: Any, config: Any, key: jax.Array, num_steps: int):
    """Runs ``step(state, config, key_i) -> (state, loss)`` (a :func:`loss_step`) for a static
    number of steps.

    The key of step ``i`` is ``fold_in(key, i)``, so runs that share ``key`` see the same data.
    Returns the final state and the ``[num_steps]`` losses.
    """

    def body(s, i):
        return step(s, config, jax.random.fold_in(key, i))

    return jax.lax.scan(body, state, jnp.arange(num_steps))


def as_numpy_curve(fn: str, name: str, value: Any) -> np.ndarray:
    """A 1-D float64 NumPy copy of ``value``; ValueError naming ``fn`` and ``name`` otherwise."""
    a = np.asarray(value, dtype=np.float64)
    if a.ndim != 1:
        raise ValueError(f"{fn}: {name} must be 1-D, got shape {a.shape}")
    return a
