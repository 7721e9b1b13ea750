"""Vectorized LR sweep (jaxlr.sweep.run) vs Optax per-configuration compilation vs a jitted loop.

A warmup-cosine grid over peak LR x warmup_steps (K = 8, 32, 64, 128) trains a small MLP with
Adam for ``STEPS`` steps. Three ways to run the grid, compile time included:

- jaxlr: ``sweep.run`` over the whole grid: one trace, one compile, one vmapped program;
- Optax as its users must: warmup-cosine built from ``optax.join_schedules`` needs
  ``warmup_steps`` as a Python int, so a new ``jit(vmap(...))`` compile per warmup value,
  vmapped over the peaks (``optax.warmup_cosine_decay_schedule`` itself cannot even vmap over
  the peak: it compares ``peak_value == 0.0`` in Python);
- a Python loop over one jitted single-configuration function (the configuration an argument).

It also times execution only (compiled programs, median of interleaved repeats), the compiled
programs' memory (XLA's memory analysis: arguments + outputs + temporaries), and, when the
process has a single CPU device, the same grid sharded over one CPU device per core, measured
in a child process (``XLA_FLAGS=--xla_force_host_platform_device_count`` must be set before JAX
starts). Run: ``python -m benchmarks.sweep``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax

import jaxlr
import jaxlr.sweep
from benchmarks._timing import block, interleaved

STEPS, BATCH, DIM, HIDDEN, CLASSES, DATA = 300, 128, 32, 64, 10, 1024
GRIDS = {8: (4, 2), 32: (8, 4), 64: (8, 8), 128: (16, 8)}  # K: (peaks, warmups)

_x = jax.random.normal(jax.random.key(0), (DATA, DIM))
_y = jax.random.randint(jax.random.key(1), (DATA,), 0, CLASSES)
_k1, _k2 = jax.random.split(jax.random.key(2))
P0 = {"w1": jax.random.normal(_k1, (DIM, HIDDEN)) / DIM**0.5, "b1": jnp.zeros(HIDDEN),
      "w2": jax.random.normal(_k2, (HIDDEN, CLASSES)) / HIDDEN**0.5, "b2": jnp.zeros(CLASSES)}


def _loss(p, x, y):
    logits = jax.nn.relu(x @ p["w1"] + p["b1"]) @ p["w2"] + p["b2"]
    return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()


def _train(schedule):
    tx = optax.adam(schedule)

    def step(carry, t):
        p, o = carry
        start = (t * BATCH) % DATA
        x = jax.lax.dynamic_slice_in_dim(_x, start, BATCH)
        y = jax.lax.dynamic_slice_in_dim(_y, start, BATCH)
        loss, g = jax.value_and_grad(_loss)(p, x, y)
        u, o = tx.update(g, o, p)
        return (optax.apply_updates(p, u), o), loss

    _, losses = jax.lax.scan(step, (P0, tx.init(P0)), jnp.arange(STEPS))
    return {"loss": losses}


def make_train_fn():
    """A fresh jaxlr train_fn (a new function object, so nothing is cached from earlier runs)."""

    def train_fn(cfg):
        return _train(jaxlr.schedules.warmup_cosine(
            peak_value=cfg["peak_value"], warmup_steps=cfg["warmup_steps"], total_steps=STEPS))

    return train_fn


def _optax_train(peak, warmup: int):
    # optax.warmup_cosine_decay_schedule cannot even trace peak_value (it branches on it in
    # Python); the same law joined from its parts can, with warmup a Python int.
    return _train(optax.join_schedules(
        [optax.linear_schedule(0.0, peak, warmup),
         optax.cosine_decay_schedule(peak, STEPS - warmup)], [warmup]))


def _grid(k):
    n_peak, n_warm = GRIDS[k]
    peaks = np.logspace(-4, -1, n_peak)
    warmups = np.linspace(0, STEPS // 4, n_warm).round()
    return peaks, warmups, jaxlr.sweep.grid(peak_value=peaks, warmup_steps=warmups)


def _mib(compiled) -> float:
    m = compiled.memory_analysis()
    return (m.argument_size_in_bytes + m.output_size_in_bytes + m.temp_size_in_bytes
            - m.alias_size_in_bytes) / 2**20


def _member(cfg, i):
    return {k: v[i] for k, v in cfg.items()}


def measure(k: int, mesh=None) -> dict[str, float]:
    """Seconds (compile included), execution-only seconds and memory for one grid size."""
    peaks, warmups, cfg = _grid(k)
    t0 = time.perf_counter()
    res = jaxlr.sweep.run(train_fn := make_train_fn(), cfg, mesh=mesh, progress=False)
    t_jaxlr = time.perf_counter() - t0

    t0 = time.perf_counter()
    mapped = jaxlr.sweep.run(map_fn := make_train_fn(), cfg, mesh=mesh, progress=False,
                             vmap_size=1)
    t_map = time.perf_counter() - t0

    t0 = time.perf_counter()
    optax_losses = [block(jax.jit(jax.vmap(lambda p, w=int(w): _optax_train(p, w)))(peaks))
                    for w in warmups]
    t_optax = time.perf_counter() - t0

    single = jax.jit(make_train_fn())
    t0 = time.perf_counter()
    loop_out = [single(_member(cfg, i)) for i in range(k)]
    block(loop_out)
    t_loop = time.perf_counter() - t0

    # Same numbers three ways (member order of grid: peak-major, warmup-minor).
    loop_loss = np.stack([o["loss"] for o in loop_out])
    np.testing.assert_allclose(res.metrics["loss"][:, :20], loop_loss[:, :20], rtol=1e-3,
                               atol=1e-5)
    np.testing.assert_allclose(mapped.metrics["loss"][:, :20], loop_loss[:, :20], rtol=1e-3,
                               atol=1e-5)
    opt = np.stack([np.asarray(o["loss"]) for o in optax_losses], 1).reshape(k, STEPS)
    # Same law written two ways: equal until rounding differences grow at the largest peak LR.
    np.testing.assert_allclose(opt[:, :20], loop_loss[:, :20], rtol=1e-3, atol=1e-5)

    run_only = interleaved({
        "jaxlr": lambda: jaxlr.sweep.run(train_fn, cfg, mesh=mesh, progress=False).metrics,
        "jaxlr_map": lambda: jaxlr.sweep.run(map_fn, cfg, mesh=mesh, progress=False,
                                             vmap_size=1).metrics,
        "loop": lambda: [single(_member(cfg, i)) for i in range(k)],
    }, repeats=3)
    member0 = _member(cfg, 0)
    return dict(
        jaxlr_s=t_jaxlr, optax_s=t_optax, loop_s=t_loop, map_s=t_map,
        map_run_s=run_only["jaxlr_map"],
        jaxlr_compile_s=res.info["compile_seconds"],
        jaxlr_run_s=run_only["jaxlr"], loop_run_s=run_only["loop"],
        jaxlr_mib=res.info["memory_bytes"] / 2**20,
        loop_mib=_mib(jax.jit(make_train_fn()).lower(member0).compile()),
        optax_mib=_mib(jax.jit(jax.vmap(lambda p: _optax_train(p, int(warmups[-1]))))
                       .lower(peaks).compile()),
    )


def _ratios(k: int, m: dict[str, float], tag: str = "") -> dict[str, float]:
    return {
        f"optax per-config compile / jaxlr{tag}, K={k}": m["optax_s"] / m["jaxlr_s"],
        f"jitted loop / jaxlr{tag}, K={k}": m["loop_s"] / m["jaxlr_s"],
        f"jitted loop / jaxlr{tag}, execution only, K={k}": m["loop_run_s"] / m["jaxlr_run_s"],
        f"optax per-config compile / jaxlr(vmap_size=1){tag}, K={k}": m["optax_s"] / m["map_s"],
        f"jitted loop / jaxlr(vmap_size=1){tag}, K={k}": m["loop_s"] / m["map_s"],
        f"jitted loop / jaxlr(vmap_size=1){tag}, execution only, K={k}":
            m["loop_run_s"] / m["map_run_s"],
        f"ms per config jaxlr{tag}, K={k}": 1e3 * m["jaxlr_s"] / k,
        f"ms per config optax{tag}, K={k}": 1e3 * m["optax_s"] / k,
        f"ms per config loop{tag}, K={k}": 1e3 * m["loop_s"] / k,
        f"memory MiB jaxlr / loop / optax{tag}, K={k}":
            f"{m['jaxlr_mib']:.2f} / {m['loop_mib']:.2f} / {m['optax_mib']:.2f}",
    }


def _sharded_child(ks) -> dict[str, float]:
    """Runs this module in a child with one CPU device per core and returns its ratios."""
    cores = os.cpu_count() or 1
    env = {**os.environ, "XLA_FLAGS": f"--xla_force_host_platform_device_count={cores}"}
    code = ("import json, benchmarks.sweep as b; "
            f"print('RESULT ' + json.dumps(b.sharded({list(ks)!r})))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                         cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                         timeout=600)
    for line in out.stdout.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[len("RESULT "):])
    raise RuntimeError(f"sharded child failed: {out.stderr[-2000:]}")


def sharded(ks) -> dict[str, float]:
    """The grid sharded over every CPU device of this process (one per core)."""
    from jax.sharding import Mesh

    mesh = Mesh(np.array(jax.devices()), ("members",))
    out = {}
    for k in ks:
        m = measure(k, mesh=mesh)
        r = _ratios(k, m, tag=f" on {len(jax.devices())} CPU devices")
        out.update({n: v for n, v in r.items() if "memory" not in n and "optax" not in n})
    return out


def main() -> dict[str, float]:
    ratios: dict[str, float] = {}
    for k in GRIDS:
        m = measure(k)
        r = _ratios(k, m)
        ratios.update(r)
        for n, v in r.items():
            print(f"{n}: {v:.3g}" if isinstance(v, float) else f"{n}: {v}", flush=True)
    if len(jax.devices()) == 1 and (os.cpu_count() or 1) > 1:
        child = _sharded_child([32, 64, 128])
        for n, v in child.items():
            print(f"{n}: {v:.3g}", flush=True)
        ratios.update(child)
    ratios["device"] = f"{jax.devices()[0].platform} ({os.cpu_count()} cores); no GPU measured"
    return ratios


if __name__ == "__main__":
    main()
