"""Evaluating a parity case and measuring its error against the peer."""

from __future__ import annotations

from dataclasses import dataclass

import jax
import jax.numpy as jnp
import numpy as np

from .cases import Case

#: values below this fraction of the schedule's peak are compared absolutely in float64
FLOOR64 = 1e-9
#: float32 run: storing a hyperparameter in float32 rounds it by up to 2**-24 relatively, and a
#: law amplifies that by up to the step count (``gamma**t``, ``cos(2 pi c t / T)``): at 2000
#: steps about 1.2e-4. The float32 check allows that, the float64 check is strict (rtol).
RTOL32 = 2e-4
ATOL32 = 1e-5


def jaxlr_values(case: Case, *, x64: bool) -> np.ndarray:
    """The jaxlr schedule of ``case`` on steps ``0 .. n-1``, built and run in float64 or float32."""
    with jax.enable_x64(x64):
        s = case.build()
        steps = jnp.arange(case.n, dtype=jnp.float64 if x64 else jnp.float32)
        return np.asarray(s(steps), dtype=np.float64)


@dataclass
class Errors:
    rel64: float  # worst pointwise relative error, float64 run (nan when the peer is float32)
    rel32: float  # worst relative error in float32 where |ref| >= 1e-3 * peak
    abs32: float  # worst absolute error in float32, as a fraction of the peak
    ok: bool


def measure(case: Case, ref: np.ndarray) -> Errors:
    peak = float(np.max(np.abs(ref))) or 1.0
    rel64 = float("nan")
    ok = True
    if case.x64:
        got = jaxlr_values(case, x64=True)
        err = np.abs(got - ref) / np.maximum(np.abs(ref), FLOOR64 * peak)
        rel64 = float(np.max(err))
        ok &= rel64 <= case.rtol
    got = jaxlr_values(case, x64=False)
    diff = np.abs(got - ref)
    big = np.abs(ref) >= 1e-3 * peak
    rel32 = float(np.max(diff[big] / np.abs(ref[big]), initial=0.0))
    abs32 = float(np.max(diff)) / peak
    ok &= bool(np.all(diff <= RTOL32 * np.abs(ref) + ATOL32 * peak))
    return Errors(rel64, rel32, abs32, ok)
