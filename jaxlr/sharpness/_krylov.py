"""Lanczos and shifted power iteration on flat vectors (private numerical core).

Lanczos runs a ``lax.while_loop`` with a static maximum trip count that exits once converged
(or exhausted), so an early stop saves the time as well as the products; power iteration runs a
``lax.scan`` that skips its product with ``lax.cond`` once converged. Both jit, vmap (a batch
runs until every member stops) and sit inside training loops. The iterations see the operator
through ``stop_gradient``: derivatives of an
estimate are taken by the caller on one final product (Hellmann-Feynman), never through the loop.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

from jaxlr._src.numeric import safe_div, safe_sqrt
from jaxlr.sharpness._hvp import FlatOperator


def norm(x: jax.Array, axis=None) -> jax.Array:
    """Euclidean norm with a finite gradient at 0; NaN stays NaN (it is reported, not hidden)."""
    sq = jnp.sum(x * x, axis=axis)
    return jnp.where(jnp.isnan(sq), sq, safe_sqrt(sq))


def normalize(x: jax.Array, fallback: jax.Array) -> jax.Array:
    """``x / ||x||``, or ``fallback`` where ``x`` is zero or not finite."""
    n = norm(x)
    ok = (n > 0) & jnp.isfinite(n)
    return jnp.where(ok, safe_div(x, jnp.where(ok, n, 1.0)), fallback)


def orthogonalize(basis: jax.Array, w: jax.Array) -> jax.Array:
    """Remove from ``w`` its components along the rows of ``basis`` (classical Gram-Schmidt twice).

    Zero rows (not yet filled) contribute nothing, so a fixed-size basis works inside loops; the
    second pass restores orthogonality to rounding level ("twice is enough").
    """
    for _ in range(2):
        w = w - basis.T @ (basis @ w)
    return w


def project(basis: jax.Array, r: jax.Array, rows: jax.Array) -> jax.Array:
    """``r`` minus its components along the first ``rows`` rows of ``basis`` (modified
    Gram-Schmidt, one row at a time).

    The trip count is the number of filled rows, so a step reads only the part of the basis that
    holds vectors (the padded rows past it are never touched) and needs no (block, n) temporary.
    """

    def body(i, r):
        q = basis[i]
        return r - jnp.vdot(q, r) * q

    return jax.lax.fori_loop(0, rows, body, r)


def reorthogonalize(basis: jax.Array, r: jax.Array, rows: jax.Array) -> jax.Array:
    """One Gram-Schmidt pass of ``r`` against the first ``rows`` rows of ``basis``, and a second
    only when the first cancelled more than half of ``r`` (Daniel-Gragg-Kaufman-Stewart
    criterion, 1/sqrt(2)).

    ``r`` has already had the three-term recurrence removed, so the first pass only removes the
    rounding-level drift and the second is rarely needed: each pass reads the filled rows of the
    (m, n) basis, the estimator's largest cost on big models.
    """
    r1 = project(basis, r, rows)
    again = norm(r1) < 0.7071 * norm(r)
    return jax.lax.cond(again, lambda x: project(basis, x, rows), lambda x: x, r1)


def start_vector(v0: jax.Array | None, key: jax.Array, n: int, dtype) -> jax.Array:
    """Unit start vector: ``v0`` when it is usable, else a Gaussian draw from ``key``."""
    rand = normalize(jax.random.normal(key, (n,), dtype), jnp.ones((n,), dtype) / n**0.5)
    if v0 is None:
        return rand
    return normalize(jax.lax.stop_gradient(v0).astype(dtype), rand)


class Krylov(NamedTuple):
    """A Lanczos decomposition ``H Q^T ~ Q^T T`` with padding for the unused rows."""

    basis: jax.Array | None  # (m, n) orthonormal rows, zero past the last one; None: not kept
    alphas: jax.Array  # (m,) diagonal of T
    betas: jax.Array  # (m,) betas[j] couples rows j and j+1; 0 at a breakdown restart
    valid: jax.Array  # (m,) bool: row j holds a genuine Lanczos vector
    anorm: jax.Array  # () largest ||H q_j|| seen, a lower bound on ||H||
    finite: jax.Array  # () bool: every product was finite
    num_hvps: jax.Array  # () int32: products actually computed (= the number of valid rows)
    # (n,) the unit vector past the last row: H Q^T = Q^T T + betas[last] e_last next^T
    next: jax.Array | None = None


def tridiagonal(alphas: jax.Array, betas: jax.Array, valid: jax.Array) -> jax.Array:
    """Dense T from the valid rows; invalid rows get decoupled values below all of T's spectrum.

    The padding sits strictly below every Gershgorin disc of the genuine block, so the largest
    Ritz values always belong to genuine rows and the eigen-decomposition has a fixed size.
    """
    m = alphas.shape[0]
    off = jnp.where(valid[1:], betas[:-1], 0.0)
    radius = jnp.abs(jnp.pad(off, (1, 0))) + jnp.abs(jnp.pad(off, (0, 1)))
    lower = jnp.min(jnp.where(valid, alphas - radius, jnp.inf))
    lower = jnp.where(jnp.isfinite(lower), lower, 0.0)
    pad = lower - (1.0 + jnp.abs(lower)) * (1.0 + jnp.arange(m, dtype=alphas.dtype))
    diag = jnp.where(valid, alphas, pad)
    return jnp.diag(diag) + jnp.diag(off, 1) + jnp.diag(off, -1)


def ritz(k: Krylov) -> tuple[jax.Array, jax.Array]:
    """All Ritz values (ascending) and the coefficient matrix S (columns) of T's eigenvectors."""
    finite = k.finite
    t = tridiagonal(jnp.where(finite, k.alphas, 0.0), jnp.where(finite, k.betas, 0.0), k.valid)
    theta, s = jnp.linalg.eigh(t)
    return jnp.where(finite, theta, jnp.nan), s


def _bucket_sizes(m: int, num_wanted: int) -> list[int]:
    """Leading-block sizes 8, 16, 32, ... (at least ``num_wanted``) and finally ``m``."""
    sizes, s = [], max(8, num_wanted)
    while s < m:
        sizes.append(s)
        s *= 2
    return [*sizes, m]


def top_ritz(
    alphas: jax.Array, betas: jax.Array, valid: jax.Array, rows: jax.Array, num_wanted: int
) -> tuple[jax.Array, jax.Array]:
    """The ``num_wanted`` largest Ritz values (descending) and their coefficients ``(k, m)``.

    Only the leading ``rows`` rows of T are genuine, so T is eigendecomposed on the smallest
    leading block of a static size (8, 16, 32, ..., m) that holds them, chosen by
    ``lax.switch``: the cost follows the rows filled (at most twice their number), not the
    padded size ``m`` of the loop (a 5,000-step budget that converges in 3 steps decomposes an
    8 x 8 matrix, not a 5,000 x 5,000 one). Coefficients past the block are zero.
    """
    m = alphas.shape[0]
    sizes = _bucket_sizes(m, num_wanted)

    def block(size):
        def solve(alphas, betas, valid):
            theta, s = jnp.linalg.eigh(tridiagonal(alphas[:size], betas[:size], valid[:size]))
            top = s[:, ::-1][:, :num_wanted].T
            return theta[::-1][:num_wanted], jnp.pad(top, ((0, 0), (0, m - size)))

        return solve

    index = jnp.searchsorted(jnp.asarray(sizes), rows)
    index = jnp.clip(index, 0, len(sizes) - 1)
    return jax.lax.switch(index, [block(s) for s in sizes], alphas, betas, valid)


def loop(cond_fn, body, init, max_trips: int, unroll: bool):
    """``lax.while_loop(cond_fn, body, init)`` with at most ``max_trips`` trips; ``unroll``
    emits all ``max_trips`` trips as straight-line code, a finished loop's carry kept by
    ``jnp.where``.

    Unrolling exists for XLA:CPU, which runs convolutions far slower inside loop bodies than
    outside (jax-ml/jax#12868): twenty HVPs of a small CNN cost 141 gradients in a while loop,
    69 unrolled with each trip behind a ``lax.cond`` (a conditional's branches are nested
    computations too) and 4.6 unrolled plainly. So the unrolled form computes every trip: it
    loses the early exit and costs compile time (one copy of the product per trip).
    """
    if not unroll:
        return jax.lax.while_loop(cond_fn, body, init)

    def trip(carry, _):
        go = cond_fn(carry)
        return jax.tree.map(lambda new, old: jnp.where(go, new, old), body(carry), carry), None

    return jax.lax.scan(trip, init, None, length=max_trips, unroll=True)[0]


def _recurrence(sop, key, basis, q, q_prev, beta_prev, j, anorm):
    """One Lanczos step from the unit vector ``q``: ``(alpha, beta, next q, broken, exhausted,
    anorm)``.

    With a ``basis`` (its rows ``0..j`` filled, row ``j`` = ``q``) the new vector is
    reorthogonalized against the filled rows; without one (the memory-bounded mode) only the
    three-term recurrence runs. Breakdown (``beta ~ 0``: the Krylov space is invariant)
    continues from a fresh vector orthogonal to what is known, with a zero coupling in T.
    """
    eps = jnp.finfo(q.dtype).eps
    w = sop(q)
    alpha = jnp.vdot(q, w)
    anorm = jnp.maximum(anorm, norm(w))
    r = w - alpha * q - beta_prev * q_prev
    if basis is not None:
        r = reorthogonalize(basis, r, j + 1)
    beta = norm(r)
    broken = beta <= eps**0.75 * anorm

    # A restart draws a fresh Gaussian vector (almost surely outside the span so far), only on
    # breakdown: no random vector is kept alive across the loop.
    def restart():
        z = jax.random.normal(jax.random.fold_in(key, j), q.shape, q.dtype)
        if basis is not None:
            z_orth = project(basis, project(basis, z, j + 1), j + 1)
        else:
            z_orth = z
            for _ in range(2):
                z_orth = z_orth - jnp.vdot(q, z_orth) * q - jnp.vdot(q_prev, z_orth) * q_prev
        return z_orth, norm(z_orth) <= eps**0.5 * norm(z)

    z, exhausted = jax.lax.cond(broken, restart, lambda: (jnp.zeros_like(q), jnp.array(False)))
    nxt = jnp.where(broken, normalize(z, jnp.zeros_like(q)), safe_div(r, beta))
    return alpha, jnp.where(broken, 0.0, beta), nxt, broken, exhausted, anorm


def lanczos(
    op: FlatOperator,
    v0: jax.Array,
    key: jax.Array,
    num_steps: int,
    *,
    tol: jax.Array | None = None,
    num_wanted: int = 1,
    budget: jax.Array | None = None,
    store_basis: bool = True,
    unroll: bool = False,
) -> Krylov:
    """``num_steps`` Lanczos steps from the unit vector ``v0``, with full reorthogonalization
    (``store_basis=True``) or the plain three-term recurrence in O(n) memory.

    Breakdown (``beta ~ 0``: the Krylov space is invariant) continues from a fresh random vector
    orthogonal to the basis, with a zero coupling in T, so the other invariant subspaces are still
    explored; once the basis spans the whole space (``num_steps > dim``) the loop freezes. With a
    ``tol``, the loop also freezes once the top ``num_wanted`` Ritz pairs have estimated residuals
    ``|beta_j s_j| <= tol |theta|`` (checked on the filled leading block of T, see
    :func:`top_ritz`). A traced ``budget`` (<= ``num_steps``) stops it after that many steps, so
    one compiled loop serves several budgets (a cold start and warm restarts). A non-finite
    product stops the loop and is reported. ``unroll`` unrolls the loop (see :func:`loop`).

    Without a stored basis the Lanczos vectors lose orthogonality as Ritz values converge, which
    adds spurious copies of converged eigenvalues to T but leaves the largest Ritz value correct
    (Paige 1976); the Ritz vector is rebuilt by :func:`recombine` (a second pass).
    """
    n, m, dtype = v0.shape[0], num_steps, v0.dtype
    sop = lambda x: jax.lax.stop_gradient(op(x))

    def step(carry):
        j, basis, q, q_prev, beta_prev, alphas, betas, valid, _, anorm = carry
        if store_basis:
            basis = basis.at[j].set(q)
        alpha, beta, nxt, broken, exhausted, anorm = _recurrence(
            sop, key, basis, q, q_prev, beta_prev, j, anorm
        )
        alphas = alphas.at[j].set(alpha)
        betas = betas.at[j].set(beta)
        valid = valid.at[j].set(True)
        stop = exhausted | ~jnp.isfinite(alpha) | ~jnp.isfinite(beta)
        if budget is not None:
            stop = stop | (j + 1 >= budget)
        if tol is not None:
            theta, coef = top_ritz(alphas, betas, valid, j + 1, num_wanted)
            est = jnp.abs(beta * coef[:, j])
            small = jnp.all(est <= tol * jnp.abs(theta)) & (j + 1 >= num_wanted)
            stop = stop | (~broken & small)
        return (j + 1, basis, nxt, q, beta, alphas, betas, valid, stop, anorm)

    zeros = jnp.zeros((m,), dtype)
    init = (
        jnp.zeros((), jnp.int32),
        jnp.zeros((m, n), dtype) if store_basis else None,
        v0,
        jnp.zeros_like(v0),
        jnp.zeros((), dtype),
        zeros,
        zeros,
        jnp.zeros((m,), bool),
        jnp.array(False),
        jnp.zeros((), dtype),
    )
    # A while loop with at most m trips: a finished loop costs nothing more (no product, no
    # reorthogonalization, and no copy of the (m, n) basis, which a cond around a scan step
    # makes). The basis is (m, n), not (m + 1, n): the next vector rides in the carry, so the
    # result needs no slice (a slice copies the basis and doubles peak memory). The iterations
    # see the operator through stop_gradient, so reverse-mode differentiation never has to
    # transpose the loop (the caller differentiates one product).
    count, basis, nxt, _, _, alphas, betas, valid, _, anorm = loop(
        lambda c: (c[0] < m) & ~c[8], step, init, m, unroll
    )
    finite = jnp.all(jnp.isfinite(alphas)) & jnp.all(jnp.isfinite(betas))
    return Krylov(basis, alphas, betas, valid, anorm, finite, count, nxt)


def recombine(
    op: FlatOperator,
    v0: jax.Array,
    key: jax.Array,
    coef: jax.Array,
    count: jax.Array,
    *,
    unroll: bool = False,
) -> jax.Array:
    """Ritz vectors ``coef @ Q`` of a basis-free :func:`lanczos` run, by running its three-term
    recurrence again from ``v0`` with the same ``key`` (``count - 1`` products, O(n) memory).

    The second pass repeats the first one's products and arithmetic, so it regenerates the same
    Lanczos vectors and accumulates ``y_i = sum_j coef[i, j] q_j`` on the way.
    """
    n, dtype = v0.shape[0], v0.dtype
    sop = lambda x: jax.lax.stop_gradient(op(x))

    def step(carry):
        j, q, q_prev, beta_prev, anorm, y = carry
        y = y + coef[:, j, None] * q
        _, beta, nxt, _, _, anorm = _recurrence(sop, key, None, q, q_prev, beta_prev, j, anorm)
        return (j + 1, nxt, q, beta, anorm, y)

    zero = jnp.zeros((), dtype)
    y0 = jnp.zeros((coef.shape[0], n), dtype)
    init = (jnp.zeros((), jnp.int32), v0, jnp.zeros_like(v0), zero, zero, y0)
    # count - 1 products: the last vector needs none
    trips = coef.shape[1] - 1
    j, q, _, _, _, y = loop(lambda c: c[0] < count - 1, step, init, trips, unroll)
    return y + coef[:, j, None] * q


class Power(NamedTuple):
    vector: jax.Array  # (n,) unit iterate
    anorm: jax.Array  # () largest ||H v|| seen
    num_hvps: jax.Array  # () int32


def power(op: FlatOperator, v0: jax.Array, num_steps: int, *, tol: jax.Array | None) -> Power:
    """Power iteration on ``H + sigma I`` converging to the largest *algebraic* eigenvalue.

    Plain power iteration converges to the eigenvalue of largest magnitude, ``lambda_min`` when
    it is negative and dominant. Phase 1 (a quarter of the steps) runs plain power iteration,
    whose last iterate gives ``mu = v^T H v`` and ``N = ||H v||``. Phase 2 runs on
    ``H + sigma I`` with the fixed shift ``sigma = max(0, (N - mu) / 2)``: ~0 when phase 1 found
    a positive dominant eigenvalue (no slowdown), ~``|lambda_min|`` when it found a negative one
    (then ``H + sigma I`` is positive semi-definite with ``lambda_max + sigma`` on top, and
    phase 2 restarts from ``v0`` since the phase-1 iterate points at the bottom), and positive
    for a mixture of both. A fixed shift avoids the 2-cycles an adaptive one falls into.
    """
    sop = lambda x: jax.lax.stop_gradient(op(x))

    def run(v, shift, steps, anorm, count):
        def body(carry, _):
            v, done, anorm, count, last_mu, last_hv = carry
            active = ~done
            w = jax.lax.cond(active, sop, jnp.zeros_like, v)
            mu = jnp.vdot(v, w)
            hv = norm(w)
            stop = ~jnp.isfinite(mu)
            if tol is not None:
                stop = stop | (norm(w - mu * v) <= tol * jnp.abs(mu))
            nxt = jnp.where(active & ~stop, normalize(w + shift * v, v), v)
            anorm = jnp.where(active, jnp.maximum(anorm, hv), anorm)
            mu, hv = jnp.where(active, mu, last_mu), jnp.where(active, hv, last_hv)
            return (nxt, done | (active & stop), anorm, count + active, mu, hv), None

        zero = jnp.zeros((), v.dtype)
        init = (v, jnp.array(False), anorm, count, zero, zero)
        (v, _, anorm, count, mu, hv), _ = jax.lax.scan(body, init, None, length=steps)
        return v, anorm, count, mu, hv

    zero, count = jnp.zeros((), v0.dtype), jnp.zeros((), jnp.int32)
    v1, anorm, count, mu, hv = run(v0, zero, num_steps // 4, zero, count)
    shift = jnp.maximum(0.5 * (hv - mu), 0.0)
    start = jnp.where(mu >= 0, v1, v0)
    v, anorm, count, _, _ = run(start, shift, num_steps - num_steps // 4, anorm, count)
    return Power(v, anorm, count)


def rayleigh(op: FlatOperator, y: jax.Array) -> tuple[jax.Array, jax.Array]:
    """``(y^T H y, ||H y - (y^T H y) y||)`` for a unit ``y``, with one (differentiable) product.

    ``y`` is held constant, so the derivative of the eigenvalue is ``y^T (dH) y``, the exact
    derivative of a simple eigenvalue (Hellmann-Feynman), at the cost of one product's residuals.
    """
    y = jax.lax.stop_gradient(y)
    w = op(y)
    lam = jnp.vdot(y, w)
    return lam, norm(w - lam * y)
