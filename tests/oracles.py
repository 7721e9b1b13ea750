"""Independent reference values for every schedule, in plain Python ``math``, from the
constructor's own arguments.

A :class:`Spec` records a constructor call (``Spec("cosine", init_value=1.0, total_steps=100)``);
``spec.build()`` makes the jaxlr schedule and ``ref(spec, t)`` computes the reference value from
the recorded arguments alone. The oracles never read a schedule's attributes and never call
jaxlr's laws, so whatever a constructor converts (``wsd``'s ``decay_fraction``, the default
``timescale`` of ``inverse_sqrt``, ``one_cycle``'s default end points, a preset's defaults) is
checked too: the oracle applies the documented defaults itself.
"""

from __future__ import annotations

import math

import jax
import numpy as np

import jaxlr


class Spec:
    """A recorded constructor call: ``name`` is a family (``"cosine"``) or ``"presets.bert"``."""

    def __init__(self, name: str, *args, **kwargs):
        self.name, self.args, self.kwargs = name, args, kwargs

    def build(self):
        fn = jaxlr.schedules
        for part in self.name.split("."):
            fn = getattr(fn, part)
        return fn(*[_build(a) for a in self.args], **{k: _build(v) for k, v in self.kwargs.items()})

    def __repr__(self):
        return f"Spec({self.name!r}, {self.args}, {self.kwargs})"


def _build(v):
    if isinstance(v, Spec):
        return v.build()
    if isinstance(v, (list, tuple)) and v and all(isinstance(x, Spec) for x in v):
        return [x.build() for x in v]
    return v


def ref(spec: Spec, t) -> float:
    """The reference value of the schedule ``spec`` builds, at step ``t`` (a Python float)."""
    kw = dict(spec.kwargs)
    if spec.args:  # combinators take their child schedule(s) positionally
        kw["schedule" if spec.name not in _MANY else "schedules"] = spec.args[0]
        if spec.name == "select":
            kw["index"], kw["schedules"] = spec.args[0], spec.args[1]
    return float(ORACLES[spec.name](float(t), kw))


_MANY = ("join", "product", "select")


def _f(x):
    return float(np.asarray(x, np.float64))


def _list(x):
    return [float(v) for v in np.asarray(x, np.float64).ravel()]


def _clip01(x):
    return min(max(x, 0.0), 1.0)


def _prog(t, start, length):
    if length <= 0:
        return 1.0 if t >= start else 0.0
    return _clip01((t - start) / length)


def _anneal(a, b, p, shape):
    if shape == "linear":
        return a + (b - a) * p
    if shape == "cosine":
        return b + (a - b) * 0.5 * (1 + math.cos(math.pi * p))
    if shape == "1-sqrt":
        return b + (a - b) * (1 - math.sqrt(p))
    if shape == "exponential":
        return a * (b / a) ** p
    if shape == "inverse":
        return 1.0 / ((1 - p) / a + p / b)
    raise AssertionError(shape)


def _rise(a, b, p, shape):
    return _anneal(b, a, 1 - p, shape)


def _pieces(t, knots, values, shapes):
    """Flat before the first knot and after the last; piece i joins knots i and i+1."""
    if t < knots[0]:
        return values[0]
    for i in range(len(knots) - 1, -1, -1):
        if t >= knots[i]:
            if i == len(knots) - 1:
                return values[-1]
            shape, rising = shapes[i]
            p = _prog(t, knots[i], knots[i + 1] - knots[i])
            return (_rise if rising else _anneal)(values[i], values[i + 1], p, shape)
    raise AssertionError


# -- families -----------------------------------------------------------------------------------


def constant(t, h):
    return _f(h["value"])


def linear(t, h):
    b, total = _f(h.get("begin_steps", 0)), _f(h["total_steps"])
    p = _prog(t, b, total - b)
    return _f(h["init_value"]) + (_f(h["end_value"]) - _f(h["init_value"])) * p


def polynomial(t, h):
    b, total = _f(h.get("begin_steps", 0)), _f(h["total_steps"])
    p = _prog(t, b, total - b)
    i, e = _f(h["init_value"]), _f(h["end_value"])
    return e + (i - e) * (1 - p) ** _f(h.get("power", 1.0))


def exponential(t, h):
    e = max(t - _f(h.get("begin_steps", 0)), 0.0) / _f(h["period_steps"])
    if h.get("staircase", False):
        e = math.floor(e)
    r = _f(h["decay_rate"])
    v = _f(h["init_value"]) * r**e
    if h.get("end_value") is not None:
        end = _f(h["end_value"])
        v = max(v, end) if r < 1 else min(v, end)
    return v


def inverse_time(t, h):
    e = t / _f(h["period_steps"])
    if h.get("staircase", False):
        e = math.floor(e)
    return _f(h["init_value"]) / (1 + _f(h["decay_rate"]) * e)


def step(t, h):
    return _f(h["init_value"]) * _f(h["decay_rate"]) ** math.floor(t / _f(h["period_steps"]))


def multistep(t, h):
    bs = _list(h["boundaries"])
    rates = np.broadcast_to(np.asarray(h.get("decay_rate", 0.1), np.float64), (len(bs),))
    v = _f(h["init_value"])
    for b, r in zip(bs, rates):
        if t >= b:
            v *= float(r)
    return v


def piecewise_constant(t, h):
    bs, vs = _list(h["boundaries"]), _list(h["values"])
    n = sum((t > b) if h.get("right", False) else (t >= b) for b in bs)
    return vs[n]


def piecewise_interpolate(t, h):
    bs, vs = _list(h["boundaries"]), _list(h["values"])
    return _pieces(t, bs, vs, [(h.get("shape", "linear"), False)] * (len(bs) - 1))


def inverse_sqrt(t, h):
    w, p = _f(h["warmup_steps"]), _f(h["peak_value"])
    tau = _f(h["timescale"]) if h.get("timescale") is not None else w  # documented default
    if t >= w:
        return p * math.sqrt(tau / (t - w + tau))
    if h.get("warmup_shape", "linear") == "linear":
        i = _f(h.get("init_value", 0.0))
        return i + (p - i) * t / w
    return p


def noam(t, h):
    w = _f(h.get("warmup_steps", 4000))
    if t == 0:
        return 0.0
    return _f(h.get("factor", 1.0)) * _f(h["d_model"]) ** -0.5 * min(t**-0.5, t * w**-1.5)


def cosine(t, h):
    p = min(t / _f(h["total_steps"]), 1.0)
    c = (0.5 * (1 + math.cos(math.pi * p ** _f(h.get("k", 1.0))))) ** _f(h.get("power", 1.0))
    e = _f(h.get("end_value", 0.0))
    return e + (_f(h["init_value"]) - e) * c


def warmup_cosine(t, h):
    w, total, peak = _f(h["warmup_steps"]), _f(h["total_steps"]), _f(h["peak_value"])
    i, e = _f(h.get("init_value", 0.0)), _f(h.get("end_value", 0.0))
    if t < w:
        return i + (peak - i) * t / w
    p = min((t - w) / (total - w), 1.0)
    return e + (peak - e) * (0.5 * (1 + math.cos(math.pi * p))) ** _f(h.get("power", 1.0))


def sgdr(t, h):
    t0, m = _f(h["period_steps"]), _f(h.get("period_mult", 1.0))
    i, start, length = 0, 0.0, t0
    while t >= start + length:  # walk the cycles one by one
        start += length
        i += 1
        length = t0 * m**i
        if i > 10_000:
            break
    e = _f(h.get("end_value", 0.0))
    if h.get("cycle_limit") is not None and i >= _f(h["cycle_limit"]):
        return e
    peak = _f(h["peak_value"]) * _f(h.get("peak_decay", 1.0)) ** i
    u, w = t - start, _f(h.get("cycle_warmup_steps", 0.0))
    if u < w:
        return e + (peak - e) * u / w
    return e + (peak - e) * 0.5 * (1 + math.cos(math.pi * (u - w) / (length - w)))


def tanh(t, h):
    total, e = _f(h["total_steps"]), _f(h.get("end_value", 0.0))
    if t >= total:
        return e
    p = t / total
    x = _f(h.get("lower", -7.0)) * (1 - p) + _f(h.get("upper", 3.0)) * p
    return e + 0.5 * (_f(h["init_value"]) - e) * (1 - math.tanh(x))


def _cyclic_h(t, h):
    up = _f(h["up_steps"])
    down = _f(h["down_steps"]) if h.get("down_steps") is not None else up
    total = up + down
    c = math.floor(1 + t / total)
    x = 1 + t / total - c
    rho = up / total
    hgt = x / rho if x <= rho else (x - 1) / (rho - 1)
    mode = h.get("mode", "triangular")
    if mode == "triangular2":
        return hgt * 0.5 ** (c - 1)
    if mode == "exp_range":
        return hgt * _f(h.get("decay_rate", 1.0)) ** t
    return hgt


def cyclic(t, h):
    i, p = _f(h["init_value"]), _f(h["peak_value"])
    return i + (p - i) * _cyclic_h(t, h)


def cyclic_momentum(t, h):
    lo, hi = _f(h.get("base_momentum", 0.8)), _f(h.get("max_momentum", 0.9))
    return hi - (hi - lo) * _cyclic_h(t, h)


def _one_cycle_knots(h):
    total, f = _f(h["total_steps"]), _f(h.get("warmup_fraction", 0.3))
    if h.get("three_phase", False):
        return [0.0, f * total, 2 * f * total, total]
    return [0.0, f * total, total]


def one_cycle(t, h):
    p = _f(h["peak_value"])
    i = _f(h["init_value"]) if h.get("init_value") is not None else p / 25  # torch's div_factor
    e = _f(h["end_value"]) if h.get("end_value") is not None else p / 25e4  # and final_div
    knots = _one_cycle_knots(h)
    values = [i, p, i, e] if h.get("three_phase", False) else [i, p, e]
    shape = h.get("shape", "cosine")
    return _pieces(t, knots, values, [(shape, False)] * (len(knots) - 1))


def one_cycle_momentum(t, h):
    lo, hi = _f(h.get("base_momentum", 0.85)), _f(h.get("max_momentum", 0.95))
    knots = _one_cycle_knots(h)
    values = [hi, lo, hi, hi] if h.get("three_phase", False) else [hi, lo, hi]
    shape = h.get("shape", "cosine")
    return _pieces(t, knots, values, [(shape, False)] * (len(knots) - 1))


def wsd(t, h):
    total, w = _f(h["total_steps"]), _f(h.get("warmup_steps", 0.0))
    d = (
        _f(h["decay_steps"])
        if h.get("decay_steps") is not None
        else (_f(h["decay_fraction"]) * total)
    )
    p = _f(h["peak_value"])
    return _pieces(
        t,
        [0.0, w, total - d, total],
        [_f(h.get("init_value", 0.0)), p, p, _f(h.get("end_value", 0.0))],
        [
            (h.get("warmup_shape", "linear"), True),
            ("linear", False),
            (h.get("decay_shape", "linear"), False),
        ],
    )


def infinite(t, h):
    total, w = _f(h["total_steps"]), _f(h["warmup_steps"])
    c, d = _f(h["cooldown_steps"]), _f(h["decay_steps"])
    k = _f(h["constant_value"])
    return _pieces(
        t,
        [0.0, w, w + c, total - d, total],
        [_f(h.get("init_value", 0.0)), _f(h["peak_value"]), k, k, _f(h.get("end_value", 0.0))],
        [
            ("linear", True),
            (h.get("cooldown_shape", "cosine"), False),
            ("linear", False),
            (h.get("decay_shape", "linear"), False),
        ],
    )


def swa(t, h):
    x = min(1.0, t / _f(h.get("anneal_steps", 10)))
    a = 0.5 * (1 - math.cos(math.pi * x)) if h.get("shape", "cosine") == "cosine" else x
    return _f(h["swa_value"]) * a + _f(h["init_value"]) * (1 - a)


# -- combinators --------------------------------------------------------------------------------


def warmup(t, h):
    inner, w = h["schedule"], _f(h["warmup_steps"])
    if t >= w:
        return ref(inner, t - w)
    shape = h.get("warmup_shape", "linear")
    return _rise(_f(h.get("init_value", 0.0)), ref(inner, 0.0), t / w, shape)


def join(t, h):
    bs = _list(h["boundaries"])
    i = sum(t >= b for b in bs)
    start = 0.0 if i == 0 else bs[i - 1]
    return ref(h["schedules"][i], t - start)


def product(t, h):
    return math.prod(ref(s, t) for s in h["schedules"])


def scale(t, h):
    return _f(h["factor"]) * ref(h["schedule"], t)


def clip(t, h):
    v = ref(h["schedule"], t)
    if h.get("min_value") is not None:
        v = max(v, _f(h["min_value"]))
    if h.get("max_value") is not None:
        v = min(v, _f(h["max_value"]))
    return v


def per_epoch(t, h):
    return ref(h["schedule"], math.floor(t / _f(h["steps_per_epoch"])))


def select(t, h):
    return ref(h["schedules"][int(h["index"])], t)


def noise(t, h):
    """Outside [start, end) the inner schedule's value; inside, random (NaN here: the band is
    tested separately)."""
    if _f(h["begin_steps"]) <= t < _f(h["end_steps"]):
        return math.nan
    return ref(h["schedule"], t)


# -- presets: the recipes' published formulas ----------------------------------------------------


def _resnet_step(t, h):
    n, p = _f(h["steps_per_epoch"]), _f(h.get("peak_value", 0.1))
    r = _f(h.get("decay_rate", 0.1))
    return p * r ** sum(t >= e * n for e in _list(h.get("boundary_epochs", (30, 60, 90))))


def _transformer(t, h):
    d, w = _f(h.get("d_model", 512)), _f(h.get("warmup_steps", 4000))
    return 0.0 if t == 0 else d**-0.5 * min(t**-0.5, t * w**-1.5)


def _bert(t, h):
    total, p = _f(h["total_steps"]), _f(h.get("peak_value", 1e-4))
    w = _f(h.get("warmup_fraction", 0.1)) * total
    return p * (t / w if t < w else max(0.0, (total - t) / (total - w)))


def _llm_cosine(t, h):
    p = _f(h.get("peak_value", 3e-4))
    e = _f(h["end_value"]) if h.get("end_value") is not None else 0.1 * p
    return warmup_cosine(
        t,
        dict(
            peak_value=p,
            warmup_steps=h.get("warmup_steps", 2000),
            total_steps=h["total_steps"],
            end_value=e,
        ),
    )


def _minicpm_wsd(t, h):
    total, p = _f(h["total_steps"]), _f(h.get("peak_value", 1e-2))
    w = (
        _f(h["warmup_steps"])
        if h.get("warmup_steps") is not None
        else (_f(h.get("warmup_fraction", 0.01)) * total)
    )
    e = _f(h["end_value"]) if h.get("end_value") is not None else 0.1 * p
    d = _f(h.get("decay_fraction", 0.1)) * total
    return _pieces(
        t,
        [0.0, w, total - d, total],
        [0.0, p, p, e],
        [("linear", True), ("linear", False), ("exponential", False)],
    )


def _deepseek_step(t, h):
    total, p, w = (
        _f(h["total_steps"]),
        _f(h.get("peak_value", 4.2e-4)),
        _f(h.get("warmup_steps", 2000)),
    )
    if t < w:
        return p * t / w
    return p * (1.0 if t < 0.8 * total else 0.316 if t < 0.9 * total else 0.1)


ORACLES = {
    name: fn
    for name, fn in dict(globals()).items()
    if callable(fn)
    and not name.startswith("_")
    and name not in ("ref", "Spec")
    and getattr(fn, "__module__", "") == __name__
}
ORACLES.update(
    {
        f"presets.{n}": globals()[f"_{n}"]
        for n in (
            "resnet_step",
            "transformer",
            "bert",
            "llm_cosine",
            "minicpm_wsd",
            "deepseek_step",
        )
    }
)


# -- one call per catalog entry, with the arguments catalog() uses -------------------------------

_BASE = Spec("cosine", init_value=1e-3, total_steps=800, end_value=1e-5)

CASES = {
    "constant": Spec("constant", value=1e-3),
    "linear": Spec("linear", init_value=1e-3, end_value=1e-4, total_steps=900, begin_steps=100),
    "polynomial": Spec(
        "polynomial", init_value=1e-3, end_value=1e-5, total_steps=850, power=2.0, begin_steps=50
    ),
    "exponential": Spec(
        "exponential",
        init_value=1e-3,
        decay_rate=0.5,
        period_steps=200,
        begin_steps=50,
        end_value=1e-5,
    ),
    "exponential_staircase": Spec(
        "exponential", init_value=1e-3, decay_rate=0.5, period_steps=200, staircase=True
    ),
    "inverse_time": Spec("inverse_time", init_value=1e-3, decay_rate=0.5, period_steps=100),
    "inverse_sqrt": Spec("inverse_sqrt", peak_value=1e-3, warmup_steps=100),
    "inverse_sqrt_t5": Spec(
        "inverse_sqrt", peak_value=1e-2, warmup_steps=100, warmup_shape="constant"
    ),
    "noam": Spec("noam", d_model=512, warmup_steps=400),
    "cosine": Spec("cosine", init_value=1e-3, total_steps=800, end_value=1e-5, power=1.5, k=2.0),
    "warmup_cosine": Spec(
        "warmup_cosine",
        peak_value=1e-3,
        warmup_steps=100,
        total_steps=1000,
        init_value=1e-5,
        end_value=1e-5,
    ),
    "sgdr": Spec(
        "sgdr",
        peak_value=1e-3,
        period_steps=100,
        period_mult=2.0,
        peak_decay=0.8,
        end_value=1e-5,
        cycle_warmup_steps=10,
        cycle_limit=3,
    ),
    "tanh": Spec("tanh", init_value=1e-3, total_steps=800, end_value=1e-5),
    "step": Spec("step", init_value=1e-3, period_steps=300, decay_rate=0.1),
    "multistep": Spec("multistep", init_value=1e-3, boundaries=[300, 600], decay_rate=[0.1, 0.5]),
    "piecewise_constant": Spec(
        "piecewise_constant", boundaries=[300, 600], values=[1e-3, 1e-4, 1e-5]
    ),
    "piecewise_interpolate": Spec(
        "piecewise_interpolate",
        boundaries=[0, 100, 500, 900],
        values=[0.0, 1e-3, 5e-4, 1e-5],
        shape="cosine",
    ),
    "cyclic": Spec("cyclic", init_value=1e-4, peak_value=1e-3, up_steps=100, down_steps=150),
    "cyclic_triangular2": Spec(
        "cyclic", init_value=1e-4, peak_value=1e-3, up_steps=100, mode="triangular2"
    ),
    "cyclic_exp_range": Spec(
        "cyclic", init_value=1e-4, peak_value=1e-3, up_steps=100, mode="exp_range", decay_rate=0.999
    ),
    "cyclic_momentum": Spec("cyclic_momentum", base_momentum=0.8, max_momentum=0.9, up_steps=100),
    "one_cycle": Spec("one_cycle", peak_value=1e-2, total_steps=1000),
    "one_cycle_three_phase": Spec(
        "one_cycle",
        peak_value=1e-2,
        total_steps=1000,
        warmup_fraction=0.25,
        init_value=1e-3,
        end_value=1e-6,
        shape="linear",
        three_phase=True,
    ),
    "one_cycle_momentum": Spec("one_cycle_momentum", total_steps=1000),
    "wsd": Spec(
        "wsd",
        peak_value=1e-3,
        total_steps=1000,
        warmup_steps=100,
        decay_fraction=0.2,
        warmup_shape="cosine",
        decay_shape="1-sqrt",
    ),
    "wsd_exponential": Spec(
        "wsd",
        peak_value=1e-3,
        total_steps=1000,
        warmup_steps=100,
        decay_steps=200,
        end_value=1e-5,
        decay_shape="exponential",
    ),
    "infinite": Spec(
        "infinite",
        peak_value=1e-3,
        constant_value=3e-4,
        total_steps=1000,
        warmup_steps=100,
        cooldown_steps=200,
        decay_steps=200,
        decay_shape="inverse",
        end_value=1e-5,
    ),
    "swa": Spec("swa", init_value=1e-3, swa_value=5e-4, anneal_steps=100),
    "noise": Spec("noise", _BASE, key=jax.random.key(0), begin_steps=100, end_steps=500),
    "warmup": Spec("warmup", _BASE, warmup_steps=100, init_value=1e-5, warmup_shape="cosine"),
    "join": Spec("join", [Spec("constant", value=1e-3), _BASE], boundaries=[200]),
    "product": Spec(
        "product", [_BASE, Spec("step", init_value=1.0, period_steps=300, decay_rate=0.5)]
    ),
    "scale": Spec("scale", _BASE, factor=0.5),
    "clip": Spec("clip", _BASE, min_value=1e-4, max_value=8e-4),
    "per_epoch": Spec(
        "per_epoch",
        Spec("step", init_value=1e-3, period_steps=3, decay_rate=0.5),
        steps_per_epoch=100,
    ),
    "select": Spec(
        "select",
        1,
        [
            Spec("constant", value=1e-3),
            _BASE,
            Spec("wsd", peak_value=1e-3, total_steps=1000, decay_steps=200),
        ],
    ),
    "resnet_step": Spec("presets.resnet_step", steps_per_epoch=10),
    "transformer": Spec("presets.transformer", d_model=512, warmup_steps=400),
    "bert": Spec("presets.bert", total_steps=1000, peak_value=1e-4),
    "llm_cosine": Spec("presets.llm_cosine", total_steps=1000, peak_value=3e-4, warmup_steps=100),
    "minicpm_wsd": Spec("presets.minicpm_wsd", total_steps=1000, peak_value=1e-2),
    "deepseek_step": Spec("presets.deepseek_step", total_steps=1000, warmup_steps=100),
}
