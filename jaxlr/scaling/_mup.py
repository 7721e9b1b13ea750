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


# Leaves with these names are vectors whatever their rank: a DenseGeneral bias (heads,
# head_dim), a norm's scale. Their axes are all fan-out; none is a fan-in.
VECTOR_NAMES = ("bias", "scale")


def _leaf_name(path) -> str:
    """The last named key of a pytree path (skipping an NNX ``Variable``'s ``value``)."""
    for k in reversed(path):
        name = getattr(k, "key", getattr(k, "name", None))
        if isinstance(name, str) and name not in ("value", "raw_value"):
            return name
    return ""


def _width_axes(shape: tuple[int, ...], bshape: tuple[int, ...]) -> list[int]:
    """The axes whose size differs from the base model's: they grow with width."""
    return [i for i, (n, b) in enumerate(zip(shape, bshape, strict=True)) if n != b]


def _role(shape: tuple[int, ...], bshape: tuple[int, ...], name: str) -> str:
    if len(shape) < 2 or name in VECTOR_NAMES:
        return "vector"
    grow = _width_axes(shape, bshape)
    if not grow:
        return "fixed"
    if len(grow) > 1:  # a fan-in axis and a fan-out axis both grow
        return "hidden"
    # One growing axis: the last one is a fan-out (flax: kernels end with their outputs);
    # any other is a fan-in (Linear (in, out), Conv (taps, in, out)).
    return "input" if grow[0] == len(shape) - 1 else "output"


def _ratios(shape: tuple[int, ...], bshape: tuple[int, ...], role: str) -> tuple[float, float]:
    """``(m_in, m_out)``: fan-in and fan-out over the base model's, from the growing axes.

    A hidden kernel's last growing axis is its fan-out, the earlier growing axes its fan-in:
    ``(in, heads, head_dim)`` with ``in`` and ``heads`` growing has ``m_in = in / base in``,
    ``(heads, head_dim, out)`` has ``m_in = heads / base heads``, ``(w, w)`` the usual ratios.
    A vector's ``m_out`` is its size over the base size.
    """
    if role == "vector":
        return 1.0, float(math.prod(shape) / math.prod(bshape)) if shape else 1.0
    r = [shape[i] / bshape[i] for i in _width_axes(shape, bshape)]
    if role == "hidden":
        return float(math.prod(r[:-1])), float(r[-1])
    if role == "input":
        return 1.0, float(r[0])
    if role == "output":
        return float(r[0]), 1.0
    return 1.0, 1.0


def _shapes(params: Any, base_params: Any, fn: str):
    c = Checker(fn)
    leaves, tree = jax.tree_util.tree_flatten_with_path(params)
    base, base_tree = jax.tree.flatten(base_params)
    if tree != jax.tree.structure(base_params):
        c.fail(f"params and base_params must have the same structure, got {tree} and {base_tree}")
    out = []
    for i, ((path, p), b) in enumerate(zip(leaves, base, strict=True)):
        shape, bshape = tuple(np.shape(p)), tuple(np.shape(b))
        if len(shape) != len(bshape):
            c.fail(f"leaf {i} has shape {shape} here and {bshape} in base_params")
        out.append((shape, bshape, _role(shape, bshape, _leaf_name(path))))
    return out, tree


def mup_roles(params: Any, base_params: Any) -> Any:
    """The muP role of every parameter, found by comparing its shape with the base model's.

    An axis whose size differs from the base model's is a *width* axis (it grows with the
    model). A kernel (rank >= 2) with two or more width axes (a fan-in and a fan-out: ``(w,
    w)``, a conv ``(3, 3, w, w)``, an attention query ``(w, heads, head_dim)`` or output
    ``(heads, head_dim, w)`` projection with heads growing) is ``"hidden"``; with one, its last
    axis (fan-out) ``"input"`` and any other axis (fan-in) ``"output"``; with none ``"fixed"``.
    A leaf of rank < 2, or named ``bias`` or ``scale`` whatever its rank (a ``DenseGeneral``
    bias ``(heads, head_dim)``), is ``"vector"``.

    Limitation: a kernel whose fan-in and fan-out together span more than two width axes
    (heads *and* head_dim growing) is read as fan-in = every growing axis but the last.

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
        >>> attn = lambda w: {"q": {"kernel": jnp.zeros((w, w // 16, 16)),
        ...                         "bias": jnp.zeros((w // 16, 16))}}
        >>> mup_roles(attn(256), attn(64))
        {'q': {'bias': 'vector', 'kernel': 'hidden'}}
    """
    leaves, tree = _shapes(params, base_params, "mup_roles")
    return jax.tree.unflatten(tree, [role for *_, role in leaves])


def mup_multipliers(params: Any, base_params: Any, *, family: str = "adam") -> Any:
    r"""The per-parameter LR multipliers of muP relative to the base model.

    With :math:`m_{in} = \text{fan\_in} / \text{base fan\_in}` and :math:`m_{out}` likewise
    (Yang et al. 2022, Table 3):

    ==========  ===================  ====================
    role        Adam-family          SGD
    ==========  ===================  ====================
    input       1                    :math:`m_{out}`
    vector      1                    :math:`m_{out}` (its size ratio)
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
    leaves, tree = _shapes(params, base_params, "mup_multipliers")
    rule = {
        "adam": {"input": 1.0, "vector": 1.0, "fixed": 1.0},
        "sgd": {"hidden": 1.0, "fixed": 1.0},
    }[family]
    mults = []
    for shape, bshape, role in leaves:
        m_in, m_out = _ratios(shape, bshape, role)
        if role in rule:
            mults.append(float(rule[role]))
        elif role in ("hidden", "output"):
            mults.append(1.0 / m_in)
        else:  # SGD input and vector: the fan-out ratio
            mults.append(m_out)
    return jax.tree.unflatten(tree, mults)


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
    leaves, tree = _shapes(params, base_params, "mup_init")
    out = [
        p if role != "output" else p * math.sqrt(1.0 / _ratios(shape, bshape, role)[0])
        for p, (shape, bshape, role) in zip(jax.tree.leaves(params), leaves, strict=True)
    ]
    return jax.tree.unflatten(tree, out)
