"""Side-by-side timing: interleaved repeats, medians, ratios (absolute times mean little here)."""

from __future__ import annotations

import platform
import statistics
import time
from collections.abc import Callable

import jax
import jax.numpy as jnp


def schedule_sum(schedule, *, n: int):
    """The schedule alone: its values summed over an int32 counter in a scan of ``n`` steps."""

    def body(carry, _):
        count, total = carry
        return (count + 1, total + schedule(count)), None

    return jax.lax.scan(body, (jnp.int32(0), jnp.float32(0)), None, length=n)[0][1]


def block(x):
    return jax.block_until_ready(x)


def interleaved(fns: dict[str, Callable[[], object]], repeats: int = 7) -> dict[str, float]:
    """Median seconds of each zero-argument function, run round-robin so drift hits all alike.

    Each function is called once first (compilation, caches) and that call is not counted.
    """
    for fn in fns.values():
        block(fn())
    samples: dict[str, list[float]] = {k: [] for k in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            t0 = time.perf_counter()
            block(fn())
            samples[name].append(time.perf_counter() - t0)
    return {k: statistics.median(v) for k, v in samples.items()}


def machine() -> str:
    devs = jax.devices()
    kind = devs[0].device_kind if devs else "?"
    return (
        f"{platform.processor() or platform.machine()}, {len(devs)} x {devs[0].platform} "
        f"({kind}), jax {jax.__version__}"
    )
