"""jaxlr.sweep.Population: step-driven members equal independent runs; divergence is isolated."""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxlr
from jaxlr.sweep import Population

D, N, T = 3, 16, 12
W_TRUE = np.array([1.0, -2.0, 0.5])


def batches(steps=T, seed=0, k=None):
    """A NumPy iterator of regression batches (shared, or one per member with ``k``)."""
    rng = np.random.default_rng(seed)
    for _ in range(steps):
        shape = (N, D) if k is None else (k, N, D)
        x = rng.normal(size=shape).astype(np.float32)
        yield {"x": x, "y": (x @ W_TRUE).astype(np.float32)}


def init_fn(cfg, key):
    return {"w": 0.1 * jax.random.normal(key, (D,)), "m": jnp.zeros(D)}


def step_fn(state, cfg, batch):
    """Heavy-ball SGD on the mean squared error of a linear model."""
    err = batch["x"] @ state["w"] - batch["y"]
    g = 2.0 * batch["x"].T @ err / N
    m = cfg["momentum"] * state["m"] + g
    return {"w": state["w"] - cfg["lr"] * m, "m": m}, {"loss": jnp.mean(err**2), "lr": cfg["lr"]}


def numpy_member(w0, lr, momentum, data, dtype=np.float64):
    """The independent reference: the same recursion in NumPy (float64, or float32 to see the
    same overflow as the float32 population)."""
    w, m, losses, ws = np.asarray(w0, dtype), np.zeros(D, dtype), [], []
    lr, momentum = dtype(lr), dtype(momentum)
    for b in data:
        err = b["x"] @ w - b["y"]
        losses.append(np.mean(err**2))
        m = momentum * m + 2.0 * b["x"].T @ err / N
        w = w - lr * m
        ws.append(w)
    return np.array(losses), np.array(ws)


CONFIGS = jaxlr.sweep.grid(lr=[0.01, 0.05, 0.2], momentum=[0.0, 0.9])
KEY = jax.random.key(7)


def w0s(k):
    keys = jax.random.split(KEY, k + 1)[1:]
    return [np.asarray(init_fn(None, kk)["w"]) for kk in keys]


@pytest.fixture(scope="module")
def trained():
    pop = Population(init_fn, step_fn, CONFIGS, key=KEY, progress=False)
    return pop.train(batches(), T, steps_per_call=5)


def test_population_equals_independent_numpy_runs(trained):
    res = trained.result()
    data = list(batches())
    state = trained.host_carry().state
    for i, w0 in enumerate(w0s(6)):
        losses, ws = numpy_member(w0, float(CONFIGS["lr"][i]), float(CONFIGS["momentum"][i]), data)
        np.testing.assert_allclose(res.metrics["loss"][i], losses, rtol=1e-4, atol=1e-6)
        np.testing.assert_allclose(state["w"][i], ws[-1], rtol=1e-4, atol=1e-6)
    assert res.metrics["loss"].shape == (6, T) and res.member_steps == 6 * T
    assert not res.diverged.any() and res.info["steps"] == T


@pytest.mark.parametrize("kwargs", [dict(steps_per_call=1), dict(steps_per_call=T)])
def test_steps_per_call_and_chunks_do_not_change_the_numbers(trained, kwargs):
    ref = trained.result().metrics["loss"]
    pop = Population(init_fn, step_fn, CONFIGS, key=KEY, chunk_size=4, progress=False)
    res = pop.train(batches(), T, **kwargs).result()
    assert res.info["num_chunks"] == 2 and res.info["padded"] == 2
    np.testing.assert_allclose(res.metrics["loss"], ref, rtol=1e-6)


def test_member_batches_feed_each_member_its_own_batch():
    k = 6
    pop = Population(init_fn, step_fn, CONFIGS, key=KEY, member_batches=True, progress=False)
    res = pop.train(batches(k=k, seed=3), T, steps_per_call=4).result()
    data = list(batches(k=k, seed=3))
    for i, w0 in enumerate(w0s(k)):
        own = [{n: b[n][i] for n in b} for b in data]
        losses, _ = numpy_member(w0, float(CONFIGS["lr"][i]), float(CONFIGS["momentum"][i]), own)
        np.testing.assert_allclose(res.metrics["loss"][i], losses, rtol=1e-4, atol=1e-6)


def test_a_nan_member_is_frozen_and_the_others_are_unaffected(trained):
    cfg = jaxlr.sweep.zip(lr=[0.05, 1e18, 0.2], momentum=[0.0, 0.9, 0.9])
    pop = Population(init_fn, step_fn, cfg, key=KEY, progress=False)
    res = pop.train(batches(), T, steps_per_call=4).result()
    data = list(batches())
    w0 = w0s(3)
    with np.errstate(all="ignore"):
        ref_losses, ref_ws = numpy_member(w0[1], 1e18, 0.9, data, np.float32)
        bad = ~(np.isfinite(ref_ws).all(1) & np.isfinite(ref_losses))
    first = int(np.argmax(bad))
    assert res.diverged.tolist() == [False, True, False]
    assert res.diverged_step.tolist() == [-1, first, -1]
    # Frozen at its last healthy state; its metrics after the bad step are NaN.
    state = pop.host_carry().state
    np.testing.assert_allclose(state["w"][1], ref_ws[first - 1] if first else w0[1], rtol=1e-4)
    assert np.isnan(res.metrics["loss"][1, first + 1 :]).all()
    for i in (0, 2):
        losses, ws = numpy_member(w0[i], float(cfg["lr"][i]), float(cfg["momentum"][i]), data)
        np.testing.assert_allclose(res.metrics["loss"][i], losses, rtol=1e-4, atol=1e-6)
        assert np.isfinite(state["w"][i]).all()
    assert res.best("loss")["index"] == 0


def test_the_step_compiles_once_across_calls():
    traces = []

    def counted(state, cfg, batch):
        traces.append(1)
        return step_fn(state, cfg, batch)

    pop = Population(init_fn, counted, CONFIGS, key=KEY, progress=False)
    it = batches(steps=3 * 4)
    for _ in range(3):
        pop.train(it, 4, steps_per_call=2)
    assert len(traces) == 1 and pop.steps_done == 12


def _changing(it, at, change):
    """Batches from ``it``, with ``change`` applied from batch ``at`` on."""
    for i, b in enumerate(it):
        yield change(b) if i >= at else b


@pytest.mark.parametrize(
    "make, match",
    [
        (
            lambda: Population(init_fn, step_fn, CONFIGS, key=0),
            r"Population: key must be a PRNG key",
        ),
        (
            lambda: Population(init_fn, None, CONFIGS, key=KEY),
            r"Population: step_fn must be callable",
        ),
        (
            lambda: Population(init_fn, step_fn, CONFIGS, key=KEY, chunk_size=0),
            r"Population: chunk_size must be >= 1",
        ),
        (
            lambda: Population(
                init_fn, step_fn, CONFIGS, key=KEY, member_batches=True, progress=False
            ).train(batches(k=5), 2),
            r"Population.train: batches must have a leading member axis of K=6 with "
            r"member_batches=True, got batch 0's batch\['x'\] of shape \(5, 16, 3\)",
        ),
        (  # the member axis changes after the first batch
            lambda: Population(
                init_fn, step_fn, CONFIGS, key=KEY, member_batches=True, progress=False
            ).train(_changing(batches(k=6), 2, lambda b: {n: v[:5] for n, v in b.items()}), 4),
            r"Population.train: batches must have a leading member axis of K=6 .* got batch 2's "
            r"batch\['x'\] of shape \(5, 16, 3\)",
        ),
        (  # a bare array is named as the batch, not as a configuration
            lambda: Population(
                init_fn, step_fn, CONFIGS, key=KEY, member_batches=True, progress=False
            ).train((np.zeros((5, 3), np.float32) for _ in range(2)), 2),
            r"got batch 0's batch of shape \(5, 3\)",
        ),
        (  # the shape changes inside one compiled call of two steps
            lambda: Population(init_fn, step_fn, CONFIGS, key=KEY, progress=False).train(
                _changing(batches(), 1, lambda b: {n: v[:15] for n, v in b.items()}),
                4,
                steps_per_call=2,
            ),
            r"Population.train: the batches of one compiled call \(steps_per_call steps\) must "
            r"share their structure and shapes, got batch 1 with batch\['x'\] of shape "
            r"\(15, 3\), where batch 0 had \(16, 3\)",
        ),
        (
            lambda: Population(
                init_fn,
                lambda s, c, b: ({"w": step_fn(s, c, b)[0]["w"]}, {"loss": s["w"][0]}),
                CONFIGS,
                key=KEY,
                progress=False,
            ).train(batches(), 2),
            r"Population: step_fn must return a state of the structure init_fn gave",
        ),
        (
            lambda: Population(
                init_fn,
                lambda s, c, b: ({**s, "m": jnp.zeros(D + 1)}, {"loss": s["w"][0]}),
                CONFIGS,
                key=KEY,
                progress=False,
            ).train(batches(), 2),
            r"Population: step_fn must keep each state leaf's shape and dtype, got "
            r"state\['m'\]: float32\[4\] for float32\[3\]",
        ),
        (
            lambda: Population(init_fn, step_fn, CONFIGS, key=KEY, progress=False).train(
                batches(), 0
            ),
            r"Population.train: num_steps must be an int >= 1",
        ),
        (
            lambda: Population(init_fn, step_fn, CONFIGS, key=KEY, progress=False).train(
                batches(), 2, steps_per_call=0
            ),
            r"Population.train: steps_per_call must be an int >= 1",
        ),
        (
            lambda: Population(init_fn, step_fn, CONFIGS, key=KEY, progress=False).train(
                batches(steps=2), 3
            ),
            r"Population.train: batches ran out after 2 of num_steps=3",
        ),
        (
            lambda: Population(
                init_fn, step_fn, CONFIGS, key=KEY, loss="val", progress=False
            ).train(batches(), 2),
            r"Population: step_fn's metrics need a 'val' entry",
        ),
    ],
)
def test_population_rejects_bad_input(make, match):
    with pytest.raises(ValueError, match=match):
        make()


def test_select_copies_members_with_their_history_and_keeps_the_compiled_step():
    """``select([4, 1, 1])``: member 4 and two copies of member 1 continue exactly as their
    uninterrupted NumPy runs, with the metrics so far, in the program compiled for chunks of 3
    (6 members in 2 chunks, then 3 in 1: one trace)."""
    traces = []

    def counted(state, cfg, batch):
        traces.append(1)
        return step_fn(state, cfg, batch)

    pop = Population(init_fn, counted, CONFIGS, key=KEY, chunk_size=3, progress=False)
    data = batches()
    pop.train(data, 4, steps_per_call=2).select([4, 1, 1]).train(data, T - 4, steps_per_call=2)
    res = pop.result()
    ref = list(batches())
    w0 = w0s(6)
    for j, i in enumerate([4, 1, 1]):
        losses, ws = numpy_member(
            w0[i], float(CONFIGS["lr"][i]), float(CONFIGS["momentum"][i]), ref
        )
        np.testing.assert_allclose(res.metrics["loss"][j], losses, rtol=1e-4, atol=1e-6)
        np.testing.assert_allclose(pop.host_carry().state["w"][j], ws[-1], rtol=1e-4, atol=1e-6)
    assert res.hyperparameters["lr"].tolist() == np.asarray(CONFIGS["lr"])[[4, 1, 1]].tolist()
    assert len(traces) == 1 and pop.num_chunks == 1


@pytest.mark.parametrize("indices", [[], [6], [-1], [0.5], [[0, 1]]])
def test_select_rejects_bad_indices(trained, indices):
    with pytest.raises(ValueError, match=r"Population.select: indices must be a non-empty list"):
        trained.select(indices)


# -- review of the shared compile cache: identity, not equality ---------------------------------
class _Scaled:
    """A step function as a bound method whose behaviour depends on an attribute."""

    def __init__(self, a):
        self.a = a

    def step(self, state, cfg, batch):
        state, m = step_fn(state, cfg, batch)
        return state, {"loss": m["loss"] * self.a}

    def __eq__(self, other):  # every instance equal: the cache must not go by equality
        return isinstance(other, _Scaled)

    def __hash__(self):
        return 0


def _loss_of(fn):
    pop = Population(init_fn, fn, CONFIGS, key=KEY, progress=False)
    return pop.train(batches(steps=1), 1).result().metrics["loss"]


def test_the_compile_cache_never_serves_another_objects_or_values_program():
    o = _Scaled(1.0)
    a = _loss_of(o.step)
    o.a = 4.0  # a new attribute value: a new program, not the one traced with a = 1
    np.testing.assert_allclose(_loss_of(o.step), 4.0 * a, rtol=1e-6)
    p = _Scaled(2.0)  # equal to o, another object
    np.testing.assert_allclose(_loss_of(p.step), 2.0 * a, rtol=1e-6)
    q = _Scaled(2.0)
    pop = Population(init_fn, q.step, CONFIGS, key=KEY, progress=False)
    pop.train(batches(steps=1), 1)
    pop2 = Population(init_fn, q.step, CONFIGS, key=KEY, progress=False).train(batches(steps=1), 1)
    assert pop2.compile_seconds == 0.0  # the same object, unchanged: the program is reused


def test_policies_the_cache_cannot_key_by_value_are_refused():
    import dataclasses

    class NotADataclass(jaxlr.sweep.Policy):
        def __init__(self, s):
            object.__setattr__(self, "s", s)

    @dataclasses.dataclass(frozen=True)
    class Hidden(jaxlr.sweep.Policy):
        s: float = dataclasses.field(default=1.0, compare=False)

    @dataclasses.dataclass(frozen=True)
    class Unhashable(jaxlr.sweep.Policy):
        f: object = None

    for policy, match in (
        (NotADataclass(0.0), r"policy must be an instance of a frozen dataclass"),
        (Hidden(), r"compare=False fields \['s'\]"),
        (Unhashable(np.ones(2)), r"policy must be hashable"),
    ):
        with pytest.raises(ValueError, match=match):
            Population(init_fn, step_fn, CONFIGS, key=KEY, progress=False, policy=policy)


def test_a_policys_memory_moves_with_its_members_and_survives_a_checkpoint(tmp_path):
    import dataclasses

    @dataclasses.dataclass(frozen=True)
    class Spent(jaxlr.sweep.Policy):  # each member's LR summed, in the policy's own memory
        def memory(self, k):
            return {"spent": np.zeros(k)}  # float64, NumPy's default: held as float32

        def between(self, carry, metrics):
            spent = carry.memory["spent"] + carry.config["lr"]
            return carry._replace(memory={"spent": spent}), {}

    def step(w, cfg, b):
        return w + cfg["lr"], {"loss": w}

    lrs = np.array([1.0, 2.0, 3.0], np.float32)

    def pop(**kw):
        return Population(
            lambda cfg, key: jnp.zeros(()), step, {"lr": lrs}, key=KEY, progress=False,
            policy=Spent(), chunk_size=2, **kw,
        )  # fmt: skip

    p = pop().train((0.0 for _ in range(3)), 3)
    np.testing.assert_array_equal(p.host_carry().memory["spent"], 3 * lrs)
    p.select([2, 0]).train((0.0 for _ in range(2)), 2)
    np.testing.assert_array_equal(p.host_carry().memory["spent"], 5 * lrs[[2, 0]])
    # saved and restored with the members (one checkpoint at step 3 of 4, then resumed)
    d = str(tmp_path / "c")
    pop().train((0.0 for _ in range(3)), 3, checkpoint_dir=d, checkpoint_every=3)
    q = pop().train((0.0 for _ in range(4)), 4, checkpoint_dir=d, checkpoint_every=3)
    assert q.steps_done == 4
    np.testing.assert_array_equal(q.host_carry().memory["spent"], 4 * lrs)


# -- eval_every: a validation metric every k steps, the latest one reported in between ----------
XV_E = np.random.default_rng(11).normal(size=(32, D)).astype(np.float32)
YV_E = (XV_E @ W_TRUE).astype(np.float32)


def test_eval_every_computes_the_validation_every_k_steps_and_reports_the_latest():
    evaluated = []  # the steps at which eval_fn ran (host callback: once per evaluation)

    def eval_fn(state, cfg):
        return {"val": jnp.mean((XV_E @ state["w"] - YV_E) ** 2)}

    def counted(state, cfg):
        jax.debug.callback(lambda: evaluated.append(1))
        return eval_fn(state, cfg)

    steps, every = 10, 4
    pop = Population(
        init_fn, step_fn, CONFIGS, key=KEY, progress=False, eval_fn=counted, eval_every=every
    )
    res = pop.train(batches(steps=steps), steps, steps_per_call=5).result()
    due = [t for t in range(steps) if t == 0 or (t + 1) % every == 0]  # after steps 0, 3, 7
    assert due == [0, 3, 7]
    # the other steps skip the evaluation (one callback per evaluation, vmapped over members)
    assert len(evaluated) == len(due)
    data = list(batches(steps=steps))
    for i, w0 in enumerate(w0s(6)):
        _, ws = numpy_member(w0, float(CONFIGS["lr"][i]), float(CONFIGS["momentum"][i]), data)
        val = np.mean((ws @ XV_E.T - YV_E) ** 2, axis=1)  # [T]: after each step
        latest = [val[max(d for d in due if d <= t)] for t in range(steps)]
        np.testing.assert_allclose(res.metrics["val"][i], latest, rtol=1e-4, atol=1e-7)
    assert res.default_metric == "loss" and res.best("val")["index"] == int(
        np.argmin(res.metrics["val"][:, -1])
    )


def test_eval_every_bad_input():
    eval_fn = lambda s, c: {"val": jnp.sum(s["w"])}  # noqa: E731
    for kwargs, match in [
        (dict(eval_fn=eval_fn, eval_every=0), r"Population: eval_every must be an int >= 1"),
        (dict(eval_every=3), r"Population: eval_every=3 needs an eval_fn"),
        (dict(eval_fn=3), r"Population: eval_fn must be callable or None, got eval_fn=3"),
    ]:
        with pytest.raises(ValueError, match=match):
            Population(init_fn, step_fn, CONFIGS, key=KEY, progress=False, **kwargs)
    clash = lambda s, c: {"loss": jnp.sum(s["w"])}  # noqa: E731
    pop = Population(init_fn, step_fn, CONFIGS, key=KEY, progress=False, eval_fn=clash)
    with pytest.raises(ValueError, match=r"whose names differ from eval_fn's \['loss'\]"):
        pop.train(batches(steps=1), 1)


@dataclasses.dataclass(frozen=True)
class _Draw(jaxlr.sweep.Policy):  # records a draw from the population's key every step
    def between(self, carry, metrics):
        key, sub = jax.random.split(carry.key)
        data = jax.random.key_data(sub)  # extra outputs are per member: one copy each
        return carry._replace(key=key), {"draw": jnp.broadcast_to(data, (2, *data.shape))}


def _step_draw(w, cfg, b):
    return w + cfg["lr"], {"loss": w}


def test_the_population_key_keeps_its_generator_inside_the_compiled_step():
    # one step function and policy for every generator: rbg and unsafe_rbg keys have the same
    # shape, so the compiled program must be told apart by the generator, not the shape
    for impl in ["threefry2x32", "rbg", "unsafe_rbg", "rbg"]:
        key = jax.random.key(7, impl=impl)
        pop = Population(lambda cfg, k: jnp.zeros(()), _step_draw,
                         {"lr": np.ones(2, np.float32)}, key=key, progress=False,
                         policy=_Draw())  # fmt: skip
        draws = pop.train((0.0 for _ in range(2)), 2).host_metrics()[1]["draw"]
        k = jax.random.split(key, 3)[0]  # the population's own key
        for t in range(2):
            k, sub = jax.random.split(k)
            np.testing.assert_array_equal(draws[t, 1], jax.random.key_data(sub), err_msg=impl)


def test_policy_memory_without_a_member_axis_is_refused_when_built():
    import dataclasses

    @dataclasses.dataclass(frozen=True)
    class Counter(jaxlr.sweep.Policy):
        def memory(self, k):
            return {"rounds": np.zeros((), np.int32)}

    with pytest.raises(
        ValueError,
        match=r"^Population: policy.memory\(k\) must return arrays with a leading member axis "
        r"of k=6, got memory\['rounds'\] of shape \(\)",
    ):
        Population(init_fn, step_fn, CONFIGS, key=KEY, progress=False, policy=Counter())
