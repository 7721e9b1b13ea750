r"""The schedule pytree: one frozen dataclass per family, its law bound to the class.

Design
------
A schedule is an immutable value whose numeric hyperparameters are the leaves of a pytree. Each
family (``cosine``, ``wsd``, ``torch.StepLR``, ...) is its own frozen dataclass, a subclass of
:class:`Schedule`, made by :func:`register` from the family's pure law
``law(step, *, hyperparameter, ...)``: one dataclass field per keyword argument of the law, and
the law itself bound to the class (``type(s).law``), so calling a schedule is one function call
with no lookup. What a JAX engineer expects follows:

- real attributes and honest tree paths: ``s.warmup_steps`` is the leaf whose path
  ``jax.tree_util.keystr`` prints as ``.warmup_steps``; a combinator's child is ``s.schedule``
  (path ``.schedule.init_value``), a sequence of children ``s.schedules[1]``;
- immutable: assignment raises; an edit builds a new value, validated (:meth:`Schedule.replace`)
  or not (``dataclasses.replace``, ``jax.tree.map``), so no state that holds a schedule is ever
  changed behind its back;
- structure is static: strings, booleans and callables (``lr_lambda``) are the tree's auxiliary
  data; every number is an array leaf; an optional argument not given (``None``) is an empty
  subtree, so schedules of one family and one set of given arguments share one structure.

Why not the other designs. ``jax.tree_util.Partial(law, **hyperparameters)`` is a pytree too,
but its paths are ``.keywords['init_value']`` rather than attributes, and the law (a function
object) cannot be named in a JSON config. ``jax.tree_util.register_dataclass`` rebuilds nodes by
calling ``__init__``, which JAX does with placeholder leaves (``None``, ``object()``, tracers)
inside ``vmap``, ``tree.map`` and transposition, so no conversion could live in ``__init__``;
here JAX rebuilds a node with ``object.__new__`` and sets the fields, and ``__init__`` (used by
people and :func:`make`) turns numbers into float leaves. One class per family, made from the
law's signature, keeps the law the single place where a family's hyperparameters are named.

Steps. A law receives its step as it comes (an int32 counter, a Python int, a float) and its
step counts as float leaves; its integer decisions (which piece, stair or cycle) go through
``jaxlr._src.steps``, exact for every int32 step. A concrete count float32 cannot hold
exactly (``2**30 + 1``) is refused at construction with the two nearest values it can hold, so
a count leaf always is the number it was built from and one compilation serves every value.

The registry maps a family name to its class and public constructor; it serves configs
(``to_config`` / ``from_config`` / ``parse``, in ``_config.py``), :func:`register` for user
families, and the catalog-driven contract tests.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
import sys
from collections.abc import Callable, Mapping
from typing import Any, ClassVar

import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import ArrayLike

from jaxlr._src import steps
from jaxlr._src.numeric import as_float
from jaxlr._src.peer_names import OPTAX_NAMES, PEER_MODULES, PEER_NAMES
from jaxlr._src.validate import check_cast, check_count, concrete

# name -> (class, constructor).
_REGISTRY: dict[str, tuple[type[Schedule], Callable[..., Schedule]]] = {}

# Fields that keep their integer dtype (PRNG key data); every other number becomes a float leaf.
_RAW_FIELDS = frozenset({"key"})
# Hyperparameters that are vectors (knots, per-piece values, key data); every other one is a
# scalar. A batch axis for a sweep comes from stacking built schedules (``jaxlr.sweep.stack``)
# or from building them inside ``jax.vmap``, never from a concrete array argument.
_VECTOR_FIELDS = frozenset({"boundaries", "values", "key"})
_VECTOR_FIELDS_OF = {"multistep": frozenset({"decay_rate"})}


def _is_static(value: Any) -> bool:
    """Structure, not data: strings, booleans and plain callables (not schedules). ``None`` (an
    optional argument not given) is an empty subtree, so it is data like the value it stands for."""
    if isinstance(value, (str, bool)):
        return True
    return callable(value) and not isinstance(value, (Schedule, jax.Array, np.ndarray))


class Schedule:
    """A learning-rate schedule: an immutable callable pytree whose leaves are its hyperparameters.

    ``s(step)`` evaluates the family's law at ``step`` (an int, a float or an array of them) and
    returns a float ``jax.Array`` shaped like ``step``. Numeric hyperparameters are array leaves
    and real attributes (``s.peak_value``), so ``jax.jit`` does not retrace when they change,
    schedules of one structure stack and ``jax.vmap``, and ``jax.grad`` flows into them.
    Structure (shape names, flags, the number of pieces) is static.

    Schedules are built by the public constructors (``jaxlr.schedules.cosine(...)``); each
    family is a frozen dataclass subclass made by :func:`register`.

    Attributes:
        name: the family name, also the constructor's name in ``jaxlr.schedules`` (class level).
        law: the family's pure law ``law(step, **hyperparameters)`` (class level).

    Examples:
        >>> import dataclasses, jax, jaxlr
        >>> s = jaxlr.schedules.cosine(init_value=1.0, total_steps=100)
        >>> s.name, float(s(50)), float(s.total_steps)
        ('cosine', 0.5, 100.0)
        >>> [jax.tree_util.keystr(p) for p, _ in jax.tree_util.tree_leaves_with_path(s)][:2]
        ['.init_value', '.total_steps']
        >>> float(s.replace(init_value=2.0)(50)), float(s(50))  # a new value; s is unchanged
        (1.0, 0.5)
    """

    name: ClassVar[str]
    law: ClassVar[Callable[..., jax.Array]]
    _counts: ClassVar[tuple[str, ...] | None] = None

    def __post_init__(self) -> None:
        static = []
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if _is_static(value):
                static.append(f.name)
            elif value is not None:
                object.__setattr__(self, f.name, _leaf(value, raw=f.name in _RAW_FIELDS))
        # Which fields are structure is fixed here: JAX later rebuilds nodes with placeholders.
        object.__setattr__(self, "_static_fields", tuple(static))

    def __call__(self, step: ArrayLike) -> jax.Array:
        dtype = getattr(step, "dtype", None)
        if (
            step is None
            or isinstance(step, (str, bytes, complex))
            or (dtype is not None and jnp.issubdtype(dtype, jnp.complexfloating))
        ):
            raise TypeError(f"{self.name}: step must be a real number or array, got {step!r}")
        t = steps.as_step(step)
        if type(self)._counts is None:  # a law written for float steps (a user's family)
            return type(self).law(steps.to_float(t), **self._arguments())
        # One compiled program per structure and step shape: an eager call is one dispatch,
        # not one per operation; inside a trace it is inlined. A tree holding a user's callable
        # (scale_fn, lr_lambda) runs op by op: a jit cache entry would keep the callable alive,
        # and the callable may branch in Python.
        return self._at(t) if _holds_callable(self) else _evaluate(self, t)

    def _at(self, step: jax.Array) -> jax.Array:
        return type(self).law(step, **self._arguments())

    def _arguments(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}

    # -- introspection and edits -----------------------------------------------------------------
    @property
    def hyperparameters(self) -> dict[str, Any]:
        """Every hyperparameter given (data and structure), as the constructor's arguments."""
        return {k: v for k, v in self._arguments().items() if v is not None}

    def replace(self, **changes: Any) -> Schedule:
        """A new schedule with ``changes`` applied, validated by the family's constructor.

        Examples:
            >>> import jaxlr
            >>> s = jaxlr.schedules.constant(value=0.1)
            >>> s.replace(value=0.2)
            constant(value=0.2)
        """
        return _REGISTRY[self.name][1](**{**self.hyperparameters, **changes})

    def to_config(self) -> dict[str, Any]:
        """A JSON-able dict that :func:`jaxlr.schedules.from_config` reads back to an equal one."""
        return to_config(self)

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={_show(v)}" for k, v in self.hyperparameters.items())
        return f"{self.name}({args})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Schedule):
            return NotImplemented
        if self is other:
            return True
        leaves, others = jax.tree.leaves(self), jax.tree.leaves(other)
        if any(isinstance(x, jax.core.Tracer) for x in (*leaves, *others)):
            return False  # traced values cannot be compared (jax.jit(schedule) asks)
        try:
            return self.to_config() == other.to_config()
        except ValueError:  # a callable argument (LambdaLR): same structure, equal leaves
            return jax.tree.structure(self) == jax.tree.structure(other) and all(
                np.array_equal(a, b) for a, b in zip(leaves, others)
            )

    def __hash__(self) -> int:
        # Equal schedules share a structure, so hashing the structure is consistent with ==;
        # it lets ``jax.jit(schedule)`` cache on the schedule (its leaves become constants).
        return hash(jax.tree.structure(self))


_evaluate = jax.jit(lambda schedule, step: schedule._at(step))


def _holds_callable(s: Schedule) -> bool:
    for name in s._static_fields:
        if callable(getattr(s, name)):
            return True
    for f in dataclasses.fields(s):
        v = getattr(s, f.name)
        children = v if isinstance(v, tuple) else (v,)
        if any(isinstance(c, Schedule) and _holds_callable(c) for c in children):
            return True
    return False


# -- the pytree protocol, shared by every family class ---------------------------------------------
def _flatten_with_keys(s: Schedule):
    data, static = [], []
    for name, value in s._arguments().items():
        if name in s._static_fields:
            static.append((name, value))
        else:
            data.append((jax.tree_util.GetAttrKey(name), value))
    return data, (tuple(k.name for k, _ in data), tuple(static))


def _flatten(s: Schedule):
    data, aux = _flatten_with_keys(s)
    return [v for _, v in data], aux


def _unflatten(cls: type[Schedule], aux, children) -> Schedule:
    names, static = aux
    s = object.__new__(cls)  # not __init__: JAX passes placeholder leaves here
    for name, value in (*zip(names, children), *static):
        object.__setattr__(s, name, value)
    object.__setattr__(s, "_static_fields", tuple(n for n, _ in static))
    return s


def _class_name(name: str) -> str:
    return "".join(part[:1].upper() + part[1:] for part in name.replace(".", "_").split("_"))


def _family_class(
    name: str, law: Callable[..., jax.Array], counts: tuple[str, ...] | None
) -> type[Schedule]:
    params = [p for p in inspect.signature(law).parameters.values() if p.kind is p.KEYWORD_ONLY]
    fields = [
        (
            p.name,
            Any,
            dataclasses.field(
                default=dataclasses.MISSING if p.default is p.empty else p.default, kw_only=True
            ),
        )
        for p in params
    ]
    cls = dataclasses.make_dataclass(
        _class_name(name),
        fields,
        bases=(Schedule,),
        frozen=True,
        eq=False,
        repr=False,
        namespace={
            "name": name,
            "law": staticmethod(law),
            "_counts": counts,
            "__module__": law.__module__,
            "__doc__": f"The ``{name}`` schedule (see its constructor).",
        },
    )
    cls.__hash__ = Schedule.__hash__
    module = sys.modules.get(law.__module__)
    if module is not None and not hasattr(module, cls.__name__):
        setattr(module, cls.__name__, cls)  # pickle finds classes by module and name
    jax.tree_util.register_pytree_with_keys(
        cls, _flatten_with_keys, functools.partial(_unflatten, cls), _flatten
    )
    return cls


def _show(v: Any) -> str:
    if isinstance(v, Schedule):
        return repr(v)
    if isinstance(v, tuple):
        return "[" + ", ".join(_show(x) for x in v) + "]"
    if isinstance(v, jax.core.Tracer):
        return f"<traced {v.dtype}{list(v.shape)}>"
    if isinstance(v, (jax.Array, np.ndarray)):
        a = np.asarray(v)  # str() of a numpy scalar is the shortest repr that round-trips
        return _number(a[()]) if a.ndim == 0 else "[" + ", ".join(map(_number, a.ravel())) + "]"
    return repr(v)


def _number(x: Any) -> str:
    """A number as text that reads back to it; a whole float past 1e6 in full (a step count
    such as 1073741952.0, whose shortest float32 text 1.073742e+09 is another whole number)."""
    if isinstance(x, np.floating) and np.isfinite(x) and x == np.round(x) and 1e6 <= abs(x) < 2**63:
        return f"{int(x)}.0"
    return str(x)


def _plain(a: np.ndarray) -> Any:
    """Python numbers for JSON: floats as their shortest round-tripping decimal (0.1, not
    0.10000000149011612), so a config reads like the call that built it."""
    if not np.issubdtype(a.dtype, np.floating):
        return a.tolist()
    out = [float(_number(x)) for x in a.ravel()]
    return out[0] if a.ndim == 0 else np.reshape(np.asarray(out, dtype=object), a.shape).tolist()


def to_config(schedule: Schedule) -> dict[str, Any]:
    """A JSON-able description ``{"name": ..., "args": {...}}`` of a concrete schedule.

    Args:
        schedule: a schedule whose leaves are concrete (not traced).

    Returns:
        A dict of plain Python values (nested dicts for child schedules, lists for arrays).

    Raises:
        ValueError: ``schedule`` is not a schedule, has a traced leaf or a callable argument
            (``LambdaLR``'s ``lr_lambda`` cannot be written as JSON).

    Examples:
        >>> import json, jaxlr
        >>> s = jaxlr.schedules.constant(value=0.1)
        >>> json.dumps(jaxlr.schedules.to_config(s))
        '{"name": "constant", "args": {"value": 0.1}}'
    """
    if not isinstance(schedule, Schedule):
        raise ValueError(f"to_config: expected a jaxlr schedule, got {schedule!r}")

    def enc(k: str, v: Any) -> Any:
        if isinstance(v, Schedule):
            return to_config(v)
        if isinstance(v, tuple) and v and isinstance(v[0], Schedule):
            return [to_config(x) for x in v]
        if isinstance(v, jax.core.Tracer):
            raise ValueError(f"to_config: {schedule.name} has a traced hyperparameter {k}")
        if isinstance(v, (jax.Array, np.ndarray)):
            return _plain(np.asarray(v))
        if callable(v):
            raise ValueError(
                f"to_config: {schedule.name}'s {k}={v!r} is a function, which a config cannot hold"
            )
        return v

    return {
        "name": schedule.name,
        "args": {k: enc(k, v) for k, v in schedule.hyperparameters.items()},
    }


def _unexpected(name: str, fn: Callable, kwargs: Mapping[str, Any]) -> None:
    """A ``TypeError`` that names the right spelling for a peer's or an old argument name."""
    sig = inspect.signature(fn)
    if any(p.kind is p.VAR_KEYWORD for p in sig.parameters.values()):
        return
    unknown = [k for k in kwargs if k not in sig.parameters]
    if not unknown or set(unknown) & set(getattr(fn, "__renamed__", {})):
        return  # a renamed argument: the constructor's own decorator says what to write
    hints = []
    if "." not in name:  # compat families take the peers' names; hints are for native ones
        for k in unknown:
            hint = _peer_hint(k)
            if hint:
                hints.append(hint)
    raise TypeError(
        f"{name}: unexpected argument(s) {unknown}; it takes "
        f"{list(sig.parameters)}" + "".join(f"; {h}" for h in hints)
    )


def _peer_hint(arg: str) -> str | None:
    native = PEER_NAMES.get(arg)
    if native is not None:
        peers = "/".join(PEER_MODULES.get(arg, ())) or "a peer library"
        what = f"jaxlr calls it {native}" if native.isidentifier() else native.rstrip(".")
        compat = " or ".join(f"jaxlr.compat.{m}" for m in PEER_MODULES.get(arg, ()))
        tail = f" (or use {compat}, which takes {peers}'s arguments)" if compat else ""
        return f"{arg} is {peers}'s name; {what}{tail}"
    native = OPTAX_NAMES.get(arg)
    if native is not None:
        return f"{arg} is Optax's name; " + (
            f"jaxlr calls it {native}" if native.isidentifier() else native.rstrip(".")
        )
    return None


def register(name: str, law: Callable[..., jax.Array], *, counts: tuple[str, ...] | None = None):
    """Decorator registering a public constructor with its law under ``name``.

    This is how a family is added: a pure law ``law(step, *, hyperparameter, ...)`` of ``jnp``
    code with no Python branch on hyperparameter values, and a constructor that validates its
    concrete arguments and calls :func:`make`. Registering makes the family's frozen dataclass
    (one field per keyword argument of the law); a registered family parses, serializes and
    (once in the catalog) is covered by the contract tests. An argument the constructor does not
    take raises ``TypeError`` naming jaxlr's spelling when it is a peer library's name.

    Steps: with ``counts`` (the names of the hyperparameters that are step counts: lengths,
    boundaries, periods) the law receives the step as it comes (an integer or float array) and
    makes its integer decisions with ``jaxlr._src.steps`` (``reached(step, boundary)``,
    ``elapsed``, ``divide``), exact for every int32 step; a concrete count float32 cannot hold
    exactly is refused at construction. Without ``counts`` the law receives float steps.

    Examples:
        >>> import jax.numpy as jnp
        >>> from jaxlr.schedules import make, register
        >>> def _sqrt_decay(step, *, init_value):
        ...     return init_value / jnp.sqrt(1.0 + step)
        >>> @register("doc_sqrt_decay", _sqrt_decay)
        ... def sqrt_decay(*, init_value):
        ...     return make("doc_sqrt_decay", dict(init_value=init_value))
        >>> s = sqrt_decay(init_value=1.0)
        >>> float(s(3)), float(s.init_value)
        (0.5, 1.0)
    """

    def deco(constructor):
        if name in _REGISTRY:
            raise ValueError(f"register: schedule name {name!r} is already registered")

        @functools.wraps(constructor)
        def checked(*args, **kwargs):
            _unexpected(name, constructor, kwargs)
            return constructor(*args, **kwargs)

        _REGISTRY[name] = (
            _family_class(name, law, None if counts is None else tuple(counts)),
            checked,
        )
        return checked

    return deco


def make(name: str, params: Mapping[str, Any], static: Mapping[str, Any] = ()) -> Schedule:
    """Builds a registered schedule from validated values, turning numbers into float leaves.

    A concrete value that is finite but overflows the float dtype (``1e39`` in float32) raises.

    Args:
        name: a registered family name.
        params: the hyperparameters that are data (numbers, arrays, child schedules).
        static: the structural ones (strings, bools, callables, ``None``).

    Raises:
        ValueError: a finite value that is not finite once cast to the float dtype (or a nonzero
            one that becomes 0), or a concrete
            array where the law takes a scalar (only knots, per-piece values and key data are
            vectors; a sweep's batch axis comes from stacking schedules or from ``jax.vmap``).

    Examples:
        >>> from jaxlr.schedules import make
        >>> s = make("constant", {"value": 2})
        >>> s, s(0).dtype
        (constant(value=2.0), dtype('float32'))
    """
    cls = _REGISTRY[name][0]
    vectors = _VECTOR_FIELDS | _VECTOR_FIELDS_OF.get(name, frozenset())
    leaves = {}
    for k, v in params.items():
        with np.errstate(over="ignore"):  # an overflow is reported below, as an error
            leaf = _leaf(v, raw=k in _RAW_FIELDS)
        if not isinstance(leaf, (Schedule, tuple)):
            check_cast(name, k, v, leaf)
        if k not in vectors and not isinstance(leaf, (Schedule, tuple)) and np.ndim(leaf) != 0:
            if concrete(leaf) is not None:
                raise ValueError(
                    f"{name}: {k} must be a scalar, got an array of shape {np.shape(leaf)}: "
                    f"{k}={_show(leaf)} (to sweep, stack built schedules with jaxlr.sweep.stack "
                    f"or build them inside jax.vmap)"
                )
        if k in (cls._counts or ()) and not isinstance(leaf, (Schedule, tuple)):
            check_count(name, k, v)
        leaves[k] = leaf
    return cls(**leaves, **dict(static))


def _leaf(v: Any, *, raw: bool = False) -> Any:
    if isinstance(v, Schedule):
        return v
    if isinstance(v, (tuple, list)) and v and all(isinstance(x, Schedule) for x in v):
        return tuple(v)
    dtype = getattr(v, "dtype", None)
    if (
        raw
        and dtype is not None
        and (
            jnp.issubdtype(dtype, jnp.unsignedinteger) or jnp.issubdtype(dtype, jax.dtypes.prng_key)
        )
    ):
        return v  # PRNG key data keeps its dtype
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
    if not isinstance(name, str) or name not in _REGISTRY:
        hint = ""
        if isinstance(name, str) and name.split(".")[0] in ("torch", "keras", "transformers"):
            hint = " (compat families register when jaxlr.compat is imported: import it first)"
        raise ValueError(f"constructor: unknown schedule name {name!r}{hint}; known: {names()}")
    return _REGISTRY[name][1]
