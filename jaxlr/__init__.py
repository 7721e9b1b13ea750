"""jaxlr: learning-rate control for JAX and Optax.

Traceable schedules (``jaxlr.schedules``), peer-compatible schedulers (``jaxlr.compat``),
sharpness estimators (``jaxlr.sharpness``), Optax transforms (``jaxlr.transforms``), vectorized
sweeps (``jaxlr.sweep``), automatic LR control (``jaxlr.auto``) and LR scaling laws
(``jaxlr.scaling``).
"""

import importlib

from jaxlr import plot, schedules

__version__ = "0.1.0"
_LAZY = ("auto", "compat", "recommend", "scaling", "sharpness", "sweep", "transforms")
__all__ = ["plot", "schedules", *_LAZY]


def __getattr__(name: str):
    # The higher layers load on first use, so ``import jaxlr`` stays light (PEP 562).
    if name in _LAZY:
        return importlib.import_module(f"jaxlr.{name}")
    raise AttributeError(f"module 'jaxlr' has no attribute {name!r}")
