"""Cases from the peers' own unit tests (torch ``test_lrscheduler.py``, keras
``learning_rate_schedule_test.py``) that compat must reproduce: compat accepts what the peer
accepts and gives the peer's numbers, under ``jax.jit``, in float32 and in float64."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxlr.compat import keras as CK
from jaxlr.compat import torch as C

from .cases import torch_values

# (initial_learning_rate, first_decay_steps, t_mul, m_mul, alpha); the first is keras's test
RESTARTS = [
    (0.2, 10, 2.0, 1.0, 0.0),
    (0.1, 7, 3.0, 0.5, 0.1),
    (0.3, 4, 1.5, 0.9, 0.0),
    (0.2, 10, 0.5, 1.0, 0.0),  # shrinking periods: NaN from t = 20 on, in Keras too
]


@jax.jit
def _eval(s, t):
    return s(t)


@pytest.mark.parametrize("x64", [False, True])
@pytest.mark.parametrize("args", RESTARTS)
def test_cosine_decay_restarts_equals_keras_at_every_restart(args, x64):
    """Keras gives 0.2 at t = 70, 630, 1270 (t_mul=2); a float log(8)/log(2) = 2.99...96 must not
    drop a cycle there. Dense steps 0..3000 equal Keras (float32) to float32 rounding."""
    import keras

    lr, first, t_mul, m_mul, alpha = args
    peer = keras.optimizers.schedules.CosineDecayRestarts(
        lr, first_decay_steps=first, t_mul=t_mul, m_mul=m_mul, alpha=alpha
    )
    t = np.arange(3000)
    want = np.asarray(jax.vmap(peer)(jnp.asarray(t)), np.float64)
    with jax.enable_x64(x64):
        s = CK.CosineDecayRestarts(
            initial_learning_rate=lr, first_decay_steps=first, t_mul=t_mul, m_mul=m_mul, alpha=alpha
        )
        got = np.asarray(_eval(s, jnp.asarray(t)), np.float64)
        one = [float(_eval(s, k)) for k in (70, 630, 1270)]  # scalar int steps, as optax calls it
    np.testing.assert_allclose(got, want, rtol=2e-5, atol=2e-6 * lr)
    if args == RESTARTS[0]:
        assert [float(peer(k)) for k in (70, 630, 1270)] == pytest.approx([0.2] * 3)
        assert one == pytest.approx([0.2] * 3)


# torch's test_cycle_lr_*_with_momentum use base_lr=1, max_lr=5, base_momentum=1, max_momentum=5
CYCLIC = [
    dict(mode="triangular"),
    dict(mode="triangular2", step_size_down=2),
    dict(mode="exp_range", gamma=0.9),
]


@pytest.mark.parametrize("kw", CYCLIC, ids=lambda kw: kw["mode"])
def test_cyclic_momentum_takes_torch_test_momenta(kw):
    from torch.optim import lr_scheduler as L

    kw = dict(base_lr=1.0, max_lr=5.0, step_size_up=4, base_momentum=1.0, max_momentum=5.0, **kw)
    want_lr = torch_values(lambda o: L.CyclicLR(o, **kw), 30, 1.0)
    want_m = torch_values(lambda o: L.CyclicLR(o, **kw), 30, 1.0, momentum=True)
    t = jnp.arange(30)
    np.testing.assert_allclose(_eval(C.CyclicLR(**kw), t), want_lr, rtol=1e-6)
    np.testing.assert_allclose(_eval(C.CyclicLR.momentum(**kw), t), want_m, rtol=1e-6)
    assert want_m.max() == 5.0  # the momenta really leave [0, 1]


def test_cyclic_momentum_rejects_nan_naming_itself():
    with pytest.raises(ValueError, match=r"CyclicLR\.momentum.*max_momentum"):
        C.CyclicLR.momentum(base_lr=0.1, max_lr=1.0, max_momentum=float("nan"))
