"""jaxlr.transforms driven by lambda_max: sharpness_cap (cap / catapult / gen) and warmup."""

from __future__ import annotations

import flax.serialization
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

import jaxlr.transforms as T
from jaxlr import schedules as S

# A 4-d quadratic with a rotated spectrum {10, 4, 1, 0.5}: lambda_max = 10.
_Q = np.linalg.qr(np.random.default_rng(0).normal(size=(4, 4)))[0]
H = jnp.asarray(_Q @ np.diag([10.0, 4.0, 1.0, 0.5]) @ _Q.T, jnp.float32)
LAM = 10.0
W0 = jnp.array([1.0, -1.0, 0.5, 2.0])
FAST = {"xla_backend_optimization_level": 0}  # compile-bound tests: skip LLVM's optimizations


def jit(fun):
    """jax.jit without LLVM's optimizations: these tests compile far longer than they run."""
    return jax.jit(fun, compiler_options=FAST)


def quad(w):
    return 0.5 * w @ H @ w


def _train(tx, steps, w=W0):
    def body(carry, _):
        w, s = carry
        u, s = tx.update(jax.grad(quad)(w), s, w, loss_fn=quad)
        return (optax.apply_updates(w, u), s), (quad(w), T.current_lr(s, optimizer_lr=1.0))

    (w, s), (losses, lrs) = jax.lax.scan(body, (w, tx.init(w)), None, length=steps)
    return w, s, losses, lrs


def _train_jit(tx, steps):
    w, s, losses, lrs = jit(lambda: _train(tx, steps))()
    return w, s, np.asarray(losses), np.asarray(lrs)


def _plain(opt, steps):
    w = W0
    s = opt.init(w)
    for _ in range(steps):
        u, s = opt.update(jax.grad(quad)(w), s, w)
        w = optax.apply_updates(w, u)
    return float(quad(w))


CASES = {  # kind -> (unit-LR optimizer, stability constant c with threshold c / eta)
    "gd": (optax.sgd(1.0), 2.0),
    "heavy_ball": (optax.sgd(1.0, momentum=0.9), 3.8),
    "nesterov": (optax.sgd(1.0, momentum=0.9, nesterov=True), 3.8 / 2.8),
}


@pytest.mark.parametrize("kind", sorted(CASES))
def test_cap_converges_where_plain_diverges(kind):
    opt, c = CASES[kind]
    eta = 1.25 * c / LAM  # 2.5 / lambda for GD
    assert not _plain(optax.chain(opt, optax.scale(eta)), 150) < 1e3 * float(quad(W0))
    tx = optax.chain(
        opt,
        T.sharpness_cap(
            quantity="lambda_max",
            schedule=eta,
            fraction=0.9,
            kind=kind,
            momentum=0.9,
            every=5,
            num_iters=6,
        ),
    )
    _, s, losses, lrs = _train_jit(tx, 300)
    cap = s[1]
    assert losses[-1] < 1e-6 * losses[0]
    np.testing.assert_allclose(float(cap.sharpness), LAM, rtol=1e-3)
    np.testing.assert_allclose(lrs[-1] * LAM, 0.9 * c, rtol=2e-3)  # eta * lambda at target
    np.testing.assert_allclose(float(cap.rho), 0.9, rtol=2e-3)


def test_cap_adam_on_preconditioned_operator():
    """kind="adam" tracks lambda_max(P^-1/2 H P^-1/2) with P from Adam's state (dense check)."""
    from jaxlr.sharpness import preconditioner

    c = (2 + 2 * 0.9) / (1 - 0.9)
    tx = T.sharpness_cap(
        optax.adam(1.0),
        quantity="lambda_max",
        schedule=30.0,
        kind="adam",
        every=1,
        num_iters=6,
    )
    step = jit(lambda w, s: tx.update(jax.grad(quad)(w), s, w, loss_fn=quad))
    w, s = W0, tx.init(W0)
    for t in range(25):
        u, s = step(w, s)
        p_inv = 1.0 / np.sqrt(np.asarray(preconditioner(s.inner_state), np.float64))
        dense = np.linalg.eigvalsh(p_inv[:, None] * np.asarray(H, np.float64) * p_inv)[-1]
        np.testing.assert_allclose(float(s.sharpness), dense, rtol=1e-3)
        if t == 0:  # the cap binds at the first step: eta * lambda_P = 0.9 * c
            np.testing.assert_allclose(float(s.lr) * dense, 0.9 * c, rtol=1e-3)
            assert float(s.lr) < 30.0
        w = optax.apply_updates(w, u)


def test_catapult_and_lambda0_initial_lr():
    lam0 = float(np.linalg.eigvalsh(np.asarray(H))[-1])
    tx = T.sharpness_cap(
        optax.sgd(1.0), quantity="lambda_max", mode="catapult", kappa=1.5, every=3, num_iters=6
    )
    _, s, _, lrs = _train_jit(tx, 4)
    np.testing.assert_allclose(lrs, 1.5 * 2.0 / lam0, rtol=1e-4)  # held at kappa * eta_c
    np.testing.assert_allclose(float(s.rho), 1.5, rtol=1e-3)
    tx = T.sharpness_cap(
        optax.sgd(1.0), quantity="lambda_max", fraction=0.5, every=3, num_iters=6
    )  # f * eta_c
    np.testing.assert_allclose(_train_jit(tx, 2)[3], 0.5 * 2.0 / lam0, rtol=1e-4)
    with pytest.raises(ValueError, match="sharpness_cap: mode='catapult' .* schedule must"):
        T.sharpness_cap(mode="catapult", schedule=0.1)


def test_gen_mode_matches_numpy_line_search():
    tx = T.sharpness_cap(optax.sgd(1.0), mode="gen", fraction=100.0, every=1, num_iters=6)
    _, _, _, lrs = _train_jit(tx, 5)
    w, h, ref = np.asarray(W0, np.float64), np.asarray(H, np.float64), []
    for _ in range(5):
        g = h @ w
        eta = (g @ g) / (g @ h @ g)
        ref.append(eta)
        w = w - eta * g
    np.testing.assert_allclose(lrs, ref, rtol=2e-3)


def test_cap_hysteresis_and_schedule_base():
    # lambda = 10 exactly: the cap is set once and never chatters; the base schedule binds first
    tx = T.sharpness_cap(
        optax.sgd(1.0),
        quantity="lambda_max",
        fraction=0.9,
        every=1,
        num_iters=6,
        hysteresis=0.05,
        schedule=S.linear(init_value=0.01, end_value=0.5, total_steps=20),
    )
    _, s, _, lrs = _train_jit(tx, 30)
    sched = S.linear(init_value=0.01, end_value=0.5, total_steps=20)
    ref = np.minimum([float(sched(t)) for t in range(30)], 0.18)
    np.testing.assert_allclose(lrs, ref, rtol=2e-3)
    assert float(s.cap) == pytest.approx(0.18, rel=2e-3)


def test_warmup_ends_when_eta_lambda_reaches_target():
    after = S.cosine(init_value=1.0, total_steps=10)
    tx = T.sharpness_warmup(
        optax.sgd(1.0),
        quantity="lambda_max",
        schedule=after,
        target=0.8,
        growth=1.3,
        init_ratio=0.05,
        every=1,
        num_iters=6,
    )
    _, s, _, lrs = _train_jit(tx, 30)
    eta0 = 0.05 * 2.0 / LAM
    end = int(np.ceil(np.log(0.8 / 0.05) / np.log(1.3)))  # first t with eta0 1.3^t >= 0.16
    ref = [eta0 * 1.3**t for t in range(end)] + [0.16 * float(after(t)) for t in range(30 - end)]
    np.testing.assert_allclose(lrs, ref, rtol=2e-3)
    assert bool(s.done) and int(s.end_step) == end
    assert float(s.end_lr) * LAM == pytest.approx(2 * 0.8, rel=2e-3)  # eta * lambda = target


def test_warmup_bad_arguments():
    with pytest.raises(ValueError, match="sharpness_warmup: growth must be >= 1, got growth=0.5"):
        T.sharpness_warmup(growth=0.5)
    with pytest.raises(ValueError, match="sharpness_warmup: kind='adam' needs the optimizer"):
        T.sharpness_warmup(kind="adam")
    with pytest.raises(ValueError, match="sharpness_cap: kind must be one of"):
        T.sharpness_cap(kind="lion")
    tx = T.sharpness_cap(schedule=0.1)
    with pytest.raises(
        ValueError, match="sharpness_cap: update needs the keyword argument loss_fn="
    ):
        tx.update(W0, tx.init(W0), W0)


def test_vmap_over_fraction_and_target_equals_loop():
    def run(fraction, target):
        sgd = optax.sgd(1.0)
        l1 = _train(
            T.sharpness_cap(
                sgd,
                quantity="lambda_max",
                schedule=1.0,
                fraction=fraction,
                every=2,
                num_iters=6,
            ),
            6,
        )[3]
        l2 = _train(
            T.sharpness_warmup(
                sgd, quantity="lambda_max", target=target, growth=2.0, every=2, num_iters=6
            ),
            6,
        )[3]
        return l1, l2

    fractions, targets = jnp.array([0.5, 0.9]), jnp.array([0.3, 0.7])
    b1, b2 = jit(jax.vmap(run))(fractions, targets)
    single = jit(run)
    for i in range(2):
        s1, s2 = single(fractions[i], targets[i])
        np.testing.assert_allclose(b1[i], s1, rtol=1e-4)
        np.testing.assert_allclose(b2[i], s2, rtol=1e-4)
    np.testing.assert_allclose(b1[:, -1] * LAM, 2 * fractions, rtol=2e-3)


def test_chains_with_every_optax_optimizer():
    """chain(opt(1.0), sharpness_cap) == opt(1.0) updates times the reported LR."""
    for factory in (optax.sgd, optax.adagrad, optax.rmsprop, optax.adam, optax.adamw, optax.radam):
        tx = optax.chain(factory(1.0), T.sharpness_cap(schedule=0.05, every=2, num_iters=6))
        base = factory(1.0)

        @jit
        def step(w, s, sb, tx=tx, base=base):
            g = jax.grad(quad)(w)
            u, s = tx.update(g, s, w, loss_fn=quad)
            ub, sb = base.update(g, sb, w)
            return optax.apply_updates(w, u), s, sb, u, ub, T.current_lr(s, optimizer_lr=1.0)

        w, s, sb = W0, tx.init(W0), base.init(W0)
        for _ in range(3):
            w, s, sb, u, ub, lr = step(w, s, sb)
            np.testing.assert_allclose(u, lr * ub, rtol=1e-5, atol=1e-7)
        assert 0 < float(lr) <= 0.05 * (1 + 1e-6)


class _Tiny(nnx.Module):
    def __init__(self):
        self.lin = nnx.Linear(3, 2, rngs=nnx.Rngs(0))

    def __call__(self, x):
        return self.lin(x)


@pytest.mark.parametrize("which", ["cap", "warmup"])
def test_nnx_optimizer_and_checkpoint_restore(which):
    """nnx.Optimizer.update(model, grads, value=loss, loss_fn=...) equals the pure optax loop;
    a state saved with flax.serialization continues with identical LRs and parameters."""
    x = jnp.linspace(-1, 1, 12).reshape(4, 3)
    y = jnp.array([[0.5, 1.0], [-1.0, 0.0], [2.0, 1.0], [0.0, -1.0]])
    model = _Tiny()
    graphdef, template = nnx.split(model, nnx.Param)
    tx = (
        T.sharpness_cap(optax.adam(1.0), schedule=0.1, kind="adam", every=2, num_iters=6)
        if which == "cap"
        else T.sharpness_warmup(optax.sgd(1.0), growth=1.5, every=2, num_iters=6)
    )
    opt = nnx.Optimizer(model, tx, wrt=nnx.Param)

    def state_loss(p):  # the loss of the pure parameter State that nnx.Optimizer passes on
        return jnp.mean((nnx.merge(graphdef, p)(x) - y) ** 2)

    def dict_loss(d):  # the same loss of plain nested dicts (serializable reference state)
        state = jax.tree.map(lambda v: v, template)
        nnx.replace_by_pure_dict(state, d)
        return state_loss(nnx.as_pure(state))

    @nnx.jit
    def train_step(model, opt):
        loss, grads = nnx.value_and_grad(lambda m: jnp.mean((m(x) - y) ** 2))(model)
        opt.update(model, grads, value=loss, loss_fn=state_loss)

    ref_params = nnx.to_pure_dict(nnx.state(model, nnx.Param))
    ref_state = tx.init(ref_params)
    step = jit(lambda s, p: tx.update(jax.grad(dict_loss)(p), s, p, loss_fn=dict_loss))
    for _ in range(4):
        train_step(model, opt)
        u, ref_state = step(ref_state, ref_params)
        ref_params = optax.apply_updates(ref_params, u)
    got = nnx.to_pure_dict(nnx.state(model, nnx.Param))
    jax.tree.map(
        lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6), got, ref_params
    )
    # the state holds its schedule whole (a pytree flax.serialization has no handler for), so
    # the checkpoint is of its leaves, restored into the structure of a fresh state
    template = tx.init(ref_params)
    blob = flax.serialization.to_bytes(jax.tree.leaves(ref_state))
    restored = jax.tree.unflatten(
        jax.tree.structure(template), flax.serialization.from_bytes(jax.tree.leaves(template), blob)
    )
    outs = []
    for s in (ref_state, restored):
        p, lrs = ref_params, []
        for _ in range(3):
            u, s = step(s, p)
            p = optax.apply_updates(p, u)
            lrs.append(float(s.lr))
        outs.append((lrs, p))
    assert outs[0][0] == outs[1][0] and np.isfinite(outs[0][0]).all()
    jax.tree.map(np.testing.assert_array_equal, outs[0][1], outs[1][1])


def _two_steps(tx, loss_fn, p0):
    st, p = tx.init(p0), p0
    for _ in range(2):
        u, st = tx.update(jax.grad(loss_fn)(p), st, p, loss_fn=loss_fn)
        p = p + u
    return loss_fn(p)


@pytest.mark.parametrize(
    "build",
    [
        lambda h: T.sharpness_cap(optax.sgd(1.0), schedule=0.5, decay=h, every=1),
        lambda h: T.sharpness_cap(optax.sgd(1.0), mode="gen", decay=h, every=1),
        lambda h: T.sharpness_warmup(optax.sgd(1.0), growth=1.0 + h),
        lambda h: T.sharpness_warmup(optax.sgd(1.0), decay=h),
    ],
    ids=["cap-ema", "gen-ema", "warmup-growth", "warmup-ema"],
)
def test_hyperparameter_gradients_are_finite_through_unset_state(build):
    """NaN 'not yet estimated' state must not leak into gradients (0 * NaN in a dropped branch);
    checked against central differences of the same two-step loss."""
    a = jnp.diag(jnp.array([3.0, 1.0, 0.2]))
    loss_fn = lambda p: 0.5 * p @ a @ p  # noqa: E731
    f = lambda h: _two_steps(build(h), loss_fn, jnp.ones(3))  # noqa: E731
    # one compile for the gradient and both difference points
    g, f_hi, f_lo = map(float, jit(lambda h: (jax.grad(f)(h), f(h + 1e-3), f(h - 1e-3)))(0.5))
    fd = (f_hi - f_lo) / 2e-3
    assert np.isfinite(g) and abs(g - fd) <= 2e-2 * max(1.0, abs(fd)), (g, fd)


def test_no_curvature_means_no_limit_and_finite_gradients():
    """A linear loss has lambda_max = 0: no cap, and d/d fraction is exactly 0 (not NaN)."""
    loss_fn = lambda p: jnp.sum(jnp.array([1.0, 2.0, 3.0]) * p)  # noqa: E731
    f = lambda frac: _two_steps(  # noqa: E731
        T.sharpness_cap(optax.sgd(1.0), schedule=0.1, fraction=frac), loss_fn, jnp.ones(3)
    )
    value, grad = jit(jax.value_and_grad(f))(0.9)
    assert float(grad) == 0.0
    assert float(value) == pytest.approx(6.0 - 2 * 0.1 * 14.0, rel=1e-6)


# --- batch sharpness (the default quantity) -----------------------------------------------

BS_CASES = {  # kind -> (unit-LR optimizer, c, base LR, every)
    "gd": (lambda: optax.sgd(1.0), 2.0, 0.25, 1),
    "heavy_ball": (lambda: optax.sgd(1.0, momentum=0.9), 3.8, 0.5, 3),
    "adam": (lambda: optax.adam(1.0), 38.0, 50.0, 1),
}


def _bs_reference(kind, steps, fraction, window, q):
    """NumPy: d from the same Optax optimizer, s = d'Hd / d'Md in float64, the ring's q-quantile
    and the step's own sample; lr = min(base, f c / max(quantile, own))."""
    make, c, base, every = BS_CASES[kind]
    opt = make()
    h64 = np.asarray(H, np.float64)
    w, st, ring, lrs = W0, opt.init(W0), [], []
    for t in range(steps):
        u, st = opt.update(jax.grad(quad)(w), st, w)
        d = -np.asarray(u, np.float64)
        lam = np.quantile(ring, q) if ring else np.nan
        if t % every == 0:
            if kind == "adam":
                m = d @ (np.asarray(T._sharpness.sharpness.preconditioner(st), np.float64) * d)
            else:
                m = d @ d
            s = d @ h64 @ d / m
            ring = (ring + [s])[-window:]
            lam = max(np.quantile(ring, q), s)
        lr = min(base, fraction * c / lam)
        lrs.append(lr)
        w = w + lr * u
    return np.asarray(lrs)


@pytest.mark.parametrize(
    ("kind", "method"),
    [(k, "forward_over_forward") for k in sorted(BS_CASES)]
    + [("gd", "hvp"), ("gd", "loss_rise")],  # exact on a quadratic (no third derivative)
)
def test_batch_sharpness_cap_matches_numpy_reference(kind, method):
    make, _, base, every = BS_CASES[kind]
    tx = T.sharpness_cap(
        make(),
        schedule=base,
        method=method,
        kind=kind,
        momentum=0.9,
        every=every,
        window=4,
        quantile=0.5,
        hysteresis=0.0,
    )
    _, s, _, lrs = _train_jit(tx, 12)
    ref = _bs_reference(kind, 12, 0.9, 4, 0.5)
    np.testing.assert_allclose(lrs, ref, rtol=2e-4)
    assert (ref < base).any()  # the cap binds on some steps
    assert type(s.curvature).__name__ == "BatchSharpnessState"  # the state says what it capped


def _nan_first(tx, steps=2, w=W0):
    """Update 0 on a NaN batch, then clean batches; (lrs, params after each update, states)."""

    def loss(w, b):
        return b * quad(w)

    step = jit(lambda w, s, b: tx.update(jax.grad(loss)(w, b), s, w, loss_fn=loss, batch=b))
    s, out = tx.init(w), []
    for b in [jnp.nan] + [1.0] * (steps - 1):
        u, s = step(w, s, jnp.asarray(b))
        w = optax.apply_updates(w, u)
        out.append((float(s.lr), np.asarray(w), s))
    return out


@pytest.mark.parametrize("quantity", ["batch_sharpness", "lambda_max"])
def test_nan_first_batch_is_no_estimate_not_no_limit(quantity):
    """Issue 21 item 2: a NaN estimate at update 0 skipped the limit for good."""
    g = np.asarray(jax.grad(quad)(W0), np.float64)
    h64 = np.asarray(H, np.float64)
    lam1 = g @ h64 @ g / (g @ g) if quantity == "batch_sharpness" else LAM
    kw = {"quantity": quantity, "num_iters": 6, "init_iters": 6, "tol": 1e-6}
    # the catapult: init_lr was inf, so the LR stayed at max_value for good
    (lr0, w0, s0), (lr1, w1, s1) = _nan_first(
        T.sharpness_cap(optax.sgd(1.0), mode="catapult", kappa=1.5, **kw)
    )
    assert lr0 == 0.0 and np.array_equal(w0, np.asarray(W0))
    assert np.isnan(float(s0.init_lr))
    np.testing.assert_allclose([lr1, float(s1.init_lr)], 1.5 * 2.0 / lam1, rtol=1e-3)
    assert lr1 < 1.0  # below max_value: the limit came from the estimate
    # the cap with a base LR above the edge
    (lr0, w0, _), (lr1, _, s1) = _nan_first(T.sharpness_cap(optax.sgd(1.0), schedule=5.0, **kw))
    assert lr0 == 0.0 and np.array_equal(w0, np.asarray(W0))
    np.testing.assert_allclose(lr1, 0.9 * 2.0 / lam1, rtol=1e-3)
    # the warmup ended at step 0 at peak_value
    (lr0, w0, s0), (lr1, _, s1) = _nan_first(
        T.sharpness_warmup(optax.sgd(1.0), init_ratio=0.1, peak_value=10.0, **kw)
    )
    assert lr0 == 0.0 and not bool(s0.done) and np.array_equal(w0, np.asarray(W0))
    np.testing.assert_allclose(lr1, 0.1 * 2.0 / lam1, rtol=1e-3)
    assert not bool(s1.done)


def test_a_skipped_first_step_runs_eagerly_as_under_jit():
    """Review: outside ``jit`` a skipped step (a NaN batch) raised ``stability_ratio:
    learning_rate must be > 0`` (its LR is 0); now its ratio is 0 and the LRs equal the jitted
    run's."""

    def loss(w, b):
        return b * quad(w)

    kw = {"num_iters": 6, "init_iters": 6, "tol": 1e-6}
    cap = T.sharpness_cap(optax.sgd(1.0), schedule=5.0, **kw)
    warm = T.sharpness_warmup(optax.sgd(1.0), init_ratio=0.1, peak_value=10.0, **kw)
    for tx in (cap, warm):
        runs = []
        for wrap in (lambda f: f, jit):
            step = wrap(
                lambda w, s, b: tx.update(jax.grad(loss)(w, b), s, w, loss_fn=loss, batch=b)
            )
            w, st, lrs = W0, tx.init(W0), []
            for b in (jnp.nan, 1.0, 1.0):
                u, st = step(w, st, jnp.asarray(b))
                w = optax.apply_updates(w, u)
                lrs.append(float(st.lr))
            runs.append(lrs)
        assert runs[0][0] == 0.0 and np.isfinite(float(st.rho))
        np.testing.assert_allclose(runs[0], runs[1], rtol=1e-5)


def test_a_non_positive_first_sample_does_not_end_warmup_at_peak():
    """Review of the batch-sharpness default: negative curvature along the first gradient (or a
    zero gradient) set "no limit", so warmup started and ended at peak_value on step 0 and
    diverged. It now starts at init_ratio x peak_value and keeps measuring."""

    def loss(w):  # negative curvature along g at w0; lambda_max 10 at w0, 20 at the minimum
        return 10 * (-0.5 * w[0] ** 2 + 0.25 * w[0] ** 4) + 5.0 * w[1] ** 2

    w = jnp.array([0.1, 1e-3])
    tx = T.sharpness_warmup(optax.sgd(1.0), loss_fn=loss)
    st = tx.init(w)
    step = jax.jit(lambda w, st: tx.update(jax.grad(loss)(w), st, w))
    lrs = []
    for _ in range(15):
        u, st = step(w, st)
        w = optax.apply_updates(w, u)
        lrs.append(float(st.lr))
    assert lrs[0] == pytest.approx(0.1)  # init_ratio x peak_value, not peak_value
    assert not (bool(st.done) and int(st.end_step) == 0)
    assert np.isfinite(float(loss(w))) and float(loss(w)) < float(loss(jnp.array([0.1, 1e-3])))
    for name, bad in (("momentum", dict(kind="heavy_ball", momentum=1.0)), ("b1", dict(b1=1.0))):
        with pytest.raises(ValueError, match=rf"{name} must be in \[0, 1\)"):
            T.sharpness_cap(optax.sgd(1.0), schedule=0.1, **bad)


@pytest.mark.parametrize("quantity", ["batch_sharpness", "lambda_max"])
def test_a_nan_batch_mid_run_skips_its_step(quantity):
    """Review: a NaN batch after the first took its step with a NaN direction (params and the
    momentum buffer NaN for good). It is skipped: the params and the inner state stay as they
    were, and training goes on with the next batch."""

    def loss(w, b):
        return 0.5 * jnp.sum(b * w**2)

    tx = T.sharpness_cap(
        optax.sgd(1.0, momentum=0.9),
        schedule=0.1,
        kind="heavy_ball",
        momentum=0.9,
        loss_fn=loss,
        quantity=quantity,
    )
    step = jax.jit(lambda w, s, b: tx.update(jax.grad(loss)(w, b), s, w, batch=b))
    w, s = jnp.ones(3), tx.init(jnp.ones(3))
    good = jnp.array([1.0, 2.0, 3.0])
    u, s = step(w, s, good)
    w = optax.apply_updates(w, u)
    u, s_nan = step(w, s, jnp.full(3, jnp.nan))
    assert np.all(np.asarray(u) == 0.0)
    for a, b in zip(jax.tree.leaves(s_nan.inner_state), jax.tree.leaves(s.inner_state)):
        np.testing.assert_array_equal(a, b)
    u, s_after = step(w, s_nan, good)
    w2 = optax.apply_updates(w, u)
    assert np.isfinite(np.asarray(w2)).all() and float(loss(w2, good)) < float(loss(w, good))


def test_adam_constants_are_read_from_the_chain_or_refused():
    """Review: kind="adam" read P with Optax's default b2/eps and the threshold with the cap's b1
    whatever the chain used. A chain whose direction is not m_hat / P with the constants read
    is now refused at construction; an injected or matching chain is accepted."""
    inject = optax.inject_hyperparams(optax.adam)
    for good, b1 in (
        (optax.adam(1.0), 0.9),
        (optax.adamw(1.0, weight_decay=0.1), 0.9),
        (inject(learning_rate=1.0, b2=0.99, eps=1e-6), 0.9),  # P reads them from the state
        (optax.adam(1.0, b1=0.95), 0.95),
    ):
        T.sharpness_cap(good, schedule=1.0, kind="adam", b1=b1)
        T.sharpness_warmup(good, kind="adam", b1=b1)
    for bad in (
        optax.adam(1.0, b2=0.99),
        optax.adam(1.0, eps=1e-6),
        optax.adam(1.0, eps_root=1e-8),
        optax.adam(1.0, b1=0.95),  # the threshold would use b1 = 0.9
        inject(learning_rate=1.0, b1=0.95),
        optax.nadam(1.0),
    ):
        for make in (T.sharpness_cap, T.sharpness_warmup):
            with pytest.raises(ValueError, match=r"kind='adam' reads Adam's constants .* got"):
                make(bad, kind="adam")


def test_skipped_updates_are_counted():
    """Review: a persistent NaN estimate set LR 0 on every update with nothing in the state to
    say so. ``num_skipped`` counts the skipped updates (no estimate, or a NaN direction)."""

    def loss(w, b):
        return b * quad(w)

    for tx in (
        T.sharpness_cap(optax.sgd(1.0), schedule=0.1),
        T.sharpness_cap(optax.sgd(1.0), schedule=0.1, quantity="lambda_max", num_iters=6),
        T.sharpness_warmup(optax.sgd(1.0)),
    ):
        step = jit(
            lambda w, s, b, tx=tx: tx.update(jax.grad(loss)(w, b), s, w, loss_fn=loss, batch=b)
        )
        w, s = W0, tx.init(W0)
        skipped = []
        for b in (jnp.nan, jnp.nan, 1.0, jnp.nan, 1.0, 1.0):
            u, s = step(w, s, jnp.asarray(b))
            w = optax.apply_updates(w, u)
            skipped.append(int(s.num_skipped))
        assert skipped == [1, 2, 2, 3, 3, 3]
        assert np.isfinite(np.asarray(w)).all()


def test_eigenvalue_is_held_between_refreshes():
    """Review: with every > 1 the state's raw estimate went NaN on the updates in between."""
    tx = T.sharpness_cap(optax.sgd(1.0), schedule=0.01, every=3)
    w, s, _, _ = _train_jit(tx, 1)
    g = np.asarray(jax.grad(quad)(W0), np.float64)
    first = g @ np.asarray(H, np.float64) @ g / (g @ g)  # the sample at update 0
    np.testing.assert_allclose(float(s.eigenvalue), first, rtol=1e-4)
    _, s, _, _ = _train_jit(tx, 3)  # updates 1 and 2 do not refresh
    np.testing.assert_allclose(float(s.eigenvalue), first, rtol=1e-4)
    _, s4, _, _ = _train_jit(tx, 4)  # update 3 refreshes at the new params
    assert float(s4.eigenvalue) != float(s.eigenvalue) and np.isfinite(float(s4.eigenvalue))


def test_every_is_whole_window_is_bounded_and_old_names_say_the_new_ones():
    """Review: every=2.5 was accepted and a huge window allocated without a bound; issue 22
    item 5: one name per concept (schedule for the LR followed, decay for an EMA weight)."""
    for make in (T.sharpness_cap, T.sharpness_warmup):
        name = make.__name__
        with pytest.raises(ValueError, match=rf"^{name}: every must be an integer >= 1, got"):
            make(every=2.5)
        with pytest.raises(ValueError, match=rf"^{name}: window must be an int in \[1, 10000\]"):
            make(window=10**9)
        make(window=10_000)  # the documented limit itself is accepted
        with pytest.raises(TypeError, match=rf"^{name}: argument 'ema' is now 'decay'"):
            make(ema=0.5)
    with pytest.raises(
        TypeError, match="sharpness_cap: argument 'learning_rate' is now 'schedule'"
    ):
        T.sharpness_cap(learning_rate=0.1)


def test_finite_check_reads_one_scalar_without_false_alarms():
    """The skip test is one squared norm (one kernel, not three a leaf): it flags a NaN or inf
    in any leaf, and not a finite float16 direction whose squared norm overflows float16."""
    finite = T._sharpness._finite
    tree = {"a": jnp.full((3,), 300.0, jnp.float16), "b": jnp.ones((2, 2), jnp.float32)}
    assert bool(finite(tree))  # 3 * 300^2 = 270,000 > float16's 65,504: summed in float32
    for bad in (jnp.nan, jnp.inf, -jnp.inf):
        assert not bool(finite({**tree, "b": tree["b"].at[1, 0].set(bad)}))
        assert not bool(jax.jit(finite)({**tree, "a": tree["a"].at[2].set(bad)}))
    assert bool(finite({}))
