"""Successive halving ranked by the value so far vs by each member's predicted final value.

``successive_halving(rank="predicted", planned_lr=...)`` fits a loss-curve law (the power part of
the momentum law, the loss against the LR area) to each member's metric curve at a rung and ranks by
its prediction at the last rung under the member's own schedule (``rank="value"``: by the
metric at the rung, biased toward schedules that make early progress).
Three problems, each with its full grid (``sweep.run``, every member to the end) as the
reference:

- (a) ``benchmarks/sweep.py``'s population task (a two-layer MLP on a random teacher's labels,
  1,024 training points reused, so the validation loss of high LRs turns up: overfitting, which
  no loss-curve law predicts), warmup-cosine, 9 peaks x 3 warmups, 270 steps, rungs 30/90/270;
- (b) the demo's task (``jaxlr.demo._Task(quick=False)``: digits, 6 schedule families x 9 peaks x
  2 warmups, 600 steps, ``jaxlr.demo.rungs``), ranked by ``val_loss``;
- (c) a problem where warmup matters: a three-layer MLP (64-64-64-10) on scikit-learn's digits
  with Adam, warmup-cosine, 9 peaks x 3 warmups (0, 30, 90 steps), 270 steps, rungs
  30/90/270, ranked by the validation loss (a fifth of the training images).

For each: the best final validation loss each halving selects, over the grid's best (1.0 is the
grid's), the members that reached the last rung, the fits that failed (ranked by value), and wall
time, compile included, over the grid's (one process, each search cold: a new step function
and ``jax.clear_caches()`` before it).
Run: ``python -m benchmarks.ranking``.
"""

from __future__ import annotations

import time
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

import jaxlr
import jaxlr.sweep
from benchmarks import sweep as bench

# -- (c): a three-layer MLP on digits, where warmup matters --------------------------------------
C_STEPS, C_BATCH, C_HIDDEN = 270, 64, 64
C_PEAKS, C_WARMUPS = np.logspace(-3.5, -0.5, 9), np.array([0.0, 30.0, 90.0])
C_RUNGS = [30, 90, 270]


class _Mlp3:
    """A 64-64-64-10 MLP trained by Adam on scikit-learn's digits (``jaxlr.demo.digits``), a
    random minibatch per step; the validation split is a fifth of the training images."""

    def __init__(self, seed: int = 0):
        from jaxlr.demo import digits

        (x, y), _ = digits()
        n_val = len(y) // 5
        self.xv, self.yv = jnp.asarray(x[:n_val]), jnp.asarray(y[:n_val])
        x, y = x[n_val:], y[n_val:]
        rng = np.random.default_rng(200 + seed)
        index = np.stack([rng.choice(len(y), C_BATCH, replace=False) for _ in range(C_STEPS)])
        self.x, self.y = x[index], y[index]
        keys = jax.random.split(jax.random.key(300 + seed), 3)
        sizes = [(x.shape[1], C_HIDDEN), (C_HIDDEN, C_HIDDEN), (C_HIDDEN, 10)]
        self.p0 = [
            {"w": jax.random.normal(k, s) / s[0] ** 0.5, "b": jnp.zeros(s[1])}
            for k, s in zip(keys, sizes)
        ]
        self.configs = jaxlr.sweep.grid(peak_value=C_PEAKS, warmup_steps=C_WARMUPS)

    @staticmethod
    def schedule(c):
        return jaxlr.schedules.warmup_cosine(
            peak_value=c["peak_value"], warmup_steps=c["warmup_steps"], total_steps=C_STEPS
        )

    @staticmethod
    def lr(c, step):
        return _Mlp3.schedule(c)(step)

    @staticmethod
    def loss(p, x, y):
        h = x
        for layer in p[:-1]:
            h = jax.nn.relu(h @ layer["w"] + layer["b"])
        logits = h @ p[-1]["w"] + p[-1]["b"]
        return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()

    def fns(self):
        """A fresh ``(init_fn, step_fn)`` pair (new function objects: nothing cached)."""
        p0, xv, yv, loss = self.p0, self.xv, self.yv, self.loss

        def init_fn(c, key):
            return {"p": p0, "opt": optax.adam(self.schedule(c)).init(p0)}

        def step_fn(state, c, batch):
            tx = optax.adam(self.schedule(c))
            count = state["opt"][0].count
            value, g = jax.value_and_grad(loss)(state["p"], batch["x"], batch["y"])
            u, opt = tx.update(g, state["opt"], state["p"])
            p = optax.apply_updates(state["p"], u)
            return {"p": p, "opt": opt}, {
                "loss": value,
                "lr": self.schedule(c)(count),
                "val": loss(p, xv, yv),
            }

        return init_fn, step_fn

    def batches(self):
        for x, y in zip(self.x, self.y):
            yield {"x": x, "y": y}

    def grid(self):
        init_fn, step_fn = self.fns()
        x, y = jnp.asarray(self.x), jnp.asarray(self.y)

        def train_fn(c):
            def body(state, xy):
                return step_fn(state, c, {"x": xy[0], "y": xy[1]})

            _, m = jax.lax.scan(body, init_fn(c, None), (x, y))
            return {"loss": m["loss"], "val": m["val"][-1]}

        return jaxlr.sweep.run(train_fn, self.configs, progress=False)

    def halving(self, rank: str):
        init_fn, step_fn = self.fns()
        return jaxlr.sweep.successive_halving(
            init_fn,
            step_fn,
            self.configs,
            self.batches(),
            key=jax.random.key(0),
            rungs=C_RUNGS,
            eta=3,
            metric="val",
            steps_per_call=10,
            progress=False,
            rank=rank,
            planned_lr=self.lr if rank == "predicted" else None,
        )


# -- (a) and (b): the sweep benchmark's and the demo's tasks, unchanged ------------------------
def _bench_task():
    task = bench._Pop(0)

    def halving(rank):
        fresh = bench._Pop(0)  # new bound methods: a cold search
        return jaxlr.sweep.successive_halving(
            fresh._init_fn,
            fresh._step_fn,
            fresh.configs,
            fresh.batches(),
            key=jax.random.key(0),
            rungs=[bench.P_STEPS // 9, bench.P_STEPS // 3, bench.P_STEPS],
            eta=3,
            metric="val",
            steps_per_call=10,
            progress=False,
            rank=rank,
            planned_lr=(lambda c, t: bench._Pop.schedule(c)(t)) if rank == "predicted" else None,
        )

    def grid():
        res = task.grid()
        return res, np.where(res.diverged, np.nan, res.final("val"))

    return grid, halving, "val"


def _demo_task():
    from jaxlr import demo

    task = demo._Task(quick=False)

    def halving(rank):
        fresh = demo._Task(quick=False)
        return jaxlr.sweep.successive_halving(
            fresh.init_fn,
            fresh.step_fn,
            demo._configs(fresh.cfg),
            fresh.batches(),
            key=jax.random.key(0),
            rungs=demo.rungs(fresh.steps, fresh.cfg["unit"]),
            metric="val_loss",
            eta=3,
            steps_per_call=fresh.cfg["unit"],
            divergence_threshold=demo._THRESHOLD,
            labels={"schedule": demo.FAMILIES},
            compiler_options=fresh.cfg["options"],
            progress=False,
            eval_fn=fresh.eval_fn,
            eval_every=fresh.cfg["unit"],
            rank=rank,
            planned_lr=(lambda c, t: fresh.schedule(c)(t)) if rank == "predicted" else None,
        )

    def grid():
        res = demo.sweep(False, task=task, progress=False)
        return res, np.where(res.diverged, np.nan, res.final("val_loss"))

    return grid, halving, "val_loss"


def _mlp3_task():
    task = _Mlp3(0)

    def grid():
        res = task.grid()
        return res, np.where(res.diverged, np.nan, res.final("val"))

    return grid, task.halving, "val"


PROBLEMS = {
    "(a) sweep benchmark": _bench_task,
    "(b) demo": _demo_task,
    "(c) 3-layer MLP, warmup": _mlp3_task,
}


def _timed(fn):
    jax.clear_caches()  # every search cold, the ranking fit's compile included
    t0 = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t0


def measure(name: str) -> dict[str, Any]:
    grid, halving, metric = PROBLEMS[name]()
    (g, g_val), g_s = _timed(grid)
    best = float(np.nanmin(g_val))
    row: dict[str, Any] = {"grid best": best, "grid s": g_s}
    for rank in ("value", "predicted"):
        res, s = _timed(lambda rank=rank: halving(rank))
        final = np.asarray(res.metrics[metric][:, -1], float)
        reached = np.flatnonzero(np.isfinite(final))
        sel = float(np.nanmin(final))
        row[rank] = {
            "best": sel,
            "/grid": sel / best,
            "wall/grid": s / g_s,
            "compile s": float(res.compile_seconds),
            "finalists": reached.tolist(),
            "fallbacks": res.info.get("rank_fallbacks", []),
        }
    row["grid winner"] = int(np.nanargmin(g_val))
    return row


def table(rows: dict[str, dict[str, Any]]) -> str:
    head = (
        "| problem | ranking | best val | / grid best | wall / grid (compile incl.) | "
        "finalists | fits failed per rung |\n|---|---|---|---|---|---|---|"
    )
    lines = [head]
    for name, row in rows.items():
        lines.append(
            f"| {name} | full grid | {row['grid best']:.4f} | 1.000 | 1.00 "
            f"({row['grid s']:.1f} s) | winner {row['grid winner']} | |"
        )
        for rank in ("value", "predicted"):
            r = row[rank]
            lines.append(
                f"| | {rank} | {r['best']:.4f} | {r['/grid']:.3f} | {r['wall/grid']:.2f} | "
                f"{r['finalists']} | {r['fallbacks']} |"
            )
    return "\n".join(lines)


def main(names=None) -> dict[str, Any]:
    jax.jit(lambda x: x + 1)(1.0).block_until_ready()  # JAX's own start-up, outside all
    rows = {name: measure(name) for name in names or PROBLEMS}
    print(table(rows), flush=True)
    return rows


if __name__ == "__main__":
    import sys

    main([n for n in PROBLEMS if any(n.startswith(f"({a})") for a in sys.argv[1:])] or None)
