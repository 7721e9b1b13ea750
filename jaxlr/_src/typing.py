"""Type aliases shared by every jaxlr layer."""

from __future__ import annotations

from typing import Any

#: Any nesting of arrays in tuples, lists, dicts, NamedTuples, dataclasses (params, states).
PyTree = Any
