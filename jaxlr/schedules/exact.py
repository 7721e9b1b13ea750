"""Exact steps for custom schedule families: the step arithmetic jaxlr's own laws use.

A family registered with ``jaxlr.schedules.register(name, law, counts=(...))`` receives its step
and the named step-count hyperparameters as :class:`Exact` values (a float32 holds integers only
up to :math:`2^{24}`; an :class:`Exact` holds int32 counters and Python ints exactly). Make the
law's piecewise decisions on them (``step >= boundary``, :func:`divmod_steps`), take elapsed
times as exact differences (``step - start``), and round once with :func:`value` where the law
needs a float. The design and its trade-offs are in ``docs/design.md``.

Examples:
    >>> from jaxlr.schedules import exact, make, register
    >>> def _halving(step, *, init_value, period_steps):
    ...     return init_value * 0.5 ** exact.value(exact.floor_div(step, period_steps))
    >>> @register("doc_halving", _halving, counts=("period_steps",))
    ... def halving(*, init_value, period_steps):
    ...     return make("doc_halving", dict(init_value=init_value, period_steps=period_steps))
    >>> s = halving(init_value=1.0, period_steps=2**30 + 1)
    >>> float(s(2**30)), float(s(2**30 + 1))
    (1.0, 0.5)
"""

from jaxlr._src.exact import (
    Exact,
    at_least,
    divmod_steps,
    floor_div,
    floor_uint,
    lift,
    mulmod,
    progress,
    restart_cycle,
    split,
    value,
    where,
)

__all__ = [
    "Exact",
    "at_least",
    "divmod_steps",
    "floor_div",
    "floor_uint",
    "lift",
    "mulmod",
    "progress",
    "restart_cycle",
    "split",
    "value",
    "where",
]
