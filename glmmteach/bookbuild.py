"""Sphinx extension of the course book: the solutions of graded exercise sets stay out of the public book.

An exercise notebook is *graded* when its metadata holds ``{"glmmteach": {"graded": true}}``; the others are
practice sets. The setting ``glmmteach_graded_solutions`` (``sphinx: config:`` in ``_config.yml``, or the
environment variable ``GLMMTEACH_GRADED_SOLUTIONS``, which wins) decides what the book shows:

* ``hide`` (the default): every cell tagged ``solution`` of a graded notebook also gets ``remove-cell`` before
  the notebook is parsed, so it still runs when the book is built (later cells may use its results) but
  neither its code nor its output reaches a page; a note under the title says so. The page offers no
  download of its source, and copies of a graded notebook's source in the HTML output (``_sources/``) are
  deleted when the build finishes;
* ``show``: solutions of every set are shown in dropdowns (an instructor's private build).

Practice sets always show their solutions.

Exercises are numbered within their set (set 02 starts at "Exercise 1", not where set 01 stopped): Sphinx
numbers every enumerable node across the whole book, so the numbers of the ``exercise`` type are reassigned
per page after Sphinx has assigned them.

In the single-page HTML build of ``make pdf`` every extension's nodes keep their HTML handlers (see
``_single_page_handlers``).

The book shows the package's version: ``{version}`` in the footer text (``extra_footer`` of ``html_theme_options`` in
``_config.yml``) becomes ``glmmteach.__version__``, which is also Sphinx's ``version`` and ``release``, so the
version is written in one place only.

While the book builds (quietly: ``jupyter-book build -q`` keeps Sphinx's status lines out), each notebook gets
one progress line on standard error when its execution starts and its time when it is done, so a long lesson
does not leave the build silent.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import Any

import nbformat

SETTING = "glmmteach_graded_solutions"
ENVIRONMENT = "GLMMTEACH_GRADED_SOLUTIONS"
CHOICES = ("hide", "show")
NOTE = ("*This is a graded exercise set: its solutions are not published in this book. The questions, and "
        "the checks of your answers' form, work as in the notebook you were given.*")


def is_graded(notebook: nbformat.NotebookNode) -> bool:
    return bool(notebook.metadata.get("glmmteach", {}).get("graded", False))


def hide_graded_solutions(text: str) -> str | None:
    """The notebook JSON ``text`` with its solutions removed from view, or None if it is not graded."""
    notebook = nbformat.reads(text, as_version=4)
    if not is_graded(notebook):
        return None
    for cell in notebook.cells:
        tags = list(cell.metadata.get("tags", []))
        if "solution" in tags and "remove-cell" not in tags:
            cell.metadata["tags"] = [*tags, "remove-cell"]
    notebook.cells.insert(1, nbformat.v4.new_markdown_cell(NOTE))
    return nbformat.writes(notebook)


def _setting(app: Any) -> str:
    value = os.environ.get(ENVIRONMENT) or getattr(app.config, SETTING)
    if value not in CHOICES:
        from sphinx.errors import ConfigError

        raise ConfigError(f"{SETTING} (or ${ENVIRONMENT}) must be one of {CHOICES}, got {value!r}")
    return value


def _source_read(app: Any, docname: str, source: list[str]) -> None:
    if _setting(app) == "hide" and str(app.env.doc2path(docname)).endswith(".ipynb"):
        hidden = hide_graded_solutions(source[0])
        if hidden is not None:
            source[0] = hidden


def _graded_doc(app: Any, docname: str) -> bool:
    path = Path(app.env.doc2path(docname))
    return path.suffix == ".ipynb" and is_graded(nbformat.read(path, as_version=4))


SOURCE_DOWNLOADS = ("download-notebook-button", "download-source-button")


def _page_context(app: Any, pagename: str, templatename: str, context: dict, doctree: Any) -> None:
    """Drop a graded page's source downloads from the theme's header (they would hold the solutions)."""
    if _setting(app) != "hide" or pagename not in app.env.found_docs or not _graded_doc(app, pagename):
        return
    for group in context.get("header_buttons", []):
        if group.get("label") == "download-buttons":
            group["buttons"] = [b for b in group["buttons"] if b.get("label") not in SOURCE_DOWNLOADS]


def _build_finished(app: Any, exception: Exception | None) -> None:
    if exception is not None or _setting(app) != "hide":
        return
    sources = Path(app.outdir) / "_sources"
    for docname in app.env.found_docs:
        if not _graded_doc(app, docname):
            continue
        for copy in sources.glob(f"{docname}.ipynb*"):
            copy.unlink()


def _number_exercises_per_page(app: Any, env: Any) -> list[str]:
    """Renumber each page's exercises 1, 2, ... in their order on the page (Sphinx counts across the book)."""
    for numbers in env.toc_fignumbers.values():
        exercises = numbers.get("exercise")
        if exercises:
            in_order = sorted(exercises, key=lambda node_id: exercises[node_id])
            numbers["exercise"] = {node_id: (position,) for position, node_id in enumerate(in_order, start=1)}
    return []


def show_version(app: Any, config: Any) -> None:
    """Put glmmteach's version into Sphinx's version, release and the footer's ``{version}``."""
    from glmmteach import __version__

    config.version = config.release = __version__
    options = dict(config.html_theme_options or {})
    footer = options.get("extra_footer")
    if isinstance(footer, str) and "{version}" in footer:
        options["extra_footer"] = footer.replace("{version}", __version__)
        config.html_theme_options = options


def _single_page_handlers(app: Any) -> None:
    """Give the single-page HTML builder (``make pdf``) the HTML handlers of every extension's nodes.

    Sphinx uses a builder's own handlers when an extension registers any for its name, and the HTML
    (format) handlers only otherwise. sphinx-exercise registers ``singlehtml`` handlers for its nodes, so the
    other extensions' nodes (sphinx-proof's definitions, ...) would have none in that build; they get their
    ``html`` handlers, which work unchanged on one page.
    """
    if app.builder.name != "singlehtml":
        return
    handlers = app.registry.translation_handlers
    single = handlers.setdefault("singlehtml", {})
    for node_name, visit_depart in handlers.get("html", {}).items():
        single.setdefault(node_name, visit_depart)


def _register_round_citations() -> None:
    """Register sphinxcontrib-bibtex's author-year style with round brackets, "(Agresti, 2013)", as
    ``author_year_round`` (its own ``author_year`` uses square ones); the plugin interface is the one its
    documentation gives for custom styles."""
    from dataclasses import dataclass, field

    import sphinxcontrib.bibtex.plugin
    from sphinxcontrib.bibtex.style.referencing import BracketStyle
    from sphinxcontrib.bibtex.style.referencing.author_year import AuthorYearReferenceStyle

    def round_brackets() -> BracketStyle:
        return BracketStyle(left="(", right=")")

    @dataclass
    class RoundAuthorYear(AuthorYearReferenceStyle):
        bracket_parenthetical: BracketStyle = field(default_factory=round_brackets)
        bracket_textual: BracketStyle = field(default_factory=round_brackets)
        bracket_author: BracketStyle = field(default_factory=round_brackets)
        bracket_label: BracketStyle = field(default_factory=round_brackets)
        bracket_year: BracketStyle = field(default_factory=round_brackets)

    sphinxcontrib.bibtex.plugin.register_plugin(
        "sphinxcontrib.bibtex.style.referencing", "author_year_round", RoundAuthorYear)


_started: dict[str, float] = {}


def _progress_start(app: Any, docname: str, source: list[str]) -> None:
    if str(app.env.doc2path(docname)).endswith(".ipynb"):
        _started[docname] = time.monotonic()
        print(f"executing {docname} ...", end="", file=sys.stderr, flush=True)


def _progress_done(app: Any, doctree: Any) -> None:
    start = _started.pop(app.env.docname, None)
    if start is not None:
        print(f" {time.monotonic() - start:.0f} s", file=sys.stderr, flush=True)


def setup(app: Any) -> dict[str, Any]:
    app.add_config_value(SETTING, "hide", "env")
    app.connect("config-inited", show_version)
    _register_round_citations()
    app.connect("builder-inited", _single_page_handlers)
    app.connect("source-read", _source_read)
    app.connect("source-read", _progress_start)
    app.connect("doctree-read", _progress_done)
    app.connect("env-get-updated", _number_exercises_per_page, priority=900)  # after Sphinx's own numbering
    app.connect("html-page-context", _page_context, priority=600)  # after the theme adds its buttons
    app.connect("build-finished", _build_finished)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
