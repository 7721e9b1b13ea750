"""Scheduled scaling and schedule injection with the schedules' hyperparameters held as state."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxlr._src.numeric import as_float
from jaxlr._src.validate import Checker
from jaxlr.schedules import Schedule
from jaxlr.transforms._common import as_schedule, floats, held, lr_state, scale_updates


@lr_state
class ScaleByScheduleState(NamedTuple):
    """State of :func:`scale_by_schedule`."""

    count: jax.Array  # () int32, updates done (saturating)
    lr: jax.Array  # () float, the LR of the last update (schedule(0) after init)
    schedule: Schedule  # the schedule itself: its hyperparameters are array leaves


def scale_by_schedule(schedule: Schedule) -> optax.GradientTransformationExtraArgs:
    r"""Multiplies updates by a jaxlr schedule whose hyperparameters are optimizer state.

    .. math:: u_t \leftarrow \eta(t)\, u_t, \qquad t = \text{number of previous updates}

    Put it after an Optax optimizer built with ``learning_rate=1.0`` (which supplies the descent
    sign): ``optax.chain(optax.adam(1.0), scale_by_schedule(s))``. Unlike
    ``optax.scale_by_schedule``, the schedule itself is state (``state.schedule``, a pytree
    whose leaves are its hyperparameters): a state with another schedule of the same family
    (``state._replace(schedule=...)``, or schedules stacked for ``jax.vmap``) reuses the compiled
    update, an edit builds a new state and leaves the old one as it was, and the applied LR is
    ``state.lr`` (read it in any chain with :func:`current_lr`).

    Args:
        schedule: a jaxlr schedule, or a non-negative number for a constant LR.

    Returns:
        An ``optax.GradientTransformationExtraArgs`` with a :class:`ScaleByScheduleState`.

    Raises:
        ValueError: ``schedule`` is neither a jaxlr schedule nor a finite number >= 0 (a
            negative LR would train uphill; the descent sign comes from the optimizer).

    Examples:
        >>> import jax.numpy as jnp, jaxlr
        >>> S = jaxlr.schedules
        >>> tx = jaxlr.transforms.scale_by_schedule(
        ...     S.piecewise_constant(boundaries=[2], values=[1.0, 0.5]))
        >>> state = tx.init(jnp.zeros(1))
        >>> lrs = []
        >>> for _ in range(4):
        ...     u, state = tx.update(jnp.ones(1), state)
        ...     lrs.append(float(u[0]))
        >>> lrs
        [1.0, 1.0, 0.5, 0.5]
        >>> # an edit builds a new state (same compiled update); the old state is unchanged
        >>> edited = state._replace(
        ...     schedule=S.piecewise_constant(boundaries=[2], values=[3.0, 1.5]))
        >>> float(tx.update(jnp.ones(1), edited)[0][0]), float(tx.update(jnp.ones(1), state)[0][0])
        (1.5, 0.5)

    References:
        Optax ``scale_by_schedule``; hyperparameters as data follows Equinox/Optimistix.
    """
    schedule = held(
        as_schedule(Checker("scale_by_schedule"), "schedule", schedule, nonnegative=True)
    )

    def init_fn(params):
        del params
        return ScaleByScheduleState(jnp.zeros([], jnp.int32), schedule(as_float(0)), schedule)

    def update_fn(updates, state, params=None, **extra_args):
        del params, extra_args
        lr = state.schedule(state.count)  # the int32 count: exact past 2^24
        new = ScaleByScheduleState(optax.safe_increment(state.count), lr, state.schedule)
        return scale_updates(updates, lr), new

    return optax.GradientTransformationExtraArgs(init_fn, update_fn)


class InjectSchedulesState(NamedTuple):
    """State of :func:`inject_schedules`."""

    count: jax.Array  # () int32
    hyperparams: dict[str, jax.Array]  # values used by the last update (a new dict each update)
    schedules: dict[str, Schedule]  # scheduled argument -> the schedule (a new dict each update)
    inner_state: Any  # the wrapped optimizer's state


def inject_schedules(
    factory: Callable[..., optax.GradientTransformation], **hyperparameters: Any
) -> optax.GradientTransformationExtraArgs:
    r"""Runs an Optax optimizer whose hyperparameters follow jaxlr schedules.

    .. math:: \text{update}_t = \text{factory}(h_1(t), h_2(t), \ldots).\text{update}(g_t)

    Each argument that is a jaxlr schedule is evaluated at the step count before every update;
    numeric arguments are stored as editable state; booleans and other values are passed
    unchanged. This is how the momentum co-schedules of one-cycle and cyclical LRs drive
    ``optax.sgd(momentum=...)`` or ``optax.adam(b1=...)``. The schedules themselves are state
    (``state.schedules``), so a sweep over their hyperparameters compiles once. Every update
    builds new ``hyperparams`` / ``schedules`` dicts, so no two states share one: edit a state
    by building a new one (``state._replace(hyperparams={**state.hyperparams, "momentum":
    0.8})``); an in-place edit of a dict changes that state only.

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
            c.fail(
                f"{getattr(factory, '__name__', factory)!s} takes no argument {name}, "
                f"got {name}={hyperparameters[name]!r}"
            )
    scheduled, numeric, fixed = {}, {}, {}
    for name, value in hyperparameters.items():
        if isinstance(value, Schedule):
            scheduled[name] = held(value)
        elif isinstance(value, bool) or value is None or isinstance(value, str):
            fixed[name] = value
        elif callable(value):
            c.fail(f"{name} must be a number or a jaxlr schedule, got {name}={value!r}")
        elif np.asarray(value).dtype == bool:
            c.fail(f"{name} looks like a flag: pass a Python bool (static), got {name}={value!r}")
        else:
            c.finite(name, value)
            numeric[name] = floats(c.fn, **{name: value})[name]
    if "learning_rate" in numeric:
        c.nonnegative("learning_rate", numeric["learning_rate"])

    def values(state_hp, schedules, count):
        out = dict(state_hp)
        out.update({k: s(count) for k, s in schedules.items()})
        return out

    def init_fn(params):
        hp = values({k: as_float(v) for k, v in numeric.items()}, scheduled, 0)
        inner = factory(**fixed, **hp).init(params)
        return InjectSchedulesState(jnp.zeros([], jnp.int32), hp, dict(scheduled), inner)

    def update_fn(updates, state, params=None, **extra_args):
        hp = values(state.hyperparams, state.schedules, state.count)
        tx = optax.with_extra_args_support(factory(**fixed, **hp))
        updates, inner = tx.update(updates, state.inner_state, params, **extra_args)
        count = optax.safe_increment(state.count)
        return updates, InjectSchedulesState(count, hp, dict(state.schedules), inner)

    return optax.GradientTransformationExtraArgs(init_fn, update_fn)
