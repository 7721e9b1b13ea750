"""Compat ergonomics: the LR and the momentum from one call, names that round-trip through
``to_config`` / ``parse(repr(s))``, and :func:`jaxlr.compat.lookup` for expressions."""

from __future__ import annotations

import json

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jaxlr import compat
from jaxlr.compat import torch as C
from jaxlr.schedules import constructor, from_config, parse, to_config

from .cases import torch_values

CATALOG = compat.catalog()
USER_FUNCTIONS = {"torch.LambdaLR", "torch.MultiplicativeLR", "torch.CyclicLR(scale_fn)"}
PLAIN = sorted(set(CATALOG) - USER_FUNCTIONS)
STEPS = jnp.arange(0.0, 1200.0, 7.0)


def _names_in(config):
    """Every schedule name in a config tree."""
    out = [config["name"]]
    for v in config["args"].values():
        for x in v if isinstance(v, list) else [v]:
            if isinstance(x, dict) and "name" in x:
                out += _names_in(x)
    return out


@pytest.mark.parametrize(
    "cls, kw",
    [
        ("OneCycleLR", dict(max_lr=0.1, total_steps=60, pct_start=0.25, three_phase=True)),
        ("CyclicLR", dict(base_lr=0.01, max_lr=0.1, step_size_up=5, mode="triangular2")),
    ],
)
def test_with_momentum_drives_optax_like_torch(cls, kw):
    """One call gives both schedules; through optax.inject_hyperparams the LR and momentum that
    sgd applies at each step are torch's param_group values after that many scheduler steps."""
    from torch.optim import lr_scheduler as L

    n = 40
    want_lr = torch_values(lambda o: getattr(L, cls)(o, **kw), n, 0.1)
    want_m = torch_values(lambda o: getattr(L, cls)(o, **kw), n, 0.1, momentum=True)
    pair = getattr(C, cls).with_momentum(**kw)
    assert isinstance(pair, C.LRAndMomentum)
    tx = optax.inject_hyperparams(optax.sgd)(learning_rate=pair.lr, momentum=pair.momentum)
    params = jnp.zeros(2)
    state = tx.init(params)
    step = jax.jit(lambda s: tx.update(jnp.ones(2), s, params)[1])
    got = []
    for _ in range(n):  # the state after update t holds the hyperparameters update t applied
        state = step(state)
        got.append([float(state.hyperparams[k]) for k in ("learning_rate", "momentum")])
    np.testing.assert_allclose(np.asarray(got), np.stack([want_lr, want_m], 1), rtol=1e-5)


def test_with_momentum_is_a_pytree_that_vmaps():
    pairs = [
        C.OneCycleLR.with_momentum(max_lr=v, total_steps=100, max_momentum=m)
        for v, m in ((0.1, 0.95), (0.2, 0.9))
    ]
    stacked = jax.tree.map(lambda *xs: jnp.stack(xs), *pairs)
    lr, mom = jax.jit(jax.vmap(lambda p: (p.lr(10.0), p.momentum(10.0))))(stacked)
    np.testing.assert_allclose(lr, [p.lr(10.0) for p in pairs], rtol=1e-6)
    np.testing.assert_allclose(mom, [p.momentum(10.0) for p in pairs], rtol=1e-6)


@pytest.mark.parametrize("name", PLAIN)
def test_config_round_trip(name):
    """JSON config -> equal schedule, equal values; a dotted name in it is the public compat
    constructor (``lookup``), which takes the stored arguments."""
    s = CATALOG[name]
    config = to_config(s)
    back = from_config(json.dumps(config))
    assert back == s
    np.testing.assert_array_equal(back(STEPS), s(STEPS))
    for n in _names_in(config):
        if "." in n:
            assert constructor(n) is compat.lookup(n)


@pytest.mark.parametrize("name", PLAIN)
def test_parse_repr_round_trip(name):
    s = CATALOG[name]
    back = parse(repr(s))
    assert back == s
    np.testing.assert_array_equal(back(STEPS), s(STEPS))


@pytest.mark.parametrize(
    "expression, want",
    [
        (
            "torch.OneCycleLR(max_lr=0.1, total_steps=1000)",
            lambda: C.OneCycleLR(max_lr=0.1, total_steps=1000),
        ),
        ("jaxlr.compat.torch.StepLR(step_size=30, lr=0.1)", lambda: C.StepLR(step_size=30, lr=0.1)),
        (
            "warmup(keras.CosineDecay(initial_learning_rate=0.1, decay_steps=90), warmup_steps=10)",
            None,
        ),
    ],
)
def test_parse_compat_expressions_with_lookup(expression, want):
    s = parse(expression, lookup=compat.lookup)
    if want is not None:
        assert s == want()
    assert np.all(np.isfinite(np.asarray(s(STEPS))))


def test_lookup_names_the_problem():
    with pytest.raises(
        ValueError,
        match=r"lookup: unknown compat schedule 'torch\.StepLr'.*"
        r"torch\.StepLR",
    ):
        compat.lookup("torch.StepLr")
    with pytest.raises(ValueError, match="Optax transform"):
        compat.lookup("torch.ReduceLROnPlateau")
    assert compat.lookup("torch.CyclicLR.momentum") is C.CyclicLR.momentum
