"""Automatic LR control: range tests, parallel AutoLRS, loss-curve laws.

- :func:`lr_range_test` (+ :func:`plot_range_test`): Smith's test, vmapped over seeds.
- :func:`autolrs`: AutoLRS with the candidate LRs of each stage tried at once.
- :func:`momentum_law`, :func:`multi_power_law`, :func:`fit_law`, :func:`predict_loss`,
  :func:`optimize_schedule`: loss-curve laws of the LR schedule.
- :func:`refine_schedule`: a schedule refined from an earlier run's gradient norms.
- :func:`meta_train` (+ :class:`Task`, :func:`run_task`, :func:`policy_tx`,
  :func:`save_policy`, :func:`load_policy`): learned LR policies (the controller is
  :func:`jaxlr.transforms.learned_lr`) meta-trained by OpenES over a batch of tasks.

Checkpoint merging (WSM) lives in :mod:`jaxlr.transforms` (``window_merging``, ...).
"""

from jaxlr.auto._autolrs import AutoLRSResult, Stage, autolrs, exp_forecast
from jaxlr.auto._laws import (
    LawFit,
    LawPrediction,
    LossCurve,
    OptimizedSchedule,
    fit_law,
    momentum_law,
    multi_power_law,
    optimize_schedule,
    predict_loss,
)
from jaxlr.auto._learned import (
    ESState,
    MetaTrainResult,
    Task,
    TaskRun,
    load_policy,
    meta_train,
    policy_tx,
    run_task,
    save_policy,
)
from jaxlr.auto._range_test import RangeTestResult, Suggestion, lr_range_test, plot_range_test
from jaxlr.auto._refine import refine_schedule

__all__ = [
    "AutoLRSResult",
    "ESState",
    "LawFit",
    "LawPrediction",
    "LossCurve",
    "MetaTrainResult",
    "OptimizedSchedule",
    "RangeTestResult",
    "Stage",
    "Suggestion",
    "Task",
    "TaskRun",
    "autolrs",
    "exp_forecast",
    "fit_law",
    "load_policy",
    "lr_range_test",
    "meta_train",
    "momentum_law",
    "multi_power_law",
    "optimize_schedule",
    "plot_range_test",
    "policy_tx",
    "predict_loss",
    "refine_schedule",
    "run_task",
    "save_policy",
]
