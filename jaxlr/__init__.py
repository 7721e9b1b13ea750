"""jaxlr: learning-rate control for JAX and Optax.

Traceable schedules (``jaxlr.schedules``), peer-compatible schedulers (``jaxlr.compat``),
sharpness estimators (``jaxlr.sharpness``), Optax transforms (``jaxlr.transforms``), vectorized
sweeps (``jaxlr.sweep``) and automatic LR control (``jaxlr.auto``).
"""

from jaxlr import plot, schedules

__version__ = "0.1.0"
__all__ = ["plot", "schedules"]
