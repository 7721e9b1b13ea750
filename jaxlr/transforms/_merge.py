"""Decay-free training: checkpoint merging (WSM) and online averages, as Optax wrappers."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.typing import ArrayLike

from jaxlr._src.validate import Checker, renamed
from jaxlr.schedules import Schedule


def decay_to_merge_weights(decay: ArrayLike) -> jax.Array:
    r"""Checkpoint-merge weights that reproduce a decay of the LR (WSM).

    Training at a constant LR :math:`\eta` and saving checkpoints :math:`\theta_0, \dots,
    \theta_k` (one per block of updates), the merge :math:`\sum_j c_j \theta_j` equals
    :math:`\theta_0 - \eta\sum_i w_i g_i`: the same gradients applied with the LR of block
    :math:`i` scaled by :math:`w_i`. For a decay :math:`1 \ge w_1 \ge \dots \ge w_k \ge 0`,

    .. math:: c_0 = 1 - w_1, \qquad c_j = w_j - w_{j+1}\ (1 \le j < k), \qquad c_k = w_k,

    which are non-negative and sum to 1. Traceable; :func:`merge_to_decay_weights` inverts it.

    Args:
        decay: ``[k]`` the LR factors :math:`w_1..w_k` of the decay blocks, oldest first.

    Returns:
        ``[k + 1]`` merge weights :math:`c_0..c_k`, oldest checkpoint first.

    Raises:
        ValueError: a concrete ``decay`` that is not 1-D, leaves [0, 1], or increases (that
            would need negative merge weights).

    Examples:
        >>> from jaxlr import transforms
        >>> transforms.decay_to_merge_weights([0.75, 0.5, 0.25]).tolist()
        [0.25, 0.25, 0.25, 0.25]

    References:
        Tian et al., WSM: Decay-Free Learning Rate Schedule via Checkpoint Merging for LLM
        Pre-training, 2025.
    """
    c = Checker("decay_to_merge_weights")
    w = c.vector("decay", decay, min_len=1)
    if w is not None:
        c.between("decay", w, 0.0, 1.0)
        if (np.diff(w) > 1e-7).any():
            c.fail(
                f"decay must be non-increasing (an increase needs a negative merge weight), "
                f"got decay={np.array2string(w, threshold=8)}"
            )
    w = jnp.asarray(decay, dtype=float)
    return jnp.concatenate([1.0 - w[:1], w[:-1] - w[1:], w[-1:]])


def merge_to_decay_weights(weights: ArrayLike) -> jax.Array:
    r"""The LR decay a checkpoint merge stands for: :math:`w_i = \sum_{j \ge i} c_j`.

    Inverse of :func:`decay_to_merge_weights`.

    Args:
        weights: ``[k + 1]`` merge weights :math:`c_0..c_k`, oldest first, summing to 1.

    Returns:
        ``[k]`` decay factors :math:`w_1..w_k`.

    Raises:
        ValueError: concrete weights that are not 1-D with at least 2 entries, or do not sum
            to 1.

    Examples:
        >>> from jaxlr import transforms
        >>> transforms.merge_to_decay_weights([0.25, 0.25, 0.25, 0.25]).tolist()
        [0.75, 0.5, 0.25]

    References:
        Tian et al., WSM, 2025.
    """
    c = Checker("merge_to_decay_weights")
    w = c.vector("weights", weights, min_len=2)
    if w is not None and abs(float(w.sum()) - 1.0) > 1e-5:
        c.fail(f"weights must sum to 1, got sum={float(w.sum())!r}")
    w = jnp.asarray(weights, dtype=float)
    return jnp.cumsum(w[::-1])[::-1][1:]


def decay_weights(
    schedule: Schedule,
    *,
    decay_steps: ArrayLike,
    num_checkpoints: int,
) -> jax.Array:
    r"""The decay factors :math:`w_i` of a decay schedule, one per checkpoint block.

    Block :math:`i` of :math:`k` covers steps :math:`[(i-1)D/k, iD/k)` of the decay; its factor
    is the schedule at the block's midpoint relative to its start:
    :math:`w_i = s((i - \tfrac12) D / k) / s(0)`.

    Args:
        schedule: a decay starting at its peak at step 0 (e.g. ``linear``, ``cosine``).
        decay_steps: :math:`D`, the length of the decay it stands for.
        num_checkpoints: :math:`k` (static).

    Returns:
        ``[k]`` factors, ready for :func:`decay_to_merge_weights`.

    Examples:
        >>> import jaxlr
        >>> from jaxlr import transforms
        >>> s = jaxlr.schedules.linear(init_value=1.0, end_value=0.0, total_steps=100)
        >>> transforms.decay_weights(s, decay_steps=100, num_checkpoints=4).tolist()
        [0.875, 0.625, 0.375, 0.125]

    References:
        Tian et al., WSM, 2025.
    """
    Checker("decay_weights").positive("decay_steps", decay_steps)
    mid = (jnp.arange(num_checkpoints) + 0.5) / num_checkpoints * decay_steps
    return schedule(mid) / schedule(0.0)


def merge_params(snapshots: Any, weights: ArrayLike) -> Any:
    r"""The weighted average :math:`\sum_j c_j \theta_j` over the leading axis of a pytree.

    Args:
        snapshots: a pytree whose leaves have a leading axis of ``k + 1`` checkpoints.
        weights: ``[k + 1]`` weights, same order.

    Returns:
        A pytree like one snapshot.

    Examples:
        >>> import jax.numpy as jnp
        >>> from jaxlr import transforms
        >>> transforms.merge_params({"w": jnp.array([[0.0], [2.0]])}, jnp.array([0.25, 0.75]))
        {'w': Array([1.5], dtype=float32)}

    References:
        Tian et al., WSM, 2025.
    """
    w = jnp.asarray(weights)
    return jax.tree.map(lambda x: jnp.tensordot(w.astype(x.dtype), x, axes=1), snapshots)


def evaluate_merges(eval_fn: Callable[[Any], Any], snapshots: Any, weights: ArrayLike) -> Any:
    """Evaluates many merge recipes in one vmapped call.

    Args:
        eval_fn: ``eval_fn(params) -> metrics`` (a scalar loss or any pytree).
        snapshots: a pytree whose leaves have a leading axis of ``k + 1`` checkpoints.
        weights: ``[R, k + 1]`` one row of merge weights per recipe (zeros drop old checkpoints,
            so recipes of different window lengths share one array).

    Returns:
        ``eval_fn`` of every merged model, with a leading axis ``R``.

    Examples:
        >>> import jax.numpy as jnp
        >>> from jaxlr import transforms
        >>> snaps = jnp.array([[1.0], [2.0], [3.0]])
        >>> recipes = jnp.array([[0.0, 0.0, 1.0], [1 / 3, 1 / 3, 1 / 3]])
        >>> transforms.evaluate_merges(lambda p: jnp.sum(p**2), snaps, recipes).round(3).tolist()
        [9.0, 4.0]

    References:
        Tian et al., WSM, 2025.
    """
    return jax.vmap(lambda w: eval_fn(merge_params(snapshots, w)))(jnp.asarray(weights))


# ---------------------------------------------------------------------------------------------
# stateful wrappers around an optimizer


class WindowMergeState(NamedTuple):
    """State of :func:`window_merging`."""

    inner_state: Any  # the wrapped optimizer's state
    snapshots: Any  # params pytree with a leading axis k + 1, oldest first
    count: jax.Array  # [] int32: snapshots taken, saturating at k + 1
    step: jax.Array  # [] int32: updates applied
    every: jax.Array  # [] float: steps between snapshots (data, sweepable)
    weights: jax.Array  # [k + 1] merge weights c_0..c_k (data, sweepable)


class AverageMergeState(NamedTuple):
    """State of :func:`average_merging`."""

    inner_state: Any  # the wrapped optimizer's state
    average: Any  # params pytree: the running average of the snapshots
    count: jax.Array  # [] int32: snapshots averaged
    step: jax.Array  # [] int32: updates applied
    every: jax.Array  # [] float: steps between snapshots
    decay: jax.Array  # [] float: EMA decay; 1 gives the running mean


def _snapshot_due(step: jax.Array, every: jax.Array) -> jax.Array:
    return jnp.mod(step.astype(every.dtype), every) == 0


@renamed(inner="optimizer")
def window_merging(
    optimizer: optax.GradientTransformation,
    *,
    weights: ArrayLike,
    every: ArrayLike = 1,
) -> optax.GradientTransformationExtraArgs:
    r"""Wraps an optimizer to keep the last ``k + 1`` parameter snapshots for a WSM merge.

    Updates pass through ``optimizer`` unchanged; every ``every`` steps the new parameters
    (``params + updates``) are pushed into a window of ``k + 1 = len(weights)`` snapshots.
    :func:`eval_params` returns :math:`\sum_j c_j \theta_j` over the window (oldest first);
    while fewer than ``k + 1`` snapshots exist, the weights of the newest ``count`` slots are
    renormalized (no snapshot yet: the current params). ``weights`` and ``every`` live in the
    state as data.

    Args:
        optimizer: the wrapped optimizer (at a constant or warmup-stable LR).
        weights: ``[k + 1]`` merge weights, e.g. ``decay_to_merge_weights(decay_weights(...))``.
        every: steps between snapshots (> 0).

    Returns:
        An ``optax.GradientTransformationExtraArgs`` whose ``update`` needs ``params``.

    Raises:
        ValueError: concrete ``weights`` not 1-D or not summing to 1; ``every <= 0``.

    Examples:
        >>> import jax.numpy as jnp, optax
        >>> from jaxlr import transforms
        >>> tx = transforms.window_merging(optax.sgd(1.0), weights=[0.5, 0.5])
        >>> p = jnp.zeros(1)
        >>> s = tx.init(p)
        >>> for g in (-1.0, -2.0):
        ...     u, s = tx.update(jnp.full(1, g), s, p)
        ...     p = optax.apply_updates(p, u)
        >>> p.tolist(), transforms.eval_params(s, p).tolist()
        ([3.0], [2.0])

    References:
        Tian et al., WSM: Decay-Free Learning Rate Schedule via Checkpoint Merging for LLM
        Pre-training, 2025; Sanyal et al., Early Weight Averaging (LAWA), 2023.
    """
    c = Checker("window_merging")
    w = c.vector("weights", weights, min_len=1)
    if w is not None and abs(float(w.sum()) - 1.0) > 1e-5:
        c.fail(f"weights must sum to 1, got sum={float(w.sum())!r}")
    c.positive("every", every)
    weights = jnp.asarray(weights, dtype=float)
    k1 = weights.shape[0]

    def init(params):
        snaps = jax.tree.map(lambda x: jnp.zeros((k1, *jnp.shape(x)), jnp.result_type(x)), params)
        return WindowMergeState(
            optimizer.init(params),
            snaps,
            jnp.zeros((), jnp.int32),
            jnp.zeros((), jnp.int32),
            jnp.asarray(every, float),
            weights,
        )

    def update(updates, state, params=None, **extra):
        if params is None:
            raise ValueError("window_merging: update needs params (to form the new params)")
        updates, inner_state = _inner_update(optimizer, updates, state.inner_state, params, extra)
        step = state.step + 1
        due = _snapshot_due(step, state.every)
        new = optax.apply_updates(params, updates)
        snaps = jax.tree.map(
            lambda s, x: jnp.where(due, jnp.concatenate([s[1:], x[None].astype(s.dtype)]), s),
            state.snapshots,
            new,
        )
        count = jnp.where(due, jnp.minimum(state.count + 1, k1), state.count)
        return updates, state._replace(
            inner_state=inner_state, snapshots=snaps, count=count, step=step
        )

    return optax.GradientTransformationExtraArgs(init, update)


@renamed(inner="optimizer")
def average_merging(
    optimizer: optax.GradientTransformation,
    *,
    decay: ArrayLike = 1.0,
    every: ArrayLike = 1,
) -> optax.GradientTransformationExtraArgs:
    r"""Wraps an optimizer to keep an online average of parameter snapshots (EMA or mean).

    Every ``every`` steps the new parameters :math:`\theta` update the average
    :math:`\bar\theta \leftarrow \bar\theta + r(\theta - \bar\theta)` with
    :math:`r = \max(1 - \beta, 1/n)` (:math:`n` the snapshot count): ``decay`` :math:`\beta = 1`
    is the exact running mean, :math:`\beta < 1` an EMA that starts as a running mean (so it
    carries no bias toward the initial zeros). Constant memory: one extra copy of the params.
    :func:`eval_params` returns :math:`\bar\theta`.

    Args:
        optimizer: the wrapped optimizer.
        decay: EMA decay :math:`\beta` in [0, 1]; 1 for the running mean.
        every: steps between snapshots (> 0).

    Returns:
        An ``optax.GradientTransformationExtraArgs`` whose ``update`` needs ``params``.

    Raises:
        ValueError: ``decay`` outside [0, 1], ``every <= 0``.

    Examples:
        >>> import jax.numpy as jnp, optax
        >>> from jaxlr import transforms
        >>> tx = transforms.average_merging(optax.sgd(1.0))
        >>> p = jnp.zeros(1)
        >>> s = tx.init(p)
        >>> for g in (-1.0, -2.0, -3.0):
        ...     u, s = tx.update(jnp.full(1, g), s, p)
        ...     p = optax.apply_updates(p, u)
        >>> p.tolist(), transforms.eval_params(s, p).round(4).tolist()
        ([6.0], [3.3333])

    References:
        Polyak & Juditsky, Acceleration of Stochastic Approximation by Averaging, 1992; Izmailov
        et al., Averaging Weights Leads to Wider Optima (SWA), 2018; Tian et al., WSM, 2025.
    """
    c = Checker("average_merging")
    c.between("decay", decay, 0.0, 1.0)
    c.positive("every", every)

    def init(params):
        return AverageMergeState(
            optimizer.init(params),
            jax.tree.map(jnp.zeros_like, params),
            jnp.zeros((), jnp.int32),
            jnp.zeros((), jnp.int32),
            jnp.asarray(every, float),
            jnp.asarray(decay, float),
        )

    def update(updates, state, params=None, **extra):
        if params is None:
            raise ValueError("average_merging: update needs params (to form the new params)")
        updates, inner_state = _inner_update(optimizer, updates, state.inner_state, params, extra)
        step = state.step + 1
        due = _snapshot_due(step, state.every)
        count = state.count + due.astype(jnp.int32)
        rate = jnp.maximum(1.0 - state.decay, 1.0 / jnp.maximum(count, 1))
        rate = jnp.where(due, rate, 0.0)
        new = optax.apply_updates(params, updates)
        avg = jax.tree.map(lambda a, x: a + (rate * (x - a)).astype(a.dtype), state.average, new)
        return updates, state._replace(inner_state=inner_state, average=avg, count=count, step=step)

    return optax.GradientTransformationExtraArgs(init, update)


def _inner_update(inner, updates, state, params, extra):
    if isinstance(inner, optax.GradientTransformationExtraArgs):
        return inner.update(updates, state, params, **extra)
    return inner.update(updates, state, params)


def _window_merged(state: WindowMergeState, params: Any) -> Any:
    k1 = state.weights.shape[0]
    have = jnp.arange(k1) >= k1 - state.count  # the newest `count` slots are filled
    w = jnp.where(have, state.weights, 0.0)
    total = jnp.sum(w)
    w = jnp.where(
        total > 0, w / jnp.where(total > 0, total, 1.0), (jnp.arange(k1) == k1 - 1).astype(w.dtype)
    )
    merged = merge_params(state.snapshots, w)
    return jax.tree.map(
        lambda m, p: jnp.where(state.count > 0, m.astype(p.dtype), p), merged, params
    )


def eval_params(opt_state: Any, params: Any) -> Any:
    """The parameters to evaluate: merged (WSM window), averaged, or schedule-free.

    One helper for every decay-free method: finds in ``opt_state`` (possibly nested in
    ``optax.chain`` or other containers) a :class:`WindowMergeState`, an
    :class:`AverageMergeState` or an ``optax.contrib`` schedule-free state, and returns the
    parameters to evaluate: the window merge, the average, or schedule-free's ``x`` sequence
    (``optax.contrib.schedule_free_eval_params``).

    Args:
        opt_state: the optimizer state.
        params: the training parameters (for schedule-free: its ``y`` sequence).

    Returns:
        A pytree like ``params``.

    Raises:
        ValueError: ``opt_state`` holds none of these states.

    Examples:
        >>> import jax.numpy as jnp, optax
        >>> from jaxlr import transforms
        >>> tx = optax.contrib.schedule_free_sgd(1.0, b1=0.5)
        >>> p = jnp.zeros(1)
        >>> s = tx.init(p)
        >>> u, s = tx.update(jnp.ones(1), s, p)
        >>> p = optax.apply_updates(p, u)
        >>> bool(jnp.allclose(transforms.eval_params(s, p),
        ...                   optax.contrib.schedule_free_eval_params(s, p)))
        True

    References:
        Defazio et al., The Road Less Scheduled (schedule-free), 2024; Tian et al., WSM, 2025.
    """
    sf = optax.contrib.ScheduleFreeState
    kinds = (WindowMergeState, AverageMergeState, sf)
    found = [
        x
        for x in jax.tree.leaves(opt_state, is_leaf=lambda x: isinstance(x, kinds))
        if isinstance(x, kinds)
    ]
    if not found:
        raise ValueError(
            "eval_params: opt_state holds no window_merging, average_merging or "
            f"schedule-free state, got {type(opt_state).__name__}"
        )
    state = found[0]
    if isinstance(state, WindowMergeState):
        return _window_merged(state, params)
    if isinstance(state, AverageMergeState):
        return jax.tree.map(lambda a, p: jnp.where(state.count > 0, a, p), state.average, params)
    return optax.contrib.schedule_free_eval_params(state, params)
