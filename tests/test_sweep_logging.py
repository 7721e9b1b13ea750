"""MetricsLogger: JSON lines and TensorBoard event files, read back; the LR-logging hook."""

from __future__ import annotations

import json
import struct
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import jaxlr

pytest.importorskip("tensorboardX")
from tensorboardX.proto import event_pb2  # noqa: E402  (protobuf classes only: no reader)

T = 8
PEAKS = np.array([0.05, 0.2, 0.4])


# -- an independent reader of TensorBoard event files (TFRecord framing, CRC32C checked) ---------


def _crc32c_table():
    table = []
    for n in range(256):
        c = n
        for _ in range(8):
            c = (c >> 1) ^ 0x82F63B78 if c & 1 else c >> 1
        table.append(c)
    return table


_TABLE = _crc32c_table()


def crc32c(data: bytes) -> int:
    c = 0xFFFFFFFF
    for b in data:
        c = _TABLE[(c ^ b) & 0xFF] ^ (c >> 8)
    return c ^ 0xFFFFFFFF


def masked(data: bytes) -> int:
    c = crc32c(data)
    return (((c >> 15) | (c << 17)) + 0xA282EAD8) & 0xFFFFFFFF


def read_events(run_dir: Path) -> dict[str, list[tuple[int, float]]]:
    """tag -> [(step, value)] from every event file of one TensorBoard run folder."""
    out: dict[str, list[tuple[int, float]]] = {}
    files = sorted(Path(run_dir).glob("events.out.tfevents.*"))
    assert files, f"no event file in {run_dir}"
    for f in files:
        data, i = f.read_bytes(), 0
        while i < len(data):
            header = data[i : i + 8]
            (n,) = struct.unpack("<Q", header)
            assert struct.unpack("<I", data[i + 8 : i + 12])[0] == masked(header)
            record = data[i + 12 : i + 12 + n]
            assert struct.unpack("<I", data[i + 12 + n : i + 16 + n])[0] == masked(record)
            i += 16 + n
            event = event_pb2.Event.FromString(record)
            for v in event.summary.value:
                out.setdefault(v.tag, []).append((event.step, v.simple_value))
    return out


def test_crc32c_reference_vector():
    assert crc32c(b"123456789") == 0xE3069283  # the CRC-32C check value (RFC 3720)


# -- helpers -------------------------------------------------------------------------------------


def warmup_cosine_np(t, peak, warmup=3.0, total=T):
    if t < warmup:
        return peak * t / warmup
    return 0.5 * peak * (1 + np.cos(np.pi * min(1.0, (t - warmup) / (total - warmup))))


def train_fn(cfg):
    s = jaxlr.schedules.warmup_cosine(peak_value=cfg["peak_value"], warmup_steps=3.0, total_steps=T)

    def step(w, t):
        lr = s(t)
        return w - lr * 2.0 * (w - 3.0), ((w - 3.0) ** 2, lr)

    _, (loss, lr) = jax.lax.scan(step, 0.0, jnp.arange(T))
    return {"loss": loss, "lr": lr, "final": jnp.abs(cfg["peak_value"])}


def numpy_loss(peak):
    w, out = 0.0, []
    for t in range(T):
        out.append((w - 3.0) ** 2)
        w = w - warmup_cosine_np(t, peak) * 2.0 * (w - 3.0)
    return np.array(out)


def jsonl(logger):
    return [json.loads(x) for x in logger.jsonl_path.read_text().splitlines()]


# -- tests ---------------------------------------------------------------------------------------


def test_sweep_result_to_events_and_json_lines(tmp_path):
    res = jaxlr.sweep.run(train_fn, jaxlr.sweep.grid(peak_value=PEAKS), progress=False)
    with jaxlr.sweep.MetricsLogger(tmp_path / "tb") as log:
        log.log_result(res)
    for i, peak in enumerate(PEAKS):
        ev = read_events(tmp_path / "tb" / f"member_{i}")
        assert [s for s, _ in ev["loss"]] == list(range(T))
        np.testing.assert_allclose([v for _, v in ev["loss"]], numpy_loss(peak), rtol=1e-5)
        np.testing.assert_allclose(
            [v for _, v in ev["lr"]],
            [warmup_cosine_np(t, peak) for t in range(T)],
            rtol=1e-5,
            atol=1e-8,
        )
        assert ev["final"] == [(T - 1, pytest.approx(peak, rel=1e-6))]
    lines = jsonl(log)
    assert len(lines) == len(PEAKS) * T
    for line in lines:
        i = int(line["member"].split("_")[1])
        assert line["peak_value"] == pytest.approx(PEAKS[i])
        assert line["loss"] == pytest.approx(numpy_loss(PEAKS[i])[line["step"]], rel=1e-5)
        assert ("final" in line) == (line["step"] == T - 1) and line["diverged"] is False


@pytest.mark.parametrize("kind", ["chain", "inject", "adam_chain"])
def test_lr_hook_logs_the_lr_actually_applied(tmp_path, kind):
    """Inside jit, after each update: the logged LR is the schedule at that step (NumPy) and the
    LR the update applied (-update / gradient for SGD). ``adam_chain`` is the README's chain,
    Adam at a unit LR, which ``optimizer_lr=1.0`` declares."""
    peak = 0.3
    s = jaxlr.schedules.warmup_cosine(peak_value=peak, warmup_steps=3.0, total_steps=T)
    if kind == "inject":
        tx = optax.inject_hyperparams(optax.sgd)(learning_rate=s)
    elif kind == "chain":
        tx = optax.chain(optax.sgd(1.0), jaxlr.transforms.scale_by_schedule(s))
    else:
        tx = optax.chain(optax.adam(1.0), jaxlr.transforms.scale_by_schedule(s))
    log = jaxlr.sweep.MetricsLogger(tmp_path)
    optimizer_lr = 1.0 if kind == "adam_chain" else None

    @jax.jit
    def train_step(w, state, t):
        g = 2.0 * (w - 3.0)
        u, state = tx.update(g, state)
        log.log_lr(t, state, optimizer_lr=optimizer_lr)
        return w + u, state, -u / g

    w, state, applied = jnp.asarray(0.0), tx.init(jnp.asarray(0.0)), []
    for t in range(T):
        w, state, a = train_step(w, state, t)
        applied.append(float(a))
    jax.effects_barrier()
    log.close()
    expected = [warmup_cosine_np(t, peak) for t in range(T)]
    ev = sorted(read_events(tmp_path / "run")["learning_rate"])
    assert [st for st, _ in ev] == list(range(T))
    np.testing.assert_allclose([v for _, v in ev], expected, rtol=1e-5, atol=1e-8)
    if kind != "adam_chain":  # Adam's update is not lr * g
        np.testing.assert_allclose([v for _, v in ev][1:], applied[1:], rtol=1e-4)
    lines = sorted(jsonl(log), key=lambda x: x["step"])
    np.testing.assert_allclose([x["learning_rate"] for x in lines], expected, rtol=1e-5, atol=1e-8)


def test_lr_hook_every_n_and_per_member(tmp_path):
    """A population's optimizer states (leading axis K): one logged LR per member."""
    peaks = np.array([0.1, 0.2])
    tx = optax.inject_hyperparams(optax.sgd)(learning_rate=1.0)
    states = jax.vmap(lambda _: tx.init(jnp.zeros(())))(jnp.arange(2))
    states.hyperparams["learning_rate"] = jnp.asarray(peaks)  # each member's own LR
    log = jaxlr.sweep.MetricsLogger(tmp_path, tensorboard=False)
    step_fn = jax.jit(jax.vmap(lambda s: tx.update(jnp.ones(()), s)))
    for t in range(5):
        u, states = step_fn(states)
        np.testing.assert_allclose(-u, peaks, rtol=1e-6)  # the LR the updates applied
        log.log_lr(t, states, every=2, members=["a", "b"])
    log.close()
    lines = jsonl(log)
    assert [(x["member"], x["step"]) for x in lines] == [
        ("a", 0),
        ("b", 0),
        ("a", 2),
        ("b", 2),
        ("a", 4),
        ("b", 4),
    ]
    assert [x["learning_rate"] for x in lines] == pytest.approx([0.1, 0.2] * 3)


def test_population_metrics_per_member_and_nan(tmp_path):
    with jaxlr.sweep.MetricsLogger(tmp_path) as log:
        for t in range(3):
            log.log(
                t,
                {"loss": np.array([1.0 / (t + 1), np.nan]), "lr": np.array([0.1, 0.2])},
                members=["m0", "m1"],
            )
    assert read_events(tmp_path / "m0")["loss"] == [(0, 1.0), (1, 0.5), (2, pytest.approx(1 / 3))]
    assert [v for _, v in read_events(tmp_path / "m1")["lr"]] == pytest.approx([0.2] * 3)
    lines = jsonl(log)
    assert [x["loss"] for x in lines if x["member"] == "m1"] == [None] * 3  # JSON has no NaN
    with pytest.raises(ValueError, match=r"MetricsLogger.log: members must name the 2 members"):
        jaxlr.sweep.MetricsLogger(tmp_path, tensorboard=False).log(
            0, {"loss": np.zeros(2)}, members=["x"]
        )
    with pytest.raises(ValueError, match=r"scalars or \[K\] arrays of one K"):
        jaxlr.sweep.MetricsLogger(tmp_path, tensorboard=False).log(
            0, {"a": np.zeros(2), "b": np.zeros(3)}
        )


def test_optuna_search_logs_each_trial(tmp_path):
    optuna = pytest.importorskip("optuna")
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    with jaxlr.sweep.MetricsLogger(tmp_path) as log:
        study = jaxlr.sweep.optuna_search(
            train_fn,
            {"peak_value": ("log_uniform", 0.01, 0.5)},
            num_trials=3,
            batch_size=2,
            sampler=optuna.samplers.RandomSampler(seed=0),
            logger=log,
        )
    for trial in study.trials:
        ev = read_events(tmp_path / f"trial_{trial.number}")
        np.testing.assert_allclose(
            [v for _, v in ev["loss"]], numpy_loss(trial.params["peak_value"]), rtol=1e-5
        )
    assert {x["member"] for x in jsonl(log)} == {"trial_0", "trial_1", "trial_2"}


def test_unwritable_directory_and_missing_extra(tmp_path, monkeypatch):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    with pytest.raises(
        ValueError,
        match=r"MetricsLogger: log_dir cannot be written, got "
        r"log_dir='.*a-file/tb'",
    ):
        jaxlr.sweep.MetricsLogger(blocker / "tb")
    with pytest.raises(ValueError, match=r"log_lr: every must be an int >= 1, got every=0"):
        jaxlr.sweep.MetricsLogger(tmp_path, tensorboard=False).log_lr(0, (), every=0)
    monkeypatch.setitem(sys.modules, "tensorboardX", None)
    with pytest.raises(ImportError, match=r"pip install 'jaxlr\[tensorboard\]'"):
        jaxlr.sweep.MetricsLogger(tmp_path / "x")
    jaxlr.sweep.MetricsLogger(tmp_path / "y", tensorboard=False).log(0, {"loss": 1.0})
    assert json.loads((tmp_path / "y" / "metrics.jsonl").read_text()) == {
        "member": "run",
        "step": 0,
        "loss": 1.0,
    }


def test_population_result_to_events(tmp_path):
    """A step-driven population's result (frozen members: NaN after divergence) is logged too."""

    def step_fn(w, cfg, target):
        w = w - cfg["peak_value"] * 2.0 * (w - target)
        return w, {"loss": (w - target) ** 2}

    pop = jaxlr.sweep.Population(
        lambda cfg, key: jnp.zeros(()),
        step_fn,
        jaxlr.sweep.grid(peak_value=[0.1, 30.0]),
        key=jax.random.key(0),
        divergence_threshold=1e3,
        progress=False,
    )
    res = pop.train((np.float32(3.0) for _ in range(4)), num_steps=4).result()
    with jaxlr.sweep.MetricsLogger(tmp_path) as log:
        log.log_result(res, members=["slow", "fast"])
    expected = [9.0 * (1 - 0.2) ** (2 * (t + 1)) for t in range(4)]
    ev = read_events(tmp_path / "slow")["loss"]
    assert [s for s, _ in ev] == [0, 1, 2, 3]
    np.testing.assert_allclose([v for _, v in ev], expected, rtol=1e-5)
    fast = [x for x in jsonl(log) if x["member"] == "fast"]
    assert fast[0]["diverged"] is True and fast[-1]["loss"] is None  # frozen: NaN -> null


def test_line_fields_and_run_folders_cannot_be_taken_over(tmp_path):
    """A metric named ``step`` or ``member`` would overwrite the line's own fields, and a member
    name with ``..`` would write a TensorBoard run outside log_dir: both are refused."""
    log = jaxlr.sweep.MetricsLogger(tmp_path / "logs")
    for name in ("step", "member"):
        with pytest.raises(
            ValueError,
            match=rf"MetricsLogger.log: metric names \['member', 'step'\] are the "
            rf"fields of every JSON line, got metric '{name}'",
        ):
            log.log(3, {"loss": np.array([1.0, 2.0]), name: np.array([5.0, 6.0])})
    with pytest.raises(ValueError, match=r"got metric 'step'"):
        jax.jit(lambda t: log.log(t, {"step": t}))(0)
    for bad in ("../escape", "a/../../b", "/abs", "", ".", "metrics.jsonl", "metrics.jsonl/x"):
        with pytest.raises(
            ValueError,
            match=r"MetricsLogger.log: member names must be relative folder names "
            r"inside log_dir",
        ):
            log.log(0, {"loss": np.array([1.0, 2.0])}, members=["ok", bad])
    log.log(0, {"loss": np.array([1.0, 2.0])}, members=["group/a", "group/b"])
    log.close()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["logs"]
    assert sorted(p.name for p in (tmp_path / "logs" / "group").iterdir()) == ["a", "b"]
    assert [(x["member"], x["step"], x["loss"]) for x in jsonl(log)] == [
        ("group/a", 0, 1.0),
        ("group/b", 0, 2.0),
    ]
