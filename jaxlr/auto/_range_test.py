"""Smith's learning-rate range test as one ``lax.scan``, vmapped over seeds and a hyperparameter."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import ArrayLike

from jaxlr._src.divergence import diverged_entries
from jaxlr._src.tree import tree_where
from jaxlr._src.validate import Checker, concrete, renamed
from jaxlr.auto._util import loss_step

SUGGESTIONS = ("valley", "steepest", "min_div10")
_MIN_POINTS = 3  # fewer valid points than this and no suggestion is made


class Suggestion(NamedTuple):
    """One suggested LR: its spread across seeds and the value of every member.

    ``lr``, ``low`` and ``high`` have the shape of the hyperparameter axis (scalars without one).
    """

    lr: jax.Array  # [*hparams] geometric mean over seeds (NaN if no seed gave a value)
    low: jax.Array  # [*hparams] smallest over seeds
    high: jax.Array  # [*hparams] largest over seeds
    members: jax.Array  # [*hparams, num_seeds] per member, NaN where too few valid points


class RangeTestResult(NamedTuple):
    """What an LR range test measured (see :func:`lr_range_test`).

    Every field is an array, so the result of a ``jax.vmap`` / ``jax.jit`` of
    :func:`lr_range_test` is a :class:`RangeTestResult` too (each field gains the batch axes in
    front); :attr:`message` puts the counts into words on the host, after the computation.
    """

    lrs: jax.Array  # [num_steps] the exponential ramp
    losses: jax.Array  # [*hparams, num_seeds, num_steps] raw losses, NaN once diverged
    smoothed: jax.Array  # [*hparams, num_seeds, num_steps] debiased EMA, NaN once diverged
    valid: jax.Array  # [*hparams, num_seeds, num_steps] bool, False from divergence on
    diverged_at: jax.Array  # [*hparams, num_seeds] first masked step index, num_steps if none
    suggestions: dict[str, Suggestion]  # "valley", "steepest", "min_div10"
    num_members: jax.Array  # [] int: seeds x hyperparameter values
    num_diverged: jax.Array  # [] int: members masked at some step
    num_short: jax.Array  # [] int: members with fewer than 3 valid points (no suggestion)
    ok: jax.Array  # [] bool: False when no member left enough valid points to suggest anything
    min_value: jax.Array  # [] the start of the ramp (quoted by the message)
    diverge_factor: jax.Array  # [] the divergence threshold (quoted by the message)

    @property
    def message(self) -> str:
        """What happened, in words (one line per batch entry of a vmapped result)."""
        fields = (
            self.num_members,
            self.num_diverged,
            self.num_short,
            self.ok,
            self.min_value,
            self.diverge_factor,
        )
        arrays = [concrete(f) for f in fields]
        if any(a is None for a in arrays):
            raise ValueError(
                "RangeTestResult.message: the result is traced; read the message outside jit / vmap"
            )
        arrays = np.broadcast_arrays(*arrays)
        if arrays[0].ndim == 0:
            return _describe(*(a.item() for a in arrays))
        lines = []
        for i in np.ndindex(arrays[0].shape):
            where = ", ".join(map(str, i))
            lines.append(f"[{where}] " + _describe(*(a[i].item() for a in arrays)))
        return "\n".join(lines)


def _describe(n_members, n_div, n_short, ok, min_value, diverge_factor) -> str:
    if not ok:
        return (
            f"lr_range_test: every one of the {n_members} members diverged within its "
            f"first {_MIN_POINTS} steps (from min_value={min_value:g}); no suggestion "
            f"(NaN). Lower min_value or check the loss for NaN."
        )
    return (
        f"lr_range_test: {n_div} of {n_members} members diverged (smoothed loss > "
        f"{diverge_factor:g} x best or not finite) and were masked from there on; "
        f"{n_short} left too few points for a suggestion."
    )


def _valley_index(loss: jax.Array, valid: jax.Array) -> jax.Array:
    """fastai's valley: the longest decreasing run of the curve, 1/3 + 1/6 of the way down it.

    ``lds[i]`` is the length of the longest strictly decreasing subsequence ending at ``i``
    (computed by a scan over ``i``, vectorized over ``j < i``).
    """
    n = loss.shape[0]
    idx = jnp.arange(n)

    def body(lds, i):
        better = (idx < i) & valid & (loss > loss[i])
        li = jnp.where(valid[i], 1 + jnp.max(jnp.where(better, lds, 0)), 0)
        return lds.at[i].set(li), None

    lds, _ = jax.lax.scan(body, jnp.zeros(n, jnp.int32), idx)
    end = jnp.argmax(lds)  # the first index reaching the longest run
    start = end - lds[end]
    third = (end - start) // 3
    return jnp.clip(start + third + third // 2, 0, n - 1)


def _suggest(lrs: jax.Array, smoothed: jax.Array, valid: jax.Array) -> dict[str, jax.Array]:
    """The three suggestions for one member (NaN with fewer than 3 valid points)."""
    enough = jnp.sum(valid) >= _MIN_POINTS
    loss = jnp.where(valid, smoothed, jnp.inf)
    log_lr = jnp.log(lrs)
    slope = jnp.diff(jnp.where(valid, smoothed, 0.0)) / jnp.diff(log_lr)
    slope = jnp.where(valid[1:] & valid[:-1], slope, jnp.inf)
    out = {
        "valley": lrs[_valley_index(loss, valid)],
        "steepest": lrs[jnp.argmin(slope)],
        "min_div10": lrs[jnp.argmin(loss)] / 10.0,
    }
    return {k: jnp.where(enough, v, jnp.nan) for k, v in out.items()}


def _spread(members: jax.Array) -> Suggestion:
    ok = jnp.isfinite(members)
    n = jnp.sum(ok, axis=-1)
    logs = jnp.where(ok, jnp.log(jnp.where(ok, members, 1.0)), 0.0)
    geo = jnp.where(n > 0, jnp.exp(jnp.sum(logs, -1) / jnp.maximum(n, 1)), jnp.nan)
    low = jnp.where(n > 0, jnp.min(jnp.where(ok, members, jnp.inf), -1), jnp.nan)
    high = jnp.where(n > 0, jnp.max(jnp.where(ok, members, -jnp.inf), -1), jnp.nan)
    return Suggestion(jnp.clip(geo, low, high), low, high, members)  # no rounding past ends


@partial(jax.jit, static_argnames=("step_fn", "init_fn", "num_steps", "has_hparam"))
def _run(
    step_fn,
    init_fn,
    keys,
    hparams,
    min_value,
    max_value,
    decay,
    diverge_factor,
    *,
    num_steps,
    has_hparam,
):
    frac = jnp.arange(num_steps) / (num_steps - 1)
    lrs = min_value * (max_value / min_value) ** frac

    def member(key, hp):
        extra = (hp,) if has_hparam else ()
        k_init, k_data = jax.random.split(key)
        state = init_fn(k_init, *extra)
        hparam = {"hparam": hp} if has_hparam else {}
        step = loss_step("lr_range_test", step_fn, state, {"lr": lrs[0], **hparam}, k_data)

        def body(carry, i):
            state, avg, best, dead = carry
            config = {"lr": lrs[i], **hparam}
            new_state, loss = step(state, config, jax.random.fold_in(k_data, i))
            new_avg = decay * avg + (1.0 - decay) * loss
            sm = new_avg / (1.0 - decay ** (i + 1.0))
            # the sweeps' rule, its threshold diverge_factor x the best so far; the loss only:
            # the test returns curves, not states, and a NaN state shows in the next loss
            bad = dead | diverged_entries(sm, diverge_factor * best)
            carry = (
                tree_where(bad, state, new_state),
                jnp.where(bad, avg, new_avg),
                jnp.where(bad, best, jnp.minimum(best, sm)),
                bad,
            )
            return carry, (jnp.where(bad, jnp.nan, loss), jnp.where(bad, jnp.nan, sm), ~bad)

        zero = jnp.zeros((), lrs.dtype)
        init = (state, zero, jnp.asarray(jnp.inf, lrs.dtype), jnp.asarray(False))
        _, (losses, smoothed, valid) = jax.lax.scan(body, init, jnp.arange(num_steps))
        return losses, smoothed, valid, _suggest(lrs, smoothed, valid)

    over_seeds = jax.vmap(member, in_axes=(0, None))
    out = (
        jax.vmap(over_seeds, in_axes=(None, 0))(keys, hparams)
        if has_hparam
        else over_seeds(keys, hparams)
    )
    losses, smoothed, valid, sugg = out
    # the summary is computed here too, so an eager call is one compiled program
    diverged = ~jnp.all(valid, axis=-1)
    diverged_at = jnp.where(diverged, jnp.argmin(valid, axis=-1), num_steps)
    n_members = int(np.prod(diverged.shape))  # static: the shape of the member axes
    n_short = jnp.sum(jnp.sum(valid, axis=-1) < _MIN_POINTS)
    return RangeTestResult(
        lrs,
        losses,
        smoothed,
        valid,
        diverged_at,
        {k: _spread(sugg[k]) for k in SUGGESTIONS},
        num_members=jnp.asarray(n_members),
        num_diverged=jnp.sum(diverged),
        num_short=n_short,
        ok=n_short < n_members,
        min_value=min_value,
        diverge_factor=diverge_factor,
    )


@renamed(min_lr="min_value", max_lr="max_value", smoothing="decay")
def lr_range_test(
    step_fn: Callable[[Any, Any, jax.Array], tuple[Any, Any]],
    init_fn: Callable[..., Any],
    *,
    key: jax.Array,
    num_seeds: int = 4,
    min_value: ArrayLike = 1e-7,
    max_value: ArrayLike = 10.0,
    num_steps: int = 100,
    decay: ArrayLike = 0.98,
    diverge_factor: ArrayLike = 4.0,
    hparams: ArrayLike | None = None,
) -> RangeTestResult:
    r"""Smith's LR range test: one exponential LR ramp per member, all members at once.

    Each member (a seed, and optionally a value of a second hyperparameter such as weight decay)
    starts from ``init_fn(key)`` and takes ``num_steps`` steps whose LR grows geometrically,

    .. math::
        \eta_i = \eta_{\min} (\eta_{\max} / \eta_{\min})^{i / (N - 1)},

    recording the loss. The curve is smoothed by a debiased EMA,
    :math:`\bar L_i = m_i / (1 - \beta^{i+1})` with :math:`m_i = \beta m_{i-1} + (1-\beta) L_i`,
    and a member is masked from the first step where :math:`\bar L_i` diverges by the sweeps'
    rule for a loss (not finite, or above a threshold; ``jaxlr.sweep.Population``) with the
    threshold :math:`f \min_{j<i} \bar L_j`, ``f`` = ``diverge_factor``; its state is frozen
    from there on. The
    whole test is one ``lax.scan`` under ``vmap`` (seeds) and a second ``vmap`` (``hparams``),
    compiled once.

    Every float argument is data: ``jax.vmap`` / ``jax.jit`` over ``min_value``, ``max_value``,
    ``decay`` or ``diverge_factor`` works (one compile for all values), and the result's
    counts, ``ok`` flag and suggestions are arrays. Only ``num_steps``, ``num_seeds`` and
    whether ``hparams`` is given are static (they fix the shapes).

    Suggestions per member, on the smoothed, unmasked curve (NaN with fewer than 3 points):

    - ``"valley"``: fastai's valley: the longest strictly decreasing run of the curve, at
      1/3 + 1/6 of its length;
    - ``"steepest"``: the LR where :math:`d\bar L / d\log\eta` is most negative;
    - ``"min_div10"``: the LR of the smallest smoothed loss, divided by 10.

    Args:
        step_fn: ``step_fn(state, config, key) -> (state, metrics)``, jaxlr's one step
            convention (docs/sweeps.md, "The step function"): ``config`` is ``{"lr": lr}``
            (``{"lr": lr, "hparam": h}`` when ``hparams`` is given), the batch is the step's
            data key, and ``metrics["loss"]`` is the training loss of the step (before or after
            the update, as the user defines it). The older form ``step_fn(state, lr, key) ->
            (state, loss)`` (``step_fn(state, lr, key, hparam)`` with ``hparams``) is still
            accepted: a step that does not take the config dict and return a metrics dict is
            called that way (told apart by tracing, before anything compiles).
        init_fn: ``init_fn(key) -> state`` (or ``init_fn(key, hparam)``).
        key: PRNG key; member ``s`` uses ``split(key, num_seeds)[s]`` for init and data.
        num_seeds: number of seeds (static).
        min_value, max_value: ends of the ramp :math:`\eta_{\min}, \eta_{\max}` (data: new
            values do not recompile). Traced values are not checked: a non-positive bound
            gives a NaN ramp (every member diverges), ``max_value < min_value`` a falling one.
        num_steps: length of the ramp (static, >= 3).
        decay: the EMA's decay :math:`\beta` in [0, 1) (Optax's name for an EMA coefficient;
            fastai's ``beta``).
        diverge_factor: mask from the step the smoothed loss exceeds this times the best (> 1).
        hparams: optional 1-D array of a second hyperparameter, passed to ``step_fn`` and
            ``init_fn``; results gain a leading axis of its length.

    Returns:
        A :class:`RangeTestResult`. ``suggestions[name]`` holds the geometric mean, min and max
        over seeds and every member's value. ``ok`` is False and ``message`` says so when no
        member kept enough valid points (every member diverged at once: lower ``min_value``).

    Raises:
        ValueError: a concrete ``min_value <= 0``, ``max_value <= min_value``, ``num_steps < 3``,
            ``num_seeds < 1``, ``decay`` outside [0, 1), ``diverge_factor <= 1``, NaN, or
            ``hparams`` not 1-D.
        TypeError: the old spellings ``min_lr`` / ``max_lr`` / ``smoothing``.

    Examples:
        >>> import jax, jax.numpy as jnp
        >>> from jaxlr import auto
        >>> def step(x, config, key):  # gradient descent on 2 x^2 (lambda_max = 4: stable < 0.5)
        ...     return x - config["lr"] * 4.0 * x, {"loss": 2.0 * jnp.sum(x**2)}
        >>> r = auto.lr_range_test(step, lambda k: jnp.ones(3) + jax.random.normal(k, (3,)),
        ...                        key=jax.random.key(0), min_value=1e-3, max_value=10.0,
        ...                        num_steps=60)
        >>> bool(r.suggestions["valley"].high < 0.5), bool(r.ok)
        (True, True)
        >>> sweep = jax.vmap(lambda lo: auto.lr_range_test(  # one compile for every start
        ...     step, lambda k: jnp.ones(3), key=jax.random.key(0), min_value=lo, num_steps=60))
        >>> sweep(jnp.array([1e-4, 1e-3])).suggestions["valley"].lr.shape
        (2,)

    References:
        Smith, Cyclical Learning Rates for Training Neural Networks, WACV 2017; Howard & Gugger,
        fastai (``lr_find`` and its valley suggestion), 2020.
    """
    c = Checker("lr_range_test")
    c.key("key", key)
    for name, fn in (("step_fn", step_fn), ("init_fn", init_fn)):
        if not callable(fn):
            c.fail(f"{name} must be callable, got {name}={fn!r}")
    lo = c.positive("min_value", min_value)
    hi = c.positive("max_value", max_value)
    if lo is not None and hi is not None and not bool(np.all(hi > lo)):
        c.fail(
            f"max_value must be > min_value, got min_value={min_value!r}, max_value={max_value!r}"
        )
    c.integer("num_steps", num_steps, minimum=_MIN_POINTS, static=True)
    c.integer("num_seeds", num_seeds, minimum=1, static=True)
    c.between("decay", decay, 0.0, 1.0, open_hi=True)
    d = c.finite("diverge_factor", diverge_factor)
    if d is not None and not bool(np.all(d > 1)):
        c.fail(f"diverge_factor must be > 1, got diverge_factor={diverge_factor!r}")
    has_hparam = hparams is not None
    if has_hparam:
        c.vector("hparams", hparams, min_len=1)
    hp = jnp.asarray(hparams if has_hparam else 0.0, dtype=float)
    keys = jax.random.split(key, num_seeds)
    f = partial(jnp.asarray, dtype=float)
    return _run(
        step_fn,
        init_fn,
        keys,
        hp,
        f(min_value),
        f(max_value),
        f(decay),
        f(diverge_factor),
        num_steps=num_steps,
        has_hparam=has_hparam,
    )


def plot_range_test(result: RangeTestResult, *, ax: Any = None, suggestion: str = "valley"):
    """Plots the smoothed loss of every member against the LR (log scale) and a suggestion.

    Uses ``matplotlib.figure.Figure`` directly (no pyplot, so no GUI backend is needed; the
    figure renders with Agg). With a hyperparameter axis, members are flattened.

    Args:
        result: the output of :func:`lr_range_test`.
        ax: a matplotlib ``Axes`` to draw on; a new figure is made when None.
        suggestion: which suggestion to mark with its spread (``"valley"``, ``"steepest"``,
            ``"min_div10"``), or None.

    Returns:
        The matplotlib ``Figure``.

    Examples:
        >>> import jax, jax.numpy as jnp
        >>> from jaxlr import auto
        >>> step = lambda x, config, key: (x - config["lr"] * x, {"loss": jnp.sum(x**2)})
        >>> r = auto.lr_range_test(step, lambda k: jnp.ones(2), key=jax.random.key(0),
        ...                        min_value=1e-3, max_value=10.0, num_steps=30, num_seeds=2)
        >>> fig = auto.plot_range_test(r)
        >>> fig.axes[0].get_xscale()
        'log'

    References:
        Smith, Cyclical Learning Rates for Training Neural Networks, WACV 2017.
    """
    from matplotlib.figure import Figure

    if ax is None:
        fig = Figure(figsize=(6, 4))
        ax = fig.add_subplot()
    else:
        fig = ax.figure
    lrs = np.asarray(result.lrs)
    curves = np.asarray(result.smoothed).reshape(-1, lrs.shape[0])
    for y in curves:
        ax.plot(lrs, y, lw=1, alpha=0.8)
    if suggestion is not None:
        s = result.suggestions[suggestion]
        lr, low, high = (np.ravel(np.asarray(v)) for v in (s.lr, s.low, s.high))
        for a, b, m in zip(low, high, lr, strict=True):
            if np.isfinite(m):
                ax.axvspan(a, b, color="tab:red", alpha=0.15)
                ax.axvline(m, color="tab:red", lw=1, label=f"{suggestion} {m:.2g}")
        ax.legend(loc="best", fontsize=8)
    ax.set_xscale("log")
    ax.set_xlabel("learning rate")
    ax.set_ylabel("smoothed loss")
    ax.set_title("LR range test")
    return fig
