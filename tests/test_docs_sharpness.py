"""Every Python block of docs/sharpness.md runs, in order, in one namespace."""

from __future__ import annotations

import re
from pathlib import Path

DOC = Path(__file__).resolve().parent.parent / "docs" / "sharpness.md"


def blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", DOC.read_text(), flags=re.DOTALL)


def test_docs_sharpness_code_blocks_run():
    code = blocks()
    assert len(code) >= 5  # batch API, NNX cap, probe batch, NNX warmup, bf16
    namespace: dict = {}
    for i, block in enumerate(code):
        exec(compile(block, f"{DOC.name}[block {i}]", "exec"), namespace)  # noqa: S102
    assert "e16" in namespace  # the last block (bf16) ran
