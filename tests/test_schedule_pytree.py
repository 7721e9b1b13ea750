"""The schedule pytree: real attributes, honest tree paths, immutability, edits, one compile."""

from __future__ import annotations

import dataclasses
import functools
import json
import pickle

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxlr
from jaxlr import schedules as S


def _warm():
    return S.warmup(S.cosine(init_value=1.0, total_steps=90), warmup_steps=10)


def _resolve(obj, path):
    """Follows a key path by attribute and index access, as a user would type it."""
    for k in path:
        if isinstance(k, jax.tree_util.GetAttrKey):
            obj = getattr(obj, k.name)
        elif isinstance(k, jax.tree_util.SequenceKey):
            obj = obj[k.idx]
        else:
            raise AssertionError(f"unexpected key type {type(k).__name__} in {path}")
    return obj


@pytest.mark.parametrize("name", list(S.catalog()))
def test_every_tree_path_is_attribute_access(name):
    s = S.catalog()[name]
    leaves = jax.tree_util.tree_leaves_with_path(s)
    assert leaves
    for path, leaf in leaves:
        assert _resolve(s, path) is leaf, jax.tree_util.keystr(path)
        # keystr's text is a valid attribute/index expression on the schedule
        assert eval("s" + jax.tree_util.keystr(path), {"s": s}) is leaf  # noqa: S307


def test_combinator_paths_name_children():
    s = _warm()
    paths = [jax.tree_util.keystr(p) for p, _ in jax.tree_util.tree_leaves_with_path(s)]
    assert ".schedule.init_value" in paths and ".warmup_steps" in paths
    j = S.join([S.constant(value=1.0), S.constant(value=0.5)], boundaries=[5])
    assert float(j.schedules[1].value) == 0.5
    assert "[1].value" in jax.tree_util.keystr(jax.tree_util.tree_leaves_with_path(j)[1][0])


def test_schedules_are_immutable_and_edits_build_new_values():
    s = _warm()
    with pytest.raises(dataclasses.FrozenInstanceError):
        s.warmup_steps = 3.0
    t = s.replace(warmup_steps=20)
    assert float(s.warmup_steps) == 10.0 and float(t.warmup_steps) == 20.0
    # validated edit: the constructor's checks run again
    with pytest.raises(ValueError, match="warmup: warmup_steps must be >= 0"):
        s.replace(warmup_steps=-1)
    # dataclasses.replace runs the class too: float leaves
    u = dataclasses.replace(s, init_value=1)
    assert u.init_value.dtype == jnp.float32 and float(u(0)) == 1.0
    # reference: warmup from 0 to cosine(0)=1 over 10 steps, then cosine on local time
    assert float(t(10)) == pytest.approx(0.5, rel=1e-6)
    assert float(s(55)) == pytest.approx(0.5 * (1 + np.cos(np.pi * 45 / 90)), rel=1e-6)


def test_law_is_bound_to_the_class_and_called_once():
    s = S.constant(value=0.1)
    assert type(s).law is type(S.constant(value=0.2)).law
    assert type(s).__name__ == "Constant" and isinstance(s, S.Schedule)


def test_edits_of_leaves_never_recompile():
    @jax.jit
    @chex.assert_max_traces(n=1)
    def lr(schedule, t):
        return schedule(t)

    chex.clear_trace_counter()
    base = S.warmup_cosine(peak_value=1e-3, warmup_steps=100, total_steps=1000)
    values = [
        float(lr(base.replace(peak_value=p, warmup_steps=w), 50.0))
        for p, w in ((1e-3, 100), (3e-3, 50), (2e-3, 200))
    ]
    np.testing.assert_allclose(values, [1e-3 * 0.5, 3e-3, 2e-3 * 0.25], rtol=1e-6)


def test_stacked_schedules_vmap_like_a_loop():
    members = [
        S.warmup_cosine(peak_value=p, warmup_steps=w, total_steps=1000)
        for p, w in ((1e-3, 100), (3e-3, 10), (5e-4, 500))
    ]
    stacked = jax.tree.map(lambda *x: jnp.stack(x), *members)
    got = jax.vmap(lambda s: s(jnp.array([0.0, 60.0, 700.0])))(stacked)
    want = np.stack([np.asarray(m(jnp.array([0.0, 60.0, 700.0]))) for m in members])
    np.testing.assert_allclose(got, want, rtol=1e-6)


def test_placeholder_leaves_keep_structure():
    # vmap's in_axes and tree.map fill leaves with non-arrays: the structure must survive.
    s = S.clip(S.cosine(init_value=1.0, total_steps=10), min_value=0.1)  # max_value: None
    marks = jax.tree.map(lambda _: object(), s)  # JAX rebuilds nodes with placeholder leaves
    assert jax.tree.structure(marks) == jax.tree.structure(s)
    assert jax.tree.structure(jax.tree.map(lambda _: 0, s)) == jax.tree.structure(s)
    batched = jax.tree.map(lambda x: jnp.stack([x, x]), s)
    out = jax.vmap(lambda q: q(5.0), in_axes=(jax.tree.map(lambda _: 0, s),))(batched)
    np.testing.assert_allclose(out, [float(s(5.0))] * 2, rtol=1e-6)


def test_grad_flows_into_attributes_under_jit():
    def f(w):
        return S.warmup_cosine(peak_value=1.0, warmup_steps=w, total_steps=100)(5.0)

    # d/dW (5/W) = -5/W^2 at W = 10
    assert float(jax.jit(jax.grad(f))(10.0)) == pytest.approx(-0.05, rel=1e-5)


def test_jit_of_the_schedule_itself():
    s = S.constant(value=0.25)
    assert float(jax.jit(s)(3)) == 0.25
    assert float(functools.partial(jax.jit(lambda q, t: q(t)), s)(2.0)) == 0.25


def test_no_import_circles_in_the_schedules_package():
    """Module-level imports inside jaxlr.schedules form a DAG (configs and parsing above the
    families), and no function hides an import of the package to break a circle."""
    import ast
    import pathlib

    root = pathlib.Path(S.__file__).parent
    graph, hidden = {}, []
    for path in root.glob("*.py"):
        mod = f"jaxlr.schedules.{path.stem}" if path.stem != "__init__" else "jaxlr.schedules"
        tree = ast.parse(path.read_text())
        deps = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("jaxlr.sched"):
                target = node.module
                names = [f"{target}.{a.name}" for a in node.names]
                found = [n for n in names if (root / f"{n.rsplit('.', 1)[1]}.py").exists()]
                found = found if target == "jaxlr.schedules" else [target]
                if node in tree.body:
                    deps.update(found)
                else:
                    hidden.append((mod, target))
        graph[mod] = deps - {mod}
    assert not hidden, f"function-level imports inside jaxlr.schedules: {hidden}"
    state = {}

    def visit(m, trail):
        if state.get(m) == "done":
            return
        assert state.get(m) != "open", f"import circle: {' -> '.join([*trail, m])}"
        state[m] = "open"
        for d in graph.get(m, ()):
            visit(d, [*trail, m])
        state[m] = "done"

    for m in graph:
        visit(m, [])
    assert "jaxlr.schedules._core" in graph["jaxlr.schedules._config"]  # configs above the core


# -- user families: a subclass is a family like the built-in ones --------------------------------
class _HoldThenHalve(S.Schedule, name="test_hold_then_halve", counts=("hold_steps",)):
    """``value`` until ``hold_steps``, then ``value / 2`` (a user's family for the tests)."""

    value: float
    hold_steps: float = 10
    label: str = "plain"  # static: a string is structure

    def check(self, c):
        c.finite("value", self.value)
        c.nonnegative("hold_steps", self.hold_steps)

    def law(self, step):
        return jnp.where(S.steps.reached(step, self.hold_steps), 0.5 * self.value, self.value)


class _Halved(S.cosine, name="test_halved_cosine"):
    """A subclass of a built-in family: its fields and checks, another law."""

    def law(self, step):
        return 0.5 * super().law(step)


def _reference(value, hold, t):
    return np.where(np.asarray(t) >= hold, value / 2, value)


def test_a_user_family_is_a_family():
    s = _HoldThenHalve(value=2, hold_steps=3)
    t = np.array([0, 2, 3, 9])
    np.testing.assert_array_equal(s(jnp.asarray(t, jnp.int32)), _reference(2.0, 3, t))
    assert s.value.dtype == jnp.float32 and s.label == "plain"  # numbers are float leaves
    assert [jax.tree_util.keystr(p) for p, _ in jax.tree_util.tree_leaves_with_path(s)] == [
        ".value",
        ".hold_steps",
    ]
    assert "test_hold_then_halve" in S.names()
    assert S.constructor("test_hold_then_halve") is _HoldThenHalve
    # configs and text read back to an equal schedule (equality by value)
    assert S.from_config(json.dumps(S.to_config(s))) == s
    assert S.parse(repr(s)) == s and repr(s).startswith("test_hold_then_halve(value=2.0")
    assert pickle.loads(pickle.dumps(s)) == s
    assert s != s.replace(value=3.0) and s != _HoldThenHalve(value=2, hold_steps=3, label="x")
    assert hash(s) == hash(_HoldThenHalve(value=2.0, hold_steps=3.0))
    # construction checks: the family's own, then the shared ones (cast, scalar, count)
    with pytest.raises(ValueError, match="test_hold_then_halve: value must not be NaN"):
        _HoldThenHalve(value=float("nan"))
    with pytest.raises(ValueError, match="test_hold_then_halve: hold_steps must be >= 0"):
        s.replace(hold_steps=-1)
    with pytest.raises(ValueError, match="hold_steps=1073741825 is not a float32 number"):
        _HoldThenHalve(value=1.0, hold_steps=2**30 + 1)
    with pytest.raises(ValueError, match="value must be a scalar"):
        _HoldThenHalve(value=[1.0, 2.0])
    with pytest.raises(ValueError, match="value overflows float32"):
        _HoldThenHalve(value=1e39)
    with pytest.raises(TypeError, match=r"unexpected argument\(s\) \['lr'\]") as e:
        _HoldThenHalve(value=1.0, lr=0.1)
    # no peer hint naming an argument this family does not have (init_value is not one)
    assert "init_value" not in str(e.value) and "torch's name" not in str(e.value)
    with pytest.raises(dataclasses.FrozenInstanceError):
        s.value = 1.0


def test_a_user_family_sweeps_and_trains_like_a_built_in_one():
    members = [_HoldThenHalve(value=v, hold_steps=h) for v, h in ((1.0, 2), (4.0, 5))]
    stacked = jaxlr.sweep.stack(members)
    t = jnp.arange(8)
    got = jax.vmap(lambda s: s(t))(stacked)
    want = np.stack([_reference(1.0, 2, np.arange(8)), _reference(4.0, 5, np.arange(8))])
    np.testing.assert_array_equal(got, want)
    # gradients reach its leaves: d/dvalue of value / 2 after the hold
    assert float(jax.grad(lambda v: _HoldThenHalve(value=v, hold_steps=2)(7.0))(3.0)) == 0.5
    # and a transform takes it as state
    tx = jaxlr.transforms.scale_by_schedule(members[0])
    state = tx.init(jnp.zeros(1))
    seen = []
    for _ in range(4):
        u, state = tx.update(jnp.ones(1), state)
        seen.append(float(u[0]))
    assert seen == [1.0, 1.0, 0.5, 0.5]


def test_a_subclass_of_a_family_keeps_its_fields_and_checks():
    s = _Halved(init_value=1.0, total_steps=100)
    assert float(s(50)) == pytest.approx(0.25, rel=1e-6)  # half of (1 + cos(pi / 2)) / 2
    assert S.parse(repr(s)) == s and repr(s).startswith("test_halved_cosine(")
    assert s != S.cosine(init_value=1.0, total_steps=100)  # another class, another family
    with pytest.raises(ValueError, match="test_halved_cosine: total_steps must be >= 0"):
        _Halved(init_value=1.0, total_steps=-1)
    with pytest.raises(TypeError, match="argument 'exponent' is now 'power'"):
        _Halved(init_value=1.0, total_steps=10, exponent=2.0)


def test_a_class_without_a_name_is_no_config():
    class Unnamed(S.constant):
        pass

    u = Unnamed(value=1.0)
    assert float(u(3)) == 1.0 and u != S.constant(value=1.0)
    with pytest.raises(ValueError, match="Unnamed has no name of its own"):
        S.to_config(u)
    with pytest.raises(ValueError, match="already taken"):

        class Again(S.Schedule, name="cosine"):
            pass

    with pytest.raises(TypeError, match=r"\['name'\] name the class's own attributes"):

        class Named(S.Schedule, name="test_named_field"):
            name: str = "x"


def _with_init_only():
    from jaxlr.compat import torch as T
    from jaxlr.compat import transformers as H

    return {
        "wsd": S.wsd(peak_value=1.0, total_steps=100, warmup_steps=10, decay_fraction=0.2),
        "torch.OneCycleLR": T.OneCycleLR(max_lr=1.0, epochs=4, steps_per_epoch=25),
        "transformers.get_wsd_schedule": H.get_wsd_schedule(
            num_warmup_steps=3, num_decay_steps=5, num_training_steps=100, lr=1.0
        ),
    }


@pytest.mark.parametrize("name", sorted(_with_init_only()))
def test_dataclasses_replace_works_with_init_only_arguments(name):
    s = _with_init_only()[name]
    first = dataclasses.fields(s)[0].name
    value = np.asarray(getattr(s, first)) * 0.5
    got = dataclasses.replace(s, **{first: value})
    assert got == s.replace(**{first: value})
    assert dataclasses.replace(s) == s
    assert getattr(got, first) == np.float32(value)


class _InitOnlyUser(S.Schedule, name="test_init_only_user", counts=()):
    value: float = 0.0
    double: dataclasses.InitVar[float | None] = None

    def check(self, c, double):
        if double is not None:
            self._set("value", 2.0 * double)

    def law(self, step):
        return self.value + 0.0 * step


class _RequiredInitOnly(S.Schedule, name="test_required_init_only", counts=()):
    value: float = 0.0
    half: dataclasses.InitVar[float]

    def check(self, c, half):
        self._set("value", 2.0 * half)

    def law(self, step):
        return self.value + 0.0 * step


def test_dataclasses_replace_of_a_user_family_with_an_init_only_argument():
    s = _InitOnlyUser(double=1.5)
    assert float(s.value) == 3.0
    assert float(dataclasses.replace(s, value=1.0).value) == 1.0
    assert dataclasses.replace(s) == s
    assert float(dataclasses.replace(s, double=2.0).value) == 4.0
    # a required init-only argument has no value to carry: dataclasses says to pass it
    r = _RequiredInitOnly(half=1.0)
    with pytest.raises(ValueError, match="half"):
        dataclasses.replace(r, value=1.0)
    assert float(dataclasses.replace(r, half=2.0).value) == 4.0


@pytest.mark.parametrize(
    "field",
    ["to_config", "_arguments", "_static_fields", "_set", "replace", "hyperparameters", "law"],
)
def test_a_field_named_like_an_attribute_of_the_base_is_refused(field):
    ns = {"__annotations__": {field: "float"}, field: 1.0}
    with pytest.raises(TypeError, match=rf"\['{field}'\] name the class's own attributes"):
        type("Clash", (S.Schedule,), ns, name=f"test_clash_{field}")
    assert f"test_clash_{field}" not in S.names()


def test_every_attribute_of_the_base_is_reserved():
    # computed from the base's namespace: a new method of Schedule is reserved without a list
    for attr in [a for a in vars(S.Schedule) if not a.startswith("__")]:
        ns = {"__annotations__": {attr: "float"}, attr: 1.0}
        with pytest.raises(TypeError, match="name the class's own attributes"):
            type("Clash", (S.Schedule,), ns)


class _StaticUser(S.Schedule, name="test_static_fields", counts=("total_steps",)):
    """sum_{k < pieces} value * 0.5**k, flipped in sign by a required flag, times (1 + offset)."""

    value: float
    total_steps: float
    pieces: int = dataclasses.field(metadata={"static": True})
    negate: bool = dataclasses.field(metadata={"static": True})
    offset: bool | None = dataclasses.field(default=None, metadata={"static": True})

    def law(self, step):
        out = sum(self.value * 0.5**k for k in range(self.pieces))  # a Python int: a loop
        out = -out if self.negate else out
        if self.offset is not None:
            out = out * (2.0 if self.offset else 1.0)
        return jnp.where(jaxlr.schedules.steps.reached(step, self.total_steps), 0.0, out)


def _static_ref(value, pieces, negate, offset):
    out = sum(value * 0.5**k for k in range(pieces)) * (-1 if negate else 1)
    return out * (2.0 if offset else 1.0)


def test_declared_static_fields_are_structure_under_jit_vmap_stack_and_configs():
    a = _StaticUser(value=1.0, total_steps=10, pieces=3, negate=True)
    assert float(a(0)) == _static_ref(1.0, 3, True, None) and float(a(10)) == 0.0
    assert [jax.tree_util.keystr(p) for p, _ in jax.tree_util.tree_leaves_with_path(a)] == [
        ".value",
        ".total_steps",
    ]
    assert a.pieces == 3 and type(a.pieces) is int and a.negate is True and a.offset is None
    # jit: one trace across leaf values; a static change is another structure
    traces = []

    @jax.jit
    def f(s, t):
        traces.append(1)
        return s(t)

    assert float(f(a, 0)) == -1.75
    assert float(f(a.replace(value=2.0), 0)) == -3.5
    assert len(traces) == 1
    b = a.replace(pieces=2, offset=True)
    assert float(f(b, 0)) == _static_ref(1.0, 2, True, True)
    assert len(traces) == 2
    # stack and vmap members of one structure
    members = [a.replace(value=v) for v in (1.0, 2.0, 4.0)]
    stacked = jaxlr.sweep.stack(members)
    got = jax.vmap(lambda s: s(0))(stacked)
    np.testing.assert_allclose(got, [_static_ref(v, 3, True, None) for v in (1.0, 2.0, 4.0)])
    # configs, parse, pickle keep the static values as Python values
    for s in (a, b):
        back = S.from_config(json.loads(json.dumps(s.to_config())))
        assert back == s and type(back.pieces) is int and back.negate is s.negate
        assert S.parse(repr(s)) == s
        assert pickle.loads(pickle.dumps(s)) == s
    # grad flows into the leaves, not the static fields
    g = jax.grad(lambda s: s(0))(a)
    assert float(g.value) == -1.75 and g.pieces == 3


def test_a_declared_static_field_must_be_a_hashable_python_value():
    with pytest.raises(ValueError, match="test_static_fields: pieces is a static field"):
        _StaticUser(value=1.0, total_steps=10, pieces=jnp.asarray(3), negate=False)
    with pytest.raises(ValueError, match="pieces is a static field"):
        _StaticUser(value=1.0, total_steps=10, pieces=[3], negate=False)


class _RawUser(
    S.Schedule,
    name="test_raw_fields",
    counts=(),
    vectors=("data", "words"),
    raw={"data": None, "words": "uint32"},
):
    """value + 0 * step; ``data`` keeps its integer dtype, ``words`` is uint32."""

    value: float
    data: object = None
    words: object = None

    def law(self, step):
        return self.value + 0.0 * step


def test_raw_fields_keep_their_integer_dtype_through_configs_and_parse():
    big = 2**32 - 1  # float32 would round it to 2**32
    s = _RawUser(value=1.0, data=np.asarray([-3, 2**31 - 1], np.int32), words=[0, big, 7])
    assert s.data.dtype == jnp.int32 and s.data.tolist() == [-3, 2**31 - 1]
    assert s.words.dtype == jnp.uint32 and s.words.tolist() == [0, big, 7]
    for back in (S.from_config(json.loads(json.dumps(s.to_config()))), S.parse(repr(s))):
        assert back == s
        assert back.data.dtype == jnp.int32 and back.data.tolist() == [-3, 2**31 - 1]
        assert back.words.dtype == jnp.uint32 and back.words.tolist() == [0, big, 7]
    # a typed PRNG key is stored as its key data
    k = _RawUser(value=1.0, words=jax.random.key(3))
    assert k.words.dtype == jnp.uint32
    assert k.words.tolist() == jax.random.key_data(jax.random.key(3)).tolist()
    # Python ints without a declared dtype: int32, exactly
    p = _RawUser(value=1.0, data=[5, -6])
    assert p.data.dtype == jnp.int32 and p.data.tolist() == [5, -6]
    with pytest.raises(ValueError, match="test_raw_fields: words must hold integers that uint32"):
        _RawUser(value=1.0, words=[-1, 2])
    with pytest.raises(ValueError, match="data must hold integers that int32"):
        _RawUser(value=1.0, data=[2**31])


def test_noise_keeps_its_key_as_uint32_data():
    s = S.noise(S.constant(value=1.0), key=jax.random.key(0), begin_steps=0, end_steps=10)
    back = S.from_config(json.loads(json.dumps(s.to_config())))
    assert back == s and back.key.dtype == jnp.uint32 and S.parse(repr(s)) == s


def test_an_unnamed_subclass_of_a_family_is_not_that_family():
    class MyCosine(S.cosine):
        pass

    m = MyCosine(init_value=1.0, total_steps=10)
    assert m.name is None and S.cosine.name == "cosine"
    assert repr(m).startswith("MyCosine(init_value=1.0, total_steps=10.0")
    assert float(m(5)) == float(S.cosine(init_value=1.0, total_steps=10)(5))
    with pytest.raises(ValueError, match="MyCosine has no name of its own"):
        m.to_config()
    with pytest.raises(ValueError, match="MyCosine"):
        S.parse(repr(m))
    with pytest.raises(ValueError, match="MyCosine: total_steps must be >= 0"):
        MyCosine(init_value=1.0, total_steps=-1)


_RERUN = """
import jaxlr

class Rerun(jaxlr.schedules.Schedule, name="test_rerun_family", counts=()):
    value: float

    def law(self, step):
        return VERSION * self.value + 0.0 * jaxlr.schedules.steps.to_float(step)
"""


def test_running_a_class_statement_again_replaces_its_registration(monkeypatch):
    import sys
    import types

    module = types.ModuleType("test_rerun_module")
    monkeypatch.setitem(sys.modules, "test_rerun_module", module)
    for version in (1.0, 2.0):  # a notebook cell run twice, importlib.reload
        module.VERSION = version
        exec(_RERUN, module.__dict__)
        cls = module.Rerun
        assert S.constructor("test_rerun_family") is cls
        s = S.from_config({"name": "test_rerun_family", "args": {"value": 1.0}})
        assert type(s) is cls and float(s(0)) == version
    # another class (another module or qualname) may not take the name
    with pytest.raises(ValueError, match="already taken by test_rerun_module.Rerun"):

        class Rerun(S.Schedule, name="test_rerun_family", counts=()):
            value: float

    assert S.constructor("test_rerun_family") is module.Rerun


class _PeerNamed(S.Schedule, name="test_peer_named", counts=("total_steps",)):
    init_value: float
    total_steps: float

    def law(self, step):
        return self.init_value + 0.0 * jaxlr.schedules.steps.to_float(step)


def test_peer_hints_name_only_arguments_the_family_has():
    # a user family with total_steps: the hint for torch's T_max names it
    with pytest.raises(TypeError, match="T_max is torch's name; jaxlr calls it total_steps"):
        _PeerNamed(init_value=0.1, T_max=10)
    # a sentence about built-in families (lr) is not given for a user family
    with pytest.raises(TypeError) as e:
        _PeerNamed(lr=0.1, total_steps=10)
    assert "'s name" not in str(e.value)
    # a user family without it: no hint, and no sentence about built-in families
    for bad in ("lr", "alpha", "T_max"):
        with pytest.raises(TypeError) as e:
            _HoldThenHalve(value=1.0, **{bad: 0.1})
        assert "'s name" not in str(e.value), (bad, str(e.value))
    # a built-in family without the named argument: no hint pointing at it
    with pytest.raises(TypeError) as e:
        S.constant(value=1.0, T_max=10)
    assert "total_steps" not in str(e.value)
    with pytest.raises(TypeError, match="T_max is torch's name; jaxlr calls it total_steps"):
        S.cosine(init_value=1.0, T_max=10)


def test_stacked_schedules_show_their_shape_and_have_no_config():
    members = [S.piecewise_interpolate(boundaries=[0, 10], values=[v, v / 2]) for v in (1.0, 2.0)]
    stacked = jaxlr.sweep.stack(members)
    assert np.shape(stacked.values) == (2, 2)
    assert "values=[[1.0, 0.5], [2.0, 1.0]]" in repr(stacked)
    with pytest.raises(ValueError, match=r"boundaries has shape \(2, 2\).*stacked schedule"):
        stacked.to_config()
    scalars = jaxlr.sweep.stack([S.constant(value=v) for v in (0.1, 0.2)])
    assert repr(scalars) == "constant(value=[0.1, 0.2])"
    with pytest.raises(ValueError, match=r"value has shape \(2,\).*stacked schedule"):
        S.to_config(scalars)
    # each member still round-trips
    for i, m in enumerate(members):
        one = jax.tree.map(lambda x: x[i], stacked)
        assert S.from_config(one.to_config()) == m
