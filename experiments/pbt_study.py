"""Why does PBT lose to an equal-compute grid on the demo and the digits MLP? A small ablation.

PBT (``jaxlr.sweep.pbt``) starts from the grid's own members and trains the same member-steps,
so a slot that is never replaced trains exactly as in the grid: PBT can lose to the grid's best
member only if an exploit overwrites that member (or every lineage that would have beaten it)
with a copy of a member that looked better *at that step*. The study measures, per task, seed
and PBT setting: the best final validation loss of PBT and of the grid, and whether (and at
which step) the grid's final best member was overwritten.

Tasks (each with the grid it is compared with, equal member-steps):

- ``benchmark``: ``benchmarks/sweep.py``'s population problem (a random-teacher MLP, warmup-cosine
  over 9 peaks x 3 warmups, K = 27, 270 steps, interval 30, validation loss every step);
- ``digits``: ``experiments/pbt_schedule.py``'s 64-64-10 MLP (warmup-cosine, 6 peaks x 3
  warmups, K = 18, 300 steps, interval 30, validation loss at the end of each interval);
- ``demo``: ``make demo``'s population (6 schedule families x 9 peaks x 2 warmups, K = 108,
  600 steps, interval 25, validation loss every 25 steps), only the PBT key varies with the
  seed.

Settings: Ray Tune's PBT defaults (quantile 0.25, resample probability 0.25, factors 0.8 / 1.2;
``jaxlr.sweep.pbt``'s defaults until this study), Jaderberg et al. 2017's truncation selection
(bottom / top 20%, perturb only), a 3x longer ready interval, a smaller truncation fraction (1/8,
``jaxlr.sweep.pbt``'s default since), and ranking by the noisy minibatch loss instead of the
validation loss. Every member is judged by its final validation loss (whatever PBT ranked by).

Run: ``.venv/bin/python -m experiments.pbt_study`` (``--quick``: one seed, benchmark only;
``--render``: rewrite the summary from ``results/pbt_study.json`` without training;
``--ranking``: PBT at its default ranked by value vs by prediction, ``rank="predicted"``, into
``results/pbt_ranking.*``).
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import jax
import numpy as np

import jaxlr
from experiments import _common as C

SEEDS = (0, 1, 2)
RAY = {"fraction": 0.25, "resample_probability": 0.25, "perturb": (0.8, 1.2)}
SETTINGS = {
    "Ray Tune defaults (f=1/4, p=0.25, x0.8/1.2)": RAY,
    "Jaderberg (f=0.2, p=0, x0.8/1.2)": {**RAY, "fraction": 0.2, "resample_probability": 0.0},
    "f=1/4, 3x longer interval": {**RAY, "interval_x": 3},
    "f=1/8 (jaxlr's default)": {**RAY, "fraction": 0.125},
    "f=1/4, rank by minibatch loss": {**RAY, "metric": "loss"},
}


class Problem:
    """One task: ``grid()`` and ``pbt(seed, **setting)`` on the same members and batches."""

    def __init__(
        self,
        name,
        init_fn,
        step_fn,
        configs,
        batches,
        steps,
        interval,
        metric,
        space,
        planned,
        **extra,
    ):
        self.name, self.init_fn, self.step_fn, self.configs = name, init_fn, step_fn, configs
        self.batches, self.steps, self.interval = batches, steps, interval
        self.metric, self.space, self.extra = metric, space, extra
        self.planned = planned  # (config, step) -> LR: what rank="predicted" needs

    def grid(self, seed):
        pop = jaxlr.sweep.Population(
            self.init_fn,
            self.step_fn,
            self.configs,
            key=jax.random.key(seed),
            progress=False,
            **self.extra,
        )
        return pop.train(self.batches(seed), self.steps, steps_per_call=self.interval).result()

    def pbt(self, seed, *, interval_x=1, metric=None, **kwargs):
        if kwargs.get("rank") == "predicted":
            kwargs["planned_lr"] = self.planned
        return jaxlr.sweep.pbt(
            self.init_fn,
            self.step_fn,
            self.configs,
            self.batches(seed),
            key=jax.random.key(seed),
            num_steps=self.steps,
            interval=self.interval * interval_x,
            metric=metric or self.metric,
            space=self.space,
            progress=False,
            **self.extra,
            **kwargs,
        )


def benchmark():
    """Seed -> the benchmark's problem on that seed's data and initialization."""
    from benchmarks import sweep as B

    def make(seed):
        t = B._Pop(seed)
        return Problem(
            "benchmark (teacher MLP)",
            t.init_fn,
            t.step_fn,
            t.configs,
            lambda seed: t.batches(),
            B.P_STEPS,
            B.P_STEPS // 9,
            "val",
            {"peak_value": ("log_uniform", B.P_PEAKS[0], B.P_PEAKS[-1])},
            lambda c, step: B._Pop.schedule(c)(step),
        )

    return make


def digits():
    from experiments import pbt_schedule as P

    t = P.digits_task()
    prob = Problem(
        "digits MLP",
        t.init_fn,
        t.step_fn,
        t.configs,
        t.batches,
        t.steps,
        t.interval,
        "val",
        {
            "peak_value": ("log_uniform", t.peaks[0], t.peaks[-1]),
            "warmup_steps": ("uniform", 0.0, t.steps / 3),
        },
        t.lr,
    )
    return lambda seed: prob


def demo():
    from jaxlr import demo as D

    t = D._Task(False)
    peaks = t.cfg["peaks"]
    prob = Problem(
        "demo (6 families)",
        t.init_fn,
        t.step_fn,
        D._configs(t.cfg),
        lambda seed: t.batches(),
        t.steps,
        t.cfg["every"],
        "val_loss",
        {"peak_value": ("log_uniform", min(peaks), max(peaks))},
        lambda c, step: t.schedule(c)(step),
        divergence_threshold=D._THRESHOLD,
        eval_fn=t.eval_fn,
        eval_every=t.cfg["every"],
    )
    return lambda seed: prob


def final_val(res, metric):
    """Each slot's final validation loss (NaN where the member diverged)."""
    v = np.asarray(res.metrics[metric][:, -1], float)
    return np.where(np.asarray(res.diverged), np.nan, v)


def study(make, seeds, settings):
    """Per seed: the grid, then PBT under every setting; the numbers of each run."""
    runs = []
    for seed in seeds:
        prob = make(seed)
        val = "val_loss" if prob.metric == "val_loss" else "val"
        t0 = time.perf_counter()
        grid = prob.grid(seed)
        g = final_val(grid, val)
        best = int(np.nanargmin(g))
        runs.append(
            dict(
                task=prob.name,
                seed=seed,
                setting="grid",
                best=float(g[best]),
                member=best,
                seconds=time.perf_counter() - t0,
            )
        )
        for name, setting in settings.items():
            t0 = time.perf_counter()
            res = prob.pbt(seed, **setting)
            p = final_val(res, val)
            moved = np.flatnonzero(np.asarray(res.lineage)[:, best] != best)
            founder = int(res.ancestors(int(np.nanargmin(p)))[0])
            runs.append(
                dict(
                    task=prob.name,
                    seed=seed,
                    setting=name,
                    best=float(np.nanmin(p)),
                    grid_best=float(g[best]),
                    # the step at which the grid's final best member's slot was overwritten
                    overwritten=int(moved[0]) + 1 if len(moved) else None,
                    founder=founder,
                    founder_grid_rank=int(
                        np.argsort(np.argsort(np.where(np.isnan(g), np.inf, g)))[founder]
                    ),
                    lr_path=res.lr_path(int(np.nanargmin(p))) if seed == seeds[0] else None,
                    # rank="predicted": the slots ranked by value at each exploit (fit unusable)
                    fallbacks=res.info.get("rank_fallbacks"),
                    seconds=time.perf_counter() - t0,
                )
            )
            r = runs[-1]
            print(
                f"{prob.name} seed {seed} {name}: PBT {r['best']:.5f} grid {r['grid_best']:.5f} "
                f"overwritten at {r['overwritten']} ({r['seconds']:.0f} s)",
                flush=True,
            )
    return runs


# ``--ranking``: PBT at its default ranked by the validation loss now vs by each slot's
# predicted final validation loss (``rank="predicted"``), the same tasks and seeds.
RANKING = {
    "f=1/8, rank by value (default)": {"fraction": 0.125},
    "f=1/8, rank by prediction": {"fraction": 0.125, "rank": "predicted"},
}


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    quick = "--quick" in argv
    name, settings, title, findings = "pbt_study", SETTINGS, TITLE, FINDINGS
    if "--ranking" in argv:
        name, settings, title, findings = "pbt_ranking", RANKING, TITLE_RANKING, FINDINGS_RANKING
    started = time.time()
    tasks = [benchmark] if quick else [benchmark, digits, demo]
    seeds = SEEDS[:1] if quick else SEEDS
    if "--render" in argv:  # rewrite the summary from the recorded runs (no training)
        record = json.loads((C.RESULTS / f"{name}.json").read_text())
        seeds, runs, recorded = tuple(record["seeds"]), record["runs"], record["seconds"]
    else:
        recorded = None
        runs = []
        for task in tasks:
            runs += study(task(), seeds, settings)
    rows = []
    for task in dict.fromkeys(r["task"] for r in runs):
        for setting in settings:
            rs = [r for r in runs if r["task"] == task and r["setting"] == setting]
            if not rs:
                continue
            ratios = [r["best"] / r["grid_best"] for r in rs]
            over = [r["overwritten"] for r in rs if r["overwritten"] is not None]
            rows.append(
                [
                    task,
                    setting,
                    f"{sum(r['best'] < r['grid_best'] for r in rs)}/{len(rs)}",
                    " ".join(f"{x:.3f}" for x in ratios),
                    f"{len(over)}/{len(rs)}"
                    + (f" (steps {', '.join(map(str, over))})" if over else ""),
                    " ".join(str(r["founder_grid_rank"]) for r in rs),
                ]
            )
    table = C.md_table(
        [
            "task",
            "PBT setting",
            "PBT beat the grid's best (seeds)",
            "PBT / grid best val, per seed",
            "grid's best member overwritten (seeds)",
            "PBT winner's founder: grid rank, per seed",
        ],
        rows,
    )
    totals = []
    for setting in settings:
        rs = [r for r in runs if r["setting"] == setting]
        won = sum(r["best"] < r["grid_best"] for r in rs)
        kept = sum(r["overwritten"] is None for r in rs)
        lost = [r for r in rs if r["best"] > r["grid_best"]]
        hit = sum(r["overwritten"] is not None for r in lost)
        totals.append(
            f"- {setting}: PBT beat the grid's best member on {won}/{len(rs)} task-seeds, lost on "
            f"{len(lost)} (the grid's best member overwritten in {hit} of them); the grid's "
            f"best member survived in {kept}/{len(rs)}"
        )
    fig, ax = C.figure(len(dict.fromkeys(r["task"] for r in runs)))
    for j, task in enumerate(dict.fromkeys(r["task"] for r in runs)):
        for r in runs:
            if r["task"] == task and r.get("lr_path") is not None:
                ax[j].plot(r["lr_path"], label=r["setting"], lw=0.8)
        ax[j].set(yscale="log", xlabel="step", ylabel="LR of the PBT winner's lineage", title=task)
        ax[j].legend(fontsize=6)
    intro = __doc__.split(chr(10) + chr(10), 1)[1].split("Run:")[0].strip()
    if settings is RANKING:  # the ablation's settings paragraph -> this comparison's
        intro = intro.split("Settings:")[0] + SETTINGS_RANKING
    summary = f"""# {title}

{intro}

{table}

Over all tasks and seeds:

{chr(10).join(totals)}

{findings}
"""
    if recorded is not None:  # the training run's seconds, not the rendering's
        started = time.time() - recorded
    C.write(
        name,
        summary=summary,
        record=dict(seeds=seeds, runs=runs),
        fig=fig,
        started=started,
        command="experiments.pbt_study" + (" --ranking" if settings is RANKING else ""),
    )


TITLE = "Why PBT loses to an equal-compute grid: a small ablation"
SETTINGS_RANKING = """Settings: PBT at its defaults (f = 1/8, Ray Tune's perturbation), each exploit
ranking the slots by their validation loss at that step (``rank="value"``, the default) or by
their predicted final validation loss (``rank="predicted"``: the law ``L0 + A S^-alpha`` in the
LR area ``S``, fitted to the second half of each slot's lineage curve inside the compiled step and
evaluated at the area its current schedule will have spent at the end; a slot with too short a
curve, or whose law is more than 25% off its value now, is ranked by value). Every member is
judged by its final validation loss."""
TITLE_RANKING = "PBT ranked by each slot's predicted final loss vs by its loss now"
FINDINGS_RANKING = """## What the numbers say

- **Ranking by prediction ended better on 6 of 9 task-seeds, by little, and is not the
  default** (it also needs ``planned_lr``). Against ranking by the validation loss now, at the
  same settings and seeds: digits better on 2 seeds (0.7%, 11%) and tied on one, the demo
  better on 2 (9%, 1.7%) and 4.3% worse on seed 2, the benchmark better on 2 (0.07%, 0.10%)
  and 0.07% worse on seed 0. The geometric mean of the ratios is 0.98. Both beat the grid's
  best member on 9/9 task-seeds.
- **It is not robust to details, because PBT's outcome is chaotic in the ranking.** Three
  versions of the rule for slots whose prediction is unusable (their raw value; then also a
  slot whose value had jumped 25% off its law; now the value scaled by the others' median
  predicted gain, with the jump test widened by the fit's scatter) gave 4, 6 and 6 of 9
  task-seeds better and moved the demo's seed 1 between 0.51x and 0.91x the grid's best: one
  different exploit early on changes which lineages survive. Three seeds per task cannot
  separate a 2% mean effect from that.
- **The prediction acts late.** A slot needs 7 finite curve entries before its law is fitted:
  on the demo (one entry per 25-step evaluation) the first 6 of 23 exploits rank by value; on
  the digits task, whose step function reports the validation loss once per 30-step interval
  (NaN in between), only the last 3 of 9 exploits can use it (``rank_fallbacks`` in the
  JSON). After that, nearly every slot is ranked by its prediction (0 to 3 fallbacks of 27 or
  108, 17 once)."""


FINDINGS = """## What the numbers say

- **PBT loses when the exploit overwrites the member that would have ended best.** A slot PBT
  never overwrites trains exactly as in the grid, so PBT can only lose if the grid's final best
  member (and every lineage that would have beaten it) is overwritten; in every run above where
  PBT lost, it was. The ranking is greedy: at step ``t`` it prefers the member with the lowest
  validation loss *now*, which on these tasks is often one that decayed its LR early or started
  low (the short-horizon bias, Wu et al. 2018). On the demo, the grid's best member (a constant
  LR of 0.032 after a 60-step warmup) ranks 37th of 108 at step 25 and in the grid's top 10 from
  step 100 on, never in the grid's own bottom quarter; but with a quarter replaced every 25
  steps, the population fills with copies of a few early leaders, and by step 325 it falls into
  *their* bottom quarter (all 3 seeds with f = 1/4). The plot (seed 0) shows where that leads:
  the f = 1/4 winner's lineage is a step decay whose LR falls to 4e-6, f = 1/8's holds about
  0.04 to the end, as the grid's best does.
- **Selection pressure is the lever, and 1/8 is the setting that never lost.** With
  ``K = 18 .. 108`` and 9 to 24 exploit rounds, Ray Tune's quantile of 1/4 (Jaderberg et al.:
  20%, over far longer runs per round) replaces most of the population within a few rounds.
  A truncation fraction of 1/8 keeps more lineages alive (the grid's best survived in 6/9; on
  the demo it was overwritten late, at steps 400-525, and PBT still won); a 3x longer
  interval keeps it too, but leaves PBT little to learn (exact ties on the benchmark).
  ``jaxlr.sweep.pbt`` now defaults to ``fraction=1/8``. The perturbation stays Ray Tune's
  (x0.8 / x1.2, resampled with p = 0.25): dropping the resample (Jaderberg's setting) gave the
  largest wins (37% on a digits seed) but also 2 losses. Caveat: 1/8 was chosen on these same
  9 task-seeds; ``pbt_schedule`` (the Transformer and the digits MLP) is the check on others.
- **Noise in the ranking metric is the worst failure.** Ranked by the minibatch loss (one batch
  at the exploit step), PBT copied lucky members and lost to the grid on 8/9 task-seeds, by up
  to 2.7x: rank by a validation loss (``eval_fn`` with ``eval_every`` = the interval costs one
  evaluation per round, not one per step).
- **Copying the Adam moments is not the problem.** Adam's moments are statistics of the
  gradients, not of the LR, so a child at 0.8x or 1.2x its parent's LR inherits moments as
  right for it as for the parent; the copied schedule state (``scale_by_schedule``'s step count)
  keeps the child on its parent's clock, as Jaderberg et al. copy the whole agent.
- **A well-tuned grid is hard to beat at equal member-steps on tasks this small.** Where PBT
  wins with f = 1/8, the margins run from 0.004% (the benchmark) to 17% (the demo), and one seed
  can go either way at f = 1/4 (the demo's key 0 lost by 11%). PBT can only win by a schedule
  no grid member had; ranking members by their predicted *final* loss (issue 24's deliverable
  5) would attack the greedy ranking itself.
"""


if __name__ == "__main__":
    main()
