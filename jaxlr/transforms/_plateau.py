"""Loss-driven LR control: reduce-on-plateau and GreedyLR share one observation machinery."""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import optax
from jax.typing import ArrayLike

from jaxlr._src.numeric import as_float
from jaxlr._src.validate import Checker
from jaxlr.transforms._common import floats, lr_state, require, scale_updates


@lr_state
class PlateauState(NamedTuple):
    """State of :func:`reduce_on_plateau` and :func:`greedy_lr`."""

    lr: jax.Array  # () LR applied by the last update
    best: jax.Array  # () best smoothed metric so far (+inf / -inf before the first)
    num_bad: jax.Array  # () consecutive observations that were not an improvement
    num_good: jax.Array  # () consecutive improvements (greedy_lr only)
    cooldown_counter: jax.Array  # () observations left in which no decrease is counted
    warmup_counter: jax.Array  # () observations left in which no increase is counted
    history: jax.Array  # (window,) last raw metric values (ring buffer)
    count: jax.Array  # () int32, observations made
    hyperparams: dict[str, jax.Array]  # factor, patience, threshold, cooldown, ... (editable)


def _check_common(c: Checker, mode, threshold_mode, patience, threshold, cooldown, window,
                  init_value, min_value):
    c.choice("mode", mode, ("min", "max"))
    c.choice("threshold_mode", threshold_mode, ("rel", "abs"))
    c.nonnegative("patience", patience)
    c.nonnegative("threshold", threshold)
    c.nonnegative("cooldown", cooldown)
    if not isinstance(window, int) or isinstance(window, bool) or window < 1:
        c.fail(f"window must be an int >= 1 (it sizes a buffer), got window={window!r}")
    c.positive("init_value", init_value)
    c.nonnegative("min_value", min_value)
    c.not_greater("min_value", min_value, "init_value", init_value)


def improved(metric: jax.Array, best: jax.Array, *, threshold: jax.Array, mode: str,
             threshold_mode: str) -> jax.Array:
    r"""Whether ``metric`` beats ``best`` by the threshold (sign-correct for negative metrics).

    ``rel``: :math:`m < b - \tau |b|` (min) or :math:`m > b + \tau |b|` (max); ``abs``:
    :math:`m < b - \tau` or :math:`m > b + \tau`. An infinite ``best`` (no observation yet) is
    beaten by any finite metric.
    """
    sign = 1.0 if mode == "min" else -1.0
    scale = jnp.abs(best) if threshold_mode == "rel" else jnp.ones_like(best)
    margin = jnp.where(jnp.isfinite(best), threshold * jnp.where(jnp.isfinite(best), scale, 0.0),
                       0.0)
    return sign * metric < sign * best - margin


def _build(name: str, *, greedy: bool, mode: str, threshold_mode: str, window: int,
           hp: dict) -> optax.GradientTransformationExtraArgs:
    worst = jnp.inf if mode == "min" else -jnp.inf
    c = Checker(name)

    def init_fn(params):
        del params
        f = hp["init_value"]
        zero = jnp.zeros_like(f)
        return PlateauState(
            lr=f, best=jnp.full_like(f, worst), num_bad=zero, num_good=zero,
            cooldown_counter=zero, warmup_counter=zero,
            history=jnp.zeros((window,), f.dtype), count=jnp.zeros([], jnp.int32),
            hyperparams=dict(hp))

    def update_fn(updates, state, params=None, *, value=None, **extra_args):
        del params, extra_args
        h = state.hyperparams
        new_value = as_float(require(c, "value", value)).astype(state.history.dtype)
        slot = jnp.arange(window) == state.count % window
        history = jnp.where(slot, new_value, state.history)
        seen = jnp.minimum(state.count + 1, window)
        metric = jnp.sum(jnp.where(jnp.arange(window) < seen, history, 0.0)) / seen
        better = improved(metric, state.best, threshold=h["threshold"], mode=mode,
                          threshold_mode=threshold_mode)
        best = jnp.where(better, metric, state.best)
        num_bad = jnp.where(better, 0.0, state.num_bad + 1.0)
        num_good = jnp.where(better, state.num_good + 1.0, 0.0)
        # Cooldown after a decrease (warmup after an increase) discards the streak being counted.
        in_cooldown = state.cooldown_counter > 0
        cooldown_counter = jnp.where(in_cooldown, state.cooldown_counter - 1.0, 0.0)
        num_bad = jnp.where(in_cooldown, 0.0, num_bad)
        lr = state.lr
        decrease = num_bad > h["patience"]
        lr = jnp.where(decrease, jnp.maximum(lr * h["factor"], h["min_value"]), lr)
        cooldown_counter = jnp.where(decrease, h["cooldown"], cooldown_counter)
        num_bad = jnp.where(decrease, 0.0, num_bad)
        warmup_counter = state.warmup_counter
        if greedy:
            in_warmup = warmup_counter > 0
            warmup_counter = jnp.where(in_warmup, warmup_counter - 1.0, 0.0)
            num_good = jnp.where(in_warmup, 0.0, num_good)
            increase = num_good > h["patience"]
            lr = jnp.where(increase, jnp.minimum(lr / h["factor"], h["max_value"]), lr)
            warmup_counter = jnp.where(increase, h["warmup"], warmup_counter)
            num_good = jnp.where(increase, 0.0, num_good)
        new = PlateauState(lr, best, num_bad, num_good, cooldown_counter, warmup_counter,
                           history, optax.safe_increment(state.count), h)
        return scale_updates(updates, lr), new

    return optax.GradientTransformationExtraArgs(init_fn, update_fn)


def reduce_on_plateau(
    *,
    factor: ArrayLike = 0.1,
    patience: ArrayLike = 10,
    threshold: ArrayLike = 1e-4,
    threshold_mode: str = "rel",
    mode: str = "min",
    cooldown: ArrayLike = 0,
    min_value: ArrayLike = 0.0,
    init_value: ArrayLike = 1.0,
    window: int = 1,
) -> optax.GradientTransformationExtraArgs:
    r"""Multiplies the LR by ``factor`` when the metric has not improved for ``patience`` calls.

    Every ``update(..., value=metric)`` is one observation. With the smoothed metric
    :math:`m_t` (the mean of the last ``window`` values) and the best so far :math:`b`:

    .. math::
        \text{better} = m_t < b - \tau\,|b| \ (\text{rel}) \ \text{or}\ m_t < b - \tau \
        (\text{abs}) \quad (\text{signs flipped for } \texttt{mode="max"})

    A streak of more than ``patience`` non-improving observations sets
    :math:`\eta \leftarrow \max(\eta\,f, \eta_{\min})`, resets the streak and starts ``cooldown``
    observations in which non-improvements are not counted. The updates of the same call are
    scaled by the new LR. The relative threshold uses :math:`|b|`, so it is correct for negative
    metrics (PyTorch's ``best * (1 - threshold)`` and Optax's rule reverse its direction there);
    for positive metrics the sequence equals ``torch.optim.lr_scheduler.ReduceLROnPlateau``.

    Args:
        factor: ``f`` in (0, 1], the decrease factor.
        patience: non-improving observations tolerated before a decrease.
        threshold: ``tau`` >= 0, the improvement margin.
        threshold_mode: ``"rel"`` or ``"abs"`` (static).
        mode: ``"min"`` (loss) or ``"max"`` (accuracy) (static).
        cooldown: observations after a decrease during which the streak is not counted.
        min_value: lower bound of the LR.
        init_value: the initial LR; 1.0 makes it a multiplier of the optimizer's LR.
        window: number of last values averaged into the metric (static int >= 1).

    Returns:
        An ``optax.GradientTransformationExtraArgs`` whose update needs ``value=``; its
        :class:`PlateauState` keeps the numeric hyperparameters in ``state.hyperparams``.

    Raises:
        ValueError: out-of-range arguments (``factor`` outside (0, 1], negative counts,
            ``min_value > init_value``, unknown modes); at trace time, a missing ``value=``.

    Traced arguments: numeric ones may be traced (jit, vmap); they are not clamped.

    Examples:
        >>> import jax.numpy as jnp, jaxlr
        >>> tx = jaxlr.transforms.reduce_on_plateau(factor=0.5, patience=1)
        >>> state = tx.init(jnp.zeros(1))
        >>> lrs = []
        >>> for loss in [-1.0, -2.0, -2.0, -2.0, -3.0, -3.0, -3.0]:
        ...     _, state = tx.update(jnp.ones(1), state, value=loss)
        ...     lrs.append(float(state.lr))
        >>> lrs
        [1.0, 1.0, 1.0, 0.5, 0.5, 0.5, 0.25]

    References:
        PyTorch ``ReduceLROnPlateau``; Keras ``ReduceLROnPlateau``; Optax
        ``contrib.reduce_on_plateau``.
    """
    c = Checker("reduce_on_plateau")
    c.between("factor", factor, 0.0, 1.0, open_lo=True)
    _check_common(c, mode, threshold_mode, patience, threshold, cooldown, window, init_value,
                  min_value)
    hp = floats(factor=factor, patience=patience, threshold=threshold, cooldown=cooldown,
                min_value=min_value, init_value=init_value)
    return _build("reduce_on_plateau", greedy=False, mode=mode, threshold_mode=threshold_mode,
                  window=window, hp=hp)


def greedy_lr(
    *,
    factor: ArrayLike = 0.95,
    patience: ArrayLike = 10,
    threshold: ArrayLike = 1e-4,
    threshold_mode: str = "rel",
    mode: str = "min",
    cooldown: ArrayLike = 0,
    warmup: ArrayLike = 0,
    min_value: ArrayLike = 0.0,
    max_value: ArrayLike = 10.0,
    init_value: ArrayLike = 1.0,
    window: int = 1,
) -> optax.GradientTransformationExtraArgs:
    r"""GreedyLR: raises the LR on sustained improvement and lowers it on a plateau.

    The observation rule is :func:`reduce_on_plateau`'s. In addition, a streak of more than
    ``patience`` improvements sets :math:`\eta \leftarrow \min(\eta / F, \eta_{\max})` and starts
    ``warmup`` observations in which improvements are not counted:

    .. math::
        \eta_t = \begin{cases} \min(\eta_{t-1}/F, \eta_{\max}) & n^+_t > p \\
        \max(\eta_{t-1} F, \eta_{\min}) & n^-_t > p \\ \eta_{t-1} & \text{otherwise}\end{cases}

    With ``patience=0`` and ``window=1`` it is the bare rule: divide by ``F`` after an
    improvement, multiply by ``F`` otherwise.

    Args:
        factor: ``F`` in (0, 1].
        patience: ``p``, for both streaks.
        threshold, threshold_mode, mode, cooldown, min_value, init_value, window: as in
            :func:`reduce_on_plateau`.
        warmup: observations after an increase during which improvements are not counted.
        max_value: upper bound of the LR.

    Returns:
        An ``optax.GradientTransformationExtraArgs`` whose update needs ``value=``, with a
        :class:`PlateauState`.

    Raises:
        ValueError: as :func:`reduce_on_plateau`, or ``max_value < init_value``.

    Examples:
        >>> import jax.numpy as jnp, jaxlr
        >>> tx = jaxlr.transforms.greedy_lr(factor=0.5, patience=0)
        >>> state = tx.init(jnp.zeros(1))
        >>> lrs = []
        >>> for loss in [3.0, 2.0, 1.0, 1.5]:
        ...     _, state = tx.update(jnp.ones(1), state, value=loss)
        ...     lrs.append(float(state.lr))
        >>> lrs
        [2.0, 4.0, 8.0, 4.0]

    References:
        Subramanian, Krishnamoorthy & Murthy, Dynamic Learning Rate Scheduling based on Loss
        Changes Leads to Faster Convergence (GreedyLR), arXiv:2512.14527, 2025.
    """
    c = Checker("greedy_lr")
    c.between("factor", factor, 0.0, 1.0, open_lo=True)
    _check_common(c, mode, threshold_mode, patience, threshold, cooldown, window, init_value,
                  min_value)
    c.nonnegative("warmup", warmup)
    c.not_greater("init_value", init_value, "max_value", max_value)
    hp = floats(factor=factor, patience=patience, threshold=threshold, cooldown=cooldown,
                warmup=warmup, min_value=min_value, max_value=max_value, init_value=init_value)
    return _build("greedy_lr", greedy=True, mode=mode, threshold_mode=threshold_mode,
                  window=window, hp=hp)
