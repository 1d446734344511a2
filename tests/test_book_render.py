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
  images or fonts), and the local MathJax script the page loads exists;
* no bookkeeping is on show: the text ``record(`` appears nowhere on the page;
* every figure of a lesson sits in a numbered ``<figure>`` with a caption, and its image has alt text
  that describes it (not a file path, not the empty string);
* every notebook page offers its notebook for download, and the link leads to the notebook (a graded
  exercise set offers none: its source holds the solutions).

A second test loads every page at a width of 1,200 CSS pixels and checks that nothing scrolls
sideways: neither the page itself nor any code block, output or equation in it.  A third loads them at
420 px, a phone's width: the page itself still does not scroll sideways, whatever is wider than the
column scrolls inside its own box (nothing is cut off at the edge), and no output wraps its lines.
"""

from __future__ import annotations

import html
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
import nbformat
import pytest
import yaml

from glmmteach.bookbuild import is_graded

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
        self.image_alts: list[str] = []
        self.images_in_figures = 0
        self.figure_depth = 0
        self.numbered_captions = 0
        self.links: list[str] = []
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
            self.image_alts.append(attributes.get("alt", ""))
            self.images_in_figures += self.figure_depth > 0
        if tag == "figure":
            self.figure_depth += 1
        if tag == "span" and "caption-number" in classes and self.figure_depth:
            self.numbered_captions += 1
        if tag == "a" and attributes.get("href"):
            self.links.append(attributes["href"])
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
        if tag == "figure" and self.figure_depth:
            self.figure_depth -= 1
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


def render_dom(chromium: str, page: Path, query: str = "") -> str:
    """The page's DOM after scripts ran, as serialised by headless Chromium (``query``: "?q=..." for a search)."""
    with tempfile.TemporaryDirectory() as profile:
        command = [
            chromium, "--headless", "--no-sandbox", "--disable-gpu",
            "--disable-background-networking", "--no-first-run", "--disable-component-update",
            "--disable-sync", "--disable-extensions", f"--user-data-dir={profile}",
            # No name resolves: the page must render from local files alone.
            "--host-resolver-rules=MAP * ~NOTFOUND",
            "--virtual-time-budget=5000", "--dump-dom", page.as_uri() + query,
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

    # Bookkeeping stays out of sight: on a notebook page the cells that keep values for the text
    # are removed, so not even the code of a `record(...)` call may be left in it. (The API
    # reference documents methods of that name; it is not a notebook.)
    if (BOOK_ROOT / f"{docname}.ipynb").exists():
        visible_html = re.sub(r"<script\b.*?</script>", "", page.read_text(encoding="utf-8"), flags=re.S)
        assert "record(" not in visible_html, f"{docname}: the page shows a record(...) call"

    # Figures: numbered captions and alt text that describes them.
    if figures:
        assert static.images_in_figures >= figures, (
            f"{docname}: {figures} figures but only {static.images_in_figures} images inside <figure>"
        )
        assert static.numbered_captions >= figures, (
            f"{docname}: {figures} figures but {static.numbered_captions} numbered captions"
        )
    for src, alt in zip(static.images, static.image_alts, strict=True):
        if "logo" in src:
            continue
        assert len(alt.split()) >= 5 and not re.search(r"\.(png|svg|jpe?g)\b|/", alt), (
            f"{docname}: image {src} has alt text {alt!r}, which does not describe it"
        )

    # A notebook page offers its notebook for download, except a graded exercise set, whose source
    # holds the solutions that the public book keeps out of sight.
    notebook = BOOK_ROOT / f"{docname}.ipynb"
    if notebook.exists():
        downloads = [href for href in static.links if href.endswith(f"{Path(docname).name}.ipynb")]
        if is_graded(nbformat.read(notebook, as_version=4)):
            assert not downloads, f"{docname}: a graded set's page links its source: {downloads}"
            assert not (html_dir / "_sources" / f"{docname}.ipynb").exists(), (
                f"{docname}: the graded set's source (with solutions) is in the built book"
            )
        else:
            assert downloads, f"{docname}: no link to download the notebook"
        for href in downloads:
            target = local_file(page, href)
            assert target is not None and target.is_file(), f"{docname}: download link {href} is broken"
            json.loads(target.read_text(encoding="utf-8"))  # a notebook, not an error page


# Loads each page in a frame WIDTH pixels wide of one wrapper page, lets MathJax run, and reports the
# page's own horizontal overflow, every element that scrolls (or spills) sideways, what spills with no
# box to scroll it, and the outputs whose lines wrap. The frames need
# --disable-web-security: pages on file:// URLs are otherwise opaque to the wrapper's script.
OVERFLOW_SCRIPT = """
const results = {};
function describe(el) {
  const text = (el.textContent || "").replace(/\\s+/g, " ").trim().slice(0, 70);
  return `${el.tagName.toLowerCase()}.${(el.className || "").toString().split(" ")[0]}: ` +
         `${el.scrollWidth} > ${el.clientWidth} px: ${text}`;
}
function measure(url) {
  return new Promise((resolve) => {
    const frame = document.createElement("iframe");
    frame.style.width = "WIDTHpx";
    frame.style.height = "900px";
    frame.onload = () => setTimeout(() => {
      try {
        const doc = frame.contentDocument;
        const root = doc.documentElement;
        const article = doc.querySelector(".bd-article") || doc.body;
        const wide = [];
        for (const el of article.querySelectorAll("*")) {
          const style = frame.contentWindow.getComputedStyle(el);
          const scrolls = ["auto", "scroll"].includes(style.overflowX);
          if (scrolls && el.scrollWidth > el.clientWidth + 1) wide.push(describe(el));
        }
        const right = article.getBoundingClientRect().right;
        const spills = [], cut = [];
        for (const el of article.querySelectorAll("mjx-container, pre, table, img")) {
          if (el.getBoundingClientRect().right <= right + 1) continue;
          spills.push("spills: " + describe(el));
          // inside a box that scrolls sideways (a table's, an equation's), it is reachable, not cut off
          let box = el.parentElement;
          while (box && box !== article &&
                 !["auto", "scroll"].includes(frame.contentWindow.getComputedStyle(box).overflowX)) {
            box = box.parentElement;
          }
          if (!box || box === article) cut.push(describe(el));
        }
        // an output whose lines wrap: its box is taller than its lines (a wrapped table cannot be read)
        const wrapped = [];
        for (const pre of article.querySelectorAll("div.cell_output pre")) {
          const style = frame.contentWindow.getComputedStyle(pre);
          const lineHeight = parseFloat(style.lineHeight) || 1.2 * parseFloat(style.fontSize);
          const height = pre.clientHeight - parseFloat(style.paddingTop) - parseFloat(style.paddingBottom);
          const lines = pre.textContent.replace(/\\n$/, "").split("\\n").length;
          if (Math.round(height / lineHeight) > lines) wrapped.push(describe(pre));
        }
        resolve({scrollWidth: root.scrollWidth, clientWidth: root.clientWidth, wide: wide.concat(spills),
                 cut: cut, wrapped: wrapped});
      } catch (error) {
        resolve({error: String(error)});
      }
      frame.remove();
    }, 4000);
    frame.src = url;
    document.body.appendChild(frame);
  });
}
(async () => {
  for (const url of PAGES) results[url] = await measure(url);
  const out = document.createElement("pre");
  out.id = "overflow-results";
  out.textContent = JSON.stringify(results);
  document.body.appendChild(out);
})();
"""
PAGE_WIDTH = 1200
PHONE_WIDTH = 420  # a phone held upright (issue 17 A26: pages looked at in a browser at 1,280 and 420 px)


def measure_layout(chromium: str, html_dir: Path, width: int) -> dict[str, dict]:
    """Horizontal overflow and wrapped outputs of every page at ``width`` px, measured in one Chromium run."""
    pages = {docname: (html_dir / f"{docname}.html").as_uri() for docname in _docnames()}
    script = (OVERFLOW_SCRIPT.replace("WIDTH", str(width))
              .replace("PAGES", json.dumps(list(pages.values()))))
    with tempfile.TemporaryDirectory() as folder:
        wrapper = Path(folder) / "measure.html"
        wrapper.write_text(f"<!doctype html><html><body><script>{script}</script></body></html>")
        command = [
            chromium, "--headless", "--no-sandbox", "--disable-gpu",
            "--disable-background-networking", "--no-first-run", "--disable-component-update",
            "--disable-sync", "--disable-extensions", f"--user-data-dir={folder}/profile",
            "--disable-web-security", "--allow-file-access-from-files",
            "--host-resolver-rules=MAP * ~NOTFOUND", f"--window-size={width + 100},1000",
            f"--virtual-time-budget={6000 * len(pages)}", "--dump-dom", wrapper.as_uri(),
        ]
        result = subprocess.run(command, capture_output=True, text=True, timeout=900, check=False)
    match = re.search(r'<pre id="overflow-results">(.*?)</pre>', result.stdout, re.S)
    assert match, f"the overflow measurement did not finish: {result.stderr[-2000:]}"
    measured = json.loads(html.unescape(match.group(1)))
    return {docname: measured.get(url, {"error": "not measured"}) for docname, url in pages.items()}


@pytest.fixture(scope="module")
def overflow(chromium: str, html_dir: Path) -> dict[str, dict]:
    """Horizontal overflow of every page at 1,200 px."""
    return measure_layout(chromium, html_dir, PAGE_WIDTH)


@pytest.fixture(scope="module")
def phone_layout(chromium: str, html_dir: Path) -> dict[str, dict]:
    """Horizontal overflow and wrapped outputs of every page at 420 px."""
    return measure_layout(chromium, html_dir, PHONE_WIDTH)


@pytest.mark.parametrize("docname", _docnames())
def test_no_horizontal_scrolling_at_1200px(docname: str, overflow: dict[str, dict]) -> None:
    measured = overflow[docname]
    assert "error" not in measured, f"{docname}: {measured['error']}"
    assert measured["scrollWidth"] <= measured["clientWidth"], (
        f"{docname}: the page is {measured['scrollWidth']} px wide in a "
        f"{measured['clientWidth']} px window"
    )
    assert not measured["wide"], (
        f"{docname}: at {PAGE_WIDTH} px these scroll or spill sideways:\n" + "\n".join(measured["wide"])
    )


@pytest.mark.parametrize("docname", _docnames())
def test_phone_width_scrolls_boxes_not_the_page(docname: str, phone_layout: dict[str, dict]) -> None:
    """At 420 px the page itself does not scroll sideways; what is wider than the column (a code cell, a
    printed table, a data frame, an equation) scrolls inside its own box, and no output wraps its lines:
    a wrapped lme4-style summary() or analysis-of-deviance table cannot be read (issue 17 A26)."""
    measured = phone_layout[docname]
    assert "error" not in measured, f"{docname}: {measured['error']}"
    assert measured["scrollWidth"] <= measured["clientWidth"], (
        f"{docname}: the page is {measured['scrollWidth']} px wide in a {measured['clientWidth']} px window"
    )
    assert not measured["cut"], (
        f"{docname}: at {PHONE_WIDTH} px these are cut off at the column's edge (no box scrolls):\n"
        + "\n".join(measured["cut"])
    )
    assert not measured["wrapped"], (
        f"{docname}: at {PHONE_WIDTH} px these outputs wrap their lines instead of scrolling:\n"
        + "\n".join(measured["wrapped"])
    )


def test_glossary_references_and_version(html_dir: Path) -> None:
    """The publication pages (issue 17 D): glossary terms are link targets, the References page lists every
    work of references.bib, each citation in a page links to an entry there, and the footer names the version."""
    import pybtex.database

    from glmmteach import __version__

    glossary = (html_dir / "lessons" / "glossary.html").read_text(encoding="utf-8")
    assert len(re.findall(r'<dt id="term-', glossary)) >= 25, "the glossary page lists fewer than 25 terms"
    references = (html_dir / "lessons" / "references.html").read_text(encoding="utf-8")
    entries = set(re.findall(r'<div class="citation" id="([^"]+)"', references))
    assert len(entries) == len(pybtex.database.parse_file(BOOK_ROOT / "references.bib").entries)
    for docname in _docnames():
        page = (html_dir / f"{docname}.html").read_text(encoding="utf-8")
        for target in re.findall(r'href="(?:[\w./]*/)?references\.html#([^"]+)"', page):
            assert target in entries, f"{docname}: a citation links to #{target}, not an entry of the References"
        assert f"glmmteach {__version__}" in page, f"{docname}: the footer does not name version {__version__}"


EXERCISE_PAGES = [name for name in _docnames() if name.startswith("exercises/")]


@pytest.mark.parametrize("docname", EXERCISE_PAGES)
def test_exercises_are_numbered_within_their_set(docname: str, html_dir: Path) -> None:
    page = (html_dir / f"{docname}.html").read_text(encoding="utf-8")
    numbers = [int(n) for n in re.findall(r'<span class="caption-number">Exercise (\d+)', page)]
    if not numbers:  # the heading markup of sphinx-exercise: "Exercise N" inside the title paragraph
        numbers = [int(n) for n in re.findall(r">\s*Exercise (\d+)\s*<", page)]
    assert numbers, f"{docname} shows no numbered exercise"
    assert sorted(set(numbers)) == list(range(1, max(numbers) + 1)), (
        f"{docname}: exercises numbered {sorted(set(numbers))}, not 1, 2, ... within the set")


@pytest.mark.parametrize("docname", ["lessons/intro", "lessons/07_crossover_glmm"])
def test_one_search_box(docname: str, html_dir: Path) -> None:
    """The theme's header search is off (navbar_persistent: []): the sidebar's field is the one search box."""
    page = (html_dir / f"{docname}.html").read_text(encoding="utf-8")
    assert "navbar-persistent--container" not in page
    assert page.count('class="btn search-button-field') == 1


SEARCH_WORD = "Laplace"  # taught in lessons 5-7 and used in most lessons after them


def test_search_shows_excerpts_offline(chromium: str, html_dir: Path) -> None:
    """The search page of the book opened from disk (file://, no network) lists each result with an excerpt of
    its page around the search word, its formulas as text rather than TeX source (issue 17 A26). Sphinx fetches a
    result's page to cut the excerpt, which a browser refuses on file://; glmmteach.search_excerpts supplies the
    pages' texts instead."""
    texts = html_dir / "_static" / "search_texts.js"
    assert texts.is_file(), "the build wrote no _static/search_texts.js (glmmteach.search_excerpts)"
    pages = json.loads(re.fullmatch(r"window\.SEARCH_PAGE_TEXTS = (.*);\n", texts.read_text(encoding="utf-8"),
                                    re.S).group(1))
    assert set(pages) >= set(_docnames()), "search_texts.js lacks pages of the book"
    lessons = [name for name in pages if name.startswith("lessons/") and (BOOK_ROOT / f"{name}.ipynb").exists()]
    assert all("record(" not in pages[name] for name in lessons), "a lesson's text holds bookkeeping"
    for docname in EXERCISE_PAGES:  # the texts are the built pages': a graded set's solutions stay out
        if is_graded(nbformat.read(BOOK_ROOT / f"{docname}.ipynb", as_version=4)):
            assert "BEGIN SOLUTION" not in pages[docname], f"search_texts.js holds {docname}'s solutions"
    dom = render_dom(chromium, html_dir / "search.html", f"?q={SEARCH_WORD}")
    results = re.search(r'<ul class="search">(.*?)</ul>', dom, re.S)
    assert results, "the search page lists no results"
    # a page's result gets an excerpt; an API object's shows its description instead, as Sphinx does online
    items = [item for item in re.findall(r"<li>(.*?)</li>", results.group(1), re.S) if "<span> (" not in item]
    with_excerpt = [item for item in items if '<p class="context">' in item]
    assert len(items) >= 10, f"only {len(items)} results for {SEARCH_WORD!r}"
    assert len(with_excerpt) == len(items), f"{len(items) - len(with_excerpt)} of {len(items)} results lack an excerpt"
    excerpts = [html.unescape(re.sub(r"<[^>]+>", "", item.split('<p class="context">', 1)[1]))
                for item in with_excerpt]
    shown = [text for text in excerpts if SEARCH_WORD.lower() in text.lower()]
    assert len(shown) >= len(excerpts) // 2, f"most excerpts do not show {SEARCH_WORD!r}: {excerpts[:3]}"
    # MathJax never typesets the excerpts: the pages' formulas are shown as readable text, not as TeX source
    tex = [text for text in excerpts if re.search(r"\\[([]|\\begin\{", text)]
    assert not tex, f"{len(tex)} excerpts show TeX source: {tex[:2]}"


def test_search_page_text_is_the_article() -> None:
    """glmmteach.search_excerpts keeps the text of the main element and drops what says nothing of the page."""
    from glmmteach.search_excerpts import page_text

    page = """<html><body><nav>sidebar</nav><main role="main">
      <div class="bd-header-article"><button>.ipynb</button></div><div class="onlyprint">Contents</div>
      <h1>Laplace<a class="headerlink" href="#x">#</a></h1>
      <p>the  mode &amp; its
      curvature</p><script>var x = 1;</script><footer class="bd-footer-content">glmmteach 1</footer>
    </main><p>after</p></body></html>"""
    assert page_text(page) == "Laplace the mode & its curvature"


def test_residuals_predicted_legend_covers_no_residual() -> None:
    """The DHARMa-style residuals-vs-predicted panel (lesson 16) is filled with points from edge to edge: its
    legend sits outside the data area, beside the title, and covers none of them (issue 17 A26)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np
    import pandas as pd

    from glmmteach import plots

    rng = np.random.default_rng(1)
    residuals = type("Residuals", (), {"fitted": rng.gamma(2.0, size=400),
                                       "residuals": pd.Series(rng.uniform(size=400))})()
    ax = plots.plot_residuals_predicted(residuals)
    ax.figure.canvas.draw()
    legend = ax.get_legend().get_window_extent()
    frame = ax.get_window_extent()
    assert legend.y0 >= frame.y1 - 1, "the legend overlaps the data area"
    title = ax.title.get_window_extent()
    assert title.x1 <= legend.x0 or title.y1 <= legend.y0, "the legend overlaps the title"
    plt.close(ax.figure)
