"""The peer-name table (``jaxlr.compat._names``) against the compat signatures it describes."""

from __future__ import annotations

import ast
import inspect

from jaxlr import compat, schedules, transforms
from jaxlr._src import peer_names as _names

NOT_CONSTRUCTORS = {"ReduceLROnPlateauState", "LRAndMomentum"}


def _peer_arguments() -> dict[str, set[str]]:
    """Every keyword argument of every compat constructor, with the modules that take it (the
    ``.momentum`` / ``.with_momentum`` companions take their scheduler's arguments)."""
    found: dict[str, set[str]] = {}
    for peer in ("torch", "keras", "transformers"):
        module = getattr(compat, peer)
        for name in module.__all__:
            if name in NOT_CONSTRUCTORS:
                continue
            for p in inspect.signature(getattr(module, name)).parameters.values():
                assert p.kind is p.KEYWORD_ONLY, (peer, name, p.name)
                found.setdefault(p.name, set()).add(peer)
    return found


def _native_arguments() -> set[str]:
    out = set()
    for module in (schedules, schedules.presets, transforms):
        for name in module.__all__:
            fn = getattr(module, name)
            # a constructor is a function or a family class (``cosine`` is the class Cosine)
            if inspect.isfunction(fn) or (
                inspect.isclass(fn) and issubclass(fn, schedules.Schedule)
            ):
                out |= set(inspect.signature(fn).parameters)
    return out


def test_every_peer_argument_is_in_the_table():
    found = _peer_arguments()
    assert len(found) > 60
    assert set(_names.PEER_NAMES) == set(found), set(found) ^ set(_names.PEER_NAMES)
    assert _names.PEER_MODULES == {k: tuple(sorted(v)) for k, v in sorted(found.items())}


def test_every_hint_names_a_native_argument_or_is_a_sentence():
    native = _native_arguments()
    assert {"total_steps", "peak_value", "period_steps", "end_value"} <= native
    for table in (_names.PEER_NAMES, _names.OPTAX_NAMES):
        for peer_name, hint in table.items():
            if hint.isidentifier():
                assert hint in native, (peer_name, hint)
                assert hint != peer_name, peer_name  # a same-named argument gets a sentence
            else:
                assert hint.endswith("."), (peer_name, hint)
                head = hint.split()[0].rstrip(":,")
                if head.isidentifier() and "_" in head:  # a sentence that opens with a name
                    assert head in native or head == peer_name, (peer_name, head)


def test_the_table_imports_nothing():
    """schedules (a lower layer) copies this module's literals; it must not pull in compat."""
    tree = ast.parse(inspect.getsource(_names))
    assert not [n for n in ast.walk(tree) if isinstance(n, (ast.Import, ast.ImportFrom))]
