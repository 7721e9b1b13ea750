"""Parity of jaxlr.compat with the real PyTorch, Keras and transformers, and of native schedules
with Optax. ``python -m tests.parity.report`` prints the case count and the worst errors."""
