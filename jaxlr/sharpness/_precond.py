"""Preconditioned sharpness of adaptive optimizers: P read from Optax states, lambda_max(P^-1 H)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import optax
from jax.typing import ArrayLike

from jaxlr._src.numeric import safe_div
from jaxlr._src.typing import PyTree
from jaxlr._src.validate import Checker
from jaxlr.sharpness._eigen import Eigen, _eigen
from jaxlr.sharpness._hvp import compiled, flat_operator

KINDS = ("adam", "adamw", "radam", "rmsprop", "adagrad")
# Optax's defaults for the hyperparameters that live in the closure, not in the state.
_DEFAULTS = {
    "adam": {"b2": 0.999, "eps": 1e-8, "eps_root": 0.0},
    "adamw": {"b2": 0.999, "eps": 1e-8, "eps_root": 0.0},
    "radam": {"b2": 0.999, "eps": 1e-8, "eps_root": 0.0, "threshold": 5.0},
    "rmsprop": {"decay": 0.9, "eps": 1e-8, "eps_in_sqrt": True},
    "adagrad": {"eps": 1e-7},
}
# RMSprop with bias_correction=True keeps a count; optax does not re-export that state class.
_RmsWithCount = getattr(optax, "ScaleByRmsWithCountState", None) or type(
    optax.scale_by_rms(bias_correction=True).init(jnp.zeros(()))
)
_STATES = (optax.ScaleByAdamState, optax.ScaleByRmsState, optax.ScaleByRssState, _RmsWithCount)


def _find(state: Any) -> tuple[Any, dict]:
    """The first Adam/RMS/RSS state inside ``state`` and hyperparameters injected around it."""
    if isinstance(state, _STATES):
        return state, {}
    hyperparams = getattr(state, "hyperparams", None)  # optax.inject_hyperparams (both kinds)
    if isinstance(hyperparams, dict) and hasattr(state, "inner_state"):
        inner, found = _find(state.inner_state)
        return inner, {**hyperparams, **found}
    if isinstance(state, (tuple, list)):
        for s in state:
            inner, found = _find(s)
            if inner is not None:
                return inner, found
    return None, {}


def first_moment(opt_state: Any) -> PyTree | None:
    """The first moment ``mu`` of the Adam-family state inside ``opt_state`` (None: none)."""
    inner, _ = _find(opt_state)
    return inner.mu if isinstance(inner, optax.ScaleByAdamState) else None


def _step(count: ArrayLike) -> jax.Array:
    """The step the state's moments belong to; a fresh state (count 0) counts as step 1."""
    return jnp.maximum(jnp.asarray(count), 1)


def _bias_correction(moment: PyTree, decay: ArrayLike, count: ArrayLike) -> PyTree:
    """``moment / (1 - decay^t)``, evaluated as Optax does (integer power, then a cast)."""
    correction = 1 - decay ** _step(count)
    return jax.tree.map(lambda m: m / jnp.asarray(correction).astype(m.dtype), moment)


def preconditioner(
    opt_state: Any,
    *,
    kind: str | None = None,
    b2: ArrayLike | None = None,
    decay: ArrayLike | None = None,
    eps: ArrayLike | None = None,
    eps_root: ArrayLike | None = None,
    eps_in_sqrt: bool | None = None,
    threshold: ArrayLike | None = None,
) -> PyTree:
    r"""The diagonal preconditioner P of an Optax adaptive optimizer, read from its state.

    The optimizer's update is :math:`-\eta P^{-1} m` (``m`` the gradient or its momentum), with
    exactly Optax's formulas at the state's step ``t``:

    .. math::
        \text{adam, adamw:}\ P = \sqrt{\hat\nu + \epsilon_{root}} + \epsilon,\quad
        \hat\nu = \nu / (1 - \beta_2^t) \\
        \text{radam:}\ P = (\sqrt{\hat\nu + \epsilon_{root}} + \epsilon) / r_t
        \text{ if } \rho_t \ge \text{threshold, else } 1,\quad
        \rho_t = \rho_\infty - \frac{2 t \beta_2^t}{1 - \beta_2^t},\
        r_t = \sqrt{\frac{(\rho_t-4)(\rho_t-2)\rho_\infty}{(\rho_\infty-4)(\rho_\infty-2)\rho_t}}
        \\
        \text{rmsprop:}\ P = \sqrt{\hat\nu + \epsilon}\ (\texttt{eps\_in\_sqrt}) \text{ or }
        \sqrt{\hat\nu} + \epsilon,\ \hat\nu \text{ bias-corrected only with a count in the state}
        \\
        \text{adagrad:}\ P = \sqrt{G + \epsilon} \text{ where } G > 0, \text{ else } +\infty
        \text{ (Optax leaves those coordinates still)}

    The hyperparameters Optax keeps in its closure (``b2``, ``eps``, ...) are not in the state:
    they are read from an ``optax.inject_hyperparams`` state when there is one, else taken from
    the keyword arguments, else Optax's defaults. A fresh state (``count = 0``) is treated as
    step 1. Weight decay (adamw) and momentum are not part of P.

    Args:
        opt_state: the state of ``optax.adam/adamw/radam/rmsprop/adagrad`` (possibly inside a
            chain or ``inject_hyperparams``).
        kind: one of ``"adam", "adamw", "radam", "rmsprop", "adagrad"``; inferred from the state
            type when omitted (an Adam-family state is read as adam: pass ``kind="radam"`` for
            RAdam, whose state is the same).
        b2, decay, eps, eps_root, eps_in_sqrt, threshold: the optimizer's hyperparameters when
            they differ from Optax's defaults.

    Returns:
        P, a pytree like the params with positive entries.

    Raises:
        ValueError: no Adam/RMSprop/Adagrad state found, an unknown ``kind``, or a ``kind``
            that does not match the state.

    Examples:
        >>> import jax.numpy as jnp, optax
        >>> from jaxlr.sharpness import preconditioner
        >>> tx = optax.adam(1e-3)
        >>> params = jnp.zeros(2)
        >>> _, state = tx.update(jnp.array([3.0, -4.0]), tx.init(params))
        >>> [round(x, 4) for x in preconditioner(state).tolist()]  # |g| after bias correction
        [3.0, 4.0]

    References:
        Cohen et al., Adaptive gradient methods at the edge of stability, 2022;
        Kingma & Ba, Adam, ICLR 2015; Liu et al., On the variance of the adaptive learning
        rate and beyond (RAdam), ICLR 2020; Duchi et al., Adagrad, JMLR 2011.
    """
    c = Checker("preconditioner")
    inner, injected = _find(opt_state)
    if inner is None:
        c.fail(
            "opt_state must contain an optax adam/adamw/radam/rmsprop/adagrad state, "
            f"got opt_state of type {type(opt_state).__name__}"
        )
    if isinstance(inner, optax.ScaleByAdamState):
        family = ("adam", "adamw", "radam")
    elif isinstance(inner, optax.ScaleByRssState):
        family = ("adagrad",)
    else:
        family = ("rmsprop",)
    if kind is None:
        kind = family[0]
    c.choice("kind", kind, KINDS)
    if kind not in family:
        c.fail(f"kind must match the state {type(inner).__name__}, got kind={kind!r}")
    given = {
        "b2": b2,
        "decay": decay,
        "eps": eps,
        "eps_root": eps_root,
        "eps_in_sqrt": eps_in_sqrt,
        "threshold": threshold,
    }
    h = dict(_DEFAULTS[kind])
    h.update({k: injected[k] for k in h if k in injected})
    h.update({k: v for k, v in given.items() if v is not None and k in h})

    if kind == "adagrad":
        return jax.tree.map(
            lambda g: jnp.where(g > 0, jnp.sqrt(jnp.where(g > 0, g, 0.0) + h["eps"]), jnp.inf),
            inner.sum_of_squares,
        )
    if kind == "rmsprop":
        nu = inner.nu
        if isinstance(inner, _RmsWithCount):
            nu = _bias_correction(nu, h["decay"], inner.count)
        if h["eps_in_sqrt"]:
            return jax.tree.map(lambda n: jnp.sqrt(n + h["eps"]), nu)
        return jax.tree.map(lambda n: jnp.sqrt(n) + h["eps"], nu)
    nu_hat = _bias_correction(inner.nu, h["b2"], inner.count)
    p = jax.tree.map(lambda n: jnp.sqrt(n + h["eps_root"]) + h["eps"], nu_hat)
    if kind != "radam":
        return p
    # Optax's own arithmetic: rho_t cancels two ~2/(1 - b2) terms, so the rounding must match.
    b2_, t = h["b2"], _step(inner.count)
    rho_inf = 2.0 / (1.0 - b2_) - 1.0
    b2t = b2_**t
    rho = rho_inf - 2 * t * b2t / (1 - b2t)
    on = rho >= h["threshold"]
    rho_on = jnp.where(on, rho, rho_inf)  # keeps the unused branch finite
    r = jnp.sqrt(
        (rho_on - 4.0) * (rho_on - 2.0) * rho_inf / ((rho_inf - 4.0) * (rho_inf - 2.0) * rho_on)
    )
    return jax.tree.map(lambda x: jnp.where(on, x / r.astype(x.dtype), 1.0), p)


@compiled("num_iters", "method")
def preconditioned_top_eigenvalue(
    loss_fn: Callable[..., jax.Array] | None,
    params: PyTree,
    precond: PyTree,
    *,
    key: jax.Array,
    num_iters: int = 20,
    method: str = "lanczos",
    v0: PyTree | None = None,
    tol: ArrayLike = 1e-3,
    matvec: Callable[[PyTree], PyTree] | None = None,
    batches: PyTree | None = None,
    batch: PyTree | None = None,
) -> Eigen:
    r"""Preconditioned sharpness :math:`\lambda_{\max}(P^{-1} H)` for a diagonal P.

    .. math::
        \lambda_{\max}(P^{-1} H) = \lambda_{\max}(P^{-1/2} H P^{-1/2})

    computed on the symmetric right-hand side (same spectrum), so Lanczos applies. This is the
    quantity that adaptive optimizers hold at their stability threshold (for Adam with
    ``b1 = 0.9``: :math:`38/\eta`, see :func:`stability_threshold`). Coordinates with
    :math:`P = +\infty` (frozen by Adagrad) are projected out.

    Args:
        loss_fn, params, key, num_iters, method, tol, matvec, batches, batch: as in
            :func:`top_eigenvalue`.
        precond: P, a pytree like ``params`` with positive entries (see :func:`preconditioner`).
        v0: warm start in the symmetric coordinates (a previous ``eigenvector``).

    Returns:
        :class:`Eigen`; ``eigenvector`` ``u`` is the unit eigenvector of
        :math:`P^{-1/2} H P^{-1/2}` (the eigenvector of :math:`P^{-1}H` is :math:`P^{-1/2}u`).

    Raises:
        ValueError: as :func:`top_eigenvalue`; ``precond`` not shaped like ``params``.

    Examples:
        >>> import jax, jax.numpy as jnp
        >>> from jaxlr.sharpness import preconditioned_top_eigenvalue
        >>> loss = lambda x: 0.5 * jnp.sum(jnp.array([4.0, 1.0]) * x**2)
        >>> e = preconditioned_top_eigenvalue(
        ...     loss, jnp.ones(2), jnp.array([8.0, 0.25]), key=jax.random.key(0))
        >>> round(float(e.eigenvalue), 4)  # max(4 / 8, 1 / 0.25)
        4.0

    References:
        Cohen et al., Adaptive gradient methods at the edge of stability, 2022.
    """
    fn = "preconditioned_top_eigenvalue"
    flat, unravel, op = flat_operator(
        loss_fn, params, matvec=matvec, batches=batches, batch=batch, fn_name=fn
    )
    p = jax.flatten_util.ravel_pytree(precond)[0]
    if p.shape != flat.shape:
        Checker(fn).fail(
            f"precond must be shaped like params ({flat.shape[0]} numbers), "
            f"got precond with {p.shape[0]} numbers"
        )
    d = safe_div(1.0, jnp.sqrt(p.astype(flat.dtype)))  # P^-1/2, which is 0 where P = inf
    return _eigen(
        fn,
        lambda x: d * op(d * x),
        flat,
        unravel,
        key=key,
        num_iters=num_iters,
        method=method,
        v0=v0,
        tol=tol,
    )
