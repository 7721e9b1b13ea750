"""Parity cases: a jaxlr schedule and the peer's values at steps ``0 .. n - 1``.

Every case builds its jaxlr schedule from a function (so it can be built in float32 and, inside
``jax.enable_x64``, in float64) and its reference from the real peer: a torch scheduler stepped
in a plain loop (``get_last_lr()[0]`` after ``t`` calls of ``step()``), a Hugging Face builder's
``LambdaLR`` stepped the same way, a Keras schedule called on every step, or an Optax schedule.
Hyperparameters are drawn from seeded generators, so the suite is the same on every run.
"""

from __future__ import annotations

import math
import os
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

os.environ.setdefault("KERAS_BACKEND", "jax")

LONG = 2000  # steps for long schedules


@dataclass(frozen=True)
class Case:
    """One parity case.

    ``peer`` is ``"torch"``, ``"transformers"``, ``"keras"`` or ``"optax"``. ``build`` returns the
    jaxlr schedule; ``ref`` returns the peer's values (float64 array of length ``n``).
    ``x64`` says whether the peer computes in float64 (torch, transformers, optax under x64), so
    the pointwise comparison can also run in float64.
    """

    name: str
    peer: str
    build: Callable
    ref: Callable[[], np.ndarray] = field(repr=False)
    n: int = LONG
    rtol: float = 1e-5
    x64: bool = True


def _loguniform(rng, lo, hi):
    return float(math.exp(rng.uniform(math.log(lo), math.log(hi))))


# ---------------------------------------------------------------------------------------------
# torch


def torch_values(make, n, lr, momentum=False):
    """LR (or momentum) of a torch scheduler after 0 .. n-1 calls of ``step()``."""
    import torch

    p = torch.zeros(1, requires_grad=True)
    opt = torch.optim.SGD([p], lr=lr, momentum=0.9)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        sched = make(opt)
        out = []
        for t in range(n):
            if t:
                sched.step()
            out.append(opt.param_groups[0]["momentum"] if momentum else sched.get_last_lr()[0])
    return np.asarray(out, dtype=np.float64)


def _torch_case(name, build, make, *, lr, n=LONG, momentum=False):
    return Case(f"torch.{name}", "torch", build, lambda: torch_values(make, n, lr, momentum), n)


def torch_cases() -> list[Case]:
    from torch.optim import lr_scheduler as L
    from torch.optim.swa_utils import SWALR as TorchSWALR

    from jaxlr.compat import torch as C

    cases = []
    rng = np.random.default_rng(0)

    def add(name, kw, tkw=None, *, lr, n=LONG, cls=None):
        cls = cls or name
        tkw = kw if tkw is None else tkw
        peer = TorchSWALR if cls == "SWALR" else getattr(L, cls)
        shown = tuple((k, v) for k, v in kw.items() if not callable(v))
        cases.append(
            _torch_case(
                f"{name}{shown!s:.80}",
                lambda: getattr(C, cls)(**kw, lr=lr),
                lambda o: peer(o, **tkw),
                lr=lr,
                n=n,
            )
        )

    lambdas = [lambda t: 0.997**t, lambda t: 1.0 / (1.0 + 0.01 * t)]
    for i, fn in enumerate(lambdas):
        add(f"LambdaLR[{i}]", dict(lr_lambda=fn), lr=_loguniform(rng, 1e-4, 1), cls="LambdaLR")
    mults = [lambda t: 0.999, lambda t: 1.0 - 0.5 / (t + 10.0)]
    for i, fn in enumerate(mults):
        add(
            f"MultiplicativeLR[{i}]",
            dict(lr_lambda=fn),
            lr=_loguniform(rng, 1e-4, 1),
            cls="MultiplicativeLR",
        )
    for _ in range(3):
        add(
            "StepLR",
            dict(step_size=int(rng.integers(1, 500)), gamma=float(rng.uniform(0.1, 0.99))),
            lr=_loguniform(rng, 1e-4, 1),
        )
    for ms in (sorted(rng.integers(0, LONG, 4).tolist()), [1500, 30, 700], [100, 100, 900]):
        add(
            "MultiStepLR",
            dict(milestones=[int(m) for m in ms], gamma=float(rng.uniform(0.1, 0.9))),
            lr=_loguniform(rng, 1e-4, 1),
        )
    for total in (int(rng.integers(1, 1000)), int(rng.integers(1, 1000)), 0):
        add(
            "ConstantLR",
            dict(factor=float(rng.uniform(0.05, 1.0)), total_iters=total),
            lr=_loguniform(rng, 1e-4, 1),
        )
    for total, end in (
        (int(rng.integers(1, 1500)), 1.0),
        (int(rng.integers(1, 1500)), 0.0),
        (int(rng.integers(1, 1500)), float(rng.uniform(0.2, 1))),
        (0, 1.0),
    ):
        add(
            "LinearLR",
            dict(start_factor=float(rng.uniform(0.01, 1.0)), end_factor=end, total_iters=total),
            lr=_loguniform(rng, 1e-4, 1),
        )
    for _ in range(3):
        add(
            "ExponentialLR",
            dict(gamma=float(rng.uniform(0.99, 0.9999))),
            lr=_loguniform(rng, 1e-4, 1),
        )
    for total in (int(rng.integers(1, 1900)), int(rng.integers(1, 1900)), 0):
        add(
            "PolynomialLR",
            dict(total_iters=total, power=float(rng.uniform(0.3, 3.0))),
            lr=_loguniform(rng, 1e-4, 1),
        )
    for eta in (0.0, 1e-5, 0.0):  # T_max < steps: the cosine rises again after T_max
        add(
            "CosineAnnealingLR",
            dict(T_max=int(rng.integers(50, 1900)), eta_min=eta),
            lr=_loguniform(rng, 1e-3, 1),
        )
    for mult in (1, 2, 3):
        add(
            "CosineAnnealingWarmRestarts",
            dict(
                T_0=int(rng.integers(5, 300)), T_mult=mult, eta_min=float(rng.choice([0.0, 1e-5]))
            ),
            lr=_loguniform(rng, 1e-3, 1),
        )
    for anneal, epochs in (
        ("cos", int(rng.integers(1, 50))),
        ("linear", int(rng.integers(1, 50))),
        ("cos", 0),
    ):
        add(
            "SWALR",
            dict(swa_lr=_loguniform(rng, 1e-4, 1e-1), anneal_epochs=epochs, anneal_strategy=anneal),
            lr=_loguniform(rng, 1e-3, 1),
            n=200,
        )

    # CyclicLR: three modes, an asymmetric cycle, a custom scale_fn; LR and momentum
    cyc = [
        dict(mode="triangular", step_size_up=int(rng.integers(10, 400))),
        dict(
            mode="triangular2",
            step_size_up=int(rng.integers(10, 300)),
            step_size_down=int(rng.integers(10, 300)),
        ),
        dict(
            mode="exp_range",
            gamma=float(rng.uniform(0.998, 0.9999)),
            step_size_up=int(rng.integers(10, 400)),
        ),
        dict(scale_fn=lambda x: 1.0 / (1.0 + 0.1 * x), scale_mode="cycle", step_size_up=150),
        dict(
            scale_fn=lambda x: 0.9995**x,
            scale_mode="iterations",
            step_size_up=97,
            step_size_down=41,
        ),
    ]
    for kw in cyc:
        kw = dict(
            kw,
            base_lr=_loguniform(rng, 1e-4, 1e-2),
            max_lr=_loguniform(rng, 1e-2, 1),
            base_momentum=0.8,
            max_momentum=0.95,
        )
        for mom in (False, True):
            build = (
                (lambda kw=kw: C.CyclicLR.momentum(**kw))
                if mom
                else (lambda kw=kw: C.CyclicLR(**kw))
            )
            cases.append(
                _torch_case(
                    f"CyclicLR{'.momentum' if mom else ''}[{kw.get('mode', 'scale_fn')}]",
                    build,
                    lambda o, kw=kw: L.CyclicLR(o, **kw),
                    lr=0.1,
                    momentum=mom,
                )
            )

    # OneCycleLR: its last step, both strategies, the three-phase form, LR and momentum
    for total, pct, anneal, three in (
        (LONG - 1, 0.3, "cos", False),
        (LONG - 1, 0.25, "linear", False),
        (LONG - 1, 0.3, "cos", True),
        (97, 0.37, "linear", True),
        (123, float(rng.uniform(0.1, 0.9)), "cos", False),
    ):
        kw = dict(
            max_lr=_loguniform(rng, 1e-2, 1),
            total_steps=total,
            pct_start=pct,
            anneal_strategy=anneal,
            three_phase=three,
            div_factor=float(rng.uniform(5, 50)),
            final_div_factor=float(rng.uniform(1e2, 1e4)),
        )
        for mom in (False, True):
            build = (
                (lambda kw=kw: C.OneCycleLR.momentum(**kw))
                if mom
                else (lambda kw=kw: C.OneCycleLR(**kw))
            )
            cases.append(
                _torch_case(
                    f"OneCycleLR{'.momentum' if mom else ''}[{anneal},three={three},T={total}]",
                    build,
                    lambda o, kw=kw: L.OneCycleLR(o, **kw),
                    lr=0.1,
                    n=total + 1,
                    momentum=mom,
                )
            )
    kw = dict(max_lr=0.5, epochs=7, steps_per_epoch=30)
    cases.append(
        _torch_case(
            "OneCycleLR[epochs*steps_per_epoch]",
            lambda kw=kw: C.OneCycleLR(**kw),
            lambda o, kw=kw: L.OneCycleLR(o, **kw),
            lr=0.1,
            n=211,
        )
    )

    # SequentialLR across milestones, ChainedScheduler
    lr = _loguniform(rng, 1e-3, 1)
    cases.append(
        _torch_case(
            "SequentialLR[LinearLR,CosineAnnealingLR]",
            lambda: C.SequentialLR(
                schedulers=[
                    C.LinearLR(start_factor=0.01, total_iters=100, lr=lr),
                    C.CosineAnnealingLR(T_max=1500, eta_min=1e-6, lr=lr),
                ],
                milestones=[100],
            ),
            lambda o: L.SequentialLR(
                o,
                [
                    L.LinearLR(o, start_factor=0.01, total_iters=100),
                    L.CosineAnnealingLR(o, T_max=1500, eta_min=1e-6),
                ],
                [100],
            ),
            lr=lr,
        )
    )
    cases.append(
        _torch_case(
            "SequentialLR[ConstantLR,ExponentialLR,StepLR]",
            lambda: C.SequentialLR(
                schedulers=[
                    C.ConstantLR(factor=0.1, total_iters=50, lr=lr),
                    C.ExponentialLR(gamma=0.999, lr=lr),
                    C.StepLR(step_size=200, gamma=0.5, lr=lr),
                ],
                milestones=[30, 777],
            ),
            lambda o: L.SequentialLR(
                o,
                [
                    L.ConstantLR(o, factor=0.1, total_iters=50),
                    L.ExponentialLR(o, gamma=0.999),
                    L.StepLR(o, step_size=200, gamma=0.5),
                ],
                [30, 777],
            ),
            lr=lr,
        )
    )
    cases.append(
        _torch_case(
            "SequentialLR[OneCycleLR,CosineAnnealingWarmRestarts]",
            lambda: C.SequentialLR(
                schedulers=[
                    C.OneCycleLR(max_lr=lr, total_steps=500),
                    # OneCycleLR rewrote the optimizer's initial_lr to max_lr / div_factor, and a
                    # scheduler built after it takes that as its base LR
                    C.CosineAnnealingWarmRestarts(T_0=100, T_mult=2, lr=lr / 25.0),
                ],
                milestones=[500],
            ),
            lambda o: L.SequentialLR(
                o,
                [
                    L.OneCycleLR(o, max_lr=lr, total_steps=500),
                    L.CosineAnnealingWarmRestarts(o, T_0=100, T_mult=2),
                ],
                [500],
            ),
            lr=lr,
        )
    )
    cases.append(
        _torch_case(
            "ChainedScheduler[ConstantLR,ExponentialLR]",
            lambda: C.ChainedScheduler(
                schedulers=[
                    C.ConstantLR(factor=0.1, total_iters=20, lr=lr),
                    C.ExponentialLR(gamma=0.999, lr=lr),
                ],
                lr=lr,
            ),
            lambda o: L.ChainedScheduler(
                [L.ConstantLR(o, factor=0.1, total_iters=20), L.ExponentialLR(o, gamma=0.999)]
            ),
            lr=lr,
        )
    )
    cases.append(
        _torch_case(
            "ChainedScheduler[LinearLR,StepLR,PolynomialLR,MultiStepLR]",
            lambda: C.ChainedScheduler(
                schedulers=[
                    C.LinearLR(start_factor=0.2, total_iters=300, lr=lr),
                    C.StepLR(step_size=250, gamma=0.7, lr=lr),
                    C.PolynomialLR(total_iters=1900, power=0.5, lr=lr),
                    C.MultiStepLR(milestones=[400, 1000], gamma=0.5, lr=lr),
                ],
                lr=lr,
            ),
            lambda o: L.ChainedScheduler(
                [
                    L.LinearLR(o, start_factor=0.2, total_iters=300),
                    L.StepLR(o, step_size=250, gamma=0.7),
                    L.PolynomialLR(o, total_iters=1900, power=0.5),
                    L.MultiStepLR(o, milestones=[400, 1000], gamma=0.5),
                ]
            ),
            lr=lr,
        )
    )
    # per-epoch recipes: torch steps once per epoch, Optax counts optimizer steps
    from jaxlr.schedules import per_epoch

    for name, kw, spe in (
        ("StepLR", dict(step_size=3, gamma=0.5), 37),
        ("CosineAnnealingLR", dict(T_max=40, eta_min=1e-4), 50),
    ):
        epochs = LONG // spe + 1
        cases.append(
            Case(
                f"torch.per_epoch({name}, steps_per_epoch={spe})",
                "torch",
                lambda name=name, kw=kw, spe=spe: per_epoch(
                    getattr(C, name)(**kw, lr=0.1), steps_per_epoch=spe
                ),
                lambda name=name, kw=kw, spe=spe, epochs=epochs: np.repeat(
                    torch_values(lambda o: getattr(L, name)(o, **kw), epochs, 0.1), spe
                )[:LONG],
            )
        )
    return cases + plateau_cases()


def plateau_cases() -> list[Case]:
    """``ReduceLROnPlateau``: torch's LR after ``step(v_1) .. step(v_t)`` against the transform."""
    import jax
    import jax.numpy as jnp
    from torch.optim import lr_scheduler as L

    from jaxlr.compat import torch as C

    rng = np.random.default_rng(4)
    n = 400
    configs = [
        dict(mode="min", threshold_mode="rel", patience=3, cooldown=0, factor=0.5),
        dict(
            mode="min",
            threshold_mode="abs",
            patience=2,
            cooldown=4,
            factor=0.3,
            threshold=1e-3,
            min_lr=1e-4,
        ),
        dict(mode="max", threshold_mode="rel", patience=1, cooldown=2, factor=0.7),
        dict(
            mode="max",
            threshold_mode="abs",
            patience=5,
            cooldown=1,
            factor=0.1,
            threshold=0.01,
            eps=1e-3,
        ),
    ]
    cases = []
    for cfg in configs:
        for sign in (1.0, -1.0):  # negative metrics: torch's rel threshold misjudges them
            walk = np.cumsum(rng.normal(0, 1, n)) * 0.01 + (1.0 if cfg["mode"] == "min" else 0.0)
            values = (sign * (2.0 + np.abs(walk))).astype(np.float32).astype(np.float64)
            lr = _loguniform(rng, 1e-2, 1)

            def build(cfg=cfg, values=values, lr=lr):
                tx = C.ReduceLROnPlateau(lr=lr, **cfg)

                @jax.jit
                def run(vs):
                    def body(state, v):
                        u, state = tx.update(jnp.ones(()), state, value=v)
                        return state, u

                    return jax.lax.scan(body, tx.init(None), vs)[1]

                # the LR at step 0 is the initial one; step t has taken in v_1 .. v_t
                return lambda steps: jnp.concatenate(
                    [jnp.asarray([lr]), run(jnp.asarray(values[1 : len(steps)]))]
                )

            def ref(cfg=cfg, values=values, lr=lr):
                import torch

                opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=lr)
                sched = L.ReduceLROnPlateau(opt, **cfg)
                out = [sched.get_last_lr()[0]]
                for v in values[1:]:
                    sched.step(float(v))
                    out.append(sched.get_last_lr()[0])
                return np.asarray(out)

            cases.append(
                Case(
                    f"torch.ReduceLROnPlateau[{cfg['mode']},{cfg['threshold_mode']},"
                    f"metrics {'<' if sign < 0 else '>'} 0]",
                    "torch",
                    build,
                    ref,
                    n=n,
                )
            )
    return cases


# ---------------------------------------------------------------------------------------------
# transformers


def transformers_cases() -> list[Case]:
    import transformers.optimization as H

    from jaxlr.compat import transformers as C

    rng = np.random.default_rng(1)
    cases = []

    def add(name, kw, *, lr):
        cases.append(
            Case(
                f"transformers.{name}{tuple((k, v) for k, v in kw.items())!s:.80}",
                "transformers",
                lambda: getattr(C, name)(**kw, lr=lr),
                lambda: torch_values(lambda o: getattr(H, name)(o, **kw), LONG, lr),
            )
        )

    def lengths():
        w = int(rng.integers(0, 400))
        return w, w + int(rng.integers(1, 1500))  # num_training_steps < 2000: past-the-end steps

    add("get_constant_schedule", {}, lr=_loguniform(rng, 1e-5, 1e-2))
    for w in (0, int(rng.integers(1, 500))):
        add(
            "get_constant_schedule_with_warmup",
            dict(num_warmup_steps=w),
            lr=_loguniform(rng, 1e-5, 1e-2),
        )
    for _ in range(3):
        w, t = lengths()
        add(
            "get_linear_schedule_with_warmup",
            dict(num_warmup_steps=w, num_training_steps=t),
            lr=_loguniform(rng, 1e-5, 1e-2),
        )
    for cycles in (0.5, 0.5, float(rng.uniform(0.3, 3))):
        w, t = lengths()
        add(
            "get_cosine_schedule_with_warmup",
            dict(num_warmup_steps=w, num_training_steps=t, num_cycles=cycles),
            lr=_loguniform(rng, 1e-5, 1e-2),
        )
    for cycles in (1, 3, int(rng.integers(2, 7))):
        w, t = lengths()
        add(
            "get_cosine_with_hard_restarts_schedule_with_warmup",
            dict(num_warmup_steps=w, num_training_steps=t, num_cycles=cycles),
            lr=_loguniform(rng, 1e-5, 1e-2),
        )
    for power in (1.0, float(rng.uniform(0.5, 3))):
        w, t = lengths()
        lr = _loguniform(rng, 1e-4, 1e-2)
        add(
            "get_polynomial_decay_schedule_with_warmup",
            dict(num_warmup_steps=w, num_training_steps=t, lr_end=lr * 1e-3, power=power),
            lr=lr,
        )
    for w, ts in ((int(rng.integers(1, 500)), None), (0, None), (100, 37)):
        add(
            "get_inverse_sqrt_schedule",
            dict(num_warmup_steps=w, timescale=ts),
            lr=_loguniform(rng, 1e-5, 1e-2),
        )
    for extra in (dict(min_lr_rate=0.1), dict(min_lr=1e-6, num_cycles=0.7)):
        w, t = lengths()
        add(
            "get_cosine_with_min_lr_schedule_with_warmup",
            dict(num_warmup_steps=w, num_training_steps=t, **extra),
            lr=1e-3,
        )
    types = ("linear", "cosine", "1-sqrt")
    for i in range(4):
        w, d = int(rng.integers(0, 300)), int(rng.integers(1, 800))
        kw = dict(
            num_warmup_steps=w,
            num_decay_steps=d,
            warmup_type=types[i % 3],
            decay_type=types[(i + 1) % 3],
            min_lr_ratio=float(rng.choice([0.0, 0.05])),
        )
        if i == 3:
            kw.update(
                num_stable_steps=int(rng.integers(0, 500)), num_cycles=0.8, decay_type="cosine"
            )
        else:
            kw.update(num_training_steps=w + d + int(rng.integers(0, 800)))
        add("get_wsd_schedule", kw, lr=_loguniform(rng, 1e-5, 1e-2))
    return cases


# ---------------------------------------------------------------------------------------------
# keras (float32: Keras computes in float32)


def keras_cases() -> list[Case]:
    import jax
    import jax.numpy as jnp
    import keras

    from jaxlr.compat import keras as C

    K = keras.optimizers.schedules
    rng = np.random.default_rng(2)
    cases = []

    def add(name, kw):
        def ref():
            return np.asarray(jax.vmap(getattr(K, name)(**kw))(jnp.arange(LONG)), np.float64)

        cases.append(
            Case(
                f"keras.{name}{tuple(kw.items())!s:.80}",
                "keras",
                lambda: getattr(C, name)(**kw),
                ref,
                x64=False,
            )
        )

    for stair in (False, True):
        add(
            "ExponentialDecay",
            dict(
                initial_learning_rate=_loguniform(rng, 1e-4, 1),
                decay_steps=int(rng.integers(1, 500)),
                decay_rate=float(rng.uniform(0.3, 0.99)),
                staircase=stair,
            ),
        )
    b = sorted(rng.choice(LONG, 3, replace=False).tolist())
    add("PiecewiseConstantDecay", dict(boundaries=b, values=[1e-2, 5e-3, 1e-3, 1e-4]))
    for cycle in (False, True):
        add(
            "PolynomialDecay",
            dict(
                initial_learning_rate=_loguniform(rng, 1e-3, 1),
                decay_steps=int(rng.integers(50, 1500)),
                end_learning_rate=1e-5,
                power=float(rng.uniform(0.5, 3)),
                cycle=cycle,
            ),
        )
    for stair in (False, True):
        add(
            "InverseTimeDecay",
            dict(
                initial_learning_rate=_loguniform(rng, 1e-4, 1),
                decay_steps=int(rng.integers(1, 500)),
                decay_rate=float(rng.uniform(0.1, 2)),
                staircase=stair,
            ),
        )
    add(
        "CosineDecay",
        dict(
            initial_learning_rate=0.1,
            decay_steps=int(rng.integers(100, 1900)),
            alpha=float(rng.uniform(0, 0.2)),
        ),
    )
    add(
        "CosineDecay",
        dict(
            initial_learning_rate=0.0,
            decay_steps=int(rng.integers(100, 1500)),
            alpha=0.05,
            warmup_target=0.3,
            warmup_steps=int(rng.integers(1, 400)),
        ),
    )
    for t_mul, m_mul in ((1.0, 1.0), (2.0, 0.8), (1.5, 0.9)):
        add(
            "CosineDecayRestarts",
            dict(
                initial_learning_rate=_loguniform(rng, 1e-3, 1),
                first_decay_steps=int(rng.integers(20, 200)),
                t_mul=t_mul,
                m_mul=m_mul,
                alpha=float(rng.choice([0.0, 0.1])),
            ),
        )
    return cases


# ---------------------------------------------------------------------------------------------
# native schedules against Optax (rtol 1e-6)


def optax_cases() -> list[Case]:
    import jax.numpy as jnp
    import optax

    from jaxlr import schedules as S

    rng = np.random.default_rng(3)
    cases = []

    def add(name, build, make):
        def ref():
            import jax

            with jax.enable_x64(True):
                return np.asarray(jax.vmap(make())(jnp.arange(LONG, dtype=jnp.float64)), np.float64)

        cases.append(Case(f"optax.{name}", "optax", build, ref, rtol=1e-6))

    lr, end = _loguniform(rng, 1e-4, 1), _loguniform(rng, 1e-6, 1e-4)
    add("constant_schedule", lambda: S.constant(value=lr), lambda: optax.constant_schedule(lr))
    add(
        "linear_schedule",
        lambda: S.linear(init_value=lr, end_value=end, total_steps=1200, begin_steps=300),
        lambda: optax.linear_schedule(lr, end, 900, 300),
    )
    add(
        "polynomial_schedule",
        lambda: S.polynomial(
            init_value=lr, end_value=end, total_steps=1300, power=2.5, begin_steps=100
        ),
        lambda: optax.polynomial_schedule(lr, end, 2.5, 1200, 100),
    )
    for stair, rate, e in (
        (False, 0.5, None),
        (True, 0.7, None),
        (False, 0.3, end),
        (False, 1.5, 3 * lr),
    ):
        kw = dict(
            init_value=lr,
            decay_rate=rate,
            period_steps=170,
            begin_steps=60,
            staircase=stair,
            end_value=e,
        )
        add(
            f"exponential_decay[staircase={stair},rate={rate},end={e}]",
            lambda kw=kw: S.exponential(**kw),
            lambda kw=kw: optax.exponential_decay(
                kw["init_value"], 170, kw["decay_rate"], 60, kw["staircase"], kw["end_value"]
            ),
        )
    for exponent in (1.0, 2.0):
        add(
            f"cosine_decay_schedule[exponent={exponent}]",
            lambda e=exponent: S.cosine(
                init_value=lr, total_steps=1500, end_value=0.1 * lr, power=e
            ),
            lambda e=exponent: optax.cosine_decay_schedule(lr, 1500, alpha=0.1, exponent=e),
        )
    add(
        "warmup_cosine_decay_schedule",
        lambda: S.warmup_cosine(
            peak_value=lr,
            warmup_steps=150,
            total_steps=1700,
            init_value=0.1 * lr,
            end_value=end,
            power=1.5,
        ),
        lambda: optax.warmup_cosine_decay_schedule(0.1 * lr, lr, 150, 1700, end, 1.5),
    )
    add(
        "warmup_exponential_decay_schedule",
        lambda: S.warmup(
            S.exponential(
                init_value=lr,
                decay_rate=0.6,
                period_steps=100,
                begin_steps=50,
                staircase=True,
                end_value=end,
            ),
            warmup_steps=200,
            init_value=0.0,
        ),
        lambda: optax.warmup_exponential_decay_schedule(0.0, lr, 200, 100, 0.6, 50, True, end),
    )
    add(
        "warmup_constant_schedule",
        lambda: S.warmup(S.constant(value=lr), warmup_steps=300, init_value=0.2 * lr),
        lambda: optax.warmup_constant_schedule(0.2 * lr, lr, 300),
    )
    bounds = {200: 0.5, 700: 0.3, 1400: 0.1}
    add(
        "piecewise_constant_schedule",
        lambda: S.multistep(
            init_value=lr, boundaries=list(bounds), decay_rate=list(bounds.values())
        ),
        lambda: optax.piecewise_constant_schedule(lr, bounds),
    )
    knots = np.array([0, *bounds]), lr * np.cumprod([1.0, *bounds.values()])
    for kind, shape in (("linear", "linear"), ("cosine", "cosine")):
        add(
            f"piecewise_interpolate_schedule[{kind}]",
            lambda shape=shape: S.piecewise_interpolate(
                boundaries=knots[0], values=knots[1], shape=shape
            ),
            lambda kind=kind: optax.piecewise_interpolate_schedule(kind, lr, bounds),
        )
    add(
        "join_schedules",
        lambda: S.join(
            [S.constant(value=lr), S.linear(init_value=lr, end_value=end, total_steps=800)],
            boundaries=[500],
        ),
        lambda: optax.join_schedules(
            [optax.constant_schedule(lr), optax.linear_schedule(lr, end, 800)], [500]
        ),
    )
    t0, mult, decay, w = 150, 2.0, 0.7, 20
    kwargs = [
        dict(
            init_value=end,
            peak_value=lr * decay**i,
            decay_steps=int(t0 * mult**i),
            warmup_steps=w,
            end_value=end,
        )
        for i in range(4)
    ]
    add(
        "sgdr_schedule",
        lambda: S.sgdr(
            peak_value=lr,
            period_steps=t0,
            period_mult=mult,
            peak_decay=decay,
            end_value=end,
            cycle_warmup_steps=w,
        ),
        lambda: optax.sgdr_schedule(kwargs),
    )
    add(
        "cosine_onecycle_schedule",
        lambda: S.one_cycle(
            peak_value=lr,
            total_steps=1800,
            warmup_fraction=0.25,
            init_value=lr / 20.0,
            end_value=lr / 1e4,
        ),
        lambda: optax.cosine_onecycle_schedule(1800, lr, 0.25, 20.0, 500.0),
    )
    add(
        "linear_onecycle_schedule",
        lambda: S.one_cycle(
            peak_value=lr,
            total_steps=1800,
            warmup_fraction=0.3,
            init_value=lr / 20.0,
            end_value=lr / 1e4,
            shape="linear",
            three_phase=True,
        ),
        lambda: optax.linear_onecycle_schedule(1800, lr, 0.3, 0.6, 20.0, 500.0),
    )
    return cases


def all_cases() -> list[Case]:
    return torch_cases() + transformers_cases() + keras_cases() + optax_cases()
