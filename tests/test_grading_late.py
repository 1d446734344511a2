"""The instructor's workflow around grading: ``collect`` an LMS download, the course file, late penalties."""

from __future__ import annotations

import csv
import shutil
import zipfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from grading_helpers import FIXTURE, RIGHT, WRONG, submission

from glmmteach.cli import main
from glmmteach.grading import GradingError, grade, release, sandbox_available
from glmmteach.grading.collect import collect
from glmmteach.grading.export import read_records
from glmmteach.grading.late import read_course, read_times

UTC = UTC
COURSE = """
[late]
per_day = 0.1
cap = 0.5
grace_minutes = 15

[sets.tiny]
weight = 3
deadline = 2026-10-01T23:59:00+02:00

[sets.practice]
graded = false

[[extensions]]
student = "erin"
days = 2

[[extensions]]
student = "frank"
days = 1
set = "tiny"
"""
DEADLINE = datetime(2026, 10, 1, 21, 59, tzinfo=UTC)  # 23:59 at +02:00


@pytest.fixture()
def course(tmp_path) -> Path:
    path = tmp_path / "course.toml"
    path.write_text(COURSE)
    return path


@pytest.mark.parametrize(("student", "after", "days", "fraction"), [
    ("alice", timedelta(minutes=-1), 0, 0.0),
    ("alice", timedelta(minutes=14), 0, 0.0),  # within the grace period
    ("alice", timedelta(minutes=16), 1, 0.1),  # a part of a day counts as a day
    ("alice", timedelta(days=1), 1, 0.1),
    ("alice", timedelta(days=2, minutes=1), 3, 0.3),
    ("alice", timedelta(days=9), 9, 0.5),  # the cap
    ("erin", timedelta(days=1, hours=23), 0, 0.0),  # two days' extension on every set
    ("erin", timedelta(days=2, hours=1), 1, 0.1),
    ("frank", timedelta(hours=20), 0, 0.0),  # one day on tiny only
    ("frank", timedelta(days=1, hours=1), 1, 0.1),
])
def test_late_days_and_penalty_by_hand(course, student, after, days, fraction):
    policy = read_course(course)
    assert policy.late_days("tiny", student, DEADLINE + after) == days
    assert policy.penalty(days) == pytest.approx(fraction, abs=1e-15)
    assert policy.late_days("practice", student, DEADLINE + after) == 0  # no deadline
    assert policy.graded("tiny") and not policy.graded("practice") and not policy.graded("unnamed")


@pytest.mark.parametrize(("text", "message"), [
    ("[sets.tiny]\ndeadline = 2026-10-01T23:59:00\n", "must be a date and time with a time zone"),
    ("[late]\nper_day = 2\n", "late.per_day must be a number in [0, 1]"),
    ("[sets.tiny]\nweight = 'x'\n", "sets.tiny.weight must be a number"),
    ("[[extensions]]\nstudent = 'a'\nset = 'nope'\ndays = 1\n", "no set 'nope' in [sets]"),
    ("[penalties]\n", "unknown section(s) ['penalties']"),
    ("[sets.tiny\n", "cannot read the course file"),
])
def test_a_bad_course_file_is_refused_with_the_entry_named(tmp_path, text, message):
    path = tmp_path / "course.toml"
    path.write_text(text)
    with pytest.raises(GradingError, match=message.replace("[", r"\[").replace("(", r"\(").replace(")", r"\)")):
        read_course(path)


def test_times_without_a_zone_are_refused(tmp_path):
    path = tmp_path / "times.csv"
    path.write_text("student,notebook,submitted\nalice,tiny,2026-10-02T10:00:00\n")
    with pytest.raises(GradingError, match="has no time zone"):
        read_times(path)
    path.write_text("student,notebook,submitted\nalice,tiny,2026-10-02T10:00:00Z\n")
    assert read_times(path) == {("alice", "tiny.ipynb"): datetime(2026, 10, 2, 10, tzinfo=UTC)}


def _zip(path: Path, entries: dict[str, tuple[bytes, tuple[int, ...]]]) -> Path:
    with zipfile.ZipFile(path, "w") as bundle:
        for name, (data, when) in entries.items():
            bundle.writestr(zipfile.ZipInfo(name, date_time=when), data)
    return path


ON_TIME, LATE = (2026, 10, 1, 20, 0, 0), (2026, 10, 3, 9, 30, 0)


def test_collect_places_canvas_and_moodle_downloads(tmp_path):
    roster = [{"student": "s1", "name": "Jane Smith", "canvas_id": "123456"},
              {"student": "s2", "name": "José  Núñez", "canvas_id": "222"}]
    canvas = _zip(tmp_path / "canvas.zip", {
        "smithjane_123456_7890123_tiny.ipynb": (b"{jane}", ON_TIME),
        "nunezjose_late_222_7890124_tiny.ipynb": (b"{jose}", LATE),
        "doejohn_999_7890125_tiny.ipynb": (b"{john}", ON_TIME),  # not on the roster
        "smithjane_123456_7890126_notes.pdf": (b"%PDF", ON_TIME),
        "../../evil_1_2_x.ipynb": (b"{evil}", ON_TIME),  # its file name is all that counts
        "readme.txt": (b"hello", ON_TIME),
    })
    placed, problems = collect(canvas, tmp_path / "canvas", roster=roster)
    assert [(p.student, p.filename, p.late) for p in placed] == [("s1", "tiny.ipynb", False),
                                                                  ("s2", "tiny.ipynb", True)]
    assert (tmp_path / "canvas" / "s1" / "tiny.ipynb").read_bytes() == b"{jane}"
    assert (tmp_path / "canvas" / "s2" / "tiny.ipynb").read_bytes() == b"{jose}"
    assert not (tmp_path.parent / "evil_1_2_x.ipynb").exists() and not list(tmp_path.rglob("*evil*"))
    text = "\n".join(problems)
    assert "'../../evil_1_2_x.ipynb': not named as Canvas or Moodle name their downloads" in text
    assert "'doejohn_999_7890125_tiny.ipynb': Canvas user id 999 is not on the roster" in text
    assert "'notes.pdf' is not a notebook" in text
    assert "'readme.txt': not named as Canvas or Moodle name their downloads" in text
    times = read_records(tmp_path / "canvas" / "submission-times.csv")
    assert {(t["student"], t["submitted"], t["lms_late"]) for t in times} >= {
        ("s1", "2026-10-01T20:00:00+00:00", ""), ("s2", "2026-10-03T09:30:00+00:00", "yes")}

    moodle = _zip(tmp_path / "moodle.zip", {
        "Jane Smith_40401_assignsubmission_file_/tiny.ipynb": (b"{jane}", ON_TIME),
        "josé núñez_40402_assignsubmission_file_tiny.ipynb": (b"{jose}", LATE),
        "Jane Smith_40401_assignsubmission_file_/tiny (1).ipynb": (b"{again}", ON_TIME),
        "Nobody Here_40403_assignsubmission_file_/tiny.ipynb": (b"{x}", ON_TIME),
    })
    placed, problems = collect(moodle, tmp_path / "moodle", roster=roster)
    assert {(p.student, p.filename) for p in placed} == {("s1", "tiny.ipynb"), ("s2", "tiny.ipynb"),
                                                         ("s1", "tiny (1).ipynb")}
    assert problems == ["'Nobody Here_40403_assignsubmission_file_/tiny.ipynb': Moodle name 'Nobody Here' is not "
                        "on the roster (its 'name' column); not placed"]
    # without a roster the LMS's names name the folders; a second download never overwrites a file
    placed, problems = collect(moodle, tmp_path / "plain", roster=None)
    assert {(p.student, p.filename) for p in placed} == {
        ("Jane_Smith", "tiny.ipynb"), ("Jane_Smith", "tiny (1).ipynb"), ("jos_n_ez", "tiny.ipynb"),
        ("Nobody_Here", "tiny.ipynb")}
    assert problems == []
    again, problems = collect(canvas, tmp_path / "canvas", roster=roster)
    assert [p for p in again if p.student in ("s1", "s2")] == []
    assert "s1/tiny.ipynb is placed already; not placed again" in "\n".join(problems)


def test_grade_applies_the_course_file(tmp_path, course):
    """Practice sets stay out of totals and LMS files; late penalties per row, from collect's times."""
    source = tmp_path / "source"
    source.mkdir()
    shutil.copy(FIXTURE / "crossover.csv", source)
    shutil.copy(FIXTURE / "tiny.ipynb", source / "tiny.ipynb")
    shutil.copy(FIXTURE / "tiny.ipynb", source / "practice.ipynb")
    released = tmp_path / "release"
    release(source, released, timeout=60, jobs=2, log=lambda message: None)
    submissions = tmp_path / "submissions"
    for student, codes in (("alice", RIGHT), ("bob", RIGHT), ("carol", RIGHT[:1] + WRONG[1:])):
        (submissions / student).mkdir(parents=True)
        (submissions / student / "tiny.ipynb").write_text(submission(released, codes))
    (submissions / "alice" / "practice.ipynb").write_text(submission(released, RIGHT)
                                                          .replace('"tiny"', '"practice"'))
    # alice on time; bob 2 days and 1 minute late (3 days: 30 % of 5 = 1.5 points); carol 9 days (the cap)
    (submissions / "submission-times.csv").write_text(
        "student,notebook,submitted,lms_late\nalice,tiny.ipynb,2026-10-01T21:00:00Z,\n"
        "bob,tiny.ipynb,2026-10-03T22:00:00Z,yes\ncarol,tiny.ipynb,2026-10-10T21:00:00Z,yes\n")
    out = tmp_path / "grades" / "gradebook.csv"
    argv = ["grade", str(source), str(submissions), "--out", str(out), "--course", str(course),
            "--timeout", "60", "--jobs", "2"]
    if not sandbox_available():
        argv.append("--no-sandbox")
    assert main(argv) == 0
    rows = {(r["student"], r["notebook"]): r for r in read_records(out)}
    late = {s: (rows[(s, "tiny.ipynb")]["raw_total"], rows[(s, "tiny.ipynb")]["late_days"],
                rows[(s, "tiny.ipynb")]["late_penalty"], rows[(s, "tiny.ipynb")]["total"])
            for s in ("alice", "bob", "carol")}
    assert late == {"alice": ("5", "0", "0", "5"), "bob": ("5", "3", "1.5", "3.5"), "carol": ("2", "9", "2", "0")}
    assert rows[("alice", "practice.ipynb")]["total"] == "5"  # graded, for the feedback
    with (out.parent / "totals.csv").open() as handle:
        totals = list(csv.DictReader(handle))
    assert list(totals[0]) == ["student", "tiny", "total", "max", "percent"]  # no practice column
    assert {t["student"]: (t["total"], t["percent"]) for t in totals} == {
        "alice": ("5", "100.0"), "bob": ("3.5", "70.0"), "carol": ("0", "0.0")}
    assert "practice" not in (out.parent / "lms-canvas.csv").read_text()
    assert "practice" not in (out.parent / "lms-moodle.csv").read_text()
    with pytest.raises(GradingError, match="no source notebook for set"):
        (tmp_path / "bad.toml").write_text("[sets.missing]\n")
        grade(source, submissions, out, course=tmp_path / "bad.toml", sandbox=False, log=lambda m: None)
