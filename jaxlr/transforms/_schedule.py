"""Scheduled scaling and schedule injection with the schedules' hyperparameters held as state."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from jaxlr._src.numeric import as_float
from jaxlr._src.validate import Checker
from jaxlr.schedules import Schedule
from jaxlr.transforms._common import ScheduleSlot, as_schedule, lr_state, scale_updates


@lr_state
class ScaleByScheduleState(NamedTuple):
    """State of :func:`scale_by_schedule`."""

    count: jax.Array  # () int32, updates done (saturating)
    lr: jax.Array  # () float, the LR of the last update (schedule(0) after init)
    schedule: dict[str, jax.Array]  # the schedule's hyperparameters by dotted name


def scale_by_schedule(schedule: Schedule) -> optax.GradientTransformationExtraArgs:
    r"""Multiplies updates by a jaxlr schedule whose hyperparameters are optimizer state.

    .. math:: u_t \leftarrow \eta(t)\, u_t, \qquad t = \text{number of previous updates}

    Put it after an Optax optimizer built with ``learning_rate=1.0`` (which supplies the descent
    sign): ``optax.chain(optax.adam(1.0), scale_by_schedule(s))``. Unlike
    ``optax.scale_by_schedule``, the schedule's leaves are stored in ``state.schedule`` (a dict
    keyed by dotted names such as ``"schedule.warmup_steps"``), so editing them or stacking them
    for ``jax.vmap`` reuses the compiled update, and the applied LR is ``state.lr`` (read it in
    any chain with :func:`current_lr`).

    Args:
        schedule: a jaxlr schedule, or a number for a constant LR.

    Returns:
        An ``optax.GradientTransformationExtraArgs`` with a :class:`ScaleByScheduleState`.

    Raises:
        ValueError: ``schedule`` is neither a jaxlr schedule nor a finite number.

    Examples:
        >>> import jax.numpy as jnp, optax, jaxlr
        >>> tx = jaxlr.transforms.scale_by_schedule(jaxlr.schedules.step(
        ...     init_value=1.0, period_steps=2, decay_rate=0.5))
        >>> state = tx.init(jnp.zeros(1))
        >>> lrs = []
        >>> for _ in range(4):
        ...     u, state = tx.update(jnp.ones(1), state)
        ...     lrs.append(float(u[0]))
        >>> lrs
        [1.0, 1.0, 0.5, 0.5]
        >>> state.schedule["init_value"] = jnp.asarray(3.0)  # a change, no recompilation
        >>> float(tx.update(jnp.ones(1), state)[0][0])
        0.75

    References:
        Optax ``scale_by_schedule``; hyperparameters as data follows Equinox/Optimistix.
    """
    slot = ScheduleSlot(as_schedule(Checker("scale_by_schedule"), "schedule", schedule))

    def init_fn(params):
        del params
        leaves = slot.init()
        return ScaleByScheduleState(jnp.zeros([], jnp.int32), slot(leaves, 0), leaves)

    def update_fn(updates, state, params=None, **extra_args):
        del params, extra_args
        lr = slot(state.schedule, state.count)
        new = ScaleByScheduleState(optax.safe_increment(state.count), lr, state.schedule)
        return scale_updates(updates, lr), new

    return optax.GradientTransformationExtraArgs(init_fn, update_fn)


class InjectSchedulesState(NamedTuple):
    """State of :func:`inject_schedules`."""

    count: jax.Array  # () int32
    hyperparams: dict[str, jax.Array]  # current numeric hyperparameter values (editable)
    schedules: dict[str, dict[str, jax.Array]]  # scheduled argument -> schedule leaves
    inner_state: Any  # the wrapped optimizer's state


def inject_schedules(
    factory: Callable[..., optax.GradientTransformation], **hyperparameters: Any
) -> optax.GradientTransformationExtraArgs:
    r"""Runs an Optax optimizer whose hyperparameters follow jaxlr schedules.

    .. math:: \text{update}_t = \text{factory}(h_1(t), h_2(t), \ldots).\text{update}(g_t)

    Each argument that is a jaxlr schedule is evaluated at the step count before every update;
    numeric arguments are stored as editable state; booleans and other values are passed
    unchanged. This is how the momentum co-schedules of one-cycle and cyclical LRs drive
    ``optax.sgd(momentum=...)`` or ``optax.adam(b1=...)``. The schedules' hyperparameters are
    state (``state.schedules``), so a sweep over them compiles once.

    Args:
        factory: an Optax optimizer constructor, e.g. ``optax.sgd`` or ``optax.adam``.
        **hyperparameters: its keyword arguments; jaxlr schedules are evaluated per step.

    Returns:
        An ``optax.GradientTransformationExtraArgs`` with an :class:`InjectSchedulesState`;
        ``state.hyperparams`` holds the values used by the last update.

    Raises:
        ValueError: an argument ``factory`` does not take, or a plain callable (not a jaxlr
            schedule) as a hyperparameter.

    Examples:
        >>> import jax.numpy as jnp, optax, jaxlr
        >>> S = jaxlr.schedules
        >>> tx = jaxlr.transforms.inject_schedules(
        ...     optax.sgd, learning_rate=S.one_cycle(peak_value=0.1, total_steps=100),
        ...     momentum=S.one_cycle_momentum(total_steps=100))
        >>> state = tx.init(jnp.zeros(2))
        >>> for _ in range(31):
        ...     _, state = tx.update(jnp.ones(2), state)
        >>> round(float(state.hyperparams["momentum"]), 3)  # lowest at the LR peak (t = 30)
        0.85

    References:
        Smith, A disciplined approach to neural network hyper-parameters, 2018; Optax
        ``inject_hyperparams``.
    """
    c = Checker("inject_schedules")
    accepted = inspect.signature(factory).parameters
    for name in hyperparameters:
        if name not in accepted:
            c.fail(f"{getattr(factory, '__name__', factory)!s} takes no argument {name}, "
                   f"got {name}={hyperparameters[name]!r}")
    slots, numeric, fixed = {}, {}, {}
    for name, value in hyperparameters.items():
        if isinstance(value, Schedule):
            slots[name] = ScheduleSlot(value)
        elif isinstance(value, bool) or value is None or isinstance(value, str):
            fixed[name] = value
        elif callable(value):
            c.fail(f"{name} must be a number or a jaxlr schedule, got {name}={value!r}")
        else:
            c.finite(name, value)
            numeric[name] = value

    def values(state_hp, leaves, count):
        out = dict(state_hp)
        out.update({k: slot(leaves[k], count) for k, slot in slots.items()})
        return out

    def init_fn(params):
        leaves = {k: slot.init() for k, slot in slots.items()}
        hp = values({k: as_float(v) for k, v in numeric.items()}, leaves, 0)
        inner = factory(**fixed, **hp).init(params)
        return InjectSchedulesState(jnp.zeros([], jnp.int32), hp, leaves, inner)

    def update_fn(updates, state, params=None, **extra_args):
        hp = values(state.hyperparams, state.schedules, state.count)
        tx = optax.with_extra_args_support(factory(**fixed, **hp))
        updates, inner = tx.update(updates, state.inner_state, params, **extra_args)
        count = optax.safe_increment(state.count)
        return updates, InjectSchedulesState(count, hp, state.schedules, inner)

    return optax.GradientTransformationExtraArgs(init_fn, update_fn)
