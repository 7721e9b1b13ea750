"""Top eigenvalues of the loss Hessian: Lanczos (default) and shifted power iteration."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike

from jaxlr._src.typing import PyTree
from jaxlr._src.validate import Checker
from jaxlr.sharpness import _krylov
from jaxlr.sharpness._hvp import FlatOperator, compiled, flat_operator, should_unroll

METHODS = ("lanczos", "lanczos_two_pass", "power")
MIN_ITERS = {"lanczos": 2, "lanczos_two_pass": 3, "power": 1}


class Eigen(NamedTuple):
    """An eigenvalue estimate with its certificate.

    ``residual`` certifies the estimate: a symmetric H has an eigenvalue within ``residual`` of
    ``eigenvalue`` (and within ``residual**2 / gap`` once the estimate is isolated by a ``gap``).
    A NaN or infinite loss gives ``eigenvalue = residual = NaN`` and ``converged = False``.

    Examples:
        >>> import jax, jax.numpy as jnp
        >>> from jaxlr.sharpness import top_eigenvalue
        >>> loss = lambda x: 0.5 * jnp.sum(jnp.array([3.0, 1.0, -5.0]) * x**2)
        >>> e = top_eigenvalue(loss, jnp.ones(3), key=jax.random.key(0))
        >>> round(float(e.eigenvalue), 4), bool(e.converged), int(e.num_hvps) <= 4
        (3.0, True, True)
    """

    eigenvalue: jax.Array  # () lambda_max (largest algebraic), or (k,) descending for top-k
    eigenvector: PyTree  # unit vector, a pytree like params (leading axis k for top-k)
    num_hvps: jax.Array  # () int32: operator products used
    residual: jax.Array  # like eigenvalue: ||H v - lambda v|| for the unit v, exact
    converged: jax.Array  # like eigenvalue, bool: residual <= max(tol, 100 eps) * |eigenvalue|


def _check(fn: str, num_iters: Any, method: str, min_iters: int) -> None:
    c = Checker(fn)
    c.integer("num_iters", num_iters, minimum=min_iters, static=True)
    c.choice("method", method, METHODS)


def _converged(lam: jax.Array, res: jax.Array, tol: ArrayLike) -> jax.Array:
    """``residual <= max(tol, 100 eps) |lambda|``: ``tol=0`` still flags working accuracy."""
    floor = 100 * jnp.finfo(lam.dtype).eps
    return jnp.isfinite(lam) & jnp.isfinite(res) & (res <= jnp.maximum(tol, floor) * jnp.abs(lam))


def _top_flat(
    op: FlatOperator,
    flat: jax.Array,
    *,
    key: jax.Array,
    num_iters: int,
    method: str,
    v0: jax.Array | None,
    tol: ArrayLike,
    k: int = 1,
    budget: jax.Array | None = None,
    unroll: bool | None = None,
) -> tuple[jax.Array, jax.Array, jax.Array, jax.Array, jax.Array]:
    """``(eigenvalues, unit vectors (k, n), residuals, converged, num_hvps)`` on flat vectors.

    ``num_iters`` counts every product: ``num_iters - k`` iterations, then ``k`` final products
    that give the exact residuals and the differentiable Rayleigh quotients. A traced Lanczos
    ``budget`` (<= ``num_iters``, products included) stops earlier within the same program.
    ``unroll=None`` unrolls the Lanczos loops where :func:`should_unroll` says so; an unrolled
    loop spends (and counts) every product of its budget.
    """
    if unroll is None:
        unroll = method != "power" and should_unroll(op, flat, num_iters)
    n, dtype = flat.shape[0], flat.dtype
    start_key, restart_key = jax.random.split(key)
    v = _krylov.start_vector(v0, start_key, n, dtype)
    tol = jnp.asarray(tol, dtype)
    if method == "power":
        run = _krylov.power(op, v, num_iters - k, tol=tol)
        vectors, used = run.vector[None], run.num_hvps
    else:
        # two-pass: the second pass repeats all but one product of the first
        store = method == "lanczos"
        cap = num_iters if budget is None else jnp.minimum(budget, num_iters)
        steps = num_iters - k if store else (num_iters - k + 1) // 2
        budget = None if budget is None else (cap - k if store else (cap - k + 1) // 2)
        run = _krylov.lanczos(
            op,
            v,
            restart_key,
            steps,
            tol=tol,
            num_wanted=k,
            budget=budget,
            store_basis=store,
            unroll=unroll,
        )
        finite = run.finite
        _, coef = _krylov.top_ritz(
            jnp.where(finite, run.alphas, 0.0),
            jnp.where(finite, run.betas, 0.0),
            run.valid,
            run.num_hvps,
            k,
        )
        if not store:
            # the start vector again, drawn after the first pass (the barrier stops XLA from
            # merging the two draws), so no n-vector stays alive across that pass
            start_key, _ = jax.lax.optimization_barrier((start_key, coef))
            v = _krylov.start_vector(v0, start_key, n, dtype)
            vectors = _krylov.recombine(op, v, restart_key, coef, run.num_hvps, unroll=unroll)
            used = 2 * (steps if unroll else run.num_hvps) - 1
        else:
            # an unrolled loop computes every step (its early exit only freezes the carry)
            vectors, used = coef @ run.basis, (steps if unroll else run.num_hvps)
        vectors = jnp.where(finite, vectors, v)
        # Ritz vectors recombined without a kept basis are not unit once orthogonality is lost
        # (a Rayleigh quotient of a non-unit vector is a wrong eigenvalue): normalized here.
        vectors = jax.vmap(lambda y: _krylov.normalize(y, v))(vectors)
    lam, res = jax.vmap(lambda y: _krylov.rayleigh(op, y))(vectors)
    if method != "power":
        lam = jnp.where(finite, lam, jnp.nan)
        res = jnp.where(finite, res, jnp.nan)
    return lam, vectors, res, _converged(lam, res, tol), used + k


def _flat_v0(v0: PyTree | None, fn: str, flat: jax.Array) -> jax.Array | None:
    if v0 is None:
        return None
    x = jax.flatten_util.ravel_pytree(v0)[0]
    if x.shape != flat.shape:
        Checker(fn).fail(
            f"v0 must have the structure and size of params ({flat.shape[0]} numbers), "
            f"got v0 with {x.shape[0]} numbers"
        )
    return x


def _eigen(
    fn: str,
    op: FlatOperator,
    flat: jax.Array,
    unravel: Callable,
    *,
    key: jax.Array,
    num_iters: int,
    method: str,
    v0: PyTree | None,
    tol: ArrayLike,
    unroll: bool | None = None,
) -> Eigen:
    _check(fn, num_iters, method, MIN_ITERS.get(method, 1))
    lam, vecs, res, conv, used = _top_flat(
        op,
        flat,
        key=key,
        num_iters=num_iters,
        method=method,
        v0=_flat_v0(v0, fn, flat),
        tol=tol,
        unroll=unroll,
    )
    return Eigen(lam[0], unravel(vecs[0]), used, res[0], conv[0])


@compiled("num_iters", "method", "unroll")
def top_eigenvalue(
    loss_fn: Callable[..., jax.Array] | None,
    params: PyTree,
    *,
    key: jax.Array,
    num_iters: int = 20,
    method: str = "lanczos",
    v0: PyTree | None = None,
    tol: ArrayLike = 1e-3,
    matvec: Callable[[PyTree], PyTree] | None = None,
    batches: PyTree | None = None,
    batch: PyTree | None = None,
    unroll: bool | None = None,
) -> Eigen:
    r"""Sharpness :math:`\lambda_{\max}(\nabla^2 L(\theta))`, the largest *algebraic* eigenvalue.

    .. math::
        \lambda_{\max} = \max_{\|v\|=1} v^\top H v, \qquad
        \text{certified by } r = \|H v - \lambda v\| \ (|\lambda - \lambda_i| \le r
        \text{ for some eigenvalue } \lambda_i)

    ``method="lanczos"`` (default) runs Lanczos with full reorthogonalization: its Ritz value
    converges like a Chebyshev polynomial in the eigenvalue gap, far faster than power iteration,
    and breakdown (``num_iters`` above the dimension, a zero Hessian) restarts from a random
    orthogonal vector instead of dividing by zero. ``method="power"`` runs power iteration on
    ``H + sigma I`` with an adaptive shift ``sigma = ||Hv|| - v^T H v >= 0`` so it also returns
    :math:`\lambda_{\max}`; ``optax.power_iteration`` returns the eigenvalue of largest
    *magnitude* (-5 for diag(3, 1, -5)). ``method="lanczos_two_pass"`` is Lanczos for models
    whose ``(num_iters, n)`` basis does not fit beside them: it stores no basis (the plain
    three-term recurrence, a few vectors of the params' size), then rebuilds the Ritz vector by
    repeating the recurrence, so it spends about twice the products of ``"lanczos"`` for the
    same Krylov space (without reorthogonalization, converged eigenvalues also reappear as
    spurious copies in T; the largest Ritz value stays right, Paige 1976). All three stop
    early (skipping the remaining products, the trip count stays static) once the relative
    residual is below ``tol``; the last product is spent on the returned vector ``v``, which
    gives the exact residual and a differentiable eigenvalue :math:`v^\top H v` whose gradient
    is :math:`v^\top (\partial H) v`.

    Args:
        loss_fn: ``loss_fn(params)``, or ``loss_fn(params, batch)`` with ``batch`` or
            ``batches``. Fix dropout keys and normalization modes inside it. Ignored when
            ``matvec`` is given. It is a static argument: reuse one function object and pass the
            data as ``batch`` (a new closure per step would compile again).
        params: the point, any pytree of float arrays (plain dict, ``nnx.State``, linen
            variables).
        key: PRNG key for the start vector and breakdown restarts.
        num_iters: static budget of operator products, the final one included (Lanczos: >= 2,
            two-pass Lanczos: >= 3, both passes counted).
        method: ``"lanczos"`` (keeps a ``(num_iters, n)`` float32 basis), ``"lanczos_two_pass"``
            (O(n) memory) or ``"power"`` (O(n) memory, slower convergence).
        v0: warm start, a pytree like ``params`` (e.g. the previous ``eigenvector``); a zero or
            non-finite ``v0`` falls back to a random start.
        tol: relative residual at which to stop early; 0 runs all ``num_iters``.
        matvec: custom symmetric operator on pytrees like ``params`` (e.g. a Gauss-Newton
            product from :func:`gnvp`); replaces the Hessian of ``loss_fn``.
        batches: stacked batches (leading axis B) for the full-batch Hessian, see
            :func:`full_batch_hvp`.
        batch: one batch (any pytree of arrays), the second argument of ``loss_fn``. It is
            data: one compiled program serves every batch of the same shapes.
        unroll: unroll the Lanczos loops into straight-line code (static). ``None`` (default)
            unrolls on XLA:CPU when the product contains a convolution and ``num_iters <= 64``:
            XLA:CPU runs convolutions many times slower inside loop bodies (jax-ml/jax#12868;
            20 products of a small CNN: 141 gradients in a loop, 4.6 unrolled). An unrolled
            loop has no early exit (it spends, and ``num_hvps`` counts, the whole budget) and
            costs compile time (one copy of the product per step); power iteration stays a
            loop.

    Returns:
        :class:`Eigen` with scalar fields. Low-precision params (bfloat16, float16) run their
        products in the model's dtype; the Krylov basis, the reductions and the returned
        eigenvalue are float32 (the eigenvector is cast back to the params' dtypes).

    Raises:
        ValueError: ``num_iters`` not an int >= 2 (>= 1 for power), a negative ``tol``, an
            unknown ``method``, a ``v0`` of the wrong size, non-float ``params``, a ``key``
            that is not a PRNG key, both ``batch`` and ``batches``.

    Traced arguments: ``params``, ``key``, ``v0``, ``tol``, ``batch`` and ``batches`` may be
    traced (jit, vmap over keys or a sweep's stacked params, grad).

    Examples:
        >>> import jax, jax.numpy as jnp, optax
        >>> from jaxlr.sharpness import top_eigenvalue
        >>> loss = lambda x: 0.5 * jnp.sum(jnp.array([3.0, 1.0, -5.0]) * x**2)
        >>> x, key = jnp.ones(3), jax.random.key(0)
        >>> round(float(top_eigenvalue(loss, x, key=key).eigenvalue), 4)
        3.0
        >>> e = top_eigenvalue(loss, x, key=key, method="power", num_iters=200, tol=1e-7)
        >>> round(float(e.eigenvalue), 3)
        3.0
        >>> e = top_eigenvalue(loss, x, key=key, method="lanczos_two_pass")  # no stored basis
        >>> round(float(e.eigenvalue), 4), bool(e.converged)
        (3.0, True)
        >>> mse = lambda w, b: 0.5 * jnp.mean((b["x"] @ w - b["y"]) ** 2)  # batch as data
        >>> b = {"x": jnp.eye(3) * jnp.array([3.0, 1.0, 2.0]) ** 0.5 * 3**0.5, "y": jnp.zeros(3)}
        >>> round(float(top_eigenvalue(mse, x, batch=b, key=key).eigenvalue), 4)
        3.0
        >>> hvp_fn = lambda v: jax.jvp(jax.grad(loss), (x,), (v,))[1]
        >>> round(float(optax.power_iteration(hvp_fn, v0=jnp.ones(3))[0]), 3)  # largest |lambda|
        -5.0

    References:
        Lanczos, An iteration method for the solution of the eigenvalue problem, 1950;
        Parlett, The Symmetric Eigenvalue Problem, 1998 (full reorthogonalization);
        Paige, Error analysis of the Lanczos algorithm for tridiagonalizing a symmetric matrix,
        IMA J. Appl. Math. 1976 (Lanczos without reorthogonalization);
        Cohen et al., Gradient descent on neural networks typically occurs at the edge of
        stability, ICLR 2021.
    """
    flat, unravel, op = flat_operator(
        loss_fn, params, matvec=matvec, batches=batches, batch=batch, fn_name="top_eigenvalue"
    )
    return _eigen(
        "top_eigenvalue",
        op,
        flat,
        unravel,
        key=key,
        num_iters=num_iters,
        method=method,
        v0=v0,
        tol=tol,
        unroll=unroll,
    )


@compiled("k", "num_iters", "unroll")
def top_k_eigenvalues(
    loss_fn: Callable[..., jax.Array] | None,
    params: PyTree,
    *,
    k: int,
    key: jax.Array,
    num_iters: int | None = None,
    tol: ArrayLike = 1e-3,
    matvec: Callable[[PyTree], PyTree] | None = None,
    batches: PyTree | None = None,
    batch: PyTree | None = None,
    unroll: bool | None = None,
) -> Eigen:
    r"""The ``k`` largest (algebraic) Hessian eigenvalues, descending, by Lanczos.

    .. math::
        \lambda_1 \ge \lambda_2 \ge \dots \ge \lambda_k, \qquad
        r_i = \|H v_i - \lambda_i v_i\|

    Runs ``num_iters - k`` Lanczos steps with full reorthogonalization (stopping early once the
    top ``k`` relative residual estimates are below ``tol``), then spends ``k`` products on the
    Ritz vectors for exact residuals and differentiable Rayleigh quotients. It always returns
    ``k`` values: ``k`` Ritz values need at least ``k`` Lanczos steps, so a budget below ``2 k``
    is refused. ``converged`` is the exact residual test, so a value from too small a budget
    says so. A Krylov method
    finds one copy of a repeated eigenvalue per start vector; breakdown restarts recover others
    only when the Krylov space is exhausted, so a copy can be missed: a triple eigenvalue 5 over
    2, 1 and a bulk can come back with ``k=4`` as [5, 5, 2, 1], each pair converged (it depends
    on the start vector). ``converged`` says that a value is an eigenvalue to the tolerance,
    not that none above it was missed.

    Args:
        loss_fn, params, key, tol, matvec, batches, batch, unroll: as in
            :func:`top_eigenvalue`.
        k: number of eigenvalues (static), ``1 <= k <= `` the number of parameters.
        num_iters: static product budget, the ``k`` final products included, ``>= 2 k``;
            default ``max(40, 3 k)``.

    Returns:
        :class:`Eigen` whose fields have a leading axis ``k``; ``eigenvector`` is a pytree like
        ``params`` with leading axis ``k``.

    Raises:
        ValueError: ``k`` outside ``[1, dim]``, ``num_iters < 2 k``, a negative ``tol``.

    Examples:
        >>> import jax, jax.numpy as jnp
        >>> from jaxlr.sharpness import top_k_eigenvalues
        >>> loss = lambda x: 0.5 * jnp.sum(jnp.array([3.0, 1.0, -5.0, 2.0]) * x**2)
        >>> e = top_k_eigenvalues(loss, jnp.ones(4), k=2, key=jax.random.key(0), num_iters=8)
        >>> [round(x, 4) for x in e.eigenvalue.tolist()]
        [3.0, 2.0]

    References:
        Golub & Van Loan, Matrix Computations, 4th ed., 2013, section 10.1 (Lanczos).
    """
    fn = "top_k_eigenvalues"
    flat, unravel, op = flat_operator(
        loss_fn, params, matvec=matvec, batches=batches, batch=batch, fn_name=fn
    )
    Checker(fn).integer("k", k, minimum=1, maximum=flat.shape[0], static=True)
    if num_iters is None:
        num_iters = max(40, 3 * k)
    if isinstance(num_iters, int) and not isinstance(num_iters, bool) and num_iters < 2 * k:
        Checker(fn).fail(
            f"num_iters must be >= 2 * k = {2 * k} (k Lanczos steps give k Ritz values, then k "
            f"products certify them), got num_iters={num_iters!r}, k={k}"
        )
    _check(fn, num_iters, "lanczos", 2 * k)
    lam, vecs, res, conv, used = _top_flat(
        op,
        flat,
        key=key,
        num_iters=num_iters,
        method="lanczos",
        v0=None,
        tol=tol,
        k=k,
        unroll=unroll,
    )
    return Eigen(lam, jax.vmap(unravel)(vecs), used, res, conv)
