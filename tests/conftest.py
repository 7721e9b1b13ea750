import os
import sys

import pytest

os.environ.setdefault("KERAS_BACKEND", "jax")

# One compilation cache for the whole run, shared by the xdist workers and the subprocesses the
# tests start (multi-host processes, a killed-and-resumed run): a program compiled once is not
# compiled again in another process. It lives in a temporary folder of this run (a fresh clone
# starts empty; nothing outlives the run), made by the first process (the controller) and
# inherited by the others through the environment.
if "JAX_COMPILATION_CACHE_DIR" not in os.environ:
    import atexit
    import shutil
    import tempfile

    _cache = tempfile.mkdtemp(prefix="jaxlr-test-cache-")
    atexit.register(shutil.rmtree, _cache, ignore_errors=True)
    os.environ["JAX_COMPILATION_CACHE_DIR"] = _cache
    os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0.3")
# XLA:CPU's LLVM optimizations cost more compile time than they save on the suite's small,
# compile-bound programs: measured on tests/test_sharpness_models.py, test_experiments_learned.py
# and test_population_pbt.py, 143 s of CPU with them, 105 s without (the same 40 tests pass).
# Set before JAX creates its backend; subprocesses inherit it (those that need other flags set
# their own).
if "xla_backend_optimization_level" not in os.environ.get("XLA_FLAGS", ""):
    _flags = os.environ.get("XLA_FLAGS", "") + " --xla_backend_optimization_level=0"
    os.environ["XLA_FLAGS"] = _flags.strip()
sys.path.insert(0, os.path.dirname(__file__))  # tests/oracles.py and friends import by name

# Modules that exercise only jaxlr's own laws run under strict dtype promotion, so an implicit
# int/float or float32/float64 mix (a silent broadcast or upcast) fails a test instead of passing.
# Tests that run Optax's, Flax's or a peer's code keep JAX's default: those libraries promote
# implicitly by design (optax's bias correction multiplies a Python float by an int32 count).
STRICT_MODULES = (
    "test_schedules",
    "test_schedule_pytree",
    "test_traceability",
    "test_edges",
    "test_vocabulary",
)


@pytest.fixture(autouse=True)
def _strict_dtype_promotion(request):
    import jax

    if not request.node.path.stem.startswith(STRICT_MODULES):
        yield
        return
    with jax.numpy_dtype_promotion("strict"):
        yield


# The suite runs on pytest-xdist workers, whole files each (``make test``): the files that take
# longest start first, so no worker is left with a long one at the end (longest first is the
# classic rule for balancing jobs over workers). Measured with ``--junitxml`` on 2 cores.
SLOWEST_FIRST = (
    "test_sharpness_models",
    "test_docs",
    "test_transforms_sharpness",
    "test_sharpness",
    "test_traceability",
    "test_exact_steps",
    "test_scaling",
    "test_sharpness_inloop",
    "test_auto_laws",
    "test_parity",
)


def pytest_collection_modifyitems(config, items):
    rank = {name: i for i, name in enumerate(SLOWEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.stem, len(rank)))  # stable: the rest as found
