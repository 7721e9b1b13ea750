"""Which schedule to start from: a decision table checked against this project's measurements.

The choice of a schedule is sorted along three axes: the task (classification, generation,
reinforcement learning), the model scale (small or medium models vs large Transformers / LLMs)
and the data regime (a static dataset vs continual training). :func:`recommend` returns the
suggested schedule for one point of that grid with the reasons, each tied to a measurement under
``experiments/results/`` where one exists (``docs/choosing.md`` has the full table and the
numbers); :func:`format_recommendation` writes it as the code to paste (the ``jaxlr recommend``
command prints that text).

:func:`recommend_lr` answers the other question, *which peak LR*: from a scaling law fitted on
small sweeps (:func:`jaxlr.scaling.fit`, saved as JSON) or from a published law (Step Law,
DeepSeek LLM) at a model size, with the interval; :func:`format_lr_recommendation` prints it
as paste-able optax code (``jaxlr recommend --fit fit.json -N 4096``).
"""

from __future__ import annotations

import textwrap
from functools import partial
from typing import NamedTuple

from jaxlr._src.validate import Checker
from jaxlr.schedules import Schedule, parse

__all__ = [
    "DATA",
    "DEFAULT_TOTAL_STEPS",
    "LR_FAMILIES",
    "LRRecommendation",
    "Recommendation",
    "SCALES",
    "TASKS",
    "format_lr_recommendation",
    "format_recommendation",
    "recommend",
    "recommend_lr",
]

TASKS = ("classification", "generation", "reinforcement")
SCALES = ("small", "large")
DATA = ("static", "continual")
DEFAULT_TOTAL_STEPS = 10_000  # assumed (and said so) when no step count is given

# What the experiments measured (experiments/results/<name>.md, tiny models on 2 CPU cores).
_WARMUP = (
    "experiments/results/warmup_transformer.md: with Adam on a 2-layer post-LN "
    "Transformer, no warmup failed above peak LR 0.018 while 30-100 warmup steps (or "
    "Noam) trained up to 0.056 (3.2x higher); RAdam without warmup trained up to 0.18"
)
_ONE_CYCLE = (
    "experiments/results/super_convergence.md: SGD+momentum one-cycle reached 97% "
    "test accuracy on digits in 100 steps vs 140 for step decay and cosine (not "
    "faster to 95% or 98%: a 1.4x edge, not the 5-10x of the paper)"
)
_STEP = (
    "experiments/results/lr_sensitivity.md: step decay (test loss 0.038) was no better "
    "than a constant LR (0.033) at its best peak, while one_cycle (0.032) and cosine "
    "(0.034) matched or beat it; the peak LR mattered 38x more than the shape"
)
_CONTINUAL = (
    "experiments/results/continual.md: on a 3-task stream (digits, then two pixel "
    "permutations; SGD+momentum), the infinite schedule ended with the best final "
    "accuracy averaged over the tasks (0.770 vs 0.743-0.750 for re-warmed cosine, "
    "constant and per-task WSD, each at its best peak LR), but it did not forget less "
    "than per-task WSD, and at equal plasticity it forgot more than re-warmed cosine"
)
_DECAY_FREE = (
    "experiments/results/decay_free.md: WSD and a constant LR with checkpoint "
    "merging matched or beat cosine at every budget (test loss at 1000 steps: cosine "
    "0.0444, WSD 0.0345, constant + merging 0.0331)"
)
_TUNE = (
    "tune the peak LR first: an LR range test (jaxlr.auto.lr_range_test) or a vectorized "
    "sweep (jaxlr.sweep.run) finds it in one compiled run"
)

_OPTIMIZERS = {  # the optimizer each recipe was measured with, as the optax call to paste
    "sgd+momentum": "optax.sgd(learning_rate=schedule, momentum=0.9)",
    "adam": "optax.adam(learning_rate=schedule)",
    "adamw": "optax.adamw(learning_rate=schedule)",
}


class Recommendation(NamedTuple):
    """What :func:`recommend` returns."""

    name: str  # the preset or family, as ``jaxlr.schedules.<name>``
    schedule: Schedule  # ``jaxlr.schedules.parse(expression)``
    optimizer: str  # the Optax optimizer the schedule was measured with ("adamw", ...)
    peak_value: float  # the peak LR used (the given one or the recipe's default)
    reasons: tuple[str, ...]  # why, with the measurements behind it
    expression: str  # the schedule as an expression ``jaxlr.schedules.parse`` reads
    optimizer_code: str  # the optax call, e.g. ``optax.adam(learning_rate=schedule)``
    total_steps: int  # the step count the schedule was built for
    assumed_total_steps: bool  # True when no step count was given (DEFAULT_TOTAL_STEPS)

    @property
    def code(self) -> str:
        """Python that builds this schedule and optimizer: paste it into a training script."""
        return (
            f"import jaxlr\nimport optax\n\nschedule = jaxlr.schedules.{self.expression}\n"
            f"optimizer = {self.optimizer_code}\n"
        )


def _call(fn: str, **kwargs: float | int) -> str:
    """``fn(k=v, ...)`` with exact numbers (``repr`` of floats round-trips)."""
    show = lambda v: str(v) if isinstance(v, int) else repr(float(v))
    return f"{fn}(" + ", ".join(f"{k}={show(v)}" for k, v in kwargs.items()) + ")"


def recommend(
    *,
    task: str = "classification",
    scale: str = "small",
    data: str = "static",
    total_steps: int | None = None,
    peak_value: float | None = None,
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
    small, reinforcement    ``one_cycle`` (untested here)               adam
    ======================  =========================================  ==========

    The schedule is built from its own ``expression`` (``jaxlr.schedules.parse``), so the
    text that :func:`format_recommendation` prints is exactly what was built.

    Args:
        task: one of :data:`TASKS`.
        scale: ``"small"`` (small or medium models) or ``"large"`` (large Transformers, LLMs).
        data: ``"static"`` (a fixed dataset) or ``"continual"`` (training never ends).
        total_steps: the planned number of optimizer steps (> 0); ``None`` assumes
            :data:`DEFAULT_TOTAL_STEPS` and records that it did (``assumed_total_steps``).
        peak_value: the peak LR (> 0); ``None`` takes the recipe's default (0.1 for SGD,
            1e-3 for Adam, the preset's own value for presets).

    Returns:
        A :class:`Recommendation`: name, schedule and its expression, optimizer and its optax
        call, peak LR, step count and reasons.

    Raises:
        ValueError: an unknown ``task``, ``scale`` or ``data``, or a non-positive
            ``total_steps`` / ``peak_value``.

    Examples:
        >>> from jaxlr.recommend import recommend
        >>> r = recommend(task="generation", scale="large", total_steps=1000)
        >>> r.name, r.optimizer, r.peak_value
        ('presets.llm_cosine', 'adamw', 0.0003)
        >>> r.expression
        'presets.llm_cosine(total_steps=1000, peak_value=0.0003, warmup_steps=100)'
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
    assumed = total_steps is None
    t = DEFAULT_TOTAL_STEPS if assumed else total_steps
    if isinstance(t, bool) or not isinstance(t, int):
        c.fail(f"total_steps must be an int > 0, got total_steps={total_steps!r}")
    c.positive("total_steps", t)
    if peak_value is not None:
        c.positive("peak_value", peak_value)
    rule = f"decision table (docs/choosing.md), row for {task} / {scale} models / {data} data"

    if data == "continual":
        p = 3e-4 if peak_value is None else peak_value
        name, opt = "infinite", "adamw"
        third = float(f"{p / 3:.6g}")  # a third of the peak, printable
        expr = _call(
            "infinite",
            peak_value=p,
            constant_value=third,
            total_steps=t,
            warmup_steps=max(1, t // 100),
            cooldown_steps=t // 10,
            decay_steps=t // 10,
        )
        reasons = (
            rule + ": an infinite (decay-free) schedule",
            "training can resume from any checkpoint of the constant phase; only the "
            "released model is annealed, so the LR never has to reach 0 mid-stream",
            _CONTINUAL,
            _DECAY_FREE,
        )
    elif scale == "large" and task == "classification":
        p = 1e-4 if peak_value is None else peak_value
        name, opt = "presets.bert", "adamw"
        expr = _call("presets.bert", total_steps=t, peak_value=p)
        reasons = (
            rule + ": warmup + decay",
            "BERT's recipe: 10% linear warmup, then linear decay to 0, with AdamW",
            "large Transformers need warmup: " + _WARMUP,
        )
    elif scale == "large":
        p = 3e-4 if peak_value is None else peak_value
        name, opt = "presets.llm_cosine", "adamw"
        expr = _call(
            "presets.llm_cosine", total_steps=t, peak_value=p, warmup_steps=max(1, t // 10)
        )
        reasons = (
            rule + ": warmup + cosine, the LLM standard",
            "linear warmup over 10% of training, cosine decay to 10% of the peak, AdamW",
            "large Transformers need warmup: " + _WARMUP,
        )
    elif task == "generation":
        p = 1e-3 if peak_value is None else peak_value
        name, opt = "warmup_cosine", "adam"
        expr = _call("warmup_cosine", peak_value=p, warmup_steps=max(1, t // 10), total_steps=t)
        reasons = (
            rule + ": cosine annealing with a 10% linear warmup",
            "generation models are Transformers, which fail without warmup at high LRs: " + _WARMUP,
        )
    elif task == "classification":
        p = 0.1 if peak_value is None else peak_value
        name, opt = "one_cycle", "sgd+momentum"
        expr = _call("one_cycle", peak_value=p, total_steps=t)
        reasons = (
            rule + ": one-cycle rather than step decay, because of the measurements",
            _STEP,
            _ONE_CYCLE,
            _TUNE,
        )
    else:
        p = 1e-3 if peak_value is None else peak_value
        name, opt = "one_cycle", "adam"
        expr = _call("one_cycle", peak_value=p, total_steps=t)
        reasons = (
            rule + ": one-cycle",
            "not measured by this project: no experiment covers reinforcement "
            "learning; its targets are non-stationary, so also try a constant LR",
            _TUNE,
        )
    return Recommendation(name, parse(expr), opt, p, reasons, expr, _OPTIMIZERS[opt], t, assumed)


def format_recommendation(r: Recommendation) -> str:
    """The text of ``jaxlr recommend``: the code to paste, the step count, and the reasons.

    Args:
        r: the output of :func:`recommend`.

    Returns:
        Several lines: the Python that builds the schedule and the optimizer, the schedule
        expression (for ``jaxlr plot`` and ``jaxlr.schedules.parse``), which ``total_steps``
        the schedule assumes (and whether it was assumed), and the reasons with the
        measurements behind them.

    Examples:
        >>> from jaxlr.recommend import format_recommendation, recommend
        >>> text = format_recommendation(recommend(task="generation"))
        >>> print(text.splitlines()[0])
        jaxlr recommend: warmup_cosine with optax.adam, peak LR 0.001
        >>> "total_steps=10000 was assumed" in text
        True
    """
    if r.assumed_total_steps:
        steps = (
            f"total_steps={r.total_steps} was assumed (no step count was given).\n"
            "Pass --steps N (or total_steps=N) with your planned number of optimizer "
            "steps:\nthe warmup and decay phases scale with it."
        )
    else:
        steps = f"total_steps={r.total_steps}, as given."
    wrap = partial(
        textwrap.fill,
        width=100,
        initial_indent="  - ",
        subsequent_indent="    ",
        break_long_words=False,
        break_on_hyphens=False,
    )
    code = "".join(f"    {line}\n" if line else "\n" for line in r.code.splitlines())
    lines = [
        f"jaxlr recommend: {r.name} with optax.{r.optimizer.split('+')[0]}, "
        f"peak LR {r.peak_value:g}",
        "",
        "Paste into your training script:",
        "",
        code.rstrip("\n"),
        "",
        "The schedule as an expression (jaxlr plot, jaxlr.schedules.parse):",
        f"    {r.expression}",
        "",
        steps,
        "",
        "Why (this project's measurements: experiments/results/*.md, summarized in "
        "docs/choosing.md):",
    ]
    lines += [wrap(reason) for reason in r.reasons]
    return "\n".join(lines) + "\n"


LR_FAMILIES = ("warmup_cosine", "wsd", "cosine", "constant")
PRESETS = ("step_law", "deepseek_llm")


class LRRecommendation(NamedTuple):
    """What :func:`recommend_lr` returns."""

    learning_rate: float  # the predicted peak LR
    low: float | None  # its 95% interval (None for a published law: it gives none)
    high: float | None
    source: str  # the fit or the published law it came from
    batch_size: float | None  # the law's batch size (tokens for the presets), if it has one
    expression: str  # the schedule as an expression ``jaxlr.schedules.parse`` reads
    schedule: Schedule  # ``jaxlr.schedules.parse(expression)``
    optimizer_code: str  # the optax call
    total_steps: int
    assumed_total_steps: bool

    @property
    def code(self) -> str:
        """Python that builds the schedule at the predicted peak and the optimizer."""
        if self.low is None:
            note = f"# peak LR {self.learning_rate:.4g} from {self.source} (no interval given)"
        else:
            note = (
                f"# peak LR {self.learning_rate:.4g} (95% interval {self.low:.4g} .. "
                f"{self.high:.4g}) from {self.source}"
            )
        return (
            f"import jaxlr\nimport optax\n\n{note}\n"
            f"schedule = jaxlr.schedules.{self.expression}\n"
            f"optimizer = {self.optimizer_code}\n"
        )


def _family_expression(family: str, peak: float, t: int) -> str:
    warm = max(1, t // 10)
    return {
        "warmup_cosine": lambda: _call(
            "warmup_cosine", peak_value=peak, warmup_steps=warm, total_steps=t
        ),
        "wsd": lambda: _call(
            "wsd", peak_value=peak, total_steps=t, warmup_steps=warm, decay_fraction=0.2
        ),
        "cosine": lambda: _call("cosine", init_value=peak, total_steps=t),
        "constant": lambda: _call("constant", value=peak),
    }[family]()


def recommend_lr(
    *,
    fit=None,
    N: float | None = None,
    D: float | None = None,
    B: float | None = None,
    C: float | None = None,
    preset: str | None = None,
    family: str = "warmup_cosine",
    optimizer: str = "adamw",
    total_steps: int | None = None,
    force: bool = False,
) -> LRRecommendation:
    r"""The peak LR for a new scale, from a fitted scaling law or a published one.

    With ``fit`` (a :class:`jaxlr.scaling.ScalingFit` or the path of its JSON), the LR is
    ``fit.predict(**scale)`` with its bootstrap interval (extrapolation past 8x refused unless
    ``force``). Without it, a published law: ``preset="step_law"`` (needs ``N`` and ``D``;
    :math:`\eta = 1.79 N^{-0.713} D^{0.307}`) or ``"deepseek_llm"`` (needs ``C``;
    :math:`\eta = 0.3118 C^{-0.125}`); ``None`` picks Step Law when ``N`` and ``D`` are given,
    DeepSeek when ``C`` is. The schedule is ``family`` at that peak (10% warmup where it
    has one; WSD decays over its last 20%).

    Args:
        fit: a fit or the path of its JSON (:meth:`jaxlr.scaling.ScalingFit.save`).
        N, D, B, C: the new scale (model size, tokens / data, batch size, compute).
        preset: ``"step_law"`` or ``"deepseek_llm"`` when there is no fit.
        family: one of :data:`LR_FAMILIES`.
        optimizer: ``"adamw"``, ``"adam"`` or ``"sgd+momentum"``.
        total_steps: planned optimizer steps; ``None`` assumes :data:`DEFAULT_TOTAL_STEPS`.
        force: allow extrapolating a fit past 8x its largest scale.

    Returns:
        An :class:`LRRecommendation` (LR, interval, source, schedule, code).

    Raises:
        ValueError: both or neither of ``fit`` and a preset's variables, an unknown family,
            preset or optimizer, a missing variable, or what the fit's ``predict`` raises.

    Examples:
        >>> from jaxlr.recommend import recommend_lr
        >>> r = recommend_lr(N=1e9, D=1e11, total_steps=1000)
        >>> round(r.learning_rate, 6), r.source.split(":")[0]
        (0.001632, 'Step Law (Li et al. 2025)')
        >>> r.expression
        'warmup_cosine(peak_value=0.0016325, warmup_steps=100, total_steps=1000)'

    References:
        Li et al., Predictable Scale: Part I (Step Law), 2025; DeepSeek-AI, DeepSeek LLM,
        2024.
    """
    from jaxlr import scaling

    c = Checker("recommend_lr")
    c.choice("family", family, LR_FAMILIES)
    c.choice("optimizer", optimizer, tuple(_OPTIMIZERS))
    c.flag("force", force)
    if preset is not None:
        c.choice("preset", preset, PRESETS)
    assumed = total_steps is None
    t = DEFAULT_TOTAL_STEPS if assumed else total_steps
    if isinstance(t, bool) or not isinstance(t, int):
        c.fail(f"total_steps must be an int > 0, got total_steps={total_steps!r}")
    c.positive("total_steps", t)
    scale = {k: v for k, v in dict(N=N, D=D, B=B, C=C).items() if v is not None}
    batch = None
    if fit is not None:
        if preset is not None:
            c.fail(f"give a fit or a preset, not both (got preset={preset!r})")
        if not isinstance(fit, scaling.ScalingFit):
            fit = scaling.load_fit(fit)
        if fit.target != "lr":
            c.fail("the fit predicts the batch size; recommend_lr needs a fit of the LR")
        p = fit.predict(force=force, **scale)
        eta, low, high = p.value, p.low, p.high
        ex = ", ".join(f"{k}^{v[0]:.3g}" for k, v in fit.exponents.items())
        source = f"a scaling law fitted on {len(fit.scales)} scales (eta* ~ {ex}) at " + ", ".join(
            f"{k}={v:g}" for k, v in scale.items()
        )
    else:
        want = {"step_law": {"N", "D"}, "deepseek_llm": {"C"}}
        if preset is None:
            if set(scale) not in (want["step_law"], want["deepseek_llm"]):
                lack = sorted({"N", "D"} - set(scale)) if {"N", "D"} & set(scale) else ["C"]
                c.fail(
                    f"without fit= or preset=, needs N and D (the step_law preset) or C alone "
                    f"(the deepseek_llm preset), got {sorted(scale)}"
                    + (f": missing {lack}" if lack else "")
                )
            preset = "step_law" if {"N", "D"} <= set(scale) else "deepseek_llm"
        want = want[preset]
        if set(scale) != want:
            c.fail(
                f"preset={preset!r} needs exactly {sorted(want)} (or pass fit=), got "
                f"{sorted(scale)}"
            )
        law = (
            scaling.step_law(**scale)
            if preset == "step_law"
            else scaling.deepseek_llm(compute=scale["C"])
        )
        eta, low, high, batch = law.learning_rate, None, None, law.batch_size
        source = law.source
    eta = float(f"{eta:.6g}")
    expr = _family_expression(family, eta, t)
    return LRRecommendation(
        eta, low, high, source, batch, expr, parse(expr), _OPTIMIZERS[optimizer], t, assumed
    )


def format_lr_recommendation(r: LRRecommendation) -> str:
    """The text of ``jaxlr recommend`` with a fit or a preset: code to paste and caveats.

    Args:
        r: the output of :func:`recommend_lr`.

    Returns:
        Several lines: the predicted LR and interval, the code, the step count assumption.

    Examples:
        >>> from jaxlr.recommend import format_lr_recommendation, recommend_lr
        >>> text = format_lr_recommendation(recommend_lr(C=1e20, total_steps=5000))
        >>> print(text.splitlines()[0])
        jaxlr recommend: peak LR 0.000986 (DeepSeek LLM 2024), no interval (a published law)
    """
    if r.low is None:
        head = (
            f"jaxlr recommend: peak LR {r.learning_rate:.3g} ({r.source.split(':')[0]}), "
            "no interval (a published law)"
        )
    else:
        head = (
            f"jaxlr recommend: peak LR {r.learning_rate:.3g}, 95% interval "
            f"{r.low:.3g} .. {r.high:.3g}"
        )
    code = "".join(f"    {line}\n" if line else "\n" for line in r.code.splitlines())
    lines = [head, "", "Paste into your training script:", "", code.rstrip("\n"), ""]
    if r.batch_size is not None:
        lines += [f"The law's batch size: {r.batch_size:.4g} tokens.", ""]
    if r.assumed_total_steps:
        lines.append(
            f"total_steps={r.total_steps} was assumed; pass --steps N with your planned steps."
        )
    else:
        lines.append(f"total_steps={r.total_steps}, as given.")
    lines.append(f"Source: {r.source}.")
    return "\n".join(lines) + "\n"
