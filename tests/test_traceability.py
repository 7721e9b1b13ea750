"""The traceability contract of DESIGN.md, checked over every entry of ``catalog()``.

Hyperparameters are leaves, so: one compilation serves every value; stacked schedules vmap and
equal a Python loop; ``jit(grad)`` is finite with respect to every float leaf (step counts
included) and matches central differences where the law is smooth.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxlr import schedules as S

CATALOG = S.catalog()
NAMES = sorted(CATALOG)
STEPS = jnp.asarray(
    [
        0.0,
        1.0,
        50.5,
        99.0,
        100.0,
        101.0,
        250.5,
        300.0,
        500.0,
        799.0,
        800.0,
        999.0,
        1000.0,
        1500.0,
        2.0**33,
    ]
)


def _is_float(x):
    return jnp.issubdtype(jnp.asarray(x).dtype, jnp.floating)


def _perturbed(s, factor):
    """The same structure with every float hyperparameter scaled (orderings are preserved)."""
    return jax.tree.map(lambda x: x * factor if _is_float(x) else x, s)


def _split(s):
    leaves, treedef = jax.tree.flatten(s)
    floats = [i for i, x in enumerate(leaves) if _is_float(x)]

    def rebuild(float_leaves):
        out = list(leaves)
        for i, v in zip(floats, float_leaves):
            out[i] = v
        return jax.tree.unflatten(treedef, out)

    return [leaves[i] for i in floats], rebuild


_traces = {"n": 0}


@jax.jit
def _evaluate(s, steps):
    _traces["n"] += 1
    return s(steps)


@pytest.mark.parametrize("name", NAMES)
def test_one_compilation_serves_every_hyperparameter_value(name):
    s = CATALOG[name]
    before = _traces["n"]
    steps = STEPS[:-1]  # scaling exp_range's gamma past 1 makes 2**33 overflow, as it should
    outs = [np.asarray(_evaluate(_perturbed(s, f), steps)) for f in (1.0, 1.1, 0.9)]
    assert _traces["n"] - before <= 1, "changing a hyperparameter value retraced"
    for f, out in zip((1.0, 1.1, 0.9), outs):
        eager = np.asarray(_perturbed(s, f)(steps))
        scale = np.abs(eager[np.isfinite(eager)]).max()
        np.testing.assert_allclose(out, eager, rtol=1e-5, atol=1e-6 * scale)
    assert not np.allclose(outs[0], outs[1]) or name == "constant_never"


@pytest.mark.parametrize("name", NAMES)
def test_vmap_over_stacked_schedules_equals_a_loop(name):
    members = [_perturbed(CATALOG[name], f) for f in (1.0, 1.25, 0.8, 1.05)]
    stacked = jax.tree.map(lambda *xs: jnp.stack(xs), *members)
    got = np.asarray(jax.vmap(lambda s: s(STEPS))(stacked))
    want = np.stack([np.asarray(m(STEPS)) for m in members])
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-12)


@pytest.mark.parametrize("name", NAMES)
def test_jit_grad_is_finite_for_every_float_leaf(name):
    leaves, rebuild = _split(CATALOG[name])
    # one compilation: the gradient with respect to every float leaf and to the step itself
    grad = jax.jit(
        jax.vmap(jax.grad(lambda ls, t: rebuild(ls)(t), argnums=(0, 1)), in_axes=(None, 0))
    )
    dleaves, dstep = grad(leaves, STEPS)
    for g in [*dleaves, dstep]:
        assert np.all(np.isfinite(np.asarray(g))), f"non-finite gradient for {name}"


@pytest.mark.parametrize("name", NAMES)
def test_gradient_matches_central_differences_between_boundaries(name):
    with jax.enable_x64(True):
        s = jax.tree.map(
            lambda x: jnp.asarray(x, jnp.float64) if _is_float(x) else x, CATALOG[name]
        )
        leaves, rebuild = _split(s)
        value = jax.jit(lambda ls, t: rebuild(ls)(t))  # one compile, then fast probes
        grad = jax.jit(jax.grad(lambda ls, t: rebuild(ls)(t)))
        # away from every catalog boundary; 900.5 and 950.25 sit inside the decay phases
        for t in (333.25, 777.7, 900.5, 950.25):
            t = jnp.asarray(t, jnp.float64)
            g = grad(leaves, t)
            for i, x in enumerate(leaves):
                flat = np.asarray(x, np.float64).ravel()
                for j in range(flat.size):
                    h = 1e-6 * max(1.0, abs(flat[j]))

                    def at(d, i=i, j=j):
                        v = flat.copy()
                        v[j] += d
                        ls = list(leaves)
                        ls[i] = jnp.asarray(v.reshape(np.shape(x)))
                        return float(value(ls, t))

                    f0 = at(0.0)
                    left, right = (f0 - at(-h)) / h, (at(h) - f0) / h
                    if abs(left - right) > 1e-3 * max(abs(left), abs(right), 1e-3):
                        continue  # a jump or kink in this leaf here (e.g. an integer limit)
                    fd = (left + right) / 2
                    got = float(np.asarray(g[i]).ravel()[j])
                    assert abs(got - fd) <= 1e-4 * max(1e-3, abs(fd)), (name, i, j, got, fd)


@pytest.mark.parametrize("name", NAMES)
def test_finite_over_long_horizons(name):
    s = CATALOG[name]
    v = np.asarray(jax.jit(s)(jnp.arange(0, 20_001, dtype=jnp.float32)))
    assert np.all(np.isfinite(v))
    for big in (2.0**31, 2.0**33, 1e12):
        assert np.isfinite(float(s(big)))


def test_optax_accepts_a_schedule_as_learning_rate():
    import optax

    s = CATALOG["warmup_cosine"]
    opt = optax.sgd(learning_rate=s)
    params = jnp.zeros(2)
    state = opt.init(params)
    for t in range(3):
        updates, state = opt.update(jnp.ones(2), state, params)
        np.testing.assert_allclose(np.asarray(updates), -float(s(t)) * np.ones(2), rtol=1e-6)


def test_jit_of_a_schedule_with_traced_leaves():
    """jax.jit(schedule) compares schedules for its cache; traced leaves must not break that."""
    f = jax.jit(lambda v: jax.jit(S.cosine(init_value=v, total_steps=100.0))(3.0))
    np.testing.assert_allclose(float(f(1.0)), 0.5 * (1 + np.cos(np.pi * 0.03)), rtol=1e-6)
    g = jax.grad(lambda v: jax.jit(S.cosine(init_value=v, total_steps=100.0))(3.0))(1.0)
    np.testing.assert_allclose(float(g), 0.5 * (1 + np.cos(np.pi * 0.03)), rtol=1e-6)
