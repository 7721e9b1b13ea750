"""Step-driven populations: ``K`` member states advanced by one compiled, vmapped step function."""

from __future__ import annotations

import dataclasses
import time
import warnings
from collections.abc import Callable, Iterable, Mapping, Sequence
from functools import partial
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh

from jaxlr._src.divergence import healthy
from jaxlr._src.tree import tree_where
from jaxlr._src.validate import Checker, key_data
from jaxlr.sweep import _checkpoint, _engine
from jaxlr.sweep._carry import Carry
from jaxlr.sweep._configs import leaf_name, size, unwrap
from jaxlr.sweep._policy import Policy
from jaxlr.sweep._result import SweepResult


class PopulationResult(SweepResult):
    r"""A :class:`SweepResult` of a population: metrics per step, ``[K, T, ...]``.

    ``diverged`` / ``diverged_step`` come from the engine, which checks every step: a member
    whose loss is NaN/inf (or above the threshold) or whose state holds a NaN/inf is frozen at
    its last healthy state, and its metrics after that step are NaN.

    Attributes:
        member_steps: steps actually trained, summed over members (work done).
        rungs: successive halving only: per member, the list of ``(step, metric)`` it reached.
        lineage: PBT only: ``[T, K]`` int, slot ``i``'s content after step ``t`` came from slot
            ``lineage[t, i]`` (the identity except at exploit steps).
        states: the members' training states where each stopped (host NumPy, leaves
            ``[K, ...]``; typed PRNG keys as their key data), e.g. to evaluate the selected
            member on a test split; ``None`` when not recorded.
        rank_metric, rank_mode: the ``metric`` and ``mode`` the search ranked by (PBT,
            successive halving; given as ``metric=``, ``mode=``): the default of
            :meth:`best`, the tables' order and the plots.

    Examples:
        >>> import numpy as np, jaxlr
        >>> r = jaxlr.sweep.PopulationResult(
        ...     {"lr": np.array([0.1, 1.0])}, {"loss": np.array([[1.0, 0.5], [1.0, np.nan]])},
        ...     diverged=np.array([False, True]), diverged_step=np.array([-1, 1]))
        >>> r.diverged_step.tolist(), r.best("loss")["lr"]
        ([-1, 1], 0.1)
    """

    def __init__(
        self,
        configs: Any,
        metrics: Any,
        *,
        diverged: np.ndarray,
        diverged_step: np.ndarray,
        loss: str | None = "loss",
        labels: Mapping[str, Sequence[str]] | None = None,
        info: Mapping[str, Any] | None = None,
        member_steps: int | None = None,
        rungs: list | None = None,
        lineage: np.ndarray | None = None,
        states: Any = None,
        metric: str | None = None,
        mode: str = "min",
    ):
        super().__init__(configs, metrics, loss=None, labels=labels, info=info)
        self.loss = loss
        self.rank_metric, self.rank_mode = metric, mode
        self.diverged = np.asarray(diverged, bool)
        self.diverged_step = np.asarray(diverged_step, int)
        self.member_steps = member_steps
        self.rungs = rungs
        self.lineage = lineage
        self.states = states

    def table_order(self) -> np.ndarray:
        """Member indices in table order. Successive halving: the members that went furthest
        first, each rung's members by the metric they were ranked by there (so the winner
        leads, then the members cut at the last rung, best first, ...); otherwise as
        :meth:`SweepResult.table_order`.

        Examples:
            >>> import numpy as np, jaxlr
            >>> r = jaxlr.sweep.PopulationResult(
            ...     {"lr": np.array([0.1, 0.2, 0.3])},
            ...     {"loss": np.array([[2.0, np.nan], [1.0, 0.5], [3.0, np.nan]])},
            ...     diverged=np.zeros(3, bool), diverged_step=np.full(3, -1),
            ...     rungs=[[(1, 2.0)], [(1, 1.0), (2, 0.5)], [(1, 3.0)]])
            >>> r.table_order().tolist()
            [1, 0, 2]
        """
        if self.rungs is None:
            return super().table_order()
        mode = self.info.get("mode", "min")

        def key(i):
            step, value = self.rungs[i][-1]
            v = value if mode == "min" else -value
            bad = self.diverged[i] or not np.isfinite(v)
            return (-step, bad, v if not bad else 0.0, i)

        return np.asarray(sorted(range(len(self)), key=key), int)


def _check_key(c: Checker, key: Any) -> jax.Array:
    """A typed PRNG key: a typed key as given, raw key data (``PRNGKey``) wrapped; anything else
    refused by the one key check (``validate.key_data``)."""
    data = key_data(c.fn, key)
    if isinstance(key, jax.Array) and jax.dtypes.issubdtype(key.dtype, jax.dtypes.prng_key):
        return key
    if data.shape != (2,):
        c.fail(f"raw key data of {data.shape[0]} words: pass a typed key (jax.random.key)")
    return jax.random.wrap_key_data(data)


@partial(jax.jit, static_argnums=1, compiler_options={"xla_backend_optimization_level": 0})
def _split_data(key: jax.Array, n: int) -> jax.Array:
    """``jax.random.key_data(jax.random.split(key, n))`` as one program, compiled once per ``n``
    and key type. It runs once per population, so its compile is all it costs: without LLVM's
    optimizations (the same bits: integer hashing) and with no typed-key indexing (each index
    is another program) it compiles in half the time of the eager split and slices."""
    return jax.random.key_data(jax.random.split(key, n))


def _check_state(fn: str, before: Any, after: Any) -> None:
    """Trace-time check: ``step_fn`` returns a state shaped like the one it was given."""
    c = Checker(fn)
    if jax.tree.structure(before) != jax.tree.structure(after):
        c.fail(
            f"step_fn must return a state of the structure init_fn gave (members carry it "
            f"from step to step), got {jax.tree.structure(after)} for "
            f"{jax.tree.structure(before)}"
        )
    for (path, a), b in zip(
        jax.tree_util.tree_flatten_with_path(before)[0], jax.tree.leaves(after)
    ):
        if a.shape != b.shape or a.dtype != b.dtype:
            c.fail(
                f"step_fn must keep each state leaf's shape and dtype, got "
                f"state{jax.tree_util.keystr(path)}: {b.dtype}{list(b.shape[1:])} for "
                f"{a.dtype}{list(a.shape[1:])}"
            )


def _stack(batches: list) -> Any:
    return jax.tree.map(lambda *xs: np.stack([np.asarray(x) for x in xs]), *batches)


def _check_memory(c: Checker, policy: Policy, chunk: int) -> None:
    """``policy.memory(c)`` must be NumPy-like arrays with a leading member axis ``c``: the
    population pads, shards, selects and concatenates them by members."""
    for path, leaf in jax.tree_util.tree_flatten_with_path(policy.memory(chunk))[0]:
        shape = np.shape(leaf)
        if not shape or shape[0] != chunk:
            c.fail(
                f"policy.memory(k) must return arrays with a leading member axis of k={chunk}, "
                f"got memory{jax.tree_util.keystr(path)} of shape {shape} (hold population-"
                f"level values per member, or in the policy's fields)"
            )


def _check_policy(c: Checker, policy: Policy) -> None:
    """The compile cache keys a policy by value: its class must be a frozen dataclass of its own
    whose fields all take part in equality, and its value hashable; anything else could be served
    another policy's program."""
    cls = type(policy)
    params = cls.__dict__.get("__dataclass_params__")
    if params is None or not params.frozen:
        c.fail(
            f"policy must be an instance of a frozen dataclass (decorate {cls.__name__} with "
            f"@dataclasses.dataclass(frozen=True)), got policy={policy!r}"
        )
    hidden = [f.name for f in dataclasses.fields(policy) if not f.compare]
    if hidden:
        c.fail(
            f"policy fields must all take part in equality (the compiled program is shared by "
            f"equal policies), got compare=False fields {hidden} in policy={policy!r}"
        )
    try:
        hash(policy)
    except TypeError as e:
        c.fail(
            f"policy must be hashable (its fields are part of the compile cache key; hold "
            f"arrays as tuples or in the carry), got policy={policy!r}: {e}"
        )


class Population:
    r"""``K`` members trained step by step from Python: one compiled, vmapped step for all.

    Member ``i`` starts from ``state_i = init_fn(config_i, key_i)`` (``key_i`` is
    ``jax.random.split(key, K + 1)[i + 1]``; the first is the population's own, for a
    policy's randomness) and each step computes

    .. math:: (\text{state}_i, m_i) \leftarrow \text{step\_fn}(\text{state}_i, \text{config}_i,
              \text{batch}), \quad i = 0..K-1

    as one ``vmap`` over members, ``n`` steps per compiled call (``lax.scan``). The batch comes
    from any Python iterator (NumPy arrays), shared by every member or, with
    ``member_batches=True``, with a leading member axis ``K``. Members are split into chunks of
    ``chunk_size`` (memory) and over a ``mesh``'s devices (the member axis), exactly as in
    :func:`jaxlr.sweep.run`, whose engine this shares.

    Divergence isolation: after every step, a member whose ``loss`` metric is NaN/inf (or above
    ``divergence_threshold``) or whose new state holds a NaN/inf keeps its previous state
    (frozen) for the rest of training, and its first bad step is recorded; members never read
    each other's state, so nothing is fed NaN.

    Compiled programs are kept per step function (a bound method: per object and method), so a
    second population with the same functions and shapes compiles nothing. What the functions
    read from their object or closure is captured when the program is traced, as in any jitted
    function: rebinding an attribute (``task.x = new``) is seen (a new program), a value changed
    in place (an array's or dict's entries, a class attribute) is not. Pass data that changes
    through the configs or the batches, or use a new object.

    Args:
        init_fn: ``(config, key) -> state`` for one member; jittable.
        step_fn: ``(state, config, batch) -> (state, metrics)`` for one member; ``metrics`` a
            dict of arrays with the ``loss`` entry (the one step-function convention of
            ``jaxlr.sweep`` and ``jaxlr.auto``: ``docs/sweeps.md``, "The step function").
        configs: a pytree whose leaves have a leading axis ``K`` (e.g. :func:`grid`; stacked
            schedules; string choices as a :class:`Choice`, which ``init_fn``, ``step_fn`` and
            ``eval_fn`` receive as its index).
        key: a PRNG key; member ``i`` is initialized with
            ``jax.random.split(key, K + 1)[i + 1]``.
        mesh: a ``jax.sharding.Mesh`` to split members over, or ``None``.
        chunk_size: members per compiled call; ``None`` runs all at once.
        loss: the metric checked for divergence; ``None`` checks only the state.
        divergence_threshold: a loss above this also counts as diverged.
        member_batches: batches carry a leading member axis ``K`` (one batch per member).
        labels: names for integer-coded configuration axes, for tables and plots.
        compiler_options: XLA options (``jax.jit(compiler_options=)``).
        progress: show a tqdm bar over steps in :meth:`train`, labelled with the search's name
            (the policy's ``name``).
        total_steps: the training length planned over all :meth:`train` calls (a search that
            trains rung by rung, or report by report): one bar runs across the calls up to it.
            ``None``: one bar per :meth:`train` call.
        eval_fn: ``(state, config) -> metrics`` for one member (a dict, e.g. a validation loss
            on held-out data), computed after the first step and then every ``eval_every``
            steps, under ``lax.cond`` (the other steps skip it). Its metrics join ``step_fn``'s
            at every step holding the latest evaluation (NaN before the first), so ranking
            (halving's rungs, PBT's exploit, :meth:`SweepResult.best`) uses the latest value.
        eval_every: steps between evaluations (>= 1).
        policy: what happens between steps inside the compiled program (a
            :class:`Policy`, e.g. PBT's exploit and explore); ``None``: nothing.

    Raises:
        ValueError: before anything compiles, for non-callable functions, configs with
            different leading axes, a bad ``key``, ``chunk_size``, ``mesh`` or ``policy``; in
            :meth:`train`, for a bad ``num_steps``/``steps_per_call``, a batch whose member
            axis is not ``K``, or a ``step_fn`` whose metrics lack ``loss``.

    Examples:
        >>> import jax, jax.numpy as jnp, numpy as np, jaxlr
        >>> init_fn = lambda cfg, key: jnp.zeros(())          # w = 0
        >>> def step_fn(w, cfg, batch):                          # SGD on (w - target)^2
        ...     loss = (w - batch) ** 2
        ...     return w - cfg["lr"] * 2.0 * (w - batch), {"loss": loss}
        >>> pop = jaxlr.sweep.Population(init_fn, step_fn, jaxlr.sweep.grid(lr=[0.1, 0.5, 30.0]),
        ...                              key=jax.random.key(0), progress=False)
        >>> res = pop.train((np.float32(3.0) for _ in range(20)), num_steps=20).result()
        >>> res.diverged.tolist(), res.diverged_step.tolist(), res.best("loss")["lr"]
        ([False, False, True], [-1, -1, 11], 0.5)

    Multi-host: after ``jax.distributed.initialize()``, build the mesh from ``jax.devices()``
    and run the same code in every process with the same batches; :meth:`result` and
    :meth:`host_carry` gather from all processes, so every process must call them.

    References:
        Bradbury et al., JAX: composable transformations of Python+NumPy programs, 2018.
    """

    _fn = "Population"

    def __init__(
        self,
        init_fn: Callable[[Any, jax.Array], Any],
        step_fn: Callable[[Any, Any, Any], tuple[Any, Any]],
        configs: Any,
        *,
        key: jax.Array,
        mesh: Mesh | None = None,
        chunk_size: int | None = None,
        loss: str | None = "loss",
        divergence_threshold: float | None = None,
        member_batches: bool = False,
        labels: Mapping[str, Sequence[str]] | None = None,
        compiler_options: Mapping[str, Any] | None = None,
        progress: bool = True,
        policy: Policy | None = None,
        total_steps: int | None = None,
        eval_fn: Callable[[Any, Any], Any] | None = None,
        eval_every: int = 1,
    ):
        if policy is not None and not isinstance(policy, Policy):
            Checker(self._fn).fail(
                f"policy must be a jaxlr.sweep.Policy or None, got policy={policy!r}"
            )
        if policy is not None:
            _check_policy(Checker(self._fn), policy)
        self.policy = policy = policy or Policy()
        self._fn = policy.name  # the public function driving this population, for errors
        c = Checker(self._fn)
        for name, fn in (("init_fn", init_fn), ("step_fn", step_fn)):
            if not callable(fn):
                c.fail(f"{name} must be callable, got {name}={fn!r}")
        self.num_members = k = size(configs, fn=self._fn)
        self.sharding, self.devices = _engine.member_sharding(c, mesh)
        self.chunk = _engine.check_chunk_size(c, chunk_size, k, self.devices)
        _check_memory(c, policy, self.chunk)
        if divergence_threshold is not None:
            c.finite("divergence_threshold", divergence_threshold)
        self.init_fn, self.step_fn, self.loss = init_fn, step_fn, loss
        self.threshold = divergence_threshold
        self.member_batches = bool(member_batches)
        self.labels, self.options, self.progress = labels, compiler_options, progress
        if total_steps is not None and (not _engine.is_int(total_steps) or total_steps < 1):
            c.fail(f"total_steps must be an int >= 1 or None, got total_steps={total_steps!r}")
        self.total_steps = total_steps
        if eval_fn is not None and not callable(eval_fn):
            c.fail(f"eval_fn must be callable or None, got eval_fn={eval_fn!r}")
        if not _engine.is_int(eval_every) or eval_every < 1:
            c.fail(f"eval_every must be an int >= 1, got eval_every={eval_every!r}")
        if eval_fn is None and eval_every != 1:
            c.fail(f"eval_every={eval_every} needs an eval_fn to run every eval_every steps")
        self.eval_fn, self.eval_every = eval_fn, int(eval_every)
        self._bar = None  # the open progress bar when it runs across train() calls
        self.configs = jax.tree.map(np.asarray, configs)
        self.num_chunks = -(-k // self.chunk)
        self.padded = self.num_chunks * self.chunk
        self.history: list = []  # per call: [(metrics, extra) per chunk], device arrays
        self.trace_seconds = self.compile_seconds = self.run_seconds = 0.0
        self.mesh = mesh
        self._steps = 0
        self._restored = False  # history loaded from a checkpoint, not yet in step_fn's types
        self._executables: dict = {}
        self.fingerprint_extra: dict = {}
        self._key_impls: list | None = None
        key = _check_key(c, key)
        self._impl = str(jax.random.key_impl(key))
        split = np.asarray(_split_data(key, k + 1))  # the population's key, then the members'
        self._pkey, mkeys = split[0], split[1:]
        self._pending = list(
            zip(
                _engine.chunks_of(_engine.pad_members(self.configs, self.padded), self.chunk),
                _engine.chunks_of(_engine.pad_members(mkeys, self.padded), self.chunk),
            )
        )
        # One member's init arguments: the state's shapes come from them before anything runs.
        self._member_args = jax.tree.map(lambda a: a[0], (self.configs, mkeys))
        self.carries = None  # built on the first train(), after the step function is checked

    def _load(self, start: Carry) -> None:
        """Puts an unpadded host carry on the devices (padded and chunked like the members)."""
        padded = _engine.pad_members(start._replace(step=None, key=None), self.padded)
        self.carries = [
            self._put_carry(part._replace(step=start.step, key=start.key))
            for part in _engine.chunks_of(padded, self.chunk)
        ]
        self._steps = int(np.asarray(start.step))

    def _load_history(self, metrics: Any, extra: Any) -> None:
        """Host metrics ``[K, T, ...]`` / extra ``[T, K, ...]`` -> the per-call history format."""
        m = jax.tree.map(lambda a: np.swapaxes(a, 0, 1), metrics)  # [K, T] -> [T, K]
        both = jax.tree.map(lambda a: np.swapaxes(a, 0, 1), (m, extra))  # members first to pad
        parts = _engine.chunks_of(_engine.pad_members(both, self.padded), self.chunk)
        self.history = [[jax.tree.map(lambda a: np.swapaxes(a, 0, 1), p) for p in parts]]
        self._restored = True  # in the checkpoint's containers until the next call's output

    def _retype_history(self, outs: list) -> None:
        """Restored metrics come back in plain containers (dicts, lists): rebuild them in the
        step's own (a NamedTuple, a tuple), matching leaves by name (``loss``, ``0.lr``)."""
        self._restored = False
        treedef = jax.tree.structure(outs[0])
        names = [leaf_name(p) for p, _ in jax.tree_util.tree_flatten_with_path(outs[0])[0]]
        parts = []
        for part in self.history[0]:
            by_name = {leaf_name(p): a for p, a in jax.tree_util.tree_flatten_with_path(part)[0]}
            if sorted(by_name) != sorted(names):
                Checker(self._fn).fail(
                    f"step_fn's metrics {sorted(names)} differ from the checkpoint's "
                    f"{sorted(by_name)}"
                )
            parts.append(jax.tree.unflatten(treedef, [by_name[n] for n in names]))
        self.history[0] = parts

    def abstract_state(self) -> Any:
        """The shapes of one member's state (``jax.eval_shape`` of ``init_fn``; nothing runs)."""
        if self.carries is not None:
            return jax.eval_shape(lambda s: jax.tree.map(lambda a: a[0], s), self.carries[0].state)
        impl, init_fn = self._impl, self.init_fn
        return jax.eval_shape(
            lambda cf, k: init_fn(unwrap(cf), jax.random.wrap_key_data(k, impl=impl)),
            *self._member_args,
        )

    def _host_state_struct(self) -> Any:
        """The shapes of the members' state as :meth:`host_carry` holds it: leaves ``[K, ...]``,
        typed PRNG keys as their key data (NumPy has no key dtype)."""
        k = self.num_members
        return jax.tree.map(
            lambda a: jax.ShapeDtypeStruct((k, *a.shape), a.dtype),
            _engine.host_struct(self.abstract_state()),
        )

    def evals_struct(self) -> Any:
        """The shapes of the members' latest evaluation (``eval_fn``'s metrics, leaves
        ``[K, ...]``), ``()`` without an ``eval_fn``."""
        if self.eval_fn is None:
            return ()
        k, eval_fn = self.num_members, self.eval_fn
        one = jax.eval_shape(
            lambda s, c: eval_fn(s, unwrap(c)),
            self.abstract_state(),
            jax.tree.map(lambda a: a[0], self.configs),
        )
        return jax.tree.map(lambda a: jax.ShapeDtypeStruct((k, *a.shape), a.dtype), one)

    def _impls(self) -> list:
        """Per state leaf: the PRNG implementation of a typed key leaf, else None."""
        if self._key_impls is None:
            self._key_impls = _engine.key_impls(self.abstract_state())
        return self._key_impls

    def _host_start(self, cfg, state, evals=()) -> Carry:
        n = self.chunk
        return Carry(
            state,
            cfg,
            np.ones(n, bool),
            np.full(n, -1, np.int32),
            np.int32(0),
            self._pkey,
            evals,
            self.policy.memory(n),
        )

    def _no_evals(self, cfg, abstract_state) -> Any:
        """The evals before the first evaluation: NaN floats (zeros otherwise), ``[c, ...]``."""
        if self.eval_fn is None:
            return ()
        eval_fn = self.eval_fn
        shapes = jax.eval_shape(jax.vmap(lambda s, c: eval_fn(s, unwrap(c))), abstract_state, cfg)
        if not isinstance(shapes, Mapping):
            Checker(self._fn).fail(
                f"eval_fn must return a dict of metrics, got {type(shapes).__name__}"
            )
        return jax.tree.map(
            lambda a: np.full(
                a.shape, np.nan if jnp.issubdtype(a.dtype, jnp.inexact) else 0, a.dtype
            ),
            shapes,
        )

    def _ensure(self, part) -> None:
        """First call: trace the step (its errors come before anything compiles), then init."""
        if self.carries is not None:
            return
        cfg, kd = self._pending[0]
        impl, init_fn = self._impl, self.init_fn
        abstract = jax.eval_shape(
            jax.vmap(lambda cf, k: init_fn(unwrap(cf), jax.random.wrap_key_data(k, impl=impl))),
            cfg,
            kd,
        )
        evals = self._no_evals(cfg, abstract)
        self._compiled(self._host_start(cfg, abstract, evals), part)
        carries = []
        for cfg, kd in self._pending:
            state = self._init(cfg, kd, impl)
            host = self._host_start(cfg, None, evals)
            carries.append(self._put_carry(host)._replace(state=state))
        self.carries = carries

    # -- compiled pieces ---------------------------------------------------------------------
    def _init(self, cfg, kd, impl):
        init_fn = self.init_fn

        def build():
            return jax.vmap(
                lambda cf, k: init_fn(unwrap(cf), jax.random.wrap_key_data(k, impl=impl))
            )

        s = self.sharding
        compiled, t, cs = _engine.compile_cached(
            init_fn,
            ("init", impl, s),
            build,
            (_engine.structs(cfg, s), _engine.structs(kd, s)),
            self.options,
            (s, s) if s is not None else None,
            s,
        )
        self._account(t, cs)
        return compiled(_engine.put(cfg, self.sharding), _engine.put(kd, self.sharding))

    def _account(self, t, cs):
        self.trace_seconds += t or 0.0
        self.compile_seconds += cs or 0.0

    def _program(self) -> Callable:
        step_fn, loss, threshold = self.step_fn, self.loss, self.threshold
        member_batches, policy = self.member_batches, self.policy
        eval_fn, every = self.eval_fn, self.eval_every
        fn, impl = self._fn, self._impl

        def one(carry: Carry, batch):
            in_axes = (0, 0, 0 if member_batches else None)
            state, metrics = jax.vmap(step_fn, in_axes=in_axes)(
                carry.state, unwrap(carry.config), batch
            )
            _check_state(fn, carry.state, state)
            _engine.check_metrics(fn, "step_fn", metrics, loss)
            ok = healthy(None if loss is None else metrics[loss], state, threshold)
            ok &= carry.alive
            newly = carry.alive & ~ok
            # A select over every state leaf costs a pass over the members' states; it is needed
            # only on a step where some member went bad, so a real branch skips it otherwise.
            state = jax.lax.cond(
                jnp.all(ok),
                lambda new, old: new,
                lambda new, old: tree_where(ok, new, old),
                state,
                carry.state,
            )
            evals = carry.evals
            if eval_fn is not None:
                # An unbatched predicate: a real branch, so the other steps skip the evaluation.
                due = (carry.step == 0) | ((carry.step + 1) % every == 0)
                evals = jax.lax.cond(
                    due,
                    lambda s, c: jax.vmap(lambda s1, c1: eval_fn(s1, unwrap(c1)))(s, c),
                    lambda s, c: carry.evals,
                    state,
                    carry.config,
                )
                if not isinstance(metrics, Mapping) or set(metrics) & set(evals):
                    Checker(fn).fail(
                        f"with eval_fn, step_fn must return a dict of metrics whose names differ "
                        f"from eval_fn's {sorted(evals)}, got "
                        f"{sorted(metrics) if isinstance(metrics, Mapping) else metrics}"
                    )
                metrics = {**metrics, **evals}
            _engine.check_metrics(fn, "step_fn", metrics, None, policy.requires)
            # Frozen members keep their last healthy state; their metrics after the bad step
            # are NaN (they did not train).
            metrics = jax.tree.map(
                lambda m: (
                    jnp.where(carry.alive.reshape((-1,) + (1,) * (m.ndim - 1)), m, jnp.nan)
                    if jnp.issubdtype(m.dtype, jnp.inexact)
                    else m
                ),
                metrics,
            )
            carry = carry._replace(
                state=state,
                alive=ok,
                bad_step=jnp.where(newly, carry.step, carry.bad_step),
                step=carry.step + 1,
                evals=evals,
            )
            carry, extra = policy.between(carry, metrics)
            return carry, (metrics, extra)

        def call(carry: Carry, batches):
            carry = carry._replace(key=jax.random.wrap_key_data(carry.key, impl=impl))
            carry, out = jax.lax.scan(one, carry, batches)
            return carry._replace(key=jax.random.key_data(carry.key)), out

        return call

    def _carry_shardings(self, carry):
        s = self.sharding
        if s is None:
            return None
        r = _engine.replicated(s)
        return Carry(
            jax.tree.map(lambda _: s, carry.state),
            jax.tree.map(lambda _: s, carry.config),
            s,
            s,
            r,
            r,
            jax.tree.map(lambda _: s, carry.evals),
            jax.tree.map(lambda _: s, carry.memory),
        )

    def _batch_sharding(self):
        if self.sharding is None:
            return None
        return (
            _engine.behind(self.sharding, 1)
            if self.member_batches
            else _engine.replicated(self.sharding)
        )

    def _compiled(self, carry, batches):
        s = self.sharding
        cs, bs = self._carry_shardings(carry), self._batch_sharding()
        if s is None:
            args = (_engine.structs(carry, None), _engine.structs(batches, None))
            in_sh = out_sh = None
        else:
            args = (
                jax.tree.map(
                    lambda a, sh: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=sh), carry, cs
                ),
                _engine.structs(batches, bs),
            )
            # Outputs per step are [n, c, ...]: the member axis behind the step axis.
            in_sh, out_sh = (cs, bs), (cs, _engine.behind(s, 1))
        compiled, t, c = _engine.compile_cached(
            self.step_fn,
            (
                "population",
                self.loss,
                self.threshold,
                self.member_batches,
                self.policy,
                s,
                self.eval_every,
                _engine.identity(self.eval_fn),
                self._impl,  # the population key's generator (rbg and unsafe_rbg: same shape)
            ),
            self._program,
            args,
            self.options,
            in_sh,
            out_sh,
            donate_argnums=(0,),  # the carry is never read again: XLA updates it in place
        )
        self._account(t, c)
        return compiled

    # -- Python side -------------------------------------------------------------------------
    def _check_batch(self, c: Checker, batch, index: int, first: tuple | None) -> tuple:
        """Checks batch ``index`` (its member axis; the structure and shapes of ``first``, the
        first batch of the same compiled call); returns its structure and shapes."""
        leaves = jax.tree_util.tree_flatten_with_path(batch)[0]
        if not leaves:
            c.fail(f"batches must yield pytrees of arrays, got batch={batch!r}")
        if self.member_batches:
            for path, leaf in leaves:
                shape = np.shape(leaf)
                if not shape or shape[0] != self.num_members:
                    c.fail(
                        f"batches must have a leading member axis of K={self.num_members} "
                        f"with member_batches=True, got batch {index}'s "
                        f"batch{jax.tree_util.keystr(path)} of shape {shape}"
                    )
        mine = (jax.tree.structure(batch), [np.shape(leaf) for _, leaf in leaves])
        if first is not None and mine != first[1]:
            if mine[0] != first[1][0]:
                what = f"structure {mine[0]}, where batch {first[0]} had {first[1][0]}"
            else:
                j = next(j for j, (a, b) in enumerate(zip(mine[1], first[1][1])) if a != b)
                what = (
                    f"batch{jax.tree_util.keystr(leaves[j][0])} of shape {mine[1][j]}, where "
                    f"batch {first[0]} had {first[1][1][j]}"
                )
            c.fail(
                f"the batches of one compiled call (steps_per_call steps) must share their "
                f"structure and shapes, got batch {index} with {what}; use steps_per_call=1 "
                f"for batches whose shapes change"
            )
        return mine

    def _split_batches(self, stacked):
        """``[n, ...]`` shared, or ``[n, K, ...]`` -> one per chunk, padded like the members."""
        if not self.member_batches:
            return [stacked] * self.num_chunks
        moved = jax.tree.map(lambda a: np.moveaxis(a, 1, 0), stacked)
        padded = _engine.pad_members(moved, self.padded)
        return [
            jax.tree.map(lambda a: np.moveaxis(a, 0, 1), part)
            for part in _engine.chunks_of(padded, self.chunk)
        ]

    def train(
        self,
        batches: Iterable[Any],
        num_steps: int,
        *,
        steps_per_call: int = 1,
        checkpoint_dir: str | None = None,
        checkpoint_every: int | None = None,
    ) -> Population:
        """Trains ``num_steps`` steps on batches drawn from ``batches``; returns ``self``.

        The members' device state is donated to each compiled call (updated in place); read
        it through :meth:`host_carry` / :meth:`result`, which copy it to the host. With a
        ``checkpoint_dir`` that already holds a checkpoint of this population (same configs,
        structure and settings), training resumes from its step: the first ``step`` batches
        are drawn and skipped, so a deterministic iterator gives bit-identical results.

        Args:
            batches: an iterable of batches (pytrees of NumPy/JAX arrays); one is drawn per step.
            num_steps: steps to train (>= 1).
            steps_per_call: steps per compiled call (``lax.scan``), amortizing Python dispatch;
                the last call may be shorter (one more compiled size).
            checkpoint_dir: with ``checkpoint_every``, an orbax checkpoint every that many
                steps (see :meth:`save`); needs ``jaxlr[checkpoint]``.
            checkpoint_every: steps between checkpoints (>= 1).

        Returns:
            ``self``, to chain :meth:`result`.

        Raises:
            ValueError: bad ``num_steps``/``steps_per_call``/``checkpoint_every``, a
                ``checkpoint_dir`` that is a file or holds another run's checkpoint, a batch
                whose member axis is not ``K``, batches of one compiled call whose structure
                or shapes differ, a ``step_fn`` that changes the state's structure or leaf
                shapes, or the iterator ran out.

        Warns:
            RuntimeWarning: a damaged checkpoint step (resume falls back to the newest intact
                one) or an unreadable ``fingerprint.json``.
            UserWarning: ``eval_every`` longer than the run (the evaluation goes stale).
        """
        c = Checker(f"{self._fn}.train")
        for name, v in (("num_steps", num_steps), ("steps_per_call", steps_per_call)):
            if not _engine.is_int(v) or v < 1:
                c.fail(f"{name} must be an int >= 1, got {name}={v!r}")
        if (checkpoint_dir is None) != (checkpoint_every is None):
            c.fail(
                f"give checkpoint_dir and checkpoint_every together, got "
                f"checkpoint_dir={checkpoint_dir!r}, checkpoint_every={checkpoint_every!r}"
            )
        if checkpoint_every is not None and (
            not _engine.is_int(checkpoint_every) or checkpoint_every < 1
        ):
            c.fail(
                f"checkpoint_every must be an int >= 1, got checkpoint_every={checkpoint_every!r}"
            )
        if checkpoint_dir is not None:
            _checkpoint.check_directory(c, checkpoint_dir)
        planned = self.total_steps or self.steps_done + num_steps
        if self.eval_fn is not None and self.eval_every > planned and self.steps_done == 0:
            warnings.warn(
                f"{self._fn}: eval_every={self.eval_every} is longer than the run "
                f"({planned} steps): eval_fn runs after the first step only, so every later "
                f"step (and any ranking) reports that stale evaluation",
                UserWarning,
                stacklevel=2,
            )
        it = iter(batches)
        from tqdm.auto import tqdm

        done = 0
        if checkpoint_dir is not None and self._steps == 0:
            if _checkpoint.restore(self, checkpoint_dir):
                if self._steps > num_steps:
                    warnings.warn(
                        f"{self._fn}: checkpoint_dir={str(checkpoint_dir)!r} holds step "
                        f"{self._steps}, past num_steps={num_steps}: the population is at "
                        f"step {self._steps}",
                        RuntimeWarning,
                        stacklevel=2,
                    )
                done = min(self._steps, num_steps)
                for _ in range(self._steps):  # the batches the checkpointed run consumed
                    next(it, None)
        t0, built = time.perf_counter(), self.trace_seconds + self.compile_seconds
        bar = self._bar
        if bar is None:
            across = self.total_steps is not None
            bar = tqdm(
                total=self.total_steps if across else num_steps,
                initial=self.steps_done if across else done,
                unit="step",
                desc=self._fn,
                disable=not self.progress,
                leave=True,
            )
            self._bar = bar if across else None
        finished = False
        try:
            while done < num_steps:
                n = min(steps_per_call, num_steps - done)
                if checkpoint_every is not None:
                    n = min(n, checkpoint_every - self.steps_done % checkpoint_every)
                drawn, first = [], None
                for _ in range(n):
                    try:
                        b = next(it)
                    except StopIteration:
                        c.fail(
                            f"batches ran out after {done + len(drawn)} of "
                            f"num_steps={num_steps} steps"
                        )
                    shapes = self._check_batch(c, b, self.steps_done + len(drawn), first)
                    first = first or (self.steps_done, shapes)
                    drawn.append(b)
                self._advance(_stack(drawn))
                done += n
                bar.update(n)
                if checkpoint_every is not None and self.steps_done % checkpoint_every == 0:
                    self.save(checkpoint_dir)
            finished = True
        finally:  # a bar across calls stays open until the planned length (or an error)
            if not finished or self._bar is None or self.steps_done >= self.total_steps:
                bar.close()
                self._bar = None
        # Compiling happens inside the first call: it is reported apart, not as running.
        built = self.trace_seconds + self.compile_seconds - built
        self.run_seconds += time.perf_counter() - t0 - built
        return self

    def _advance(self, stacked) -> None:
        parts = self._split_batches(stacked)
        outs = []
        bs = self._batch_sharding()
        self._ensure(parts[0])
        # The executable for this batch shape, looked up once per shape rather than per call
        # (the carry's shapes never change within a population).
        leaves, tree = jax.tree.flatten(parts[0])
        shape_key = (tree, tuple((np.shape(a), np.asarray(a).dtype.str) for a in leaves))
        compiled = self._executables.get(shape_key)
        if compiled is None:
            compiled = self._executables[shape_key] = self._compiled(self.carries[0], parts[0])
        for i, (carry, part) in enumerate(zip(self.carries, parts)):
            self.carries[i], out = compiled(carry, _engine.put(part, bs))
            outs.append(out)
        if self._restored:
            self._retype_history(outs)
        self.history.append(outs)
        self._steps += jax.tree.leaves(stacked)[0].shape[0]

    @property
    def steps_done(self) -> int:
        """Steps trained so far."""
        return self._steps

    def select(self, indices: Sequence[int] | np.ndarray) -> Population:
        r"""Keeps members ``indices`` (in that order; a repeated index copies a member); returns
        ``self``.

        .. math:: \text{member}'_j = \text{member}_{\text{indices}[j]}, \quad
                  j = 0..K'-1

        State, configuration, divergence flags and metrics so far move with each member. The
        chunk size stays, so the programs compiled for it serve the smaller population too:
        successive halving and pruning compact their survivors without compiling again
        (fewer members run in fewer chunks, the last one padded). With ``member_batches``,
        later batches carry ``K'`` rows. For checkpoints the selected population is another run
        (other members, other configs): save it to a new ``checkpoint_dir``; the old one refuses
        it rather than mix the two.

        Args:
            indices: member indices in ``[0, K)``, at least one.

        Raises:
            ValueError: nothing trained yet, or ``indices`` empty, not integers, or out of range.

        Examples:
            >>> import jax, jax.numpy as jnp, numpy as np, jaxlr
            >>> step_fn = lambda w, cfg, b: (w + cfg["lr"], {"loss": w})
            >>> pop = jaxlr.sweep.Population(lambda cfg, key: jnp.zeros(()), step_fn,
            ...     {"lr": np.array([1.0, 2.0, 3.0])}, key=jax.random.key(0), progress=False)
            >>> pop.train((0.0 for _ in range(2)), num_steps=2).select([2, 0]).num_members
            2
            >>> pop.train((0.0 for _ in range(1)), num_steps=1).result().metrics["loss"].tolist()
            [[0.0, 3.0, 6.0], [0.0, 1.0, 2.0]]
        """
        c = Checker(f"{self._fn}.select")
        idx = np.asarray(indices)
        if (
            idx.ndim != 1
            or not len(idx)
            or not np.issubdtype(idx.dtype, np.integer)
            or idx.min() < 0
            or idx.max() >= self.num_members
        ):
            c.fail(
                f"indices must be a non-empty list of member indices in [0, "
                f"{self.num_members}), got indices={indices!r}"
            )
        if self.carries is None:
            c.fail("there are no members to select before train() has run a step")
        carry = self.host_carry()
        metrics, extra = self.host_metrics()
        pick = lambda tree: jax.tree.map(lambda a: a[idx], tree)
        self.configs = pick(self.configs)
        self.num_members = k = len(idx)
        self.num_chunks = -(-k // self.chunk)
        self.padded = self.num_chunks * self.chunk
        self._load(
            carry._replace(
                state=pick(carry.state),
                config=pick(carry.config),
                alive=carry.alive[idx],
                bad_step=carry.bad_step[idx],
                evals=pick(carry.evals),
                memory=pick(carry.memory),
            )
        )
        self.history = []
        if metrics is not None:
            m = jax.tree.map(lambda a: np.swapaxes(a[idx], 0, 1), metrics)  # [T, K']
            e = jax.tree.map(lambda a: a[:, idx], extra)
            parts = _engine.chunks_of(
                _engine.pad_members(
                    jax.tree.map(lambda a: np.swapaxes(a, 0, 1), (m, e)), self.padded
                ),
                self.chunk,
            )
            self.history = [[jax.tree.map(lambda a: np.swapaxes(a, 0, 1), p) for p in parts]]
        return self

    # -- host views ---------------------------------------------------------------------------
    def _put_carry(self, cy: Carry) -> Carry:
        s = self.sharding
        r = _engine.replicated(s)
        state = cy.state
        if state is not None:  # host key data -> typed keys again
            state = _engine.wrap_keys(_engine.put(state, s), self._impls())
        return Carry(
            state,
            _engine.put(cy.config, s),
            _engine.put(cy.alive, s),
            _engine.put(cy.bad_step, s),
            _engine.put(cy.step, r),
            _engine.put(cy.key, r),
            _engine.put(cy.evals, s),
            _engine.put(cy.memory, s),
        )

    def host_carry(self) -> Carry:
        """The whole carry on the host (NumPy), members concatenated and padding removed.

        Typed PRNG keys in the state come back as their key data (``jax.random.key_data``, a
        uint32 array): NumPy has no key dtype; checkpoints and compaction turn them back into keys.
        """
        if self.carries is None:
            Checker(f"{self._fn}.host_carry").fail(
                "the members do not exist before train() has run a step, got steps_done=0"
            )
        k = self.num_members
        parts = [_engine.fetch(cy) for cy in self.carries]
        member = [
            jax.tree.map(lambda *xs: np.concatenate(xs)[:k], *[getattr(p, f) for p in parts])
            for f in ("state", "config", "alive", "bad_step", "evals", "memory")
        ]
        return Carry(*member[:4], parts[0].step, parts[0].key, *member[4:])

    def host_metrics(self) -> tuple[Any, Any]:
        """Metrics ``[K, T, ...]`` and extra outputs ``[T, K, ...]`` on the host."""
        k = self.num_members
        if not self.history:
            return None, None
        fetched = _engine.fetch(self.history)
        per_call = [jax.tree.map(lambda *xs: np.concatenate(xs, 1), *outs) for outs in fetched]
        metrics, extra = jax.tree.map(lambda *xs: np.concatenate(xs, 0), *per_call)
        metrics = jax.tree.map(lambda a: np.swapaxes(a, 0, 1)[:k], metrics)
        extra = jax.tree.map(lambda a: a[:, :k], extra)
        return metrics, extra

    def result(self) -> PopulationResult:
        """The members' hyperparameters, per-step metrics and divergence (a host copy)."""
        carry = self.host_carry()
        metrics, _ = self.host_metrics()
        return PopulationResult(
            carry.config,
            metrics,
            diverged=~carry.alive,
            diverged_step=carry.bad_step,
            loss=self.loss,
            labels=self.labels,
            info=self.info(),
            member_steps=self.num_members * self._steps,
            states=carry.state,
        )

    def info(self) -> dict:
        """Members, chunks, padding, devices, steps and trace/compile/run seconds so far."""
        return dict(
            num_members=self.num_members,
            chunk_size=self.chunk,
            num_chunks=self.num_chunks,
            padded=self.padded - self.num_members,
            devices=self.devices,
            trace_seconds=self.trace_seconds,
            compile_seconds=self.compile_seconds,
            run_seconds=self.run_seconds,
            steps=self._steps,
        )

    # -- checkpoints (jaxlr.sweep._checkpoint) ------------------------------------------------
    def save(self, directory: str) -> None:
        """Writes an orbax checkpoint of the population now (needs ``jaxlr[checkpoint]``).

        ``directory/steps/<step>`` holds the carry of every member, the metrics so far and,
        with them, the run's fingerprint and a SHA-256 of the arrays, which :meth:`train`
        checks before resuming from it (see ``docs/checkpoint.md``).

        Raises:
            ValueError: ``directory`` is a file or holds another run's checkpoint, or nothing
                has been trained yet.
        """
        c = Checker(f"{self._fn}.save")
        _checkpoint.check_directory(c, directory, "directory")
        if self.carries is None:
            c.fail(
                f"there is nothing to save before train() has run a step, got steps_done=0, "
                f"directory={str(directory)!r}"
            )
        _checkpoint.save(self, directory)
