"""The pure-parameters loss of a flax NNX module, as the estimators and transforms take it."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax

from jaxlr._src.validate import Checker


def nnx_loss(model: Any, loss_fn: Callable[..., jax.Array], *, wrt: Any = None) -> Callable:
    r"""``loss(params, *args) = loss_fn(nnx.merge(graphdef, params, rest), *args)`` for a module.

    .. math::
        L(\theta, b) = \ell\bigl(\mathrm{merge}(g, \theta, r),\ b\bigr)

    The estimators differentiate a function of a parameter pytree; an NNX training step writes
    its loss as a function of the model (``loss_fn(model, batch)``). This splits ``model``
    once into its graph ``g``, the ``wrt`` variables (the ``nnx.State`` that
    ``nnx.Optimizer`` passes to ``tx.update`` as ``params``) and the rest ``r``, and returns the
    pure loss of the parameter state. The rest (batch-norm statistics, RNG counts) is taken as
    it is now: put the model in a deterministic mode first (``model.eval()``, or fixed dropout
    keys), otherwise the "Hessian" changes from product to product. flax is imported only when
    this is called.

    Args:
        model: a ``flax.nnx.Module``.
        loss_fn: ``loss_fn(model, *args)``, a scalar loss (``args`` is typically one batch).
        wrt: the variables the loss is a function of (an ``nnx`` filter); default
            ``nnx.Param``, as ``nnx.Optimizer``.

    Returns:
        ``loss(params, *args)`` with ``params`` an ``nnx.State`` like ``nnx.state(model, wrt)``.

    Raises:
        ValueError: ``model`` is not an ``nnx.Module`` or ``loss_fn`` is not callable.

    Examples:
        >>> import jax, jax.numpy as jnp
        >>> from flax import nnx
        >>> from jaxlr.sharpness import nnx_loss, top_eigenvalue
        >>> model = nnx.Linear(2, 1, use_bias=False, rngs=nnx.Rngs(0))
        >>> mse = lambda m, batch: 0.5 * jnp.mean((m(batch["x"]) - batch["y"]) ** 2)
        >>> loss = nnx_loss(model, mse)
        >>> batch = {"x": jnp.array([[2.0, 0.0], [0.0, 1.0]]), "y": jnp.zeros((2, 1))}
        >>> params = nnx.state(model, nnx.Param)
        >>> e = top_eigenvalue(loss, params, batch=batch, key=jax.random.key(0))
        >>> round(float(e.eigenvalue), 4)  # the Hessian is X^T X / 2 = diag(2, 0.5)
        2.0

    References:
        Flax NNX, "Functional API" (nnx.split / nnx.merge), https://flax.readthedocs.io.
    """
    from flax import nnx

    c = Checker("nnx_loss")
    if not isinstance(model, nnx.Module):
        c.fail(f"model must be a flax.nnx.Module, got model of type {type(model).__name__}")
    if not callable(loss_fn):
        c.fail(f"loss_fn must be callable as loss_fn(model, *args), got loss_fn={loss_fn!r}")
    graphdef, _, rest = nnx.split(model, nnx.Param if wrt is None else wrt, ...)

    def loss(params, *args):
        return loss_fn(nnx.merge(graphdef, params, rest), *args)

    return loss
