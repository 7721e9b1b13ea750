"""Operations per schedule evaluation, jaxlr against Optax, counted from the jaxpr.

``python -m benchmarks.schedule_ops`` prints, for an int32 step (Optax's counter), the number of
primitive operations one evaluation traces to (sub-programs such as a ``jit`` inside counted by
their own operations), jaxlr's and Optax's for the same curve, and their ratio. The issue 22
target is a ratio of at most 2. The counts are also what ``tests/test_exact_steps.py`` checks.

``python -m benchmarks.schedule_ops --scan`` also times each schedule alone in a ``lax.scan``
driven by an int32 counter (nanoseconds per step, jaxlr's as an argument of the compiled scan,
and Optax's as a closure, interleaved; on a shared machine compare ratios, not times).
"""

from __future__ import annotations

import functools
import sys

import jax
import jax.numpy as jnp
import optax

import jaxlr
from benchmarks._timing import interleaved, schedule_sum

S = jaxlr.schedules


def count_ops(fn, *args) -> int:
    """Primitive operations in ``jax.make_jaxpr(fn)(*args)``, nested programs included."""

    def count(jaxpr) -> int:
        n = 0
        for eqn in jaxpr.eqns:
            inner = [
                getattr(v, "jaxpr", v)
                for p in eqn.params.values()
                for v in (p if isinstance(p, (tuple, list)) else (p,))
                if hasattr(v, "eqns") or hasattr(getattr(v, "jaxpr", None), "eqns")
            ]
            n += sum(count(j) for j in inner) if inner else 1
        return n

    return count(jax.make_jaxpr(fn)(*args).jaxpr)


def pairs() -> dict[str, tuple]:
    """name -> (jaxlr schedule, the Optax schedule of the same curve)."""
    cycle = dict(init_value=1.0, peak_value=1.0, warmup_steps=0, decay_steps=100, end_value=0.0)
    return {
        "linear": (
            S.linear(init_value=1.0, end_value=0.0, total_steps=100),
            optax.linear_schedule(1.0, 0.0, transition_steps=100),
        ),
        "cosine": (
            S.cosine(init_value=1.0, total_steps=100),
            optax.cosine_decay_schedule(1.0, decay_steps=100),
        ),
        "warmup_cosine": (
            S.warmup_cosine(peak_value=1.0, warmup_steps=10, total_steps=100),
            optax.warmup_cosine_decay_schedule(0.0, 1.0, warmup_steps=10, decay_steps=100),
        ),
        "exponential_staircase": (
            S.exponential(init_value=1.0, decay_rate=0.5, period_steps=10, staircase=True),
            optax.exponential_decay(1.0, transition_steps=10, decay_rate=0.5, staircase=True),
        ),
        "sgdr": (
            S.sgdr(peak_value=1.0, period_steps=100),
            optax.sgdr_schedule([cycle] * 4),
        ),
    }


def op_counts() -> dict[str, tuple[int, int]]:
    """name -> (jaxlr's operations, Optax's), for one int32 step."""
    t = jnp.int32(7)
    return {
        name: (count_ops(lambda t, s=s: s(t), t), count_ops(lambda t, o=o: o(t), t))
        for name, (s, o) in pairs().items()
    }


def scan_ns(n: int = 200_000, repeats: int = 5) -> dict[str, tuple[float, float]]:
    """name -> (jaxlr's, Optax's) nanoseconds per step of the schedule alone in a scan."""

    run = functools.partial(schedule_sum, n=n)
    arg = jax.jit(run)
    out = {}
    for name, (s, o) in pairs().items():
        opt = jax.jit(lambda o=o: run(o))
        times = interleaved({"jaxlr": lambda s=s: arg(s), "optax": opt}, repeats)
        out[name] = (times["jaxlr"] / n * 1e9, times["optax"] / n * 1e9)
    return out


def main() -> None:
    print(f"{'schedule':24s} {'jaxlr':>6s} {'optax':>6s} {'ratio':>6s}  (ops per evaluation)")
    for name, (ours, theirs) in op_counts().items():
        print(f"{name:24s} {ours:6d} {theirs:6d} {ours / theirs:6.2f}")
    if "--scan" in sys.argv:
        print(f"{'schedule':24s} {'jaxlr':>6s} {'optax':>6s} {'ratio':>6s}  (ns per scan step)")
        for name, (ours, theirs) in scan_ns().items():
            print(f"{name:24s} {ours:6.1f} {theirs:6.1f} {ours / theirs:6.2f}")


if __name__ == "__main__":
    main()
