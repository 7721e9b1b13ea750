"""Published LR / batch-size laws as presets, and the schedule / horizon transfer of the base LR."""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxlr._src.validate import Checker


class PublishedLaw(NamedTuple):
    """A published law's prediction."""

    learning_rate: float  # the peak LR
    batch_size: float  # in tokens (divide by the sequence length for sequences)
    source: str  # the paper and its formula


def deepseek_llm(*, compute: float) -> PublishedLaw:
    r"""DeepSeek LLM's laws of the optimal peak LR and batch size in the compute budget.

    .. math:: \eta_{opt} = 0.3118\, C^{-0.125}, \qquad B_{opt} = 0.2920\, C^{0.3271}

    Domain: AdamW pre-training of dense decoder-only LLMs (multi-step schedule: warmup, then
    steps to 31.6% and 10% of the peak) on DeepSeek's 2T-token corpus; ``C`` is the compute
    in FLOPs with :math:`C = M D` (M: non-embedding FLOPs per token, D: tokens), fitted on
    budgets of about 1e17 to 2e19 FLOPs and checked up to 3e20; ``B`` is in tokens. Outside
    this domain (another data mix, optimizer, architecture) it is a starting point for a
    sweep, not an answer.

    Args:
        compute: the training compute C in FLOPs (> 0).

    Returns:
        A :class:`PublishedLaw` (LR, batch size in tokens, source).

    Raises:
        ValueError: a non-positive or non-finite ``compute``.

    Examples:
        >>> from jaxlr.scaling import deepseek_llm
        >>> law = deepseek_llm(compute=1e20)
        >>> round(law.learning_rate, 6), round(law.batch_size / 1e6, 3)  # LR, M tokens
        (0.000986, 1.017)

    References:
        DeepSeek-AI, DeepSeek LLM: Scaling Open-Source Language Models with Longtermism, 2024
        (Section 3.1).
    """
    c = float(Checker("deepseek_llm").positive("compute", compute))
    return PublishedLaw(
        0.3118 * c**-0.125,
        0.2920 * c**0.3271,
        "DeepSeek LLM 2024: eta = 0.3118 C^-0.125, B = 0.2920 C^0.3271 (C in FLOPs)",
    )


def step_law(*, N: float, D: float) -> PublishedLaw:
    r"""Step Law's optimal peak LR and batch size in model size and data size.

    .. math:: \eta_{opt} = 1.79\, N^{-0.713} D^{0.307}, \qquad B_{opt} = 0.58\, D^{0.571}

    Domain: AdamW pre-training of dense (and MoE) LLMs with a warmup + cosine-to-minimum
    schedule, ``N`` the non-embedding parameters (fitted from about 60M to 1B), ``D`` the
    training tokens (up to about 100B), ``B`` in tokens; the optimum is the geometric center
    of the configurations within 0.25% of the best loss. Outside this domain it is a
    starting point for a sweep.

    Args:
        N: non-embedding parameters (> 0).
        D: training tokens (> 0).

    Returns:
        A :class:`PublishedLaw` (LR, batch size in tokens, source).

    Raises:
        ValueError: a non-positive or non-finite ``N`` or ``D``.

    Examples:
        >>> from jaxlr.scaling import step_law
        >>> law = step_law(N=1e9, D=1e11)
        >>> round(law.learning_rate, 6), round(law.batch_size / 1e6, 3)
        (0.001632, 1.108)

    References:
        Li et al., Predictable Scale: Part I -- Optimal Hyperparameter Scaling Law in Large
        Language Model Pretraining, 2025.
    """
    c = Checker("step_law")
    n, d = float(c.positive("N", N)), float(c.positive("D", D))
    return PublishedLaw(
        1.79 * n**-0.713 * d**0.307,
        0.58 * d**0.571,
        "Step Law (Li et al. 2025): eta = 1.79 N^-0.713 D^0.307, B = 0.58 D^0.571",
    )


def _shape(schedule, steps: int) -> jax.Array:
    s = jax.vmap(schedule)(jnp.arange(steps))
    return s / jnp.max(s)


def _bound_factor(s: jax.Array) -> jax.Array:
    r"""``P`` in :math:`\gamma^* = (D/G)/\sqrt{P}` for a schedule shape ``s`` (``[T]``)."""
    total = jnp.sum(s)
    suffix = jnp.cumsum(s[::-1])[::-1]  # S_k = sum_{t >= k} s_t
    suffix_sq = jnp.cumsum((s * s)[::-1])[::-1]
    nxt = suffix[1:]  # S_{k+1}, k = 0..T-2
    ok = nxt > 0
    extra = jnp.sum(
        jnp.where(ok, s[:-1] / jnp.where(ok, nxt, 1.0) * suffix_sq[:-1] / suffix[:-1], 0.0)
    )
    return jnp.sum(s * s) + total * extra


def transfer_lr(lr: float, *, source, target, source_steps: int, target_steps: int) -> float:
    r"""Transfers a tuned base LR to another schedule or horizon (Schaipp et al. 2025).

    For SGD on a convex, G-Lipschitz problem with distance D to the solution, the last iterate
    of the schedule :math:`\eta_t = \gamma s_t` (``s`` the schedule divided by its peak,
    :math:`t = 1..T`) satisfies (Defazio et al. 2023; Schaipp et al. 2025, Theorem 3.1)

    .. math::
        \mathbb{E} f(x_T) - f_\star \le \frac{D^2}{2\gamma S_1}
        + \frac{\gamma G^2}{2}\Bigl[\frac{\sum_t s_t^2}{S_1}
        + \sum_{k=1}^{T-1} \frac{s_k}{S_{k+1}} \frac{\sum_{t \ge k} s_t^2}{S_k}\Bigr],
        \quad S_k = \sum_{t \ge k} s_t,

    minimized at :math:`\gamma^* = (D/G)/\sqrt{P(s)}` with
    :math:`P = \sum_t s_t^2 + S_1 \sum_k \ldots`. The unknown D/G cancels between two
    schedules, so the tuned peak ``lr`` of ``source`` over ``source_steps`` becomes

    .. math:: \gamma^*_{target} = \text{lr}\, \sqrt{P(s_{source}) / P(s_{target})}.

    Their experiments (124M/210M Llama models) found this transfer close to the measured
    optimum, e.g. for longer training with WSD or from cosine to WSD; it is a bound, not a
    guarantee, for non-convex training.

    Args:
        lr: the tuned peak LR of ``source`` (> 0).
        source, target: jaxlr schedules (their own peak values do not matter, only shapes).
        source_steps, target_steps: the horizons (ints >= 2).

    Returns:
        The peak LR for ``target`` (a float).

    Raises:
        ValueError: a non-positive ``lr``, horizons < 2, or a schedule that is zero
            everywhere on its horizon.

    Examples:
        >>> import jaxlr
        >>> from jaxlr.scaling import transfer_lr
        >>> c = jaxlr.schedules.constant(value=1.0)
        >>> round(transfer_lr(1e-3, source=c, target=c, source_steps=1000, target_steps=1000), 9)
        0.001
        >>> wsd = lambda t: jaxlr.schedules.wsd(peak_value=1.0, total_steps=t, decay_fraction=0.2)
        >>> round(transfer_lr(1e-3, source=wsd(1000), target=wsd(4000),
        ...                   source_steps=1000, target_steps=4000) / 1e-3, 2)  # 4x longer
        0.5

    References:
        Schaipp, Hägele, Taylor, Şimşekli, Bach, The Surprising Agreement Between Convex
        Optimization Theory and Learning-Rate Scheduling for Large Model Training, 2025;
        Defazio et al., Optimal Linear Decay Learning Rate Schedules and Further Refinements,
        2023.
    """
    c = Checker("transfer_lr")
    c.positive("lr", lr)
    for name, t in (("source_steps", source_steps), ("target_steps", target_steps)):
        c.integer(name, t, minimum=2, static=True)
    p = []
    for name, sched, steps in (("source", source, source_steps), ("target", target, target_steps)):
        raw = jax.vmap(sched)(jnp.arange(int(steps)))
        if not bool(jnp.all(jnp.isfinite(raw))) or not bool(jnp.max(raw) > 0):
            c.fail(f"{name} must be finite and > 0 somewhere on its {steps} steps")
        p.append(float(_bound_factor(_shape(sched, int(steps)))))
    return float(lr) * float(np.sqrt(p[0] / p[1]))
