"""Every ``python`` block in docs/*.md and the README runs, in order, one namespace per page."""

from __future__ import annotations

import pathlib
import re

import pytest

DOCS = pathlib.Path(__file__).resolve().parent.parent / "docs"
_BLOCK = re.compile(r"^```python\n(.*?)^```", re.S | re.M)


def blocks(page: pathlib.Path) -> list[str]:
    return _BLOCK.findall(page.read_text())


PAGES = sorted(p for p in [*DOCS.glob("*.md"), DOCS.parent / "README.md"] if blocks(p))


@pytest.mark.parametrize("page", PAGES, ids=[p.name for p in PAGES])
def test_every_snippet_runs(page, tmp_path, monkeypatch):
    """Each page's snippets run and check their numbers: every page asserts something against
    a value written in the snippet (a formula, a peer's default), so a wrong result fails here."""
    code_of_page = "".join(blocks(page))
    assert "assert" in code_of_page, f"{page.name}: its snippets check no number"
    monkeypatch.chdir(tmp_path)  # snippets that write files write them here
    namespace: dict = {}
    for i, code in enumerate(blocks(page)):
        try:
            exec(compile(code, f"{page.name}[block {i}]", "exec"), namespace)  # noqa: S102
        except Exception as e:  # name the block that failed
            raise AssertionError(f"{page.name} block {i} failed: {type(e).__name__}: {e}") from e
