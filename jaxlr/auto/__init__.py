"""Automatic LR control: range tests, parallel AutoLRS, loss-curve laws, checkpoint merging.

- :func:`lr_range_test` (+ :func:`plot_range_test`): Smith's test, vmapped over seeds.
- :func:`autolrs`: AutoLRS with the candidate LRs of each stage tried at once.
- :func:`momentum_law`, :func:`multi_power_law`, :func:`fit_law`, :func:`predict_loss`,
  :func:`optimize_schedule`: loss-curve laws of the LR schedule.
- :func:`decay_to_merge_weights`, :func:`window_merging`, :func:`average_merging`,
  :func:`eval_params`: decay-free training by checkpoint merging (WSM).
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
from jaxlr.auto._merge import (
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
from jaxlr.auto._range_test import RangeTestResult, Suggestion, lr_range_test, plot_range_test

__all__ = [
    "AutoLRSResult", "AverageMergeState", "LawFit", "LawPrediction", "LossCurve",
    "OptimizedSchedule", "RangeTestResult", "Stage", "Suggestion", "WindowMergeState",
    "autolrs", "average_merging", "decay_to_merge_weights", "decay_weights", "eval_params",
    "evaluate_merges", "exp_forecast", "fit_law", "lr_range_test", "merge_params",
    "merge_to_decay_weights", "momentum_law", "multi_power_law", "optimize_schedule",
    "plot_range_test", "predict_loss", "window_merging",
]
