"""The hook a search method puts into a population's compiled step: :class:`Policy`."""

from __future__ import annotations

import dataclasses
from typing import Any

from jaxlr.sweep._carry import Carry


@dataclasses.dataclass(frozen=True)
class Policy:
    r"""What a :class:`~jaxlr.sweep.Population` does between steps, inside its compiled program.

    After every step ``t`` the population calls

    .. math:: (\text{carry}, \text{extra}_t) \leftarrow \text{policy.between}(\text{carry},
              \text{metrics}_t)

    on each chunk of members (:class:`~jaxlr.sweep.Carry`: states, configs, alive flags, the
    step and a PRNG key); ``extra_t`` is recorded next to the metrics
    (:meth:`~jaxlr.sweep.Population.host_metrics`). The base policy changes nothing: grid
    training and successive halving (which ranks and compacts from Python with
    :meth:`~jaxlr.sweep.Population.select`) use it only to name themselves in errors and to
    require the metrics they rank by; :func:`~jaxlr.sweep.pbt` overrides :meth:`between` to
    copy and perturb members.

    A policy is a frozen dataclass: equal settings give equal policies, and the compile cache
    is keyed on the policy's value, so a second search with the same settings and step function
    reuses the compiled program. Subclasses must be frozen dataclasses too.

    Attributes:
        name: the public function driving the population, named in its errors.
        requires: ``(argument, metric)`` pairs: metrics ``step_fn`` must return (checked when
            the step is traced, before anything compiles).

    Examples:
        >>> import jax, jax.numpy as jnp, numpy as np, jaxlr
        >>> import dataclasses
        >>> @dataclasses.dataclass(frozen=True)
        ... class Reset(jaxlr.sweep.Policy):        # every 5 steps, members restart at w = 0
        ...     def between(self, carry, metrics):
        ...         due = carry.step % 5 == 0
        ...         return carry._replace(state=jnp.where(due, 0.0, carry.state)), {}
        >>> step_fn = lambda w, cfg, b: (w + cfg["lr"], {"loss": w})
        >>> pop = jaxlr.sweep.Population(lambda cfg, key: jnp.zeros(()), step_fn,
        ...                              {"lr": np.array([1.0, 2.0])}, key=jax.random.key(0),
        ...                              policy=Reset(), progress=False)
        >>> pop.train((0.0 for _ in range(7)), num_steps=7).host_carry().state.tolist()
        [2.0, 4.0]

    References:
        Rader, Lyons & Kidger, Optimistix: modular optimisation in JAX and Equinox, 2024 (a
        solver as small pluggable pieces on one driver loop).
    """

    name: str = "Population"
    requires: tuple[tuple[str, str], ...] = ()

    def memory(self, k: int) -> Any:
        """The policy's own record of each of ``k`` members at the start: a pytree of NumPy
        arrays ``[k, ...]``, carried in :attr:`Carry.memory` (``()``, the default: none). The
        population moves it with its members (:meth:`~jaxlr.sweep.Population.select`), pads
        and shards it like the states, and saves it in checkpoints; :meth:`between` reads and
        rewrites it (PBT's predicted ranking keeps each slot's loss curve there)."""
        return ()

    def between(self, carry: Carry, metrics: Any) -> tuple[Carry, Any]:
        """One chunk's carry after a step and its metrics -> the carry for the next step and
        extra outputs to record (a pytree of arrays, ``{}`` for none); traced, inside the
        compiled step."""
        return carry, {}
