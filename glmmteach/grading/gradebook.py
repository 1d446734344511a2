"""Grading a folder of submissions: the gradebook, totals, LMS exports, feedback and executed notebooks.

Files written beside the gradebook ``OUT`` (e.g. ``grades/gradebook.csv``):

* ``gradebook.csv``: one row per student and notebook, points per question (``notebook:question``), total,
  maximum and status (plus ``to_mark``, the free-text answers still to mark, when a notebook has any, and
  the late columns of :func:`~glmmteach.grading.export.apply_late` with a course file,
  :mod:`~glmmteach.grading.late`);
* ``totals.csv``: one row per student, the total of each notebook, the total, the maximum and the percentage;
* ``lms-canvas.csv`` (Canvas gradebook import: ``Student, ID, SIS User ID, SIS Login ID, Section``, a column
  per notebook and a ``Points Possible`` row) and ``lms-moodle.csv`` (Moodle CSV import: ``ID number``,
  ``Email address`` and a column per notebook, mapped in Moodle's import dialog);
* ``manual-answers.csv``: the free-text answers (``text`` questions) with a ``points`` column; copy it to
  ``marks.csv`` (or pass ``--marks``), fill in the points and grade again (or ``--student ID``) to merge them;
* ``warnings.txt``: misnamed or misplaced submissions, hidden folders, students not on the roster, folder
  names an LMS would confuse or that are not UTF-8, files not written;
* ``feedback/<student>.md`` and ``feedback/<student>.html`` (the same feedback, escaped HTML), and
  ``executed/<student>/<notebook>``.

This module runs a grading (which students, which keys, the sandboxed runs, in what order files are
written); :mod:`~glmmteach.grading.export` writes the files, safely (atomic, escaped, no spreadsheet
formula).
"""

from __future__ import annotations

import concurrent.futures
import os
import re
import time
import unicodedata
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import nbformat

from ..checks import Feedback, make_public_key
from .errors import GradingError
from .export import (
    UNSANDBOXED,
    apply_late,
    apply_marks,
    feedback_name,
    format_points,
    gradebook_records,
    has_manual,
    manual_answers,
    mark_feedback,
    printable,
    read_marks,
    read_records,
    without_surrogates,
    write_atomic,
    write_records,
    write_student_feedback,
    write_table,
    write_totals,
)
from .keys import DEFAULT, KeyStore, check_student_id
from .late import TIMES_FILE, Course, read_course, read_times
from .notebooks import Exercise, load_exercises, setup_source
from .runner import sandbox_problem
from .sandbox import Sandbox, check_hidden, claimed_uid
from .scoring import GradeRow, compute_key, grade_submission

_COPY_SUFFIX = re.compile(r"(\s*\(\d+\)|\s*-\s*copy(\s*\d+)?|\s+copy(\s*\d+)?)$", re.I)


def _normalised(name: str) -> str:
    """A notebook file name as a student may have mangled it: case, copies ("x (1)", "x - Copy"), doubled
    extension, spaces."""
    stem = name
    while stem.lower().endswith(".ipynb"):
        stem = stem[: -len(".ipynb")]
    stem = _COPY_SUFFIX.sub("", stem.strip()).removesuffix("-checkpoint")  # Jupyter's checkpoint copies
    if stem.lower().startswith("copy of "):
        stem = stem[len("copy of "):]
    return re.sub(r"[\s_-]+", "_", stem.lower())


def name_warnings(folders: list[str]) -> list[str]:
    """Warnings about student folder names: bytes that are not UTF-8 (written escaped), spaces or control
    characters, names outside the usual id alphabet, and names that differ only by case or Unicode
    normalisation (``café`` written two ways, ``Alice``/``alice``), which an LMS would take for one student."""
    warnings = []
    for name in folders:
        shown = printable(name)
        if shown != name:
            warnings.append(f"student folder {shown!r} is not valid UTF-8 (as unzip makes from a Windows zip): "
                            f"graded, and written as {shown!r} (bytes as \\xNN) in every file")
        if name != name.strip() or any(unicodedata.category(c).startswith("C") for c in shown):
            warnings.append(f"student folder {shown!r} holds a leading or trailing space, a newline, a tab or "
                            "another control character: graded, but an LMS will not match it; rename the folder")
            continue
        try:
            check_student_id(shown)
        except GradingError:
            warnings.append(f"student folder {shown!r}: unusual name (graded, but LMS imports may not match it)")
    groups: dict[str, list[str]] = {}
    for name in folders:
        groups.setdefault(unicodedata.normalize("NFKC", printable(name)).casefold().strip(), []).append(name)
    for similar in groups.values():
        if len(similar) > 1:
            shown = " and ".join(repr(printable(n)) for n in similar)
            warnings.append(f"student folders {shown} differ only by case, spaces or Unicode normalisation: "
                            "graded as different students, but they may be one (an LMS or a spreadsheet may "
                            "merge them); check and merge or rename the folders")
    return warnings


def survey_submissions(submissions_dir: Path, exercises: list[Exercise], roster: list[str]
                       ) -> tuple[list[str], dict[tuple[str, str], str], list[str]]:
    """The students to grade, notes for expected notebooks that look misnamed or misplaced, and warnings.

    Students are the (non-hidden) folders of ``submissions_dir`` and everyone on the roster. A notebook that
    is not under its released name in the student's folder — different case, ``name (1).ipynb``, a doubled
    ``.ipynb``, in a subfolder — is not graded (the file the student meant is for the student to confirm),
    but its row and the warnings name it; so do notebooks outside a student folder and hidden folders.
    """
    warnings: list[str] = []
    by_name = {_normalised(ex.filename): ex.filename for ex in exercises}
    expected = {ex.filename for ex in exercises}
    folders = []
    for entry in sorted(submissions_dir.iterdir()):
        if entry.name.startswith("."):
            if entry.is_dir() and any(entry.rglob("*.ipynb")):
                warnings.append(f"hidden folder {entry.name!r} holds notebooks and is not graded (a student "
                                "folder's name must not start with a dot)")
            continue
        if entry.is_dir():
            folders.append(entry.name)
        elif entry.name.lower().endswith(".ipynb"):
            warnings.append(f"{entry.name!r} lies outside any student folder and is not graded (put it in "
                            "submissions/<student>/)")
    warnings += name_warnings(folders)
    if roster:
        strangers = sorted(set(folders) - set(roster))
        if strangers:
            warnings.append(f"student folders not on the roster (graded on the course data for exercises "
                            f"with variants): {strangers}")
    notes: dict[tuple[str, str], str] = {}
    for student in folders:
        folder = submissions_dir / student
        for path in sorted(folder.rglob("*.ipynb")):
            relative = path.relative_to(folder)
            if len(relative.parts) == 1 and path.name in expected:
                continue
            target = by_name.get(_normalised(path.name))
            hidden = any(part.startswith(".") for part in relative.parts[:-1])
            where = f"{student}/{relative.as_posix()}"
            if target is None:
                warnings.append(f"{where}: not one of the released notebooks; not graded")
                continue
            if (folder / target).is_file():
                warnings.append(f"{where}: looks like another copy of {target}; only {target} is graded")
                continue
            why = "a Jupyter checkpoint copy" if ".ipynb_checkpoints" in relative.parts else (
                "in a hidden folder" if hidden else "in a subfolder" if len(relative.parts) > 1 else "misnamed")
            note = f"found {relative.as_posix()!r} ({why}); rename or move it to {target} and regrade"
            notes[(student, target)] = note
            warnings.append(f"{where}: {why}, looks like {target}, which is missing: not graded")
    return sorted(set(folders) | set(roster)), notes, warnings


def grade(source_dir: Path, submissions_dir: Path, out: Path, *, timeout: float = 300, jobs: int = 1,
          sandbox: bool = True, log: Callable[[str], None] = print, keys_dir: Path | None = None,
          student: str | None = None, marks: Path | None = None, course: Path | None = None,
          times: Path | None = None) -> list[GradeRow]:
    """Grade every student's notebooks (or only ``student``'s, updating the files of an earlier run).

    Keys come from the key store ``keys_dir`` written by ``release`` (required for exercises with variants);
    without one they are computed once and kept in ``<out folder>/keys``. Free-text marks are merged from
    ``marks`` (default ``<out folder>/marks.csv`` when it exists). See the module docstring for the files.

    Each submission runs in the bubblewrap sandbox; without one this raises :class:`GradingError` unless
    ``sandbox=False``, which runs them unconfined as the current user and appends ``(no sandbox)`` to every
    status.
    """
    exercises = load_exercises(source_dir)
    policy = read_course(course) if course is not None else None
    if policy is not None:
        unknown = sorted(set(policy.sets) - {ex.name for ex in exercises})
        if unknown:
            raise GradingError(f"course file {course}: no source notebook for set(s) {unknown} in {source_dir}")
    times_path = times if times is not None else submissions_dir / TIMES_FILE
    if times is not None and not times.is_file():
        raise GradingError(f"submission times file {times} does not exist")
    submitted = read_times(times_path) if policy is not None and times_path.is_file() else {}
    with_variants = [ex.filename for ex in exercises if ex.variants]
    if keys_dir is None and with_variants:
        # without the release's key store every student would be graded on the course data, not their own
        raise GradingError(f"{', '.join(with_variants)} in {source_dir} give each student their own data: pass "
                           "--keys KEYS_DIR, the key store `glmmteach release` wrote (by default RELEASE-keys "
                           "beside the release folder; its last line says where)")
    if not submissions_dir.is_dir():
        raise GradingError(f"submissions folder {submissions_dir} does not exist")
    if marks is not None and not marks.is_file():
        raise GradingError(f"marks file {marks} does not exist")
    folder = out.parent
    if sandbox:
        problem = sandbox_problem()
        if problem is not None:
            raise GradingError(f"no sandbox for the submissions: {problem}. Install bubblewrap (Debian/Ubuntu: "
                               "apt install bubblewrap) or, to run them unconfined as your user, where they can "
                               "read and change anything you can, pass --no-sandbox")
        check_hidden([source_dir, submissions_dir, folder, folder / "keys" if keys_dir is None else keys_dir])
    else:
        log("warning: --no-sandbox: submissions run as your user and can read or change anything you can; "
            f"the gradebook's status column says {UNSANDBOXED!r}")
    store = KeyStore.open(keys_dir, create=False) if keys_dir is not None else KeyStore.open(folder / "keys",
                                                                                          create=True)
    roster = store.students
    students, notes, warnings = survey_submissions(submissions_dir, exercises, roster)
    if student is not None:
        if student not in students:
            raise GradingError(f"no student {student!r} in {submissions_dir} or on the roster")
        if not out.is_file():
            raise GradingError(f"--student updates an earlier run's gradebook, and {out} does not exist")
        students = [student]

    def owner_of(exercise: Exercise, student: str) -> str:
        """Whose key grades ``student``: their own for an exercise with variants released to them, else the
        course data's (students off the roster were given the course data)."""
        return student if exercise.variants and keys_dir is not None and student in roster else DEFAULT

    owners = {(ex.filename, owner_of(ex, s)) for ex in exercises for s in students}
    missing_keys = [(ex, owner) for ex in exercises for (name, owner) in sorted(owners)
                    if name == ex.filename and not store.has_key(ex, owner)]
    if missing_keys:
        log(f"computing {len(missing_keys)} key(s) (kept in {store.folder} for later runs)")

    def key_of(exercise: Exercise, owner: str) -> tuple[dict[str, Any], int | None]:
        return store.key(exercise, owner, lambda seed: compute_key(exercise, timeout=600, seed=seed))

    with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        list(pool.map(lambda item: key_of(*item), missing_keys))
    rows: list[GradeRow] = []

    def run(student: str, exercise: Exercise) -> GradeRow:
        started = time.monotonic()
        row = grade_one(student, exercise)
        row.seconds = time.monotonic() - started  # the whole row, reading the submission included
        return row

    def grade_one(student: str, exercise: Exercise) -> GradeRow:
        path = submissions_dir / student / exercise.filename
        try:
            key, seed = key_of(exercise, owner_of(exercise, student))
            setup = setup_source(exercise, make_public_key(exercise.name, exercise.specs, key, seed))
            arguments = {"timeout": timeout, "setup": setup, "note": notes.get((student, exercise.filename))}
            if not sandbox:
                row = grade_submission(exercise, key, student, path, sandbox=None, **arguments)
                row.status += UNSANDBOXED
                return row
            if os.geteuid() != 0:
                return grade_submission(exercise, key, student, path, sandbox=Sandbox(), **arguments)
            with claimed_uid() as uid:
                return grade_submission(exercise, key, student, path, sandbox=Sandbox(uid), **arguments)
        except Exception as exc:  # noqa: BLE001 - one bad submission never stops the run
            specs = exercise.specs
            return GradeRow(student, exercise.filename, "error",
                            [Feedback(s.id, False, "could not be graded.", 0.0, s.points) for s in specs],
                            [f"grader: {exc!r}"])

    jobs_list = [(s, ex) for s in students for ex in exercises]
    with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        futures = [pool.submit(run, s, ex) for s, ex in jobs_list]
        for done, future in enumerate(concurrent.futures.as_completed(futures), start=1):
            row = future.result()
            rows.append(row)
            log(f"[{done}/{len(futures)}] {printable(row.student)}/{row.notebook}: {row.status}, "
                f"{format_points(row.total)}/{format_points(row.max_points)} ({row.seconds:.1f} s)")
    rows.sort(key=lambda r: (r.student, r.notebook))
    late = None if policy is None else (policy, submitted)
    warnings += write_outputs(rows, exercises, out, roster=store.roster, student=student, marks=marks, late=late)
    write_atomic(folder / "warnings.txt", "".join(f"{w}\n" for w in warnings))
    for warning in warnings:
        log(f"warning: {warning}")
    return rows


def write_outputs(rows: list[GradeRow], exercises: list[Exercise], out: Path, *, roster: list[dict[str, str]],
                  student: str | None, marks: Path | None,
                  late: tuple[Course, dict[tuple[str, str], datetime]] | None = None) -> list[str]:
    """Write the gradebook and the files beside it (merging an earlier run's rows when grading one
    ``student``, and the instructor's marks); return warnings about the marks and about files not written.

    Each student's own files come first, each in its own ``try``: a failure there is that student's status
    (``... (files not written)``), and the gradebook written after them says so. Every file is replaced
    atomically, so a run that fails before the end leaves the previous gradebook as it was.
    """
    folder = out.parent
    warnings: list[str] = []
    answers = manual_answers(rows, exercises)
    marks_path = marks if marks is not None else folder / "marks.csv"
    mark_values: dict[tuple[str, str, str], float] = {}
    if marks_path.is_file():
        mark_values, warnings = read_marks(marks_path, exercises)
    mark_feedback(rows, exercises, mark_values)
    warnings += write_student_files(rows, folder)
    records = gradebook_records(rows, exercises)
    if student is not None:  # keep everyone else's rows from the earlier run
        records = [r for r in read_records(out) if r["student"] != student] + records
        answers_path = folder / "manual-answers.csv"
        if answers_path.is_file():
            answers = [r for r in read_records(answers_path) if r["student"] != student] + answers
    records = apply_marks(records, exercises, answers, mark_values)
    for line in answers:
        mark = mark_values.get((line["student"], Path(line["notebook"]).stem, line["question"]))
        line["points"] = "" if mark is None else format_points(mark)
    if late is not None:
        apply_late(records, exercises, *late)
    write_records(records, exercises, out, late=late is not None)
    write_totals(records, exercises, folder, roster, None if late is None else late[0])
    if has_manual(exercises):
        write_table(folder / "manual-answers.csv", ["student", "notebook", "question", "max", "answer", "points"],
                    sorted(answers, key=lambda r: (r["student"], r["notebook"], r["question"])))
    return warnings


NOT_WRITTEN = " (files not written)"


def write_student_files(rows: list[GradeRow], folder: Path) -> list[str]:
    """Each student's feedback and executed notebooks; a student whose files fail gets a warning and
    ``(files not written)`` in their rows' status, and the others are written all the same."""
    warnings = []
    by_student: dict[str, list[GradeRow]] = {}
    for row in rows:
        by_student.setdefault(row.student, []).append(row)
    for student, student_rows in sorted(by_student.items()):
        try:
            for row in student_rows:  # what each submission printed, for the instructor to look into
                if row.executed is not None:
                    target = folder / "executed" / feedback_name(student) / row.notebook
                    write_atomic(target, without_surrogates(nbformat.writes(row.executed)))
            write_student_feedback(student, student_rows, folder / "feedback")
        except Exception as exc:  # noqa: BLE001 - one student's files never stop the others' or the gradebook
            for row in student_rows:
                row.status += NOT_WRITTEN
            warnings.append(f"student {printable(student)!r}: feedback or executed notebook not written "
                            f"({printable(repr(exc))[:300]})")
    return warnings
