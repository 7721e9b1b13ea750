"""Traceable learning-rate schedules: every hyperparameter is a pytree leaf.

Each constructor validates its concrete arguments and returns a :class:`Schedule`, a callable
pytree that Optax accepts as a ``learning_rate``. Because hyperparameters are leaves, schedules
jit without retracing, stack and ``vmap``, and ``grad`` flows into them.

Integer steps (Optax's int32 counter) decide exactly for every step in :math:`[0, 2^{31})`; a
negative int32 step only while ``step - count`` fits int32 for the family's step counts (see
:class:`Schedule`).
"""

from jaxlr.schedules import presets, steps
from jaxlr.schedules._catalog import catalog
from jaxlr.schedules._combinators import (
    clip,
    join,
    noise,
    per_epoch,
    product,
    scale,
    select,
    warmup,
)
from jaxlr.schedules._config import from_config, parse
from jaxlr.schedules._core import Schedule, constructor, names, to_config
from jaxlr.schedules._families import (
    constant,
    cosine,
    exponential,
    inverse_sqrt,
    inverse_time,
    linear,
    multistep,
    noam,
    piecewise_constant,
    piecewise_interpolate,
    polynomial,
    sgdr,
    step,
    tanh,
    warmup_cosine,
)
from jaxlr.schedules._phased import (
    cyclic,
    cyclic_momentum,
    infinite,
    one_cycle,
    one_cycle_momentum,
    swa,
    wsd,
)
from jaxlr.schedules._shapes import anneal

__all__ = [
    "Schedule",
    "anneal",
    "catalog",
    "clip",
    "constant",
    "constructor",
    "cosine",
    "cyclic",
    "cyclic_momentum",
    "exponential",
    "from_config",
    "infinite",
    "inverse_sqrt",
    "inverse_time",
    "join",
    "linear",
    "multistep",
    "names",
    "noam",
    "noise",
    "one_cycle",
    "one_cycle_momentum",
    "parse",
    "per_epoch",
    "piecewise_constant",
    "piecewise_interpolate",
    "polynomial",
    "presets",
    "steps",
    "product",
    "scale",
    "select",
    "sgdr",
    "step",
    "swa",
    "tanh",
    "to_config",
    "warmup",
    "warmup_cosine",
    "wsd",
]
