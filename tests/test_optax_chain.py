"""jaxlr schedules chain into every Optax optimizer the seed names, as the learning rate."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jaxlr import schedules as S
from jaxlr.transforms import current_lr

OPTIMIZERS = {
    "sgd": lambda lr: optax.sgd(lr, momentum=0.9),
    "adagrad": optax.adagrad,
    "rmsprop": optax.rmsprop,
    "adam": optax.adam,
    "adamw": lambda lr: optax.adamw(lr, weight_decay=1e-2),
    "radam": optax.radam,
}
SCHEDULES = {
    "warmup_cosine": S.warmup_cosine(peak_value=1e-2, warmup_steps=3, total_steps=12),
    "one_cycle": S.one_cycle(peak_value=1e-2, total_steps=12),
    "wsd": S.wsd(peak_value=1e-2, total_steps=12, warmup_steps=2, decay_fraction=0.25),
}


def _grads(t):
    return {"w": jnp.sin(jnp.arange(4.0) + t), "b": jnp.cos(t) * jnp.ones(2)}


@pytest.mark.parametrize("opt", sorted(OPTIMIZERS))
@pytest.mark.parametrize("sched", sorted(SCHEDULES))
def test_scheduled_update_is_the_schedule_times_the_unit_lr_update(opt, sched):
    """opt(lr=s) must move exactly s(t) times what opt(lr=1) moves, step after step.

    (adamw's decoupled weight decay is multiplied by the LR too, so it scales the same way.)
    """
    s = SCHEDULES[sched]
    scheduled, unit = OPTIMIZERS[opt](s), OPTIMIZERS[opt](1.0)
    params = {"w": jnp.ones(4), "b": jnp.zeros(2)}
    st_s, st_u = scheduled.init(params), unit.init(params)
    for t in range(14):
        u_s, st_s = scheduled.update(_grads(t), st_s, params)
        u_u, st_u = unit.update(_grads(t), st_u, params)
        lr = float(s(t))
        for a, b in zip(jax.tree.leaves(u_s), jax.tree.leaves(u_u)):
            np.testing.assert_allclose(np.asarray(a), lr * np.asarray(b), rtol=1e-5, atol=1e-9)
        # the LR of a plain Optax optimizer built with a schedule, read from its count
        assert float(current_lr(st_s, optimizer_lr=s)) == pytest.approx(lr, rel=1e-6, abs=1e-12)


@pytest.mark.parametrize("opt", sorted(OPTIMIZERS))
def test_inject_hyperparams_reports_the_schedule_value(opt):
    s = SCHEDULES["warmup_cosine"]
    maker = {"sgd": optax.sgd, "adamw": optax.adamw}.get(opt, getattr(optax, opt))
    tx = optax.inject_hyperparams(maker)(learning_rate=s)
    params = {"w": jnp.ones(4), "b": jnp.zeros(2)}
    state = tx.init(params)
    update = jax.jit(tx.update)
    for t in range(6):
        _, state = update(_grads(t), state, params)
        # inject_hyperparams evaluates the schedule at the count before the update
        np.testing.assert_allclose(
            float(state.hyperparams["learning_rate"]), float(s(t)), rtol=1e-6
        )


def test_a_schedule_passed_as_an_argument_does_not_recompile_the_train_step():
    traces = []

    @jax.jit
    def train(schedule, params):
        traces.append(1)
        opt = optax.adam(schedule)
        state = opt.init(params)

        def body(carry, _):
            p, st = carry
            g = jax.grad(lambda q: jnp.sum((q - 1.0) ** 2))(p)
            u, st = opt.update(g, st, p)
            return (optax.apply_updates(p, u), st), None

        (params, _), _ = jax.lax.scan(body, (params, state), None, length=20)
        return params

    a = train(S.warmup_cosine(peak_value=0.1, warmup_steps=5, total_steps=20), jnp.zeros(3))
    b = train(S.warmup_cosine(peak_value=0.05, warmup_steps=9, total_steps=20), jnp.zeros(3))
    assert len(traces) == 1
    assert not np.allclose(np.asarray(a), np.asarray(b))
