"""One-product curvature measures along a direction (the cheapest rung of the ladder)."""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp
from jax.flatten_util import ravel_pytree

from jaxlr._src.numeric import safe_div
from jaxlr._src.typing import PyTree
from jaxlr.sharpness._hvp import flat_operator


def _quadratic_form(loss_fn, params, d, matvec, batches, batch, fn) -> tuple[jax.Array, jax.Array]:
    """``(d^T H d, d^T d)`` with one product."""
    flat, _, op = flat_operator(
        loss_fn, params, matvec=matvec, batches=batches, batch=batch, fn_name=fn
    )
    x = ravel_pytree(d)[0].astype(flat.dtype)
    return jnp.vdot(x, op(x)), jnp.vdot(x, x)


def directional_curvature(
    loss_fn: Callable[..., jax.Array] | None,
    params: PyTree,
    d: PyTree,
    *,
    matvec: Callable[[PyTree], PyTree] | None = None,
    batches: PyTree | None = None,
    batch: PyTree | None = None,
) -> jax.Array:
    r"""Curvature of the loss along a direction: one Hessian-vector product.

    .. math::
        \kappa(d) = \frac{d^\top H d}{d^\top d} \ \le\ \lambda_{\max}

    Along the optimizer's update it is the curvature the step actually feels (Cohen et al.
    show GD's update aligns with the top eigenvector at the edge of stability, where
    :math:`\kappa \to \lambda_{\max}`). A zero direction gives 0.

    Args:
        loss_fn: ``loss_fn(params)`` (or ``loss_fn(params, batch)`` with ``batch``/``batches``).
        params: the point.
        d: the direction, a pytree like ``params``.
        matvec, batches, batch: as in :func:`top_eigenvalue`.

    Returns:
        :math:`\kappa(d)`, a scalar.

    Examples:
        >>> import jax.numpy as jnp
        >>> from jaxlr.sharpness import directional_curvature
        >>> loss = lambda x: 0.5 * jnp.sum(jnp.array([3.0, 1.0]) * x**2)
        >>> float(directional_curvature(loss, jnp.zeros(2), jnp.array([1.0, 1.0])))
        2.0

    References:
        Cohen et al., Gradient descent on neural networks typically occurs at the edge of
        stability, ICLR 2021.
    """
    dhd, dd = _quadratic_form(loss_fn, params, d, matvec, batches, batch, "directional_curvature")
    return safe_div(dhd, dd)


def gen_step_size(
    loss_fn: Callable[..., jax.Array] | None,
    params: PyTree,
    g: PyTree,
    d: PyTree,
    *,
    matvec: Callable[[PyTree], PyTree] | None = None,
    batches: PyTree | None = None,
    batch: PyTree | None = None,
) -> jax.Array:
    r"""Generalized-Newton (GeN) step size along an update direction: one product.

    .. math::
        \eta^* = \arg\min_\eta \Big[L - \eta\, g^\top d + \tfrac{\eta^2}{2} d^\top H d\Big]
        = \frac{g^\top d}{d^\top H d}

    the minimizer of the second-order model of :math:`L(\theta - \eta d)`, for the update
    :math:`\theta \leftarrow \theta - \eta d` (``d`` the optimizer's direction before the
    learning rate, ``g`` the gradient). With :math:`d = g` on a quadratic it is the exact line
    search. Where :math:`d^\top H d \le 0` the model has no minimizer and the result is ``inf``.

    Args:
        loss_fn: ``loss_fn(params)`` (or ``loss_fn(params, batch)`` with ``batch``/``batches``).
        params: the point.
        g: the gradient at ``params``.
        d: the update direction, a pytree like ``params``.
        matvec, batches, batch: as in :func:`top_eigenvalue`.

    Returns:
        :math:`\eta^*`, a scalar.

    Examples:
        >>> import jax, jax.numpy as jnp
        >>> from jaxlr.sharpness import gen_step_size
        >>> loss = lambda x: 0.5 * jnp.sum(jnp.array([4.0, 4.0]) * x**2)
        >>> x = jnp.array([1.0, -1.0])
        >>> g = jax.grad(loss)(x)
        >>> float(gen_step_size(loss, x, g, g))  # 1 / 4: one step to the minimum
        0.25

    References:
        Bu & Xu, Automatic gradient descent with generalized Newton's method, 2024.
    """
    dhd, _ = _quadratic_form(loss_fn, params, d, matvec, batches, batch, "gen_step_size")
    gd = jnp.vdot(ravel_pytree(g)[0], ravel_pytree(d)[0]).astype(dhd.dtype)
    return safe_div(gd, jnp.where(dhd > 0, dhd, 0.0), jnp.inf)
