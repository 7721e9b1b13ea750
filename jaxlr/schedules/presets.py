"""Presets: the schedules of well-known training recipes, built from the families.

Each preset returns an ordinary schedule (a family or a combinator), so it traces, stacks and
serializes like any other.
"""

from __future__ import annotations

import jax.numpy as jnp
from jax.typing import ArrayLike

from jaxlr._src.numeric import as_float, times
from jaxlr._src.validate import Checker, renamed
from jaxlr.schedules._combinators import warmup
from jaxlr.schedules._core import Schedule
from jaxlr.schedules._families import multistep, noam, piecewise_constant, piecewise_interpolate
from jaxlr.schedules._families import warmup_cosine as _warmup_cosine
from jaxlr.schedules._phased import _product, wsd

__all__ = ["bert", "deepseek_step", "llm_cosine", "minicpm_wsd", "resnet_step", "transformer"]


def resnet_step(
    *,
    steps_per_epoch: ArrayLike,
    peak_value: ArrayLike = 0.1,
    boundary_epochs: ArrayLike = (30, 60, 90),
    decay_rate: ArrayLike = 0.1,
) -> Schedule:
    r"""ResNet's step decay: 0.1, divided by 10 at epochs 30, 60 and 90.

    .. math:: \eta(t) = P\,\gamma^{\#\{e_i:\ e_i N \le t\}}

    Args:
        steps_per_epoch: ``N``, optimizer steps per epoch.
        peak_value: ``P`` (0.1 for batch 256).
        boundary_epochs: epochs ``e_i`` at which the LR is multiplied by ``decay_rate``.
        decay_rate: ``gamma``.

    Returns:
        A :func:`jaxlr.schedules.multistep` schedule over optimizer steps.

    Traced arguments: as the schedule it returns.

    Examples:
        >>> from jaxlr.schedules import presets
        >>> s = presets.resnet_step(steps_per_epoch=100)
        >>> [round(float(s(t)), 6) for t in (2999, 3000, 6000)]
        [0.1, 0.01, 0.001]

    References:
        He et al., Deep Residual Learning for Image Recognition, 2016.
    """
    Checker("resnet_step").positive("steps_per_epoch", steps_per_epoch)
    boundaries = _product(boundary_epochs, steps_per_epoch)  # exact for concrete ints
    return multistep(init_value=peak_value, boundaries=boundaries, decay_rate=decay_rate)


def transformer(*, d_model: ArrayLike = 512, warmup_steps: ArrayLike = 4000) -> Schedule:
    r"""The Transformer's schedule: :math:`d^{-1/2}\min(t^{-1/2}, t W^{-3/2})`, W = 4000.

    Returns:
        A :func:`jaxlr.schedules.noam` schedule.

    Traced arguments: as the schedule it returns.

    Examples:
        >>> from jaxlr.schedules import presets
        >>> round(float(presets.transformer()(4000)), 7)
        0.0006988

    References:
        Vaswani et al., Attention Is All You Need, 2017.
    """
    return noam(d_model=d_model, warmup_steps=warmup_steps)


def bert(
    *, total_steps: ArrayLike, peak_value: ArrayLike = 1e-4, warmup_fraction: ArrayLike = 0.1
) -> Schedule:
    r"""BERT's schedule: linear warmup over the first 10% of steps, then linear decay to 0.

    Knots :math:`(0, 0)`, :math:`(fT, P)`, :math:`(T, 0)`, linear between.

    Args:
        total_steps: ``T``.
        peak_value: ``P`` (1e-4 in pre-training).
        warmup_fraction: ``f`` in [0, 1].

    Returns:
        A :func:`jaxlr.schedules.piecewise_interpolate` schedule.

    Traced arguments: as the schedule it returns.

    Examples:
        >>> from jaxlr.schedules import presets
        >>> s = presets.bert(total_steps=1000, peak_value=1.0)
        >>> [round(float(s(t)), 4) for t in (50, 100, 550, 1000)]
        [0.5, 1.0, 0.5, 0.0]

    References:
        Devlin et al., BERT, 2019.
    """
    c = Checker("bert")
    c.positive("total_steps", total_steps)
    c.between("warmup_fraction", warmup_fraction, 0.0, 1.0)
    t = jnp.asarray(total_steps, dtype=float)
    knots = jnp.stack([jnp.zeros_like(t), warmup_fraction * t, t])
    values = jnp.stack([jnp.zeros_like(t), jnp.asarray(peak_value, t.dtype), jnp.zeros_like(t)])
    return piecewise_interpolate(boundaries=knots, values=values)


@renamed(end_ratio="end_value")
def llm_cosine(
    *,
    total_steps: ArrayLike,
    peak_value: ArrayLike = 3e-4,
    warmup_steps: ArrayLike = 2000,
    end_value: ArrayLike | None = None,
) -> Schedule:
    r"""The LLM recipe: linear warmup, cosine decay to 10% of the peak (GPT-3, LLaMA).

    Args:
        total_steps: ``T``, warmup included.
        peak_value: ``P``.
        warmup_steps: ``W``.
        end_value: the final LR; defaults to ``0.1 * peak_value``.

    Returns:
        :func:`jaxlr.schedules.warmup_cosine` from 0 to ``peak_value`` to ``end_value``.

    Raises:
        ValueError: as :func:`jaxlr.schedules.warmup_cosine`.
        TypeError: the old ``end_ratio`` (give the absolute ``end_value``).

    Traced arguments: as the schedule it returns.

    Examples:
        >>> from jaxlr.schedules import presets
        >>> s = presets.llm_cosine(total_steps=10_000, peak_value=1.0, warmup_steps=1000)
        >>> [round(float(s(t)), 4) for t in (1000, 10_000)]
        [1.0, 0.1]

    References:
        Brown et al., Language Models are Few-Shot Learners, 2020; Touvron et al., LLaMA, 2023.
    """
    Checker("llm_cosine").finite("peak_value", peak_value)
    end_value = times(peak_value, 0.1) if end_value is None else end_value
    return _warmup_cosine(
        peak_value=peak_value,
        warmup_steps=warmup_steps,
        total_steps=total_steps,
        end_value=end_value,
    )


@renamed(end_ratio="end_value")
def minicpm_wsd(
    *,
    total_steps: ArrayLike,
    peak_value: ArrayLike = 1e-2,
    warmup_steps: ArrayLike | None = None,
    warmup_fraction: ArrayLike | None = None,
    decay_fraction: ArrayLike = 0.1,
    end_value: ArrayLike | None = None,
) -> Schedule:
    r"""MiniCPM's warmup-stable-decay with an exponential decay over the last 10% of steps.

    Knots :math:`(0, 0)`, :math:`(W, P)`, :math:`(T - dT, P)`, :math:`(T, E)`; the last piece is
    exponential, :math:`P (E/P)^{p}`.

    Args:
        total_steps: ``T``.
        peak_value: ``P``.
        warmup_steps: ``W`` in steps; give this or ``warmup_fraction``.
        warmup_fraction: ``W / T`` in [0, 1]; the default (neither given) is 0.01.
        decay_fraction: ``d``, the decaying share of ``T``.
        end_value: ``E`` > 0; defaults to ``0.1 * peak_value``.

    Returns:
        :func:`jaxlr.schedules.wsd` with ``decay_shape="exponential"``.

    Raises:
        ValueError: both ``warmup_steps`` and ``warmup_fraction``, or as
            :func:`jaxlr.schedules.wsd`.
        TypeError: the old ``end_ratio`` (give the absolute ``end_value``).

    Traced arguments: as the schedule it returns.

    Examples:
        >>> from jaxlr.schedules import presets
        >>> s = presets.minicpm_wsd(total_steps=1000, peak_value=1.0)
        >>> [round(float(s(t)), 4) for t in (10, 900, 950, 1000)]
        [1.0, 1.0, 0.3162, 0.1]

    References:
        Hu et al., MiniCPM: Unveiling the Potential of Small Language Models, 2024.
    """
    c = Checker("minicpm_wsd")
    c.finite("peak_value", peak_value)
    if warmup_steps is not None and warmup_fraction is not None:
        c.fail(
            f"give at most one of warmup_steps and warmup_fraction, got warmup_steps="
            f"{warmup_steps!r}, warmup_fraction={warmup_fraction!r}"
        )
    if warmup_steps is None:
        warmup_fraction = 0.01 if warmup_fraction is None else warmup_fraction
        c.between("warmup_fraction", warmup_fraction, 0.0, 1.0)
        c.nonnegative("total_steps", total_steps)
        warmup_steps = as_float(warmup_fraction) * as_float(total_steps)
    end_value = times(peak_value, 0.1) if end_value is None else end_value
    return wsd(
        peak_value=peak_value,
        total_steps=total_steps,
        warmup_steps=warmup_steps,
        decay_fraction=decay_fraction,
        end_value=end_value,
        decay_shape="exponential",
    )


def deepseek_step(
    *,
    total_steps: ArrayLike,
    peak_value: ArrayLike = 4.2e-4,
    warmup_steps: ArrayLike = 2000,
) -> Schedule:
    r"""DeepSeek LLM's multi-step schedule: warmup, then 31.6% of the peak after 80% of training
    and 10% after 90%.

    Returns:
        :func:`jaxlr.schedules.warmup` of a :func:`jaxlr.schedules.piecewise_constant`.

    Traced arguments: as the schedule it returns.

    Examples:
        >>> from jaxlr.schedules import presets
        >>> s = presets.deepseek_step(total_steps=10_000, peak_value=1.0, warmup_steps=100)
        >>> [round(float(s(t)), 3) for t in (100, 8000, 9000)]
        [1.0, 0.316, 0.1]

    References:
        DeepSeek-AI, DeepSeek LLM: Scaling Open-Source Language Models with Longtermism, 2024.
    """
    c = Checker("deepseek_step")
    c.positive("total_steps", total_steps)
    c.nonnegative("warmup_steps", warmup_steps)
    t = jnp.asarray(total_steps, dtype=float)
    c.not_greater("warmup_steps", warmup_steps, "0.8 * total_steps", 0.8 * t)
    p = jnp.asarray(peak_value, dtype=t.dtype)
    inner = piecewise_constant(
        boundaries=jnp.stack([0.8 * t, 0.9 * t]) - as_float(warmup_steps),
        values=jnp.stack([p, 0.316 * p, 0.1 * p]),
    )
    return warmup(inner, warmup_steps=warmup_steps)
