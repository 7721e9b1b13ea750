"""Hessian-vector products and the flat linear operators the estimators iterate on."""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.flatten_util import ravel_pytree

from jaxlr._src.typing import PyTree
from jaxlr._src.validate import Checker, key_data

FlatOperator = Callable[[jax.Array], jax.Array]

# Curvature products run at full matmul precision: the TPU/GPU default (bf16 passes) puts ~1e-3
# relative noise on every product, above the accuracy Lanczos reaches. JAX bakes the precision
# into each dot/conv when it is traced, so the context must surround the tracing of the product.
_PRECISION = "highest"


_CONCRETE_CHECKS = {"tol": "nonnegative", "bandwidth": "positive"}


def compiled(*static: str) -> Callable:
    """Decorator: ``jax.jit`` with the callables and structural arguments static.

    Estimators compile as one program (an eager call would dispatch op by op); inside a user's
    ``jit`` the inner ``jit`` is inlined. Data (``params``, ``batch``, ``key``, ``v0``) is
    traced, so one compiled program serves every batch: bind the batch with ``batch=``, not in a
    new closure per step (a new ``loss_fn`` object is a new static argument and recompiles).
    Array arguments that must be checked concretely (``tol``, ``bandwidth``, ``key``) are
    validated before the ``jit``, where they can still be inspected.
    """

    def decorate(fn: Callable) -> Callable:
        jitted = jax.jit(fn, static_argnames=("loss_fn", "matvec", *static))

        @functools.wraps(fn)
        def estimator(*args, **kwargs):
            checker = Checker(fn.__name__)
            for name, rule in _CONCRETE_CHECKS.items():
                if name in kwargs:
                    getattr(checker, rule)(name, kwargs[name])
            if "key" in kwargs:  # raw data unless typed (a typed key keeps its impl)
                key = kwargs["key"]
                data = key_data(fn.__name__, key)
                if not jnp.issubdtype(getattr(key, "dtype", np.uint32), jax.dtypes.prng_key):
                    kwargs["key"] = data
            for name in static:  # static: an array here would fail inside jit's cache lookup
                value = kwargs.get(name)
                if isinstance(value, (jax.Array, np.ndarray)):
                    checker.fail(
                        f"{name} must be a Python value (static: it sets loop lengths and "
                        f"shapes), got an array {name}={value!r}"
                    )
            return jitted(*args, **kwargs)

        return estimator

    return decorate


def hvp(loss_fn: Callable[[PyTree], jax.Array], params: PyTree, v: PyTree) -> PyTree:
    r"""Hessian-vector product of ``loss_fn`` at ``params`` (forward-over-reverse).

    .. math::
        H v = \frac{\partial}{\partial \epsilon}\, \nabla L(\theta + \epsilon v)\Big|_{\epsilon=0}

    Computed as ``jax.jvp`` of ``jax.grad`` under ``jax.default_matmul_precision("highest")``;
    it costs about two to three gradient evaluations.

    Args:
        loss_fn: scalar loss of the parameters. It must be a deterministic function of
            ``params``: close over a fixed dropout key and an explicit train/eval mode for
            normalization layers, otherwise the "Hessian" changes from product to product.
        params: the point (any pytree of float arrays).
        v: the direction, a pytree with the structure of ``params``.

    Returns:
        :math:`Hv`, a pytree like ``params``.

    Examples:
        >>> import jax.numpy as jnp
        >>> from jaxlr.sharpness import hvp
        >>> loss = lambda x: 0.5 * jnp.sum(jnp.array([3.0, 1.0, -5.0]) * x**2)
        >>> hvp(loss, jnp.zeros(3), jnp.ones(3)).tolist()
        [3.0, 1.0, -5.0]

    References:
        Pearlmutter, Fast exact multiplication by the Hessian, Neural Computation 1994.
    """
    with jax.default_matmul_precision(_PRECISION):
        return jax.jvp(jax.grad(loss_fn), (params,), (v,))[1]


def gnvp(
    model_fn: Callable[[PyTree], Any],
    output_loss_fn: Callable[[Any], jax.Array],
    params: PyTree,
    v: PyTree,
) -> PyTree:
    r"""Gauss-Newton-vector product :math:`J^\top H_\ell J v`.

    .. math::
        G v = J^\top \bigl(\nabla^2_z \ell(z)\bigr) J v, \qquad z = f(\theta),\
        J = \partial f / \partial \theta

    ``G`` is positive semi-definite whenever the loss on outputs is convex (squared error,
    softmax cross-entropy), unlike the full Hessian, which adds the indefinite term
    :math:`\sum_i \partial_{z_i}\ell\, \nabla^2 f_i`. One forward pass is linearized and reused
    for the Jacobian product and its transpose.

    Args:
        model_fn: maps ``params`` to the model outputs ``z`` (any pytree of arrays).
        output_loss_fn: scalar loss of the outputs ``z`` (targets closed over).
        params: the point.
        v: the direction, a pytree like ``params``.

    Returns:
        :math:`Gv`, a pytree like ``params``.

    Examples:
        >>> import jax.numpy as jnp
        >>> from jaxlr.sharpness import gnvp
        >>> A = jnp.array([[1.0, 2.0], [0.0, 1.0]])
        >>> out = gnvp(lambda w: A @ w, lambda z: 0.5 * jnp.sum(z**2), jnp.zeros(2), jnp.ones(2))
        >>> out.tolist()  # A^T A [1, 1]
        [3.0, 7.0]

    References:
        Schraudolph, Fast curvature matrix-vector products for second-order gradient descent,
        Neural Computation 2002.
    """
    with jax.default_matmul_precision(_PRECISION):
        z, jvp_fn = jax.linearize(model_fn, params)
        hjv = jax.jvp(jax.grad(output_loss_fn), (z,), (jvp_fn(v),))[1]
        return jax.linear_transpose(jvp_fn, params)(hjv)[0]


def _num_batches(batches: PyTree, fn_name: str) -> int:
    leaves = jax.tree.leaves(batches)
    sizes = {jnp.shape(x)[0] if jnp.ndim(x) else None for x in leaves}
    if not leaves or len(sizes) != 1 or None in sizes or 0 in sizes:
        raise ValueError(
            f"{fn_name}: batches must be a pytree of arrays sharing a leading (batch-count) axis "
            f">= 1, got leading sizes {sorted(str(s) for s in sizes)}"
        )
    return sizes.pop()


def full_batch_hvp(
    loss_fn: Callable[[PyTree, Any], jax.Array], params: PyTree, v: PyTree, *, batches: PyTree
) -> PyTree:
    r"""HVP of the loss averaged over a stack of batches, accumulated with ``lax.scan``.

    .. math::
        \bar H v = \frac1B \sum_{b=1}^{B} \nabla^2 L(\theta; \mathcal D_b)\, v

    Sharpness is a property of the training objective, the full-batch loss. One small
    mini-batch *overestimates* it: :math:`\lambda_{\max}` is convex in the matrix, so the
    average of per-batch values is at least the value of the averaged Hessian (with 2 examples
    per batch in a 20-dimensional regression the overestimate is several-fold; see the tests).
    Memory stays that of one batch: the batches are visited one at a time.

    Args:
        loss_fn: ``loss_fn(params, batch)``, the mean loss on one batch (equal-sized batches make
            the average equal to the full-batch Hessian). Dropout keys and normalization modes
            must be fixed inside it.
        params: the point.
        v: the direction, a pytree like ``params``.
        batches: a pytree whose leaves share a leading axis ``B`` (the stacked batches).

    Returns:
        :math:`\bar H v`, a pytree like ``params``.

    Raises:
        ValueError: leaves of ``batches`` without a common leading axis.

    Examples:
        >>> import jax.numpy as jnp
        >>> from jaxlr.sharpness import full_batch_hvp
        >>> loss = lambda w, x: 0.5 * jnp.mean((x * w) ** 2)
        >>> xs = jnp.array([[1.0, 1.0], [3.0, 3.0]])  # two batches of two points
        >>> float(full_batch_hvp(loss, jnp.array(0.0), jnp.array(1.0), batches=xs))
        5.0

    References:
        Ghorbani, Krishnan & Xiao, An investigation into neural net optimization via Hessian
        eigenvalue density, ICML 2019.
    """
    num = _num_batches(batches, "full_batch_hvp")

    def body(acc, batch):
        hv = hvp(lambda p: loss_fn(p, batch), params, v)
        return jax.tree.map(jnp.add, acc, hv), None

    total, _ = jax.lax.scan(body, jax.tree.map(jnp.zeros_like, v), batches)
    return jax.tree.map(lambda t: t / num, total)


def krylov_dtype(dtype) -> jnp.dtype:
    """The dtype of Krylov vectors and reductions: float32 at least (bf16/f16 params)."""
    return jnp.promote_types(dtype, jnp.float32)


def bind_batch(
    loss_fn: Callable[..., jax.Array] | None, batch: PyTree | None, fn_name: str
) -> Callable[..., jax.Array] | None:
    """``params -> loss_fn(params, batch)`` when a batch is given, else ``loss_fn`` itself."""
    if batch is None or loss_fn is None:
        return loss_fn
    return lambda p: loss_fn(p, batch)


UNROLL_MAX_ITERS = 64  # above this, unrolling costs more compile time than it saves


def _has_convolution(jaxpr) -> bool:
    for eqn in jaxpr.eqns:
        if eqn.primitive.name == "conv_general_dilated":
            return True
        for value in eqn.params.values():
            for sub in value if isinstance(value, (tuple, list)) else (value,):
                inner = getattr(sub, "jaxpr", sub)
                if hasattr(inner, "eqns") and _has_convolution(inner):
                    return True
    return False


def should_unroll(op: FlatOperator, flat: jax.Array, num_iters: int) -> bool:
    """Whether an estimator's loop should be unrolled by default: on XLA:CPU, for an operator
    with a convolution, for budgets up to ``UNROLL_MAX_ITERS`` products.

    XLA:CPU runs convolutions far slower inside loop bodies (jax-ml/jax#12868); elsewhere, and
    for products without convolutions, a loop compiles faster and runs as fast.
    """
    if jax.default_backend() != "cpu" or num_iters > UNROLL_MAX_ITERS:
        return False
    return _has_convolution(jax.make_jaxpr(op)(flat).jaxpr)


def check_params(fn_name: str, params: PyTree) -> None:
    """Raises unless every leaf of ``params`` is floating point, naming the first that is not."""
    for path, leaf in jax.tree_util.tree_leaves_with_path(params):
        dtype = jnp.result_type(leaf)
        if not jnp.issubdtype(dtype, jnp.floating):
            raise ValueError(
                f"{fn_name}: params must hold only floating-point leaves (curvature is taken "
                f"with respect to every leaf), got dtype={dtype} at "
                f"params{jax.tree_util.keystr(path)}; close over integer state in loss_fn or "
                f"cast the leaf to a float dtype"
            )


def check_loss_arity(
    fn_name: str, loss_fn: Callable | None, batch: PyTree | None, batches: PyTree | None
) -> None:
    """Raises when ``loss_fn`` needs a second argument but neither ``batch`` nor ``batches`` is
    given (the call would fail deep inside tracing with a bare ``TypeError``)."""
    if loss_fn is None or batch is not None or batches is not None:
        return
    try:
        signature = inspect.signature(loss_fn)
    except (TypeError, ValueError):  # builtins and C callables: nothing to check
        return
    try:
        signature.bind(None)
    except TypeError:
        raise ValueError(
            f"{fn_name}: loss_fn{signature} needs more than the params; pass its data as "
            f"batch= (one batch) or batches= (stacked batches), got batch=None and batches=None"
        ) from None


def flat_operator(
    loss_fn: Callable[..., jax.Array] | None,
    params: PyTree,
    *,
    matvec: Callable[[PyTree], PyTree] | None,
    batches: PyTree | None,
    fn_name: str,
    batch: PyTree | None = None,
) -> tuple[jax.Array, Callable[[jax.Array], PyTree], FlatOperator]:
    """``(flat_params, unravel, op)`` with ``op`` the curvature operator on flat vectors.

    Priority: a custom pytree ``matvec``; else the HVP averaged over ``batches``; else the HVP of
    ``loss_fn(params)`` (``loss_fn(params, batch)`` with a ``batch``), computed on the parameter
    tree (forward-over-reverse) and flattened only at its ends.

    Low precision: the flat vectors (Krylov basis, dot products, the tridiagonal matrix) are
    float32 at least; each product casts its input to the parameters' dtype, runs the HVP in
    the model's own dtype, and returns float32. ``unravel`` casts back to the leaf dtypes.
    """
    check_params(fn_name, params)
    if matvec is None:
        check_loss_arity(fn_name, loss_fn, batch, batches)
    flat, unravel_p = ravel_pytree(params)
    if batch is not None and batches is not None:
        raise ValueError(
            f"{fn_name}: pass batch= (one batch) or batches= (stacked, averaged), not both"
        )
    pdtype, kdtype = flat.dtype, krylov_dtype(flat.dtype)

    def unravel(x):
        return unravel_p(x.astype(pdtype))

    def wrap(pytree_op):
        def op(x):
            with jax.default_matmul_precision(_PRECISION):
                return ravel_pytree(pytree_op(unravel(x)))[0].astype(kdtype)

        return op

    flat_k = flat.astype(kdtype)
    if matvec is not None:
        return flat_k, unravel, wrap(matvec)
    if loss_fn is None:
        raise ValueError(f"{fn_name}: pass loss_fn or matvec, got loss_fn=None and matvec=None")
    if batches is not None:
        _num_batches(batches, fn_name)
        return flat_k, unravel, wrap(lambda v: full_batch_hvp(loss_fn, params, v, batches=batches))
    loss = bind_batch(loss_fn, batch, fn_name)
    grad = jax.grad(loss)

    def op(x):
        # The product runs on the parameter tree, fenced off from the flat vector by
        # optimization barriers: without them XLA fuses the (un)flattening into the HVP's
        # weight-tangent transposes, a strided copy that doubled the product's cost (3.98 vs
        # 1.95 gradients at 1.3M parameters). A jvp of the gradient (rather than a stored
        # linearization) keeps no residuals alive across a loop; XLA hoists what is invariant.
        with jax.default_matmul_precision(_PRECISION):
            t = jax.lax.optimization_barrier(unravel_p(x.astype(pdtype)))
            hv = jax.jvp(grad, (params,), (t,))[1]
            return ravel_pytree(jax.lax.optimization_barrier(hv))[0].astype(kdtype)

    return flat_k, unravel, _traced_once(op, flat_k)


def _traced_once(op: FlatOperator, flat: jax.Array) -> FlatOperator:
    """``op`` traced once to a jaxpr and replayed at every call site (the loop, the final
    Rayleigh products, the loop-form check), so ``loss_fn`` is traced once per compile."""
    closed = jax.make_jaxpr(op)(flat)
    return lambda x: jax.core.eval_jaxpr(closed.jaxpr, closed.consts, x)[0]
