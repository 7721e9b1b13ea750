"""jaxlr.auto range test and AutoLRS against independent references (NumPy, a dense Hessian)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxlr import auto

# -- LR range test on a quadratic: the stable range is lr < 2 / lambda_max ----------------------

D = 10
_Q, _ = np.linalg.qr(np.random.default_rng(0).normal(size=(D, D)))
H_NP = _Q @ np.diag(np.linspace(1.0, 10.0, D)) @ _Q.T
H = jnp.asarray(H_NP, jnp.float32)


def quad_step(x, config, key):
    g = H @ x + 0.05 * jax.random.normal(key, (D,))
    return x - config["lr"] * g, {"loss": 0.5 * x @ H @ x}


def quad_init(key):
    return jax.random.normal(key, (D,))


QUAD_TEST = dict(key=jax.random.key(0), num_seeds=4, min_value=1e-4, max_value=10.0, num_steps=100)


@pytest.fixture(scope="module")
def quad_result():
    return auto.lr_range_test(quad_step, quad_init, **QUAD_TEST)


def test_range_test_suggests_inside_stable_range(quad_result):
    lam_max = np.linalg.eigvalsh(H_NP).max()  # dense reference in float64
    r = quad_result
    assert r.ok
    for name in auto._range_test.SUGGESTIONS:
        s = r.suggestions[name]
        assert np.isfinite(s.members).all(), name
        assert 1e-4 < float(s.low) <= float(s.lr) <= float(s.high) < 2.0 / lam_max, name
    # every member diverged past the stable range, never inside it
    lrs = np.asarray(r.lrs)
    at = np.asarray(r.diverged_at)
    assert (at < r.lrs.shape[0]).all()
    assert (lrs[at] > 2.0 / lam_max).all()


def test_range_test_masking_and_debiased_ema(quad_result):
    r = quad_result
    beta = 0.98
    for s in range(4):
        n = int(r.diverged_at[s])
        valid = np.asarray(r.valid[s])
        assert valid[:n].all() and not valid[n:].any()
        assert np.isnan(np.asarray(r.losses[s, n:])).all()
        raw = np.asarray(r.losses[s, :n], np.float64)
        m, ref = 0.0, []
        for i, x in enumerate(raw):
            m = beta * m + (1 - beta) * x
            ref.append(m / (1 - beta ** (i + 1)))
        np.testing.assert_allclose(np.asarray(r.smoothed[s, :n]), ref, rtol=2e-5)


def _valley_ref(losses):
    n = len(losses)
    lds = [1] * n
    best_end = 0
    for i in range(1, n):
        for j in range(i):
            if losses[i] < losses[j] and lds[i] < lds[j] + 1:
                lds[i] = lds[j] + 1
        if lds[best_end] < lds[i]:
            best_end = i
    start = best_end - lds[best_end]
    third = (best_end - start) // 3
    return start + third + third // 2


def test_suggestions_match_numpy_on_a_known_curve():
    n = 60
    lrs = 1e-3 * (1e4) ** (np.arange(n) / (n - 1))
    rng = np.random.default_rng(3)
    curve = 1.0 + (np.log10(lrs) - 0.0) ** 2 / 4 + 0.02 * rng.normal(size=n)
    table = jnp.asarray(curve, jnp.float32)

    def step(i, config, key):  # returns the tabulated loss of step i, whatever the LR
        return i + 1, {"loss": table[i]}

    r = auto.lr_range_test(
        step,
        lambda k: jnp.asarray(0),
        key=jax.random.key(0),
        num_seeds=1,
        min_value=1e-3,
        max_value=10.0,
        num_steps=n,
        decay=0.0,
        diverge_factor=100.0,
    )
    np.testing.assert_allclose(np.asarray(r.lrs), lrs, rtol=1e-5)
    slope = np.diff(curve) / np.diff(np.log(lrs))
    want = {
        "valley": lrs[_valley_ref(list(curve))],
        "steepest": lrs[np.argmin(slope)],
        "min_div10": lrs[np.argmin(curve)] / 10,
    }
    for k, v in want.items():
        np.testing.assert_allclose(float(r.suggestions[k].members[0]), v, rtol=1e-5, err_msg=k)


def test_second_hyperparameter_equals_separate_runs():
    def step(x, config, key):
        g = H @ x + config["hparam"] * x + 0.05 * jax.random.normal(key, (D,))
        return x - config["lr"] * g, {"loss": 0.5 * x @ H @ x}

    kw = dict(key=jax.random.key(1), num_seeds=2, min_value=1e-3, max_value=5.0, num_steps=40)
    both = auto.lr_range_test(step, lambda k, wd: quad_init(k), hparams=[0.0, 2.0], **kw)
    assert both.losses.shape == (2, 2, 40)
    assert both.suggestions["valley"].lr.shape == (2,)
    one = auto.lr_range_test(lambda x, c, k: step(x, {**c, "hparam": 2.0}, k), quad_init, **kw)
    np.testing.assert_allclose(
        np.asarray(both.smoothed[1]), np.asarray(one.smoothed), rtol=1e-5, equal_nan=True
    )
    assert not np.allclose(
        np.asarray(both.smoothed[0]), np.asarray(one.smoothed), equal_nan=True
    )  # the hyperparameter reached the step


def test_all_diverged_says_so():
    r = auto.lr_range_test(
        lambda x, c, k: (x, {"loss": jnp.nan}),
        lambda k: 0.0,
        key=jax.random.key(0),
        num_seeds=3,
        num_steps=10,
    )
    assert not r.ok
    assert "every one of the 3 members diverged" in r.message
    assert np.isnan(np.asarray(r.suggestions["valley"].lr))
    assert (np.asarray(r.diverged_at) == 0).all()


def test_vmap_over_bounds_equals_a_loop_of_single_calls(quad_result):
    lo = jnp.asarray([1e-4, 1e-3, 3e-2])
    hi = jnp.asarray([10.0, 0.15, 5.0])  # the middle ramp stays below 2 / lambda_max = 0.2
    traces = []

    def one(a, b):  # the fixture's shapes, so the single calls reuse its compiled program
        traces.append(1)
        return auto.lr_range_test(
            quad_step,
            quad_init,
            key=jax.random.key(0),
            num_seeds=4,
            min_value=a,
            max_value=b,
            num_steps=100,
        )

    sweep = jax.jit(jax.vmap(one))
    batched = sweep(lo, hi)
    sweep(2 * lo, hi)  # new bound values: the same compiled program
    assert len(traces) == 1
    assert batched.ok.shape == (3,) and batched.num_diverged.shape == (3,)
    lines = batched.message.splitlines()
    assert len(lines) == 3
    for i in range(3):
        single = quad_result if i == 0 else one(float(lo[i]), float(hi[i]))
        np.testing.assert_allclose(np.asarray(batched.lrs[i]), np.asarray(single.lrs), rtol=1e-6)
        np.testing.assert_allclose(
            np.asarray(batched.smoothed[i]), np.asarray(single.smoothed), rtol=1e-5, equal_nan=True
        )
        np.testing.assert_array_equal(
            np.asarray(batched.diverged_at[i]), np.asarray(single.diverged_at)
        )
        for name in auto._range_test.SUGGESTIONS:
            np.testing.assert_allclose(
                np.asarray(batched.suggestions[name].members[i]),
                np.asarray(single.suggestions[name].members),
                rtol=1e-5,
                equal_nan=True,
                err_msg=name,
            )
        assert int(batched.num_diverged[i]) == int(single.num_diverged)
        assert lines[i] == f"[{i}] {single.message}"
    # the bounds reached the computation: the counts follow them
    assert [int(n) for n in batched.num_diverged] == [4, 0, 4]


@pytest.mark.parametrize("fn", ["lr_range_test", "autolrs"])
def test_old_bound_names_raise_naming_the_new(fn):
    with pytest.raises(TypeError, match=f"{fn}: argument 'min_lr' is now 'min_value'"):
        getattr(auto, fn)(quad_step, quad_init, key=jax.random.key(0), min_lr=1e-3)
    with pytest.raises(TypeError, match=f"{fn}: argument 'max_lr' is now 'max_value'"):
        getattr(auto, fn)(quad_step, quad_init, key=jax.random.key(0), max_lr=1.0)


@pytest.mark.parametrize(
    "kw, match",
    [
        (dict(min_value=0.0), "min_value must be > 0"),
        (dict(min_value=1.0, max_value=0.5), "max_value must be > min_value"),
        (dict(num_steps=2), "num_steps must be an int >= 3"),
        (dict(decay=1.0), r"decay must be in \[0, 1\)"),
        (dict(diverge_factor=1.0), "diverge_factor must be > 1"),
    ],
)
def test_range_test_bad_input(kw, match):
    with pytest.raises(ValueError, match=f"lr_range_test: {match}") as err:
        auto.lr_range_test(quad_step, quad_init, key=jax.random.key(0), **kw)
    assert "got" in str(err.value), str(err.value)  # the offending value is shown


# -- AutoLRS -----------------------------------------------------------------------------------


def test_exp_forecast_recovers_curve_despite_spikes_and_noise():
    rng = np.random.default_rng(0)
    t = np.arange(1, 51)
    clean = 1.5 * np.exp(-0.08 * t) + 0.3
    y = clean + 0.005 * rng.normal(size=t.size)
    y[[5, 17, 33]] += [1.0, 0.8, 2.0]  # spikes
    got = float(auto.exp_forecast(jnp.asarray(y, jnp.float32), 200))
    want = 1.5 * np.exp(-0.08 * 200) + 0.3
    assert abs(got - want) < 0.01
    assert float(auto.exp_forecast(jnp.asarray([1.0, np.nan, 0.5]), 10)) == np.inf


N, DIM = 512, 20
_rng = np.random.default_rng(1)
X = jnp.asarray(_rng.normal(size=(N, DIM)) * np.geomspace(1, 0.1, DIM), jnp.float32)
Y = X @ jnp.asarray(_rng.normal(size=DIM), jnp.float32) + jnp.asarray(
    _rng.normal(size=N), jnp.float32
)


def full_loss(w):
    return 0.5 * jnp.mean((X @ w - Y) ** 2)


def sgd_step(w, config, key):
    idx = jax.random.randint(key, (32,), 0, N)
    loss, g = jax.value_and_grad(lambda v: 0.5 * jnp.mean((X[idx] @ v - Y[idx]) ** 2))(w)
    return w - config["lr"] * g, {"loss": loss}


def test_autolrs_no_worse_than_best_constant_of_its_candidates():
    total, k, lo, hi = 600, 8, 1e-3, 1.0
    cands = jnp.asarray(np.exp(np.linspace(np.log(lo), np.log(hi), k)), jnp.float32)

    def constant_lr(c, key):  # the reference: a constant LR, step i on fold_in(key, i)
        def body(w, i):
            return sgd_step(w, {"lr": c}, jax.random.fold_in(key, i))[0], None

        return full_loss(jax.lax.scan(body, jnp.zeros(DIM), jnp.arange(total))[0])

    const = jax.jit(jax.vmap(constant_lr, in_axes=(0, None)))
    autos, consts = [], []
    for seed in range(3):
        key = jax.random.key(seed)
        r = auto.autolrs(
            sgd_step,
            jnp.zeros(DIM),
            key=key,
            total_steps=total,
            min_value=lo,
            max_value=hi,
            num_candidates=k,
            tau=50,
            max_tau=200,
        )
        assert r.lrs.shape == (total,) and r.losses.shape == (total,)
        assert [s.steps for s in r.stages] == [50, 100, 200, 200, 50]
        np.testing.assert_allclose(np.asarray(r.schedule(jnp.arange(total))), r.lrs, rtol=1e-6)
        autos.append(float(full_loss(r.state)))
        consts.append(np.asarray(const(cands, key)))
    # mean over seeds: AutoLRS ends no worse than the best constant LR of its candidate set
    assert np.mean(autos) <= np.mean(consts, axis=0).min()


def test_autolrs_all_candidates_diverge_says_so():
    r = auto.autolrs(
        lambda w, c, k: (w, {"loss": jnp.nan}),
        jnp.zeros(2),
        key=jax.random.key(0),
        total_steps=100,
        min_value=0.1,
        max_value=1.0,
        num_candidates=2,
        tau=10,
    )
    assert "every candidate LR" in r.message and r.lrs.size == 0 and not r.stages


@pytest.mark.parametrize(
    "kw, match",
    [
        (dict(min_value=1.0, max_value=0.1), "max_value must be > min_value"),
        (dict(num_candidates=1), "num_candidates must be an int >= 2"),
        (dict(tau=2), "tau must be an int >= 4"),
        (dict(explore_fraction=0.0), "explore_fraction must be in"),
    ],
)
def test_autolrs_bad_input(kw, match):
    args = dict(key=jax.random.key(0), total_steps=10, min_value=1e-3, max_value=1.0) | kw
    with pytest.raises(ValueError, match=f"autolrs: {match}") as err:
        auto.autolrs(sgd_step, jnp.zeros(DIM), **args)
    assert "got" in str(err.value), str(err.value)  # the offending value is shown


def test_range_test_ema_coefficient_is_decay_like_optax():
    with pytest.raises(TypeError, match="lr_range_test: argument 'smoothing' is now 'decay'"):
        auto.lr_range_test(quad_step, quad_init, key=jax.random.key(0), smoothing=0.9)
    with pytest.raises(ValueError, match="lr_range_test: num_seeds must be an int >= 1"):
        auto.lr_range_test(quad_step, quad_init, key=jax.random.key(0), num_seeds=1.0)


# -- one step convention, the older form still accepted; one divergence rule -------------------


def quad_step_older(x, lr, key):  # quad_step in the older form (state, lr, key) -> (state, loss)
    g = H @ x + 0.05 * jax.random.normal(key, (D,))
    return x - lr * g, 0.5 * x @ H @ x


def test_older_step_form_gives_the_same_range_test(quad_result):
    older = auto.lr_range_test(quad_step_older, quad_init, **QUAD_TEST)
    for a, b in zip(jax.tree.leaves(older), jax.tree.leaves(quad_result)):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    # with a second hyperparameter: step_fn(state, lr, key, hparam) against config["hparam"]
    kw = dict(key=jax.random.key(1), num_seeds=2, min_value=1e-3, max_value=5.0, num_steps=30)
    new = auto.lr_range_test(
        lambda x, c, k: quad_step(x, {"lr": c["lr"] * (1.0 + c["hparam"])}, k),
        lambda k, h: quad_init(k),
        hparams=[0.0, 1.0],
        **kw,
    )
    old = auto.lr_range_test(
        lambda x, lr, k, h: quad_step_older(x, lr * (1.0 + h), k),
        lambda k, h: quad_init(k),
        hparams=[0.0, 1.0],
        **kw,
    )
    np.testing.assert_array_equal(np.asarray(old.smoothed), np.asarray(new.smoothed))
    assert not np.array_equal(
        np.asarray(new.smoothed[0]), np.asarray(new.smoothed[1]), equal_nan=True
    )  # the hyperparameter reached both forms


def test_older_step_form_gives_the_same_autolrs():
    def sgd_step_older(w, lr, key):
        w, metrics = sgd_step(w, {"lr": lr}, key)
        return w, metrics["loss"]

    kw = dict(key=jax.random.key(0), total_steps=60, min_value=1e-3, max_value=1.0, tau=20)
    new = auto.autolrs(sgd_step, jnp.zeros(DIM), num_candidates=4, **kw)
    old = auto.autolrs(sgd_step_older, jnp.zeros(DIM), num_candidates=4, **kw)
    np.testing.assert_array_equal(old.lrs, new.lrs)
    np.testing.assert_array_equal(old.losses, new.losses)
    np.testing.assert_array_equal(np.asarray(old.state), np.asarray(new.state))
    assert len(new.stages) == 2 and new.message == old.message


def test_step_function_errors_name_the_function():
    kw = dict(key=jax.random.key(0), num_steps=10)
    with pytest.raises(ValueError, match="lr_range_test: step_fn's metrics need a 'loss'"):
        auto.lr_range_test(lambda x, c, k: (x, {"train": 1.0}), quad_init, **kw)
    with pytest.raises(ValueError, match="autolrs: step_fn must be callable"):
        auto.autolrs(
            None, jnp.zeros(2), key=jax.random.key(0), total_steps=10, min_value=0.1, max_value=1.0
        )

    def buggy(x, config, key):  # the convention, with a typo: its own error, not the form's
        return x - config["rl"] * x, {"loss": jnp.sum(x)}

    with pytest.raises(KeyError, match="rl") as err:
        auto.lr_range_test(buggy, quad_init, **kw)
    assert any("not the older form" in n for n in getattr(err.value, "__notes__", []))


def test_autolrs_never_keeps_a_candidate_whose_state_diverged():
    """Larger LRs reach a lower loss here, but above lr = 0.5 the state turns NaN while the
    reported loss stays finite: the sweeps' rule drops those candidates (forecast +inf)."""

    def step(state, config, key):
        x, t = state
        x = jnp.where(config["lr"] > 0.5, jnp.nan, x - config["lr"] * x)
        return (x, t + 1.0), {"loss": jnp.exp(-config["lr"] * t)}

    r = auto.autolrs(
        step,
        (jnp.ones(2), jnp.float32(0.0)),
        key=jax.random.key(0),
        total_steps=20,
        min_value=0.01,
        max_value=1.0,
        num_candidates=5,
        tau=20,
    )
    cands, fc = r.stages[0].candidates, r.stages[0].forecasts
    assert (fc[cands > 0.5] == np.inf).all() and np.isfinite(fc[cands <= 0.5]).all()
    assert r.stages[0].lr == cands[cands <= 0.5].max()
    assert np.isfinite(np.asarray(r.state[0])).all()


def test_auto_shares_the_divergence_rule_without_importing_sweep():
    """``auto`` and ``sweep`` use one divergence rule and one ``tree_where`` (``jaxlr._src``);
    ``auto`` imports nothing of ``jaxlr.sweep`` (``sweep`` may use ``auto``'s laws), and
    ``_src`` nothing of jaxlr but ``_src``."""
    import ast
    import pathlib

    import jaxlr
    from jaxlr._src import divergence, tree
    from jaxlr.sweep import _population

    assert _population.healthy is divergence.healthy
    assert _population.tree_where is tree.tree_where
    root = pathlib.Path(jaxlr.__file__).parent

    def imports(folder):
        for path in (root / folder).glob("*.py"):
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, ast.ImportFrom) and node.module:
                    yield path.name, node.module
                elif isinstance(node, ast.Import):
                    yield from ((path.name, a.name) for a in node.names)

    auto_imports = list(imports("auto"))
    assert ("_range_test.py", "jaxlr._src.divergence") in auto_imports  # the scan sees them
    assert not [m for m in auto_imports if m[1].startswith("jaxlr.sweep")]
    assert not [
        m for m in imports("_src") if m[1].startswith("jaxlr") and not m[1].startswith("jaxlr._src")
    ]
    # no second copy of the rule or of tree_where in auto
    for path in (root / "auto").glob("*.py"):
        text = path.read_text()
        assert "def tree_where" not in text and "def diverged_entries" not in text, path.name


def test_telling_the_step_forms_apart_costs_no_trace_per_call():
    """The form is told inside the compiled function's trace: a second call with new bounds
    (the same compiled program) does not trace the step again, in either form."""
    for form in ("convention", "older"):
        traces = []

        def step(x, lr, key, form=form):
            traces.append(1)
            lr = lr if form == "older" else lr["lr"]
            y = x - lr * x
            return y, jnp.sum(x**2) if form == "older" else {"loss": jnp.sum(x**2)}

        kw = dict(key=jax.random.key(0), num_seeds=2, num_steps=10)
        auto.lr_range_test(step, quad_init, min_value=1e-3, **kw)
        first = len(traces)
        auto.lr_range_test(step, quad_init, min_value=1e-2, **kw)  # new bounds, one program
        assert first >= 1 and len(traces) == first, form
