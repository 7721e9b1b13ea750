r"""The schedule pytree: a small base class; each family is a hand-written subclass.

Design
------
A schedule is an immutable value whose numeric hyperparameters are the leaves of a pytree. Each
family (``cosine``, ``wsd``, ``torch.ConstantLR``, ...) is a class you can open: its fields are
its hyperparameters, ``check`` validates them at construction and ``law(self, step)`` is the
formula::

    class Cosine(Schedule, name="cosine", counts=("total_steps",)):
        init_value: ArrayLike
        total_steps: ArrayLike
        ...
        def check(self, c: Checker) -> None:
            c.nonnegative("total_steps", self.total_steps)
        def law(self, step):
            ...

Subclassing :class:`Schedule` (``__init_subclass__``) makes the class a frozen, keyword-only
dataclass, registers it as a pytree with honest keys and records its ``name`` for configs,
``parse``, :func:`names` and :func:`constructor`. What a JAX engineer expects follows:

- real attributes and honest tree paths: ``s.warmup_steps`` is the leaf whose path
  ``jax.tree_util.keystr`` prints as ``.warmup_steps``; a combinator's child is ``s.schedule``
  (path ``.schedule.init_value``), a sequence of children ``s.schedules[1]``;
- immutable: assignment raises; an edit builds a new value, validated (:meth:`Schedule.replace`
  runs the class again) or not (``jax.tree.map``), so no state that holds a schedule is ever
  changed behind its back;
- structure is static: strings, flags (fields whose default is a bool), callables
  (``lr_lambda``) and fields declared static are the tree's auxiliary data; every other number
  is an array leaf; an optional argument not given (``None``) is an empty subtree, so schedules
  of one family and one set of given arguments share one structure. Declare a field static with
  ``dataclasses.field(metadata={"static": True})`` when the law needs it as a Python value (a
  required flag, a ``bool | None``, an ``int`` that sizes a loop): it is then never a leaf, must
  be hashable, and a new value compiles anew;
- equality by value (same class, same structure, equal leaves) and pickling (module-level
  classes).

Construction: the dataclass ``__init__`` stores the arguments, then ``__post_init__`` runs the
family's ``check`` on the values as given (concrete values are validated, traced ones pass) and
turns every number into a float leaf in one place, with the checks every family shares: the cast
(``1e39`` overflows float32), scalar versus vector (only fields named in ``vectors`` may be
arrays), and step counts (fields named in ``counts`` must be float32-exact whole numbers).
JAX rebuilds nodes with ``object.__new__`` (it passes placeholder leaves: ``None``,
``object()``, tracers), never through ``__init__``, so conversion can live in ``__init__``.

Class options (keywords of the class statement, inherited by subclasses):

- ``name``: the family name (configs, ``repr``, ``parse``); a class without one is not
  registered (an intermediate base);
- ``counts``: the fields that are step counts. With ``counts`` the law receives the step as it
  comes (an int32 counter, a Python int, a float) and makes its integer decisions (which piece,
  stair or cycle) with ``jaxlr._src.steps``, exact for every int32 step; without it
  (``None``, the default) the law receives float steps;
- ``vectors``: the fields that may be arrays (knots, per-piece values); ``raw``: fields that
  keep an integer dtype instead of becoming floats (PRNG key data), either names (the dtype
  given is kept; Python ints, as configs and ``parse`` give them, become int32) or a mapping
  from names to dtypes (``raw={"key": "uint32"}``: every value is converted to it, exactly or
  refused, so configs and ``parse`` restore it). A typed PRNG key is stored as its key data;
- ``renamed``: old or peer argument names and their new spelling (a call with one raises
  ``TypeError`` saying what to write);
- ``constructor``: the public constructor when it is not the class (a peer's function whose
  arguments differ from the fields).

Why not ``equinox.Module`` or ``flax.struct.dataclass``: both give frozen pytree dataclasses,
but a leaf there is whatever ``__init__`` stored (no one place converts and validates numbers),
equinox rebuilds nodes without our static/data split by value (a callable ``lr_lambda`` would
be a leaf), and both would add a dependency to the core for ~100 lines of code it needs anyway
(registry, configs, the peer-name hints of ``TypeError``).
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
from collections.abc import Callable, Mapping
from typing import Any, ClassVar

import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import ArrayLike

from jaxlr._src import steps
from jaxlr._src.numeric import as_float
from jaxlr._src.peer_names import OPTAX_NAMES, PEER_MODULES, PEER_NAMES
from jaxlr._src.validate import Checker, check_cast, check_count, concrete

# name -> (class, public constructor).
_REGISTRY: dict[str, tuple[type[Schedule], Callable[..., Schedule]]] = {}
_OPTIONS = ("counts", "vectors", "raw", "renamed")


class Schedule:
    """A learning-rate schedule: an immutable callable pytree whose leaves are its hyperparameters.

    ``s(step)`` evaluates the family's law at ``step`` (an int, a float or an array of them) and
    returns a float ``jax.Array`` shaped like ``step``. Numeric hyperparameters are array leaves
    and real attributes (``s.peak_value``), so ``jax.jit`` does not retrace when they change,
    schedules of one structure stack and ``jax.vmap``, and ``jax.grad`` flows into them.
    Structure (shape names, flags, the number of pieces) is static.

    A family is a subclass (see the module notes): fields, ``check(self, c)`` and
    ``law(self, step)``. Subclass a family or this class, with a ``name``, to add your own; it
    then works in configs, ``parse``, sweeps and transforms.

    Steps: an int32 step (Optax's counter, a Python int below :math:`2^{31}`) makes every
    integer decision exactly for steps >= 0; a negative int32 step is exact while
    ``step - count`` fits int32 (``step > count - 2**31`` for every step count of the family);
    closer to :math:`-2^{31}` the integer difference wraps (``exponential(begin_steps=1e9)`` at
    ``-2**31 + 5``) and the value is not defined. Float steps, and Python ints past int32, use
    float arithmetic (exact to :math:`2^{24}` in float32).

    Attributes:
        name: the family name, also the constructor's name in ``jaxlr.schedules`` (class level).

    Examples:
        >>> import dataclasses, jax, jaxlr
        >>> s = jaxlr.schedules.cosine(init_value=1.0, total_steps=100)
        >>> s.name, float(s(50)), float(s.total_steps)
        ('cosine', 0.5, 100.0)
        >>> [jax.tree_util.keystr(p) for p, _ in jax.tree_util.tree_leaves_with_path(s)][:2]
        ['.init_value', '.total_steps']
        >>> float(s.replace(init_value=2.0)(50)), float(s(50))  # a new value; s is unchanged
        (1.0, 0.5)

        A family of your own: fields, checks, the law.

        >>> import jax.numpy as jnp
        >>> class SqrtDecay(jaxlr.schedules.Schedule, name="doc_sqrt_decay", counts=()):
        ...     init_value: float
        ...     def check(self, c):  # c: a Checker whose messages name the family
        ...         c.finite("init_value", self.init_value)
        ...     def law(self, step):
        ...         return self.init_value / jnp.sqrt(1.0 + step)
        >>> s = SqrtDecay(init_value=1.0)
        >>> float(s(3)), s, jaxlr.schedules.parse(repr(s)) == s
        (0.5, doc_sqrt_decay(init_value=1.0), True)

        A field the law needs as a Python value (a required flag, an ``int`` that sizes a loop)
        is declared static: structure, never a leaf.

        >>> class Steps(jaxlr.schedules.Schedule, name="doc_static_steps", counts=()):
        ...     init_value: float
        ...     pieces: int = dataclasses.field(metadata={"static": True})
        ...     def law(self, step):
        ...         return self.init_value * sum(0.5 ** k for k in range(self.pieces)) + 0 * step
        >>> s = Steps(init_value=1.0, pieces=3)
        >>> float(s(0)), jax.tree.leaves(s), s.to_config()["args"]["pieces"]
        (1.75, [Array(1., dtype=float32)], 3)
    """

    name: ClassVar[str | None] = None
    counts: ClassVar[tuple[str, ...] | None] = None
    vectors: ClassVar[frozenset[str]] = frozenset()
    raw: ClassVar[Mapping[str, np.dtype | None]] = {}
    renamed: ClassVar[Mapping[str, str]] = {}
    # the names of the fields that are structure (set per instance at construction)
    _static_fields: ClassVar[tuple[str, ...]] = ()

    def __init_subclass__(
        cls,
        *,
        name: str | None = None,
        constructor: Callable[..., Schedule] | None = None,
        **options: Any,
    ) -> None:
        unknown = set(options) - set(_OPTIONS)
        if unknown:
            raise TypeError(f"{cls.__name__}: unknown class options {sorted(unknown)}")
        super().__init_subclass__()
        if name is not None and name in _REGISTRY:
            old = _REGISTRY[name][0]
            # the same class statement run again (a notebook cell, importlib.reload) replaces
            # its entry; another class may not take the name
            if (old.__module__, old.__qualname__) != (cls.__module__, cls.__qualname__):
                raise ValueError(
                    f"{cls.__name__}: schedule name {name!r} is already taken by "
                    f"{old.__module__}.{old.__qualname__}"
                )
        # a subclass without a name of its own is not its parent: repr shows its class name,
        # configs and parse refuse it (it is not registered)
        cls.name = name
        for k, v in options.items():
            if k == "counts":
                v = None if v is None else tuple(v)
            elif k == "renamed":
                v = dict(v)
            elif k == "raw":
                v = (
                    {n: None if d is None else np.dtype(d) for n, d in v.items()}
                    if isinstance(v, Mapping)
                    else dict.fromkeys(v)
                )
            else:
                v = frozenset(v)
            setattr(cls, k, v)
        dataclasses.dataclass(frozen=True, kw_only=True, eq=False, repr=False)(cls)
        # every attribute of the base (methods, options, `_static_fields`) is taken: a field of
        # that name would shadow it
        taken = sorted(set(cls.__dataclass_fields__) & set(dir(Schedule)))
        if taken:
            raise TypeError(
                f"{cls.__name__}: {taken} name the class's own attributes, not hyperparameters"
            )
        _check_arguments(cls)
        jax.tree_util.register_pytree_with_keys(
            cls, _flatten_with_keys, functools.partial(_unflatten, cls), _flatten
        )
        if name is not None:
            _REGISTRY[name] = (cls, constructor or cls)

    # -- the family's parts ----------------------------------------------------------------------
    def check(self, c: Checker) -> None:
        """Validates the concrete arguments (``c`` names the family in every message)."""

    def law(self, step: jax.Array) -> jax.Array:
        """The formula: the value at ``step``, reading the hyperparameters from ``self``."""
        raise NotImplementedError(f"{type(self).__name__} has no law")

    def _set(self, name: str, value: Any) -> None:
        """Stores a derived argument during ``check`` (a default computed from another one)."""
        object.__setattr__(self, name, value)

    # -- construction ----------------------------------------------------------------------------
    def __post_init__(self, *init_only: Any) -> None:
        cls = type(self)
        # messages name the family as users call it: "cosine", "ConstantLR" (torch.ConstantLR)
        family = self.name or cls.__name__
        self.check(Checker(family.split(".", 1)[-1]), *init_only)
        static = []
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if _is_static(value, f):
                if f.metadata.get("static", False):
                    _check_static(cls, f.name, value)
                static.append(f.name)
            elif value is not None:
                object.__setattr__(self, f.name, _convert(cls, f.name, value))
        # Which fields are structure is fixed here: JAX later rebuilds nodes with placeholders.
        object.__setattr__(self, "_static_fields", tuple(static))

    def __call__(self, step: ArrayLike) -> jax.Array:
        dtype = getattr(step, "dtype", None)
        if (
            step is None
            or isinstance(step, (str, bytes, complex))
            or (dtype is not None and jnp.issubdtype(dtype, jnp.complexfloating))
        ):
            raise TypeError(
                f"{self.name or type(self).__name__}: step must be a real number or array, "
                f"got {step!r}"
            )
        t = steps.as_step(step)
        if type(self).counts is None:  # a law written for float steps
            return self.law(steps.to_float(t))
        # One compiled program per structure and step shape: an eager call is one dispatch,
        # not one per operation; inside a trace it is inlined. A tree holding a user's callable
        # (scale_fn, lr_lambda) runs op by op: a jit cache entry would keep the callable alive,
        # and the callable may branch in Python.
        return self.law(t) if _holds_callable(self) else _evaluate(self, t)

    def _arguments(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}

    # -- introspection and edits -----------------------------------------------------------------
    @property
    def hyperparameters(self) -> dict[str, Any]:
        """Every hyperparameter given (data and structure), as the constructor's arguments."""
        return {k: v for k, v in self._arguments().items() if v is not None}

    def replace(self, **changes: Any) -> Schedule:
        """A new schedule with ``changes`` applied, validated by the family's class.

        Examples:
            >>> import jaxlr
            >>> s = jaxlr.schedules.constant(value=0.1)
            >>> s.replace(value=0.2)
            constant(value=0.2)
        """
        return type(self)(**{**self.hyperparameters, **changes})

    def to_config(self) -> dict[str, Any]:
        """A JSON-able dict that :func:`jaxlr.schedules.from_config` reads back to an equal one
        (a stacked schedule has none: :func:`to_config` raises ``ValueError``)."""
        return to_config(self)

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={_show(v)}" for k, v in self.hyperparameters.items())
        return f"{self.name or type(self).__name__}({args})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Schedule):
            return NotImplemented
        if self is other:
            return True
        if type(self) is not type(other):
            return False
        leaves, tree = jax.tree.flatten(self)
        others, other_tree = jax.tree.flatten(other)
        if tree != other_tree:  # the class, the static fields and the children's structure
            return False
        if any(isinstance(x, jax.core.Tracer) for x in (*leaves, *others)):
            return False  # traced values cannot be compared (jax.jit(schedule) asks)
        return all(np.array_equal(a, b) for a, b in zip(leaves, others))

    def __hash__(self) -> int:
        # Equal schedules share a structure, so hashing the structure is consistent with ==;
        # it lets ``jax.jit(schedule)`` cache on the schedule (its leaves become constants).
        return hash(jax.tree.structure(self))


_evaluate = jax.jit(lambda schedule, step: schedule.law(step))


def _is_static(value: Any, field: dataclasses.Field) -> bool:
    """Structure, not data: a field declared static (``metadata={"static": True}``), strings,
    flags (a field whose default is a bool) and plain callables (not schedules). Otherwise
    ``None`` (an optional argument not given) is an empty subtree, so it is data like the value it
    stands for."""
    if field.metadata.get("static", False):
        return True
    if isinstance(value, str) or (isinstance(value, bool) and isinstance(field.default, bool)):
        return True
    return callable(value) and not isinstance(value, (Schedule, jax.Array, np.ndarray))


def _check_static(cls: type[Schedule], name: str, value: Any) -> None:
    """A declared static field holds a hashable Python value (it is part of the tree's
    structure, which ``jax.jit`` hashes and compares): not an array, not a tracer."""
    family = (cls.name or cls.__name__).split(".", 1)[-1]
    bad = isinstance(value, (jax.Array, np.ndarray, jax.core.Tracer))
    if not bad:
        try:
            hash(value)
        except TypeError:
            bad = True
    if bad:
        raise ValueError(
            f"{family}: {name} is a static field (structure, not data), so it must be a "
            f"hashable Python value such as a bool, int or str, got {name}={value!r}"
        )


def _convert(cls: type[Schedule], name: str, value: Any) -> Any:
    """One argument as a leaf (or a child), with the checks every family shares."""
    family = cls.name or cls.__name__
    with np.errstate(over="ignore"):  # an overflow is reported below, as an error
        leaf = _raw(family, name, value, cls.raw[name]) if name in cls.raw else _leaf(value)
    if isinstance(leaf, (Schedule, tuple)):
        return leaf
    if jnp.issubdtype(jnp.result_type(leaf), jnp.floating):  # raw integers are not cast
        check_cast(family, name, value, leaf)
    if name not in cls.vectors and np.ndim(leaf) != 0 and concrete(leaf) is not None:
        raise ValueError(
            f"{family}: {name} must be a scalar, got an array of shape {np.shape(leaf)}: "
            f"{name}={_show(leaf)} (to sweep, stack built schedules with jaxlr.sweep.stack "
            f"or build them inside jax.vmap)"
        )
    if name in (cls.counts or ()):
        check_count(family, name, value)
    return leaf


def _check_arguments(cls: type[Schedule]) -> None:
    """Wraps the dataclass ``__init__``: a renamed or unknown keyword raises a ``TypeError``
    that says what to write (the peers' names point at jaxlr's)."""
    init = cls.__init__
    params = inspect.signature(init).parameters

    @functools.wraps(init)
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        family = cls.name or cls.__name__
        for old in kwargs.keys() & cls.renamed.keys():
            raise TypeError(f"{family}: argument {old!r} is now {cls.renamed[old]!r}")
        unknown = [k for k in kwargs if k not in params or k == "self"]
        if unknown:
            builtin = cls.__module__.startswith("jaxlr.")
            hints = [] if "." in family else [_peer_hint(k, params, builtin) for k in unknown]
            hints = [h for h in hints if h]
            raise TypeError(
                f"{family}: unexpected argument(s) {unknown}; it takes "
                f"{[p for p in params if p != 'self']}" + "".join(f"; {h}" for h in hints)
            )
        init(self, *args, **kwargs)

    cls.__init__ = __init__


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


def _show(v: Any) -> str:
    if isinstance(v, Schedule):
        return repr(v)
    if isinstance(v, tuple):
        return "[" + ", ".join(_show(x) for x in v) + "]"
    if isinstance(v, jax.core.Tracer):
        return f"<traced {v.dtype}{list(v.shape)}>"
    if isinstance(v, (jax.Array, np.ndarray)):
        a = np.asarray(v)  # str() of a numpy scalar is the shortest repr that round-trips
        return _nested(a)
    return repr(v)


def _nested(a: np.ndarray) -> str:
    """An array as nested lists of its numbers, so its shape shows (a stacked (2, 2) leaf is
    ``[[1.0, 2.0], [3.0, 4.0]]``)."""
    if a.ndim == 0:
        return _number(a[()])
    return "[" + ", ".join(_nested(x) for x in a) + "]"


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
            (``LambdaLR``'s ``lr_lambda`` cannot be written as JSON), or is stacked (leaves
            with a member axis, from ``jaxlr.sweep.stack``): a config describes one schedule,
            so write each member's config instead.

    Examples:
        >>> import json, jaxlr
        >>> s = jaxlr.schedules.constant(value=0.1)
        >>> json.dumps(jaxlr.schedules.to_config(s))
        '{"name": "constant", "args": {"value": 0.1}}'
    """
    if not isinstance(schedule, Schedule):
        raise ValueError(f"to_config: expected a jaxlr schedule, got {schedule!r}")
    if _REGISTRY.get(schedule.name, (None,))[0] is not type(schedule):
        raise ValueError(
            f"to_config: {type(schedule).__name__} has no name of its own (give its class "
            f"statement name=...), so a config could not rebuild it"
        )

    def enc(k: str, v: Any) -> Any:
        if isinstance(v, Schedule):
            return to_config(v)
        if isinstance(v, tuple) and v and isinstance(v[0], Schedule):
            return [to_config(x) for x in v]
        if isinstance(v, jax.core.Tracer):
            raise ValueError(f"to_config: {schedule.name} has a traced hyperparameter {k}")
        if isinstance(v, (jax.Array, np.ndarray)):
            ndim = np.ndim(v)
            if ndim > (1 if k in type(schedule).vectors else 0):
                raise ValueError(
                    f"to_config: {schedule.name}'s {k} has shape {np.shape(v)}, more axes than "
                    f"one schedule's {k}: a stacked schedule (jaxlr.sweep.stack, jax.vmap) has "
                    f"no config; write each member's (jax.tree.map(lambda x: x[i], stacked))"
                )
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


def _peer_hint(arg: str, params: Any, builtin: bool) -> str | None:
    """The hint for a peer library's argument name: one that names jaxlr's spelling only when
    the family has that argument (``params``), a sentence only for jaxlr's own families (it
    speaks of them)."""
    for table, peers_of in ((PEER_NAMES, PEER_MODULES), (OPTAX_NAMES, None)):
        native = table.get(arg)
        if native is None:
            continue
        if native.isidentifier() and native not in params:
            return None
        if not native.isidentifier() and not builtin:
            return None
        what = f"jaxlr calls it {native}" if native.isidentifier() else native.rstrip(".")
        if peers_of is None:
            return f"{arg} is Optax's name; {what}"
        peers = "/".join(peers_of.get(arg, ())) or "a peer library"
        compat = " or ".join(f"jaxlr.compat.{m}" for m in peers_of.get(arg, ()))
        tail = f" (or use {compat}, which takes {peers}'s arguments)" if compat else ""
        return f"{arg} is {peers}'s name; {what}{tail}"
    return None


def _leaf(v: Any) -> Any:
    if isinstance(v, Schedule):
        return v
    if isinstance(v, (tuple, list)) and v and all(isinstance(x, Schedule) for x in v):
        return tuple(v)
    return as_float(v)


def _raw(family: str, name: str, v: Any, dtype: np.dtype | None) -> Any:
    """A ``raw`` field's value: integers keep an integer dtype (``dtype`` when the class
    declares one), a typed PRNG key becomes its key data; anything else is a float leaf."""
    vdtype = getattr(v, "dtype", None)
    if vdtype is not None and jnp.issubdtype(vdtype, jax.dtypes.prng_key):
        v = jax.random.key_data(v)
        vdtype = v.dtype
    if isinstance(v, jax.core.Tracer):
        ints = jnp.issubdtype(vdtype, jnp.integer)
        return v.astype(dtype) if ints and dtype is not None else v if ints else as_float(v)
    try:
        a = concrete(v) if not isinstance(v, (str, bytes, bool)) else None
    except OverflowError:  # a Python int past int64
        raise ValueError(f"{family}: {name} must hold integers, got {name}={v!r}") from None
    if a is None or a.dtype == np.bool_ or not np.issubdtype(a.dtype, np.integer):
        return _leaf(v)
    target = dtype if dtype is not None else (vdtype if vdtype is not None else np.dtype(np.int32))
    info = np.iinfo(target)
    if a.size and (int(a.min()) < info.min or int(a.max()) > info.max):
        raise ValueError(
            f"{family}: {name} must hold integers that {np.dtype(target).name} holds, "
            f"got {name}={a.tolist()!r}"
        )
    return jnp.asarray(a.astype(target))


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
