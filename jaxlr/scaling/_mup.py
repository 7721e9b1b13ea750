"""muP (maximal update parametrization) for an optax optimizer: per-parameter LR multipliers."""

from __future__ import annotations

import math
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxlr._src.validate import Checker

ROLES = ("input", "hidden", "output", "vector", "fixed")
FAMILIES = ("adam", "sgd")


def _fans(shape: tuple[int, ...]) -> tuple[int, int]:
    # flax convention: the last axis is fan_out, the others (kernel taps, in-features) fan_in.
    return math.prod(shape[:-1]), shape[-1]


def mup_roles(params: Any, base_params: Any) -> Any:
    """The muP role of every parameter, found by comparing its shape with the base model's.

    A dimension that differs from the base model's is a *width* (it grows with the model).
    A matrix (or kernel: last axis fan-out, the others fan-in, as in flax) whose fan-in and
    fan-out both grow is ``"hidden"``, only its fan-out ``"input"``, only its fan-in
    ``"output"``, neither ``"fixed"``; a vector or scalar (bias, norm scale) is ``"vector"``.

    Args:
        params: the model's parameters (a pytree, or a flax NNX ``State``).
        base_params: the same model at the base width (same tree; arrays or
            ``jax.ShapeDtypeStruct`` from ``jax.eval_shape``).

    Returns:
        A pytree like ``params`` of role strings.

    Raises:
        ValueError: the two trees differ in structure or in the rank of a leaf.

    Examples:
        >>> import jax.numpy as jnp
        >>> from jaxlr.scaling import mup_roles
        >>> mlp = lambda w: {"w0": jnp.zeros((64, w)), "w1": jnp.zeros((w, w)),
        ...                  "w2": jnp.zeros((w, 10)), "b1": jnp.zeros(w)}
        >>> mup_roles(mlp(256), mlp(32))
        {'b1': 'vector', 'w0': 'input', 'w1': 'hidden', 'w2': 'output'}
    """
    c = Checker("mup_roles")
    leaves, tree = jax.tree.flatten(params)
    base, base_tree = jax.tree.flatten(base_params)
    if tree != base_tree:
        c.fail(f"params and base_params must have the same structure, got {tree} and {base_tree}")
    roles = []
    for i, (p, b) in enumerate(zip(leaves, base, strict=True)):
        shape, bshape = tuple(np.shape(p)), tuple(np.shape(b))
        if len(shape) != len(bshape):
            c.fail(f"leaf {i} has shape {shape} here and {bshape} in base_params")
        if len(shape) < 2:
            roles.append("vector")
            continue
        (fi, fo), (bfi, bfo) = _fans(shape), _fans(bshape)
        grow_in, grow_out = fi != bfi, fo != bfo
        roles.append(
            {(True, True): "hidden", (False, True): "input", (True, False): "output"}.get(
                (grow_in, grow_out), "fixed"
            )
        )
    return jax.tree.unflatten(tree, roles)


def mup_multipliers(params: Any, base_params: Any, *, family: str = "adam") -> Any:
    r"""The per-parameter LR multipliers of muP relative to the base model.

    With :math:`m_{in} = \text{fan\_in} / \text{base fan\_in}` and :math:`m_{out}` likewise
    (Yang et al. 2022, Table 3):

    ==========  ===================  ====================
    role        Adam-family          SGD
    ==========  ===================  ====================
    input       1                    :math:`m_{out}`
    vector      1                    :math:`m_{out}` (its length ratio)
    hidden      :math:`1/m_{in}`     1
    output      :math:`1/m_{in}`     :math:`1/m_{in}`
    fixed       1                    1
    ==========  ===================  ====================

    Args:
        params: the model's parameters.
        base_params: the base model's (see :func:`mup_roles`).
        family: ``"adam"`` (Adam, AdamW, RMSprop, Adagrad: scale-invariant updates) or
            ``"sgd"``.

    Returns:
        A pytree like ``params`` of float multipliers.

    Raises:
        ValueError: an unknown family, or what :func:`mup_roles` raises.

    Examples:
        >>> import jax.numpy as jnp
        >>> from jaxlr.scaling import mup_multipliers
        >>> mlp = lambda w: {"w0": jnp.zeros((64, w)), "w1": jnp.zeros((w, w)),
        ...                  "w2": jnp.zeros((w, 10)), "b1": jnp.zeros(w)}
        >>> mup_multipliers(mlp(256), mlp(32))
        {'b1': 1.0, 'w0': 1.0, 'w1': 0.125, 'w2': 0.125}
    """
    Checker("mup_multipliers").choice("family", family, FAMILIES)
    roles = mup_roles(params, base_params)

    def one(role, p, b):
        shape, bshape = tuple(np.shape(p)), tuple(np.shape(b))
        if role == "vector":
            ratio = (shape[-1] / bshape[-1]) if shape else 1.0
            return float(ratio) if family == "sgd" else 1.0
        (fi, fo), (bfi, bfo) = _fans(shape), _fans(bshape)
        rule = {
            "adam": {"input": 1.0, "hidden": bfi / fi, "output": bfi / fi, "fixed": 1.0},
            "sgd": {"input": fo / bfo, "hidden": 1.0, "output": bfi / fi, "fixed": 1.0},
        }
        return float(rule[family][role])

    return jax.tree.map(one, roles, params, base_params)


def mup(
    optimizer: optax.GradientTransformation,
    params: Any,
    base_params: Any,
    *,
    family: str = "adam",
) -> optax.GradientTransformationExtraArgs:
    r"""``optimizer`` in its muP form: each parameter's update scaled by its LR multiplier.

    .. math:: u_p \leftarrow \mu_p \, u_p, \quad \mu_p \text{ from } :func:`mup\_multipliers`

    For Adam-family optimizers scaling the update is scaling the LR (weight decay inside the
    optimizer, as in ``optax.adamw``, is scaled with it, the usual muP convention). Tune the LR
    at the base width; with muP it transfers across widths (eta* flat in width), which
    :func:`jaxlr.scaling.fit` can check: the width exponent's interval should contain 0.

    muP also fixes the initialization (not done here, the optimizer does not own it): hidden and
    input weights keep variance :math:`1/\text{fan\_in}` (flax's default ``lecun_normal``);
    output weights get variance :math:`1/\text{fan\_in}^2` (:func:`mup_init` rescales them) or
    zero. The equivalent output-multiplier form instead multiplies the logits by
    :math:`\text{base fan\_in}/\text{fan\_in}` and keeps the output LR unscaled (Adam).

    Args:
        optimizer: an optax optimizer with its LR (the base model's tuned LR).
        params: the model's parameters (pytree or NNX ``State``).
        base_params: the base model's parameters or shapes (``jax.eval_shape``).
        family: ``"adam"`` or ``"sgd"`` (see :func:`mup_multipliers`).

    Returns:
        An ``optax.GradientTransformationExtraArgs`` (works with ``nnx.Optimizer``).

    Examples:
        >>> import jax, jax.numpy as jnp, optax
        >>> from jaxlr.scaling import mup
        >>> mlp = lambda w: {"w0": jnp.ones((4, w)), "w1": jnp.ones((w, w)), "w2": jnp.ones((w, 2))}
        >>> params = mlp(64)
        >>> tx = mup(optax.adam(1e-2), params, mlp(16))
        >>> u, _ = tx.update(jax.tree.map(jnp.ones_like, params), tx.init(params), params)
        >>> {k: round(float(v[0, 0]), 6) for k, v in u.items()}  # Adam's first step: -lr x mult
        {'w0': -0.01, 'w1': -0.0025, 'w2': -0.0025}

    References:
        Yang et al., Tensor Programs V: Tuning Large Neural Networks via Zero-Shot
        Hyperparameter Transfer, 2022.
    """
    mults = mup_multipliers(params, base_params, family=family)

    def update(updates, state, params=None):
        del params
        scaled = jax.tree.map(lambda u, m: u * jnp.asarray(m, u.dtype), updates, mults)
        return scaled, state

    scale = optax.GradientTransformation(lambda p: optax.EmptyState(), update)
    return optax.with_extra_args_support(optax.chain(optimizer, scale))


def mup_init(params: Any, base_params: Any) -> Any:
    r"""Rescales the output weights of a standard-initialized model to muP's initialization.

    Output weights (role ``"output"``) drawn with variance :math:`1/\text{fan\_in}` are
    multiplied by :math:`\sqrt{\text{base fan\_in}/\text{fan\_in}}`, so their variance is
    :math:`\text{base fan\_in}/\text{fan\_in}^2` (muP: :math:`\propto 1/\text{fan\_in}^2`, equal
    to the standard one at the base width). Every other leaf is returned unchanged.

    Args:
        params: the model's parameters, initialized the standard way (``lecun_normal``).
        base_params: the base model's parameters or shapes.

    Returns:
        The parameters with rescaled output weights.

    Examples:
        >>> import jax.numpy as jnp
        >>> from jaxlr.scaling import mup_init
        >>> mlp = lambda w: {"w1": jnp.ones((w, w)), "w2": jnp.ones((w, 10))}
        >>> p = mup_init(mlp(128), mlp(32))
        >>> float(p["w2"][0, 0]), float(p["w1"][0, 0])
        (0.5, 1.0)
    """
    roles = mup_roles(params, base_params)

    def one(role, p, b):
        if role != "output":
            return p
        return p * math.sqrt(_fans(tuple(np.shape(b)))[0] / _fans(tuple(np.shape(p)))[0])

    return jax.tree.map(one, roles, params, base_params)
