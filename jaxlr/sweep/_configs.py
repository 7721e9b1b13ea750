"""Configurations: pytrees whose leaves share a leading axis ``K``, one entry per member."""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jaxlr._src.validate import Checker


@jax.tree_util.register_pytree_with_keys_class
class Choice:
    """A configuration axis of string choices: each member's index into ``choices``.

    The index is the pytree leaf (so a Choice stacks, pads, shards and is copied by PBT like any
    hyperparameter); ``choices`` is static. The train or step function receives the index (an
    int, e.g. for ``jax.lax.switch``); tables, records, CSV and trials show the string.
    :func:`grid`, :func:`zip`, :func:`random` and :class:`Space` make one from a list of strings.

    Args:
        index: int array, each member's position in ``choices`` (in ``[0, len(choices))``).
        choices: the strings, in the order the index refers to.

    Raises:
        ValueError: ``choices`` a string or empty, not all strings or with duplicates; an
            index that is not integer, or (when concrete) outside ``[0, len(choices))``.

    Examples:
        >>> import numpy as np, jaxlr
        >>> c = jaxlr.sweep.Choice(np.array([1, 0, 1]), ("adam", "sgd"))
        >>> c.labels().tolist(), c
        (['sgd', 'adam', 'sgd'], Choice(['sgd', 'adam', 'sgd']))
    """

    __slots__ = ("choices", "index")

    def __init__(self, index: Any, choices: Sequence[str]):
        c = Checker("Choice")
        if isinstance(choices, str) or not isinstance(choices, Sequence):
            c.fail(f"choices must be a sequence of strings, got choices={choices!r}")
        choices = tuple(choices)
        if not choices or not all(isinstance(x, str) for x in choices):
            c.fail(f"choices must be a non-empty sequence of strings, got choices={choices!r}")
        if len(set(choices)) != len(choices):
            c.fail(f"choices must differ, got the duplicates in choices={choices!r}")
        dtype = getattr(index, "dtype", None)
        if dtype is None:
            index = np.asarray(index)
            dtype = index.dtype
        if not jnp.issubdtype(dtype, jnp.integer):
            c.fail(f"index must be an integer array, got dtype {dtype} in index={index!r}")
        if not isinstance(index, jax.core.Tracer):
            i = np.asarray(index)
            if i.size and not (0 <= i.min() and i.max() < len(choices)):
                c.fail(
                    f"index must lie in [0, {len(choices)}) (positions in choices="
                    f"{list(choices)}), got index={i.tolist()!r}"
                )
        self.index = index
        self.choices = choices

    def tree_flatten_with_keys(self):
        return ((jax.tree_util.GetAttrKey("index"), self.index),), self.choices

    def tree_flatten(self):
        return (self.index,), self.choices

    @classmethod
    def tree_unflatten(cls, choices, children):
        # JAX rebuilds pytrees with placeholders (None, objects, tracers): no validation here.
        out = object.__new__(cls)
        out.index, out.choices = children[0], choices
        return out

    def labels(self) -> np.ndarray:
        """The members' strings (host NumPy)."""
        return np.asarray(self.choices, dtype=object)[np.asarray(self.index)].astype(str)

    def __repr__(self) -> str:
        try:
            return f"Choice({self.labels().tolist()})"
        except Exception:  # traced, or not an index array
            return f"Choice(index={self.index!r}, choices={self.choices!r})"


def is_choice(x: Any) -> bool:
    return isinstance(x, Choice)


def unwrap(config: Any) -> Any:
    """``config`` as a train or step function receives it: each :class:`Choice` as its index."""
    return jax.tree.map(lambda x: x.index if is_choice(x) else x, config, is_leaf=is_choice)


def leaf_name(path: tuple) -> str:
    """A readable name for a pytree path: ``peak_value`` or ``schedule.warmup_steps``."""
    parts = []
    for k in path:
        for attr in ("key", "name", "idx"):
            if hasattr(k, attr):
                parts.append(str(getattr(k, attr)))
                break
        else:
            parts.append(str(k))
    return ".".join(parts) if parts else "configs"


def size(configs: Any, *, fn: str = "size") -> int:
    """The number of members ``K`` of a configuration pytree (the common leading axis).

    Args:
        configs: a pytree whose array leaves all have the same leading axis.
        fn: the public function name used in error messages.

    Returns:
        ``K`` as a Python int.

    Raises:
        ValueError: no leaves, a scalar leaf, leading axes that differ, or ``K == 0``.

    Examples:
        >>> import jaxlr
        >>> jaxlr.sweep.size(jaxlr.sweep.grid(peak_value=[0.1, 0.01], warmup_steps=[0, 5, 10]))
        6
    """
    c = Checker(fn)
    leaves = jax.tree_util.tree_flatten_with_path(configs)[0]
    if not leaves:
        c.fail(f"configs must contain at least one array, got configs={configs!r}")
    sizes = {}
    for path, leaf in leaves:
        shape = np.shape(leaf)
        if not shape:
            c.fail(
                f"every configuration leaf needs a leading member axis, got scalar "
                f"{leaf_name(path)}={leaf!r}"
            )
        sizes[leaf_name(path)] = shape[0]
    if len(set(sizes.values())) > 1:
        c.fail(f"configuration leaves must share their leading axis, got leading sizes {sizes}")
    k = next(iter(sizes.values()))
    if k == 0:
        c.fail(f"configs are empty (K = 0), got leading sizes {sizes}")
    return k


def _axes(fn: str, axes: Mapping[str, Any]) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """Splits keyword axes into swept (1-D or more, non-empty) and fixed (scalar) values."""
    c = Checker(fn)
    if not axes:
        c.fail("give at least one axis, e.g. peak_value=[1e-3, 1e-2], got no axes")
    swept, fixed = {}, {}
    for name, values in axes.items():
        a = np.asarray(values)
        if a.dtype.kind in "US" and a.ndim <= 1:
            strings = a.reshape(-1).tolist()
            if len(set(strings)) != len(strings):
                c.fail(f"axis {name} repeats a choice, got {name}={values!r}")
            a = Choice(np.arange(len(strings), dtype=np.int32), strings)
            (fixed if np.ndim(values) == 0 else swept)[name] = a
            continue
        if not (np.issubdtype(a.dtype, np.number) or a.dtype == bool):
            c.fail(f"axis {name} must hold numbers or strings, got {name}={values!r}")
        if a.ndim == 0:
            fixed[name] = a
        elif a.shape[0] == 0:
            c.fail(f"axis {name} is empty, got {name}={values!r}")
        else:
            swept[name] = a
    if not swept:
        c.fail(f"give at least one axis with values to sweep, got only scalars {list(fixed)}")
    return swept, fixed


def _finish(swept: dict[str, Any], fixed: dict[str, Any], k: int) -> dict[str, Any]:
    out = {}
    for name, a in {**swept, **fixed}.items():
        if is_choice(a):
            index = np.zeros(k, np.int32) if name in fixed else a.index
            out[name] = Choice(jnp.asarray(index), a.choices)
            continue
        if name in fixed:
            a = np.broadcast_to(a, (k,))
        out[name] = jnp.asarray(a)
    return out


def _take(a: Any, index: np.ndarray) -> Any:
    return Choice(a.index[index], a.choices) if is_choice(a) else a[index]


def _length(a: Any) -> int:
    return len(a.index) if is_choice(a) else a.shape[0]


def grid(**axes: Any) -> dict[str, Any]:
    r"""The cartesian product of the axes: every combination is one member.

    Member ``i`` takes ``values[j]`` of each axis in C order (the first axis varies slowest), so
    ``grid(a=[1, 2], b=[3, 4, 5])`` has ``K = 6`` members ``(1,3), (1,4), (1,5), (2,3), ...``.
    A scalar is a fixed value repeated for every member.

    Args:
        **axes: axis name -> 1-D sequence of values (or an array whose leading axis is swept,
            for vector-valued hyperparameters), or a scalar.

    Returns:
        A dict axis name -> ``jax.Array`` with leading axis ``K = prod(len(axis))``.

    Raises:
        ValueError: no axes, an empty axis, non-numeric values.

    Examples:
        >>> import jaxlr
        >>> g = jaxlr.sweep.grid(peak_value=[0.1, 0.01], warmup_steps=[0, 10, 20], total_steps=100)
        >>> g["peak_value"].tolist(), g["warmup_steps"].tolist(), g["total_steps"].shape
        ([0.1, 0.1, 0.1, 0.01, 0.01, 0.01], [0, 10, 20, 0, 10, 20], (6,))

    References:
        Bergstra & Bengio, Random Search for Hyper-Parameter Optimization, JMLR 2012 (grid vs
        random search).
    """
    swept, fixed = _axes("grid", axes)
    index = np.array(list(itertools.product(*(range(_length(a)) for a in swept.values()))))
    picked = {name: _take(a, index[:, j]) for j, (name, a) in enumerate(swept.items())}
    return _finish(picked, fixed, index.shape[0])


def zip(**axes: Any) -> dict[str, Any]:  # noqa: A001 - mirrors builtins.zip on purpose
    """Pairs the axes element by element: member ``i`` takes entry ``i`` of every axis.

    Args:
        **axes: axis name -> sequence of ``K`` values (all the same length), or a scalar.

    Returns:
        A dict axis name -> ``jax.Array`` with leading axis ``K``.

    Raises:
        ValueError: no axes, an empty axis, or axes of different lengths.

    Examples:
        >>> import jaxlr
        >>> z = jaxlr.sweep.zip(peak_value=[0.1, 0.3], warmup_steps=[10, 30])
        >>> [round(v, 2) for v in z["peak_value"].tolist()], z["warmup_steps"].tolist()
        ([0.1, 0.3], [10, 30])
    """
    swept, fixed = _axes("zip", axes)
    lengths = {name: _length(a) for name, a in swept.items()}
    if len(set(lengths.values())) > 1:
        Checker("zip").fail(f"axes must have the same length, got lengths {lengths}")
    return _finish(swept, fixed, next(iter(lengths.values())))


def stack(schedules: Sequence[Any]) -> Any:
    """Stacks schedules (or any pytrees) of one structure into one pytree with a leading axis.

    ``stack([s_0, ..., s_{K-1}])`` has the structure of ``s_0`` and leaves ``[K, ...]``;
    ``jax.vmap`` over it runs the ``K`` schedules at once.

    Args:
        schedules: a non-empty sequence of schedules of the same family and static structure.

    Returns:
        One pytree whose leaves are the members' leaves stacked along axis 0.

    Raises:
        ValueError: an empty sequence, or a member whose structure (family, static arguments,
            number of children) differs from the first one's.

    Examples:
        >>> import jax, jaxlr
        >>> ss = [jaxlr.schedules.cosine(init_value=p, total_steps=100) for p in (0.1, 0.2)]
        >>> st = jaxlr.sweep.stack(ss)
        >>> [round(float(v), 3) for v in jax.vmap(lambda s: s(50))(st)]
        [0.05, 0.1]
    """
    c = Checker("stack")
    schedules = list(schedules)
    if not schedules:
        c.fail("schedules must be a non-empty sequence, got schedules=[]")
    first = jax.tree.structure(schedules[0])
    for i, s in enumerate(schedules):
        if jax.tree.structure(s) != first:
            c.fail(
                f"every member needs the structure of member 0, got member {i}={s!r} "
                f"vs member 0={schedules[0]!r}"
            )
    return jax.tree.map(lambda *xs: jnp.stack([jnp.asarray(x) for x in xs]), *schedules)
