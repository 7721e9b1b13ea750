"""Does a learned LR policy, meta-trained on a few digits MLPs, transfer to held-out tasks?

Meta-training (``jaxlr.auto.meta_train``): antithetic OpenES over the parameters of a small MLP
policy (``jaxlr.transforms.mlp_policy``: change of log smoothed loss, gradient norm relative to
its running mean, log update/parameter norm, progress t/T, log LR/initial LR; one decision every
10 steps, at most x2 or /2). Training tasks: 64-w-10 ReLU MLPs on scikit-learn's digits, widths
16 and 32, SGD with momentum 0.9 (untuned default LR 0.01) and Adam (default 1e-3), 300 steps
of batch 32. Each generation (16 members + the mean, 4 tasks, 2 seeds) is one compiled program
(the search checkpoints with orbax and resumes);
a member's fitness is its mean log validation loss relative to the best constant LR of that task.

Held-out tasks: an unseen width (128) with each optimizer, a 3x horizon (900 steps), an
optimizer the policy never saw (RMSprop, default 1e-3), and an unseen architecture: a 2-layer
post-LN Transformer learning to reverse sequences with Adam. Every method starts from the untuned
default LR and is run in the same harness (``jaxlr.auto.run_task``) with the same 3 seeds:

- grid8: the best of 8 runs, a constant and a cosine schedule at 4 peak LRs (8x the compute);
- default: the untuned default LR, constant;
- greedy_lr, hypergradient (multiplicative): online rules from the default LR;
- refinement: ``jaxlr.auto.refine_schedule`` from the default run's gradient norms, peaked at
  grid8's best constant LR (so it needs the grid's compute too);
- pbt: ``jaxlr.sweep.pbt``, 8 members started at 8 log-spaced LRs over grid8's range, ranked
  by validation loss every 20 steps (8x the compute); its winner's final validation loss;
- pbt_export: the LR the PBT winner's lineage applied (``PBTResult.schedule``), retrained from
  scratch on every seed: what reusing PBT's schedule gives;
- autolrs: ``jaxlr.auto.autolrs`` over the task's LR bounds with the task's steps as budget
  (its exploration costs about 2x more); autolrs_export: its schedule retrained like PBT's;
- learned: the meta-trained policy, one run.

Regret = final validation loss / grid8's - 1 (mean over seeds). PBT and AutoLRS search once per
seed, with that seed's initialization and data keys.

Run: ``.venv/bin/python -m experiments.learned_policy [generations]`` (120 generations by
default: about 6.5 minutes of meta-training and 13 minutes in all on 2 quiet CPU cores before
PBT and AutoLRS were added, most of the rest compiling one program per held-out task and
method). The trained policy is saved to
``results/learned_policy_params`` (``jaxlr.auto.load_policy``).
"""

from __future__ import annotations

import sys
import tempfile
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

T = jaxlr.transforms
SEEDS = (100, 101, 102)
STEPS = 300
GRID_FACTORS = (1.0, 3.0, 10.0, 30.0)
FEATURES = ("loss_change", "grad_norm", "update_ratio", "progress", "log_lr")
OPTIMIZERS = {
    "sgdm": (lambda: optax.sgd(1.0, momentum=0.9), 0.01, "gd"),
    "adam": (lambda: optax.adam(1.0), 1e-3, "adam"),
    "rmsprop": (lambda: optax.rmsprop(1.0), 1e-3, "adam"),
}


def mlp_task(width: int, opt: str, steps: int = STEPS, batch: int = 32) -> jaxlr.auto.Task:
    """A 64-width-10 ReLU MLP on digits with optimizer ``opt`` at its default LR."""
    (xtr, ytr), (xte, yte) = C.digits()
    n = xtr.shape[0]

    def init(key):
        k1, k2 = jax.random.split(key)
        return {
            "w1": jax.random.normal(k1, (64, width)) * jnp.sqrt(2.0 / 64),
            "b1": jnp.zeros(width),
            "w2": jax.random.normal(k2, (width, 10)) * jnp.sqrt(1.0 / width),
            "b2": jnp.zeros(10),
        }

    def ce(p, x, y):
        logits = jax.nn.relu(x @ p["w1"] + p["b1"]) @ p["w2"] + p["b2"]
        return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()

    make, default, _ = OPTIMIZERS[opt]
    return jaxlr.auto.Task(
        name=f"mlp{width}-{opt}-{steps}",
        init_fn=init,
        loss_fn=lambda p, idx: ce(p, xtr[idx], ytr[idx]),
        batch_fn=lambda k, t: jax.random.randint(jax.random.fold_in(k, t), (batch,), 0, n),
        val_fn=lambda p: ce(p, xte, yte),
        optimizer=make(),
        total_steps=steps,
        init_value=default,
        min_value=default / 100.0,
        max_value=default * 100.0,
    )


def transformer_task(steps: int = STEPS, batch: int = 32) -> jaxlr.auto.Task:
    """A 2-layer post-LN Transformer (d=32) reversing 8-token sequences over 16 symbols, Adam at
    1e-3; the seed varies the data (the initialization is the same for every seed)."""
    graphdef, params = C.transformer(vocab=16, length=8)
    xv, yv = C.reverse_task(jax.random.key(12345), batch=256, length=8, vocab=16)
    return jaxlr.auto.Task(
        name=f"transformer-adam-{steps}",
        init_fn=lambda key: params,
        loss_fn=lambda p, b: C.cross_entropy(graphdef, p, *b),
        batch_fn=lambda k, t: C.reverse_task(
            jax.random.fold_in(k, t), batch=batch, length=8, vocab=16
        ),
        val_fn=lambda p: C.cross_entropy(graphdef, p, xv, yv),
        optimizer=optax.adam(1.0),
        total_steps=steps,
        init_value=1e-3,
        min_value=1e-5,
        max_value=1e-1,
    )


TRAIN = [mlp_task(w, o) for w in (16, 32) for o in ("sgdm", "adam")]
HELD_OUT = {
    "unseen width 128, SGD-m": mlp_task(128, "sgdm"),
    "unseen width 128, Adam": mlp_task(128, "adam"),
    "3x horizon (900), SGD-m": mlp_task(32, "sgdm", steps=3 * STEPS),
    "3x horizon (900), Adam": mlp_task(32, "adam", steps=3 * STEPS),
    "unseen optimizer RMSprop": mlp_task(32, "rmsprop"),
    "Transformer (reverse), Adam": transformer_task(),
}


def _keys():
    return jnp.stack([jax.random.key(s) for s in SEEDS])


def runs(task, make_tx_of, values):
    """Final val losses ``[len(values), len(SEEDS)]`` and LRs of ``make_tx_of(v)``, one program."""

    def one(v, k):
        r = jaxlr.auto.run_task(task, make_tx_of(v), k)
        return r.val_loss, r.lrs

    return jax.jit(jax.vmap(jax.vmap(one, (None, 0)), (0, None)))(jnp.asarray(values), _keys())


def curve_runner(task):
    """One compiled program for every schedule given as its per-step LRs ``[K, T]``: returns
    final val losses ``[K, seeds]`` and the l2 and l1 gradient norms ``[K, seeds, T]``."""
    bounds = np.arange(1, task.total_steps, dtype=np.float32)

    def one(curve, k):
        s = jaxlr.schedules.piecewise_constant(boundaries=bounds, values=curve)
        r = jaxlr.auto.run_task(task, lambda opt: optax.chain(opt, T.scale_by_schedule(s)), k)
        return r.val_loss, r.grad_norms, r.grad_l1

    f = jax.jit(jax.vmap(jax.vmap(one, (None, 0)), (0, None)))
    return lambda curves: f(jnp.asarray(curves, jnp.float32), _keys())


PBT_MEMBERS, PBT_INTERVAL = 8, 20
_SEARCH_FNS = {}  # task name -> the step functions of PBT and AutoLRS (one object: no recompile)


def _search_fns(task):
    """PBT's ``(init_fn, step_fn)`` and AutoLRS's ``step_fn`` for ``task``: its unit-LR optimizer
    scaled by the LR each method picks, the same loss, data and validation set as
    ``run_task``. PBT members report the validation loss at every exploit step (and the last)."""
    if task.name in _SEARCH_FNS:
        return _SEARCH_FNS[task.name]
    opt, n = task.optimizer, task.total_steps

    def sgd_step(p, s, lr, batch):
        loss, g = jax.value_and_grad(task.loss_fn)(p, batch)
        u, s = opt.update(g, s, p)
        return optax.apply_updates(p, jax.tree.map(lambda x: lr * x, u)), s, loss

    def pbt_init(cfg, key):
        p = task.init_fn(key)
        return p, opt.init(p), task.val_fn(p)

    def pbt_step(state, cfg, batch):
        t, b = batch
        p, s, loss = sgd_step(*state[:2], cfg["lr"], b)
        due = ((t + 1) % PBT_INTERVAL == 0) | (t == n - 1)  # t is shared: a real cond
        val = jax.lax.cond(due, task.val_fn, lambda _: state[2], p)
        return (p, s, val), {"loss": loss, "val": val, "lr": cfg["lr"]}

    def auto_step(state, lr, key):
        p, s, loss = sgd_step(*state, lr, task.batch_fn(key, 0))
        return (p, s), loss

    _SEARCH_FNS[task.name] = (pbt_init, pbt_step, auto_step)
    return _SEARCH_FNS[task.name]


def pbt_search(task, seed):
    """PBT (``jaxlr.sweep.pbt``) with 8 members started at 8 log-spaced LRs over grid8's range,
    ranked by validation loss every 20 steps; the data and initialization keys are those
    ``run_task`` uses for ``seed``. Returns the winner's final validation loss, the LR its
    lineage applied at every step (the exported schedule) and the member-steps spent."""
    init_fn, step_fn, _ = _search_fns(task)
    n, d = task.total_steps, task.init_value
    k_init, k_data = jax.random.split(jax.random.key(seed))
    data = jax.jit(jax.vmap(lambda t: task.batch_fn(k_data, t)))(jnp.arange(n))
    batches = ((np.int32(t), jax.tree.map(lambda a, t=t: a[t], data)) for t in range(n))
    res = jaxlr.sweep.pbt(
        init_fn,
        step_fn,
        jaxlr.sweep.grid(lr=list(d * np.geomspace(1.0, max(GRID_FACTORS), PBT_MEMBERS))),
        batches,
        key=k_init,
        num_steps=n,
        interval=PBT_INTERVAL,
        metric="val",
        space={"lr": ("log_uniform", task.min_value, task.max_value)},
        progress=False,
    )
    if res.winner is None:
        return float("inf"), np.full(n, d, np.float32), res.member_steps
    s = res.schedule()
    curve = np.asarray([s(t) for t in range(n)], np.float32)
    return float(np.asarray(res.metrics["val"])[res.winner, -1]), curve, res.member_steps


def autolrs_search(task, seed):
    """``jaxlr.auto.autolrs`` (default settings: 8 candidates, tau = 50 doubling) over the task's
    LR bounds with ``total_steps`` = the task's steps, from ``run_task``'s initialization for
    ``seed``. Returns its final validation loss, the LR of every trained step and the
    member-steps spent (trained steps + exploration of the candidates not kept)."""
    _, _, step_fn = _search_fns(task)
    n = task.total_steps
    k_init, k_data = jax.random.split(jax.random.key(seed))
    p = task.init_fn(k_init)
    r = jaxlr.auto.autolrs(
        step_fn,
        (p, task.optimizer.init(p)),
        key=k_data,
        total_steps=n,
        min_value=task.min_value,
        max_value=task.max_value,
    )
    lrs = np.asarray(r.lrs, np.float32)
    if len(lrs) < n:  # every candidate of a stage diverged: it stopped (see r.message)
        print(r.message)
        lrs = np.concatenate([lrs, np.full(n - len(lrs), lrs[-1] if len(lrs) else 0.0)])
    return float(jax.jit(task.val_fn)(r.state[0])), lrs, len(r.lrs) + r.extra_steps


def evaluate(task, policy, params):
    d, n = task.init_value, task.total_steps
    lrs = d * np.asarray(GRID_FACTORS, np.float32)
    steps = np.arange(n)
    cos = [np.asarray(jaxlr.schedules.cosine(init_value=v, total_steps=n)(steps)) for v in lrs]
    grid_curves = np.stack([np.full(n, v, np.float32) for v in lrs] + cos)
    run_curves = curve_runner(task)
    g_val, g_norms, g_l1 = run_curves(grid_curves)
    means = np.mean(np.where(np.isfinite(g_val), g_val, np.inf), 1)
    best = int(np.argmin(means))
    out = {"grid8": float(means[best]), "default": float(means[0])}  # factor 1 is the default
    best_const = float(lrs[int(np.argmin(means[:4]))])
    grid_pick = ("constant" if best < 4 else "cosine", float(lrs[best % 4]))
    greedy = lambda v: (
        lambda opt: optax.chain(  # noqa: E731
            opt, T.greedy_lr(init_value=v, min_value=v / 100, max_value=v * 100, window=10)
        )
    )
    out["greedy_lr"] = float(np.mean(runs(task, greedy, np.asarray([d]))[0]))
    hyper = lambda v: (
        lambda opt: T.hypergradient(  # noqa: E731
            opt,
            init_value=v,
            hyper_lr=0.02,
            multiplicative=True,
            min_value=v / 100,
            max_value=v * 100,
        )
    )
    out["hypergradient"] = float(np.mean(runs(task, hyper, np.asarray([d]))[0]))
    learned = lambda v: jaxlr.auto.policy_tx(policy, params, task)  # noqa: E731
    l_val, l_lrs = runs(task, learned, np.asarray([0.0]))
    out["learned"] = float(np.mean(l_val))
    # refinement from the default run's gradient norms (l1 for Adam-family), and the LR the
    # policy used (seed 0) exported as a schedule, through the same compiled program
    kind = OPTIMIZERS[task.name.split("-")[1]][2]
    norms = np.mean(np.asarray(g_norms if kind == "gd" else g_l1)[0], 0)
    refined = jaxlr.auto.refine_schedule(norms, peak_value=best_const, kind=kind)
    exported = T.applied_schedule(np.asarray(l_lrs[0, 0]))
    # PBT and AutoLRS search on each seed; their own results, then each seed's found schedule
    # retrained from scratch on every seed (the same 8-curve program as the grid)
    pbt = [pbt_search(task, s) for s in SEEDS]
    auto = [autolrs_search(task, s) for s in SEEDS]
    out["pbt"] = float(np.mean([v for v, _, _ in pbt]))
    out["autolrs"] = float(np.mean([v for v, _, _ in auto]))
    curves = np.stack(
        [np.asarray(refined(steps)), np.asarray(exported(steps))]
        + [c for _, c, _ in pbt]
        + [c for _, c, _ in auto]
    )
    c_val = run_curves(curves)[0]
    out["refinement"] = float(np.mean(c_val[0]))
    out["pbt_export"] = float(np.mean(c_val[2:5]))
    out["autolrs_export"] = float(np.mean(c_val[5:8]))
    export_gap = abs(float(c_val[1, 0]) - float(l_val[0, 0])) / float(l_val[0, 0])
    c_val = np.asarray(c_val)
    extra = {
        "runs": {  # every final validation loss behind a mean: [seeds], or [schedule, seed]
            "grid8": np.asarray(g_val)[best],
            "learned": np.asarray(l_val)[0],
            "refinement": c_val[0],
            "pbt": [v for v, _, _ in pbt],
            "pbt_export": c_val[2:5],
            "autolrs": [v for v, _, _ in auto],
            "autolrs_export": c_val[5:8],
        },
        "pbt_lrs": np.stack([c for _, c, _ in pbt]),
        "autolrs_lrs": np.stack([c for _, c, _ in auto]),
        "member_steps": {  # per seed
            "grid8": 8 * n,
            "default": n,
            "greedy_lr": n,
            "hypergradient": n,
            "refinement": 9 * n,  # the grid (its default member gives the norms), its run
            "pbt": float(np.mean([m for _, _, m in pbt])),
            "pbt_export": float(np.mean([m for _, _, m in pbt])) + n,
            "autolrs": float(np.mean([m for _, _, m in auto])),
            "learned": n,
        },
    }
    return out, np.asarray(l_lrs[0, 0]), grid_pick, export_gap, extra


def _verdict(record, names, against=None):
    if against is None:
        ok = [record[n]["regret"]["learned"] <= 0.02 for n in names]
    else:
        ok = [record[n]["val"]["learned"] < record[n]["val"][against] for n in names]
    return f"{'met' if all(ok) else 'missed'} ({sum(ok)}/{len(ok)})"


def _steps(curve):
    """A piecewise-constant per-step LR as ``{"boundaries", "values"}``: ``values[0]`` from step
    0, ``values[i]`` from step ``boundaries[i - 1]``."""
    curve = np.asarray(curve)
    change = np.flatnonzero(curve[1:] != curve[:-1]) + 1
    return {"boundaries": change, "values": curve[np.concatenate([[0], change])]}


def _wins(record, names, against):
    ok = [record[n]["val"]["learned"] < record[n]["val"][against] for n in names]
    return f"{sum(ok)}/{len(ok)}"


def _failures(rec):
    """``(method, failed, runs)`` for the methods with a run whose final validation loss is
    above 10x grid8's (or not finite)."""
    out = []
    for m, v in rec["runs"].items():
        v = np.ravel(np.asarray(v, float))
        bad = int(np.sum(~(v <= 10.0 * rec["val"]["grid8"])))
        if bad:
            out.append((m, bad, v.size))
    return out


def _losses_to(rec):
    mine = rec["val"]["learned"]
    return [f"{m} ({100 * rec['regret'][m]:+.1f}%)" for m, v in rec["val"].items() if v < mine]


def main(generations: int = 120) -> None:
    started = time.time()
    policy = T.mlp_policy(FEATURES, hidden=8)
    result = jaxlr.auto.meta_train(
        policy,
        TRAIN,
        key=jax.random.key(0),
        num_generations=generations,
        population=16,
        sigma=0.1,
        learning_rate=0.05,
        num_seeds=2,
        diverged_score=3.0,
        checkpoint_dir=tempfile.mkdtemp(prefix="learned_policy_"),  # resumable
    )
    jaxlr.auto.save_policy(C.RESULTS / "learned_policy_params", policy, result.params)
    meta_seconds = result.seconds
    print(f"meta-training: {meta_seconds:.0f} s, mean fitness {result.mean_fitness[-1]:.4f}")

    methods = (
        "grid8",
        "default",
        "greedy_lr",
        "hypergradient",
        "refinement",
        "pbt",
        "pbt_export",
        "autolrs",
        "autolrs_export",
        "learned",
    )
    table, record, curves = [], {}, {}
    in_family = list(HELD_OUT)
    for name, task in HELD_OUT.items():
        vals, lrs, pick, gap, extra = evaluate(task, policy, result.params)
        regret = {m: vals[m] / vals["grid8"] - 1.0 for m in vals}
        record[name] = {
            "val": vals,
            "regret": regret,
            "grid_pick": pick,
            "export_gap": gap,
            **extra,
        }
        print(name, f"exported schedule retrains within {100 * gap:.3f}%")
        curves[name] = lrs / task.init_value
        table.append(
            [name, f"{vals['grid8']:.4f}"] + [f"{100 * regret[m]:+.1f}%" for m in methods[1:]]
        )
        print(table[-1])

    fig, axes = C.figure(4, width=5.0)
    lr_panels = (
        ("learned policy", curves),
        ("PBT winner's lineage", {n: record[n]["pbt_lrs"][0] for n in HELD_OUT}),
        ("AutoLRS", {n: record[n]["autolrs_lrs"][0] for n in HELD_OUT}),
    )
    for ax, (label, panel) in zip(axes[:3], lr_panels, strict=True):
        for name, c in panel.items():
            scale = 1.0 if panel is curves else HELD_OUT[name].init_value  # curves: / default
            ax.plot(np.asarray(c) / scale, label=name)
        ax.set(yscale="log", xlabel="step", ylabel="LR / default LR", title=f"{label} (seed 0)")
    axes[0].legend(fontsize=6)
    g = np.arange(len(result.mean_fitness))
    axes[3].plot(g, result.mean_fitness, label="mean (the policy)")
    axes[3].plot(g, result.fitness.min(1), label="best member")
    axes[3].set(
        xlabel="generation", ylabel="fitness: mean log(val / best constant)", title="meta-training"
    )
    axes[3].legend()
    held_names = in_family
    held = [record[n]["regret"]["learned"] for n in held_names]
    auto_cost = np.mean(
        [record[n]["member_steps"]["autolrs"] / HELD_OUT[n].total_steps for n in HELD_OUT]
    )
    meta_steps = generations * 17 * len(TRAIN) * 2 * STEPS  # 16 members + the mean
    summary = "\n".join(
        [
            "# Learned LR policy: meta-trained on 4 digits MLPs, tested on held-out tasks",
            "",
            f"Meta-training: {generations} OpenES generations x 16 members, 4 tasks x 2 "
            f"seeds, {meta_seconds:.0f} s wall (compile included).",
            "",
            "Regret = final validation loss / best of the 8-run grid - 1 (mean of 3 seeds; "
            "negative = better than the grid).",
            "",
            C.md_table(["task", "grid8 val"] + list(methods[1:]), table),
            "",
            "Compute per seed in member-steps (one training step of one model), T = the task's "
            "steps: default, greedy_lr, hypergradient, learned T; grid8 8T; refinement 9T (the "
            "grid, whose default member gives the gradient norms, then its own run); pbt 8T "
            f"(8 members from {GRID_FACTORS[0]:g}x to {GRID_FACTORS[-1]:g}x the default LR, "
            f"exploit/explore every {PBT_INTERVAL} steps by validation loss, the winner's "
            "final validation loss); pbt_export 9T (that search, then the winner's applied LR "
            "retrained from scratch: each seed's schedule on all 3 seeds); autolrs "
            f"{auto_cost:.2f}T on average (T trained + exploration of the candidates not "
            "kept; autolrs_export: its schedule retrained like PBT's). The learned policy's "
            f"meta-training, paid once for all tasks: {meta_steps / 1e6:.1f}M member-steps (and "
            "its reference grid).",
            "",
            "Targets: in-family held-out tasks (unseen width, 3x horizon) within 2% of grid8 "
            f"from one run: {_verdict(record, in_family[:4])}; beats the untuned default on "
            f"every held-out task: {_verdict(record, in_family, against='default')}.",
            "",
            "The learned policy's final validation loss is lower than (held-out tasks won): "
            + ", ".join(f"{m} {_wins(record, in_family, m)}" for m in methods[2:-1])
            + ".",
            "",
            "Runs that failed (final validation loss > 10x grid8's) among the runs each mean "
            "averages (3 seeds; 9 for the exports: each seed's schedule on every seed): "
            + (
                "; ".join(
                    f"{n}: " + ", ".join(f"{m} {k}/{t}" for m, k, t in _failures(record[n]))
                    for n in held_names
                    if _failures(record[n])
                )
                or "none"
            )
            + ".",
            "",
            "Where the learned policy loses (a method with lower regret on that task):",
            "",
            *[
                f"- {n}: " + (", ".join(_losses_to(record[n])) or "nothing beats it")
                for n in held_names
            ],
            "",
            "Held-out regret of the learned policy: "
            + ", ".join(f"{100 * r:+.1f}%" for r in held)
            + ".",
        ]
    )
    C.write(
        "learned_policy",
        summary=summary,
        record={
            "meta_seconds": meta_seconds,
            "meta_member_steps": meta_steps,
            "results": {  # the exported schedules as their change points (few per run)
                n: {**r, **{k: [_steps(c) for c in r[k]] for k in ("pbt_lrs", "autolrs_lrs")}}
                for n, r in record.items()
            },
            "mean_fitness": result.mean_fitness,
            "reference": result.reference,
        },
        fig=fig,
        started=started,
    )


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 120)
