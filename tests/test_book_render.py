"""Render every page of the built book in headless Chromium and check what a reader would see.

The book must already be built (``jupyter-book build .``); a missing ``_build/html`` is a failure,
not a skip.  The only skip is a machine without Chromium.

For each page listed in ``_toc.yml`` the test loads the built HTML from disk with networking
disabled (no host name resolves), lets MathJax run, dumps the resulting DOM and checks that

* every math element Sphinx wrote was typeset by MathJax (one ``mjx-container`` per element, no
  ``mjx-merror``), and no raw TeX delimiters or environments are left in the visible text;
* every ``<img>`` points at a file that exists and decodes to an image of non-zero size, and the page
  shows at least as many images as its source notebook stores figures;
* nothing on the page is fetched from the network (no remote ``src``/``href`` on scripts, styles,
  images or fonts), and the local MathJax script the page loads exists.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import tempfile
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlsplit

import matplotlib.image
import pytest
import yaml

BOOK_ROOT = Path(__file__).resolve().parents[1]
HTML_DIR = BOOK_ROOT / "_build" / "html"
TOC_FILE = BOOK_ROOT / "_toc.yml"
CHROMIUM_CANDIDATES = ("chromium", "chromium-browser", "google-chrome")

# TeX that MathJax should have replaced; seeing any of these in visible text means it did not run.
RAW_TEX_PATTERNS = [
    re.compile(r"\$\$"),
    re.compile(r"\\\("),
    re.compile(r"\\\["),
    re.compile(r"\\begin\{"),
    re.compile(r"\\(frac|sum|prod|int|beta|theta|tau|mathbf|boldsymbol|left|right)\b"),
    re.compile(r"(?<![\w$])\$[^$\s][^$]*[\\^_][^$]*\$"),  # unparsed inline $...$ with TeX inside
]
# Elements whose text is code, script or MathJax output, not prose to be scanned for raw TeX;
# also API signatures (class "sig"), whose default values are Python literals.
NON_PROSE_TAGS = {"script", "style", "pre", "code", "mjx-container", "textarea", "noscript", "svg"}
NON_PROSE_CLASSES = {"sig", "highlight", "literal"}
VOID_TAGS = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source",
             "track", "wbr"}


def toc_docnames(toc: dict) -> list[str]:
    """All document names in a Jupyter Book ``_toc.yml`` (root first, then in reading order)."""
    names = [toc["root"]]

    def walk(node: dict) -> None:
        for key in ("parts", "chapters", "sections"):
            for child in node.get(key, []) or []:
                if "file" in child:
                    names.append(child["file"])
                walk(child)

    walk(toc)
    return [str(Path(name).with_suffix("")) for name in names]


def find_chromium() -> str | None:
    for name in CHROMIUM_CANDIDATES:
        path = shutil.which(name)
        if path:
            return path
    return None


class PageScan(HTMLParser):
    """Collect visible prose text, image sources, remote references and MathJax counts."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.stack: list[tuple[str, bool]] = []  # (tag, is non-prose)
        self.prose: list[str] = []
        self.images: list[str] = []
        self.remote: list[str] = []
        self.scripts: list[str] = []
        self.math_elements = 0
        self.mjx_containers = 0
        self.mjx_errors = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = {key: value or "" for key, value in attrs}
        classes = attributes.get("class", "").split()
        if "math" in classes and tag in {"span", "div"}:
            self.math_elements += 1
        if tag == "mjx-container":
            self.mjx_containers += 1
        if tag == "mjx-merror":
            self.mjx_errors += 1
        if tag == "img":
            self.images.append(attributes.get("src", ""))
        if tag == "script" and attributes.get("src"):
            self.scripts.append(attributes["src"])
        for key in ("src", "href"):
            value = attributes.get(key, "")
            loads_resource = tag in {"script", "img", "iframe", "source"} or (
                tag == "link" and attributes.get("rel", "") in {"stylesheet", "preload", "icon"}
            )
            if loads_resource and re.match(r"^(https?:)?//", value):
                self.remote.append(f"<{tag} {key}={value}>")
        if tag not in VOID_TAGS:
            non_prose = (tag in NON_PROSE_TAGS or tag.startswith("mjx-")
                         or bool(NON_PROSE_CLASSES.intersection(classes)))
            self.stack.append((tag, non_prose))

    def handle_endtag(self, tag: str) -> None:
        if tag in VOID_TAGS:
            return
        # Pop back to the matching tag; tolerate sloppy nesting.
        for index in range(len(self.stack) - 1, -1, -1):
            if self.stack[index][0] == tag:
                del self.stack[index:]
                return

    def handle_data(self, data: str) -> None:
        if not any(non_prose for _, non_prose in self.stack):
            self.prose.append(data)


def scan(html: str) -> PageScan:
    parser = PageScan()
    parser.feed(html)
    parser.close()
    return parser


def render_dom(chromium: str, page: Path) -> str:
    """The page's DOM after scripts ran, as serialised by headless Chromium."""
    with tempfile.TemporaryDirectory() as profile:
        command = [
            chromium, "--headless", "--no-sandbox", "--disable-gpu",
            "--disable-background-networking", "--no-first-run", "--disable-component-update",
            "--disable-sync", "--disable-extensions", f"--user-data-dir={profile}",
            # No name resolves: the page must render from local files alone.
            "--host-resolver-rules=MAP * ~NOTFOUND",
            "--virtual-time-budget=5000", "--dump-dom", page.as_uri(),
        ]
        result = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
    if result.returncode != 0 or "<html" not in result.stdout:
        raise AssertionError(
            f"Chromium failed on {page} (exit {result.returncode}): {result.stderr[-2000:]}"
        )
    return result.stdout


def local_file(page: Path, url: str) -> Path | None:
    """The file a page-relative URL points at, or None for data: URIs."""
    parts = urlsplit(url)
    if parts.scheme == "data":
        return None
    if parts.scheme == "file":
        return Path(unquote(parts.path))
    return (page.parent / unquote(parts.path)).resolve()


def stored_figure_count(docname: str) -> int:
    """Number of image outputs stored in the page's source notebook (0 for Markdown pages)."""
    source = BOOK_ROOT / f"{docname}.ipynb"
    if not source.exists():
        return 0
    notebook = json.loads(source.read_text(encoding="utf-8"))
    return sum(
        1
        for cell in notebook["cells"]
        for output in cell.get("outputs", [])
        if {"image/png", "image/svg+xml"}.intersection(output.get("data", {}))
    )


def _docnames() -> list[str]:
    if not TOC_FILE.exists():
        return []
    return toc_docnames(yaml.safe_load(TOC_FILE.read_text()))


@pytest.fixture(scope="module")
def chromium() -> str:
    path = find_chromium()
    if path is None:
        pytest.skip("Chromium is not installed; the rendered-page checks need a real browser")
    return path


@pytest.fixture(scope="module")
def html_dir() -> Path:
    if not (HTML_DIR / "index.html").exists():
        pytest.fail(
            f"{HTML_DIR} holds no built book; build it first with "
            "`jupyter-book build . -W --keep-going`"
        )
    return HTML_DIR


def test_toc_lists_pages() -> None:
    assert _docnames(), f"no pages found in {TOC_FILE}"


@pytest.mark.parametrize("docname", _docnames())
def test_page_renders(docname: str, chromium: str, html_dir: Path) -> None:
    page = html_dir / f"{docname}.html"
    assert page.exists(), f"{docname} is in _toc.yml but {page} was not built"

    static = scan(page.read_text(encoding="utf-8"))
    assert not static.remote, f"{docname} loads resources from the network: {static.remote}"
    mathjax_scripts = [src for src in static.scripts if "mathjax" in src.lower()]
    if static.math_elements:
        assert mathjax_scripts, f"{docname} has math but loads no MathJax script"
    for src in mathjax_scripts:
        target = local_file(page, src)
        assert target is not None and target.is_file(), (
            f"{docname}: MathJax script {src} does not exist (run scripts/fetch_mathjax.sh)"
        )

    rendered = scan(render_dom(chromium, page))
    if static.math_elements:
        assert rendered.mjx_containers >= static.math_elements, (
            f"{docname}: {static.math_elements} math elements but only "
            f"{rendered.mjx_containers} were typeset by MathJax"
        )
    assert rendered.mjx_errors == 0, f"{docname}: MathJax reported {rendered.mjx_errors} TeX errors"

    prose = " ".join(rendered.prose)
    for pattern in RAW_TEX_PATTERNS:
        match = pattern.search(prose)
        assert match is None, (
            f"{docname}: untypeset TeX {match.group(0)!r} in "
            f"...{prose[max(0, match.start() - 80):match.end() + 80]}..."
        )

    figures = stored_figure_count(docname)
    assert len(rendered.images) >= figures, (
        f"{docname}: the stored notebook has {figures} figures but the built page shows "
        f"{len(rendered.images)} (was the book executed with a non-inline matplotlib backend?)"
    )
    for src in rendered.images:
        assert src, f"{docname}: <img> without src"
        target = local_file(page, src)
        if target is None:
            continue
        assert target.is_file(), f"{docname}: image {src} is missing ({target})"
        if target.suffix.lower() == ".svg":
            assert "<svg" in target.read_text(encoding="utf-8", errors="replace")[:2000]
            continue
        pixels = matplotlib.image.imread(os.fspath(target))
        assert pixels.shape[0] > 0 and pixels.shape[1] > 0, f"{docname}: image {src} is empty"
