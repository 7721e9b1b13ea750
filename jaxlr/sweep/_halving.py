"""Successive halving: train all members to a rung, keep the best 1/eta, compact, continue."""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import jax
import numpy as np
from jax.sharding import Mesh

from jaxlr._src.validate import Checker
from jaxlr.sweep import _engine
from jaxlr.sweep._configs import size
from jaxlr.sweep._policy import Policy
from jaxlr.sweep._population import Population, PopulationResult
from jaxlr.sweep._rank import check_rank, fresh_steps, predict_final


def check_mode(c: Checker, mode: Any) -> None:
    if mode not in ("min", "max"):
        c.fail(f"mode must be 'min' or 'max', got mode={mode!r}")


def check_metric(c: Checker, metric: Any) -> None:
    if not isinstance(metric, str):
        c.fail(f"metric must be the name of a metric of step_fn, got metric={metric!r}")


def ranking(score: np.ndarray, alive: np.ndarray, mode: str) -> np.ndarray:
    """Member indices best first; diverged and non-finite scores last (stable on ties)."""
    s = np.where(mode == "min", score, -score).astype(float)
    s = np.where(np.isfinite(s) & alive, s, np.inf)
    return np.argsort(s, kind="stable")


def successive_halving(
    init_fn: Callable[[Any, jax.Array], Any],
    step_fn: Callable[[Any, Any, Any], tuple[Any, Any]],
    configs: Any,
    batches: Iterable[Any],
    *,
    key: jax.Array,
    rungs: Sequence[int],
    metric: str,
    eta: float = 3,
    mode: str = "min",
    steps_per_call: int = 1,
    chunk_size: int | None = None,
    mesh: Mesh | None = None,
    loss: str | None = "loss",
    divergence_threshold: float | None = None,
    member_batches: bool = False,
    labels: Mapping[str, Sequence[str]] | None = None,
    compiler_options: Mapping[str, Any] | None = None,
    progress: bool = True,
    eval_fn: Callable[[Any, Any], Any] | None = None,
    eval_every: int = 1,
    rank: str = "value",
    planned_lr: Callable[[Any, Any], Any] | None = None,
) -> PopulationResult:
    r"""Successive halving of a :class:`Population`: less work on bad members.

    All ``K`` members train to the first rung :math:`r_0` steps; at each rung :math:`r_j` the
    :math:`\max(1, \lfloor k_j / \eta \rfloor)` best by ``metric`` (its value at that step;
    diverged members rank last) continue to :math:`r_{j+1}`, the others stop. The survivors are
    compacted (:meth:`Population.select`) and every rung runs in chunks of one size, by
    default the last rung's member count: one compiled program serves every rung (a compiled
    size per rung would cost most of the search's wall time), a second call with the same
    step function compiles nothing, and the member-steps are

    .. math:: \sum_j k_j\,(r_j - r_{j-1}), \quad k_{j+1} = \max(1, \lfloor k_j/\eta \rfloor)

    instead of :math:`K\,r_{last}` for the full grid. Use ``rungs=[r, r*eta, r*eta**2, ...]``
    for the classic geometric budgets (Jamieson & Talwalkar; Li et al.'s Hyperband bracket).

    Args:
        init_fn: ``(config, key) -> state`` for one member.
        step_fn: ``(state, config, batch) -> (state, metrics)``; ``metrics[metric]`` a scalar.
        configs: ``K >= 2`` configurations (leading axis ``K``).
        batches: an iterable of batches (one per step; with ``member_batches``, leading axis
            ``K``, and each survivor keeps receiving its own row).
        key: PRNG key for the members' ``init_fn``.
        rungs: strictly increasing step budgets (cumulative), ints >= 1; the last is the length.
        metric: the metric ranked at each rung (e.g. a validation loss the step reports).
        eta: the reduction factor (> 1): keep the top ``1/eta``.
        mode: ``"min"`` or ``"max"`` (the better direction of ``metric``).
        steps_per_call: steps per compiled call; rung lengths that are multiples of it keep
            one batch shape, hence one compiled program.
        chunk_size: members per compiled call, the same at every rung; default the last
            rung's member count (rounded up to the mesh's devices).
        mesh, loss, divergence_threshold, member_batches, labels, compiler_options, progress:
            as in :class:`Population`.
        eval_fn, eval_every: as in :class:`Population`: ``metric`` may be an ``eval_fn``
            metric computed every ``eval_every`` steps; a rung ranks by its latest value (make
            the rungs multiples of ``eval_every`` to rank on a fresh one).
        rank: what a rung ranks by. ``"value"`` (default): ``metric`` at the rung.
            ``"predicted"``: each member's predicted ``metric`` at the last rung under its own
            schedule (against the short-horizon bias: a high peak behind a long warmup looks
            bad early and wins late). A loss-curve law, the power part of the momentum law
            (:func:`jaxlr.auto.momentum_law` with :math:`C = 0`),

            .. math:: \hat L(s) = L_0 + A\,S_1(s)^{-\alpha}, \qquad
                S_1(s) = \textstyle\sum_{i \le s} \eta_i,

            with the LR in units of the member's peak, is fitted to the second half of each
            member's curve so far (its fresh evaluations; least squares on relative residuals,
            :math:`L_0, A \ge 0`, exact for each of 100 exponents :math:`\alpha`, all members
            in one small compiled call) and evaluated at :math:`S_1(r_{last})` of the LR
            the member applied so far (its ``"lr"`` metric when ``step_fn`` reports one) and
            will apply (``planned_lr``). The annealing term of the momentum law is left out: a
            prefix rarely identifies it. A member whose fit fails (fewer than 4 positive finite
            fresh points in the second half of its curve so far, a non-finite or non-positive
            prediction) is ranked by its value, and counted in ``info["rank_fallbacks"]``.
            Needs ``mode="min"`` (a loss). The law knows nothing of instability or
            overfitting: measured in ``benchmarks/ranking.py``, it does not beat ranking by
            value there.
        planned_lr: with ``rank="predicted"``: ``(config, step) -> LR`` of one member at the 0-based
            ``step`` (e.g. ``lambda c, t: schedule_of(c)(t)``), evaluated once for every
            member at steps ``0..r_last - 1``.

    Returns:
        A :class:`PopulationResult` over the ``K`` original members: metrics ``[K, r_last]``
        (NaN after a member stopped), ``rungs[i]`` the list of ``(step, metric)`` member ``i``
        reached, ``info["stopped_at"]`` its last step, ``member_steps`` the work done; ``best``
        picks among the members that reached the last rung; ``states`` each member's training
        state where it stopped; ``compile_seconds`` the time spent compiling; ``info["rank"]``;
        with ``rank="predicted"``, ``info["predicted"]`` ``[K, len(rungs) - 1]`` each rung's
        prediction (NaN where the fit failed or the member had stopped) and
        ``info["rank_fallbacks"]`` the members ranked by value at each rung.

    Raises:
        ValueError: before anything compiles: rungs not strictly increasing positive ints,
            ``eta <= 1``, a bad ``mode``, ``K < 2``, or a ``metric`` the step does not return;
            an unknown ``rank``; ``rank="predicted"`` without a callable ``planned_lr``, with
            ``mode="max"``, or with a ``planned_lr`` that is not a finite, non-negative scalar;
            ``planned_lr`` with ``rank="value"``.

    Warns:
        UserWarning: with ``eval_fn``, a rung that is not a multiple of ``eval_every`` (its
            ranking would use a stale evaluation), or ``eval_every`` longer than the run.

    Examples:
        >>> import jax, jax.numpy as jnp, numpy as np, jaxlr
        >>> def step_fn(w, cfg, target):
        ...     w = w - cfg["lr"] * 2.0 * (w - target)
        ...     return w, {"loss": (w - target) ** 2}
        >>> res = jaxlr.sweep.successive_halving(
        ...     lambda cfg, key: jnp.zeros(()), step_fn,
        ...     jaxlr.sweep.grid(lr=[0.01, 0.05, 0.1, 0.2, 0.3, 0.4, 0.45, 0.5, 0.7]),
        ...     (np.float32(3.0) for _ in range(9)), key=jax.random.key(0), rungs=[1, 3, 9],
        ...     metric="loss", eta=3, progress=False)
        >>> res.member_steps, res.best("loss")["lr"], [len(r) for r in res.rungs]
        (21, 0.5, [1, 1, 1, 1, 1, 2, 2, 3, 1])

        Ranked by the predicted final loss: the member with the long warmup to the highest
        peak is last at the first rung and first at the end, and it is kept.

        >>> lam = jnp.logspace(-3, 0, 32)
        >>> sched = lambda c: jaxlr.schedules.warmup(
        ...     jaxlr.schedules.constant(value=c["peak"]), warmup_steps=c["warmup"])
        >>> def step_fn(s, c, batch):
        ...     w = s["w"] - sched(c)(s["t"]) * lam * s["w"]
        ...     return {"w": w, "t": s["t"] + 1}, {"loss": 0.5 * jnp.sum(lam * w * w)}
        >>> configs = jaxlr.sweep.zip(peak=[0.3, 0.8, 1.5], warmup=[0.0, 0.0, 60.0])
        >>> def search(**kw):
        ...     return jaxlr.sweep.successive_halving(
        ...         lambda c, key: {"w": jnp.ones(32), "t": jnp.zeros((), int)}, step_fn,
        ...         configs, (0.0 for _ in range(100)), key=jax.random.key(0), rungs=[20, 100],
        ...         metric="loss", progress=False, steps_per_call=20, **kw)
        >>> search().info["survivors"]
        [1]
        >>> res = search(rank="predicted", planned_lr=lambda c, t: sched(c)(t))
        >>> res.info["survivors"], res.info["rank_fallbacks"]
        ([2], [0])

    References:
        Jamieson & Talwalkar, Non-stochastic Best Arm Identification and Hyperparameter
        Optimization, AISTATS 2016; Li et al., Hyperband, JMLR 2018.
    """
    c = Checker("successive_halving")
    k = size(configs, fn="successive_halving")
    if k < 2:
        c.fail(f"the population needs at least 2 members, got K={k}")
    rungs = list(rungs) if isinstance(rungs, (list, tuple, np.ndarray)) else rungs
    if (
        not isinstance(rungs, list)
        or not rungs
        or not all(_engine.is_int(r) and r >= 1 for r in rungs)
        or any(b <= a for a, b in zip(rungs, rungs[1:]))
    ):
        c.fail(f"rungs must be strictly increasing ints >= 1, got rungs={rungs!r}")
    if isinstance(eta, bool) or not isinstance(eta, (int, float, np.number)) or not eta > 1:
        c.fail(f"eta must be a number > 1, got eta={eta!r}")
    check_mode(c, mode)
    check_metric(c, metric)
    planned = check_rank(c, rank, planned_lr, mode, configs, rungs[-1])
    stale = [r for r in rungs if r % eval_every and r > 1] if eval_fn is not None else []
    if stale and _engine.is_int(eval_every) and eval_every >= 1:
        warnings.warn(
            f"successive_halving: rungs {stale} are not multiples of eval_every={eval_every}: "
            f"members are ranked there by an evaluation up to {eval_every - 1} steps old; "
            f"make every rung a multiple of eval_every",
            UserWarning,
            stacklevel=2,
        )
    sizes = [k]
    for _ in rungs[1:]:
        sizes.append(max(1, math.floor(sizes[-1] / eta)))
    if chunk_size is None:
        _, devices = _engine.member_sharding(c, mesh)
        chunk_size = -(-sizes[-1] // devices) * devices
    pop = Population(
        init_fn,
        step_fn,
        configs,
        key=key,
        mesh=mesh,
        chunk_size=chunk_size,
        loss=loss,
        divergence_threshold=divergence_threshold,
        member_batches=member_batches,
        labels=labels,
        compiler_options=compiler_options,
        progress=progress,
        policy=Policy(name="successive_halving", requires=(("metric", metric),)),
        eval_fn=eval_fn,
        eval_every=eval_every,
        total_steps=rungs[-1],  # one bar for the whole search, not one per rung
    )
    idx = np.arange(k)  # original index of each current member
    holder = {"idx": idx}
    source = iter(batches)

    def rows(b):
        """The survivors' rows of a per-member batch, after checking it has all ``K``."""
        for path, a in jax.tree_util.tree_flatten_with_path(b)[0]:
            if np.ndim(a) == 0 or np.shape(a)[0] != k:
                c.fail(
                    f"batches must have a leading member axis of K={k} (the original members) "
                    f"with member_batches=True, got batch{jax.tree_util.keystr(path)} of shape "
                    f"{np.shape(a)}"
                )
        return jax.tree.map(lambda a: np.asarray(a)[holder["idx"]], b)

    feed = source if not member_batches else (rows(b) for b in source)
    total = rungs[-1]
    curves: dict[str, np.ndarray] = {}
    history: list[list[tuple[int, float]]] = [[] for _ in range(k)]
    stopped_at = np.zeros(k, int)
    diverged = np.zeros(k, bool)
    diverged_step = np.full(k, -1)
    final_config = jax.tree.map(np.asarray, configs)
    states = None  # each member's state where it stopped, [K, ...]
    member_steps, prev = 0, 0
    predicted = np.full((k, len(rungs) - 1), np.nan)  # rank='predicted': each rung's prediction
    fallbacks: list[int] = []  # rank='predicted': members per rung ranked by value (fit failed)
    for j, r in enumerate(rungs):
        pop.train(feed, r - prev, steps_per_call=steps_per_call)
        member_steps += pop.num_members * (r - prev)
        metrics, _ = pop.host_metrics()
        carry = pop.host_carry()
        for name, m in metrics.items():
            if name not in curves:
                curves[name] = np.full((k, total, *m.shape[2:]), np.nan, float)
            curves[name][idx, prev:r] = m[:, -(r - prev) :]
        score = np.asarray(metrics[metric][:, -1], float)
        if score.ndim != 1:
            c.fail(f"metric={metric!r} must be a scalar per step, got shape {score.shape[1:]}")
        for i, orig in enumerate(idx):
            history[orig].append((r, float(score[i])))
        stopped_at[idx] = r
        diverged[idx] = ~carry.alive
        diverged_step[idx] = carry.bad_step
        if states is None:
            states = jax.tree.map(lambda a: np.zeros((k, *a.shape[1:]), a.dtype), carry.state)
        for dst, src in zip(jax.tree.leaves(states), jax.tree.leaves(carry.state)):
            dst[idx] = src
        if j == len(rungs) - 1:
            break
        keep = max(1, math.floor(pop.num_members / eta))
        if rank == "predicted":
            # Only an eval_fn metric is fresh every eval_every steps; a step metric is every step's.
            every = eval_every if metric in carry.evals else 1
            pred, ok = _predict(curves, idx, r, metric, planned, total, every)
            predicted[idx, j] = np.where(ok, pred, np.nan)
            fallbacks.append(int((~ok & carry.alive).sum()))
            score = np.where(ok, pred, score)
        chosen = np.sort(ranking(score, carry.alive, mode)[:keep])
        pop.select(chosen)
        idx = idx[chosen]
        holder["idx"] = idx
        prev = r
    info = pop.info()
    info.update(
        num_members=k,
        sizes=sizes,
        rungs=rungs,
        eta=eta,
        mode=mode,
        stopped_at=stopped_at,
        survivors=idx.tolist(),
        rank=rank,
    )
    if rank == "predicted":
        info.update(predicted=predicted, rank_fallbacks=fallbacks)
    return PopulationResult(
        final_config,
        curves,
        diverged=diverged,
        diverged_step=diverged_step,
        loss=loss,
        labels=labels,
        info=info,
        member_steps=member_steps,
        states=states,
        rungs=history,
        metric=metric,
        mode=mode,
    )


def _predict(curves, idx, r, metric, planned, total, every):
    """Each current member's predicted metric at step ``total`` from its curve up to ``r`` (its
    fresh values, every ``every`` steps): the LR it applied so far (its ``lr`` metric where the
    step reports one), then its planned LR."""
    steps = fresh_steps(r, every)
    lrs = planned[idx].copy()
    applied = curves.get("lr")
    if applied is not None and applied.ndim == 2:
        past = applied[idx, :r]
        lrs[:, :r] = np.where(np.isfinite(past) & (past >= 0), past, lrs[:, :r])
    values = curves[metric][idx][:, steps - 1]
    out = predict_final(values, steps, lrs, final=total, rows=len(planned))
    return out.value, out.ok
