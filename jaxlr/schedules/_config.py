"""Schedules as text: JSON configs (``to_config`` / ``from_config``) and expressions (``parse``).

Both directions go through the registry of families (``_core``): a config names a family and its
constructor's arguments, and reading one re-runs the constructor, so a config is validated like
a call. Malformed input (wrong types, bad JSON, absurd nesting, repeated arguments, anything that
is not a literal or a schedule call) raises ``ValueError`` saying what is wrong; nothing is
evaluated.
"""

from __future__ import annotations

import ast
import json
from collections.abc import Callable, Mapping
from typing import Any

from jaxlr.schedules import presets
from jaxlr.schedules._core import Schedule, constructor

# Deeper nesting than this is not a schedule anyone wrote; refusing it early keeps Python's
# recursion limit (and its RecursionError) out of the user's way.
_MAX_DEPTH = 64


def from_config(config: Mapping[str, Any] | str) -> Schedule:
    """Rebuilds (and re-validates) a schedule from :func:`to_config`'s dict or its JSON text.

    Args:
        config: ``{"name": str, "args": {argument: value}}`` (child schedules nested the same
            way), or that dict as JSON text.

    Raises:
        ValueError: bad JSON, a config that is not such a dict, an unknown name, nesting deeper
            than 64 levels, or arguments the constructor rejects.

    Examples:
        >>> import jaxlr
        >>> s = jaxlr.schedules.warmup_cosine(peak_value=1.0, warmup_steps=10, total_steps=100)
        >>> jaxlr.schedules.from_config(s.to_config()) == s
        True
    """
    if isinstance(config, (str, bytes)):
        try:
            config = json.loads(config, object_pairs_hook=_unique_keys)
        except (json.JSONDecodeError, RecursionError, UnicodeDecodeError) as e:
            raise ValueError(f"from_config: not valid JSON ({e})") from None
    return _decode(config, 0)


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """JSON objects with a repeated key are refused (json keeps the last one silently)."""
    out: dict[str, Any] = {}
    for k, v in pairs:
        if k in out:
            raise ValueError(f"from_config: key {k!r} repeated in a JSON object")
        out[k] = v
    return out


def _is_config(v: Any) -> bool:
    return isinstance(v, Mapping) and "name" in v


def _decode(config: Any, depth: int) -> Schedule:
    if depth > _MAX_DEPTH:
        raise ValueError(f"from_config: configs nest at most {_MAX_DEPTH} schedules deep")
    if not isinstance(config, Mapping) or set(config) - {"name", "args"} or "name" not in config:
        raise ValueError(
            f"from_config: a config is a dict with keys 'name' and 'args', got {_short(config)}"
        )
    name, args = config["name"], config.get("args", {})
    if not isinstance(name, str):
        raise ValueError(f"from_config: 'name' must be a string, got name={_short(name)}")
    if not isinstance(args, Mapping) or not all(isinstance(k, str) for k in args):
        raise ValueError(
            f"from_config: 'args' of {name!r} must be a dict of argument names to "
            f"values, got args={_short(args)}"
        )

    def dec(v: Any) -> Any:
        if _is_config(v):
            return _decode(v, depth + 1)
        if isinstance(v, list) and v and all(_is_config(x) for x in v):
            return [_decode(x, depth + 1) for x in v]
        return v

    build = constructor(name)
    try:
        return build(**{k: dec(v) for k, v in args.items()})
    except TypeError as e:  # a missing or unknown argument: the config's fault
        raise ValueError(f"from_config: {e}") from None


def _short(v: Any) -> str:
    text = repr(v)
    return text if len(text) <= 80 else text[:77] + "..."


def parse(
    expression: str,
    *,
    lookup: Callable[[str], Callable[..., Schedule]] | None = None,
) -> Schedule:
    """Builds a schedule from a Python-like expression, as the CLI takes it.

    Only calls of registered schedule names (``cosine``, the compat laws' dotted names such as
    ``torch.CosineAnnealingLR``, ``presets.NAME``) with literal arguments are allowed; nothing is
    evaluated. ``repr(s)`` of every schedule parses back to an equal one.

    Args:
        expression: the expression text.
        lookup: resolves other dotted names to constructors; ``jaxlr.compat.lookup`` makes every
            peer-named constructor (``torch.StepLR(step_size=30, lr=0.1)``) available (the
            schedules layer does not import the compat layer itself).

    Raises:
        ValueError: not a string, a syntax error, an unknown name, a repeated keyword, an
            argument that is not a number, string, bool, list or schedule call, or nesting
            deeper than 64 calls.

    Examples:
        >>> import jaxlr
        >>> s = jaxlr.schedules.parse(
        ...     "warmup(cosine(init_value=1.0, total_steps=90), warmup_steps=10)")
        >>> s.name, float(s(10))
        ('warmup', 1.0)
    """
    if not isinstance(expression, str):
        raise ValueError(f"parse: expected a string, got {_short(expression)}")
    try:
        tree = ast.parse(expression.strip(), mode="eval")
    except (SyntaxError, RecursionError, MemoryError, ValueError) as e:
        msg = getattr(e, "msg", None) or type(e).__name__
        raise ValueError(
            f"parse: not a schedule expression: {_short(expression)} ({msg})"
        ) from None

    def callee(fn: ast.AST):
        dotted = _dotted(fn)
        if (
            dotted is not None
            and dotted.startswith("presets.")
            and (dotted[len("presets.") :] in presets.__all__)
        ):
            return getattr(presets, dotted[len("presets.") :])
        if dotted is not None:
            for prefix in ("jaxlr.schedules.", "jaxlr.compat.", ""):
                if dotted.startswith(prefix):
                    try:
                        return constructor(dotted[len(prefix) :])
                    except ValueError:
                        pass
            if lookup is not None and "." in dotted:
                return lookup(dotted)
        raise ValueError(f"parse: unknown schedule {ast.unparse(fn)!r} in {_short(expression)}")

    def ev(node: ast.AST, depth: int) -> Any:
        if depth > _MAX_DEPTH:
            raise ValueError(f"parse: expressions nest at most {_MAX_DEPTH} calls deep")
        if isinstance(node, ast.Call):
            build = callee(node.func)
            seen: set[str] = set()
            for k in node.keywords:
                if k.arg is None:
                    raise ValueError(f"parse: **kwargs are not allowed in {_short(expression)}")
                if k.arg in seen:
                    raise ValueError(
                        f"parse: keyword {k.arg!r} repeated in {ast.unparse(node.func)}(...)"
                    )
                seen.add(k.arg)
            args = [ev(a, depth + 1) for a in node.args]
            kwargs = {k.arg: ev(k.value, depth + 1) for k in node.keywords}
            try:
                return build(*args, **kwargs)
            except TypeError as e:  # a wrong argument name or count: the expression's fault
                raise ValueError(f"parse: {e}") from None
        if isinstance(node, (ast.List, ast.Tuple)):
            return [ev(e, depth + 1) for e in node.elts]
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
            value = ev(node.operand, depth + 1)
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                return -value if isinstance(node.op, ast.USub) else value
        if isinstance(node, ast.Constant) and (
            node.value is None or isinstance(node.value, (bool, int, float, str))
        ):
            return node.value
        raise ValueError(
            f"parse: only numbers, strings, bools, lists and schedule calls are "
            f"allowed, got {ast.unparse(node)!r}"
        )

    try:
        result = ev(tree.body, 0)
    except RecursionError:
        raise ValueError(f"parse: expressions nest at most {_MAX_DEPTH} calls deep") from None
    if not isinstance(result, Schedule):
        raise ValueError(f"parse: {_short(expression)} does not build a schedule")
    return result


def _dotted(node: ast.AST) -> str | None:
    """``a.b.c`` for a chain of attribute accesses on a name, else ``None``."""
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if not isinstance(node, ast.Name):
        return None
    parts.append(node.id)
    return ".".join(reversed(parts))
