"""Edge of stability: GD sharpens until lambda_max ~ 2/eta; the sharpness cap holds it below.

Full-batch gradient descent with MSE on a small tanh MLP (a 256-image subset of scikit-learn's
digits). For each learning rate eta, the uncapped run's lambda_max (Lanczos, measured every
``--measure-every`` steps) rises (progressive sharpening) until it reaches 2/eta and then hovers
there (Cohen et al., ICLR 2021). The same run with ``jaxlr.transforms.sharpness_cap`` keeps
eta_t * lambda_max / 2 at the cap fraction instead. Writes
``experiments/results/edge_of_stability.{png,json,md}``.

The minibatch-SGD arm (``--arms minibatch``) trains the same MLP with SGD on minibatches of
``--batch`` (a new one every step) at ``--minibatch-lr``, with and without
``sharpness_cap(schedule=eta, loss_fn=..., batch=minibatch)`` (defaults: an estimate on
every step's minibatch). Every ``--measure-every`` steps an independent Lanczos measures
lambda_max of the full-batch loss and of that step's minibatch at the step's params, and
``eta_t * lambda`` is compared with GD's limit 2. Writes
``experiments/results/edge_of_stability_minibatch.{json,md}``.

Run:  python experiments/edge_of_stability.py            (a few minutes on 2 CPU cores)
      python experiments/edge_of_stability.py --arms minibatch
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxlr import sharpness
from jaxlr import transforms as T

RESULTS = Path(__file__).resolve().parent / "results"

_READING = """Without the cap, lambda_max rises (progressive sharpening; eta=0.3) or starts
(eta=0.5, 0.8) at 2/eta and then hovers there: the fourth column is the median ratio
lambda/(2/eta) over the tail, with its range. With `sharpness_cap(schedule=eta,
fraction=0.9)` the LR is lowered as the network sharpens, so eta_t * lambda_max / 2 stays at 0.9
(measured by an independent Lanczos run, not the cap's own tracker): the sharpness still grows,
but the dynamics stay below their edge of stability 2/eta_t.

Files: `edge_of_stability.png` (left: no cap, 2/eta dashed; middle: cap, 2/eta_t dotted; right:
eta_t * lambda_max / 2), `edge_of_stability.json` (every trajectory and the summary)."""


def data(n: int):
    from sklearn.datasets import load_digits

    x, y = load_digits(return_X_y=True)
    x = (x[:n] / 16.0).astype(np.float32)
    x = x - x.mean(0)
    targets = np.eye(10, dtype=np.float32)[y[:n]]
    return jnp.asarray(x), jnp.asarray(targets)


def init_mlp(key, sizes):
    params = []
    for k, (a, b) in zip(
        jax.random.split(key, len(sizes) - 1), zip(sizes[:-1], sizes[1:]), strict=True
    ):
        params.append({"w": jax.random.normal(k, (a, b)) / np.sqrt(a), "b": jnp.zeros(b)})
    return params


def mlp(params, x):
    for layer in params[:-1]:
        x = jnp.tanh(x @ layer["w"] + layer["b"])
    return x @ params[-1]["w"] + params[-1]["b"]


def make_loss(x, y):
    return lambda p: 0.5 * jnp.mean(jnp.sum((mlp(p, x) - y) ** 2, axis=-1))


def batch_loss(p, batch):
    x, y = batch
    return 0.5 * jnp.mean(jnp.sum((mlp(p, x) - y) ** 2, axis=-1))


def run_minibatch(params, tx, *, x, y, idx, measure_every, key):
    """Minibatch SGD over the ``[steps, batch]`` indices ``idx``; every ``measure_every`` steps,
    at that step's params, the LR it applied and independent Lanczos lambda_max estimates of the
    full-batch loss and of its own minibatch."""

    def one(carry, i):
        p, s = carry
        batch = (x[i], y[i])
        u, s = tx.update(jax.grad(batch_loss)(p, batch), s, p, batch=batch)
        return (optax.apply_updates(p, u), s), None

    @jax.jit
    def chunk(p, s, ids, k):
        (p, s), _ = jax.lax.scan(one, (p, s), ids[:-1])
        batch = (x[ids[-1]], y[ids[-1]])
        p_meas = p
        (p, s), _ = one((p, s), ids[-1])
        k1, k2 = jax.random.split(k)
        full = sharpness.top_eigenvalue(
            batch_loss, p_meas, batch=(x, y), key=k1, num_iters=40, tol=1e-4
        ).eigenvalue
        mini = sharpness.top_eigenvalue(
            batch_loss, p_meas, batch=batch, key=k2, num_iters=40, tol=1e-4
        ).eigenvalue
        return p, s, T.current_lr(s), full, mini, batch_loss(p_meas, (x, y))

    state = tx.init(params)
    out = {"step": [], "lr": [], "lambda_full": [], "lambda_mini": [], "loss": []}
    for i in range(idx.shape[0] // measure_every):
        ids = idx[i * measure_every : (i + 1) * measure_every]
        params, state, lr, full, mini, loss = chunk(params, state, ids, jax.random.fold_in(key, i))
        out["step"].append((i + 1) * measure_every - 1)
        for name, v in (("lr", lr), ("lambda_full", full), ("lambda_mini", mini), ("loss", loss)):
            out[name].append(float(v))
    return out


def _worst(v):
    """The largest value, or inf once the run diverged (NaN)."""
    return float(np.inf) if np.isnan(v).any() else float(v.max())


def minibatch_arm(args, x, y, params):
    eta = args.minibatch_lr
    rng = np.random.default_rng(2)
    idx = jnp.asarray(
        np.stack(
            [rng.choice(x.shape[0], args.batch, replace=False) for _ in range(args.minibatch_steps)]
        )
    )
    arms = {
        "no cap": optax.chain(optax.sgd(1.0), T.scale_by_schedule(eta)),
        "sharpness_cap (defaults, minibatch)": optax.chain(
            optax.sgd(1.0),
            T.sharpness_cap(
                schedule=eta,
                fraction=args.fraction,
                loss_fn=batch_loss,
                quantity="lambda_max",  # this experiment's recorded claim is about lambda_max
            ),
        ),
    }
    rows, runs = [], {}
    for label, tx in arms.items():
        r = run_minibatch(
            params,
            tx,
            x=x,
            y=y,
            idx=idx,
            measure_every=args.measure_every,
            key=jax.random.PRNGKey(3),
        )
        runs[label] = r
        lr = np.asarray(r["lr"])
        full, mini = lr * np.asarray(r["lambda_full"]), lr * np.asarray(r["lambda_mini"])
        rows.append(
            {
                "arm": label,
                "eta": eta,
                "full_eta_lambda_max": _worst(full),
                "diverged_at_step": next(
                    (s for s, v in zip(r["step"], r["loss"], strict=True) if not np.isfinite(v)),
                    None,
                ),
                "full_under_2": float(np.mean(full <= 2.0)),
                "mini_eta_lambda_max": _worst(mini),
                "mini_under_2": float(np.mean(mini <= 2.0)),
                "mini_eta_lambda_median": float(np.nanmedian(mini)),
                "final_full_loss": r["loss"][-1],
            }
        )
        print(
            f"minibatch {label}: eta*lambda_full max {_worst(full):.3f} (<= 2 on "
            f"{np.mean(full <= 2):.0%}), eta*lambda_mini max {_worst(mini):.3f} (<= 2 on "
            f"{np.mean(mini <= 2):.0%}), final loss {r['loss'][-1]:.4f}",
            flush=True,
        )
    return rows, runs


def run(loss_fn, params, tx, *, steps, measure_every, key):
    """GD for ``steps`` steps; every ``measure_every`` an independent Lanczos lambda_max."""

    def one(carry, _):
        p, s = carry
        loss, g = jax.value_and_grad(loss_fn)(p)
        u, s = tx.update(g, s, p, loss_fn=loss_fn)
        return (optax.apply_updates(p, u), s), (loss, T.current_lr(s))

    @jax.jit
    def chunk(p, s, k):
        (p, s), (losses, lrs) = jax.lax.scan(one, (p, s), None, length=measure_every)
        eig = sharpness.top_eigenvalue(loss_fn, p, key=k, num_iters=20)
        return p, s, losses, lrs, eig.eigenvalue

    state = tx.init(params)
    out = {"step": [], "loss": [], "lr": [], "lambda_max": []}
    for i in range(steps // measure_every):
        params, state, losses, lrs, lam = chunk(params, state, jax.random.fold_in(key, i))
        out["step"].append((i + 1) * measure_every)
        out["loss"].append(float(losses[-1]))
        out["lr"].append(float(lrs[-1]))
        out["lambda_max"].append(float(lam))
    return out


def summarize(lrs, runs, tail):
    rows = []
    for eta, (free, capped) in zip(lrs, runs, strict=True):
        lam = np.asarray(free["lambda_max"])
        k = max(1, int(len(lam) * tail))
        ratio = lam[-k:] / (2.0 / eta)
        cap_lam = np.asarray(capped["lambda_max"])
        cap_rho = np.asarray(capped["lr"]) * cap_lam / 2.0
        rows.append(
            {
                "eta": eta,
                "two_over_eta": 2.0 / eta,
                "uncapped_first_step_at_edge": next(
                    (s for s, v in zip(free["step"], lam, strict=True) if v >= 0.97 * 2 / eta), None
                ),
                "uncapped_tail_lambda_over_2_eta_median": float(np.median(ratio)),
                "uncapped_tail_lambda_over_2_eta_min": float(ratio.min()),
                "uncapped_tail_lambda_over_2_eta_max": float(ratio.max()),
                "capped_eta_lambda_over_2_max": float(cap_rho.max()),
                "capped_eta_lambda_over_2_tail_median": float(np.median(cap_rho[-k:])),
                "capped_final_lr": float(capped["lr"][-1]),
                "uncapped_final_loss": free["loss"][-1],
                "capped_final_loss": capped["loss"][-1],
            }
        )
    return rows


def plot(lrs, runs, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(15, 4.2))
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for eta, (free, capped), col in zip(lrs, runs, colors, strict=False):
        axes[0].plot(free["step"], free["lambda_max"], color=col, label=f"GD eta={eta:g}")
        axes[0].axhline(2 / eta, color=col, ls="--", lw=0.8)
        axes[1].plot(capped["step"], capped["lambda_max"], color=col, label=f"capped eta={eta:g}")
        axes[1].plot(capped["step"], 2 / np.asarray(capped["lr"]), color=col, ls=":", lw=1.0)
        rho = np.asarray(capped["lr"]) * np.asarray(capped["lambda_max"]) / 2
        free_rho = eta * np.asarray(free["lambda_max"]) / 2
        axes[2].plot(free["step"], free_rho, color=col, lw=0.8, alpha=0.6)
        axes[2].plot(capped["step"], rho, color=col, ls="-.", label=f"eta={eta:g}")
    axes[0].set(title="no cap: lambda_max vs 2/eta (dashed)", xlabel="step", ylabel="lambda_max")
    axes[1].set(
        title="sharpness_cap(fraction=0.9): lambda_max vs 2/eta_t (dotted)",
        xlabel="step",
        ylabel="lambda_max",
    )
    axes[2].axhline(1.0, color="k", lw=0.8)
    axes[2].set(title="eta_t * lambda_max / 2 (solid: no cap, dash-dot: cap)", xlabel="step")
    for ax in axes:
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--lrs", type=float, nargs="+", default=[0.3, 0.5, 0.8])
    ap.add_argument("--steps", type=int, default=3000)
    ap.add_argument("--measure-every", type=int, default=20)
    ap.add_argument("--samples", type=int, default=256)
    ap.add_argument("--width", type=int, default=32)
    ap.add_argument("--fraction", type=float, default=0.9)
    ap.add_argument("--tail", type=float, default=0.4, help="fraction of the run summarized")
    ap.add_argument("--out", type=Path, default=RESULTS)
    ap.add_argument(
        "--arms", nargs="+", default=["full", "minibatch"], choices=["full", "minibatch"]
    )
    ap.add_argument("--batch", type=int, default=32, help="minibatch size (minibatch arm)")
    ap.add_argument("--minibatch-steps", type=int, default=600)
    ap.add_argument("--minibatch-lr", type=float, default=0.5)
    args = ap.parse_args(argv)

    t0 = time.time()
    x, y = data(args.samples)
    loss_fn = make_loss(x, y)
    params = init_mlp(jax.random.PRNGKey(0), [64, args.width, args.width, 10])
    args.out.mkdir(parents=True, exist_ok=True)
    if "minibatch" in args.arms:
        write_minibatch(args, *minibatch_arm(args, x, y, params), time.time() - t0)
    if "full" not in args.arms:
        return
    key = jax.random.PRNGKey(1)
    runs = []
    for eta in args.lrs:
        free_tx = optax.chain(optax.sgd(1.0), T.scale_by_schedule(eta))
        free = run(
            loss_fn, params, free_tx, steps=args.steps, measure_every=args.measure_every, key=key
        )
        cap_tx = optax.chain(
            optax.sgd(1.0),
            T.sharpness_cap(schedule=eta, fraction=args.fraction, every=5, quantity="lambda_max"),
        )
        capped = run(
            loss_fn, params, cap_tx, steps=args.steps, measure_every=args.measure_every, key=key
        )
        runs.append((free, capped))
        print(
            f"eta={eta:g}: uncapped lambda_end={free['lambda_max'][-1]:.3f} "
            f"(2/eta={2 / eta:.3f}); capped lambda_end={capped['lambda_max'][-1]:.3f} "
            f"lr_end={capped['lr'][-1]:.4f}",
            flush=True,
        )
    rows = summarize(args.lrs, runs, args.tail)
    plot(args.lrs, runs, args.out / "edge_of_stability.png")
    record = {
        "config": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        "summary": rows,
        "seconds": time.time() - t0,
        "runs": [
            {"eta": eta, "uncapped": f, "capped": c}
            for eta, (f, c) in zip(args.lrs, runs, strict=True)
        ],
    }
    (args.out / "edge_of_stability.json").write_text(json.dumps(record, indent=1))
    lines = [
        "# Edge of stability (full-batch GD, tanh MLP, digits subset)",
        "",
        f"Command: `python experiments/edge_of_stability.py` ({record['seconds']:.0f} s).",
        f"MLP 64-{args.width}-{args.width}-10, MSE, {args.samples} samples, "
        f"{args.steps} steps; lambda_max by Lanczos (20 HVPs) every "
        f"{args.measure_every} steps; summary over the last {args.tail:.0%} of each run.",
        "",
        "| eta | 2/eta | no cap: first step at 0.97*2/eta | no cap: lambda/(2/eta) median "
        "[min, max] | cap: max eta_t*lambda/2 | cap: median eta_t*lambda/2 | cap: final LR |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['eta']:g} | {r['two_over_eta']:.2f} | {r['uncapped_first_step_at_edge']} | "
            f"{r['uncapped_tail_lambda_over_2_eta_median']:.3f} "
            f"[{r['uncapped_tail_lambda_over_2_eta_min']:.3f}, "
            f"{r['uncapped_tail_lambda_over_2_eta_max']:.3f}] | "
            f"{r['capped_eta_lambda_over_2_max']:.3f} | "
            f"{r['capped_eta_lambda_over_2_tail_median']:.3f} | {r['capped_final_lr']:.4f} |"
        )
    lines += ["", _READING]
    (args.out / "edge_of_stability.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


def write_minibatch(args, rows, runs, seconds):
    record = {
        "config": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        "summary": rows,
        "seconds": seconds,
        "runs": runs,
    }
    (args.out / "edge_of_stability_minibatch.json").write_text(json.dumps(record, indent=1))
    lines = [
        "# Edge of stability, minibatch SGD (tanh MLP, digits subset)",
        "",
        f"Command: `python experiments/edge_of_stability.py --arms minibatch` ({seconds:.0f} s).",
        f"MLP 64-{args.width}-{args.width}-10, MSE, {args.samples} samples, SGD on a new "
        f"minibatch of {args.batch} every step, {args.minibatch_steps} steps, eta = "
        f"{args.minibatch_lr:g}; every {args.measure_every} steps an independent Lanczos "
        "(40 products, tol 1e-4) measures lambda_max of the full-batch loss and of that "
        "step's minibatch at the step's params; eta_t is the LR the step applied.",
        "",
        "| arm | max eta*lambda_full | steps with eta*lambda_full <= 2 | max eta*lambda_mini "
        "| steps with eta*lambda_mini <= 2 | median eta*lambda_mini | final full loss | "
        "diverged at step |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['arm']} | {r['full_eta_lambda_max']:.3f} | {r['full_under_2']:.0%} "
            f"| {r['mini_eta_lambda_max']:.3f} | {r['mini_under_2']:.0%} | "
            f"{r['mini_eta_lambda_median']:.3f} | {r['final_full_loss']:.4f} | "
            f"{r['diverged_at_step']} |"
        )
    free, cap = rows[0], rows[1]
    lines += [
        "",
        "Without the cap, eta*lambda of the step's own minibatch exceeds GD's limit 2 "
        f"on "
        f"{1 - free['mini_under_2']:.0%} of the measured steps (max "
        f"{free['mini_eta_lambda_max']:.2f}; full batch max "
        f"{free['full_eta_lambda_max']:.2f}: minibatch losses are sharper than the full "
        f"batch). With the cap (an estimate on every step's minibatch) the LR of each step "
        f"is {args.fraction:g} x 2 / lambda of that minibatch, so eta*lambda_mini stays at "
        f"{cap['mini_eta_lambda_median']:.2f} (max {cap['mini_eta_lambda_max']:.3f}) and "
        f"eta*lambda_full below it (max {cap['full_eta_lambda_max']:.3f}).",
    ]
    (args.out / "edge_of_stability_minibatch.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
