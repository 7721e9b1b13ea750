r"""Exact steps: a step or step count carried as an unevaluated sum ``hi + lo`` of two floats.

Why. A float32 holds every integer only up to :math:`2^{24}` (16.7M steps); long LLM runs pass
that, and ``2**30 + 1`` rounds to ``2**30`` before any law compares it with a boundary. Optax's
step counters are int32, exact to :math:`2^{31}`. A schedule therefore turns its step (an int,
an int32/uint32 counter, a float) and its step-count hyperparameters into :class:`Exact` values,
and every piecewise decision of a law (which piece, which stair, which cycle) is made on them:

- ``a - b`` and ``a + b`` are error-free (Knuth's two-sum keeps the rounding error of the high
  parts in the low part), so an elapsed time ``step - start`` is exact and then rounded once;
- comparisons (``<``, ``>=`` ...) decide on the exact sign of ``a - b``;
- :func:`floor_div` and :func:`divmod_steps` divide non-negative integers below :math:`2^{32}`
  in unsigned integer arithmetic (exact), other values in floats as before;
- :func:`value` rounds to one float where the law needs a value (inside a piece the result is
  then as accurate as float32 allows).

Gradients flow through the high part (``d(a - b)/da = 1``; the integer path of
:func:`divmod_steps` carries the remainder's derivative through ``r = a - q b``), so a float step
or hyperparameter stays differentiable where the law is smooth. Under ``jax_enable_x64`` the
default float is float64 (exact to :math:`2^{53}`) and the low parts are 0.
"""

from __future__ import annotations

import numbers
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jaxlr._src.numeric import as_float, float_dtype, safe_div, saturate


class Exact:
    """``hi + lo`` held unevaluated (both arrays of the default float dtype, broadcastable).

    Arithmetic with ``+``/``-`` (with another :class:`Exact` or a number or array) is
    error-free; comparisons are exact; ``x * c`` (``c`` not an :class:`Exact`) scales both
    parts, rounding like one float product. Anything else goes through :func:`value`. An
    :class:`Exact` is a pytree (``lax.switch`` and ``lax.cond`` carry it).

    Examples:
        >>> import jax.numpy as jnp
        >>> from jaxlr.schedules.exact import split, value
        >>> t = split(jnp.int32(2**30 + 1))  # float32 alone would hold 2**30
        >>> bool(t > 2**30), float(value(t - 2**30))
        (True, 1.0)
    """

    __slots__ = ("hi", "lo")
    __array_ufunc__ = None  # numpy defers to our reflected operators
    __hash__ = None

    def __init__(self, hi: Any, lo: Any = 0.0):
        self.hi = hi
        self.lo = lo

    # -- array-like attributes -------------------------------------------------------------------
    @property
    def shape(self) -> tuple[int, ...]:
        return jnp.broadcast_shapes(jnp.shape(self.hi), jnp.shape(self.lo))

    @property
    def dtype(self):
        return jnp.result_type(self.hi)

    @property
    def ndim(self) -> int:
        return len(self.shape)

    def __getitem__(self, index) -> Exact:
        full = self.shape
        lo = 0.0 if _zero(self.lo) else jnp.broadcast_to(self.lo, full)[index]
        return Exact(jnp.broadcast_to(self.hi, full)[index], lo)

    def reshape(self, *shape) -> Exact:
        full = self.shape
        lo = 0.0 if _zero(self.lo) else jnp.broadcast_to(self.lo, full).reshape(*shape)
        return Exact(jnp.broadcast_to(self.hi, full).reshape(*shape), lo)

    def __repr__(self) -> str:
        return f"Exact(hi={self.hi!r}, lo={self.lo!r})"

    # -- error-free sums -------------------------------------------------------------------------
    def __add__(self, other: Any) -> Exact:
        if _zero(other):
            return self
        o = lift(other)
        hi, err = _two_sum(self.hi, o.hi)
        return Exact(hi, _plus(err, _plus(self.lo, o.lo)))

    __radd__ = __add__

    def __neg__(self) -> Exact:
        return Exact(-self.hi, 0.0 if _zero(self.lo) else -self.lo)

    def __sub__(self, other: Any) -> Exact:
        if _zero(other):
            return self
        o = lift(other)
        hi, err = _two_diff(self.hi, o.hi)
        lo = self.lo if _zero(o.lo) else (-o.lo if _zero(self.lo) else self.lo - o.lo)
        return Exact(hi, _plus(err, lo))

    def __rsub__(self, other: Any) -> Exact:
        return lift(other) - self

    def __mul__(self, other: Any) -> Exact:
        if isinstance(other, Exact):
            return NotImplemented
        return Exact(self.hi * other, 0.0 if _zero(self.lo) else self.lo * other)

    __rmul__ = __mul__

    # -- exact comparisons -----------------------------------------------------------------------
    def _sign(self, other: Any) -> jax.Array:
        """A float with the exact sign of ``self - other``: the high parts' difference is exact
        when they are close (Sterbenz), and when it is not it dwarfs the low parts."""
        if isinstance(other, Exact):
            d = self.hi - other.hi
            lo = self.lo if _zero(other.lo) else self.lo - other.lo
        else:
            d = self.hi if _zero(other) else self.hi - other
            lo = self.lo
        return d if _zero(lo) else d + lo

    def __lt__(self, other: Any) -> jax.Array:
        return self._sign(other) < 0

    def __le__(self, other: Any) -> jax.Array:
        return self._sign(other) <= 0

    def __gt__(self, other: Any) -> jax.Array:
        return self._sign(other) > 0

    def __ge__(self, other: Any) -> jax.Array:
        return self._sign(other) >= 0


def _zero(x: Any) -> bool:
    """A Python zero (a part known at trace time to be 0: no operation needed)."""
    return isinstance(x, (int, float)) and not isinstance(x, bool) and x == 0


def _plus(a: Any, b: Any) -> Any:
    return b if _zero(a) else a if _zero(b) else a + b


def _flatten_exact(e: Exact):
    # a low part known to be 0 is structure: the zero skips survive jit, vmap and lax.switch
    return ((e.hi,), True) if _zero(e.lo) else ((e.hi, e.lo), False)


def _unflatten_exact(zero_lo: bool, children) -> Exact:
    return Exact(children[0], 0.0) if zero_lo else Exact(*children)


jax.tree_util.register_pytree_node(Exact, _flatten_exact, _unflatten_exact)


def _two_sum(a: Any, b: Any) -> tuple[jax.Array, jax.Array]:
    """Knuth's two-sum: ``s = fl(a + b)`` and the exact rounding error ``a + b - s``."""
    s = a + b
    bb = s - a
    return s, (a - (s - bb)) + (b - bb)


def _two_diff(a: Any, b: Any) -> tuple[jax.Array, jax.Array]:
    """Two-sum of ``a`` and ``-b``: ``s = fl(a - b)`` and the exact error ``a - b - s``."""
    s = a - b
    bb = s - a
    return s, (a - (s - bb)) - (b + bb)


def lift(x: Any) -> Exact:
    """``x`` as an :class:`Exact` (an :class:`Exact` is returned as it is).

    Examples:
        >>> from jaxlr.schedules.exact import Exact, lift
        >>> isinstance(lift(3), Exact)
        True
    """
    return x if isinstance(x, Exact) else split(x)


def value(x: Any) -> Any:
    """The value of ``x`` rounded to one float (``x`` itself when it is not an :class:`Exact`).

    Examples:
        >>> from jaxlr.schedules.exact import split, value
        >>> float(value(split(2**24 + 1) - 2**24))  # the difference first, then one rounding
        1.0
    """
    if isinstance(x, Exact):
        return x.hi if _zero(x.lo) else x.hi + x.lo
    return x


_SPLIT = 256  # integer steps are split at 2^8: hi = n - n % 256 has at most 24 significant bits


def split(x: Any) -> Exact:
    """An exact :class:`Exact` for a step or step count.

    Python ints (any size up to :math:`2^{48}`), NumPy integers and float64 values, and int32 /
    uint32 arrays (traced or not) are split exactly; float32 arrays are exact as they are.

    Examples:
        >>> import jax.numpy as jnp
        >>> from jaxlr.schedules.exact import split
        >>> t = split(jnp.int32(2**30 + 1))
        >>> float(t.hi), float(t.lo)
        (1073741824.0, 1.0)
    """
    if isinstance(x, Exact):
        return x
    dtype = float_dtype()
    if isinstance(x, bool):
        return Exact(as_float(x))
    if isinstance(x, numbers.Integral) or (
        isinstance(x, np.ndarray | np.generic) and np.issubdtype(x.dtype, np.integer)
    ):
        return _split_host(np.asarray(x, dtype=object if isinstance(x, int) else None))
    if isinstance(x, float) or (isinstance(x, np.ndarray | np.generic) and x.dtype == np.float64):
        v = np.asarray(x, np.float64)
        hi = v.astype(dtype)
        with np.errstate(invalid="ignore", over="ignore"):
            lo = np.where(np.isfinite(hi), v - hi.astype(np.float64), 0.0)
        return Exact(jnp.asarray(hi), jnp.asarray(lo.astype(dtype)) if lo.any() else 0.0)
    arr = jnp.asarray(x)
    if (
        jnp.issubdtype(arr.dtype, jnp.integer)
        and jnp.iinfo(arr.dtype).bits == 32
        and dtype == jnp.float32
    ):
        low = jnp.asarray(_SPLIT - 1, arr.dtype)
        lo = jnp.bitwise_and(arr, low)
        return Exact((arr - lo).astype(dtype), lo.astype(dtype))
    return Exact(jnp.asarray(arr, dtype))


def _split_host(v: np.ndarray) -> Exact:
    dtype = float_dtype()
    ints = [int(n) for n in v.reshape(-1)]
    if dtype == np.float64:
        his = [float(n) for n in ints]
        los = [float(n - int(h)) for n, h in zip(ints, his)]
    else:
        his, los = [], []
        for n in ints:
            hi = n - n % _SPLIT if abs(n) < 2**32 else int(np.float32(n))
            his.append(float(hi))
            los.append(float(n - hi))
    shape = np.shape(v)
    hi = jnp.asarray(np.asarray(his, dtype).reshape(shape))
    return Exact(hi, jnp.asarray(np.asarray(los, dtype).reshape(shape)) if any(los) else 0.0)


def exact_host(x: Any) -> np.ndarray | None:
    """A concrete count as an exact NumPy array (int64 or float64), or ``None`` when ``x`` is
    traced or not a number; the reference :func:`split` rounds from at construction."""
    if isinstance(x, jax.core.Tracer) or isinstance(x, bool):
        return None
    if isinstance(x, numbers.Integral):
        return np.asarray(int(x), object) if abs(int(x)) >= 2**62 else np.asarray(int(x))
    try:
        a = np.asarray(x)
    except Exception:  # noqa: BLE001 - not array-like (a schedule, a callable): no exact form
        return None
    if a.dtype == object:
        try:
            if all(isinstance(n, numbers.Integral) and not isinstance(n, bool) for n in a.flat):
                return a
            a = a.astype(np.float64)
        except (TypeError, ValueError):
            return None
    if np.issubdtype(a.dtype, np.integer) or np.issubdtype(a.dtype, np.floating):
        return a
    return None


# -- exact division of counts ----------------------------------------------------------------------
def _uint_dtype():
    return jnp.uint64 if float_dtype() == jnp.float64 else jnp.uint32


def _count_ok(x: Exact) -> jax.Array:
    """Whether ``x`` is a non-negative integer the unsigned integer path holds exactly."""
    limit = 2.0 ** jnp.iinfo(_uint_dtype()).bits
    hi, lo = x.hi, x.lo
    return (jnp.floor(hi) == hi) & (jnp.floor(lo) == lo) & (hi + lo >= 0) & (hi < limit)


def _to_uint(x: Exact, ok: jax.Array) -> jax.Array:
    """``hi + lo`` in unsigned integers (either part may be negative: they wrap, then add)."""
    u = _uint_dtype()

    def wrap(f):
        f = jnp.where(ok, f, 0.0)
        m = jnp.abs(f).astype(u)
        return jnp.where(f < 0, jnp.zeros((), u) - m, m)

    return wrap(x.hi) + wrap(x.lo)


def _from_uint(n: jax.Array) -> Exact:
    dtype = float_dtype()
    if dtype == jnp.float64:
        return Exact(n.astype(dtype), jnp.zeros(n.shape, dtype))
    lo = jnp.bitwise_and(n, jnp.asarray(_SPLIT - 1, n.dtype))
    return Exact((n - lo).astype(dtype), lo.astype(dtype))


def where(condition: Any, a: Any, b: Any) -> Exact:
    """``jnp.where`` for :class:`Exact` values (both parts chosen alike).

    Examples:
        >>> from jaxlr.schedules.exact import split, value, where
        >>> float(value(where(False, split(1), split(2**30 + 1)) - 2**30))
        1.0
    """
    a, b = lift(a), lift(b)
    lo = 0.0 if _zero(a.lo) and _zero(b.lo) else jnp.where(condition, a.lo, b.lo)
    return Exact(jnp.where(condition, a.hi, b.hi), lo)


def at_least(x: Any, lo: Any) -> Exact:
    """``max(x, lo)`` exactly (the clamp of a traced invalid count); the gradient with respect
    to ``x`` is 0 where ``x < lo``.

    Examples:
        >>> from jaxlr.schedules.exact import at_least, split, value
        >>> float(value(at_least(split(5) - 7, 0.0)))
        0.0
    """
    return where(lift(x) > lo, x, lo)


def divmod_steps(a: Any, b: Any) -> tuple[Exact, Exact]:
    """``q = floor(a / b)`` and the remainder ``r = a - q b``, both :class:`Exact`.

    Exact when ``a`` and ``b`` are non-negative integers below :math:`2^{32}` with ``b >= 1``
    (the unsigned integer path); otherwise computed in floats, with a ``b`` <= 0 clamped to the
    smallest positive float and ``q`` saturating at the largest finite float. The remainder's
    derivative is ``dr/da = 1``, ``dr/db = -q`` on both paths.

    Examples:
        >>> from jaxlr.schedules.exact import divmod_steps, value
        >>> q, r = divmod_steps(2**31 + 25, 100)  # which cycle, and where in it
        >>> int(value(q)), float(value(r))
        (21474836, 73.0)
    """
    a, b = lift(a), lift(b)
    sg = jax.lax.stop_gradient
    dtype = float_dtype()
    af, bf = value(a), value(b)
    tiny = jnp.finfo(dtype).tiny
    big = jnp.finfo(dtype).max
    bsafe = jnp.where(bf > tiny, bf, tiny)
    # floats: fmod is exact, so the remainder of each part is; one correction joins them
    bs = sg(bsafe)
    rf = Exact(jnp.mod(sg(a.hi), bs)) + sg(a.lo)  # the low part is small: whole b's off it
    rf = rf - jnp.floor(value(rf) / bs) * bs
    rf = where(rf < 0.0, rf + bs, where(rf >= bs, rf - bs, rf))
    qf = jnp.minimum(jnp.round(value(sg(a) - rf) / bs), big)
    infinite = jnp.isinf(af)  # a step of +-inf: the last (first) quotient, no remainder
    qf = jnp.where(infinite, jnp.sign(af) * big, qf)
    rf = where(infinite, 0.0, rf)
    # non-negative integers: unsigned integer division
    ok = _count_ok(a) & _count_ok(b) & (bf >= 1)
    ua, ub = _to_uint(a, ok), _to_uint(b, ok)
    ub = jnp.where(ok, ub, jnp.ones_like(ub))
    qi = ua // ub
    q = where(ok, _from_uint(qi), Exact(qf, jnp.zeros_like(qf)))
    r = where(ok, _from_uint(ua - qi * ub), rf)
    # r = a - q * b: the straight-through terms (0 in value) carry its derivative
    af = jnp.where(infinite, 0.0, af)  # inf - inf would be NaN
    grad = (af - sg(af)) - value(q) * (bf - sg(bf))
    return q, Exact(r.hi + grad, r.lo)


def floor_div(a: Any, b: Any) -> Exact:
    """``floor(a / b)``, exact for non-negative integer counts (:func:`divmod_steps`).

    Examples:
        >>> import jax.numpy as jnp
        >>> from jaxlr.schedules.exact import floor_div, value
        >>> float(value(floor_div(jnp.int32(2**30), 2**30 + 1)))  # float32 division gives 1
        0.0
    """
    return divmod_steps(a, b)[0]


def floor_uint(x: Any) -> jax.Array:
    """``floor(x)`` as an unsigned integer, exact for ``0 <= x < 2^32`` (``x`` < 0 gives 0).

    Examples:
        >>> from jaxlr.schedules.exact import floor_uint
        >>> int(floor_uint(2**31 + 25))
        2147483673
    """
    x = lift(x)
    f = jnp.floor(x.hi)
    rest = jnp.floor((x.hi - f) + x.lo)  # x.hi - f is exact; rest is floor of the fraction
    whole = Exact(f, rest)
    ok = _count_ok(whole)
    return jnp.where(ok, _to_uint(whole, ok), jnp.zeros((), _uint_dtype()))


def progress(step: Any, start: Any, length: Any) -> jax.Array:
    """Fraction of a phase ``[start, start + length)`` done at ``step``, clipped to [0, 1].

    ``step - start`` is exact (then rounded once), so the fraction is as accurate as the float
    dtype allows however large the step; whether the phase has started is decided exactly. A
    phase of length 0 counts as done from its start on.

    Examples:
        >>> from jaxlr.schedules.exact import progress
        >>> float(progress(2**30 + 50, 2**30, 100))  # float32 steps would give 0.0 or 1.0
        0.5
    """
    elapsed = lift(step) - start
    done = jnp.where(elapsed >= 0.0, 1.0, 0.0)
    length = value(length)
    ok = length != 0
    frac = jnp.where(ok, value(elapsed) / jnp.where(ok, length, 1.0), done)
    return jnp.clip(frac, 0.0, 1.0)


def restart_cycle(step: Any, first: Any, mult: Any) -> tuple[jax.Array, Exact, jax.Array]:
    """The restart cycle holding ``step`` when cycle ``i`` lasts ``first * mult**i`` steps.

    Returns ``(i, u, length)``: the cycle index (a float), the steps elapsed in it (an
    :class:`Exact`) and its length (a float). Cycle ``i`` starts at
    :math:`F (m^i - 1) / (m - 1)` (:math:`F i` for :math:`m = 1`). Exact for a non-negative
    integer step below :math:`2^{32}` with an integer ``first >= 1`` and an integer ``mult``
    below :math:`2^{16}` (equal periods by :func:`divmod_steps`; growing ones from the integer
    cycle starts :math:`S_{j+1} = m S_j + 1`, found in unsigned integers); other values use the
    float starts with exact comparisons. A step before 0 is in cycle 0 (``u`` is the step). A
    traced ``first`` <= 0 is clamped to the smallest positive float; ``mult`` in (0, 1) shrinks
    the periods (as Keras allows).

    Examples:
        >>> from jaxlr.schedules.exact import restart_cycle, value
        >>> F = 2**29 + 1  # cycles of F, 2F, 4F steps: cycle 2 starts at 3F
        >>> cycles = [restart_cycle(t, F, 2.0) for t in (3 * F - 1, 3 * F)]
        >>> [(int(i), float(value(u))) for i, u, _ in cycles]
        [(1, 1073741824.0), (2, 0.0)]
    """
    step = lift(step)
    t = value(step)
    dtype = t.dtype
    tiny = jnp.finfo(dtype).tiny
    big = jnp.finfo(dtype).max
    first = at_least(first, tiny)
    first_f = value(first)
    flat = jnp.abs(mult - 1.0) < 1e-6
    m = jnp.where(flat, 2.0, mult)  # keeps the geometric branch finite when mult == 1

    def start(i):  # saturating: cycle starts past the float range compare as the largest float
        return saturate(first_f * saturate(safe_div(saturate(m**i) - 1.0, m - 1.0)))

    # floats: a guess from the logarithm, corrected with exact comparisons against the starts
    r = jnp.minimum(t / first_f, big)
    guess = jnp.clip(jnp.floor(jnp.log1p(saturate(r * (m - 1.0))) / jnp.log(m)), 0.0, big)
    i = jnp.where(step < start(guess), guess - 1.0, guess)
    i = jnp.where(step >= start(i + 1.0), i + 1.0, i)
    i = jnp.maximum(i, 0.0)
    s = start(i)
    u = step - s
    length = start(i + 1.0) - s
    # integers: step = q first + rest exactly, and cycle i holds q in [S_i, S_{i+1})
    q, rest = divmod_steps(step, first)
    before = step < 0.0
    u = where(flat, where(before, step, rest), u)  # before 0: cycle 0, the step itself
    i = jnp.where(flat, jnp.where(before, 0.0, value(q)), i)
    length = jnp.where(flat, first_f, length)
    ok = (
        ~flat & _count_ok(step) & _count_ok(first) & (first_f >= 1.0)
        & (jnp.floor(m) == m) & (m >= 2.0) & (m < 2.0**16)
    )  # fmt: skip
    unsigned = _uint_dtype()
    mu = jnp.where(ok, m, 2.0).astype(unsigned)
    qu = _to_uint(q, ok)
    top = jnp.asarray(jnp.iinfo(unsigned).max, unsigned)
    limit = (top - 1) // mu  # S m + 1 stays below the top while S <= limit
    s_j, index, s_i = jnp.zeros((), unsigned), jnp.zeros_like(qu), jnp.zeros_like(qu)
    past = jnp.zeros((), bool)  # S_j beyond the unsigned range: no later cycle starts
    for _ in range(jnp.iinfo(unsigned).bits):  # S_j <= q < 2^bits needs j < bits for m >= 2
        past = past | (s_j > limit)
        s_j = jnp.where(past, top, s_j * mu + 1)
        inside = ~past & (s_j <= qu)
        index = index + inside.astype(unsigned)
        s_i = jnp.where(inside, s_j, s_i)
    fu = _to_uint(first, ok)
    elapsed = _from_uint((qu - s_i) * fu) + rest  # (q - S_i) first <= step: no overflow
    i_int = index.astype(dtype)
    # u = step - start(i) in value; the straight-through terms (0) carry its derivative
    sg = jax.lax.stop_gradient
    s_f = start(i_int)
    grad = (t - sg(t)) - (s_f - sg(s_f))
    elapsed = Exact(sg(elapsed.hi) + grad, sg(elapsed.lo))
    i = jnp.where(ok, i_int, i)
    u = where(ok, elapsed, u)
    length = jnp.where(ok, saturate(first_f * saturate(m ** index.astype(dtype))), length)
    return i, u, length


def mulmod(a: Any, c: Any, b: Any) -> Exact:
    r"""``(c a) mod b`` (an :class:`Exact`), the place in the current one of ``c`` cycles per
    ``b`` steps after ``a`` steps.

    Exact for integers ``0 <= a < b <= 2^31`` and ``0 <= c < 2^16`` (shift-and-add in unsigned
    integers: no product is ever formed); otherwise computed in floats. The derivative is that
    of :math:`c a - \lfloor c a / b \rfloor b`.

    Examples:
        >>> from jaxlr.schedules.exact import mulmod, value
        >>> r = mulmod(2**29, 3, 2**30 + 1)  # 3 * 2^29 - (2^30 + 1), exactly
        >>> int(r.hi) + int(r.lo)
        536870911
    """
    a, b = lift(a), lift(b)
    af, bf = value(a), value(b)
    c = jnp.asarray(c, af.dtype)
    sg = jax.lax.stop_gradient
    _, rf = divmod_steps(a * c, b)  # floats (the product rounds)
    ok = (
        _count_ok(a) & _count_ok(b) & (bf >= 1.0) & (bf <= 2.0**31) & (a < b)
        & (jnp.floor(c) == c) & (c >= 0.0) & (c < 2.0**16)
    )  # fmt: skip
    unsigned = _uint_dtype()
    au, bu = _to_uint(a, ok), jnp.where(ok, _to_uint(b, ok), jnp.ones((), unsigned))
    cu = jnp.where(ok, c, 0.0).astype(unsigned)
    out = jnp.zeros_like(au)
    for bit in range(15, -1, -1):  # out = 2 out (+ a), each mod b: sums stay below 2^32
        out = out + out
        out = jnp.where(out >= bu, out - bu, out)
        take = ((cu >> bit) & 1) == 1
        more = out + au
        out = jnp.where(take, jnp.where(more >= bu, more - bu, more), out)
    r = _from_uint(out)
    k = jnp.round((af * c - value(r)) / jnp.where(ok, bf, 1.0))  # whole cycles: d/db = -k
    grad = c * (af - sg(af)) + af * (c - sg(c)) - k * (bf - sg(bf))
    r = Exact(sg(r.hi) + grad, sg(r.lo))
    return where(ok, r, rf)
