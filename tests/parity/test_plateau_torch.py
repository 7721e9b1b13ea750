"""The plateau rule against the real ``torch.optim.lr_scheduler.ReduceLROnPlateau``.

A generated set of metric sequences (rising, falling, flat, tied, rising below the threshold,
random walks, negatives, crossing zero, with NaN / inf inserted) is run through torch for mode
min/max x threshold_mode rel/abs and several patience / cooldown / factor / floor / eps settings,
and through ``jaxlr.compat.torch.ReduceLROnPlateau`` and the native
``jaxlr.transforms.reduce_on_plateau`` ("signed_rel" is torch's rule, "abs" is torch's; the
native "rel" uses ``|best|`` and is checked against torch in the opposite mode on the negated
metric, which is the same rule for one-signed sequences). Every jaxlr run is one row of a single
``jit(vmap(scan))``: all hyperparameters (mode and threshold mode included) live in the state.

Metrics are multiples of 1/16 and thresholds dyadic, so float32 (jaxlr) and float64 (torch) take
the same decisions, ties at the threshold included.

Non-finite metrics: torch compares with ``<`` / ``>``, so a NaN is never "better" and counts as a
bad epoch (and ``-inf`` in mode min becomes ``best`` for good). jaxlr skips a non-finite metric
instead (documented in both docstrings, counted in ``state.num_skipped``); the reference for those
sequences is torch stepped on the finite values only, and ``test_nan_is_a_documented_difference``
pins what torch itself does.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

torch = pytest.importorskip("torch")

from jaxlr import transforms as T  # noqa: E402
from jaxlr.compat import torch as C  # noqa: E402

LENGTH = 20
GRID = 1.0 / 16.0
HP = [  # per threshold_mode: the thresholds to try, each with one set of the other settings
    dict(patience=1, factor=0.5, cooldown=0, min_lr=0.0, eps=1e-8, lr=1.0),
    dict(patience=0, factor=0.3, cooldown=2, min_lr=0.01, eps=1e-8, lr=1.0),
    dict(patience=3, factor=0.1, cooldown=1, min_lr=0.0, eps=0.03, lr=0.5),
]
THRESHOLDS = {"rel": (1e-4, 0.0625, 0.25), "abs": (0.0, 0.0625, 0.25)}


def _sequences() -> list[np.ndarray]:
    """>= 100 metric sequences of length LENGTH on the 1/16 grid (NaN / inf in some)."""
    rng = np.random.default_rng(0)
    steps = lambda lo, hi: rng.integers(lo, hi + 1, LENGTH - 1)  # noqa: E731
    base = []
    for _ in range(4):
        start = rng.integers(4, 32)
        base += [
            np.cumsum(np.r_[start, steps(0, 2)]),  # rising, with ties
            np.cumsum(np.r_[start + 40, -steps(0, 2)]),  # falling, with ties
            np.full(LENGTH, start),  # flat
            np.repeat(start + np.arange(LENGTH // 4), 4)[:LENGTH],  # stairs of ties
            np.cumsum(np.r_[start + 32, steps(0, 1)]),  # rising far below a 25% threshold
            np.cumsum(np.r_[start + 20, steps(-2, 2)]),  # random walk
            np.cumsum(np.r_[start, steps(1, 2)]),  # strictly rising
        ]
    base.append(np.r_[12, np.full(LENGTH - 1, 13)])  # the issue's flat accuracy, on the grid
    seqs = [b * GRID for b in base]
    seqs += [-s for s in seqs]  # negatives
    seqs += [(np.cumsum(np.r_[-8, steps(-1, 2)])) * GRID for _ in range(6)]  # crossing zero
    nonfinite = []
    for s in list(seqs):
        s = s.astype(np.float64).copy()
        where = rng.choice(np.arange(1, LENGTH), size=rng.integers(1, 4), replace=False)
        s[where] = rng.choice([np.nan, np.inf, -np.inf], size=len(where), p=[0.6, 0.2, 0.2])
        nonfinite.append(s)
    seqs += nonfinite
    seqs.append(np.r_[np.nan, np.nan, 1.0, 1.0, np.nan, np.ones(LENGTH - 5)])
    return [np.asarray(s, np.float64) for s in seqs]


SEQUENCES = _sequences()


def _torch_lrs(values, *, mode, threshold_mode, threshold, lr, **hp) -> np.ndarray:
    """Torch's LR after each value; non-finite values are not stepped (jaxlr skips them)."""
    opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=lr)
    sched = torch.optim.lr_scheduler.ReduceLROnPlateau(
        opt, mode=mode, threshold_mode=threshold_mode, threshold=threshold, **hp
    )
    out = []
    for v in values:
        if np.isfinite(v):
            sched.step(float(v))
        out.append(sched.get_last_lr()[0])
    return np.asarray(out)


_REFS: dict = {}


def _torch_ref(values, **cfg) -> np.ndarray:
    """``_torch_lrs``, run once per (sequence, configuration): compat and native share it."""
    key = (values.tobytes(), tuple(sorted(cfg.items())))
    if key not in _REFS:
        _REFS[key] = _torch_lrs(values, **cfg)
    return _REFS[key]


def _one_signed(values) -> int:
    """1 or -1 if every finite value has that sign (or is 0), else 0."""
    v = values[np.isfinite(values)]
    return 1 if (v >= 0).all() else -1 if (v <= 0).all() else 0


def _rows():
    """(state, values, reference LRs, label) for every run, native and compat."""
    flip = {"min": "max", "max": "min"}
    rows = []
    for mode in ("min", "max"):
        for tmode, thresholds in THRESHOLDS.items():
            for threshold, hp in zip(thresholds, HP):
                native = dict(
                    factor=hp["factor"],
                    patience=hp["patience"],
                    cooldown=hp["cooldown"],
                    threshold=threshold,
                    mode=mode,
                    min_value=hp["min_lr"],
                    min_decrease=hp["eps"],
                    init_value=hp["lr"],
                )
                kinds = {
                    "compat": C.ReduceLROnPlateau(
                        mode=mode, threshold_mode=tmode, threshold=threshold, **hp
                    ),
                    "native": T.reduce_on_plateau(
                        threshold_mode="signed_rel" if tmode == "rel" else "abs", **native
                    ),
                }
                if tmode == "rel":
                    kinds["native |b|"] = T.reduce_on_plateau(threshold_mode="rel", **native)
                for kind, tx in kinds.items():
                    state = tx.init(None)
                    for i, seq in enumerate(SEQUENCES):
                        cfg = dict(mode=mode, threshold_mode=tmode, threshold=threshold, **hp)
                        if kind == "native |b|":
                            sign = _one_signed(seq)
                            if sign == 0:
                                continue
                            if sign < 0:  # |b| rule on v <= 0 == torch's opposite mode on -v
                                cfg["mode"] = flip[mode]
                                ref = _torch_ref(-seq, **cfg)
                            else:
                                ref = _torch_ref(seq, **cfg)
                        else:
                            ref = _torch_ref(seq, **cfg)
                        label = f"{kind} {mode}/{tmode} threshold={threshold} {hp} seq {i}"
                        rows.append((state, seq, ref, label))
    return rows


@pytest.fixture(scope="module")
def runs():
    rows = _rows()
    states = jax.tree.map(lambda *xs: np.stack(xs), *[r[0] for r in rows])
    values = jnp.asarray(np.stack([r[1] for r in rows]), jnp.float32)
    # Every hyperparameter (mode and threshold mode included) is read from the state, so one
    # transform's update runs every configuration: one compilation for all rows.
    tx = T.reduce_on_plateau()

    def run(state, vs):
        def body(s, v):
            u, s = tx.update(jnp.ones(()), s, value=v)
            return s, (s.lr, u)

        final, (lrs, us) = jax.lax.scan(body, state, vs)
        return lrs, us, final.num_skipped

    lrs, us, skipped = jax.jit(jax.vmap(run))(states, values)
    return rows, np.asarray(lrs), np.asarray(us), np.asarray(skipped)


def test_enough_sequences_of_every_kind():
    assert len(SEQUENCES) >= 100
    finite = [s for s in SEQUENCES if np.isfinite(s).all()]
    assert any(np.isnan(s).any() for s in SEQUENCES)
    assert any((np.diff(s) == 0).any() for s in finite)  # ties
    assert any((s < 0).all() for s in finite) and any(_one_signed(s) == 0 for s in finite)
    assert any((np.diff(s) > 0).all() for s in finite)  # strictly rising
    assert any((np.diff(s) < 0).all() for s in finite)  # strictly falling


def test_lr_matches_torch_on_every_sequence(runs):
    rows, lrs, us, _ = runs
    assert len(rows) > 1000
    bad = [
        f"{label}: values {seq.tolist()}\n  jaxlr {lr.tolist()}\n  torch {ref.tolist()}"
        for (_, seq, ref, label), lr in zip(rows, lrs)
        if not np.allclose(lr, ref, rtol=1e-6, atol=0)
    ]
    assert not bad, f"{len(bad)} of {len(rows)} runs differ from torch, e.g.\n" + "\n".join(bad[:3])
    # the update of the same call is scaled by the LR torch has after step(value)
    np.testing.assert_allclose(us, lrs, rtol=0)


def test_reductions_happen(runs):
    """The comparison is not vacuous: most runs reduce the LR, in both modes."""
    rows, lrs, _, _ = runs
    reduced = np.array([lr[-1] < lr[0] for lr in lrs])
    for mode in ("min", "max"):
        sel = np.array([f" {mode}/" in r[3] for r in rows])
        assert reduced[sel].mean() > 0.5


def test_non_finite_metrics_skipped_and_counted(runs):
    rows, _, _, skipped = runs
    want = np.array([np.sum(~np.isfinite(r[1])) for r in rows])
    np.testing.assert_array_equal(skipped, want)


def test_issue_accuracy_examples():
    """Issue 21 item 1: a flat accuracy and a rising-but-below-threshold one, mode="max"."""

    def lrs(tx, values):
        state, out = tx.init(None), []
        for v in values:
            _, state = tx.update(jnp.ones(()), state, value=v)
            out.append(float(state.lr))
        return out

    flat = [0.80, 0.85, 0.85, 0.85, 0.85, 0.85]
    tied = dict(mode="max", patience=1, factor=0.5)
    assert lrs(C.ReduceLROnPlateau(lr=1.0, **tied), flat) == [1, 1, 1, 0.5, 0.5, 0.25]
    native = T.reduce_on_plateau(threshold_mode="signed_rel", **tied)
    assert lrs(native, flat) == [1, 1, 1, 0.5, 0.5, 0.25]
    slow = list(np.float32(1.5 * 1.005 ** np.arange(10)))
    got = lrs(C.ReduceLROnPlateau(lr=1.0, mode="max", patience=5, threshold=0.1), slow)
    want = _torch_lrs(
        np.asarray(slow, np.float64),
        mode="max",
        threshold_mode="rel",
        threshold=0.1,
        lr=1.0,
        patience=5,
    )
    assert want[6] == pytest.approx(0.1) and want[5] == 1.0  # torch reduces at epoch 6
    np.testing.assert_allclose(got, want, rtol=1e-6)


def test_nan_is_a_documented_difference():
    """Torch counts a NaN as a bad epoch (``nan < best`` is False); jaxlr skips it."""
    opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=1.0)
    sched = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, patience=1, factor=0.5)
    tx = C.ReduceLROnPlateau(lr=1.0, patience=1, factor=0.5)
    state = tx.init(None)
    for v in [1.0, np.nan, np.nan]:
        sched.step(v)
        _, state = tx.update(jnp.ones(()), state, value=v)
    assert sched.get_last_lr()[0] == 0.5
    assert float(state.lr) == 1.0 and int(state.num_skipped) == 2
    assert "NaN" in C.ReduceLROnPlateau.__doc__ and "skipped" in T.reduce_on_plateau.__doc__
