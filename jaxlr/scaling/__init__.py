"""LR scaling laws: predict the optimal LR (and batch size) of a large run from small sweeps.

- :func:`fit`: per-scale optima from sweep results (a quadratic in log LR, or the near-optimal
  set), then a weighted power law across scales with bootstrap intervals, in one compiled call;
  the :class:`ScalingFit` predicts (refusing far extrapolation), leaves one scale out, plots,
  and builds the schedule at the predicted LR.
- :func:`mup` (with :func:`mup_roles`, :func:`mup_multipliers`, :func:`mup_init`): an optax
  optimizer in its muP form, so the optimal LR stays put as the width grows.
- :func:`deepseek_llm`, :func:`step_law`: published laws as presets (LLM pre-training domain);
  :func:`transfer_lr`: the base LR moved between schedules and horizons (Schaipp et al. 2025).
"""

from jaxlr.scaling._fit import HeldOut, Prediction, ScalingFit, fit, load_fit
from jaxlr.scaling._laws import PublishedLaw, deepseek_llm, step_law, transfer_lr
from jaxlr.scaling._mup import mup, mup_init, mup_multipliers, mup_roles
from jaxlr.scaling._optimum import Optimum

__all__ = ["HeldOut", "Optimum", "Prediction", "PublishedLaw", "ScalingFit", "deepseek_llm"]
__all__ += ["fit", "load_fit", "mup", "mup_init", "mup_multipliers", "mup_roles", "step_law"]
__all__ += ["transfer_lr"]
