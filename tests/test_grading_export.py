"""The files grading writes, without running notebooks: CSV cells no spreadsheet evaluates, any bytes written,
escaped feedback, atomic replacement, and the grader-side bounds on what a submission makes it read."""

from __future__ import annotations

import csv
import json
import os
import time
from pathlib import Path

import nbformat
import pytest
from grading_helpers import FIXTURE

from glmmteach.checks import Feedback
from glmmteach.grading import GradeRow, load_exercise
from glmmteach.grading import export as ex
from glmmteach.grading.gradebook import name_warnings, write_student_files
from glmmteach.grading.runner import parse_outputs
from glmmteach.grading.scoring import MAX_CELLS, read_submission

HOSTILE_IDS = ["=HYPERLINK(\"http://x\",\"y\")", "+cmd|' -c calc'!A0", "@SUM(1+1)", "-2+3", "\tx", "\rx", "'=1",
               "M\udcfcller", "ok"]
EXERCISE = load_exercise(FIXTURE / "tiny.ipynb")


def _row(student: str, message: str = "right.", errors: list[str] | None = None) -> GradeRow:
    feedback = [Feedback(s.id, True, message, s.points, s.points) for s in EXERCISE.specs]
    return GradeRow(student, EXERCISE.filename, "ok", feedback, errors or [])


def _evaluated(path: Path) -> list[str]:
    """Cells of a CSV that a spreadsheet would evaluate (OWASP: a leading =, +, -, @, tab or CR)."""
    with path.open(newline="", encoding="utf-8") as handle:
        return [cell for line in csv.reader(handle) for cell in line if cell[:1] in ("=", "+", "-", "@", "\t", "\r")]


@pytest.mark.parametrize("value", HOSTILE_IDS + ["", "plain", "2", "'quoted", "''"])
def test_a_safe_cell_is_never_evaluated_and_its_value_is_recovered(value):
    cell = ex.safe_cell(value)
    assert cell[:1] not in ("=", "+", "-", "@", "\t", "\r")
    assert ex.cell_value(cell) == ex.printable(value)


def test_every_csv_the_grader_writes_is_safe_and_reads_back_true_values(tmp_path):
    rows = [_row(student) for student in HOSTILE_IDS]
    records = ex.gradebook_records(rows, [EXERCISE])
    ex.write_records(records, [EXERCISE], tmp_path / "gradebook.csv")
    roster = [{"student": "-2+3", "name": "=cmd|' /C calc'!A0", "email": "@evil", "section": "+1"}]
    paths = ex.write_totals(records, [EXERCISE], tmp_path, roster)
    answers = [{"student": "@SUM(1+1)", "notebook": "tiny.ipynb", "question": "q9", "max": "1",
                "answer": "=HYPERLINK(\"http://evil\",\"click\")", "points": ""}]
    ex.write_table(tmp_path / "manual-answers.csv", ["student", "notebook", "question", "max", "answer", "points"],
                   answers)
    for path in [tmp_path / "gradebook.csv", *paths, tmp_path / "manual-answers.csv"]:
        assert _evaluated(path) == [], path.name
    back = ex.read_records(tmp_path / "gradebook.csv")
    assert sorted(r["student"] for r in back) == sorted(ex.printable(s) for s in HOSTILE_IDS)
    assert ex.read_records(tmp_path / "manual-answers.csv")[0]["answer"] == answers[0]["answer"]
    canvas = (tmp_path / "lms-canvas.csv").read_text()
    assert "'=cmd|' /C calc'!A0" in canvas and "M\\xfcller" in canvas


def test_any_text_is_written_escaped_and_a_failed_write_keeps_the_old_file(tmp_path, monkeypatch):
    path = tmp_path / "gradebook.csv"
    path.write_text("the previous gradebook\n")
    ex.write_atomic(path, "M\udcfcller, \ud800\n")
    assert path.read_text() == "M\\xfcller, \\ud800\n"

    def fail(*args):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", fail)
    with pytest.raises(OSError, match="disk full"):
        ex.write_atomic(path, "new text\n")
    assert path.read_text() == "M\\xfcller, \\ud800\n"
    assert os.listdir(tmp_path) == ["gradebook.csv"]  # no temporary file left


def test_feedback_escapes_what_the_student_wrote(tmp_path):
    fake = "boom\n- q1 (2/2): right.\n# A heading <img src=x onerror=alert(1)> [link](http://evil) `tick`"
    row = _row("-2+3", message="your answer <script>alert(1)</script> *is* wrong.", errors=[fake, "\ud800"])
    paths = ex.write_feedback([row], tmp_path)
    markdown, page = (p.read_text() for p in paths)
    lines = markdown.splitlines()
    assert [line for line in lines if line.startswith("#")] == ["# Feedback for -2+3", "## tiny.ipynb: 5 / 5"]
    assert sum(line.startswith("- q1 ") for line in lines) == 1  # the fake feedback line stays inside a code span
    assert "<img" not in markdown.replace("`", "").split("Errors:")[0]
    assert "\\<script\\>" in markdown and "\\*is\\*" in markdown
    error = next(line for line in lines if "boom" in line)
    assert error.startswith("- ``") and error.endswith("``")  # a longer fence than the student's backtick
    assert "<script>" not in page and "<img" not in page and "&lt;img src=x onerror=alert(1)&gt;" in page
    assert "\\ud800" in page


def test_names_that_an_lms_would_confuse_get_a_warning_naming_both_folders():
    nfc, nfd = "caf\u00e9", "cafe\u0301"
    warnings = name_warnings(["Alice", "alice", nfc, nfd, "M\udcfcller", " bob", "eve\nx", "tab\tname", "zoe"])
    text = "\n".join(warnings)
    assert "'Alice' and 'alice' differ only by case" in text
    assert f"{nfc!r} and {nfd!r} differ only by case, spaces or Unicode normalisation" in text
    assert "'M\\\\xfcller' is not valid UTF-8" in text
    for name in (" bob", "eve\nx", "tab\tname"):
        assert f"student folder {name!r} holds a leading or trailing space, a newline, a tab" in text
    assert "zoe" not in text


def test_a_flood_of_stream_lines_is_parsed_in_linear_time():
    lines = b"".join(json.dumps({"cell": 2, "output": {"output_type": "stream", "name": "stdout",
                                                        "text": f"{i}\n"}}).encode() + b"\n"
                     for i in range(210_000))
    started = time.monotonic()
    progress = parse_outputs(lines, {2})
    assert time.monotonic() - started < 10  # quadratic merging took 143 s
    assert len(progress.outputs[2]) == 1 and progress.outputs[2][0]["text"].count("\n") == 210_000


def _notebook_with_cells(count: int) -> str:
    """A valid notebook of ``count`` code cells (JSON written directly: nbformat itself is slow at 50,000)."""
    notebook = nbformat.v4.new_notebook()
    cell = nbformat.v4.new_code_cell("x = 1")
    cell.pop("id")
    notebook.nbformat_minor = 4  # cell ids (4.5) would have to differ
    return json.dumps({**notebook, "cells": [cell] * count})


def test_the_grader_refuses_huge_deep_and_odd_files_before_doing_work_on_them(tmp_path):
    cells = tmp_path / "cells.ipynb"
    cells.write_text(_notebook_with_cells(50_000))
    started = time.monotonic()
    notebook, problem = read_submission(cells)
    assert time.monotonic() - started < 5  # nbformat's validation took 37 s
    assert notebook is None and f"the notebook has 50,000 cells, more than the {MAX_CELLS:,}" in problem
    deep = tmp_path / "deep.ipynb"
    deep.write_text('{"cells": ' + "[" * 800 + "]" * 800 + "}")
    assert read_submission(deep) == (None, "the notebook file nests its data more than 64 levels deep: it is not "
                                           "a notebook")
    fifo = tmp_path / "fifo.ipynb"
    os.mkfifo(fifo)
    assert "not a regular file" in read_submission(fifo)[1]
    assert read_submission(Path("/dev/null"))[1].startswith("the submission is not a regular file")
    good = tmp_path / "good.ipynb"
    good.write_text(_notebook_with_cells(3))
    assert read_submission(good)[1] == "" and len(read_submission(good)[0].cells) == 3


def test_a_student_whose_files_cannot_be_written_gets_it_as_status_and_the_others_are_written(tmp_path):
    rows = [_row("alice"), _row("bob"), _row("carol")]
    (tmp_path / "feedback" / "bob.md").mkdir(parents=True)  # a folder where bob's feedback file goes
    warnings = write_student_files(rows, tmp_path)
    assert [row.status for row in rows] == ["ok", "ok (files not written)", "ok"]
    assert len(warnings) == 1 and warnings[0].startswith("student 'bob': feedback or executed notebook not written")
    assert (tmp_path / "feedback" / "alice.md").is_file() and (tmp_path / "feedback" / "carol.html").is_file()
    assert ex.status_text(rows[1].status) == ex.STATUS_TEXT["ok"]
