"""Meta-training of learned LR policies: antithetic OpenES over the policy's parameters, every
member trained on a batch of tasks in one compiled generation; saved and loaded policies."""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.flatten_util import ravel_pytree

from jaxlr._src.validate import Checker
from jaxlr.schedules import constant
from jaxlr.transforms import current_lr, learned_lr, mlp_policy, scale_by_schedule
from jaxlr.transforms._learned import MLPPolicy


class Task(NamedTuple):
    """A small training task: static functions and sizes; the data comes from ``batch_fn``.

    ``init_fn(key) -> params``; ``loss_fn(params, batch) -> loss`` (positive); ``batch_fn(key,
    step) -> batch`` (pure, so every member sees the same data for one key); ``val_fn(params) ->
    loss`` on held-out data; ``optimizer`` the unit-LR Optax direction (``optax.adam(1.0)``,
    ``optax.sgd(1.0, momentum=0.9)``); ``init_value`` the untuned default LR, also the
    policy's starting LR; ``min_value``/``max_value`` the policy's hard bounds.
    """

    name: str
    init_fn: Callable[[jax.Array], Any]
    loss_fn: Callable[[Any, Any], jax.Array]
    batch_fn: Callable[[jax.Array, jax.Array], Any]
    val_fn: Callable[[Any], jax.Array]
    optimizer: optax.GradientTransformation
    total_steps: int
    init_value: float
    min_value: float
    max_value: float


class TaskRun(NamedTuple):
    """What one training run of :func:`run_task` did."""

    val_loss: jax.Array  # () final validation loss
    losses: jax.Array  # (T,) minibatch loss of each step
    lrs: jax.Array  # (T,) the LR each update applied (jaxlr.transforms.current_lr)
    grad_norms: jax.Array  # (T,) l2 norm of each step's gradient
    grad_l1: jax.Array  # (T,) l1 norm of each step's gradient (refinement for Adam)


def _l1(tree: Any) -> jax.Array:
    return sum(jnp.sum(jnp.abs(x)) for x in jax.tree.leaves(tree))


def run_task(
    task: Task,
    make_tx: Callable[[optax.GradientTransformation], optax.GradientTransformation],
    key: jax.Array,
) -> TaskRun:
    r"""Trains ``task`` once with the optimizer ``make_tx(task.optimizer)``, a ``lax.scan``.

    .. math:: \theta_{t+1} = \theta_t + u_t, \quad (u_t, s_{t+1}) =
        \text{tx.update}(\nabla L(\theta_t; B_t), s_t, \theta_t, \text{value}=L(\theta_t; B_t))

    with :math:`B_t` = ``task.batch_fn(key, t)``. Pure and traceable: ``vmap`` it over keys or
    over the arrays ``make_tx`` closes over (a policy population, an LR grid).

    Args:
        task: a :class:`Task`.
        make_tx: builds the whole optimizer from the task's unit-LR one, e.g.
            ``lambda opt: optax.chain(opt, jaxlr.transforms.scale_by_schedule(s))``.
        key: the run's key (initialization and data).

    Returns:
        A :class:`TaskRun`; the LR comes from ``current_lr(state, optimizer_lr=1.0)``.

    Examples:
        >>> import jax, jax.numpy as jnp, optax, jaxlr
        >>> task = jaxlr.auto.Task(
        ...     "quadratic", init_fn=lambda k: jnp.ones(2),
        ...     loss_fn=lambda w, b: 0.5 * jnp.sum(w**2) + 1.0,
        ...     batch_fn=lambda k, t: None, val_fn=lambda w: 0.5 * jnp.sum(w**2) + 1.0,
        ...     optimizer=optax.sgd(1.0), total_steps=3, init_value=0.5, min_value=0.01,
        ...     max_value=1.0)
        >>> run = jaxlr.auto.run_task(
        ...     task, lambda opt: optax.chain(opt, jaxlr.transforms.scale_by_schedule(0.5)),
        ...     jax.random.key(0))
        >>> round(float(run.val_loss), 6)  # w = 0.5^3: 1 + 0.5 * 2 * 0.125^2
        1.015625
    """
    tx = make_tx(task.optimizer)
    k_init, k_data = jax.random.split(key)
    params = task.init_fn(k_init)

    def body(carry, t):
        p, s = carry
        batch = task.batch_fn(k_data, t)
        loss, g = jax.value_and_grad(task.loss_fn)(p, batch)
        u, s = tx.update(g, s, p, value=loss)
        lr = current_lr(s, optimizer_lr=1.0)
        return (optax.apply_updates(p, u), s), (loss, lr, optax.tree.norm(g), _l1(g))

    (params, _), (losses, lrs, norms, l1) = jax.lax.scan(
        body, (params, tx.init(params)), jnp.arange(task.total_steps)
    )
    return TaskRun(task.val_fn(params), losses, lrs, norms, l1)


def policy_tx(
    policy: Any, params: Any, task: Task, *, every: int = 10, max_factor: float = 2.0
) -> Callable[[optax.GradientTransformation], optax.GradientTransformation]:
    """``make_tx`` for :func:`run_task`: the task's optimizer chained with :func:`learned_lr`
    at the task's default LR, bounds and horizon (one line to apply a policy to a new task).

    Examples:
        >>> import jax, jaxlr, optax
        >>> policy = jaxlr.transforms.mlp_policy(("progress", "log_lr"))
        >>> task = jaxlr.auto.Task("t", None, None, None, None, optax.sgd(1.0), 100, 0.1,
        ...                        0.001, 1.0)
        >>> make = jaxlr.auto.policy_tx(policy, policy.init(jax.random.key(0)), task)
        >>> type(make(task.optimizer)).__name__
        'GradientTransformationExtraArgs'
    """
    return lambda opt: optax.chain(
        opt,
        learned_lr(
            policy,
            params,
            init_value=task.init_value,
            min_value=task.min_value,
            max_value=task.max_value,
            every=every,
            max_factor=max_factor,
            total_steps=task.total_steps,
        ),
    )


def _constant_tx(lr: Any) -> Callable:
    """``make_tx`` for :func:`run_task` with a constant LR (traced: vmap over a grid)."""
    return lambda opt: optax.chain(opt, scale_by_schedule(constant(value=lr)))


class ESState(NamedTuple):
    """OpenES search state (arrays only: it jits, checkpoints and resumes)."""

    mean: jax.Array  # (d,) the flat policy parameters being searched
    opt_state: Any  # Adam's state on the mean
    generation: jax.Array  # () int32, generations done
    best: jax.Array  # (d,) the member with the lowest fitness seen
    best_fitness: jax.Array  # () its fitness


class MetaTrainResult(NamedTuple):
    """What :func:`meta_train` found."""

    policy: MLPPolicy  # the policy's structure
    params: Any  # the trained parameters: the search mean (a pytree like policy.init)
    best_params: Any  # the best single member seen
    fitness: np.ndarray  # (G, P) every member's fitness per generation (mean log regret)
    mean_fitness: np.ndarray  # (G,) fitness of the mean (the policy returned) per generation
    diverged: np.ndarray  # (G,) members x tasks x seeds that diverged (scored as the cap)
    reference: np.ndarray  # (num_tasks,) best constant LR's validation loss per task
    reference_lr: np.ndarray  # (num_tasks,) that LR
    seconds: float  # wall time of the search (compilation included)


def _centered_ranks(x: jax.Array) -> jax.Array:
    """Ranks scaled to [-0.5, 0.5] (the lowest fitness gets -0.5)."""
    ranks = jnp.argsort(jnp.argsort(x)).astype(jnp.float32)
    return ranks / jnp.maximum(x.shape[0] - 1, 1) - 0.5


def meta_train(
    policy: MLPPolicy,
    tasks: Sequence[Task],
    *,
    key: jax.Array,
    num_generations: int = 50,
    population: int = 16,
    sigma: float = 0.1,
    learning_rate: float = 0.05,
    num_seeds: int = 2,
    every: int = 10,
    max_factor: float = 2.0,
    grid: Sequence[float] = (0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 32.0),
    diverged_score: float = 3.0,
    checkpoint_dir: str | Path | None = None,
    checkpoint_every: int = 10,
    progress: bool = True,
) -> MetaTrainResult:
    r"""Meta-trains a policy's parameters by antithetic OpenES over a batch of tasks.

    Each generation draws :math:`P/2` directions :math:`\epsilon_i \sim N(0, I)` and evaluates
    the members :math:`\mu \pm \sigma\epsilon_i` and the mean on every task with ``num_seeds``
    seeds (the same seeds for every member: common random numbers); the generation is one
    compiled program, ``vmap`` over members and seeds of each task. A member's fitness is

    .. math::
        f = \frac{1}{|\mathcal T|}\sum_{\tau}\frac{1}{S}\sum_s
        \min\Bigl(\log\frac{L^{\text{val}}_{\tau,s}}{L^{\text{val}}_{\tau,\text{best const}}},
        c\Bigr)

    (a non-finite validation loss scores the cap :math:`c` = ``diverged_score``: it never
    poisons the search), where :math:`L^{\text{val}}_{\tau,\text{best const}}` is the best
    constant LR of ``task.init_value * grid`` on that task (so tasks of different difficulty
    are comparable). The mean moves by Adam on the centred-rank estimate

    .. math:: \hat\nabla = \frac{1}{P\sigma}\sum_i (r^+_i - r^-_i)\,\epsilon_i

    Args:
        policy: an :class:`MLPPolicy`; the search starts at ``policy.init(key)`` (a constant LR).
        tasks: :class:`Task` s (different widths, optimizers, horizons: each is traced once).
        key: PRNG key; generation ``g`` uses ``fold_in(key, g)``, so a resumed search equals an
            uninterrupted one.
        num_generations: generations in total (a resumed run continues up to it).
        population: :math:`P`, an even number of members.
        sigma: :math:`\sigma`, the perturbation scale.
        learning_rate: Adam's step size on the mean.
        num_seeds: seeds per task and generation.
        every, max_factor: the controller's decision interval and largest factor.
        grid: LR multipliers of ``task.init_value`` for the best-constant reference.
        diverged_score: the cap :math:`c` (a diverged run scores it).
        checkpoint_dir: save the search every ``checkpoint_every`` generations (orbax, with
            its settings in ``search.json``) and resume from the latest checkpoint there; a
            checkpoint of another search (another ``key``, ``population``, ``sigma``,
            ``learning_rate``, ``num_seeds``, ``every``, ``max_factor``, ``grid``,
            ``diverged_score``, policy or tasks) is refused before any generation runs.
        progress: show a tqdm bar over generations.

    Returns:
        A :class:`MetaTrainResult`.

    Raises:
        ValueError: an odd or too small ``population``, no tasks, non-positive counts; a
            ``checkpoint_dir`` holding another search.

    Examples:
        >>> import jax, jax.numpy as jnp, optax, jaxlr
        >>> task = jaxlr.auto.Task(
        ...     "quadratic", init_fn=lambda k: jnp.ones(2),
        ...     loss_fn=lambda w, b: 0.5 * jnp.sum(w**2) + 0.1,
        ...     batch_fn=lambda k, t: None, val_fn=lambda w: 0.5 * jnp.sum(w**2) + 0.1,
        ...     optimizer=optax.sgd(1.0), total_steps=20, init_value=0.05, min_value=0.01,
        ...     max_value=1.0)
        >>> policy = jaxlr.transforms.mlp_policy(("progress", "log_lr"), hidden=4)
        >>> result = jaxlr.auto.meta_train(policy, [task], key=jax.random.key(0),
        ...                                num_generations=3, population=4, progress=False)
        >>> result.fitness.shape, bool(result.mean_fitness[-1] < result.mean_fitness[0])
        ((3, 4), True)

    References:
        Salimans, Ho, Chen, Sidor & Sutskever, Evolution Strategies as a Scalable Alternative
        to Reinforcement Learning, 2017; Metz et al., VeLO: Training Versatile Learned
        Optimizers by Scaling Up, 2022.
    """
    import time

    c = Checker("meta_train")
    if isinstance(population, bool) or not isinstance(population, int) or population < 2:
        c.fail(f"population must be an even int >= 2, got population={population!r}")
    if population % 2:
        c.fail(f"population must be even (antithetic pairs), got population={population}")
    for name, v in (
        ("num_generations", num_generations),
        ("num_seeds", num_seeds),
        ("checkpoint_every", checkpoint_every),
    ):
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            c.fail(f"{name} must be an int >= 1, got {name}={v!r}")
    tasks = list(tasks)
    if not tasks or not all(isinstance(t, Task) for t in tasks):
        c.fail(f"tasks must be a non-empty sequence of jaxlr.auto.Task, got {tasks!r}")
    c.positive("sigma", sigma)
    c.positive("learning_rate", learning_rate)
    c.positive("grid", np.asarray(grid, float))
    c.positive("diverged_score", diverged_score)
    started = time.perf_counter()
    settings = _fingerprint(
        policy,
        tasks,
        key=key,
        population=population,
        sigma=sigma,
        learning_rate=learning_rate,
        num_seeds=num_seeds,
        every=every,
        max_factor=max_factor,
        grid=grid,
        diverged_score=diverged_score,
    )
    if checkpoint_dir is not None:
        _check_fingerprint(checkpoint_dir, settings)

    k_init, k_ref, k_search = jax.random.split(key, 3)
    flat0, unravel = ravel_pytree(policy.init(k_init))
    adam = optax.adam(learning_rate)
    cap = jnp.float32(diverged_score)

    # the best constant LR of each task (mean over reference seeds), one compiled call per task
    ref_keys = jax.random.split(k_ref, num_seeds)
    reference, reference_lr = [], []
    for task in tasks:
        lrs = task.init_value * jnp.asarray(grid, jnp.float32)

        def const_val(lr, k, task=task):
            return run_task(task, _constant_tx(lr), k).val_loss

        vals = jax.jit(jax.vmap(jax.vmap(const_val, (None, 0)), (0, None)))(lrs, ref_keys)
        vals = np.where(np.isfinite(vals), vals, np.inf).mean(axis=1)
        reference.append(float(vals.min()))
        reference_lr.append(float(lrs[int(np.argmin(vals))]))
    ref = jnp.asarray(reference, jnp.float32)

    def score(flat, task, i, keys):
        params = unravel(flat)
        make = policy_tx(policy, params, task, every=every, max_factor=max_factor)
        vals = jax.vmap(lambda k: run_task(task, make, k).val_loss)(keys)
        r = jnp.log(vals / ref[i])
        bad = ~jnp.isfinite(r)
        return jnp.mean(jnp.where(bad, cap, jnp.minimum(r, cap))), jnp.sum(bad)

    def fitness(flats, gen_key):
        total, diverged = jnp.zeros(flats.shape[0]), jnp.zeros([], jnp.int32)
        for i, task in enumerate(tasks):
            keys = jax.random.split(jax.random.fold_in(gen_key, i), num_seeds)
            f, bad = jax.vmap(lambda fl, task=task, i=i, keys=keys: score(fl, task, i, keys))(flats)
            total, diverged = total + f, diverged + jnp.sum(bad)
        return total / len(tasks), diverged

    @jax.jit
    def generation(state: ESState):
        gen_key = jax.random.fold_in(k_search, state.generation)
        k_eps, k_eval = jax.random.split(gen_key)
        eps = jax.random.normal(k_eps, (population // 2, flat0.size))
        members = jnp.concatenate([state.mean + sigma * eps, state.mean - sigma * eps])
        f, diverged = fitness(jnp.concatenate([members, state.mean[None]]), k_eval)
        f_members, f_mean = f[:-1], f[-1]
        r = _centered_ranks(f_members)
        half = population // 2
        grad = ((r[:half] - r[half:]) @ eps) / (population * sigma)
        updates, opt_state = adam.update(grad, state.opt_state, state.mean)
        i = jnp.argmin(f_members)
        better = f_members[i] < state.best_fitness
        new = ESState(
            optax.apply_updates(state.mean, updates),
            opt_state,
            state.generation + 1,
            jnp.where(better, members[i], state.best),
            jnp.where(better, f_members[i], state.best_fitness),
        )
        return new, (f_members, f_mean, diverged)

    state = ESState(flat0, adam.init(flat0), jnp.zeros([], jnp.int32), flat0, jnp.float32(jnp.inf))
    history = {
        "fitness": np.zeros((0, population), np.float32),
        "mean_fitness": np.zeros(0, np.float32),
        "diverged": np.zeros(0, np.int32),
    }
    if checkpoint_dir is not None:
        restored = _restore(checkpoint_dir, state, history)
        if restored is not None:
            state, history = restored
    done = int(state.generation)
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=num_generations, initial=done, desc="meta_train", unit="gen")
    rows = {k: [v] for k, v in history.items()}
    try:
        for g in range(done, num_generations):
            state, (f, fm, dv) = generation(state)
            rows["fitness"].append(np.asarray(f)[None])
            rows["mean_fitness"].append(np.asarray(fm)[None])
            rows["diverged"].append(np.asarray(dv)[None])
            if bar is not None:
                bar.update(1)
                bar.set_postfix(mean_fitness=float(fm), diverged=int(dv))
            if checkpoint_dir is not None and (
                (g + 1) % checkpoint_every == 0 or g + 1 == num_generations
            ):
                history = {k: np.concatenate(v) for k, v in rows.items()}
                _save(checkpoint_dir, state, history, settings)
    finally:
        if bar is not None:
            bar.close()
    history = {k: np.concatenate(v) for k, v in rows.items()}
    return MetaTrainResult(
        policy,
        unravel(state.mean),
        unravel(state.best),
        history["fitness"],
        history["mean_fitness"],
        history["diverged"],
        np.asarray(reference),
        np.asarray(reference_lr),
        time.perf_counter() - started,
    )


def _ocp():
    try:
        import orbax.checkpoint as ocp
    except ImportError:
        raise ImportError(
            "saving policies and meta-training checkpoints need orbax-checkpoint: "
            "pip install 'jaxlr[checkpoint]'"
        ) from None
    return ocp


SETTINGS_FILE = "search.json"


def _json(x: Any) -> Any:
    """A number, array or sequence as JSON-ready data (exact: floats as Python floats)."""
    return np.asarray(x).tolist()


def _fingerprint(policy: MLPPolicy, tasks: Sequence[Task], *, key: jax.Array, **settings) -> dict:
    """What makes two :func:`meta_train` runs the same search, as JSON-ready data: the key's
    bits, the search settings, the policy's structure and the tasks (names, horizons, LRs,
    bounds, the qualified names of their functions and a digest of their optimizers)."""
    key = jnp.asarray(key)
    typed = jnp.issubdtype(key.dtype, jax.dtypes.prng_key)
    bits = jax.random.key_data(key) if typed else key

    def fn_name(f):
        return f"{getattr(f, '__module__', '?')}.{getattr(f, '__qualname__', type(f).__name__)}"

    out = {"key": _json(bits)}
    out.update({k: _json(v) for k, v in settings.items()})
    out["policy"] = policy.to_config() if isinstance(policy, MLPPolicy) else repr(policy)
    out["tasks"] = [
        {
            "name": t.name,
            "total_steps": _json(t.total_steps),
            "init_value": _json(t.init_value),
            "min_value": _json(t.min_value),
            "max_value": _json(t.max_value),
            "functions": [fn_name(f) for f in (t.init_fn, t.loss_fn, t.batch_fn, t.val_fn)],
            "optimizer": _optimizer_print(t),
        }
        for t in tasks
    ]
    # a JSON round trip, so the comparison on resume sees what the file holds (tuples: lists)
    return json.loads(json.dumps(out))


def _optimizer_print(task: Task) -> str:
    """A digest of the task's optimizer: its update traced on the parameters' shapes (the
    traced program holds its constants, e.g. Adam's betas), so ``optax.sgd`` and ``optax.adam``
    differ while two builds of the same optimizer agree. Nothing runs."""
    params = jax.eval_shape(task.init_fn, jax.random.key(0))
    state = jax.eval_shape(task.optimizer.init, params)
    program = jax.make_jaxpr(task.optimizer.update)(params, state, params)
    return hashlib.sha256(str(program).encode()).hexdigest()[:16]


def _check_fingerprint(directory, settings: dict) -> None:
    """Refuses to resume a checkpoint written by a search with other settings."""
    path = Path(directory).resolve()
    if not path.exists():
        return
    file = path / SETTINGS_FILE
    ocp = _ocp()
    with ocp.CheckpointManager(path) as mgr:
        if mgr.latest_step() is None:
            return
    if not file.exists():
        raise ValueError(
            f"meta_train: checkpoint_dir={str(directory)!r} holds another search (no "
            f"{SETTINGS_FILE} records its settings); use a new directory"
        )
    saved = json.loads(file.read_text())
    differs = sorted(k for k in saved.keys() | settings.keys() if saved.get(k) != settings.get(k))
    if differs:
        raise ValueError(
            f"meta_train: checkpoint_dir={str(directory)!r} holds another search "
            f"(differs in {differs}); use a new directory"
        )


def _write_json(file: Path, data: Any) -> None:
    """Writes ``data`` as JSON atomically (a temporary file renamed over ``file``)."""
    tmp = file.with_name(f".{file.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(data, indent=1, sort_keys=True))
    os.replace(tmp, file)


def _save(directory, state: ESState, history: dict, settings: dict) -> None:
    ocp = _ocp()
    path = Path(directory).resolve()
    path.mkdir(parents=True, exist_ok=True)
    _write_json(path / SETTINGS_FILE, settings)
    options = ocp.CheckpointManagerOptions(max_to_keep=2, enable_async_checkpointing=False)
    with ocp.CheckpointManager(path, options=options) as mgr:
        tree = {"state": state, "history": history}
        mgr.save(int(state.generation), args=ocp.args.StandardSave(tree))
        mgr.wait_until_finished()


def _restore(directory, state: ESState, history: dict):
    """The latest checkpoint in ``directory``, restored against this search's structure."""
    ocp = _ocp()
    path = Path(directory).resolve()
    if not path.exists():
        return None
    with ocp.CheckpointManager(path) as mgr:
        step = mgr.latest_step()
        if step is None:
            return None
        hist_target = {k: np.zeros((step, *v.shape[1:]), v.dtype) for k, v in history.items()}
        target = {"state": state, "history": hist_target}
        try:
            tree = mgr.restore(step, args=ocp.args.StandardRestore(target))
        except (ValueError, KeyError) as e:
            raise ValueError(
                f"meta_train: checkpoint_dir={str(directory)!r} holds another search "
                f"({type(e).__name__}: {e}); use a new directory"
            ) from None
    st = tree["state"]
    return (ESState(**st) if isinstance(st, dict) else ESState(*st)), dict(tree["history"])


def save_policy(directory: str | Path, policy: MLPPolicy, params: Any) -> None:
    """Saves a policy: its structure as ``policy.json`` and its parameters with orbax.

    ``params`` must have the structure and shapes ``policy.init`` gives (one policy, not a
    stacked population: save ``jax.tree.map(lambda x: x[i], stacked)``) and floating leaves;
    their dtypes are kept by :func:`load_policy`.

    Raises:
        ValueError: ``policy`` not an :func:`jaxlr.transforms.mlp_policy`, or ``params`` that
            do not fit it (other keys, shapes, a non-float leaf).

    Examples:
        >>> import jax, jaxlr, tempfile
        >>> policy = jaxlr.transforms.mlp_policy(("progress", "log_lr"), hidden=4)
        >>> params = policy.init(jax.random.key(0))
        >>> d = tempfile.mkdtemp() + "/policy"
        >>> jaxlr.auto.save_policy(d, policy, params)
        >>> p2, params2 = jaxlr.auto.load_policy(d)
        >>> p2 == policy, bool((params2["w"] == params["w"]).all())
        (True, True)
    """
    c = Checker("save_policy")
    if not isinstance(policy, MLPPolicy):
        c.fail(f"policy must be a jaxlr.transforms.mlp_policy(...), got {policy!r}")
    params = jax.tree.map(jnp.asarray, params)
    target = jax.eval_shape(policy.init, jax.random.key(0))
    want = {k: v.shape for k, v in target.items()}
    got = (
        {k: getattr(v, "shape", None) for k, v in params.items()}
        if isinstance(params, dict)
        else None
    )
    if got != want:
        c.fail(
            f"params must fit {policy!r} (one policy's policy.init(key) shapes {want}), got "
            f"{got if got is not None else type(params).__name__}"
        )
    bad = sorted(k for k, v in params.items() if not jnp.issubdtype(v.dtype, jnp.floating))
    if bad:
        c.fail(f"params must be floating arrays, got non-float {bad}")
    ocp = _ocp()
    directory = Path(directory).resolve()
    directory.mkdir(parents=True, exist_ok=True)
    config = {**policy.to_config(), "dtypes": {k: str(v.dtype) for k, v in params.items()}}
    (directory / "policy.json").write_text(json.dumps(config, indent=1))
    with ocp.StandardCheckpointer() as ckpt:
        ckpt.save(directory / "params", params, force=True)
        ckpt.wait_until_finished()


def load_policy(directory: str | Path) -> tuple[MLPPolicy, Any]:
    """Loads ``(policy, params)`` written by :func:`save_policy` (parameters restored against
    the structure ``policy.init`` gives, so a mismatch is an error; each in its saved dtype).

    Apply it to a new task in one line:
    ``jaxlr.transforms.learned_lr(*jaxlr.auto.load_policy(d), init_value=..., ...)``.

    Examples:
        >>> import jaxlr
        >>> jaxlr.auto.load_policy("/nonexistent")
        Traceback (most recent call last):
        ...
        ValueError: load_policy: no policy.json in directory='/nonexistent'
    """
    c = Checker("load_policy")
    directory = Path(directory).resolve()
    config_path = directory / "policy.json"
    if not config_path.exists():
        c.fail(f"no policy.json in directory={str(directory)!r}")
    config = json.loads(config_path.read_text())
    policy = mlp_policy(
        tuple(config["features"]), hidden=config["hidden"], recurrent=config["recurrent"]
    )
    target = jax.eval_shape(policy.init, jax.random.key(0))
    dtypes = config.get("dtypes", {})  # the saved dtypes (bfloat16 stays bfloat16)
    target = {
        k: jax.ShapeDtypeStruct(v.shape, jnp.dtype(dtypes.get(k, v.dtype)))
        for k, v in target.items()
    }
    ocp = _ocp()
    with ocp.StandardCheckpointer() as ckpt:
        params = ckpt.restore(directory / "params", target)
    return policy, params
