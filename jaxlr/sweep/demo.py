"""The main job, ``jaxlr demo``: which schedule and which peak LR / warmup for a small model?

One vmapped sweep trains a small flax NNX MLP with Adam on scikit-learn's digits (shipped with
scikit-learn, loaded offline) for every combination of six schedule families x a log grid of
peak learning rates x warmup lengths, tracking the sharpness lambda_max on the way; it prints a
table and writes plots and a markdown report.

Why one program for six schedule families: their pytrees differ (``wsd`` has other leaves than
``step``), so they cannot be stacked. Each member builds all six schedules from its traced
hyperparameters and picks one with ``lax.switch`` on a traced family index; under ``vmap`` the
switch becomes a select, so every member evaluates six scalar laws per step (a few dozen flops)
and the expensive part, the MLP's matmuls, stays one batched program over all ``K`` members:
one trace, one compile, the best batching. One vmap per family inside one jit would compile
the training loop six times and batch six times fewer members per matmul, to save only those
scalar flops.
"""

from __future__ import annotations

import datetime
import json
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax

import jaxlr
from jaxlr.sweep._run import run as run_sweep

FAMILIES = ("constant", "step", "cosine", "warmup_cosine", "one_cycle", "wsd")


def _schedules(peak, warmup, total):
    """The six families for one member, built from traced ``peak`` / ``warmup`` (steps)."""
    s = jaxlr.schedules
    return (
        s.warmup(s.constant(value=peak), warmup_steps=warmup),
        s.warmup(s.step(init_value=peak, period_steps=(total - warmup) / 3.0, decay_rate=0.1),
                 warmup_steps=warmup),
        s.warmup(s.cosine(init_value=peak, total_steps=total - warmup), warmup_steps=warmup),
        s.warmup_cosine(peak_value=peak, warmup_steps=warmup, total_steps=total),
        # One-cycle's rise is its warmup (at least 5% of training; warmup_fraction must be > 0).
        s.one_cycle(peak_value=peak, total_steps=total,
                    warmup_fraction=jnp.maximum(warmup, 0.05 * total) / total),
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
        >>> from jaxlr.sweep import demo
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
    try:
        from jaxlr.sharpness import tracker_init
    except ImportError:
        return ()
    return tracker_init(params, key=jax.random.key(1))


def _data(seed=0):
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
        return dict(steps=40, every=10, hidden=16, batch=64, peaks=[1e-3, 1e-2],
                    warmups=[0.0, 0.1], options={"xla_backend_optimization_level": 0})
    return dict(steps=600, every=25, hidden=64, batch=128, peaks=np.logspace(-4, 0, 9).tolist(),
                warmups=[0.0, 0.1], options=None)


def sweep(quick: bool = False, *, progress: bool = True):
    """Runs the demo's sweep and returns its :class:`~jaxlr.sweep.SweepResult`.

    Args:
        quick: a tiny setting (a few seconds) for tests.
        progress: show the progress bar.

    Returns:
        The result; metrics ``loss`` (minibatch loss per step), ``lr`` (per step),
        ``lambda_max`` (every ``every`` steps), ``train_loss``, ``test_loss``, ``test_accuracy``.

    Examples:
        >>> from jaxlr.sweep import demo
        >>> res = demo.sweep(quick=True, progress=False)  # doctest: +SKIP
        >>> len(res), sorted(res.best("test_accuracy", mode="max", by="schedule"))  # doctest: +SKIP
        (24, ['constant', 'cosine', 'one_cycle', 'step', 'warmup_cosine', 'wsd'])
    """
    from flax import nnx

    cfg = _setting(quick)
    (xtr, ytr), (xte, yte) = _data()
    steps, every, batch = cfg["steps"], cfg["every"], cfg["batch"]

    class MLP(nnx.Module):
        def __init__(self, rngs):
            self.hidden = nnx.Linear(64, cfg["hidden"], rngs=rngs)
            self.out = nnx.Linear(cfg["hidden"], 10, rngs=rngs)

        def __call__(self, x):
            return self.out(jax.nn.relu(self.hidden(x)))

    # Built under jit: one compilation instead of one per eager initializer op.
    graphdef = nnx.split(nnx.eval_shape(lambda: MLP(nnx.Rngs(0))), nnx.Param)[0]
    params0 = jax.jit(lambda: nnx.split(MLP(nnx.Rngs(0)), nnx.Param)[1])()
    rng = np.random.default_rng(1)
    batches = np.stack([rng.choice(len(ytr), batch, replace=False) for _ in range(steps)])
    batches = jnp.asarray(batches.reshape(steps // every, every, batch))
    xtr, ytr, xte, yte = map(jnp.asarray, (xtr, ytr, xte, yte))
    probe = (xtr[:256], ytr[:256])  # the fixed batch whose Hessian is tracked

    def loss_on(params, x, y):
        logits = nnx.merge(graphdef, params)(x)
        return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()

    def train_fn(c):
        lr = learning_rate(c["schedule"], c["peak_value"], c["warmup_steps"], float(steps))
        tx = optax.adam(lr)

        def step(carry, idx_t):
            p, o = carry
            idx, t = idx_t
            loss, g = jax.value_and_grad(loss_on)(p, xtr[idx], ytr[idx])
            u, o = tx.update(g, o, p)
            return (optax.apply_updates(p, u), o), (loss, lr(t))

        def block(carry, xs):
            (p, o, tr), (idx, t0) = carry, xs
            jaxlr.sweep.report_progress(t0)
            (p, o), (loss, lrs) = jax.lax.scan(step, (p, o), (idx, t0 + jnp.arange(every)))
            lam, tr = lambda_max_hook(lambda q: loss_on(q, *probe), p, tr)
            return (p, o, tr), (loss, lrs, lam)

        init = (params0, tx.init(params0), _tracker_init(params0))
        (p, _, _), (loss, lrs, lam) = jax.lax.scan(
            block, init, (batches, jnp.arange(0, steps, every)))
        logits = nnx.merge(graphdef, p)(xte)
        return dict(
            loss=loss.reshape(-1), lr=lrs.reshape(-1), lambda_max=lam,
            train_loss=loss_on(p, xtr, ytr), test_loss=loss_on(p, xte, yte),
            test_accuracy=jnp.mean(jnp.argmax(logits, -1) == yte),
        )

    configs = jaxlr.sweep.grid(schedule=np.arange(len(FAMILIES)), peak_value=cfg["peaks"],
                               warmup_steps=np.asarray(cfg["warmups"]) * steps)
    # Diverged: NaN/inf, or a minibatch loss above 3x that of chance (3 ln 10 = 6.9).
    return run_sweep(train_fn, configs, progress=progress, num_steps=steps,
                     divergence_threshold=3.0 * float(np.log(10.0)),
                     labels={"schedule": FAMILIES}, compiler_options=cfg["options"])


def table(result) -> str:
    """The markdown table: per schedule, the best member by test loss, and divergence counts."""
    rows = ["| schedule | best peak LR | warmup | train loss | test loss | test acc | diverged |",
            "| --- | --- | --- | --- | --- | --- | --- |"]
    best = result.best("test_loss", by="schedule")
    for fam in FAMILIES:
        n_div = sum(1 for i in range(len(result))
                    if result.label("schedule", i) == fam and result.diverged[i])
        b = best.get(fam)
        if b is None:
            rows.append(f"| {fam} | - | - | - | - | - | {n_div} (all) |")
            continue
        rows.append(f"| {fam} | {b['peak_value']:.2g} | {b['warmup_steps']:.0f} | "
                    f"{b['train_loss']:.4f} | {b['test_loss']:.4f} | "
                    f"{b['test_accuracy']:.3f} | {n_div} |")
    return "\n".join(rows)


def _diverged_lines(result) -> list[str]:
    lines = []
    for i in np.flatnonzero(result.diverged):
        m = result.member(int(i))
        lines.append(f"- {m['schedule']}, peak LR {m['peak_value']:.2g}, warmup "
                     f"{m['warmup_steps']:.0f}: diverged at step {m['diverged_step']}")
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
        >>> from jaxlr.sweep import demo
        >>> path = demo.run(tempfile.mkdtemp(), quick=True)  # doctest: +SKIP
    """
    out = Path(out_dir) if out_dir else Path(
        f"jaxlr-demo-{datetime.datetime.now():%Y%m%d-%H%M%S}")
    out.mkdir(parents=True, exist_ok=True)
    res = sweep(quick)
    setting = _setting(quick)
    tab = table(res)
    div = _diverged_lines(res)
    print(tab)
    print("diverged members:\n" + "\n".join(div))
    plots = res.save_plots(out, by="schedule", x="peak_value", loss="loss", lr="lr",
                           sharpness="lambda_max")
    (out / "records.json").write_text(json.dumps(res.records(), indent=1))
    info = res.info
    report = [
        "# jaxlr demo: schedule x peak LR x warmup on digits",
        "",
        f"{len(res)} members ({len(FAMILIES)} schedules x {len(setting['peaks'])} peak LRs x "
        f"{len(setting['warmups'])} warmups), Adam, a 64-{setting['hidden']}-10 flax NNX MLP, "
        f"{setting['steps']} steps of batch {setting['batch']} on scikit-learn's digits "
        f"(80/20 split), trained as one vmapped program: compile "
        f"{info['compile_seconds']:.1f} s, run {info['run_seconds']:.1f} s.",
        "",
        "## Best member per schedule (by test loss)",
        "",
        tab,
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
