"""Warmup reduces sharpness: lambda_max and Adam's preconditioned lambda_max along training.

Claim (seed; Gilmer et al. 2021, Kalra & Barkeshli 2024): early in training the loss is sharp,
so the largest stable LR (~ 2 / lambda_max; for Adam ~ 38 / lambda_max of the preconditioned
Hessian P^-1 H) is small; warmup lets sharpness fall before the LR is high, and a warmup whose
length follows the measured sharpness (``jaxlr.transforms.sharpness_warmup``) can reach the
target LR without a hand-picked length.

Measured here, on the Transformer and task of ``warmup_transformer`` (2-layer post-LN encoder,
sequence reversal), Adam at a target LR of 3e-2 held constant after warmup:

1. fixed linear warmups of 0, 30, 100 and 300 steps (one vmapped sweep), with lambda_max
   (Lanczos, ``jaxlr.sharpness.top_eigenvalue``) and the preconditioned lambda_max
   (``preconditioned_top_eigenvalue`` with ``preconditioner(adam_state)``) of the loss on a fixed
   batch every 20 steps;
2. ``sharpness_warmup(optax.adam(1.0), kind="adam")`` with growth 1.02, 1.05, 1.1 per step and
   the same peak (a second vmapped sweep): the step at which it reaches the target LR, and the
   final loss, against the fixed warmups.

Run: ``.venv/bin/python -m experiments.warmup_sharpness`` (a few minutes on 2 CPU cores).
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
from jaxlr import sharpness as S

STEPS, EVERY, BATCH, LENGTH, VOCAB, PEAK, ITERS = 500, 20, 32, 12, 16, 3e-2, 10
WARMUPS = (0.0, 30.0, 100.0, 300.0)
GROWTHS = (1.02, 1.05, 1.1)
ADAM_C = float(S.stability_threshold(1.0, kind="adam"))  # 38 for b1 = 0.9


def _trainer(make):
    """A ``train_fn`` for ``jaxlr.sweep.run`` that measures sharpness every ``EVERY`` steps.

    ``make(cfg)`` returns ``(tx, lr_of)``: the optimizer and ``lr_of(opt_state, t)``, the LR
    applied at step ``t``; ``loss_fn=`` is passed to ``update`` (sharpness_warmup needs it,
    Adam ignores it).
    """
    graphdef, params0 = C.transformer(vocab=VOCAB, length=LENGTH)
    probe = C.reverse_task(jax.random.key(7), batch=256, length=LENGTH, vocab=VOCAB)
    x_eval, y_eval = C.reverse_task(jax.random.key(123), batch=512, length=LENGTH, vocab=VOCAB)
    keys = jax.random.split(jax.random.key(0), STEPS).reshape(STEPS // EVERY, EVERY)

    def loss_on(p, x, y):
        return C.cross_entropy(graphdef, p, x, y)

    def probe_loss(p):
        return loss_on(p, *probe)

    def train_fn(cfg):
        tx, lr_of = make(cfg)

        def step(carry, kt):
            p, o = carry
            key, t = kt
            x, y = C.reverse_task(key, batch=BATCH, length=LENGTH, vocab=VOCAB)
            batch_loss = lambda q: loss_on(q, x, y)  # noqa: E731
            loss, g = jax.value_and_grad(batch_loss)(p)
            u, o = tx.update(g, o, p, loss_fn=batch_loss)
            return (optax.apply_updates(p, u), o), (loss, lr_of(o, t))

        def block(carry, xs):
            ks, t0 = xs
            carry, (loss, lrs) = jax.lax.scan(step, carry, (ks, t0 + jnp.arange(EVERY)))
            p, o = carry
            k1, k2 = jax.random.split(jax.random.fold_in(jax.random.key(3), t0))
            lam = S.top_eigenvalue(probe_loss, p, key=k1, num_iters=ITERS).eigenvalue
            pre = S.preconditioned_top_eigenvalue(
                probe_loss, p, S.preconditioner(o), key=k2, num_iters=ITERS
            ).eigenvalue
            return carry, (loss, lrs, lam, pre)

        carry = (params0, tx.init(params0))
        (p, _), (loss, lrs, lam, pre) = jax.lax.scan(
            block, carry, (keys, jnp.arange(0, STEPS, EVERY))
        )
        return dict(
            loss=loss.reshape(-1),
            lr=lrs.reshape(-1),
            lambda_max=lam,
            pre_lambda_max=pre,
            eval_loss=loss_on(p, x_eval, y_eval),
            eval_accuracy=C.accuracy(graphdef, p, x_eval, y_eval),
        )

    return train_fn


def initial_sharpness():
    """lambda_max at initialization and the preconditioned one after Adam's first update.

    Adam's first preconditioner is |g_0| (bias-corrected), so its first step moves every
    coordinate by about the LR: the ratio eta * pre-lambda / 38 at that point says whether the
    target LR is stable from the start.
    """
    graphdef, params0 = C.transformer(vocab=VOCAB, length=LENGTH)
    probe = C.reverse_task(jax.random.key(7), batch=256, length=LENGTH, vocab=VOCAB)
    x, y = C.reverse_task(jax.random.key(0), batch=BATCH, length=LENGTH, vocab=VOCAB)

    def probe_loss(p):
        return C.cross_entropy(graphdef, p, *probe)

    adam = optax.adam(PEAK)
    _, state = adam.update(
        jax.grad(lambda p: C.cross_entropy(graphdef, p, x, y))(params0), adam.init(params0), params0
    )
    lam = S.top_eigenvalue(probe_loss, params0, key=jax.random.key(1), num_iters=20)
    pre = S.preconditioned_top_eigenvalue(
        probe_loss, params0, S.preconditioner(state), key=jax.random.key(2), num_iters=20
    )
    return float(lam.eigenvalue), float(pre.eigenvalue)


def fixed_sweep():
    def make(cfg):
        sched = jaxlr.schedules.warmup(
            jaxlr.schedules.constant(value=PEAK), warmup_steps=cfg["warmup_steps"]
        )
        return optax.adam(sched), lambda o, t: sched(t)

    return jaxlr.sweep.run(
        _trainer(make), jaxlr.sweep.grid(warmup_steps=np.asarray(WARMUPS)), progress=False
    )


def adaptive_sweep():
    def make(cfg):
        tx = jaxlr.transforms.sharpness_warmup(
            optax.adam(1.0),
            kind="adam",
            quantity="lambda_max",  # the recorded results are about preconditioned lambda_max
            schedule=1.0,
            target=0.9,
            growth=cfg["growth"],
            init_ratio=0.1,
            peak_value=PEAK,
            every=10,
            num_iters=4,
        )
        return tx, lambda o, t: jaxlr.transforms.current_lr(o, optimizer_lr=1.0)

    return jaxlr.sweep.run(
        _trainer(make), jaxlr.sweep.grid(growth=np.asarray(GROWTHS)), progress=False
    )


def main():
    started = time.time()
    lam0, pre1 = initial_sharpness()
    fixed = fixed_sweep()
    adapt = adaptive_sweep()
    measured = np.arange(EVERY, STEPS + 1, EVERY)
    chance = float(np.log(VOCAB))

    rows, arms = [], []
    for res, names in (
        (fixed, [f"fixed warmup {w:.0f}" for w in WARMUPS]),
        (adapt, [f"sharpness_warmup growth {g}" for g in GROWTHS]),
    ):
        lam, pre, lrs = res.metric("lambda_max"), res.metric("pre_lambda_max"), res.metric("lr")
        for i, name in enumerate(names):
            lr = lrs[i]
            rho = lr[measured - 1] * pre[i] / ADAM_C  # 1 = Adam's edge of stability
            # warmup length: the step after the last change of the LR (0: constant from start)
            changes = np.flatnonzero(np.abs(np.diff(lr)) > 1e-9 * np.abs(lr[1:]))
            end = int(changes[-1]) + 1 if changes.size else 0
            j = min(len(measured) - 1, int(np.searchsorted(measured, end + 1)))
            tail = float(np.mean(res.metric("loss")[i, -50:]))
            arm = dict(
                name=name,
                warmup_length=end,
                lr_after=float(lr[-1]),
                reaches_target=bool(lr[-1] >= 0.999 * PEAK),
                first_step_ratio=float(lr[lr > 0][0] * pre1 / ADAM_C),
                lambda_max=lam[i],
                pre_lambda_max=pre[i],
                lr=lr[measured - 1],
                rho=rho,
                measured_after_warmup=int(measured[j]),
                lambda_after=float(lam[i, j]),
                pre_after=float(pre[i, j]),
                rho_after=float(rho[j]),
                peak_lambda=float(np.nanmax(lam[i])),
                final_train_loss=tail,
                failed=tail > 0.5 * chance,
                eval_accuracy=float(res.final("eval_accuracy")[i]),
            )
            arms.append(arm)
            rows.append(
                [
                    name,
                    end,
                    arm["lr_after"],
                    arm["first_step_ratio"],
                    f"{arm['lambda_after']:.3g} / {arm['pre_after']:.3g} "
                    f"(step {arm['measured_after_warmup']})",
                    arm["rho_after"],
                    arm["peak_lambda"],
                    tail,
                    arm["eval_accuracy"],
                ]
            )
    table = C.md_table(
        [
            "arm",
            "warmup length (steps)",
            "LR after warmup",
            "eta_1 * pre-lambda_1 / 38",
            "lambda_max / pre-lambda after warmup",
            "eta * pre-lambda / 38 after warmup",
            "max lambda_max",
            "train loss (last 50)",
            "eval acc",
        ],
        rows,
    )

    fig, ax = C.figure(4, width=4.4)
    for a in arms:
        ls = "-" if a["name"].startswith("fixed") else "--"
        ax[0].plot(measured, a["lambda_max"], ls, label=a["name"])
        ax[1].plot(measured, a["pre_lambda_max"], ls, label=a["name"])
        ax[2].plot(measured, a["rho"], ls, label=a["name"])
        ax[3].plot(measured, a["lr"], ls, label=a["name"])
    ax[2].axhline(1.0, color="k", lw=0.8)
    ax[0].set(yscale="log", xlabel="step", title="lambda_max (probe batch)")
    ax[1].set(yscale="log", xlabel="step", title="preconditioned lambda_max (Adam)")
    ax[2].set(yscale="log", xlabel="step", title="eta * pre-lambda / 38 (1 = edge)")
    ax[3].set(yscale="log", xlabel="step", title=f"LR (target {PEAK})")
    ax[0].legend(fontsize=6)

    fixed_arms, adaptive = arms[: len(WARMUPS)], arms[len(WARMUPS) :]
    none, warm = fixed_arms[0], fixed_arms[1:]
    too_sharp = none["first_step_ratio"] > 1 and none["failed"]
    warm_ok = all(not a["failed"] for a in warm)
    at_edge = all(a["rho_after"] <= 1.0 for a in warm)
    after = [a["pre_after"] for a in warm]
    monotone = all(b < a for a, b in zip(after, after[1:], strict=False))
    reached = [a for a in adaptive if a["reaches_target"]]
    best_fixed = min(warm, key=lambda a: a["final_train_loss"])
    claims = [
        f"at the target LR the initial landscape is too sharp for Adam: eta * pre-lambda / 38 "
        f"after the first update = {none['first_step_ratio']:.2f} (lambda_max at init "
        f"{lam0:.3g}, preconditioned {pre1:.3g}); without warmup the run "
        + (
            "collapses to chance (train loss "
            f"{none['final_train_loss']:.2f}, ln {VOCAB} = {chance:.2f})"
            if none["failed"]
            else f"still trains (train loss {none['final_train_loss']:.3g})"
        ),
        "with warmup every run trains: "
        + ("yes" if warm_ok else "NO")
        + " ("
        + ", ".join(f"{a['warmup_length']} steps: {a['final_train_loss']:.2g}" for a in warm)
        + "); the first step's ratio shrinks by the warmup factor ("
        + ", ".join(f"{a['first_step_ratio']:.3g}" for a in warm)
        + "). Quantitatively the "
        f"first-step ratio does not predict failure: it is 1 at eta = {ADAM_C / pre1:.2g}, "
        f"yet Adam without warmup trains at 1e-2 (warmup_transformer), where it is "
        f"{1e-2 * pre1 / ADAM_C:.0f}; Adam's first preconditioner |g_0| makes P^-1 H huge "
        "along coordinates with tiny gradients",
        "right after warmup the sharpness has adapted to the LR, eta * pre-lambda / 38 <= 1: "
        + ("yes" if at_edge else "NO")
        + " ("
        + ", ".join(f"{a['warmup_length']}: {a['rho_after']:.2f}" for a in warm)
        + ")",
        "longer warmup -> lower preconditioned sharpness after warmup: "
        + ("yes" if monotone else "NO, no monotone trend")
        + " ("
        + ", ".join(f"{a['warmup_length']}: {a['pre_after']:.3g}" for a in warm)
        + "); during warmup lambda_max rises (progressive sharpening, up to "
        + ", ".join(f"{a['peak_lambda']:.3g}" for a in warm)
        + ") and falls only once the task is learned",
        f"sharpness_warmup reaches the target LR in {len(reached)}/{len(adaptive)} runs: it "
        "ends warmup at the first step where eta reaches 0.9 x its critical LR and holds that "
        "LR ("
        + ", ".join(
            f"growth {g}: {a['warmup_length']} steps, LR {a['lr_after']:.3g}, "
            f"train loss {a['final_train_loss']:.2g}"
            for g, a in zip(GROWTHS, adaptive, strict=True)
        )
        + f"); best fixed warmup: {best_fixed['warmup_length']} steps, train loss "
        f"{best_fixed['final_train_loss']:.2g}",
    ]
    verdict = (
        "reproduced"
        if too_sharp and warm_ok and at_edge and monotone
        else "partly reproduced: warmup avoids the early collapse and the sharpness adapts "
        "to the rising LR, but longer warmups do not end flatter, and sharpness_warmup "
        "does not reach the target LR"
        if too_sharp and warm_ok
        else "did NOT reproduce"
    )

    summary = f"""# Warmup reduces sharpness (Adam, 2-layer post-LN Transformer, sequence reversal)

Adam to a target LR of {PEAK} held constant after warmup, {STEPS} steps of batch {BATCH};
sharpness of the loss on a fixed batch of 256 sequences every {EVERY} steps: lambda_max by
Lanczos ({ITERS} products) and Adam's preconditioned lambda_max (lambda_max of P^-1 H with P
read from the Adam state, {ITERS} products). Adam's stability threshold for b1 = 0.9 is
{ADAM_C:.0f} / eta on the preconditioned sharpness (Cohen et al. 2022), so
eta * pre-lambda / {ADAM_C:.0f} = 1 is its edge of stability. The fixed warmups are one vmapped
sweep, the sharpness_warmup runs (target 0.9 of the critical LR, capped at the target LR,
tracker refreshed every 10 steps) another. "After warmup": the first measurement after the
LR stops changing.

{table}

**Claim**: warmup lowers sharpness before the LR is high (Gilmer et al. 2021; Kalra &
Barkeshli 2024), and a sharpness-driven warmup reaches the target LR without a hand-set length.
**Result: {verdict}.**

{chr(10).join("- " + c for c in claims)}
"""
    record = dict(
        config=dict(
            steps=STEPS,
            every=EVERY,
            batch=BATCH,
            length=LENGTH,
            vocab=VOCAB,
            peak=PEAK,
            warmups=WARMUPS,
            growths=GROWTHS,
            adam_c=ADAM_C,
        ),
        measured_steps=measured,
        initial_lambda_max=lam0,
        first_step_pre_lambda=pre1,
        arms=arms,
        claims=claims,
        verdict=verdict,
    )
    C.write("warmup_sharpness", summary=summary, record=record, fig=fig, started=started)


if __name__ == "__main__":
    main()
