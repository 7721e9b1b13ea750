"""Progress reporting: a tqdm bar over chunks, advanced from inside compiled loops."""

from __future__ import annotations

import threading
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import ArrayLike


class _Active:
    """The bar of the sweep being run (None outside ``run``), shared with the host callback."""

    lock = threading.Lock()
    bar: Any = None
    offset: int = 0
    num_steps: int | None = None


def _on_step(step: Any) -> None:
    with _Active.lock:
        bar = _Active.bar
        if bar is None:
            return
        step = int(np.max(np.asarray(step)))  # one call per member when the step is batched
        if _Active.num_steps is None:
            bar.set_postfix_str(f"step {step}", refresh=False)
            return
        position = _Active.offset + min(step + 1, _Active.num_steps)
        if position > bar.n:  # idempotent: several devices or members may report one step
            bar.update(position - bar.n)


def report_progress(step: ArrayLike, *, every: int = 1) -> None:
    r"""Advances the sweep's progress bar from inside a compiled training loop.

    Call it in the body of a ``lax.scan`` / ``fori_loop`` with the loop index; every ``every``
    steps it sends the step to the host through ``jax.debug.callback`` and
    :func:`jaxlr.sweep.run` moves its bar to ``chunk * num_steps + step + 1``. Outside ``run``
    it does nothing. Pass the unbatched loop index (not a per-member counter), so that under
    ``vmap`` the callback fires once per step rather than once per member.

    .. math:: \text{report at } t \iff t \bmod \text{every} = 0

    Args:
        step: the loop index (an int array, may be traced).
        every: report every this many steps (static, >= 1); each report is one host round trip.

    Raises:
        ValueError: ``every`` not an int >= 1.

    Examples:
        >>> import jax, jax.numpy as jnp, jaxlr
        >>> def body(x, t):
        ...     jaxlr.sweep.report_progress(t, every=10)
        ...     return x + 1.0, None
        >>> float(jax.jit(lambda x: jax.lax.scan(body, x, jnp.arange(30))[0])(0.0))
        30.0
    """
    if isinstance(every, bool) or not isinstance(every, int) or every < 1:
        raise ValueError(f"report_progress: every must be an int >= 1, got every={every!r}")
    step = jnp.asarray(step)
    jax.lax.cond(step % every == 0, lambda s: jax.debug.callback(_on_step, s), lambda s: None, step)
