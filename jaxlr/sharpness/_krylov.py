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


def reorthogonalize(basis: jax.Array, r: jax.Array) -> jax.Array:
    """One Gram-Schmidt pass of ``r`` against ``basis``, and a second only when the first
    cancelled more than half of ``r`` (Daniel-Gragg-Kaufman-Stewart criterion, 1/sqrt(2)).

    ``r`` has already had the three-term recurrence removed, so the first pass only removes the
    rounding-level drift and the second is rarely needed: each pass reads the whole (m, n) basis,
    the estimator's largest cost on big models.
    """
    r1 = r - basis.T @ (basis @ r)
    again = norm(r1) < 0.7071 * norm(r)
    return jax.lax.cond(again, lambda x: x - basis.T @ (basis @ x), lambda x: x, r1)


def start_vector(v0: jax.Array | None, key: jax.Array, n: int, dtype) -> jax.Array:
    """Unit start vector: ``v0`` when it is usable, else a Gaussian draw from ``key``."""
    rand = normalize(jax.random.normal(key, (n,), dtype), jnp.ones((n,), dtype) / n**0.5)
    if v0 is None:
        return rand
    return normalize(jax.lax.stop_gradient(v0).astype(dtype), rand)


class Krylov(NamedTuple):
    """A Lanczos decomposition ``H Q^T ~ Q^T T`` with padding for the unused rows."""

    basis: jax.Array  # (m, n) orthonormal rows; zero rows past the last valid one
    alphas: jax.Array  # (m,) diagonal of T
    betas: jax.Array  # (m,) betas[j] couples rows j and j+1; 0 at a breakdown restart
    valid: jax.Array  # (m,) bool: row j holds a genuine Lanczos vector
    anorm: jax.Array  # () largest ||H q_j|| seen, a lower bound on ||H||
    finite: jax.Array  # () bool: every product was finite
    num_hvps: jax.Array  # () int32: products actually computed


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
    """Ritz values (ascending) and the coefficient matrix S (columns) of T's eigenvectors."""
    finite = k.finite
    t = tridiagonal(jnp.where(finite, k.alphas, 0.0), jnp.where(finite, k.betas, 0.0), k.valid)
    theta, s = jnp.linalg.eigh(t)
    return jnp.where(finite, theta, jnp.nan), s


def lanczos(
    op: FlatOperator,
    v0: jax.Array,
    key: jax.Array,
    num_steps: int,
    *,
    tol: jax.Array | None = None,
    num_wanted: int = 1,
    budget: jax.Array | None = None,
) -> Krylov:
    """``num_steps`` Lanczos steps with full reorthogonalization from the unit vector ``v0``.

    Breakdown (``beta ~ 0``: the Krylov space is invariant) continues from a fresh random vector
    orthogonal to the basis, with a zero coupling in T, so the other invariant subspaces are still
    explored; once the basis spans the whole space (``num_steps > dim``) the loop freezes. With a
    ``tol``, the loop also freezes once the top ``num_wanted`` Ritz pairs have estimated residuals
    ``|beta_j s_j| <= tol |theta|``. A traced ``budget`` (<= ``num_steps``) stops it after that
    many steps, so one compiled loop serves several budgets (a cold start and warm restarts).
    A non-finite product stops the loop and is reported.
    """
    n, m, dtype = v0.shape[0], num_steps, v0.dtype
    eps = jnp.finfo(dtype).eps
    breakdown_tol, exhausted_tol = eps**0.75, eps**0.5
    sop = lambda x: jax.lax.stop_gradient(op(x))

    # Restart vectors are cyclic shifts of one random vector: the circulant matrix of a Gaussian
    # vector is almost surely invertible, so the shifts span the space (one draw, not one a step).
    seed = jax.random.normal(key, (n,), dtype)

    def restart(basis, j):
        z = jnp.roll(seed, j + 1)
        z_orth = orthogonalize(basis, z)
        return z_orth, norm(z_orth) <= exhausted_tol * norm(z)

    def step(carry, j):
        basis, alphas, betas, valid, done, anorm, count = carry
        q = basis[j]
        w = sop(q)
        alpha = jnp.vdot(q, w)
        anorm = jnp.maximum(anorm, norm(w))
        prev = jnp.where(j > 0, betas[jnp.maximum(j - 1, 0)], 0.0) * basis[jnp.maximum(j - 1, 0)]
        r = reorthogonalize(basis, w - alpha * q - prev)  # three-term step, then full reorth
        beta = norm(r)
        broken = beta <= breakdown_tol * anorm
        z, exhausted = jax.lax.cond(
            broken, restart, lambda b, _: (jnp.zeros_like(q), jnp.array(False)), basis, j
        )
        nxt = jnp.where(broken, normalize(z, jnp.zeros_like(q)), safe_div(r, beta))
        alphas = alphas.at[j].set(alpha)
        betas = betas.at[j].set(jnp.where(broken, 0.0, beta))
        valid = valid.at[j].set(True)
        stop = exhausted | ~jnp.isfinite(alpha) | ~jnp.isfinite(beta)
        if budget is not None:
            stop = stop | (j + 1 >= budget)
        if tol is not None:
            theta, s = jnp.linalg.eigh(tridiagonal(alphas, betas, valid))
            top = slice(m - num_wanted, m)
            est = jnp.abs(beta * s[j, top])
            small = jnp.all(est <= tol * jnp.abs(theta[top])) & (j + 1 >= num_wanted)
            stop = stop | (~broken & small)
        basis = basis.at[j + 1].set(jnp.where(stop, 0.0, nxt))
        return (basis, alphas, betas, valid, stop, anorm, count + 1)

    basis0 = jnp.zeros((m + 1, n), dtype).at[0].set(v0)
    zeros = jnp.zeros((m,), dtype)
    init = (
        basis0,
        zeros,
        zeros,
        jnp.zeros((m,), bool),
        jnp.array(False),
        jnp.zeros((), dtype),
        jnp.zeros((), jnp.int32),
    )

    # A while loop with at most m trips: a finished loop costs nothing more (no product, no
    # reorthogonalization, and no copy of the (m, n) basis, which a cond around a scan step
    # makes). The iterations see the operator through stop_gradient, so reverse-mode
    # differentiation never has to transpose the loop (the caller differentiates one product).
    def keep_going(c):
        return (c[0] < m) & ~c[1][4]

    def advance(c):
        return c[0] + 1, step(c[1], c[0])

    _, (basis, alphas, betas, valid, _, anorm, count) = jax.lax.while_loop(
        keep_going, advance, (jnp.zeros((), jnp.int32), init)
    )
    finite = jnp.all(jnp.isfinite(alphas)) & jnp.all(jnp.isfinite(betas))
    return Krylov(basis[:m], alphas, betas, valid, anorm, finite, count)


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
