"""Optax transforms that control the learning rate: scheduled, loss-driven, curvature-driven.

Every transform is an ``optax.GradientTransformationExtraArgs`` with a ``NamedTuple`` state whose
hyperparameters are arrays (edit them or ``vmap`` over them without recompiling). Transforms that
scale updates multiply by a positive LR: chain them after an Optax optimizer built with
``learning_rate=1.0``. :func:`current_lr` reads the applied LR from any state.
"""

from jaxlr.transforms._common import current_lr
from jaxlr.transforms._hypergradient import HypergradientState, hypergradient
from jaxlr.transforms._plateau import PlateauState, greedy_lr, reduce_on_plateau
from jaxlr.transforms._schedule import (
    InjectSchedulesState,
    ScaleByScheduleState,
    inject_schedules,
    scale_by_schedule,
)
from jaxlr.transforms._sharpness import (
    SharpnessCapState,
    SharpnessWarmupState,
    sharpness_cap,
    sharpness_warmup,
)

__all__ = [
    "HypergradientState", "InjectSchedulesState", "PlateauState", "ScaleByScheduleState",
    "current_lr", "greedy_lr", "hypergradient", "inject_schedules", "reduce_on_plateau",
    "scale_by_schedule", "SharpnessCapState", "SharpnessWarmupState", "sharpness_cap",
    "sharpness_warmup",
]
