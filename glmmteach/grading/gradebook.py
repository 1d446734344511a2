"""Grading a folder of submissions: the gradebook, totals, LMS exports, feedback and executed notebooks.

Files written beside the gradebook ``OUT`` (e.g. ``grades/gradebook.csv``):

* ``gradebook.csv``: one row per student and notebook, points per question (``notebook:question``), total,
  maximum and status (plus ``to_mark``, the free-text answers still to mark, when a notebook has any);
* ``totals.csv``: one row per student, the total of each notebook, the total, the maximum and the percentage;
* ``lms-canvas.csv`` (Canvas gradebook import: ``Student, ID, SIS User ID, SIS Login ID, Section``, a column
  per notebook and a ``Points Possible`` row) and ``lms-moodle.csv`` (Moodle CSV import: ``ID number``,
  ``Email address`` and a column per notebook, mapped in Moodle's import dialog);
* ``manual-answers.csv``: the free-text answers (``text`` questions) with a ``points`` column; copy it to
  ``marks.csv`` (or pass ``--marks``), fill in the points and grade again (or ``--student ID``) to merge them;
* ``warnings.txt``: misnamed or misplaced submissions, hidden folders, students not on the roster;
* ``feedback/<student>.md`` and ``executed/<student>/<notebook>``.
"""

from __future__ import annotations

import concurrent.futures
import csv
import io
import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import nbformat

from ..checks import MANUAL_KINDS, Feedback, make_public_key
from .errors import GradingError
from .keys import DEFAULT, KeyStore, check_student_id
from .notebooks import Exercise, load_exercises, setup_source
from .sandbox import Sandbox, check_hidden, claimed_uid, sandbox_problem
from .scoring import GradeRow, compute_key, grade_submission


def _format_points(points: float) -> str:
    return f"{points:g}"


def _columns(exercises: list[Exercise]) -> list[str]:
    return [f"{ex.name}:{s.id}" for ex in exercises for s in ex.specs]


def _has_manual(exercises: list[Exercise]) -> bool:
    return any(s.kind in MANUAL_KINDS for ex in exercises for s in ex.specs)


def gradebook_records(rows: list[GradeRow], exercises: list[Exercise]) -> list[dict[str, str]]:
    """The gradebook rows as dicts; free-text questions stay blank (see :func:`apply_marks`)."""
    manual = {(ex.name, s.id) for ex in exercises for s in ex.specs if s.kind in MANUAL_KINDS}
    records = []
    for row in rows:
        stem = Path(row.notebook).stem
        record = {"student": row.student, "notebook": row.notebook}
        for f in row.feedback:
            record[f"{stem}:{f.question}"] = "" if (stem, f.question) in manual else _format_points(f.points)
        record.update(max=_format_points(row.max_points), status=row.status)
        records.append(record)
    return apply_marks(records, exercises, [], {})


def apply_marks(records: list[dict[str, str]], exercises: list[Exercise], answers: list[dict[str, str]],
                marks: dict[tuple[str, str, str], float]) -> list[dict[str, str]]:
    """Put the instructor's marks in the free-text columns and recompute ``total`` (and ``to_mark``: the
    free-text answers given but not yet marked) of every record."""
    manual = [(ex.name, s.id) for ex in exercises for s in ex.specs if s.kind in MANUAL_KINDS]
    given = {(a["student"], Path(a["notebook"]).stem, a["question"]) for a in answers if a.get("answer")}
    for record in records:
        stem = Path(record["notebook"]).stem
        to_mark = 0
        for name, question in manual:
            if name != stem:
                continue
            mark = marks.get((record["student"], stem, question))
            record[f"{stem}:{question}"] = "" if mark is None else _format_points(mark)
            to_mark += mark is None and (record["student"], stem, question) in given
        columns = [c for c in record if c.startswith(f"{stem}:")]
        record["total"] = _format_points(sum(float(record[c] or 0) for c in columns))
        if manual:
            record["to_mark"] = str(to_mark)
    return records


def mark_feedback(rows: list[GradeRow], exercises: list[Exercise],
                  marks: dict[tuple[str, str, str], float]) -> None:
    """Put the instructor's marks of free-text answers into the rows' feedback (so that the feedback files'
    totals are the gradebook's)."""
    manual = {(ex.filename, s.id) for ex in exercises for s in ex.specs if s.kind in MANUAL_KINDS}
    for row in rows:
        for index, f in enumerate(row.feedback):
            mark = marks.get((row.student, Path(row.notebook).stem, f.question))
            if (row.notebook, f.question) in manual and mark is not None:
                row.feedback[index] = Feedback(f.question, mark == f.max_points, "marked by the instructor.", mark,
                                               f.max_points)


def write_records(records: list[dict[str, str]], exercises: list[Exercise], path: Path) -> None:
    """Write gradebook records (sorted by student and notebook) as the gradebook CSV."""
    header = ["student", "notebook", *_columns(exercises), "total", "max", "status"]
    if _has_manual(exercises):
        header.append("to_mark")
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    for record in sorted(records, key=lambda r: (r["student"], r["notebook"])):
        writer.writerow([record.get(column, "") for column in header])
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(buffer.getvalue())


UNSANDBOXED = " (no sandbox)"  # appended to the status of every row graded with --no-sandbox

def write_gradebook(rows: list[GradeRow], exercises: list[Exercise], path: Path) -> None:
    """CSV with one row per student and notebook; question columns are ``notebook:question``."""
    write_records(gradebook_records(rows, exercises), exercises, path)


def read_records(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as handle:
        return list(csv.DictReader(handle))


def write_totals(records: list[dict[str, str]], exercises: list[Exercise], folder: Path,
                 roster: list[dict[str, str]]) -> list[Path]:
    """``totals.csv`` (one row per student) and the LMS imports ``lms-canvas.csv`` and ``lms-moodle.csv``."""
    notebooks = [ex.name for ex in exercises]
    maxima = {ex.name: sum(s.points for s in ex.specs) for ex in exercises}
    people = {row["student"]: row for row in roster}
    totals: dict[str, dict[str, float]] = {}
    for record in records:
        totals.setdefault(record["student"], {})[Path(record["notebook"]).stem] = float(record["total"] or 0)
    for student in people:
        totals.setdefault(student, {})
    grand_max = sum(maxima.values())

    def table(header: list[str], lines: list[list[str]]) -> str:
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(header)
        writer.writerows(lines)
        return buffer.getvalue()

    students = sorted(totals)
    paths = [folder / "totals.csv", folder / "lms-canvas.csv", folder / "lms-moodle.csv"]
    per = {s: [_format_points(totals[s].get(n, 0.0)) for n in notebooks] for s in students}
    grand = {s: sum(totals[s].get(n, 0.0) for n in notebooks) for s in students}
    paths[0].write_text(table(
        ["student", *notebooks, "total", "max", "percent"],
        [[s, *per[s], _format_points(grand[s]), _format_points(grand_max),
          f"{100 * grand[s] / grand_max:.1f}" if grand_max else ""] for s in students]))
    canvas_lines = [["Points Possible", "", "", "", "", *(_format_points(maxima[n]) for n in notebooks)]]
    for s in students:
        person = people.get(s, {})
        canvas_lines.append([person.get("name") or s, person.get("canvas_id", ""), person.get("sis_id") or s,
                             person.get("sis_login_id", ""), person.get("section", ""), *per[s]])
    paths[1].write_text(table(["Student", "ID", "SIS User ID", "SIS Login ID", "Section",
                               *(f"{n} ({_format_points(maxima[n])} points)" for n in notebooks)], canvas_lines))
    paths[2].write_text(table(["ID number", "Email address", *notebooks],
                              [[s, people.get(s, {}).get("email", ""), *per[s]] for s in students]))
    return paths


def read_marks(path: Path, exercises: list[Exercise]) -> tuple[dict[tuple[str, str, str], float], list[str]]:
    """The instructor's marks of free-text answers (columns ``student``, ``notebook``, ``question``,
    ``points``; blank points are unmarked), with a warning per unusable line."""
    maxima = {(ex.name, s.id): s.points for ex in exercises for s in ex.specs if s.kind in MANUAL_KINDS}
    marks: dict[tuple[str, str, str], float] = {}
    problems = []
    for number, line in enumerate(read_records(path), start=2):
        stem = Path(line.get("notebook") or "").stem
        where = f"{path.name}, line {number}"
        text = (line.get("points") or "").strip()
        if not text:
            continue
        if (stem, line.get("question")) not in maxima:
            problems.append(f"{where}: no free-text question {line.get('question')!r} in {stem!r}")
            continue
        try:
            points = float(text)
        except ValueError:
            problems.append(f"{where}: points {text!r} is not a number")
            continue
        if not 0 <= points <= maxima[(stem, line["question"])]:
            problems.append(f"{where}: points {text} outside 0..{_format_points(maxima[(stem, line['question'])])}")
            continue
        marks[(line.get("student") or "", stem, line["question"])] = points
    return marks, problems


def manual_answers(rows: list[GradeRow], exercises: list[Exercise]) -> list[dict[str, str]]:
    """The free-text answers of ``rows`` (one line per student and question) for the instructor to mark."""
    manual = {(ex.filename, s.id) for ex in exercises for s in ex.specs if s.kind in MANUAL_KINDS}
    maxima = {(ex.filename, s.id): s.points for ex in exercises for s in ex.specs}
    lines = []
    for row in rows:
        for f in row.feedback:
            if (row.notebook, f.question) in manual:
                answer = row.answers.get(f.question)
                lines.append({"student": row.student, "notebook": row.notebook, "question": f.question,
                              "max": _format_points(maxima[(row.notebook, f.question)]),
                              "answer": answer if isinstance(answer, str) else "", "points": ""})
    return lines


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
                heading = "Note:" if row.status.startswith("missing") else "Errors:"
                lines += ["", heading, *(f"- `{e}`" for e in distinct)]
            lines.append("")
        path = folder / f"{student}.md"
        path.write_text("\n".join(lines))
        paths.append(path)
    return paths


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
    for name in folders:
        try:
            check_student_id(name)
        except GradingError:
            warnings.append(f"student folder {name!r}: unusual name (graded, but LMS imports may not match it)")
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
          student: str | None = None, marks: Path | None = None) -> list[GradeRow]:
    """Grade every student's notebooks (or only ``student``'s, updating the files of an earlier run).

    Keys come from the key store ``keys_dir`` written by ``release`` (required for exercises with variants);
    without one they are computed once and kept in ``<out folder>/keys``. Free-text marks are merged from
    ``marks`` (default ``<out folder>/marks.csv`` when it exists). See the module docstring for the files.

    Each submission runs in the bubblewrap sandbox; without one this raises :class:`GradingError` unless
    ``sandbox=False``, which runs them unconfined as the current user and appends ``(no sandbox)`` to every
    status.
    """
    exercises = load_exercises(source_dir)
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
    if keys_dir is None and any(ex.variants for ex in exercises):
        log("warning: no key store from `release` (--keys): exercises with variants are graded on the course "
            "data, which is right only if they were released without a roster")
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
            log(f"[{done}/{len(futures)}] {row.student}/{row.notebook}: {row.status}, "
                f"{_format_points(row.total)}/{_format_points(row.max_points)} ({row.seconds:.1f} s)")
    rows.sort(key=lambda r: (r.student, r.notebook))
    warnings += write_outputs(rows, exercises, out, roster=store.roster, student=student, marks=marks)
    (folder / "warnings.txt").write_text("".join(f"{w}\n" for w in warnings))
    for warning in warnings:
        log(f"warning: {warning}")
    return rows


def write_outputs(rows: list[GradeRow], exercises: list[Exercise], out: Path, *, roster: list[dict[str, str]],
                  student: str | None, marks: Path | None) -> list[str]:
    """Write the gradebook and the files beside it (merging an earlier run's rows when grading one
    ``student``, and the instructor's marks); return warnings about the marks."""
    folder = out.parent
    warnings: list[str] = []
    records = gradebook_records(rows, exercises)
    answers = manual_answers(rows, exercises)
    if student is not None:  # keep everyone else's rows from the earlier run
        records = [r for r in read_records(out) if r["student"] != student] + records
        answers_path = folder / "manual-answers.csv"
        if answers_path.is_file():
            answers = [r for r in read_records(answers_path) if r["student"] != student] + answers
    marks_path = marks if marks is not None else folder / "marks.csv"
    mark_values: dict[tuple[str, str, str], float] = {}
    if marks_path.is_file():
        mark_values, problems = read_marks(marks_path, exercises)
        warnings = problems
    records = apply_marks(records, exercises, answers, mark_values)
    mark_feedback(rows, exercises, mark_values)
    for line in answers:
        mark = mark_values.get((line["student"], Path(line["notebook"]).stem, line["question"]))
        line["points"] = "" if mark is None else _format_points(mark)
    write_records(records, exercises, out)
    write_totals(records, exercises, folder, roster)
    if _has_manual(exercises):
        write_table(folder / "manual-answers.csv", ["student", "notebook", "question", "max", "answer", "points"],
                    sorted(answers, key=lambda r: (r["student"], r["notebook"], r["question"])))
    write_feedback(rows, folder / "feedback")
    for row in rows:  # what each submission printed, for the instructor to look into
        if row.executed is not None:
            target = folder / "executed" / row.student / row.notebook
            target.parent.mkdir(parents=True, exist_ok=True)
            nbformat.write(row.executed, target)
    return warnings


def write_table(path: Path, header: list[str], records: list[dict[str, str]]) -> None:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=header, lineterminator="\n", extrasaction="ignore")
    writer.writeheader()
    writer.writerows(records)
    path.write_text(buffer.getvalue())
