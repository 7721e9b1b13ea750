"""Pieces shared by the jaxlr transforms: schedules held as state, update scaling, LR lookup."""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike

from jaxlr._src.numeric import as_float
from jaxlr._src.typing import PyTree
from jaxlr._src.validate import Checker
from jaxlr.schedules import Schedule, constant

# State classes whose ``lr`` field is the factor the transform multiplies updates by; filled by
# ``lr_state`` so :func:`current_lr` finds them inside any chain.
_LR_STATES: set[type] = set()


def lr_state(cls: type) -> type:
    """Class decorator: marks a NamedTuple state whose ``lr`` field :func:`current_lr` reads."""
    _LR_STATES.add(cls)
    return cls


def as_schedule(c: Checker, name: str, value: Any) -> Schedule:
    """A jaxlr schedule as is, or a number as a constant schedule; anything else is an error."""
    if isinstance(value, Schedule):
        return value
    if callable(value):
        c.fail(f"{name} must be a number or a jaxlr schedule (a pytree whose hyperparameters are "
               f"state), got {name}={value!r}")
    c.finite(name, value)
    return constant(value=value)


def leaf_names(schedule: Schedule) -> tuple[list[str], jax.tree_util.PyTreeDef]:
    """Dotted names of a schedule's leaves (``"schedule.init_value"``) and its tree structure."""
    paths, treedef = jax.tree_util.tree_flatten_with_path(schedule)
    names = [jax.tree_util.keystr(p, simple=True, separator=".") for p, _ in paths]
    return names, treedef


class ScheduleSlot:
    """A schedule whose leaves live in a transform's state as ``{dotted name: array}``.

    The transform keeps only the (static) tree structure; the values are state, so replacing
    them, or stacking them for ``vmap``, never recompiles the update.
    """

    def __init__(self, schedule: Schedule):
        self.names, self.treedef = leaf_names(schedule)
        self.initial = dict(zip(self.names, jax.tree.leaves(schedule), strict=True))

    def init(self) -> dict[str, jax.Array]:
        return {k: jnp.asarray(v) for k, v in self.initial.items()}

    def __call__(self, leaves: dict[str, jax.Array], step: ArrayLike) -> jax.Array:
        schedule = jax.tree.unflatten(self.treedef, [leaves[k] for k in self.names])
        return schedule(as_float(step))


def scale_updates(updates: PyTree, factor: ArrayLike) -> PyTree:
    """``factor * updates``, each leaf keeping its dtype."""
    return jax.tree.map(lambda u: (factor * u).astype(u.dtype), updates)


def floats(**values: ArrayLike) -> dict[str, jax.Array]:
    """Numeric hyperparameters (validated by the caller) as float arrays for a state dict."""
    return {k: as_float(v) for k, v in values.items()}


def require(c: Checker, name: str, value: Any) -> Any:
    """Raises at trace time when a required keyword extra argument was not passed."""
    if value is None:
        c.fail(f"update needs the keyword argument {name}=..., got {name}=None")
    return value


def require_params(c: Checker, params: Any) -> Any:
    if params is None:
        c.fail("update needs params (pass params=... to tx.update), got params=None")
    return params


def _is_inject_state(x: Any) -> bool:
    return hasattr(x, "hyperparams") and hasattr(x, "inner_state") and isinstance(
        x.hyperparams, dict)


def _lr_factors(state: Any, out: list[jax.Array]) -> None:
    if type(state) in _LR_STATES:
        out.append(state.lr)
    elif _is_inject_state(state) and "learning_rate" in state.hyperparams:
        out.append(jnp.asarray(state.hyperparams["learning_rate"]))
    children = state if isinstance(state, (tuple, list)) else ()
    if isinstance(state, dict):
        children = state.values()
    elif _is_inject_state(state) or type(state) in _LR_STATES:
        children = [getattr(state, f) for f in ("inner_state",) if hasattr(state, f)]
    for child in children:
        _lr_factors(child, out)


def current_lr(state: PyTree) -> jax.Array:
    r"""The learning rate a jaxlr transform (or any chain holding them) applied last.

    Walks the state of a transform, an ``optax.chain``, ``optax.inject_hyperparams`` or
    :func:`inject_schedules` and multiplies every learning-rate factor it finds: the ``lr`` of
    each jaxlr transform state and the ``learning_rate`` of each injected-hyperparameter state.
    For ``optax.chain(optax.adam(1.0), jaxlr.transforms.scale_by_schedule(s))`` that is ``s(t)``.

    .. math:: \eta_{\mathrm{eff}} = \prod_i \eta_i

    A learning rate fixed inside an Optax closure (``optax.adam(1e-3)``) is not state and cannot
    be seen; chain with ``learning_rate=1.0`` and put the LR in a jaxlr transform instead.

    Args:
        state: an optimizer state (any nesting of tuples, lists, dicts and NamedTuples), possibly
            with a leading sweep axis on its leaves.

    Returns:
        The product of the learning-rate factors (an array; shaped like the sweep axis if any).

    Raises:
        ValueError: no learning rate in ``state``.

    Examples:
        >>> import jax.numpy as jnp, optax, jaxlr
        >>> tx = optax.chain(optax.sgd(1.0), jaxlr.transforms.scale_by_schedule(
        ...     jaxlr.schedules.cosine(init_value=0.5, total_steps=10)))
        >>> state = tx.init(jnp.zeros(2))
        >>> _, state = tx.update(jnp.ones(2), state)
        >>> float(jaxlr.transforms.current_lr(state))
        0.5
    """
    found: list[jax.Array] = []
    _lr_factors(state, found)
    if not found:
        raise ValueError(f"current_lr: no learning rate found in state of type "
                         f"{type(state).__name__}; use a jaxlr transform or inject the LR")
    out = found[0]
    for f in found[1:]:
        out = out * f
    return out

