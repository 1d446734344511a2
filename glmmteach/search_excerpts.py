"""Search results with excerpts when the book is opened from disk (file://).

Sphinx's search page shows, under each result, an excerpt of the page around the search words. It gets the
page by ``fetch``, which a browser refuses for file:// URLs, so a book opened from disk lists bare titles.
This extension writes, after the HTML build, ``_static/search_texts.js``: the text of every page's main
content (what Sphinx's ``htmlToText`` takes from a fetched page: the ``role="main"`` element without its
header links, scripts and styles; here also without the theme's buttons, contents lists and footer), read from
the built HTML itself, so that it holds exactly what the reader
sees (a graded exercise set's page, without its solutions). ``_static/search_excerpts.js`` answers the search
page's requests for pages from those texts when the book is opened from disk; served over HTTP it steps aside.
"""

from __future__ import annotations

import json
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

TEXTS_FILE = "search_texts.js"
SKIPPED_TAGS = {"script", "style"}
# What Sphinx's htmlToText drops (header links), and the theme's furniture around the article that it keeps
# but that says nothing of the page: the download buttons above the article, the contents list printed
# copies carry, the contents sidebar, the previous/next links and the footer.
SKIPPED_CLASSES = {"headerlink", "bd-header-article", "onlyprint", "bd-sidebar-secondary", "prev-next-footer",
                   "bd-footer-content"}
VOID_TAGS = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr"}


class MainText(HTMLParser):
    """The text of the ``role="main"`` element, without scripts, styles and the elements of SKIPPED_CLASSES."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.depth = 0  # open elements inside main (0: outside)
        self.skipping = 0  # depth at which a skipped element opened (0: none)
        self.parts: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in VOID_TAGS:
            return
        attributes = dict(attrs)
        if self.depth:
            self.depth += 1
            classes = set((attributes.get("class") or "").split())
            skipped = tag in SKIPPED_TAGS or bool(classes & SKIPPED_CLASSES)
            if skipped and not self.skipping:
                self.skipping = self.depth
        elif attributes.get("role") == "main":
            self.depth = 1

    def handle_endtag(self, tag: str) -> None:
        if tag in VOID_TAGS or not self.depth:
            return
        if self.skipping == self.depth:
            self.skipping = 0
        self.depth -= 1

    def handle_data(self, data: str) -> None:
        if self.depth and not self.skipping:
            self.parts.append(data)


def page_text(html: str) -> str:
    parser = MainText()
    parser.feed(html)
    parser.close()
    return " ".join("".join(parser.parts).split())


def write_texts(app: Any, exception: Exception | None) -> None:
    if exception is not None or app.builder.format != "html" or app.builder.name != "html":
        return
    outdir = Path(app.outdir)
    texts = {}
    for docname in sorted(app.env.found_docs):
        page = outdir / f"{docname}{app.builder.out_suffix}"
        if page.is_file():
            texts[docname] = page_text(page.read_text(encoding="utf-8"))
    script = "window.SEARCH_PAGE_TEXTS = " + json.dumps(texts, ensure_ascii=False, separators=(",", ":")) + ";\n"
    (outdir / "_static" / TEXTS_FILE).write_text(script, encoding="utf-8")


def setup(app: Any) -> dict[str, Any]:
    # (_static/search_excerpts.js needs no add_js_file: Jupyter Book adds every script of _static/ to each page)
    app.connect("build-finished", write_texts)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
