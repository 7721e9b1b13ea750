"""The traceability contract of DESIGN.md over every compat constructor (``jaxlr.compat.catalog``),
the catalog's coverage, public-only imports, and round trips through names, configs and ``repr``.
"""

from __future__ import annotations

import ast
import dataclasses
import pathlib

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxlr
from jaxlr import compat

CATALOG = compat.catalog()
NAMES = sorted(CATALOG)
STEPS = jnp.asarray(
    [0.0, 1.0, 50.5, 99.0, 100.0, 101.0, 250.5, 300.0, 500.0, 799.0, 800.0, 999.0, 1000.0, 1500.0]
)


@pytest.fixture(autouse=True)
def _strict_dtype_promotion():
    """compat laws are jaxlr's own code: an implicit int/float or float32/float64 mix fails."""
    with jax.numpy_dtype_promotion("strict"):
        yield


def _is_float(x):
    return jnp.issubdtype(jnp.asarray(x).dtype, jnp.floating)


def _perturbed(s, factor):
    """The same structure with every float hyperparameter scaled (orderings are preserved)."""
    return jax.tree.map(lambda x: x * factor if _is_float(x) else x, s)


def _stack(members):
    return jax.tree.map(lambda *xs: jnp.stack(xs), *members)


_traces = {"n": 0}


def _value_and_grads(s, steps):
    """Values at ``steps`` and the gradient with respect to every leaf and to the step."""
    grad = jax.vmap(jax.grad(lambda s, t: s(t), argnums=(0, 1)), in_axes=(None, 0))
    return s(steps), grad(s, steps)


@jax.jit
def _evaluate(stacked, steps):
    _traces["n"] += 1
    return jax.vmap(_value_and_grads, in_axes=(0, None))(stacked, steps)


@pytest.mark.parametrize("name", NAMES)
def test_traceability_contract(name):
    """jit with stacked schedules as the argument: a second stack of other values reuses the
    compiled code; vmap over members equals a Python loop of eager evaluations; jit(grad) is
    finite with respect to every leaf and the step, and some leaf moves the LR."""
    s = CATALOG[name]
    assert all(_is_float(x) for x in jax.tree.leaves(s))
    before = _traces["n"]
    for factors in ((1.0, 1.004), (0.997, 1.002)):  # small: gamma < 1 stays (nearly) < 1
        members = [_perturbed(s, f) for f in factors]
        got, (dleaves, dstep) = _evaluate(_stack(members), STEPS)
        want = np.stack([np.asarray(m(STEPS)) for m in members])
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6 * np.abs(want).max())
        for g in [*jax.tree.leaves(dleaves), dstep]:
            assert np.all(np.isfinite(np.asarray(g))), f"non-finite gradient for {name}"
        assert any(np.any(np.asarray(g) != 0) for g in jax.tree.leaves(dleaves))
    assert _traces["n"] - before <= 1, "changing a hyperparameter value retraced"
    assert not np.allclose(got[0], got[1]), "the perturbed members are not different"


def test_catalog_holds_every_compat_constructor():
    """Every public name of the three peer modules (but the plateau transform, its state and the
    LR/momentum pair) and the two momentum co-schedules has an entry, and lookup finds each."""
    public = {"torch.CyclicLR.momentum", "torch.OneCycleLR.momentum"}
    for peer in ("torch", "keras", "transformers"):
        module = getattr(compat, peer)
        public |= {
            f"{peer}.{n}"
            for n in module.__all__
            if n not in ("ReduceLROnPlateau", "ReduceLROnPlateauState", "LRAndMomentum")
        }
    assert {name.split("(")[0] for name in CATALOG} == public
    assert len(public) == 32  # torch 15 + 2 co-schedules, keras 6, transformers 9
    for name in public:
        assert compat.lookup(name) is compat.lookup(f"jaxlr.compat.{name}")


def test_compat_imports_only_public_schedules_api():
    """compat is a client of jaxlr.schedules: no private module of it (``_core``, ...)."""
    root = pathlib.Path(compat.__file__).parent
    for path in root.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module:
                parts = node.module.split(".")
                if parts[:2] == ["jaxlr", "schedules"]:
                    assert not any(p.startswith("_") for p in parts), (path.name, node.module)


def _family_names(s):
    """Names of a schedule and of the schedules inside it."""
    out = {s.name}
    for f in dataclasses.fields(s):
        x = getattr(s, f.name)
        for y in x if isinstance(x, tuple) else (x,):
            if isinstance(y, jaxlr.schedules.Schedule):
                out |= _family_names(y)
    return out


def test_every_registered_compat_law_is_in_the_catalog():
    laws = {n for n in jaxlr.schedules.names() if n.split(".")[0] in compat._catalog._PEERS}
    assert len(laws) >= 13
    assert laws <= set().union(*(_family_names(s) for s in CATALOG.values()))
