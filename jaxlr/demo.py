"""The main job, ``jaxlr demo``: which schedule and which peak LR / warmup for a small model?

One vmapped sweep trains a small flax NNX MLP on scikit-learn's digits (shipped with
scikit-learn, loaded offline) for every combination of six schedule families x a log grid of
peak learning rates x warmup lengths, tracking the sharpness lambda_max on the way; it prints a
table and writes plots and a markdown report. The same search space is then searched twice more
with a fraction of the work or with schedules learned on the way: successive halving (keep the
best third at rungs of 1/9, 1/3 and all of the steps) and population-based training (every
``interval`` steps the worst eighth copies the best eighth and perturbs its peak LR), both
step-driven populations fed minibatches from a NumPy iterator. Every method selects its member
on a validation split (a fifth of the training images); one table compares the selected member's
validation and *test* loss (the test split is used for nothing else), the peak LR it actually
applied, the member-steps, and the wall time of grid, halving and PBT with its compile seconds.

Why one program for six schedule families: their pytrees differ (``wsd`` has other leaves than
``step``), so they cannot be stacked. Each member builds all six schedules from its traced
hyperparameters and picks one with ``jaxlr.schedules.select`` (``lax.switch``) on a traced family
index; under ``vmap`` the switch becomes a select, so every member evaluates six scalar laws per
step (a few dozen flops) and the expensive part, the MLP's matmuls, stays one batched program over
all ``K`` members: one trace, one compile, the best batching. One vmap per family inside one jit
would compile the training loop six times and batch six times fewer members per matmul, to save only
those scalar flops.

Each member's optimizer is ``optax.chain(optax.adam(1.0), jaxlr.transforms.scale_by_schedule(s))``
with ``s = jaxlr.schedules.scale(select(family, unit-peak families), factor=peak)``: the schedule
is optimizer state, its ``factor`` leaf is the member's peak LR (the config leaf PBT perturbs: an
exploit writes the perturbed value into the copied state), and the LR each step applied is read
back from the state with ``jaxlr.transforms.current_lr``.
"""

from __future__ import annotations

import datetime
import json
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax

import jaxlr

FAMILIES = ("constant", "step", "cosine", "warmup_cosine", "one_cycle", "wsd")


def _schedules(peak, warmup, total):
    """The six families for one member, built from traced ``peak`` / ``warmup`` (steps)."""
    s = jaxlr.schedules
    return (
        s.warmup(s.constant(value=peak), warmup_steps=warmup),
        s.warmup(
            s.step(init_value=peak, period_steps=(total - warmup) / 3.0, decay_rate=0.1),
            warmup_steps=warmup,
        ),
        s.warmup(s.cosine(init_value=peak, total_steps=total - warmup), warmup_steps=warmup),
        s.warmup_cosine(peak_value=peak, warmup_steps=warmup, total_steps=total),
        # One-cycle's rise is its warmup (at least 5% of training; warmup_fraction must be > 0).
        s.one_cycle(
            peak_value=peak,
            total_steps=total,
            warmup_fraction=jnp.maximum(warmup, 0.05 * total) / total,
        ),
        s.wsd(peak_value=peak, total_steps=total, warmup_steps=warmup, decay_fraction=0.2),
    )


def learning_rate(family, peak, warmup, total):
    """The LR law of member ``(family, peak, warmup)``: ``schedules.select`` over :data:`FAMILIES`.

    Args:
        family: index into :data:`FAMILIES` (may be traced; under ``vmap`` a select).
        peak: peak learning rate.
        warmup: warmup steps.
        total: training steps.

    Returns:
        A schedule (``step -> lr``) Optax accepts as ``learning_rate``.

    Examples:
        >>> from jaxlr import demo
        >>> lr = demo.learning_rate(demo.FAMILIES.index("wsd"), 1.0, 10.0, 100.0)
        >>> [round(float(lr(t)), 3) for t in (5, 50, 90)]
        [0.5, 1.0, 0.5]
    """
    return jaxlr.schedules.select(family, _schedules(peak, warmup, total))


def lambda_max_hook(loss_fn, params, state):
    """HOOK for the sharpness tracker: ``(lambda_max, state)`` via ``jaxlr.sharpness``.

    Uses ``jaxlr.sharpness.tracker_update`` (a warm-started block Lanczos step, 3 Hessian-vector
    products); returns NaN when that module is not installed.
    """
    try:
        from jaxlr.sharpness import tracker_update
    except ImportError:
        return jnp.asarray(jnp.nan), state
    eig, state = tracker_update(loss_fn, params, state, num_iters=3)
    return eig.eigenvalue, state


def _tracker_init(params):
    from jaxlr.sharpness import tracker_init

    return tracker_init(params, key=jax.random.key(1))


def digits(seed: int = 0):
    """scikit-learn's 8x8 digits (bundled, offline), pixels in [0, 1], shuffled with ``seed`` and
    split 80/20: ``(x_train, y_train), (x_test, y_test)`` as NumPy arrays. The demo and the
    experiments share this one loader."""
    from sklearn.datasets import load_digits

    d = load_digits()
    x = (d.data / 16.0).astype(np.float32)
    y = d.target.astype(np.int32)
    perm = np.random.default_rng(seed).permutation(len(y))
    x, y = x[perm], y[perm]
    n = int(0.8 * len(y))
    return (x[:n], y[:n]), (x[n:], y[n:])


def _setting(quick: bool) -> dict:
    if quick:
        # Compile-bound: LLVM's optimizations cost more time than they save here.
        return dict(
            steps=40,
            every=10,
            unit=5,
            hidden=16,
            batch=64,
            peaks=[1e-3, 1e-2],
            warmups=[0.0, 0.1],
            options={"xla_backend_optimization_level": 0},
        )
    return dict(
        steps=600,
        every=25,
        unit=25,
        hidden=64,
        batch=128,
        peaks=np.logspace(-4, 0, 9).tolist(),
        warmups=[0.0, 0.1],
        options=None,
    )


class _Task:
    """The demo's model, data and one training step, shared by the grid, halving and PBT."""

    def __init__(self, quick: bool):
        from flax import nnx

        self.cfg = cfg = _setting(quick)
        (xtr, ytr), (xte, yte) = digits()
        # Selection happens on a validation split cut from the training images; the test split
        # only reports the selected member.
        n_val = len(ytr) // 5
        (xtr, ytr), (xva, yva) = (xtr[n_val:], ytr[n_val:]), (xtr[:n_val], ytr[:n_val])
        self.steps = cfg["steps"]

        class MLP(nnx.Module):
            def __init__(self, rngs):
                self.hidden = nnx.Linear(64, cfg["hidden"], rngs=rngs)
                self.out = nnx.Linear(cfg["hidden"], 10, rngs=rngs)

            def __call__(self, x):
                return self.out(jax.nn.relu(self.hidden(x)))

        # Built under jit: one compilation instead of one per eager initializer op.
        graphdef = nnx.split(nnx.eval_shape(lambda: MLP(nnx.Rngs(0))), nnx.Param)[0]
        self.params0 = jax.jit(lambda: nnx.split(MLP(nnx.Rngs(0)), nnx.Param)[1])()
        rng = np.random.default_rng(1)
        self.index = np.stack(
            [rng.choice(len(ytr), cfg["batch"], replace=False) for _ in range(self.steps)]
        )
        self.host = (xtr, ytr)
        self.xtr, self.ytr, self.xte, self.yte = map(jnp.asarray, (xtr, ytr, xte, yte))
        self.xva, self.yva = jnp.asarray(xva), jnp.asarray(yva)

        def loss_on(params, x, y):
            logits = nnx.merge(graphdef, params)(x)
            return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()

        self.loss_on, self.graphdef = loss_on, graphdef

    def schedule(self, c):
        """Member ``c``'s LR: its family at peak 1, scaled by its peak (the one leaf PBT
        perturbs, held once in the optimizer state)."""
        unit = learning_rate(c["schedule"], 1.0, c["warmup_steps"], float(self.steps))
        return jaxlr.schedules.scale(unit, factor=c["peak_value"])

    def optimizer(self, c):
        """Adam's direction scaled by the member's jaxlr schedule, which is optimizer state."""
        return optax.chain(optax.adam(1.0), jaxlr.transforms.scale_by_schedule(self.schedule(c)))

    def update(self, p, o, c, x, y):
        """One step of member ``c``: ``(params, opt_state, loss, lr)``, the LR that step applied
        read from the optimizer state."""
        loss, g = jax.value_and_grad(self.loss_on)(p, x, y)
        u, o = self.optimizer(c).update(g, o, p)
        lr = jaxlr.transforms.current_lr(o, optimizer_lr=1.0)
        return optax.apply_updates(p, u), o, loss, lr

    def batches(self):
        """The minibatches as NumPy, one per step: what a real data loader yields."""
        x, y = self.host
        for idx in self.index:
            yield {"x": x[idx], "y": y[idx]}

    # -- step-driven population (halving, PBT) ----------------------------------------------
    def init_fn(self, c, key):
        return {"params": self.params0, "opt": self.optimizer(c).init(self.params0)}

    def step_fn(self, state, c, batch):
        p, o, loss, lr = self.update(state["params"], state["opt"], c, batch["x"], batch["y"])
        return {"params": p, "opt": o}, {"loss": loss, "lr": lr}

    def eval_fn(self, state, c):
        """The validation loss the searches rank by: computed every ``eval_every`` steps (a
        forward pass over the validation split costs about one training step)."""
        return {"val_loss": self.loss_on(state["params"], self.xva, self.yva)}


def _configs(setting):
    return jaxlr.sweep.grid(
        schedule=np.arange(len(FAMILIES)),
        peak_value=setting["peaks"],
        warmup_steps=np.asarray(setting["warmups"]) * setting["steps"],
    )


# Diverged: NaN/inf, or a minibatch loss above 3x that of chance (3 ln 10 = 6.9).
_THRESHOLD = 3.0 * float(np.log(10.0))


def sweep(quick: bool = False, *, progress: bool = True, task: _Task | None = None):
    """Runs the demo's grid sweep and returns its :class:`~jaxlr.sweep.SweepResult`.

    Args:
        quick: a tiny setting (a few seconds) for tests.
        progress: show the progress bar.
        task: the model and data (built from ``quick`` when ``None``).

    Returns:
        The result; metrics ``loss`` (minibatch loss per step), ``lr`` (per step),
        ``lambda_max`` (every ``every`` steps), ``train_loss``, ``val_loss`` (the validation
        split, for selection), ``test_loss``, ``test_accuracy``.

    Examples:
        >>> from jaxlr import demo
        >>> res = demo.sweep(quick=True, progress=False)  # doctest: +SKIP
        >>> len(res), sorted(res.best("test_accuracy", mode="max", by="schedule"))  # doctest: +SKIP
        (24, ['constant', 'cosine', 'one_cycle', 'step', 'warmup_cosine', 'wsd'])
    """
    task = task or _Task(quick)
    cfg, steps, every = task.cfg, task.steps, task.cfg["every"]
    batches = jnp.asarray(task.index.reshape(steps // every, every, cfg["batch"]))
    xtr, ytr, xte, yte, xva, yva = task.xtr, task.ytr, task.xte, task.yte, task.xva, task.yva
    probe = (xtr[:256], ytr[:256])  # the fixed batch whose Hessian is tracked
    loss_on, params0 = task.loss_on, task.params0

    def train_fn(c):
        def step(carry, idx):
            p, o = carry
            p, o, loss, lr = task.update(p, o, c, xtr[idx], ytr[idx])
            return (p, o), (loss, lr)

        def block(carry, xs):
            (p, o, tr), (idx, t0) = carry, xs
            jaxlr.sweep.report_progress(t0)
            (p, o), (loss, lrs) = jax.lax.scan(step, (p, o), idx)
            lam, tr = lambda_max_hook(lambda q: loss_on(q, *probe), p, tr)
            return (p, o, tr), (loss, lrs, lam)

        init = (params0, task.optimizer(c).init(params0), _tracker_init(params0))
        (p, _, _), (loss, lrs, lam) = jax.lax.scan(
            block, init, (batches, jnp.arange(0, steps, every))
        )
        logits = nnx_logits(task, p, xte)
        return dict(
            loss=loss.reshape(-1),
            lr=lrs.reshape(-1),
            lambda_max=lam,
            train_loss=loss_on(p, xtr, ytr),
            val_loss=loss_on(p, xva, yva),
            test_loss=loss_on(p, xte, yte),
            test_accuracy=jnp.mean(jnp.argmax(logits, -1) == yte),
        )

    return jaxlr.sweep.run(
        train_fn,
        _configs(cfg),
        progress=progress,
        num_steps=steps,
        divergence_threshold=_THRESHOLD,
        labels={"schedule": FAMILIES},
        compiler_options=cfg["options"],
    )


def nnx_logits(task: _Task, params, x):
    from flax import nnx

    return nnx.merge(task.graphdef, params)(x)


def rungs(steps: int, unit: int, eta: int = 3) -> list[int]:
    """Successive halving's budgets: ``steps / eta^2, steps / eta, steps``, rounded to
    multiples of ``unit`` (the steps per compiled call, so each population size compiles once)."""
    near = lambda x: max(unit, unit * round(x / unit))
    return sorted({near(steps / eta**2), near(steps / eta), steps})


def halving(task: _Task, *, progress: bool = True):
    """The same search space by successive halving (eta = 3), ranked by validation loss."""
    return jaxlr.sweep.successive_halving(
        task.init_fn,
        task.step_fn,
        _configs(task.cfg),
        task.batches(),
        key=jax.random.key(0),
        rungs=rungs(task.steps, task.cfg["unit"]),
        metric="val_loss",
        eta=3,
        steps_per_call=task.cfg["unit"],
        divergence_threshold=_THRESHOLD,
        labels={"schedule": FAMILIES},
        compiler_options=task.cfg["options"],
        progress=progress,
        eval_fn=task.eval_fn,
        eval_every=task.cfg["unit"],
    )


def population_based(task: _Task, *, progress: bool = True):
    """The same search space by PBT: every ``every`` steps the worst eighth copies the best
    eighth (parameters, Adam moments, the schedule held in the optimizer state) and perturbs its
    peak LR, the schedule's ``factor`` leaf (x0.8 / x1.2, or resampled with probability 0.25)."""
    peaks = task.cfg["peaks"]
    return jaxlr.sweep.pbt(
        task.init_fn,
        task.step_fn,
        _configs(task.cfg),
        task.batches(),
        key=jax.random.key(0),
        num_steps=task.steps,
        interval=task.cfg["every"],
        metric="val_loss",
        space={"peak_value": ("log_uniform", min(peaks), max(peaks))},
        divergence_threshold=_THRESHOLD,
        labels={"schedule": FAMILIES},
        compiler_options=task.cfg["options"],
        progress=progress,
        eval_fn=task.eval_fn,
        eval_every=task.cfg["every"],
    )


def member_test_loss(task: _Task, result, index: int) -> float:
    """The test loss of member ``index`` of a population search, from its final state."""
    params = jax.tree.map(lambda a: a[index], result.states["params"])
    return float(task.loss_on(params, task.xte, task.yte))


def _selected(task: _Task, result) -> dict | None:
    """The member a population search selects by validation loss, with its test loss."""
    b = result.best("val_loss")
    if b is None:
        return None
    return {
        "index": b["index"],
        "val_loss": b["val_loss"],
        "test_loss": member_test_loss(task, result, b["index"]),
    }


def comparison(task, grid, grid_s, halved, halved_s, pbt_res, pbt_s) -> str:
    """The markdown table: per method, the member it selects by validation loss, the peak LR
    that member applied, its validation and test loss, the member-steps, wall time and the
    compile seconds inside it."""
    steps = grid.metric("loss").shape[1]
    rows = [
        "| method | selected member (by val loss) | peak LR applied | val loss | test loss "
        "| member-steps | wall time (s) | compile (s) |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for name, res, work, secs in (
        ("grid", grid, len(grid) * steps, grid_s),
        ("successive halving", halved, halved.member_steps, halved_s),
        ("PBT", pbt_res, pbt_res.member_steps, pbt_s),
    ):
        b = res.best("val_loss")
        if b is None:
            rows.append(
                f"| {name} | - | - | - | - | {work} | {secs:.1f} | {res.compile_seconds:.1f} |"
            )
            continue
        i = b["index"]
        # PBT's slot changed hands and hyperparameters: its lineage's LR is the one applied.
        applied = res.lr_path(i) if hasattr(res, "lr_path") else res.metrics["lr"][i]
        test = b["test_loss"] if "test_loss" in b else member_test_loss(task, res, i)
        who = f"{b['schedule']}, warmup {b['warmup_steps']:.0f}"
        rows.append(
            f"| {name} | {who} | {np.nanmax(applied):.2g} | {b['val_loss']:.4f} | {test:.4f} | "
            f"{work} | {secs:.1f} | {res.compile_seconds:.1f} |"
        )
    return "\n".join(rows)


def table(result) -> str:
    """The markdown table: per schedule, the member selected by validation loss (its test loss
    and accuracy reported), and divergence counts."""
    rows = [
        "| schedule | best peak LR | warmup | train loss | val loss | test loss | test acc "
        "| diverged |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    best = result.best("val_loss", by="schedule")
    for fam in FAMILIES:
        n_div = sum(
            1
            for i in range(len(result))
            if result.label("schedule", i) == fam and result.diverged[i]
        )
        b = best.get(fam)
        if b is None:
            rows.append(f"| {fam} | - | - | - | - | - | - | {n_div} (all) |")
            continue
        rows.append(
            f"| {fam} | {b['peak_value']:.2g} | {b['warmup_steps']:.0f} | "
            f"{b['train_loss']:.4f} | {b['val_loss']:.4f} | {b['test_loss']:.4f} | "
            f"{b['test_accuracy']:.3f} | {n_div} |"
        )
    return "\n".join(rows)


def _diverged_lines(result) -> list[str]:
    lines = []
    for i in np.flatnonzero(result.diverged):
        m = result.member(int(i))
        lines.append(
            f"- {m['schedule']}, peak LR {m['peak_value']:.2g}, warmup "
            f"{m['warmup_steps']:.0f}: diverged at step {m['diverged_step']}"
        )
    return lines or ["- none"]


def run(out_dir: str | None = None, quick: bool = False) -> Path:
    """Runs the demo sweep, prints the table, writes plots and ``report.md``; returns the folder.

    Args:
        out_dir: the folder to write (created); default ``jaxlr-demo-<date>-<time>`` in the
            current directory.
        quick: the tiny setting (seconds), as ``jaxlr demo --quick``.

    Returns:
        The folder holding ``report.md``, ``records.json`` and the PNG plots.

    Examples:
        >>> import tempfile
        >>> from jaxlr import demo
        >>> path = demo.run(tempfile.mkdtemp(), quick=True)  # doctest: +SKIP
    """
    out = Path(out_dir) if out_dir else Path(f"jaxlr-demo-{datetime.datetime.now():%Y%m%d-%H%M%S}")
    out.mkdir(parents=True, exist_ok=True)
    task = _Task(quick)
    setting = task.cfg
    t0 = time.perf_counter()
    res = sweep(quick, task=task)
    grid_s = time.perf_counter() - t0
    halved = halving(task)
    halved_s = time.perf_counter() - t0 - grid_s
    learned = population_based(task)
    pbt_s = time.perf_counter() - t0 - grid_s - halved_s
    tab = table(res)
    div = _diverged_lines(res)
    compare = comparison(task, res, grid_s, halved, halved_s, learned, pbt_s)
    print(tab)
    print("diverged members:\n" + "\n".join(div))
    print(compare)
    plots = res.save_plots(
        out, by="schedule", x="peak_value", loss="loss", lr="lr", sharpness="lambda_max"
    )
    (out / "records.json").write_text(json.dumps(res.records(), indent=1))
    (out / "search.json").write_text(
        json.dumps(
            {
                "halving": {
                    "records": halved.records(),
                    "member_steps": halved.member_steps,
                    "survivors": halved.info["survivors"],
                    "seconds": halved_s,
                    "compile_seconds": halved.compile_seconds,
                    "selected": _selected(task, halved),
                },
                "pbt": {
                    "records": learned.records(),
                    "member_steps": learned.member_steps,
                    "winner": learned.winner,
                    "lr_path": learned.lr_path().tolist(),
                    "seconds": pbt_s,
                    "compile_seconds": learned.compile_seconds,
                    "selected": _selected(task, learned),
                },
                "grid": {"seconds": grid_s, "compile_seconds": res.compile_seconds},
            },
            indent=1,
            default=float,
        )
    )
    info = res.info
    report = [
        "# jaxlr demo: schedule x peak LR x warmup on digits",
        "",
        f"{len(res)} members ({len(FAMILIES)} schedules x {len(setting['peaks'])} peak LRs x "
        f"{len(setting['warmups'])} warmups), Adam, a 64-{setting['hidden']}-10 flax NNX MLP, "
        f"{setting['steps']} steps of batch {setting['batch']} on scikit-learn's digits "
        f"(64/16/20 train/validation/test split; members are selected on validation), "
        f"trained as one vmapped program: compile {res.compile_seconds:.1f} s, run "
        f"{info['run_seconds']:.1f} s.",
        "",
        "## Best member per schedule (selected by validation loss)",
        "",
        tab,
        "",
        "## Grid vs successive halving vs PBT (same search space)",
        "",
        compare,
        "",
        f"Halving: rungs at {rungs(setting['steps'], setting['unit'])} steps, the best third "
        f"by validation loss continues. PBT: every {setting['every']} steps the worst eighth "
        "copies the best eighth and perturbs its peak LR. Both rank by the validation loss, "
        "evaluated (eval_fn) only every few steps, where they rank. Wall times include "
        "compilation, whose "
        "seconds (tracing and XLA) the last column repeats. The peak LR applied is the largest "
        "LR the selected member (for PBT, its lineage) used.",
        "",
        "## Diverged members (loss NaN/inf or above 3 ln 10)",
        "",
        *div,
        "",
        "## Plots",
        "",
        *[f"![{p.stem}]({p.name})" for p in plots],
        "",
        "lambda_max is the top Hessian eigenvalue of the loss on a fixed batch of 256 training "
        f"images, tracked every {setting['every']} steps (jaxlr.sharpness.tracker_update); "
        "eta * lambda_max = 2 is gradient descent's stability limit (Adam's own limit applies "
        "to the preconditioned Hessian).",
        "",
    ]
    (out / "report.md").write_text("\n".join(report))
    print(f"jaxlr demo: wrote {out.resolve()}")
    return out
