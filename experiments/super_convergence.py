"""Super-convergence: one-cycle vs step decay vs cosine, training budget needed for a target.

Claim (seed; Smith & Topin 2019): the one-cycle policy reaches a given accuracy in a fraction
of the training that step decay or cosine annealing need ("super-convergence"). Measured here:
SGD + momentum 0.9 (Smith's setting; one_cycle also cycles the momentum 0.95 -> 0.85 -> 0.95
with ``one_cycle_momentum``) on a 64-128-10 flax NNX MLP on scikit-learn digits. Each schedule
is sized for a training budget T from 25 to 400 steps (factor ~1.4 apart) and swept over 7 peak
LRs and 3 minibatch orders, all in one vmapped program; for each (schedule, T) the best peak
LR (by mean final test accuracy) is kept, and the "steps needed" for a target accuracy is the
smallest budget T whose final mean test accuracy reaches it.

Run: ``.venv/bin/python -m experiments.super_convergence`` (about a minute on 2 CPU cores).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import jax
import jax.numpy as jnp
import numpy as np
import optax

import jaxlr
from experiments import _common as C

BATCH, WIDTH, SEEDS = 32, 128, 3
BUDGETS = (25, 35, 50, 70, 100, 140, 200, 280, 400)
PEAKS = np.logspace(-2, 0.5, 7)
SCHEDULES = ("one_cycle", "step", "cosine")
TARGETS = (0.95, 0.97, 0.98)


def sweep():
    (xtr, ytr), (xte, yte) = C.digits()
    graphdef, params0 = C.mlp((64, WIDTH, 10))
    longest = max(BUDGETS)
    batches = jnp.stack(
        [C.minibatches(len(ytr), batch=BATCH, steps=longest, seed=s) for s in range(SEEDS)]
    )
    s = jaxlr.schedules

    def loss_on(p, x, y):
        return C.cross_entropy(graphdef, p, x, y)

    def train_fn(cfg):
        total, peak = cfg["budget"], cfg["peak_value"]
        lr = s.select(
            cfg["schedule"],
            [
                s.one_cycle(peak_value=peak, total_steps=total),
                s.step(init_value=peak, period_steps=total / 3.0, decay_rate=0.1),
                s.cosine(init_value=peak, total_steps=total),
            ],
        )
        mom = s.select(
            cfg["schedule"],
            [
                s.one_cycle_momentum(total_steps=total, base_momentum=0.85, max_momentum=0.95),
                s.constant(value=0.9),
                s.constant(value=0.9),
            ],
        )
        # inject_hyperparams evaluates both schedules at its own step count.
        tx = optax.inject_hyperparams(optax.sgd)(learning_rate=lr, momentum=mom)

        def step(carry, idx_t):
            p, o = carry
            idx, t = idx_t
            loss, g = jax.value_and_grad(loss_on)(p, xtr[idx], ytr[idx])
            u, o = tx.update(g, o, p)
            # Past its budget a member stops (its schedule is over): freeze the parameters.
            live = t < total
            p = jax.tree.map(lambda a, b: jnp.where(live, b, a), p, optax.apply_updates(p, u))
            return (p, o), loss

        (p, _), loss = jax.lax.scan(
            step, (params0, tx.init(params0)), (batches[cfg["seed"]], jnp.arange(longest))
        )
        return dict(
            loss=loss,
            test_loss=loss_on(p, xte, yte),
            test_accuracy=C.accuracy(graphdef, p, xte, yte),
        )

    configs = jaxlr.sweep.grid(
        schedule=np.arange(len(SCHEDULES)),
        budget=np.asarray(BUDGETS, float),
        peak_value=PEAKS,
        seed=np.arange(SEEDS),
    )
    return jaxlr.sweep.run(
        train_fn,
        configs,
        progress=False,
        divergence_threshold=3 * float(np.log(10.0)),
        labels={"schedule": SCHEDULES},
    )


def main():
    started = time.time()
    res = sweep()
    shape = (len(SCHEDULES), len(BUDGETS), len(PEAKS), SEEDS)
    acc = np.where(res.diverged, 0.0, res.final("test_accuracy")).reshape(shape)
    mean, sd = acc.mean(-1), acc.std(-1)
    best = mean.argmax(-1)  # best peak per (schedule, budget)
    best_acc = np.take_along_axis(mean, best[..., None], -1)[..., 0]
    best_sd = np.take_along_axis(sd, best[..., None], -1)[..., 0]
    rows, per = [], {}
    for i, name in enumerate(SCHEDULES):
        needed = {}
        for target in TARGETS:
            hit = [b for b, a in zip(BUDGETS, best_acc[i], strict=True) if a >= target]
            needed[str(target)] = hit[0] if hit else None
        per[name] = dict(
            best_accuracy=best_acc[i],
            accuracy_sd=best_sd[i],
            best_peak=PEAKS[best[i]],
            steps_needed=needed,
        )
        rows.append(
            [
                name,
                *[
                    f"{a:.3f} ± {d:.3f} (LR {PEAKS[j]:.2g})"
                    for a, d, j in zip(best_acc[i], best_sd[i], best[i], strict=True)
                ],
                *[needed[str(t)] or f"> {BUDGETS[-1]}" for t in TARGETS],
            ]
        )
    table = C.md_table(
        ["schedule", *[f"T={b}" for b in BUDGETS], *[f"steps to {t:.0%}" for t in TARGETS]], rows
    )

    fig, ax = C.figure(2)
    for i, name in enumerate(SCHEDULES):
        ax[0].errorbar(
            BUDGETS, best_acc[i], yerr=best_sd[i], marker="o", ms=4, capsize=3, label=name
        )
        j = BUDGETS.index(100)
        ax[1].plot(PEAKS, mean[i, j], marker="o", ms=3, label=name)
    for t in TARGETS:
        ax[0].axhline(t, color="k", ls=":", lw=0.8)
    ax[0].set(
        xscale="log",
        xlabel="training budget T (steps)",
        ylabel="final test accuracy",
        title="best peak LR per budget (mean ± sd of 3 orders)",
    )
    ax[1].set(xscale="log", xlabel="peak LR", ylabel="final test accuracy", title="T = 100")
    ax[0].legend()
    ax[1].legend()

    oc = per["one_cycle"]["steps_needed"]
    others = [per[s]["steps_needed"] for s in SCHEDULES[1:]]
    big = BUDGETS[-1] * 2

    def n(v):
        return big if v is None else v

    faster = [all(n(oc[str(t)]) < n(o[str(t)]) for o in others) for t in TARGETS]
    not_slower = [all(n(oc[str(t)]) <= n(o[str(t)]) for o in others) for t in TARGETS]
    if all(faster):
        verdict = "reproduced"
    elif any(faster) or any(not_slower):
        verdict = (
            "partly reproduced: one-cycle is strictly fastest to "
            + (
                ", ".join(f"{t:.0%}" for t, f in zip(TARGETS, faster, strict=True) if f)
                or "no target"
            )
            + "; not strictly fastest to "
            + ", ".join(f"{t:.0%}" for t, f in zip(TARGETS, faster, strict=True) if not f)
        )
    else:
        verdict = "did NOT reproduce"
    lines = [
        f"- to {t:.0%}: "
        + ", ".join(
            f"{s} {per[s]['steps_needed'][str(t)] or f'> {BUDGETS[-1]}'}" for s in SCHEDULES
        )
        for t in TARGETS
    ]
    ratios = [n(o[str(t)]) / n(oc[str(t)]) for t in TARGETS for o in others]
    lines.append(
        f"- speed-up of one-cycle over the others, steps needed: "
        f"{min(ratios):.2f}x to {max(ratios):.2f}x (Smith & Topin report 5-10x on "
        f"CIFAR-10 ResNets); at equal budgets the schedules differ by about 1-2 "
        f"standard deviations of the orders, and one-cycle has the best accuracy at "
        f"{sum(best_acc[0] >= best_acc[1:].max(0))}/{len(BUDGETS)} budgets"
    )
    summary = f"""# Super-convergence: one-cycle vs step decay vs cosine (digits MLP, SGD+momentum)

{len(res)} members ({len(SCHEDULES)} schedules x {len(BUDGETS)} budgets x {len(PEAKS)} peak LRs
x {SEEDS} minibatch orders), one vmapped program: 64-{WIDTH}-10 MLP, batch {BATCH}, each
schedule sized for its budget T; step decay divides by 10 at T/3 and 2T/3, cosine anneals to 0,
one_cycle is PyTorch's OneCycleLR (30% rise from peak/25, cosine down to peak/25e4) with its
momentum cycle 0.95 -> 0.85 -> 0.95 (the others keep momentum 0.9). Cells: final test accuracy
(360 images) at the best peak LR for that schedule and budget, mean ± sd over the orders.

{table}

**Claim**: one-cycle reaches a target accuracy with fewer training steps than step decay or
cosine. **Result: {verdict}.**

{chr(10).join(lines)}
"""
    record = dict(
        config=dict(
            batch=BATCH,
            width=WIDTH,
            seeds=SEEDS,
            budgets=BUDGETS,
            peaks=PEAKS,
            schedules=SCHEDULES,
            targets=TARGETS,
        ),
        per_schedule=per,
        mean_accuracy=mean,
        sd_accuracy=sd,
        verdict=verdict,
        **C.timing(res),
    )
    C.write("super_convergence", summary=summary, record=record, fig=fig, started=started)


if __name__ == "__main__":
    main()
