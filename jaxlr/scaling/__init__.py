"""LR scaling laws: predict the optimal LR (and batch size) of a large run from small sweeps.

- :func:`fit`: per-scale optima from sweep results (a quadratic in log LR, or the near-optimal
  set), then a weighted power law across scales with bootstrap intervals, in one compiled call;
  the :class:`ScalingFit` predicts (refusing far extrapolation), leaves one scale out, plots,
  and builds the schedule at the predicted LR.
"""

from jaxlr.scaling._fit import HeldOut, Prediction, ScalingFit, fit, load_fit
from jaxlr.scaling._optimum import Optimum

__all__ = ["HeldOut", "Optimum", "Prediction", "ScalingFit", "fit", "load_fit"]
