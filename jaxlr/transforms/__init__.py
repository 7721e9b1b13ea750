"""Optax transforms that control the learning rate: scheduled, loss-driven, curvature-driven.

Every transform is an ``optax.GradientTransformationExtraArgs`` with a ``NamedTuple`` state that
holds its hyperparameters as arrays (a schedule whole, numbers in NamedTuples): build a new
state to edit them, or ``vmap`` over stacked states, without recompiling. Transforms that scale
updates multiply by a positive LR: chain them after an Optax optimizer built with
``learning_rate=1.0``. :func:`current_lr` reads the applied LR from any state. Decay-free
training by weight merging (WSM, running averages) wraps an optimizer the same way.
"""

from jaxlr.transforms._common import current_lr
from jaxlr.transforms._hypergradient import (
    HypergradientHyperparams,
    HypergradientState,
    hypergradient,
)
from jaxlr.transforms._learned import (
    LearnedLRHyperparams,
    LearnedLRState,
    MLPPolicy,
    applied_schedule,
    learned_lr,
    mlp_policy,
)
from jaxlr.transforms._merge import (
    AverageMergeState,
    WindowMergeState,
    average_merging,
    decay_to_merge_weights,
    decay_weights,
    eval_params,
    evaluate_merges,
    merge_params,
    merge_to_decay_weights,
    window_merging,
)
from jaxlr.transforms._plateau import (
    PlateauHyperparams,
    PlateauState,
    greedy_lr,
    observe,
    reduce_on_plateau,
)
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
    "AverageMergeState",
    "HypergradientHyperparams",
    "HypergradientState",
    "InjectSchedulesState",
    "LearnedLRHyperparams",
    "LearnedLRState",
    "MLPPolicy",
    "PlateauHyperparams",
    "PlateauState",
    "ScaleByScheduleState",
    "SharpnessCapState",
    "SharpnessWarmupState",
    "WindowMergeState",
    "applied_schedule",
    "average_merging",
    "current_lr",
    "decay_to_merge_weights",
    "decay_weights",
    "eval_params",
    "evaluate_merges",
    "greedy_lr",
    "hypergradient",
    "inject_schedules",
    "learned_lr",
    "merge_params",
    "merge_to_decay_weights",
    "mlp_policy",
    "observe",
    "reduce_on_plateau",
    "scale_by_schedule",
    "sharpness_cap",
    "sharpness_warmup",
    "window_merging",
]
