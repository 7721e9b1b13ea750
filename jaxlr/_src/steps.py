r"""Step arithmetic: exact integer decisions for integer steps, plain floats for the rest.

A law receives its step as it comes: an integer array (Optax's int32 counter, a Python int below
:math:`2^{31}`) or a float array. Its step-count hyperparameters (lengths, boundaries, periods)
are float leaves. A float32 holds every integer only up to :math:`2^{24}`, so comparing an int32
step with a count in float32 (``step >= boundary``) or subtracting them decides wrongly past
16.7M steps. The helpers here make those integer decisions in the step's integer dtype:

- a count ``c`` that is a whole number below :math:`2^{31}` converts to int32 exactly
  (``ceil`` for a comparison, ``floor`` for a difference), so ``reached(step, c)``,
  ``elapsed(step, c)``, ``divide(step, p)`` and :func:`restart_cycle` are exact for every int32
  step; the float result (an elapsed time, a fraction) is then rounded once;
- a float step goes through plain float arithmetic (exact to :math:`2^{24}` in float32,
  :math:`2^{53}` under ``jax_enable_x64``). A Python int past int32 becomes such a float
  (:func:`as_step`): past :math:`2^{31}` a float32 step is exact to a multiple of 256.

Gradients: an elapsed time keeps ``d(step - c)/dc = -1`` (the fraction ``c - floor(c)`` carries
it), a remainder ``d r/d p = -q``; float steps are differentiated as written. A count that is
not a whole number is compared exactly too (``step >= c`` iff ``step >= ceil(c)``); divisions
by such a period use floats. Exact ranges: counts in :math:`[0, 2^{31})` and int32 steps with
:math:`|step - count| < 2^{31}` (every step >= 0); divisions and cycles for steps >= 0 (a
negative step uses floats); an infinite count (a phase that never ends) compares correctly. A
boundary or period a law computes from several counts (``total_steps - decay_steps``, an up
and a down length) is written as a :class:`Sum` of them: every helper adds its parts in
integers when each is a whole number (so the boundary is exact although float32 cannot hold
it), in floats otherwise.
"""

from __future__ import annotations

import numbers
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import ArrayLike

from jaxlr._src.numeric import float_dtype, safe_div, saturate

sg = jax.lax.stop_gradient


def as_step(step: ArrayLike) -> jax.Array:
    """A step as an array: integers stay integers (int32, or int64 under ``jax_enable_x64``)
    while the dtype holds them; a Python or NumPy integer past that becomes a float (exact to
    a multiple of 256 below :math:`2^{32}` in float32); unsigned or narrow integers widen.

    Examples:
        >>> from jaxlr._src.steps import as_step
        >>> as_step(7).dtype, as_step(2**40).dtype
        (dtype('int32'), dtype('float32'))
    """
    fdtype = float_dtype()
    idtype = jnp.int64 if fdtype == jnp.float64 else jnp.int32
    info = np.iinfo(idtype)
    if isinstance(step, (bool, np.bool_)):
        return jnp.asarray(int(step), idtype)
    if isinstance(step, numbers.Integral) or (
        isinstance(step, (np.ndarray, np.generic)) and np.issubdtype(step.dtype, np.integer)
    ):
        host = np.asarray(step, dtype=object if isinstance(step, int) else None)
        ints = [int(n) for n in host.reshape(-1)]
        if all(info.min <= n <= info.max for n in ints):
            return jnp.asarray(np.asarray(ints, np.int64).reshape(host.shape), idtype)
        return jnp.asarray(np.asarray([_big(n) for n in ints]).reshape(host.shape), fdtype)
    arr = jnp.asarray(step)
    if arr.dtype == jnp.bool_:
        return arr.astype(idtype)
    if jnp.issubdtype(arr.dtype, jnp.integer):
        bits = jnp.iinfo(arr.dtype).bits
        signed = jnp.issubdtype(arr.dtype, jnp.signedinteger)
        if (signed and bits <= jnp.iinfo(idtype).bits) or bits < jnp.iinfo(idtype).bits:
            return arr.astype(idtype)
        return arr.astype(fdtype)  # uint32 (float32 mode) or uint64: as floats
    return arr


def _big(n: int) -> float:
    try:
        return float(n)
    except OverflowError:
        return float("inf") if n > 0 else float("-inf")


def is_int(step: jax.Array) -> bool:
    """Whether ``step`` is an integer array (a static fact: its dtype)."""
    return jnp.issubdtype(jnp.result_type(step), jnp.integer)


def to_float(step: ArrayLike) -> jax.Array:
    """``step`` as the default float dtype (a float step is returned as it is).

    Examples:
        >>> import jax.numpy as jnp
        >>> from jaxlr.schedules.steps import to_float
        >>> to_float(jnp.int32(3)).dtype
        dtype('float32')
    """
    step = jnp.asarray(step)
    return step if jnp.issubdtype(step.dtype, jnp.floating) else step.astype(float_dtype())


def _bounds(idtype, fdtype) -> tuple[float, float]:
    """The integer dtype's range as values the float dtype holds exactly."""
    info = np.iinfo(idtype)
    top = np.nextafter(np.asarray(info.max + 1.0, fdtype), np.asarray(0, fdtype))
    return float(info.min), float(top)


def _whole(c: ArrayLike, idtype, rounding) -> tuple[jax.Array, jax.Array]:
    """``rounding(c)`` clipped to the integer range: (the float, the integer)."""
    c = jnp.asarray(c)
    lo, hi = _bounds(idtype, c.dtype)
    w = jax.lax.clamp(np.asarray(lo, c.dtype), rounding(c), np.asarray(hi, c.dtype))
    return w, w.astype(idtype)


class Sum:
    """A boundary or period given as a sum of counts: ``Sum(t) - d`` is ``t - d``.

    The helpers take it wherever they take a count: when every term is a whole number in the
    integer range they add the terms in the step's integer dtype (saturating), so the boundary
    is exact even where float32 cannot hold it (``2**25 + 3``); otherwise, and as a float
    (:meth:`value`), the terms are added in floats. ``+``, ``-`` and unary ``-`` with counts or
    other sums give sums; a count added and subtracted (the same object) cancels, so the length
    ``(t) - (t - d)`` between two knots is exactly ``d``.

    Examples:
        >>> import jax.numpy as jnp
        >>> from jaxlr.schedules.steps import Sum, reached
        >>> b = Sum(jnp.float32(2**25), 3.0)  # 33554435: float32 rounds it to 33554436
        >>> bool(reached(jnp.int32(2**25 + 3), b)), float(b.value())
        (True, 33554436.0)
    """

    __slots__ = ("terms",)

    def __init__(self, *parts: ArrayLike | Sum) -> None:
        terms: list[tuple[int, ArrayLike]] = []
        for p in parts:
            for sign, x in p.terms if isinstance(p, Sum) else ((1, p),):
                match = next((k for k, (s, y) in enumerate(terms) if y is x and s == -sign), None)
                if match is None:
                    terms.append((sign, x))
                else:
                    del terms[match]
        self.terms = tuple(terms)

    def __add__(self, other: ArrayLike | Sum) -> Sum:
        return Sum(self, other)

    __radd__ = __add__

    def __neg__(self) -> Sum:
        out = Sum()
        out.terms = tuple((-s, x) for s, x in self.terms)
        return out

    def __sub__(self, other: ArrayLike | Sum) -> Sum:
        return Sum(self, -(other if isinstance(other, Sum) else Sum(other)))

    def __rsub__(self, other: ArrayLike | Sum) -> Sum:
        return Sum(other, -self)

    def _arrays(self) -> list[tuple[int, jax.Array]]:
        xs = [(s, jnp.asarray(x)) for s, x in self.terms] or [(1, jnp.zeros(()))]
        dtype = jnp.result_type(*(x for _, x in xs))
        if not jnp.issubdtype(dtype, jnp.floating):
            dtype = float_dtype()
        return [(s, x.astype(dtype)) for s, x in xs]

    def value(self) -> jax.Array:
        """The sum in floats (rounded like any float sum)."""
        xs = self._arrays()
        out = xs[0][1] if xs[0][0] > 0 else -xs[0][1]
        for s, x in xs[1:]:
            out = out + x if s > 0 else out - x
        return out


def value(c: ArrayLike | Sum) -> jax.Array:
    """A count or a :class:`Sum` as a float array."""
    return c.value() if isinstance(c, Sum) else jnp.asarray(c)


def _sum_int(c: Sum, idtype) -> tuple[jax.Array, jax.Array, jax.Array]:
    """The terms of ``c`` added in integers: (whether every term is whole and in range, the
    saturated sum, whether the sum overflowed upwards)."""
    info = np.iinfo(idtype)
    whole, total, over = None, None, None
    for sign, x in c._arrays():
        lo, hi = _bounds(idtype, x.dtype)
        lo = -hi  # so that the term negates without wrapping
        xi = jax.lax.clamp(np.asarray(lo, x.dtype), x, np.asarray(hi, x.dtype)).astype(idtype)
        ok = (jnp.floor(x) == x) & (x >= lo) & (x <= hi)
        xi = xi if sign > 0 else -xi
        if total is None:
            whole, total, over = ok, xi, jnp.zeros((), bool)
            continue
        s = total + xi  # wraps on overflow; saturated below
        up = (total > 0) & (xi > 0) & (s < 0)
        down = (total < 0) & (xi < 0) & (s >= 0)
        total = jnp.where(up, info.max, jnp.where(down, info.min, s))
        whole, over = whole & ok, (over | up) & ~down
    return whole, total, over


def _split(c: ArrayLike | Sum, idtype, rounding, *, frac: bool = False) -> tuple[Any, Any]:
    """``rounding(c)`` as an integer (clipped), and either ``c - rounding(c)`` as a float
    carrying the derivative (``frac``) or whether ``c`` is below the integer range's end."""
    limit = -float(np.iinfo(idtype).min)
    if not isinstance(c, Sum):
        c = jnp.asarray(c)
        f, ci = _whole(c, idtype, rounding)
        return ci, (c - f if frac else c < limit)
    v = c.value()
    f, fi = _whole(v, idtype, rounding)
    whole, si, over = _sum_int(c, idtype)
    rest = jnp.where(whole, v - sg(v), v - f) if frac else jnp.where(whole, ~over, v < limit)
    return jnp.where(whole, si, fi), rest


def _zero(c: ArrayLike) -> bool:
    """A count known at trace time to be 0 (a Python literal): no operation needed."""
    return isinstance(c, (int, float)) and not isinstance(c, bool) and c == 0


def reached(step: jax.Array, c: ArrayLike | Sum) -> jax.Array:
    """``step >= c``, exact for integer steps (``step >= ceil(c)`` in integers).

    Examples:
        >>> import jax.numpy as jnp
        >>> from jaxlr.schedules.steps import reached
        >>> bool(reached(jnp.int32(2**30 + 1), jnp.float32(2**30 + 128)))  # float32: True
        False
    """
    if not is_int(step):
        return step >= value(c)
    if _zero(c):
        return step >= 0
    ci, below = _split(c, step.dtype, jnp.ceil)
    return (step >= ci) & below


def before(step: jax.Array, c: ArrayLike | Sum) -> jax.Array:
    """``step < c`` (the negation of :func:`reached`).

    Examples:
        >>> import jax.numpy as jnp
        >>> from jaxlr.schedules.steps import before
        >>> bool(before(jnp.int32(2**30 + 127), jnp.float32(2**30 + 128)))
        True
    """
    return ~reached(step, c)


def passed(step: jax.Array, c: ArrayLike | Sum) -> jax.Array:
    """``step > c``, exact for integer steps (``step > floor(c)`` in integers).

    Examples:
        >>> import jax.numpy as jnp
        >>> from jaxlr.schedules.steps import passed
        >>> bool(passed(jnp.int32(2**30 + 128), jnp.float32(2**30 + 128)))
        False
    """
    if not is_int(step):
        return step > value(c)
    fi, below = _split(c, step.dtype, jnp.floor)
    return (step > fi) & below


def elapsed(step: jax.Array, c: ArrayLike | Sum) -> jax.Array:
    """``step - c`` as a float, the difference taken exactly for integer steps, then rounded.

    The derivative with respect to ``c`` is -1 (and 1 with respect to a float step).

    Examples:
        >>> import jax.numpy as jnp
        >>> from jaxlr.schedules.steps import elapsed
        >>> float(elapsed(jnp.int32(2**30 + 1), jnp.float32(2**30)))  # float32 alone: 0.0
        1.0
    """
    if not is_int(step):
        return step if _zero(c) else step - value(c)
    if _zero(c):
        return to_float(step)
    fi, frac = _split(c, step.dtype, jnp.floor, frac=True)
    return (step - fi).astype(frac.dtype) - frac


def shift(step: jax.Array, c: ArrayLike | Sum) -> jax.Array:
    """A child's step ``step - c`` in the step's own kind: integers stay exact integers (the
    child starts at 0 on the first whole step >= ``c``); floats subtract.

    Examples:
        >>> import jax.numpy as jnp
        >>> from jaxlr.schedules.steps import shift
        >>> int(shift(jnp.int32(2**30 + 130), jnp.float32(2**30 + 128)))
        2
    """
    if not is_int(step):
        return step - value(c)
    if not isinstance(c, Sum):
        return step - _whole(c, step.dtype, jnp.ceil)[1]
    return step - _split(c, step.dtype, jnp.ceil)[0]


def shift_from(step: jax.Array, c: ArrayLike | Sum) -> jax.Array:
    """``max(step - c, 0)`` in the step's own kind (:func:`shift` clamped at 0).

    Examples:
        >>> from jaxlr.schedules.steps import shift_from
        >>> float(shift_from(3.0, 5.0)), float(shift_from(7.0, 5.0))
        (0.0, 2.0)
    """
    return jnp.maximum(shift(step, c), 0)


def progress(step: jax.Array, start: ArrayLike | Sum, length: ArrayLike | Sum) -> jax.Array:
    """Fraction of the phase ``[start, start + length)`` done at ``step``, clipped to [0, 1].

    The elapsed time is exact (:func:`elapsed`), so the fraction is as accurate as the float
    dtype allows however large the step. A phase of length 0 (or a traced negative length) is
    done from its start on: a jump at ``start``.

    Examples:
        >>> import jax.numpy as jnp
        >>> from jaxlr.schedules.steps import progress
        >>> float(progress(jnp.int32(2**30 + 50), 2.0**30, 100.0))  # float32 steps: 0.0
        0.5
    """
    e = elapsed(step, start)
    length = jnp.asarray(value(length), e.dtype)
    zero, one = np.asarray(0, e.dtype), np.asarray(1, e.dtype)
    ok = length > zero
    done = e >= jnp.where(ok, length, zero)
    return jnp.where(done, one, jnp.maximum(e / jnp.where(ok, length, one), zero))


def _unsigned(
    step: jax.Array, p: jax.Array | Sum, *, nonnegative: bool = False
) -> tuple[jax.Array, jax.Array, jax.Array]:
    """Whether ``step >= 0`` (known when ``nonnegative``) and ``p`` is a whole number in
    :math:`[1, 2^{32})` (a :class:`Sum`: whole parts adding up to :math:`[1, 2^{31})`), and
    both as unsigned integers (other ``p`` give a divisor >= 1 whose quotient is not used)."""
    udtype = jnp.uint32 if jnp.iinfo(step.dtype).bits <= 32 else jnp.uint64
    if isinstance(p, Sum):
        whole, si, over = _sum_int(p, step.dtype)
        ok = whole & ~over & (si >= 1)
        pu = jnp.where(ok, si, 1).astype(udtype)
        if not nonnegative:
            ok = ok & (step >= 0)
        return ok, step.astype(udtype), pu
    one = np.asarray(1, p.dtype)
    top = np.nextafter(np.asarray(2.0 ** jnp.iinfo(udtype).bits, p.dtype), one)
    # clamped into [1, 2^bits) and floored by the conversion: the period is whole and in range
    # iff it converts back to itself (XLA converts NaN to 0 and divides by 0 without trapping;
    # that quotient is never used)
    pu = jax.lax.clamp(one, p, top).astype(udtype)
    ok = pu.astype(p.dtype) == p
    if not nonnegative:
        ok = ok & (step >= 0)
    return ok, step.astype(udtype), pu


def _float_period(p: ArrayLike | Sum) -> tuple[jax.Array, jax.Array]:
    """``p`` as a float array, and ``p`` clamped to the smallest positive float."""
    p = value(p)
    if not jnp.issubdtype(p.dtype, jnp.floating):
        p = p.astype(float_dtype())
    tiny = np.asarray(jnp.finfo(p.dtype).tiny, p.dtype)
    # an infinite period (a traced one: "never") is the largest finite float, so that the
    # derivative terms stay finite (inf - inf would be NaN) and the quotient is 0
    big = np.asarray(jnp.finfo(p.dtype).max, p.dtype)
    return p, jnp.where(p > tiny, jnp.minimum(p, big), tiny)


def floor_div(
    step: jax.Array,
    p: ArrayLike | Sum,
    *,
    start: ArrayLike | None = None,
    nonnegative: bool = False,
) -> jax.Array:
    """``floor(step / p)`` as a float: which stair, which epoch; with ``start``,
    ``floor(max(step - start, 0) / p)`` (stairs counted from ``start``, 0 before it).

    Exact for an integer step >= 0 and a whole ``p >= 1`` (unsigned integer division), and with
    ``start`` a whole ``start`` (a start that is not whole uses floats: the stair of step 6 from
    3.5 in periods of 2.5 is 1); floats otherwise. A traced ``p <= 0`` is clamped to the
    smallest positive float, an infinite one to the largest finite float, and the quotient
    saturates at the largest finite float.
    ``nonnegative=True`` says the caller knows ``step >= 0`` (a step from :func:`shift_from`),
    which saves the test.

    Examples:
        >>> import jax.numpy as jnp
        >>> from jaxlr.schedules.steps import floor_div
        >>> float(floor_div(jnp.int32(2**30), jnp.float32(2**30 + 128)))  # float32 floats: 1
        0.0
        >>> float(floor_div(jnp.int32(6), 2.5, start=3.5)), float(floor_div(6.0, 2.5, start=3.5))
        (1.0, 1.0)
    """
    pf, safe = _float_period(p)
    whole = None
    if start is None:
        t = to_float(step).astype(pf.dtype)
    elif not is_int(step):
        t = jnp.maximum(step - start, 0)
    else:
        start = jnp.asarray(start, pf.dtype)
        f, fi = _whole(start, step.dtype, jnp.floor)
        d = step - fi  # the exact count from a whole start (not used otherwise)
        t = jnp.maximum(d.astype(pf.dtype) - (start - f), 0)
        whole = f == start
        step, nonnegative = jnp.maximum(d, 0), True
    q = saturate(jnp.floor(t / safe))
    if is_int(step):
        ok, su, pu = _unsigned(step, p if isinstance(p, Sum) else pf, nonnegative=nonnegative)
        ok = ok if whole is None else ok & whole
        q = jnp.where(ok, (su // pu).astype(pf.dtype), q)
    return q


def divide(step: jax.Array, p: ArrayLike | Sum) -> tuple[jax.Array, jax.Array]:
    """``q = floor(step / p)`` and ``r = step - q p`` as floats.

    Exact for an integer step >= 0 and a whole period ``p >= 1`` (unsigned integer division);
    otherwise floats (the remainder by ``fmod``, exact; the quotient as close as floats allow).
    A traced ``p <= 0`` is clamped to the smallest positive float, an infinite one to the
    largest finite float (the first period never ends; values and gradients stay finite), and
    ``q`` saturates at the largest finite float. ``dr/dstep = 1``, ``dr/dp = -q``.

    Examples:
        >>> import jax.numpy as jnp
        >>> from jaxlr.schedules.steps import divide
        >>> q, r = divide(jnp.int32(2**31 - 1), jnp.float32(100.0))
        >>> int(q), float(r)
        (21474836, 47.0)
    """
    pf, safe = _float_period(p)
    dtype = pf.dtype
    t = to_float(step).astype(dtype)
    infinite = jnp.isinf(t)
    tf = jnp.where(infinite, np.asarray(0, dtype), t)
    ts, ps = sg(tf), sg(safe)
    rf = jax.lax.rem(ts, ps)  # fmod: exact
    rf = jnp.where(rf < 0, rf + ps, rf)
    qf = jnp.round((ts - rf) / ps)
    qf = saturate(jnp.where(infinite, jnp.sign(t) * jnp.finfo(dtype).max, qf))
    rf = rf + (tf - ts)
    if is_int(step):
        ok, su, pu = _unsigned(step, p if isinstance(p, Sum) else pf)
        qu = su // pu
        qf = jnp.where(ok, qu.astype(dtype), qf)
        rf = jnp.where(ok, (su - qu * pu).astype(dtype), rf)
    # r = step - q p: the straight-through term (0 in value) carries dr/dp = -q
    return qf, rf - qf * (safe - sg(safe))


def triangle(
    step: jax.Array, up: ArrayLike, down: ArrayLike
) -> tuple[jax.Array, jax.Array, jax.Array]:
    """The triangle wave over cycles of ``up + down`` steps: ``(q, rising, h)``.

    With ``r`` the steps into cycle ``q = floor(step / (up + down))``: ``rising`` is
    ``r <= up`` and :math:`h = r/up` while rising, :math:`(up + down - r)/down` after (0 at the
    cycle's ends, 1 at its turn). Exact for an integer step >= 0 and whole ``up``, ``down``:
    the period, the remainder and the turn are integers, though float32 holds neither
    ``up + down`` nor ``r`` past :math:`2^{24}`; floats otherwise (as :func:`divide`).

    Examples:
        >>> import jax.numpy as jnp
        >>> from jaxlr.schedules.steps import triangle
        >>> _, rising, h = triangle(jnp.int32(2**25 + 1), 2.0**25, 3.0)  # r = 2**25 + 1 > up
        >>> bool(rising), round(float(h), 4)
        (False, 0.6667)
    """
    total = Sum(up, down)
    q, within = divide(step, total)
    rising = within <= up
    left = total.value() - within
    if is_int(step):
        ok, su, pu = _unsigned(step, total)
        ru = su - (su // pu) * pu
        ui = _whole(up, step.dtype, jnp.floor)[1]
        rising = jnp.where(ok, ru <= jnp.maximum(ui, 0).astype(ru.dtype), rising)
        # the exact count left, carrying the float form's derivative
        left = jnp.where(ok, (pu - ru).astype(left.dtype) + (left - sg(left)), left)
    value = jnp.where(rising, safe_div(within, up, 1.0), safe_div(left, down, 0.0))
    return q, rising, value


def epoch(step: jax.Array, p: ArrayLike | Sum) -> jax.Array:
    """``floor(step / p)`` in the step's own kind: an integer step gives an integer (exact for a
    whole ``p``, so a child schedule's integer decisions stay exact), a float step a float.

    Examples:
        >>> import jax.numpy as jnp
        >>> from jaxlr.schedules.steps import epoch
        >>> int(epoch(jnp.int32(2**31 - 1), 3.0))
        715827882
    """
    pf, safe = _float_period(p)
    q = saturate(jnp.floor(to_float(step).astype(pf.dtype) / safe))
    if not is_int(step):
        return q
    ok, su, pu = _unsigned(step, p if isinstance(p, Sum) else pf)
    _, approx = _whole(q, step.dtype, jnp.floor)
    return jnp.where(ok, (su // pu).astype(step.dtype), approx)


def _ipow(base: jax.Array, exponent: jax.Array, bits: int) -> jax.Array:
    """``base ** exponent`` in integers for ``0 <= exponent < 2**bits`` (square and multiply;
    the unused squares may wrap, the product used does not when it fits)."""
    out = jnp.ones_like(base)
    for k in range(bits):
        take = ((exponent >> k) & 1) == 1
        out = jnp.where(take, out * base, out)
        base = base * base
    return out


def restart_cycle(
    step: jax.Array, first: ArrayLike, mult: ArrayLike
) -> tuple[jax.Array, jax.Array, jax.Array]:
    r"""The restart cycle holding ``step`` when cycle ``i`` lasts ``first * mult**i`` steps.

    Returns ``(i, u, length)`` as floats: the cycle index, the steps elapsed in it and its
    length. Cycle ``i`` starts at :math:`F (m^i - 1)/(m - 1)` (:math:`F i` for ``m = 1``). Exact
    for an integer step in :math:`[0, 2^{31})` with a whole ``first >= 1`` and ``mult`` 1 or a
    whole number in :math:`[2, 2^{16})`: the cycle starts :math:`S_i = (m^i - 1)/(m - 1)` in
    units of ``first`` are unsigned integers, from a float guess of ``i`` corrected by one
    either way (a guess whose :math:`m^i` overflows starts one lower), checked at every cycle
    start for such ``m`` (tests/test_exact_steps.py); floats otherwise. A step before 0 is in
    cycle 0 (``u`` is the step). A traced ``first <= 0`` is clamped to the smallest positive
    float (an infinite one to the largest finite float); ``mult`` in (0, 1) shrinks the periods
    (as Keras allows).

    Examples:
        >>> import jax.numpy as jnp
        >>> from jaxlr.schedules.steps import restart_cycle
        >>> F = 2.0**29 + 64  # cycles of F, 2F, 4F steps: cycle 2 starts at 3F
        >>> [(int(i), float(u)) for i, u, _ in
        ...  (restart_cycle(jnp.int32(t), F, 2.0) for t in (3 * F - 128, 3 * F - 1, 3 * F))]
        [(1, 1073741824.0), (1, 1073741952.0), (2, 0.0)]
    """
    first = jnp.asarray(first)
    dtype = first.dtype if jnp.issubdtype(first.dtype, jnp.floating) else float_dtype()
    first = first.astype(dtype)
    mult = jnp.asarray(mult, dtype)
    tiny = jnp.finfo(dtype).tiny
    big = jnp.finfo(dtype).max
    first = jnp.where(first > tiny, jnp.minimum(first, big), tiny)  # inf: the largest float
    flat = jnp.abs(mult - 1.0) < 1e-6
    m = jnp.where(flat, 2.0, mult)  # keeps the geometric branch finite when mult == 1
    t = to_float(step).astype(dtype)

    def start(i):  # saturating: starts past the float range compare as the largest float
        return saturate(first * saturate(safe_div(saturate(m**i) - 1.0, m - 1.0)))

    # floats: a guess from the logarithm, corrected by comparing with the starts
    r = jnp.minimum(t / first, big)
    guess = jnp.clip(jnp.floor(jnp.log1p(saturate(r * (m - 1.0))) / jnp.log(m)), 0.0, big)
    s_g = start(guess)  # its neighbours by the recurrence s_{i+1} = m s_i + first
    s_next = saturate(m * s_g + first)
    down = t < s_g
    up = ~down & (t >= s_next)
    i = guess - down.astype(dtype) + up.astype(dtype)
    u = t - jnp.where(down, (s_g - first) / m, jnp.where(up, s_next, s_g))
    q, rest = divide(t, first)  # floats; integer steps are made exact below
    before_zero = t < 0.0  # cycle 0, the step itself
    i = jnp.where(before_zero, 0.0, jnp.where(flat, q, i))
    u = jnp.where(before_zero, t, jnp.where(flat, rest, u))
    if is_int(step):
        # integers: step = q first + r, and cycle i holds q in [S_i, S_{i+1}): S_i = i when
        # mult is 1; else S_i = (m^i - 1)/(m - 1), from the float guess g (off by at most one)
        # in unsigned integers while m^g fits them
        bits = jnp.iinfo(step.dtype).bits
        udtype = jnp.uint32 if bits == 32 else jnp.uint64
        whole, su, fu = _unsigned(step, first)  # step >= 0 and a whole first >= 1
        qu = su // fu
        ri = su - qu * fu
        g = jnp.clip(guess, 0.0, bits - 1.0)
        # a guess whose m^g overflows is one too high (S_g >= m^(g-1) would pass every step):
        # start one lower, and the step up below finds the cycle
        limit = 2.0**bits * (1 - 2.0**-20)
        g = jnp.where(m**g < limit, g, jnp.maximum(g - 1.0, 0.0))
        geometric = (
            ~flat & whole & (jnp.floor(m) == m) & (m >= 2.0) & (m < 2.0**16) & (m**g < limit)
        )
        mu = jnp.where(geometric, m, 2.0).astype(udtype)
        gu = jnp.where(geometric, g, 0.0).astype(udtype)
        s = (_ipow(mu, gu, int(np.log2(bits))) - 1) // (mu - 1)
        has_next = s <= jnp.asarray(jnp.iinfo(udtype).max - 1, udtype) // mu
        down = qu < s
        up = has_next & (qu >= s * mu + 1) & ~down
        s_i = jnp.where(down, (s - 1) // mu, jnp.where(up, s * mu + 1, s))
        index = g - down.astype(dtype) + up.astype(dtype)
        s_i = jnp.where(flat, qu, s_i)
        index = jnp.where(flat, qu.astype(dtype), index)
        exact = geometric | (flat & whole)
        u_int = ((qu - s_i) * fu + ri).astype(dtype)
        # u = step - first S_i: the straight-through term carries du/dfirst = -S_i
        s_f = s_i.astype(dtype)
        u = jnp.where(exact, u_int - s_f * (first - sg(first)), u)
        i = jnp.where(exact, index, i)
    length = jnp.where(flat, first, saturate(first * saturate(m**i)))
    return i, u, length


def cycle_position(step: jax.Array, start: ArrayLike, end: ArrayLike, cycles: ArrayLike):
    r"""``(c (step - start)) mod L`` with ``L = max(end - start, 1)``: the place in the current
    one of ``c`` equal cycles over ``[start, end)`` (Hugging Face's hard restarts), and ``L``.

    Exact for an integer step in ``[start, end)`` with whole ``start``, ``end`` and a whole
    ``c`` in :math:`[1, 2^{15})` (``L`` and the cycle starts :math:`\lceil k L / c \rceil` in
    integers, so no product ever overflows); floats otherwise. The derivative is that of
    :math:`c e - \lfloor c e / L \rfloor L` with :math:`e = step - start`.

    Examples:
        >>> import jax.numpy as jnp
        >>> from jaxlr.schedules.steps import cycle_position
        >>> within, length = cycle_position(jnp.int32(2**29 + 64), 0.0, 2.0**30 + 128, 3.0)
        >>> float(within), float(length)  # 3 (2^29 + 64) - (2^30 + 128), exactly
        (536870976.0, 1073741952.0)
    """
    start = jnp.asarray(start, float_dtype())
    length = jnp.maximum(end - start, 1.0)
    dtype = length.dtype
    length = jnp.minimum(length, jnp.finfo(dtype).max)  # an infinite end: the largest float
    e = elapsed(step, start)
    x = cycles * e
    k = jnp.floor(sg(x) / sg(length))
    out = x - k * length
    if is_int(step):
        ws, si = _whole(start, step.dtype, jnp.floor)
        we, ei_end = _whole(end, step.dtype, jnp.floor)
        ok = (
            (ws == start) & (we == end) & (end - start >= 1.0)
            & (jnp.floor(cycles) == cycles) & (cycles >= 1.0) & (cycles < 2.0**15)
            & reached(step, start) & before(step, end)
        )  # fmt: skip
        idtype = step.dtype
        li = jnp.where(ok, ei_end - si, 1)
        ci = jnp.where(ok, cycles, 1.0).astype(idtype)
        ei = jnp.where(ok, step - si, 0)
        a, b = li // ci, li % ci
        kg = jnp.clip(jnp.where(ok, k, 0.0).astype(idtype), 0, ci - 1)

        def start_of(j):  # ceil(j L / c)
            return j * a + (j * b + ci - 1) // ci

        kg = jnp.where(ei < start_of(kg), kg - 1, kg)
        kg = jnp.where((kg + 1 < ci) & (ei >= start_of(kg + 1)), kg + 1, kg)
        within = ci * (ei - start_of(kg)) + (ci - (kg * b) % ci) % ci
        kf = kg.astype(dtype)
        # straight-through: the exact value, the derivative of c e - k L
        exact_out = within.astype(dtype) + (x - sg(x)) - kf * (length - sg(length))
        out = jnp.where(ok, exact_out, out)
        length = jnp.where(ok, li.astype(dtype) + (length - sg(length)), length)
    return out, length
