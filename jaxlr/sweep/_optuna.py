"""Adaptive search with Optuna: ask K trials, train them in one vmapped program, tell K results."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jaxlr._src.validate import Checker
from jaxlr.sweep._configs import unwrap
from jaxlr.sweep._result import REDUCTIONS, SweepResult
from jaxlr.sweep._run import run
from jaxlr.sweep._space import Space, as_space

_FN = "optuna_search"
# Trials found RUNNING when a search starts but lacking some of their parameters were killed
# inside ``study.ask``; they are failed with this user attribute and not counted as trials.
INTERRUPTED = "jaxlr_interrupted"


def _optuna():
    try:
        import optuna
    except ImportError:
        raise ImportError(
            f"{_FN} needs optuna, an optional extra: pip install 'jaxlr[optuna]'"
        ) from None
    return optuna


class _Space:
    """A :class:`Space` as Optuna sees it: distributions, and trials' parameters as configs."""

    def __init__(self, space: Any, fn: str = _FN):
        c = Checker(fn)
        self.space = sp = as_space(c, space)
        if not sp.searched():
            c.fail(
                f"space must search at least one axis (a distribution or a list of choices), "
                f"got only fixed values {list(sp.names)}"
            )

    def distributions(self) -> dict[str, Any]:
        d = _optuna().distributions
        out = {}
        for name, dim in self.space.searched():
            if dim.kind == "choice":
                out[name] = d.CategoricalDistribution(dim.choices)
            elif dim.kind in ("int", "log_int"):
                out[name] = d.IntDistribution(
                    int(dim.low), int(dim.high), log=dim.kind == "log_int"
                )
            else:
                out[name] = d.FloatDistribution(dim.low, dim.high, log=dim.is_log)
        return out

    def configs(self, params: list[Mapping[str, Any]], k: int) -> Any:
        """The trials' parameters as a configuration of ``k`` members (the last one repeated)."""
        rows = params + [params[-1]] * (k - len(params))
        return jax.tree.map(jnp.asarray, self.space.configs(rows))

    def example(self) -> Any:
        """One member's configuration (low ends, first choices) as the function receives it,
        for a trace-only check."""
        params = {
            name: (d.choices[0] if d.kind == "choice" else d.low)
            for name, d in self.space.searched()
        }
        return unwrap(jax.tree.map(lambda x: x[0], self.configs([params], 1)))


def _bar(name: str, total: int, done: int, progress: bool):
    """The one progress bar of a search, counting its finished trials."""
    from tqdm.auto import tqdm

    return tqdm(
        total=total, initial=min(done, total), unit="trial", desc=name, disable=not progress
    )


def _check_int(c: Checker, name: str, value: Any) -> int:
    c.integer(name, value, minimum=1, static=True)
    return int(value)


def _check_diverged(c: Checker, diverged: Any) -> None:
    if not (isinstance(diverged, str) and diverged == "fail") and (
        isinstance(diverged, (bool, str))
        or not isinstance(diverged, (int, float))
        or not math.isfinite(diverged)
    ):
        c.fail(f"diverged must be 'fail' or a finite number, got diverged={diverged!r}")


def _check_logger(c: Checker, logger: Any, method: str) -> None:
    if logger is not None and not callable(getattr(logger, method, None)):
        c.fail(
            f"logger must be a jaxlr.sweep.MetricsLogger (or have {method}), got logger={logger!r}"
        )


def _open_study(c: Checker, optuna, study, storage, study_name, sampler, direction, pruner=None):
    """The study to search: the one given, or one created (or loaded) from the arguments."""
    if study is None:
        asked = direction
        direction = "minimize" if direction is None else direction
        c.choice("direction", direction, ("minimize", "maximize"))
        try:
            study = optuna.create_study(
                storage=storage,
                study_name=study_name,
                sampler=sampler,
                pruner=pruner,
                direction=direction,
                load_if_exists=True,
            )
        except optuna.exceptions.StorageInternalError as e:
            # Optuna's own message blames "invalid data"; the cause is the storage refusing writes
            cause = str(e.__cause__ or e).strip().splitlines()[0]
            c.fail(
                f"storage={storage!r} cannot be written ({cause}); a read-only SQLite file or "
                "folder? give a writable storage"
            )
        stored = study.directions[0].name.lower()
        if asked is not None and len(study.directions) == 1 and stored != asked:
            # load_if_exists ignores direction: a stored study keeps the one it was created with
            c.fail(
                f"direction={asked!r} but the stored study {study.study_name!r} in "
                f"storage={storage!r} was created with direction={stored!r}; pass "
                f"direction={stored!r} (or None), or another study_name"
            )
    elif any(a is not None for a in (storage, study_name, sampler, direction, pruner)):
        c.fail(
            "give either study or storage/study_name/sampler/direction/pruner (a new or stored "
            f"study), got study={study!r} and one of these"
        )
    if len(study.directions) != 1:
        c.fail(f"the study must have one objective, got directions={study.directions}")
    if isinstance(study.sampler, optuna.samplers.GridSampler):
        # It ends a study by calling study.stop(), which Optuna allows only inside optimize().
        c.fail(
            "GridSampler cannot drive an ask-and-tell search; for a grid, train "
            "jaxlr.sweep.grid(...) with jaxlr.sweep.run, got sampler=GridSampler"
        )
    return study


def _check_space(c: Checker, optuna, study, dists) -> None:
    """Refuses a space whose distributions the study's stored trials contradict, before an ask
    (``study.ask`` would raise after creating a trial, leaving it RUNNING)."""
    for t in study.get_trials(deepcopy=False):
        for name, old in t.distributions.items():
            if name not in dists:
                continue
            try:
                optuna.distributions.check_distribution_compatibility(old, dists[name])
            except ValueError:
                c.fail(
                    f"space[{name!r}] is {dists[name]} but the study {study.study_name!r} holds "
                    f"trials with {name!r} from {old} (trial {t.number}); search the stored "
                    "study's space, or use another study_name"
                )


def _resume(optuna, study, dists) -> tuple[list, int, int]:
    """(trials left RUNNING to evaluate again, finished trials, next round index)."""
    state = optuna.trial.TrialState
    pending, done, round_ = [], 0, 0
    for t in study.get_trials(deepcopy=False):
        round_ = max(round_, t.user_attrs.get("jaxlr_round", -1) + 1)
        if t.state == state.RUNNING:
            trial = optuna.trial.Trial(study, t._trial_id)
            if set(dists) <= set(t.params):
                pending.append(trial)
            else:
                trial.set_user_attr(INTERRUPTED, True)
                study.tell(trial, state=state.FAIL)
        elif t.state.is_finished() and not t.user_attrs.get(INTERRUPTED, False):
            done += 1
    return pending, done, round_


def _tell(optuna, study, trial, *, bad: bool, score: float, diverged: Any) -> None:
    if bad and diverged == "fail":
        study.tell(trial, state=optuna.trial.TrialState.FAIL)
    else:
        study.tell(trial, float(diverged) if bad else float(score))


def optuna_search(
    train_fn: Callable[[Any], Any],
    space: Space | Mapping[str, Any],
    *,
    num_trials: int,
    batch_size: int,
    study: Any = None,
    storage: str | None = None,
    study_name: str | None = None,
    sampler: Any = None,
    direction: str | None = None,
    metric: str | None = None,
    reduction: str = "last",
    last_n: int | None = None,
    diverged: str | float = "fail",
    loss: str | None = "loss",
    divergence_threshold: float | None = None,
    chunk_size: int | None = None,
    vmap_size: int | None = None,
    logger: Any = None,
    progress: bool = False,
) -> Any:
    r"""Optuna search in vectorized batches: ask ``batch_size`` trials, train them together, tell.

    Each round asks the study for ``K = batch_size`` trials (``study.ask`` ``K`` times, so any
    sampler works; for TPE use ``TPESampler(constant_liar=True)`` so that the ``K`` asks of a
    round spread out), stacks their parameters into one configuration (a dict of arrays with
    leading axis ``K``, as :func:`jaxlr.sweep.grid` makes), trains all ``K`` with
    :func:`jaxlr.sweep.run` (one compiled, vmapped program, compiled once for the whole search)
    and tells each trial its score

    .. math:: y_i = \mathrm{reduce}_t\, \text{metric}_i(t), \quad i = 0..K-1

    (:meth:`SweepResult.score`; the metric defaults to a validation loss when ``train_fn``
    reports one). The last round is padded to ``K`` members with copies, so no round
    recompiles.

    A member that diverged (see :func:`jaxlr.sweep.run`) or whose score is not finite is told
    ``TrialState.FAIL`` (``diverged="fail"``), or the value ``diverged`` (a float penalty).
    Every told trial carries user attributes: ``jaxlr_round``, ``diverged``,
    ``diverged_step`` and the record's finite scalar metrics.

    Pruning needs intermediate values, so it needs training driven step by step: use
    :func:`optuna_population_search`, which trains each round as a :class:`Population`.

    Resuming: with a stored study (``storage="sqlite:///search.db"``, ``study_name``), calling
    ``optuna_search`` again continues the same study until it holds ``num_trials`` finished
    trials (complete, failed or pruned). Trials left ``RUNNING`` by a killed search are
    evaluated again and told, so no asked trial is lost and none is counted twice; one whose
    parameters were not all sampled yet is failed with user attribute ``jaxlr_interrupted``
    and not counted. One search process per study at a time (a RUNNING trial is taken as
    interrupted).

    Args:
        train_fn: ``config -> metrics`` for one member (as for :func:`jaxlr.sweep.run`).
        space: a :class:`jaxlr.sweep.Space` or the dict it takes: path ->
            ``("log_uniform", low, high)``, ``("uniform", low, high)``, ``("int", low, high)``,
            ``("log_int", low, high)``, a list of choices (numbers, or strings: the trial's
            parameter is the string, ``train_fn`` receives its index), or a fixed number.
            A trial's parameters are named by the dotted paths (``"schedule.peak_value"``);
            ``train_fn`` receives them nested.
        num_trials: finished trials the study holds at the end (earlier runs included).
        batch_size: trials per round, ``K`` >= 1.
        study: an ``optuna.Study``; else one is created (or loaded) from ``storage``,
            ``study_name``, ``sampler`` and ``direction``.
        storage: an Optuna storage URL; ``None`` keeps the study in memory.
        study_name: the study's name in ``storage``.
        sampler: an Optuna sampler (default: Optuna's, TPE).
        direction: ``"minimize"`` (the default) or ``"maximize"``, for a new study; for a
            stored one it must be the stored direction (or ``None``).
        metric: the metric to score; ``None``: the result's default (validation loss, else
            ``loss``).
        reduction: ``"last"``, ``"min"``, ``"max"`` or ``"mean_last"`` (with ``last_n``).
        last_n: the window of ``"mean_last"``.
        diverged: ``"fail"``, or a finite float told as the value of a diverged trial.
        loss: the metric checked for divergence (``None``: no check).
        divergence_threshold: a loss above this also counts as diverged.
        chunk_size: members per compiled call within a round (see :func:`jaxlr.sweep.run`).
        vmap_size: see :func:`jaxlr.sweep.run`.
        logger: a :class:`jaxlr.sweep.MetricsLogger`; each round's metrics are written per
            trial (member names ``trial_<number>``).
        progress: show the search's progress bar (one, labelled ``optuna_search``, counting
            finished trials).

    Returns:
        The ``optuna.Study``.

    Raises:
        ImportError: optuna is not installed (``pip install 'jaxlr[optuna]'``).
        ValueError: before any trial is asked: a space Optuna cannot express (unknown kind,
            ``low > high``, a log range with ``low <= 0``, non-integer int bounds, empty,
            duplicate or mixed choices, a vector or other object), ``batch_size`` or
            ``num_trials`` not an int >= 1 (a batch of size 0), an unknown reduction, a
            multi-objective study, an ``optuna.samplers.GridSampler`` (use
            :func:`jaxlr.sweep.grid`), a ``logger`` without ``log_result``, a metric ``train_fn``
            does not return, or ``diverged``
            neither ``"fail"`` nor a finite number; a stored study created with another
            ``direction``, or holding trials whose distributions contradict ``space``; a
            ``storage`` that cannot be written (a read-only SQLite file).

    Examples:
        >>> import jax, jax.numpy as jnp, optuna, jaxlr
        >>> optuna.logging.set_verbosity(optuna.logging.WARNING)
        >>> def train_fn(cfg):  # gradient descent on (w - 3)^2; validation target 2.9
        ...     s = jaxlr.schedules.constant(value=cfg["peak_value"])
        ...     def step(w, t):
        ...         return w - s(t) * 2.0 * (w - 3.0), ((w - 3.0) ** 2, (w - 2.9) ** 2)
        ...     _, (loss, val) = jax.lax.scan(step, 0.0, jnp.arange(10))
        ...     return {"loss": loss, "val_loss": val}
        >>> study = jaxlr.sweep.optuna_search(
        ...     train_fn, {"peak_value": ("log_uniform", 1e-3, 2.0)}, num_trials=8,
        ...     batch_size=4, sampler=optuna.samplers.RandomSampler(seed=0))
        >>> len(study.trials), study.best_value < 0.1
        (8, True)

    References:
        Akiba et al., Optuna: A Next-generation Hyperparameter Optimization Framework, KDD 2019;
        Bergstra et al., Algorithms for Hyper-Parameter Optimization (TPE), NeurIPS 2011.
    """
    c = Checker(_FN)
    if not callable(train_fn):
        c.fail(f"train_fn must be callable, got train_fn={train_fn!r}")
    sp = _Space(space)
    num_trials = _check_int(c, "num_trials", num_trials)
    k = _check_int(c, "batch_size", batch_size)
    c.choice("reduction", reduction, REDUCTIONS)
    _check_diverged(c, diverged)
    _check_logger(c, logger, "log_result")
    optuna = _optuna()
    # The metric must exist with a rankable shape: checked on shapes alone, before any ask.
    shapes = jax.eval_shape(train_fn, sp.example())
    probe = SweepResult(
        {"_": np.zeros(1)}, jax.tree.map(lambda s: np.zeros((1, *s.shape)), shapes), loss=loss
    )
    try:
        probe.score(metric, reduction=reduction, last_n=last_n)
    except ValueError as e:
        c.fail(str(e).replace("SweepResult.score: ", "").replace("SweepResult: ", ""))
    study = _open_study(c, optuna, study, storage, study_name, sampler, direction)
    dists = sp.distributions()
    _check_space(c, optuna, study, dists)
    pending, done, round_ = _resume(optuna, study, dists)

    bar = _bar(_FN, num_trials, done, progress)
    while done < num_trials:
        n = min(k, num_trials - done)
        trials, pending = pending[:n], pending[n:]
        trials += [study.ask(dists) for _ in range(n - len(trials))]
        configs = sp.configs([t.params for t in trials], k)
        res = run(
            train_fn,
            configs,
            chunk_size=chunk_size,
            progress=False,  # the search's own bar counts trials
            loss=loss,
            divergence_threshold=divergence_threshold,
            vmap_size=vmap_size,
        )
        scores = res.score(metric, reduction=reduction, last_n=last_n)
        if logger is not None:
            logger.log_result(res, members=[f"trial_{t.number}" for t in trials])
        for i, trial in enumerate(trials):
            rec = res.member(i)
            trial.set_user_attr("jaxlr_round", round_)
            trial.set_user_attr("diverged", bool(res.diverged[i]))
            trial.set_user_attr("diverged_step", int(res.diverged_step[i]))
            for key, v in rec.items():
                if key in res.flat_metrics or key.endswith(("_final", "_peak")):
                    if isinstance(v, float) and math.isfinite(v):
                        trial.set_user_attr(key, v)
            bad = bool(res.diverged[i]) or not np.isfinite(scores[i])
            _tell(optuna, study, trial, bad=bad, score=scores[i], diverged=diverged)
        done += n
        round_ += 1
        bar.update(n)
    bar.close()
    return study


def optuna_population_search(
    init_fn: Callable[[Any, jax.Array], Any],
    step_fn: Callable[[Any, Any, Any], tuple[Any, Any]],
    space: Space | Mapping[str, Any],
    batches: Callable[[], Any],
    *,
    num_trials: int,
    batch_size: int,
    num_steps: int,
    report_every: int,
    metric: str,
    key: jax.Array,
    study: Any = None,
    storage: str | None = None,
    study_name: str | None = None,
    sampler: Any = None,
    pruner: Any = None,
    direction: str | None = None,
    diverged: str | float = "fail",
    loss: str | None = "loss",
    divergence_threshold: float | None = None,
    logger: Any = None,
    progress: bool = False,
    eval_fn: Callable[[Any, Any], Any] | None = None,
    eval_every: int = 1,
) -> Any:
    r"""Optuna search over step-driven populations, with Optuna's pruner stopping members.

    Each round asks ``K = batch_size`` trials (as :func:`optuna_search`) and trains them as one
    :class:`jaxlr.sweep.Population` on batches from ``batches()``. Every ``report_every`` steps
    each live trial reports its ``metric`` at that step, :math:`y_i(s)`, to Optuna
    (``trial.report(y, s)``) and asks the study's pruner (``trial.should_prune()``, e.g.
    ``optuna.pruners.SuccessiveHalvingPruner`` or ``MedianPruner``). Pruned trials are told
    ``TrialState.PRUNED`` and their members are removed: the survivors' states are compacted
    into a smaller population, so a round costs

    .. math:: \sum_{j} k_j \cdot \Delta s_j \quad \text{member-steps, not } K \cdot T,

    with :math:`k_j` the members alive in report interval :math:`j` (one compiled size per
    distinct :math:`k_j`). A trial that survives to ``num_steps`` is told its ``metric`` at the
    last step; a diverged member (frozen by the population) is told ``FAIL`` or ``diverged``.
    Each trial records ``jaxlr_steps`` (the steps it trained), ``jaxlr_round`` and
    ``jaxlr_member`` (its member position). Resuming a stored study works as for
    :func:`optuna_search`, but a trial the kill interrupted has already reported intermediate
    values to the pruner, so it is not trained again into the same trial (that would mix two
    runs): it is failed with user attribute ``jaxlr_interrupted`` (not counted) and its
    parameters are asked again as a fresh trial (user attribute ``jaxlr_retry_of``: the old
    number), trained from step 0 in its original round at its original member position, so with
    the same init key as an uninterrupted search.

    Args:
        init_fn: ``(config, key) -> state`` for one member (as for :class:`Population`).
        step_fn: ``(state, config, batch) -> (state, metrics)``; ``metrics[metric]`` a scalar.
        space: the search space, as for :func:`optuna_search`.
        batches: a function returning a fresh iterable of batches (one per step) for a round.
        num_trials: finished trials (complete, pruned or failed) the study holds at the end.
        batch_size: trials per round, ``K`` >= 1.
        num_steps: training steps of a trial that is never pruned.
        report_every: steps between reports to the pruner (>= 1).
        metric: the metric reported and told (e.g. a validation loss ``step_fn`` returns).
        key: PRNG key; round ``r`` initializes its members from ``fold_in(key, r)``.
        study, storage, study_name, sampler, direction: as for :func:`optuna_search`.
        pruner: an Optuna pruner for a new study (default: Optuna's ``MedianPruner``).
        diverged: ``"fail"``, or a finite float told as the value of a diverged trial.
        loss, divergence_threshold: as for :class:`Population`.
        logger: a :class:`jaxlr.sweep.MetricsLogger`; each report writes ``metric`` per live
            trial (member names ``trial_<number>``).
        progress: show the search's progress bar (one, labelled
            ``optuna_population_search``, counting finished trials).
        eval_fn, eval_every: as in :class:`Population`: ``metric`` may be an ``eval_fn``
            metric computed every ``eval_every`` steps; a report sends its latest value (make
            ``report_every`` a multiple of ``eval_every`` to report a fresh one).

    Returns:
        The ``optuna.Study``.

    Raises:
        ImportError: optuna is not installed (``pip install 'jaxlr[optuna]'``).
        ValueError: before any trial is asked: the errors of :func:`optuna_search`, bad
            ``num_steps`` or ``report_every``, ``batches`` not callable or returning an empty
            iterable, or a ``metric`` that
            ``step_fn`` does not return as a scalar (checked on shapes, with the first batch).

    Examples:
        >>> import itertools, jax, jax.numpy as jnp, numpy as np, optuna, jaxlr
        >>> optuna.logging.set_verbosity(optuna.logging.WARNING)
        >>> def step_fn(w, cfg, target):  # SGD on (w - target)^2
        ...     w = w - cfg["peak_value"] * 2.0 * (w - target)
        ...     return w, {"loss": (w - target) ** 2}
        >>> study = jaxlr.sweep.optuna_population_search(
        ...     lambda cfg, key: jnp.zeros(()), step_fn, {"peak_value": ("log_uniform", 1e-3, 0.5)},
        ...     lambda: itertools.repeat(np.float32(3.0)), num_trials=8, batch_size=8,
        ...     num_steps=8, report_every=2, metric="loss", key=jax.random.key(0),
        ...     sampler=optuna.samplers.RandomSampler(seed=0),
        ...     pruner=optuna.pruners.SuccessiveHalvingPruner(min_resource=2, reduction_factor=2))
        >>> states = [t.state.name for t in study.trials]
        >>> states.count("PRUNED") > 0, sum(t.user_attrs["jaxlr_steps"] for t in study.trials) < 64
        (True, True)

    References:
        Akiba et al., Optuna, KDD 2019; Li et al., Hyperband, JMLR 2018 (asynchronous
        successive halving: Li et al., A System for Massively Parallel Hyperparameter
        Tuning, MLSys 2020).
    """
    from jaxlr.sweep._policy import Policy
    from jaxlr.sweep._population import Population

    c = Checker("optuna_population_search")
    for name, fn in (("init_fn", init_fn), ("step_fn", step_fn), ("batches", batches)):
        if not callable(fn):
            c.fail(f"{name} must be callable, got {name}={fn!r}")
    sp = _Space(space, fn="optuna_population_search")
    num_trials = _check_int(c, "num_trials", num_trials)
    k = _check_int(c, "batch_size", batch_size)
    num_steps = _check_int(c, "num_steps", num_steps)
    report_every = _check_int(c, "report_every", report_every)
    if eval_fn is not None and not callable(eval_fn):
        c.fail(f"eval_fn must be callable or None, got eval_fn={eval_fn!r}")
    eval_every = _check_int(c, "eval_every", eval_every)
    if eval_fn is None and eval_every != 1:
        c.fail(f"eval_every={eval_every} needs an eval_fn to run every eval_every steps")
    if not isinstance(metric, str):
        c.fail(f"metric must be the name of a metric step_fn returns, got metric={metric!r}")
    _check_diverged(c, diverged)
    _check_logger(c, logger, "log")
    optuna = _optuna()
    # The metric must be a scalar per step: checked on shapes, with the stream's first batch.
    cfg = sp.example()  # as the functions receive it
    try:
        first = next(iter(batches()))
    except StopIteration:
        c.fail(
            "batches() must return a fresh non-empty iterable of batches (one per step), got "
            f"an empty one from batches={batches!r}"
        )
    state_shape = jax.eval_shape(init_fn, cfg, jax.random.key(0))
    metrics_shape = jax.eval_shape(step_fn, state_shape, cfg, first)[1]
    if callable(eval_fn) and isinstance(metrics_shape, Mapping):
        evals = jax.eval_shape(eval_fn, state_shape, cfg)
        if isinstance(evals, Mapping):
            metrics_shape = {**metrics_shape, **evals}
    if not isinstance(metrics_shape, Mapping) or metric not in metrics_shape:
        known = list(metrics_shape) if isinstance(metrics_shape, Mapping) else metrics_shape
        c.fail(f"unknown metric {metric!r}: step_fn's metrics are {known}")
    if metrics_shape[metric].shape != ():
        c.fail(
            f"metric {metric!r} must be a scalar per step, got shape {metrics_shape[metric].shape}"
        )
    study = _open_study(c, optuna, study, storage, study_name, sampler, direction, pruner)
    dists = sp.distributions()
    _check_space(c, optuna, study, dists)
    pending, done, round_ = _resume(optuna, study, dists)
    policy = Policy(name="optuna_population_search", requires=(("metric", metric),))

    def train_round(trials: list, positions: list[int], r: int) -> None:
        """Trains ``trials`` as members ``positions`` of a population keyed ``fold_in(key, r)``
        (the other members are padding), reporting to the pruner and telling each trial."""
        rows = [trials[-1].params] * k
        members: list[int | None] = [None] * k  # trial index of each member; None: padding
        for i, (trial, pos) in enumerate(zip(trials, positions)):
            rows[pos], members[pos] = trial.params, i
            trial.set_user_attr("jaxlr_round", r)
            trial.set_user_attr("jaxlr_member", pos)
        pop = Population(
            init_fn,
            step_fn,
            sp.configs(rows, k),
            key=jax.random.fold_in(key, r),
            loss=loss,
            divergence_threshold=divergence_threshold,
            policy=policy,
            eval_fn=eval_fn,
            eval_every=eval_every,
            progress=False,  # the search's own bar counts trials
        )
        stream, step = iter(batches()), 0
        while members:
            m = min(report_every, num_steps - step)
            pop.train(stream, m, steps_per_call=m)
            step += m
            values = np.asarray(pop.host_metrics()[0][metric][:, -1], float)
            carry = pop.host_carry()
            live, logged = [], {}
            for pos, ti in enumerate(members):
                if ti is None:
                    continue
                trial, v = trials[ti], float(values[pos])
                bad = not bool(carry.alive[pos]) or not math.isfinite(v)
                if not bad:
                    trial.report(v, step)
                    logged[f"trial_{trial.number}"] = v
                if bad or step >= num_steps or trial.should_prune():
                    trial.set_user_attr("jaxlr_steps", step)
                    trial.set_user_attr("diverged", bad)
                    if bad or step >= num_steps:
                        _tell(optuna, study, trial, bad=bad, score=v, diverged=diverged)
                    else:
                        study.tell(trial, state=optuna.trial.TrialState.PRUNED)
                    continue
                live.append(pos)
            if logger is not None and logged:
                logger.log(step, {metric: np.asarray(list(logged.values()))}, members=list(logged))
            if not live or step >= num_steps:
                break
            # Pruned members leave; the chunk size stays, so the compiled step serves the
            # smaller population (their padded rows still compute, but nothing compiles again).
            if len(live) < len(members):
                pop.select(live)
                members = [members[p] for p in live]

    # Trials a killed search left RUNNING have reported intermediate values that the pruner
    # reads; training them again would mix two runs in one trial. Each is failed (marked
    # interrupted, not counted) and its parameters asked again as a fresh trial, trained in its
    # original round at its original member position: the same init key as the killed attempt.
    bar = _bar("optuna_population_search", num_trials, done, progress)
    retry: dict[int, list] = {}
    held: list = []  # asked while fetching retries: the next rounds take them first
    for t in pending:
        retry.setdefault(t.user_attrs.get("jaxlr_round", -1), []).append(t)
    for r, old in sorted(retry.items()):
        positions = [t.user_attrs.get("jaxlr_member", -1) for t in old]
        if r >= 0 and len(set(positions)) == len(old) and all(0 <= p < k for p in positions):
            groups = [(r, old, positions)]
        else:  # positions unknown, or another batch_size: new rounds, packed
            starts = range(0, len(old), k)
            groups = [
                (round_ + j, old[i : i + k], list(range(len(old[i : i + k]))))
                for j, i in enumerate(starts)
            ]
            round_ += len(groups)
        for r_, group, pos in groups:
            for t in group:
                study.enqueue_trial(t.params, user_attrs={"jaxlr_retry_of": t.number})
                t.set_user_attr(INTERRUPTED, True)
                study.tell(t, state=optuna.trial.TrialState.FAIL)
            # Optuna hands out the oldest waiting trial first: trials the user enqueued before
            # the kill come out ahead of the retries; they keep their turn in the next rounds.
            fresh: list = []
            while len(fresh) < len(group):
                t = study.ask(dists)
                (fresh if "jaxlr_retry_of" in t.user_attrs else held).append(t)
            train_round(fresh, pos, r_)
            done += len(fresh)
            bar.update(len(fresh))
    while done < num_trials or held:
        n = min(k, max(num_trials - done, len(held)))
        asked, held = held[:n], held[n:]
        asked += [study.ask(dists) for _ in range(n - len(asked))]
        train_round(asked, list(range(n)), round_)
        done += n
        bar.update(n)
        round_ += 1
    return study
