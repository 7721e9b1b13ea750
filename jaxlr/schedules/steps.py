"""Step arithmetic for laws: exact integer decisions for integer steps, floats for the rest.

A schedule's law receives its step as it comes (Optax's int32 counter, a Python int below
2^31, a float) and its step counts as float leaves. These helpers make the integer decisions a
law needs (has a boundary been reached, how many steps have elapsed, which stair, which cycle)
exactly for every int32 step, and hand back floats for the rest of the law. A user's family
uses them the way the built-in ones do (see ``docs/design.md``, "Add a family").
"""

from jaxlr._src.steps import (
    Sum,
    before,
    cycle_position,
    divide,
    elapsed,
    epoch,
    floor_div,
    passed,
    progress,
    reached,
    restart_cycle,
    shift,
    shift_from,
    to_float,
    triangle,
)

__all__ = [
    "Sum",
    "before",
    "cycle_position",
    "divide",
    "elapsed",
    "epoch",
    "floor_div",
    "passed",
    "progress",
    "reached",
    "restart_cycle",
    "shift",
    "shift_from",
    "to_float",
    "triangle",
]
