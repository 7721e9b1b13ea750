"""One search space for every search: :class:`Space`, its dimensions, and config tree paths."""

from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Mapping
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jaxlr._src.validate import Checker, renamed
from jaxlr.sweep._configs import Choice

KINDS = ("log_uniform", "uniform", "int", "log_int")


def path_name(key: Any) -> str:
    """One spelling for a tree path: ``"schedule.peak_value"``.

    Accepts the dotted form, a leading dot (``".schedule.peak_value"``) and
    ``jax.tree_util.keystr``'s form (``"['schedule'].peak_value"``, ``"[0].lr"``).
    """
    s = re.sub(r"\[(['\"]?)([^\]'\"]*)\1\]", r".\2", str(key).strip())
    return s.lstrip(".")


def _number(x: Any) -> bool:
    return isinstance(x, (int, float, np.integer, np.floating)) and not isinstance(x, bool)


@dataclasses.dataclass(frozen=True)
class Dim:
    r"""One dimension of a :class:`Space`: how a uniform draw :math:`u \in [0, 1)` becomes a value.

    ``kind`` is ``"uniform"`` (:math:`l + u(h - l)`), ``"log_uniform"``
    (:math:`\exp(\log l + u(\log h - \log l))`), ``"int"`` (:math:`\lfloor l + u(h - l + 1)
    \rfloor`, each integer of ``[l, h]`` equally likely), ``"log_int"``
    (:math:`\lfloor \exp(\log l + u(\log(h + 1) - \log l)) \rfloor`: integer ``n`` has mass
    :math:`\log\frac{n+1}{n} / \log\frac{h+1}{l}`), ``"choice"`` (choice
    :math:`\lfloor u n \rfloor` of ``choices``, each equally likely) or ``"fixed"`` (``value``).
    """

    kind: str
    low: float = 0.0
    high: float = 0.0
    choices: tuple = ()
    value: Any = None

    @property
    def is_string(self) -> bool:
        return self.kind == "choice" and isinstance(self.choices[0], str)

    @property
    def is_log(self) -> bool:
        return self.kind in ("log_uniform", "log_int")

    def from_unit(self, u: Any, xp: Any = np) -> Any:
        """Values for uniform draws ``u`` (NumPy on the host, ``jax.numpy`` when traced). A
        string choice gives its index among ``choices``."""
        lo, hi = self.low, self.high
        if self.kind == "uniform":
            return lo + u * (hi - lo)
        if self.kind == "log_uniform":
            return xp.exp(math.log(lo) + u * (math.log(hi) - math.log(lo)))
        if self.kind == "int":
            return xp.minimum(xp.floor(lo + u * (hi - lo + 1)), hi)
        if self.kind == "log_int":
            n = xp.floor(xp.exp(math.log(lo) + u * (math.log(hi + 1) - math.log(lo))))
            return xp.clip(n, lo, hi)
        if self.kind == "choice":
            i = xp.minimum(xp.floor(u * len(self.choices)), len(self.choices) - 1).astype(int)
            return i if self.is_string else xp.asarray(np.asarray(self.choices))[i]
        raise ValueError(f"Dim.from_unit: a {self.kind} dimension draws nothing")


def int_dtype() -> type:
    """The dtype of an int entry's values: int32, or int64 under ``jax_enable_x64``."""
    return np.int64 if jax.config.jax_enable_x64 else np.int32


def _dim(c: Checker, name: str, spec: Any) -> Dim:
    shown = " ".join(repr(spec).split())
    bad = f"space[{name!r}]={shown}"
    if isinstance(spec, Dim):
        return spec
    if isinstance(spec, tuple) and spec and isinstance(spec[0], str):
        if len(spec) != 3 or spec[0] not in KINDS:
            c.fail(
                f"{bad}: give (kind, low, high) with kind in {KINDS}, a list of choices or a "
                f"fixed value"
            )
        kind, low, high = spec
        if not (_number(low) and _number(high) and math.isfinite(low) and math.isfinite(high)):
            c.fail(f"{bad}: bounds must be finite numbers")
        if kind in ("int", "log_int") and not (
            float(low).is_integer() and float(high).is_integer()
        ):
            c.fail(f"{bad}: {kind} bounds must be integers")
        if kind in ("int", "log_int"):
            info = np.iinfo(int_dtype())
            if not info.min <= low <= high <= info.max:
                c.fail(
                    f"{bad}: {kind} bounds must lie in [{info.min}, {info.max}] ({info.dtype}, "
                    f"the dtype its values take; jax_enable_x64 allows int64)"
                )
        if low > high:
            c.fail(f"{bad}: low must be <= high")
        if kind.startswith("log") and low <= 0:
            c.fail(f"{bad}: {kind} needs low > 0")
        return Dim(kind, float(low), float(high))
    if isinstance(spec, (list, np.ndarray)) and np.ndim(spec) >= 1:
        if isinstance(spec, np.ndarray) and spec.ndim != 1:
            c.fail(f"{bad}: choices must be a 1-D list of numbers or strings")
        choices = np.asarray(spec).tolist() if isinstance(spec, np.ndarray) else list(spec)
        if not choices:
            c.fail(f"{bad}: no choices")
        if not (
            all(isinstance(v, str) for v in choices)
            or all(_number(v) or isinstance(v, (bool, np.bool_)) for v in choices)
        ):
            c.fail(f"{bad}: choices must be all numbers or all strings")
        if not isinstance(choices[0], str) and not np.isfinite(np.asarray(choices, float)).all():
            c.fail(f"{bad}: choices must be finite")
        if len(set(choices)) != len(choices):
            c.fail(f"{bad}: duplicate choices")
        return Dim("choice", choices=tuple(choices))
    if isinstance(spec, (np.ndarray, np.generic)) and np.ndim(spec) == 0:
        if spec.dtype.kind in "biuf":
            spec = spec.item()
    if _number(spec) or isinstance(spec, (bool, str, np.bool_)):
        if _number(spec) and not math.isfinite(spec):
            c.fail(f"{bad}: a fixed value must be finite")
        return Dim("fixed", value=spec)
    c.fail(
        f"{bad}: give (kind, low, high) with kind in {KINDS}, a list of choices (numbers or "
        f"strings), a fixed value, or a nested dict of these"
    )


@dataclasses.dataclass(frozen=True)
class Space:
    r"""A search space: one distribution per configuration leaf, named by its tree path.

    The one vocabulary of :func:`jaxlr.sweep.random`, :func:`jaxlr.sweep.pbt`'s exploration
    and the Optuna helpers. Each entry is

    - ``("log_uniform", low, high)``: :math:`\exp U(\log l, \log h)` (learning rates);
    - ``("uniform", low, high)``: :math:`U(l, h)`;
    - ``("int", low, high)``: an integer of ``[l, h]``, each equally likely;
    - ``("log_int", low, high)``: an integer of ``[l, h]``, log-uniformly (mass of ``n``
      :math:`\propto \log\frac{n+1}{n}`);
    - a list of choices: numbers, or strings (a string choice reaches the train or step
      function as its index in the list, and comes back as the string in tables and trials);
    - a scalar: a fixed value.

    Entries are named by tree path: a dotted key (``"schedule.peak_value"``), the form
    ``jax.tree_util.keystr`` prints (``"['schedule'].peak_value"``) or a nested dict that
    mirrors the configuration pytree (``{"schedule": {"peak_value": ...}}``).

    Args:
        spec: a (nested) dict path -> entry, or a :class:`Space`.
        fn: the public function name used in error messages.

    Raises:
        ValueError: an empty space, an unknown kind, bounds that are not finite or reversed,
            ``low <= 0`` for a log kind, non-integer bounds for an int kind or bounds past its
            dtype (int32; int64 under ``jax_enable_x64``), empty or duplicate
            choices, choices mixing numbers and strings, or one path given twice.

    Examples:
        >>> import jax, jaxlr
        >>> space = jaxlr.sweep.Space({"schedule": {"peak_value": ("log_uniform", 1e-4, 1e-1)},
        ...                            "optimizer": ["adam", "sgd"], "weight_decay": 1e-4})
        >>> space.names
        ('optimizer', 'schedule.peak_value', 'weight_decay')
        >>> cfg = space.sample(8, key=jax.random.key(0))
        >>> cfg["schedule"]["peak_value"].shape, sorted(set(cfg["optimizer"].labels().tolist()))
        ((8,), ['adam', 'sgd'])

    References:
        Bergstra & Bengio, Random Search for Hyper-Parameter Optimization, JMLR 2012.
    """

    dims: tuple[tuple[str, Dim], ...]

    def __init__(self, spec: Any, *, fn: str = "Space"):
        c = Checker(fn)
        if isinstance(spec, Space):
            object.__setattr__(self, "dims", spec.dims)
            return
        if not isinstance(spec, Mapping) or not spec:
            c.fail(f"space must be a non-empty dict path -> entry, got space={spec!r}")
        out: dict[str, Dim] = {}

        def walk(prefix: str, tree: Mapping) -> None:
            for key, entry in tree.items():
                if not isinstance(key, str) or not path_name(key):
                    c.fail(f"space names must be non-empty strings, got {key!r}")
                name = f"{prefix}{path_name(key)}"
                if "" in name.split("."):
                    c.fail(f"space[{key!r}]: the path {name!r} has an empty segment")
                if isinstance(entry, Mapping):
                    if not entry:
                        c.fail(f"space[{name!r}] is an empty dict")
                    walk(name + ".", entry)
                    continue
                if name in out:
                    c.fail(f"space names the path {name!r} twice")
                out[name] = _dim(c, name, entry)

        walk("", spec)
        for name in out:
            inner = sorted(n for n in out if n.startswith(name + "."))
            if inner:
                c.fail(
                    f"space names {name!r} as a value and as the prefix of {inner}: a path "
                    f"is either a leaf or a subtree"
                )
        object.__setattr__(self, "dims", tuple(sorted(out.items())))

    @property
    def names(self) -> tuple[str, ...]:
        """The paths of the space's entries, sorted."""
        return tuple(n for n, _ in self.dims)

    def __getitem__(self, name: str) -> Dim:
        return dict(self.dims)[path_name(name)]

    def searched(self) -> tuple[tuple[str, Dim], ...]:
        """The entries that vary (every kind but ``fixed``)."""
        return tuple((n, d) for n, d in self.dims if d.kind != "fixed")

    def values(self, name: str, drawn: Any) -> Any:
        """Host values of entry ``name`` from what :meth:`Dim.from_unit` gave: ints for the
        int kinds, a :class:`~jaxlr.sweep.Choice` for string choices."""
        d = self[name]
        if d.is_string:
            return Choice(np.asarray(drawn, np.int32), d.choices)
        if d.kind in ("int", "log_int"):
            return np.asarray(drawn).astype(int_dtype())
        return np.asarray(drawn)

    def fixed_values(self, name: str, num: int) -> Any:
        d = self[name]
        if isinstance(d.value, str):
            return Choice(np.zeros(num, np.int32), (d.value,))
        return np.broadcast_to(np.asarray(d.value), (num,))

    def sample(self, num: int, *, key: jax.Array, fn: str = "Space.sample") -> dict:
        """``num`` members drawn independently per entry: a nested dict of arrays (leading
        axis ``num``) mirroring the paths; string choices as :class:`~jaxlr.sweep.Choice`.

        ``key`` seeds a NumPy generator (its key data), so draws are reproducible per key.
        """
        c = Checker(fn)
        c.integer("num", num, minimum=1, static=True)
        rng = np.random.default_rng(np.asarray(c.key("key", key)).tolist())
        flat = {}
        for name, d in self.dims:
            if d.kind == "fixed":
                flat[name] = self.fixed_values(name, num)
            else:
                flat[name] = self.values(name, d.from_unit(rng.random(num)))
        return nest(flat)

    def configs(self, rows: list[Mapping[str, Any]]) -> dict:
        """Members from rows of flat ``path -> value`` (string choices as strings, fixed
        entries may be left out): a nested dict of arrays with leading axis ``len(rows)``."""
        flat = {}
        for name, d in self.dims:
            if d.kind == "fixed":
                flat[name] = self.fixed_values(name, len(rows))
            elif d.is_string:
                flat[name] = Choice(
                    np.asarray([d.choices.index(r[name]) for r in rows], np.int32), d.choices
                )
            else:
                flat[name] = self.values(name, [r[name] for r in rows])
        return nest(flat)


def nest(flat: Mapping[str, Any]) -> dict:
    """``{"a.b": x, "c": y}`` -> ``{"a": {"b": x}, "c": y}``."""
    out: dict = {}
    for name, v in flat.items():
        *head, last = name.split(".")
        node = out
        for part in head:
            node = node.setdefault(part, {})
        node[last] = v
    return out


def as_space(c: Checker, space: Any) -> Space:
    """A :class:`Space` from a Space or a (nested) dict, with errors naming ``c``'s function."""
    return space if isinstance(space, Space) else Space(space, fn=c.fn)


def leaf_paths(configs: Any) -> dict[str, int]:
    """Path name -> position among ``jax.tree.leaves(configs)`` (a Choice counts as one leaf,
    its index)."""
    from jaxlr.sweep._configs import leaf_name

    out = {}
    for i, (p, _) in enumerate(jax.tree_util.tree_flatten_with_path(configs)[0]):
        name = leaf_name(p)
        out[name] = i
        if name.endswith(".index"):  # a Choice's index is the choice itself
            out.setdefault(name[: -len(".index")], i)
    return out


@renamed(seed="key")
def random(num: int, space: Any = None, *, key: jax.Array, **axes: Any) -> dict:
    r"""``num`` members drawn at random, independently per entry of a :class:`Space`.

    Each entry is drawn as :class:`Space` describes (``("log_uniform", low, high)``:
    :math:`\exp U(\log l, \log h)` for learning rates, ``("uniform", ...)``,
    ``("int", ...)``, ``("log_int", ...)``, a list of choices drawn uniformly (strings become a
    :class:`~jaxlr.sweep.Choice`), or a fixed value). The entries come as a ``space`` (a
    :class:`Space` or a nested dict) or as keyword axes, not both.

    Args:
        num: ``K`` >= 1, the number of members.
        space: a :class:`Space`, or a (nested) dict path -> entry.
        key: a PRNG key (``jax.random.key(seed)``); the same key gives the same members.
        **axes: axis name -> entry, the flat spelling of ``space``.

    Returns:
        A nested dict of arrays with leading axis ``num``, mirroring the space's paths.

    Raises:
        ValueError: ``num`` < 1, a bad ``key``, no entries or both ``space`` and axes, or an
            entry :class:`Space` refuses.
        TypeError: ``seed=`` (now ``key=``).

    Examples:
        >>> import jax, jaxlr
        >>> r = jaxlr.sweep.random(4, key=jax.random.key(0),
        ...                        peak_value=("log_uniform", 1e-4, 1e-1),
        ...                        warmup_steps=[0, 100], total_steps=1000)
        >>> p = r["peak_value"]
        >>> p.shape, bool(((p >= 1e-4) & (p <= 0.1)).all()), r["total_steps"].tolist()
        ((4,), True, [1000, 1000, 1000, 1000])

    References:
        Bergstra & Bengio, Random Search for Hyper-Parameter Optimization, JMLR 2012.
    """
    c = Checker("random")
    c.integer("num", num, minimum=1, static=True)
    if space is not None and axes:
        c.fail(f"give space or keyword axes, not both, got space and axes {list(axes)}")
    if space is None and not axes:
        c.fail("give at least one axis, e.g. peak_value=('log_uniform', 1e-4, 1e-1), got none")
    sp = as_space(c, axes if space is None else space)
    return jax.tree.map(jnp.asarray, sp.sample(num, key=key, fn="random"))
