"""jaxlr.sweep.pbt: exploit/explore inside jit, lineage, exported schedule, bad input."""

from __future__ import annotations

import re

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from test_population import KEY, batches, init_fn, numpy_member, w0s
from test_population_halving import XV, YV, with_val

import jaxlr

T, INTERVAL = 16, 4
CONFIGS = jaxlr.sweep.grid(lr=[0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.15, 0.2], momentum=0.5)
SPACE = {"lr": ("log_uniform", 1e-3, 0.3)}
FAST = {"xla_backend_optimization_level": 0}  # compile-bound tests: skip LLVM's optimizations
OPTS = dict(
    key=KEY,
    num_steps=T,
    interval=INTERVAL,
    metric="val",
    space=SPACE,
    progress=False,
    compiler_options=FAST,
)


@pytest.fixture(scope="module")
def traced_pbt():
    traces = []

    def counted(state, cfg, batch):
        traces.append(1)
        return with_val(state, cfg, batch)

    res = jaxlr.sweep.pbt(
        init_fn, counted, CONFIGS, batches(steps=T), fraction=0.25, resample_probability=0.0, **OPTS
    )
    again = jaxlr.sweep.pbt(
        init_fn,
        counted,
        jaxlr.sweep.grid(lr=np.linspace(0.01, 0.1, 8), momentum=0.5),
        batches(steps=T, seed=5),
        fraction=0.25,
        resample_probability=0.0,
        **OPTS,
    )
    return res, again, traces


def test_pbt_compiles_once_for_every_interval_and_new_values(traced_pbt):
    res, again, traces = traced_pbt
    assert len(traces) == 1  # 4 exploit rounds x 2 runs, new hyperparameter values: one trace
    assert not np.array_equal(res.metrics["val"], again.metrics["val"])


def test_exploit_copies_the_top_into_the_bottom_and_perturbs_by_08_or_12(traced_pbt):
    res, _, _ = traced_pbt
    k, n = 8, 2
    lr = res.lr_history  # [K, T]: the lr each slot applied
    for t in range(T):
        parents = res.lineage[t]
        if (t + 1) % INTERVAL or t + 1 == T:
            np.testing.assert_array_equal(parents, np.arange(k))
            if t + 1 < T:
                np.testing.assert_array_equal(lr[:, t + 1], lr[:, t])
            continue
        order = np.argsort(res.metrics["val"][:, t], kind="stable")
        top, bottom = order[:n], order[k - n :]
        moved = np.flatnonzero(parents != np.arange(k))
        assert set(moved) == set(bottom) and set(parents[bottom]) <= set(top)
        for i in range(k):
            if i in bottom:
                ratio = lr[i, t + 1] / lr[parents[i], t]
                assert (
                    min(abs(ratio - 0.8), abs(ratio - 1.2)) < 1e-5
                    or np.isclose(lr[i, t + 1], [1e-3, 0.3], rtol=1e-5).any()
                )
            else:
                assert lr[i, t + 1] == lr[i, t]


def test_the_exported_schedule_retrains_the_winner_from_scratch_with_optax(traced_pbt):
    res, _, _ = traced_pbt
    schedule = res.schedule()
    path = res.ancestors()
    np.testing.assert_allclose([float(schedule(t)) for t in range(T)], res.lr_path(), rtol=1e-7)
    # One call: optax.sgd(schedule) from the founder's initial weights on the same batches.
    tx = optax.sgd(schedule, momentum=0.5)
    data = jax.tree.map(lambda *xs: jnp.stack(xs), *batches(steps=T))

    def body(carry, b):
        w, o = carry
        g = jax.grad(lambda w: jnp.mean((b["x"] @ w - b["y"]) ** 2))(w)
        u, o = tx.update(g, o, w)
        return (optax.apply_updates(w, u), o), None

    w0 = jnp.asarray(w0s(8)[path[0]])
    (w, _), _ = jax.jit(lambda w0: jax.lax.scan(body, (w0, tx.init(w0)), data))(w0)
    val = float(np.mean((XV @ np.asarray(w) - YV) ** 2))
    assert val == pytest.approx(res.metrics["val"][res.winner, -1], rel=1e-4)
    assert res.winner == res.best("val")["index"]


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(fraction=0.0), r"pbt: fraction must be in \(0, 0.5\], got fraction=0.0"),
        (dict(fraction=0.6), r"pbt: fraction must be in \(0, 0.5\], got fraction=0.6"),
        (
            dict(configs=jaxlr.sweep.grid(lr=[0.1], momentum=0.5)),
            r"pbt: the population needs at least 2 members, got K=1",
        ),
        (dict(metric="acc"), r"pbt: metric='acc' is not a metric of step_fn"),
        (dict(lr="learning_rate"), r"pbt: lr='learning_rate' is not a metric of step_fn"),
        (dict(space={"beta": ("uniform", 0.0, 1.0)}), r"pbt: space names 'beta', which is not in"),
        (
            dict(space={"lr": ("normal", 0.0, 1.0)}),
            r"pbt: space\['lr'\]=\('normal', 0.0, 1.0\): give \(kind, low, high\) with kind in",
        ),
        (dict(interval=0), r"pbt: interval must be an int >= 1, got interval=0"),
        (dict(resample_probability=1.5), r"pbt: resample_probability must be in \[0, 1\]"),
        (
            dict(perturb=(np.float32(np.nan), 1.2)),
            r"pbt: perturb must be two factors > 0, got perturb=",
        ),
    ],
)
def test_pbt_rejects_bad_input_before_compiling(kwargs, match, monkeypatch):
    compiled = []
    real = jax.stages.Lowered.compile
    monkeypatch.setattr(
        jax.stages.Lowered,
        "compile",
        lambda self, *a, **k: compiled.append(1) or real(self, *a, **k),
    )
    args = {**OPTS, "configs": CONFIGS, **kwargs}
    cfg = args.pop("configs")
    with pytest.raises(ValueError, match=match):
        jaxlr.sweep.pbt(init_fn, with_val, cfg, batches(steps=T), **args)
    assert not compiled


def test_pbt_keeps_big_integers_exactly_and_reports_a_refilled_divergence():
    """Slot 3 (lr=3.0) diverges before the exploit at step 4 and is refilled: it ends healthy
    (diverged=False, diverged_step=-1) and its divergence is listed at the step a NumPy run of
    the same member crosses the threshold. Integer hyperparameters past 2**24 stay exact in
    slots that are never replaced (float32 holds 2**24 + 1 as 2**24)."""
    k, steps, threshold = 4, 8, 1e3
    seeds = [2**24 + 1, 2**24 + 3, 2**24 + 5, 2**24 + 7]
    cfg = {
        "lr": np.array([0.01, 0.02, 0.05, 3.0], np.float32),
        "momentum": np.zeros(k, np.float32),
        "seed": np.array(seeds, np.int32),
    }
    res = jaxlr.sweep.pbt(
        init_fn,
        with_val,
        cfg,
        batches(steps=steps),
        key=KEY,
        num_steps=steps,
        interval=4,
        metric="val",
        space={"lr": ("log_uniform", 1e-3, 0.3), "seed": ("uniform", 0, 2**26)},
        perturb=(np.float32(0.8), np.float32(1.2)),  # NumPy scalars are numbers too
        divergence_threshold=threshold,
        progress=False,
        compiler_options=FAST,
    )
    losses, _ = numpy_member(w0s(k)[3], 3.0, 0.0, batches(steps=steps))
    bad = int(np.flatnonzero(~(losses <= threshold))[0])
    assert bad < 4  # the premise: it diverges before the exploit
    assert res.divergences == [(bad, 3)]
    assert res.lineage[3, 3] != 3 and not res.diverged.any()
    assert res.diverged_step.tolist() == [-1] * k
    assert np.isfinite(res.metrics["val"][3, 4:]).all()
    kept = [i for i in range(k) if (res.lineage[:, i] == i).all()]
    assert len(kept) == 3
    assert [int(res.hyperparameters["seed"][i]) for i in kept] == [seeds[i] for i in kept]


def test_pbt_names_a_metric_that_is_not_a_scalar():
    def wide(state, cfg, batch):
        state, m = with_val(state, cfg, batch)
        return state, {**m, "val": jnp.stack([m["val"], m["val"]])}

    with pytest.raises(
        ValueError,
        match=r"pbt: metric='val' must be a scalar per member to rank by, got shape "
        r"\(2,\)",
    ):
        jaxlr.sweep.pbt(init_fn, wide, CONFIGS, batches(steps=T), **OPTS)


# -- a config pytree with a jaxlr schedule: PBT perturbs its leaves, the LR comes from the state --
S = jaxlr.schedules
STEPS = 24


def chain(cfg):
    """The members' optimizer, built from the config at every step (so a perturbed leaf acts
    at the next step): decoupled weight decay, then Adam with the config's jaxlr schedule."""
    return optax.chain(optax.add_decayed_weights(cfg["weight_decay"]), optax.adam(cfg["schedule"]))


def tx_init(cfg, key):
    w = 0.1 * jax.random.normal(key, (3,))
    return w, chain(cfg).init(w)


def tx_step(state, cfg, batch):
    w, opt = state
    loss, g = jax.value_and_grad(lambda w: jnp.mean((batch["x"] @ w - batch["y"]) ** 2))(w)
    u, opt = chain(cfg).update(g, opt, w)
    w = optax.apply_updates(w, u)
    return (w, opt), {"loss": loss, "val": jnp.mean((XV @ w - YV) ** 2)}


def read_lr(state, cfg):
    """The LR of the member's last update, read from its optimizer state (Adam's step count
    and the member's schedule)."""
    return jaxlr.transforms.current_lr(state[1], optimizer_lr=cfg["schedule"])


@pytest.fixture(scope="module")
def schedule_pbt():
    peaks = [0.003, 0.01, 0.03, 0.1, 0.2, 0.3]
    configs = {
        "schedule": jaxlr.sweep.stack(
            [S.warmup_cosine(peak_value=p, warmup_steps=4, total_steps=STEPS) for p in peaks]
        ),
        "weight_decay": np.full(len(peaks), 1e-3, np.float32),
    }
    return jaxlr.sweep.pbt(
        tx_init,
        tx_step,
        configs,
        batches(steps=STEPS),
        key=KEY,
        num_steps=STEPS,
        interval=6,
        metric="val",
        space={".schedule.peak_value": ("log_uniform", 1e-3, 0.5)},  # keystr's spelling
        lr=read_lr,
        fraction=0.34,
        progress=False,
        compiler_options=FAST,
    ), configs


def test_pbt_perturbs_a_schedule_leaf_inside_a_config_pytree(schedule_pbt):
    res, configs = schedule_pbt
    start = np.asarray(configs["schedule"].peak_value)
    final = np.asarray(res.configs["schedule"].peak_value)
    moved = np.flatnonzero(~np.isin(final, start))
    assert len(moved)  # some slot holds a perturbed peak (0.8x, 1.2x or a fresh draw)
    for i in moved:  # each one is a perturbation of a founder's peak, within the bounds
        assert 1e-3 <= final[i] <= 0.5
    # the other leaves never move, and the schedule is still a warmup_cosine
    np.testing.assert_array_equal(res.configs["schedule"].warmup_steps, 4.0)
    np.testing.assert_array_equal(res.configs["weight_decay"], np.float32(1e-3))
    assert type(res.configs["schedule"]) is type(configs["schedule"])
    # The LR recorded by the driver (read from each member's optimizer state) is the value of
    # the member's own schedule at that step: between exploits, the final slot's config.
    lr = res.lr_history
    last = STEPS - 6  # the last exploit is at step 18 - 1; steps 18..23 run the final configs
    for i in range(len(final)):
        s = S.warmup_cosine(peak_value=float(final[i]), warmup_steps=4, total_steps=STEPS)
        want = [float(s(t)) for t in range(last, STEPS)]
        np.testing.assert_allclose(lr[i, last:], want, rtol=1e-6)
    assert res.member(0)["lr_final"] == pytest.approx(float(lr[0, -1]))


def test_the_winners_exported_schedule_retrains_it_from_scratch(schedule_pbt):
    """Retraining the winner's founder with the exported schedule (the LR its lineage applied,
    step by step, as a jaxlr schedule) on the same batches reproduces its weights and validation
    loss. Asserted within float tolerance (on this CPU it comes out bit-identical): the
    population ran the step vmapped over six members, and XLA may sum a batched kernel in another
    order than one member's, so bit-identity is not promised across backends."""
    res, configs = schedule_pbt
    path = res.ancestors()
    exported = res.schedule()
    assert isinstance(exported, jaxlr.schedules.Schedule)
    np.testing.assert_array_equal([float(exported(t)) for t in range(STEPS)], res.lr_path())
    assert len(set(res.lr_path().tolist())) > 6  # a schedule, not a constant
    tx = optax.chain(optax.add_decayed_weights(1e-3), optax.adam(exported))
    data = jax.tree.map(lambda *xs: jnp.stack(xs), *batches(steps=STEPS))

    def body(carry, b):
        w, o = carry
        g = jax.grad(lambda w: jnp.mean((b["x"] @ w - b["y"]) ** 2))(w)
        u, o = tx.update(g, o, w)
        return (optax.apply_updates(w, u), o), None

    w0 = 0.1 * jax.random.normal(jax.random.split(KEY, 7)[1 + path[0]], (3,))
    (w, _), _ = jax.jit(lambda w0: jax.lax.scan(body, (w0, tx.init(w0)), data))(w0)
    np.testing.assert_allclose(w, res.states[0][res.winner], rtol=1e-5)
    val = float(np.mean((XV @ np.asarray(w, np.float64) - YV) ** 2))
    assert val == pytest.approx(res.metrics["val"][res.winner, -1], rel=1e-4)


def test_without_an_lr_metric_the_lr_is_read_from_the_state_or_the_error_says_how():
    def no_lr(state, cfg, batch):
        state, m = with_val(state, cfg, batch)
        return state, {"loss": m["loss"], "val": m["val"]}

    with pytest.raises(
        ValueError,
        match=r"pbt: step_fn reports no 'lr' metric and the applied LR cannot be read from the "
        r"state \(current_lr: .*\); report it as a metric, or pass lr=",
    ):
        jaxlr.sweep.pbt(init_fn, no_lr, CONFIGS, batches(steps=T), **OPTS)
    with pytest.raises(ValueError, match=r"pbt: lr must be the name of the metric .* got lr=3"):
        jaxlr.sweep.pbt(init_fn, no_lr, CONFIGS, batches(steps=T), **{**OPTS, "lr": 3})


def _held_task(held):
    """``(init_fn, step_fn)`` of a 2-parameter least-squares member whose optimizer is
    ``held(config)`` (its state holds the config's schedule)."""

    def init(cfg, key):
        w = jnp.zeros(2)
        return w, held(cfg).init(w)

    def step(state, cfg, target):
        w, opt = state
        loss, g = jax.value_and_grad(lambda w: jnp.sum((w - target) ** 2))(w)
        u, opt = held(cfg).update(g, opt, w)
        return (optax.apply_updates(w, u), opt), {"loss": loss}

    return init, step


def test_a_schedule_held_in_the_optimizer_state_takes_the_perturbed_value():
    """The review's reproduction, now accepted: a schedule held in the optimizer state
    (``scale_by_schedule``) is copied from the parent at an exploit, so the exploit writes the
    perturbed leaf into that state too. The LR each slot applied (read from its state) is the
    config value it trained with at every step, and the winner's exported schedule retrains it
    with plain ``optax.adam``; the same config built into the update at every step
    (``optax.adam(cfg["schedule"])``) applies the same LRs. Before, this space was refused."""

    def held(cfg):
        return optax.chain(optax.adam(1.0), jaxlr.transforms.scale_by_schedule(cfg["schedule"]))

    init, step = _held_task(held)

    configs = {
        "schedule": jaxlr.sweep.stack([S.constant(value=p) for p in (0.01, 0.02, 0.05, 0.1)])
    }
    opts = dict(key=KEY, num_steps=12, interval=3, metric="loss", fraction=0.5, progress=False)
    data = [np.full(2, 3.0, np.float32)] * 12
    lr = lambda s, c: jaxlr.transforms.current_lr(s[1], optimizer_lr=1.0)  # noqa: E731
    space = {"schedule.value": ("log_uniform", 1e-3, 1.0)}
    res = jaxlr.sweep.pbt(init, step, configs, iter(data), space=space, lr=lr, **opts)
    used = res.perturbed["schedule.value"]  # [T, K]: the value each slot trained with
    assert not np.isin(used[-1], [0.01, 0.02, 0.05, 0.1]).all()  # some slot was perturbed
    np.testing.assert_allclose(res.lr_history, used.T, rtol=1e-6)
    np.testing.assert_allclose(res.lr_history[:, -1], res.configs["schedule"].value, rtol=1e-6)
    # Retrained from scratch with optax.adam(exported schedule): the winner's weights.
    tx = optax.adam(res.schedule())
    w, o = jnp.zeros(2), tx.init(jnp.zeros(2))
    for target in data:
        u, o = tx.update(jax.grad(lambda w: jnp.sum((w - target) ** 2))(w), o, w)
        w = optax.apply_updates(w, u)
    np.testing.assert_allclose(w, res.states[0][res.winner], rtol=1e-5)

    def built(state, cfg, target):  # the pattern that builds the update from the config
        w, opt = state
        loss, g = jax.value_and_grad(lambda w: jnp.sum((w - target) ** 2))(w)
        u, opt = optax.adam(cfg["schedule"]).update(g, opt, w)
        return (optax.apply_updates(w, u), opt), {"loss": loss}

    again = jaxlr.sweep.pbt(
        lambda cfg, key: (jnp.zeros(2), optax.adam(cfg["schedule"]).init(jnp.zeros(2))),
        built,
        configs,
        iter(data),
        space=space,
        lr=lambda s, c: jaxlr.transforms.current_lr(s[1], optimizer_lr=c["schedule"]),
        **opts,
    )
    np.testing.assert_allclose(again.lr_history, res.lr_history, rtol=1e-6)
    np.testing.assert_array_equal(again.lineage, res.lineage)


@pytest.mark.parametrize("wrap", ["jit_init", "jit_step", "multi_steps", "apply_if_finite"])
def test_a_held_schedule_acts_through_jit_and_optax_wrappers(wrap):
    """The held leaf is found through a jitted ``init_fn`` / ``step_fn`` and Optax wrappers
    whose state passes it through a select or a cond (review: a jitted ``init_fn`` made the
    perturbation silently never act; the wrappers were refused). Each slot's applied LR, read
    from its state, is the value it trained with."""

    def held(cfg):
        tx = optax.chain(optax.adam(1.0), jaxlr.transforms.scale_by_schedule(cfg["schedule"]))
        if wrap == "multi_steps":
            return optax.MultiSteps(tx, 1)
        return optax.apply_if_finite(tx, 3) if wrap == "apply_if_finite" else tx

    init, step = _held_task(held)

    def inner(opt):  # the chain's state inside the wrapper's
        return opt.inner_opt_state if wrap == "multi_steps" else (
            opt.inner_state if wrap == "apply_if_finite" else opt)  # fmt: skip

    configs = {
        "schedule": jaxlr.sweep.stack([S.constant(value=p) for p in (0.01, 0.02, 0.05, 0.1)])
    }
    res = jaxlr.sweep.pbt(
        jax.jit(init) if wrap == "jit_init" else init,
        jax.jit(step) if wrap == "jit_step" else step,
        configs, iter([np.full(2, 3.0, np.float32)] * 12),
        space={"schedule.value": ("log_uniform", 1e-3, 1.0)},
        lr=lambda s, c: jaxlr.transforms.current_lr(inner(s[1]), optimizer_lr=1.0),
        key=KEY, num_steps=12, interval=3, metric="loss", fraction=0.5, progress=False,
    )  # fmt: skip
    used = res.perturbed["schedule.value"]
    assert not np.isin(used[-1], [0.01, 0.02, 0.05, 0.1]).all()  # some slot was perturbed
    np.testing.assert_allclose(res.lr_history, used.T, rtol=1e-6)


def test_a_leaf_init_fn_only_computes_from_is_refused():
    """``inject_hyperparams(sgd)(learning_rate=10 ** cfg["log_lr"])``: the state holds a value
    computed from the perturbed leaf and the step never reads the config, so an exploit could
    not pass the perturbed value on (review: it was accepted and every slot trained at its
    parent's LR while the tables reported the perturbed ones)."""

    def tx(cfg):
        return optax.inject_hyperparams(optax.sgd)(learning_rate=10.0 ** cfg["log_lr"])

    def step(state, cfg, target):
        w, opt = state
        loss, g = jax.value_and_grad(lambda w: jnp.sum((w - target) ** 2))(w)
        u, opt = optax.inject_hyperparams(optax.sgd)(learning_rate=0.0).update(g, opt, w)
        return (optax.apply_updates(w, u), opt), {"loss": loss}

    data = iter([np.full(2, 3.0, np.float32)] * 6)
    with pytest.raises(ValueError, match=r"pbt: space entry 'log_lr' cannot act: step_fn does"):
        jaxlr.sweep.pbt(
            lambda cfg, key: (jnp.zeros(2), tx(cfg).init(jnp.zeros(2))), step,
            {"log_lr": np.array([-2.0, -1.5, -1.0, -0.5])}, data,
            space={"log_lr": ("uniform", -3.0, 0.0)}, key=KEY, num_steps=6, interval=3,
            metric="loss", progress=False,
        )  # fmt: skip


def test_a_perturbation_that_cannot_act_is_refused_before_compiling(monkeypatch):
    """A perturbed leaf that ``init_fn`` puts into the state and ``step_fn`` then changes (an
    LR the member adapts) can neither be written at an exploit (that would discard the
    adaptation) nor left as the parent's (the perturbed value would never act): refused, naming
    the leaf, before anything compiles."""

    def init(cfg, key):
        return {"w": jnp.zeros(2), "lr": cfg["lr"]}

    def step(state, cfg, target):
        loss, g = jax.value_and_grad(lambda w: jnp.sum((w - target) ** 2))(state["w"])
        w = state["w"] - state["lr"] * g
        return {"w": w, "lr": state["lr"] * 0.99}, {"loss": loss, "lr": state["lr"]}

    compiled = []
    real = jax.stages.Lowered.compile
    monkeypatch.setattr(
        jax.stages.Lowered,
        "compile",
        lambda self, *a, **k: compiled.append(1) or real(self, *a, **k),
    )
    with pytest.raises(
        ValueError,
        match=r"pbt: space entry 'lr' cannot act: step_fn does not read it, and the state holds "
        r"no copy of it that step_fn carries unchanged .*step_fn evolves its copy, e.g. an LR a "
        r"transform adapts.*scale_by_schedule.* optax.adam\(config\['schedule'\]\)",
    ):
        jaxlr.sweep.pbt(
            init,
            step,
            {"lr": np.array([0.01, 0.02, 0.05, 0.1], np.float32)},
            iter([np.full(2, 3.0, np.float32)] * 12),
            key=KEY,
            num_steps=12,
            interval=3,
            metric="loss",
            space={"lr": ("log_uniform", 1e-3, 1.0)},
            progress=False,
        )
    assert not compiled


def _lr_opt_step(w, cfg, t):
    lr = cfg["lr"] * jnp.where(cfg["opt"] == 0, 1.0, 0.5)
    w = w - lr * 2.0 * (w - t)
    return w, {"loss": (w - t) ** 2, "lr": lr}


CHOICE_CFG = {
    "lr": np.array([0.01, 0.02, 0.05, 0.1], np.float32),
    "opt": jaxlr.sweep.Choice(np.array([0, 1, 0, 1], np.int32), ("adam", "sgd")),
}


@pytest.mark.parametrize("choices", [["adam", "sgd", "lion", "sgdm"], ["sgd", "adam"]])
def test_a_string_choice_space_must_list_the_configs_choices_in_order(choices):
    """Other strings (indices past the config's list) or a reordered list (index 0 would mean
    another optimizer in the space than in the config) are refused, naming both lists."""
    with pytest.raises(
        ValueError,
        match=rf"pbt: space entry 'opt' has choices {re.escape(str(choices))} but the config's "
        r"Choice 'opt' has choices \['adam', 'sgd'\]",
    ):
        jaxlr.sweep.pbt(
            lambda c, k: jnp.zeros(()),
            _lr_opt_step,
            CHOICE_CFG,
            iter([np.float32(3.0)] * 4),
            key=KEY,
            num_steps=4,
            interval=1,
            metric="loss",
            space={"opt": choices},
            progress=False,
        )


@pytest.mark.parametrize(
    "space, match",
    [
        (
            {"m": [0.25, 0.5, 1.5]},
            r"space entry 'm' holds \[0.25, 0.5, 1.5\], which the config "
            r"leaf's dtype int32 cannot hold",
        ),
        (
            {"m": ("uniform", 0.5, 4)},
            r"space entry 'm' holds \[0.5\], which the config leaf's dtype int32 cannot hold",
        ),
        (
            {"m": [1, 2**31]},
            r"space entry 'm' holds \[2147483648\], which the config leaf's "
            r"dtype int32 cannot hold",
        ),
    ],
)
def test_an_integer_leaf_refuses_space_values_it_cannot_hold(space, match):
    """The review's reproduction: float choices on an int leaf were cast (0.25 -> 0)."""

    def step(w, cfg, t):
        w = w - 0.1 * cfg["m"] * 2.0 * (w - t)
        return w, {"loss": (w - t) ** 2, "lr": 0.1 * cfg["m"]}

    with pytest.raises(ValueError, match=r"pbt: " + match):
        jaxlr.sweep.pbt(
            lambda c, k: jnp.zeros(()),
            step,
            {"m": np.array([1, 2, 1, 2], np.int32)},
            iter([np.float32(3.0)] * 4),
            key=KEY,
            num_steps=4,
            interval=1,
            metric="loss",
            space=space,
            progress=False,
        )


def test_schedule_warns_of_other_perturbed_leaves_and_config_path_gives_them(schedule_pbt):
    """The review's reproduction: the space perturbs the weight decay next to the schedule;
    schedule() exports only the LR, so it warns naming the weight decay, and config_path()
    gives the weight decay the winner's lineage trained with at every step (checked against
    the value the step function itself saw)."""

    def seen(state, cfg, batch):
        state, m = tx_step(state, cfg, batch)
        return state, {**m, "wd_seen": cfg["weight_decay"]}

    _, configs = schedule_pbt
    res = jaxlr.sweep.pbt(
        tx_init,
        seen,
        configs,
        batches(steps=STEPS),
        key=KEY,
        num_steps=STEPS,
        interval=6,
        metric="val",
        lr=read_lr,
        fraction=0.34,
        progress=False,
        compiler_options=FAST,
        resample_probability=1.0,
        space={
            "schedule.peak_value": ("log_uniform", 1e-3, 0.5),
            "weight_decay": ("uniform", 0.0, 0.1),
        },
    )
    with pytest.warns(
        UserWarning,
        match=r"PBTResult.schedule: exports the learning rate .* "
        r"also perturbed \['weight_decay'\]: .* config_path\(name\)",
    ):
        res.schedule()
    changed = 0
    for i in range(len(res)):
        path = res.ancestors(i)
        wd = res.config_path("weight_decay", i)
        np.testing.assert_array_equal(wd, res.metrics["wd_seen"][path, np.arange(STEPS)])
        assert wd[-1] == res.configs["weight_decay"][i]
        changed += len(set(wd.tolist())) > 1
    assert changed  # some lineage was perturbed on the way
    np.testing.assert_array_equal(
        res.config_path("schedule.peak_value")[-1], res.configs["schedule"].peak_value[res.winner]
    )
    with pytest.raises(ValueError, match=r"PBTResult.config_path: 'momentum' is not a path PBT"):
        res.config_path("momentum")
    # perturbing the schedule alone: no warning
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        schedule_pbt[0].schedule()


def test_an_integer_leaf_moves_by_at_least_one_within_its_bounds():
    """The review's reproduction: 1 and 2 never moved (round(1 * 0.8) == round(1 * 1.2) == 1).
    Every perturbed child is round(parent * c), or parent -+ 1 in c's direction where that
    rounds back to the parent, clipped to [1, 20] (checked from the values the step saw)."""

    def step(w, cfg, t):
        lr = 0.05 * cfg["n"]
        w = w - lr * (w - t)
        return w, {"loss": (w - t) ** 2, "lr": lr, "n_seen": cfg["n"]}

    steps = 40
    res = jaxlr.sweep.pbt(
        lambda c, k: jnp.zeros(()),
        step,
        {"n": np.array([1, 2, 1, 2], np.int32)},
        iter([np.float32(3.0)] * steps),
        key=jax.random.key(1),
        num_steps=steps,
        interval=1,
        metric="loss",
        space={"n": ("int", 1, 20)},
        fraction=0.5,
        resample_probability=0.0,
        progress=False,
    )
    seen = res.metrics["n_seen"]
    checked = 0
    for t in range(steps - 1):
        for i in np.flatnonzero(res.lineage[t] != np.arange(4)):
            parent = int(seen[res.lineage[t, i], t])
            want = set()
            for c in (0.8, 1.2):
                r = int(np.round(parent * c))
                r = r if r != parent else parent + (1 if c > 1 else -1)
                want.add(min(max(r, 1), 20))
            assert int(seen[i, t + 1]) in want
            checked += 1
    assert checked and res.configs["n"].max() > 2  # they moved past the founders' 1 and 2


def test_with_every_member_diverged_the_lineage_methods_say_no_member_survived():
    def bad(w, cfg, t):
        return w + jnp.nan, {"loss": w + jnp.nan, "lr": cfg["lr"]}

    res = jaxlr.sweep.pbt(
        lambda c, k: jnp.zeros(()),
        bad,
        jaxlr.sweep.grid(lr=[0.01, 0.03, 0.1, 0.3]),
        iter([np.float32(3.0)] * 4),
        key=KEY,
        num_steps=4,
        interval=2,
        metric="loss",
        space={"lr": ("uniform", 0.0, 1.0)},
        progress=False,
    )
    assert res.winner is None and res.diverged.all()
    for call in (res.schedule, res.ancestors, res.lr_path, lambda: res.config_path("lr")):
        with pytest.raises(ValueError, match=r"PBTResult: no member survived"):
            call()
    assert res.ancestors(1).shape == (4,)  # a named member still has a lineage


def test_perturb_takes_any_length_2_sequence_of_numbers():
    """The review's reproduction: perturb=[0.8, 1.2] was refused; a list or a NumPy array
    runs as the tuple does, and a string or three factors are still refused."""

    def run(perturb):
        return jaxlr.sweep.pbt(
            lambda c, k: jnp.zeros(()),
            _lr_opt_step,
            CHOICE_CFG,
            iter([np.float32(3.0)] * 6),
            key=KEY,
            num_steps=6,
            interval=2,
            metric="loss",
            fraction=0.5,
            perturb=perturb,
            space={"lr": ("log_uniform", 1e-3, 0.5)},
            resample_probability=0.0,
            progress=False,
        )

    ref = run((0.8, 1.2))
    for perturb in ([0.8, 1.2], np.array([0.8, 1.2])):
        np.testing.assert_array_equal(run(perturb).configs["lr"], ref.configs["lr"])
    for bad in ("ab", [0.8, 1.2, 1.5], [0.8, -1.0]):
        with pytest.raises(ValueError, match=r"pbt: perturb must be two factors > 0, got"):
            run(bad)


def test_by_default_an_exploit_replaces_an_eighth_of_the_population():
    """The default truncation fraction is 1/8 (experiments/pbt_study.py: a quarter replaced at
    every round overwrote the member that would have ended best): with K = 16 each exploit
    moves exactly 2 slots, the worst 2 by the metric, each onto one of the best 2."""
    k, steps, interval = 16, 12, 3
    lrs = np.geomspace(0.01, 0.5, k).astype(np.float32)

    def step(w, cfg, t):
        w = w - cfg["lr"] * (w - t)
        return w, {"loss": (w - t) ** 2, "lr": cfg["lr"]}

    res = jaxlr.sweep.pbt(
        lambda c, key: jnp.zeros(()),
        step,
        {"lr": lrs},
        iter([np.float32(3.0)] * steps),
        key=KEY,
        num_steps=steps,
        interval=interval,
        metric="loss",
        space={"lr": ("log_uniform", 1e-3, 1.0)},
        progress=False,
    )
    assert res.info["fraction"] == 0.125
    for t in range(interval - 1, steps - 1, interval):
        moved = np.flatnonzero(res.lineage[t] != np.arange(k))
        order = np.argsort(res.metrics["loss"][:, t], kind="stable")
        assert sorted(moved) == sorted(order[-2:])
        assert set(res.lineage[t, moved]) <= set(order[:2])


def test_a_refused_argument_consumes_no_batch_and_batches_must_iterate():
    """The first batch (drawn to trace ``step_fn`` where the state holds a perturbed leaf) is
    drawn after every argument check: a refused call leaves the user's iterator where it was
    (review: a bad ``mesh`` lost batch 0)."""

    def init(cfg, key):
        return {"w": jnp.zeros(2), "lr": cfg["lr"]}  # the state holds the perturbed leaf

    def step(state, cfg, target):
        loss, g = jax.value_and_grad(lambda w: jnp.sum((w - target) ** 2))(state["w"])
        return {"w": state["w"] - state["lr"] * g, "lr": state["lr"]}, {"loss": loss}

    data = (np.full(2, float(i), np.float32) for i in range(12))
    args = (init, step, {"lr": np.array([0.01, 0.02, 0.05, 0.1], np.float32)})
    opts = dict(key=KEY, num_steps=12, interval=3, metric="loss", progress=False, lr="loss",
                space={"lr": ("log_uniform", 1e-3, 1.0)})  # fmt: skip
    with pytest.raises(ValueError, match="pbt: mesh"):
        jaxlr.sweep.pbt(*args, data, mesh="notamesh", **opts)
    assert next(data)[0] == 0.0
    with pytest.raises(ValueError, match="pbt: batches must be an iterable .* got batches=None"):
        jaxlr.sweep.pbt(*args, None, **opts)
