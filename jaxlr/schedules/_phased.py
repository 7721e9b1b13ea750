"""Schedules made of phases: cyclic, one-cycle, warmup-stable-decay, infinite, SWA."""

from __future__ import annotations

import dataclasses

import numpy as np
from jax.typing import ArrayLike

from jaxlr._src import steps
from jaxlr._src.numeric import as_float, at_least, power_of, saturate, times, tiny
from jaxlr._src.validate import Checker, concrete
from jaxlr.schedules._core import Schedule
from jaxlr.schedules._shapes import POSITIVE_SHAPES, SHAPES, segments

_CYCLIC_MODES = ("triangular", "triangular2", "exp_range")


def _cyclic_height(step, up_steps, down_steps, mode, decay_rate):
    """Torch's ``scale_factor * scale_fn``: 0 at cycle ends, the cycle's height at its peak."""
    # the cycle and the turn exactly for integer steps (steps.triangle), though float32 holds
    # neither the period nor the place in it past 2^24
    cycle, _, factor = steps.triangle(step, up_steps, down_steps)
    cycle = cycle + 1.0
    if mode == "triangular2":
        factor = factor * 0.5 ** (cycle - 1.0)
    elif mode == "exp_range":
        # saturates when a rate > 1 grows
        factor = factor * power_of(decay_rate, steps.to_float(step))
    return factor


def _clamped_cycle(up_steps, down_steps, step):
    """Traced lengths <= 0 are clamped to the smallest positive float (the law stays finite)."""
    return at_least(up_steps, tiny(up_steps)), at_least(down_steps, tiny(down_steps))


def _check_cycle(c: Checker, up_steps, down_steps, decay_rate, mode) -> None:
    c.positive("up_steps", up_steps)
    c.positive("down_steps", down_steps)
    c.positive("decay_rate", decay_rate)
    c.choice("mode", mode, _CYCLIC_MODES)


class Cyclic(
    Schedule, name="cyclic", counts=("up_steps", "down_steps"), renamed=dict(gamma="decay_rate")
):
    r"""Cyclical learning rate between ``init_value`` and ``peak_value``.

    With :math:`C = U + D`, cycle :math:`c = \lfloor 1 + t/C \rfloor`, position
    :math:`x = 1 + t/C - c` and :math:`\rho = U / C`:

    .. math:: h = x/\rho\ (x \le \rho),\ (x - 1)/(\rho - 1)\ (x > \rho); \quad
        \eta(t) = I + (P - I)\,h\,g(c, t)

    with :math:`g = 1` (triangular), :math:`2^{1-c}` (triangular2) or :math:`r^t`
    (exp_range).

    Args:
        init_value: the low LR ``I``.
        peak_value: the high LR ``P``.
        up_steps: ``U`` > 0, steps from low to high.
        down_steps: ``D`` > 0, steps back down; defaults to ``up_steps``.
        mode: ``"triangular"``, ``"triangular2"`` or ``"exp_range"`` (static).
        decay_rate: ``r`` > 0, the ``exp_range`` factor per step (PyTorch's ``gamma``); a
            rate above 1 grows and saturates at the dtype's largest finite value.

    Raises:
        ValueError: non-positive lengths or ``decay_rate``, an unknown mode, NaN.
        TypeError: the old spelling ``gamma``.

    Traced arguments: traced lengths or ``decay_rate`` <= 0 are clamped to the smallest
    positive float.

    Examples:
        >>> import jaxlr
        >>> s = jaxlr.schedules.cyclic(init_value=0.1, peak_value=1.0, up_steps=10)
        >>> [round(float(s(t)), 4) for t in (0, 5, 10, 20)]
        [0.1, 0.55, 1.0, 0.1]

    References:
        Smith, Cyclical Learning Rates for Training Neural Networks, 2017; PyTorch ``CyclicLR``.
    """

    init_value: ArrayLike
    peak_value: ArrayLike
    up_steps: ArrayLike
    down_steps: ArrayLike | None = None
    mode: str = "triangular"
    decay_rate: ArrayLike = 1.0

    def check(self, c: Checker) -> None:
        if self.down_steps is None:
            self._set("down_steps", self.up_steps)
        c.finite("init_value", self.init_value)
        c.finite("peak_value", self.peak_value)
        _check_cycle(c, self.up_steps, self.down_steps, self.decay_rate, self.mode)

    def law(self, step):
        up, down = _clamped_cycle(self.up_steps, self.down_steps, step)
        return saturate(
            self.init_value
            + (self.peak_value - self.init_value)
            * _cyclic_height(step, up, down, self.mode, self.decay_rate)
        )


cyclic = Cyclic


class CyclicMomentum(
    Schedule,
    name="cyclic_momentum",
    counts=("up_steps", "down_steps"),
    renamed=dict(gamma="decay_rate"),
):
    r"""The momentum (or Adam ``b1``) co-schedule of :func:`cyclic`: low when the LR is high.

    .. math:: \beta(t) = M - (M - B)\,h\,g(c, t)

    with ``h`` and ``g`` as in :func:`cyclic`. Pass the same cycle arguments as the LR schedule.

    Args:
        base_momentum: ``B``, reached at the LR peak.
        max_momentum: ``M``, at the LR trough.
        up_steps, down_steps, mode, decay_rate: as in :func:`cyclic`.

    Raises:
        ValueError: as :func:`cyclic`, or momenta outside [0, 1].
        TypeError: the old spelling ``gamma``.

    Traced arguments: as :func:`cyclic`.

    Examples:
        >>> import jaxlr
        >>> m = jaxlr.schedules.cyclic_momentum(up_steps=10)
        >>> [round(float(m(t)), 4) for t in (0, 10)]
        [0.9, 0.8]

    References:
        Smith, A disciplined approach to neural network hyper-parameters, 2018.
    """

    base_momentum: ArrayLike = 0.8
    max_momentum: ArrayLike = 0.9
    up_steps: ArrayLike
    down_steps: ArrayLike | None = None
    mode: str = "triangular"
    decay_rate: ArrayLike = 1.0

    def check(self, c: Checker) -> None:
        if self.down_steps is None:
            self._set("down_steps", self.up_steps)
        c.between("base_momentum", self.base_momentum, 0.0, 1.0)
        c.between("max_momentum", self.max_momentum, 0.0, 1.0)
        _check_cycle(c, self.up_steps, self.down_steps, self.decay_rate, self.mode)

    def law(self, step):
        up, down = _clamped_cycle(self.up_steps, self.down_steps, step)
        return saturate(
            self.max_momentum
            - (self.max_momentum - self.base_momentum)
            * _cyclic_height(step, up, down, self.mode, self.decay_rate)
        )


cyclic_momentum = CyclicMomentum


_ONE_CYCLE_SHAPES = ("cosine", "linear")


def _one_cycle_knots(total_steps, warmup_fraction, three_phase):
    up = warmup_fraction * total_steps
    if three_phase:
        return [0.0, up, 2.0 * up, total_steps]
    return [0.0, up, total_steps]


def _check_one_cycle(c: Checker, total_steps, warmup_fraction, shape, three_phase) -> None:
    c.flag("three_phase", three_phase)
    c.positive("total_steps", total_steps)
    c.between("warmup_fraction", warmup_fraction, 0.0, 0.5 if three_phase else 1.0, open_lo=True)
    c.choice("shape", shape, _ONE_CYCLE_SHAPES)


_ONE_CYCLE_RENAMED = dict(pct_start="warmup_fraction", anneal="shape")


class OneCycle(
    Schedule,
    name="one_cycle",
    counts=("total_steps",),
    renamed=dict(**_ONE_CYCLE_RENAMED, div_factor="init_value", final_div_factor="end_value"),
):
    r"""The one-cycle policy (super-convergence).

    Knots :math:`(0, I)`, :math:`(fT, P)`, :math:`(T, E)`; with ``three_phase`` the LR first
    returns to :math:`I` at :math:`2fT`, then anneals to :math:`E` at ``T``. Between knots the
    LR follows ``shape`` (cosine or linear); after ``T`` it stays at ``E``. (PyTorch's
    ``OneCycleLR`` puts the knots one step earlier, at :math:`fT - 1` and :math:`T - 1`;
    :class:`jaxlr.compat.torch.OneCycleLR` reproduces that.)

    Args:
        peak_value: ``P``, the maximum LR.
        total_steps: ``T`` > 0.
        warmup_fraction: ``f`` in (0, 1] (in (0, 0.5] when three-phase), the rising share of
            ``T`` (PyTorch's ``pct_start``).
        init_value: ``I``, the LR at step 0; defaults to ``peak_value / 25`` (PyTorch's
            ``div_factor = 25``).
        end_value: ``E``, the final LR; defaults to ``peak_value / 25e4`` (PyTorch's
            ``final_div_factor = 1e4`` on top of ``div_factor``).
        shape: ``"cosine"`` or ``"linear"`` (static).
        three_phase: use the three-phase form (static, a bool).

    Raises:
        ValueError: non-positive ``total_steps``, ``warmup_fraction`` out of range, an unknown
            ``shape``, a non-bool ``three_phase``, NaN.
        TypeError: the old spellings ``pct_start``, ``anneal``, ``div_factor``,
            ``final_div_factor``.

    Traced arguments: a traced ``warmup_fraction`` outside its range moves the peak knot
    outside ``[0, T]`` (a knot past ``T`` cuts the decay; one below 0 is a jump at step 0).

    Examples:
        >>> import jaxlr
        >>> s = jaxlr.schedules.one_cycle(peak_value=1.0, total_steps=100, warmup_fraction=0.25)
        >>> [float(s(t)) for t in (0, 25, 100)]
        [0.04, 1.0, 4e-06]

    References:
        Smith & Topin, Super-Convergence, 2018; PyTorch ``OneCycleLR``.
    """

    peak_value: ArrayLike
    total_steps: ArrayLike
    warmup_fraction: ArrayLike = 0.3
    init_value: ArrayLike | None = None
    end_value: ArrayLike | None = None
    shape: str = "cosine"
    three_phase: bool = False

    def check(self, c: Checker) -> None:
        c.finite("peak_value", self.peak_value)
        _check_one_cycle(c, self.total_steps, self.warmup_fraction, self.shape, self.three_phase)
        if self.init_value is None:
            self._set("init_value", times(self.peak_value, 1 / 25))
        if self.end_value is None:
            self._set("end_value", times(self.peak_value, 1 / 25e4))
        c.finite("init_value", self.init_value)
        c.finite("end_value", self.end_value)

    def law(self, step):
        values = (
            [self.init_value, self.peak_value, self.init_value, self.end_value]
            if self.three_phase
            else [self.init_value, self.peak_value, self.end_value]
        )
        knots = _one_cycle_knots(self.total_steps, self.warmup_fraction, self.three_phase)
        return segments(step, knots, values, [(self.shape, False)] * (len(knots) - 1))


one_cycle = OneCycle


class OneCycleMomentum(
    Schedule, name="one_cycle_momentum", counts=("total_steps",), renamed=dict(**_ONE_CYCLE_RENAMED)
):
    r"""The momentum (or Adam ``b1``) co-schedule of :func:`one_cycle`.

    Knots :math:`(0, M)`, :math:`(fT, B)`, :math:`(T, M)` (three-phase: :math:`(2fT, M)` and
    :math:`(T, M)`), annealed like the LR: momentum is low while the LR is high.

    Args:
        total_steps, warmup_fraction, shape, three_phase: as in :func:`one_cycle`.
        base_momentum: ``B``, at the LR peak.
        max_momentum: ``M``, at the start and the end.

    Raises:
        ValueError: as :func:`one_cycle`, or momenta outside [0, 1].
        TypeError: the old spellings ``pct_start``, ``anneal``.

    Traced arguments: as :func:`one_cycle`.

    Examples:
        >>> import jaxlr
        >>> m = jaxlr.schedules.one_cycle_momentum(total_steps=100, warmup_fraction=0.25)
        >>> [round(float(m(t)), 4) for t in (0, 25, 100)]
        [0.95, 0.85, 0.95]

    References:
        Smith, A disciplined approach to neural network hyper-parameters, 2018.
    """

    total_steps: ArrayLike
    base_momentum: ArrayLike = 0.85
    max_momentum: ArrayLike = 0.95
    warmup_fraction: ArrayLike = 0.3
    shape: str = "cosine"
    three_phase: bool = False

    def check(self, c: Checker) -> None:
        c.between("base_momentum", self.base_momentum, 0.0, 1.0)
        c.between("max_momentum", self.max_momentum, 0.0, 1.0)
        _check_one_cycle(c, self.total_steps, self.warmup_fraction, self.shape, self.three_phase)

    def law(self, step):
        values = [self.max_momentum, self.base_momentum, self.max_momentum]
        if self.three_phase:
            values.append(self.max_momentum)
        knots = _one_cycle_knots(self.total_steps, self.warmup_fraction, self.three_phase)
        return segments(step, knots, values, [(self.shape, False)] * (len(knots) - 1))


one_cycle_momentum = OneCycleMomentum


_WARMUP_SHAPES = ("linear", "cosine", "1-sqrt")


class Wsd(Schedule, name="wsd", counts=("total_steps", "warmup_steps", "decay_steps")):
    r"""Warmup-stable-decay: warm up, hold ``peak_value``, then decay in the last steps.

    Knots :math:`(0, I)`, :math:`(W, P)`, :math:`(T - D, P)`, :math:`(T, E)`. The decay follows
    ``decay_shape`` (see :func:`jaxlr.schedules.anneal`: linear, cosine, 1-sqrt, exponential
    :math:`P (E/P)^{p}`, inverse :math:`1/((1-p)/P + p/E)`); the warmup follows ``warmup_shape``
    played backwards from the peak.

    Args:
        peak_value: ``P``.
        total_steps: ``T``, warmup and decay included.
        warmup_steps: ``W``.
        decay_steps: ``D``; give this or ``decay_fraction``.
        decay_fraction: ``D / T`` in [0, 1].
        init_value: ``I``, the LR at step 0.
        end_value: ``E``; must be > 0 for the exponential and inverse shapes.
        warmup_shape: ``"linear"``, ``"cosine"`` or ``"1-sqrt"`` (static).
        decay_shape: ``"linear"``, ``"cosine"``, ``"1-sqrt"``, ``"exponential"`` or
            ``"inverse"`` (static).

    Raises:
        ValueError: both or neither of ``decay_steps`` / ``decay_fraction``, ``W + D > T``,
            negative lengths, unknown shapes, a non-positive end for a log-space shape, NaN.

    Traced arguments: traced phase lengths that overlap (``W + D > T``) make the later knot win:
    the LR jumps there instead of passing through every phase.

    Examples:
        >>> import jaxlr
        >>> s = jaxlr.schedules.wsd(peak_value=1.0, total_steps=100, warmup_steps=10,
        ...                         decay_fraction=0.2)
        >>> [round(float(s(t)), 4) for t in (5, 10, 80, 90, 100)]
        [0.5, 1.0, 1.0, 0.5, 0.0]

    References:
        Hu et al., MiniCPM, 2024; Hägele et al., Scaling Laws and Compute-Optimal Training
        Beyond Fixed Training Durations, 2024 (1-sqrt cooldown).
    """

    peak_value: ArrayLike
    total_steps: ArrayLike
    warmup_steps: ArrayLike = 0.0
    decay_steps: ArrayLike | None = None
    decay_fraction: dataclasses.InitVar[ArrayLike | None] = None
    init_value: ArrayLike = 0.0
    end_value: ArrayLike = 0.0
    warmup_shape: str = "linear"
    decay_shape: str = "linear"

    def check(self, c: Checker, decay_fraction: ArrayLike | None) -> None:
        c.finite("peak_value", self.peak_value)
        c.nonnegative("total_steps", self.total_steps)
        c.nonnegative("warmup_steps", self.warmup_steps)
        if (self.decay_steps is None) == (decay_fraction is None):
            c.fail(
                f"give exactly one of decay_steps and decay_fraction, got decay_steps="
                f"{self.decay_steps!r}, decay_fraction={decay_fraction!r}"
            )
        if decay_fraction is not None:
            c.between("decay_fraction", decay_fraction, 0.0, 1.0)
            self._set("decay_steps", _product(decay_fraction, self.total_steps))
        c.nonnegative("decay_steps", self.decay_steps)
        if _concrete_all(self.warmup_steps, self.decay_steps):
            c.not_greater(
                "warmup_steps + decay_steps",
                _sum(self.warmup_steps, self.decay_steps),
                "total_steps",
                self.total_steps,
            )
        c.finite("init_value", self.init_value)
        c.finite("end_value", self.end_value)
        c.choice("warmup_shape", self.warmup_shape, _WARMUP_SHAPES)
        c.choice("decay_shape", self.decay_shape, SHAPES)
        if self.decay_shape in POSITIVE_SHAPES:
            c.positive("end_value", self.end_value)
            c.positive("peak_value", self.peak_value)

    def law(self, step):
        # the decay's start as a Sum: exact in integers where float32 cannot hold T - D
        decay_start = steps.Sum(self.total_steps) - self.decay_steps
        knots = [0.0, self.warmup_steps, decay_start, self.total_steps]
        values = [self.init_value, self.peak_value, self.peak_value, self.end_value]
        shapes = [(self.warmup_shape, True), ("linear", False), (self.decay_shape, False)]
        return segments(step, knots, values, shapes)


wsd = Wsd


def _concrete_all(*xs) -> bool:
    return all(concrete(x) is not None for x in xs)


def _sum(*xs):
    """A sum of step counts for a check: float64 when concrete (Python ints past 2^31 are fine)."""
    if _concrete_all(*xs):
        return sum(np.asarray(x, np.float64) for x in xs)
    return sum(as_float(x) for x in xs)


def _product(a, b):
    if _concrete_all(a, b):
        return np.asarray(a, np.float64) * np.asarray(b, np.float64)
    return as_float(a) * as_float(b)


class Infinite(
    Schedule,
    name="infinite",
    counts=("total_steps", "warmup_steps", "cooldown_steps", "decay_steps"),
):
    r"""An infinite LR schedule: warmup, cooldown, a constant phase of any length, annealing.

    Knots :math:`(0, I)`, :math:`(W, P)`, :math:`(W + C, K)`, :math:`(T - D, K)`,
    :math:`(T, E)`. Training can continue from any checkpoint of the constant phase; the
    anneal is only run for the model that is released.

    Args:
        peak_value: ``P``, the LR after warmup.
        constant_value: ``K``, the LR of the constant phase.
        total_steps: ``T``.
        warmup_steps: ``W``.
        cooldown_steps: ``C``, from ``P`` down to ``K``.
        decay_steps: ``D``, the final anneal to ``E``.
        init_value: ``I``.
        end_value: ``E``.
        cooldown_shape, decay_shape: shapes as in :func:`wsd` (static).

    Raises:
        ValueError: ``W + C + D > T``, negative lengths, unknown shapes, NaN.

    Traced arguments: as :func:`wsd`: overlapping traced phases make the later knot win.

    Examples:
        >>> import jaxlr
        >>> s = jaxlr.schedules.infinite(peak_value=1.0, constant_value=0.5, total_steps=100,
        ...                              warmup_steps=10, cooldown_steps=20, decay_steps=20)
        >>> [round(float(s(t)), 4) for t in (10, 20, 30, 80, 90, 100)]
        [1.0, 0.75, 0.5, 0.5, 0.25, 0.0]

    References:
        Ibrahim et al., Simple and Scalable Strategies to Continually Pre-train Large Language
        Models, 2024.
    """

    peak_value: ArrayLike
    constant_value: ArrayLike
    total_steps: ArrayLike
    warmup_steps: ArrayLike
    cooldown_steps: ArrayLike
    decay_steps: ArrayLike
    init_value: ArrayLike = 0.0
    end_value: ArrayLike = 0.0
    cooldown_shape: str = "cosine"
    decay_shape: str = "linear"

    def check(self, c: Checker) -> None:
        c.finite("peak_value", self.peak_value)
        c.finite("constant_value", self.constant_value)
        for name, v in (
            ("total_steps", self.total_steps),
            ("warmup_steps", self.warmup_steps),
            ("cooldown_steps", self.cooldown_steps),
            ("decay_steps", self.decay_steps),
        ):
            c.nonnegative(name, v)
        if _concrete_all(
            self.warmup_steps, self.cooldown_steps, self.decay_steps, self.total_steps
        ):
            c.not_greater(
                "warmup_steps + cooldown_steps + decay_steps",
                _sum(self.warmup_steps, self.cooldown_steps, self.decay_steps),
                "total_steps",
                self.total_steps,
            )
        c.finite("init_value", self.init_value)
        c.finite("end_value", self.end_value)
        c.choice("cooldown_shape", self.cooldown_shape, SHAPES)
        c.choice("decay_shape", self.decay_shape, SHAPES)

    def law(self, step):
        knots = [
            0.0,
            self.warmup_steps,
            steps.Sum(self.warmup_steps, self.cooldown_steps),  # exact sums (steps.Sum)
            steps.Sum(self.total_steps) - self.decay_steps,
            self.total_steps,
        ]
        values = [
            self.init_value,
            self.peak_value,
            self.constant_value,
            self.constant_value,
            self.end_value,
        ]
        shapes = [
            ("linear", True),
            (self.cooldown_shape, False),
            ("linear", False),
            (self.decay_shape, False),
        ]
        return segments(step, knots, values, shapes)


infinite = Infinite


class Swa(Schedule, name="swa", counts=("anneal_steps",), renamed=dict(anneal="shape")):
    r"""Anneal to the constant stochastic-weight-averaging LR (PyTorch ``SWALR``).

    .. math:: \eta(t) = S\,\alpha + I\,(1 - \alpha), \quad
        \alpha = a(\min(1, t/A)),\ a(x) = \tfrac12(1 - \cos\pi x)\ \text{or}\ x

    Args:
        init_value: ``I``, the LR when SWA starts.
        swa_value: ``S``, the SWA learning rate.
        anneal_steps: ``A`` >= 0.
        shape: ``"cosine"`` or ``"linear"`` (static).

    Raises:
        ValueError: negative ``anneal_steps``, unknown ``shape``, NaN.
        TypeError: the old spelling ``anneal``.

    Traced arguments: a traced negative ``anneal_steps`` is a jump to ``swa_value`` at step 0.

    Examples:
        >>> import jaxlr
        >>> s = jaxlr.schedules.swa(init_value=1.0, swa_value=0.5, anneal_steps=10)
        >>> [round(float(s(t)), 4) for t in (0, 5, 10, 50)]
        [1.0, 0.75, 0.5, 0.5]

    References:
        Izmailov et al., Averaging Weights Leads to Wider Optima and Better Generalization, 2018.
    """

    init_value: ArrayLike
    swa_value: ArrayLike
    anneal_steps: ArrayLike = 10
    shape: str = "cosine"

    def check(self, c: Checker) -> None:
        c.finite("init_value", self.init_value)
        c.finite("swa_value", self.swa_value)
        c.nonnegative("anneal_steps", self.anneal_steps)
        c.choice("shape", self.shape, _ONE_CYCLE_SHAPES)

    def law(self, step):
        return segments(
            step, [0.0, self.anneal_steps], [self.init_value, self.swa_value], [(self.shape, False)]
        )


swa = Swa
