"""Overhead of a jaxlr schedule inside a jitted train step, against the same Optax schedule.

A small MLP trained with Adam for a few hundred steps in one ``lax.scan``; the learning rate comes
from ``optax.warmup_cosine_decay_schedule`` or from ``jaxlr.schedules.warmup_cosine`` (as a
closure constant, and as a traced argument, the form that lets a sweep reuse the compilation).
Target: ratio <= 1.02.

The train-step ratio is the target. Beside it: the noise floor (the Optax step timed against a
second copy of itself: on a shared machine two identical programs differ by a percent or two),
the schedule alone (a million steps evaluated in one jitted call, no model), and the schedule's
cost per step inside a ``lax.scan`` driven by an int32 counter (nanoseconds; the figure that
shows what the law itself adds to a step, e.g. the exact-step arithmetic).

Run: ``python -m benchmarks.overhead``
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import optax

import jaxlr.schedules as S
from benchmarks._timing import interleaved, schedule_sum

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


def _law_in_scan(ox, jx, repeats: int, n: int = 200_000) -> dict[str, float]:
    """Nanoseconds per step of the schedule alone, summed over an int32 counter in a scan."""

    run = functools.partial(schedule_sum, n=n)
    arg = jax.jit(run)
    const, opt = jax.jit(lambda: run(jx)), jax.jit(lambda: run(ox))
    times = interleaved(
        {"optax": opt, "jaxlr_constant": const, "jaxlr_argument": lambda: arg(jx)}, repeats
    )
    return {k: v / n * 1e9 for k, v in times.items()}


def main(repeats: int = 9) -> dict[str, float]:
    params, loss = _problem()
    train = _trainer(loss)
    ox = optax.warmup_cosine_decay_schedule(0.0, PEAK, WARMUP, STEPS)
    jx = S.warmup_cosine(peak_value=PEAK, warmup_steps=WARMUP, total_steps=STEPS)
    run_optax = jax.jit(lambda p: train(ox, p))
    run_const = jax.jit(lambda p: train(jx, p))
    run_arg = jax.jit(train)
    run_optax_again = jax.jit(lambda p: train(ox, p) + 0.0)  # the same program, compiled twice
    times = interleaved(
        {
            "optax": lambda: run_optax(params),
            "jaxlr_constant": lambda: run_const(params),
            "jaxlr_argument": lambda: run_arg(jx, params),
            "optax_again": lambda: run_optax_again(params),
        },
        repeats=repeats,
    )
    ratios = {
        "overhead_jaxlr_constant_vs_optax": times["jaxlr_constant"] / times["optax"],
        "overhead_jaxlr_argument_vs_optax": times["jaxlr_argument"] / times["optax"],
    }
    for k, v in ratios.items():
        print(f"{k}: {v:.3f}  (target <= 1.02)")
    ratios["noise_floor_optax_vs_itself"] = times["optax_again"] / times["optax"]
    print(
        f"noise_floor_optax_vs_itself: {ratios['noise_floor_optax_vs_itself']:.3f}  (information)"
    )
    for k, v in _law_in_scan(ox, jx, repeats).items():
        ratios[f"law_in_scan_ns_per_step_{k}"] = v
        print(f"law_in_scan_ns_per_step_{k}: {v:.1f}  (information)")
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
