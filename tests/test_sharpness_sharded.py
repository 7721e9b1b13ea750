"""The estimator on a batch sharded over 8 CPU devices equals the unsharded estimate.

The devices exist only if ``XLA_FLAGS=--xla_force_host_platform_device_count=8`` is set before
JAX starts, so the check runs in a fresh subprocess.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

SCRIPT = r"""
import json
import jax, jax.numpy as jnp, numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P
from jaxlr import sharpness as sh

assert jax.device_count() == 8, jax.devices()
rng = np.random.default_rng(0)
x = jnp.asarray(rng.normal(size=(64, 6)), jnp.float32)
y = jnp.asarray(rng.normal(size=(64, 3)), jnp.float32)
params = {"w1": jnp.asarray(rng.normal(size=(6, 16)) / 6**0.5, jnp.float32),
          "w2": jnp.asarray(rng.normal(size=(16, 3)) / 4, jnp.float32)}

def loss_fn(p, batch):
    bx, by = batch
    return 0.5 * jnp.mean(jnp.sum((jnp.tanh(bx @ p["w1"]) @ p["w2"] - by) ** 2, -1))

est = jax.jit(lambda p, b: sh.top_eigenvalue(loss_fn, p, batch=b, key=jax.random.key(0),
                                             num_iters=30, tol=1e-5).eigenvalue)
mesh = Mesh(np.array(jax.devices()), ("data",))
rows = NamedSharding(mesh, P("data"))
sharded = jax.device_put((x, y), rows)
replicated = jax.device_put(params, NamedSharding(mesh, P()))
assert len(sharded[0].sharding.device_set) == 8
lam_sharded = float(est(replicated, sharded))
single = jax.devices()[0]
lam_single = float(est(jax.device_put(params, single), jax.device_put((x, y), single)))
flat, unravel = jax.flatten_util.ravel_pytree(params)
h = jax.jit(jax.hessian(lambda f: loss_fn(unravel(f), (x, y))))(flat)
dense = float(np.linalg.eigvalsh(np.asarray(h, np.float64))[-1])
print(json.dumps({"sharded": lam_sharded, "single": lam_single, "dense": dense}))
"""


def test_sharded_batch_equals_unsharded():
    root = Path(__file__).resolve().parent.parent
    env = {
        **os.environ,
        "XLA_FLAGS": "--xla_force_host_platform_device_count=8",
        "JAX_PLATFORMS": "cpu",
        "PYTHONPATH": str(root),
    }
    out = subprocess.run(
        [sys.executable, "-c", SCRIPT],
        env=env,
        cwd=root,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    got = json.loads(out.stdout.strip().splitlines()[-1])
    assert abs(got["sharded"] - got["single"]) <= 1e-5 * abs(got["single"]), got
    assert abs(got["sharded"] - got["dense"]) <= 1e-4 * abs(got["dense"]), got
