"""The PBT and AutoLRS baselines of ``experiments/learned_policy.py`` on a small least-squares
task: the exported PBT schedule, retrained in a plain NumPy loop, gives the winner's validation
loss exactly, and both searches report the compute they ran; the per-run statistics of the
results table (regret against the same seed's grid8, counts against its default)."""

from __future__ import annotations

import importlib
import math
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import jaxlr

ROOT = Path(__file__).resolve().parents[1]
STEPS, BATCH, DEFAULT = 60, 8, 0.01
RNG = np.random.default_rng(0)
X = RNG.normal(size=(64, 4)).astype(np.float32)
Y = (X @ np.array([1.0, -2.0, 0.5, 3.0], np.float32) + 0.1 * RNG.normal(size=64)).astype(np.float32)


@pytest.fixture(scope="module")
def lp():
    sys.path.insert(0, str(ROOT))
    return importlib.import_module("experiments.learned_policy")


def _loss(w, idx):
    r = jnp.asarray(X)[idx] @ w - jnp.asarray(Y)[idx]
    return 0.5 * jnp.mean(r**2)


def _task(name):
    return jaxlr.auto.Task(
        name=name,
        init_fn=lambda key: jnp.zeros(4),  # the same start for every member: lineages retrain
        loss_fn=_loss,
        batch_fn=lambda k, t: jax.random.randint(jax.random.fold_in(k, t), (BATCH,), 0, 64),
        val_fn=lambda w: _loss(w, jnp.arange(64)),
        optimizer=optax.sgd(1.0),
        total_steps=STEPS,
        init_value=DEFAULT,
        min_value=DEFAULT / 100,
        max_value=DEFAULT * 100,
    )


def _numpy_sgd(task, lrs, seed):
    """Plain SGD with the per-step LRs ``lrs`` on the task's minibatches for ``seed``."""
    k_data = jax.random.split(jax.random.key(seed))[1]
    w = np.zeros(4)
    for t, lr in enumerate(lrs):
        idx = np.asarray(task.batch_fn(k_data, t))
        w = w - lr * X[idx].T @ (X[idx] @ w - Y[idx]) / BATCH
    return 0.5 * np.mean((X @ w - Y) ** 2)


def test_pbt_winner_schedule_retrains_to_its_validation_loss(lp):
    task = _task("lstsq-pbt")
    val, curve, member_steps = lp.pbt_search(task, 7)
    assert member_steps == lp.PBT_MEMBERS * STEPS
    assert curve.shape == (STEPS,)
    starts = DEFAULT * np.geomspace(1.0, max(lp.GRID_FACTORS), lp.PBT_MEMBERS)
    assert np.min(np.abs(curve[0] / starts - 1.0)) < 1e-5  # began as one of the 8 members
    changes = np.flatnonzero(curve[1:] != curve[:-1]) + 1
    assert len(changes) and np.all(changes % lp.PBT_INTERVAL == 0)  # only at exploit steps
    assert np.all((curve >= task.min_value * (1 - 1e-6)) & (curve <= task.max_value * (1 + 1e-6)))
    np.testing.assert_allclose(val, _numpy_sgd(task, curve.astype(np.float64), 7), rtol=1e-5)


def test_autolrs_reports_trained_plus_exploration_steps(lp):
    task = _task("lstsq-autolrs")
    val, lrs, member_steps = lp.autolrs_search(task, 7)
    # default tau = 50: stages of 50 and 10 steps, exploring ceil(50/4) = 13 and 4 steps with
    # 8 candidates; the 7 not kept per stage are the overhead
    assert member_steps == STEPS + 7 * (math.ceil(50 / 4) + 4)
    assert lrs.shape == (STEPS,)
    assert len(np.unique(lrs[:50])) == 1 and len(np.unique(lrs[50:])) == 1
    first = np.exp(np.linspace(np.log(task.min_value), np.log(task.max_value), 8))
    assert np.min(np.abs(lrs[0] / first - 1.0)) < 1e-5
    assert val < 0.5 * np.mean(Y**2)  # it trained: below the loss at w = 0


def test_spread_counts_and_regrets_against_same_seed_references(lp):
    grid = np.array([[1.0, 2.0, 4.0]])
    default = np.array([[1.5, 2.2, 8.0]])
    learned = np.array([[1.01, 2.1, 3.0], [1.2, np.nan, 4.05]])  # 2 policies x 3 seeds
    st = lp.spread({"grid8": grid, "default": default, "learned": learned})
    # regrets by hand: 0.01, 0.05, -0.25 | 0.2, inf, 0.0125
    sl = st["learned"]
    assert sl["runs"] == 6
    np.testing.assert_allclose([sl["min"], sl["median"]], [-0.25, (0.0125 + 0.05) / 2])
    assert sl["max"] == np.inf  # a non-finite run is the worst, never dropped
    assert sl["within_2pct"] == 3  # 0.01, -0.25, 0.0125
    assert sl["beats_default"] == 5  # all but the nan run
    np.testing.assert_allclose(
        [st["default"]["median"], st["default"]["max"]], [0.5, 1.0]
    )  # 0.5, 0.1, 1.0
    assert st["grid8"] == {
        "median": 0.0,
        "min": 0.0,
        "max": 0.0,
        "within_2pct": 3,
        "beats_default": 3,
        "runs": 3,
    }
