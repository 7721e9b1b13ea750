"""Online learning-rate adaptation by hypergradient descent."""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax
from jax.typing import ArrayLike

from jaxlr._src.numeric import safe_div
from jaxlr._src.validate import Checker
from jaxlr.transforms._common import (
    all_finite,
    check_unit_lr,
    flag,
    floats,
    lr_state,
    scale_updates,
)


class HypergradientHyperparams(NamedTuple):
    """The numeric hyperparameters of :func:`hypergradient` (arrays: edit, trace or stack them)."""

    hyper_lr: jax.Array  # () beta, the hypergradient step size
    min_value: jax.Array  # () lower bound of the LR
    max_value: jax.Array  # () upper bound of the LR


@lr_state
class HypergradientState(NamedTuple):
    """State of :func:`hypergradient`."""

    lr: jax.Array  # () the LR alpha_t applied by the last update
    hypergradient: jax.Array  # () h_t = g_t . d_{t-1}, dL/dalpha of the last update
    prev_direction: Any  # pytree like params: d_{t-1}, the unit-LR update of the last step
    inner_state: Any  # the direction optimizer's state
    num_skipped: jax.Array  # () int32, updates whose hypergradient was not finite (LR kept)
    hyperparams: HypergradientHyperparams  # hyper_lr, min_value, max_value


def hypergradient(
    optimizer: optax.GradientTransformation | None = None,
    *,
    init_value: ArrayLike,
    hyper_lr: ArrayLike,
    multiplicative: bool = False,
    min_value: ArrayLike = 0.0,
    max_value: ArrayLike = jnp.inf,
) -> optax.GradientTransformationExtraArgs:
    r"""Learns the LR online by gradient descent on the loss with respect to the LR.

    With :math:`d_t` the unit-LR update direction of ``optimizer`` (``-g_t`` for SGD,
    :math:`-\hat m_t/(\sqrt{\hat v_t}+\epsilon)` for ``optax.adam(1.0)``) and
    :math:`\theta_t = \theta_{t-1} + \alpha_{t-1} d_{t-1}`, the derivative of the new loss
    with respect to the last LR is :math:`h_t = g_t \cdot d_{t-1}`, and

    .. math::
        \alpha_t = \alpha_{t-1} - \beta\, h_t \quad\text{(additive)},\qquad
        \alpha_t = \alpha_{t-1}\Bigl(1 - \beta\,\frac{h_t}{\|g_t\|\,\|d_{t-1}\|}\Bigr)
        \quad\text{(multiplicative)}

    clipped to ``[min_value, max_value]``; the update is :math:`\alpha_t d_t`. This transform
    receives raw gradients (it wraps the optimizer that makes the direction).

    Non-finite inputs: a gradient or direction :math:`d_t` that is not finite (a NaN or
    infinite gradient) skips the step: the update is zero, and :math:`\alpha`, :math:`d_{t-1}`
    and the inner optimizer's state (Adam's moments, ...) are kept, so one bad batch never
    poisons the state. When only :math:`h_t` is not finite (a product that overflows the dtype,
    e.g. gradients of 1e30 in float32), :math:`\alpha` is kept and the step is taken.
    ``state.num_skipped`` counts the updates whose LR was kept. The multiplicative rule
    computes its normalized :math:`h_t` from max-scaled vectors, so it stays finite for any
    finite gradient.

    Args:
        optimizer: an Optax transform giving the descent direction at unit LR
            (``optax.sgd(1.0)``, ``optax.adam(1.0)``, ``optax.rmsprop(1.0)``, ...); ``None`` is
            plain SGD (``d = -g``).
        init_value: :math:`\alpha_0`.
        hyper_lr: :math:`\beta`, the hypergradient step size.
        multiplicative: use the normalized multiplicative rule (a static ``bool``).
        min_value, max_value: bounds of the LR.

    Returns:
        An ``optax.GradientTransformationExtraArgs`` with a :class:`HypergradientState`.

    Raises:
        ValueError: negative ``init_value``, ``hyper_lr`` or bounds, ``min_value > max_value``,
            ``multiplicative`` not a ``bool``.

    Examples:
        >>> import jax, jax.numpy as jnp, optax, jaxlr
        >>> loss = lambda w: 0.5 * jnp.sum(w**2)
        >>> tx = jaxlr.transforms.hypergradient(init_value=0.1, hyper_lr=0.01)
        >>> w = jnp.ones(3)
        >>> state = tx.init(w)
        >>> for _ in range(3):
        ...     u, state = tx.update(jax.grad(loss)(w), state, w)
        ...     w = optax.apply_updates(w, u)
        >>> # w: 1 -> 0.9 -> 0.7857; h_3 = 3 * 0.7857 * (-0.9); alpha = 0.1 + 0.01 * (2.7 + 2.1214)
        >>> [round(float(x), 4) for x in (state.hypergradient, state.lr)]
        [-2.1214, 0.1482]

    References:
        Baydin, Cornish, Martínez Rubio, Schmidt & Wood, Online Learning Rate Adaptation with
        Hypergradient Descent, ICLR 2018.
    """
    c = Checker("hypergradient")
    c.nonnegative("init_value", init_value)
    c.nonnegative("hyper_lr", hyper_lr)
    c.nonnegative("min_value", min_value)
    c.number("max_value", max_value)
    c.not_greater("min_value", min_value, "max_value", max_value)
    flag(c, "multiplicative", multiplicative)
    if optimizer is not None:
        check_unit_lr(c.fn, optimizer, owner="hypergradient learns the LR and multiplies it in")
    inner = optax.with_extra_args_support(optax.scale(-1.0) if optimizer is None else optimizer)
    hp = HypergradientHyperparams(
        **floats(c.fn, hyper_lr=hyper_lr, min_value=min_value, max_value=max_value)
    )
    alpha0 = floats(c.fn, init_value=init_value)["init_value"]

    def init_fn(params):
        zero = jnp.zeros_like(alpha0)
        return HypergradientState(
            alpha0,
            zero,
            optax.tree.zeros_like(params),
            inner.init(params),
            jnp.zeros([], jnp.int32),
            hp,
        )

    def update_fn(updates, state, params=None, **extra_args):
        h = state.hyperparams
        direction, inner_state = inner.update(updates, state.inner_state, params, **extra_args)
        dtype = state.lr.dtype
        g_max, d_max = _max_abs(updates), _max_abs(state.prev_direction)
        # dot and norms of max-scaled vectors: finite for every finite input
        dot = optax.tree.vdot(_scaled(updates, g_max), _scaled(state.prev_direction, d_max))
        hg = (g_max * d_max * dot).astype(dtype)
        if multiplicative:
            norms = optax.tree.norm(_scaled(updates, g_max)) * optax.tree.norm(
                _scaled(state.prev_direction, d_max)
            )
            lr = state.lr * (1.0 - h.hyper_lr * safe_div(dot, norms).astype(dtype))
            ok = jnp.isfinite(dot) & jnp.isfinite(lr)
        else:
            lr = state.lr - h.hyper_lr * hg
            ok = jnp.isfinite(hg) & jnp.isfinite(lr)
        # a non-finite gradient or direction skips the step: nothing of it enters the state
        finite = all_finite(updates) & all_finite(direction)
        ok = ok & finite
        lr = jnp.where(ok, jnp.clip(lr, h.min_value, h.max_value), state.lr)
        hg = jnp.where(ok, hg, state.hypergradient)
        keep = lambda new, old: jax.tree.map(lambda a, b: jnp.where(finite, a, b), new, old)  # noqa: E731
        new = HypergradientState(
            lr,
            hg,
            keep(direction, state.prev_direction),
            keep(inner_state, state.inner_state),
            state.num_skipped + (~ok).astype(jnp.int32),
            h,
        )
        applied = jax.tree.map(lambda d: jnp.where(finite, d, jnp.zeros_like(d)), direction)
        return scale_updates(applied, lr), new

    return optax.GradientTransformationExtraArgs(init_fn, update_fn)


def _max_abs(tree: Any) -> jax.Array:
    leaves = [jnp.max(jnp.abs(x), initial=0.0) for x in jax.tree.leaves(tree)]
    return jnp.max(jnp.asarray(leaves)) if leaves else jnp.zeros([])


def _scaled(tree: Any, m: jax.Array) -> Any:
    """``tree / m`` (``m`` = max |leaf|), zero where ``m`` is 0 or not finite."""
    ok = (m > 0) & jnp.isfinite(m)
    inv = jnp.where(ok, 1.0 / jnp.where(ok, m, 1.0), 0.0)
    return jax.tree.map(lambda x: x * inv.astype(x.dtype), tree)
