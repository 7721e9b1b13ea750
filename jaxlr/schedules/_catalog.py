"""One valid instance of every schedule jaxlr offers; the contract tests iterate over it."""

from __future__ import annotations

import jax

from jaxlr.schedules import _combinators as C
from jaxlr.schedules import _families as F
from jaxlr.schedules import _phased as P
from jaxlr.schedules import presets
from jaxlr.schedules._core import Schedule


def catalog() -> dict[str, Schedule]:
    """Every schedule family, combinator and preset, built with one valid set of arguments.

    The values are chosen so that every phase is visible within 1000 steps. Families with a
    structural variant (staircase, triangular2, three-phase) appear once per variant.

    Returns:
        A dict from name to schedule; family entries use the family's name.

    Examples:
        >>> import jaxlr
        >>> cat = jaxlr.schedules.catalog()
        >>> float(cat["warmup_cosine"](100))
        0.001
    """
    base = F.cosine(init_value=1e-3, total_steps=800, end_value=1e-5)
    return {
        "constant": F.constant(value=1e-3),
        "linear": F.linear(init_value=1e-3, end_value=1e-4, total_steps=900, begin_steps=100),
        "polynomial": F.polynomial(
            init_value=1e-3, end_value=1e-5, total_steps=850, power=2.0, begin_steps=50
        ),
        "exponential": F.exponential(
            init_value=1e-3, decay_rate=0.5, period_steps=200, begin_steps=50, end_value=1e-5
        ),
        "exponential_staircase": F.exponential(
            init_value=1e-3, decay_rate=0.5, period_steps=200, staircase=True
        ),
        "inverse_time": F.inverse_time(init_value=1e-3, decay_rate=0.5, period_steps=100),
        "inverse_sqrt": F.inverse_sqrt(peak_value=1e-3, warmup_steps=100),
        "inverse_sqrt_t5": F.inverse_sqrt(
            peak_value=1e-2, warmup_steps=100, warmup_shape="constant"
        ),
        "noam": F.noam(d_model=512, warmup_steps=400),
        "cosine": F.cosine(init_value=1e-3, total_steps=800, end_value=1e-5, power=1.5, k=2.0),
        "warmup_cosine": F.warmup_cosine(
            peak_value=1e-3, warmup_steps=100, total_steps=1000, init_value=1e-5, end_value=1e-5
        ),
        "sgdr": F.sgdr(
            peak_value=1e-3,
            period_steps=100,
            period_mult=2.0,
            peak_decay=0.8,
            end_value=1e-5,
            cycle_warmup_steps=10,
            cycle_limit=3,
        ),
        "tanh": F.tanh(init_value=1e-3, total_steps=800, end_value=1e-5),
        "step": F.step(init_value=1e-3, period_steps=300, decay_rate=0.1),
        "multistep": F.multistep(init_value=1e-3, boundaries=[300, 600], decay_rate=[0.1, 0.5]),
        "piecewise_constant": F.piecewise_constant(
            boundaries=[300, 600], values=[1e-3, 1e-4, 1e-5]
        ),
        "piecewise_interpolate": F.piecewise_interpolate(
            boundaries=[0, 100, 500, 900], values=[0.0, 1e-3, 5e-4, 1e-5], shape="cosine"
        ),
        "cyclic": P.cyclic(init_value=1e-4, peak_value=1e-3, up_steps=100, down_steps=150),
        "cyclic_triangular2": P.cyclic(
            init_value=1e-4, peak_value=1e-3, up_steps=100, mode="triangular2"
        ),
        "cyclic_exp_range": P.cyclic(
            init_value=1e-4, peak_value=1e-3, up_steps=100, mode="exp_range", decay_rate=0.999
        ),
        "cyclic_momentum": P.cyclic_momentum(base_momentum=0.8, max_momentum=0.9, up_steps=100),
        "one_cycle": P.one_cycle(peak_value=1e-2, total_steps=1000),
        "one_cycle_three_phase": P.one_cycle(
            peak_value=1e-2,
            total_steps=1000,
            warmup_fraction=0.25,
            init_value=1e-3,
            end_value=1e-6,
            shape="linear",
            three_phase=True,
        ),
        "one_cycle_momentum": P.one_cycle_momentum(total_steps=1000),
        "wsd": P.wsd(
            peak_value=1e-3,
            total_steps=1000,
            warmup_steps=100,
            decay_fraction=0.2,
            warmup_shape="cosine",
            decay_shape="1-sqrt",
        ),
        "wsd_exponential": P.wsd(
            peak_value=1e-3,
            total_steps=1000,
            warmup_steps=100,
            decay_steps=200,
            end_value=1e-5,
            decay_shape="exponential",
        ),
        "infinite": P.infinite(
            peak_value=1e-3,
            constant_value=3e-4,
            total_steps=1000,
            warmup_steps=100,
            cooldown_steps=200,
            decay_steps=200,
            decay_shape="inverse",
            end_value=1e-5,
        ),
        "swa": P.swa(init_value=1e-3, swa_value=5e-4, anneal_steps=100),
        "noise": C.noise(base, key=jax.random.key(0), begin_steps=100, end_steps=500),
        "warmup": C.warmup(base, warmup_steps=100, init_value=1e-5, warmup_shape="cosine"),
        "join": C.join([F.constant(value=1e-3), base], boundaries=[200]),
        "product": C.product([base, F.step(init_value=1.0, period_steps=300, decay_rate=0.5)]),
        "scale": C.scale(base, factor=0.5),
        "clip": C.clip(base, min_value=1e-4, max_value=8e-4),
        "per_epoch": C.per_epoch(
            F.step(init_value=1e-3, period_steps=3, decay_rate=0.5), steps_per_epoch=100
        ),
        "select": C.select(
            1,
            [
                F.constant(value=1e-3),
                base,
                P.wsd(peak_value=1e-3, total_steps=1000, decay_steps=200),
            ],
        ),
        "resnet_step": presets.resnet_step(steps_per_epoch=10),
        "transformer": presets.transformer(d_model=512, warmup_steps=400),
        "bert": presets.bert(total_steps=1000, peak_value=1e-4),
        "llm_cosine": presets.llm_cosine(total_steps=1000, peak_value=3e-4, warmup_steps=100),
        "minicpm_wsd": presets.minicpm_wsd(total_steps=1000, peak_value=1e-2),
        "deepseek_step": presets.deepseek_step(total_steps=1000, warmup_steps=100),
    }
