"""The in-loop lambda_max estimator: warm-started Rayleigh-Ritz, a few products per step.

One algorithm serves the public tracker (:func:`tracker_init`, :func:`tracker_update`) and the
sharpness transforms' ``quantity="lambda_max"`` (which call :func:`track` on their own operator,
with a traced product budget): Rayleigh-Ritz on the carried directions plus a Lanczos chain
from the warm start (the package's Lanczos, :mod:`jaxlr.sharpness._krylov`), stopped once its top
Ritz pair meets ``tol``.
"""

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
from jaxlr.sharpness._eigen import Eigen, _converged
from jaxlr.sharpness._hvp import FlatOperator, compiled, flat_operator, krylov_dtype, should_unroll


class TrackerState(NamedTuple):
    """What the tracker carries between training steps (all arrays: it jits, vmaps, scans).

    Examples:
        >>> import jax, jax.numpy as jnp
        >>> from jaxlr.sharpness import tracker_init
        >>> state = tracker_init(jnp.zeros(5), key=jax.random.key(0), block_size=3)
        >>> state.vectors.shape, int(state.total_hvps)
        ((2, 5), 0)
    """

    vectors: jax.Array  # (block_size - 1, n) carried directions: [v_1, r_1, v_2, v_3, ...]
    key: jax.Array  # uint32 (2,): raw PRNG key data for the next random direction
    eigenvalue: jax.Array  # () last estimate, the top Ritz value (0 before the first update)
    residual: jax.Array  # () its residual ||H v - lambda v|| (inf before the first update)
    converged: jax.Array  # () bool: residual <= tol * |eigenvalue|
    num_hvps: jax.Array  # () int32 products spent by the last update
    total_hvps: jax.Array  # () int32 products spent so far


def _random_block(key: jax.Array, rows: int, n: int, dtype) -> jax.Array:
    g = jax.random.normal(key, (n, rows), dtype)
    return jnp.linalg.qr(g)[0].T


def init_state(flat: jax.Array, key: jax.Array, block_size: int) -> TrackerState:
    """The initial :class:`TrackerState` for flat params ``flat`` and raw key data ``key``."""
    k_block, k_next = jax.random.split(jax.random.wrap_key_data(key))
    dtype = krylov_dtype(flat.dtype)
    zero = jnp.zeros((), jnp.int32)
    return TrackerState(
        _random_block(k_block, block_size - 1, flat.shape[0], dtype),
        jax.random.key_data(k_next),
        jnp.zeros((), dtype),
        jnp.full((), jnp.inf, dtype),
        jnp.asarray(False),
        zero,
        zero,
    )


def tracker_init(params: PyTree, *, key: jax.Array, block_size: int = 3) -> TrackerState:
    r"""Initial state of the sharpness tracker: random orthonormal carried directions.

    .. math::
        V_0 = \operatorname{orth}(G), \quad G \in \mathbb R^{n \times (b-1)},\
        G_{ij} \sim \mathcal N(0, 1)

    Args:
        params: the parameters (only their size and dtype are used).
        key: PRNG key (``jax.random.key`` or ``PRNGKey``); the state keeps its raw data
            (plain ``uint32``, so it serializes) and splits it for every update.
        block_size: static block size ``b`` in [2, n]: ``b - 1`` carried directions plus the
            warm start of the Krylov chain.

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
    return init_state(flat, key_data("tracker_init", key), block_size)


def _ritz(gram: jax.Array, proj: jax.Array, valid: jax.Array) -> jax.Array:
    """Coefficients (columns, descending Ritz values) of the Ritz vectors over the rows of a
    basis that need not be orthonormal: ``gram`` = rows @ rows.T, ``proj`` = rows @ H rows.T.

    The carried directions and the Krylov chain overlap (the chain starts from the top carried
    vector and tends to it), so the generalized problem is solved on the well-conditioned part
    of ``gram``: directions whose Gram eigenvalue is below ``1e-5`` of the largest are dropped
    and get a diagonal below the whole spectrum, so they add no spurious Ritz value (0 would lie
    above lambda_max when the spectrum is negative). Invalid rows count as zero rows.
    """
    both = valid[:, None] & valid[None, :]
    gram = jnp.where(both, gram, 0.0)
    proj = jnp.where(both, 0.5 * (proj + proj.T), 0.0)
    g, u = jnp.linalg.eigh(gram)
    keep = g > 1e-5 * jnp.max(g)
    x = u * jnp.where(keep, jax.lax.rsqrt(jnp.where(keep, g, 1.0)), 0.0)
    small = x.T @ proj @ x
    low = -(jnp.sqrt(jnp.sum(small * small)) + 1.0)
    _, y = jnp.linalg.eigh(small + jnp.diag(jnp.where(keep, 0.0, low)))
    return x @ y[:, ::-1]


def track(
    op: FlatOperator,
    state: TrackerState,
    *,
    num_iters: int,
    tol: ArrayLike,
    budget: jax.Array | None = None,
) -> tuple[Eigen, TrackerState]:
    """One tracker update on the flat operator ``op``: the one in-loop lambda_max algorithm.

    The ``b - 1`` carried directions ``C`` (one product each) and a Lanczos chain (the package's
    Lanczos: full reorthogonalization, breakdown restarts, a stop once its top Ritz pair meets
    ``tol``, a traced budget, unrolled for convolutions on XLA:CPU) from the warm start
    ``s = v_1 + z``, the previous top Ritz vector plus a fresh random unit direction, span the
    search space; Rayleigh-Ritz runs on all of it, with the chain's products read from its
    tridiagonal matrix (``H Q' = Q' T + beta q_next e'``), so the top pair's residual needs no
    product more. ``budget`` (traced, at least ``b``) and ``num_iters`` (static, the most) count
    every product, the carried ones included. Returns the estimate (flat: unravel it yourself)
    and the new state, whose ``vectors`` are ``[v_1, r_1, v_2, ...]`` (the top Ritz vector, its
    residual, the next Ritz vectors). Non-finite carried directions (after a NaN step) are
    replaced at random.
    """
    n = state.vectors.shape[1]
    dtype = state.vectors.dtype
    b = state.vectors.shape[0] + 1
    steps = num_iters - (b - 1)  # the chain's most products
    key, k_z, k_fix, k_run = jax.random.split(jax.random.wrap_key_data(state.key), 4)
    tol = jnp.asarray(tol, dtype)

    carried = jax.lax.stop_gradient(state.vectors)
    ok = jnp.all(jnp.isfinite(carried))
    carried = jax.lax.cond(  # drawn only when needed: a QR of (n, b - 1) per update is not free
        ok, lambda: carried, lambda: _random_block(k_fix, b - 1, n, dtype)
    )
    z = _krylov.normalize(jax.random.normal(k_z, (n,), dtype), carried[0])
    start = _krylov.normalize(carried[0] + z, z)
    hc = jax.lax.stop_gradient(jax.vmap(op)(carried))  # H C
    chain_budget = None if budget is None else jnp.clip(budget, b, num_iters) - (b - 1)
    kr = _krylov.lanczos(
        op,
        start,
        k_run,
        steps,
        tol=tol,
        budget=chain_budget,
        unroll=should_unroll(op, start, steps),
    )
    valid_q = kr.valid & kr.finite
    q = jnp.where(valid_q[:, None], kr.basis, 0.0)
    t = jnp.diag(jnp.where(valid_q, kr.alphas, 0.0))
    off = jnp.where(valid_q[1:], kr.betas[:-1], 0.0)
    t = t + jnp.diag(off, 1) + jnp.diag(off, -1)
    # Rayleigh-Ritz on the rows [C; Q]: Gram matrix and projected operator (H symmetric)
    cq = carried @ q.T
    gram = jnp.block([[carried @ carried.T, cq], [cq.T, jnp.diag(valid_q.astype(dtype))]])
    hcq = hc @ q.T
    proj = jnp.block([[carried @ hc.T, hcq], [hcq.T, t]])
    valid = jnp.concatenate([jnp.ones((b - 1,), bool), valid_q])
    coef = _ritz(gram, proj, valid)
    a, y = coef[: b - 1], coef[b - 1 :]
    last = jnp.maximum(kr.num_hvps - 1, 0)
    tail = jnp.where(kr.finite, kr.betas[last], 0.0) * y[last]  # beta q_next e' per Ritz vector
    keep = max(b - 2, 1)  # Ritz vectors the state carries
    ritz = a[:, :keep].T @ carried + y[:, :keep].T @ q
    v1 = ritz[0]
    hv1 = a[:, 0] @ hc + (t @ y[:, 0]) @ q + tail[0] * kr.next
    lam = jnp.vdot(v1, hv1)
    res = _krylov.norm(hv1 - lam * v1)
    finite = kr.finite & jnp.all(jnp.isfinite(hc))
    lam = jnp.where(finite, lam, jnp.nan)
    res = jnp.where(finite, res, jnp.nan)
    conv = _converged(lam, res, tol)
    used = (b - 1) + kr.num_hvps
    r1 = hv1 - lam * v1
    nxt = jnp.concatenate([v1[None], r1[None], ritz[1:]])[: b - 1]
    new_state = TrackerState(
        jax.lax.stop_gradient(nxt),
        jax.random.key_data(key),
        jax.lax.stop_gradient(lam),
        jax.lax.stop_gradient(res),
        conv,
        used,
        state.total_hvps + used,
    )
    return Eigen(lam, v1, used, res, conv), new_state


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
    r"""Track :math:`\lambda_{\max}` across training steps with at most ``num_iters`` products.

    .. math::
        \mathcal S = \operatorname{span}\{v_1, r_1, v_2, \dots\} \cup
        \mathcal K_k(H, v_1 + z), \qquad
        \lambda \leftarrow \max_{v \in \mathcal S} \frac{v^\top H v}{v^\top v}

    The search space holds the carried directions (the previous top Ritz vector :math:`v_1`,
    its residual :math:`r_1 = H v_1 - \lambda v_1`, the next Ritz vectors) and a Krylov chain
    from the warm start :math:`v_1 + z`, with :math:`z` a fresh random unit direction.
    Rayleigh-Ritz on it gives the estimate; including :math:`r_1` makes each call at least a
    locally optimal (steepest-ascent) step on the Rayleigh quotient, carrying :math:`v_2` catches
    a second eigenvalue overtaking the first, and :math:`z` eventually reaches any direction.
    Because the space contains the previous estimate, a restart from random vectors could only
    do worse, so carried vectors are replaced only when they are non-finite (after a NaN step).
    The chain is the package's Lanczos (as in :func:`top_eigenvalue`: full
    reorthogonalization, early stop once its top Ritz pair's relative residual is below
    ``tol``); the residual of the estimate comes from the Lanczos relation
    :math:`HQ^\top = Q^\top T + \beta q e^\top` and the carried products, with no product
    more. This is also the estimator of :func:`jaxlr.transforms.sharpness_cap` with
    ``quantity="lambda_max"`` (block size 2: :math:`v_1` and the warm-started chain, with a
    larger cold-start budget).

    Args:
        loss_fn, params, matvec, batches, batch: as in :func:`top_eigenvalue`.
        state: from :func:`tracker_init` or the previous call.
        num_iters: static most products per call, ``>= block_size`` (the default 3 with the
            default block of 3 spends one product on each of :math:`v_1, r_1` and the start).
        tol: relative residual that counts as ``converged``; the chain stops when its own top
            Ritz pair meets it.

    Returns:
        ``(Eigen, new_state)``; the estimate is not differentiable (the Lanczos chain sees the
        operator through ``stop_gradient``; differentiate :func:`top_eigenvalue` instead).

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
    _, unravel, op = flat_operator(
        loss_fn, params, matvec=matvec, batches=batches, batch=batch, fn_name=fn
    )
    b = state.vectors.shape[0] + 1
    Checker(fn).integer("num_iters", num_iters, minimum=b, static=True)  # at least the block
    eig, new_state = track(op, state, num_iters=num_iters, tol=tol)
    return eig._replace(eigenvector=unravel(eig.eigenvector)), new_state


# Failure probability of the random-start bound used for unconverged estimates.
_DELTA = 0.01


def upper_estimate(state: TrackerState) -> jax.Array:
    """The lambda_max a controller should use: the Rayleigh quotient when converged, else an
    upper estimate from an unconverged run whose Krylov chain has ``k`` vectors.

    Kuczynski & Wozniakowski (1992): from a random start, ``theta < (1 - eps) lambda_max`` has
    probability at most ``1.648 sqrt(n) exp(-sqrt(eps) (2k - 1))``; solved for ``eps`` at
    probability ``delta = 0.01``, ``theta / (1 - eps)`` bounds lambda_max with 99% confidence
    (``eps`` is clipped at 0.9: at most a 10x inflation for tiny budgets). ``theta + r`` (an
    eigenvalue lies within the residual) is the floor. The chain's ``k`` is the products spent
    less one per carried direction.
    """
    carried, n = state.vectors.shape
    k = jnp.maximum(state.num_hvps - carried, 1).astype(state.eigenvalue.dtype)
    eps = (jnp.log(1.648 * n**0.5 / _DELTA) / (2.0 * k - 1.0)) ** 2
    eps = jnp.minimum(eps, 0.9)
    theta = state.eigenvalue
    inflated = jnp.where(theta > 0, theta / (1.0 - eps), theta)
    return jnp.where(state.converged, theta, jnp.maximum(theta + state.residual, inflated))
