"""Helpers shared by the peer-compatible constructors (private)."""

from __future__ import annotations

from typing import Any

from jaxlr._src.validate import Checker


def callable_arg(c: Checker, name: str, fn: Any) -> None:
    if not callable(fn):
        c.fail(f"{name} must be a jax-traceable function of the step, got {name}={fn!r}")
