"""``run``: one compiled, vmapped (and optionally sharded) program for a whole sweep."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import jax
import numpy as np
from jax.sharding import Mesh

from jaxlr._src.validate import Checker
from jaxlr.sweep import _engine, _progress
from jaxlr.sweep._configs import size, unwrap
from jaxlr.sweep._result import SweepResult


def _checked(
    train_fn: Callable, loss: str | None, vmap_size: int | None = None, sharding=None
) -> Callable:
    """``train_fn`` with its output validated at trace time, before anything compiles."""

    def member(config):
        metrics = train_fn(unwrap(config))
        _engine.check_metrics("run", "train_fn", metrics, loss)
        return metrics

    return _engine.vectorized(member, vmap_size, sharding)


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
        configs: a pytree (e.g. from :func:`grid`) whose leaves have a leading axis ``K``;
            string choices (a :class:`Choice`) reach ``train_fn`` as their index.
        chunk_size: members per compiled call (memory bound); ``None`` runs all at once. With a
            mesh it must be a multiple of the number of devices.
        mesh: a ``jax.sharding.Mesh`` to shard members over, or ``None`` (default device).
        progress: show a tqdm bar over chunks (and steps, see ``num_steps``).
        num_steps: the training length; with it the bar counts steps, advanced from inside the
            loop by :func:`report_progress`.
        loss: name of the metric checked for divergence; ``None`` disables the check.
        divergence_threshold: a loss above this also counts as diverged.
        labels: names for integer-coded configuration axes (e.g. ``{"schedule": [...]}``),
            used in tables and plots; string choices (``grid(schedule=["cosine", "wsd"])``)
            need none.
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
    sharding, devices = _engine.member_sharding(c, mesh)
    chunk = _engine.check_chunk_size(c, chunk_size, k, devices)
    c.integer("num_steps", num_steps, minimum=1, static=True, optional=True)
    if divergence_threshold is not None:
        c.finite("divergence_threshold", divergence_threshold)

    host = jax.tree.map(np.asarray, configs)
    num_chunks = -(-k // chunk)
    chunks = _engine.chunks_of(_engine.pad_members(host, num_chunks * chunk), chunk)

    c.integer("vmap_size", vmap_size, minimum=1, static=True, optional=True)
    if vmap_size is not None:
        vmap_size = int(min(vmap_size, chunk // devices))
    compiled, trace_s, compile_s = _engine.compile_cached(
        train_fn,
        ("run", loss, vmap_size, sharding),
        lambda: _checked(train_fn, loss, vmap_size, sharding),
        (_engine.structs(chunks[0], sharding),),
        compiler_options,
        sharding,
        sharding,
    )
    outputs = []
    t0 = time.perf_counter()
    from tqdm.auto import tqdm

    total = num_chunks * num_steps if num_steps else num_chunks
    with tqdm(
        total=total,
        unit="step" if num_steps else "chunk",
        desc="sweep",
        disable=not progress,
        leave=True,
    ) as bar:
        with _progress._Active.lock:
            _progress._Active.bar, _progress._Active.num_steps = bar, num_steps
        try:
            for i, part in enumerate(chunks):
                _progress._Active.offset = i * (num_steps or 0)
                bar.set_postfix_str(f"chunk {i + 1}/{num_chunks}", refresh=False)
                outputs.append(_engine.fetch(compiled(_engine.put(part, sharding))))
                bar.update((i + 1) * (num_steps or 1) - bar.n)
        finally:
            with _progress._Active.lock:
                _progress._Active.bar = None
    run_s = time.perf_counter() - t0
    metrics = jax.tree.map(lambda *xs: np.concatenate(xs)[:k], *outputs)
    memory = compiled.memory_analysis()
    info = dict(
        num_members=k,
        chunk_size=chunk,
        num_chunks=num_chunks,
        padded=num_chunks * chunk - k,
        devices=devices,
        cache_hit=compile_s is None,
        trace_seconds=trace_s or 0.0,
        compile_seconds=compile_s or 0.0,
        run_seconds=run_s,
        memory_bytes=None
        if memory is None
        else int(
            memory.argument_size_in_bytes
            + memory.output_size_in_bytes
            + memory.temp_size_in_bytes
            - memory.alias_size_in_bytes
        ),
    )
    return SweepResult(
        host,
        metrics,
        loss=loss,
        divergence_threshold=divergence_threshold,
        labels=labels,
        info=info,
    )
