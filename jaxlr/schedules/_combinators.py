"""Combinators: schedules built from other schedules (children are pytree nodes too)."""

from __future__ import annotations

from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import ArrayLike

from jaxlr._src import numeric, steps
from jaxlr._src.steps import progress, reached
from jaxlr._src.validate import Checker, renamed
from jaxlr.schedules._core import Schedule, make, register
from jaxlr.schedules._shapes import rise


def _schedule_arg(c: Checker, name: str, s) -> None:
    if not isinstance(s, Schedule):
        c.fail(f"{name} must be a jaxlr schedule, got {name}={s!r}")


def _warmup(step, *, schedule, warmup_steps, init_value, warmup_shape):
    target = schedule(jnp.zeros(step.shape, step.dtype))
    ramp = rise(init_value, target, progress(step, 0.0, warmup_steps), warmup_shape)
    after = schedule(steps.shift_from(step, warmup_steps))
    return jnp.where(reached(step, warmup_steps), after, ramp)


@register("warmup", _warmup, counts=("warmup_steps",))
@renamed(shape="warmup_shape")
def warmup(
    schedule: Schedule,
    *,
    warmup_steps: ArrayLike,
    init_value: ArrayLike = 0.0,
    warmup_shape: str = "linear",
) -> Schedule:
    r"""Prepends a warmup to any schedule, which then runs on its own local time.

    .. math:: \eta(t) = \mathrm{rise}\bigl(I, s(0), t/W\bigr) \ (t < W), \quad s(t - W)\ (t \ge W)

    Args:
        schedule: the schedule that follows the warmup.
        warmup_steps: ``W`` >= 0.
        init_value: ``I``, the LR at step 0.
        warmup_shape: ``"linear"``, ``"cosine"`` or ``"1-sqrt"`` (static; see :func:`wsd`).

    Raises:
        ValueError: ``schedule`` not a schedule, negative ``warmup_steps``, unknown shape, NaN.

    Traced arguments: a traced negative ``warmup_steps`` means no warmup.

    Examples:
        >>> import jaxlr
        >>> s = jaxlr.schedules.warmup(jaxlr.schedules.constant(value=1.0), warmup_steps=4)
        >>> [float(s(t)) for t in (0, 1, 4)]
        [0.0, 0.25, 1.0]

    References:
        Goyal et al., Accurate, Large Minibatch SGD: Training ImageNet in 1 Hour, 2017.
    """
    c = Checker("warmup")
    _schedule_arg(c, "schedule", schedule)
    c.nonnegative("warmup_steps", warmup_steps)
    c.finite("init_value", init_value)
    c.choice("warmup_shape", warmup_shape, ("linear", "cosine", "1-sqrt"))
    return make(
        "warmup",
        dict(schedule=schedule, warmup_steps=warmup_steps, init_value=init_value),
        dict(warmup_shape=warmup_shape),
    )


def _join(step, *, schedules, boundaries):
    out = schedules[0](step)
    for i, s in enumerate(schedules[1:]):
        b = boundaries[..., i]
        out = jnp.where(reached(step, b), s(steps.shift_from(step, b)), out)
    return out


@register("join", _join, counts=("boundaries",))
def join(schedules: Sequence[Schedule], *, boundaries: ArrayLike) -> Schedule:
    r"""Runs schedules one after another, each on its own local time (PyTorch ``SequentialLR``).

    .. math:: \eta(t) = s_i(t - b_{i-1}) \quad (b_{i-1} \le t < b_i,\ b_{-1} = 0)

    Args:
        schedules: ``n`` schedules.
        boundaries: ``n - 1`` sorted global steps at which the next schedule starts.

    Raises:
        ValueError: fewer than 2 schedules, a non-schedule, unsorted or negative boundaries,
            a boundary count other than ``n - 1``.

    Traced arguments: traced unsorted boundaries: the later schedule wins from its boundary on.

    Examples:
        >>> import jaxlr
        >>> S = jaxlr.schedules
        >>> s = S.join([S.constant(value=1.0), S.linear(init_value=1.0, end_value=0.0,
        ...             total_steps=10)], boundaries=[5])
        >>> [float(s(t)) for t in (4, 5, 10)]
        [1.0, 1.0, 0.5]

    References:
        Optax ``join_schedules``; PyTorch ``SequentialLR``.
    """
    c = Checker("join")
    schedules = tuple(schedules)
    if len(schedules) < 2:
        c.fail(f"schedules must hold at least 2 schedules, got {len(schedules)}")
    for i, s in enumerate(schedules):
        _schedule_arg(c, f"schedules[{i}]", s)
    b = c.vector("boundaries", boundaries, min_len=1)
    c.nonnegative("boundaries", boundaries)
    c.sorted("boundaries", boundaries)
    if b is not None and b.shape[0] != len(schedules) - 1:
        c.fail(
            f"boundaries must have len(schedules) - 1 = {len(schedules) - 1} entries, "
            f"got boundaries={b.tolist()}"
        )
    return make("join", dict(schedules=schedules, boundaries=boundaries))


def _product(step, *, schedules):
    out = schedules[0](step)
    for s in schedules[1:]:
        out = out * s(step)
    return out


@register("product", _product, counts=())
def product(schedules: Sequence[Schedule]) -> Schedule:
    r"""The product of schedules, all on the same time (PyTorch ``ChainedScheduler``).

    .. math:: \eta(t) = \prod_i s_i(t)

    Typically one absolute schedule times factor schedules that start at 1.

    Args:
        schedules: at least one schedule.

    Raises:
        ValueError: no schedule, or a non-schedule.

    Traced arguments: every hyperparameter of the children may be traced.

    Examples:
        >>> import jaxlr
        >>> S = jaxlr.schedules
        >>> s = S.product([S.constant(value=0.1), S.step(init_value=1.0, period_steps=10,
        ...                decay_rate=0.5)])
        >>> round(float(s(10)), 4)
        0.05

    References:
        PyTorch ``ChainedScheduler``.
    """
    c = Checker("product")
    schedules = tuple(schedules)
    if not schedules:
        c.fail("schedules must hold at least 1 schedule, got 0")
    for i, s in enumerate(schedules):
        _schedule_arg(c, f"schedules[{i}]", s)
    return make("product", dict(schedules=schedules))


def _scale(step, *, schedule, factor):
    return factor * schedule(step)


@register("scale", _scale, counts=())
def scale(schedule: Schedule, *, factor: ArrayLike) -> Schedule:
    r"""Multiplies a schedule by a constant factor.

    .. math:: \eta(t) = c\,s(t)

    Args:
        schedule: the schedule.
        factor: ``c``.

    Raises:
        ValueError: a non-schedule or NaN factor.

    Traced arguments: every argument may be traced.

    Examples:
        >>> import jaxlr
        >>> float(jaxlr.schedules.scale(jaxlr.schedules.constant(value=2.0), factor=0.5)(3))
        1.0
    """
    c = Checker("scale")
    _schedule_arg(c, "schedule", schedule)
    c.finite("factor", factor)
    return make("scale", dict(schedule=schedule, factor=factor))


def _clip(step, *, schedule, min_value=None, max_value=None):
    return jnp.clip(schedule(step), min_value, max_value)


@register("clip", _clip, counts=())
def clip(
    schedule: Schedule, *, min_value: ArrayLike | None = None, max_value: ArrayLike | None = None
) -> Schedule:
    r"""Clips a schedule to ``[min_value, max_value]``.

    .. math:: \eta(t) = \min(\max(s(t), a), b)

    Args:
        schedule: the schedule.
        min_value: optional lower bound ``a``.
        max_value: optional upper bound ``b`` >= ``a``.

    Raises:
        ValueError: neither bound given, ``min_value > max_value``, a non-schedule, NaN.

    Traced arguments: traced bounds with ``min_value > max_value`` give ``max_value``
    (``jnp.clip``).

    Examples:
        >>> import jaxlr
        >>> s = jaxlr.schedules.clip(jaxlr.schedules.linear(init_value=1.0, end_value=0.0,
        ...                          total_steps=10), min_value=0.2)
        >>> float(s(10))
        0.2
    """
    c = Checker("clip")
    _schedule_arg(c, "schedule", schedule)
    if min_value is None and max_value is None:
        c.fail("give min_value, max_value or both, got neither")
    params = dict(schedule=schedule)
    if min_value is not None:
        c.finite("min_value", min_value)
        params["min_value"] = min_value
    if max_value is not None:
        c.finite("max_value", max_value)
        params["max_value"] = max_value
    if min_value is not None and max_value is not None:
        c.not_greater("min_value", min_value, "max_value", max_value)
    return make("clip", params)


def _per_epoch(step, *, schedule, steps_per_epoch):
    # an integer step's epoch is an integer step for the child (exact past 2^24 too)
    return schedule(steps.epoch(step, steps_per_epoch))


@register("per_epoch", _per_epoch, counts=("steps_per_epoch",))
def per_epoch(schedule: Schedule, *, steps_per_epoch: ArrayLike) -> Schedule:
    r"""Holds each epoch's value for ``steps_per_epoch`` optimizer steps.

    PyTorch recipes call ``scheduler.step()`` once per epoch; Optax counts optimizer steps. This
    evaluates the epoch schedule at the epoch index:

    .. math:: \eta(t) = s(\lfloor t / N \rfloor)

    Args:
        schedule: a schedule whose step is the epoch.
        steps_per_epoch: ``N`` > 0.

    Raises:
        ValueError: a non-schedule, ``steps_per_epoch`` <= 0, NaN.

    Traced arguments: a traced ``steps_per_epoch`` <= 0 is clamped to the smallest positive
    float (every step past 0 is then an epoch far past the end).

    Examples:
        >>> import jaxlr
        >>> S = jaxlr.schedules
        >>> s = S.per_epoch(S.step(init_value=1.0, period_steps=2, decay_rate=0.1),
        ...                 steps_per_epoch=100)
        >>> [round(float(s(t)), 4) for t in (199, 200)]
        [1.0, 0.1]
    """
    c = Checker("per_epoch")
    _schedule_arg(c, "schedule", schedule)
    c.positive("steps_per_epoch", steps_per_epoch)
    return make("per_epoch", dict(schedule=schedule, steps_per_epoch=steps_per_epoch))


def _noise(step, *, schedule, key, begin_steps, end_steps, pct, std, distribution):
    base = schedule(step)
    t = steps.to_float(step)
    ok = (t >= 0) & (t < 2.0**32)
    if steps.is_int(step):
        flat = jnp.where(step >= 0, step, 0).astype(jnp.uint32)
    else:
        flat = jnp.where(ok, jnp.floor(t), 0.0).astype(jnp.uint32)
    flat = flat.reshape(-1)

    def draw(t):
        k = jax.random.fold_in(key, t)
        if distribution == "uniform":
            return pct * jax.random.uniform(k, (), base.dtype, -1.0, 1.0)
        sd = numeric.at_least(std, numeric.tiny(base))
        bound = pct / sd
        return sd * jax.random.truncated_normal(k, -bound, bound, (), base.dtype)

    n = jax.vmap(draw)(flat).reshape(step.shape)
    inside = reached(step, begin_steps) & steps.before(step, end_steps)
    return jnp.where(inside, base * (1.0 + n), base)


@register("noise", _noise, counts=("begin_steps", "end_steps"))
@renamed(start_step="begin_steps", end_step="end_steps", kind="distribution")
def noise(
    schedule: Schedule,
    *,
    key: ArrayLike,
    begin_steps: ArrayLike,
    end_steps: ArrayLike,
    pct: ArrayLike = 0.67,
    std: ArrayLike = 1.0,
    distribution: str = "normal",
) -> Schedule:
    r"""Multiplicative LR noise, deterministic given ``key`` and the step (timm's LR noise).

    .. math:: \eta(t) = s(t)\,(1 + n_t) \quad (t_0 \le t < t_1), \qquad s(t)\ \text{otherwise}

    with :math:`n_t` drawn from ``fold_in(key, floor(t))``: a normal of std ``std`` truncated to
    ``[-pct, pct]`` (timm resamples until inside), or uniform on ``[-pct, pct]``.

    Args:
        schedule: the noiseless schedule.
        key: a PRNG key (``jax.random.key`` or ``PRNGKey``); its raw data is stored.
        begin_steps: ``t_0``, first noisy step.
        end_steps: ``t_1``, first clean step after the noise window.
        pct: half-width of the noise, in (0, 1).
        std: standard deviation of the normal before truncation.
        distribution: ``"normal"`` or ``"uniform"`` (static).

    Raises:
        ValueError: a non-schedule, a key that is not a PRNG key, ``begin_steps > end_steps``,
            ``pct`` outside (0, 1), ``std`` <= 0, unknown ``distribution``, NaN.
        TypeError: the old spelling ``kind``.

    Traced arguments: a traced ``std`` <= 0 is clamped to the smallest positive float.

    Examples:
        >>> import jax, jaxlr
        >>> S = jaxlr.schedules
        >>> s = S.noise(S.constant(value=1.0), key=jax.random.key(0), begin_steps=0, end_steps=10)
        >>> bool(abs(float(s(3)) - 1.0) <= 0.67), float(s(10))
        (True, 1.0)

    References:
        Wightman, PyTorch Image Models (timm), ``noise_range_t``, ``noise_pct``, ``noise_std``.
    """
    c = Checker("noise")
    _schedule_arg(c, "schedule", schedule)
    key = c.key("key", key)
    c.nonnegative("begin_steps", begin_steps)
    c.nonnegative("end_steps", end_steps)
    c.not_greater("begin_steps", begin_steps, "end_steps", end_steps)
    p = c.finite("pct", pct)
    if p is not None and not bool(np.all((p > 0) & (p < 1))):
        c.fail(f"pct must be in (0, 1), got pct={pct!r}")
    c.positive("std", std)
    c.choice("distribution", distribution, ("normal", "uniform"))
    return make(
        "noise",
        dict(
            schedule=schedule,
            key=key,
            begin_steps=begin_steps,
            end_steps=end_steps,
            pct=pct,
            std=std,
        ),
        dict(distribution=distribution),
    )


def _select(step, *, index, schedules):
    i = jnp.clip(jnp.round(index), 0, len(schedules) - 1).astype(jnp.int32)
    return jax.lax.switch(i, [lambda t, s=s: s(t) for s in schedules], step)


@register("select", _select, counts=())
def select(index: ArrayLike, schedules: Sequence[Schedule]) -> Schedule:
    r"""The schedule ``schedules[index]``, with ``index`` data: a sweep can range over families.

    .. math:: \eta(t) = s_{i}(t), \quad i = \mathrm{clip}(\mathrm{round}(\mathit{index}),
        0, n - 1)

    The schedules may have any structure (different families); the index is a leaf, so a
    batch of ``select`` schedules with stacked indices (and stacked children) runs under
    ``jax.vmap`` in one compilation, each member on its own family (``lax.switch``, which
    ``vmap`` turns into evaluating every branch and selecting).

    Args:
        index: which schedule, an integer in ``[0, len(schedules))`` (may be traced; it is
            stored as a float leaf and rounded).
        schedules: at least one schedule.

    Returns:
        A schedule whose children are ``schedules`` and whose leaf ``index`` picks one.

    Raises:
        ValueError: no schedule, a non-schedule, a concrete ``index`` that is not an integer
            in range.

    Traced arguments: a traced ``index`` is rounded and clamped to ``[0, len(schedules) - 1]``.

    Examples:
        >>> import jax, jax.numpy as jnp, jaxlr
        >>> S = jaxlr.schedules
        >>> family = [S.constant(value=1.0), S.cosine(init_value=1.0, total_steps=100)]
        >>> float(S.select(1, family)(50))
        0.5
        >>> members = [S.select(i, family) for i in (0, 1)]
        >>> batch = jax.tree.map(lambda *x: jnp.stack(x), *members)
        >>> jax.vmap(lambda s: s(50.0))(batch).tolist()
        [1.0, 0.5]
    """
    c = Checker("select")
    schedules = tuple(schedules)
    if not schedules:
        c.fail("schedules must hold at least 1 schedule, got 0")
    for i, s in enumerate(schedules):
        _schedule_arg(c, f"schedules[{i}]", s)
    a = c.finite("index", index)
    if a is not None and not bool(np.all((a == np.round(a)) & (a >= 0) & (a < len(schedules)))):
        c.fail(f"index must be an integer in [0, {len(schedules)}), got index={index!r}")
    return make("select", dict(index=index, schedules=schedules))
