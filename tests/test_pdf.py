"""make pdf: the whole book as one PDF (scripts/build_pdf.sh), read back as a reader would get it.

The PDF is built by the script itself when it is missing or older than the book's sources (a single-page
HTML build from the stored outputs and a Chromium print: about a minute). The checks, on the text that
pdftotext extracts and on the fonts that pdffonts lists:

* a page count in a sane range for the book (not a blank or a truncated print);
* every page of _toc.yml is in it, by its title, and every figure of the lessons by its numbered caption;
* no raw TeX is left (MathJax typeset every formula before the print);
* no missing glyphs: no U+FFFD, every font embedded, and every character of the text in a font of the
  machine (private-use characters only as the theme's icon font, which is embedded).

Skips only without Chromium, pdftotext or pdffonts.
"""

from __future__ import annotations

import html
import json
import re
import shutil
import subprocess
import unicodedata
from functools import cache
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
PDF = ROOT / "_build" / "pdf" / "glmmteach-course.pdf"
PRINTED_PAGE = "_build/singlehtml/glmmteach-course.html"  # the page scripts/build_pdf.sh prints
SOURCES = ("_config.yml", "_toc.yml", "references.bib", "lessons", "exercises", "_static", "scripts/build_pdf.sh")
PAGE_RANGE = (150, 800)  # measured: 433 pages on Chromium's default Letter paper (21 lessons, 14 sets)
RAW_TEX = re.compile(r"\\(frac|sum|prod|int|beta|theta|tau|mathbf|boldsymbol|left|right|begin|end)\b|\$\$|\\\(|\\\[")
TOOLS = ("pdftotext", "pdffonts", "fc-list")


def newest_source_time() -> float:
    times = []
    for name in SOURCES:
        path = ROOT / name
        files = [path] if path.is_file() else [p for p in path.rglob("*") if p.is_file()]
        times += [p.stat().st_mtime for p in files]
    return max(times)


@pytest.fixture(scope="module")
def pdf() -> Path:
    if not any(shutil.which(name) for name in ("chromium", "chromium-browser", "google-chrome")):
        pytest.skip("make pdf needs Chromium")
    missing = [tool for tool in TOOLS if shutil.which(tool) is None]
    if missing:
        pytest.skip(f"reading the PDF needs {', '.join(missing)} (poppler-utils, fontconfig)")
    if not PDF.exists() or PDF.stat().st_mtime < newest_source_time():
        result = subprocess.run(["bash", "scripts/build_pdf.sh"], cwd=ROOT, capture_output=True, text=True,
                                timeout=900, check=False)
        assert result.returncode == 0, f"make pdf failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    return PDF


@cache
def pdf_text(path: Path) -> str:
    text = subprocess.run(["pdftotext", "-enc", "UTF-8", str(path), "-"], capture_output=True, text=True,
                          check=True).stdout
    return unicodedata.normalize("NFKC", text)


def flat(text: str) -> str:
    """Whitespace collapsed (titles wrap across lines) and hyphens dropped (pdftotext loses some of a
    title's: "quasi-Poisson" comes out as "quasiPoisson")."""
    return re.sub(r"\s+", " ", re.sub(r"[-\u00ad\u2010\u2011]", "", text)).strip()


def toc_titles() -> dict[str, str]:
    """docname -> the title of its page (the first level-1 heading), for every page in _toc.yml."""
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text(encoding="utf-8"))
    names = [toc["root"]] + [c["file"] for part in toc["parts"] for c in part["chapters"]]
    titles = {}
    for name in names:
        notebook = ROOT / f"{name}.ipynb"
        if notebook.exists():
            cells = json.loads(notebook.read_text(encoding="utf-8"))["cells"]
            source = "\n".join("".join(c["source"]) for c in cells if c["cell_type"] == "markdown")
        else:
            source = (ROOT / f"{name}.md").read_text(encoding="utf-8")
        heading = re.search(r"^# (.+)$", source, re.M)
        assert heading, f"{name} has no title"
        titles[name] = heading.group(1)
    return titles


def stored_figures() -> int:
    toc_pages = toc_titles()
    count = 0
    for name in toc_pages:
        notebook = ROOT / f"{name}.ipynb"
        if notebook.exists():
            cells = json.loads(notebook.read_text(encoding="utf-8"))["cells"]
            count += sum(1 for c in cells for o in c.get("outputs", [])
                         if {"image/png", "image/svg+xml"} & set(o.get("data", {})))
    return count


def test_page_count(pdf: Path) -> None:
    info = subprocess.run(["pdfinfo", str(pdf)], capture_output=True, text=True, check=True).stdout
    pages = int(re.search(r"^Pages:\s+(\d+)", info, re.M).group(1))
    assert PAGE_RANGE[0] <= pages <= PAGE_RANGE[1], f"the PDF has {pages} pages"


def test_every_page_is_printed_in_order(pdf: Path) -> None:
    # The contents at the start list every title but the first; the pages' own titles follow it, in order.
    text = flat(pdf_text(pdf))
    titles = {name: flat(unicodedata.normalize("NFKC", re.sub(r"[*`]", "", title)))
              for name, title in toc_titles().items()}
    names = list(titles)
    assert titles[names[0]] in text, f"the book's first page, {titles[names[0]]!r}, is not in the PDF"
    position = text.find(titles[names[-1]])  # the last entry of the contents
    assert position >= 0, f"the last page's title {titles[names[-1]]!r} is not in the PDF"
    position += len(titles[names[-1]])
    for name in names[1:]:
        found = text.find(titles[name], position)
        assert found >= 0, f"{name}: its title {titles[name]!r} is not printed after the contents, in order"
        position = found + len(titles[name])


def test_figures_and_captions_are_printed(pdf: Path) -> None:
    # a caption starts a line (or a page: pdftotext puts a form feed before it) with "Fig. N" and its text
    captions = {int(n) for n in re.findall(r"^\f?Fig\. (\d+) \S", pdf_text(pdf), re.M)}
    figures = stored_figures()
    assert figures > 0
    assert set(range(1, figures + 1)) <= captions, f"captions missing: {set(range(1, figures + 1)) - captions}"
    images = subprocess.run(["pdfimages", "-list", str(pdf)], capture_output=True, text=True, check=True)
    assert len(images.stdout.splitlines()) - 2 >= figures, "fewer images in the PDF than figures in the book"


def code_text() -> str:
    """The text of every code block, output and API signature of the page that was printed (collapsed)."""
    page = (ROOT / PRINTED_PAGE).read_text(encoding="utf-8")
    blocks = re.findall(r"<pre\b.*?</pre>|<dt class=\"sig\b.*?</dt>", page, re.S)
    return flat(html.unescape(re.sub(r"<[^>]+>", "", "\n".join(blocks))))


def test_no_raw_tex(pdf: Path) -> None:
    # TeX may stand in code (a matplotlib label r"$\theta$"): a line with TeX is raw only outside code.
    code = code_text()
    raw = [line for line in pdf_text(pdf).splitlines()
           if RAW_TEX.search(line) and flat(unicodedata.normalize("NFKC", line)) not in code]
    assert not raw, "raw TeX in the PDF's text:\n" + "\n".join(raw[:10])
    # and MathJax did typeset: \\mid, which only the formulas use, comes out as its symbol (U+2223)
    assert "\u2223" in pdf_text(pdf), "no typeset \\mid in the PDF: did MathJax run before the print?"


def fonts(path: Path) -> list[dict[str, str]]:
    lines = subprocess.run(["pdffonts", str(path)], capture_output=True, text=True, check=True).stdout.splitlines()
    rows = []
    for line in lines[2:]:
        parts = line.split()
        # name, type words..., encoding, emb, sub, uni, object, id: read from the right
        rows.append({"name": parts[0], "emb": parts[-5], "uni": parts[-3]})
    return rows


def test_no_missing_glyphs(pdf: Path) -> None:
    text = pdf_text(pdf)
    assert "\ufffd" not in text, "the PDF holds U+FFFD replacement characters"
    listed = fonts(pdf)
    assert listed, "pdffonts lists no fonts"
    not_embedded = [row["name"] for row in listed if row["emb"] != "yes"]
    assert not not_embedded, f"fonts not embedded: {not_embedded}"
    fallback = [row["name"] for row in listed if re.search(r"LastResort|NotDef", row["name"], re.I)]
    assert not fallback, f"missing-glyph fonts in the PDF: {fallback}"
    icon_font = any("FontAwesome" in row["name"] for row in listed)
    uncovered = []
    for char in sorted({c for c in text if ord(c) > 127}):
        if 0xE000 <= ord(char) <= 0xF8FF:  # private use: the theme's icons
            if not icon_font:
                uncovered.append(f"U+{ord(char):04X} (private use, no icon font)")
            continue
        covering = subprocess.run(["fc-list", f":charset={ord(char):x}", "family"], capture_output=True,
                                  text=True, check=True).stdout
        if not covering.strip():
            uncovered.append(f"U+{ord(char):04X} {unicodedata.name(char, '?')}")
    assert not uncovered, f"characters no font of this machine has (printed as boxes): {uncovered}"
