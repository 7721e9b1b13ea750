"""jaxlr.sweep.optuna_search: batches of Optuna trials in one vmapped program; SQLite resume."""

from __future__ import annotations

import itertools
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxlr

optuna = pytest.importorskip("optuna")
optuna.logging.set_verbosity(optuna.logging.WARNING)

T = 10
SCALE = {"full": 1.0, "half": 0.5}
SPACE = {
    "peak_value": ("log_uniform", 1e-3, 1.5),
    "active_steps": ("int", 2, T),
    "shape": ["full", "half"],
    "target": 2.9,
}
TRACES = []


def train_fn(cfg):
    """GD on (w - 3)^2 with LR peak * scale[shape] for the first active_steps steps, then 0."""
    TRACES.append(1)  # counts traces: the search must compile once
    lr = cfg["peak_value"] * jnp.asarray([1.0, 0.5])[cfg["shape"]]

    def step(w, t):
        eta = jnp.where(t < cfg["active_steps"], lr, 0.0)
        return w - eta * 2.0 * (w - 3.0), ((w - 3.0) ** 2, (w - cfg["target"]) ** 2)

    _, (loss, val) = jax.lax.scan(step, 0.0, jnp.arange(T))
    return {"loss": loss, "val_loss": val}


def numpy_val(params, reduce=lambda v: v[-1]):
    """The validation curve of a trial's parameters, in NumPy float64."""
    lr = params["peak_value"] * SCALE[params["shape"]]
    w, val = 0.0, []
    for t in range(T):
        val.append((w - 2.9) ** 2)
        w = w - (lr if t < params["active_steps"] else 0.0) * 2.0 * (w - 3.0)
    return reduce(np.array(val))


def test_batches_are_told_the_vmapped_results():
    TRACES.clear()

    def fresh(cfg):  # a new function: no compiled program cached from another test
        return train_fn(cfg)

    study = jaxlr.sweep.optuna_search(
        fresh, SPACE, num_trials=10, batch_size=4, sampler=optuna.samplers.RandomSampler(seed=1)
    )
    assert len(TRACES) == 2  # one shape check + one compile for all 3 rounds (last one padded)
    trials = study.trials
    assert len(trials) == 10
    assert [t.user_attrs["jaxlr_round"] for t in trials] == [0] * 4 + [1] * 4 + [2] * 2
    for t in trials:
        assert t.state == optuna.trial.TrialState.COMPLETE
        assert t.params["shape"] in SCALE and 2 <= t.params["active_steps"] <= T
        assert t.value == pytest.approx(numpy_val(t.params), rel=2e-4, abs=1e-6)
        assert t.user_attrs["val_loss"] == pytest.approx(t.value)
        assert t.user_attrs["diverged"] is False
    assert study.best_value == min(t.value for t in trials)


def test_tpe_with_a_reduction_and_maximize():
    study = jaxlr.sweep.optuna_search(
        train_fn,
        SPACE,
        num_trials=8,
        batch_size=4,
        metric="loss",
        reduction="mean_last",
        last_n=3,
        direction="maximize",
        sampler=optuna.samplers.TPESampler(seed=0, constant_liar=True, n_startup_trials=4),
    )
    assert study.direction == optuna.study.StudyDirection.MAXIMIZE
    for t in study.trials:
        lr = t.params["peak_value"] * SCALE[t.params["shape"]]
        e = 3.0 * np.array([(1 - 2 * lr) ** min(s, t.params["active_steps"]) for s in range(T)])
        assert t.value == pytest.approx(np.mean(e[-3:] ** 2), rel=2e-4, abs=1e-6)


def test_diverged_members_fail_or_get_the_given_value():
    space = {"peak_value": [0.1, 5.0], "active_steps": T, "shape": ["full"], "target": 2.9}

    def enqueued():
        study = optuna.create_study()
        for p in (0.1, 5.0):
            study.enqueue_trial({"peak_value": p, "shape": "full"})
        return study

    failed = jaxlr.sweep.optuna_search(
        train_fn, space, num_trials=2, batch_size=2, study=enqueued(), divergence_threshold=1e3
    )
    by_lr = {t.params["peak_value"]: t for t in failed.trials}
    assert by_lr[5.0].state == optuna.trial.TrialState.FAIL
    assert by_lr[5.0].user_attrs["diverged"] is True and by_lr[5.0].user_attrs["diverged_step"] > 0
    assert by_lr[0.1].state == optuna.trial.TrialState.COMPLETE
    valued = jaxlr.sweep.optuna_search(
        train_fn,
        space,
        num_trials=2,
        batch_size=2,
        study=enqueued(),
        divergence_threshold=1e3,
        diverged=1e6,
    )
    assert sorted(t.value for t in valued.trials)[1] == 1e6


@pytest.mark.parametrize(
    "space,match",
    [
        ({"peak_value": ("log_uniform", 0.0, 1.0)}, r"log_uniform needs low > 0"),
        ({"peak_value": ("uniform", 1.0, 0.1)}, r"low must be <= high"),
        ({"peak_value": ("beta", 1.0, 2.0)}, r"kind in \('log_uniform'"),
        ({"peak_value": ("int", 0.5, 3)}, r"int bounds must be integers"),
        ({"peak_value": ("uniform", 0.0, float("inf"))}, r"bounds must be finite"),
        ({"peak_value": []}, r"no choices"),
        ({"peak_value": [0.1, "a"]}, r"all numbers or all strings"),
        ({"peak_value": [0.1, 0.1]}, r"duplicate choices"),
        ({"peak_value": np.ones((2, 2))}, r"choices must be a 1-D list of numbers or strings"),
        ({"peak_value": {"low": 1}}, r"at least one axis.*\['peak_value.low'\]"),
        ({"peak_value": 0.1}, r"at least one axis"),
        ({}, r"non-empty dict"),
    ],
)
def test_a_space_optuna_cannot_express_is_a_value_error(space, match):
    with pytest.raises(ValueError, match=r"optuna_search: .*" + match):
        jaxlr.sweep.optuna_search(train_fn, space, num_trials=2, batch_size=2)


def test_bad_arguments_raise_before_any_trial():
    study = optuna.create_study()
    kw = dict(num_trials=4, study=study)
    with pytest.raises(
        ValueError,
        match=r"optuna_search: batch_size must be an int >= 1, got "
        r"batch_size=0",
    ):
        jaxlr.sweep.optuna_search(train_fn, SPACE, batch_size=0, **kw)
    with pytest.raises(ValueError, match=r"num_trials must be an int >= 1, got num_trials=0"):
        jaxlr.sweep.optuna_search(train_fn, SPACE, batch_size=2, num_trials=0)
    with pytest.raises(ValueError, match=r"reduction must be one of .* got reduction='median'"):
        jaxlr.sweep.optuna_search(train_fn, SPACE, batch_size=2, reduction="median", **kw)
    with pytest.raises(ValueError, match=r"optuna_search: unknown metric 'acc'"):
        jaxlr.sweep.optuna_search(train_fn, SPACE, batch_size=2, metric="acc", **kw)
    with pytest.raises(ValueError, match=r"mean_last' needs last_n, an int in \[1, 10\]"):
        jaxlr.sweep.optuna_search(train_fn, SPACE, batch_size=2, reduction="mean_last", **kw)
    with pytest.raises(ValueError, match=r"diverged must be 'fail' or a finite number"):
        jaxlr.sweep.optuna_search(train_fn, SPACE, batch_size=2, diverged="nan", **kw)
    with pytest.raises(ValueError, match=r"one objective"):
        jaxlr.sweep.optuna_search(
            train_fn,
            SPACE,
            batch_size=2,
            num_trials=2,
            study=optuna.create_study(directions=["minimize"] * 2),
        )
    with pytest.raises(ValueError, match=r"give either study or storage/study_name/sampler/dir"):
        jaxlr.sweep.optuna_search(train_fn, SPACE, batch_size=2, direction="maximize", **kw)
    with pytest.raises(ValueError, match=r"logger must be a jaxlr.sweep.MetricsLogger"):
        jaxlr.sweep.optuna_search(train_fn, SPACE, batch_size=2, logger="tb/", **kw)
    grid = optuna.samplers.GridSampler({"peak_value": [0.1], "shape": ["full"]})
    with pytest.raises(ValueError, match=r"GridSampler cannot drive an ask-and-tell search"):
        jaxlr.sweep.optuna_search(train_fn, SPACE, batch_size=2, num_trials=2, sampler=grid)
    assert study.trials == []  # nothing was asked


_SEARCH = textwrap.dedent("""
    import os, sys, time
    sys.path[:0] = [sys.argv[1], os.path.dirname(sys.argv[1])]  # tests/ and the repo root
    import jax, optuna, jaxlr
    import test_sweep_search as t

    optuna.logging.set_verbosity(optuna.logging.WARNING)

    def slow(cfg):  # a slow round, so the parent can kill the search in the middle of one
        jax.debug.callback(lambda: time.sleep(0.1))
        return t.train_fn(cfg)

    jaxlr.sweep.optuna_search(
        slow, t.SPACE, num_trials=int(sys.argv[3]), batch_size=4, storage=sys.argv[2],
        study_name="resume", sampler=optuna.samplers.TPESampler(seed=0, constant_liar=True))
    print("finished")
""")


def _states(db):
    with sqlite3.connect(db, timeout=10) as con:
        try:
            return dict(con.execute("SELECT state, COUNT(*) FROM trials GROUP BY state"))
        except sqlite3.OperationalError:  # the schema is not created yet
            return {}


def test_a_killed_sqlite_search_resumes_without_losing_a_trial(tmp_path):
    db = tmp_path / "search.db"
    url = f"sqlite:///{db}"
    script = tmp_path / "search.py"
    script.write_text(_SEARCH)
    env = {**os.environ, "JAX_PLATFORMS": "cpu"}
    args = [sys.executable, str(script), os.path.dirname(__file__), url]
    proc = subprocess.Popen(args + ["12"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        s = _states(db) if db.exists() else {}
        if s.get("COMPLETE", 0) >= 4 and s.get("RUNNING", 0) >= 4:  # round 2 asked
            time.sleep(0.1)  # and now training (each round sleeps 4 x 0.1 s)
            break
        time.sleep(0.02)
    assert proc.poll() is None, proc.communicate()
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    before = {t.number: t for t in optuna.load_study(study_name="resume", storage=url).trials}
    finished = {n: t.value for n, t in before.items() if t.state.is_finished()}
    running = [n for n, t in before.items() if t.state == optuna.trial.TrialState.RUNNING]
    assert len(finished) >= 4 and running and len(before) < 12

    # Resume: only the database survives the kill (in this process, which never saw the study).
    sampler = optuna.samplers.TPESampler(seed=0, constant_liar=True)
    jaxlr.sweep.optuna_search(
        train_fn,
        SPACE,
        num_trials=12,
        batch_size=4,
        storage=url,
        study_name="resume",
        sampler=sampler,
    )
    after = optuna.load_study(study_name="resume", storage=url).trials
    names = set(SPACE) - {"target"}
    whole = [n for n in running if set(before[n].params) == names]
    assert whole  # asks are sequential: with 4 RUNNING, the first ones were fully sampled
    # Killed inside study.ask (parameters partly sampled): failed, marked, not counted.
    interrupted = [t.number for t in after if t.user_attrs.get("jaxlr_interrupted")]
    assert set(interrupted) <= set(running) - set(whole)
    counted = [t for t in after if t.number not in interrupted]
    assert len(counted) == 12 and all(t.state.name == "COMPLETE" for t in counted)
    for n, value in finished.items():  # every trial finished before the kill is kept as it was
        assert after[n].value == value
    for n in whole:  # the trials the kill interrupted were evaluated with their own params
        assert after[n].params == before[n].params and after[n].state.name == "COMPLETE"
    for t in counted:
        assert t.value == pytest.approx(numpy_val(t.params), rel=2e-4, abs=1e-6)
    # A finished search started again does nothing (here in-process, on the same database).
    again = jaxlr.sweep.optuna_search(
        train_fn, SPACE, num_trials=12, batch_size=4, storage=url, study_name="resume"
    )
    assert len(again.trials) == len(after)


def test_running_trials_found_at_start_are_finished_or_failed_not_lost():
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=3))
    dists = {
        "peak_value": optuna.distributions.FloatDistribution(1e-3, 1.5, log=True),
        "active_steps": optuna.distributions.IntDistribution(2, T),
        "shape": optuna.distributions.CategoricalDistribution(["full", "half"]),
    }
    whole = study.ask(dists)  # asked, never told: the search was killed while training it
    partial = study.ask()  # killed inside study.ask, before every parameter was sampled
    partial.suggest_float("peak_value", 1e-3, 1.5, log=True)
    jaxlr.sweep.optuna_search(train_fn, SPACE, num_trials=3, batch_size=2, study=study)
    trials = study.trials
    assert trials[whole.number].state == optuna.trial.TrialState.COMPLETE
    assert trials[whole.number].value == pytest.approx(numpy_val(whole.params), rel=2e-4)
    assert trials[partial.number].state == optuna.trial.TrialState.FAIL
    assert trials[partial.number].user_attrs == {"jaxlr_interrupted": True}
    counted = [t for t in trials if "jaxlr_interrupted" not in t.user_attrs]
    assert len(counted) == 3 and all(t.state.name == "COMPLETE" for t in counted)


# -- pruning: step-driven populations (jaxlr.sweep.Population) -----------------------------------

PRUNE_LRS = [0.05, 0.15, 0.2, 0.25, 0.3, 0.4, 0.6, 5.0]


def prune_step(w, cfg, target):
    """SGD on (w - target)^2; the validation loss (w - 2.9)^2 after the update."""
    w = w - cfg["peak_value"] * 2.0 * (w - target)
    return w, {"loss": (w - target) ** 2, "val_loss": (w - 2.9) ** 2}


def prune_batches():  # the target moves at step 3: fast learners overshoot the validation target
    return (np.float32(3.0 if t < 3 else 4.0) for t in itertools.count())


def numpy_prune_val(lr, steps=8):
    w, out = 0.0, []
    for t in range(steps):
        w = w - lr * 2.0 * (w - (3.0 if t < 3 else 4.0))
        out.append((w - 2.9) ** 2)
    return np.array(out)


def test_pruned_members_stop_costing_work():
    study = optuna.create_study(pruner=optuna.pruners.ThresholdPruner(upper=1.0))
    for lr in PRUNE_LRS:
        study.enqueue_trial({"peak_value": lr})
    jaxlr.sweep.optuna_population_search(
        lambda cfg, key: jnp.zeros(()),
        prune_step,
        {"peak_value": ("log_uniform", 1e-3, 10.0)},
        prune_batches,
        num_trials=8,
        batch_size=3,
        num_steps=8,
        report_every=2,
        metric="val_loss",
        key=jax.random.key(0),
        study=study,
        divergence_threshold=1e3,
    )
    work = 0
    for t in study.trials:
        lr = t.params["peak_value"]
        val = numpy_prune_val(lr)
        # The NumPy reference of ThresholdPruner: pruned at the first report above 1.0.
        reports = [s for s in (2, 4, 6) if val[s - 1] > 1.0]
        if lr == 5.0:  # loss above 1e3 at step 2: frozen by the population, told FAIL
            assert t.state.name == "FAIL" and t.user_attrs["diverged"] is True
            assert t.user_attrs["jaxlr_steps"] == 2
        elif reports:
            assert t.state.name == "PRUNED" and t.user_attrs["jaxlr_steps"] == reports[0]
        else:
            assert t.state.name == "COMPLETE" and t.user_attrs["jaxlr_steps"] == 8
            assert t.value == pytest.approx(val[-1], rel=1e-5)
        for s, v in t.intermediate_values.items():  # compaction kept every survivor's state
            assert v == pytest.approx(val[s - 1], rel=1e-5, abs=1e-7)
        work += t.user_attrs["jaxlr_steps"]
    states = [t.state.name for t in study.trials]
    assert states.count("PRUNED") >= 3 and states.count("COMPLETE") >= 2
    assert {t.user_attrs["jaxlr_steps"] for t in study.trials} >= {2, 4, 6, 8}
    assert work < 8 * 8


def test_pruned_search_bad_input():
    kw = dict(num_trials=2, batch_size=2, num_steps=4, report_every=2, key=jax.random.key(0))
    init = lambda cfg, key: jnp.zeros(())  # noqa: E731
    sp = {"peak_value": ("log_uniform", 1e-3, 1.0)}
    with pytest.raises(ValueError, match=r"optuna_population_search: unknown metric 'acc'"):
        jaxlr.sweep.optuna_population_search(
            init, prune_step, sp, prune_batches, metric="acc", **kw
        )
    with pytest.raises(ValueError, match=r"report_every must be an int >= 1, got report_every=0"):
        jaxlr.sweep.optuna_population_search(
            init, prune_step, sp, prune_batches, metric="loss", **{**kw, "report_every": 0}
        )
    with pytest.raises(ValueError, match=r"batches must be callable"):
        jaxlr.sweep.optuna_population_search(init, prune_step, sp, iter([1.0]), metric="loss", **kw)
    with pytest.raises(ValueError, match=r"optuna_population_search: space\['peak_value'\]"):
        jaxlr.sweep.optuna_population_search(
            init, prune_step, {"peak_value": ("log", 0, 1)}, prune_batches, metric="loss", **kw
        )
    with pytest.raises(ValueError, match=r"metric 'v' must be a scalar per step"):
        jaxlr.sweep.optuna_population_search(
            init,
            lambda w, cfg, b: (w, {"loss": w, "v": jnp.zeros(2)}),
            sp,
            prune_batches,
            metric="v",
            **kw,
        )
    with pytest.raises(ValueError, match=r"optuna_population_search: batches\(\) must return .*"):
        jaxlr.sweep.optuna_population_search(
            init, prune_step, sp, lambda: iter([]), metric="loss", **kw
        )


class _Killed(Exception):
    pass


@pytest.mark.parametrize("queued", [0, 4])
def test_a_killed_population_search_retrains_interrupted_trials_as_one_run(queued):
    """Issue 21 item 4: an interrupted trial is not retrained into the same trial (its reported
    values would mix two runs); a fresh trial with its parameters runs with the killed attempt's
    init key (same round, same member), so it equals an uninterrupted search. ``queued``: more
    trials the user enqueued, still waiting at the kill (Optuna hands out the oldest first)."""
    lrs = [0.05, 0.15, 0.3, 0.6, 0.01, 0.02, 0.03, 0.04][: 4 + queued]
    init = lambda cfg, key: jax.random.normal(key, ())  # noqa: E731  (the init key matters)
    kw = dict(
        num_trials=len(lrs),
        batch_size=4,
        num_steps=6,
        report_every=2,
        metric="val_loss",
        key=jax.random.key(7),
    )
    sp = {"peak_value": ("log_uniform", 1e-3, 1.0)}

    def study_with(lrs):
        study = optuna.create_study(pruner=optuna.pruners.NopPruner())
        for lr in lrs:
            study.enqueue_trial({"peak_value": lr})
        return study

    reference = study_with(lrs)
    jaxlr.sweep.optuna_population_search(init, prune_step, sp, prune_batches, study=reference, **kw)
    want = {t.params["peak_value"]: t for t in reference.trials}

    calls = []

    def dying_batches():  # the probe, then a round killed after 3 steps (one report made)
        calls.append(1)
        for t, b in enumerate(prune_batches()):
            if len(calls) > 1 and t == 3:
                raise _Killed
            yield b

    study = study_with(lrs)
    with pytest.raises(_Killed):
        jaxlr.sweep.optuna_population_search(init, prune_step, sp, dying_batches, study=study, **kw)
    killed, waiting = study.trials[:4], study.trials[4:]
    assert all(t.state.name == "RUNNING" and list(t.intermediate_values) == [2] for t in killed)
    assert len(waiting) == queued and all(t.state.name == "WAITING" for t in waiting)
    jaxlr.sweep.optuna_population_search(init, prune_step, sp, prune_batches, study=study, **kw)
    trials = study.trials
    for t in killed:  # failed, marked, not counted; its partial run stays its own
        old = trials[t.number]
        assert old.state.name == "FAIL" and old.user_attrs["jaxlr_interrupted"] is True
    fresh = [t for t in trials if "jaxlr_retry_of" in t.user_attrs]
    assert len(fresh) == 4 and all(t.state.name == "COMPLETE" for t in fresh)
    for t in fresh:
        old, ref = trials[t.user_attrs["jaxlr_retry_of"]], want[t.params["peak_value"]]
        assert t.params == old.params
        assert (t.user_attrs["jaxlr_round"], t.user_attrs["jaxlr_member"]) == (
            old.user_attrs["jaxlr_round"],
            old.user_attrs["jaxlr_member"],
        )
        assert t.intermediate_values == ref.intermediate_values  # one run, bit-identical
        assert t.value == ref.value
    for t in trials[4 : 4 + queued]:  # the user's queued trials: in their own round, as before
        ref = want[t.params["peak_value"]]
        assert t.state.name == "COMPLETE" and t.value == ref.value
        assert t.user_attrs["jaxlr_round"] == ref.user_attrs["jaxlr_round"] == 1
    # the init key matters here: members of different keys differ
    assert len({round(t.value, 6) for t in reference.trials}) == len(lrs)


def test_stored_study_direction_and_space_mismatch_are_refused(tmp_path):
    url = f"sqlite:///{tmp_path / 's.db'}"
    kw = dict(num_trials=2, batch_size=2, storage=url, study_name="s")
    jaxlr.sweep.optuna_search(train_fn, SPACE, **kw)
    study = optuna.load_study(study_name="s", storage=url)
    assert study.direction == optuna.study.StudyDirection.MINIMIZE
    with pytest.raises(
        ValueError,
        match=r"optuna_search: direction='maximize' but the stored study 's' .* "
        r"direction='minimize'",
    ):
        jaxlr.sweep.optuna_search(train_fn, SPACE, **{**kw, "num_trials": 4}, direction="maximize")
    other = {**SPACE, "shape": ["full", "quarter"]}
    with pytest.raises(ValueError, match=r"optuna_search: space\['shape'\] is .* \(trial 0\)"):
        jaxlr.sweep.optuna_search(train_fn, other, **{**kw, "num_trials": 4})
    states = [t.state.name for t in optuna.load_study(study_name="s", storage=url).trials]
    assert states == ["COMPLETE", "COMPLETE"]  # nothing asked, no trial left RUNNING
    # a matching direction, or none, continues the stored study
    jaxlr.sweep.optuna_search(train_fn, SPACE, **{**kw, "num_trials": 3}, direction="minimize")
    assert len(optuna.load_study(study_name="s", storage=url).trials) == 3


def test_read_only_storage_is_a_clear_error(tmp_path):
    db = tmp_path / "ro.db"
    jaxlr.sweep.optuna_search(
        train_fn, SPACE, num_trials=1, batch_size=1, storage=f"sqlite:///{db}", study_name="s"
    )
    url = f"sqlite:///file:{db}?mode=ro&uri=true"  # what a read-only file gives a non-root user
    with pytest.raises(ValueError, match=r"optuna_search: storage=.*ro.db.* cannot be written"):
        jaxlr.sweep.optuna_search(
            train_fn, SPACE, num_trials=2, batch_size=1, storage=url, study_name="s"
        )


def test_pruned_search_reports_an_eval_fn_metric_computed_every_k_steps():
    """The validation loss from an eval_fn every 2 steps, reported every 2 steps: the same
    trials, reports and values as when the step computes it every step."""

    def train_step(w, cfg, target):
        w = w - cfg["peak_value"] * 2.0 * (w - target)
        return w, {"loss": (w - target) ** 2}

    def eval_fn(w, cfg):
        return {"val_loss": (w - 2.9) ** 2}

    def search(step, **kw):
        study = optuna.create_study(pruner=optuna.pruners.ThresholdPruner(upper=1.0))
        for lr in PRUNE_LRS[:6]:
            study.enqueue_trial({"peak_value": lr})
        return jaxlr.sweep.optuna_population_search(
            lambda cfg, key: jnp.zeros(()),
            step,
            {"peak_value": ("log_uniform", 1e-3, 10.0)},
            prune_batches,
            num_trials=6,
            batch_size=3,
            num_steps=8,
            report_every=2,
            metric="val_loss",
            key=jax.random.key(0),
            study=study,
            **kw,
        )

    every_step = search(prune_step)
    every_2 = search(train_step, eval_fn=eval_fn, eval_every=2)
    for a, b in zip(every_2.trials, every_step.trials):
        assert a.params == b.params and a.state == b.state
        assert a.intermediate_values == pytest.approx(b.intermediate_values, rel=1e-6)
        for s, v in a.intermediate_values.items():
            assert v == pytest.approx(numpy_prune_val(a.params["peak_value"])[s - 1], rel=1e-5)
    with pytest.raises(ValueError, match=r"optuna_population_search: eval_every=2 needs an eval"):
        search(prune_step, eval_every=2)


def test_each_search_shows_one_labelled_bar_counting_trials(monkeypatch):
    import tqdm.auto

    bars = []

    class Bar:
        def __init__(self, **kw):
            self.kw, self.n, self.closed = kw, kw.get("initial", 0), False
            bars.append(self)

        def update(self, n):
            self.n += n

        def set_postfix_str(self, *a, **k):
            pass

        def close(self):
            self.closed = True

        def __enter__(self):
            return self

        def __exit__(self, *a):
            self.close()

    monkeypatch.setattr(tqdm.auto, "tqdm", Bar)
    jaxlr.sweep.optuna_search(
        train_fn,
        SPACE,
        num_trials=5,
        batch_size=2,
        progress=True,
        sampler=optuna.samplers.RandomSampler(seed=0),
    )
    shown = [b for b in bars if not b.kw["disable"]]
    assert [(b.kw["desc"], b.kw["total"], b.n, b.closed) for b in shown] == [
        ("optuna_search", 5, 5, True)
    ]
