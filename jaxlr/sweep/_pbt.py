"""Population-based training inside one compiled program: exploit and explore under ``jit``."""

from __future__ import annotations

import dataclasses
import itertools
import math
import warnings
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh

from jaxlr._src.validate import Checker
from jaxlr.sweep import _engine
from jaxlr.sweep._carry import Carry
from jaxlr.sweep._configs import is_choice, leaf_name, size, unwrap
from jaxlr.sweep._halving import check_metric, check_mode
from jaxlr.sweep._policy import Policy
from jaxlr.sweep._population import Population, PopulationResult
from jaxlr.sweep._rank import MAX_POINTS, check_rank, fit_member
from jaxlr.sweep._space import Dim, Space, as_space, leaf_paths

# rank="predicted": a slot whose metric now is off its law at the LR area it has spent by more
# than a factor 1 + max(DRIFT, 3 rms of the fit) is ranked by its value (scaled): the law no
# longer describes it.
DRIFT = 0.25


class PBTResult(PopulationResult):
    r"""A :class:`PopulationResult` of :func:`pbt`, with the lineage and the applied LRs.

    Slot ``i`` of the population may hold different members over time: at an exploit step
    ``t`` a bottom slot receives a copy of a top slot. ``lineage[t, i]`` is the slot whose
    content slot ``i`` holds after step ``t`` (the identity at other steps), so the history of
    the member in slot ``w`` at the end is found by walking ``lineage`` backwards.

    ``diverged`` / ``diverged_step`` describe what each slot holds at the end: a slot whose
    member diverged and was then refilled with a copy of a top slot holds a healthy member
    (``diverged=False``, ``diverged_step=-1`` unless that copy diverged later);
    ``divergences`` lists every divergence of the run, refilled or not.

    Attributes:
        lineage: ``[T, K]`` int.
        lr_history: ``[K, T]`` the LR each slot applied at each step (the ``lr`` metric, or
            read from the members' states by the driver).
        perturbed: ``{path: [T, K]}``: the value of each perturbed config leaf each slot
            trained with at each step (:meth:`config_path` follows one lineage).
        lr_paths: the perturbed paths that make the LR (a schedule's leaves, ``lr``).
        winner: the slot with the best final ``metric`` (``None`` if all diverged).
        divergences: sorted ``(step, slot)`` pairs: the member in ``slot`` diverged at
            ``step`` (frozen from then on, until an exploit step refilled the slot).

    Examples:
        >>> import numpy as np, jaxlr
        >>> r = jaxlr.sweep.PBTResult(
        ...     {"lr": np.array([0.1, 0.2])}, {"loss": np.array([[2.0, 1.0], [3.0, 0.5]]),
        ...     "lr": np.array([[0.1, 0.1], [0.2, 0.3]])}, diverged=np.zeros(2, bool),
        ...     diverged_step=np.full(2, -1), lineage=np.array([[1, 1], [0, 1]]), metric="loss")
        >>> r.winner, r.ancestors(1).tolist(), r.lr_path().tolist()
        (1, [1, 1], [0.2, 0.3])
    """

    def __init__(
        self,
        *args: Any,
        metric: str,
        lr: str = "lr",
        mode: str = "min",
        divergences: list[tuple[int, int]] | None = None,
        perturbed: Mapping[str, np.ndarray] | None = None,
        lr_paths: Sequence[str] = (),
        **kwargs: Any,
    ):
        super().__init__(*args, metric=metric, mode=mode, **kwargs)
        self.metric_name, self.lr_name, self.mode = metric, lr, mode
        self.perturbed = {k: np.asarray(v) for k, v in (perturbed or {}).items()}
        self.lr_paths = tuple(lr_paths)
        self.divergences = list(divergences or [])
        self.lr_history = self.metrics[lr]
        best = self.best(metric, mode=mode)
        self.winner = None if best is None else best["index"]

    def ancestors(self, member: int | None = None) -> np.ndarray:
        """``[T]``: the slot whose content the final ``member`` (default: the winner) was at
        each step (before that step's exploit).

        Raises:
            ValueError: no ``member`` given and no member survived (no winner).
        """
        if member is None and self.winner is None:
            raise ValueError(
                "PBTResult: no member survived (every slot diverged), so there is no winner; "
                "name a member (0..K-1) to follow its lineage"
            )
        cur = self.winner if member is None else int(member)
        path = np.zeros(self.lineage.shape[0], int)
        for t in range(self.lineage.shape[0] - 1, -1, -1):
            cur = int(self.lineage[t, cur])
            path[t] = cur
        return path

    def lr_path(self, member: int | None = None) -> np.ndarray:
        """``[T]``: the learning rate the final ``member``'s lineage applied at every step."""
        path = self.ancestors(member)
        return np.asarray(self.lr_history)[path, np.arange(len(path))]

    def config_path(self, name: str, member: int | None = None) -> np.ndarray:
        """``[T]``: the value of the perturbed config leaf ``name`` (a ``space`` path) that the
        final ``member``'s lineage (default: the winner's) trained with at every step, e.g. the
        weight decay to retrain the winner with next to :meth:`schedule`.

        Raises:
            ValueError: ``name`` is not a perturbed path, or no member survived.
        """
        from jaxlr.sweep._space import path_name

        key = path_name(name)
        if key not in self.perturbed:
            raise ValueError(
                f"PBTResult.config_path: {name!r} is not a path PBT perturbed, known: "
                f"{sorted(self.perturbed)}"
            )
        path = self.ancestors(member)
        return self.perturbed[key][np.arange(len(path)), path]

    def schedule(self, member: int | None = None):
        r"""The lineage's applied LR as a schedule, ready to retrain from scratch.

        .. math:: \eta(t) = \text{lr}_{a(t)}(t), \quad a(t) = \text{ancestor at step } t

        A ``jaxlr.schedules.piecewise_constant`` whose boundaries are the steps where the
        applied LR changed (``jaxlr.schedules.constant`` if it never did). Only the LR: when
        the space also perturbed other leaves (a weight decay), a warning names them and
        :meth:`config_path` gives their per-step values along the same lineage.
        """
        from jaxlr import schedules

        lrs = self.lr_path(member)
        others = sorted(set(self.perturbed) - set(self.lr_paths))
        if others:
            warnings.warn(
                f"PBTResult.schedule: exports the learning rate the lineage applied only; PBT "
                f"also perturbed {others}: read their per-step values with "
                f"config_path(name) to retrain the winner with them",
                stacklevel=2,
            )
        change = np.flatnonzero(lrs[1:] != lrs[:-1]) + 1
        if not len(change):
            return schedules.constant(value=float(lrs[0]))
        return schedules.piecewise_constant(
            boundaries=change.astype(float), values=lrs[np.concatenate([[0], change])]
        )


def _stride(num_steps: int, fresh: int) -> int:
    """The smallest multiple of ``fresh`` (the steps between fresh metric values) that keeps a
    curve of ``num_steps`` steps within ``MAX_POINTS`` entries."""
    return fresh * -(-num_steps // (fresh * MAX_POINTS))


def _space(c: Checker, space: Any, configs: Any) -> tuple[tuple[int, Dim], ...]:
    """The searched entries of ``space`` as (position among the config's leaves, dimension)."""
    if isinstance(space, Mapping) and not space:
        c.fail(f"space must be a non-empty dict path -> entry, got space={space!r}")
    sp = as_space(c, space)
    paths = leaf_paths(configs)
    leaves = jax.tree.leaves(configs)
    choices = {
        leaf_name(p): v.choices
        for p, v in jax.tree_util.tree_flatten_with_path(configs, is_leaf=is_choice)[0]
        if is_choice(v)
    }
    out = []
    for name, d in sp.searched():
        if name not in paths:
            c.fail(
                f"space names {name!r}, which is not in configs (its leaves: "
                f"{sorted(p for p in paths if not p.endswith('.index'))})"
            )
        leaf = leaves[paths[name]]
        if np.ndim(leaf) != 1:
            c.fail(
                f"space entry {name!r} must be a scalar hyperparameter per member, got shape "
                f"{np.shape(leaf)[1:]}"
            )
        if d.is_string != (name + ".index" in paths or name.endswith(".index")):
            c.fail(
                f"space entry {name!r} is {'string choices' if d.is_string else d.kind} but "
                f"the config leaf is {'string choices' if not d.is_string else 'numbers'}"
            )
        base = name[: -len(".index")] if name.endswith(".index") else name
        if d.is_string and tuple(d.choices) != choices.get(base, tuple(d.choices)):
            c.fail(
                f"space entry {name!r} has choices {list(d.choices)} but the config's Choice "
                f"{base!r} has choices {list(choices[base])}: give the same strings in the "
                f"same order (a member's choice is its index in that list)"
            )
        dtype = np.asarray(leaf).dtype
        if np.issubdtype(dtype, np.integer):
            values = d.choices if d.kind == "choice" and not d.is_string else (d.low, d.high)
            info = np.iinfo(dtype)
            bad = [v for v in values if not float(v).is_integer() or not info.min <= v <= info.max]
            if not d.is_string and bad:
                c.fail(
                    f"space entry {name!r} holds {bad}, which the config leaf's dtype {dtype} "
                    f"cannot hold (PBT would round it into another value): give integers in "
                    f"[{info.min}, {info.max}] or make the leaf a float"
                )
        out.append((paths[name], d))
    return tuple(out)


def _names(configs: Any) -> dict[int, str]:
    """Position among the config's leaves -> path name (a Choice by its own name)."""
    names = {}
    for name, pos in sorted(leaf_paths(configs).items(), key=lambda kv: -len(kv[0])):
        names[pos] = name
    return names


def _lr_paths(configs: Any, perturbed: Mapping[str, Any]) -> tuple[str, ...]:
    """The perturbed paths that make the learning rate: a leaf of a jaxlr schedule in the
    config, or a leaf named ``lr`` / ``learning_rate``."""
    from jaxlr.schedules import Schedule

    is_schedule = lambda x: isinstance(x, Schedule)  # noqa: E731
    flat = jax.tree_util.tree_flatten_with_path(configs, is_leaf=is_schedule)[0]
    held = [leaf_name(p) for p, v in flat if is_schedule(v)]
    return tuple(
        n
        for n in perturbed
        if n.rsplit(".", 1)[-1] in ("lr", "learning_rate")
        or any(n == h or n.startswith(h + ".") for h in held)
    )


# Primitives whose output is their (only or first) operand's value: passing through them is
# carrying the value unchanged (a cast is written back with the state leaf's dtype).
_PASS = ("convert_element_type", "copy", "copy_p", "optimization_barrier")
# Calls: their outputs are their body's (loops are not: a loop body runs more than once).
_CALLS = ("pjit", "jit", "closed_call", "core_call", "remat", "checkpoint", "custom_jvp_call",
          "custom_vjp_call", "custom_vjp_call_jaxpr")  # fmt: skip


def _flow(jaxpr) -> tuple[list, list]:
    """For each output of ``jaxpr``: the input it carries unchanged (an index, or ``None``)
    and the inputs it depends on (a frozenset of indices).

    An output carries input ``i`` when it *is* that input, possibly through nested calls (a
    jitted function, ``remat``), casts, or a ``select`` / ``cond`` whose every case carries it
    (``jnp.where`` of a value with itself: ``optax.MultiSteps``, ``apply_if_finite``).
    Dependence is exact through nested calls and conservative elsewhere (every output of an
    equation depends on all its operands), so it may over-report, never miss."""
    sources, deps = _sources(jaxpr)
    return [next(iter(f)) if f is not None and len(f) == 1 else None for f in sources], deps


def _sources(jaxpr) -> tuple[list, list]:
    """:func:`_flow` with, per output, the set of inputs it is a selection among (``None``:
    computed), so a selection between two inner inputs that are one outer value carries it."""
    from jax.extend.core import Literal

    src: dict = {v: frozenset([i]) for i, v in enumerate(jaxpr.invars)}
    deps: dict = {v: frozenset([i]) for i, v in enumerate(jaxpr.invars)}

    def dep(v):
        return frozenset() if isinstance(v, Literal) else deps.get(v, frozenset())

    def source(v):
        return None if isinstance(v, Literal) else src.get(v)

    def through(ins, inner_src):  # inner input indices -> this jaxpr's sources
        if inner_src is None:
            return None
        outer = [source(ins[j]) for j in inner_src]
        return None if any(o is None for o in outer) else frozenset().union(*outer)

    for eqn in jaxpr.eqns:
        ins, name = eqn.invars, eqn.primitive.name
        inner = eqn.params.get("jaxpr", eqn.params.get("call_jaxpr"))
        inner = getattr(inner, "jaxpr", inner)
        if name in _CALLS and hasattr(inner, "eqns") and len(inner.invars) == len(ins):
            ss, ds = _sources(inner)
            for o, f, d in zip(eqn.outvars, ss, ds):
                deps[o] = frozenset().union(*(dep(ins[j]) for j in d))
                if (t := through(ins, f)) is not None:
                    src[o] = t
            continue
        everything = frozenset().union(*(dep(v) for v in ins))
        for o in eqn.outvars:
            deps[o] = everything
        if name in _PASS and ins and source(ins[0]) is not None:
            src[eqn.outvars[0]] = source(ins[0])
        elif name == "select_n" and len(ins) > 1:
            cases = [source(v) for v in ins[1:]]
            if all(f is not None for f in cases):
                src[eqn.outvars[0]] = frozenset().union(*cases)
        elif name == "cond":  # operands are ins[1:]
            flows = [_sources(b.jaxpr)[0] for b in eqn.params["branches"]]
            for o, fs in zip(eqn.outvars, zip(*flows)):
                mapped = [through(ins[1:], f) for f in fs]
                if all(m is not None for m in mapped):
                    src[o] = frozenset().union(*mapped)
    return [source(v) for v in jaxpr.outvars], [dep(v) for v in jaxpr.outvars]


def _held(
    c: Checker,
    init_fn: Callable,
    step_fn: Callable,
    configs: Any,
    space: tuple[tuple[int, Dim], ...],
    batch: Callable[[], Any],
    member_batches: bool,
) -> tuple[tuple[int, tuple[int, ...]], ...]:
    """Where each perturbed config leaf acts, and the state leaves an exploit must write it to,
    as ``(position among the config's leaves, positions among the state's leaves)`` pairs.

    An exploit copies the parent's state, so a perturbed value acts at the next step only if
    ``step_fn`` reads the config leaf, or the state holds the leaf itself and ``step_fn``
    carries it unchanged (a schedule held in the optimizer state by
    ``jaxlr.transforms.scale_by_schedule``): those state leaves get the perturbed value (a
    state leaf the step recomputes, such as the current LR, is left to the step). A leaf that
    acts neither way is refused: one whose state copy ``step_fn`` evolves (an LR a
    hypergradient adapts: writing there would discard training, not writing would never act),
    or one ``init_fn`` only turns into another value (``10 ** config["log_lr"]`` in
    ``optax.inject_hyperparams``). ``init_fn`` and ``step_fn`` are
    traced once for member 0 (nothing runs; see :func:`_flow`), ``step_fn`` and ``batch()`` (the
    first batch) only when the state holds something of a perturbed leaf."""
    config = jax.tree.map(lambda a: a[0], unwrap(configs))
    carried, stores = _flow(jax.make_jaxpr(init_fn)(config, jax.random.key(0)).jaxpr)
    space = tuple((pos, d) for pos, d in space if any(pos in s for s in stores))
    if not space:  # the state holds nothing of a perturbed leaf: only step_fn can read it
        return ()
    state = jax.eval_shape(init_fn, config, jax.random.key(0))
    n = len(jax.tree.leaves(state))
    first = batch()
    if member_batches:
        first = jax.tree.map(lambda a: a[0], first)
    kept, depends = _flow(jax.make_jaxpr(step_fn)(state, config, first).jaxpr)
    names = _names(configs)
    out = []
    for pos, _ in space:
        copies = [q for q in range(n) if carried[q] == pos]
        held = tuple(q for q in copies if kept[q] == q)
        if not (held or any(n + pos in d for d in depends)):
            c.fail(
                f"space entry {names[pos]!r} cannot act: step_fn does not read it, and the "
                f"state holds no copy of it that step_fn carries unchanged (init_fn stores a "
                f"value computed from it, or step_fn evolves its copy, e.g. an LR a transform "
                f"adapts), so an exploit, which copies the parent's state, cannot pass the "
                f"perturbed value on while configs, best() and the tables report it. Perturb a "
                f"leaf the state holds unchanged (a schedule in "
                f"jaxlr.transforms.scale_by_schedule), or build the update from the config at "
                f"every step, e.g. optax.adam(config['schedule'])"
            )
        if held:
            out.append((pos, held))
    return tuple(out)


@dataclasses.dataclass(frozen=True)
class _Exploit(Policy):
    """PBT between steps: every ``interval`` steps, truncation selection and perturbation.

    Its fields are all its settings, so equal settings give an equal policy and a second
    :func:`pbt` call with the same step function (and the same ``lr`` and ``planned_lr``
    function objects) reuses the compiled program."""

    k: int = 2
    n: int = 1
    metric: str = "loss"
    mode: str = "min"
    space: tuple = ()  # (position among the config's leaves, Dim) pairs
    lr: Any = None  # a metric name, a function (state, config) -> LR, or None: current_lr
    perturb: tuple[float, float] = (0.8, 1.2)
    p: float = 0.25
    interval: int = 1
    num_steps: int = 1
    held: tuple = ()  # (config leaf position, state leaf positions) pairs: see _held
    rank: str = "value"  # "predicted": rank by each slot's loss-curve law (see pbt)
    planned_lr: Any = None  # with rank="predicted": (config, step) -> LR of one member
    stride: int = 1  # with rank="predicted": a slot's curve keeps the metric every stride steps
    points: int = MAX_POINTS  # ... in this many entries (num_steps // stride <= points)

    def memory(self, k: int) -> Any:
        """With ``rank="predicted"``, each slot's curve so far (copied with the slot's state at
        an exploit, so a slot holds its lineage's curve): the metric ``curve`` and the LR
        area ``area`` (the applied LR summed) every ``stride`` steps, and the LR area
        ``spent`` now."""
        if self.rank == "value":
            return ()
        return {
            "curve": np.full((k, self.points), np.nan, np.float32),
            "area": np.full((k, self.points), np.nan, np.float32),
            "spent": np.zeros(k, np.float32),
        }

    def applied_lr(self, carry: Carry, metrics) -> Any:
        """The LR each member applied at this step: the ``lr`` metric, or read from the state
        (``lr`` a function of one member's state, or :func:`jaxlr.transforms.current_lr`)."""
        if isinstance(self.lr, str):
            return None
        if self.lr is None and isinstance(metrics, Mapping) and "lr" in metrics:
            return None
        if self.lr is not None:
            return jax.vmap(self.lr)(carry.state, unwrap(carry.config))
        from jaxlr.transforms import current_lr

        try:
            return jax.vmap(current_lr)(carry.state)
        except ValueError as e:
            Checker("pbt").fail(
                f"step_fn reports no 'lr' metric and the applied LR cannot be read from the "
                f"state ({e}); report it as a metric, or pass lr=<metric name> or "
                f"lr=<function (state, config) -> LR of one member>"
            )

    def _remember(self, carry: Carry, metrics, lr) -> Carry:
        """``rank="predicted"``: adds this step's applied LR to each slot's LR area and, every
        ``stride`` steps, records the metric and the area in the slot's curve."""
        if lr is None:
            lr = metrics[self.lr if isinstance(self.lr, str) else "lr"]
        if jnp.shape(lr) != (self.k,):
            Checker("pbt").fail(
                f"rank='predicted' sums each member's applied LR and needs one scalar LR per "
                f"member, got shape {jnp.shape(lr)[1:]} per member (report the LR that "
                f"planned_lr plans as the lr metric, or pass lr=<function (state, config) -> LR>)"
            )
        lr = jnp.asarray(lr, jnp.float32)
        m = carry.memory
        spent = m["spent"] + jnp.where(jnp.isfinite(lr) & (lr > 0), lr, 0.0)
        record = carry.step % self.stride == 0
        i = jnp.clip(carry.step // self.stride - 1, 0, self.points - 1)
        value = jnp.asarray(metrics[self.metric], jnp.float32).reshape(self.k)
        curve = jnp.where(record, m["curve"].at[:, i].set(value), m["curve"])
        area = jnp.where(record, m["area"].at[:, i].set(spent), m["area"])
        return carry._replace(memory={"curve": curve, "area": area, "spent": spent})

    def _predict(self, carry: Carry, now: jax.Array) -> tuple[jax.Array, jax.Array]:
        r"""Each slot's score: its predicted final metric, or, where that is not usable, its
        value now scaled by the population's median predicted remaining gain.

        The prediction is the law :math:`L_0 + A S^{-\alpha}` of
        :func:`jaxlr.sweep._rank.fit_member` fitted to the last half of the slot's curve,
        evaluated at the area spent so far plus the area its current config plans for the steps
        left (``planned_lr``). It is usable where the fit is, the slot is alive and its value
        ``now`` is positive and still described by the law: within a factor
        :math:`1 + \max(\text{DRIFT}, 3\,\text{rms})` of the law at the area spent (rms: the
        fit's relative residuals, so a noisy metric is not taken for a jump; a factor, so a
        sudden drop counts as a sudden rise does). Any other slot's value now is multiplied by
        the median over usable slots of prediction / law now, to be ranked on the same scale.
        Returns the score and whether the prediction was used."""
        m, t = carry.memory, carry.step
        steps = jnp.arange(self.num_steps)
        plan = self.planned_lr

        def ahead(config):
            lrs = jax.vmap(lambda s: jnp.asarray(plan(config, s), jnp.float32))(steps)
            return jnp.sum(jnp.where(steps >= t, lrs, 0.0))

        spent = m["spent"]
        unit = jnp.where(spent > 0, spent, 1.0)  # areas in units of the area spent so far
        final = (spent + jax.vmap(ahead)(unwrap(carry.config))) / unit
        areas = jnp.concatenate([m["area"] / unit[:, None], final[:, None]], axis=1)
        pred, ok, params, rms = jax.vmap(fit_member)(m["curve"], areas)
        here = params[:, 0] + params[:, 1]  # the law at the area spent (S / unit = 1)
        ok &= (spent > 0) & carry.alive & jnp.isfinite(now) & (now > 0) & (here > 0)
        ratio = jnp.where(ok, now / jnp.where(ok, here, 1.0), 1.0)
        ok &= jnp.abs(jnp.log(ratio)) <= jnp.log1p(jnp.maximum(DRIFT, 3.0 * rms))
        gain = jnp.nanmedian(jnp.where(ok, pred / jnp.where(ok, here, 1.0), jnp.nan))
        gain = jnp.where(jnp.any(ok), gain, 1.0)
        return jnp.where(ok, pred, now * gain), ok

    def between(self, carry: Carry, metrics):
        due = (carry.step % self.interval == 0) & (carry.step < self.num_steps)
        lr = self.applied_lr(carry, metrics)  # before the exploit moves states between slots
        if self.rank == "predicted":
            carry = self._remember(carry, metrics, lr)

        def keep(cy, m):
            out = {
                "parents": jnp.arange(self.k, dtype=jnp.int32),
                "replaced_diverged": jnp.full(self.k, -1, jnp.int32),
            }
            if self.rank == "predicted":
                out["predicted"] = jnp.full(self.k, jnp.nan, jnp.float32)
                out["by_value"] = jnp.zeros(self.k, bool)
            return cy, out

        # the perturbed leaves each slot trained with at this step (before the exploit)
        used = tuple(jax.tree.leaves(carry.config)[pos] for pos, _ in self.space)
        carry, extra = jax.lax.cond(due, self._exploit, keep, carry, metrics)
        extra = {**extra, "space": used}
        if lr is not None:
            extra = {**extra, "lr": jnp.asarray(lr, jnp.float32).reshape(self.k)}
        return carry, extra

    def _exploit(self, carry: Carry, metrics):
        """Truncation selection (bottom ``n`` copy a random top-``n`` slot), then explore."""
        k, n, metric, space = self.k, self.n, self.metric, self.space
        down, up = self.perturb
        if jnp.shape(metrics[metric]) != (k,):
            Checker("pbt").fail(
                f"metric={metric!r} must be a scalar per member to rank by, got shape "
                f"{jnp.shape(metrics[metric])[1:]}"
            )
        score = jnp.asarray(metrics[metric]).astype(jnp.float32)
        extra = {}
        if self.rank == "predicted":  # the value where a slot's prediction is not usable
            ranked, ok = self._predict(carry, score)
            extra["predicted"] = jnp.where(ok, ranked, jnp.nan)
            extra["by_value"] = carry.alive & jnp.isfinite(score) & ~ok
            score = ranked
        score = score if self.mode == "min" else -score
        score = jnp.where(jnp.isfinite(score) & carry.alive, score, jnp.inf)
        order = jnp.argsort(score, stable=True)  # best first; diverged last
        key, k_src, k_coin, k_res, k_draw = jax.random.split(carry.key, 5)
        top, bottom = order[:n], order[k - n :]
        src = top[jax.random.randint(k_src, (n,), 0, n)]
        parents = jnp.arange(k).at[bottom].set(src)
        replaced = jnp.zeros(k, bool).at[bottom].set(True)
        take = lambda tree: jax.tree.map(lambda a: a[parents], tree)
        leaves, treedef = jax.tree.flatten(take(carry.config))
        m = max(1, len(space))
        coins = jax.random.bernoulli(k_coin, 0.5, (m, k))
        resample = jax.random.bernoulli(k_res, self.p, (m, k))
        draws = jax.random.uniform(k_draw, (m, k))
        for j, (pos, d) in enumerate(space):
            old = leaves[pos]  # the parent's value in replaced slots, the own one elsewhere
            fresh = d.from_unit(draws[j], jnp)
            if d.kind == "choice":
                # Ray Tune's categorical explore: a neighbouring choice, or a fresh draw.
                n = len(d.choices)
                if d.is_string:
                    at = old.astype(jnp.int32)
                else:
                    table = jnp.asarray(np.asarray(d.choices, float), jnp.float32)
                    at = jnp.argmin(jnp.abs(old.astype(jnp.float32)[:, None] - table), axis=1)
                    fresh = jnp.floor(draws[j] * n).astype(jnp.int32).clip(0, n - 1)
                moved = jnp.clip(at + jnp.where(coins[j], 1, -1), 0, n - 1)
                new = jnp.where(resample[j], fresh, moved)
                if not d.is_string:
                    new = table[new]
            else:
                x = old.astype(jnp.float32)
                factor = jnp.where(coins[j], up, down)
                moved = x * factor
                if d.kind in ("int", "log_int") or jnp.issubdtype(old.dtype, jnp.integer):
                    # An integer moves by at least one in the factor's direction (1 * 0.8 and
                    # 1 * 1.2 both round back to 1), then stays within the bounds.
                    moved = jnp.round(moved)
                    moved = jnp.where(moved == x, x + jnp.sign(factor - 1.0), moved)
                    fresh = jnp.round(fresh)
                moved = jnp.clip(moved, d.low, d.high)
                new = jnp.where(resample[j], fresh, moved)
            # Slots that are not replaced keep their value exactly (an int past 2**24 would
            # not survive a round trip through float32).
            leaves[pos] = jnp.where(replaced, new.astype(old.dtype), old)
        config = jax.tree.unflatten(treedef, leaves)
        state = take(carry.state)
        if self.held:
            # A hyperparameter the state holds (a schedule in scale_by_schedule's state) takes
            # the perturbed value, so it acts from the next step.
            held, state_def = jax.tree.flatten(state)
            for pos, qs in self.held:
                for q in qs:
                    held[q] = jnp.where(replaced, leaves[pos].astype(held[q].dtype), held[q])
            state = jax.tree.unflatten(state_def, held)
        # A refilled slot holds its parent's healthy copy; the divergence it replaced is
        # reported through ``replaced_diverged`` (-1 where none).
        died = jnp.where(replaced & ~carry.alive, carry.bad_step, -1).astype(jnp.int32)
        carry = carry._replace(
            state=state,
            config=config,
            alive=carry.alive[parents],
            bad_step=carry.bad_step[parents],
            evals=take(carry.evals),
            memory=take(carry.memory),
            key=key,
        )
        extra = {"parents": parents.astype(jnp.int32), "replaced_diverged": died, **extra}
        return carry, extra


def pbt(
    init_fn: Callable[[Any, jax.Array], Any],
    step_fn: Callable[[Any, Any, Any], tuple[Any, Any]],
    configs: Any,
    batches: Iterable[Any],
    *,
    key: jax.Array,
    num_steps: int,
    interval: int,
    metric: str,
    space: Space | Mapping[str, Any],
    lr: str | Callable[[Any, Any], Any] | None = None,
    mode: str = "min",
    fraction: float = 0.125,
    resample_probability: float = 0.25,
    perturb: Sequence[float] = (0.8, 1.2),
    steps_per_call: int | None = None,
    mesh: Mesh | None = None,
    loss: str | None = "loss",
    divergence_threshold: float | None = None,
    member_batches: bool = False,
    labels: Mapping[str, Sequence[str]] | None = None,
    compiler_options: Mapping[str, Any] | None = None,
    progress: bool = True,
    eval_fn: Callable[[Any, Any], Any] | None = None,
    eval_every: int = 1,
    checkpoint_dir: str | None = None,
    checkpoint_every: int | None = None,
    rank: str = "value",
    planned_lr: Callable[[Any, Any], Any] | None = None,
) -> PBTResult:
    r"""Population-based training (Jaderberg et al. 2017) in one compiled, vmapped program.

    The members train as a :class:`Population`. After every ``interval`` steps (inside the
    compiled step, under ``lax.cond``: nothing is recompiled), the members are ranked by
    ``metric`` at that step (diverged members last) and each of the bottom
    :math:`n = \max(1, \lfloor f K \rfloor)` slots copies the whole state (parameters,
    optimizer state) and configuration of a top-:math:`n` slot drawn uniformly (seeded
    truncation selection), then explores each ``space`` hyperparameter :math:`h`:

    .. math:: h' = \begin{cases} h' \sim \text{space}[h] & \text{with probability } p \\
              \text{clip}(h \cdot c,\ \text{low},\ \text{high}),\ c \in \{0.8, 1.2\}
              \text{ uniformly} & \text{otherwise} \end{cases}

    (a choice moves to a neighbouring choice instead of :math:`h \cdot c`, as in Ray Tune; an
    integer :math:`h` becomes :math:`\text{round}(h c)`, or :math:`h \pm 1` in the direction of
    :math:`c` where that rounds back to :math:`h`, clipped to the bounds).

    The truncation fraction defaults to :math:`f = 1/8`, half of Ray Tune's quantile 0.25
    (Jaderberg et al. used 20%); the perturbation (0.8 / 1.2, resampled with :math:`p = 0.25`)
    is Ray Tune's. Ranking by the metric *now* is greedy: a member that decays its LR early
    looks best at a short horizon, and with a quarter replaced every round, the slots soon
    descend from a few such members and the member that would have ended best is overwritten.
    In ``experiments/pbt_study.py`` (the demo, the digits MLP and the benchmark's problem, 3
    seeds each, equal member-steps) :math:`f = 1/8` beat the grid's best member on 9/9
    task-seeds, :math:`f = 1/4` on 6/9. Rank by a validation loss (``eval_fn`` with
    ``eval_every=interval`` evaluates once per round), not the minibatch loss: ranked by the
    minibatch loss PBT lost to the grid on 8/9 task-seeds there, by up to 2.7x.

    ``configs`` is any pytree with leading axis ``K``: numbers, jaxlr schedules stacked with
    :func:`jaxlr.sweep.stack`, transform hyperparameters, string choices, e.g.
    ``{"schedule": stack([...]), "weight_decay": ...}``; ``space`` names the leaves it explores
    by tree path (``"schedule.peak_value"``, ``".schedule.peak_value"``, the
    ``jax.tree_util.keystr`` form, or a nested dict; see :class:`Space`). ``step_fn`` must build
    its update from ``config`` at every step (e.g. ``optax.adam(config["schedule"])``), or keep
    the leaf in its state unchanged: a schedule held in the optimizer state
    (``optax.chain(optax.adam(1.0), jaxlr.transforms.scale_by_schedule(config["schedule"]))``)
    is copied with the parent's state at an exploit, so where ``init_fn`` puts a perturbed leaf
    unchanged into the state and ``step_fn`` carries that state leaf unchanged, the exploit
    writes the perturbed value there too; a perturbed leaf the state holds and ``step_fn``
    changes (an LR a transform adapts) is refused, as it could not act (``init_fn`` and
    ``step_fn`` are traced once for that, on the first batch; nothing runs). Either way a
    perturbed leaf acts from the next step. The learning rate each member
    applied at each step is the ``lr`` metric when ``step_fn`` reports one, else read from the
    member's state by the driver (:func:`jaxlr.transforms.current_lr`, or the function ``lr``);
    that curve, followed back through the lineage, is the schedule the winner learned
    (:meth:`PBTResult.schedule`), which retrains it from scratch.

    Args:
        init_fn: ``(config, key) -> state`` for one member.
        step_fn: ``(state, config, batch) -> (state, metrics)`` with ``metric``.
        configs: a pytree of ``K >= 2`` configurations (leading axis ``K``).
        batches: an iterable of batches, one per step.
        key: PRNG key: members' ``init_fn`` keys and the selection / perturbation stream.
        num_steps: training length.
        interval: steps between exploit/explore rounds (>= 1).
        metric: the metric ranked (e.g. a validation loss the step function reports).
        space: a :class:`Space` (or a dict it takes): the leaves explored, by tree path, and
            their distributions (resampling range and clip range); fixed entries are ignored.
        lr: where the applied learning rate comes from: ``None`` (the default) the ``lr``
            metric if ``step_fn`` reports one, else ``jaxlr.transforms.current_lr(state)``; a
            metric name; or a function ``(state, config) -> LR`` of one member, e.g.
            ``lambda s, c: current_lr(s.opt_state, optimizer_lr=c["schedule"])`` for
            ``optax.adam(config["schedule"])``.
        mode: ``"min"`` or ``"max"``.
        fraction: the truncation fraction ``f`` in ``(0, 0.5]`` (default 1/8).
        resample_probability: ``p`` in ``[0, 1]``.
        perturb: the two multiplicative factors, any length-2 sequence (or 1-D array) of
            numbers > 0 (default ``(0.8, 1.2)``).
        steps_per_call: steps per compiled call (default ``interval``).
        mesh: a mesh to split members over (``K`` must be a multiple of its devices).
        loss, divergence_threshold, member_batches, labels, compiler_options, progress:
            as in :class:`Population`.
        eval_fn, eval_every: as in :class:`Population`: ``metric`` may be an ``eval_fn``
            metric computed every ``eval_every`` steps; an exploit ranks by its latest value
            (make ``interval`` a multiple of ``eval_every`` to rank on a fresh one).
        checkpoint_dir: with ``checkpoint_every``: an orbax checkpoint every that many steps;
            if the directory already holds one of this run, training resumes from it (the
            first ``step`` batches of ``batches`` are skipped) and ends bit-identical.
        checkpoint_every: steps between checkpoints.
        rank: what an exploit ranks by. ``"value"`` (default): ``metric`` at that step.
            ``"predicted"``: each slot's predicted final ``metric`` under its own schedule, as
            :func:`successive_halving`'s ``rank="predicted"``: the law
            :math:`L_0 + A\,S^{-\alpha}` (:math:`S` the LR area, the applied LR summed) fitted
            exactly to the second half of the slot's curve, inside the compiled step, and
            evaluated at the area spent so far plus the area ``planned_lr`` gives the slot's
            current config for the steps left. A slot's curve is its lineage's (copied with its
            state at an exploit), kept every ``stride`` steps in 64 entries (``stride`` the
            smallest multiple of ``eval_every``, with an ``eval_fn``, that fits ``num_steps``).
            Where the prediction is not usable, a slot is ranked by its value now times the
            median predicted remaining gain (prediction / law now) of the slots whose is, so
            both are on one scale: fewer than 7 finite entries so far (the law has 3
            parameters, fitted to the last half), a failed fit, a non-positive prediction or
            value, or a value now off the law by more than a factor
            :math:`1 + \max(0.25, 3\,\text{rms})` either way (rms: the fit's relative
            residuals; the metric just jumped); a diverged slot ranks last. Needs
            ``mode="min"`` (a positive loss) and ``planned_lr``. Against ``"value"``
            (``python -m experiments.pbt_study --ranking``: the benchmark's task, a digits MLP
            with warmups and the demo, 3 seeds each) it ended better on 6 of 9 task-seeds, by
            0.07% to 11% (geometric mean 0.98), worse on 2 (by up to 4.3%), and the count
            moved with details of the fallback rule, so ``"value"`` is the default.
        planned_lr: with ``rank="predicted"``: ``(config, step) -> LR`` of one member at the
            0-based ``step``, in the units of the applied LR, e.g.
            ``lambda c, t: c["schedule"](t)``. It is traced into the compiled step (as
            ``step_fn`` is), so pass the same function object to reuse the program: a new
            lambda per call compiles again.

    Returns:
        A :class:`PBTResult` (final configurations, metrics ``[K, T]``, lineage, LR history).
        With ``rank="predicted"``, ``info["predicted"]`` ``[rounds, K]`` each exploit's
        predictions (NaN where a slot was not ranked by one) and ``info["rank_fallbacks"]``
        the live slots ranked by their (scaled) value at each exploit.

    Raises:
        ValueError: before anything compiles: ``K < 2``, ``fraction`` outside ``(0, 0.5]``,
            a bad ``interval``/``num_steps``/``space``/``perturb``/``resample_probability``,
            ``metric`` or ``lr`` not returned by ``step_fn``, a ``space`` leaf that
            ``init_fn`` puts unchanged into the state and ``step_fn`` then changes, ``K`` not a
            multiple of the mesh's devices, or a checkpoint in ``checkpoint_dir`` from another run.

    Warns:
        UserWarning: with ``eval_fn``, ``interval`` not a multiple of ``eval_every`` (an
            exploit would rank by a stale evaluation), or ``eval_every`` longer than the run;
            with ``rank="predicted"``, when no exploit can see the 7 curve entries a law needs.

    Examples:
        >>> import jax, jax.numpy as jnp, numpy as np, jaxlr
        >>> def step_fn(w, cfg, target):
        ...     w = w - cfg["lr"] * 2.0 * (w - target)
        ...     return w, {"loss": (w - target) ** 2, "lr": cfg["lr"]}
        >>> res = jaxlr.sweep.pbt(
        ...     lambda cfg, key: jnp.zeros(()), step_fn,
        ...     jaxlr.sweep.grid(lr=[0.01, 0.02, 0.05, 0.1]),
        ...     (np.float32(3.0) for _ in range(20)), key=jax.random.key(0), num_steps=20,
        ...     interval=5, metric="loss", space={"lr": ("log_uniform", 1e-3, 0.5)},
        ...     progress=False)
        >>> s = res.schedule()              # the winner's learned LR, step by step
        >>> bool(np.allclose([s(t) for t in range(20)], res.lr_path()))
        True

    References:
        Jaderberg et al., Population Based Training of Neural Networks, 2017.
    """
    c = Checker("pbt")
    k = size(configs, fn="pbt")
    if k < 2:
        c.fail(f"the population needs at least 2 members, got K={k}")
    for name, v in (("num_steps", num_steps), ("interval", interval)):
        if not _engine.is_int(v) or v < 1:
            c.fail(f"{name} must be an int >= 1, got {name}={v!r}")
    if (
        isinstance(fraction, bool)
        or not isinstance(fraction, (int, float, np.number))
        or not 0 < fraction <= 0.5
    ):
        c.fail(f"fraction must be in (0, 0.5], got fraction={fraction!r}")
    if (
        isinstance(resample_probability, bool)
        or not isinstance(resample_probability, (int, float, np.number))
        or not 0 <= resample_probability <= 1
    ):
        c.fail(
            f"resample_probability must be in [0, 1], got "
            f"resample_probability={resample_probability!r}"
        )
    if isinstance(perturb, np.ndarray) and perturb.ndim == 1:
        perturb = tuple(perturb.tolist())
    if (
        isinstance(perturb, (str, bytes))
        or not isinstance(perturb, Sequence)
        or len(perturb) != 2
        or not all(
            isinstance(f, (int, float, np.integer, np.floating))
            and not isinstance(f, bool)
            and np.isfinite(f)
            and f > 0
            for f in perturb
        )
    ):
        c.fail(f"perturb must be two factors > 0, got perturb={perturb!r}")
    check_mode(c, mode)
    check_metric(c, metric)
    check_rank(c, rank, planned_lr, mode, configs, num_steps)
    if lr is not None and not isinstance(lr, str) and not callable(lr):
        c.fail(
            f"lr must be the name of the metric holding the applied LR, a function (state, "
            f"config) -> LR of one member, or None (read by jaxlr.transforms.current_lr), got "
            f"lr={lr!r}"
        )
    if eval_fn is not None and _engine.is_int(eval_every) and eval_every >= 1:
        if interval % eval_every:
            warnings.warn(
                f"pbt: interval={interval} is not a multiple of eval_every={eval_every}: an "
                f"exploit ranks by an evaluation up to {eval_every - 1} steps old; make interval "
                f"a multiple of eval_every",
                UserWarning,
                stacklevel=2,
            )
    space = _space(c, space, configs)
    if mesh is not None:
        _, devices = _engine.member_sharding(c, mesh)
        if k % devices:
            c.fail(
                f"K={k} must be a multiple of the mesh's {devices} devices (no padded "
                f"members may take part in the selection)"
            )
    try:
        batches = iter(batches)
    except TypeError:
        c.fail(f"batches must be an iterable of batches, got batches={batches!r}")
    peeked = []

    def first_batch():  # drawn last, after every argument check: a refusal consumes nothing
        peeked.append(next(batches))
        return peeked[0]

    try:
        held = _held(c, init_fn, step_fn, configs, space, first_batch, member_batches)
    except StopIteration:
        held = ()  # no batch at all: Population.train says so
    batches = itertools.chain(peeked, batches)
    policy = _Exploit(
        name="pbt",
        requires=(("metric", metric),) + ((("lr", lr),) if isinstance(lr, str) else ()),
        k=k,
        n=max(1, math.floor(fraction * k)),
        metric=metric,
        mode=mode,
        space=space,
        lr=lr,
        perturb=(float(perturb[0]), float(perturb[1])),
        p=float(resample_probability),
        interval=interval,
        num_steps=num_steps,
        held=held,
        rank=rank,
        planned_lr=planned_lr,
        stride=_stride(num_steps, eval_every if eval_fn is not None else 1),
    )
    last = (num_steps - 1) // interval * interval  # the last exploit step
    if rank == "predicted" and last // policy.stride < 7:
        warnings.warn(
            f"pbt: rank='predicted' cannot act: a slot's curve holds an entry every "
            f"{policy.stride} steps and the last exploit (step {last}) sees "
            f"{last // policy.stride} of the 7 its law needs, so every exploit ranks by "
            f"value; lengthen num_steps or evaluate more often (eval_every)",
            UserWarning,
            stacklevel=2,
        )
    pop = Population(
        init_fn,
        step_fn,
        configs,
        key=key,
        mesh=mesh,
        loss=loss,
        divergence_threshold=divergence_threshold,
        member_batches=member_batches,
        labels=labels,
        compiler_options=compiler_options,
        progress=progress,
        policy=policy,
        eval_fn=eval_fn,
        eval_every=eval_every,
        total_steps=num_steps,
    )
    setting = (policy.k, policy.n, metric, mode, policy.space, tuple(perturb), policy.p)
    setting += ("predicted",) if rank == "predicted" else ()  # value: as before the option
    pop.fingerprint_extra = {"pbt": repr((*setting, interval, num_steps))}
    pop.train(
        batches,
        num_steps,
        steps_per_call=steps_per_call or interval,
        checkpoint_dir=checkpoint_dir,
        checkpoint_every=checkpoint_every,
    )
    carry = pop.host_carry()
    metrics, extra = pop.host_metrics()
    lineage = np.asarray(extra["parents"])
    if "lr" in extra:  # read from the members' states by the driver
        metrics = {**metrics, "lr": np.swapaxes(np.asarray(extra["lr"]), 0, 1)}
    names = _names(configs)
    perturbed = {names[pos]: np.asarray(h) for (pos, _), h in zip(space, extra["space"])}
    info = {**pop.info(), "fraction": fraction, "interval": interval, "rank": rank}
    if rank == "predicted":
        rounds = np.arange(interval, num_steps, interval) - 1  # the exploit steps, 0-based
        predicted = np.asarray(extra["predicted"])[rounds]
        fallbacks = np.asarray(extra["by_value"])[rounds].sum(1)
        info.update(predicted=predicted, rank_fallbacks=fallbacks.tolist())
    died = np.asarray(extra["replaced_diverged"])
    divergences = [(int(died[t, i]), int(i)) for t, i in zip(*np.nonzero(died >= 0))]
    divergences += [(int(carry.bad_step[i]), int(i)) for i in np.flatnonzero(~carry.alive)]
    return PBTResult(
        carry.config,
        metrics,
        diverged=~carry.alive,
        diverged_step=carry.bad_step,
        loss=loss,
        labels=labels,
        info=info,
        member_steps=k * num_steps,
        states=carry.state,
        lineage=lineage,
        divergences=sorted(divergences),
        metric=metric,
        lr=lr if isinstance(lr, str) else "lr",
        mode=mode,
        perturbed=perturbed,
        lr_paths=_lr_paths(configs, perturbed),
    )
