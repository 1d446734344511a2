"""The key (what the solution notebook records) and scoring one submission against it, in the grader's process."""

from __future__ import annotations

import json
import os
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import nbformat
from nbformat import NotebookNode

from ..checks import (
    NUMERIC_KINDS,
    RECORDED,
    ExactMatcher,
    Feedback,
    QuestionSpec,
    alternative_id,
    diagnose,
    missing_prerequisite,
    solution_range_problem,
    validate_answer_form,
)
from .errors import ReleaseError
from .notebooks import Exercise, solution_notebook, with_setup_cell
from .runner import Execution, execute_notebook
from .sandbox import Sandbox

MAX_SUBMISSION_BYTES = 50 * 2**20
MAX_CELLS = 1000  # the course's notebooks have fewer than 50
MAX_JSON_DEPTH = 64  # a notebook's JSON nests about 6 levels (a widget's state a few more)


def _answer_problems(exercise: Exercise, answers: dict[str, Any]) -> list[str]:
    problems = []
    for spec in exercise.specs:
        value = answers.get(spec.id)
        problem = validate_answer_form(spec, value) or (
            None if value is None else solution_range_problem(spec, value))
        if problem is None and spec.kind in NUMERIC_KINDS and spec.atol == 0:
            flat = value if isinstance(value, list) else [value]
            while flat and isinstance(flat[0], list):
                flat = [x for row in flat for x in row]
            if any(x == 0 for x in flat):
                problem = "the answer has a zero element: give the question an 'atol'"
        if problem is not None:
            problems.append(f"{spec.id}: {problem}")
    return problems


def compute_key(exercise: Exercise, timeout: float = 600, seed: int | None = None) -> dict[str, Any]:
    """Run the solution notebook (form checks only, data drawn with ``seed``) and return its answers, the key;
    GradingError if unfit."""
    run = execute_notebook(solution_notebook(exercise, seed=seed), timeout=timeout, data_files=exercise.data_files)
    if run.status != "ok":
        detail = "; ".join(run.errors) or "no details"
        for_seed = "" if seed is None else f" with data seed {seed}"
        raise ReleaseError(f"{exercise.filename}: the solution notebook did not run cleanly{for_seed} "
                           f"(status {run.status}: {detail})")
    problems = _answer_problems(exercise, run.answers)
    if problems:
        raise ReleaseError(f"{exercise.filename}: the solution's answers fail their checks: "
                           + "; ".join(problems))
    key = {s.id: run.answers[s.id] for s in exercise.specs}
    for spec in exercise.specs:  # the wrong values of the misconceptions the solution computes
        for name in recorded_misconceptions(spec):
            qid = alternative_id(spec.id, name)
            if qid not in run.answers:
                raise ReleaseError(f"{exercise.filename}: question {spec.id}'s misconception {name!r} is "
                                   f"'recorded', but the solution never records {qid!r}")
            key[qid] = run.answers[qid]
    return key


def recorded_misconceptions(spec: QuestionSpec) -> list[str]:
    return [m.name for m in spec.misconceptions if m.transform == RECORDED]


def score_answer(spec: QuestionSpec, expected: Any, value: Any,
                 key: dict[str, Any] | None = None) -> Feedback:
    """Score one answer (JSON data from a submission) against the key, in the grader's process; ``key`` (the
    whole key) holds the wrong values of the spec's recorded misconceptions."""
    alternatives = {name: (key or {}).get(alternative_id(spec.id, name))
                    for name in recorded_misconceptions(spec)}
    return diagnose(spec, value, ExactMatcher(spec, expected, alternatives))


@dataclass
class GradeRow:
    student: str
    notebook: str
    status: str
    feedback: list[Feedback]
    errors: list[str] = field(default_factory=list)
    seconds: float = 0.0  # for the progress log only; the gradebook stays repeatable
    executed: NotebookNode | None = None
    answers: dict[str, Any] = field(default_factory=dict)  # as extracted (the free-text ones are exported)

    @property
    def total(self) -> float:
        return sum(f.points for f in self.feedback)

    @property
    def max_points(self) -> float:
        return sum(f.max_points for f in self.feedback)


def grade_submission(exercise: Exercise, key: dict[str, Any], student: str, path: Path, *, timeout: float,
                     sandbox: Sandbox | None, setup: str | None = None, note: str | None = None) -> GradeRow:
    """Grade one student's notebook; every failure becomes a status, never an exception.

    ``setup`` is the source of the student's own setup cell (see :func:`with_setup_cell`); ``note`` says why a
    missing submission may be misnamed.
    """

    def zero(message: str) -> list[Feedback]:
        return [Feedback(s.id, False, message, 0.0, s.points) for s in exercise.specs]

    if path.is_symlink() or path.parent.is_symlink():
        # a link could point at the instructor's source, which the grader (not the kernel) would read
        return GradeRow(student, exercise.filename, "invalid-notebook",
                        zero("the submission is a symbolic link, not a notebook file."), ["symbolic link"])
    if not os.path.lexists(path):
        if note:  # said once, under the questions, rather than on every question
            return GradeRow(student, exercise.filename, "missing", zero("not submitted (see the note below)."),
                            [note])
        return GradeRow(student, exercise.filename, "missing", zero("not submitted."))
    notebook, problem = read_submission(path)
    if notebook is None:
        return GradeRow(student, exercise.filename, "invalid-notebook", zero(f"{problem}."), [problem])
    for cell in notebook.cells:  # outputs in a submission are never trusted; run from a clean slate
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
    if setup is not None:
        notebook = with_setup_cell(notebook, setup)
    run = execute_notebook(notebook, timeout=timeout, data_files=exercise.data_files, sandbox=sandbox)
    feedback = [_score_recorded(s, key, run) for s in exercise.specs]
    return GradeRow(student, exercise.filename, run.status, feedback, run.errors, run.seconds, run.notebook,
                    run.answers)


def _depth(document: Any) -> int:
    """How deeply JSON data nest (iteratively: a deep document must not exhaust the grader's stack)."""
    deepest, stack = 0, [(document, 1)]
    while stack:
        item, depth = stack.pop()
        deepest = max(deepest, depth)
        if depth <= MAX_JSON_DEPTH:
            children = item.values() if isinstance(item, dict) else item if isinstance(item, list) else ()
            stack.extend((child, depth + 1) for child in children if isinstance(child, (dict, list)))
    return deepest


def read_submission(path: Path) -> tuple[NotebookNode | None, str]:
    """A submitted notebook, or None and why it cannot be graded (in words for the student).

    The size, the kind of file, the nesting and the number of cells are checked before any work that grows
    with them (nbformat's validation is slow on huge notebooks), so that no submission costs the grader much
    time before its sandbox starts."""
    try:  # O_NONBLOCK: a FIFO must not block the grader; O_NOFOLLOW: no link to the instructor's files
        descriptor = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError as exc:
        return None, f"the notebook file could not be opened ({exc.strerror})"
    with os.fdopen(descriptor, "rb") as handle:
        info = os.fstat(descriptor)
        if not stat.S_ISREG(info.st_mode):
            return None, "the submission is not a regular file (a pipe, a device or a folder), so not a notebook"
        if info.st_size > MAX_SUBMISSION_BYTES:
            return None, f"the notebook file is larger than {MAX_SUBMISSION_BYTES // 2**20} MB"
        data = handle.read(MAX_SUBMISSION_BYTES + 1)
    try:
        document = json.loads(data)
    except RecursionError:
        return None, f"the notebook file nests its data more than {MAX_JSON_DEPTH} levels deep: it is not a notebook"
    except ValueError as exc:
        return None, f"the notebook file could not be read as a notebook (not valid JSON: {str(exc)[:200]})"
    if _depth(document) > MAX_JSON_DEPTH:
        return None, f"the notebook file nests its data more than {MAX_JSON_DEPTH} levels deep: it is not a notebook"
    cells = document.get("cells") if isinstance(document, dict) else None
    if isinstance(cells, list) and len(cells) > MAX_CELLS:
        return None, (f"the notebook has {len(cells):,} cells, more than the {MAX_CELLS:,} the grader accepts; "
                      "submit the released notebook with your answers")
    try:
        notebook = nbformat.reads(data.decode("utf-8"), as_version=4)
        nbformat.validate(notebook)
    except Exception as exc:  # noqa: BLE001 - any unreadable file is an invalid notebook
        return None, f"the notebook file could not be read as a notebook ({str(exc)[:200]})"
    return notebook, ""


def _score_recorded(spec: QuestionSpec, key: dict[str, Any], run: Execution) -> Feedback:
    """Score one recorded answer; an answer that could not be recorded, or scored, gets its own message."""
    if spec.id in run.problems and spec.id not in run.answers:
        return Feedback(spec.id, False, run.problems[spec.id], 0.0, spec.points)
    if spec.id not in run.answers and run.stopped:
        return Feedback(spec.id, False, f"no answer recorded before {run.stopped}.", 0.0, spec.points)
    prerequisite = None if spec.id in run.answers else missing_prerequisite(spec, run.answers)
    if prerequisite is not None:  # the question builds on a missing earlier answer: say so, not "no answer"
        return Feedback(spec.id, False, prerequisite, 0.0, spec.points)
    try:
        return score_answer(spec, key[spec.id], run.answers.get(spec.id), key)
    except Exception as exc:  # noqa: BLE001 - an odd value costs its own question only, never the others
        return Feedback(spec.id, False, f"the value recorded could not be scored ({type(exc).__name__}).", 0.0,
                        spec.points)
