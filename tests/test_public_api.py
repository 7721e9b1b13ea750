"""Every public symbol has a docstring with a runnable example (the doctests run in the suite)."""

from __future__ import annotations

import importlib
import inspect

import pytest

MODULES = [
    "jaxlr.schedules",
    "jaxlr.schedules.presets",
    "jaxlr.schedules.steps",
    "jaxlr.plot",
    "jaxlr.compat.torch",
    "jaxlr.compat.keras",
    "jaxlr.compat.transformers",
    "jaxlr.sharpness",
    "jaxlr.transforms",
    "jaxlr.sweep",
    "jaxlr.auto",
    "jaxlr.recommend",
    "jaxlr.scaling",
    "jaxlr.compat",
]


def _public(module):
    names = getattr(module, "__all__", None)
    if names is None:
        names = [
            n
            for n, v in vars(module).items()
            if not n.startswith("_")
            and getattr(v, "__module__", "").startswith(module.__name__)
            and (inspect.isfunction(v) or inspect.isclass(v))
        ]
    return [(n, getattr(module, n)) for n in names]


def _is_record(obj):
    """NamedTuple results and exceptions document their fields, not a usage example."""
    return inspect.isclass(obj) and (issubclass(obj, tuple) or issubclass(obj, Exception))


@pytest.mark.parametrize("modname", MODULES)
def test_public_symbols_are_documented_with_examples(modname):
    module = importlib.import_module(modname)  # a module that stops importing must fail
    assert (module.__doc__ or "").strip(), f"{modname} has no module docstring"
    missing = []
    for name, obj in _public(module):
        if inspect.ismodule(obj) or not (callable(obj) or inspect.isclass(obj)):
            continue
        doc = inspect.getdoc(obj) or ""
        if not doc.strip():
            missing.append(f"{name}: no docstring")
        elif ">>>" not in doc and not _is_record(obj):
            missing.append(f"{name}: no example")
    assert not missing, f"{modname}: " + "; ".join(missing)


def test_all_names_resolve():
    for modname in MODULES:
        module = importlib.import_module(modname)
        for name in getattr(module, "__all__", []):
            assert hasattr(module, name), f"{modname}.__all__ lists missing {name}"


# -- the frozen public API -----------------------------------------------------------------------
SNAPSHOT = __import__("pathlib").Path(__file__).with_name("public_api.txt")


def api_listing() -> str:
    """One line per public name: ``module.name`` and, for functions and classes, the signature."""
    lines = []
    for modname in MODULES:
        module = importlib.import_module(modname)
        assert hasattr(module, "__all__"), f"{modname} must declare __all__"
        for name in sorted(module.__all__):
            obj = getattr(module, name)
            sig = ""
            if inspect.isfunction(obj) or (
                callable(obj) and not inspect.isclass(obj) and not inspect.ismodule(obj)
            ):
                try:
                    sig = str(inspect.signature(obj))
                except (TypeError, ValueError):
                    sig = "(...)"
            elif inspect.isclass(obj):  # a family is a class: its signature is its arguments
                try:
                    sig = " class" + str(inspect.signature(obj))
                except (TypeError, ValueError):
                    sig = " class"
            lines.append(f"{modname}.{name}{sig}")
    return "\n".join(lines) + "\n"


def test_public_api_is_frozen():
    """A change of the public API is deliberate: regenerate the snapshot with
    ``python tests/test_public_api.py`` and review the diff."""
    assert SNAPSHOT.read_text() == api_listing(), (
        "the public API changed; if intended, run `python tests/test_public_api.py` and commit "
        "tests/public_api.txt"
    )


if __name__ == "__main__":
    SNAPSHOT.write_text(api_listing())
    print(f"wrote {SNAPSHOT}")
