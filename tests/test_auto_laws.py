"""jaxlr.auto loss-curve laws: NumPy oracles, parameter recovery, prediction of real runs."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxlr
from jaxlr import auto

# -- the laws against loop-by-loop NumPy oracles -----------------------------------------------


def momentum_ref(lrs, L0, A, alpha, C, decay, warmup_steps):
    m, s1, s2, out = 0.0, 0.0, 0.0, []
    for i, lr in enumerate(lrs, start=1):
        prev = lrs[i - 2] if i > 1 else lrs[0]
        m = decay * m + ((prev - lr) if i > warmup_steps else 0.0)
        s1 += lr
        s2 += m
        out.append(L0 + A * s1 ** (-alpha) - C * s2)
    return np.array(out)


def mpl_ref(lrs, L0, A, B, C, alpha, beta, gamma, warmup_steps):
    out = []
    for t in range(1, len(lrs) + 1):
        ld = 0.0
        for k in range(warmup_steps + 1, t + 1):
            prev = lrs[k - 2] if k > 1 else lrs[0]
            sk = sum(lrs[k - 1 : t])
            ld += (prev - lrs[k - 1]) * (1 - (C * lrs[k - 1] ** (-gamma) * sk + 1) ** (-beta))
        out.append(L0 + A * sum(lrs[:t]) ** (-alpha) - B * ld)
    return np.array(out)


LRS = np.r_[np.linspace(0.1, 1.0, 5), np.ones(10), np.linspace(1.0, 0.2, 15), [0.3, 0.25]]
MOM = dict(L0=1.5, A=0.8, alpha=0.6, C=0.05)
MPL = dict(L0=1.5, A=0.8, B=0.7, C=2.0, alpha=0.6, beta=0.5, gamma=0.4)


def test_momentum_law_matches_numpy():
    with jax.enable_x64(True):
        got = auto.momentum_law(jnp.asarray(LRS), decay=0.9, warmup_steps=5, **MOM)
    np.testing.assert_allclose(got, momentum_ref(LRS, decay=0.9, warmup_steps=5, **MOM), rtol=1e-12)


def test_multi_power_law_matches_numpy_and_is_differentiable():
    with jax.enable_x64(True):
        got = auto.multi_power_law(jnp.asarray(LRS), warmup_steps=5, **MPL)
        at = auto.multi_power_law(jnp.asarray(LRS), warmup_steps=5, steps=[3, 32], **MPL)
        g = jax.jit(
            jax.grad(lambda lr: auto.multi_power_law(jnp.r_[lr, 0.0], steps=[33], **MPL)[0])
        )(jnp.asarray(LRS))
    ref = mpl_ref(LRS, warmup_steps=5, **MPL)
    np.testing.assert_allclose(got, ref, rtol=1e-12)
    np.testing.assert_allclose(at, ref[[2, 31]], rtol=1e-12)
    assert np.isfinite(np.asarray(g)).all()  # an LR of exactly 0 keeps the gradient finite


# -- fit recovers the parameters of synthetic curves (with noise) ------------------------------

T = 400
STEPS = np.arange(20, T + 1, 10)


def _sched_lrs(s):
    return np.asarray(s(np.arange(T)), np.float64)


CONST = _sched_lrs(jaxlr.schedules.warmup(jaxlr.schedules.constant(value=1.0), warmup_steps=10))
COS = _sched_lrs(jaxlr.schedules.warmup_cosine(peak_value=1.0, warmup_steps=10, total_steps=T))
WSD = _sched_lrs(
    jaxlr.schedules.wsd(peak_value=1.0, total_steps=T, warmup_steps=10, decay_fraction=0.2)
)


def _noisy(law, lrs, params, key):
    with jax.enable_x64(True):
        if law == "momentum":
            clean = np.asarray(auto.momentum_law(lrs, warmup_steps=10, **params))[STEPS - 1]
        else:
            clean = np.asarray(auto.multi_power_law(lrs, warmup_steps=10, steps=STEPS, **params))
    return clean * (1 + 0.001 * np.random.default_rng(key).normal(size=clean.size))


@pytest.mark.parametrize(
    "law, true, tol",
    [
        ("momentum", dict(L0=2.0, A=1.2, alpha=0.5, C=0.003), dict(L0=0.02, alpha=0.05, C=0.1)),
        (
            "multi_power",
            dict(L0=2.0, A=1.2, B=0.8, C=1.5, alpha=0.5, beta=0.6, gamma=0.5),
            dict(L0=0.02, alpha=0.12),  # B, C, beta trade off along a flat valley
        ),
    ],
)
def test_fit_recovers_synthetic_parameters(law, true, tol):
    curves = [
        auto.LossCurve(lr, _noisy(law, lr, true, i), STEPS, 10) for i, lr in enumerate((CONST, COS))
    ]
    f = auto.fit_law(law, curves, key=jax.random.key(0), num_starts=8, num_iters=100)
    for k, rel in tol.items():
        assert abs(f.params[k] / true[k] - 1) < rel, (k, f.params[k], true[k])
    # and the fit predicts a third schedule it never saw
    truth = _noisy(law, WSD, true, 9)
    pred = auto.predict_loss(f, WSD, steps=STEPS, warmup_steps=10)
    assert np.max(np.abs(pred.loss / truth - 1)) < 0.02
    assert (pred.low <= pred.loss + 1e-12).all() and (pred.loss <= pred.high + 1e-12).all()


# -- real small trainings: fit two schedules, predict a third's final loss ---------------------

DIM, BATCH, SIGMA, PEAK, SEEDS = 100, 4, 0.5, 0.5, 8
LAM = np.arange(1, DIM + 1) ** -1.5
W_STAR = np.random.default_rng(0).normal(size=DIM)


def _train(lrs, key):
    """SGD on a noisy linear regression with a power-law spectrum; exact expected loss."""

    def step(w, inp):
        lr, k = inp
        x = jax.random.normal(k, (BATCH, DIM)) * jnp.sqrt(LAM)
        y = x @ W_STAR + SIGMA * jax.random.normal(jax.random.fold_in(k, 1), (BATCH,))
        w = w - lr * x.T @ (x @ w - y) / BATCH
        return w, 0.5 * jnp.sum(LAM * (w - W_STAR) ** 2) + 0.5 * SIGMA**2

    return jax.lax.scan(step, jnp.zeros(DIM), (lrs, jax.random.split(key, lrs.shape[0])))[1]


@pytest.fixture(scope="module")
def real_runs():
    lrs = PEAK * np.stack([CONST, COS, WSD])
    runs = jax.jit(jax.vmap(jax.vmap(_train, in_axes=(None, 0)), in_axes=(0, None)))(
        jnp.asarray(lrs, jnp.float32), jax.random.split(jax.random.key(0), SEEDS)
    )
    return lrs, np.asarray(runs, np.float64).mean(axis=1)  # mean curve over seeds


# Stated error: the multi-power law fitted on constant + cosine runs (steps >= 50) predicts the
# WSD run's final loss within 8% (measured 6.3% on this toy, whose early transient the law does
# not model; experiments/law_prediction.py measures more schedules).
FINAL_LOSS_TOL = 0.08
REAL_STEPS = np.arange(50, T + 1, 10)


def test_predict_real_training_final_loss(real_runs):
    lrs, loss = real_runs
    curves = [auto.LossCurve(lrs[i], loss[i][REAL_STEPS - 1], REAL_STEPS, 10) for i in (0, 1)]
    f = auto.fit_law("multi_power", curves, key=jax.random.key(1), num_starts=8, num_iters=100)
    p = auto.predict_loss(f, lrs[2], steps=[T], warmup_steps=10)
    assert abs(p.loss[0] / loss[2, -1] - 1) < FINAL_LOSS_TOL, (p.loss[0], loss[2, -1])
    # the law ranks the schedules like the runs: WSD ends below constant
    assert p.loss[0] < auto.predict_loss(f, lrs[0], steps=[T], warmup_steps=10).loss[0]


# -- optimize a schedule through the fitted law ------------------------------------------------


@pytest.fixture(scope="module")
def mpl_fit():
    true = dict(L0=2.0, A=1.2, B=0.8, C=1.5, alpha=0.5, beta=0.6, gamma=0.5)
    curves = [
        auto.LossCurve(lr, _noisy("multi_power", lr, true, i), STEPS, 10)
        for i, lr in enumerate((CONST, COS))
    ]
    return auto.fit_law("multi_power", curves, key=jax.random.key(0), num_starts=8, num_iters=100)


def test_optimize_schedule_beats_cosine_and_constant_under_the_law(mpl_fit):
    f = mpl_fit
    o = auto.optimize_schedule(
        f, total_steps=T, peak_value=1.0, warmup_steps=10, num_knots=12, num_iters=300
    )
    assert o.lrs.shape == (T,)
    assert (np.diff(o.lrs[10:]) <= 1e-9).all()  # monotone after warmup
    np.testing.assert_allclose(np.asarray(o.schedule(np.arange(T))), o.lrs, atol=1e-6)
    final = lambda lr: auto.predict_loss(f, lr, steps=[T], warmup_steps=10).loss[0]
    assert o.predicted_loss < final(COS) and o.predicted_loss < final(CONST)
    assert float(o.predicted_loss) == pytest.approx(final(np.asarray(o.lrs)), rel=1e-5)


def test_optimize_schedule_warmup_is_data_jit_compiles_once_vmap_matches(mpl_fit):
    import chex

    kw = dict(total_steps=T, peak_value=1.0, init_value=0.1, num_knots=8, num_iters=100)

    @jax.jit
    @chex.assert_max_traces(n=1)
    def opt(warmup_steps):
        return auto.optimize_schedule(mpl_fit, warmup_steps=warmup_steps, **kw)

    for w in (10.0, 40.0):
        o = opt(w)  # a second warmup value must not retrace (chex raises on a second trace)
        wi = int(w)
        # the warmup is the NumPy ramp init + (peak - init) t / W, then the non-increasing knots
        np.testing.assert_allclose(np.asarray(o.lrs[:wi]), 0.1 + 0.9 * np.arange(wi) / w, rtol=1e-6)
        assert float(o.lrs[wi]) == pytest.approx(1.0) and (np.diff(o.lrs[wi:]) <= 1e-9).all()
        # the prediction is the law's, recomputed on the host from the returned LRs
        ref = auto.predict_loss(mpl_fit, np.asarray(o.lrs), steps=[T], warmup_steps=w).loss[0]
        assert float(o.predicted_loss) == pytest.approx(ref, rel=1e-5)
        np.testing.assert_allclose(np.asarray(o.schedule(np.arange(T))), o.lrs, atol=1e-6)
    # vmap over the warmup equals the single calls
    both = jax.vmap(lambda w: auto.optimize_schedule(mpl_fit, warmup_steps=w, **kw))(
        jnp.asarray([10.0, 40.0])
    )
    np.testing.assert_allclose(np.asarray(both.lrs[1]), np.asarray(o.lrs), rtol=1e-6)
    np.testing.assert_allclose(float(both.predicted_loss[1]), float(o.predicted_loss), rtol=1e-6)


@pytest.mark.parametrize(
    "kw, match",
    [
        (dict(total_steps=20.0), "total_steps must be an int >= 9, got total_steps=20.0"),
        (dict(warmup_steps=395), "total_steps must be >= warmup_steps [+] num_knots [+] 1"),
        (dict(peak_value=0.1, min_value=0.2), "peak_value must be > min_value"),
        (dict(warmup_steps=-1), "warmup_steps must be >= 0, got warmup_steps=-1"),
    ],
)
def test_optimize_schedule_bad_input(mpl_fit, kw, match):
    args = dict(total_steps=T, peak_value=1.0, num_knots=8) | kw
    with pytest.raises(ValueError, match=f"optimize_schedule: {match}"):
        auto.optimize_schedule(mpl_fit, **args)


# -- bad input ---------------------------------------------------------------------------------


def test_fit_masks_nan_and_says_so():
    true = MOM | dict(C=0.003)
    y = _noisy("momentum", CONST, true, 0)
    y[[3, 7]] = [np.nan, np.inf]
    f = auto.fit_law(
        "momentum",
        [auto.LossCurve(CONST, y, STEPS, 10)],
        key=jax.random.key(0),
        num_starts=2,
        num_iters=20,
    )
    assert f.num_masked == 2 and f.num_points == STEPS.size - 2
    assert "dropped 2 NaN/inf" in f.message


@pytest.mark.parametrize(
    "curves, match",
    [
        ([(np.ones(5), np.ones(4))], r"len\(lrs\)=5 != len\(losses\)=4"),
        ([(np.ones(4), np.ones(4))], "needs at least 5 finite loss points, got 4"),
        ([(np.ones(6), np.r_[np.ones(3), [np.nan] * 3])], "needs at least 5 finite loss points"),
        ([(np.ones(5), np.ones(2), [1, 9])], r"steps must lie in 1..len\(lrs\)=5"),
        ([(-np.ones(5), np.ones(5))], "lrs must be finite and >= 0"),
        ([], "at least one curve"),
    ],
)
def test_fit_bad_input(curves, match):
    with pytest.raises(ValueError, match=f"fit_law: .*{match}") as err:
        auto.fit_law("momentum", curves, key=jax.random.key(0))
    msg = str(err.value)
    assert "got" in msg or "!=" in msg, msg  # the offending value is shown


def test_fit_unknown_law():
    with pytest.raises(ValueError, match="fit_law: law must be one of"):
        auto.fit_law("chinchilla", [(np.ones(9), np.ones(9))], key=jax.random.key(0))
