"""The divergence rule of every jaxlr search (private): ``run``, populations, the range test.

A loss entry diverged when it is NaN, infinite, or above a threshold; a member diverged when
any of its loss entries did or a float leaf of its state is not finite. The searches differ only
in the threshold they pass: a fixed ``divergence_threshold`` (sweeps), or ``diverge_factor``
times the best smoothed loss so far (``auto.lr_range_test``).
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import ArrayLike


def diverged_entries(loss: Any, threshold: ArrayLike | None) -> Any:
    """Per entry of ``loss``: NaN, infinite, or above ``threshold`` (``None``: no bound).

    Works on NumPy arrays (results, after the fact) and traced arrays (inside a compiled step);
    ``threshold`` may be an array broadcasting against ``loss`` (a bound per member).
    """
    xp = np if isinstance(loss, np.ndarray) else jnp
    bad = ~xp.isfinite(loss)
    if threshold is not None:
        bad |= xp.where(bad, 0.0, loss) > threshold
    return bad


def healthy(loss: jax.Array | None, state: Any, threshold: ArrayLike | None) -> jax.Array:
    """Per member (leading axis): no diverged loss entry and every float state leaf finite.

    Divergence of a member is either; a member that fails it is frozen by the caller.
    """
    oks = []
    if loss is not None:
        ok = ~diverged_entries(jnp.asarray(loss), threshold)
        oks.append(ok.reshape(ok.shape[0], -1).all(1))
    for leaf in jax.tree.leaves(state):
        if jnp.issubdtype(leaf.dtype, jnp.inexact) and leaf.ndim >= 1:
            oks.append(jnp.isfinite(leaf).reshape(leaf.shape[0], -1).all(1))
    if not oks:
        raise ValueError("healthy: nothing to check")
    return jnp.stack(oks).all(0)
