"""Which schedule to start from: the seed's selection framework, checked by the experiments.

The seed article sorts the choice of a schedule along three axes: the task (classification,
generation, reinforcement learning), the model scale (small or medium models vs large
Transformers / LLMs) and the data regime (a static dataset vs continual training).
:func:`recommend` returns the suggested preset for one point of that grid, with the reasons,
each tied to a measurement under ``experiments/results/`` where one exists (docs/choosing.md
has the full table and the numbers).
"""

from __future__ import annotations

from typing import NamedTuple

from jaxlr._src.validate import Checker
from jaxlr.schedules import Schedule, one_cycle, presets, warmup_cosine
from jaxlr.schedules import infinite as _infinite

__all__ = ["Recommendation", "recommend", "TASKS", "SCALES", "DATA"]

TASKS = ("classification", "generation", "reinforcement")
SCALES = ("small", "large")
DATA = ("static", "continual")

# Evidence from experiments/results/*.md, quoted in the reasons (measured on 2 CPU cores).
_WARMUP = ("experiments/warmup_transformer: with Adam on a 2-layer post-LN Transformer, no "
           "warmup failed above peak LR 0.018 while 30-100 warmup steps (or Noam) trained up "
           "to 0.056 (3.2x higher); RAdam without warmup trained up to 0.18")
_ONE_CYCLE = ("experiments/super_convergence: SGD+momentum one-cycle reached 97% test accuracy "
              "on digits in 100 steps vs 140 for step decay and cosine (not faster to 95% or "
              "98%: a 1.4x edge, not the 5-10x of the paper)")
_STEP = ("experiments/lr_sensitivity: step decay (test loss 0.038) was no better than a "
         "constant LR (0.033) at its best peak, while one_cycle (0.032) and cosine (0.034) "
         "matched or beat it; the peak LR mattered 38x more than the shape")


class Recommendation(NamedTuple):
    """What :func:`recommend` returns."""

    name: str  # the preset or family, as ``jaxlr.schedules.<name>``
    schedule: Schedule  # built for the given total_steps and peak_value
    optimizer: str  # the Optax optimizer the schedule was measured with
    peak_value: float  # the peak LR used (the given one or the preset's default)
    reasons: tuple[str, ...]  # why, with the measurements behind it


def recommend(
    *, task: str = "classification", scale: str = "small", data: str = "static",
    total_steps: int = 10_000, peak_value: float | None = None,
) -> Recommendation:
    r"""The suggested schedule for a task type x model scale x data regime, with its reasons.

    The rules, in order (the first that applies wins):

    ======================  =========================================  ==========
    condition               schedule                                   optimizer
    ======================  =========================================  ==========
    data = continual        ``infinite`` (decay-free: warmup, constant  adamw
                            phase, anneal only the released model)
    scale = large,          ``presets.bert`` (10% warmup, linear        adamw
    classification          decay)
    scale = large, other    ``presets.llm_cosine`` (warmup, cosine to   adamw
                            10%)
    small, classification   ``one_cycle``                               sgd+momentum
    small, generation       ``warmup_cosine`` (10% warmup)              adam
    small, reinforcement    ``one_cycle`` (the seed's table; untested)  adam
    ======================  =========================================  ==========

    Args:
        task: one of :data:`TASKS`.
        scale: ``"small"`` (small or medium models) or ``"large"`` (large Transformers, LLMs).
        data: ``"static"`` (a fixed dataset) or ``"continual"`` (training never ends).
        total_steps: the planned number of optimizer steps (> 0).
        peak_value: the peak LR (> 0); ``None`` takes the recipe's default (0.1 for SGD,
            1e-3 for Adam, the preset's own value for presets).

    Returns:
        A :class:`Recommendation`: name, schedule, optimizer, peak LR and reasons.

    Raises:
        ValueError: an unknown ``task``, ``scale`` or ``data``, or a non-positive
            ``total_steps`` / ``peak_value``.

    Examples:
        >>> from jaxlr.recommend import recommend
        >>> r = recommend(task="generation", scale="large", total_steps=1000)
        >>> r.name, r.optimizer, r.peak_value
        ('presets.llm_cosine', 'adamw', 0.0003)
        >>> [round(float(r.schedule(t)), 6) for t in (0, 100, 1000)]  # 10% warmup
        [0.0, 0.0003, 3e-05]
        >>> recommend(task="vision")  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        ValueError: recommend: task must be one of (...), got task='vision'

    References:
        Smith & Topin, Super-Convergence, 2019; Vaswani et al., Attention Is All You Need,
        2017; Devlin et al., BERT, 2019; Ibrahim et al., Simple and Scalable Strategies to
        Continually Pre-train Large Language Models, 2024.
    """
    c = Checker("recommend")
    c.choice("task", task, TASKS)
    c.choice("scale", scale, SCALES)
    c.choice("data", data, DATA)
    if isinstance(total_steps, bool) or not isinstance(total_steps, int):
        c.fail(f"total_steps must be an int > 0, got total_steps={total_steps!r}")
    c.positive("total_steps", total_steps)
    if peak_value is not None:
        c.positive("peak_value", peak_value)
    t = total_steps
    seed = (f"the seed's framework maps {task} / {scale} models / {data} data here")

    if data == "continual":
        p = 3e-4 if peak_value is None else peak_value
        w, cool, anneal = max(1, t // 100), t // 10, t // 10
        return Recommendation(
            "infinite",
            _infinite(peak_value=p, constant_value=p / 3, total_steps=t, warmup_steps=w,
                      cooldown_steps=cool, decay_steps=anneal), "adamw", p,
            (seed + " (Infinite LR / decay-free)",
             "training can resume from any checkpoint of the constant phase; only the released "
             "model is annealed, so the LR never has to reach 0 mid-stream",
             "see experiments/decay_free for WSD / checkpoint merging vs a decayed run"))
    if scale == "large":
        warm = ("large Transformers need warmup: " + _WARMUP)
        if task == "classification":
            p = 1e-4 if peak_value is None else peak_value
            return Recommendation(
                "presets.bert", presets.bert(total_steps=t, peak_value=p), "adamw", p,
                (seed + " (Warmup + decay)",
                 "BERT's recipe: 10% linear warmup, then linear decay to 0, with AdamW", warm))
        p = 3e-4 if peak_value is None else peak_value
        return Recommendation(
            "presets.llm_cosine",
            presets.llm_cosine(total_steps=t, peak_value=p, warmup_steps=max(1, t // 10)),
            "adamw", p,
            (seed + " (Warmup + decay; the LLM standard)",
             "linear warmup over 10% of training, cosine decay to 10% of the peak, AdamW", warm))
    if task == "generation":
        p = 1e-3 if peak_value is None else peak_value
        return Recommendation(
            "warmup_cosine",
            warmup_cosine(peak_value=p, warmup_steps=max(1, t // 10), total_steps=t), "adam", p,
            (seed + " (CosineAnnealing)",
             "generation models are Transformers, which fail without warmup at high LRs: "
             + _WARMUP, "so cosine annealing with a 10% linear warmup"))
    if task == "classification":
        p = 0.1 if peak_value is None else peak_value
        return Recommendation(
            "one_cycle", one_cycle(peak_value=p, total_steps=t), "sgd+momentum", p,
            (seed + " (StepLR); the measurements favour one-cycle instead",
             _STEP, _ONE_CYCLE,
             "tune the peak LR first: an LR range test (jaxlr.auto) or a vectorized sweep"))
    p = 1e-3 if peak_value is None else peak_value
    return Recommendation(
        "one_cycle", one_cycle(peak_value=p, total_steps=t), "adam", p,
        (seed + " (OneCycle)",
         "not measured in these experiments: a placeholder from the seed's table; RL targets "
         "are non-stationary, so also try a constant LR"))
