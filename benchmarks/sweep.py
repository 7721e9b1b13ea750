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

``python -m benchmarks.sweep halving`` times successive halving against the grid on the population
task below, cold (compile included, compile seconds printed apart), and a second halving call;
``python -m benchmarks.sweep demo`` does the same for ``make demo``'s grid and halving;
``python -m benchmarks.sweep k64cold`` times the K = 64 grid against the loop of single runs,
each cold in a fresh process.

Populations (:func:`populations`; ``python -m benchmarks.sweep populations`` runs only these),
on a learnable task (labels from a random teacher network, a held-out validation set):

- successive halving vs the full grid (K = 27, rungs at 1/9, 1/3 and all of the steps, eta = 3):
  wall time (compile included) and member-steps, and whether halving's best final validation
  loss is within 1% of the grid's best;
- PBT vs the grid at equal member-steps (the same K and steps), final validation loss of the
  best member, 3 seeds (data order and initialization);
- a population driven from Python with a NumPy iterator vs ``run`` with in-device data, the
  same K and model, execution only, at 1 and 10 steps per call;
- the physical limit: achieved FLOP/s of a K = 64 sweep vs a measured peak f32 matmul FLOP/s
  (1024^2) and vs the model's own K-batched matmuls alone (forward and backward, same shapes).
  FLOPs are counted from the model's matmuls: per member-step the forward ``x W1`` and
  ``h W2`` and the backward ``dW2 = h^T dy``, ``dh = dy W2^T``, ``dW1 = x^T dh`` (no ``dx`` for
  the input), 2 B (2 D H + 3 H C) in all; elementwise work, softmax and Adam are not
  counted. (XLA's ``cost_analysis()`` is no cross-check here: it counts the body of the
  training loop's ``while`` once, not once per step.)
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from typing import Any

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
P0 = {
    "w1": jax.random.normal(_k1, (DIM, HIDDEN)) / DIM**0.5,
    "b1": jnp.zeros(HIDDEN),
    "w2": jax.random.normal(_k2, (HIDDEN, CLASSES)) / HIDDEN**0.5,
    "b2": jnp.zeros(CLASSES),
}


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
        return _train(
            jaxlr.schedules.warmup_cosine(
                peak_value=cfg["peak_value"], warmup_steps=cfg["warmup_steps"], total_steps=STEPS
            )
        )

    return train_fn


def _optax_train(peak, warmup: int):
    # optax.warmup_cosine_decay_schedule cannot even trace peak_value (it branches on it in
    # Python); the same law joined from its parts can, with warmup a Python int.
    return _train(
        optax.join_schedules(
            [
                optax.linear_schedule(0.0, peak, warmup),
                optax.cosine_decay_schedule(peak, STEPS - warmup),
            ],
            [warmup],
        )
    )


def _grid(k):
    n_peak, n_warm = GRIDS[k]
    peaks = np.logspace(-4, -1, n_peak)
    warmups = np.linspace(0, STEPS // 4, n_warm).round()
    return peaks, warmups, jaxlr.sweep.grid(peak_value=peaks, warmup_steps=warmups)


def _mib(compiled) -> float:
    m = compiled.memory_analysis()
    return (
        m.argument_size_in_bytes
        + m.output_size_in_bytes
        + m.temp_size_in_bytes
        - m.alias_size_in_bytes
    ) / 2**20


def _member(cfg, i):
    return {k: v[i] for k, v in cfg.items()}


def measure(k: int, mesh=None) -> dict[str, float]:
    """Seconds (compile included), execution-only seconds and memory for one grid size."""
    peaks, warmups, cfg = _grid(k)
    t0 = time.perf_counter()
    res = jaxlr.sweep.run(train_fn := make_train_fn(), cfg, mesh=mesh, progress=False)
    t_jaxlr = time.perf_counter() - t0

    t0 = time.perf_counter()
    mapped = jaxlr.sweep.run(map_fn := make_train_fn(), cfg, mesh=mesh, progress=False, vmap_size=1)
    t_map = time.perf_counter() - t0

    t0 = time.perf_counter()
    optax_losses = [
        block(jax.jit(jax.vmap(lambda p, w=int(w): _optax_train(p, w)))(peaks)) for w in warmups
    ]
    t_optax = time.perf_counter() - t0

    single = jax.jit(make_train_fn())
    t0 = time.perf_counter()
    loop_out = [single(_member(cfg, i)) for i in range(k)]
    block(loop_out)
    t_loop = time.perf_counter() - t0

    # Same numbers three ways (member order of grid: peak-major, warmup-minor).
    loop_loss = np.stack([o["loss"] for o in loop_out])
    np.testing.assert_allclose(res.metrics["loss"][:, :20], loop_loss[:, :20], rtol=1e-3, atol=1e-5)
    np.testing.assert_allclose(
        mapped.metrics["loss"][:, :20], loop_loss[:, :20], rtol=1e-3, atol=1e-5
    )
    opt = np.stack([np.asarray(o["loss"]) for o in optax_losses], 1).reshape(k, STEPS)
    # Same law written two ways: equal until rounding differences grow at the largest peak LR.
    np.testing.assert_allclose(opt[:, :20], loop_loss[:, :20], rtol=1e-3, atol=1e-5)

    run_only = interleaved(
        {
            "jaxlr": lambda: jaxlr.sweep.run(train_fn, cfg, mesh=mesh, progress=False).metrics,
            "jaxlr_map": lambda: (
                jaxlr.sweep.run(map_fn, cfg, mesh=mesh, progress=False, vmap_size=1).metrics
            ),
            "loop": lambda: [single(_member(cfg, i)) for i in range(k)],
        },
        repeats=3,
    )
    member0 = _member(cfg, 0)
    return dict(
        jaxlr_s=t_jaxlr,
        optax_s=t_optax,
        loop_s=t_loop,
        map_s=t_map,
        map_run_s=run_only["jaxlr_map"],
        jaxlr_compile_s=res.info["compile_seconds"],
        jaxlr_run_s=run_only["jaxlr"],
        loop_run_s=run_only["loop"],
        jaxlr_mib=res.info["memory_bytes"] / 2**20,
        loop_mib=_mib(jax.jit(make_train_fn()).lower(member0).compile()),
        optax_mib=_mib(
            jax.jit(jax.vmap(lambda p: _optax_train(p, int(warmups[-1])))).lower(peaks).compile()
        ),
    )


def _ratios(k: int, m: dict[str, float], tag: str = "") -> dict[str, float]:
    return {
        f"optax per-config compile / jaxlr{tag}, K={k}": m["optax_s"] / m["jaxlr_s"],
        f"jitted loop / jaxlr{tag}, K={k}": m["loop_s"] / m["jaxlr_s"],
        f"jitted loop / jaxlr{tag}, execution only, K={k}": m["loop_run_s"] / m["jaxlr_run_s"],
        f"optax per-config compile / jaxlr(vmap_size=1){tag}, K={k}": m["optax_s"] / m["map_s"],
        f"jitted loop / jaxlr(vmap_size=1){tag}, K={k}": m["loop_s"] / m["map_s"],
        f"jitted loop / jaxlr(vmap_size=1){tag}, execution only, K={k}": m["loop_run_s"]
        / m["map_run_s"],
        f"ms per config jaxlr{tag}, K={k}": 1e3 * m["jaxlr_s"] / k,
        f"ms per config optax{tag}, K={k}": 1e3 * m["optax_s"] / k,
        f"ms per config loop{tag}, K={k}": 1e3 * m["loop_s"] / k,
        f"memory MiB jaxlr / loop / optax{tag}, K={k}": (
            f"{m['jaxlr_mib']:.2f} / {m['loop_mib']:.2f} / {m['optax_mib']:.2f}"
        ),
    }


def _sharded_child(ks) -> dict[str, float]:
    """Runs this module in a child with one CPU device per core and returns its ratios."""
    cores = os.cpu_count() or 1
    env = {**os.environ, "XLA_FLAGS": f"--xla_force_host_platform_device_count={cores}"}
    code = (
        "import json, benchmarks.sweep as b; "
        f"print('RESULT ' + json.dumps(b.sharded({list(ks)!r})))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env=env,
        cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
        timeout=600,
    )
    for line in out.stdout.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[len("RESULT ") :])
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


def cold_one(which: str, k: int = 64) -> float:
    """Seconds for the K-member grid, cold, in this (fresh) process: ``"sweep"``
    (``jaxlr.sweep.run``, defaults) or ``"loop"`` (one ``jit`` of a single run, called per
    member). JAX's own start-up is outside."""
    jax.jit(lambda x: x + 1)(1.0).block_until_ready()
    _, _, cfg = _grid(k)
    t0 = time.perf_counter()
    if which == "sweep":
        block(jaxlr.sweep.run(make_train_fn(), cfg, progress=False).metrics)
    else:
        single = jax.jit(make_train_fn())
        block([single(_member(cfg, i)) for i in range(k)])
    return time.perf_counter() - t0


def cold_processes(k: int = 64, repeats: int = 3) -> dict[str, float]:
    """The K = 64 grid, compile included, each run in a fresh process (alternating sweep and
    loop), so neither pays or skips another's first-use costs (in :func:`measure` the sweep
    runs first in its process). ``python -m benchmarks.sweep k64cold``."""
    times: dict[str, list[float]] = {"sweep": [], "loop": []}
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    for _ in range(repeats):
        for which in times:
            code = f"import benchmarks.sweep as b; print('RESULT', b.cold_one({which!r}, {k}))"
            out = subprocess.run(
                [sys.executable, "-c", code], capture_output=True, text=True, cwd=root, timeout=600
            )
            line = [x for x in out.stdout.splitlines() if x.startswith("RESULT ")]
            if not line:
                raise RuntimeError(f"cold child failed: {out.stderr[-2000:]}")
            times[which].append(float(line[0].split()[1]))
    med = {w: float(np.median(v)) for w, v in times.items()}
    return {
        f"jitted loop / jaxlr, K={k}, compile included, fresh processes (median of {repeats})": (
            med["loop"] / med["sweep"]
        ),
        f"seconds sweep / loop, K={k}, per run": (
            " ".join(f"{a:.2f}/{b:.2f}" for a, b in zip(times["sweep"], times["loop"]))
        ),
    }


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
    ratios.update(populations())
    ratios["device"] = f"{jax.devices()[0].platform} ({os.cpu_count()} cores); no GPU measured"
    return ratios


# -- populations -------------------------------------------------------------------------------
P_STEPS, P_VAL, P_SEEDS = 270, 512, (0, 1, 2)
P_PEAKS, P_WARMUPS = np.logspace(-3.5, -0.5, 9), np.array([0.0, 30.0, 90.0])


def _teacher_task(seed: int):
    """Inputs and labels of a random two-layer teacher; train ``DATA`` and validation ``P_VAL``."""
    rng = np.random.default_rng(100 + seed)
    w1 = rng.normal(size=(DIM, HIDDEN)) / DIM**0.5
    w2 = rng.normal(size=(HIDDEN, CLASSES)) / HIDDEN**0.5
    x = rng.normal(size=(DATA + P_VAL, DIM)).astype(np.float32)
    y = np.argmax(np.maximum(x @ w1, 0) @ w2, 1).astype(np.int32)
    index = np.stack([rng.choice(DATA, BATCH, replace=False) for _ in range(P_STEPS)])
    return (x[:DATA], y[:DATA]), (x[DATA:], y[DATA:]), index


def _p0(seed: int):
    k1, k2 = jax.random.split(jax.random.key(10 + seed))
    return {
        "w1": jax.random.normal(k1, (DIM, HIDDEN)) / DIM**0.5,
        "b1": jnp.zeros(HIDDEN),
        "w2": jax.random.normal(k2, (HIDDEN, CLASSES)) / HIDDEN**0.5,
        "b2": jnp.zeros(CLASSES),
    }


class _Pop:
    """One seed of the population benchmark: the grid (run), halving and PBT on one task."""

    def __init__(self, seed: int):
        (self.x, self.y), (xv, yv), self.index = _teacher_task(seed)
        self.xv, self.yv = jnp.asarray(xv), jnp.asarray(yv)
        self.p0 = _p0(seed)
        self.configs = jaxlr.sweep.grid(peak_value=P_PEAKS, warmup_steps=P_WARMUPS)
        # Bound once: the compile cache is keyed on the function object.
        self.init_fn, self.step_fn = self._init_fn, self._step_fn

    @staticmethod
    def schedule(c):
        return jaxlr.schedules.warmup_cosine(
            peak_value=c["peak_value"], warmup_steps=c["warmup_steps"], total_steps=P_STEPS
        )

    def _init_fn(self, c, key):
        return {
            "p": self.p0,
            "m": jax.tree.map(jnp.zeros_like, self.p0),
            "v": jax.tree.map(jnp.zeros_like, self.p0),
            "t": jnp.zeros((), jnp.int32),
        }

    def _step_fn(self, state, c, batch):
        """Adam written out, its LR read from ``c`` at every step (so PBT may change it)."""
        lr = self.schedule(c)(state["t"])
        loss, g = jax.value_and_grad(_loss)(state["p"], batch["x"], batch["y"])
        t = state["t"] + 1
        m = jax.tree.map(lambda m, g: 0.9 * m + 0.1 * g, state["m"], g)
        v = jax.tree.map(lambda v, g: 0.999 * v + 0.001 * g * g, state["v"], g)
        corr = jnp.sqrt(1 - 0.999**t) / (1 - 0.9**t)
        p = jax.tree.map(lambda p, m, v: p - lr * corr * m / (jnp.sqrt(v) + 1e-8), state["p"], m, v)
        return {"p": p, "m": m, "v": v, "t": t}, {
            "loss": loss,
            "lr": lr,
            "val": _loss(p, self.xv, self.yv),
        }

    def batches(self):
        for idx in self.index:
            yield {"x": self.x[idx], "y": self.y[idx]}

    def train_fn(self):
        """The grid's ``train_fn`` (in-device data), built once so ``run`` reuses its compile."""
        if getattr(self, "_train", None) is None:
            self._train = self._make_train_fn()
        return self._train

    def _make_train_fn(self):
        x, y, index = jnp.asarray(self.x), jnp.asarray(self.y), jnp.asarray(self.index)

        def train_fn(c):
            def body(state, idx):
                return self.step_fn(state, c, {"x": x[idx], "y": y[idx]})

            state, m = jax.lax.scan(body, self.init_fn(c, None), index)
            return {"loss": m["loss"], "val": m["val"][-1]}

        return train_fn

    def grid(self):
        return jaxlr.sweep.run(self.train_fn(), self.configs, progress=False)

    def halving(self, steps_per_call=10):
        return jaxlr.sweep.successive_halving(
            self.init_fn,
            self.step_fn,
            self.configs,
            self.batches(),
            key=jax.random.key(0),
            rungs=[P_STEPS // 9, P_STEPS // 3, P_STEPS],
            eta=3,
            metric="val",
            steps_per_call=steps_per_call,
            progress=False,
        )

    def pbt(self, seed):
        # The peak LR is explored; the warmup stays the member's own.
        return jaxlr.sweep.pbt(
            self.init_fn,
            self.step_fn,
            self.configs,
            self.batches(),
            key=jax.random.key(seed),
            num_steps=P_STEPS,
            interval=P_STEPS // 9,
            metric="val",
            space={"peak_value": ("log_uniform", P_PEAKS[0], P_PEAKS[-1])},
            progress=False,
        )


def _timed(fn):
    t0 = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t0


def _flops_per_member_step() -> float:
    """Matmul FLOPs of one training step: forward x W1, h W2; backward dW2, dh, dW1."""
    return 2 * BATCH * (2 * DIM * HIDDEN + 3 * HIDDEN * CLASSES)


def physical_limit(k: int = 64, steps: int = 100) -> dict[str, float]:
    """Achieved FLOP/s of a K-member sweep vs peak matmul and the K-batched matmul ceiling."""
    n = 1024
    a = jax.random.normal(jax.random.key(0), (n, n))
    mm = jax.jit(lambda a: a @ a)
    peak_s = interleaved({"mm": lambda: mm(a)}, repeats=5)["mm"]
    peak = 2 * n**3 / peak_s

    # The model's own matmuls, K-batched, forward and backward (dW = x^T dy, dx = dy W^T).
    ks = jax.random.split(jax.random.key(1), 4)
    x = jax.random.normal(ks[0], (k, BATCH, DIM))
    w1 = jax.random.normal(ks[1], (k, DIM, HIDDEN))
    w2 = jax.random.normal(ks[2], (k, HIDDEN, CLASSES))

    def matmuls(x, w1, w2):
        def body(carry, _):
            x, w1, w2 = carry
            h = jnp.einsum("kbd,kdh->kbh", x, w1)
            o = jnp.einsum("kbh,khc->kbc", h, w2)
            dw2 = jnp.einsum("kbh,kbc->khc", h, o)
            dh = jnp.einsum("kbc,khc->kbh", o, w2)
            dw1 = jnp.einsum("kbd,kbh->kdh", x, dh)
            return (x, w1 - 1e-6 * dw1, w2 - 1e-6 * dw2), None  # dx of layer 1 is not needed

        return jax.lax.scan(body, (x, w1, w2), None, length=steps)[0]

    mm_fn = jax.jit(matmuls)
    ceiling_flops = steps * k * _flops_per_member_step()  # the same five matmuls
    ceiling_s = interleaved({"mm": lambda: mm_fn(x, w1, w2)}, repeats=3)["mm"]
    ceiling = ceiling_flops / ceiling_s

    peaks, warmups, cfg = _grid(k)
    train_fn = make_train_fn()
    res = jaxlr.sweep.run(train_fn, cfg, progress=False)
    single = jax.jit(make_train_fn())
    times = interleaved(
        {
            "sweep": lambda: jaxlr.sweep.run(train_fn, cfg, progress=False).metrics,
            "loop": lambda: [single(_member(cfg, i)) for i in range(k)],
        },
        repeats=3,
    )
    flops = k * STEPS * _flops_per_member_step()
    achieved = flops / times["sweep"]
    return {
        f"K={k} sweep GFLOP/s (model matmul FLOPs)": achieved / 1e9,
        f"K={k} loop of jitted single runs GFLOP/s": flops / times["loop"] / 1e9,
        "peak f32 matmul GFLOP/s (1024^2)": peak / 1e9,
        f"K-batched model matmuls alone GFLOP/s (K={k})": ceiling / 1e9,
        f"K={k} sweep / peak matmul": achieved / peak,
        f"K={k} sweep / K-batched matmul ceiling": achieved / ceiling,
        f"K={k} sweep speed / loop": times["loop"] / times["sweep"],
        f"K={k} compile seconds (not in the rates)": res.info["compile_seconds"],
    }


def overhead(k: int = 27) -> dict[str, float]:
    """Python-driven population (NumPy iterator) vs run (in-device data), execution only,
    all three interleaved in one measurement."""
    task = _Pop(0)
    train_fn = task.train_fn()

    def population(spc):
        pop = jaxlr.sweep.Population(
            task.init_fn, task.step_fn, task.configs, key=jax.random.key(0), progress=False
        )
        return pop.train(task.batches(), P_STEPS, steps_per_call=spc).result().metrics

    t = interleaved(
        {
            "run": lambda: jaxlr.sweep.run(train_fn, task.configs, progress=False).metrics,
            "1": lambda: population(1),
            "10": lambda: population(10),
        },
        repeats=5,
    )
    return {
        f"population (NumPy iterator, {spc} step/call) / run (in-device), K={k}": t[spc] / t["run"]
        for spc in ("1", "10")
    }


def driver_overhead(k: int = 27, steps_per_call: int = 10) -> dict[str, float]:
    """The driver (:class:`~jaxlr.sweep.Population`, ``steps_per_call`` steps per compiled call)
    against the loop a user would write by hand over the same NumPy iterator: stack
    ``steps_per_call`` batches, call one ``jit`` of a ``lax.scan`` of ``vmap(step_fn)``, keep the
    metrics; both initialize the members first. Execution only (both compiled once first),
    interleaved; the driver also checks divergence, freezes diverged members and records every
    metric on the host."""
    task = _Pop(0)

    def population():
        pop = jaxlr.sweep.Population(
            task.init_fn, task.step_fn, task.configs, key=jax.random.key(0), progress=False
        )
        return pop.train(task.batches(), P_STEPS, steps_per_call=steps_per_call).host_metrics()

    vstep = jax.vmap(task.step_fn, in_axes=(0, 0, None))

    @jax.jit
    def chunk(states, cfgs, xs):
        return jax.lax.scan(lambda s, b: vstep(s, cfgs, b), states, xs)

    cfgs = jax.tree.map(jnp.asarray, task.configs)
    init = jax.jit(jax.vmap(task.init_fn, in_axes=(0, None)))

    def by_hand():  # initializes its members too, as the driver does
        states, out, it = init(cfgs, None), [], task.batches()
        for _ in range(P_STEPS // steps_per_call):
            group = [next(it) for _ in range(steps_per_call)]
            xs = {n: np.stack([b[n] for b in group]) for n in group[0]}
            states, m = chunk(states, cfgs, xs)
            out.append(m)
        return jax.device_get(out)

    # 15 rounds: with 5, the median ratio moved 1.07-1.19 between runs on the 2 shared cores
    t = interleaved({"driver": population, "by_hand": by_hand}, repeats=15)
    return {
        f"Population / hand-written jit(scan(vmap(step))) loop, {steps_per_call} steps per call, "
        f"K={k}, execution only": t["driver"] / t["by_hand"]
    }


def search(seeds=P_SEEDS) -> dict[str, Any]:
    """Halving vs grid (wall time, member-steps, best within 1%) and PBT vs grid, per seed."""
    out: dict[str, Any] = {}
    wins = 0
    for seed in seeds:
        task = _Pop(seed)
        grid, grid_s = _timed(task.grid)
        halved, halved_s = _timed(task.halving)
        learned, pbt_s = _timed(lambda task=task, seed=seed: task.pbt(seed))
        # Again, compiled programs cached: what the search costs once compiled.
        _, grid_warm = _timed(task.grid)
        _, halved_warm = _timed(task.halving)
        g_best = float(np.nanmin(np.where(grid.diverged, np.nan, grid.final("val"))))
        h_best = float(halved.best("val")["val"])
        p_best = float(learned.best("val")["val"])
        k = len(grid)
        wins += p_best < g_best
        out.update(
            {
                f"seed {seed}: halving / grid wall time (compile included)": halved_s / grid_s,
                f"seed {seed}: halving / grid wall time, compiled (second run)": halved_warm
                / grid_warm,
                f"seed {seed}: halving / grid member-steps": halved.member_steps / (k * P_STEPS),
                f"seed {seed}: halving best val / grid best val": h_best / g_best,
                f"seed {seed}: halving reached the grid's best within 1%": bool(
                    h_best <= 1.01 * g_best
                ),
                f"seed {seed}: PBT best val / grid best val (equal member-steps)": p_best / g_best,
                f"seed {seed}: PBT / grid wall time": pbt_s / grid_s,
            }
        )
    out[f"PBT beat the grid's best on seeds (of {len(seeds)})"] = wins
    return out


def _build_seconds(res) -> float:
    """Trace + compile seconds a result reports (``info``: the split the engine measured)."""
    return float(res.info.get("trace_seconds", 0.0) + res.info.get("compile_seconds", 0.0))


def halving_wall(seed: int = 0) -> dict[str, Any]:
    """Successive halving vs the grid, cold, in this process: wall time with compile included,
    the compile seconds each reports, and a second halving call with the same step function
    (which should find its programs compiled). ``python -m benchmarks.sweep halving``."""
    jax.jit(lambda x: x + 1)(1.0).block_until_ready()  # JAX's own start-up, outside both
    task = _Pop(seed)
    grid, grid_s = _timed(task.grid)
    halved, halved_s = _timed(task.halving)
    again, again_s = _timed(task.halving)
    g_best = float(np.nanmin(np.where(grid.diverged, np.nan, grid.final("val"))))
    h_best = float(halved.best("val")["val"])
    return {
        "grid wall time, compile included (s)": grid_s,
        "grid compile seconds (trace + compile)": _build_seconds(grid),
        "halving wall time, compile included (s)": halved_s,
        "halving compile seconds (trace + compile)": _build_seconds(halved),
        "halving / grid wall time (compile included)": halved_s / grid_s,
        "second halving call wall time (s)": again_s,
        "second halving call compile seconds": _build_seconds(again),
        "halving / grid member-steps": halved.member_steps / (len(grid) * P_STEPS),
        "halving best val / grid best val": h_best / g_best,
    }


def demo_halving() -> dict[str, Any]:
    """``make demo``'s grid and successive halving (full setting), cold in this process, and a
    second halving call (its programs should come from the cache).
    ``python -m benchmarks.sweep demo``."""
    from jaxlr import demo

    jax.jit(lambda x: x + 1)(1.0).block_until_ready()  # JAX's own start-up, outside both
    task = demo._Task(False)
    grid, grid_s = _timed(lambda: demo.sweep(False, task=task, progress=False))
    halved, halved_s = _timed(lambda: demo.halving(task, progress=False))
    again, again_s = _timed(lambda: demo.halving(task, progress=False))
    return {
        "demo grid wall time, compile included (s)": grid_s,
        "demo grid compile seconds": grid.compile_seconds,
        "demo halving wall time, compile included (s)": halved_s,
        "demo halving compile seconds": halved.compile_seconds,
        "demo halving / grid wall time": halved_s / grid_s,
        "demo second halving call wall time (s)": again_s,
        "demo second halving call compile seconds": again.compile_seconds,
        "demo halving / grid member-steps": halved.member_steps / (len(grid) * task.steps),
    }


def populations() -> dict[str, Any]:
    out: dict[str, Any] = {}
    for part in (search, overhead, driver_overhead, physical_limit):
        r = part()
        for n, v in r.items():
            print(f"{n}: {v:.3g}" if isinstance(v, float) else f"{n}: {v}", flush=True)
        out.update(r)
    return out


def _print(r: dict[str, Any]) -> None:
    for n, v in r.items():
        print(f"{n}: {v:.3g}" if isinstance(v, float) else f"{n}: {v}", flush=True)


if __name__ == "__main__":
    if sys.argv[1:] == ["populations"]:
        populations()
    elif sys.argv[1:] == ["halving"]:
        _print(halving_wall())
    elif sys.argv[1:] == ["demo"]:
        _print(demo_halving())
    elif sys.argv[1:] == ["overhead"]:
        _print(driver_overhead())
        _print(overhead())
    elif sys.argv[1:] == ["k64"]:
        _print(_ratios(64, measure(64)))
    elif sys.argv[1:] == ["k64cold"]:
        _print(cold_processes())
    else:
        main()
