"""One search space for every search: random, PBT's exploration and Optuna draw from a Space.

The same :class:`jaxlr.sweep.Space` goes to each search; its samples must fall in the space and
follow each entry's distribution (quantiles / frequencies against a NumPy reference), and string
choices must come back as the strings given (the train or step function sees their index).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxlr

CHOICES = ("relu", "gelu", "tanh")
SPACE = jaxlr.sweep.Space(
    {
        "opt": {"lr": ("log_uniform", 1e-4, 1e-1)},
        "wd": ("uniform", 0.0, 0.1),
        "layers": ("int", 1, 4),
        "width": ("log_int", 8, 512),
        "act": list(CHOICES),
        "momentum": 0.9,
    }
)
FAST = {"xla_backend_optimization_level": 0}


def draw_random():
    cfg = jaxlr.sweep.random(4000, SPACE, key=jax.random.key(0))
    assert isinstance(cfg["act"], jaxlr.sweep.Choice) and cfg["act"].choices == CHOICES
    return {
        "opt.lr": np.asarray(cfg["opt"]["lr"]),
        "wd": np.asarray(cfg["wd"]),
        "layers": np.asarray(cfg["layers"]),
        "width": np.asarray(cfg["width"]),
        "act": cfg["act"].labels(),
        "momentum": np.asarray(cfg["momentum"]),
    }


def draw_pbt():
    """Every value PBT's explore drew (resample_probability=1): the replaced slots' configs,
    read back from metrics the step function reports (strings through their index)."""
    k, steps = 64, 40

    def step_fn(w, cfg, batch):
        seen = {
            "opt.lr": cfg["opt"]["lr"],
            "wd": cfg["wd"],
            "layers": cfg["layers"].astype(jnp.float32),
            "width": cfg["width"].astype(jnp.float32),
            "act": cfg["act"].astype(jnp.float32),
            "momentum": cfg["momentum"],
        }
        return w + 1.0, {"loss": -w * cfg["opt"]["lr"], "lr": cfg["opt"]["lr"], **seen}

    res = jaxlr.sweep.pbt(
        lambda cfg, key: jnp.zeros(()),
        step_fn,
        jaxlr.sweep.random(k, SPACE, key=jax.random.key(1)),
        (np.zeros(()) for _ in range(steps)),
        key=jax.random.key(2),
        num_steps=steps,
        interval=1,
        metric="loss",
        space=SPACE,
        fraction=0.5,
        resample_probability=1.0,
        progress=False,
        compiler_options=FAST,
    )
    assert res.configs["act"].choices == CHOICES  # the config keeps its strings
    assert set(res.hyperparameters["act"].tolist()) <= set(CHOICES)
    out = {name: [] for name in SPACE.names}
    for t in range(steps - 1):
        replaced = np.flatnonzero(res.lineage[t] != np.arange(k))
        assert len(replaced) == k // 2
        for name in out:
            out[name].append(res.metrics[name][replaced, t + 1])
    out = {name: np.concatenate(v) for name, v in out.items()}
    out["layers"] = out["layers"].astype(int)
    out["width"] = out["width"].astype(int)
    out["act"] = np.asarray(CHOICES)[out["act"].astype(int)]
    return out


def draw_optuna():
    optuna = pytest.importorskip("optuna")
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    seen = []

    def train_fn(cfg):
        return {
            "loss": cfg["opt"]["lr"] * 0.0 + 1.0,
            "act_index": cfg["act"].astype(jnp.float32),
            "momentum": cfg["momentum"],
        }

    study = jaxlr.sweep.optuna_search(
        train_fn,
        SPACE,
        num_trials=400,
        batch_size=200,
        sampler=optuna.samplers.RandomSampler(seed=0),
    )
    for t in study.trials:
        # the function saw the index of the string the trial holds
        seen.append(t.user_attrs["act_index"] == CHOICES.index(t.params["act"]))
        assert t.user_attrs["momentum"] == pytest.approx(0.9)
    assert all(seen)
    params = [t.params for t in study.trials]
    out = {
        name: np.asarray([p[name] for p in params]) for name in SPACE.names if name != "momentum"
    }
    out["momentum"] = np.full(len(params), 0.9)
    return out


def reference(name: str, n: int = 200_000) -> np.ndarray:
    """NumPy draws of each entry's distribution, written from its definition."""
    rng = np.random.default_rng(123)
    return {
        "opt.lr": lambda: np.exp(rng.uniform(np.log(1e-4), np.log(1e-1), n)),
        "wd": lambda: rng.uniform(0.0, 0.1, n),
        "layers": lambda: rng.integers(1, 5, n),
        "width": lambda: np.floor(np.exp(rng.uniform(np.log(8), np.log(513), n))),
    }[name]()


@pytest.mark.parametrize("search", [draw_random, draw_pbt, draw_optuna], ids=lambda f: f.__name__)
def test_every_search_draws_from_the_same_space(search):
    got = search()
    n = len(got["wd"])
    assert n >= 300
    tol = 4.5 * 0.5 / np.sqrt(n) + 0.02  # CDF error of n draws (DKW-like), plus rounding
    for name, low, high in (
        ("opt.lr", 1e-4, 1e-1),
        ("wd", 0.0, 0.1),
        ("layers", 1, 4),
        ("width", 8, 512),
    ):
        x = got[name]
        assert x.min() >= low * (1 - 1e-6) and x.max() <= high * (1 + 1e-6), name
        ref = reference(name)
        qs = np.quantile(ref, [0.1, 0.25, 0.5, 0.75, 0.9])
        cdf = [np.mean(x <= q) for q in qs]
        ref_cdf = [np.mean(ref <= q) for q in qs]
        np.testing.assert_allclose(cdf, ref_cdf, atol=tol, err_msg=name)
    # log vs linear really differ here: the log-uniform median is 0.0032, the linear one 0.05
    assert np.median(got["opt.lr"]) < 0.01 and abs(np.median(got["wd"]) - 0.05) < 0.02
    assert set(np.unique(got["layers"]).tolist()) == {1, 2, 3, 4}
    assert np.issubdtype(np.asarray(got["layers"]).dtype, np.integer)
    act = got["act"]
    assert all(isinstance(a, str) for a in act.tolist())
    freq = [np.mean(act == c) for c in CHOICES]
    np.testing.assert_allclose(freq, 1 / 3, atol=tol)
    np.testing.assert_allclose(got["momentum"], 0.9, rtol=1e-6)


def test_paths_are_one_name_in_every_spelling():
    nested = jaxlr.sweep.Space({"schedule": {"peak_value": ("log_uniform", 1e-3, 1.0)}})
    for spelling in ("schedule.peak_value", ".schedule.peak_value", "['schedule'].peak_value"):
        assert jaxlr.sweep.Space({spelling: ("log_uniform", 1e-3, 1.0)}) == nested
    with pytest.raises(ValueError, match=r"Space: space names the path 'a.b' twice"):
        jaxlr.sweep.Space({"a.b": 1.0, "a": {"b": 2.0}})
    cfg = nested.sample(3, key=jax.random.key(0))
    assert list(cfg) == ["schedule"] and cfg["schedule"]["peak_value"].shape == (3,)


def test_string_choices_reach_the_function_as_their_index_and_tables_as_strings():
    configs = jaxlr.sweep.grid(act=list(CHOICES), scale=[1.0, 2.0])
    table = jnp.asarray([1.0, 10.0, 100.0])  # relu, gelu, tanh: in the order given

    def train_fn(cfg):
        return {"loss": table[cfg["act"]] * cfg["scale"]}

    res = jaxlr.sweep.run(train_fn, configs, progress=False)
    np.testing.assert_allclose(res.metrics["loss"], [1, 2, 10, 20, 100, 200])
    assert [r["act"] for r in res.records()] == ["relu", "relu", "gelu", "gelu", "tanh", "tanh"]
    assert res.best("loss", mode="max")["act"] == "tanh"
    assert list(res.best("loss", by="act")) == list(CHOICES)


@pytest.mark.parametrize(
    "spec, match",
    [
        # int bounds past the values' dtype used to wrap (random drew INT_MIN)
        (
            {"a": ("int", 0, 2**40)},
            r"space\['a'\]=\('int', 0, 1099511627776\): int bounds must "
            r"lie in \[-2147483648, 2147483647\] \(int32",
        ),
        ({"a": ("log_int", 1, 2**31)}, r"log_int bounds must lie in \[-2147483648, 2147483647\]"),
        # a path both a leaf and a prefix, bad fixed values, empty path segments
        (
            {"s": 1e-3, "s.p": ("uniform", 0, 1)},
            r"space names 's' as a value and as the prefix of \['s.p'\]",
        ),
        ({"s": {"p": {"q": 1}}, "s.p": 2}, r"space names 's.p' as a value and as the prefix"),
        ({"a": None, "b": ("uniform", 0, 1)}, r"space\['a'\]=None: give \(kind, low, high\)"),
        ({"a": object()}, r"space\['a'\]=<object object at .*>: give \(kind, low, high\)"),
        ({"a..b": 1, "c": ("uniform", 0, 1)}, r"space\['a..b'\]: the path 'a..b' has an empty"),
        ({"c.": ("uniform", 0, 1)}, r"space\['c.'\]: the path 'c.' has an empty segment"),
        ({"s": {"": 1}}, r"space names must be non-empty strings, got ''"),
    ],
)
def test_space_refuses_bad_entries_at_construction(spec, match):
    with pytest.raises(ValueError, match=r"^Space: .*" + match):
        jaxlr.sweep.Space(spec)


def test_int_bounds_past_int32_are_drawn_exactly_under_x64():
    with jax.enable_x64(True):
        a = jaxlr.sweep.random(50, {"a": ("int", 2**40, 2**40 + 3)}, key=jax.random.key(0))["a"]
        assert a.dtype == jnp.int64
        assert set(np.asarray(a).tolist()) == {2**40 + i for i in range(4)}


@pytest.mark.parametrize(
    "index, choices, match",
    [
        ([0, 1], "adam", r"choices must be a sequence of strings, got choices='adam'"),
        ([0, 1], (), r"choices must be a non-empty sequence of strings, got choices=\(\)"),
        ([0, 1], (1, 2), r"choices must be a non-empty sequence of strings, got choices=\(1, 2\)"),
        ([0, 1], ("a", "a"), r"choices must differ, got the duplicates in choices=\('a', 'a'\)"),
        (np.array([0.5, 1.2]), ("a", "b"), r"index must be an integer array, got dtype float64"),
        (np.array([0, 5]), ("a", "b"), r"index must lie in \[0, 2\) .* got index=\[0, 5\]"),
        (jnp.array([-1, 0]), ("a", "b"), r"index must lie in \[0, 2\) .* got index=\[-1, 0\]"),
    ],
)
def test_choice_refuses_bad_choices_and_indices(index, choices, match):
    with pytest.raises(ValueError, match=r"^Choice: " + match):
        jaxlr.sweep.Choice(index, choices)


def test_a_choice_still_maps_and_traces():
    """Validation happens where a user builds a Choice, not when JAX rebuilds the pytree."""
    c = jaxlr.sweep.Choice(np.array([1, 0, 1], np.int32), ("adam", "sgd"))
    doubled = jax.jit(lambda c: jax.tree.map(lambda i: i * 0 + 1, c))(c)
    assert doubled.labels().tolist() == ["sgd"] * 3
    assert jax.tree.structure(c) == jax.tree.structure(doubled)
