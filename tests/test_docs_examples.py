"""The Python examples in docs/python.md run as written (in a temporary folder)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

DOCS = Path(__file__).resolve().parent.parent / "docs"
PAGES = ["python.md"]


def _blocks(page: str) -> list[str]:
    return re.findall(r"```python\n(.*?)```", (DOCS / page).read_text(), flags=re.S)


@pytest.mark.parametrize("page", PAGES)
def test_every_python_block_runs(page, tmp_path, monkeypatch):
    blocks = _blocks(page)
    assert blocks, f"{page} has no python block"
    monkeypatch.chdir(tmp_path)  # the examples write runs/ here
    for i, code in enumerate(blocks):
        namespace: dict = {"__name__": "__main__"}  # as in a notebook or a script
        exec(compile(code, f"{page}[block {i + 1}]", "exec"), namespace)  # noqa: S102
    assert (tmp_path / "runs" / "nb-1" / "model.safetensors").is_file()
