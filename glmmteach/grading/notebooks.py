"""Instructor source notebooks: loading them, stripping solutions, and the student and solution notebooks."""

from __future__ import annotations

import copy
import json
import re
import textwrap
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import nbformat
from nbformat import NotebookNode

from ..checks import QuestionSpec
from .errors import GradingError

SOLUTION_TAG = "solution"
SETUP_TAG = "checks-setup"
META = "glmmteach"
BEGIN_SOLUTION = "### BEGIN SOLUTION"
END_SOLUTION = "### END SOLUTION"
PLACEHOLDER = "# YOUR CODE HERE\nraise NotImplementedError()"

SETUP_CODE = textwrap.dedent("""\
    from glmmteach.checks import ExerciseChecks

    checks = ExerciseChecks.{constructor}({arguments})
    answers, record, check = checks.answers, checks.record, checks.check
    """)


# ---------------------------------------------------------------------------------------------------------
# Source notebooks


@dataclass
class Exercise:
    """One instructor source notebook and its questions."""

    path: Path
    notebook: NotebookNode
    specs: list[QuestionSpec]

    @property
    def name(self) -> str:
        return self.path.stem

    @property
    def filename(self) -> str:
        return self.path.name

    @property
    def variants(self) -> bool:
        """True when the notebook draws its data per student from ``checks.seed`` (metadata
        ``glmmteach.variants``); each student then has a key of their own."""
        return bool(self.notebook.metadata.get(META, {}).get("variants", False))

    @property
    def data_files(self) -> list[Path]:
        """Files the notebook reads from its own folder (notebook metadata ``glmmteach.data``)."""
        names = self.notebook.metadata.get(META, {}).get("data", [])
        return [self.path.parent / name for name in names]


def _tags(cell: NotebookNode) -> list[str]:
    return list(cell.get("metadata", {}).get("tags", []))


def load_exercise(path: Path) -> Exercise:
    """Read a source notebook and its question specs, naming the problem on bad input."""
    try:
        notebook = nbformat.read(path, as_version=4)
        nbformat.validate(notebook)
    except Exception as exc:  # noqa: BLE001 - any parse failure is reported the same way
        raise GradingError(f"{path}: not a valid notebook ({exc})") from exc
    specs: list[QuestionSpec] = []
    for index, cell in enumerate(notebook.cells):
        question = cell.get("metadata", {}).get(META, {}).get("question")
        if question is not None:
            try:
                specs.append(QuestionSpec.from_dict(question))
            except ValueError as exc:
                raise GradingError(f"{path}, cell {index}: {exc}") from exc
    ids = [s.id for s in specs]
    if not specs:
        raise GradingError(f"{path}: no cell defines a question (metadata glmmteach.question)")
    if len(set(ids)) != len(ids):
        raise GradingError(f"{path}: question ids repeat: {ids}")
    setup_cells = [c for c in notebook.cells if SETUP_TAG in _tags(c)]
    if len(setup_cells) != 1 or setup_cells[0].cell_type != "code":
        raise GradingError(f"{path}: needs exactly one code cell tagged {SETUP_TAG!r}")
    exercise = Exercise(path, notebook, specs)
    missing = [str(p) for p in exercise.data_files if not p.is_file()]
    if missing:
        raise GradingError(f"{path}: data files listed in metadata glmmteach.data not found: {missing}")
    return exercise


def load_exercises(source_dir: Path) -> list[Exercise]:
    """All source notebooks of a folder, sorted by file name."""
    if not source_dir.is_dir():
        raise GradingError(f"source folder {source_dir} does not exist")
    paths = sorted(source_dir.glob("*.ipynb"))
    if not paths:
        raise GradingError(f"no .ipynb notebooks in {source_dir}")
    return [load_exercise(p) for p in paths]


def _setup_source(exercise: Exercise, key: dict[str, Any] | None, seed: int | None = None) -> str:
    if key is None:
        specs = json.dumps([s.to_dict() for s in exercise.specs])
        arguments = f"{exercise.name!r}, {specs!r}" + ("" if seed is None else f", seed={seed}")
        return SETUP_CODE.format(constructor="from_specs", arguments=arguments).rstrip()
    return SETUP_CODE.format(constructor="from_key", arguments=repr(json.dumps(key))).rstrip()


def setup_source(exercise: Exercise, key: dict[str, Any]) -> str:
    """The source of the ``checks-setup`` cell of a released notebook with public key ``key``."""
    return _setup_source(exercise, key)


def with_setup_cell(notebook: NotebookNode, source: str) -> NotebookNode:
    """A submission with the grader's own setup cell: every cell tagged ``checks-setup`` gets ``source``, and
    one is put first when none is tagged. So the data a submission works on is always the student's own
    (the seed in a submitted notebook is never trusted); replacing it later in the notebook only loses points."""
    notebook = copy.deepcopy(notebook)
    tagged = [c for c in notebook.cells if c.cell_type == "code" and SETUP_TAG in _tags(c)]
    for cell in tagged:
        cell.source = source
    if not tagged:
        cell = nbformat.v4.new_code_cell(source)
        cell.metadata["tags"] = [SETUP_TAG]
        notebook.cells.insert(0, cell)
    return notebook


def strip_solution(source: str) -> str:
    """Replace the solution lines of a code cell by the placeholder (keeping their indentation)."""
    if BEGIN_SOLUTION not in source:
        return PLACEHOLDER
    out: list[str] = []
    inside = False
    for line in source.splitlines():
        stripped = line.strip()
        if stripped.startswith(BEGIN_SOLUTION):
            indent = line[: len(line) - len(line.lstrip())]
            out.extend(indent + placeholder for placeholder in PLACEHOLDER.splitlines())
            inside = True
        elif stripped.startswith(END_SOLUTION):
            inside = False
        elif not inside:
            out.append(line)
    if inside:
        raise GradingError(f"{BEGIN_SOLUTION!r} without {END_SOLUTION!r} in:\n{source}")
    return "\n".join(out)


_DIRECTIVE = re.compile(r"^(`{3,}|:{3,})\{exercise\}(?P<title>[^\n]*)\n(?P<body>.*?)^\1\s*$", re.S | re.M)


def _plain_markdown(source: str) -> str:
    """Turn the book's ``{exercise}`` directives into plain Markdown for Jupyter."""

    def replace(match: re.Match[str]) -> str:
        body = "\n".join(line for line in match["body"].splitlines() if not re.match(r"^:\w[\w-]*:", line))
        title = match["title"].strip()
        return f"**Exercise{': ' + title if title else ''}.** " + body.strip() + "\n"

    return _DIRECTIVE.sub(replace, source)


def _with_setup(exercise: Exercise, key: dict[str, Any] | None, *, keep_solutions: bool,
                seed: int | None = None) -> NotebookNode:
    notebook = copy.deepcopy(exercise.notebook)
    cells = []
    for cell in notebook.cells:
        tags = _tags(cell)
        if SETUP_TAG in tags:
            cell.source = _setup_source(exercise, key, seed)
        elif SOLUTION_TAG in tags and not keep_solutions:
            if cell.cell_type != "code":
                continue
            cell.source = strip_solution(cell.source)
        if not keep_solutions:
            cell.metadata.pop(META, None)
            if tags:
                cell.metadata["tags"] = [t for t in tags if t != SOLUTION_TAG]
                if not cell.metadata["tags"]:
                    del cell.metadata["tags"]
            if cell.cell_type == "markdown":
                cell.source = _plain_markdown(cell.source)
        if cell.cell_type == "code":
            cell.outputs = []
            cell.execution_count = None
        cells.append(cell)
    notebook.cells = cells
    if not keep_solutions:
        notebook.metadata.pop(META, None)
    return notebook


def student_notebook(exercise: Exercise, key: dict[str, Any]) -> NotebookNode:
    """The released notebook: solutions replaced by placeholders, outputs cleared, instructor metadata gone."""
    return _with_setup(exercise, key, keep_solutions=False)


def solution_notebook(exercise: Exercise, key: dict[str, Any] | None = None, seed: int | None = None
                      ) -> NotebookNode:
    """The source with its solutions, set up with form checks (no key; data drawn with ``seed``) or with a
    public key (which carries its own seed)."""
    return _with_setup(exercise, key, keep_solutions=True, seed=seed)


def solution_lines(exercise: Exercise) -> list[str]:
    """The non-trivial lines of the solution code (what a released notebook must not contain)."""
    lines = []
    for cell in exercise.notebook.cells:
        if SOLUTION_TAG not in _tags(cell) or cell.cell_type != "code":
            continue
        source = cell.source
        if BEGIN_SOLUTION in source:
            source = "\n".join(re.findall(rf"{re.escape(BEGIN_SOLUTION)}.*?\n(.*?){re.escape(END_SOLUTION)}",
                                          source, re.S))
        lines += [ln.strip() for ln in source.splitlines()
                  if ln.strip() and not ln.strip().startswith("#") and len(ln.strip()) > 8]
    return lines


