"""Optuna search in vmapped batches (jaxlr.sweep.optuna_search) vs random search vs the grid.

Task: a small MLP regresses a random teacher network (train / validation split) with AdamW
under warmup-cosine for ``STEPS`` steps; three hyperparameters are searched: ``peak_value``
(log-uniform), ``weight_decay`` (log-uniform) and ``warmup_steps`` (int). Every method gets the
same ``N`` trials; the score is the best validation loss found, over 3 seeds (each seed draws
its own teacher, data and initial weights, and seeds the samplers):

- TPE, batched: ``optuna_search`` with ``TPESampler(constant_liar=True)``, ``K`` trials a round;
- random search: ``N`` members drawn by :func:`jaxlr.sweep.random`, one vmapped run;
- the grid: a ``4 x 4 x 3`` :func:`jaxlr.sweep.grid` over the same ranges, one vmapped run.

Throughput: trials per second of ``optuna_search`` (``K`` a round) vs Optuna's own sequential
loop, ``study.optimize`` with an objective calling the same train function jitted for one trial
(compiled before timing), both with the same sampler, measured side by side (interleaved
repeats, medians), compilation excluded for both; ``optuna_search`` runs each round's members
either vectorized (``vmap``, the default: the way to use an accelerator) or one after another
inside the same compiled program (``vmap_size=1``: on a CPU batched kernels can be slower than
single ones). Run: ``python -m benchmarks.search``.
"""

from __future__ import annotations

import statistics
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax

import jaxlr
import jaxlr.sweep

STEPS, DIM, HIDDEN, TRAIN, VAL = 200, 8, 32, 256, 256
N, K = 48, 8  # trials per method, trials per TPE round
SEEDS = (0, 1, 2)
SPACE = {
    "peak_value": ("log_uniform", 1e-4, 1.0),
    "weight_decay": ("log_uniform", 1e-6, 1.0),
    "warmup_steps": ("int", 0, STEPS // 2),
}
GRID = dict(
    peak_value=np.geomspace(1e-4, 1.0, 4),
    weight_decay=np.geomspace(1e-6, 1.0, 4),
    warmup_steps=np.array([0, STEPS // 4, STEPS // 2]),
)


def make_train_fn(seed: int):
    """One trial: AdamW on an MLP for STEPS full-batch steps; the validation loss at the end."""
    k = jax.random.split(jax.random.key(seed), 5)
    teacher = jax.random.normal(k[0], (DIM, 16)), jax.random.normal(k[1], (16,))
    x = jax.random.normal(k[2], (TRAIN + VAL, DIM))
    y = jnp.tanh(x @ teacher[0]) @ teacher[1] / 4.0
    y = y + 0.1 * jax.random.normal(k[3], y.shape)
    xt, yt, xv, yv = x[:TRAIN], y[:TRAIN], x[TRAIN:], y[TRAIN:]
    ka, kb = jax.random.split(k[4])
    p0 = {
        "w1": jax.random.normal(ka, (DIM, HIDDEN)) / DIM**0.5,
        "b1": jnp.zeros(HIDDEN),
        "w2": jax.random.normal(kb, (HIDDEN, 1)) / HIDDEN**0.5,
        "b2": jnp.zeros(1),
    }

    def mse(p, x, y):
        return jnp.mean((jnp.tanh(x @ p["w1"] + p["b1"]) @ p["w2"] + p["b2"] - y[:, None]) ** 2)

    def train_fn(cfg):
        s = jaxlr.schedules.warmup_cosine(
            peak_value=cfg["peak_value"], warmup_steps=cfg["warmup_steps"], total_steps=STEPS
        )
        tx = optax.adamw(s, weight_decay=cfg["weight_decay"])

        def step(carry, _):
            p, o = carry
            loss, g = jax.value_and_grad(mse)(p, xt, yt)
            u, o = tx.update(g, o, p)
            return (optax.apply_updates(p, u), o), loss

        (p, _), loss = jax.lax.scan(step, (p0, tx.init(p0)), None, length=STEPS)
        return {"loss": loss, "val_loss": mse(p, xv, yv)}

    return train_fn


def _tpe(seed):
    import optuna

    return optuna.samplers.TPESampler(seed=seed, constant_liar=True, n_startup_trials=K)


def best_losses(seed: int) -> dict[str, float]:
    import optuna

    train_fn = make_train_fn(seed)
    study = jaxlr.sweep.optuna_search(
        train_fn, SPACE, num_trials=N, batch_size=K, sampler=_tpe(seed)
    )
    rnd = jaxlr.sweep.run(
        train_fn, jaxlr.sweep.random(N, key=jax.random.key(seed), **SPACE_RANDOM), progress=False
    )
    grid = jaxlr.sweep.run(train_fn, jaxlr.sweep.grid(**GRID), progress=False)
    complete = [t.value for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    return {
        "tpe_batched": min(complete),
        "random": rnd.best()["val_loss"],
        "grid": grid.best()["val_loss"],
    }


# jaxlr.sweep.random draws ints as choices: the same integer range as the Optuna space.
SPACE_RANDOM = {
    "peak_value": SPACE["peak_value"],
    "weight_decay": SPACE["weight_decay"],
    "warmup_steps": np.arange(0, STEPS // 2 + 1),
}


def throughput(seed: int = 0, repeats: int = 3) -> dict[str, float]:
    import optuna

    train_fn = make_train_fn(seed)
    single = jax.jit(train_fn)

    def objective(trial):
        cfg = {
            "peak_value": trial.suggest_float("peak_value", 1e-4, 1.0, log=True),
            "weight_decay": trial.suggest_float("weight_decay", 1e-6, 1.0, log=True),
            "warmup_steps": trial.suggest_int("warmup_steps", 0, STEPS // 2),
        }
        out = single({k: jnp.asarray(v) for k, v in cfg.items()})
        return float(out["val_loss"])

    def sequential(sampler):
        study = optuna.create_study(sampler=sampler)
        study.optimize(objective, n_trials=N)
        return study

    def batched(sampler, vmap_size=None):
        return jaxlr.sweep.optuna_search(
            train_fn, SPACE, num_trials=N, batch_size=K, sampler=sampler, vmap_size=vmap_size
        )

    def looped(sampler):  # the K members of a round one after another, in the same program
        return batched(sampler, vmap_size=1)

    samplers = {"tpe": lambda: _tpe(seed), "random": lambda: optuna.samplers.RandomSampler(seed)}
    # Compile both programs before timing (a short warm-up of each).
    jaxlr.sweep.optuna_search(train_fn, SPACE, num_trials=K, batch_size=K)
    jaxlr.sweep.optuna_search(train_fn, SPACE, num_trials=K, batch_size=K, vmap_size=1)
    single(
        {
            "peak_value": jnp.asarray(1e-3),
            "weight_decay": jnp.asarray(1e-3),
            "warmup_steps": jnp.asarray(10),
        }
    )
    out = {}
    for name, make in samplers.items():
        kinds = {
            "optuna_sequential": sequential,
            "jaxlr_batched": batched,
            "jaxlr_batched_vmap_size_1": looped,
        }
        times = {k: [] for k in kinds}
        for _ in range(repeats):
            for kind, fn in kinds.items():
                t0 = time.perf_counter()
                fn(make())
                times[kind].append(time.perf_counter() - t0)
        med = {k: statistics.median(v) for k, v in times.items()}
        out[name] = {f"{k}_trials_per_s": N / v for k, v in med.items()}
        out[name]["speedup_vmap"] = med["optuna_sequential"] / med["jaxlr_batched"]
        out[name]["speedup_vmap_size_1"] = (
            med["optuna_sequential"] / med["jaxlr_batched_vmap_size_1"]
        )
    return out


def main() -> dict:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    per_seed = {s: best_losses(s) for s in SEEDS}
    methods = ("tpe_batched", "random", "grid")
    print(f"best validation loss after N = {N} trials (TPE: {N // K} rounds of K = {K})")
    print("seed  " + "  ".join(f"{m:>12}" for m in methods))
    for s, r in per_seed.items():
        print(f"{s:>4}  " + "  ".join(f"{r[m]:12.5f}" for m in methods))
    results: dict = {"trials": N, "batch_size": K, "seeds": len(SEEDS)}
    for m in methods:
        v = [per_seed[s][m] for s in SEEDS]
        results[f"best_val_loss.{m}.mean"] = float(np.mean(v))
        results[f"best_val_loss.{m}.per_seed"] = " ".join(f"{x:.5f}" for x in v)
        print(f"mean  {m:>12}: {np.mean(v):.5f}")
    for m in ("random", "grid"):
        wins = sum(per_seed[s]["tpe_batched"] <= per_seed[s][m] for s in SEEDS)
        results[f"tpe_batched_beats_{m}"] = f"{wins}/{len(SEEDS)} seeds"
    tp = throughput()
    for name, r in tp.items():
        print(
            f"{name}: optuna sequential {r['optuna_sequential_trials_per_s']:.1f} trials/s; "
            f"jaxlr batched (K = {K}) vmap {r['jaxlr_batched_trials_per_s']:.1f} trials/s "
            f"(x{r['speedup_vmap']:.2f}), vmap_size=1 "
            f"{r['jaxlr_batched_vmap_size_1_trials_per_s']:.1f} trials/s "
            f"(x{r['speedup_vmap_size_1']:.2f})"
        )
    results["throughput"] = tp
    return results


if __name__ == "__main__":
    main()
