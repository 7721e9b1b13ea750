"""Name lookup and the catalog of every compat constructor (private; re-exported by the package)."""

from __future__ import annotations

from collections.abc import Callable
from types import ModuleType

import jax
import jax.numpy as jnp

from jaxlr.compat import keras as K
from jaxlr.compat import torch as T
from jaxlr.compat import transformers as H
from jaxlr.schedules import Schedule

_PEERS: dict[str, ModuleType] = {"torch": T, "keras": K, "transformers": H}
# public names of the peer modules that are not schedule constructors
_NOT_SCHEDULES = {"ReduceLROnPlateau", "ReduceLROnPlateauState", "LRAndMomentum"}
_COMPANIONS = ("momentum",)  # co-schedules reached as attributes: torch.OneCycleLR.momentum


def _names() -> list[str]:
    out = []
    for peer, module in _PEERS.items():
        for name in module.__all__:
            if name in _NOT_SCHEDULES:
                continue
            out.append(f"{peer}.{name}")
            fn = getattr(module, name)
            out.extend(f"{peer}.{name}.{c}" for c in _COMPANIONS if hasattr(fn, c))
    return sorted(out)


def lookup(name: str) -> Callable[..., Schedule]:
    """The compat constructor called ``name``: ``"torch.OneCycleLR"``, ``"keras.CosineDecay"``,
    ``"transformers.get_wsd_schedule"``, a co-schedule such as ``"torch.CyclicLR.momentum"``;
    a leading ``"jaxlr.compat."`` is accepted.

    This is how an expression such as ``"torch.OneCycleLR(max_lr=0.1, total_steps=1000)"``
    (``jaxlr plot``, ``parse``) finds the peer's signature. A schedule built by a compat law
    prints (``repr``) and serializes (``to_config``) under the same dotted name, and
    ``lookup(name)`` is the constructor that rebuilds it from those arguments.

    Args:
        name: a dotted peer name.

    Returns:
        The constructor (a function of the peer's keyword arguments returning a schedule).

    Raises:
        ValueError: an unknown name, or a peer name that is not a schedule
            (``torch.ReduceLROnPlateau`` is an Optax transform); the message lists the known
            names.

    Examples:
        >>> import jaxlr
        >>> build = jaxlr.compat.lookup("torch.OneCycleLR")
        >>> s = build(max_lr=0.1, total_steps=1000)
        >>> round(float(s(299)), 6)
        0.1
        >>> jaxlr.compat.lookup("jaxlr.compat.torch.StepLR") is jaxlr.compat.torch.StepLR
        True

    References:
        The peers' scheduler APIs: ``torch.optim.lr_scheduler``,
        ``keras.optimizers.schedules``, ``transformers.optimization``.
    """
    known = _names()
    short = name.removeprefix("jaxlr.compat.") if isinstance(name, str) else None
    if short not in known:
        hint = ""
        if short == "torch.ReduceLROnPlateau":
            hint = " (torch.ReduceLROnPlateau is an Optax transform, not a schedule)"
        raise ValueError(f"lookup: unknown compat schedule {name!r}{hint}; known: {known}")
    peer, fn_name, *companion = short.split(".")
    fn = getattr(_PEERS[peer], fn_name)
    return getattr(fn, companion[0]) if companion else fn


def _decay(t: jax.Array) -> jax.Array:
    return 0.997**t


def _factor(t: jax.Array) -> jax.Array:
    return jnp.where(t < 500, 0.999, 0.995)


def _inverse(x: jax.Array) -> jax.Array:
    return 1.0 / x


def catalog() -> dict[str, Schedule]:
    """Every compat constructor with one valid set of peer arguments, keyed by its dotted name.

    Structural variants that run a different law appear once more, with the variant in
    parentheses (``"torch.OneCycleLR(three_phase)"``). User functions (``lr_lambda``,
    ``scale_fn``) are module-level functions, so the entries have a fixed structure. Values are
    chosen so that every phase shows within 1000 steps. The contract tests (jit without
    retracing, vmap over stacked members, finite ``jit(grad)``) and the parity round trips
    iterate over it.

    Returns:
        A dict from name to schedule; ``lookup(name.split("(")[0])`` is its constructor.

    Examples:
        >>> import jaxlr
        >>> cat = jaxlr.compat.catalog()
        >>> round(float(cat["torch.StepLR"](200)), 6)
        0.0005
        >>> sorted({name.split(".")[0] for name in cat})
        ['keras', 'torch', 'transformers']

    References:
        ``jaxlr.schedules.catalog``, its native counterpart.
    """
    lr, low = 1e-3, 1e-4
    cyclic = dict(base_lr=low, max_lr=lr, step_size_up=100, step_size_down=150)
    entries = {
        "torch.LambdaLR": T.LambdaLR(lr_lambda=_decay, lr=lr),
        "torch.MultiplicativeLR": T.MultiplicativeLR(lr_lambda=_factor, lr=lr),
        "torch.StepLR": T.StepLR(step_size=200, gamma=0.5, lr=lr),
        "torch.MultiStepLR": T.MultiStepLR(milestones=[300, 600], gamma=0.1, lr=lr),
        "torch.ConstantLR": T.ConstantLR(factor=0.5, total_iters=100, lr=lr),
        "torch.LinearLR": T.LinearLR(start_factor=0.25, end_factor=0.8, total_iters=200, lr=lr),
        "torch.ExponentialLR": T.ExponentialLR(gamma=0.995, lr=lr),
        "torch.PolynomialLR": T.PolynomialLR(total_iters=800, power=2.0, lr=lr),
        "torch.CosineAnnealingLR": T.CosineAnnealingLR(T_max=400, eta_min=1e-5, lr=lr),
        "torch.CosineAnnealingWarmRestarts": T.CosineAnnealingWarmRestarts(
            T_0=100, T_mult=2, eta_min=1e-5, lr=lr
        ),
        "torch.CyclicLR": T.CyclicLR(**cyclic, mode="triangular2"),
        "torch.CyclicLR(scale_fn)": T.CyclicLR(**cyclic, scale_fn=_inverse),
        "torch.CyclicLR.momentum": T.CyclicLR.momentum(**cyclic, mode="exp_range", gamma=0.999),
        "torch.OneCycleLR": T.OneCycleLR(max_lr=lr, total_steps=1000),
        "torch.OneCycleLR(three_phase)": T.OneCycleLR(
            max_lr=lr, total_steps=1000, pct_start=0.25, anneal_strategy="linear", three_phase=True
        ),
        "torch.OneCycleLR.momentum": T.OneCycleLR.momentum(max_lr=lr, total_steps=1000),
        "torch.SWALR": T.SWALR(swa_lr=low, anneal_epochs=100, lr=lr),
        "torch.SequentialLR": T.SequentialLR(
            schedulers=[
                T.LinearLR(start_factor=0.1, total_iters=100, lr=lr),
                T.CosineAnnealingLR(T_max=900, lr=lr),
            ],
            milestones=[100],
        ),
        "torch.ChainedScheduler": T.ChainedScheduler(
            schedulers=[
                T.ConstantLR(factor=0.5, total_iters=100, lr=lr),
                T.ExponentialLR(gamma=0.998, lr=lr),
            ],
            lr=lr,
        ),
        "keras.ExponentialDecay": K.ExponentialDecay(
            initial_learning_rate=lr, decay_steps=200, decay_rate=0.5, staircase=True
        ),
        "keras.PiecewiseConstantDecay": K.PiecewiseConstantDecay(
            boundaries=[300, 600], values=[lr, 5e-4, low]
        ),
        "keras.PolynomialDecay": K.PolynomialDecay(
            initial_learning_rate=lr, decay_steps=800, end_learning_rate=1e-5, power=2.0
        ),
        "keras.PolynomialDecay(cycle)": K.PolynomialDecay(
            initial_learning_rate=lr, decay_steps=300, end_learning_rate=1e-5, cycle=True
        ),
        "keras.InverseTimeDecay": K.InverseTimeDecay(
            initial_learning_rate=lr, decay_steps=100, decay_rate=0.5
        ),
        "keras.CosineDecay": K.CosineDecay(initial_learning_rate=lr, decay_steps=800, alpha=0.01),
        "keras.CosineDecay(warmup_target)": K.CosineDecay(
            initial_learning_rate=0.0, decay_steps=800, warmup_target=lr, warmup_steps=100
        ),
        "keras.CosineDecayRestarts": K.CosineDecayRestarts(
            initial_learning_rate=lr, first_decay_steps=100, t_mul=2.0, m_mul=0.9, alpha=0.01
        ),
    }
    w = dict(num_warmup_steps=100, lr=lr)
    wt = dict(w, num_training_steps=1000)
    hf = {
        "get_constant_schedule": dict(lr=lr),
        "get_constant_schedule_with_warmup": w,
        "get_linear_schedule_with_warmup": wt,
        "get_cosine_schedule_with_warmup": wt,
        "get_cosine_with_min_lr_schedule_with_warmup": dict(wt, min_lr_rate=0.1),
        "get_cosine_with_hard_restarts_schedule_with_warmup": dict(wt, num_cycles=3),
        "get_polynomial_decay_schedule_with_warmup": dict(wt, lr_end=1e-5, power=2.0),
        "get_inverse_sqrt_schedule": w,
        "get_wsd_schedule": dict(wt, num_decay_steps=200, decay_type="1-sqrt"),
    }
    return {**entries, **{f"transformers.{n}": getattr(H, n)(**kw) for n, kw in hf.items()}}
