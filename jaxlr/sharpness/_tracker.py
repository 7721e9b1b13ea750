"""Warm-started sharpness tracking: a few products per training step."""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp
from jax.flatten_util import ravel_pytree
from jax.typing import ArrayLike

from jaxlr._src.typing import PyTree
from jaxlr._src.validate import Checker, key_data
from jaxlr.sharpness import _krylov
from jaxlr.sharpness._eigen import Eigen, _converged, _top_flat
from jaxlr.sharpness._hvp import compiled, flat_operator, krylov_dtype


class TrackerState(NamedTuple):
    """What the tracker carries between training steps (all arrays: it jits, vmaps, scans).

    Examples:
        >>> import jax, jax.numpy as jnp
        >>> from jaxlr.sharpness import tracker_init
        >>> state = tracker_init(jnp.zeros(5), key=jax.random.key(0), block_size=3)
        >>> state.vectors.shape
        (2, 5)
    """

    vectors: jax.Array  # (block_size - 1, n) carried directions: [v_1, r_1, v_2, v_3, ...]
    key: jax.Array  # uint32 (2,): raw PRNG key data for the next refresh column
    eigenvalue: jax.Array  # () last estimate (0 before the first update)
    residual: jax.Array  # () its residual ||H v - lambda v|| (inf before the first update)


def _random_block(key: jax.Array, rows: int, n: int, dtype) -> jax.Array:
    g = jax.random.normal(key, (n, rows), dtype)
    return jnp.linalg.qr(g)[0].T


def tracker_init(params: PyTree, *, key: jax.Array, block_size: int = 3) -> TrackerState:
    r"""Initial state of the sharpness tracker: random orthonormal carried directions.

    .. math::
        V_0 = \operatorname{orth}(G), \quad G \in \mathbb R^{n \times (b-1)},\
        G_{ij} \sim \mathcal N(0, 1)

    Args:
        params: the parameters (only their size and dtype are used).
        key: PRNG key (``jax.random.key`` or ``PRNGKey``); the state keeps its raw data
            (plain ``uint32``, so it serializes) and splits it for every refresh column.
        block_size: static block size ``b`` in [2, n]: ``b - 1`` carried directions plus one
            random refresh column per update.

    Returns:
        :class:`TrackerState`.

    Raises:
        ValueError: ``block_size`` not an int in [2, number of parameters]; ``key`` not a PRNG
            key.

    Examples:
        >>> import jax, jax.numpy as jnp
        >>> from jaxlr.sharpness import tracker_init
        >>> s = tracker_init({"w": jnp.zeros((3, 2))}, key=jax.random.key(0))
        >>> s.vectors.shape, float(s.residual)
        ((2, 6), inf)

    References:
        Knyazev, Toward the optimal preconditioned eigensolver: LOBPCG, SIAM J. Sci. Comput.
        2001.
    """
    flat = ravel_pytree(params)[0]
    n = flat.shape[0]
    Checker("tracker_init").integer("block_size", block_size, minimum=2, maximum=n, static=True)
    k_block, k_next = jax.random.split(typed_key(key_data("tracker_init", key)))
    dtype = krylov_dtype(flat.dtype)
    return TrackerState(
        _random_block(k_block, block_size - 1, n, dtype),
        jax.random.key_data(k_next),
        jnp.zeros((), dtype),
        jnp.full((), jnp.inf, dtype),
    )


def typed_key(key: jax.Array) -> jax.Array:
    """A typed PRNG key from a typed key or raw ``uint32[2]`` key data (states hold the data:
    plain arrays serialize with ``flax.serialization`` and orbax, typed keys do not)."""
    if jax.dtypes.issubdtype(key.dtype, jax.dtypes.prng_key):
        return key
    return jax.random.wrap_key_data(key)


def _compress(basis: jax.Array, ws: jax.Array, valid: jax.Array) -> jax.Array:
    """``Q H Q^T`` on the valid rows; invalid (zero) rows get a diagonal below all its spectrum.

    A zero row would otherwise add a spurious Ritz value 0, above lambda_max when the whole
    spectrum is negative; ``-(||T||_F + 1)`` lies below every eigenvalue of the valid block.
    """
    t = basis @ ws.T
    t = 0.5 * (t + t.T)
    both = valid[:, None] & valid[None, :]
    t = jnp.where(both, t, 0.0)
    low = -(jnp.sqrt(jnp.sum(t * t)) + 1.0)
    return t + jnp.diag(jnp.where(valid, 0.0, low))


@compiled("num_iters")
def tracker_update(
    loss_fn: Callable[..., jax.Array] | None,
    params: PyTree,
    state: TrackerState,
    *,
    num_iters: int = 3,
    tol: ArrayLike = 1e-3,
    matvec: Callable[[PyTree], PyTree] | None = None,
    batches: PyTree | None = None,
    batch: PyTree | None = None,
) -> tuple[Eigen, TrackerState]:
    r"""Track :math:`\lambda_{\max}` across training steps with ``num_iters`` products per call.

    .. math::
        \mathcal S = \operatorname{span}\{v_1, r_1, v_2, \dots, z\} \cup
        \{H q_1, H q_2, \dots\}, \qquad
        \lambda \leftarrow \max_{v \in \mathcal S} \frac{v^\top H v}{v^\top v}

    The search space holds the carried directions (the previous top Ritz vector
    :math:`v_1`, its residual :math:`r_1 = H v_1 - \lambda v_1`, the next Ritz vectors) and a
    fresh random refresh column :math:`z`; products beyond the block extend it block-Krylov
    style. Rayleigh-Ritz on it gives the estimate; including :math:`r_1` makes each call at
    least a locally optimal (steepest-ascent) step on the Rayleigh quotient, carrying
    :math:`v_2` catches a second eigenvalue overtaking the first, and :math:`z` eventually
    reaches any direction. Because the space contains the previous estimate, a restart from
    random vectors could only do worse, so carried vectors are replaced only when they are
    non-finite (after a NaN step). The residual is exact (no extra product), and when
    ``converged`` is False a caller can spend a full :func:`top_eigenvalue` with ``v0`` set to
    the tracker's ``eigenvector``.

    Args:
        loss_fn, params, matvec, batches, batch: as in :func:`top_eigenvalue`.
        state: from :func:`tracker_init` or the previous call.
        num_iters: static products per call, ``>= block_size`` (the default 3 with the default
            block of 3 spends one product on each of :math:`v_1, r_1, z`).
        tol: relative residual for the ``converged`` flag.

    Returns:
        ``(Eigen, new_state)``; ``Eigen.eigenvalue`` is differentiable (gradient
        :math:`v^\top \partial H\, v`).

    Raises:
        ValueError: ``num_iters`` below the block size, a negative ``tol``.

    Examples:
        >>> import jax, jax.numpy as jnp
        >>> from jaxlr.sharpness import tracker_init, tracker_update
        >>> h = jnp.array([3.0, 2.0, 1.0, -5.0, 0.5, 0.2])
        >>> loss = lambda x: 0.5 * jnp.sum(h * x**2)
        >>> x = jnp.ones(6)
        >>> state = tracker_init(x, key=jax.random.key(0))
        >>> step = jax.jit(lambda s: tracker_update(loss, x, s))
        >>> for _ in range(10):
        ...     eig, state = step(state)
        >>> round(float(eig.eigenvalue), 3), int(eig.num_hvps)
        (3.0, 3)

    References:
        Knyazev, Toward the optimal preconditioned eigensolver: LOBPCG, SIAM J. Sci. Comput.
        2001; Saad, Numerical Methods for Large Eigenvalue Problems, 2011 (Rayleigh-Ritz).
    """
    fn = "tracker_update"
    c = Checker(fn)
    flat, unravel, op = flat_operator(
        loss_fn, params, matvec=matvec, batches=batches, batch=batch, fn_name=fn
    )
    n, dtype = flat.shape[0], flat.dtype
    b = state.vectors.shape[0] + 1
    c.integer("num_iters", num_iters, minimum=b, static=True)  # minimum: the block size
    m = num_iters
    key, k_z, k_fix, k_exp = jax.random.split(typed_key(state.key), 4)
    exhausted_tol = jnp.finfo(dtype).eps ** 0.5

    carried = jax.lax.stop_gradient(state.vectors).astype(dtype)
    carried = jnp.where(
        jnp.all(jnp.isfinite(carried)), carried, _random_block(k_fix, b - 1, n, dtype)
    )
    seeds = jnp.concatenate([carried, jax.random.normal(k_z, (1, n), dtype)])
    q0 = jnp.linalg.qr(seeds.T)[0].T  # (b, n), orthonormal even if the seeds are dependent
    w0 = jax.vmap(op)(q0)

    basis = jnp.zeros((m, n), dtype).at[:b].set(q0)
    products = jnp.zeros((m, n), dtype).at[:b].set(jax.lax.stop_gradient(w0))

    def expand(carry, i):
        basis, products = carry
        r = _krylov.orthogonalize(basis, products[i])
        z_raw = jax.random.normal(jax.random.fold_in(k_exp, i), (n,), dtype)
        z = _krylov.orthogonalize(basis, z_raw)
        fresh = _krylov.norm(r) > 1e-6 * _krylov.norm(products[i])  # else: breakdown
        # once the basis spans the space (num_iters > dim) no direction is left: a zero row
        ok = fresh | (_krylov.norm(z) > exhausted_tol * _krylov.norm(z_raw))
        q = jnp.where(ok, _krylov.normalize(jnp.where(fresh, r, z), z), 0.0)
        w = op(q)
        basis = basis.at[b + i].set(q)
        return (basis, products.at[b + i].set(jax.lax.stop_gradient(w))), (w, ok)

    (basis, _), (w_new, ok_new) = jax.lax.scan(expand, (basis, products), jnp.arange(m - b))
    w = jnp.concatenate([w0, w_new])  # differentiable products H q_i
    valid = jnp.concatenate([jnp.ones((b,), bool), ok_new])
    ws = jax.lax.stop_gradient(w)
    _, s = jnp.linalg.eigh(_compress(basis, ws, valid))
    s = s[:, ::-1]  # descending
    ritz = s.T @ basis
    v1 = ritz[0]
    hv1 = s[:, 0] @ w
    lam = jnp.vdot(v1, hv1)
    res = _krylov.norm(hv1 - lam * v1)
    r1 = jax.lax.stop_gradient(hv1) - jax.lax.stop_gradient(lam) * v1
    nxt = jnp.concatenate([v1[None], r1[None], ritz[1:]])[: b - 1]
    eig = Eigen(lam, unravel(v1), jnp.asarray(m, jnp.int32), res, _converged(lam, res, tol))
    new_state = TrackerState(
        jax.lax.stop_gradient(nxt),
        jax.random.key_data(key),
        jax.lax.stop_gradient(lam),
        jax.lax.stop_gradient(res),
    )
    return eig, new_state


# The in-loop lambda_max estimate of the sharpness transforms (``quantity="lambda_max"``): a
# warm-started Lanczos run per refresh, with a budget and a residual stop, and an upper estimate
# when it has not converged. It lives here, beside the block tracker, so that curvature has one
# home; the transforms only adapt it.


class CurvatureState(NamedTuple):
    """The in-loop lambda_max estimator's memory (plain arrays: it jits, vmaps, serializes)."""

    vector: jax.Array  # (n,) float32 unit eigenvector of the last estimate (warm start); 0 first
    key: jax.Array  # (2,) uint32 raw PRNG key data
    eigenvalue: jax.Array  # () Rayleigh quotient of the last estimate (a lower bound)
    residual: jax.Array  # () ||H v - lambda v|| of the last estimate
    converged: jax.Array  # () bool: residual <= tol * |eigenvalue|
    num_hvps: jax.Array  # () int32 products spent by the last estimate
    total_hvps: jax.Array  # () int32 products spent so far


def lanczos_track_init(flat: jax.Array, key_data: jax.Array) -> CurvatureState:
    """An empty :class:`CurvatureState` for flat params ``flat`` and raw key data."""
    dtype = krylov_dtype(flat.dtype)
    zero = jnp.zeros((), dtype)
    return CurvatureState(
        jnp.zeros(flat.shape, dtype),
        key_data,
        zero,
        jnp.full((), jnp.inf, dtype),
        jnp.asarray(False),
        jnp.zeros((), jnp.int32),
        jnp.zeros((), jnp.int32),
    )


def _unit(x: jax.Array) -> jax.Array:
    n = jnp.sqrt(jnp.sum(x * x))
    return jnp.where(n > 0, x / jnp.where(n > 0, n, 1.0), x)


def lanczos_track_update(
    op, flat: jax.Array, cs: CurvatureState, first, *, init_iters: int, num_iters: int, tol
) -> CurvatureState:
    """One Lanczos program for the cold start (``init_iters``, random start) and the warm runs
    (``num_iters``, previous vector + a random one, so a new top eigenvector is still found):
    the budget is traced, the loop stops once the relative residual is below ``tol``."""
    key, k_run, k_mix = jax.random.split(typed_key(cs.key), 3)
    z = _unit(jax.random.normal(k_mix, cs.vector.shape, cs.vector.dtype))
    v0 = jnp.where(first, z, _unit(cs.vector) + z)
    budget = jnp.where(first, init_iters, num_iters)
    lam, vecs, res, conv, used = _top_flat(
        op,
        flat,
        key=k_run,
        num_iters=max(init_iters, num_iters),
        method="lanczos",
        v0=v0.astype(flat.dtype),
        tol=tol,
        budget=budget,
    )
    dtype = cs.vector.dtype
    lam, res = lam[0].astype(dtype), res[0].astype(dtype)
    finite = jnp.isfinite(lam) & jnp.isfinite(res)
    return CurvatureState(
        jax.lax.stop_gradient(jnp.where(finite, vecs[0].astype(dtype), cs.vector)),
        jax.random.key_data(key),
        lam,
        res,
        conv[0],
        used,
        cs.total_hvps + used,
    )


# Failure probability of the random-start bound used for unconverged estimates.
_DELTA = 0.01


def upper_estimate(cs: CurvatureState) -> jax.Array:
    """The lambda_max a controller should use: the Rayleigh quotient when converged, else an
    upper estimate from an unconverged Lanczos run of ``k`` steps.

    Kuczynski & Wozniakowski (1992): from a random start, ``theta < (1 - eps) lambda_max`` has
    probability at most ``1.648 sqrt(n) exp(-sqrt(eps) (2k - 1))``; solved for ``eps`` at
    probability ``delta = 0.01``, ``theta / (1 - eps)`` bounds lambda_max with 99% confidence
    (``eps`` is clipped at 0.9: at most a 10x inflation for tiny budgets). ``theta + r`` (an
    eigenvalue lies within the residual) is the floor.
    """
    n = cs.vector.shape[0]
    k = jnp.maximum(cs.num_hvps - 1, 1).astype(cs.eigenvalue.dtype)
    eps = (jnp.log(1.648 * n**0.5 / _DELTA) / (2.0 * k - 1.0)) ** 2
    eps = jnp.minimum(eps, 0.9)
    theta = cs.eigenvalue
    inflated = jnp.where(theta > 0, theta / (1.0 - eps), theta)
    return jnp.where(cs.converged, theta, jnp.maximum(theta + cs.residual, inflated))
