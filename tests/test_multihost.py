"""Two processes on localhost (jax.distributed, gloo CPU collectives), 4 CPU devices each:
``run``, a population and PBT over the 8-device global mesh equal the single-process runs."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import test_sweep as ts
from test_population import KEY, batches, init_fn
from test_population_halving import with_val
from test_population_pbt import CONFIGS, SPACE

import jaxlr

STEPS = 8
FAST = {"xla_backend_optimization_level": 0}  # compile-bound: LLVM's optimizations cost more
PBT = dict(
    key=KEY,
    num_steps=STEPS,
    interval=4,
    metric="val",
    space=SPACE,
    progress=False,
    compiler_options=FAST,
)
RUN_CONFIGS = jaxlr.sweep.grid(peak_value=[1e-3, 1e-2, 3e-2, 1e-1], warmup_steps=[0.0, 5.0])

_WORKER = textwrap.dedent("""
    import sys
    import jax
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    jax.distributed.initialize(coordinator_address=sys.argv[2], num_processes=2,
                               process_id=int(sys.argv[3]))
    sys.path.insert(0, sys.argv[1])
    import numpy as np
    from jax.sharding import Mesh
    import jaxlr
    import test_sweep as ts
    from test_multihost import FAST, PBT, RUN_CONFIGS, STEPS
    from test_population import KEY, batches, init_fn
    from test_population_halving import with_val
    from test_population_pbt import CONFIGS

    assert jax.device_count() == 8 and jax.local_device_count() == 4, jax.devices()
    mesh = Mesh(np.array(jax.devices()), ("members",))
    swept = jaxlr.sweep.run(ts.train_fn, RUN_CONFIGS, mesh=mesh, progress=False,
                            compiler_options=FAST)
    pop = jaxlr.sweep.Population(init_fn, with_val, CONFIGS, key=KEY, mesh=mesh,
                                 compiler_options=FAST, progress=False)
    pop.train(batches(steps=STEPS), STEPS, steps_per_call=4)
    res = pop.result()
    pbt = jaxlr.sweep.pbt(init_fn, with_val, CONFIGS, batches(steps=STEPS), mesh=mesh, **PBT)
    assert swept.info["devices"] == 8 and res.info["devices"] == 8
    w = pop.host_carry().state["w"]  # a gather from every process: all of them call it
    if jax.process_index() == 0:
        np.savez(sys.argv[4], run=swept.metrics["loss"], pop=res.metrics["val"], w=w,
                 pbt=pbt.metrics["val"], lineage=pbt.lineage)
    print("MULTIHOST-OK", jax.process_index())
""")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("localhost", 0))
        return s.getsockname()[1]


def test_two_processes_on_an_8_device_mesh_equal_one_process(tmp_path):
    env = {
        **os.environ,
        "XLA_FLAGS": "--xla_force_host_platform_device_count=4",
        "JAX_PLATFORMS": "cpu",
    }
    address, out = f"localhost:{_free_port()}", tmp_path / "out.npz"
    here = str(Path(__file__).parent)
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", _WORKER, here, address, str(i), str(out)],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(2)
    ]
    try:
        logs = [p.communicate(timeout=120) for p in procs]
    finally:  # a failed process leaves its peer waiting in a collective
        for p in procs:
            if p.poll() is None:
                p.kill()
    for i, (o, e) in enumerate(logs):
        assert f"MULTIHOST-OK {i}" in o, o + e[-4000:]
    got = np.load(out)
    swept = jaxlr.sweep.run(ts.train_fn, RUN_CONFIGS, progress=False, compiler_options=FAST)
    pop = jaxlr.sweep.Population(
        init_fn, with_val, CONFIGS, key=KEY, progress=False, compiler_options=FAST
    )
    res = pop.train(batches(steps=STEPS), STEPS, steps_per_call=4).result()
    pbt = jaxlr.sweep.pbt(init_fn, with_val, CONFIGS, batches(steps=STEPS), **PBT)
    np.testing.assert_allclose(got["run"], swept.metrics["loss"], rtol=2e-5, atol=1e-6)
    np.testing.assert_allclose(got["pop"], res.metrics["val"], rtol=2e-5, atol=1e-6)
    np.testing.assert_allclose(got["w"], pop.host_carry().state["w"], rtol=2e-5, atol=1e-6)
    np.testing.assert_allclose(got["pbt"], pbt.metrics["val"], rtol=2e-5, atol=1e-6)
    np.testing.assert_array_equal(got["lineage"], pbt.lineage)
