"""The documentation site builds with ``mkdocs build --strict``, and what it shows is current.

* the strict build passes (every nav page exists, every link and anchor resolves, no docstring
  warning), offline, in a few seconds;
* every page of the nav was built, and the API reference shows the docstrings of the code;
* ``docs/cli-reference.md`` is what ``python docs/gen_cli_reference.py`` writes from the CLI now;
* every formula is MathML in the built pages (no raw LaTeX, no script or font from the network),
  and, where a Chromium is on the ``PATH``, a headless Chromium with the network off renders it;
* no line of a code block is wider than the page shows, and the install commands are the ones
  that install what they say.

mkdocs, mkdocs-material, mkdocstrings and latex2mathml come with the ``docs`` extra, which
``test`` includes.
"""

from __future__ import annotations

import html
import importlib.util
import inspect
import json
import os
import re
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path
from types import ModuleType

import pytest
import yaml

from tests.headless_chromium import Browser, find_browser

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
    from wae_toolkit.numerics import kernels, ot1d
    from wae_toolkit.plugins import interfaces, registry, testing

    expected = {
        "reference/api.md": [api.fit, api.load],
        "reference/interfaces.md": [
            interfaces.Cost,
            interfaces.LatentPenalty,
            interfaces.Prior,
            interfaces.Network,
            interfaces.GaussianHead,
            interfaces.output_activation,
        ],
        "reference/numerics.md": [
            kernels.mmd2,
            kernels.imq_kernel,
            kernels.squared_distances,
            ot1d.sliced_wasserstein,
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


# -- formulas: MathML at build time, nothing from the network -----------------------------------

# What raw LaTeX looks like in a page's text: a command, a display delimiter, or a $...$ span.
RAW_LATEX = re.compile(r"\\[A-Za-z]+|\$\$|\\[()\[\]]|\$[^\s$]+\$")
MATH_PAGES = ["concepts.md", "penalties.md", "penalties/mmd-imq.md", "priors/sphere.md"]


class _PageParts(HTMLParser):
    """The text of a page outside formulas and code, the formulas, and what it loads from where."""

    HIDDEN = {"math", "code", "pre", "script", "style", "annotation"}

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.text: list[str] = []
        self.math_text: list[str] = []
        self.maths = 0
        self.loads: list[str] = []
        self.arithmatex = 0
        self._open: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        if tag == "math":
            self.maths += 1
        if "arithmatex" in (found.get("class") or "").split():
            self.arithmatex += 1
        if tag in ("script", "img", "iframe", "audio", "video", "source") and found.get("src"):
            self.loads.append(found["src"] or "")
        if tag == "link" and found.get("href") and found.get("rel") != "canonical":
            self.loads.append(found["href"] or "")
        if tag in self.HIDDEN:
            self._open.append(tag)

    def handle_endtag(self, tag: str) -> None:
        if tag in self._open:
            del self._open[len(self._open) - 1 - self._open[::-1].index(tag) :]

    def handle_data(self, data: str) -> None:
        if not self._open:
            self.text.append(data)
        elif "math" in self._open:
            self.math_text.append(data)


def _parts(path: Path) -> _PageParts:
    parts = _PageParts()
    parts.feed(path.read_text(encoding="utf-8"))
    return parts


def test_formulas_are_mathml_and_no_page_loads_from_the_network(site: Path) -> None:
    pages = sorted(site.rglob("*.html"))
    assert len(pages) >= 30
    for page in pages:
        name = page.relative_to(site).as_posix()
        parts = _parts(page)
        remote = [u for u in parts.loads if re.match(r"(?:[a-z]+:)?//", u, re.I)]
        assert not remote, f"{name} loads from the network: {remote}"
        text = " ".join(" ".join(parts.text).split())
        raw = RAW_LATEX.findall(text)
        assert not raw, f"{name} shows raw LaTeX instead of a formula: {raw[:5]}"
        assert not parts.arithmatex, f"{name} has a formula docs/mathml.py did not convert"
        leftover = re.findall(r"\\[A-Za-z]+", "".join(parts.math_text))
        assert not leftover, f"{name}: MathML with unconverted commands {leftover[:5]}"
    for page in MATH_PAGES:
        assert _parts(_built(site, page)).maths >= 3, f"{page} should show its formulas as MathML"
    concepts = _built(site, "concepts.md").read_text(encoding="utf-8")
    assert "&#x0211D;" in concepts or "\u211d" in concepts  # \mathbb{R} became the letter ℝ


def test_no_penalty_or_prior_page_writes_a_formula_in_ascii() -> None:
    # One notation: their formulas are LaTeX, as on Concepts. The ASCII formulas were indented
    # blocks, which Markdown turns into a code block without a language: <pre><code>.
    import markdown

    pages = [DOCS / "penalties.md", DOCS / "priors.md", DOCS / "plugins" / "energy.md"]
    pages += sorted((DOCS / "penalties").glob("*.md")) + sorted((DOCS / "priors").glob("*.md"))
    extensions = ["tables", "pymdownx.superfences", "pymdownx.arithmatex"]
    for page in pages:
        text = page.read_text(encoding="utf-8")
        built = markdown.markdown(text, extensions=extensions)
        assert 'class="arithmatex"' in built, f"{page.name} has no formula in LaTeX"
        plain = re.findall(r"<pre><code>(.{0,60})", built)
        assert not plain, f"{page.name} writes something as an indented block: {plain}"


def test_the_mathml_hook_converts_formulas_and_refuses_unknown_commands() -> None:
    spec = importlib.util.spec_from_file_location("mathml_hook", DOCS / "mathml.py")
    assert spec is not None and spec.loader is not None
    hook = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(hook)
    page = type("Page", (), {"file": type("File", (), {"src_uri": "x.md"})()})()
    built = hook.on_page_content(
        '<p>codes <span class="arithmatex">\\(z \\sim P_Z\\)</span></p>'
        '<div class="arithmatex">\\[\\inf_{a} \\mathbb{E}\\, a &lt; 1\\]</div>',
        page=page,
    )
    assert '<math xmlns="http://www.w3.org/1998/Math/MathML" display="inline">' in built
    assert '<math xmlns="http://www.w3.org/1998/Math/MathML" display="block">' in built
    assert "<mo>&#x0223C;</mo>" in built  # \sim, a relation (latex2mathml writes "~")
    assert "<munder><mo>inf</mo>" in built  # limits under inf in a display formula
    assert "<mo>&#x0003C;</mo>" in built and "arithmatex" not in built  # &lt; unescaped first
    from mkdocs.exceptions import PluginError

    with pytest.raises(PluginError, match=r"x\.md: the formula .*\\foo"):
        hook.on_page_content('<span class="arithmatex">\\(\\foo x\\)</span>', page=page)


# The formulas a browser must show rendered: JSON of the <article>'s visible text, its MathML
# elements as the DOM sees them, and how the browser lays them out.
_RENDERED = """JSON.stringify((() => {
  const article = document.querySelector("article");
  const maths = [...document.getElementsByTagNameNS("http://www.w3.org/1998/Math/MathML", "math")];
  return {
    text: article.innerText,
    maths: maths.length,
    displays: [...new Set(maths.map((m) => getComputedStyle(m).display))],
    empty: maths.filter((m) => {
      const box = m.getBoundingClientRect();
      return !(box.width > 0 && box.height > 0);
    }).length,
  };
})())"""


# How many characters of a code block's font fit on one of its lines.
_CODE_CAPACITY = """(() => {
  const code = document.querySelector("article pre > code");
  const style = getComputedStyle(code);
  const probe = document.createElement("span");
  probe.style.whiteSpace = "pre";
  probe.textContent = "x".repeat(100);
  code.appendChild(probe);
  const perChar = probe.getBoundingClientRect().width / 100;
  probe.remove();
  const inner = code.clientWidth - parseFloat(style.paddingLeft) - parseFloat(style.paddingRight);
  return inner / perChar;
})()"""


def test_a_headless_chromium_offline_renders_the_formulas(site: Path) -> None:
    executable = find_browser()
    if executable is None:
        pytest.skip(
            "no Chromium on the PATH (Debian: apt-get install chromium); the built HTML is "
            "checked offline by test_formulas_are_mathml_and_no_page_loads_from_the_network"
        )
    with Browser(executable) as browser:
        for page in MATH_PAGES:
            path = _built(site, page)
            browser.open(path)
            shown = json.loads(browser.evaluate(_RENDERED))
            raw = RAW_LATEX.findall(shown["text"].replace("\n", " "))
            assert not raw, f"Chromium shows raw LaTeX on {page}: {raw[:5]}"
            assert shown["maths"] == _parts(path).maths >= 3, (page, shown["maths"])
            # Chromium lays out MathML as "math"/"block math"; an unknown element would be inline.
            assert set(shown["displays"]) <= {"math", "inline math", "block math"}, shown
            assert shown["empty"] == 0, f"{shown['empty']} formulas on {page} have no size"
        # A code line of CODE_WIDTH characters fits the content column of a 1280-pixel screen.
        browser.set_viewport(1280, 900)
        browser.open(_built(site, "getting-started.md"))
        fits = browser.evaluate(_CODE_CAPACITY)
        assert fits >= CODE_WIDTH, f"a code line of {fits:.1f} characters fills the column"
        remote = [u for u in browser.requested_urls() if not u.startswith(("file:", "data:"))]
    assert not remote, f"the pages asked the network for {remote}"


# -- code blocks fit the page, install commands install what they say -------------------------

#: The widest code line that the content column of the site shows whole on a desktop screen.
CODE_WIDTH = 88
#: Pages whose code blocks other work edits and that still have wider lines (the site's CSS
#: wraps them, so nothing is clipped): performance.md's benchmark tables and two examples of
#: cli.md's `wae run` section.
WIDE_PAGES = {"performance.md", "cli.md"}


def _code_lines(text: str) -> list[tuple[int, str]]:
    """The lines inside fenced code blocks, with their line numbers."""
    lines, fence = [], None
    for number, line in enumerate(text.splitlines(), 1):
        match = re.match(r"\s*(`{3,}|~{3,})", line)
        if match and fence is None:
            fence = match.group(1)
        elif match and line.strip().startswith(fence or "\0"):
            fence = None
        elif fence is not None:
            lines.append((number, line))
    return lines


def test_no_code_line_is_wider_than_the_page() -> None:
    wide = [
        f"{page.relative_to(DOCS)}:{number} ({len(line)} characters)"
        for page in sorted(DOCS.rglob("*.md"))
        if page.name not in WIDE_PAGES
        for number, line in _code_lines(page.read_text(encoding="utf-8"))
        if len(line) > CODE_WIDTH
    ]
    assert not wide, f"code lines wider than {CODE_WIDTH} characters (wrap them): {wide}"
    css = (DOCS / "stylesheets" / "extra.css").read_text(encoding="utf-8")
    assert "white-space: pre-wrap" in css  # and the site wraps what is left instead of clipping


def test_the_cpu_install_installs_the_cpu_build() -> None:
    # PyPI's torch wheel for Linux is the CUDA build: the CPU tab names PyTorch's CPU index.
    page = (DOCS / "getting-started.md").read_text(encoding="utf-8")
    tabs = dict(re.findall(r'=== "([^"]+)"\n(.*?)(?=\n=== |\n\S)', page, flags=re.S))
    assert {"CPU", "CUDA GPU", "make"} <= set(tabs), sorted(tabs)
    commands = {
        name: [line.strip() for _, line in _code_lines(tab) if "install torch" in line]
        for name, tab in tabs.items()
    }
    # pip install torch==2.13.0 alone takes PyPI's CUDA build on Linux: every tab names an index.
    for name, lines in commands.items():
        assert lines and all("--index-url" in line for line in lines), (name, lines)
    for name in ("CPU", "make"):
        assert all(
            x.endswith("--index-url https://download.pytorch.org/whl/cpu") for x in commands[name]
        )
    assert all("download.pytorch.org/whl/cu" in x for x in commands["CUDA GPU"])


def test_the_release_files_agree_on_the_version() -> None:
    from wae_toolkit import __version__

    pyproject = (ROOT / "pyproject.toml").read_text(encoding="utf-8")  # tomllib needs 3.11
    version = re.search(r'^version = "([^"]+)"$', pyproject, flags=re.M)
    assert version and version.group(1) == __version__, "pyproject.toml and _version.py differ"
    changelog = (ROOT / "CHANGELOG.md").read_text(encoding="utf-8")
    assert f"## [{__version__}]" in changelog, f"CHANGELOG.md has no section for {__version__}"
    assert 'license = { text = "MIT" }' in pyproject
    assert (ROOT / "LICENSE").read_text(encoding="utf-8").startswith("MIT License")
    urls = re.search(r"^\[project\.urls\]\n((?:.+\n)+)", pyproject, flags=re.M)
    assert urls, "pyproject.toml has no [project.urls]"
    for name, target in re.findall(r'^(\w+) = "([^"]+)"$', urls.group(1), flags=re.M):
        assert target.startswith("https://") or (ROOT / target).is_file(), (name, target)
