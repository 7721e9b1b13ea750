"""Pieces shared by the jaxlr transforms: schedules held as state, update scaling, LR lookup."""

from __future__ import annotations

import warnings
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.typing import ArrayLike

from jaxlr._src.numeric import as_float
from jaxlr._src.typing import PyTree
from jaxlr._src.validate import Checker, check_cast, concrete
from jaxlr.schedules import Schedule, constant

# State classes whose ``lr`` field is the factor the transform multiplies updates by; filled by
# ``lr_state`` so :func:`current_lr` finds them inside any chain.
_LR_STATES: set[type] = set()


def lr_state(cls: type) -> type:
    """Class decorator: marks a NamedTuple state whose ``lr`` field :func:`current_lr` reads."""
    _LR_STATES.add(cls)
    return cls


def as_schedule(c: Checker, name: str, value: Any, *, nonnegative: bool = False) -> Schedule:
    """A jaxlr schedule as is, or a number as a constant schedule; anything else is an error.

    ``nonnegative``: a number must be >= 0 (a learning rate; the optimizer supplies the sign).
    """
    if isinstance(value, Schedule):
        return value
    if callable(value):
        c.fail(
            f"{name} must be a number or a jaxlr schedule (a pytree whose hyperparameters are "
            f"state), got {name}={value!r}"
        )
    if nonnegative:
        c.nonnegative(name, value)
    c.finite(name, value)
    return constant(value=value)


def held(schedule: Schedule) -> Schedule:
    """The schedule with every leaf a ``jax.Array``, ready to be held whole in a state."""
    return jax.tree.map(jnp.asarray, schedule)


def flag(c: Checker, name: str, value: Any) -> bool:
    """A static boolean option: a real ``bool`` (``"False"`` or an array would be misread)."""
    if not isinstance(value, bool):
        c.fail(f"{name} must be True or False (a static flag), got {name}={value!r}")
    return value


def leaf_names(schedule: Schedule) -> tuple[list[str], jax.tree_util.PyTreeDef]:
    """Dotted names of a schedule's leaves (``"schedule.init_value"``) and its tree structure."""
    paths, treedef = jax.tree_util.tree_flatten_with_path(schedule)
    names = [jax.tree_util.keystr(p, simple=True, separator=".") for p, _ in paths]
    return names, treedef


class ScheduleSlot:
    """A schedule whose leaves live in a transform's state as ``{dotted name: array}``.

    Legacy: only the sharpness transforms still use it; new states hold the schedule whole
    (see :func:`held`), which never aliases a dict between states.

    The transform keeps only the (static) tree structure; the values are state, so replacing
    them, or stacking them for ``vmap``, never recompiles the update.
    """

    def __init__(self, schedule: Schedule):
        self.names, self.treedef = leaf_names(schedule)
        self.initial = dict(zip(self.names, jax.tree.leaves(schedule), strict=True))

    def init(self) -> dict[str, jax.Array]:
        return {k: jnp.asarray(v) for k, v in self.initial.items()}

    def __call__(self, leaves: dict[str, jax.Array], step: ArrayLike) -> jax.Array:
        schedule = jax.tree.unflatten(self.treedef, [leaves[k] for k in self.names])
        return schedule(step)  # an integer count stays exact (jaxlr._src.steps)


def scale_updates(updates: PyTree, factor: ArrayLike) -> PyTree:
    """``factor * updates``, each leaf keeping its dtype."""
    return jax.tree.map(lambda u: (factor * u).astype(u.dtype), updates)


def all_finite(tree: PyTree) -> jax.Array:
    """True when every leaf of ``tree`` is finite (True for an empty tree)."""
    return jnp.all(jnp.asarray([jnp.all(jnp.isfinite(x)) for x in jax.tree.leaves(tree)] or [True]))


def floats(fn: str, **values: ArrayLike) -> dict[str, jax.Array]:
    """Numeric hyperparameters (validated by the caller) as float scalars for a state: a concrete
    array (per-coordinate LRs by accident) or a value the cast overflows or flushes to 0 raises
    ``ValueError`` naming ``fn``; a sweep's member axis comes from ``jax.vmap`` or stacking."""
    out = {}
    for k, v in values.items():
        with np.errstate(over="ignore", under="ignore"):
            a = as_float(v)
        check_cast(fn, k, v, a)
        if np.ndim(a) != 0 and concrete(a) is not None:
            raise ValueError(
                f"{fn}: {k} must be a scalar, got an array of shape {np.shape(a)} "
                f"(to sweep, vmap over the transform's state or its arguments)"
            )
        out[k] = a
    return out


def require(c: Checker, name: str, value: Any) -> Any:
    """Raises at trace time when a required keyword extra argument was not passed."""
    if value is None:
        c.fail(f"update needs the keyword argument {name}=..., got {name}=None")
    return value


def require_params(c: Checker, params: Any) -> Any:
    if params is None:
        c.fail("update needs params (pass params=... to tx.update), got params=None")
    return params


def _is_inject_state(x: Any) -> bool:
    return (
        hasattr(x, "hyperparams") and hasattr(x, "inner_state") and isinstance(x.hyperparams, dict)
    )


# States of Optax's scaling rules that make an optimizer (adam, rmsprop, sgd with momentum, ...):
# the LR applied after them is a constant in a closure, invisible in the state.
_OPTAX_OPTIMIZER_STATES = tuple(
    getattr(optax, n)
    for n in (
        "ScaleByAdamState",
        "ScaleByAmsgradState",
        "ScaleByRmsState",
        "ScaleByRssState",
        "ScaleByBeliefState",
        "ScaleByLionState",
        "ScaleByNovogradState",
        "ScaleByAdaDeltaState",
        "ScaleByAdanState",
        "ScaleByRStdDevState",
        "ScaleBySM3State",
        "FactoredState",
        "TraceState",
    )
    if hasattr(optax, n)
)


# Optax rules whose first update at unit LR does not depend on the gradient's scale and has the
# same magnitude in every coordinate, >= ~1 (adam, adamw, nadam, adamax, amsgrad, yogi, lamb:
# 1 to 1.5; adabelief 1.1; rmsprop 1/sqrt(1 - decay) >= 1; lion, adan 1). Rules that scale by
# the parameters or have their own step size (adafactor, sm3, adadelta, fromage) are left out.
_SIGN_LIKE_STATES = tuple(
    getattr(optax, n)
    for n in (
        "ScaleByAdamState",
        "ScaleByAmsgradState",
        "ScaleByBeliefState",
        "ScaleByRmsState",
        "ScaleByLionState",
        "ScaleByAdanState",
    )
    if hasattr(optax, n)
)
_OWN_STEP_STATES = tuple(
    getattr(optax, n)
    for n in ("FactoredState", "ScaleBySM3State", "ScaleByAdaDeltaState")
    if hasattr(optax, n)
)
_PROBE_GRAD = np.array([1.0, -0.5], np.float32)
# A unit-LR optimizer's first update of the probe is ~1 or more (the smallest above: 0.99); a
# factor below this is read as a learning rate built into the optimizer.
_UNIT_LR_FLOOR = 0.5


def _states(tree: Any) -> list[Any]:
    is_state = lambda x: isinstance(x, tuple) and hasattr(x, "_fields")  # noqa: E731
    found: list[Any] = []

    def visit(x: Any) -> None:
        if is_state(x) or _is_inject_state(x):
            found.append(x)
        if isinstance(x, dict):
            children = list(x.values())
        elif isinstance(x, (tuple, list)):
            children = list(x)
        elif _is_inject_state(x):
            children = [x.inner_state]
        else:
            children = []
        for child in children:
            visit(child)

    visit(tree)
    return found


def _first_update(optimizer: Any, grad: np.ndarray) -> np.ndarray | None:
    params = jnp.zeros_like(grad)  # zero params: weight decay and trust ratios do nothing
    u, _ = optimizer.update(jnp.asarray(grad), optimizer.init(params), params)
    return concrete(u)


def inner_lr(optimizer: Any) -> tuple[float, str] | None:
    """The learning rate built into a wrapped Optax optimizer, where it can be told, or ``None``.

    Read from an ``optax.inject_hyperparams`` state (exact), or from the first update of a
    two-coordinate probe gradient (zero params) for rules whose unit-LR first step is known:
    a linear rule (``u = -c g`` for ``g`` and ``2 g``: SGD, momentum, RAdam's first steps) has
    LR ``c`` (times ``1 + momentum`` for Nesterov); an Adam-family rule (its state among
    ``_SIGN_LIKE_STATES``; ``u = -c sign(g)`` for ``g`` and ``2 g``) has LR ``c``
    (``c`` is ~1 to 3 at unit LR). Runs on the host at construction, on constants (no compile in
    the user's step, fine under a trace); an optimizer that needs extra arguments, traced
    hyperparameters or a parameter structure of its own gives ``None``. Returns the estimate and
    how it was found.
    """
    try:  # a few tiny eager ops: on the host CPU, not queued on an accelerator
        device = jax.devices("cpu")[0]
    except RuntimeError:
        device = None
    with warnings.catch_warnings(), jax.ensure_compile_time_eval(), jax.default_device(device):
        warnings.simplefilter("ignore")
        try:
            states = _states(optimizer.init(jnp.zeros_like(jnp.asarray(_PROBE_GRAD))))
            for s in states:
                if _is_inject_state(s) and "learning_rate" in s.hyperparams:
                    lr = concrete(s.hyperparams["learning_rate"])
                    if lr is None or np.ndim(lr) != 0:
                        return None
                    return float(lr), "its optax.inject_hyperparams state"
            u1 = _first_update(optimizer, _PROBE_GRAD)
            u2 = _first_update(optimizer, 2.0 * _PROBE_GRAD)
        except Exception:  # an optimizer the probe cannot drive: nothing can be told
            return None
    if u1 is None or u2 is None or u1.shape != _PROBE_GRAD.shape:
        return None
    if any(isinstance(s, _OWN_STEP_STATES) for s in states):
        return None
    how = "its first update of a probe gradient"
    c = -u1[0] / _PROBE_GRAD[0]
    if np.allclose(u1, -c * _PROBE_GRAD, rtol=1e-3) and np.allclose(u2, 2.0 * u1, rtol=1e-3):
        return float(c), how
    if any(isinstance(s, _SIGN_LIKE_STATES) for s in states):
        if np.allclose(u1, -c * np.sign(_PROBE_GRAD), rtol=1e-2) and np.allclose(u2, u1, rtol=1e-2):
            return float(c), how
    return None


def check_unit_lr(fn: str, optimizer: Any, *, owner: str) -> None:
    """Warns about a wrapped optimizer not at unit LR (injected at step 0, or probed).

    ``owner`` says what sets the LR instead (it multiplies the optimizer's own, so a built-in
    ``1e-3`` trains 1000x too slowly and misreports what is derived from the LR).
    """
    found = inner_lr(optimizer)
    if found is None:
        return
    lr, how = found
    # A zero or negative reading says nothing about the LR: a schedule starting at 0 (warmup), a
    # rule whose first update is zero (optax.MultiSteps accumulating) or a bare scale_by_* rule
    # (no sign flip). An injected value is the LR at step 0 only (a schedule may rise from it).
    if not np.isfinite(lr) or lr <= 0.0:
        return
    injected = how.endswith("inject_hyperparams state")
    if injected and lr != 1.0 or not injected and lr < _UNIT_LR_FLOOR:
        warnings.warn(
            f"{fn}: optimizer looks built with learning_rate={lr:.3g} "
            + (
                f"({how}, at step 0)"
                if injected
                else f"({how} is {lr:.3g} times that of the same rule at unit LR)"
            )
            + f"; {owner}, so it is multiplied by {lr:.3g}: build "
            "the optimizer with learning_rate=1.0 (e.g. optax.adam(1.0), optax.sgd(1.0))",
            UserWarning,
            stacklevel=3,
        )


class _Walk:
    def __init__(self):
        self.factors: list[jax.Array] = []
        self.hidden: list[str] = []  # Optax optimizers whose constant LR is not state
        self.counts: list[jax.Array] = []  # counts of optax.scale_by_schedule states
        self.parallel = False  # an optax.multi_transform: each group has its own LR


def _walk(state: Any, w: _Walk, *, covered: bool = False) -> None:
    """Collects LR factors; ``covered``: inside a state whose LR was read (inject_hyperparams)."""
    if type(state) in _LR_STATES:
        w.factors.append(state.lr)
        if hasattr(state, "inner_state"):
            _walk(state.inner_state, w, covered=covered)
        return
    if _is_inject_state(state):
        has_lr = "learning_rate" in state.hyperparams
        if has_lr:
            w.factors.append(jnp.asarray(state.hyperparams["learning_rate"]))
        _walk(state.inner_state, w, covered=covered or has_lr)
        return
    if isinstance(state, optax.contrib.ReduceLROnPlateauState):
        w.factors.append(state.scale)
        return
    if isinstance(state, optax.ScaleByScheduleState):
        if not covered:
            w.counts.append(state.count)
        return
    if isinstance(state, optax.MultiTransformState):
        w.parallel = True  # parameter groups with LRs of their own: no single LR
        return
    if isinstance(state, _OPTAX_OPTIMIZER_STATES):
        if not covered:
            w.hidden.append(type(state).__name__)
        return
    if isinstance(state, dict):
        children = state.values()
    elif isinstance(state, (tuple, list)):
        children = state
    else:
        return
    for child in children:
        _walk(child, w, covered=covered)


def current_lr(state: PyTree, *, optimizer_lr: Any = None) -> jax.Array:
    r"""The learning rate applied by the last update, the product of every LR factor in ``state``.

    Walks the state of a transform, an ``optax.chain``, ``optax.inject_hyperparams`` or
    :func:`inject_schedules` and multiplies every learning-rate factor it finds: the ``lr`` of
    each jaxlr transform state, the ``learning_rate`` of each injected-hyperparameter state and
    the ``scale`` of ``optax.contrib.reduce_on_plateau``.

    .. math:: \eta_{\mathrm{eff}} = \eta_{\mathrm{opt}} \prod_i \eta_i

    The LR of an Optax optimizer built with a number (``optax.adam(1e-3)``) is a constant in a
    closure, not state: the state of ``optax.adam(1e-3)`` equals that of ``optax.adam(1.0)``.
    When ``state`` holds such an optimizer's state (``ScaleByAdamState``, ``TraceState``, ...
    outside an injected LR), pass its LR as ``optimizer_lr`` (``1.0`` for the recommended
    ``optax.chain(optax.adam(1.0), jaxlr_transform)``); otherwise this raises rather than report
    the jaxlr factor alone. For an Optax optimizer built with a schedule (``optax.adamw(s)``)
    pass the schedule: ``optimizer_lr=s`` reads its step count (the LR of the last update is
    ``s(count - 1)``, ``s(0)`` after init). Plain SGD without momentum leaves no trace in the
    state (two ``EmptyState``): its LR cannot be detected, give it as ``optimizer_lr``.

    Args:
        state: an optimizer state (any nesting of tuples, lists, dicts and NamedTuples), possibly
            with a leading sweep axis on its leaves.
        optimizer_lr: the LR of the Optax optimizer(s) in ``state`` whose LR is not state: a
            number, or the schedule an Optax optimizer was built with.

    Returns:
        The product of the learning-rate factors (an array; shaped like the sweep axis if any).

    Raises:
        ValueError: no learning rate in ``state``; an Optax optimizer whose LR is not state and
            no ``optimizer_lr``; a schedule-driven Optax optimizer and ``optimizer_lr`` not a
            schedule (or a schedule given and no such optimizer).

    Examples:
        >>> import jax.numpy as jnp, optax, jaxlr
        >>> s = jaxlr.schedules.cosine(init_value=0.5, total_steps=10)
        >>> tx = optax.chain(optax.adam(1.0), jaxlr.transforms.scale_by_schedule(s))
        >>> state = tx.init(jnp.zeros(2))
        >>> _, state = tx.update(jnp.ones(2), state)
        >>> float(jaxlr.transforms.current_lr(state, optimizer_lr=1.0))
        0.5
        >>> adamw = optax.adamw(s)  # plain Optax with a schedule: read it from the count
        >>> state = adamw.init(jnp.zeros(2))
        >>> for _ in range(6):
        ...     _, state = adamw.update(jnp.ones(2), state, jnp.zeros(2))
        >>> float(jaxlr.transforms.current_lr(state, optimizer_lr=s))  # s(5)
        0.25

    References:
        Optax ``inject_hyperparams``, ``scale_by_schedule``, ``contrib.reduce_on_plateau``.
    """
    c = Checker("current_lr")
    w = _Walk()
    _walk(state, w)
    schedule = optimizer_lr if callable(optimizer_lr) else None
    if w.parallel:
        c.fail(
            "state holds an optax.multi_transform: each parameter group has its own learning "
            "rate; call current_lr on one group's state (state.inner_states[name].inner_state)"
        )
    if len(w.counts) > 1 and schedule is not None:
        c.fail(
            f"state holds {len(w.counts)} optax.scale_by_schedule counts; optimizer_lr= "
            f"describes one schedule, so read each part's LR separately"
        )
    if w.counts and schedule is None:
        c.fail(
            "state holds an optax.scale_by_schedule state (an Optax optimizer built with a "
            "schedule, e.g. optax.adamw(schedule)) whose schedule is not state; pass it as "
            f"optimizer_lr=schedule, got optimizer_lr={optimizer_lr!r}"
        )
    if schedule is not None and not w.counts:
        c.fail(
            "optimizer_lr is a schedule but state holds no optax.scale_by_schedule state "
            f"(an Optax optimizer built with a schedule), got optimizer_lr={optimizer_lr!r}"
        )
    if w.hidden and optimizer_lr is None:
        c.fail(
            f"state holds an Optax optimizer state ({', '.join(sorted(set(w.hidden)))}) whose "
            "learning rate is a constant in a closure, not state; pass it as optimizer_lr= "
            "(1.0 for optax.chain(optax.adam(1.0), ...)), or inject it with "
            "optax.inject_hyperparams, got optimizer_lr=None"
        )
    factors = list(w.factors)
    if schedule is not None:
        factors += [schedule(jnp.maximum(n, 1) - 1) for n in w.counts]
    elif optimizer_lr is not None:
        c.finite("optimizer_lr", optimizer_lr)
        factors.append(as_float(optimizer_lr))
    if not factors:
        c.fail(
            f"no learning rate found in state of type {type(state).__name__}; use a jaxlr "
            "transform, inject the LR, or pass optimizer_lr="
        )
    out = factors[0]
    for f in factors[1:]:
        out = out * f
    return out
