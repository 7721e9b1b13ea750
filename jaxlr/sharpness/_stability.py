"""Stability thresholds of optimizers on a quadratic, and the dimensionless stability ratio."""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike

from jaxlr._src.numeric import as_float, safe_div
from jaxlr._src.validate import Checker

KINDS = ("gd", "heavy_ball", "nesterov", "adam")


def _validate(fn: str, kind: str, momentum: ArrayLike, b1: ArrayLike) -> None:
    c = Checker(fn)
    c.choice("kind", kind, KINDS)
    for name, value in (("momentum", momentum), ("b1", b1)):
        a = c.finite(name, value)
        if a is not None and not bool(((a >= 0) & (a < 1)).all()):
            c.fail(f"{name} must be in [0, 1), got {name}={a.tolist()!r}")


def _critical_product(kind: str, momentum: ArrayLike, b1: ArrayLike) -> jax.Array:
    """``c`` such that the iteration is stable on ``f = lambda x^2 / 2`` iff ``eta lambda < c``."""
    b = as_float(momentum)
    if kind == "gd":
        return as_float(2.0)
    if kind == "heavy_ball":
        return 2.0 + 2.0 * b
    if kind == "nesterov":
        return (2.0 + 2.0 * b) / (1.0 + 2.0 * b)
    b1 = as_float(b1)
    return (2.0 + 2.0 * b1) / (1.0 - b1)


def stability_threshold(
    learning_rate: ArrayLike,
    *,
    kind: str = "gd",
    momentum: ArrayLike = 0.0,
    b1: ArrayLike = 0.9,
) -> jax.Array:
    r"""The sharpness above which an optimizer diverges on a quadratic: :math:`c / \eta`.

    .. math::
        \text{gd: } \frac{2}{\eta}, \quad
        \text{heavy\_ball: } \frac{2 + 2\beta}{\eta}, \quad
        \text{nesterov: } \frac{2 + 2\beta}{(1 + 2\beta)\,\eta}, \quad
        \text{adam: } \frac{2 + 2\beta_1}{(1 - \beta_1)\,\eta}

    ``heavy_ball`` is ``optax.sgd(eta, momentum=beta)``, ``nesterov`` the same with
    ``nesterov=True``. ``adam`` is EMA momentum ``m <- b1 m + (1 - b1) g`` on the preconditioned
    operator, so compare it with :func:`preconditioned_top_eigenvalue` (38/eta at b1 = 0.9): it
    holds while Adam's preconditioner changes slowly. Each threshold is where an eigenvalue of
    the linear recurrence on :math:`f(x) = \lambda x^2/2` crosses -1.

    Args:
        learning_rate: :math:`\eta > 0` (may be traced, any shape).
        kind: ``"gd"``, ``"heavy_ball"``, ``"nesterov"`` or ``"adam"``.
        momentum: :math:`\beta \in [0, 1)` for heavy_ball and nesterov.
        b1: Adam's :math:`\beta_1 \in [0, 1)`.

    Returns:
        The critical sharpness, an array shaped like ``learning_rate``.

    Raises:
        ValueError: concrete ``learning_rate <= 0``, ``momentum`` or ``b1`` outside [0, 1),
            unknown ``kind``.

    Traced arguments: a traced ``learning_rate <= 0`` gives ``inf``.

    Examples:
        >>> from jaxlr.sharpness import stability_threshold
        >>> float(stability_threshold(0.1))
        20.0
        >>> round(float(stability_threshold(0.1, kind="adam", b1=0.9)), 4)
        380.0

    References:
        Cohen et al., Gradient descent on neural networks typically occurs at the edge of
        stability, ICLR 2021; Cohen et al., Adaptive gradient methods at the edge of stability,
        2022.
    """
    _validate("stability_threshold", kind, momentum, b1)
    Checker("stability_threshold").positive("learning_rate", learning_rate)
    lr = as_float(learning_rate)
    return safe_div(_critical_product(kind, momentum, b1), lr, jnp.inf)


def stability_ratio(
    learning_rate: ArrayLike,
    eigenvalue: ArrayLike,
    *,
    kind: str = "gd",
    momentum: ArrayLike = 0.0,
    b1: ArrayLike = 0.9,
) -> jax.Array:
    r"""Dimensionless stability ratio :math:`\rho = \lambda / \text{threshold}(\eta)`.

    .. math::
        \rho = \frac{\eta \lambda}{c}, \qquad \rho < 1 \text{ stable}, \ \rho > 1
        \text{ divergent along the top eigenvector}

    Args:
        learning_rate: :math:`\eta > 0`.
        eigenvalue: the (preconditioned, for ``kind="adam"``) sharpness :math:`\lambda`.
        kind, momentum, b1: as in :func:`stability_threshold`.

    Returns:
        :math:`\rho`, broadcast over ``learning_rate`` and ``eigenvalue``.

    Raises:
        ValueError: as :func:`stability_threshold`.

    Examples:
        >>> from jaxlr.sharpness import stability_ratio
        >>> float(stability_ratio(0.1, 10.0))  # eta * lambda / 2
        0.5

    References:
        Cohen et al., Gradient descent on neural networks typically occurs at the edge of
        stability, ICLR 2021.
    """
    _validate("stability_ratio", kind, momentum, b1)
    Checker("stability_ratio").positive("learning_rate", learning_rate)
    return as_float(learning_rate) * as_float(eigenvalue) / _critical_product(kind, momentum, b1)


def critical_learning_rate(
    eigenvalue: ArrayLike,
    *,
    kind: str = "gd",
    momentum: ArrayLike = 0.0,
    b1: ArrayLike = 0.9,
) -> jax.Array:
    r"""The largest stable learning rate for a sharpness :math:`\lambda`: :math:`c / \lambda`.

    .. math::
        \eta^* = c / \lambda \quad (c = 2 \text{ for gd; see } \texttt{stability\_threshold})

    Args:
        eigenvalue: sharpness :math:`\lambda`; ``lambda <= 0`` gives ``inf`` (no limit).
        kind, momentum, b1: as in :func:`stability_threshold`.

    Returns:
        :math:`\eta^*`, shaped like ``eigenvalue``.

    Raises:
        ValueError: ``momentum`` or ``b1`` outside [0, 1), unknown ``kind``.

    Examples:
        >>> from jaxlr.sharpness import critical_learning_rate
        >>> float(critical_learning_rate(40.0, kind="heavy_ball", momentum=0.9))
        0.095

    References:
        Cohen et al., Gradient descent on neural networks typically occurs at the edge of
        stability, ICLR 2021.
    """
    _validate("critical_learning_rate", kind, momentum, b1)
    lam = as_float(eigenvalue)
    return safe_div(_critical_product(kind, momentum, b1), jnp.maximum(lam, 0.0), jnp.inf)
