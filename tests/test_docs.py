"""The docs cannot drift from the code: their Python blocks run, generated pages are current,
and mkdocs builds them with --strict (broken links fail)."""

from __future__ import annotations

import os
import pathlib
import re
import shutil
import subprocess
import sys

import pytest

REPO = pathlib.Path(__file__).resolve().parents[1]
PAGES = sorted((REPO / "docs").glob("*.md")) + [REPO / "README.md"]
BLOCK = re.compile(r"```python\n(.*?)```", re.S)


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_python_blocks_run(page: pathlib.Path) -> None:
    blocks = BLOCK.findall(page.read_text())
    namespace: dict[str, object] = {"__name__": f"docs_{page.stem}"}
    for i, block in enumerate(blocks):
        try:
            exec(compile(block, f"{page.name}[block {i}]", "exec"), namespace)
        except Exception as exc:  # pragma: no cover - the message is the point
            raise AssertionError(
                f"{page.name} block {i} failed: {type(exc).__name__}: {exc}\n{block}"
            ) from exc


def test_generated_pages_are_current() -> None:
    res = subprocess.run(
        [sys.executable, "scripts/gen_docs.py", "--check"], cwd=REPO, capture_output=True, text=True
    )
    assert res.returncode == 0, res.stderr


@pytest.mark.skipif(
    shutil.which("mkdocs", path=os.path.dirname(sys.executable)) is None,
    reason="mkdocs not installed",
)
def test_mkdocs_builds_strict(tmp_path) -> None:
    mkdocs = shutil.which("mkdocs", path=os.path.dirname(sys.executable))
    res = subprocess.run(
        [mkdocs, "build", "--strict", "-q", "-d", str(tmp_path / "site")],
        cwd=REPO,
        capture_output=True,
        text=True,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
    )
    assert res.returncode == 0, res.stdout + res.stderr
