"""jaxlr.sweep.successive_halving: rungs, survivors, compaction and bad input."""

from __future__ import annotations

import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from test_population import KEY, W_TRUE, batches, init_fn, numpy_member, step_fn, w0s

import jaxlr

XV = np.random.default_rng(9).normal(size=(64, 3)).astype(np.float32)
YV = (XV @ W_TRUE).astype(np.float32)


def with_val(state, cfg, batch):
    state, m = step_fn(state, cfg, batch)
    return state, {**m, "val": jnp.mean((XV @ state["w"] - YV) ** 2)}


CONFIGS = jaxlr.sweep.grid(lr=[0.003, 0.01, 0.03, 0.06, 0.1, 0.15], momentum=[0.0, 0.5, 0.8])
RUNGS, ETA = [2, 6, 18], 3


def numpy_val(w0, lr, momentum, data):
    _, ws = numpy_member(w0, lr, momentum, data)
    return np.mean((ws @ XV.T - YV) ** 2, axis=1), ws


class Task:
    """Step functions as bound methods, as users write them (``task.step_fn`` is a new object
    at every access), counting the traces of the step."""

    def __init__(self):
        self.traces = 0

    def init_fn(self, cfg, key):
        return init_fn(cfg, key)

    def step_fn(self, state, cfg, batch):
        self.traces += 1
        return with_val(state, cfg, batch)

    def halving(self):
        return jaxlr.sweep.successive_halving(
            self.init_fn,
            self.step_fn,
            CONFIGS,
            batches(steps=RUNGS[-1]),
            key=KEY,
            rungs=RUNGS,
            eta=ETA,
            metric="val",
            steps_per_call=2,
            progress=False,
        )


@pytest.fixture(scope="module")
def task_and_runs():
    task = Task()
    first = task.halving()
    traces_after_first = task.traces
    return task, first, traces_after_first, task.halving()


@pytest.fixture(scope="module")
def halving(task_and_runs):
    _, first, traces, _ = task_and_runs
    return first, traces


def test_halving_keeps_the_top_third_at_each_rung_like_a_numpy_reference(halving):
    res, _ = halving
    k = 18
    data = list(batches(steps=RUNGS[-1]))
    refs = [
        numpy_val(w0, float(CONFIGS["lr"][i]), float(CONFIGS["momentum"][i]), data)
        for i, w0 in enumerate(w0s(k))
    ]
    val = np.stack([v for v, _ in refs])
    alive, prev, expected_steps = np.arange(k), 0, 0
    for j, r in enumerate(RUNGS):
        expected_steps += len(alive) * (r - prev)
        for i in alive:
            assert res.rungs[i][j][0] == r
            assert res.rungs[i][j][1] == pytest.approx(val[i, r - 1], rel=1e-4)
            # Survivors' curves equal their uninterrupted runs: compaction changes nothing.
            np.testing.assert_allclose(res.metrics["val"][i, prev:r], val[i, prev:r], rtol=1e-4)
        if j < len(RUNGS) - 1:
            alive = np.sort(alive[np.argsort(val[alive, r - 1])[: len(alive) // ETA]])
        prev = r
    assert res.info["survivors"] == alive.tolist()
    assert res.member_steps == expected_steps == 18 * 2 + 6 * 4 + 2 * 12
    assert res.info["sizes"] == [18, 6, 2]
    stopped = [i for i in range(k) if i not in alive]
    assert np.isnan(res.metrics["val"][stopped, -1]).all()
    assert res.best("val")["index"] == alive[np.argmin(val[alive, -1])]
    assert res.info["stopped_at"].tolist() == [len(h) and h[-1][0] for h in res.rungs]
    # Each member's state is kept where it stopped.
    for i, (_, ws) in enumerate(refs):
        stop = res.info["stopped_at"][i]
        np.testing.assert_allclose(res.states["w"][i], ws[stop - 1], rtol=1e-4, atol=1e-6)


def test_one_compiled_step_serves_every_rung(halving):
    res, traces = halving
    # 18, 6 and 2 members all run in chunks of 2 (the last rung's size): one program.
    assert traces == 1
    assert res.info["chunk_size"] == 2 and res.info["num_chunks"] == 1
    assert res.compile_seconds > 0.0


def test_a_second_halving_call_with_the_same_bound_methods_compiles_nothing(task_and_runs):
    task, first, traces, second = task_and_runs
    assert task.traces == traces == 1
    assert second.compile_seconds == 0.0
    np.testing.assert_array_equal(second.metrics["val"], first.metrics["val"])
    assert second.info["survivors"] == first.info["survivors"]


class EvalTask(Task):
    """The validation loss from a bound-method ``eval_fn`` every 2 steps (as the demo does);
    traces counted in a list (rebinding an attribute is a change of the object: a new program)."""

    def __init__(self):
        self.traced = []

    def step_fn(self, state, cfg, batch):
        self.traced.append(1)
        return step_fn(state, cfg, batch)

    def eval_fn(self, state, cfg):
        return {"val": jnp.mean((XV @ state["w"] - YV) ** 2)}

    def halving(self):
        return jaxlr.sweep.successive_halving(
            self.init_fn, self.step_fn, CONFIGS, batches(steps=RUNGS[-1]), key=KEY,
            rungs=RUNGS, eta=ETA, metric="val", eval_fn=self.eval_fn, eval_every=2,
            steps_per_call=2, progress=False,
        )  # fmt: skip


def test_a_second_call_with_the_same_bound_eval_fn_compiles_nothing():
    """``task.eval_fn`` is a new bound-method object at every access: the compiled program is
    keyed on its object and function (as ``step_fn``), so the second search reuses it; a new
    object is a new program. The ranking is the NumPy one (rungs are multiples of 2: fresh)."""
    task = EvalTask()
    first = task.halving()
    traced = len(task.traced)
    second = task.halving()
    assert len(task.traced) == traced and first.compile_seconds > 0 and second.compile_seconds == 0
    np.testing.assert_array_equal(second.metrics["val"], first.metrics["val"])
    data = list(batches(steps=RUNGS[-1]))
    val = np.stack([numpy_val(w0, float(CONFIGS["lr"][i]), float(CONFIGS["momentum"][i]), data)[0]
                    for i, w0 in enumerate(w0s(18))])  # fmt: skip
    alive = np.arange(18)
    for r in RUNGS[:-1]:
        alive = np.sort(alive[np.argsort(val[alive, r - 1])[: len(alive) // ETA]])
    assert first.info["survivors"] == alive.tolist()
    other = EvalTask()
    assert other.halving().compile_seconds > 0.0 and len(other.traced) == traced


def test_halving_with_member_batches_keeps_each_survivors_rows():
    k = 6
    cfg = jaxlr.sweep.grid(lr=[0.01, 0.05, 0.1], momentum=[0.0, 0.8])
    res = jaxlr.sweep.successive_halving(
        init_fn,
        with_val,
        cfg,
        batches(steps=6, k=k, seed=4),
        key=KEY,
        rungs=[2, 6],
        eta=2,
        metric="val",
        member_batches=True,
        progress=False,
    )
    data = list(batches(steps=6, k=k, seed=4))
    for i in res.info["survivors"]:
        own = [{n: b[n][i] for n in b} for b in data]
        val, _ = numpy_val(w0s(k)[i], float(cfg["lr"][i]), float(cfg["momentum"][i]), own)
        np.testing.assert_allclose(res.metrics["val"][i], val, rtol=1e-4)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (
            dict(rungs=[4, 4]),
            r"successive_halving: rungs must be strictly increasing ints >= 1, "
            r"got rungs=\[4, 4\]",
        ),
        (dict(rungs=[0, 3]), r"rungs must be strictly increasing ints >= 1"),
        (dict(rungs=[]), r"rungs must be strictly increasing"),
        (dict(eta=1), r"successive_halving: eta must be a number > 1, got eta=1"),
        (dict(eta=0.5), r"eta must be a number > 1"),
        (dict(mode="best"), r"successive_halving: mode must be 'min' or 'max'"),
        (
            dict(metric="accuracy"),
            r"successive_halving: metric='accuracy' is not a metric of "
            r"step_fn, whose metrics are \['loss', 'lr', 'val'\]",
        ),
        (
            dict(configs=jaxlr.sweep.grid(lr=[0.1], momentum=0.0)),
            r"successive_halving: the population needs at least 2 members, got K=1",
        ),
    ],
)
def test_halving_rejects_bad_input_before_compiling(kwargs, match, monkeypatch):
    compiled = []
    real = jax.stages.Lowered.compile
    monkeypatch.setattr(
        jax.stages.Lowered,
        "compile",
        lambda self, *a, **k: compiled.append(1) or real(self, *a, **k),
    )
    args = dict(configs=CONFIGS, rungs=RUNGS, eta=ETA, metric="val")
    args.update(kwargs)
    cfg = args.pop("configs")
    with pytest.raises(ValueError, match=match):
        jaxlr.sweep.successive_halving(
            init_fn, with_val, cfg, batches(), key=KEY, progress=False, **args
        )
    assert not compiled


def test_halving_refuses_a_member_batch_with_a_row_too_many():
    cfg = jaxlr.sweep.grid(lr=[0.01, 0.05, 0.1], momentum=[0.0, 0.8])
    with pytest.raises(
        ValueError,
        match=r"successive_halving: batches must have a leading member axis of K=6 \(the "
        r"original members\) with member_batches=True, got batch\['x'\] of shape \(7, 16, 3\)",
    ):
        jaxlr.sweep.successive_halving(
            init_fn,
            with_val,
            cfg,
            batches(steps=6, k=7),
            key=KEY,
            rungs=[2, 6],
            eta=2,
            metric="val",
            member_batches=True,
            progress=False,
        )


def init_keyed(cfg, key):
    return {**init_fn(cfg, key), "key": jax.random.fold_in(key, 1)}


def step_keyed(state, cfg, batch):
    """with_val, plus a typed PRNG key in the state that draws one number per step."""
    key, sub = jax.random.split(state["key"])
    new, m = with_val({"w": state["w"], "m": state["m"]}, cfg, batch)
    return {**new, "key": key}, {**m, "noise": jax.random.uniform(sub)}


def test_halving_carries_typed_keys_through_compaction():
    """Survivors' keys continue exactly where they were: their draws equal a plain key chain
    run step by step, and result/save-style host copies work (typed keys as key data)."""
    cfg = jaxlr.sweep.grid(lr=[0.01, 0.05, 0.1, 0.2])
    cfg["momentum"] = np.zeros(4)
    res = jaxlr.sweep.successive_halving(
        init_keyed,
        step_keyed,
        cfg,
        batches(steps=4),
        key=KEY,
        rungs=[2, 4],
        eta=2,
        metric="val",
        progress=False,
        compiler_options={"xla_backend_optimization_level": 0},  # compile-bound: skip LLVM opts
    )
    keys = jax.random.split(KEY, 5)[1:]
    for i in res.info["survivors"]:
        k, draws = jax.random.fold_in(keys[i], 1), []
        for _ in range(4):
            k, sub = jax.random.split(k)
            draws.append(float(jax.random.uniform(sub)))
        np.testing.assert_allclose(res.metrics["noise"][i], draws, rtol=1e-6)
    assert len(res.info["survivors"]) == 2 and np.isnan(res.metrics["noise"]).sum() == 4


class _Bars:
    """Records the tqdm bars a search opens (a stand-in for ``tqdm.auto.tqdm``)."""

    made: list = []

    def __init__(self, *, total, initial, unit, desc, disable, leave):
        self.total, self.n, self.desc, self.closed = total, initial, desc, False
        _Bars.made.append(self)

    def update(self, n):
        self.n += n

    def close(self):
        self.closed = True


def test_one_labelled_progress_bar_per_search_with_string_choices(monkeypatch):
    """Halving shows one bar named after it across its rungs (not one per rung); string
    choices in the configs reach the step as their index and the result as the strings."""
    import tqdm.auto

    monkeypatch.setattr(tqdm.auto, "tqdm", _Bars)
    _Bars.made = []
    configs = jaxlr.sweep.grid(lr=[0.01, 0.03, 0.1], momentum=0.5, opt=["plain", "nesterov"])

    def step(state, cfg, batch):  # "nesterov" (index 1) halves the LR: visibly another member
        cfg = {**cfg, "lr": cfg["lr"] * jnp.asarray([1.0, 0.5])[cfg["opt"]]}
        return with_val(state, cfg, batch)

    res = jaxlr.sweep.successive_halving(
        init_fn, step, configs, batches(steps=9), key=KEY, rungs=[1, 3, 9], metric="val", eta=2
    )
    assert [(b.desc, b.total, b.n, b.closed) for b in _Bars.made] == [
        ("successive_halving", 9, 9, True)
    ]
    assert [r["opt"] for r in res.records()] == ["plain", "nesterov"] * 3
    data = list(batches(steps=9))
    w0 = w0s(6)
    for i in res.info["survivors"]:  # the members that reached step 9, against NumPy
        lr = float(configs["lr"][i]) * (0.5 if res.records()[i]["opt"] == "nesterov" else 1.0)
        want = numpy_val(w0[i], lr, 0.5, data)[0][-1]
        assert res.metrics["val"][i, -1] == pytest.approx(want, rel=1e-4)


def test_halving_ranks_an_eval_fn_metric_computed_every_k_steps():
    """With the validation loss from an eval_fn every 2 steps and rungs at multiples of 2,
    halving keeps the members it keeps when the step computes the loss every step."""

    def eval_fn(state, cfg):
        return {"val": jnp.mean((XV @ state["w"] - YV) ** 2)}

    kw = dict(key=KEY, rungs=RUNGS, eta=ETA, metric="val", progress=False)
    every_step = jaxlr.sweep.successive_halving(
        init_fn, with_val, CONFIGS, batches(steps=RUNGS[-1]), **kw
    )
    every_2 = jaxlr.sweep.successive_halving(
        init_fn, step_fn, CONFIGS, batches(steps=RUNGS[-1]), eval_fn=eval_fn, eval_every=2, **kw
    )
    assert every_2.info["survivors"] == every_step.info["survivors"]
    assert every_2.info["stopped_at"].tolist() == every_step.info["stopped_at"].tolist()
    for i in every_2.info["survivors"]:
        np.testing.assert_allclose(
            every_2.metrics["val"][i, -1], every_step.metrics["val"][i, -1], rtol=1e-5
        )
    assert every_2.best("val")["index"] == every_step.best("val")["index"]


def test_halving_tables_list_the_furthest_members_first_by_their_last_rung(halving):
    res, _ = halving
    order = res.table_order()
    reached = [res.rungs[i][-1] for i in order]
    steps = [r[0] for r in reached]
    assert steps == sorted(steps, reverse=True) and steps[0] == RUNGS[-1]
    for r in RUNGS:  # within a rung, by the metric it was ranked by there, best first
        values = [v for s, v in reached if s == r]
        assert values == sorted(values)
    assert order[0] == res.best("val")["index"]
    shown = [int(line.split()[0]) for line in res.to_text(["index"]).splitlines()[1:]]
    assert shown == order.tolist()


def _val(state, cfg):
    return {"val": jnp.sum(state["w"] ** 2)}


def _norms(k, steps):
    """The reference: each member's sum(w_t^2) after every step t, from the NumPy recursion."""
    data = list(batches(steps=steps))
    return np.array(
        [
            np.sum(
                numpy_member(w0, float(CONFIGS["lr"][i]), float(CONFIGS["momentum"][i]), data)[1]
                ** 2,
                axis=1,
            )
            for i, w0 in enumerate(w0s(k))
        ]
    )


@pytest.mark.parametrize(
    "search, kw, match",
    [
        (
            "successive_halving",
            dict(rungs=[2, 5, 6], eval_every=2),
            r"successive_halving: rungs \[5\] are not multiples of eval_every=2: members are "
            r"ranked there by an evaluation up to 1 steps old",
        ),
        (
            "pbt",
            dict(num_steps=6, interval=3, eval_every=2),
            r"pbt: interval=3 is not a multiple of eval_every=2: an exploit ranks by an "
            r"evaluation up to 1 steps old",
        ),
        (
            "Population",
            dict(eval_every=10),
            r"Population: eval_every=10 is longer than the run \(6 steps\): eval_fn runs after "
            r"the first step only",
        ),
    ],
)
def test_a_stale_evaluation_is_warned_of(search, kw, match):
    """Ranking (or a run's last rows) would use an evaluation up to eval_every - 1 steps old:
    one warning says so, and the values held are indeed that old (NumPy reference)."""
    common = dict(key=KEY, eval_fn=_val, progress=False)
    data = batches(steps=6)
    norms = _norms(18, 6)  # norms[i, t - 1]: member i's evaluation after step t
    with pytest.warns(UserWarning, match=match) as caught:
        if search == "successive_halving":
            res = jaxlr.sweep.successive_halving(
                init_fn, step_fn, CONFIGS, data, metric="val", eta=2, **common, **kw
            )
        elif search == "pbt":
            res = jaxlr.sweep.pbt(
                init_fn,
                step_fn,
                CONFIGS,
                data,
                metric="val",
                fraction=0.5,
                space={"lr": ("log_uniform", 1e-3, 0.3)},
                **common,
                **kw,
            )
        else:
            res = (
                jaxlr.sweep.Population(init_fn, step_fn, CONFIGS, **common, **kw)
                .train(data, 6)
                .result()
            )
    assert sum(bool(re.search(match, str(w.message))) for w in caught) == 1  # said once
    if search == "successive_halving":
        # rung 5 ranks by the evaluation after step 4 (eval at 1, 2, 4, 6), not step 5's
        at5 = [(i, v) for i, r in enumerate(res.rungs) for s, v in r if s == 5]
        assert at5
        for i, v in at5:
            assert v == pytest.approx(norms[i, 3], rel=1e-4)
            assert v != pytest.approx(norms[i, 4], rel=1e-4)
    elif search == "pbt":
        # the first exploit (after step 3) saw the evaluation after step 2: before any exploit
        # the members are the grid's, so step 3's row holds step 2's evaluation
        np.testing.assert_allclose(res.metrics["val"][:, 2], norms[:, 1], rtol=1e-4)
    else:
        # eval_every=10 in a 6-step run: every row holds the evaluation after step 1
        want = np.repeat(norms[:, :1], 6, axis=1)
        np.testing.assert_allclose(res.metrics["val"], want, rtol=1e-4)


def test_a_fresh_evaluation_is_not_warned_of():
    """Rungs at multiples of eval_every (rung 1: the first step is always evaluated): no
    warning, and every rung ranks by the evaluation of its own step (NumPy reference)."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        res = jaxlr.sweep.successive_halving(
            init_fn,
            step_fn,
            CONFIGS,
            batches(steps=6),
            key=KEY,
            rungs=[1, 2, 6],
            eta=2,
            metric="val",
            eval_fn=_val,
            eval_every=2,
            progress=False,
        )
    norms = _norms(18, 6)
    seen = 0
    for i, rung in enumerate(res.rungs):
        for step, value in rung:
            assert value == pytest.approx(norms[i, step - 1], rel=1e-4), (i, step)
            seen += 1
    assert seen > 18  # every member at rung 1, and the survivors at 2 and 6
