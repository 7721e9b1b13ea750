"""Combinators: schedules built from other schedules (children are pytree nodes too)."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import ArrayLike

from jaxlr._src import numeric, steps
from jaxlr._src.steps import progress, reached
from jaxlr._src.validate import Checker
from jaxlr.schedules._core import Schedule
from jaxlr.schedules._shapes import rise


def _schedule_arg(c: Checker, name: str, s) -> None:
    if not isinstance(s, Schedule):
        c.fail(f"{name} must be a jaxlr schedule, got {name}={s!r}")


def _schedules_arg(family: Schedule, c: Checker, minimum: int) -> None:
    """``family.schedules`` stored as a tuple of at least ``minimum`` schedules."""
    family._set("schedules", tuple(family.schedules))
    n = len(family.schedules)
    if n < minimum:
        what = "schedule" if minimum == 1 else "schedules"
        c.fail(f"schedules must hold at least {minimum} {what}, got {n}")
    for i, s in enumerate(family.schedules):
        _schedule_arg(c, f"schedules[{i}]", s)


class Warmup(Schedule, name="warmup", counts=("warmup_steps",), renamed=dict(shape="warmup_shape")):
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

    schedule: Schedule = dataclasses.field(kw_only=False)
    warmup_steps: ArrayLike
    init_value: ArrayLike = 0.0
    warmup_shape: str = "linear"

    def check(self, c: Checker) -> None:
        _schedule_arg(c, "schedule", self.schedule)
        c.nonnegative("warmup_steps", self.warmup_steps)
        c.finite("init_value", self.init_value)
        c.choice("warmup_shape", self.warmup_shape, ("linear", "cosine", "1-sqrt"))

    def law(self, step):
        target = self.schedule(jnp.zeros(step.shape, step.dtype))
        ramp = rise(
            self.init_value, target, progress(step, 0.0, self.warmup_steps), self.warmup_shape
        )
        after = self.schedule(steps.shift_from(step, self.warmup_steps))
        return jnp.where(reached(step, self.warmup_steps), after, ramp)


warmup = Warmup


class Join(Schedule, name="join", counts=("boundaries",), vectors=("boundaries",)):
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

    schedules: Sequence[Schedule] = dataclasses.field(kw_only=False)
    boundaries: ArrayLike

    def check(self, c: Checker) -> None:
        _schedules_arg(self, c, 2)
        b = c.vector("boundaries", self.boundaries, min_len=1)
        c.nonnegative("boundaries", self.boundaries)
        c.sorted("boundaries", self.boundaries)
        if b is not None and b.shape[0] != len(self.schedules) - 1:
            c.fail(
                f"boundaries must have len(schedules) - 1 = {len(self.schedules) - 1} entries, "
                f"got boundaries={b.tolist()}"
            )

    def law(self, step):
        out = self.schedules[0](step)
        for i, s in enumerate(self.schedules[1:]):
            b = self.boundaries[..., i]
            out = jnp.where(reached(step, b), s(steps.shift_from(step, b)), out)
        return out


join = Join


class Product(Schedule, name="product", counts=()):
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

    schedules: Sequence[Schedule] = dataclasses.field(kw_only=False)

    def check(self, c: Checker) -> None:
        _schedules_arg(self, c, 1)

    def law(self, step):
        out = self.schedules[0](step)
        for s in self.schedules[1:]:
            out = out * s(step)
        return out


product = Product


class Scale(Schedule, name="scale", counts=()):
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

    schedule: Schedule = dataclasses.field(kw_only=False)
    factor: ArrayLike

    def check(self, c: Checker) -> None:
        _schedule_arg(c, "schedule", self.schedule)
        c.finite("factor", self.factor)

    def law(self, step):
        return self.factor * self.schedule(step)


scale = Scale


class Clip(Schedule, name="clip", counts=()):
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

    schedule: Schedule = dataclasses.field(kw_only=False)
    min_value: ArrayLike | None = None
    max_value: ArrayLike | None = None

    def check(self, c: Checker) -> None:
        _schedule_arg(c, "schedule", self.schedule)
        if self.min_value is None and self.max_value is None:
            c.fail("give min_value, max_value or both, got neither")
        if self.min_value is not None:
            c.finite("min_value", self.min_value)
        if self.max_value is not None:
            c.finite("max_value", self.max_value)
        if self.min_value is not None and self.max_value is not None:
            c.not_greater("min_value", self.min_value, "max_value", self.max_value)

    def law(self, step):
        return jnp.clip(self.schedule(step), self.min_value, self.max_value)


clip = Clip


class PerEpoch(Schedule, name="per_epoch", counts=("steps_per_epoch",)):
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

    schedule: Schedule = dataclasses.field(kw_only=False)
    steps_per_epoch: ArrayLike

    def check(self, c: Checker) -> None:
        _schedule_arg(c, "schedule", self.schedule)
        c.positive("steps_per_epoch", self.steps_per_epoch)

    def law(self, step):
        return self.schedule(steps.epoch(step, self.steps_per_epoch))


per_epoch = PerEpoch


class Noise(
    Schedule,
    name="noise",
    counts=("begin_steps", "end_steps"),
    vectors=("key",),
    raw={"key": "uint32"},
    renamed=dict(start_step="begin_steps", end_step="end_steps", kind="distribution"),
):
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

    schedule: Schedule = dataclasses.field(kw_only=False)
    key: ArrayLike
    begin_steps: ArrayLike
    end_steps: ArrayLike
    pct: ArrayLike = 0.67
    std: ArrayLike = 1.0
    distribution: str = "normal"

    def check(self, c: Checker) -> None:
        _schedule_arg(c, "schedule", self.schedule)
        self._set("key", c.key("key", self.key))
        c.nonnegative("begin_steps", self.begin_steps)
        c.nonnegative("end_steps", self.end_steps)
        c.not_greater("begin_steps", self.begin_steps, "end_steps", self.end_steps)
        p = c.finite("pct", self.pct)
        if p is not None and not bool(np.all((p > 0) & (p < 1))):
            c.fail(f"pct must be in (0, 1), got pct={self.pct!r}")
        c.positive("std", self.std)
        c.choice("distribution", self.distribution, ("normal", "uniform"))

    def law(self, step):
        base = self.schedule(step)
        t = steps.to_float(step)
        ok = (t >= 0) & (t < 2.0**32)
        if steps.is_int(step):
            flat = jnp.where(step >= 0, step, 0).astype(jnp.uint32)
        else:
            flat = jnp.where(ok, jnp.floor(t), 0.0).astype(jnp.uint32)
        flat = flat.reshape(-1)

        def draw(t):
            k = jax.random.fold_in(self.key, t)
            if self.distribution == "uniform":
                return self.pct * jax.random.uniform(k, (), base.dtype, -1.0, 1.0)
            sd = numeric.at_least(self.std, numeric.tiny(base))
            bound = self.pct / sd
            return sd * jax.random.truncated_normal(k, -bound, bound, (), base.dtype)

        n = jax.vmap(draw)(flat).reshape(step.shape)
        inside = reached(step, self.begin_steps) & steps.before(step, self.end_steps)
        return jnp.where(inside, base * (1.0 + n), base)


noise = Noise


class Select(Schedule, name="select", counts=()):
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

    index: ArrayLike = dataclasses.field(kw_only=False)
    schedules: Sequence[Schedule] = dataclasses.field(kw_only=False)

    def check(self, c: Checker) -> None:
        _schedules_arg(self, c, 1)
        a = c.finite("index", self.index)
        if a is not None and not bool(
            np.all((a == np.round(a)) & (a >= 0) & (a < len(self.schedules)))
        ):
            c.fail(
                f"index must be an integer in [0, {len(self.schedules)}), got index={self.index!r}"
            )

    def law(self, step):
        i = jnp.clip(jnp.round(self.index), 0, len(self.schedules) - 1).astype(jnp.int32)
        return jax.lax.switch(i, [lambda t, s=s: s(t) for s in self.schedules], step)


select = Select
