"""Peer-compatible schedulers: PyTorch, Keras and Hugging Face names and arguments.

``jaxlr.compat.torch``, ``jaxlr.compat.keras`` and ``jaxlr.compat.transformers`` mirror the peers'
class and function names and keyword arguments and return jaxlr schedules whose values equal the
peer's learning rates step for step (``tests/parity`` checks them against the real libraries).
:func:`lookup` finds a constructor by its dotted name (``"torch.OneCycleLR"``), :func:`catalog`
builds every one of them. Importing this package does not import torch, keras or transformers.

Examples:
    >>> from jaxlr.compat import torch as lr_scheduler
    >>> s = lr_scheduler.StepLR(step_size=30, gamma=0.1, lr=0.1)
    >>> round(float(s(30)), 6)
    0.01
"""

from jaxlr.compat import keras, torch, transformers
from jaxlr.compat._catalog import catalog, lookup

__all__ = ["catalog", "keras", "lookup", "torch", "transformers"]
