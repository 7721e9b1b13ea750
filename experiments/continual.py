"""Continual learning: re-warmed cosine, constant, per-task WSD and the infinite LR schedule.

Claim (seed): static data suits decaying schedules (StepLR and the like), while continual
learning needs "Infinite LR / decay-free" control, which "keeps the LR from falling too low and
so keeps a constant power of exploration, integrating new knowledge while suppressing
forgetting".

Measured here: a stream of 3 tasks, scikit-learn's 8x8 digits (offline), then the digits with
their 64 pixels permuted, then another permutation (a shared 10-way head: domain-incremental
learning). A 64-128-10 ReLU MLP (flax NNX) trains on them in order, one optimizer state for the
whole stream (SGD, momentum 0.9, batch 32, ``STEPS_PER_TASK`` steps per task). Four schedules,
all at the same peak LR:

- ``cosine (re-warmed)``: warmup + cosine to 0 within each task, restarted at every task
  (``jaxlr.schedules.join`` of one ``warmup_cosine`` per task);
- ``constant``: one warmup at the start of the stream, then the peak LR for ever;
- ``wsd (per task)``: warmup-stable-decay within each task, restarted at every task;
- ``infinite``: ``jaxlr.schedules.infinite``: warmup, cosine cooldown to a third of the peak
  over the first half of task 1, constant through the stream, a linear anneal to 0 over the last
  20% of the last task (the anneal is for the released model).

One vmapped sweep (``jaxlr.sweep.run``) trains 4 schedules x 8 peak LRs x 3 seeds (minibatch
orders and task permutations); the schedule is picked by a traced index, so everything compiles
once. Every 50 steps the test accuracy on all three tasks is recorded. Reported, at each
schedule's best peak (by the final accuracy averaged over the tasks): the final accuracy on
every task, forgetting (for the first two tasks, the best accuracy they had at a task end minus
their final accuracy), the accuracy on the newest task at the end (plasticity) and the mean
accuracy on each task right after learning it; and, since a lower LR trades plasticity for less
forgetting, the least forgetting of each schedule at a common plasticity floor.

Run: ``.venv/bin/python -m experiments.continual`` (under a minute on 2 CPU cores). Writes
experiments/results/continual.{png,json,md}.
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

TASKS, STEPS_PER_TASK, BATCH, WIDTH, SEEDS, EVERY = 3, 500, 32, 128, 3, 50
WARMUP, DECAY_FRACTION = 25, 0.2
PEAKS = np.logspace(-3.5, 0.0, 8)
PLASTICITY_FLOOR = 0.95  # newest-task accuracy at which forgetting is compared
NAMES = ("cosine (re-warmed)", "constant", "wsd (per task)", "infinite")


def schedules(peak):
    """The four schedules at one (traced) peak LR, as functions of the global step."""
    s, n = jaxlr.schedules, STEPS_PER_TASK
    per_task = [n * k for k in range(1, TASKS)]
    cosine = s.warmup_cosine(peak_value=peak, warmup_steps=WARMUP, total_steps=n)
    wsd = s.wsd(peak_value=peak, total_steps=n, warmup_steps=WARMUP, decay_steps=DECAY_FRACTION * n)
    return (
        s.join([cosine] * TASKS, boundaries=per_task),
        s.warmup(s.constant(value=peak), warmup_steps=WARMUP),
        s.join([wsd] * TASKS, boundaries=per_task),
        s.infinite(
            peak_value=peak,
            constant_value=peak / 3.0,
            total_steps=TASKS * n,
            warmup_steps=WARMUP,
            cooldown_steps=n // 2 - WARMUP,
            decay_steps=DECAY_FRACTION * n,
        ),
    )


def task_data():
    """Train / test inputs of every seed's tasks, ``[SEEDS, TASKS, n, 64]``, and the labels.

    Task 1 is the digits themselves; each seed draws its own two pixel permutations.
    """
    (xtr, ytr), (xte, yte) = C.digits()

    def perms(seed):
        rng = np.random.default_rng(1000 + seed)
        return [np.arange(64)] + [rng.permutation(64) for _ in range(TASKS - 1)]

    stack = lambda x: jnp.stack([jnp.stack([x[:, p] for p in perms(s)]) for s in range(SEEDS)])
    return stack(xtr), ytr, stack(xte), yte


def sweep():
    xtr, ytr, xte, yte = task_data()
    graphdef, params0 = C.mlp((64, WIDTH, 10))
    total = TASKS * STEPS_PER_TASK
    batches = jnp.stack(
        [C.minibatches(ytr.shape[0], batch=BATCH, steps=total, seed=s) for s in range(SEEDS)]
    )

    def loss_on(p, x, y):
        return C.cross_entropy(graphdef, p, x, y)

    def train_fn(cfg):
        tasks_tr, tasks_te = xtr[cfg["seed"]], xte[cfg["seed"]]

        def accuracies(p):  # [TASKS] test accuracy on every task
            return jax.vmap(lambda x: C.accuracy(graphdef, p, x, yte))(tasks_te)

        lr = C.switch(cfg["schedule"], schedules(cfg["peak_value"]))
        tx = optax.sgd(lr, momentum=0.9)
        idx = batches[cfg["seed"]].reshape(total // EVERY, EVERY, BATCH)
        first = jnp.arange(0, total, EVERY)

        def step(carry, inp):
            p, o = carry
            t, b = inp
            x = tasks_tr[t // STEPS_PER_TASK][b]
            loss, g = jax.value_and_grad(loss_on)(p, x, ytr[b])
            u, o = tx.update(g, o, p)
            return (optax.apply_updates(p, u), o), loss

        def chunk(carry, inp):
            t0, b = inp
            carry, losses = jax.lax.scan(step, carry, (t0 + jnp.arange(EVERY), b))
            return carry, (losses, accuracies(carry[0]))

        _, (losses, acc) = jax.lax.scan(chunk, (params0, tx.init(params0)), (first, idx))
        return dict(
            loss=losses.reshape(-1),
            accuracy=acc,
            lr=jax.vmap(lr)(jnp.arange(total, dtype=jnp.float32)),
        )

    configs = jaxlr.sweep.grid(
        schedule=np.arange(len(NAMES)), peak_value=PEAKS, seed=np.arange(SEEDS)
    )
    return jaxlr.sweep.run(
        train_fn,
        configs,
        progress=False,
        labels={"schedule": NAMES},
        divergence_threshold=3 * float(np.log(10.0)),
    )


def task_end_accuracy(acc):
    """``[..., TASKS(after), TASKS(on)]``: accuracy on each task after training each task."""
    ends = [(k + 1) * STEPS_PER_TASK // EVERY - 1 for k in range(TASKS)]
    return acc[..., ends, :]


def summarize(a):
    """Continual-learning metrics of accuracy matrices ``a[..., after, on]`` (NaN-aware)."""
    final = a[..., -1, :]
    # best accuracy a task ever had (measured at task ends from its own) minus its final one
    best = np.stack([np.max(a[..., j:, j], axis=-1) for j in range(TASKS - 1)], axis=-1)
    return dict(
        final=final,
        average=final.mean(-1),
        forgetting=(best - final[..., : TASKS - 1]).mean(-1),
        newest=final[..., -1],
        learned=np.stack([a[..., k, k] for k in range(TASKS)], -1).mean(-1),
    )


def mean_sd(x):
    return f"{np.mean(x):.3f} ± {np.std(x):.3f}"


def main():
    started = time.time()
    res = sweep()
    shape = (len(NAMES), len(PEAKS), SEEDS)
    acc = res.metric("accuracy").reshape(*shape, -1, TASKS)  # [schedule, peak, seed, time, task]
    acc = np.where(res.diverged.reshape(shape)[..., None, None], np.nan, acc)
    mat = task_end_accuracy(acc)
    m = summarize(mat)
    avg = m["average"].mean(-1)  # [schedule, peak], over seeds (NaN if any seed diverged)
    forget, newest = m["forgetting"].mean(-1), m["newest"].mean(-1)

    rows, per = [], {}
    for i, name in enumerate(NAMES):
        b = int(np.nanargmax(avg[i]))
        pick = {k: v[i, b] for k, v in m.items()}  # [seed, ...]
        plastic = np.where(newest[i] >= PLASTICITY_FLOOR, forget[i], np.nan)
        f = int(np.nanargmin(plastic)) if np.isfinite(plastic).any() else None
        per[name] = dict(
            best_peak=PEAKS[b],
            accuracy_matrix=mat[i, b].mean(0),
            **{k: v.mean(0) for k, v in pick.items()},
            **{f"{k}_sd": v.std(0) for k, v in pick.items()},
            average_by_peak=avg[i],
            forgetting_by_peak=forget[i],
            newest_by_peak=newest[i],
            floor_index=f,
            floor_peak=None if f is None else PEAKS[f],
            floor_forgetting=None if f is None else forget[i, f],
            floor_forgetting_sd=None if f is None else m["forgetting"][i, f].std(),
            floor_average=None if f is None else avg[i, f],
        )
        rows.append(
            [name, f"{PEAKS[b]:.3g}"]
            + [mean_sd(pick["final"][:, j]) for j in range(TASKS)]
            + [
                mean_sd(pick["average"]),
                mean_sd(pick["forgetting"]),
                mean_sd(pick["newest"]),
                mean_sd(pick["learned"]),
            ]
        )
    table = C.md_table(
        ["schedule", "best peak LR"]
        + [f"final acc task {j + 1}" for j in range(TASKS)]
        + [
            "final acc (mean)",
            "forgetting",
            "newest task (plasticity)",
            "acc right after learning",
        ],
        rows,
    )

    def fmt(v, sd=None):
        return "n/a" if v is None else (f"{v:.3f}" if sd is None else f"{v:.3f} ± {sd:.3f}")

    floor_rows = [
        [
            n,
            "none" if per[n]["floor_peak"] is None else f"{per[n]['floor_peak']:.3g}",
            fmt(per[n]["floor_forgetting"], per[n]["floor_forgetting_sd"]),
            fmt(per[n]["floor_average"]),
        ]
        for n in NAMES
    ]
    floor_table = C.md_table(["schedule", "peak LR", "forgetting", "final acc (mean)"], floor_rows)

    # verdict: infinite vs the two decaying schedules, paired by seed (a seed fixes the task
    # permutations and the minibatch order for every schedule, and the permutations move all
    # schedules together); a difference counts when its mean exceeds twice its seed-to-seed
    # standard deviation
    decaying = ("cosine (re-warmed)", "wsd (per task)")
    best = {n: int(np.nanargmax(avg[i])) for i, n in enumerate(NAMES)}
    floor = {n: per[n]["floor_index"] for n in NAMES}  # None: the floor was never reached

    def paired(metric, n, at):
        i, j = NAMES.index("infinite"), NAMES.index(n)
        if at["infinite"] is None or at[n] is None:
            return float("nan"), float("nan")  # compares false: never counts as a difference
        d = m[metric][i, at["infinite"]] - m[metric][j, at[n]]  # [seed]
        return float(d.mean()), float(d.std())

    diffs = {
        n: dict(
            average=paired("average", n, best),
            forgetting=paired("forgetting", n, best),
            newest=paired("newest", n, best),
            floor_forgetting=paired("forgetting", n, floor),
        )
        for n in NAMES
    }
    less = lambda mean_sd: mean_sd[0] < -2 * mean_sd[1]
    not_worse = lambda mean_sd: mean_sd[0] >= -2 * mean_sd[1]
    less_forgetting = all(less(diffs[n]["forgetting"]) for n in decaying)
    newest_ok = all(not_worse(diffs[n]["newest"]) for n in decaying)
    floor_ok = all(less(diffs[n]["floor_forgetting"]) for n in decaying)
    avg_best = max(NAMES, key=lambda n: per[n]["average"])
    avg_ok = all(diffs[n]["average"][0] > 2 * diffs[n]["average"][1] for n in decaying)
    if avg_ok and less_forgetting and newest_ok and floor_ok:
        verdict = "held"
    elif avg_ok or less_forgetting or floor_ok:
        verdict = "partly held"
    else:
        verdict = "did not hold"

    def versus(n):
        d = diffs[n]
        words = [
            (
                "forgot less"
                if less(d["forgetting"])
                else "forgot more"
                if d["forgetting"][0] > 2 * d["forgetting"][1]
                else "forgot about as much"
            ),
            (
                "learned the newest task worse"
                if not not_worse(d["newest"])
                else "learned the newest task as well or better"
            ),
            (
                "forgot less at equal plasticity"
                if less(d["floor_forgetting"])
                else "forgot more at equal plasticity"
                if d["floor_forgetting"][0] > 2 * d["floor_forgetting"][1]
                else "forgot about as much at equal plasticity"
            ),
        ]
        return f"than {n} it {', '.join(words)}"

    verdict += (
        ": the infinite schedule ended with the "
        + ("best" if avg_best == "infinite" else "not the best")
        + " accuracy averaged over the tasks ("
        + (
            "higher than both decaying schedules, paired"
            if avg_ok
            else "not higher than both decaying schedules"
        )
        + "); "
        + "; ".join(versus(n) for n in decaying)
    )
    div = res.diverged.reshape(shape)

    def first_bad(i):
        bad = np.flatnonzero(div[i].any(-1))
        return f"{PEAKS[bad[0]]:.3g}" if bad.size else "none"

    diverged = ", ".join(
        f"{n} {int(div[i].sum())} (from {first_bad(i)})" for i, n in enumerate(NAMES)
    )
    diff_rows = [
        [n]
        + [
            f"{diffs[n][k][0]:+.3f} ± {diffs[n][k][1]:.3f}"
            for k in ("average", "forgetting", "newest", "floor_forgetting")
        ]
        for n in NAMES
        if n != "infinite"
    ]
    diff_table = C.md_table(
        [
            "infinite minus",
            "final acc, mean (best peaks)",
            "forgetting (best peaks)",
            "newest task (best peaks)",
            f"forgetting (newest >= {PLASTICITY_FLOOR})",
        ],
        diff_rows,
    )

    fig, ax = C.figure(4, width=4.5)
    for i, name in enumerate(NAMES):
        ax[0].plot(PEAKS, avg[i], marker="o", ms=3, label=name)
        ax[1].plot(newest[i], forget[i], marker="o", ms=3, label=name)
    ax[0].set(
        xscale="log",
        xlabel="peak LR",
        ylabel="final test accuracy (mean over tasks)",
        title="after the stream, by peak LR",
    )
    ax[1].axvline(PLASTICITY_FLOOR, color="k", lw=0.5, ls="--")
    ax[1].set(
        xlabel="final accuracy on the newest task",
        ylabel="forgetting",
        title="forgetting vs plasticity (one point per peak)",
    )
    ref = int(np.nanargmax(avg[NAMES.index("infinite")]))
    lr = res.metric("lr").reshape(*shape, -1)
    for i, name in enumerate(NAMES):
        ax[2].plot(np.arange(lr.shape[-1]), lr[i, ref, 0], label=name, lw=1)
    ax[2].set(xlabel="step", ylabel="LR", title=f"the schedules at peak {PEAKS[ref]:.3g}")
    ts = (np.arange(acc.shape[3]) + 1) * EVERY
    for i, name in enumerate(NAMES):
        ax[3].plot(ts, np.nanmean(acc[i, int(np.nanargmax(avg[i])), :, :, 0], 0), label=name, lw=1)
    ax[3].set(
        xlabel="step",
        ylabel="test accuracy on task 1",
        title="task 1 through the stream (best peaks)",
    )
    for k in range(1, TASKS):
        for a in ax[2:]:
            a.axvline(k * STEPS_PER_TASK, color="k", lw=0.5, ls=":")
    for a in ax:
        a.legend(fontsize=7)

    summary = f"""# Continual learning: re-warmed cosine, constant, per-task WSD, infinite LR

A stream of {TASKS} tasks (scikit-learn's digits, then two pixel permutations of them; 1437
train / 360 test images each; each seed draws its own permutations), {STEPS_PER_TASK} steps per
task, one 64-{WIDTH}-10 ReLU MLP and one SGD (momentum 0.9, batch {BATCH}) state for the whole
stream. {len(res)} members ({len(NAMES)} schedules x {len(PEAKS)} peak LRs from
{PEAKS[0]:.3g} to {PEAKS[-1]:.3g} x {SEEDS} seeds) in one vmapped program. Every schedule
warms up over {WARMUP} steps; re-warmed cosine and per-task WSD (decay over the last
{int(DECAY_FRACTION * 100)}% of each task) restart at every task; the infinite schedule cools
down to a third of the peak over the first half of task 1, holds it, and anneals to 0 over the
last {int(DECAY_FRACTION * 100)}% of the last task. Test accuracies, mean ± standard deviation
over the {SEEDS} seeds, at each schedule's best peak LR (by the final accuracy averaged over the
tasks). Forgetting: for tasks 1 and 2, the best accuracy measured at a task end minus the final
accuracy (lower is better). Newest task: the final accuracy on task {TASKS} (plasticity). Acc
right after learning: the mean over tasks of the accuracy on task k at the end of task k.

{table}

A lower peak LR forgets less but learns each task less (second panel), so the best-peak rows
mix the schedule with the LR. At equal plasticity, the least forgetting among the peaks whose
newest-task accuracy is at least {PLASTICITY_FLOOR}:

{floor_table}

**Claim** (seed): continual learning calls for an infinite / decay-free LR, which keeps the LR
from falling too low and so integrates new tasks while forgetting less. **Result: {verdict}.**

The infinite schedule minus each other schedule, paired by seed (mean ± standard deviation
over the {SEEDS} seeds; positive accuracy and negative forgetting differences favour the
infinite schedule; a difference counts when its mean exceeds twice its standard deviation):

{diff_table}

Best final accuracy averaged over the tasks: {avg_best} ({per[avg_best]["average"]:.3f}).
Diverged members (of {len(PEAKS) * SEEDS}) per schedule, with the lowest peak LR at which one
did: {diverged}. On the forgetting-vs-plasticity plane (second panel) the four
schedules lie close to one trade-off curve: a lower LR forgets less and learns less. The
seed-to-seed spread of the absolute accuracies (up to ±0.12) comes from the task permutations,
which move every schedule together; the paired differences remove it. Scale: a 64-{WIDTH}-10
MLP and {STEPS_PER_TASK}-step tasks on CPU: this tests the direction of the effect, not its
size at LLM scale (Ibrahim et al. 2024).
"""
    record = dict(
        config=dict(
            tasks=TASKS,
            steps_per_task=STEPS_PER_TASK,
            batch=BATCH,
            width=WIDTH,
            seeds=SEEDS,
            peaks=PEAKS,
            schedules=NAMES,
            warmup_steps=WARMUP,
            decay_fraction=DECAY_FRACTION,
            eval_every=EVERY,
            plasticity_floor=PLASTICITY_FLOOR,
            optimizer="sgd momentum 0.9",
        ),
        per_schedule=per,
        average_by_schedule_and_peak=avg,
        accuracy_curves_best_peak={
            n: np.nanmean(acc[i, int(np.nanargmax(avg[i]))], 0) for i, n in enumerate(NAMES)
        },
        diverged=res.diverged.reshape(shape),
        verdict=verdict,
        paired_differences=diffs,
        **C.timing(res),
    )
    C.write("continual", summary=summary, record=record, fig=fig, started=started)


if __name__ == "__main__":
    main()
