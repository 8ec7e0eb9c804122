"""The docs cannot drift from the code: their Python blocks run, generated pages are current,
and mkdocs builds them with --strict (broken links fail)."""

from __future__ import annotations

import importlib
import importlib.util
import os
import pathlib
import re
import shutil
import subprocess
import sys

import pytest

REPO = pathlib.Path(__file__).resolve().parents[1]
PAGES = sorted((REPO / "docs").rglob("*.md")) + [REPO / "README.md"]
BLOCK = re.compile(r"```python\n(.*?)```", re.S)


def _page_id(page: pathlib.Path) -> str:
    return str(page.relative_to(REPO / "docs")) if page.parent != REPO else page.name


# What a page's blocks import that this environment provides differently from a user's:
# timm lives off the import path here (tests/real_packages.py says why).
SETUP = {"recipes/timm.md": "import_timm"}


@pytest.mark.parametrize("page", PAGES, ids=_page_id)
def test_python_blocks_run(page: pathlib.Path) -> None:
    setup = SETUP.get(_page_id(page))
    if setup is not None:
        import real_packages

        getattr(real_packages, setup)()
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
@pytest.mark.skipif(
    importlib.util.find_spec("mkdocstrings_handlers") is None,
    reason="mkdocstrings-python not installed (the dev extra has it)",
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
    # No docstring or generated page means emphasis: an <em> or <strong> there is a `*` or
    # `_` Markdown took for markup ("(out, in, *k) ... (*k, in, out)", "gain**2").
    site = tmp_path / "site"
    pages = [*site.glob("api/*/index.html"), site / "catalog/index.html", site / "policy/index.html"]
    assert len(pages) >= 6
    for html in pages:
        text = html.read_text()
        found = re.findall(r"<(em|strong)>(.{0,60}?)</\1>", text)
        assert not found, f"{html.relative_to(site)}: emphasis from unescaped markup: {found[:3]}"
        # A doctest's ">>>" is a nested blockquote in Markdown: docstrings use fenced code.
        assert "<blockquote>" not in text, f"{html.relative_to(site)}: a '>>>' block"
    # Every public name has an entry (a function named like its submodule is read as the
    # module unless its page names it from the submodule: see docs/api/*.md).
    for module, page in [("initspec", "initspec"), ("initspec.backend", "backend"),
                         ("initspec_torch", "initspec_torch"), ("initspec_jax", "initspec_jax")]:
        text = (site / "api" / page / "index.html").read_text()
        ids = {i.rsplit(".", 1)[-1] for i in re.findall(r'<h[23] id="([^"]+)"', text)}
        missing = sorted(set(importlib.import_module(module).__all__) - ids)
        assert not missing, f"api/{page}: no entry for {module}.{', '.join(missing)}"


def test_readme_error_text_is_the_real_one() -> None:
    """The README quotes an error message; it must be what initspec says."""
    import initspec

    with pytest.raises(initspec.InitSpecError) as info:
        initspec.parse({"kind": "normal", "std": -1})
    readme = (REPO / "README.md").read_text()
    assert f"`{info.value}` (for `initspec.parse({{\"kind\": \"normal\", \"std\": -1}})`)" in readme


def test_docs_link_nothing_outside_the_repository() -> None:
    for page in PAGES:
        for target in re.findall(r"\]\(([^)\s]+)\)|`(\.\./[^`]+)`", page.read_text()):
            link = next(t for t in target if t)
            if "://" in link or link.startswith("#"):
                continue
            path = (page.parent / link.split("#")[0]).resolve()
            assert path.is_relative_to(REPO), f"{_page_id(page)} links {link}, outside the repository"


def test_every_policy_field_is_described() -> None:
    """The policy reference's "meaning" column is each field's attribute docstring: a field
    added without one would show an empty cell."""
    spec = importlib.util.spec_from_file_location("gen_docs", REPO / "scripts" / "gen_docs.py")
    assert spec is not None and spec.loader is not None
    gen_docs = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(gen_docs)
    models = gen_docs.policy_models()
    assert {cls.__name__ for cls, _ in models} >= {"Policy", "Rule", "Match", "DepthScale"}
    bare = [
        f"{cls.__name__}.{name}"
        for cls, _ in models
        for name, info in cls.model_fields.items()
        if not info.description
    ]
    assert not bare, f"policy fields without a docstring (initspec/policy.py): {bare}"
