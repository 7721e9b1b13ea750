"""The schedule pytree, the registry of laws, and JSON configs."""

from __future__ import annotations

import ast
import json
from collections.abc import Callable, Mapping
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import ArrayLike

from jaxlr._src.numeric import as_float

# name -> (law, constructor). The law is a pure function ``law(step, **params, **static)``; the
# constructor is the public, validating builder that takes the same keyword arguments.
_REGISTRY: dict[str, tuple[Callable[..., jax.Array], Callable[..., Schedule]]] = {}


@jax.tree_util.register_pytree_with_keys_class
class Schedule:
    """A learning-rate schedule: a callable pytree whose leaves are its hyperparameters.

    ``s(step)`` evaluates the schedule's law at ``step`` (an int, a float or an array of them)
    and returns a float ``jax.Array`` shaped like ``step``. Numeric hyperparameters are array
    leaves, so ``jax.jit`` does not retrace when they change, schedules of one structure stack
    and ``jax.vmap``, and ``jax.grad`` flows into them. Structure (shape names, flags, the number
    of pieces) is static.

    Schedules are built by the public constructors (``jaxlr.schedules.cosine(...)``), never
    directly.

    Attributes:
        name: the family name, also the constructor's name in ``jaxlr.schedules``.
        params: hyperparameters that are data: arrays, or child schedules for combinators.
        static: structural hyperparameters (strings, bools, ints, ``None``).

    Examples:
        >>> import jax, jaxlr
        >>> s = jaxlr.schedules.cosine(init_value=1.0, total_steps=100)
        >>> s.name, float(s(50))
        ('cosine', 0.5)
        >>> [float(x) for x in jax.tree.leaves(s)]
        [1.0, 100.0, 0.0, 1.0, 1.0]
    """

    __slots__ = ("name", "params", "static", "__weakref__")  # weakref: jax.jit(schedule)

    def __init__(self, name: str, params: Mapping[str, Any], static: Mapping[str, Any] = ()):
        self.name = name
        self.params = dict(params)
        self.static = dict(static)

    def __call__(self, step: ArrayLike) -> jax.Array:
        law = _REGISTRY[self.name][0]
        return law(as_float(step), **self.params, **self.static)

    # -- pytree protocol -------------------------------------------------------------------------
    def tree_flatten_with_keys(self):
        keys = tuple(self.params)
        children = [(jax.tree_util.GetAttrKey(k), self.params[k]) for k in keys]
        return children, (self.name, keys, tuple(self.static.items()))

    @classmethod
    def tree_unflatten(cls, aux, children):
        name, keys, static = aux
        return cls(name, dict(zip(keys, children)), dict(static))

    # -- introspection ---------------------------------------------------------------------------
    @property
    def hyperparameters(self) -> dict[str, Any]:
        """All hyperparameters, data and structure, as the constructor's keyword arguments."""
        return {**self.params, **self.static}

    def to_config(self) -> dict[str, Any]:
        """A JSON-able dict that :func:`from_config` turns back into an equal schedule."""
        return to_config(self)

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={_show(v)}" for k, v in self.hyperparameters.items())
        return f"{self.name}({args})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Schedule):
            return NotImplemented
        if any(isinstance(x, jax.core.Tracer) for x in jax.tree.leaves((self, other))):
            return self is other  # traced values cannot be compared (jax.jit(schedule) asks)
        return to_config(self) == to_config(other)

    def __hash__(self) -> int:
        # Equal schedules share a structure, so hashing the structure is consistent with ==;
        # it lets ``jax.jit(schedule)`` cache on the schedule (its leaves become constants).
        return hash(jax.tree.structure(self))


def _show(v: Any) -> str:
    if isinstance(v, Schedule):
        return repr(v)
    if isinstance(v, tuple):
        return "[" + ", ".join(_show(x) for x in v) + "]"
    if isinstance(v, jax.core.Tracer):
        return f"<traced {v.dtype}{list(v.shape)}>"
    if isinstance(v, (jax.Array, np.ndarray)):
        a = np.asarray(v)  # str() of a numpy scalar is the shortest repr that round-trips
        return str(a[()]) if a.ndim == 0 else "[" + ", ".join(str(x) for x in a.ravel()) + "]"
    return repr(v)


def _plain(a: np.ndarray) -> Any:
    """Python numbers for JSON: floats as their shortest round-tripping decimal (0.1, not
    0.10000000149011612), so a config reads like the call that built it."""
    if not np.issubdtype(a.dtype, np.floating):
        return a.tolist()
    out = [float(str(x)) for x in a.ravel()]
    return out[0] if a.ndim == 0 else np.reshape(np.asarray(out, dtype=object), a.shape).tolist()


def register(name: str, law: Callable[..., jax.Array]):
    """Decorator registering a public constructor with its law under ``name``.

    This is how a family is added: a pure law ``law(step, **hyperparameters)`` of ``jnp`` code
    with no Python branch on hyperparameter values, and a constructor that validates its concrete
    arguments and calls :func:`make`. A registered family parses, serializes and (once in the
    catalog) is covered by the contract tests.

    Examples:
        >>> import jax.numpy as jnp
        >>> from jaxlr.schedules import make, register
        >>> def _sqrt_decay(step, *, init_value):
        ...     return init_value / jnp.sqrt(1.0 + step)
        >>> @register("doc_sqrt_decay", _sqrt_decay)
        ... def sqrt_decay(*, init_value):
        ...     return make("doc_sqrt_decay", dict(init_value=init_value))
        >>> float(sqrt_decay(init_value=1.0)(3))
        0.5
    """

    def deco(constructor):
        if name in _REGISTRY:
            raise ValueError(f"register: schedule name {name!r} is already registered")
        _REGISTRY[name] = (law, constructor)
        return constructor

    return deco


def make(name: str, params: Mapping[str, Any], static: Mapping[str, Any] = ()) -> Schedule:
    """Builds a registered schedule from validated values, turning numbers into float leaves.

    Args:
        name: a registered family name.
        params: the hyperparameters that are data (numbers, arrays, child schedules).
        static: the structural ones (strings, bools, ``None``).

    Examples:
        >>> from jaxlr.schedules import make
        >>> s = make("constant", {"value": 2})
        >>> s, s(0).dtype
        (constant(value=2.0), dtype('float32'))
    """
    return Schedule(name, {k: _leaf(v) for k, v in params.items()}, static)


def _leaf(v: Any) -> Any:
    if isinstance(v, Schedule):
        return v
    if isinstance(v, (tuple, list)) and v and all(isinstance(x, Schedule) for x in v):
        return tuple(v)
    dtype = getattr(v, "dtype", None)
    if dtype is not None and (
        jnp.issubdtype(dtype, jnp.unsignedinteger) or jnp.issubdtype(dtype, jax.dtypes.prng_key)
    ):
        return v  # PRNG key data keeps its dtype; every other number becomes a float leaf
    return as_float(v)


def names() -> list[str]:
    """Names of every registered schedule family, sorted.

    Examples:
        >>> import jaxlr
        >>> "warmup_cosine" in jaxlr.schedules.names()
        True
    """
    return sorted(_REGISTRY)


def constructor(name: str) -> Callable[..., Schedule]:
    """The public constructor registered under ``name``.

    Examples:
        >>> import jaxlr
        >>> jaxlr.schedules.constructor("cosine") is jaxlr.schedules.cosine
        True
    """
    try:
        return _REGISTRY[name][1]
    except KeyError:
        raise ValueError(f"constructor: unknown schedule name {name!r}; known: {names()}") from None


def to_config(schedule: Schedule) -> dict[str, Any]:
    """A JSON-able description ``{"name": ..., "args": {...}}`` of a concrete schedule.

    Args:
        schedule: a schedule whose leaves are concrete (not traced).

    Returns:
        A dict of plain Python values (nested dicts for child schedules, lists for arrays).

    Examples:
        >>> import json, jaxlr
        >>> s = jaxlr.schedules.step(init_value=0.1, period_steps=30, decay_rate=0.1)
        >>> json.dumps(jaxlr.schedules.to_config(s))
        '{"name": "step", "args": {"init_value": 0.1, "period_steps": 30.0, "decay_rate": 0.1}}'
    """

    def enc(v: Any) -> Any:
        if isinstance(v, Schedule):
            return to_config(v)
        if isinstance(v, tuple) and v and isinstance(v[0], Schedule):
            return [to_config(x) for x in v]
        if isinstance(v, jax.core.Tracer):
            raise ValueError(f"to_config: {schedule.name} has a traced hyperparameter")
        if isinstance(v, (jax.Array, np.ndarray)):
            return _plain(np.asarray(v))
        return v

    return {"name": schedule.name, "args": {k: enc(v) for k, v in schedule.hyperparameters.items()}}


def from_config(config: Mapping[str, Any] | str) -> Schedule:
    """Rebuilds (and re-validates) a schedule from :func:`to_config`'s dict or its JSON text.

    Examples:
        >>> import jaxlr
        >>> s = jaxlr.schedules.warmup_cosine(peak_value=1.0, warmup_steps=10, total_steps=100)
        >>> jaxlr.schedules.from_config(s.to_config()) == s
        True
    """
    if isinstance(config, str):
        config = json.loads(config)
    if not isinstance(config, Mapping) or "name" not in config:
        raise ValueError(
            f"from_config: config must be a dict with 'name' and 'args', got {config!r}")

    def dec(v: Any) -> Any:
        if isinstance(v, Mapping) and "name" in v:
            return from_config(v)
        if isinstance(v, list) and v and isinstance(v[0], Mapping):
            return [from_config(x) for x in v]
        return v

    args = {k: dec(v) for k, v in dict(config.get("args", {})).items()}
    return constructor(config["name"])(**args)


def parse(expression: str) -> Schedule:
    """Builds a schedule from a Python-like expression, as the CLI takes it.

    Only calls of registered schedule names (and ``presets.NAME``) with literal arguments are
    allowed; nothing is evaluated.

    Examples:
        >>> import jaxlr
        >>> s = jaxlr.schedules.parse(
        ...     "warmup(cosine(init_value=1.0, total_steps=90), warmup_steps=10)")
        >>> s.name, float(s(10))
        ('warmup', 1.0)
    """
    from jaxlr.schedules import presets  # presets build on the families, imported lazily

    try:
        tree = ast.parse(expression.strip(), mode="eval")
    except SyntaxError as e:
        raise ValueError(f"parse: not a schedule expression: {expression!r} ({e.msg})") from None

    def ev(node: ast.AST) -> Any:
        if isinstance(node, ast.Call):
            fn = node.func
            if isinstance(fn, ast.Name):
                build = constructor(fn.id)
            elif (
                isinstance(fn, ast.Attribute)
                and isinstance(fn.value, ast.Name)
                and fn.value.id == "presets"
                and fn.attr in presets.__all__
            ):
                build = getattr(presets, fn.attr)
            else:
                raise ValueError(f"parse: unknown schedule {ast.unparse(fn)!r} in {expression!r}")
            return build(*[ev(a) for a in node.args], **{k.arg: ev(k.value) for k in node.keywords})
        if isinstance(node, (ast.List, ast.Tuple)):
            return [ev(e) for e in node.elts]
        try:
            return ast.literal_eval(node)
        except ValueError:
            raise ValueError(
                f"parse: only literals and schedule calls are allowed, got {ast.unparse(node)!r}"
            ) from None

    result = ev(tree.body)
    if not isinstance(result, Schedule):
        raise ValueError(f"parse: {expression!r} does not build a schedule")
    return result
