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


class PlateauHyperparams(NamedTuple):
    """The numeric hyperparameters of a plateau rule (arrays: edit, trace or stack them)."""

    factor: jax.Array  # () decrease factor in (0, 1]
    patience: jax.Array  # () non-improving (improving, greedy_lr) observations tolerated
    threshold: jax.Array  # () improvement margin
    cooldown: jax.Array  # () observations after a decrease in which the streak is not counted
    warmup: jax.Array  # () observations after an increase (greedy_lr; 0 otherwise)
    min_value: jax.Array  # () lower bound of the LR
    max_value: jax.Array  # () upper bound of the LR (greedy_lr; inf otherwise)
    min_decrease: jax.Array  # () a decrease smaller than this is not applied


@lr_state
class PlateauState(NamedTuple):
    """State of :func:`reduce_on_plateau`, :func:`greedy_lr`, ``compat.torch.ReduceLROnPlateau``."""

    lr: jax.Array  # () LR applied by the last update
    best: jax.Array  # () best smoothed metric so far (+inf / -inf before the first)
    num_bad: jax.Array  # () consecutive observations that were not an improvement
    num_good: jax.Array  # () consecutive improvements (greedy_lr only)
    cooldown_counter: jax.Array  # () observations left in which no decrease is counted
    warmup_counter: jax.Array  # () observations left in which no increase is counted
    history: jax.Array  # (window,) last finite metric values (ring buffer)
    count: jax.Array  # () int32, observations taken in (finite metrics)
    step: jax.Array  # () int32, updates done
    num_skipped: jax.Array  # () int32, metrics skipped because they were not finite
    hyperparams: PlateauHyperparams  # the numeric hyperparameters (a NamedTuple of arrays)


def _check_common(c: Checker, mode, threshold_mode, patience, threshold, cooldown, window,
                  init_value, min_value, steps_per_epoch, min_decrease):
    for name, value in (("mode", mode), ("threshold_mode", threshold_mode)):
        if not isinstance(value, str):
            c.fail(f"{name} must be a string (a static option), got {name}={value!r}")
    c.choice("mode", mode, ("min", "max"))
    c.choice("threshold_mode", threshold_mode, ("rel", "abs", "signed_rel"))
    c.nonnegative("patience", patience)
    c.nonnegative("threshold", threshold)
    c.nonnegative("cooldown", cooldown)
    c.nonnegative("min_decrease", min_decrease)
    if not isinstance(window, int) or isinstance(window, bool) or window < 1:
        c.fail(f"window must be an int >= 1 (it sizes a buffer), got window={window!r}")
    if steps_per_epoch is not None and (
            not isinstance(steps_per_epoch, int) or isinstance(steps_per_epoch, bool)
            or steps_per_epoch < 1):
        c.fail(f"steps_per_epoch must be None or an int >= 1 (static), got "
               f"steps_per_epoch={steps_per_epoch!r}")
    c.positive("init_value", init_value)
    c.nonnegative("min_value", min_value)
    c.not_greater("min_value", min_value, "init_value", init_value)


def improved(metric: jax.Array, best: jax.Array, *, threshold: jax.Array, mode: str,
             threshold_mode: str) -> jax.Array:
    r"""Whether ``metric`` beats ``best`` by the threshold.

    ``rel``: :math:`m < b - \tau |b|` (min) or :math:`m > b + \tau |b|` (max), correct for
    negative metrics; ``abs``: :math:`m < b - \tau` or :math:`m > b + \tau`; ``signed_rel``:
    :math:`m < b - \tau b` or :math:`m > b + \tau b` (PyTorch's rule, whose margin changes side
    for negative metrics). An infinite ``best`` (no observation yet) is beaten by any finite
    metric.
    """
    sign = 1.0 if mode == "min" else -1.0
    scale = {"rel": jnp.abs(best), "signed_rel": best, "abs": jnp.ones_like(best)}[threshold_mode]
    finite = jnp.isfinite(best)
    margin = jnp.where(finite, threshold * jnp.where(finite, scale, 0.0), 0.0)
    return sign * metric < sign * best - margin


def _build(name: str, *, greedy: bool, mode: str, threshold_mode: str, window: int,
           steps_per_epoch: int | None, init_value: ArrayLike,
           hp: PlateauHyperparams) -> optax.GradientTransformationExtraArgs:
    worst = jnp.inf if mode == "min" else -jnp.inf
    c = Checker(name)

    def init_fn(params):
        del params
        f = as_float(init_value)
        zero = jnp.zeros_like(f)
        i32 = jnp.zeros([], jnp.int32)
        return PlateauState(
            lr=f, best=jnp.full_like(f, worst), num_bad=zero, num_good=zero,
            cooldown_counter=zero, warmup_counter=zero,
            history=jnp.zeros((window,), f.dtype), count=i32, step=i32, num_skipped=i32,
            hyperparams=PlateauHyperparams(*hp))

    def observe(state, new_value):
        h = state.hyperparams
        slot = jnp.arange(window) == state.count % window
        history = jnp.where(slot, new_value, state.history)
        seen = jnp.minimum(state.count + 1, window)
        metric = jnp.sum(jnp.where(jnp.arange(window) < seen, history, 0.0)) / seen
        better = improved(metric, state.best, threshold=h.threshold, mode=mode,
                          threshold_mode=threshold_mode)
        best = jnp.where(better, metric, state.best)
        num_bad = jnp.where(better, 0.0, state.num_bad + 1.0)
        num_good = jnp.where(better, state.num_good + 1.0, 0.0)
        # Cooldown after a decrease (warmup after an increase) discards the streak being counted.
        in_cooldown = state.cooldown_counter > 0
        cooldown_counter = jnp.where(in_cooldown, state.cooldown_counter - 1.0, 0.0)
        num_bad = jnp.where(in_cooldown, 0.0, num_bad)
        lr = state.lr
        decrease = num_bad > h.patience
        lower = jnp.maximum(lr * h.factor, h.min_value)
        lr = jnp.where(decrease & (lr - lower > h.min_decrease), lower, lr)
        cooldown_counter = jnp.where(decrease, h.cooldown, cooldown_counter)
        num_bad = jnp.where(decrease, 0.0, num_bad)
        warmup_counter = state.warmup_counter
        if greedy:
            in_warmup = warmup_counter > 0
            warmup_counter = jnp.where(in_warmup, warmup_counter - 1.0, 0.0)
            num_good = jnp.where(in_warmup, 0.0, num_good)
            increase = num_good > h.patience
            lr = jnp.where(increase, jnp.minimum(lr / h.factor, h.max_value), lr)
            warmup_counter = jnp.where(increase, h.warmup, warmup_counter)
            num_good = jnp.where(increase, 0.0, num_good)
        return state._replace(lr=lr, best=best, num_bad=num_bad, num_good=num_good,
                              cooldown_counter=cooldown_counter, warmup_counter=warmup_counter,
                              history=history, count=optax.safe_increment(state.count))

    def update_fn(updates, state, params=None, *, value=None, **extra_args):
        del params, extra_args
        new_value = as_float(require(c, "value", value)).astype(state.history.dtype)
        if steps_per_epoch is None:
            due = jnp.ones([], bool)
        else:
            due = (state.step > 0) & (state.step % steps_per_epoch == 0)
        finite = jnp.isfinite(new_value)
        # A non-finite metric is skipped (counted in num_skipped): it would otherwise become
        # `best` for good (-inf) or count as a non-improvement it is not (NaN).
        observed = observe(state, jnp.where(finite, new_value, 0.0))
        take = due & finite
        new = jax.tree.map(lambda a, b: jnp.where(take, a, b), observed, state)
        new = new._replace(step=optax.safe_increment(state.step),
                           num_skipped=state.num_skipped + (due & ~finite).astype(jnp.int32))
        return scale_updates(updates, new.lr), new

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
    steps_per_epoch: int | None = None,
    min_decrease: ArrayLike = 0.0,
) -> optax.GradientTransformationExtraArgs:
    r"""Multiplies the LR by ``factor`` when the metric has not improved for ``patience`` calls.

    Every ``update(..., value=metric)`` is one observation (with ``steps_per_epoch``, one per
    epoch, see below); every update is scaled by the current LR. With the smoothed metric
    :math:`m_t` (the mean of the last ``window`` values) and the best so far :math:`b`:

    .. math::
        \text{better} = m_t < b - \tau\,|b| \ (\text{rel}) \ \text{or}\ m_t < b - \tau \
        (\text{abs}) \quad (\text{signs flipped for } \texttt{mode="max"})

    A streak of more than ``patience`` non-improving observations sets
    :math:`\eta \leftarrow \max(\eta\,f, \eta_{\min})`, resets the streak and starts ``cooldown``
    observations in which non-improvements are not counted. The updates of the same call are
    scaled by the new LR. A decrease smaller than ``min_decrease`` is not applied. The relative
    threshold uses :math:`|b|`, so it is correct for negative metrics (PyTorch's
    ``best * (1 - threshold)`` and Optax's rule reverse its direction there; ``"signed_rel"``
    is that rule, kept for ``jaxlr.compat.torch.ReduceLROnPlateau``); for positive metrics the
    sequence equals ``torch.optim.lr_scheduler.ReduceLROnPlateau``.

    Per-epoch metrics: with ``steps_per_epoch=k`` the metric is read at the first update of
    every epoch after the first (updates :math:`k, 2k, \ldots`) and ignored at the others, so
    pass the metric of the last finished epoch (a validation loss) at every update, e.g.
    ``nnx.Optimizer.update(model, grads, value=val_loss)``; the LR then follows PyTorch's
    per-epoch loop (``scheduler.step(val_loss)`` after each epoch) update by update.

    Non-finite metrics: a NaN or infinite ``value`` is skipped (the state is unchanged but for
    ``state.num_skipped`` and the update count), so one ``-inf`` never becomes ``best`` and one
    NaN never counts as a plateau; check ``num_skipped`` to see that it happened.

    Args:
        factor: ``f`` in (0, 1], the decrease factor.
        patience: non-improving observations tolerated before a decrease.
        threshold: ``tau`` >= 0, the improvement margin.
        threshold_mode: ``"rel"``, ``"abs"`` or ``"signed_rel"`` (static).
        mode: ``"min"`` (loss) or ``"max"`` (accuracy) (static).
        cooldown: observations after a decrease during which the streak is not counted.
        min_value: lower bound of the LR.
        init_value: the initial LR; 1.0 makes it a multiplier of the optimizer's LR.
        window: number of last values averaged into the metric (static int >= 1).
        steps_per_epoch: ``None`` (every update observes ``value``) or the static number of
            updates per epoch (one observation per epoch).
        min_decrease: decreases of the LR smaller than this are not applied (>= 0).

    Returns:
        An ``optax.GradientTransformationExtraArgs`` whose update needs ``value=``; its
        :class:`PlateauState` keeps the numeric hyperparameters in ``state.hyperparams`` (a
        :class:`PlateauHyperparams`; edit with ``state._replace(hyperparams=
        state.hyperparams._replace(factor=...))``).

    Raises:
        ValueError: out-of-range arguments (``factor`` outside (0, 1], negative counts,
            ``min_value > init_value``, unknown modes, ``steps_per_epoch`` not an int >= 1);
            at trace time, a missing ``value=``.

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
        >>> per_epoch = jaxlr.transforms.reduce_on_plateau(factor=0.5, patience=0,
        ...                                                steps_per_epoch=2)
        >>> state, lrs = per_epoch.init(jnp.zeros(1)), []
        >>> for val_loss in [jnp.nan, jnp.nan, 1.0, 1.0, 1.0, 1.0]:  # epochs 0, 1, 2
        ...     _, state = per_epoch.update(jnp.ones(1), state, value=val_loss)
        ...     lrs.append(float(state.lr))
        >>> lrs, int(state.num_skipped)  # epoch 2 starts with a non-improvement of epoch 1
        ([1.0, 1.0, 1.0, 1.0, 0.5, 0.5], 0)

    References:
        PyTorch ``ReduceLROnPlateau``; Keras ``ReduceLROnPlateau``; Optax
        ``contrib.reduce_on_plateau``.
    """
    c = Checker("reduce_on_plateau")
    c.between("factor", factor, 0.0, 1.0, open_lo=True)
    _check_common(c, mode, threshold_mode, patience, threshold, cooldown, window, init_value,
                  min_value, steps_per_epoch, min_decrease)
    hp = PlateauHyperparams(**floats(
        factor=factor, patience=patience, threshold=threshold, cooldown=cooldown, warmup=0.0,
        min_value=min_value, max_value=jnp.inf, min_decrease=min_decrease))
    return _build("reduce_on_plateau", greedy=False, mode=mode, threshold_mode=threshold_mode,
                  window=window, steps_per_epoch=steps_per_epoch, init_value=init_value, hp=hp)


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
    steps_per_epoch: int | None = None,
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
        threshold, threshold_mode, mode, cooldown, min_value, init_value, window,
            steps_per_epoch: as in :func:`reduce_on_plateau` (non-finite metrics are skipped
            the same way).
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
                  min_value, steps_per_epoch, 0.0)
    c.nonnegative("warmup", warmup)
    c.not_greater("init_value", init_value, "max_value", max_value)
    hp = PlateauHyperparams(**floats(
        factor=factor, patience=patience, threshold=threshold, cooldown=cooldown, warmup=warmup,
        min_value=min_value, max_value=max_value, min_decrease=0.0))
    return _build("greedy_lr", greedy=True, mode=mode, threshold_mode=threshold_mode,
                  window=window, steps_per_epoch=steps_per_epoch, init_value=init_value, hp=hp)
