"""A learned LR controller: a policy with array parameters reads scale-free training features
every few steps and moves log(LR) by a bounded amount."""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.typing import ArrayLike

from jaxlr._src.numeric import as_float
from jaxlr._src.typing import PyTree
from jaxlr._src.validate import Checker, concrete
from jaxlr.schedules import Schedule, constant, piecewise_constant
from jaxlr.sharpness import stability_ratio
from jaxlr.transforms._common import (
    all_finite,
    floats,
    lr_state,
    require,
    require_params,
    scale_updates,
)

# The features a policy may read, in the order documented in :func:`learned_lr`.
FEATURES = (
    "loss_change",
    "val_gap",
    "grad_norm",
    "update_ratio",
    "progress",
    "log_lr",
    "stability",
)
# Features are clipped to this magnitude, so a zero parameter norm or a loss of 0 (log -> -inf)
# reaches the policy as a large finite number.
FEATURE_CLIP = 10.0


class MLPPolicy:
    r"""A one-hidden-layer policy, optionally recurrent (an Elman cell), with a ``tanh`` output.

    .. math::
        h_k = \tanh(W x_k + U h_{k-1} + b), \qquad o_k = \tanh(v \cdot h_k + c)

    (:math:`U = 0` and no carry when ``recurrent`` is False). Built by :func:`mlp_policy`; its
    parameters are a dict of arrays (``init``), so a population of policies is a stacked dict.

    Examples:
        >>> import jax, jax.numpy as jnp, jaxlr
        >>> policy = jaxlr.transforms.mlp_policy(("log_lr",), hidden=3, recurrent=True)
        >>> params = policy.init(jax.random.key(0))
        >>> sorted(params), policy.init_carry().shape
        (['b', 'c', 'u', 'v', 'w'], (3,))
    """

    def __init__(self, features: tuple[str, ...], hidden: int, recurrent: bool):
        self.features = features
        self.hidden = hidden
        self.recurrent = recurrent

    def init(self, key: jax.Array) -> dict[str, jax.Array]:
        """Parameters with a zero output layer: the initial policy keeps the LR constant."""
        n, h = len(self.features), self.hidden
        k1, k2 = jax.random.split(key)
        params = {
            "w": jax.random.normal(k1, (n, h)) / math.sqrt(max(n, 1)),
            "b": jnp.zeros(h),
            "v": jnp.zeros(h),
            "c": jnp.zeros([]),
        }
        if self.recurrent:
            params["u"] = jax.random.normal(k2, (h, h)) / math.sqrt(h)
        return params

    def init_carry(self) -> jax.Array:
        """The recurrent state before the first decision (``(hidden,)`` zeros, or ``(0,)``)."""
        return jnp.zeros(self.hidden if self.recurrent else 0)

    def __call__(self, params, x, carry):
        z = x @ params["w"] + params["b"]
        if self.recurrent:
            z = z + carry @ params["u"]
        h = jnp.tanh(z)
        out = jnp.tanh(h @ params["v"] + params["c"])
        return out, (h if self.recurrent else carry)

    def to_config(self) -> dict[str, Any]:
        """The policy's structure as JSON-ready data (``mlp_policy(**config)`` rebuilds it)."""
        return {"features": list(self.features), "hidden": self.hidden, "recurrent": self.recurrent}

    def __eq__(self, other):
        return isinstance(other, MLPPolicy) and self.to_config() == other.to_config()

    def __hash__(self):
        return hash((self.features, self.hidden, self.recurrent))

    def __repr__(self):
        return (
            f"mlp_policy(features={self.features!r}, hidden={self.hidden}, "
            f"recurrent={self.recurrent})"
        )


def _check_features(c: Checker, features: Any) -> tuple[str, ...]:
    if isinstance(features, str) or not all(isinstance(f, str) for f in features):
        c.fail(f"features must be a sequence of feature names, got features={features!r}")
    features = tuple(features)
    unknown = [f for f in features if f not in FEATURES]
    if unknown:
        c.fail(f"features must be names from {FEATURES}, got unknown {unknown}")
    if len(set(features)) != len(features) or not features:
        c.fail(f"features must be distinct and non-empty, got features={features!r}")
    return features


def mlp_policy(
    features: tuple[str, ...] = ("loss_change", "grad_norm", "update_ratio", "progress", "log_lr"),
    *,
    hidden: int = 8,
    recurrent: bool = False,
) -> MLPPolicy:
    r"""A small MLP (or Elman RNN) LR policy for :func:`learned_lr`.

    .. math::
        h_k = \tanh(W x_k + U h_{k-1} + b), \qquad o_k = \tanh(v \cdot h_k + c) \in (-1, 1)

    where :math:`x_k` are the ``features`` at decision :math:`k`; :func:`learned_lr` turns
    :math:`o_k` into a change of log LR of at most :math:`\log(\text{max\_factor})`.
    ``policy.init(key)`` gives parameters whose output layer is zero, i.e. a constant LR.

    Args:
        features: names from ``jaxlr.transforms._learned.FEATURES`` (see :func:`learned_lr`).
        hidden: hidden units (static int >= 1).
        recurrent: keep :math:`h` between decisions (static bool).

    Returns:
        An :class:`MLPPolicy` (static structure; parameters come from ``init``).

    Raises:
        ValueError: unknown or repeated features, ``hidden`` not an int >= 1, ``recurrent`` not
            a bool.

    Examples:
        >>> import jax, jax.numpy as jnp, jaxlr
        >>> policy = jaxlr.transforms.mlp_policy(("progress", "log_lr"), hidden=4)
        >>> params = policy.init(jax.random.key(0))
        >>> out, _ = policy(params, jnp.array([0.5, 0.0]), policy.init_carry())
        >>> float(out)  # the initial policy keeps the LR
        0.0

    References:
        Xu, Dai, Kemp & Metz, Learning an Adaptive Learning Rate Schedule, arXiv:1909.09712, 2019.
    """
    c = Checker("mlp_policy")
    features = _check_features(c, features)
    if isinstance(hidden, bool) or not isinstance(hidden, int) or hidden < 1:
        c.fail(f"hidden must be an int >= 1, got hidden={hidden!r}")
    c.flag("recurrent", recurrent)
    return MLPPolicy(features, hidden, recurrent)


class LearnedLRHyperparams(NamedTuple):
    """Numeric hyperparameters of :func:`learned_lr` (arrays: edit, trace or stack them)."""

    init_value: jax.Array  # () the LR before the first decision; log_lr is relative to it
    min_value: jax.Array  # () hard lower bound of the LR (> 0)
    max_value: jax.Array  # () hard upper bound of the LR
    max_factor: jax.Array  # () largest LR change per decision (a factor >= 1)
    every: jax.Array  # () updates between decisions
    total_steps: jax.Array  # () the horizon T of the progress feature (inf: not given)
    decay: jax.Array  # () EMA decay of the loss and gradient-norm statistics
    momentum: jax.Array  # () heavy-ball momentum of the stability threshold
    b1: jax.Array  # () Adam's beta1 of the stability threshold


@lr_state
class LearnedLRState(NamedTuple):
    """State of :func:`learned_lr`."""

    count: jax.Array  # () int32, updates done
    lr: jax.Array  # () the LR applied by the last update
    policy_params: Any  # the policy's parameters (array leaves: stack them to vmap policies)
    carry: Any  # the policy's recurrent state
    loss_avg: jax.Array  # () EMA of finite losses (biased; divide by loss_weight)
    loss_weight: jax.Array  # () 1 - decay^n over the n finite losses seen
    loss_ref: jax.Array  # () smoothed loss at the last decision (NaN before any loss)
    grad_avg: jax.Array  # () EMA of finite gradient norms (biased; divide by grad_weight)
    grad_weight: jax.Array  # () 1 - decay^n over the n finite norms seen
    val_loss: jax.Array  # () last finite validation loss passed (NaN: none yet)
    features: jax.Array  # (num_features,) the features of the last decision
    num_skipped: jax.Array  # () int32, non-finite losses or policy outputs skipped
    inner_state: Any  # the wrapped optimizer's state (None in chain mode)
    hyperparams: LearnedLRHyperparams


def _log(x: jax.Array) -> jax.Array:
    """``log(x)`` for ``x > 0``, the log of the smallest normal float otherwise (finite)."""
    tiny = jnp.finfo(x.dtype).tiny
    return jnp.log(jnp.maximum(x, tiny))


def _norm(tree: Any) -> jax.Array:
    """The l2 norm of ``tree`` with a finite gradient at 0 (``jax.grad`` through a zero
    gradient or zero parameters stays finite)."""
    if not jax.tree.leaves(tree):
        return jnp.zeros([])
    sq = sum(jnp.sum(jnp.square(x)) for x in jax.tree.leaves(tree))
    pos = sq > 0  # a NaN stays NaN (the skip rules need to see it)
    return jnp.where(pos, jnp.sqrt(jnp.where(pos, sq, 1.0)), sq)


def _check_policy(c: Checker, policy: Any, params: Any, carry: Any, n: int) -> None:
    """The policy's output for ``n`` features must be a scalar and its carry keep its shape."""
    x = jax.ShapeDtypeStruct((n,), jnp.result_type(float))
    try:
        out, new_carry = jax.eval_shape(policy, params, x, carry)
    except Exception as e:  # a parameter shape that does not fit the features, a bad return
        c.fail(
            f"the policy cannot be applied to params with {n} features "
            f"({type(e).__name__}: {e}); build params with policy.init(key)"
        )
    if np.shape(out) != ():
        c.fail(f"the policy must return a scalar output (shape ()), got shape {np.shape(out)}")
    same = jax.tree.structure(new_carry) == jax.tree.structure(carry) and all(
        np.shape(a) == np.shape(b)
        for a, b in zip(jax.tree.leaves(new_carry), jax.tree.leaves(carry), strict=True)
    )
    if not same:
        c.fail("the policy must return a carry of the same structure and shapes as it was given")


def learned_lr(
    policy: Any,
    params: PyTree,
    *,
    init_value: ArrayLike,
    min_value: ArrayLike,
    max_value: ArrayLike,
    max_factor: ArrayLike = 2.0,
    every: ArrayLike = 10,
    total_steps: ArrayLike | None = None,
    decay: ArrayLike = 0.9,
    optimizer: optax.GradientTransformation | None = None,
    kind: str = "gd",
    momentum: ArrayLike = 0.0,
    b1: ArrayLike = 0.9,
) -> optax.GradientTransformationExtraArgs:
    r"""An LR controller driven by a policy with array parameters (a learned LR schedule).

    Every update feeds the running statistics (a bias-corrected EMA with ``decay`` of the loss
    ``value=`` and of the gradient norm); at updates :math:`t = k\cdot\text{every}`,
    :math:`k \ge 1`, the policy reads the feature vector :math:`x` and its recurrent state and
    returns :math:`o`; the LR moves in log space by at most :math:`\log F` (``max_factor``) and
    stays within the hard bounds:

    .. math::
        \log\eta_t = \mathrm{clip}\bigl(\log\eta_{t-1} + \log F\,\mathrm{clip}(o, -1, 1),\
        \log\eta_{\min}, \log\eta_{\max}\bigr)

    and the update of that call is scaled by the new :math:`\eta_t`. Features (all scale-free,
    clipped to :math:`\pm 10`), with :math:`\bar L` the smoothed loss:

    - ``loss_change``: :math:`\log\bar L_t - \log\bar L_{\text{last decision}}` (0 at the first);
    - ``val_gap``: :math:`\log(L^{\text{val}} / \bar L_t)`, the last ``val_loss=`` passed;
    - ``grad_norm``: :math:`\log\|g_t\| - \log\bar g_{t-1}`, the gradient norm relative to the
      running mean of the earlier ones (0 at the first update); :math:`g` is what this
      transform receives: raw gradients when it wraps ``optimizer``, else the incoming updates;
    - ``update_ratio``: :math:`\log(\eta_{t-1}\|d_t\| / \|\theta_t\|)` (needs ``params``);
    - ``progress``: :math:`t/T` (needs ``total_steps``);
    - ``log_lr``: :math:`\log(\eta_{t-1}/\eta_0)`;
    - ``stability``: :math:`\eta_{t-1}\lambda / c`, :func:`jaxlr.sharpness.stability_ratio` of
      a sharpness estimate passed as ``sharpness=`` (``kind``, ``momentum``, ``b1`` give
      :math:`c`).

    Losses must be positive (cross-entropy, squared error). A non-finite ``value`` is skipped
    (not stored, counted in ``num_skipped``); a non-finite policy output or feature keeps the
    LR, the carry and the last features (counted). With ``optimizer``, a non-finite gradient
    skips the step: the update is zero, the inner state and the LR are kept (counted).

    Hard limits: ``min_value``/``max_value`` bound the LR whatever the policy says. Chained
    with :func:`sharpness_cap` (``schedule`` the absolute LR, this transform's
    ``max_value <= 1``) the applied LR, the product read by :func:`current_lr`, never exceeds
    the cap.

    Args:
        policy: an :class:`MLPPolicy` (:func:`mlp_policy`) or any object with ``features``
            (names, in the order of :math:`x`), ``init_carry()`` and
            ``__call__(params, x, carry) -> (scalar, carry)``.
        params: the policy's parameters (array leaves; traced or stacked under ``vmap``).
        init_value: :math:`\eta_0`, the LR before the first decision.
        min_value, max_value: hard bounds, ``0 < min_value < max_value``.
        max_factor: :math:`F \ge 1`, the largest LR change per decision.
        every: updates between decisions (an integer >= 1).
        total_steps: :math:`T`, required by the ``progress`` feature.
        decay: EMA decay in [0, 1) of the loss and gradient-norm statistics.
        optimizer: an Optax transform giving the unit-LR direction from raw gradients; ``None``:
            a chain element that scales the incoming updates.
        kind, momentum, b1: the optimizer family of the ``stability`` feature, as in
            :func:`jaxlr.sharpness.stability_ratio`.

    Returns:
        An ``optax.GradientTransformationExtraArgs`` whose update takes ``value=`` (the loss),
        and, when the features need them, ``val_loss=`` and ``sharpness=``; its
        :class:`LearnedLRState` holds the LR, the policy's parameters and carry, and the
        running statistics.

    Raises:
        ValueError: unknown features, a policy whose output is not a scalar (or whose params do
            not fit its features), ``min_value >= max_value`` or ``min_value <= 0``,
            ``init_value`` outside the bounds, ``every`` not an integer >= 1, ``max_factor < 1``,
            ``progress`` without ``total_steps``; at trace time, a missing ``value=``, or a
            feature's input (``val_loss=``, ``sharpness=``, ``params``) not passed.

    Examples:
        >>> import jax, jax.numpy as jnp, optax, jaxlr
        >>> policy = jaxlr.transforms.mlp_policy(("progress",), hidden=2)
        >>> p = policy.init(jax.random.key(0))
        >>> p["c"] = jnp.array(-10.0)  # always "decrease as fast as allowed"
        >>> tx = optax.chain(optax.sgd(1.0), jaxlr.transforms.learned_lr(
        ...     policy, p, init_value=0.1, min_value=0.01, max_value=1.0, every=5,
        ...     total_steps=20))
        >>> w = jnp.ones(2)
        >>> state = tx.init(w)
        >>> for _ in range(11):
        ...     u, state = tx.update(w, state, w, value=jnp.sum(w**2))
        ...     w = optax.apply_updates(w, u)
        >>> round(float(jaxlr.transforms.current_lr(state)), 6)  # 0.1 / 2 / 2, at t = 5, 10
        0.025

    References:
        Xu, Dai, Kemp & Metz, Learning an Adaptive Learning Rate Schedule, arXiv:1909.09712,
        2019; Shu et al., MLR-SNet: Transferable LR Schedules for Heterogeneous Tasks, TPAMI
        2022.
    """
    c = Checker("learned_lr")
    features = getattr(policy, "features", None)
    if features is None or not callable(policy) or not hasattr(policy, "init_carry"):
        c.fail(
            "policy must have features, init_carry() and __call__(params, x, carry) "
            f"(e.g. jaxlr.transforms.mlp_policy()), got policy={policy!r}"
        )
    features = _check_features(c, features)
    c.positive("min_value", min_value)
    c.positive("max_value", max_value)
    lo, hi = concrete(min_value), concrete(max_value)
    if lo is not None and hi is not None and not bool(np.all(lo < hi)):
        c.fail(
            f"min_value must be < max_value (bounds low < high), got min_value={lo.item()!r}, "
            f"max_value={hi.item()!r}"
        )
    c.positive("init_value", init_value)
    c.not_greater("min_value", min_value, "init_value", init_value)
    c.not_greater("init_value", init_value, "max_value", max_value)
    c.at_least("max_factor", max_factor, 1.0)
    c.integer("every", every, minimum=1)
    if "progress" in features and total_steps is None:
        c.fail("the progress feature needs total_steps=T, got total_steps=None")
    if total_steps is not None:
        c.positive("total_steps", total_steps)
    c.between("decay", decay, 0.0, 1.0)
    d = concrete(decay)
    if d is not None and bool(np.any(d >= 1.0)):
        c.fail(f"decay must be < 1, got decay={d.item()!r}")
    c.choice("kind", kind, ("gd", "heavy_ball", "nesterov", "adam"))
    hp = LearnedLRHyperparams(
        **floats(
            c.fn,
            init_value=init_value,
            min_value=min_value,
            max_value=max_value,
            max_factor=max_factor,
            every=every,
            total_steps=jnp.inf if total_steps is None else total_steps,
            decay=decay,
            momentum=momentum,
            b1=b1,
        )
    )
    params = jax.tree.map(jnp.asarray, params)
    carry0 = policy.init_carry()
    _check_policy(c, policy, params, carry0, len(features))
    inner = None if optimizer is None else optax.with_extra_args_support(optimizer)

    def init_fn(model_params):
        f = hp.init_value
        zero, nan = jnp.zeros_like(f), jnp.full_like(f, jnp.nan)
        i32 = jnp.zeros([], jnp.int32)
        return LearnedLRState(
            i32,
            f,
            params,
            carry0,
            zero,
            zero,
            nan,
            zero,
            zero,
            nan,
            jnp.zeros(len(features), f.dtype),
            i32,
            None if inner is None else inner.init(model_params),
            hp,
        )

    def update_fn(
        updates, state, params=None, *, value=None, val_loss=None, sharpness=None, **extra
    ):
        require(c, "value", value)
        if "val_gap" in features:
            require(c, "val_loss", val_loss)
        if "stability" in features:
            require(c, "sharpness", sharpness)
        if "update_ratio" in features:
            require_params(c, params)
        h = state.hyperparams
        dtype = state.lr.dtype
        grad_norm = _norm(updates).astype(dtype)
        finite = jnp.asarray(True)
        if inner is None:
            direction, inner_state = updates, None
        else:
            direction, inner_state = inner.update(updates, state.inner_state, params, **extra)
            # a non-finite gradient skips the step: nothing of it enters the inner state
            finite = all_finite(updates) & all_finite(direction)
            inner_state = jax.tree.map(
                lambda a, b: jnp.where(finite, a, b), inner_state, state.inner_state
            )
            direction = jax.tree.map(lambda d: jnp.where(finite, d, jnp.zeros_like(d)), direction)

        # running statistics (non-finite inputs skipped)
        loss = jnp.asarray(value, dtype)
        ok = jnp.isfinite(loss)
        loss_avg = jnp.where(ok, h.decay * state.loss_avg + (1 - h.decay) * loss, state.loss_avg)
        loss_weight = jnp.where(ok, h.decay * state.loss_weight + (1 - h.decay), state.loss_weight)
        smooth = loss_avg / jnp.where(loss_weight > 0, loss_weight, 1.0)
        have_loss = loss_weight > 0
        loss_ref = jnp.where(jnp.isnan(state.loss_ref) & have_loss, smooth, state.loss_ref)
        g_ok = jnp.isfinite(grad_norm)
        prev_g = state.grad_avg / jnp.where(state.grad_weight > 0, state.grad_weight, 1.0)
        grad_feat = jnp.where((state.grad_weight > 0) & g_ok, _log(grad_norm) - _log(prev_g), 0.0)
        grad_avg = jnp.where(
            g_ok, h.decay * state.grad_avg + (1 - h.decay) * grad_norm, state.grad_avg
        )
        grad_weight = jnp.where(
            g_ok, h.decay * state.grad_weight + (1 - h.decay), state.grad_weight
        )
        val = state.val_loss
        if val_loss is not None:
            v = jnp.asarray(val_loss, dtype)
            val = jnp.where(jnp.isfinite(v), v, val)

        # features (computed every update, used at decisions)
        t = state.count.astype(dtype)
        values = {
            "loss_change": jnp.where(have_loss, _log(smooth) - _log(loss_ref), 0.0),
            "val_gap": jnp.where(
                jnp.isfinite(val) & have_loss,
                _log(jnp.where(jnp.isfinite(val), val, 1.0)) - _log(smooth),
                0.0,
            ),
            "grad_norm": grad_feat,
            "progress": t / h.total_steps,
            "log_lr": _log(state.lr) - _log(h.init_value),
        }
        if "update_ratio" in features:
            values["update_ratio"] = _log(state.lr * _norm(direction).astype(dtype)) - _log(
                _norm(params).astype(dtype)
            )
        if "stability" in features:
            values["stability"] = as_float(
                stability_ratio(
                    state.lr, _sharpness_value(sharpness), kind=kind, momentum=h.momentum, b1=h.b1
                )
            ).astype(dtype)
        x = jnp.clip(jnp.stack([values[f] for f in features]), -FEATURE_CLIP, FEATURE_CLIP)

        # the decision
        every_i = jnp.round(h.every).astype(jnp.int32)  # integers: exact past 2^24 steps
        due = (state.count > 0) & (jnp.mod(state.count, every_i) == 0)
        out, carry = policy(state.policy_params, x, state.carry)
        out = jnp.asarray(out, dtype)
        out_ok = jnp.isfinite(out) & jnp.all(jnp.isfinite(x))  # NaN features: no decision
        step = jnp.log(h.max_factor) * jnp.clip(jnp.where(out_ok, out, 0.0), -1.0, 1.0)
        log_lr = jnp.clip(_log(state.lr) + step, _log(h.min_value), _log(h.max_value))
        move = due & out_ok & finite
        lr = jnp.where(move, jnp.exp(log_lr), state.lr)
        lr = jnp.clip(lr, h.min_value, h.max_value)
        carry = jax.tree.map(lambda a, b: jnp.where(move, a, b), carry, state.carry)
        skipped = (~ok | ~finite).astype(jnp.int32) + (due & finite & ~out_ok).astype(jnp.int32)
        new = LearnedLRState(
            optax.safe_increment(state.count),
            lr,
            state.policy_params,
            carry,
            loss_avg,
            loss_weight,
            jnp.where(move, smooth, loss_ref),
            grad_avg,
            grad_weight,
            val,
            jnp.where(move, x, state.features),  # a skipped output keeps the last features
            state.num_skipped + skipped,
            inner_state,
            h,
        )
        return scale_updates(direction, lr), new

    return optax.GradientTransformationExtraArgs(init_fn, update_fn)


def _sharpness_value(s: Any) -> jax.Array:
    """A sharpness passed as a number, or a jaxlr estimate (a NamedTuple with ``eigenvalue``)."""
    return jnp.asarray(getattr(s, "eigenvalue", s))


def applied_schedule(lrs: ArrayLike) -> Schedule:
    r"""The LRs a run applied at steps ``0..T-1`` as a schedule that retrains from scratch.

    .. math:: \eta(t) = \text{lrs}[\min(t, T-1)]

    A ``jaxlr.schedules.piecewise_constant`` whose boundaries are the steps where the LR
    changed (``jaxlr.schedules.constant`` when it never did), so a controller's run (e.g.
    :func:`learned_lr`'s, ``current_lr`` after each update) becomes a plain schedule.

    Args:
        lrs: ``[T]`` the LR applied by each update, in order (concrete).

    Returns:
        A jaxlr schedule with ``s(t) == lrs[t]`` for ``t < T``.

    Raises:
        ValueError: ``lrs`` empty, not 1-D, or not finite.

    Examples:
        >>> import jaxlr
        >>> s = jaxlr.transforms.applied_schedule([0.1, 0.1, 0.05, 0.05, 0.025])
        >>> [float(s(t)) for t in range(6)]
        [0.1, 0.1, 0.05, 0.05, 0.025, 0.025]

    References:
        Jaderberg et al., Population Based Training of Neural Networks, 2017 (the exported
        schedule of a run, retrained from scratch).
    """
    c = Checker("applied_schedule")
    a = np.asarray(lrs, dtype=np.float64)
    if a.ndim != 1 or a.size == 0:
        c.fail(f"lrs must be a non-empty 1-D sequence, got shape {a.shape}")
    c.finite("lrs", a)
    a = a.astype(np.float32)
    change = np.flatnonzero(a[1:] != a[:-1]) + 1
    if not len(change):
        return constant(value=float(a[0]))
    return piecewise_constant(
        boundaries=change.astype(np.float32), values=a[np.concatenate([[0], change])]
    )
