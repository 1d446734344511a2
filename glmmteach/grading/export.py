"""What ``grade`` writes and reads back: gradebook records, totals, LMS imports, free-text answers, feedback.

Everything here treats names, answers and messages as untrusted text (they come from folder names and from
what a submission printed or recorded):

* any text is written whatever characters it holds: a folder name that is not valid UTF-8 (as unzip makes
  from a Windows zip) shows its undecodable bytes as ``\\xNN``, a lone surrogate as ``\\udNNN``
  (:func:`printable`); the grader's warnings say which names were escaped;
* every CSV cell a spreadsheet would evaluate (a leading ``=``, ``+``, ``-``, ``@``, tab or carriage return:
  OWASP's rule for CSV injection) is prefixed with ``'``, as is a cell that starts with ``'`` itself, so the
  true value is recovered by dropping one leading ``'`` (:func:`cell_value`, used when the grader reads its
  own files or the instructor's marks);
* Markdown feedback escapes what a student wrote (no heading, link, HTML or fake feedback line can come from
  it), and the HTML feedback escapes it as HTML;
* every file is written to a temporary name beside it and renamed (:func:`write_atomic`), so a failing or
  interrupted run leaves the previous file whole.
"""

from __future__ import annotations

import csv
import html
import os
import re
import tempfile
from collections.abc import Iterable
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from ..checks import MANUAL_KINDS, Feedback
from .notebooks import Exercise
from .scoring import GradeRow

if TYPE_CHECKING:  # late.py reads its CSVs with this module's reader
    from .late import Course

UNSANDBOXED = " (no sandbox)"  # appended to the status of every row graded with --no-sandbox
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")

STATUS_TEXT = {
    "ok": "ran without errors",
    "incomplete": "ran; some questions still raise NotImplementedError",
    "error": "a cell raised an error, or the notebook's process died; the answers recorded before that were graded",
    "timeout": "stopped at the time limit; answers recorded before that were graded",
    "missing": "not submitted",
    "invalid-notebook": "the file is not a valid notebook",
}

_SURROGATE = re.compile("[\ud800-\udfff]")


def printable(text: str) -> str:
    """``text`` with every character UTF-8 cannot encode escaped: bytes that ``os.fsdecode`` could not
    decode (surrogate escapes) as ``\\xNN``, any other lone surrogate as ``\\udNNN``."""

    def escape(match: re.Match[str]) -> str:
        code = ord(match[0])
        return f"\\x{code - 0xDC00:02x}" if 0xDC80 <= code <= 0xDCFF else f"\\u{code:04x}"

    return _SURROGATE.sub(escape, text)


def without_surrogates(text: str) -> str:
    """``text`` with each lone surrogate replaced by U+FFFD (for JSON that other tools must read)."""
    return _SURROGATE.sub("\ufffd", text)


def write_atomic(path: Path, text: str) -> None:
    """Write ``text`` (UTF-8, unencodable characters escaped) to a temporary file beside ``path``, then
    rename it over ``path``: readers see the old file or the new one, never a part."""
    path.parent.mkdir(parents=True, exist_ok=True)
    data = printable(text).encode("utf-8")
    descriptor, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(descriptor, "wb") as handle:
            handle.write(data)
        os.chmod(temporary, 0o644)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def safe_cell(value: str) -> str:
    """A CSV cell no spreadsheet evaluates: ``'`` before a formula-like start (or a leading ``'``)."""
    value = printable(value)
    return "'" + value if value.startswith((*FORMULA_START, "'")) else value


def cell_value(cell: str) -> str:
    """The true value of a cell written by :func:`safe_cell` (also of a cell the instructor typed)."""
    return cell[1:] if cell.startswith("'") and cell[1:].startswith((*FORMULA_START, "'")) else cell


def _quoted(cell: str) -> str:
    # quoted by hand: Python 3.11's csv writer leaves a carriage return unquoted when lines end in "\n"
    return '"' + cell.replace('"', '""') + '"' if any(c in cell for c in ',"\r\n') else cell


def csv_text(header: list[str], lines: Iterable[list[str]]) -> str:
    """CSV text (comma-separated, ``\n`` line ends, minimal quoting) of safe cells."""
    return "".join(",".join(_quoted(safe_cell(str(c))) for c in line) + "\n" for line in [header, *lines])


def write_table(path: Path, header: list[str], records: list[dict[str, str]]) -> None:
    """A CSV with ``header``'s columns of ``records`` (missing cells blank), every cell made safe."""
    write_atomic(path, csv_text(header, ([record.get(c, "") for c in header] for record in records)))


def read_records(path: Path) -> list[dict[str, str]]:
    """A CSV the grader wrote (or the instructor filled in), with the true cell values."""
    with path.open(newline="", encoding="utf-8", errors="surrogateescape") as handle:
        return [{cell_value(k): cell_value(v or "") for k, v in row.items() if k is not None}
                for row in csv.DictReader(handle)]


def format_points(points: float) -> str:
    return f"{points:g}"


def columns(exercises: list[Exercise]) -> list[str]:
    return [f"{ex.name}:{s.id}" for ex in exercises for s in ex.specs]


def has_manual(exercises: list[Exercise]) -> bool:
    return any(s.kind in MANUAL_KINDS for ex in exercises for s in ex.specs)


def gradebook_records(rows: list[GradeRow], exercises: list[Exercise]) -> list[dict[str, str]]:
    """The gradebook rows as dicts; free-text questions stay blank (see :func:`apply_marks`)."""
    manual = {(ex.name, s.id) for ex in exercises for s in ex.specs if s.kind in MANUAL_KINDS}
    records = []
    for row in rows:
        stem = Path(row.notebook).stem
        record = {"student": row.student, "notebook": row.notebook}
        for f in row.feedback:
            record[f"{stem}:{f.question}"] = "" if (stem, f.question) in manual else format_points(f.points)
        record.update(max=format_points(row.max_points), status=row.status)
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
            record[f"{stem}:{question}"] = "" if mark is None else format_points(mark)
            to_mark += mark is None and (record["student"], stem, question) in given
        question_columns = [c for c in record if c.startswith(f"{stem}:")]
        record["total"] = format_points(sum(float(record[c] or 0) for c in question_columns))
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


def apply_late(records: list[dict[str, str]], exercises: list[Exercise], course: Course,
               times: dict[tuple[str, str], datetime]) -> None:
    """Late penalties: each record's ``submitted``, ``late_days``, ``late_penalty`` (points taken off: the
    policy's fraction of the set's maximum, never below zero) and ``total`` after it (``raw_total`` before)."""
    maxima = {ex.name: sum(s.points for s in ex.specs) for ex in exercises}
    for record in records:
        stem, student = Path(record["notebook"]).stem, record["student"]
        submitted = times.get((student, record["notebook"]))
        days = course.late_days(stem, student, submitted)
        raw = float(record["total"] or 0)
        penalty = min(raw, course.penalty(days) * maxima.get(stem, 0.0))
        record.update(submitted="" if submitted is None else submitted.isoformat(), late_days=str(days),
                      late_penalty=format_points(round(penalty, 9)), raw_total=format_points(raw),
                      total=format_points(round(raw - penalty, 9)))


def write_records(records: list[dict[str, str]], exercises: list[Exercise], path: Path, *,
                  late: bool = False) -> None:
    """Write gradebook records (sorted by student and notebook) as the gradebook CSV (with the late columns of
    :func:`apply_late` when ``late``)."""
    header = ["student", "notebook", *columns(exercises),
              *(["raw_total", "submitted", "late_days", "late_penalty"] if late else []), "total", "max", "status"]
    if has_manual(exercises):
        header.append("to_mark")
    write_table(path, header, sorted(records, key=lambda r: (r["student"], r["notebook"])))


def write_gradebook(rows: list[GradeRow], exercises: list[Exercise], path: Path) -> None:
    """CSV with one row per student and notebook; question columns are ``notebook:question``."""
    write_records(gradebook_records(rows, exercises), exercises, path)


def write_totals(records: list[dict[str, str]], exercises: list[Exercise], folder: Path,
                 roster: list[dict[str, str]], course: Course | None = None) -> list[Path]:
    """``totals.csv`` (one row per student) and the LMS imports ``lms-canvas.csv`` and ``lms-moodle.csv``.

    With a ``course``, only its graded sets count, and ``percent`` weighs each set's share by its weight."""
    if course is not None:
        exercises = [ex for ex in exercises if course.graded(ex.name)]
    notebooks = [ex.name for ex in exercises]
    maxima = {ex.name: sum(s.points for s in ex.specs) for ex in exercises}
    people = {row["student"]: row for row in roster}
    totals: dict[str, dict[str, float]] = {}
    for record in records:
        totals.setdefault(record["student"], {})[Path(record["notebook"]).stem] = float(record["total"] or 0)
    for student in people:
        totals.setdefault(student, {})
    grand_max = sum(maxima.values())
    students = sorted(totals)
    paths = [folder / "totals.csv", folder / "lms-canvas.csv", folder / "lms-moodle.csv"]
    per = {s: [format_points(totals[s].get(n, 0.0)) for n in notebooks] for s in students}
    grand = {s: sum(totals[s].get(n, 0.0) for n in notebooks) for s in students}
    weights = {n: 1.0 if course is None else course.sets[n].weight for n in notebooks}
    weighed = sum(weights[n] for n in notebooks if maxima[n])

    def percent(student: str) -> str:
        if course is None:
            return f"{100 * grand[student] / grand_max:.1f}" if grand_max else ""
        shares = sum(weights[n] * totals[student].get(n, 0.0) / maxima[n] for n in notebooks if maxima[n])
        return f"{100 * shares / weighed:.1f}" if weighed else ""

    write_atomic(paths[0], csv_text(
        ["student", *notebooks, "total", "max", "percent"],
        [[s, *per[s], format_points(grand[s]), format_points(grand_max), percent(s)] for s in students]))
    canvas_lines = [["Points Possible", "", "", "", "", *(format_points(maxima[n]) for n in notebooks)]]
    for s in students:
        person = people.get(s, {})
        canvas_lines.append([person.get("name") or s, person.get("canvas_id", ""), person.get("sis_id") or s,
                             person.get("sis_login_id", ""), person.get("section", ""), *per[s]])
    write_atomic(paths[1], csv_text(["Student", "ID", "SIS User ID", "SIS Login ID", "Section",
                                     *(f"{n} ({format_points(maxima[n])} points)" for n in notebooks)],
                                    canvas_lines))
    write_atomic(paths[2], csv_text(["ID number", "Email address", *notebooks],
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
            problems.append(f"{where}: points {text} outside 0..{format_points(maxima[(stem, line['question'])])}")
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
                              "max": format_points(maxima[(row.notebook, f.question)]),
                              "answer": answer if isinstance(answer, str) else "", "points": ""})
    return lines


def status_text(status: str) -> str:
    return STATUS_TEXT.get(status.split(" (")[0], status)  # without "(no sandbox)" or "(files not written)"


# Markdown: the ASCII punctuation that can start markup inside a line (links, emphasis, code, HTML, entities,
# tables), escaped with a backslash (CommonMark allows it before any); a line's start is always the grader's.
_MARKDOWN_SPECIAL = re.compile(r"([\\`*_\[\]<>#|~&])")


def markdown_text(text: str) -> str:
    """Untrusted text as one line of literal Markdown: line breaks become spaces, markup is escaped."""
    return _MARKDOWN_SPECIAL.sub(r"\\\1", " ".join(printable(text).split()))


def markdown_code(text: str) -> str:
    """Untrusted text as a one-line Markdown code span (its backticks fenced by a longer run)."""
    line = " ".join(printable(text).split())
    fence = "`" * (max((len(run) for run in re.findall("`+", line)), default=0) + 1)
    return f"{fence}{line}{fence}" if fence == "`" else f"{fence} {line} {fence}"  # spaces: CommonMark strips them


def _by_student(rows: list[GradeRow]) -> dict[str, list[GradeRow]]:
    by_student: dict[str, list[GradeRow]] = {}
    for row in sorted(rows, key=lambda r: (r.student, r.notebook)):
        by_student.setdefault(row.student, []).append(row)
    return by_student


def _error_lines(row: GradeRow) -> tuple[str, list[str]]:
    heading = "Note:" if row.status.startswith("missing") else "Errors:"
    return heading, list(dict.fromkeys(row.errors))[:10]


def feedback_markdown(student: str, rows: list[GradeRow]) -> str:
    """A student's Markdown feedback; the grader's own words verbatim, the student's text escaped."""
    lines = [f"# Feedback for {markdown_text(student)}", ""]
    for row in rows:
        lines += [f"## {markdown_text(row.notebook)}: {format_points(row.total)} / {format_points(row.max_points)}",
                  "", f"Status: {row.status} ({status_text(row.status)}).", ""]
        lines += [f"- {markdown_text(f.question)} ({format_points(f.points)}/{format_points(f.max_points)}): "
                  f"{markdown_text(f.message)}" for f in row.feedback]
        if row.errors:
            heading, errors = _error_lines(row)
            lines += ["", heading, *(f"- {markdown_code(e)}" for e in errors)]
        lines.append("")
    return "\n".join(lines)


def feedback_html(student: str, rows: list[GradeRow]) -> str:
    """The same feedback as a standalone HTML page, every piece of text escaped (no script, no markup)."""

    def e(text: str) -> str:
        return html.escape(printable(text))

    parts = ["<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
             "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'\">",
             f"<title>Feedback for {e(student)}</title>",
             "<style>body{font-family:sans-serif;max-width:50em;margin:2em auto}"
             "code{white-space:pre-wrap}</style></head><body>", f"<h1>Feedback for {e(student)}</h1>"]
    for row in rows:
        parts += [f"<h2>{e(row.notebook)}: {format_points(row.total)} / {format_points(row.max_points)}</h2>",
                  f"<p>Status: {e(row.status)} ({e(status_text(row.status))}).</p>", "<ul>"]
        parts += [f"<li>{e(f.question)} ({format_points(f.points)}/{format_points(f.max_points)}): {e(f.message)}</li>"
                  for f in row.feedback]
        parts.append("</ul>")
        if row.errors:
            heading, errors = _error_lines(row)
            parts += [f"<p>{heading}</p>", "<ul>", *(f"<li><code>{e(x)}</code></li>" for x in errors), "</ul>"]
    parts.append("</body></html>\n")
    return "\n".join(parts)


def feedback_name(student: str) -> str:
    """A feedback file's stem: the student id, with bytes that are not UTF-8 escaped."""
    return printable(student)


def write_feedback(rows: list[GradeRow], folder: Path) -> list[Path]:
    """One Markdown and one HTML feedback file per student (``<student>.md``, ``<student>.html``)."""
    paths = []
    for student, student_rows in _by_student(rows).items():
        paths += write_student_feedback(student, student_rows, folder)
    return paths


def write_student_feedback(student: str, rows: list[GradeRow], folder: Path) -> list[Path]:
    markdown = folder / f"{feedback_name(student)}.md"
    page = folder / f"{feedback_name(student)}.html"
    write_atomic(markdown, feedback_markdown(student, rows))
    write_atomic(page, feedback_html(student, rows))
    return [markdown, page]
