"""Loss-driven LR control: reduce-on-plateau and GreedyLR share one observation machinery."""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import optax
from jax.typing import ArrayLike

from jaxlr._src.numeric import as_float
from jaxlr._src.typing import PyTree
from jaxlr._src.validate import Checker, renamed
from jaxlr.transforms._common import flag, floats, lr_state, require, scale_updates


class PlateauHyperparams(NamedTuple):
    """The numeric hyperparameters of a plateau rule (arrays: edit, trace or stack them)."""

    factor: jax.Array  # () decrease factor in (0, 1]
    patience: jax.Array  # () non-improving (improving, greedy_lr) observations tolerated
    threshold: jax.Array  # () improvement margin
    cooldown: jax.Array  # () observations after a decrease in which the streak is not counted
    warmup_steps: jax.Array  # () observations after an increase (greedy_lr; 0 otherwise)
    min_value: jax.Array  # () lower bound of the LR
    max_value: jax.Array  # () upper bound of the LR (greedy_lr; inf otherwise)
    min_decrease: jax.Array  # () a decrease smaller than this is not applied
    # mode and threshold_mode, validated at construction and kept as numbers so that
    # observe(state, value) needs nothing but the state: better = sign*m < sign*b - margin,
    # margin = threshold * (rel*|b| + signed*b + absolute)
    sign: jax.Array  # () 1 for mode="min", -1 for "max"
    rel: jax.Array  # () 1 for threshold_mode="rel", else 0
    # () 1 for "signed_rel", else 0: PyTorch's b*(1 - threshold) (min), b*(1 + threshold) (max)
    signed: jax.Array
    absolute: jax.Array  # () 1 for "abs", else 0
    greedy: jax.Array  # () 1 for greedy_lr (increases allowed), 0 for reduce_on_plateau


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


def _check_common(
    c: Checker,
    mode,
    threshold_mode,
    patience,
    threshold,
    cooldown,
    window,
    init_value,
    min_value,
    steps_per_epoch,
    observe_in_update,
    min_decrease,
):
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
        not isinstance(steps_per_epoch, int)
        or isinstance(steps_per_epoch, bool)
        or steps_per_epoch < 1
    ):
        c.fail(
            f"steps_per_epoch must be None or an int >= 1 (static), got "
            f"steps_per_epoch={steps_per_epoch!r}"
        )
    if not flag(c, "observe_in_update", observe_in_update) and steps_per_epoch is not None:
        c.fail(
            f"steps_per_epoch needs observe_in_update=True (metrics come in through update), "
            f"got steps_per_epoch={steps_per_epoch!r}, observe_in_update=False"
        )
    c.positive("init_value", init_value)
    c.nonnegative("min_value", min_value)
    c.not_greater("min_value", min_value, "init_value", init_value)


def _rule_numbers(mode: str, threshold_mode: str, greedy: bool) -> dict[str, float]:
    sign = 1.0 if mode == "min" else -1.0
    return dict(
        sign=sign,
        rel=float(threshold_mode == "rel"),
        # not multiplied by sign: torch's max-mode bound b*(1 + threshold) is -(-b - threshold*b)
        signed=float(threshold_mode == "signed_rel"),
        absolute=float(threshold_mode == "abs"),
        greedy=float(greedy),
    )


def _improved(metric: jax.Array, best: jax.Array, h: PlateauHyperparams) -> jax.Array:
    """``metric`` beats ``best`` by the margin; an infinite ``best`` (none yet) by any metric."""
    finite = jnp.isfinite(best)
    b = jnp.where(finite, best, 0.0)
    margin = h.threshold * (h.rel * jnp.abs(b) + h.signed * b + h.absolute)
    return h.sign * metric < h.sign * best - jnp.where(finite, margin, 0.0)


def _rule(state: PlateauState, new_value: jax.Array) -> PlateauState:
    """One observation of a finite metric."""
    h = state.hyperparams
    window = state.history.shape[-1]
    slot = jnp.arange(window) == state.count % window
    history = jnp.where(slot, new_value, state.history)
    seen = jnp.minimum(state.count + 1, window)
    metric = jnp.sum(jnp.where(jnp.arange(window) < seen, history, 0.0)) / seen
    better = _improved(metric, state.best, h)
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
    greedy = h.greedy > 0
    in_warmup = greedy & (state.warmup_counter > 0)
    warmup_counter = jnp.where(in_warmup, state.warmup_counter - 1.0, state.warmup_counter)
    num_good = jnp.where(in_warmup, 0.0, num_good)
    increase = greedy & (num_good > h.patience)
    lr = jnp.where(increase, jnp.minimum(lr / h.factor, h.max_value), lr)
    warmup_counter = jnp.where(increase, h.warmup_steps, warmup_counter)
    num_good = jnp.where(increase, 0.0, num_good)
    return state._replace(
        lr=lr,
        best=best,
        num_bad=num_bad,
        num_good=num_good,
        cooldown_counter=cooldown_counter,
        warmup_counter=warmup_counter,
        history=history,
        count=optax.safe_increment(state.count),
    )


def _take(state: PlateauState, value: ArrayLike, due: jax.Array) -> PlateauState:
    """Observes ``value`` where ``due``; a non-finite value is skipped and counted instead (it
    would otherwise become ``best`` for good (-inf) or count as a non-improvement (NaN))."""
    value = as_float(value).astype(state.history.dtype)
    finite = jnp.isfinite(value)
    observed = _rule(state, jnp.where(finite, value, 0.0))
    take = due & finite
    new = jax.tree.map(lambda a, b: jnp.where(take, a, b), observed, state)
    return new._replace(num_skipped=state.num_skipped + (due & ~finite).astype(jnp.int32))


def observe(state: PyTree, value: ArrayLike) -> PyTree:
    r"""Takes a metric into every plateau state in ``state``, at any cadence.

    The plateau rule of :func:`reduce_on_plateau` / :func:`greedy_lr` (and
    ``jaxlr.compat.torch.ReduceLROnPlateau``) applied once, outside ``update``: the LR in the
    returned state is the one the next updates apply, as after PyTorch's
    ``scheduler.step(value)``. Build the transform with ``observe_in_update=False`` so that
    its updates only scale (and take no ``value=``); then call this after each validation, every
    epoch or every few hundred steps. A non-finite ``value`` is skipped and counted in
    ``num_skipped``.

    .. math:: 	ext{state} \leftarrow 	ext{rule}(	ext{state}, v)

    Args:
        state: a :class:`PlateauState`, or any optimizer state holding some (an
            ``optax.chain`` state, ...). For stacked (swept) states, ``jax.vmap`` this function.
        value: the metric (a scalar).

    Returns:
        ``state`` with every plateau state advanced by one observation (a new state; the old
        one is unchanged).

    Raises:
        ValueError: ``state`` holds no plateau state.

    Examples:
        >>> import jax.numpy as jnp, optax, jaxlr
        >>> T = jaxlr.transforms
        >>> tx = optax.chain(optax.sgd(1.0), T.reduce_on_plateau(
        ...     factor=0.5, patience=0, observe_in_update=False))
        >>> state = tx.init(jnp.zeros(1))
        >>> for val_loss in [1.0, 1.0, 0.5, 0.7]:  # e.g. one validation per epoch
        ...     for _ in range(3):
        ...         u, state = tx.update(jnp.ones(1), state)
        ...     state = T.observe(state, val_loss)
        >>> float(T.current_lr(state, optimizer_lr=1.0))
        0.25

    References:
        PyTorch ``ReduceLROnPlateau.step(metrics)``.
    """
    is_plateau = lambda x: isinstance(x, PlateauState)  # noqa: E731
    found = [x for x in jax.tree.leaves(state, is_leaf=is_plateau) if is_plateau(x)]
    if not found:
        raise ValueError(
            f"observe: state holds no plateau state (reduce_on_plateau, greedy_lr, "
            f"compat ReduceLROnPlateau), got {type(state).__name__}"
        )
    return jax.tree.map(
        lambda x: _take(x, value, jnp.ones([], bool)) if is_plateau(x) else x,
        state,
        is_leaf=is_plateau,
    )


def _build(
    name: str,
    *,
    mode: str,
    window: int,
    steps_per_epoch: int | None,
    observe_in_update: bool,
    init_value: ArrayLike,
    hp: PlateauHyperparams,
) -> optax.GradientTransformationExtraArgs:
    worst = jnp.inf if mode == "min" else -jnp.inf
    c = Checker(name)
    init_lr = floats(name, init_value=init_value)["init_value"]

    def init_fn(params):
        del params
        f = init_lr
        zero = jnp.zeros_like(f)
        i32 = jnp.zeros([], jnp.int32)
        return PlateauState(
            lr=f,
            best=jnp.full_like(f, worst),
            num_bad=zero,
            num_good=zero,
            cooldown_counter=zero,
            warmup_counter=zero,
            history=jnp.zeros((window,), f.dtype),
            count=i32,
            step=i32,
            num_skipped=i32,
            hyperparams=PlateauHyperparams(*hp),
        )

    def update_fn(updates, state, params=None, *, value=None, **extra_args):
        del params, extra_args
        if not observe_in_update:
            if value is not None:
                c.fail(
                    "update got value=... but the transform was built with "
                    "observe_in_update=False (take metrics in with observe(state, value))"
                )
            new = state
        else:
            require(c, "value", value)
            if steps_per_epoch is None:
                due = jnp.ones([], bool)
            else:
                due = (state.step > 0) & (state.step % steps_per_epoch == 0)
            new = _take(state, value, due)
        new = new._replace(step=optax.safe_increment(state.step))
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
    observe_in_update: bool = True,
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
    per-epoch loop (``scheduler.step(val_loss)`` after each epoch) update by update. Any other
    cadence: ``observe_in_update=False`` makes updates only scale (no ``value=``), and
    :func:`observe` takes a metric into the state whenever there is one.

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
        observe_in_update: ``False``: updates take no ``value=``; metrics come in through
            :func:`observe` (a static ``bool``).
        min_decrease: decreases of the LR smaller than this are not applied (>= 0).

    Returns:
        An ``optax.GradientTransformationExtraArgs`` whose update needs ``value=``; its
        :class:`PlateauState` keeps the numeric hyperparameters in ``state.hyperparams`` (a
        :class:`PlateauHyperparams`; edit with ``state._replace(hyperparams=
        state.hyperparams._replace(factor=...))``).

    Raises:
        ValueError: out-of-range arguments (``factor`` outside (0, 1], negative counts,
            ``min_value > init_value``, unknown modes, ``steps_per_epoch`` not an int >= 1,
            ``observe_in_update`` not a bool); at trace time, a missing ``value=`` (or one
            given with ``observe_in_update=False``).

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
    _check_common(
        c,
        mode,
        threshold_mode,
        patience,
        threshold,
        cooldown,
        window,
        init_value,
        min_value,
        steps_per_epoch,
        observe_in_update,
        min_decrease,
    )
    hp = PlateauHyperparams(
        **floats(
            c.fn,
            factor=factor,
            patience=patience,
            threshold=threshold,
            cooldown=cooldown,
            warmup_steps=0.0,
            min_value=min_value,
            max_value=jnp.inf,
            min_decrease=min_decrease,
            **_rule_numbers(mode, threshold_mode, greedy=False),
        )
    )
    return _build(
        "reduce_on_plateau",
        mode=mode,
        window=window,
        steps_per_epoch=steps_per_epoch,
        observe_in_update=observe_in_update,
        init_value=init_value,
        hp=hp,
    )


@renamed(warmup="warmup_steps")
def greedy_lr(
    *,
    factor: ArrayLike = 0.95,
    patience: ArrayLike = 10,
    threshold: ArrayLike = 1e-4,
    threshold_mode: str = "rel",
    mode: str = "min",
    cooldown: ArrayLike = 0,
    warmup_steps: ArrayLike = 0,
    min_value: ArrayLike = 0.0,
    max_value: ArrayLike = 10.0,
    init_value: ArrayLike = 1.0,
    window: int = 1,
    steps_per_epoch: int | None = None,
    observe_in_update: bool = True,
) -> optax.GradientTransformationExtraArgs:
    r"""GreedyLR: raises the LR on sustained improvement and lowers it on a plateau.

    The observation rule is :func:`reduce_on_plateau`'s. In addition, a streak of more than
    ``patience`` improvements sets :math:`\eta \leftarrow \min(\eta / F, \eta_{\max})` and starts
    ``warmup_steps`` observations in which improvements are not counted:

    .. math::
        \eta_t = \begin{cases} \min(\eta_{t-1}/F, \eta_{\max}) & n^+_t > p \\
        \max(\eta_{t-1} F, \eta_{\min}) & n^-_t > p \\ \eta_{t-1} & \text{otherwise}\end{cases}

    With ``patience=0`` and ``window=1`` it is the bare rule: divide by ``F`` after an
    improvement, multiply by ``F`` otherwise.

    Args:
        factor: ``F`` in (0, 1].
        patience: ``p``, for both streaks.
        threshold, threshold_mode, mode, cooldown, min_value, init_value, window,
            steps_per_epoch, observe_in_update: as in :func:`reduce_on_plateau` (non-finite
            metrics are skipped the same way).
        warmup_steps: observations after an increase during which improvements are not counted.
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
    _check_common(
        c,
        mode,
        threshold_mode,
        patience,
        threshold,
        cooldown,
        window,
        init_value,
        min_value,
        steps_per_epoch,
        observe_in_update,
        0.0,
    )
    c.nonnegative("warmup_steps", warmup_steps)
    c.not_greater("init_value", init_value, "max_value", max_value)
    hp = PlateauHyperparams(
        **floats(
            c.fn,
            factor=factor,
            patience=patience,
            threshold=threshold,
            cooldown=cooldown,
            warmup_steps=warmup_steps,
            min_value=min_value,
            max_value=max_value,
            min_decrease=0.0,
            **_rule_numbers(mode, threshold_mode, greedy=True),
        )
    )
    return _build(
        "greedy_lr",
        mode=mode,
        window=window,
        steps_per_epoch=steps_per_epoch,
        observe_in_update=observe_in_update,
        init_value=init_value,
        hp=hp,
    )
