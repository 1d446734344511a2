"""The course as a publication: one version, the licences, the citation file, the changelog, the
bibliography and the glossary (issue 17 part D). Reads files only; the built pages are checked in
test_book_render.py and the PDF in test_pdf.py."""

from __future__ import annotations

import importlib.metadata
import json
import re
import tomllib
from pathlib import Path

import jsonschema
import nbformat
import pybtex.database
import pytest
import yaml

import glmmteach

ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
CONFIG = yaml.safe_load((ROOT / "_config.yml").read_text(encoding="utf-8"))
SPHINX = CONFIG["sphinx"]["config"]
BIB = pybtex.database.parse_file(ROOT / "references.bib")
CITE_ROLE = re.compile(r"\{cite(?::[a-z]+)?\}`([^`]+)`")
# Keep a Changelog: a released version is "## [x.y.z] - YYYY-MM-DD", the next one "## [Unreleased]".
RELEASE = re.compile(r"^## \[(\d+\.\d+\.\d+)\] - (\d{4}-\d{2}-\d{2})", re.M)
CHANGE_KINDS = {"Added", "Changed", "Deprecated", "Removed", "Fixed", "Security"}
# The pages that cite their sources with {cite} roles (issue 17 D).
CITING_PAGES = tuple(
    [f"lessons/{name}.ipynb" for name in ("01_motivation", "02_crossover_glm", "03_model_comparison",
                                          "04_independence", "05_glmm_likelihood", "06_numerical_integration",
                                          "08_population_vs_subject", "09_poisson", "11_overdispersion",
                                          "17_richer_structures", "18_nested_crossed", "19_boundaries")]
    + [f"lessons/{name}.md" for name in ("intro", "errata", "r_python", "run_locally", "glossary", "references")]
    # lessons 07, 10 and 12-16 (issue 17 D), one page a line
    + ["lessons/07_crossover_glmm.ipynb"]
    + ["lessons/10_ohio_glmm.ipynb"]
    + ["lessons/12_summary.md"]
    + ["lessons/13_fitting_by_hand.ipynb"]
    + ["lessons/14_simulation_studies.ipynb"]
    + ["lessons/15_effect_sizes.ipynb"]
    + ["lessons/16_model_checking.ipynb"]
    + ["lessons/21_inference_reporting.ipynb"]
)
# Pages that end with a References section of their own: a bibliography of the works the page cites.
PAGES_WITH_REFERENCES = tuple(f"lessons/{name}.ipynb" for name in (
    "07_crossover_glmm", "10_ohio_glmm", "13_fitting_by_hand", "14_simulation_studies", "15_effect_sizes",
    "16_model_checking", "17_richer_structures", "18_nested_crossed", "19_boundaries", "21_inference_reporting",
))
# (alpha labels, "[BMBW15]": the References page numbers its entries, and a number may label one work only)
LOCAL_BIBLIOGRAPHY = "## References\n\n```{bibliography}\n:filter: docname in docnames\n:style: alpha\n```"
GLOSSARY_TERMS = (
    "conditional mode", "Laplace approximation", "adaptive Gauss–Hermite quadrature", "PIRLS", "singular fit",
    "boundary", "marginal effect", "population-averaged effect", "conditional effect", "subject-specific effect",
    "overdispersion", "deviance", "profile likelihood", "Wald interval", "median odds ratio",
)


def course_texts() -> dict[str, str]:
    """The Markdown of every page of the book: Markdown files, and the Markdown cells of notebooks."""
    texts = {}
    for path in sorted((ROOT / "lessons").glob("*.md")) + sorted((ROOT / "exercises").glob("*.md")):
        texts[str(path.relative_to(ROOT))] = path.read_text(encoding="utf-8")
    for path in sorted((ROOT / "lessons").glob("*.ipynb")) + sorted((ROOT / "exercises").glob("*.ipynb")):
        notebook = nbformat.read(path, as_version=4)
        texts[str(path.relative_to(ROOT))] = "\n".join(c.source for c in notebook.cells if c.cell_type == "markdown")
    return texts


def cited_keys(text: str) -> list[str]:
    return [key.strip() for match in CITE_ROLE.finditer(text) for key in match.group(1).split(",")]


# ---- one version -------------------------------------------------------------------------------------------

def test_version_is_written_once() -> None:
    assert "version" not in PYPROJECT["project"], "pyproject.toml writes a version of its own"
    assert "version" in PYPROJECT["project"]["dynamic"]
    assert PYPROJECT["tool"]["setuptools"]["dynamic"]["version"] == {"attr": "glmmteach.__version__"}
    assert re.fullmatch(r"\d+\.\d+\.\d+(\.dev\d+|rc\d+)?", glmmteach.__version__)


def test_installed_metadata_has_the_version() -> None:
    # Editable install: the metadata is written when pip installs (make env reinstalls on a pyproject change).
    assert importlib.metadata.version("glmmteach") == glmmteach.__version__


def test_book_footer_names_the_version() -> None:
    footer = SPHINX["html_theme_options"]["extra_footer"]
    assert "{version}" in footer and "glmmteach.bookbuild" in SPHINX["extensions"]
    from glmmteach.bookbuild import show_version

    class Config:
        version = release = ""
        html_theme_options = {"extra_footer": footer}

    config = Config()
    show_version(None, config)
    assert glmmteach.__version__ in config.html_theme_options["extra_footer"]
    assert config.version == config.release == glmmteach.__version__


# ---- licences and citation -----------------------------------------------------------------------------------

def test_licence_files() -> None:
    code = (ROOT / "LICENSE").read_text(encoding="utf-8")
    text = (ROOT / "LICENSE-text").read_text(encoding="utf-8")
    assert code.startswith("BSD 3-Clause License")
    assert all(f"{n}. " in code for n in (1, 2, 3)) and "Neither the name of the copyright holder" in code
    assert "Creative Commons Attribution 4.0 International" in text
    for part in ("Section 1 – Definitions.", "Section 3 – License Conditions.", "Section 8 – Interpretation."):
        assert part in text, f"LICENSE-text lacks the legal code's {part!r}"
    assert PYPROJECT["project"]["license"] == "BSD-3-Clause"
    assert set(PYPROJECT["project"]["license-files"]) == {"LICENSE", "LICENSE-text"}


def test_citation_file_is_valid_cff() -> None:
    citation = yaml.safe_load((ROOT / "CITATION.cff").read_text(encoding="utf-8"))
    # The CFF 1.2.0 JSON schema, as shipped by cffconvert 2.0.0 (tests/data/cff/).
    schema = json.loads((ROOT / "tests/data/cff/schema-1.2.0.json").read_text(encoding="utf-8"))
    # YAML reads a DOI or a date as other types than the schema's strings only when unquoted and numeric-like;
    # the JSON round trip gives the schema the document as cffconvert validates it.
    jsonschema.validate(json.loads(json.dumps(citation, default=str)), schema)
    assert citation["cff-version"] == "1.2.0"
    assert citation["version"] == glmmteach.__version__
    assert set(citation["license"]) == {"BSD-3-Clause", "CC-BY-4.0"}


def test_citation_schema_rejects_a_broken_file() -> None:
    schema = json.loads((ROOT / "tests/data/cff/schema-1.2.0.json").read_text(encoding="utf-8"))
    citation = yaml.safe_load((ROOT / "CITATION.cff").read_text(encoding="utf-8"))
    del citation["authors"]
    with pytest.raises(jsonschema.ValidationError, match="authors"):
        jsonschema.validate(json.loads(json.dumps(citation, default=str)), schema)


# ---- changelog -----------------------------------------------------------------------------------------------

def test_changelog_keeps_a_changelog() -> None:
    text = (ROOT / "CHANGELOG.md").read_text(encoding="utf-8")
    assert text.startswith("# Changelog") and "keepachangelog.com" in text
    releases = RELEASE.findall(text)
    assert len(releases) >= 2, "the changelog records fewer than two released versions"
    versions = [tuple(int(part) for part in version.split(".")) for version, _ in releases]
    dates = [date for _, date in releases]
    assert versions == sorted(versions, reverse=True) and dates == sorted(dates, reverse=True)
    released = ".".join(map(str, versions[0]))
    if glmmteach.__version__ != released:  # a development version: the unreleased section names it
        assert re.search(rf"^## \[Unreleased\] \({re.escape(glmmteach.__version__)}\)", text, re.M)
        assert text.index("## [Unreleased]") < text.index(f"## [{released}]")
    kinds = set(re.findall(r"^### (\w+)", text, re.M))
    assert kinds and kinds <= CHANGE_KINDS, f"sections other than Keep a Changelog's: {kinds - CHANGE_KINDS}"


# ---- bibliography --------------------------------------------------------------------------------------------

def test_bibliography_is_configured() -> None:
    assert "sphinxcontrib.bibtex" in SPHINX["extensions"]
    assert [ROOT / name for name in SPHINX["bibtex_bibfiles"]] == [ROOT / "references.bib"]
    assert any(dep.startswith("sphinxcontrib-bibtex") for dep in PYPROJECT["project"]["optional-dependencies"]["book"])
    references = (ROOT / "lessons/references.md").read_text(encoding="utf-8")
    assert re.search(r"```\{bibliography\}\n:all:\n```", references), "the References page must list every work"
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text(encoding="utf-8"))
    reference_part = next(part for part in toc["parts"] if part["caption"] == "Reference")
    files = [chapter["file"] for chapter in reference_part["chapters"]]
    assert "lessons/glossary" in files and "lessons/references" in files


def test_every_cited_key_is_in_the_bibliography() -> None:
    cited = {page: cited_keys(text) for page, text in course_texts().items()}
    unknown = {page: sorted(set(keys) - set(BIB.entries)) for page, keys in cited.items()}
    assert not any(unknown.values()), {page: keys for page, keys in unknown.items() if keys}
    for page in CITING_PAGES:
        assert cited[page], f"{page} cites nothing"


def test_named_works_are_cited_not_written_out() -> None:
    # "(Jones and Kenward, 1989)" typed by hand would not link to the References page.
    handwritten = re.compile(r"\([A-Z][a-z]+(?:,? (?:and|&) [A-Z][a-z]+| et al\.)?,? (?:19|20)\d\d\)")
    texts = course_texts()
    for page in CITING_PAGES:
        match = handwritten.search(texts[page])
        assert match is None, f"{page}: {match.group(0)} is written out instead of cited"


def test_pages_end_with_their_references() -> None:
    assert set(PAGES_WITH_REFERENCES) <= set(CITING_PAGES)
    for page in PAGES_WITH_REFERENCES:
        cells = nbformat.read(ROOT / page, as_version=4).cells
        assert cells[-1].cell_type == "markdown" and cells[-1].source.strip() == LOCAL_BIBLIOGRAPHY, (
            f"{page} does not end with its own References section")
        # a list typed by hand next to it would repeat (and drift from) references.bib
        assert sum("## References" in c.source for c in cells if c.cell_type == "markdown") == 1, page
    # the References page lists every work too: the repetition is intended (see _config.yml)
    assert "bibtex.duplicate_citation" in SPHINX["suppress_warnings"]


def test_bibliography_entries_are_complete() -> None:
    for key, entry in BIB.entries.items():
        assert entry.persons.get("author") or entry.persons.get("editor"), f"{key}: no author or editor"
        assert entry.fields.get("title"), f"{key}: no title"
        if entry.type != "misc":
            assert re.fullmatch(r"(19|20)\d\d", entry.fields.get("year", "")), f"{key}: no year"
        if entry.type == "article":
            for field in ("journal", "volume", "pages"):
                assert entry.fields.get(field), f"{key}: article without {field}"
        if entry.type == "book":
            assert entry.fields.get("publisher"), f"{key}: book without publisher"


# ---- glossary ------------------------------------------------------------------------------------------------

def glossary_entries() -> dict[str, str]:
    text = (ROOT / "lessons/glossary.md").read_text(encoding="utf-8")
    body = re.search(r"```\{glossary\}\n(?::sorted:\n)?(.*?)\n```", text, re.S)
    assert body, "lessons/glossary.md has no glossary directive"
    entries: dict[str, str] = {}
    terms: list[str] = []
    for block in re.split(r"\n\s*\n", body.group(1).strip()):
        lines = block.splitlines()
        terms = [line for line in lines if line and not line.startswith(" ")]
        definition = " ".join(line.strip() for line in lines if line.startswith(" "))
        for term in terms:
            entries[term] = definition
    return entries


def test_glossary_defines_the_terms_of_the_course() -> None:
    entries = glossary_entries()
    missing = [term for term in GLOSSARY_TERMS if term not in entries]
    assert not missing, f"the glossary lacks {missing}"
    for term, definition in entries.items():
        words = len(definition.split())
        assert 10 <= words <= 90, f"glossary: {term!r} is defined in {words} words (one or two sentences)"


def test_glossary_points_at_existing_lessons() -> None:
    text = (ROOT / "lessons/glossary.md").read_text(encoding="utf-8")
    targets = set(re.findall(r"\{doc\}`([^`]+)`", text))
    assert targets, "the glossary names no lesson"
    for target in targets:
        assert any((ROOT / "lessons" / f"{target}{suffix}").exists() for suffix in (".md", ".ipynb")), target
