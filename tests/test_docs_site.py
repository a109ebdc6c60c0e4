"""The documentation site builds with ``mkdocs build --strict``, and what it shows is current.

* the strict build passes (every nav page exists, every link and anchor resolves, no docstring
  warning), offline, in a few seconds;
* every page of the nav was built, and the API reference shows the docstrings of the code;
* ``docs/cli-reference.md`` is what ``python docs/gen_cli_reference.py`` writes from the CLI now.

mkdocs, mkdocs-material and mkdocstrings come with the ``docs`` extra, which ``test`` includes.
"""

from __future__ import annotations

import html
import importlib.util
import inspect
import os
import re
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
REGENERATE = "python docs/gen_cli_reference.py"


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The site built once for this module, strictly, into a temporary folder."""
    out = tmp_path_factory.mktemp("site")
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1", "PYTHONDONTWRITEBYTECODE": "1"}
    proc = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(out)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, (
        f"mkdocs build --strict failed (exit {proc.returncode}):\n{proc.stdout}\n{proc.stderr}"
    )
    return out


def _nav_pages(items: list) -> list[str]:
    pages = []
    for item in items:
        value = next(iter(item.values())) if isinstance(item, dict) else item
        if isinstance(value, list):
            pages += _nav_pages(value)
        elif not re.match(r"[a-z]+://", value):
            pages.append(value)
    return pages


def _built(site: Path, page: str) -> Path:
    """Where mkdocs (directory URLs) writes ``page``."""
    stem = page[: -len(".md")]
    if stem == "index" or stem.endswith("/index"):
        return site / stem.removesuffix("index") / "index.html"
    return site / stem / "index.html"


def _text(path: Path) -> str:
    """The text of a built page without its tags, whitespace collapsed."""
    body = re.sub(r"<[^>]+>", " ", path.read_text(encoding="utf-8"))
    return " ".join(html.unescape(body).split())


def _squeeze(text: str) -> str:
    """``text`` without whitespace, to compare prose across tag boundaries."""
    return "".join(text.split())


def _first_line(obj: object) -> str:
    return (inspect.getdoc(obj) or "").strip().splitlines()[0]


def test_strict_build_passes_and_builds_every_nav_page(site: Path) -> None:
    config = yaml.safe_load((ROOT / "mkdocs.yml").read_text(encoding="utf-8"))
    pages = _nav_pages(config["nav"])
    assert len(pages) >= 30, pages
    for required in ("getting-started.md", "concepts.md", "cli-reference.md", "tracking.md"):
        assert required in pages, f"{required} is missing from the nav of mkdocs.yml"
    missing = [p for p in pages if not _built(site, p).is_file()]
    assert not missing, f"nav pages that were not built: {missing}"
    on_disk = {p.relative_to(DOCS).as_posix() for p in DOCS.rglob("*.md")}
    assert on_disk == set(pages), (
        f"pages not in the nav: {sorted(on_disk - set(pages))}; "
        f"nav entries without a page: {sorted(set(pages) - on_disk)}"
    )


def test_api_reference_renders_the_docstrings(site: Path) -> None:
    from wae_toolkit import api, errors
    from wae_toolkit.assembly import model
    from wae_toolkit.config.settings import RunConfig
    from wae_toolkit.plugins import interfaces, registry, testing

    expected = {
        "reference/api.md": [api.fit, api.load],
        "reference/interfaces.md": [
            interfaces.Cost,
            interfaces.LatentPenalty,
            interfaces.Prior,
            interfaces.Network,
        ],
        "reference/model.md": [model.WAE, model.WAE.interpolate],
        "reference/registry.md": [registry.create, registry.list_plugins],
        "reference/config.md": [RunConfig],
        "reference/errors.md": [errors.WaeError, errors.UsageError],
        "reference/testing.md": [testing.check_penalty, testing.check_prior],
    }
    for page, objects in expected.items():
        text = _text(_built(site, page))
        squeezed = _squeeze(text)
        for obj in objects:
            # Sphinx roles are rendered as links: compare the words around them.
            for piece in re.split(r":\w+:`[^`]*`", _first_line(obj)):
                assert _squeeze(piece.replace("`", "")) in squeezed, (
                    f"{page} does not show the docstring of {obj.__qualname__}: {piece!r}"
                )
        leftover = re.findall(r":(?:func|class|meth|mod|attr|data):`", text)
        assert not leftover, f"{page} shows raw Sphinx roles: {leftover[:3]}"
    fit_page = _text(_built(site, "reference/api.md"))
    assert "Parameters:" in fit_page and "run settings by name" in fit_page  # fit's Args section


def _generator() -> ModuleType:
    path = DOCS / "gen_cli_reference.py"
    spec = importlib.util.spec_from_file_location("gen_cli_reference", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_cli_reference_is_current() -> None:
    current = (DOCS / "cli-reference.md").read_text(encoding="utf-8")
    assert current == _generator().render(), (
        f"docs/cli-reference.md is out of date with the wae command line: run `{REGENERATE}` "
        "to update it."
    )


def test_cli_reference_lists_every_command() -> None:
    import typer

    from wae_toolkit.cli.app import app

    root = typer.main.get_command(app)
    ctx = root.context_class(root, info_name="wae")
    text = (DOCS / "cli-reference.md").read_text(encoding="utf-8")
    for name in root.list_commands(ctx):  # type: ignore[attr-defined]
        assert f"`wae {name}`" in text, f"`wae {name}` is missing: run `{REGENERATE}`"
