"""Construction-time checks of concrete hyperparameters.

Every public constructor validates the values it can see (Python numbers, NumPy or concrete JAX
arrays) and raises ``ValueError`` naming the function, the argument and the value. Traced values
(inside ``jit``, ``vmap`` or ``grad``) cannot be inspected and pass through unchecked; each
docstring says what the law does with invalid traced values.
"""

from __future__ import annotations

import numbers
from collections.abc import Iterable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np


def concrete(x: Any) -> np.ndarray | None:
    """``x`` as a NumPy array, or ``None`` when it is (or contains) a tracer."""
    if isinstance(x, jax.core.Tracer):
        return None
    try:
        return np.asarray(x)
    except (jax.errors.TracerArrayConversionError, jax.errors.ConcretizationTypeError):
        return None


def _show(x: Any) -> str:
    a = np.asarray(x)
    if a.ndim == 0:
        return repr(a.item())
    return np.array2string(a, separator=", ", threshold=8)


class Checker:
    """Collects the checks of one constructor so every message starts with its name."""

    def __init__(self, fn: str):
        self.fn = fn

    def fail(self, message: str) -> None:
        raise ValueError(f"{self.fn}: {message}")

    def _require(self, name: str, value: Any, ok: bool, what: str) -> None:
        if not ok:
            self.fail(f"{name} must be {what}, got {name}={_show(value)}")

    def number(self, name: str, value: Any) -> np.ndarray | None:
        """Checks a concrete value is numeric and free of NaN; returns it (None if traced)."""
        if value is None:
            self.fail(f"{name} is required, got {name}=None")
        if isinstance(value, (str, bytes)):
            self.fail(f"{name} must be a number, got {name}={value!r}")
        a = concrete(value)
        if a is None:
            return None
        if a.dtype == object:  # Python ints past int64 (2**70): numbers, checked as floats
            a = self._big_ints(name, a, value)
        # jnp.issubdtype knows the ml_dtypes floats (bfloat16, float8) that NumPy does not.
        if not (jnp.issubdtype(a.dtype, jnp.number) or a.dtype == bool):
            self.fail(f"{name} must be a number, got {name}={value!r}")
        if jnp.issubdtype(a.dtype, jnp.floating) and not np.issubdtype(a.dtype, np.floating):
            a = a.astype(np.float32)  # bfloat16 & co. as a NumPy float for the checks below
        if np.issubdtype(a.dtype, np.floating) and np.isnan(a).any():
            self.fail(f"{name} must not be NaN, got {name}={_show(a)}")
        return a

    def _big_ints(self, name: str, a: np.ndarray, value: Any) -> np.ndarray:
        flat = list(a.reshape(-1))
        if not flat or not all(
            isinstance(x, numbers.Integral) and not isinstance(x, bool) for x in flat
        ):
            return a
        try:
            return np.asarray([float(x) for x in flat], np.float64).reshape(a.shape)
        except OverflowError:
            digits = max(len(str(abs(int(x)))) for x in flat)
            self.fail(
                f"{name} must be finite, got an integer of {digits} digits (past float64's "
                f"largest, about 1.8e308; jaxlr keeps hyperparameters as float32 leaves)"
            )
        return a

    def finite(self, name: str, value: Any) -> np.ndarray | None:
        a = self.number(name, value)
        if a is not None:
            self._require(name, a, bool(np.isfinite(a).all()), "finite")
        return a

    def nonnegative(self, name: str, value: Any) -> np.ndarray | None:
        a = self.finite(name, value)
        if a is not None:
            self._require(name, a, bool((a >= 0).all()), ">= 0")
        return a

    def positive(self, name: str, value: Any) -> np.ndarray | None:
        a = self.finite(name, value)
        if a is not None:
            self._require(name, a, bool((a > 0).all()), "> 0")
        return a

    def at_least(self, name: str, value: Any, bound: float) -> np.ndarray | None:
        a = self.finite(name, value)
        if a is not None:
            self._require(name, a, bool((a >= bound).all()), f">= {bound:g}")
        return a

    def integer(
        self,
        name: str,
        value: Any,
        *,
        minimum: int,
        maximum: int | None = None,
        static: bool = False,
        optional: bool = False,
    ) -> None:
        """Checks a whole number in ``[minimum, maximum]``: a concrete value (an integral float
        counts; traced values pass), or with ``static`` a Python/NumPy int (it sizes structure).
        With ``optional``, ``None`` passes and the message says so.

        Examples:
            >>> from jaxlr._src.validate import Checker
            >>> Checker("StepLR").integer("step_size", 2.5, minimum=1)
            Traceback (most recent call last):
            ...
            ValueError: StepLR: step_size must be an integer >= 1, got step_size=2.5
            >>> Checker("top_k").integer("k", 5, minimum=1, maximum=3, static=True)
            Traceback (most recent call last):
            ...
            ValueError: top_k: k must be an int in [1, 3], got k=5
            >>> Checker("run").integer("num_steps", 0, minimum=1, static=True, optional=True)
            Traceback (most recent call last):
            ...
            ValueError: run: num_steps must be an int >= 1 or None, got num_steps=0
        """
        if optional and value is None:
            return
        what = f">= {minimum}" if maximum is None else f"in [{minimum}, {maximum}]"
        what += " or None" if optional else ""
        if static:
            ok = not isinstance(value, bool) and isinstance(value, (int, np.integer))
            if not ok or value < minimum or (maximum is not None and value > maximum):
                self.fail(f"{name} must be an int {what}, got {name}={value!r}")
            return
        a = self.finite(name, value)
        if a is None:
            return
        ok = bool(np.all(a == np.round(a))) and bool(np.all(a >= minimum))
        if not ok or (maximum is not None and not bool(np.all(a <= maximum))):
            self.fail(f"{name} must be an integer {what}, got {name}={a.tolist()!r}")

    def between(
        self, name: str, value: Any, lo: float, hi: float, *, open_lo=False, open_hi=False
    ) -> None:
        a = self.finite(name, value)
        if a is not None:
            ok = (a > lo) if open_lo else (a >= lo)
            ok = ok & ((a < hi) if open_hi else (a <= hi))
            what = f"in {'(' if open_lo else '['}{lo:g}, {hi:g}{')' if open_hi else ']'}"
            self._require(name, a, bool(ok.all()), what)

    def not_greater(self, name_a: str, a: Any, name_b: str, b: Any) -> None:
        """Checks ``a <= b`` when both are concrete."""
        ca, cb = concrete(a), concrete(b)
        if ca is None or cb is None:
            return
        if not bool(np.all(ca <= cb)):
            self.fail(
                f"{name_a} must be <= {name_b}, got {name_a}={_show(ca)}, {name_b}={_show(cb)}"
            )

    def choice(self, name: str, value: Any, options: Iterable[Any]) -> None:
        """Checks a static option: one of ``options`` by value *and* type (``1`` is not
        ``True``, an array is no option: structure cannot be data)."""
        options = tuple(options)
        if not any(type(value) is type(o) and value == o for o in options):
            self.fail(f"{name} must be one of {options}, got {name}={value!r}")

    def flag(self, name: str, value: Any) -> None:
        """Checks a static on/off switch is a real ``bool`` (``"False"`` and ``1`` are not)."""
        self.choice(name, value, (False, True))

    def key(self, name: str, value: Any) -> jax.Array:
        """Checks one PRNG key (:func:`key_data`) and returns its raw ``uint32`` data."""
        return key_data(self.fn, value, name=name)

    def vector(self, name: str, value: Any, *, min_len: int = 0) -> np.ndarray | None:
        """A 1-D array of numbers (a single number is not accepted)."""
        a = self.finite(name, value)
        if a is None:
            return None
        if a.ndim != 1 or a.shape[0] < min_len:
            self.fail(
                f"{name} must be a 1-D sequence of at least {min_len} numbers, "
                f"got {name}={_show(a)}"
            )
        return a

    def sorted(self, name: str, value: Any, *, strict: bool = False) -> None:
        a = concrete(value)
        if a is None or a.shape[-1:] in ((), (0,), (1,)):
            return
        d = np.diff(a, axis=-1)
        ok = (d > 0).all() if strict else (d >= 0).all()
        order = "strictly increasing" if strict else "sorted (non-decreasing)"
        self._require(name, a, bool(ok), order)

    def same_length(self, name_a: str, a: Any, name_b: str, b: Any, *, offset: int = 0) -> None:
        """Checks ``len(b) == len(a) + offset`` on the last axis."""
        sa, sb = np.shape(a), np.shape(b)
        if not sa or not sb or sb[-1] != sa[-1] + offset:
            rel = f"len({name_a}) + {offset}" if offset else f"len({name_a})"
            self.fail(
                f"len({name_b}) must equal {rel}, got {name_a}={_show(a)}, {name_b}={_show(b)}"
            )


def renamed(**old_to_new: str):
    """Decorator: a call with a renamed keyword argument raises ``TypeError`` naming the new one.

    jaxlr keeps one name per concept and no alias shims: an old spelling is an error that says
    what to write instead (``cosine: argument 'exponent' is now 'power'``).

    Examples:
        >>> from jaxlr._src.validate import renamed
        >>> @renamed(exponent="power")
        ... def f(*, power=1.0):
        ...     return power
        >>> f(exponent=2.0)
        Traceback (most recent call last):
        TypeError: f: argument 'exponent' is now 'power'
    """

    def deco(fn):
        import functools

        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            for old in kwargs.keys() & old_to_new.keys():
                raise TypeError(f"{fn.__name__}: argument {old!r} is now {old_to_new[old]!r}")
            return fn(*args, **kwargs)

        wrapper.__renamed__ = dict(old_to_new)
        return wrapper

    return deco


def check_cast(fn: str, name: str, value: Any, cast: Any) -> None:
    """Raises when a concrete finite ``value`` is not finite once ``cast`` to its float dtype
    (``1e39`` in float32), or a nonzero one became 0 (``1e-50``): validation ran on the value
    the user wrote, the law runs on the cast."""
    before, after = concrete(value), concrete(cast)
    if before is None or after is None or not np.issubdtype(after.dtype, np.floating):
        return
    try:
        wide = np.asarray(before, dtype=np.float64)
    except (TypeError, ValueError, OverflowError):
        return
    if np.any(np.isfinite(wide) & ~np.isfinite(after)):
        raise ValueError(
            f"{fn}: {name} overflows {after.dtype} (largest {float(np.finfo(after.dtype).max):g}),"
            f" got {name}={_show(wide)}"
        )
    if np.any((wide != 0) & (after == 0)):
        raise ValueError(
            f"{fn}: {name} underflows {after.dtype} to 0 (smallest normal "
            f"{float(np.finfo(after.dtype).tiny):g}), got {name}={_show(wide)}"
        )


def check_count(fn: str, name: str, value: Any) -> None:
    """Raises when a concrete whole-number step count is not exactly a value of the float dtype
    (``2**30 + 1`` in float32): the leaf would be another count, and integer steps would be
    compared with it. The message names the two nearest values the dtype holds.

    Examples:
        >>> from jaxlr._src.validate import check_count
        >>> check_count("step", "period_steps", 2**30 + 1)  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        ValueError: step: period_steps=1073741825 is not a float32 number ...
    """
    if value is None or isinstance(value, (bool, str, bytes)):
        return
    a = concrete(value)
    if a is None or a.size == 0:
        return
    dtype = np.dtype(jnp.result_type(float))
    flat = a.reshape(-1)
    for x in flat.tolist() if a.dtype == object or np.issubdtype(a.dtype, np.integer) else []:
        if not isinstance(x, numbers.Integral) or isinstance(x, bool):
            continue
        x = int(x)
        try:
            held = dtype.type(x)
        except OverflowError:
            continue
        if not np.isfinite(held) or int(held) == x:
            continue  # past the float range (check_cast reports it), or exact
        near = int(held)
        other = np.nextafter(held, dtype.type(np.inf) if near < x else dtype.type(-np.inf))
        lo, hi = sorted((near, int(other)))
        raise ValueError(
            f"{fn}: {name}={x} is not a {dtype.name} number (a step count is a {dtype.name} "
            f"leaf); the nearest are {lo} and {hi}"
        )
    if np.issubdtype(a.dtype, np.floating) and a.dtype.itemsize > dtype.itemsize:
        wide = a.astype(np.float64)
        whole = np.isfinite(wide) & (wide == np.round(wide))
        held = wide.astype(dtype)
        bad = whole & np.isfinite(held) & (held.astype(np.float64) != wide)
        if bad.any():
            # past int64 no step reaches the count (and the cast below would wrap): not checked
            check_count(fn, name, np.asarray(wide[bad & (np.abs(wide) < 2.0**63)], np.int64))


def key_data(fn: str, key: Any, *, name: str = "key", seeds: bool = False) -> jax.Array:
    """The raw ``uint32`` data of one PRNG key, the one check every key argument goes through.

    Takes a typed key (``jax.random.key``), raw key data (``jax.random.PRNGKey``: 2 words for
    threefry, 4 for rbg; a config's list of ints), or with ``seeds`` an int seed. A traced key
    passes with its dtype checked. Anything else raises ``ValueError`` naming ``fn``.

    Examples:
        >>> import jax
        >>> from jaxlr._src.validate import key_data
        >>> key_data("noise", jax.random.key(0)).tolist()
        [0, 0]
        >>> key_data("noise", [1, 2]).dtype
        dtype('uint32')
    """
    if seeds and isinstance(key, (int, np.integer)) and not isinstance(key, bool):
        return jax.random.key_data(jax.random.key(int(key)))
    dtype = getattr(key, "dtype", None)
    if dtype is not None and jnp.issubdtype(dtype, jax.dtypes.prng_key):
        if np.shape(key) != ():
            Checker(fn).fail(f"{name} must be a single PRNG key, got shape {np.shape(key)}")
        return jax.random.key_data(key)
    if isinstance(key, jax.core.Tracer) and jnp.issubdtype(key.dtype, jnp.unsignedinteger):
        return key
    a = concrete(key) if not isinstance(key, (str, bytes, bool)) else None
    ok = (
        a is not None
        and a.shape in ((2,), (4,))
        and np.issubdtype(a.dtype, np.integer)
        and bool(np.all((a >= 0) & (a < 2**32)))
    )
    if not ok:
        seed = "an int seed or " if seeds else ""
        Checker(fn).fail(
            f"{name} must be {seed}a PRNG key (jax.random.key(seed) or "
            f"jax.random.PRNGKey(seed)), got {name}={key!r}"
        )
    return jnp.asarray(np.asarray(a, np.uint32))
