"""What the lesson notebooks show a reader, checked on the notebooks themselves.

* Code fits the page: no line of a lesson's code cell is longer than 88 characters.
* Bookkeeping stays out of sight: the values kept for the text (``record``, ``glue``) and the imports of
  the book's tooling live only in cells the rendered page removes (``remove-cell``/``remove-input``),
  and no lesson defines its own ``record``.
* Every figure has a caption and alt text (MyST-NB cell metadata ``mystnb.figure.caption`` and
  ``mystnb.image.alt``) that describes it, not a file path.

The rendered pages are checked in a browser by ``test_book_render.py``.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

LESSONS = Path(__file__).resolve().parents[1] / "lessons"
NOTEBOOKS = sorted(LESSONS.glob("*.ipynb"))
MAX_LINE = 88
HIDING_TAGS = {"remove-cell", "remove-input"}
BOOKKEEPING = re.compile(r"\brecord\(|\bglue\(|from myst_nb\b|glmmteach\.booktools\b|import booktools")


def code_cells(path: Path) -> list[dict]:
    notebook = json.loads(path.read_text(encoding="utf-8"))
    return [cell for cell in notebook["cells"] if cell["cell_type"] == "code"]


def source(cell: dict) -> str:
    return "".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"]


def hidden(cell: dict) -> bool:
    return bool(HIDING_TAGS.intersection(cell.get("metadata", {}).get("tags", [])))


def has_figure(cell: dict) -> bool:
    return any({"image/png", "image/svg+xml"}.intersection(output.get("data", {}))
               for output in cell.get("outputs", []))


def test_there_are_lessons() -> None:
    assert len(NOTEBOOKS) >= 11


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda path: path.stem)
def test_code_lines_fit_the_page(path: Path) -> None:
    long = [f"cell {number}: {len(line)} characters: {line.strip()[:60]}..."
            for number, cell in enumerate(code_cells(path))
            for line in source(cell).splitlines() if len(line) > MAX_LINE]
    assert not long, f"{path.name} has code lines over {MAX_LINE} characters:\n" + "\n".join(long)


FENCE = re.compile(r"^(```+|~~~+)(\S*)")


def md_code_lines(path: Path) -> list[str]:
    """The lines of a Markdown page's fenced code blocks (not directives such as ``{eval-rst}``)."""
    lines, fence, code = [], None, False
    for line in path.read_text(encoding="utf-8").splitlines():
        match = FENCE.match(line)
        if fence is None and match:
            fence, code = match.group(1), not match.group(2).startswith("{")
        elif fence is not None and line.strip() == fence:
            fence = None
        elif fence is not None and code:
            lines.append(line)
    return lines


@pytest.mark.parametrize("path", sorted(LESSONS.glob("*.md")), ids=lambda path: path.stem)
def test_markdown_code_lines_fit_the_page(path: Path) -> None:
    long = [line.strip()[:60] for line in md_code_lines(path) if len(line) > MAX_LINE]
    assert not long, f"{path.name} has code lines over {MAX_LINE} characters:\n" + "\n".join(long)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda path: path.stem)
def test_bookkeeping_is_hidden(path: Path) -> None:
    shown = [f"cell {number}: {match.group(0)!r}"
             for number, cell in enumerate(code_cells(path)) if not hidden(cell)
             for match in BOOKKEEPING.finditer(source(cell))]
    assert not shown, f"{path.name} shows bookkeeping to readers:\n" + "\n".join(shown)
    defined = [number for number, cell in enumerate(code_cells(path))
               if re.search(r"^def record\(", source(cell), re.MULTILINE)]
    assert not defined, f"{path.name} defines its own record() (cells {defined}); use glmmteach.booktools"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda path: path.stem)
def test_figures_have_caption_and_alt_text(path: Path) -> None:
    for number, cell in enumerate(code_cells(path)):
        if not has_figure(cell):
            continue
        options = cell.get("metadata", {}).get("mystnb", {})
        caption = options.get("figure", {}).get("caption", "")
        alt = options.get("image", {}).get("alt", "")
        assert len(caption.split()) >= 5, f"{path.name} cell {number}: figure without a caption"
        assert options.get("figure", {}).get("name"), f"{path.name} cell {number}: figure without a name"
        assert len(alt.split()) >= 8, f"{path.name} cell {number}: alt text {alt!r} does not describe the figure"
        assert not re.search(r"\.(png|svg|jpe?g)\b|/", alt), f"{path.name} cell {number}: alt text is a path"
        images = sum(1 for output in cell["outputs"]
                     if {"image/png", "image/svg+xml"}.intersection(output.get("data", {})))
        assert images == 1, f"{path.name} cell {number}: one caption for {images} figures"
