"""Vectorized learning-rate sweeps: configurations -> one vmapped, chunked, sharded program.

``grid`` / ``zip`` / ``random`` build configurations (pytrees with a leading member axis ``K``:
numbers, string choices as :class:`Choice`, schedules stacked by ``stack``); :class:`Space` is
the one search-space vocabulary of ``random``, ``pbt`` and the Optuna helpers; ``run`` trains
them all in one compiled program and returns a :class:`SweepResult` (tables, best member,
divergence, plots); :class:`Population` drives step-by-step searches (halving, PBT).
"""

from jaxlr.sweep._carry import Carry
from jaxlr.sweep._configs import Choice, grid, size, stack, zip
from jaxlr.sweep._halving import successive_halving
from jaxlr.sweep._logging import MetricsLogger
from jaxlr.sweep._optuna import optuna_population_search, optuna_search
from jaxlr.sweep._pbt import PBTResult, pbt
from jaxlr.sweep._policy import Policy
from jaxlr.sweep._population import Population, PopulationResult
from jaxlr.sweep._progress import report_progress
from jaxlr.sweep._result import SweepResult
from jaxlr.sweep._run import run
from jaxlr.sweep._space import Space, random

__all__ = ["SweepResult", "grid", "random", "report_progress", "run", "size", "stack", "zip"]
__all__ += ["PBTResult", "Population", "PopulationResult", "pbt", "successive_halving"]
__all__ += ["MetricsLogger", "optuna_population_search", "optuna_search"]
__all__ += ["Carry", "Choice", "Policy", "Space"]
