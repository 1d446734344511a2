"""Grading a folder of submissions: the gradebook CSV, the feedback files and the executed notebooks."""

from __future__ import annotations

import concurrent.futures
import csv
import io
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import nbformat

from ..checks import Feedback
from .errors import GradingError
from .notebooks import Exercise, load_exercises
from .sandbox import Sandbox, check_hidden, claimed_uid, sandbox_problem
from .scoring import GradeRow, compute_key, grade_submission


def _format_points(points: float) -> str:
    return f"{points:g}"


def write_gradebook(rows: list[GradeRow], exercises: list[Exercise], path: Path) -> None:
    """CSV with one row per student and notebook; question columns are ``notebook:question``."""
    columns = [f"{ex.name}:{s.id}" for ex in exercises for s in ex.specs]
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["student", "notebook", *columns, "total", "max", "status"])
    for row in sorted(rows, key=lambda r: (r.student, r.notebook)):
        stem = Path(row.notebook).stem
        points = {f"{stem}:{f.question}": _format_points(f.points) for f in row.feedback}
        writer.writerow([row.student, row.notebook, *(points.get(c, "") for c in columns),
                         _format_points(row.total), _format_points(row.max_points), row.status])
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(buffer.getvalue())


UNSANDBOXED = " (no sandbox)"  # appended to the status of every row graded with --no-sandbox

STATUS_TEXT = {
    "ok": "ran without errors",
    "incomplete": "ran; some questions still raise NotImplementedError",
    "error": "a cell raised an error, or the notebook's process died; the answers recorded before that were graded",
    "timeout": "stopped at the time limit; answers recorded before that were graded",
    "missing": "not submitted",
    "invalid-notebook": "the file is not a valid notebook",
}


def _status_text(status: str) -> str:
    return STATUS_TEXT.get(status.removesuffix(UNSANDBOXED), status)


def write_feedback(rows: list[GradeRow], folder: Path) -> list[Path]:
    """One Markdown feedback file per student."""
    folder.mkdir(parents=True, exist_ok=True)
    by_student: dict[str, list[GradeRow]] = {}
    for row in sorted(rows, key=lambda r: (r.student, r.notebook)):
        by_student.setdefault(row.student, []).append(row)
    paths = []
    for student, student_rows in by_student.items():
        lines = [f"# Feedback for {student}", ""]
        for row in student_rows:
            lines += [f"## {row.notebook}: {_format_points(row.total)} / {_format_points(row.max_points)}", "",
                      f"Status: {row.status} ({_status_text(row.status)}).", ""]
            lines += [f"- {f.question} ({_format_points(f.points)}/{_format_points(f.max_points)}): {f.message}"
                      for f in row.feedback]
            if row.errors:
                distinct = list(dict.fromkeys(row.errors))[:10]
                lines += ["", "Errors:", *(f"- `{e}`" for e in distinct)]
            lines.append("")
        path = folder / f"{student}.md"
        path.write_text("\n".join(lines))
        paths.append(path)
    return paths


def grade(source_dir: Path, submissions_dir: Path, out: Path, *, timeout: float = 300, jobs: int = 1,
          sandbox: bool = True, log: Callable[[str], None] = print) -> list[GradeRow]:
    """Grade every student's notebooks.

    Writes the gradebook CSV ``out`` and, beside it, ``feedback/<student>.md`` and the executed notebooks
    ``executed/<student>/<notebook>``. Each submission runs in the bubblewrap sandbox; without one this raises
    :class:`GradingError` unless ``sandbox=False``, which runs them unconfined as the current user and appends
    ``(no sandbox)`` to every status.
    """
    exercises = load_exercises(source_dir)
    if not submissions_dir.is_dir():
        raise GradingError(f"submissions folder {submissions_dir} does not exist")
    if sandbox:
        problem = sandbox_problem()
        if problem is not None:
            raise GradingError(f"no sandbox for the submissions: {problem}. Install bubblewrap (Debian/Ubuntu: "
                               "apt install bubblewrap) or, to run them unconfined as your user, where they can "
                               "read and change anything you can, pass --no-sandbox")
        check_hidden([source_dir, submissions_dir, out.parent])
    else:
        log("warning: --no-sandbox: submissions run as your user and can read or change anything you can; "
            f"the gradebook's status column says {UNSANDBOXED!r}")
    keys: dict[str, dict[str, Any]] = {}
    with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        for exercise, key in zip(exercises, pool.map(lambda ex: compute_key(ex, timeout=600), exercises), strict=True):
            keys[exercise.filename] = key
    students = sorted(p.name for p in submissions_dir.iterdir() if p.is_dir() and not p.name.startswith("."))
    jobs_list = [(student, ex) for student in students for ex in exercises]
    rows: list[GradeRow] = []

    def run(student: str, exercise: Exercise) -> GradeRow:
        path = submissions_dir / student / exercise.filename
        try:
            if not sandbox:
                row = grade_submission(exercise, keys[exercise.filename], student, path, timeout=timeout,
                                       sandbox=None)
                row.status += UNSANDBOXED
                return row
            if os.geteuid() != 0:
                return grade_submission(exercise, keys[exercise.filename], student, path, timeout=timeout,
                                        sandbox=Sandbox())
            with claimed_uid() as uid:
                return grade_submission(exercise, keys[exercise.filename], student, path, timeout=timeout,
                                        sandbox=Sandbox(uid))
        except Exception as exc:  # noqa: BLE001 - one bad submission never stops the run
            specs = exercise.specs
            return GradeRow(student, exercise.filename, "error",
                            [Feedback(s.id, False, "could not be graded.", 0.0, s.points) for s in specs],
                            [f"grader: {exc!r}"])

    with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        futures = [pool.submit(run, student, ex) for student, ex in jobs_list]
        for done, future in enumerate(concurrent.futures.as_completed(futures), start=1):
            row = future.result()
            rows.append(row)
            log(f"[{done}/{len(futures)}] {row.student}/{row.notebook}: {row.status}, "
                f"{_format_points(row.total)}/{_format_points(row.max_points)} ({row.seconds:.1f} s)")
    write_gradebook(rows, exercises, out)
    write_feedback(rows, out.parent / "feedback")
    for row in rows:  # what each submission printed, for the instructor to look into
        if row.executed is not None:
            target = out.parent / "executed" / row.student / row.notebook
            target.parent.mkdir(parents=True, exist_ok=True)
            nbformat.write(row.executed, target)
    return sorted(rows, key=lambda r: (r.student, r.notebook))
