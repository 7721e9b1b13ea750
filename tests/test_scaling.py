"""jaxlr.scaling: per-scale optima vs numpy.polyfit, cross-scale laws vs numpy.linalg.lstsq,
known exponents recovered within the bootstrap interval, extrapolation and every error path.

Synthetic sweeps: the loss at LR eta of scale s is ``1 + c (log eta - log eta*_s)^2`` plus seed
noise, with ``eta*_s`` a power law of known exponents. Fits share shapes (5 scales x 13 LRs x
3 seeds, 200 draws) so the module compiles the bootstrap program a few times only.
"""

from __future__ import annotations

import jax
import numpy as np
import pytest

import jaxlr
from jaxlr import scaling
from jaxlr.scaling import _fit

ETAS = np.logspace(-4, 0, 13)
WIDTHS = np.array([32.0, 64.0, 128.0, 256.0, 512.0])
SEEDS, R = 3, 200


def synth(eta_star, *, noise=0.002, curvature=0.05, seed=0, etas=ETAS, cubic=0.0):
    """``[S, G, K]`` losses of a quadratic-in-log-LR bowl around each ``eta_star``."""
    rng = np.random.default_rng(seed)
    d = np.log(etas)[None, :, None] - np.log(np.asarray(eta_star))[:, None, None]
    base = 1.0 + curvature * d**2 + cubic * d**3
    return base + noise * rng.standard_normal((len(eta_star), len(etas), SEEDS))


def arrays(loss, etas=ETAS, **scale):
    """Flat member arrays (scale-major, then LR, then seed) of a ``[S, G, K]`` sweep."""
    s, g, k = loss.shape
    out = dict(eta=np.tile(np.repeat(etas, k), s), loss=loss.ravel())
    out.update({n: np.repeat(np.asarray(v, float), g * k) for n, v in scale.items()})
    return out


def law_n(widths, a=0.3, b=-1.0):
    return a * widths**b


@pytest.fixture(scope="module")
def straight():
    loss = synth(law_n(WIDTHS))
    return loss, scaling.fit(**arrays(loss, N=WIDTHS), num_resamples=R)


# -- per-scale optimum ----------------------------------------------------------------------------
def _window_polyfit(etas, curve, window=2):
    j = int(np.argmin(curve))
    sl = slice(max(j - window, 0), j + window + 1)
    c2, c1, _ = np.polyfit(np.log(etas[sl]), curve[sl], 2)
    return np.exp(-c1 / (2 * c2)), 2 * c2


def test_quadratic_optimum_matches_numpy_polyfit():
    # An asymmetric bowl (cubic term): the vertex depends on the window, as in numpy.polyfit.
    eta_star = law_n(WIDTHS)
    loss = synth(eta_star, cubic=0.004, noise=0.003, seed=3)
    f = scaling.fit(**arrays(loss, N=WIDTHS), num_resamples=R)
    for i, opt in enumerate(f.optima):
        want, curv = _window_polyfit(ETAS, loss[i].mean(-1))
        np.testing.assert_allclose(opt.value, want, rtol=2e-3)
        np.testing.assert_allclose(opt.curvature, curv, rtol=2e-3)
        assert opt.low <= opt.value <= opt.high
        assert opt.grid_best == ETAS[int(np.argmin(loss[i].mean(-1)))]


def test_near_optimal_set_is_the_step_law_set():
    loss = synth(law_n(WIDTHS), noise=0.0005, seed=4)
    f = scaling.fit(**arrays(loss, N=WIDTHS), estimator="near_optimal", num_resamples=R)
    for i, opt in enumerate(f.optima):
        mean = loss[i].mean(-1)
        near = ETAS[mean <= mean.min() * 1.0025]
        np.testing.assert_allclose(opt.value, np.exp(np.log(near).mean()), rtol=1e-4)
        assert (opt.near_low, opt.near_high) == (near.min(), near.max())
        assert np.isnan(opt.curvature)


def test_bootstrap_interval_covers_truth_and_shrinks_with_noise():
    eta_star = law_n(WIDTHS)
    noisy = scaling.fit(**arrays(synth(eta_star, noise=0.01, seed=5), N=WIDTHS), num_resamples=R)
    quiet = scaling.fit(**arrays(synth(eta_star, noise=0.001, seed=5), N=WIDTHS), num_resamples=R)
    covered = [o.low <= t <= o.high for o, t in zip(noisy.optima, eta_star, strict=True)]
    assert sum(covered) >= 4  # a 95% interval, 5 scales
    assert np.mean([o.log_se for o in quiet.optima]) < np.mean([o.log_se for o in noisy.optima])


# -- the cross-scale law --------------------------------------------------------------------------
def test_law_matches_weighted_lstsq(straight):
    _, f = straight
    y = np.log([o.value for o in f.optima])
    a = np.stack([np.ones(5), np.log(WIDTHS) - np.log(WIDTHS).mean()], 1)
    sw = np.sqrt(f._weights)
    want = np.linalg.lstsq(a * sw[:, None], y * sw, rcond=None)[0]
    np.testing.assert_allclose(f.coef, want, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(
        1.0 / f._weights,
        np.maximum(np.var(f._opt_draws, 0), (np.log(ETAS[1] / ETAS[0]) / 10) ** 2),
        rtol=1e-3,
    )


def test_known_exponent_recovered_within_interval(straight):
    _, f = straight
    b, lo, hi = f.exponents["N"]
    assert lo <= -1.0 <= hi and hi - lo < 0.2
    p = f.predict(N=2048)
    assert p.low <= 0.3 / 2048 <= p.high
    assert p.reach["N"] == 4.0


def test_two_variables_recovered_within_interval():
    n = np.repeat([32.0, 128.0, 512.0], 3)
    d = np.tile([1e3, 4e3, 1.6e4], 3)
    eta_star = 5e-3 * n**-0.7 * d**0.3
    covered = []
    for seed in range(20):  # a 95% interval misses now and then: measure its coverage
        loss = synth(eta_star, seed=seed)
        f = scaling.fit(**arrays(loss, N=n, D=d), num_resamples=R, key=jax.random.key(seed))
        ex = f.exponents
        covered.append([ex["N"][1] <= -0.7 <= ex["N"][2], ex["D"][1] <= 0.3 <= ex["D"][2]])
        assert abs(ex["N"][0] + 0.7) < 0.02 and abs(ex["D"][0] - 0.3) < 0.02, ex
    assert np.mean(covered, 0).min() >= 0.8, np.mean(covered, 0)  # measured: 0.95, 0.85
    y = np.log([o.value for o in f.optima])
    a = np.stack([np.ones(9), np.log(n) - np.log(n).mean(), np.log(d) - np.log(d).mean()], 1)
    sw = np.sqrt(f._weights)
    np.testing.assert_allclose(
        f.coef, np.linalg.lstsq(a * sw[:, None], y * sw, rcond=None)[0], rtol=1e-4, atol=1e-5
    )
    np.testing.assert_allclose(f.predict(N=256, D=8e3).value, 5e-3 * 256**-0.7 * 8e3**0.3, rtol=0.1)


def test_quadratic_term_flags_a_curved_law(straight):
    _, f = straight
    curved_law = np.exp(np.log(0.3) - 1.0 * np.log(WIDTHS) - 0.4 * (np.log(WIDTHS) - 4.85) ** 2)
    bent, flat = [], []
    for seed in range(10):  # a 95% interval flags a straight law now and then: count
        kw = dict(quadratic=True, num_resamples=R, key=jax.random.key(seed))
        bent.append(scaling.fit(**arrays(synth(curved_law, seed=seed), N=WIDTHS), **kw))
        flat.append(scaling.fit(**arrays(synth(law_n(WIDTHS), seed=seed), N=WIDTHS), **kw))
    assert all(b.curved is True and b.high[-1] < 0 for b in bent)
    assert all(abs(b.coef[-1] + 0.4) < 0.05 for b in bent)
    assert sum(g.curved for g in flat) <= 2  # measured: 1 of 10
    assert all(g.curved is bool(g.low[-1] > 0 or g.high[-1] < 0) for g in flat)
    assert f.curved is None and f.names == ("intercept", "N")


def test_optimal_batch_size_law():
    d = np.array([1e3, 4e3, 1.6e4, 6.4e4])
    b_star = 0.6 * d**0.5
    batches = np.array([2.0, 4, 8, 16, 32, 64, 128, 256, 512])
    rng = np.random.default_rng(7)
    # loss over (B, eta): a bowl in log B around B*(D), and in log eta around 1e-2 (B-independent)
    db = np.log(batches)[None, :, None, None] - np.log(b_star)[:, None, None, None]
    de = np.log(ETAS)[None, None, :, None] - np.log(1e-2)
    loss = 1 + 0.05 * db**2 + 0.05 * de**2 + 0.001 * rng.standard_normal((4, 9, 13, SEEDS))
    s, g, h, k = loss.shape
    f = scaling.fit(
        eta=np.tile(np.repeat(ETAS, k), s * g),
        batch_size=np.tile(np.repeat(batches, h * k), s),
        loss=loss.ravel(),
        D=np.repeat(d, g * h * k),
        target="batch_size",
        num_resamples=R,
    )
    assert f.target == "batch_size"
    assert f.exponents["D"][1] <= 0.5 <= f.exponents["D"][2]
    np.testing.assert_allclose([o.value for o in f.optima], b_star, rtol=0.1)
    with pytest.raises(ValueError, match="predicts the batch size"):
        f.schedule("wsd", D=1e4, total_steps=10)


# -- inputs: sweep results ------------------------------------------------------------------------
def test_sweep_and_population_results_give_the_array_fit(straight):
    loss, f = straight
    results = []
    for i in range(5):
        eta = np.repeat(ETAS, SEEDS)
        final = loss[i].ravel()
        curve = np.stack([final + 1.0, final], 1)  # [K, steps]: the final value is the last
        cfg = {"peak_value": eta, "seed": np.tile(np.arange(SEEDS), len(ETAS))}
        if i % 2:
            results.append(jaxlr.sweep.SweepResult(cfg, {"loss": curve}))
        else:
            results.append(
                jaxlr.sweep.PopulationResult(
                    cfg,
                    {"loss": curve},
                    diverged=np.zeros(len(eta), bool),
                    diverged_step=np.full(len(eta), -1),
                )
            )
    g = scaling.fit(results, N=WIDTHS, num_resamples=R)
    np.testing.assert_allclose(g.coef, f.coef, rtol=1e-6)
    np.testing.assert_allclose(g.low, f.low, rtol=1e-6)


def test_diverged_members_are_skipped(straight):
    loss, f = straight
    loss = loss.copy()
    loss[:, -2:] = np.nan  # the two largest LRs diverged at every scale
    flat = arrays(loss, N=WIDTHS)
    seeds = np.tile(np.arange(SEEDS), 5 * len(ETAS))
    g = scaling.fit(**flat, diverged=~np.isfinite(flat["loss"]), seed=seeds, num_resamples=R)
    np.testing.assert_allclose(g.coef, f.coef, rtol=1e-5)  # the optima sit far from them


# -- prediction, leave-one-out, bridges -----------------------------------------------------------
def test_leave_one_scale_out_matches_refit(straight):
    loss, f = straight
    rows = f.leave_one_scale_out()
    assert len(rows) == 5
    for i, row in enumerate(rows):
        keep = np.arange(5) != i
        y = np.log([o.value for o in f.optima])[keep]
        c2 = np.polyfit(np.log(WIDTHS[keep]), y, 1, w=np.sqrt(f._weights[keep]))
        want = np.exp(np.polyval(c2, np.log(WIDTHS[i])))
        np.testing.assert_allclose(row.predicted, want, rtol=1e-4)
        assert row.factor_error == pytest.approx(
            max(want / f.optima[i].value, f.optima[i].value / want), rel=1e-4
        )
        mean = loss[i].mean(-1)
        at = np.interp(np.log(want), np.log(ETAS), mean)
        assert row.loss_regret == pytest.approx(at / mean.min() - 1, rel=1e-3, abs=1e-7)
        assert row.factor_error < 1.3 and row.low <= row.predicted <= row.high


def test_extrapolation_is_explicit(straight):
    _, f = straight
    with pytest.raises(ValueError, match=r"N=8192 is 16x the largest fitted N=512.*force=True"):
        f.predict(N=8192)
    with pytest.raises(ValueError, match=r"N=2 is 16x the smallest fitted N=32"):
        f.predict(N=2)
    assert f.predict(N=8192, force=True).value == pytest.approx(0.3 / 8192, rel=0.1)
    assert f.predict(N=4096).reach == {"N": 8.0}  # exactly 8x is allowed
    with pytest.raises(ValueError, match=r"needs exactly the fitted variables \['N'\]"):
        f.predict(D=10.0)
    with pytest.raises(ValueError, match=r"ScalingFit.predict: N must be > 0, got N=-1"):
        f.predict(N=-1)


def test_schedule_at_the_predicted_peak(straight):
    _, f = straight
    eta = f.predict(N=1024).value
    s = f.schedule("wsd", N=1024, total_steps=100, warmup_steps=10, decay_fraction=0.2)
    assert float(s(50)) == pytest.approx(eta, rel=1e-6)
    c = f.schedule("warmup_cosine", N=1024, warmup_steps=10, total_steps=100)
    assert float(c(10)) == pytest.approx(eta, rel=1e-6)
    assert float(f.schedule("cosine", N=1024, total_steps=100)(0)) == pytest.approx(eta, rel=1e-6)
    with pytest.raises(ValueError, match="16x"):
        f.schedule("wsd", N=8192, total_steps=100, decay_fraction=0.2)


def test_json_round_trip_and_plot(straight, tmp_path):
    _, f = straight
    g = scaling.load_fit(f.save(tmp_path / "fit.json"))
    assert g.predict(N=1000) == f.predict(N=1000)
    assert [h.predicted for h in g.leave_one_scale_out()] == [
        h.predicted for h in f.leave_one_scale_out()
    ]
    (tmp_path / "bad.json").write_text('{"a": 1}')
    with pytest.raises(ValueError, match="not a ScalingFit"):
        scaling.load_fit(tmp_path / "bad.json")
    fig = f.plot(tmp_path / "law.png")
    assert (tmp_path / "law.png").stat().st_size > 0
    ax = fig.axes[0]
    assert ax.get_xscale() == "log" and len(ax.collections) >= 2  # error bars + band


def test_bootstrap_is_one_compiled_program(straight):
    loss, _ = straight
    before = _fit._PROGRAM._cache_size()
    for k in range(3):  # new data and new keys: no new compilation
        scaling.fit(
            **arrays(synth(law_n(WIDTHS), seed=10 + k), N=WIDTHS),
            num_resamples=R,
            key=jax.random.key(k),
        )
    assert _fit._PROGRAM._cache_size() == before


# -- errors ---------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "change, match",
    [
        (lambda a: {**a, "N": np.repeat([32.0, 64.0, 64, 64, 64], 39)}, "at least 3 scales, got 2"),
        (
            lambda a: {**a, "loss": np.where(a["eta"] == 1.0, np.nan, a["loss"])},
            r"scale N=(32|64|128|256|512): non-finite losses at lr \[1.0\].*diverged=",
        ),
        (
            lambda a: {**a, "diverged": np.where(a["N"] == 64.0, True, False)},
            "scale N=64: every member diverged",
        ),
        (
            lambda a: {
                **a,
                "N": np.where(a["N"] == 512.0, 2048.0, a["N"]),
                "loss": np.where(a["N"] == 512.0, 1 + (np.log(a["eta"]) + 13) ** 2, a["loss"]),
            },
            r"scale N=2048: the best lr 0.0001 is the smallest of its grid \[0.0001 .. 1\]; widen",
        ),
        (lambda a: {k: v[1:] for k, v in a.items()}, "every grid point needs the same number"),
        (lambda a: {**a, "seed": np.zeros(len(a["eta"]))}, r"scale N=32: lr 0.0001 repeats a seed"),
        (lambda a: {**a, "N": a["N"][:-1]}, "N has 194 entries, eta has 195"),
        (lambda a: {**a, "eta": np.where(a["eta"] == 1.0, -1.0, a["eta"])}, "must be > 0"),
    ],
)
def test_data_errors_name_the_scale(straight, change, match):
    loss, _ = straight
    with pytest.raises(ValueError, match=match):
        scaling.fit(**change(arrays(loss, N=WIDTHS)), num_resamples=R)


def test_optimum_at_the_edge_of_the_trained_region_is_refused(straight):
    # N=64's optimum is ETAS[5]; every LR above it diverged, so ETAS[5] is only a bound.
    loss, _ = straight
    a = arrays(loss, N=WIDTHS)
    a["diverged"] = (a["N"] == 64.0) & (a["eta"] > ETAS[5] * 1.01)
    with pytest.raises(
        ValueError, match=r"fit: scale N=64: the best lr 0.00464159 is the largest that trained"
    ):
        scaling.fit(**a, num_resamples=R)
    a["diverged"] = (a["N"] == 512.0) & (a["eta"] < ETAS[1] * 1.01)  # N=512: best is ETAS[2]
    a["diverged"] |= (a["N"] == 512.0) & (a["eta"] > ETAS[2] * 1.01) & (a["eta"] < ETAS[4])
    with pytest.raises(ValueError, match=r"scale N=512: the best lr 0.000464159 is the smallest"):
        scaling.fit(**a, num_resamples=R)


def test_collinear_scale_variables_are_refused_and_null_fits_not_loaded(straight, tmp_path):
    import json

    loss, f = straight
    with pytest.raises(ValueError, match=r"fit: the scale variables \['N', 'D'\] are collinear"):
        scaling.fit(**arrays(loss, N=WIDTHS, D=20 * WIDTHS), num_resamples=R)
    d = np.array([1.0, 3.0, 2.0, 5.0, 4.0]) * 1e6  # N and D independent, C = 6 N D is not
    with pytest.raises(ValueError, match=r"\['N', 'D', 'C'\] are collinear"):
        scaling.fit(**arrays(loss, N=WIDTHS, D=d, C=6 * WIDTHS * d), num_resamples=R)
    record = json.loads(f.to_json())  # what save wrote for the NaN fit before the check
    record["coef"][1] = None
    (tmp_path / "nan.json").write_text(json.dumps(record))
    with pytest.raises(ValueError, match=r"load_fit: .* null \(NaN\) values in 'coef'"):
        scaling.load_fit(tmp_path / "nan.json")


def test_results_sweeping_another_hyperparameter_are_refused(straight):
    loss, _ = straight
    results = []
    for i in range(5):
        eta = np.repeat(ETAS, 2)
        wd = np.tile([0.0, 0.1], len(ETAS))  # two configurations, not two seeds
        cfg = {"peak_value": eta, "weight_decay": wd, "seed": np.zeros(len(eta))}
        final = np.repeat(loss[i, :, 0], 2) + wd
        results.append(jaxlr.sweep.SweepResult(cfg, {"loss": final[:, None]}))
    with pytest.raises(
        ValueError,
        match=r"fit: result 0 also sweeps \['weight_decay'\].*filter the results to one value",
    ):
        scaling.fit(results, N=WIDTHS, num_resamples=R)


def test_largest_edge_and_argument_errors(straight):
    loss, _ = straight
    a = arrays(loss, N=WIDTHS)
    top = a["N"] == 32.0
    a["loss"] = np.where(top, 2.0 - 0.01 * np.log(a["eta"]), a["loss"])  # best at the largest LR
    with pytest.raises(ValueError, match=r"scale N=32: the best lr 1 is the largest"):
        scaling.fit(**a, num_resamples=R)
    a = arrays(loss, N=WIDTHS)
    for kw, match in [
        (dict(estimator="argmin"), "estimator must be one of"),
        (dict(target="width"), "target must be one of"),
        (dict(num_resamples=0), "num_resamples must be an int >= 1"),
        (dict(quadratic=True, N=None, D=a["N"]), r"quadratic=True .* needs N"),
        (dict(N=None), "give at least one scale variable"),
        (dict(target="batch_size"), "target='batch_size' needs batch_size="),
        (dict(tolerance=-0.1), "tolerance must be > 0"),
    ]:
        with pytest.raises(ValueError, match="fit: " + match):
            scaling.fit(**{**a, **kw})
    with pytest.raises(ValueError, match="3 coefficients need at least 4 scales, got 3"):
        keep = a["N"] <= 128
        scaling.fit(**{k: v[keep] for k, v in a.items()}, quadratic=True)
    with pytest.raises(ValueError, match="one value per result"):
        scaling.fit([jaxlr.sweep.SweepResult({"peak_value": ETAS}, {"loss": ETAS})], N=[1, 2])


def test_leave_one_out_needs_enough_scales():
    n = WIDTHS[:3]
    f = scaling.fit(**arrays(synth(law_n(n)), N=n), num_resamples=R)
    with pytest.raises(ValueError, match="needs at least 4 scales to leave one out, the fit has 3"):
        f.leave_one_scale_out()


# -- muP ------------------------------------------------------------------------------------------
def _nnx_mlp(width, seed=0):
    from flax import nnx

    class MLP(nnx.Module):
        def __init__(self, rngs):
            self.inp = nnx.Linear(8, width, rngs=rngs)
            self.hid = nnx.Linear(width, width, rngs=rngs)
            self.out = nnx.Linear(width, 3, rngs=rngs)

        def __call__(self, x):
            return self.out(jax.nn.relu(self.hid(jax.nn.relu(self.inp(x)))))

    return MLP(nnx.Rngs(seed))


def test_mup_roles_and_multipliers_on_nnx_state():
    from flax import nnx

    params = nnx.state(_nnx_mlp(64), nnx.Param)
    base = jax.eval_shape(lambda: nnx.state(_nnx_mlp(16), nnx.Param))
    roles = scaling.mup_roles(params, base)
    assert roles["inp"]["kernel"].get_value() == "input"
    assert roles["hid"]["kernel"].get_value() == "hidden"
    assert roles["out"]["kernel"].get_value() == "output"
    assert roles["out"]["bias"].get_value() == "vector"
    adam = scaling.mup_multipliers(params, base)
    sgd = scaling.mup_multipliers(params, base, family="sgd")
    want_adam = {"inp": (1.0, 1.0), "hid": (16 / 64, 1.0), "out": (16 / 64, 1.0)}
    want_sgd = {"inp": (64 / 16, 64 / 16), "hid": (1.0, 64 / 16), "out": (16 / 64, 1.0)}
    for layer in ("inp", "hid", "out"):
        for got, want in ((adam, want_adam), (sgd, want_sgd)):
            assert got[layer]["kernel"].get_value() == want[layer][0]
            assert got[layer]["bias"].get_value() == want[layer][1]


def test_mup_adam_is_adam_times_multiplier_in_an_nnx_optimizer():
    import optax
    from flax import nnx

    model = _nnx_mlp(32, seed=1)
    base = jax.eval_shape(lambda: nnx.state(_nnx_mlp(8), nnx.Param))
    params0 = nnx.state(model, nnx.Param)
    ref = jax.tree.map(np.asarray, params0)
    opt = nnx.Optimizer(model, scaling.mup(optax.adam(1e-2), params0, base), wrt=nnx.Param)
    x = jax.random.normal(jax.random.key(0), (5, 8))
    y = np.array([0, 1, 2, 0, 1])
    grads = nnx.grad(lambda m: optax.softmax_cross_entropy_with_integer_labels(m(x), y).mean())(
        model
    )
    opt.update(model, grads)
    # Adam's first step is -lr * g / (|g| + eps) elementwise; muP multiplies it per layer.
    for layer, mult in (("inp", 1.0), ("hid", 8 / 32), ("out", 8 / 32)):
        g = np.asarray(grads[layer]["kernel"].get_value())
        step = -1e-2 * mult * g / (np.abs(g) + 1e-8)
        new = np.asarray(getattr(model, layer).kernel.get_value())
        np.testing.assert_allclose(new - ref[layer]["kernel"].get_value(), step, atol=1e-6)


def test_mup_init_gives_output_variance_over_fan_in_squared():
    params = {"h": np.ones((256, 256)), "o": np.random.default_rng(0).standard_normal((256, 50))}
    base = {"h": np.ones((32, 32)), "o": np.ones((32, 50))}
    out = scaling.mup_init(params, base)
    np.testing.assert_allclose(out["o"], params["o"] * np.sqrt(32 / 256))
    assert out["h"] is params["h"]


def test_mup_on_nnx_multi_head_attention_follows_table_3():
    # Tensor Programs V, Table 3, with width 256 over base 64 (m = 4) and heads = width / 16:
    # the q/k/v kernels (w, heads, 16) and the output kernel (heads, 16, w) are hidden
    # (Adam LR 1/m, SGD 1), every bias (heads, 16) or (w,) a vector (Adam 1, SGD m), and
    # mup_init leaves hidden weights alone.
    from flax import nnx

    def attention(w, seed=0):
        return nnx.MultiHeadAttention(
            num_heads=w // 16, in_features=w, qkv_features=w, decode=False, rngs=nnx.Rngs(seed)
        )

    params = nnx.state(attention(256), nnx.Param)
    base = jax.eval_shape(lambda: nnx.state(attention(64), nnx.Param))
    roles = scaling.mup_roles(params, base)
    adam = scaling.mup_multipliers(params, base)
    sgd = scaling.mup_multipliers(params, base, family="sgd")
    m = 256 / 64
    want = {"kernel": ("hidden", 1 / m, 1.0), "bias": ("vector", 1.0, m)}
    for layer in ("query", "key", "value", "out"):
        for leaf, (role, lr_adam, lr_sgd) in want.items():
            assert roles[layer][leaf].get_value() == role, (layer, leaf)
            assert adam[layer][leaf].get_value() == lr_adam, (layer, leaf)
            assert sgd[layer][leaf].get_value() == lr_sgd, (layer, leaf)
    init = scaling.mup_init(params, base)
    for layer in ("query", "key", "value", "out"):
        assert init[layer]["kernel"].get_value() is params[layer]["kernel"].get_value()


def test_mup_errors():
    with pytest.raises(ValueError, match="mup_roles: params and base_params must have the same"):
        scaling.mup_roles({"a": np.ones((2, 2))}, {"b": np.ones((2, 2))})
    with pytest.raises(ValueError, match=r"mup_roles: leaf 0 has shape \(2, 2\) here and \(2,\)"):
        scaling.mup_roles({"a": np.ones((2, 2))}, {"a": np.ones(2)})
    with pytest.raises(ValueError, match="mup_multipliers: family must be one of"):
        scaling.mup_multipliers({"a": np.ones((2, 2))}, {"a": np.ones((2, 2))}, family="lion")


# -- presets and the schedule / horizon transfer --------------------------------------------------
def test_published_laws_match_their_formulas():
    for c in (1e17, 3e20):
        law = scaling.deepseek_llm(compute=c)
        assert law.learning_rate == pytest.approx(0.3118 * c**-0.125)
        assert law.batch_size == pytest.approx(0.2920 * c**0.3271)
    law = scaling.step_law(N=3e8, D=2e10)
    assert law.learning_rate == pytest.approx(1.79 * 3e8**-0.713 * 2e10**0.307)
    assert law.batch_size == pytest.approx(0.58 * 2e10**0.571)
    with pytest.raises(ValueError, match="deepseek_llm: compute must be > 0, got compute=0"):
        scaling.deepseek_llm(compute=0)
    with pytest.raises(ValueError, match="step_law: D must be finite"):
        scaling.step_law(N=1e9, D=float("inf"))


def _bound(gamma, s, d=1.0, g=1.0):
    """Schaipp et al.'s last-iterate bound, written out with loops (t = 1..T)."""
    t_ = len(s)
    eta = gamma * np.asarray(s, float)
    first = (d**2 + g**2 * np.sum(eta**2)) / (2 * np.sum(eta))
    rest = sum(
        eta[k] / eta[k + 1 :].sum() * (eta[k:] ** 2).sum() / eta[k:].sum() for k in range(t_ - 1)
    )
    return first + g**2 / 2 * rest


def _argmin_bound(s):
    from scipy.optimize import minimize_scalar

    r = minimize_scalar(
        lambda lg: _bound(np.exp(lg), s), bounds=(-12, 4), method="bounded", options={"xatol": 1e-9}
    )
    return np.exp(r.x)


@pytest.mark.parametrize(
    "source, target, steps",
    [
        ("constant(value=1.0)", "constant(value=1.0)", (40, 160)),
        (
            "cosine(init_value=1.0, total_steps=61)",
            "wsd(peak_value=1.0, total_steps=60, decay_fraction=0.2)",
            (60, 60),
        ),
        (
            "wsd(peak_value=1.0, total_steps=50, decay_fraction=0.2)",
            "warmup_cosine(peak_value=1.0, warmup_steps=10, total_steps=121)",
            (50, 120),
        ),
    ],
)
def test_transfer_lr_minimizes_the_convex_bound(source, target, steps):
    src, tgt = jaxlr.schedules.parse(source), jaxlr.schedules.parse(target)
    s_src = np.asarray(jax.vmap(src)(np.arange(steps[0])))
    s_tgt = np.asarray(jax.vmap(tgt)(np.arange(steps[1])))
    want = _argmin_bound(s_tgt / s_tgt.max()) / _argmin_bound(s_src / s_src.max())
    got = scaling.transfer_lr(
        2e-3, source=src, target=tgt, source_steps=steps[0], target_steps=steps[1]
    )
    assert got == pytest.approx(2e-3 * want, rel=1e-4)


def test_transfer_lr_errors():
    c = jaxlr.schedules.constant(value=1.0)
    kw = dict(source=c, target=c, source_steps=10, target_steps=10)
    with pytest.raises(ValueError, match="transfer_lr: lr must be > 0"):
        scaling.transfer_lr(0.0, **kw)
    with pytest.raises(ValueError, match="transfer_lr: target_steps must be an int >= 2"):
        scaling.transfer_lr(1e-3, **{**kw, "target_steps": 1})
    zero = jaxlr.schedules.constant(value=0.0)
    with pytest.raises(ValueError, match="transfer_lr: source must be finite and > 0 somewhere"):
        scaling.transfer_lr(1e-3, **{**kw, "source": zero})
