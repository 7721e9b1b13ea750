"""Batch sharpness: the curvature of the step's own minibatch loss along the step's own direction.

Under minibatch SGD what settles at the edge of stability is not lambda_max of the full or of the
minibatch Hessian but batch sharpness (Andreyev & Beneventano), a directional quotient that costs
about one gradient given the gradient the step already has. This module computes the per-step
sample (three ways), its Monte-Carlo mean over fresh batches for diagnostics, and the running
upper quantile that the in-loop cap reads.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp
from jax.flatten_util import ravel_pytree
from jax.typing import ArrayLike

from jaxlr._src.numeric import safe_div
from jaxlr._src.typing import PyTree
from jaxlr._src.validate import Checker
from jaxlr.sharpness._hvp import _PRECISION, bind_batch, krylov_dtype

METHODS = ("forward_over_forward", "hvp", "loss_rise")


class BatchSharpness(NamedTuple):
    """One batch-sharpness sample and the numbers it is made of (float32 scalars at least).

    Examples:
        >>> import jax.numpy as jnp
        >>> from jaxlr.sharpness import batch_sharpness
        >>> loss = lambda w: 0.5 * (3.0 * w[0] ** 2 + w[1] ** 2)
        >>> s = batch_sharpness(loss, jnp.array([1.0, 1.0]))  # g = (3, 1)
        >>> float(s.curvature), float(s.norm), float(s.sharpness)  # 28 / 10
        (28.0, 10.0, 2.8)
    """

    sharpness: jax.Array  # () d'Hd / d'Md: the quotient compared with the threshold c / eta
    curvature: jax.Array  # () d'Hd, the second derivative of the batch loss along d
    norm: jax.Array  # () d'Md (M = I, or the preconditioner P)
    slope: jax.Array  # () g'd, the first derivative of the batch loss along d
    loss: jax.Array  # () the batch loss at params


def _vdot(a: PyTree, b: PyTree, dtype) -> jax.Array:
    return jnp.vdot(ravel_pytree(a)[0].astype(dtype), ravel_pytree(b)[0].astype(dtype))


def _metric(d: PyTree, precond: PyTree | None, dtype) -> jax.Array:
    """``d'd``, or ``d'Pd`` with coordinates where ``P = inf`` (frozen by Adagrad) left out."""
    x = ravel_pytree(d)[0].astype(dtype)
    if precond is None:
        return jnp.vdot(x, x)
    p = ravel_pytree(precond)[0].astype(dtype)
    ok = jnp.isfinite(p)
    return jnp.sum(jnp.where(ok, jnp.where(ok, p, 0.0) * x * x, 0.0))


def _moments(loss, params, d, *, method, grads, value, learning_rate, dtype):
    """``(loss, g'd, d'Hd)`` of ``loss`` at ``params`` along ``d``, as ``dtype`` scalars."""
    d = jax.tree.map(lambda t, p: jnp.asarray(t).astype(jnp.result_type(p)), d, params)
    with jax.default_matmul_precision(_PRECISION):
        if method == "forward_over_forward":
            # t -> L(theta + t d) differentiated twice in forward mode: no reverse pass at all
            (l0, gd), (_, dhd) = jax.jvp(lambda p: jax.jvp(loss, (p,), (d,)), (params,), (d,))
        elif method == "hvp":
            (l0, g), (_, hd) = jax.jvp(jax.value_and_grad(loss), (params,), (d,))
            gd, dhd = _vdot(g, d, dtype), _vdot(d, hd, dtype)
        else:
            if grads is None:
                l0, gd = jax.jvp(loss, (params,), (d,))
            elif value is None:  # g'd comes from grads: a plain forward pass, no tangent
                l0, gd = loss(params), None
            eta = jnp.asarray(learning_rate, dtype)
            l0 = l0 if value is None else value
            gd = gd if grads is None else _vdot(grads, d, dtype)
            step = jax.tree.map(lambda p, t: p - (eta * t).astype(p.dtype), params, d)
            l1 = loss(step)
            # L(theta - eta d) = L - eta g'd + eta^2/2 d'Hd + O(eta^3): the rise gives d'Hd
            rise = jnp.asarray(l1, dtype) - jnp.asarray(l0, dtype)
            dhd = safe_div(2.0 * (rise + eta * jnp.asarray(gd, dtype)), eta * eta)
    if grads is not None and method != "loss_rise":
        gd = _vdot(grads, d, dtype)
    return (jnp.asarray(x, dtype) for x in (l0, gd, dhd))


def sample_along(
    loss, params, d, *, method, grads, value, precond, learning_rate
) -> BatchSharpness:
    dtype = krylov_dtype(ravel_pytree(params)[0].dtype)
    l0, gd, dhd = _moments(
        loss,
        params,
        d,
        method=method,
        grads=grads,
        value=value,
        learning_rate=learning_rate,
        dtype=dtype,
    )
    norm = _metric(d, precond, dtype)
    return BatchSharpness(safe_div(dhd, norm), dhd, norm, gd, l0)


def _check(c: Checker, method: str, learning_rate, loss_fn) -> None:
    c.choice("method", method, METHODS)
    if not callable(loss_fn):
        c.fail(f"loss_fn must be callable, got loss_fn={loss_fn!r}")
    if method == "loss_rise":
        if learning_rate is None:
            c.fail("method='loss_rise' needs learning_rate (the probe step), got None")
        c.positive("learning_rate", learning_rate)


def batch_sharpness(
    loss_fn: Callable[..., jax.Array],
    params: PyTree,
    direction: PyTree | None = None,
    *,
    batch: PyTree | None = None,
    grads: PyTree | None = None,
    value: ArrayLike | None = None,
    precond: PyTree | None = None,
    method: str = "forward_over_forward",
    learning_rate: ArrayLike | None = None,
) -> BatchSharpness:
    r"""Batch sharpness of one step: the minibatch loss's curvature along the step's direction.

    For the update :math:`\theta \leftarrow \theta - \eta d` on the loss :math:`L_B` of the
    step's own batch, with gradient :math:`g = \nabla L_B` and Hessian :math:`H_B`:

    .. math::
        s = \frac{d^\top H_B d}{d^\top M d}, \qquad
        \text{SGD } (d = g,\ M = I):\ s = \frac{g^\top H_B g}{g^\top g}

    ``M = I`` for SGD and heavy-ball / Nesterov (``d`` the momentum step direction: the
    curvature the step feels, compared with :math:`(2 + 2\beta)/\eta`), ``M = P`` for
    preconditioned optimizers (``d = P^{-1} m`` the Adam direction: the Rayleigh quotient of
    :math:`P^{-1} H_B` in the P-inner product, which is at most
    :math:`\lambda_{\max}(P^{-1} H_B)`, compared with :math:`(2+2\beta_1)/((1-\beta_1)\eta)`).
    Three ways to get :math:`d^\top H_B d` (``method``):

    - ``"forward_over_forward"`` (default): the exact second derivative of
      :math:`t \mapsto L_B(\theta + t d)` by ``jax.jvp`` of ``jax.jvp`` (no reverse pass,
      about one gradient's cost); its first derivative gives :math:`g^\top d` too.
    - ``"hvp"``: one Hessian-vector product (``jvp`` of ``value_and_grad``), exact.
    - ``"loss_rise"``: one extra forward pass at :math:`\theta - \eta d`,
      :math:`d^\top H_B d \approx 2(L_B(\theta - \eta d) - L_B(\theta) + \eta g^\top d)/\eta^2`,
      exact to :math:`O(\eta)`; the loss rises iff :math:`\eta\, d^\top H_B d / g^\top d > 2`
      (to second order). With ``grads`` and ``value`` given it costs one forward pass.

    ``curvature / slope`` is :math:`d^\top H d / d^\top g`, the heavy-ball quotient of
    Andreyev & Beneventano's measurement code; for SGD it equals ``sharpness``. Scalars are
    float32 at least (bf16 models); products run at the highest matmul precision.

    Args:
        loss_fn: ``loss_fn(params)`` or ``loss_fn(params, batch)``.
        params: the point.
        direction: ``d``, a pytree like ``params`` (the optimizer's unit-LR update, negated);
            ``None`` is the gradient (SGD).
        batch: the step's batch (data: one compiled function serves every batch).
        grads: the gradient at ``params`` if the caller has it (saves a gradient when
            ``direction`` is None; gives ``slope`` exactly).
        value: the batch loss at ``params`` if the caller has it (``"loss_rise"``).
        precond: ``P`` (see :func:`preconditioner`) for the preconditioned quotient.
        method: ``"forward_over_forward"``, ``"hvp"`` or ``"loss_rise"`` (static).
        learning_rate: :math:`\eta > 0`, the probe step of ``"loss_rise"``.

    Returns:
        :class:`BatchSharpness`.

    Raises:
        ValueError: an unknown ``method``; ``"loss_rise"`` without a positive
            ``learning_rate``; a ``loss_fn`` that is not callable.

    Examples:
        >>> import jax, jax.numpy as jnp
        >>> from jaxlr.sharpness import batch_sharpness
        >>> def loss(w, batch):  # H_B = diag(4 * mean(batch), mean(batch))
        ...     return 0.5 * jnp.mean(batch) * (4.0 * w[0] ** 2 + w[1] ** 2)
        >>> w = jnp.array([1.0, 2.0])
        >>> f = jax.jit(lambda w, b: batch_sharpness(loss, w, batch=b).sharpness)
        >>> round(float(f(w, jnp.ones(3))), 4)  # g = (4, 2): (64 + 4) / 20
        3.4
        >>> round(float(f(w, jnp.full(3, 2.0))), 4)
        6.8

    References:
        Andreyev & Beneventano, Edge of Stochastic Stability: Revisiting the Edge of Stability
        for SGD, arXiv:2412.20553, 2024; Cohen et al., Adaptive Gradient Methods at the Edge of
        Stability, 2022.
    """
    c = Checker("batch_sharpness")
    _check(c, method, learning_rate, loss_fn)
    loss = bind_batch(loss_fn, batch, c.fn)
    if direction is None:
        if grads is None:
            grads = jax.grad(loss)(params)
        direction = grads
    return sample_along(
        loss,
        params,
        direction,
        method=method,
        grads=grads,
        value=value,
        precond=precond,
        learning_rate=learning_rate,
    )


class MeanBatchSharpness(NamedTuple):
    """The Monte-Carlo batch sharpness over a stack of batches (see
    :func:`mean_batch_sharpness`).

    Examples:
        >>> import jax.numpy as jnp
        >>> from jaxlr.sharpness import mean_batch_sharpness
        >>> loss = lambda w, b: 0.5 * jnp.mean(b) * jnp.sum(w**2)  # H_B = mean(b) I
        >>> m = mean_batch_sharpness(loss, jnp.ones(2), batches=jnp.array([[1.0], [3.0]]))
        >>> round(float(m.sharpness), 4), m.samples.shape  # (2 + 54) / (2 + 18)
        (2.8, (2,))
    """

    sharpness: jax.Array  # () E[g'Hg] / E[g'g] over the batches
    mean: jax.Array  # () E[g'Hg / g'g], the mean of the per-batch samples
    samples: jax.Array  # (K,) the per-batch samples g'Hg / g'g


def mean_batch_sharpness(
    loss_fn: Callable[..., jax.Array],
    params: PyTree,
    *,
    batches: PyTree,
    method: str = "forward_over_forward",
) -> MeanBatchSharpness:
    r"""Batch sharpness at fixed params, averaged over fresh batches (a diagnostic).

    .. math::
        \mathrm{BS} = \frac{\mathbb E_B[g_B^\top H_B g_B]}{\mathbb E_B[\|g_B\|^2]}, \qquad
        \overline{s} = \mathbb E_B\Bigl[\frac{g_B^\top H_B g_B}{\|g_B\|^2}\Bigr]

    each batch with its own gradient and Hessian (Andreyev & Beneventano's definition is the
    ratio of means; the mean of the per-batch quotients is returned too). The expectation is
    the average over the leading axis of ``batches``, one batch at a time (``lax.map``), so
    memory is one batch's. Under minibatch SGD at learning rate :math:`\eta`, BS settles at
    :math:`2/\eta` while the full-batch :math:`\lambda_{\max}` stays below it.

    Args:
        loss_fn: ``loss_fn(params, batch)``.
        params: the point.
        batches: ``K`` batches stacked on a leading axis.
        method: ``"forward_over_forward"`` or ``"hvp"`` (static).

    Returns:
        :class:`MeanBatchSharpness`.

    Raises:
        ValueError: an unknown ``method`` (``"loss_rise"`` needs a step and is refused).

    Examples:
        >>> import jax.numpy as jnp
        >>> from jaxlr.sharpness import mean_batch_sharpness
        >>> loss = lambda w, b: 0.5 * jnp.sum(b * w**2)  # H_B = diag(b)
        >>> bs = jnp.array([[4.0, 1.0], [1.0, 4.0]])
        >>> m = mean_batch_sharpness(loss, jnp.ones(2), batches=bs)
        >>> round(float(m.sharpness), 4), round(float(m.mean), 4)  # 65 / 17 both times
        (3.8235, 3.8235)

    References:
        Andreyev & Beneventano, Edge of Stochastic Stability: Revisiting the Edge of Stability
        for SGD, arXiv:2412.20553, 2024.
    """
    c = Checker("mean_batch_sharpness")
    c.choice("method", method, METHODS[:2])
    _check(c, method, None, loss_fn)

    def one(batch):
        s = batch_sharpness(loss_fn, params, batch=batch, method=method)
        return s.curvature, s.norm, s.sharpness

    curv, norm, samples = jax.lax.map(one, batches)
    return MeanBatchSharpness(safe_div(jnp.mean(curv), jnp.mean(norm)), jnp.mean(samples), samples)


class BatchSharpnessState(NamedTuple):
    """The in-loop batch-sharpness estimator's memory: a ring of the last samples.

    The value an LR controller reads is an upper quantile of the ring (samples are noisy and
    heavy-tailed): see :func:`jaxlr.transforms.sharpness_cap`.

    Examples:
        >>> from jaxlr.sharpness._batch import running_init, running_push, running_quantile
        >>> s = running_init(4)
        >>> for x in (1.0, 2.0, 3.0, 4.0, 10.0):  # the ring keeps the last 4
        ...     s = running_push(s, x, True)
        >>> float(running_quantile(s, 0.5)), float(s.sample)
        (3.5, 10.0)
    """

    samples: jax.Array  # (window,) float32 last samples, NaN where empty
    index: jax.Array  # () int32 slot of the next sample
    sample: jax.Array  # () the last sample (NaN before any)
    loss: jax.Array  # () the batch loss at the params of the last sample
    # () the upper quantile of the ring when it was last sampled (NaN before any): held between
    # samples, so the steps that take none sort nothing
    estimate: jax.Array


def running_init(window: int, dtype=jnp.float32) -> BatchSharpnessState:
    """An empty ring of ``window`` samples."""
    nan = jnp.full((), jnp.nan, dtype)
    return BatchSharpnessState(
        jnp.full((window,), jnp.nan, dtype), jnp.zeros((), jnp.int32), nan, nan, nan
    )


def running_push(
    state: BatchSharpnessState, sample: ArrayLike, take: ArrayLike, loss: ArrayLike = jnp.nan
) -> BatchSharpnessState:
    """``state`` with ``sample`` added when ``take`` is true and it is finite."""
    dtype = state.samples.dtype
    sample = jnp.asarray(sample, dtype)
    take = jnp.asarray(take) & jnp.isfinite(sample)
    window = state.samples.shape[0]
    samples = jnp.where(take, state.samples.at[state.index].set(sample), state.samples)
    index = jnp.where(take, (state.index + 1) % window, state.index)
    return BatchSharpnessState(
        samples,
        index.astype(jnp.int32),
        jnp.where(take, sample, state.sample),
        jnp.where(take, jnp.asarray(loss, dtype), state.loss),
        state.estimate,
    )


def running_quantile(state: BatchSharpnessState, q: ArrayLike) -> jax.Array:
    """The ``q`` quantile of the samples held (linear interpolation); NaN when none."""
    x = state.samples
    have = jnp.isfinite(x)
    n = jnp.sum(have)
    xs = jnp.sort(jnp.where(have, x, jnp.inf))  # the held samples first, ascending
    pos = jnp.clip(jnp.asarray(q, x.dtype), 0.0, 1.0) * jnp.maximum(n - 1, 0).astype(x.dtype)
    lo = jnp.floor(pos).astype(jnp.int32)
    hi = jnp.minimum(lo + 1, jnp.maximum(n - 1, 0))
    frac = pos - lo.astype(x.dtype)
    a, b = xs[lo], xs[hi]
    value = a + frac * jnp.where(hi > lo, b - a, 0.0)
    return jnp.where(n > 0, value, jnp.nan)
