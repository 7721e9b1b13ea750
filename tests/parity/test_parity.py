"""Every parity case: jaxlr equals the real peer (torch, transformers, keras, optax).

float64 run (peers that compute in float64): pointwise relative error <= rtol (1e-5; 1e-6 for
Optax). float32 run: ``|got - ref| <= 2e-4 |ref| + 1e-5 peak``, the float32 rounding of the
hyperparameters amplified by up to 2000 steps (see ``compare.RTOL32``).
"""

from __future__ import annotations

import functools

import numpy as np
import pytest

from .cases import all_cases
from .compare import measure

CASES = all_cases()


@functools.cache
def _ref(i: int) -> np.ndarray:
    return CASES[i].ref()


@pytest.mark.parametrize("i", range(len(CASES)), ids=[c.name for c in CASES])
def test_parity(i):
    case = CASES[i]
    ref = _ref(i)
    assert ref.shape == (case.n,) and np.all(np.isfinite(ref))
    e = measure(case, ref)
    assert e.ok, f"{case.name}: {e}"
