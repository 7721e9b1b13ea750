"""The shared engine of ``run`` and populations: vectorization, chunking, sharding, divergence.

``run`` (one-shot, in-device data) and :class:`~jaxlr.sweep.Population` (step-driven, batches
from Python) both put members on a leading axis, pad it to whole chunks, split it over a mesh,
compile once per shape and fetch results from every host through the helpers here. The
divergence rule and ``tree_where`` live in ``jaxlr._src`` (``auto`` shares them and must not
import ``sweep``).
"""

from __future__ import annotations

import time
import weakref
from collections.abc import Callable, Mapping
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from jaxlr._src.validate import Checker

ARRAY_TYPES = (jax.Array, np.ndarray, np.generic, bool, int, float, complex)

# id(fn) -> (weak reference to fn, {(structure, shapes, mesh, options): compiled}). Keyed on the
# identity of the user's function (a bound method: of its object, see `_owner`), never on its
# equality (two equal objects may behave differently), so a second sweep with the same function
# and chunk shape reuses the executable; the entry goes when the function does.
_COMPILED: dict[int, tuple[weakref.ref, dict]] = {}


def _cache_of(owner: Any) -> dict:
    """The compiled programs of ``owner`` (a fresh dict, not kept, if it has no weak refs)."""
    try:
        # The table is bound now: at interpreter exit the module's globals may already be None.
        ref = weakref.ref(owner, lambda _, i=id(owner), table=_COMPILED: table.pop(i, None))
    except TypeError:
        return {}
    entry = _COMPILED.get(id(owner))
    if entry is None or entry[0]() is not owner:
        entry = _COMPILED[id(owner)] = (ref, {})
    return entry[1]


def is_int(x: Any) -> bool:
    return not isinstance(x, bool) and isinstance(x, (int, np.integer))


def check_chunk_size(c: Checker, chunk_size: Any, k: int, devices: int) -> int:
    """Members per compiled call: all (rounded up to the devices) or a multiple of the devices."""
    if chunk_size is None:
        return -(-k // devices) * devices
    if not is_int(chunk_size):
        c.fail(f"chunk_size must be an int >= 1 or None, got chunk_size={chunk_size!r}")
    if chunk_size < 1:
        c.fail(f"chunk_size must be >= 1, got chunk_size={chunk_size!r}")
    if chunk_size % devices:
        c.fail(
            f"chunk_size must be a multiple of the mesh's {devices} devices (each chunk is "
            f"split evenly across them), got chunk_size={chunk_size}"
        )
    return int(min(chunk_size, -(-k // devices) * devices))


def member_sharding(c: Checker, mesh: Any) -> tuple[NamedSharding | None, int]:
    """The sharding of a leading member axis split over every axis of ``mesh`` (all devices)."""
    if mesh is None:
        return None, 1
    if not isinstance(mesh, Mesh):
        c.fail(f"mesh must be a jax.sharding.Mesh or None, got mesh={mesh!r}")
    if mesh.size < 1:
        c.fail(f"mesh must hold at least one device, got mesh={mesh!r}")
    return NamedSharding(mesh, PartitionSpec(tuple(mesh.axis_names))), mesh.size


def replicated(sharding: NamedSharding | None) -> NamedSharding | None:
    return None if sharding is None else NamedSharding(sharding.mesh, PartitionSpec())


def behind(sharding: NamedSharding | None, axes: int) -> NamedSharding | None:
    """The member sharding for arrays whose member axis comes after ``axes`` leading axes."""
    if sharding is None:
        return None
    return NamedSharding(sharding.mesh, PartitionSpec(*([None] * axes), *sharding.spec))


def vectorized(member: Callable, vmap_size: int | None, sharding) -> Callable:
    """All members at once (``vmap``), or ``vmap_size`` at a time in a compiled loop (``lax.map``),
    on each device's own share of the members when sharded."""
    if vmap_size is None:
        return jax.vmap(member)

    def local(configs):
        return jax.lax.map(member, configs, batch_size=vmap_size)

    if sharding is None:
        return local
    spec = sharding.spec
    # check_vma=False: the training loop's scan carries start replicated (params) and become
    # per-device values; every member is independent, so no collective is ever needed.
    return jax.shard_map(local, mesh=sharding.mesh, in_specs=spec, out_specs=spec, check_vma=False)


def pad_members(host: Any, total: int) -> Any:
    """Pads the leading axis to ``total`` with copies of the last member (one compiled shape)."""
    return jax.tree.map(
        lambda a: np.concatenate([a, np.repeat(a[-1:], total - a.shape[0], axis=0)]), host
    )


def chunks_of(padded: Any, chunk: int) -> list[Any]:
    n = jax.tree.leaves(padded)[0].shape[0] // chunk
    return [jax.tree.map(lambda a, i=i: a[i * chunk : (i + 1) * chunk], padded) for i in range(n)]


def structs(tree: Any, sharding) -> Any:
    return jax.tree.map(
        lambda a: jax.ShapeDtypeStruct(np.shape(a), a.dtype, sharding=sharding), tree
    )


def compile_cached(
    owner: Any,
    key: tuple,
    build: Callable[[], Any],
    args: tuple,
    compiler_options=None,
    in_shardings=None,
    out_shardings=None,
    donate_argnums: tuple[int, ...] = (),
):
    """``jax.jit(build())`` traced, lowered and compiled for abstract ``args``, cached on ``owner``.

    Returns ``(compiled, trace_seconds, compile_seconds)``; the seconds are ``None`` on a hit.
    """
    options = tuple(sorted((compiler_options or {}).items()))
    fn = owner
    owner, identity = _owner(fn)
    rest = (
        *key,
        options,
        donate_argnums,
        tuple(
            (
                jax.tree.structure(a),
                tuple((s.shape, str(s.dtype), s.sharding) for s in jax.tree.leaves(a)),
            )
            for a in args
        ),
    )
    key = (*identity, *rest)
    per_fn = _cache_of(owner)
    if key in per_fn:
        return per_fn[key], None, None
    kwargs = {}
    if in_shardings is not None:
        kwargs.update(in_shardings=in_shardings, out_shardings=out_shardings)
    jitted = jax.jit(
        build(), compiler_options=compiler_options, donate_argnums=donate_argnums, **kwargs
    )
    t0 = time.perf_counter()
    lowered = jitted.trace(*args).lower()
    t1 = time.perf_counter()
    compiled = lowered.compile()
    per_fn[key] = compiled
    # An attribute the trace itself changed (a trace counter) would miss the next time: the
    # program is also filed under the attributes as the trace left them.
    per_fn[(*_owner(fn)[1], *rest)] = compiled
    return compiled, t1 - t0, time.perf_counter() - t1


def identity(fn: Any) -> tuple:
    """A cache-key part for another function a program calls (an ``eval_fn``): the same object,
    or for a bound method the same object's same method with the same attributes (see
    :func:`_owner`); ``None`` for ``None``."""
    owner, extra = _owner(fn)
    return (Same(owner), *extra)


def _owner(fn: Any) -> tuple[Any, tuple]:
    """The cache owner of ``fn`` and what else identifies it. ``obj.method`` makes a new
    bound-method object at every attribute access, which dies at once: keying on it would never
    hit. A bound method is cached on its object, with the function and the identity of each of
    the object's attributes in the key (held while the object lives): ``obj.a = 4.0`` between two
    sweeps is a new program (an array changed in place is not seen, as with any jitted
    function's captured constants)."""
    self, func = getattr(fn, "__self__", None), getattr(fn, "__func__", None)
    if self is not None and func is not None:
        attrs = getattr(self, "__dict__", None)
        if not isinstance(attrs, dict):
            return fn, ()  # no attributes to watch: cached on the bound method alone (no hit)
        return self, (func, tuple(sorted((k, Same(v)) for k, v in attrs.items())))
    return fn, ()


class Same:
    """Equal only to the same object (held, so its identity cannot pass to another one)."""

    __slots__ = ("obj",)

    def __init__(self, obj: Any):
        self.obj = obj

    def __eq__(self, other: Any) -> bool:
        return isinstance(other, Same) and other.obj is self.obj

    def __hash__(self) -> int:
        return id(self.obj)


def put(tree: Any, sharding) -> Any:
    """Host arrays -> device arrays; each process supplies only its addressable shards, so the
    same code runs single- and multi-host (``jax.distributed``)."""
    if sharding is None:
        return jax.device_put(tree)
    return jax.tree.map(
        lambda a: jax.make_array_from_callback(
            np.shape(a), sharding, lambda idx: np.asarray(a)[idx]
        ),
        tree,
    )


def is_key(a: Any) -> bool:
    """A typed PRNG key array (``jax.random.key``) or its abstract shape."""
    return hasattr(a, "dtype") and jax.dtypes.issubdtype(a.dtype, jax.dtypes.prng_key)


def key_impls(tree: Any) -> list[str | None]:
    """Per leaf of ``tree`` (arrays or ``jax.ShapeDtypeStruct``): its PRNG implementation's
    name if it is a typed key, else ``None``; what :func:`wrap_keys` needs to undo
    :func:`fetch`."""
    impls: list[str | None] = []

    def read(t):
        impls.extend(str(jax.random.key_impl(a)) if is_key(a) else None for a in jax.tree.leaves(t))
        return 0

    jax.eval_shape(read, tree)
    return impls


def wrap_keys(tree: Any, impls: list[str | None]) -> Any:
    """The inverse of :func:`fetch` for typed keys: key-data leaves become typed keys again."""
    leaves, treedef = jax.tree.flatten(tree)
    if len(leaves) != len(impls):
        raise ValueError(f"wrap_keys: {len(leaves)} leaves for {len(impls)} key descriptions")
    return jax.tree.unflatten(
        treedef,
        [a if i is None else jax.random.wrap_key_data(a, impl=i) for a, i in zip(leaves, impls)],
    )


def host_struct(struct: Any) -> Any:
    """The host form's shapes of abstract ``struct``: typed keys as their key data (uint32)."""
    return jax.tree.map(
        lambda a: jax.eval_shape(jax.random.key_data, a) if is_key(a) else a, struct
    )


def fetch(tree: Any) -> Any:
    """Device arrays -> host NumPy, gathered from every process when not fully addressable.

    Typed PRNG keys come back as their key data (``jax.random.key_data``, uint32): NumPy has
    no key dtype; :func:`wrap_keys` turns them back into keys."""

    def get(a):
        if is_key(a):
            a = jax.random.key_data(a)
        if not isinstance(a, jax.Array) or a.is_fully_addressable:
            return np.asarray(a)
        from jax.experimental import multihost_utils

        return np.asarray(multihost_utils.process_allgather(a, tiled=True))

    return jax.tree.map(get, tree)


def check_metrics(
    fn: str, what: str, metrics: Any, loss: str | None, required: tuple[str, ...] = ()
) -> None:
    """Trace-time validation of a member's metrics (a pytree of arrays with the named entries)."""
    c = Checker(fn)
    leaves = jax.tree_util.tree_flatten_with_path(metrics)[0]
    if not leaves:
        c.fail(f"{what} must return a pytree of arrays (metrics), got {metrics!r}")
    for path, leaf in leaves:
        if not isinstance(leaf, ARRAY_TYPES):
            c.fail(
                f"{what} must return a pytree of arrays, got "
                f"{jax.tree_util.keystr(path) or 'output'}={leaf!r}"
            )
    keys = list(metrics) if isinstance(metrics, Mapping) else type(metrics).__name__
    if loss is not None:
        if not isinstance(metrics, Mapping) or loss not in metrics:
            c.fail(
                f"{what}'s metrics need a {loss!r} entry to detect divergence (or pass "
                f"loss=None), got loss={loss!r}, metrics={keys}"
            )
        if not jnp.issubdtype(jnp.result_type(metrics[loss]), jnp.floating):
            c.fail(f"metric {loss!r} must be floating point, got loss={metrics[loss]!r}")
    for arg, name in required:
        if not isinstance(metrics, Mapping) or name not in metrics:
            c.fail(f"{arg}={name!r} is not a metric of {what}, whose metrics are {keys}")
