"""``run``: one compiled, vmapped (and optionally sharded) program for a whole sweep."""

from __future__ import annotations

import time
import weakref
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from jaxlr._src.validate import Checker
from jaxlr.sweep import _progress
from jaxlr.sweep._configs import size
from jaxlr.sweep._result import SweepResult

# train_fn -> {(structure, shapes, mesh, options): compiled}. Keyed weakly on the function, so a
# second sweep with the same train_fn and chunk shape reuses the executable.
_COMPILED: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()

_ARRAY_TYPES = (jax.Array, np.ndarray, np.generic, bool, int, float, complex)


def _check_chunk_size(c: Checker, chunk_size: Any, k: int, devices: int) -> int:
    if chunk_size is None:
        return -(-k // devices) * devices
    if isinstance(chunk_size, bool) or not isinstance(chunk_size, (int, np.integer)):
        c.fail(f"chunk_size must be an int >= 1 or None, got chunk_size={chunk_size!r}")
    if chunk_size < 1:
        c.fail(f"chunk_size must be >= 1, got chunk_size={chunk_size!r}")
    if chunk_size % devices:
        c.fail(f"chunk_size must be a multiple of the mesh's {devices} devices (each chunk is "
               f"split evenly across them), got chunk_size={chunk_size}")
    return int(min(chunk_size, -(-k // devices) * devices))


def _sharding(c: Checker, mesh: Any) -> tuple[NamedSharding | None, int]:
    if mesh is None:
        return None, 1
    if not isinstance(mesh, Mesh):
        c.fail(f"mesh must be a jax.sharding.Mesh or None, got mesh={mesh!r}")
    if mesh.size < 1:
        c.fail(f"mesh must hold at least one device, got mesh={mesh!r}")
    # The member axis is split over every axis of the mesh (all devices).
    return NamedSharding(mesh, PartitionSpec(tuple(mesh.axis_names))), mesh.size


def _vectorized(member: Callable, vmap_size: int | None, sharding) -> Callable:
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
    return jax.shard_map(local, mesh=sharding.mesh, in_specs=spec, out_specs=spec,
                         check_vma=False)


def _checked(train_fn: Callable, loss: str | None, vmap_size: int | None = None,
             sharding=None) -> Callable:
    """``train_fn`` with its output validated at trace time, before anything compiles."""

    def member(config):
        metrics = train_fn(config)
        c = Checker("run")
        leaves = jax.tree_util.tree_flatten_with_path(metrics)[0]
        if not leaves:
            c.fail(f"train_fn must return a pytree of arrays (metrics), got {metrics!r}")
        for path, leaf in leaves:
            if not isinstance(leaf, _ARRAY_TYPES):
                c.fail(f"train_fn must return a pytree of arrays, got "
                       f"{jax.tree_util.keystr(path) or 'output'}={leaf!r}")
        if loss is not None:
            if not isinstance(metrics, Mapping) or loss not in metrics:
                keys = list(metrics) if isinstance(metrics, Mapping) else type(metrics).__name__
                c.fail(f"train_fn's metrics need a {loss!r} entry to detect divergence (or pass "
                       f"loss=None), got loss={loss!r}, metrics={keys}")
            if not jax.numpy.issubdtype(jax.numpy.result_type(metrics[loss]), jax.numpy.floating):
                c.fail(f"metric {loss!r} must be floating point, got loss={metrics[loss]!r}")
        return metrics

    return _vectorized(member, vmap_size, sharding)


def _compile(train_fn, loss, chunk, sharding, compiler_options, vmap_size=None):
    options = tuple(sorted((compiler_options or {}).items()))
    structs = jax.tree.map(
        lambda a: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=sharding), chunk)
    key = (jax.tree.structure(chunk),
           tuple((s.shape, str(s.dtype)) for s in jax.tree.leaves(structs)),
           sharding, loss, options, vmap_size)
    try:
        per_fn = _COMPILED.setdefault(train_fn, {})
    except TypeError:  # not weak-referenceable: no cache across calls
        per_fn = {}
    if key in per_fn:
        return per_fn[key], None, None
    kwargs = {} if sharding is None else dict(in_shardings=sharding, out_shardings=sharding)
    jitted = jax.jit(_checked(train_fn, loss, vmap_size, sharding),
                     compiler_options=compiler_options, **kwargs)
    t0 = time.perf_counter()
    lowered = jitted.trace(structs).lower()
    t1 = time.perf_counter()
    compiled = lowered.compile()
    per_fn[key] = compiled
    return compiled, t1 - t0, time.perf_counter() - t1


def _put(chunk, sharding):
    if sharding is None:
        return jax.device_put(chunk)
    # Each process supplies only its addressable shards: the same code runs single- and
    # multi-host (jax.distributed).
    return jax.tree.map(
        lambda a: jax.make_array_from_callback(a.shape, sharding, lambda idx: a[idx]), chunk)


def _fetch(out):
    def get(a):
        if a.is_fully_addressable:
            return np.asarray(a)
        from jax.experimental import multihost_utils

        return np.asarray(multihost_utils.process_allgather(a, tiled=True))

    return jax.tree.map(get, out)


def run(
    train_fn: Callable[[Any], Any],
    configs: Any,
    *,
    chunk_size: int | None = None,
    mesh: Mesh | None = None,
    progress: bool = True,
    num_steps: int | None = None,
    loss: str | None = "loss",
    divergence_threshold: float | None = None,
    labels: Mapping[str, Sequence[str]] | None = None,
    compiler_options: Mapping[str, Any] | None = None,
    vmap_size: int | None = None,
) -> SweepResult:
    r"""Trains every configuration of a sweep as one compiled, vmapped program.

    ``train_fn(config)`` is written for one member: ``config`` is ``configs`` without the
    leading axis, and ``train_fn`` builds its schedule and optimizer from these (traced) values
    and returns a pytree of metric arrays (a dict with a ``loss`` entry, a scalar or a curve
    over steps). ``run`` computes

    .. math:: \text{metrics}[i] = \text{train\_fn}(\text{configs}[i]), \quad i = 0..K-1

    as ``vmap(train_fn)`` over chunks of ``chunk_size`` members. The last chunk is padded with
    copies of the last member, so every chunk has one shape and the program is traced and
    compiled once (and cached for later calls with the same ``train_fn`` and chunk shape).
    With a ``mesh``, each chunk's member axis is split over all the mesh's devices.

    A member whose ``loss`` becomes NaN or infinite (or exceeds ``divergence_threshold``) is
    reported as diverged with the first bad index of its loss curve; the members never
    interact, so it cannot affect the others.

    Multi-host: call ``jax.distributed.initialize()`` in every process, build the mesh from
    ``jax.devices()`` (the devices of all processes), and call ``run`` with the same arguments
    everywhere; each process feeds its own shards and receives the full gathered result.

    Args:
        train_fn: ``config -> metrics`` for one member; jittable.
        configs: a pytree (e.g. from :func:`grid`) whose leaves have a leading axis ``K``.
        chunk_size: members per compiled call (memory bound); ``None`` runs all at once. With a
            mesh it must be a multiple of the number of devices.
        mesh: a ``jax.sharding.Mesh`` to shard members over, or ``None`` (default device).
        progress: show a tqdm bar over chunks (and steps, see ``num_steps``).
        num_steps: the training length; with it the bar counts steps, advanced from inside the
            loop by :func:`report_progress`.
        loss: name of the metric checked for divergence; ``None`` disables the check.
        divergence_threshold: a loss above this also counts as diverged.
        labels: names for integer-coded configuration axes (e.g. ``{"schedule": [...]}``),
            used in tables and plots.
        compiler_options: XLA options for the compilation (``jax.jit(compiler_options=)``).
        vmap_size: ``None`` vectorizes all members of a chunk at once (``vmap``: the fastest on
            accelerators). An int runs them ``vmap_size`` at a time in a loop compiled into the
            same program (``lax.map``; per device when sharded): on a CPU, where batched
            kernels and their relayouts can be slower than single ones, ``vmap_size=1`` runs at
            the speed of single runs with one compilation and no Python dispatch.

    Returns:
        A :class:`SweepResult` with the hyperparameters and metrics of the ``K`` members.

    Raises:
        ValueError: before anything compiles, for configs with different leading axes or no
            members, a bad ``chunk_size`` or ``mesh``, or a ``train_fn`` whose output is not a
            pytree of arrays (or lacks the ``loss`` metric).

    Examples:
        >>> import jax.numpy as jnp, jaxlr
        >>> def train_fn(cfg):  # gradient descent on (w - 3)^2 for 20 steps
        ...     s = jaxlr.schedules.constant(value=cfg["peak_value"])
        ...     def step(w, t):
        ...         return w - s(t) * 2.0 * (w - 3.0), (w - 3.0) ** 2
        ...     _, losses = jax.lax.scan(step, 0.0, jnp.arange(20))
        ...     return {"loss": losses}
        >>> import jax
        >>> res = jaxlr.sweep.run(train_fn, jaxlr.sweep.grid(peak_value=[0.1, 0.5, 30.0]),
        ...                       progress=False)
        >>> res.best("loss")["peak_value"], res.diverged.tolist(), res.diverged_step.tolist()
        (0.5, [False, False, True], [-1, -1, 11])

    References:
        Bradbury et al., JAX: composable transformations of Python+NumPy programs, 2018
        (``vmap``, ``jit``, ``jax.sharding``).
    """
    c = Checker("run")
    if not callable(train_fn):
        c.fail(f"train_fn must be callable, got train_fn={train_fn!r}")
    k = size(configs, fn="run")
    sharding, devices = _sharding(c, mesh)
    chunk = _check_chunk_size(c, chunk_size, k, devices)
    if num_steps is not None and (isinstance(num_steps, bool) or
                                  not isinstance(num_steps, (int, np.integer)) or num_steps < 1):
        c.fail(f"num_steps must be an int >= 1 or None, got num_steps={num_steps!r}")
    if divergence_threshold is not None:
        c.finite("divergence_threshold", divergence_threshold)

    host = jax.tree.map(np.asarray, configs)
    num_chunks = -(-k // chunk)
    padded = jax.tree.map(
        lambda a: np.concatenate([a, np.repeat(a[-1:], num_chunks * chunk - k, axis=0)]), host)
    chunks = [jax.tree.map(lambda a, i=i: a[i * chunk:(i + 1) * chunk], padded)
              for i in range(num_chunks)]

    if vmap_size is not None:
        if isinstance(vmap_size, bool) or not isinstance(vmap_size, (int, np.integer)) \
                or vmap_size < 1:
            c.fail(f"vmap_size must be an int >= 1 or None, got vmap_size={vmap_size!r}")
        vmap_size = int(min(vmap_size, chunk // devices))
    compiled, trace_s, compile_s = _compile(train_fn, loss, chunks[0], sharding,
                                            compiler_options, vmap_size)
    outputs = []
    t0 = time.perf_counter()
    from tqdm.auto import tqdm

    total = num_chunks * num_steps if num_steps else num_chunks
    with tqdm(total=total, unit="step" if num_steps else "chunk", desc="sweep",
              disable=not progress, leave=True) as bar:
        with _progress._Active.lock:
            _progress._Active.bar, _progress._Active.num_steps = bar, num_steps
        try:
            for i, part in enumerate(chunks):
                _progress._Active.offset = i * (num_steps or 0)
                bar.set_postfix_str(f"chunk {i + 1}/{num_chunks}", refresh=False)
                outputs.append(_fetch(compiled(_put(part, sharding))))
                bar.update((i + 1) * (num_steps or 1) - bar.n)
        finally:
            with _progress._Active.lock:
                _progress._Active.bar = None
    run_s = time.perf_counter() - t0
    metrics = jax.tree.map(lambda *xs: np.concatenate(xs)[:k], *outputs)
    memory = compiled.memory_analysis()
    info = dict(
        num_members=k, chunk_size=chunk, num_chunks=num_chunks, padded=num_chunks * chunk - k,
        devices=devices, cache_hit=compile_s is None, trace_seconds=trace_s or 0.0,
        compile_seconds=compile_s or 0.0, run_seconds=run_s,
        memory_bytes=None if memory is None else int(
            memory.argument_size_in_bytes + memory.output_size_in_bytes
            + memory.temp_size_in_bytes - memory.alias_size_in_bytes),
    )
    return SweepResult(host, metrics, loss=loss, divergence_threshold=divergence_threshold,
                       labels=labels, info=info)
