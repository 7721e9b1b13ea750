"""jaxlr.sweep: configurations, run (vmap, chunks, mesh, progress), divergence, results, plots."""

from __future__ import annotations

import itertools
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import jaxlr
from jaxlr.sweep import _progress

T = 20  # training steps of the small model
_rng = np.random.default_rng(0)
KEY = jax.random.key(0)
X = jnp.asarray(_rng.normal(size=(32, 4)), jnp.float32)
Y = jnp.asarray(np.sin(np.asarray(X) @ np.array([1.0, -2.0, 0.5, 1.5]))[:, None], jnp.float32)
P0 = {
    "w1": jnp.asarray(_rng.normal(size=(4, 8)) / 2, jnp.float32),
    "b1": jnp.zeros(8),
    "w2": jnp.asarray(_rng.normal(size=(8, 1)) / 3, jnp.float32),
    "b2": jnp.zeros(1),
}


def mse(p):
    h = jnp.tanh(X @ p["w1"] + p["b1"])
    return jnp.mean((h @ p["w2"] + p["b2"] - Y) ** 2)


def train_fn(cfg):
    """A small MLP trained by Adam under a warmup-cosine schedule built from traced values."""
    s = jaxlr.schedules.warmup_cosine(
        peak_value=cfg["peak_value"], warmup_steps=cfg["warmup_steps"], total_steps=T
    )
    tx = optax.adam(s)

    def step(carry, t):
        p, o = carry
        loss, g = jax.value_and_grad(mse)(p)
        u, o = tx.update(g, o, p)
        return (optax.apply_updates(p, u), o), (loss, s(t))

    (p, _), (losses, lrs) = jax.lax.scan(step, (P0, tx.init(P0)), jnp.arange(T))
    return {"loss": losses, "lr": lrs, "final": mse(p)}


CONFIGS = jaxlr.sweep.grid(peak_value=[1e-3, 1e-2, 1e-1, 3e-1], warmup_steps=[0.0, 5.0])
_single = jax.jit(train_fn)


def loop(configs):
    """The reference: a Python loop of single runs of the same train_fn."""
    k = jaxlr.sweep.size(configs)
    outs = [_single(jax.tree.map(lambda a, i=i: a[i], configs)) for i in range(k)]
    return jax.tree.map(lambda *xs: np.stack(xs), *outs)


def assert_same(a, b):
    jax.tree.map(lambda x, y: np.testing.assert_allclose(x, y, rtol=2e-5, atol=1e-6), a, b)


@pytest.fixture(scope="module")
def reference():
    return loop(CONFIGS)


@pytest.fixture(scope="module")
def unchunked():
    return jaxlr.sweep.run(train_fn, CONFIGS, progress=False)


# -- configurations ------------------------------------------------------------------------------


def test_grid_is_the_cartesian_product():
    peaks, warm = [0.1, 0.01, 0.001], [0, 5, 10, 20]
    g = jaxlr.sweep.grid(peak_value=peaks, warmup_steps=warm, total_steps=100)
    expected = list(itertools.product(peaks, warm))
    assert g["peak_value"].shape == (12,)
    np.testing.assert_allclose(g["peak_value"], [p for p, _ in expected], rtol=1e-6)
    np.testing.assert_array_equal(g["warmup_steps"], [w for _, w in expected])
    np.testing.assert_array_equal(g["total_steps"], np.full(12, 100))


def test_zip_pairs_and_rejects_unequal_lengths():
    z = jaxlr.sweep.zip(a=[1.0, 2.0], b=[3.0, 4.0], c=7.0)
    np.testing.assert_array_equal(np.stack([z["a"], z["b"], z["c"]], 1), [[1, 3, 7], [2, 4, 7]])
    with pytest.raises(ValueError, match=r"zip: axes must have the same length.*'a': 2, 'b': 3"):
        jaxlr.sweep.zip(a=[1, 2], b=[1, 2, 3])


def test_random_is_seeded_bounded_and_log_uniform():
    spec = dict(
        peak_value=("log_uniform", 1e-4, 1.0), warmup=("uniform", 0.0, 10.0), shape=[0, 1, 2]
    )
    a = jaxlr.sweep.random(4000, key=jax.random.key(3), **spec)
    b = jaxlr.sweep.random(4000, key=jax.random.key(3), **spec)
    c = jaxlr.sweep.random(4000, key=jax.random.key(4), **spec)
    assert_same(a, b)
    assert not np.allclose(a["peak_value"], c["peak_value"])
    logp = np.log10(np.asarray(a["peak_value"]))
    assert logp.min() >= -4 and logp.max() <= 0
    # log-uniform: each decade holds a quarter of the draws; uniform: half below the middle.
    np.testing.assert_allclose(np.histogram(logp, bins=4, range=(-4, 0))[0] / 4000, 0.25, atol=0.03)
    assert abs(np.mean(np.asarray(a["warmup"]) < 5.0) - 0.5) < 0.03
    assert set(np.asarray(a["shape"]).tolist()) == {0, 1, 2}
    with pytest.raises(TypeError, match=r"random: argument 'seed' is now 'key'"):
        jaxlr.sweep.random(4, seed=3, **spec)


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda: jaxlr.sweep.grid(peak_value=[]), r"grid: axis peak_value is empty"),
        (lambda: jaxlr.sweep.grid(), r"grid: give at least one axis"),
        (lambda: jaxlr.sweep.grid(peak_value=0.1), r"grid: give at least one axis with values"),
        (lambda: jaxlr.sweep.grid(name=[{}, {}]), r"grid: axis name must hold numbers or strings"),
        (lambda: jaxlr.sweep.grid(name=["a", "a"]), r"grid: axis name repeats a choice"),
        (lambda: jaxlr.sweep.random(0, key=KEY, peak_value=("uniform", 0, 1)), r"random: num must"),
        (
            lambda: jaxlr.sweep.random(3, key=KEY, p=("log_uniform", 0.0, 1.0)),
            r"random: space\['p'\]=\('log_uniform', 0.0, 1.0\): log_uniform needs low > 0",
        ),
        (
            lambda: jaxlr.sweep.random(3, key=KEY, p=("normal", 0.0, 1.0)),
            r"random: space\['p'\]=\('normal', 0.0, 1.0\): give \(kind, low, high\)",
        ),
        (
            lambda: jaxlr.sweep.random(3, key=KEY, p=("uniform", 2.0, 1.0)),
            r"random: space\['p'\]=.*: low must be <= high",
        ),
        (lambda: jaxlr.sweep.random(3, key=7, p=[1, 2]), r"random: key must be a PRNG key"),
        (lambda: jaxlr.sweep.random(3, key=KEY), r"random: give at least one axis"),
        (lambda: jaxlr.sweep.stack([]), r"stack: schedules must be a non-empty"),
        (
            lambda: jaxlr.sweep.size({"a": np.zeros(3), "b": np.zeros(4)}),
            r"size: configuration leaves must share their leading axis, got .*'a': 3, 'b': 4",
        ),
        (lambda: jaxlr.sweep.size({"a": np.zeros(0)}), r"size: configs are empty"),
        (lambda: jaxlr.sweep.size({"a": 1.0}), r"size: every configuration leaf needs a leading"),
    ],
)
def test_configuration_errors(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def test_stack_vmaps_like_the_members():
    members = [
        jaxlr.schedules.warmup_cosine(peak_value=p, warmup_steps=w, total_steps=50)
        for p, w in [(0.1, 0), (0.2, 10), (0.5, 25)]
    ]
    st = jaxlr.sweep.stack(members)
    assert jaxlr.sweep.size(st) == 3
    steps = jnp.arange(0, 60, 7)
    got = jax.jit(jax.vmap(lambda s: s(steps)))(st)
    np.testing.assert_allclose(got, np.stack([s(steps) for s in members]), rtol=1e-6)
    with pytest.raises(
        ValueError,
        match=r"stack: every member needs the structure of member 0, "
        r"got member 1=constant",
    ):
        jaxlr.sweep.stack([members[0], jaxlr.schedules.constant(value=0.1)])


# -- run -----------------------------------------------------------------------------------------


def test_run_equals_a_loop_of_single_runs(unchunked, reference):
    assert_same(unchunked.metrics, reference)
    assert unchunked.info["num_chunks"] == 1 and unchunked.info["padded"] == 0
    assert unchunked.info["memory_bytes"] > 0
    assert not unchunked.diverged.any()


def test_chunked_equals_unchunked_and_compiles_once(unchunked):
    traces = []

    def counted(cfg):
        traces.append(1)
        return train_fn(cfg)

    chunked = jaxlr.sweep.run(counted, CONFIGS, chunk_size=3, progress=False)  # 3, 3, 2 + 1 pad
    assert chunked.info["num_chunks"] == 3 and chunked.info["padded"] == 1
    assert len(traces) == 1
    assert_same(chunked.metrics, unchunked.metrics)
    again = jaxlr.sweep.run(counted, CONFIGS, chunk_size=3, progress=False)
    assert len(traces) == 1 and again.info["cache_hit"] and not chunked.info["cache_hit"]
    np.testing.assert_array_equal(chunked.hyperparameters["peak_value"], CONFIGS["peak_value"])


@pytest.mark.parametrize("vmap_size", [1, 4])
def test_members_in_a_compiled_loop_equal_vmap(unchunked, vmap_size):
    mapped = jaxlr.sweep.run(train_fn, CONFIGS, vmap_size=vmap_size, progress=False)
    assert_same(mapped.metrics, unchunked.metrics)


def test_bad_vmap_size_is_rejected():
    with pytest.raises(
        ValueError, match="run: vmap_size must be an int >= 1 or None, got vmap_size=0"
    ):
        jaxlr.sweep.run(train_fn, CONFIGS, vmap_size=0, progress=False)


def test_divergence_is_reported_and_isolated(unchunked):
    cfg = jaxlr.sweep.zip(peak_value=[1e-2, 1e37, 1e-1], warmup_steps=[0.0, 0.0, 5.0])
    res = jaxlr.sweep.run(train_fn, cfg, progress=False)
    ref = loop(cfg)
    bad = ~np.isfinite(ref["loss"][1])
    assert bad.any()
    assert res.diverged.tolist() == [False, True, False]
    assert res.diverged_step.tolist() == [-1, int(np.argmax(bad)), -1]
    # The healthy members equal their single runs, and the same members in a sweep without the
    # diverged one (CONFIGS members 2 and 5).
    for i, j in [(0, 2), (2, 5)]:
        np.testing.assert_allclose(res.metrics["loss"][i], ref["loss"][i], rtol=2e-5, atol=1e-6)
        np.testing.assert_allclose(res.metrics["loss"][i], unchunked.metrics["loss"][j], rtol=1e-6)
    assert res.best("final")["index"] != 1
    thresholded = jaxlr.sweep.SweepResult(res.configs, res.metrics, divergence_threshold=0.05)
    over = np.asarray(res.metrics["loss"]) > 0.05
    np.testing.assert_array_equal(thresholded.diverged, over.any(1) | res.diverged)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(chunk_size=0), r"run: chunk_size must be >= 1, got chunk_size=0"),
        (dict(chunk_size=2.5), r"run: chunk_size must be an int >= 1 or None, got chunk_size=2.5"),
        (dict(chunk_size=True), r"run: chunk_size must be an int"),
        (dict(mesh="cpu"), r"run: mesh must be a jax.sharding.Mesh or None, got mesh='cpu'"),
        (dict(num_steps=0), r"run: num_steps must be an int >= 1"),
        (dict(divergence_threshold=float("nan")), r"run: divergence_threshold must not be NaN"),
    ],
)
def test_run_rejects_bad_options(kwargs, match):
    with pytest.raises(ValueError, match=match):
        jaxlr.sweep.run(train_fn, CONFIGS, progress=False, **kwargs)


@pytest.mark.parametrize(
    "fn, match",
    [
        (
            lambda c: {"loss": "low"},
            r"run: train_fn must return a pytree of arrays, got \['loss'\]",
        ),
        (lambda c: None, r"run: train_fn must return a pytree of arrays \(metrics\), got None"),
        (lambda c: {"acc": c["a"]}, r"run: train_fn's metrics need a 'loss' entry .*'acc'"),
        (lambda c: {"loss": c["a"] > 0}, r"run: metric 'loss' must be floating point"),
    ],
)
def test_run_rejects_bad_outputs_before_compiling(fn, match):
    with pytest.raises(ValueError, match=match):
        jaxlr.sweep.run(fn, {"a": jnp.ones(3)}, progress=False)


def test_run_rejects_mismatched_configs():
    with pytest.raises(ValueError, match=r"run: configuration leaves must share their leading"):
        jaxlr.sweep.run(train_fn, {"peak_value": jnp.ones(3), "warmup_steps": jnp.ones(2)})


def test_progress_bar_counts_steps_from_inside_the_scan(monkeypatch, capsys):
    seen = []
    monkeypatch.setattr(_progress, "_on_step", lambda s: seen.append(int(s)) or None)

    def ticking(cfg):
        def body(x, t):
            jaxlr.sweep.report_progress(t, every=4)
            return x * cfg["a"], None

        return {"loss": jax.lax.scan(body, 1.0, jnp.arange(10))[0]}

    res = jaxlr.sweep.run(ticking, {"a": jnp.array([0.5, 1.0, 2.0])}, chunk_size=2, num_steps=10)
    assert sorted(seen) == [0, 0, 4, 4, 8, 8]  # two chunks, a tick every 4 steps, once per step
    np.testing.assert_allclose(res.metrics["loss"], [0.5**10, 1.0, 2.0**10])
    assert "20/20" in capsys.readouterr().err


def test_report_progress_moves_the_active_bar():
    class Bar:
        n = 0

        def update(self, k):
            self.n += k

    _progress._Active.bar, _progress._Active.offset, _progress._Active.num_steps = Bar(), 10, 10
    try:
        _progress._on_step(np.int32(3))
        _progress._on_step(np.int32(2))  # late or repeated reports never move it back
        assert _progress._Active.bar.n == 14
    finally:
        _progress._Active.bar = None
    with pytest.raises(ValueError, match=r"report_progress: every must be an int >= 1"):
        jaxlr.sweep.report_progress(0, every=0)


# -- results -------------------------------------------------------------------------------------


def test_result_tables_and_best(unchunked, reference):
    final = reference["final"]
    best = unchunked.best("final")
    assert best["index"] == int(np.argmin(final))
    assert best["peak_value"] == pytest.approx(float(CONFIGS["peak_value"][best["index"]]))
    by = unchunked.best("final", by="warmup_steps")
    for w in (0.0, 5.0):
        idx = np.flatnonzero(np.asarray(CONFIGS["warmup_steps"]) == w)
        assert by[w]["index"] == idx[np.argmin(final[idx])]
    recs = unchunked.records()
    assert len(recs) == 8 and recs[3]["loss"] == pytest.approx(float(reference["loss"][3, -1]))
    assert set(recs[0]) >= {
        "peak_value",
        "warmup_steps",
        "loss",
        "lr_final",
        "final",
        "diverged",
        "diverged_step",
    }
    labelled = jaxlr.sweep.SweepResult(
        {"s": np.array([0, 1, 1])}, {"loss": np.array([3.0, 1, 2])}, labels={"s": ["cosine", "wsd"]}
    )
    assert labelled.best("loss", by="s") == {
        "cosine": {"index": 0, "s": "cosine", "loss": 3.0, "diverged": False, "diverged_step": -1},
        "wsd": {"index": 1, "s": "wsd", "loss": 1.0, "diverged": False, "diverged_step": -1},
    }
    try:
        import pandas  # noqa: F401
    except ImportError:
        with pytest.raises(ImportError, match="to_pandas needs pandas"):
            unchunked.to_pandas()
    else:
        assert unchunked.to_pandas().shape[0] == 8


def test_plots(unchunked, reference, tmp_path):
    fig = unchunked.plot_final("final", x="peak_value", by="warmup_steps")
    ax = fig.axes[0]
    assert ax.get_xscale() == "log"
    lines = [ln for ln in ax.get_lines() if ln.get_label() in ("0.0", "5.0")]
    assert len(lines) == 2
    w = np.asarray(CONFIGS["warmup_steps"])
    np.testing.assert_allclose(lines[1].get_ydata(), reference["final"][w == 5.0], rtol=2e-5)
    lam = np.abs(reference["loss"][:, ::5]) + 1.0  # a stand-in curvature curve, every 5 steps
    res = jaxlr.sweep.SweepResult(CONFIGS, {**unchunked.metrics, "lambda_max": lam})
    sharp = res.plot_sharpness(by="warmup_steps").axes[0]
    np.testing.assert_allclose(
        sharp.get_lines()[0].get_ydata(), lam[0] * reference["lr"][0, ::5], rtol=2e-5
    )
    paths = res.save_plots(tmp_path, by="warmup_steps")
    assert sorted(p.name for p in paths) == [
        "final_loss_vs_peak_lr.png",
        "loss_curves.png",
        "lr_curves.png",
        "sharpness_times_lr.png",
    ]
    assert all(p.stat().st_size > 1000 for p in paths)


# -- 8 CPU devices (a subprocess: XLA_FLAGS must be set before JAX starts) -------------------------

_SHARDED = textwrap.dedent("""
    import sys  # XLA_FLAGS (8 host devices, no LLVM optimizations) come from the test's env
    sys.path.insert(0, sys.argv[1])
    import jax, numpy as np, pytest
    from jax.sharding import Mesh
    import jaxlr, test_sweep as t

    assert jax.device_count() == 8, jax.devices()
    flat = Mesh(np.array(jax.devices()), ("members",))
    square = Mesh(np.array(jax.devices()).reshape(4, 2), ("a", "b"))
    cfg = jaxlr.sweep.grid(peak_value=[1e-3, 1e-2, 3e-2, 1e-1, 3e-1], warmup_steps=[0.0, 5.0])
    loop = t.loop(cfg)
    plain = jaxlr.sweep.run(t.train_fn, cfg, progress=False)
    sharded = jaxlr.sweep.run(t.train_fn, cfg, mesh=flat, progress=False)   # 10 -> 16 padded
    chunked = jaxlr.sweep.run(t.train_fn, cfg, mesh=square, chunk_size=8, progress=False)
    assert sharded.info["padded"] == 6 and sharded.info["devices"] == 8, sharded.info
    assert chunked.info["num_chunks"] == 2, chunked.info
    t.assert_same(plain.metrics, loop)
    t.assert_same(sharded.metrics, loop)
    t.assert_same(chunked.metrics, loop)
    mapped = jaxlr.sweep.run(t.train_fn, cfg, mesh=flat, vmap_size=1, progress=False)
    t.assert_same(mapped.metrics, loop)
    with pytest.raises(ValueError, match="chunk_size must be a multiple of the mesh's 8 devices"):
        jaxlr.sweep.run(t.train_fn, cfg, mesh=flat, chunk_size=4)
    # A population on the same engine: 6 members padded to 8, one batch per member, sharded.
    import test_population as tp
    pops = [jaxlr.sweep.Population(tp.init_fn, tp.step_fn, tp.CONFIGS, key=tp.KEY, mesh=m,
                                   member_batches=True, progress=False)
            .train(tp.batches(k=6, seed=2), 6, steps_per_call=3) for m in (None, square)]
    assert pops[1].result().info["padded"] == 2
    t.assert_same(pops[1].result().metrics, pops[0].result().metrics)
    t.assert_same(pops[1].host_carry().state, pops[0].host_carry().state)
    print("SHARDED-OK")
""")


def test_sharded_on_8_cpu_devices_equals_unsharded_and_loop():
    # compile-bound (every engine compiled once, each run is tiny): skip LLVM's optimizations
    flags = "--xla_force_host_platform_device_count=8 --xla_backend_optimization_level=0"
    env = {**os.environ, "XLA_FLAGS": flags}
    proc = subprocess.run(
        [sys.executable, "-c", _SHARDED, str(Path(__file__).parent)],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert "SHARDED-OK" in proc.stdout, proc.stdout + proc.stderr


def test_the_sweep_package_has_no_import_cycle():
    """Every import between ``jaxlr/sweep`` modules, deferred ones inside functions included,
    forms an acyclic graph (``_checkpoint`` and ``_population`` used to import each other)."""
    import ast
    import pathlib

    folder = pathlib.Path(jaxlr.sweep.__file__).parent
    graph = {}
    for path in folder.glob("*.py"):
        deps = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module == "jaxlr.sweep":
                deps |= {a.name for a in node.names if (folder / f"{a.name}.py").exists()}
            elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith(
                "jaxlr.sweep."
            ):
                deps.add(node.module.rsplit(".", 1)[1])
        graph[path.stem] = deps - {path.stem}
    assert graph["_checkpoint"] and graph["_population"]  # the scan sees imports at all
    done, active = set(), []

    def visit(m):
        assert m not in active, f"import cycle: {' -> '.join([*active[active.index(m) :], m])}"
        if m in done:
            return
        active.append(m)
        for d in graph.get(m, ()):
            visit(d)
        active.pop()
        done.add(m)

    for m in graph:
        visit(m)
