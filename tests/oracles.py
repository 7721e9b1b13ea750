"""Independent reference values for every schedule law, in plain Python ``math``.

``ref(schedule, t)`` dispatches on the schedule's family name and reads its hyperparameters; it
never calls jaxlr's laws, so a wrong law and a right oracle cannot agree by construction. Child
schedules of combinators are evaluated by ``ref`` recursively.
"""

from __future__ import annotations

import math

import numpy as np


def _f(x):
    return float(np.asarray(x))


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


def _hp(s):
    out = {}
    for k, v in s.hyperparameters.items():
        if hasattr(v, "name") and hasattr(v, "law"):
            out[k] = v
        elif isinstance(v, tuple) and v and hasattr(v[0], "law"):
            out[k] = v
        elif v is None or isinstance(v, (str, bool)):
            out[k] = v
        else:
            a = np.asarray(v)
            out[k] = a.item() if a.ndim == 0 and a.dtype.kind == "f" else a
    return out


def constant(t, h):
    return h["value"]


def linear(t, h):
    p = _prog(t, h["begin_steps"], h["total_steps"])
    return h["init_value"] + (h["end_value"] - h["init_value"]) * p


def polynomial(t, h):
    p = _prog(t, h["begin_steps"], h["total_steps"])
    return h["end_value"] + (h["init_value"] - h["end_value"]) * (1 - p) ** h["power"]


def exponential(t, h):
    e = max(t - h["begin_steps"], 0.0) / h["transition_steps"]
    if h["staircase"]:
        e = math.floor(e)
    v = h["init_value"] * h["decay_rate"] ** e
    end = h.get("end_value")
    if end is not None:
        v = max(v, end) if h["decay_rate"] < 1 else min(v, end)
    return v


def inverse_time(t, h):
    e = t / h["transition_steps"]
    if h["staircase"]:
        e = math.floor(e)
    return h["init_value"] / (1 + h["decay_rate"] * e)


def step(t, h):
    return h["init_value"] * h["decay_rate"] ** math.floor(t / h["step_size"])


def multistep(t, h):
    rates = np.broadcast_to(h["decay_rate"], np.shape(h["boundaries"]))
    v = h["init_value"]
    for b, r in zip(np.asarray(h["boundaries"]), rates):
        if t >= b:
            v *= float(r)
    return v


def piecewise_constant(t, h):
    bs, vs = list(np.asarray(h["boundaries"])), list(np.asarray(h["values"]))
    n = sum((t > b) if h["right"] else (t >= b) for b in bs)
    return float(vs[n])


def piecewise_interpolate(t, h):
    bs, vs = list(np.asarray(h["boundaries"], float)), list(np.asarray(h["values"], float))
    return _pieces(t, bs, vs, [(h["interpolation"], False)] * (len(bs) - 1))


def inverse_sqrt(t, h):
    w, p = h["warmup_steps"], h["peak_value"]
    tau = h.get("timescale") or w
    if t >= w:
        return p * math.sqrt(tau / (t - w + tau))
    if h["warmup"] == "linear":
        return h["init_value"] + (p - h["init_value"]) * t / w
    return p


def noam(t, h):
    w = h["warmup_steps"]
    if t == 0:
        return 0.0
    return h["scale"] * h["d_model"] ** -0.5 * min(t**-0.5, t * w**-1.5)


def cosine(t, h):
    p = min(t / h["total_steps"], 1.0)
    c = (0.5 * (1 + math.cos(math.pi * p ** h["k"]))) ** h["exponent"]
    return h["end_value"] + (h["init_value"] - h["end_value"]) * c


def warmup_cosine(t, h):
    w, total, peak = h["warmup_steps"], h["total_steps"], h["peak_value"]
    if t < w:
        return h["init_value"] + (peak - h["init_value"]) * t / w
    p = min((t - w) / (total - w), 1.0)
    return h["end_value"] + (peak - h["end_value"]) * (0.5 * (1 + math.cos(math.pi * p))) ** h[
        "exponent"]


def sgdr(t, h):
    t0, m = h["period_steps"], h["period_mult"]
    i, start, length = 0, 0.0, t0
    while t >= start + length:  # walk the cycles one by one
        start += length
        i += 1
        length = t0 * m**i
        if i > 10_000:
            break
    if h.get("cycle_limit") is not None and i >= h["cycle_limit"]:
        return h["end_value"]
    peak = h["peak_value"] * h["peak_decay"] ** i
    u, w, e = t - start, h["cycle_warmup_steps"], h["end_value"]
    if u < w:
        return e + (peak - e) * u / w
    return e + (peak - e) * 0.5 * (1 + math.cos(math.pi * (u - w) / (length - w)))


def tanh(t, h):
    if t >= h["total_steps"]:
        return h["end_value"]
    p = t / h["total_steps"]
    x = h["lower"] * (1 - p) + h["upper"] * p
    return h["end_value"] + 0.5 * (h["init_value"] - h["end_value"]) * (1 - math.tanh(x))


def _cyclic_h(t, h):
    up, down = h["up_steps"], h["down_steps"]
    total = up + down
    c = math.floor(1 + t / total)
    x = 1 + t / total - c
    rho = up / total
    hgt = x / rho if x <= rho else (x - 1) / (rho - 1)
    if h["mode"] == "triangular2":
        return hgt * 0.5 ** (c - 1)
    if h["mode"] == "exp_range":
        return hgt * h["gamma"] ** t
    return hgt


def cyclic(t, h):
    return h["init_value"] + (h["peak_value"] - h["init_value"]) * _cyclic_h(t, h)


def cyclic_momentum(t, h):
    return h["max_momentum"] - (h["max_momentum"] - h["base_momentum"]) * _cyclic_h(t, h)


def _one_cycle_knots(h):
    total, pct = h["total_steps"], h["pct_start"]
    if h["three_phase"]:
        return [0.0, pct * total, 2 * pct * total, total]
    return [0.0, pct * total, total]


def one_cycle(t, h):
    p, d, f = h["peak_value"], h["div_factor"], h["final_div_factor"]
    knots = _one_cycle_knots(h)
    values = [p / d, p, p / d, p / (d * f)] if h["three_phase"] else [p / d, p, p / (d * f)]
    shape = "cosine" if h["anneal"] == "cos" else "linear"
    return _pieces(t, knots, values, [(shape, False)] * (len(knots) - 1))


def one_cycle_momentum(t, h):
    lo, hi = h["base_momentum"], h["max_momentum"]
    knots = _one_cycle_knots(h)
    values = [hi, lo, hi, hi] if h["three_phase"] else [hi, lo, hi]
    shape = "cosine" if h["anneal"] == "cos" else "linear"
    return _pieces(t, knots, values, [(shape, False)] * (len(knots) - 1))


def wsd(t, h):
    total, w, d = h["total_steps"], h["warmup_steps"], h["decay_steps"]
    return _pieces(t, [0.0, w, total - d, total],
                   [h["init_value"], h["peak_value"], h["peak_value"], h["end_value"]],
                   [(h["warmup_shape"], True), ("linear", False), (h["decay_shape"], False)])


def infinite(t, h):
    total, w, c, d = h["total_steps"], h["warmup_steps"], h["cooldown_steps"], h["decay_steps"]
    k = h["constant_value"]
    return _pieces(t, [0.0, w, w + c, total - d, total],
                   [h["init_value"], h["peak_value"], k, k, h["end_value"]],
                   [("linear", True), (h["cooldown_shape"], False), ("linear", False),
                    (h["decay_shape"], False)])


def swa(t, h):
    x = min(1.0, t / h["anneal_steps"])
    a = 0.5 * (1 - math.cos(math.pi * x)) if h["anneal"] == "cos" else x
    return h["swa_value"] * a + h["init_value"] * (1 - a)


def warmup(t, h):
    inner, w = h["schedule"], h["warmup_steps"]
    if t >= w:
        return ref(inner, t - w)
    return _rise(h["init_value"], ref(inner, 0.0), t / w, h["shape"])


def join(t, h):
    bs = list(np.asarray(h["boundaries"], float))
    i = sum(t >= b for b in bs)
    start = 0.0 if i == 0 else bs[i - 1]
    return ref(h["schedules"][i], t - start)


def product(t, h):
    return math.prod(ref(s, t) for s in h["schedules"])


def scale(t, h):
    return h["factor"] * ref(h["schedule"], t)


def clip(t, h):
    v = ref(h["schedule"], t)
    if h.get("min_value") is not None:
        v = max(v, h["min_value"])
    if h.get("max_value") is not None:
        v = min(v, h["max_value"])
    return v


def per_epoch(t, h):
    return ref(h["schedule"], math.floor(t / h["steps_per_epoch"]))


def noise(t, h):
    """Outside [start, end) the inner schedule's value; inside, random (NaN here: the band is
    tested separately)."""
    if h["start_step"] <= t < h["end_step"]:
        return math.nan
    return ref(h["schedule"], t)


ORACLES = {name: fn for name, fn in globals().items()
           if callable(fn) and not name.startswith("_") and name not in ("ref",)
           and fn.__module__ == __name__}


def ref(schedule, t) -> float:
    """The reference value of ``schedule`` at step ``t`` (a Python float)."""
    return float(ORACLES[schedule.name](float(t), _hp(schedule)))
