"""Helpers shared by the peer-compatible constructors (private)."""

from __future__ import annotations

from typing import Any

import numpy as np

from jaxlr._src.validate import Checker


def integer(c: Checker, name: str, value: Any, *, minimum: int) -> None:
    """Checks that a concrete value is an integer (an integral float counts) >= ``minimum``."""
    a = c.finite(name, value)
    if a is None:
        return
    if not (bool(np.all(a == np.round(a))) and bool(np.all(a >= minimum))):
        c.fail(f"{name} must be an integer >= {minimum}, got {name}={a.tolist()!r}")


def callable_arg(c: Checker, name: str, fn: Any) -> None:
    if not callable(fn):
        c.fail(f"{name} must be a jax-traceable function of the step, got {name}={fn!r}")
