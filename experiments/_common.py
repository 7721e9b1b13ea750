"""Shared pieces of the experiments: data, tiny flax NNX models, schedule families, output files.

Every experiment trains many configurations as one vmapped program (``jaxlr.sweep.run``): the
model is split once into a static ``graphdef`` and a parameter pytree, and each member merges
them inside its loss, so the only per-member state is arrays.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax

import jaxlr

RESULTS = Path(__file__).resolve().parent / "results"

# The schedule families the seed names, in a fixed order: a traced index picks one.
FAMILIES = ("constant", "step", "exponential", "cosine", "warmup_cosine", "one_cycle", "wsd")


# -- data ----------------------------------------------------------------------------------------
def digits(n_train: int | None = None, seed: int = 0):
    """scikit-learn's 8x8 digits (offline), pixels in [0, 1]; a shuffled 80/20 train/test split.

    ``n_train`` keeps only the first training images (a small-data regime).
    """
    from jaxlr.demo import digits as load

    (xtr, ytr), (xte, yte) = load(seed)
    if n_train is not None:
        xtr, ytr = xtr[:n_train], ytr[:n_train]
    return tuple(map(jnp.asarray, (xtr, ytr))), tuple(map(jnp.asarray, (xte, yte)))


def minibatches(n: int, *, batch: int, steps: int, seed: int = 1) -> jax.Array:
    """``[steps, batch]`` indices into a training set of ``n`` (the same for every member)."""
    rng = np.random.default_rng(seed)
    return jnp.asarray(np.stack([rng.choice(n, batch, replace=False) for _ in range(steps)]))


def reverse_task(key: jax.Array, *, batch: int, length: int, vocab: int):
    """A synthetic sequence task: the target at position ``i`` is the input at ``length-1-i``."""
    x = jax.random.randint(key, (batch, length), 0, vocab)
    return x, x[:, ::-1]


# -- models --------------------------------------------------------------------------------------
def split(build):
    """``(graphdef, params)`` of the NNX module ``build(rngs)``, built under jit (one compile)."""
    from flax import nnx

    graphdef = nnx.split(nnx.eval_shape(lambda: build(nnx.Rngs(0))), nnx.Param)[0]
    params = jax.jit(lambda: nnx.split(build(nnx.Rngs(0)), nnx.Param)[1])()
    return graphdef, params


def mlp(widths: tuple[int, ...]):
    """A ReLU MLP with layer sizes ``widths`` (input first): ``(graphdef, params)``."""
    from flax import nnx

    class MLP(nnx.Module):
        def __init__(self, rngs):
            self.layers = nnx.List(
                [nnx.Linear(a, b, rngs=rngs) for a, b in zip(widths[:-1], widths[1:], strict=True)]
            )

        def __call__(self, x):
            for layer in self.layers[:-1]:
                x = jax.nn.relu(layer(x))
            return self.layers[-1](x)

    return split(MLP)


def transformer(
    *,
    vocab: int,
    length: int,
    d_model: int = 32,
    heads: int = 2,
    layers: int = 2,
    post_ln: bool = True,
):
    """A bidirectional Transformer encoder (token + learned position embeddings, ``layers``
    blocks of attention and a 4x MLP); post-LN as in Vaswani et al. 2017 unless ``post_ln`` is
    False. Returns ``(graphdef, params)``; logits are ``[batch, length, vocab]``."""
    from flax import nnx

    class Block(nnx.Module):
        def __init__(self, rngs):
            self.attn = nnx.MultiHeadAttention(
                num_heads=heads, in_features=d_model, decode=False, rngs=rngs
            )
            self.ln1 = nnx.LayerNorm(d_model, rngs=rngs)
            self.ln2 = nnx.LayerNorm(d_model, rngs=rngs)
            self.ff1 = nnx.Linear(d_model, 4 * d_model, rngs=rngs)
            self.ff2 = nnx.Linear(4 * d_model, d_model, rngs=rngs)

        def __call__(self, x):
            ff = lambda h: self.ff2(jax.nn.relu(self.ff1(h)))  # noqa: E731
            if post_ln:
                x = self.ln1(x + self.attn(x))
                return self.ln2(x + ff(x))
            x = x + self.attn(self.ln1(x))
            return x + ff(self.ln2(x))

    class Encoder(nnx.Module):
        def __init__(self, rngs):
            self.embed = nnx.Embed(vocab, d_model, rngs=rngs)
            self.pos = nnx.Param(0.02 * jax.random.normal(rngs.params(), (length, d_model)))
            self.blocks = nnx.List([Block(rngs) for _ in range(layers)])
            self.out = nnx.Linear(d_model, vocab, rngs=rngs)

        def __call__(self, tokens):
            x = self.embed(tokens) + self.pos[...]
            for block in self.blocks:
                x = block(x)
            return self.out(x)

    return split(Encoder)


def cross_entropy(graphdef, params, x, y) -> jax.Array:
    """Mean softmax cross-entropy of the merged model on ``(x, y)`` (any leading shape)."""
    from flax import nnx

    logits = nnx.merge(graphdef, params)(x)
    return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()


def accuracy(graphdef, params, x, y) -> jax.Array:
    """Fraction of ``argmax`` predictions equal to ``y``."""
    from flax import nnx

    return jnp.mean(jnp.argmax(nnx.merge(graphdef, params)(x), -1) == y)


def train(loss_on, tx, params, x, y, batches, **extra):
    """Minibatch training: ``len(batches)`` steps of ``tx`` on ``loss_on(params, x[i], y[i])``.

    ``batches`` is ``[steps, batch]`` indices; ``extra`` goes to ``tx.update``. Returns the
    final parameters and the minibatch loss of every step.
    """

    def step(carry, idx):
        p, o = carry
        loss, g = jax.value_and_grad(loss_on)(p, x[idx], y[idx])
        u, o = tx.update(g, o, p, **extra)
        return (optax.apply_updates(p, u), o), loss

    (params, _), losses = jax.lax.scan(step, (params, tx.init(params)), batches)
    return params, losses


def timing(result) -> dict:
    """The compile and run seconds of a :class:`jaxlr.sweep.SweepResult`."""
    return {k: result.info.get(k) for k in ("compile_seconds", "run_seconds")}


# -- schedules -----------------------------------------------------------------------------------
def family_schedules(peak, total, *, warmup_fraction=0.1, decay=0.01):
    """The :data:`FAMILIES` at one traced ``peak`` over ``total`` steps (same order).

    step: /10 at 1/3 and 2/3 of training (ResNet's shape); exponential: down to ``decay`` x peak
    at the end; warmup_cosine and wsd warm up over ``warmup_fraction`` of training; wsd decays
    linearly over its last 20%; one_cycle uses PyTorch's defaults (30% rise from peak/25).
    """
    s = jaxlr.schedules
    w = warmup_fraction * total
    return (
        s.constant(value=peak),
        s.step(init_value=peak, period_steps=total / 3.0, decay_rate=0.1),
        s.exponential(init_value=peak, decay_rate=decay, period_steps=total),
        s.cosine(init_value=peak, total_steps=total),
        s.warmup_cosine(peak_value=peak, warmup_steps=w, total_steps=total),
        s.one_cycle(peak_value=peak, total_steps=total),
        s.wsd(peak_value=peak, total_steps=total, warmup_steps=w, decay_fraction=0.2),
    )


def family_lr(family, peak, total, **kw):
    """The LR law of family index ``family`` (into :data:`FAMILIES`) at ``peak``."""
    return jaxlr.schedules.select(family, family_schedules(peak, total, **kw))


# -- analysis ------------------------------------------------------------------------------------
def good_band(lrs, losses, *, factor=1.5):
    """The good-LR band: LRs whose loss is within ``factor`` x the best (non-diverged) loss.

    Returns ``(low, high, decades)``: the contiguous run of grid LRs around the best one whose
    loss stays within the bound, and its width in decades ``log10(high / low)`` (0 for a single
    point; NaN if every member failed).
    """
    lrs, losses = np.asarray(lrs, float), np.asarray(losses, float)
    ok = np.isfinite(losses)
    if not ok.any():
        return float("nan"), float("nan"), float("nan")
    best = int(np.nanargmin(np.where(ok, losses, np.inf)))
    good = ok & (losses <= factor * losses[best])
    lo = hi = best
    while lo > 0 and good[lo - 1]:
        lo -= 1
    while hi < len(lrs) - 1 and good[hi + 1]:
        hi += 1
    return float(lrs[lo]), float(lrs[hi]), float(np.log10(lrs[hi] / lrs[lo]))


def md_table(headers, rows) -> str:
    """A markdown table; floats are written with 4 significant digits."""

    def cell(v):
        if isinstance(v, float | np.floating):
            return f"{v:.4g}"
        return str(v)

    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(cell(v) for v in r) + " |" for r in rows]
    return "\n".join(lines)


def to_json(obj):
    """NumPy/JAX values -> plain Python for ``json`` (NaN and inf become ``None``)."""
    if isinstance(obj, dict):
        return {str(k): to_json(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [to_json(v) for v in obj]
    if isinstance(obj, np.ndarray | jax.Array):
        return to_json(np.asarray(obj).tolist())
    if isinstance(obj, np.generic):
        obj = obj.item()
    if isinstance(obj, float) and not np.isfinite(obj):
        return None
    return obj


def figure(ncols: int, *, width: float = 5.0, height: float = 4.0):
    """A matplotlib figure (Agg backend) with ``ncols`` axes in a row."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, ncols, figsize=(width * ncols, height), squeeze=False)
    return fig, axes[0]


def write(
    name: str, *, summary: str, record: dict, fig, started: float, command: str | None = None
) -> None:
    """Writes ``results/<name>.{md,json,png}`` and prints the summary.

    ``started`` is ``time.time()`` at the start of the experiment; the runtime goes into both
    the JSON and the markdown; ``command`` the module and flags that made it (default
    ``experiments.<name>``).
    """
    RESULTS.mkdir(parents=True, exist_ok=True)
    seconds = time.time() - started
    record = {"experiment": name, "seconds": round(seconds, 1), **record}
    fig.tight_layout()
    fig.savefig(RESULTS / f"{name}.png", dpi=100)
    (RESULTS / f"{name}.json").write_text(json.dumps(to_json(record), indent=1) + "\n")
    text = summary.rstrip() + (
        f"\n\nCommand: `.venv/bin/python -m {command or 'experiments.' + name}` ({seconds:.0f} s "
        f"on this machine, 2 shared CPU cores). Files: `{name}.png`, `{name}.json`.\n"
    )
    (RESULTS / f"{name}.md").write_text(text)
    print(text)
