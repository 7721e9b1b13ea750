"""Trace and spectral density of the Hessian: Hutchinson and stochastic Lanczos quadrature."""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike

from jaxlr._src.numeric import safe_div
from jaxlr._src.typing import PyTree
from jaxlr._src.validate import Checker
from jaxlr.sharpness import _krylov
from jaxlr.sharpness._hvp import compiled, flat_operator


def _rademacher(key: jax.Array, n: int, dtype) -> jax.Array:
    return jax.random.rademacher(key, (n,), dtype=dtype)


class TraceEstimate(NamedTuple):
    """A Hutchinson trace estimate.

    Examples:
        >>> import jax, jax.numpy as jnp
        >>> from jaxlr.sharpness import hutchinson_trace
        >>> t = hutchinson_trace(lambda x: jnp.sum(x**2), jnp.ones(3), key=jax.random.key(0))
        >>> float(t.trace), float(t.std_error)  # exact for a diagonal Hessian
        (6.0, 0.0)
    """

    trace: jax.Array  # () mean of z^T H z over the probes
    std_error: jax.Array  # () standard error of that mean (0 with a single probe)
    num_hvps: jax.Array  # () int32


@compiled("num_probes")
def hutchinson_trace(
    loss_fn: Callable[..., jax.Array] | None,
    params: PyTree,
    *,
    key: jax.Array,
    num_probes: int = 16,
    matvec: Callable[[PyTree], PyTree] | None = None,
    batches: PyTree | None = None,
    batch: PyTree | None = None,
) -> TraceEstimate:
    r"""Hutchinson's estimate of the Hessian trace with Rademacher probes.

    .. math::
        \operatorname{tr} H = \mathbb E_z[z^\top H z] \approx \frac1N \sum_{i=1}^N z_i^\top H z_i,
        \qquad z_i \in \{-1, +1\}^n, \quad
        \operatorname{Var}[z^\top H z] = 2 \sum_{i \ne j} H_{ij}^2

    Rademacher probes make the estimate exact for a diagonal Hessian. The probes are visited
    with ``lax.scan`` (memory of one product).

    Args:
        loss_fn, params, matvec, batches, batch: as in :func:`top_eigenvalue`.
        key: PRNG key for the probes.
        num_probes: static number of probes (and of products), >= 1.

    Returns:
        :class:`TraceEstimate`.

    Raises:
        ValueError: ``num_probes`` not an int >= 1.

    Examples:
        >>> import jax, jax.numpy as jnp
        >>> from jaxlr.sharpness import hutchinson_trace
        >>> loss = lambda x: 0.5 * jnp.sum(jnp.array([3.0, 1.0, -5.0]) * x**2)
        >>> float(hutchinson_trace(loss, jnp.ones(3), key=jax.random.key(1)).trace)
        -1.0

    References:
        Hutchinson, A stochastic estimator of the trace of the influence matrix for Laplacian
        smoothing splines, 1990; Yao et al., PyHessian, 2020.
    """
    fn = "hutchinson_trace"
    Checker(fn).integer("num_probes", num_probes, minimum=1, static=True)
    flat, _, op = flat_operator(
        loss_fn, params, matvec=matvec, batches=batches, batch=batch, fn_name=fn
    )
    n, dtype = flat.shape[0], flat.dtype

    def body(_, k):
        z = _rademacher(k, n, dtype)
        return None, jnp.vdot(z, op(z))

    _, samples = jax.lax.scan(body, None, jax.random.split(key, num_probes))
    mean = jnp.mean(samples)
    spread = jnp.sqrt(safe_div(jnp.sum((samples - mean) ** 2), num_probes * (num_probes - 1)))
    return TraceEstimate(mean, spread, jnp.asarray(num_probes, jnp.int32))


class SpectralDensity(NamedTuple):
    """A smoothed eigenvalue density on a grid (draw ``density`` against ``grid``).

    Examples:
        >>> import jax, jax.numpy as jnp
        >>> from jaxlr.sharpness import spectral_density
        >>> loss = lambda x: 0.5 * jnp.sum(jnp.array([3.0, 1.0, -5.0]) * x**2)
        >>> sd = spectral_density(loss, jnp.ones(3), key=jax.random.key(0), num_iters=3)
        >>> sd.grid.shape, round(float(jnp.trapezoid(sd.density, sd.grid)), 3)
        ((256,), 1.0)
    """

    grid: jax.Array  # (num_points,) ascending eigenvalue axis
    density: jax.Array  # (num_points,) smoothed density, integrates to ~1 over the grid
    nodes: jax.Array  # (num_probes, num_iters) Ritz values (Gauss quadrature nodes)
    weights: jax.Array  # (num_probes, num_iters) quadrature weights, each row sums to 1


@compiled("num_iters", "num_probes", "num_points")
def spectral_density(
    loss_fn: Callable[..., jax.Array] | None,
    params: PyTree,
    *,
    key: jax.Array,
    num_iters: int = 64,
    num_probes: int = 4,
    num_points: int = 256,
    bandwidth: ArrayLike = 0.01,
    matvec: Callable[[PyTree], PyTree] | None = None,
    batches: PyTree | None = None,
    batch: PyTree | None = None,
) -> SpectralDensity:
    r"""Hessian eigenvalue density by stochastic Lanczos quadrature (SLQ).

    .. math::
        \phi(t) = \frac1n \sum_{i=1}^n g_\sigma(t - \lambda_i)
        \approx \frac1{N} \sum_{l=1}^{N} \sum_{j=1}^{m} \tau^{(l)}_j\, g_\sigma(t - \theta^{(l)}_j)

    For each of ``N`` Rademacher probes, ``m`` Lanczos steps give Ritz values
    :math:`\theta_j` and weights :math:`\tau_j = (e_1^\top s_j)^2` (the Gauss quadrature of the
    probe's spectral measure); :math:`g_\sigma` is a Gaussian whose width :math:`\sigma` is
    ``bandwidth`` times the spread of the nodes. Probes run one at a time (``lax.map``).

    Args:
        loss_fn, params, matvec, batches, batch: as in :func:`top_eigenvalue`.
        key: PRNG key for the probes and breakdown restarts.
        num_iters: static Lanczos steps (products) per probe, >= 1.
        num_probes: static number of probes, >= 1.
        num_points: static grid size, >= 2.
        bandwidth: Gaussian width relative to the spectral spread, > 0.

    Returns:
        :class:`SpectralDensity`: ``grid`` spans the nodes plus 5 widths on each side;
        ``jaxlr.plot`` draws ``density`` against ``grid``.

    Raises:
        ValueError: non-int or too small counts, ``bandwidth <= 0``.

    Examples:
        >>> import jax, jax.numpy as jnp
        >>> from jaxlr.sharpness import spectral_density
        >>> loss = lambda x: 0.5 * jnp.sum(jnp.array([2.0, 2.0, -2.0, -2.0]) * x**2)
        >>> sd = spectral_density(loss, jnp.ones(4), key=jax.random.key(0), num_iters=4)
        >>> half = jnp.trapezoid(jnp.where(sd.grid > 0, sd.density, 0.0), sd.grid)
        >>> round(float(half), 2)  # half of the eigenvalues are +2
        0.5

    References:
        Ghorbani, Krishnan & Xiao, An investigation into neural net optimization via Hessian
        eigenvalue density, ICML 2019; Lin, Saad & Yang, Approximating spectral densities of
        large matrices, SIAM Review 2016.
    """
    fn = "spectral_density"
    c = Checker(fn)
    c.integer("num_iters", num_iters, minimum=1, static=True)
    c.integer("num_probes", num_probes, minimum=1, static=True)
    c.integer("num_points", num_points, minimum=2, static=True)
    flat, _, op = flat_operator(
        loss_fn, params, matvec=matvec, batches=batches, batch=batch, fn_name=fn
    )
    n, dtype = flat.shape[0], flat.dtype

    def probe(k):
        k_probe, k_restart = jax.random.split(k)
        v = _krylov.normalize(_rademacher(k_probe, n, dtype), jnp.ones((n,), dtype))
        run = _krylov.lanczos(op, v, k_restart, num_iters)
        theta, s = _krylov.ritz(run)
        # rows past the last genuine one are decoupled padding: their weight s[0]^2 is 0
        return theta, s[0] ** 2

    nodes, weights = jax.lax.map(probe, jax.random.split(key, num_probes))
    nodes = jax.lax.stop_gradient(nodes)
    real = weights > jnp.finfo(dtype).eps
    lo = jnp.min(jnp.where(real, nodes, jnp.inf))
    hi = jnp.max(jnp.where(real, nodes, -jnp.inf))
    spread = jnp.maximum(hi - lo, jnp.maximum(jnp.abs(hi), jnp.abs(lo)))
    sigma = bandwidth * jnp.where(spread > 0, spread, 1.0)
    grid = jnp.linspace(lo - 5 * sigma, hi + 5 * sigma, num_points, dtype=dtype)
    z = (grid[:, None, None] - nodes) / sigma
    gauss = jnp.exp(-0.5 * z**2) / (sigma * (2 * jnp.pi) ** 0.5)
    density = jnp.sum(gauss * weights, axis=(1, 2)) / num_probes
    return SpectralDensity(grid, density, nodes, weights)
