"""Decay-free training: WSD and cosine against WSM checkpoint merging, at several budgets.

Task: a 64-128-10 tanh MLP on scikit-learn's 8x8 digits (offline, 1437 train / 360 test images),
SGD with momentum 0.9, batch 32, peak LR 0.1 with 5% linear warmup, 3 seeds vmapped. For each
budget T:

- ``cosine``: warmup + cosine to 0 over T;
- ``wsd``: warmup + constant + linear decay to 0 over the last 20% of T;
- ``wsm``: warmup + constant LR for all T steps (no decay), wrapped in
  ``transforms.window_merging`` keeping k=8 checkpoints over the last 20% of T whose merge
  weights come from the same linear decay (``decay_to_merge_weights(decay_weights(linear, ...))``);
- ``wsm-mean``, ``wsm-1sqrt``: other recipes on the same window, evaluated in one vmapped call
  (``transforms.evaluate_merges``); ``constant``: the last iterate of the constant run.

Metric: full training-set and test-set cross-entropy of the evaluated parameters.

Run: ``KERAS_BACKEND=jax .venv/bin/python experiments/decay_free.py`` (about a minute on 2 CPU
cores). Writes experiments/results/decay_free.{png,json,md}.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax

import jaxlr
from experiments._common import digits
from jaxlr import transforms as T

RESULTS = Path(__file__).resolve().parent / "results"
BUDGETS, PEAK, BATCH, SEEDS, K, DECAY_FRAC = (250, 500, 1000, 2000), 0.1, 32, 3, 8, 0.2


(XTR, YTR), (XTE, YTE) = digits()


def init(key):
    k1, k2 = jax.random.split(key)
    return {
        "w1": jax.random.normal(k1, (64, 128)) / 8.0,
        "b1": jnp.zeros(128),
        "w2": jax.random.normal(k2, (128, 10)) / np.sqrt(128.0),
        "b2": jnp.zeros(10),
    }


def xent(p, x, y):
    logits = jnp.tanh(x @ p["w1"] + p["b1"]) @ p["w2"] + p["b2"]
    return jnp.mean(optax.softmax_cross_entropy_with_integer_labels(logits, y))


def metrics(p):
    return jnp.stack([xent(p, XTR, YTR), xent(p, XTE, YTE)])


def train(schedule, total, key, merge_weights=None):
    """One seed: SGD momentum; with merge weights, the window_merging wrapper is used."""
    tx = optax.sgd(schedule, momentum=0.9)
    if merge_weights is not None:
        every = int(DECAY_FRAC * total) // K
        tx = T.window_merging(tx, weights=merge_weights, every=every)
    k_init, k_data = jax.random.split(key)
    params = init(k_init)

    def step(carry, i):
        p, s = carry
        idx = jax.random.randint(jax.random.fold_in(k_data, i), (BATCH,), 0, XTR.shape[0])
        g = jax.grad(xent)(p, XTR[idx], YTR[idx])
        u, s = tx.update(g, s, p)
        return (optax.apply_updates(p, u), s), None

    (p, s), _ = jax.lax.scan(step, (params, tx.init(params)), jnp.arange(total))
    return p, s


def run_budget(total):
    S = jaxlr.schedules
    warm = int(0.05 * total)
    keys = jax.random.split(jax.random.key(0), SEEDS)
    cos = S.warmup_cosine(peak_value=PEAK, warmup_steps=warm, total_steps=total)
    wsd = S.wsd(peak_value=PEAK, total_steps=total, warmup_steps=warm, decay_fraction=DECAY_FRAC)
    const = S.warmup(S.constant(value=PEAK), warmup_steps=warm)
    d = DECAY_FRAC * total
    lin = S.linear(init_value=1.0, end_value=0.0, total_steps=d)
    sqrt = S.polynomial(init_value=1.0, end_value=0.0, total_steps=d, power=0.5)
    c_lin = T.decay_to_merge_weights(T.decay_weights(lin, decay_steps=d, num_checkpoints=K))
    c_sqrt = T.decay_to_merge_weights(T.decay_weights(sqrt, decay_steps=d, num_checkpoints=K))
    recipes = jnp.stack([c_lin, jnp.full(K + 1, 1.0 / (K + 1)), c_sqrt])

    out = {}
    for name, sch in (("cosine", cos), ("wsd", wsd)):
        p, _ = jax.jit(jax.vmap(lambda k, s=sch: train(s, total, k)))(keys)
        out[name] = np.asarray(jax.vmap(metrics)(p))

    def wsm(k):
        p, s = train(const, total, k, merge_weights=c_lin)
        merged = T.eval_params(s, p)
        others = T.evaluate_merges(metrics, s.snapshots, recipes)
        return metrics(p), metrics(merged), others

    last, merged, others = jax.jit(jax.vmap(wsm))(keys)
    out["constant"] = np.asarray(last)
    out["wsm"] = np.asarray(merged)
    out["wsm-mean"] = np.asarray(others[:, 1])
    out["wsm-1sqrt"] = np.asarray(others[:, 2])
    # the wrapper's merge and the vmapped recipe evaluation agree
    np.testing.assert_allclose(out["wsm"], np.asarray(others[:, 0]), rtol=1e-4)
    return {
        k: dict(
            train=float(v[:, 0].mean()), test=float(v[:, 1].mean()), test_std=float(v[:, 1].std())
        )
        for k, v in out.items()
    }


def main():
    t0 = time.time()
    results = {t: run_budget(t) for t in BUDGETS}
    elapsed = time.time() - t0
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "decay_free.json").write_text(
        json.dumps(
            dict(
                setup=dict(
                    budgets=BUDGETS,
                    peak=PEAK,
                    batch=BATCH,
                    seeds=SEEDS,
                    checkpoints=K,
                    decay_fraction=DECAY_FRAC,
                ),
                results=results,
                seconds=elapsed,
            ),
            indent=1,
        )
    )
    names = list(results[BUDGETS[0]])
    from matplotlib.figure import Figure

    fig = Figure(figsize=(10, 4))
    for ax, split in zip(fig.subplots(1, 2), ("train", "test"), strict=True):
        for i, n in enumerate(names):
            ax.plot(
                BUDGETS,
                [results[t][n][split] for t in BUDGETS],
                marker="o",
                color=f"C{i}",
                label=n,
                ls="--" if n.startswith("wsm") else "-",
            )
        ax.set(
            xscale="log",
            yscale="log",
            xlabel="step budget",
            ylabel=f"{split} cross-entropy",
            title=f"{split} loss at the end of each budget",
        )
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(RESULTS / "decay_free.png", dpi=110)
    lines = [
        "# Decay-free training: cosine / WSD / WSM at several budgets",
        "",
        "MLP on digits, SGD momentum 0.9, peak LR 0.1, 5% warmup, mean over 3 seeds. WSM = "
        "constant LR + merge of 8 checkpoints over the last 20% of the budget.",
        "",
        "| budget | " + " | ".join(names) + " |",
        "| --- |" + " --- |" * len(names),
    ]
    for t in BUDGETS:
        lines.append(
            f"| {t} (train) | " + " | ".join(f"{results[t][n]['train']:.4f}" for n in names) + " |"
        )
        lines.append(
            f"| {t} (test) | " + " | ".join(f"{results[t][n]['test']:.4f}" for n in names) + " |"
        )
    lines += ["", f"Runtime: {elapsed:.0f} s."]
    (RESULTS / "decay_free.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
