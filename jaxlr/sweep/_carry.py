"""What a population carries between compiled calls: its own module, so that the population,
its checkpoints and its policies all import it without importing each other."""

from __future__ import annotations

from typing import NamedTuple

import jax

from jaxlr._src.typing import PyTree


class Carry(NamedTuple):
    """Everything a :class:`~jaxlr.sweep.Population` carries between compiled calls (one chunk
    of ``c`` members); a :class:`~jaxlr.sweep.Policy` receives and returns it between steps.

    Examples:
        >>> import jax, jax.numpy as jnp, jaxlr
        >>> c = jaxlr.sweep.Carry(state=jnp.zeros(2), config={"lr": jnp.ones(2)},
        ...                       alive=jnp.ones(2, bool), bad_step=jnp.full(2, -1),
        ...                       step=jnp.int32(0), key=jax.random.key(0))
        >>> c.state.shape, c.alive.tolist()
        ((2,), [True, True])
    """

    state: PyTree  # the members' training states, leaves [c, ...]
    config: PyTree  # the members' hyperparameters, leaves [c, ...] (PBT rewrites them)
    alive: jax.Array  # [c] bool: False once a member diverged (it is frozen from then on)
    bad_step: jax.Array  # [c] int32: the step at which the member first diverged, -1 if never
    step: jax.Array  # [] int32: steps done
    key: jax.Array  # [] PRNG key of population-level randomness (PBT)
    evals: PyTree = ()  # the latest eval_fn metrics, leaves [c, ...] (NaN before the first)
    memory: PyTree = ()  # the policy's own record of each member, leaves [c, ...] (Policy.memory)
