"""Compat beyond values: peer-rejected arguments, kept peer quirks (the traceability contract is
in ``test_compat_catalog.py``)."""

from __future__ import annotations

import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
from torch.optim import lr_scheduler as L

from jaxlr.compat import keras as CK
from jaxlr.compat import torch as C
from jaxlr.compat import transformers as CH


def _opt():
    return torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.1, momentum=0.9)


# (jaxlr call, torch call or None, words the jaxlr message must hold)
REJECTED = [
    (
        lambda: C.LinearLR(start_factor=0, lr=0.1),
        lambda: L.LinearLR(_opt(), start_factor=0),
        ["LinearLR", "start_factor", "0"],
    ),
    (
        lambda: C.LinearLR(end_factor=1.5, lr=0.1),
        lambda: L.LinearLR(_opt(), end_factor=1.5),
        ["LinearLR", "end_factor"],
    ),
    (
        lambda: C.CosineAnnealingWarmRestarts(T_0=10, T_mult=1.5, lr=0.1),
        lambda: L.CosineAnnealingWarmRestarts(_opt(), T_0=10, T_mult=1.5),
        ["T_mult", "1.5"],
    ),
    (
        lambda: C.CosineAnnealingWarmRestarts(T_0=0, lr=0.1),
        lambda: L.CosineAnnealingWarmRestarts(_opt(), T_0=0),
        ["T_0", "0"],
    ),
    (
        lambda: C.OneCycleLR(max_lr=0.1),
        lambda: L.OneCycleLR(_opt(), max_lr=0.1),
        ["OneCycleLR", "total_steps", "epochs"],
    ),
    (
        lambda: C.OneCycleLR(max_lr=0.1, total_steps=100, pct_start=1.5),
        lambda: L.OneCycleLR(_opt(), max_lr=0.1, total_steps=100, pct_start=1.5),
        ["pct_start"],
    ),
    (
        lambda: C.OneCycleLR(max_lr=0.1, total_steps=100, anneal_strategy="exp"),
        lambda: L.OneCycleLR(_opt(), max_lr=0.1, total_steps=100, anneal_strategy="exp"),
        ["anneal_strategy"],
    ),
    (
        lambda: C.ConstantLR(factor=1.5, lr=0.1),
        lambda: L.ConstantLR(_opt(), factor=1.5),
        ["ConstantLR", "factor"],
    ),
    (
        lambda: C.CyclicLR(base_lr=0.1, max_lr=1.0, mode="sine"),
        lambda: L.CyclicLR(_opt(), base_lr=0.1, max_lr=1.0, mode="sine"),
        ["CyclicLR", "mode"],
    ),
    (
        lambda: C.SWALR(swa_lr=0.1, anneal_epochs=-1, lr=0.1),
        lambda: torch.optim.swa_utils.SWALR(_opt(), swa_lr=0.1, anneal_epochs=-1),
        ["SWALR", "anneal_epochs"],
    ),
    (
        lambda: C.ReduceLROnPlateau(lr=0.1, factor=1.0),
        lambda: L.ReduceLROnPlateau(_opt(), factor=1.0),
        ["ReduceLROnPlateau", "factor"],
    ),
    (
        lambda: C.ReduceLROnPlateau(lr=0.1, mode="best"),
        lambda: L.ReduceLROnPlateau(_opt(), mode="best"),
        ["mode"],
    ),
    (
        lambda: C.SequentialLR(schedulers=[C.StepLR(step_size=2, lr=0.1)] * 2, milestones=[]),
        lambda: L.SequentialLR(_opt(), [L.StepLR(o := _opt(), 2), L.StepLR(o, 2)], []),
        ["SequentialLR", "milestones"],
    ),
    (
        lambda: C.ChainedScheduler(schedulers=[], lr=0.1),
        lambda: L.ChainedScheduler([]),
        ["ChainedScheduler", "schedulers"],
    ),
    # jaxlr-only rejections, where torch would divide by zero later or depend on order
    (lambda: C.StepLR(step_size=0, lr=0.1), None, ["StepLR", "step_size"]),
    (lambda: C.OneCycleLR(max_lr=0.1, total_steps=10, pct_start=0.1), None, ["pct_start"]),
    (
        lambda: C.ChainedScheduler(
            schedulers=[C.LambdaLR(lr_lambda=lambda t: 1.0, lr=0.1)], lr=0.1
        ),
        None,
        ["ChainedScheduler", "order"],
    ),
    (
        lambda: CK.CosineDecay(initial_learning_rate=0.1, decay_steps=0),
        None,
        ["CosineDecay", "decay_steps"],
    ),
    (
        lambda: CK.PiecewiseConstantDecay(boundaries=[1, 2], values=[1.0, 0.5]),
        None,
        ["PiecewiseConstantDecay", "values"],
    ),
    (
        lambda: CH.get_polynomial_decay_schedule_with_warmup(
            num_warmup_steps=0, num_training_steps=10, lr_end=0.2, lr=0.1
        ),
        None,
        ["lr_end"],
    ),
    (
        lambda: CH.get_cosine_with_min_lr_schedule_with_warmup(
            num_warmup_steps=0, num_training_steps=10, lr=0.1
        ),
        None,
        ["min_lr"],
    ),
    (
        lambda: CH.get_wsd_schedule(num_warmup_steps=1, num_decay_steps=2, lr=0.1),
        None,
        ["get_wsd_schedule", "num_training_steps"],
    ),
]


@pytest.mark.parametrize("i", range(len(REJECTED)))
def test_rejected_like_the_peer(i):
    ours, peer, words = REJECTED[i]
    with pytest.raises(ValueError) as err:
        ours()
    for w in words:
        assert w in str(err.value), (w, str(err.value))
    if peer is not None:
        with warnings.catch_warnings(), pytest.raises((ValueError, TypeError)):
            warnings.simplefilter("ignore")
            peer()


def test_plateau_negative_metric_quirk_kept():
    """min/rel with best = -10: torch takes -9.9995 (worse) as an improvement; so do we."""
    opt = _opt()
    sched = L.ReduceLROnPlateau(opt, patience=0, factor=0.5, threshold=1e-4)
    tx = C.ReduceLROnPlateau(lr=0.1, patience=0, factor=0.5, threshold=1e-4)
    state = tx.init(None)
    for v in (-10.0, -9.9995, -9.9995, -9.99):
        sched.step(v)
        _, state = jax.jit(tx.update)(jnp.ones(()), state, value=v)
        assert float(state.best) == pytest.approx(sched.best)
        assert float(state.lr) == pytest.approx(sched.get_last_lr()[0])
    assert sched.get_last_lr()[0] == pytest.approx(0.05)  # -9.9995 "improved", -9.99 did not


def test_plateau_hyperparameters_traced():
    """jit + vmap over a stack of states with different factors equals torch per factor."""
    factors = np.array([0.1, 0.5, 0.9])
    values = jnp.asarray([1.0, 1.0, 1.0, 0.5, 0.5, 0.5, 0.5])
    tx = C.ReduceLROnPlateau(lr=1.0, patience=1, cooldown=1)
    init = tx.init(None)
    states = jax.vmap(lambda f: init._replace(hyperparams=init.hyperparams._replace(factor=f)))(
        jnp.asarray(factors)
    )

    @jax.jit
    @jax.vmap
    def run(state):
        def body(s, v):
            u, s = tx.update(jnp.ones(()), s, value=v)
            return s, u

        return jax.lax.scan(body, state, values)[1]

    got = np.asarray(run(states))
    for k, f in enumerate(factors):
        sched = L.ReduceLROnPlateau(_opt(), patience=1, cooldown=1, factor=float(f))
        sched.optimizer.param_groups[0]["lr"] = 1.0
        want = []
        for v in np.asarray(values):
            sched.step(float(v))
            want.append(sched.get_last_lr()[0])
        np.testing.assert_allclose(got[k], want, rtol=1e-6)


def test_plateau_updates_scaled_pytree():
    tx = C.ReduceLROnPlateau(lr=0.5)
    u, _ = tx.update({"w": jnp.ones(3), "b": jnp.full((), 2.0)}, tx.init(None), value=1.0)
    np.testing.assert_allclose(u["w"], 0.5)
    np.testing.assert_allclose(u["b"], 1.0)


def test_cosine_decay_restarts_gradient_in_m_mul_is_finite_at_zero():
    """0**0 inside the first period: value 0.5 * (1 + cos(pi/2)) and d/d m_mul = 0, not NaN;
    in the second period (i = 1) d/d m_mul = 0.5 * (1 + cos(pi * 5/20))."""

    def f(m, t):
        return CK.CosineDecayRestarts(initial_learning_rate=1.0, first_decay_steps=10.0, m_mul=m)(t)

    assert float(jax.grad(f)(0.0, 5.0)) == 0.0
    np.testing.assert_allclose(
        float(jax.grad(f)(0.5, 15.0)), 0.5 * (1 + np.cos(np.pi * 5 / 20)), rtol=1e-5
    )
