"""Vectorized learning-rate sweeps: configurations -> one vmapped, chunked, sharded program.

``grid`` / ``zip`` / ``random`` build configurations (dicts of arrays with a leading member
axis ``K``), ``stack`` stacks schedules, ``run`` trains them all in one compiled program and
returns a :class:`SweepResult` (tables, best member, divergence, plots).
"""

from jaxlr.sweep._configs import grid, random, size, stack, zip
from jaxlr.sweep._logging import MetricsLogger
from jaxlr.sweep._optuna import optuna_search
from jaxlr.sweep._progress import report_progress
from jaxlr.sweep._result import SweepResult
from jaxlr.sweep._run import run

__all__ = ["MetricsLogger", "SweepResult", "grid", "optuna_search", "random", "report_progress",
           "run", "size", "stack", "zip"]
