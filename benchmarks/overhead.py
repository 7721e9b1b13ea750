"""Overhead of a jaxlr schedule inside a jitted train step, against the same Optax schedule.

A small MLP trained with Adam for a few hundred steps in one ``lax.scan``; the learning rate comes
from ``optax.warmup_cosine_decay_schedule`` or from ``jaxlr.schedules.warmup_cosine`` (as a
closure constant, and as a traced argument, the form that lets a sweep reuse the compilation).
Target: ratio <= 1.02.

The train-step ratio is the target; the schedule alone (a million steps evaluated in one jitted
call, no model) is reported beside it, as the upper bound of what the schedule's law can cost.

Run: ``python -m benchmarks.overhead``
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import optax

import jaxlr.schedules as S
from benchmarks._timing import interleaved

STEPS, WARMUP, PEAK = 300, 30, 1e-3


def _problem():
    k1, k2, k3 = jax.random.split(jax.random.key(0), 3)
    x = jax.random.normal(k1, (256, 32))
    y = jnp.sin(x @ jax.random.normal(k2, (32, 1)))
    params = {
        "w1": 0.1 * jax.random.normal(k3, (32, 64)),
        "b1": jnp.zeros(64),
        "w2": 0.1 * jax.random.normal(k3, (64, 1)),
        "b2": jnp.zeros(1),
    }

    def loss(p):
        h = jnp.tanh(x @ p["w1"] + p["b1"])
        return jnp.mean((h @ p["w2"] + p["b2"] - y) ** 2)

    return params, loss


def _trainer(loss):
    def train(lr, params):
        opt = optax.adam(lr)
        state = opt.init(params)

        def body(carry, _):
            p, st = carry
            value, g = jax.value_and_grad(loss)(p)
            u, st = opt.update(g, st, p)
            return (optax.apply_updates(p, u), st), value

        (params, _), losses = jax.lax.scan(body, (params, state), None, length=STEPS)
        return losses[-1]

    return train


def main(repeats: int = 9) -> dict[str, float]:
    params, loss = _problem()
    train = _trainer(loss)
    ox = optax.warmup_cosine_decay_schedule(0.0, PEAK, WARMUP, STEPS)
    jx = S.warmup_cosine(peak_value=PEAK, warmup_steps=WARMUP, total_steps=STEPS)
    run_optax = jax.jit(lambda p: train(ox, p))
    run_const = jax.jit(lambda p: train(jx, p))
    run_arg = jax.jit(train)
    times = interleaved(
        {
            "optax": lambda: run_optax(params),
            "jaxlr_constant": lambda: run_const(params),
            "jaxlr_argument": lambda: run_arg(jx, params),
        },
        repeats=repeats,
    )
    ratios = {
        "overhead_jaxlr_constant_vs_optax": times["jaxlr_constant"] / times["optax"],
        "overhead_jaxlr_argument_vs_optax": times["jaxlr_argument"] / times["optax"],
    }
    for k, v in ratios.items():
        print(f"{k}: {v:.3f}  (target <= 1.02)")
    steps = jnp.arange(1_000_000, dtype=jnp.int32)
    law_optax, law_jaxlr = jax.jit(ox), jax.jit(lambda s, t: s(t))
    law = interleaved(
        {"optax": lambda: law_optax(steps), "jaxlr": lambda: law_jaxlr(jx, steps)}, repeats=repeats
    )
    ratios["law_only_jaxlr_vs_optax"] = law["jaxlr"] / law["optax"]
    print(f"law_only_jaxlr_vs_optax: {ratios['law_only_jaxlr_vs_optax']:.3f}  (information)")
    return ratios


if __name__ == "__main__":
    main()
