"""Release and grading, with real notebooks run for real (fixture: tests/grading_fixtures/source)."""

from __future__ import annotations

import csv
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import nbformat
import numpy as np
import pandas as pd
import pytest
from grading_helpers import FIXTURE, RIGHT, skip_security_test, submission

from glmmteach.checks import (
    ExactMatcher,
    ExerciseChecks,
    QuestionSpec,
    answer_to_json,
    check_form,
    diagnose,
    make_public_key,
)
from glmmteach.grading import (
    ReleaseError,
    leaked_values,
    load_exercise,
    release,
    sandbox_available,
    solution_lines,
)

pytestmark = pytest.mark.grading
SANDBOXED = sandbox_available()
TIMEOUT = 15  # seconds per notebook; the fixture runs in about 2 s

# ---------------------------------------------------------------------------------------------------------
# The key of the fixture, computed here with pandas (independently of the notebook's own solution code).

crossover = pd.read_csv(FIXTURE / "crossover.csv")
table = pd.crosstab(crossover["trt"], crossover["outcome"])
ODDS_RATIO = (table.loc[1, 1] / table.loc[1, 0]) / (table.loc[0, 1] / table.loc[0, 0])
P_PLACEBO_2 = crossover.query("trt == 0 and period == 1")["outcome"].mean()
P_BY_PERIOD = crossover.groupby("period")["outcome"].mean().to_numpy()
LOG_ODDS = np.log(P_BY_PERIOD / (1 - P_BY_PERIOD))
MORE_FREQUENT = "period 2" if P_BY_PERIOD[1] > P_BY_PERIOD[0] else "period 1"
EXPECTED = {"q1": ODDS_RATIO, "q2": P_PLACEBO_2, "q3": list(LOG_ODDS), "q4": MORE_FREQUENT}

# ---------------------------------------------------------------------------------------------------------
# Checks without a kernel


SPECS = {s.id: s for s in load_exercise(FIXTURE / "tiny.ipynb").specs}


@pytest.mark.parametrize(
    ("qid", "value", "correct", "says"),
    [
        ("q1", ODDS_RATIO, True, "right"),
        ("q1", math.log(ODDS_RATIO), False, "log scale"),
        ("q1", ODDS_RATIO * 1.01, False, "close but outside the tolerance"),
        ("q1", "2.3", False, "expected a single number, got text"),
        ("q1", pd.Series([ODDS_RATIO]), False, "got an array of shape (1,)"),
        ("q2", 100 * P_PLACEBO_2, False, "percentage"),
        ("q2", 1 - P_PLACEBO_2, False, "one minus the probability"),
        ("q2", float("nan"), False, "non-finite"),
        ("q3", -LOG_ODDS, False, "period 1 and period 2 have the wrong sign"),
        ("q3", np.exp(LOG_ODDS), False, "ratio scale"),
        ("q3", LOG_ODDS[:1], False, "expected an array of shape (2,), got shape (1,)"),
        ("q4", " Period 2 " if MORE_FREQUENT == "period 2" else "PERIOD 1", True, "right"),
        ("q4", "period 3", False, "expected one of ['period 1', 'period 2']"),
    ],
)
def test_feedback_names_the_slip_and_the_notebook_never_contradicts_the_grader(qid, value, correct, says):
    spec = SPECS[qid]
    key = make_public_key("tiny", list(SPECS.values()), EXPECTED)
    grader_side = diagnose(spec, answer_to_json(value), ExactMatcher(spec, EXPECTED[qid]))
    assert grader_side.correct == correct
    assert says in grader_side.message
    notebook_side = check_form(spec, answer_to_json(value), key["questions"][qid]["hints"])
    assert "right" not in notebook_side.message  # only the grader says an answer is right
    if correct:
        assert notebook_side.correct


def test_inverted_ratio_is_recognised():
    spec = QuestionSpec.from_dict({"id": "or", "kind": "odds_ratio"})
    exact = ExactMatcher(spec, 3.0337)
    assert "reciprocal" in diagnose(spec, 1 / 3.0337, exact).message
    assert "log scale" in diagnose(spec, math.log(3.0337), exact).message


def test_public_key_holds_no_answer_value():
    key = make_public_key("tiny", list(SPECS.values()), EXPECTED)
    assert leaked_values(json.dumps(key), EXPECTED) == []
    assert json.dumps(key["questions"]["q4"]).count(MORE_FREQUENT) == 1  # in the options list only


def test_unknown_question_and_keyless_checks_explain_themselves(capsys):
    checks = ExerciseChecks.from_key(json.dumps(make_public_key("tiny", list(SPECS.values()), EXPECTED)))
    assert checks.check("q9", 1.0) is None
    assert "there is no question 'q9'" in capsys.readouterr().out and checks.results == {"q9": False}
    keyless = ExerciseChecks("tiny")
    keyless.check("q1", 2.0)
    assert capsys.readouterr().out == "q1: answer recorded.\n" and keyless.answers == {"q1": 2.0}


# ---------------------------------------------------------------------------------------------------------
# Release


@pytest.fixture(scope="module")
def released(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("released")
    release(FIXTURE, out, timeout=60, jobs=2, log=lambda message: None)
    return out


def test_release_removes_solutions_and_answer_values(released):
    text = (released / "tiny.ipynb").read_text()
    exercise = load_exercise(FIXTURE / "tiny.ipynb")
    lines = solution_lines(exercise)
    assert len(lines) >= 5
    assert [line for line in lines if line in text] == []
    assert leaked_values(text, EXPECTED) == []
    for value in [ODDS_RATIO, P_PLACEBO_2, *LOG_ODDS]:
        for rendering in (f"{value:.3f}", f"{value:.4f}", f"{value:.6g}", repr(float(value))):
            assert rendering not in text
    notebook = nbformat.reads(text, as_version=4)
    assert text.count("raise NotImplementedError()") == len(exercise.specs)
    assert all(not cell.get("outputs") for cell in notebook.cells if cell.cell_type == "code")
    assert '"glmmteach"' not in json.dumps(notebook.metadata)
    assert all("glmmteach" not in cell.metadata for cell in notebook.cells)
    assert (released / "crossover.csv").is_file()


def _broken(source: Path, name: str, old: str, new: str) -> None:
    notebook = nbformat.read(FIXTURE / "tiny.ipynb", as_version=4)
    hits = [cell for cell in notebook.cells if old in cell.source]
    assert hits, old
    hits[0].source = hits[0].source.replace(old, new)
    nbformat.write(notebook, source / name)


def test_release_refuses_solutions_that_fail_their_checks(tmp_path):
    source = tmp_path / "source"
    source.mkdir()
    shutil.copy(FIXTURE / "crossover.csv", source)
    shutil.copy(FIXTURE / "tiny.ipynb", source / "a_good.ipynb")
    _broken(source, "b_raises.ipynb", "p_placebo_2 = ", "p_placebo_2 = 1 / 0 + ")
    _broken(source, "c_out_of_range.ipynb", 'check("q2", p_placebo_2)', 'check("q2", 100 * p_placebo_2)')
    _broken(source, "d_unchecked.ipynb", 'check("q4", more_frequent)', 'record("q4", more_frequent)')
    out = tmp_path / "out"
    with pytest.raises(ReleaseError) as refused:
        release(source, out, timeout=60, jobs=2, log=lambda message: None)
    message = str(refused.value)
    assert "b_raises.ipynb: the solution notebook did not run cleanly" in message
    assert "ZeroDivisionError" in message
    assert "c_out_of_range.ipynb: the solution's answers fail their checks: q2: the answer is outside [0, 1]" \
        in message
    assert "d_unchecked.ipynb: the solution does not pass its own checks (never checked: ['q4']" in message
    assert "a_good" not in message
    assert not out.exists()  # all or nothing


# ---------------------------------------------------------------------------------------------------------
# Grading


@pytest.fixture(scope="module")
def graded(released, tmp_path_factory):
    root = tmp_path_factory.mktemp("grading")
    source = root / "source"
    shutil.copytree(FIXTURE, source)
    submissions = root / "submissions"
    source_notebook = source / "tiny.ipynb"
    notebooks = {
        "alice": submission(released, RIGHT),
        "bob": submission(released, [
            RIGHT[0] + "\nodds_ratio = np.log(odds_ratio)",
            RIGHT[1] + "\np_placebo_2 = 100 * p_placebo_2",
            RIGHT[2],
            "more_frequent = 'period 1' if p_by_period[1] > p_by_period[0] else 'period 2'",
        ]),
        "carol": submission(released, [RIGHT[0], "raise ValueError('carol broke q2')", RIGHT[2], RIGHT[3]]),
        "dave": submission(released, [RIGHT[0], "while True:\n    pass", RIGHT[2], RIGHT[3]]),
        "frank": submission(released, RIGHT[:1] + ["pass"] * 3, {3: f"""
import os, shutil
for target in [{str(source_notebook)!r}, {str(submissions / 'alice')!r}, {str(source)!r}]:
    try:
        shutil.rmtree(target) if os.path.isdir(target) else os.remove(target)
    except OSError:
        pass
try:
    with open({str(source_notebook)!r}, "w") as handle:
        handle.write("{{}}")
except OSError:
    pass
with open("crossover.csv", "w") as handle:  # its own copy: allowed, and changes nothing for others
    handle.write("ID,group,period,trt,outcome\\n")
"""}),
        "grace": submission(released, ["odds_ratio = 1.0", "p_placebo_2 = 0.5", "log_odds_by_period = [0, 0]",
                                        "more_frequent = 'maybe'"], {100: f"""
import glob, json, os
found = None
candidates = [{str(source_notebook)!r}] + glob.glob("/tmp/**/source/tiny.ipynb", recursive=True)
for pid in os.listdir("/proc"):
    try:
        with open(f"/proc/{{pid}}/cmdline", "rb") as handle:
            args = handle.read().decode(errors="replace").split("\\0")
    except OSError:
        continue
    candidates += [os.path.join(arg, "tiny.ipynb") for arg in args if arg.startswith("/")]
for path in candidates:
    try:
        with open(path) as handle:
            found = json.load(handle)
        break
    except (OSError, ValueError):
        pass
if found is not None:  # run the instructor's solution code to get the right answers
    for cell in found["cells"]:
        if cell["cell_type"] == "code" and "checks-setup" not in cell.get("metadata", {{}}).get("tags", []):
            exec("".join(cell["source"]).replace("check(", "record("))
"""}),
    }
    if not SANDBOXED:  # unconfined, frank would really delete files and grace would find the key
        del notebooks["frank"], notebooks["grace"]
    for student, text in notebooks.items():
        (submissions / student).mkdir(parents=True)
        (submissions / student / "tiny.ipynb").write_text(text)
    kate = nbformat.reads(notebooks["alice"], as_version=4)  # right answers, then a flood of output
    kate.cells.insert(3, nbformat.v4.new_code_cell("print('x' * 21 * 2**20)"))
    (submissions / "kate").mkdir()
    nbformat.write(kate, submissions / "kate" / "tiny.ipynb")
    liam = nbformat.reads(notebooks["alice"], as_version=4)  # the kernel dies after q1
    liam.cells.insert(6, nbformat.v4.new_code_cell("import os\nos._exit(1)"))
    (submissions / "liam").mkdir()
    nbformat.write(liam, submissions / "liam" / "tiny.ipynb")
    (submissions / "erin").mkdir()
    (submissions / "erin" / "tiny.ipynb").write_text('{"cells": [ this is not json')
    (submissions / "heidi").mkdir()  # submitted nothing
    (submissions / "ivan").mkdir()  # submits a link to the instructor's source
    (submissions / "ivan" / "tiny.ipynb").symlink_to(source_notebook)
    # grace also replaces check, fakes the results and prints a fake answers line, after her (wrong) answers
    if SANDBOXED:
        grace = nbformat.read(submissions / "grace" / "tiny.ipynb", as_version=4)
        grace.cells.append(nbformat.v4.new_code_cell(
            "checks.results.update({q: True for q in ['q1', 'q2', 'q3', 'q4']})\n"
            "check = lambda question, value: print(question, ': correct.')\n"
            "import json\nopen('answers.json', 'w').write(json.dumps({'q1': 99}))\n"
            "print('GLMMTEACH-ANSWERS:' + json.dumps({'answers': {'q1': 99, 'q4': 'period 2'}}))"))
        nbformat.write(grace, submissions / "grace" / "tiny.ipynb")
    # A world-readable copy of the source elsewhere in /tmp, as an instructor might leave one: grace looks for it.
    exposed = Path(tempfile.mkdtemp(prefix="glmmteach-test-exposed-"))
    os.chmod(exposed, 0o755)
    shutil.copytree(source, exposed / "source")
    before = {p: p.read_bytes() for p in [source_notebook, submissions / "alice" / "tiny.ipynb"]}
    out = root / "out" / "gradebook.csv"
    command = [sys.executable, "-m", "glmmteach.cli", "grade", str(source), str(submissions), "--out", str(out),
               "--timeout", str(TIMEOUT), "--jobs", "2", *([] if SANDBOXED else ["--no-sandbox"])]
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[1]))
    try:
        finished = subprocess.run(command, capture_output=True, text=True, timeout=300, env=env)
    finally:
        shutil.rmtree(exposed)
    rows = {row["student"]: row for row in csv.DictReader(out.open())} if out.exists() else {}
    return {"finished": finished, "rows": rows, "out": out, "before": before, "command": command, "env": env}


def test_grade_command_finishes_with_progress(graded):
    finished = graded["finished"]
    assert finished.returncode == 0, finished.stderr
    progress = [line for line in finished.stderr.splitlines() if line.startswith("[")]
    expected = len(graded["rows"])
    assert expected == (11 if SANDBOXED else 9)
    assert len(progress) == expected and progress[-1].startswith(f"[{expected}/{expected}]")


def test_gradebook_has_one_row_per_student_and_notebook(graded):
    header = graded["out"].read_text().splitlines()[0]
    assert header == "student,notebook,tiny:q1,tiny:q2,tiny:q3,tiny:q4,total,max,status"
    assert list(graded["rows"]) == sorted(graded["rows"])
    hostile = {"frank", "grace"} if SANDBOXED else set()
    assert set(graded["rows"]) == {"alice", "bob", "carol", "dave", "erin", "heidi", "ivan", "kate", "liam"} | hostile


@pytest.mark.parametrize(
    ("student", "status", "points"),
    [
        ("alice", "ok", ["2", "1", "1", "1", "5"]),
        ("bob", "ok", ["0", "0", "1", "0", "1"]),
        ("carol", "error", ["2", "0", "1", "1", "4"]),
        ("dave", "timeout", ["2", "0", "0", "0", "2"]),
        ("erin", "invalid-notebook", ["0", "0", "0", "0", "0"]),
        ("frank", "error", ["2", "0", "0", "0", "2"]),
        ("grace", "ok", ["0", "0", "0", "0", "0"]),
        ("heidi", "missing", ["0", "0", "0", "0", "0"]),
        ("ivan", "invalid-notebook", ["0", "0", "0", "0", "0"]),
        ("kate", "ok", ["2", "1", "1", "1", "5"]),
        ("liam", "error", ["2", "0", "0", "0", "2"]),  # the process dies after q1: q1 was kept
    ],
)
def test_each_submission_gets_its_status_and_only_earned_points(graded, student, status, points):
    if student in ("frank", "grace") and not SANDBOXED:
        skip_security_test("hostile submissions are only graded in the sandbox (bubblewrap)")
    row = graded["rows"][student]
    assert row["status"] == status + ("" if SANDBOXED else " (no sandbox)")
    assert [row["tiny:q1"], row["tiny:q2"], row["tiny:q3"], row["tiny:q4"], row["total"]] == points
    assert row["max"] == "5"


def test_partly_wrong_submission_gets_specific_feedback(graded):
    text = (graded["out"].parent / "feedback" / "bob.md").read_text()
    assert "q1 (0/2): your answer is on the log scale" in text
    assert "q2 (0/1): your answer looks like a percentage" in text
    assert "q3 (1/1): right." in text
    assert "q4 (0/1): that is not the right option." in text
    assert leaked_values(text, EXPECTED) == []
    executed = nbformat.read(graded["out"].parent / "executed" / "bob" / "tiny.ipynb", as_version=4)
    outputs = "".join(o.get("text", "") for c in executed.cells if c.cell_type == "code" for o in c.outputs)
    assert "q2: not yet - your answer looks like a percentage" in outputs  # what bob saw from check()
    assert "q1: recorded, of the expected form and size" in outputs  # log(1.75) is of the size of 1.75
    carol = (graded["out"].parent / "feedback" / "carol.md").read_text()
    assert "ValueError: carol broke q2" in carol
    assert "outputs beyond 20 MB were dropped" in (graded["out"].parent / "feedback" / "kate.md").read_text()
    assert "the notebook's Python process died in cell 6" in (graded["out"].parent / "feedback" / "liam.md").read_text()


def test_hostile_submissions_cannot_touch_the_source_or_other_students(graded):
    if not SANDBOXED:
        skip_security_test("needs the sandbox (bubblewrap)")
    for path, content in graded["before"].items():
        assert path.read_bytes() == content


def test_grading_is_repeatable(graded, tmp_path):
    out = tmp_path / "again.csv"
    command = [*graded["command"][:6], "--out", str(out), "--timeout", str(TIMEOUT), "--jobs", "1",
               *([] if SANDBOXED else ["--no-sandbox"])]
    submissions = Path(command[5])
    keep = tmp_path / "subset"
    for student in ("alice", "bob", "erin", "heidi"):
        shutil.copytree(submissions / student, keep / student)
    command[5] = str(keep)
    finished = subprocess.run(command, capture_output=True, text=True, timeout=300, env=graded["env"])
    assert finished.returncode == 0, finished.stderr
    first = [line for line in graded["out"].read_text().splitlines()
             if line.split(",")[0] in {"student", "alice", "bob", "erin", "heidi"}]
    assert out.read_text().splitlines() == first


def test_cli_reports_bad_arguments(tmp_path, capsys):
    from glmmteach.cli import main

    notebook = nbformat.v4.new_notebook()
    notebook.cells = [nbformat.v4.new_code_cell("x = 1")]
    nbformat.write(notebook, tmp_path / "no_questions.ipynb")
    assert main(["release", str(tmp_path), str(tmp_path / "out")]) == 1
    assert "no_questions.ipynb: no cell defines a question" in capsys.readouterr().err
    assert main(["grade", str(tmp_path / "nowhere"), str(tmp_path), "--out", str(tmp_path / "g.csv")]) == 1
    with pytest.raises(SystemExit) as bad:
        main(["grade", str(tmp_path), str(tmp_path), "--out", "g.csv", "--jobs", "0"])
    assert bad.value.code == 2


def test_grading_refuses_without_a_sandbox_unless_told(released, tmp_path):
    (tmp_path / "submissions" / "alice").mkdir(parents=True)
    (tmp_path / "submissions" / "alice" / "tiny.ipynb").write_text(submission(released, RIGHT))
    (tmp_path / "submissions" / "forker").mkdir()  # its child sleeps 400 s: never waited for, killed at the end
    (tmp_path / "submissions" / "forker" / "tiny.ipynb").write_text(submission(released, RIGHT, {
        3: "import os, time\nif os.fork() == 0:\n    time.sleep(400)\n    os._exit(0)"}))
    out = tmp_path / "out" / "gradebook.csv"
    command = [sys.executable, "-m", "glmmteach.cli", "grade", str(FIXTURE), str(tmp_path / "submissions"),
               "--out", str(out), "--timeout", str(TIMEOUT)]
    env = dict(os.environ, PATH=str(tmp_path / "no-tools-here"),  # no bwrap to be found
               PYTHONPATH=str(Path(__file__).resolve().parents[1]))
    refused = subprocess.run(command, capture_output=True, text=True, timeout=300, env=env)
    assert refused.returncode == 1
    assert "no sandbox for the submissions: bubblewrap (`bwrap`) is not installed" in refused.stderr
    assert "--no-sandbox" in refused.stderr and not out.exists()
    started = time.monotonic()
    unconfined = subprocess.run([*command, "--no-sandbox"], capture_output=True, text=True, timeout=300, env=env)
    assert time.monotonic() - started < 120
    assert unconfined.returncode == 0, unconfined.stderr
    assert "warning: --no-sandbox" in unconfined.stderr
    rows = [(row["student"], row["status"], row["total"]) for row in csv.DictReader(out.open())]
    assert rows == [("alice", "ok (no sandbox)", "5"), ("forker", "ok (no sandbox)", "5")]
    assert "Status: ok (no sandbox) (ran without errors)" in (out.parent / "feedback" / "alice.md").read_text()


def test_sandbox_refuses_to_show_the_instructors_folders(tmp_path):
    from glmmteach.grading import GradingError
    from glmmteach.grading.sandbox import PACKAGE, check_hidden

    check_hidden([tmp_path / "source", tmp_path / "submissions"])
    for inside in (PACKAGE / "exercises", Path("/usr/share/course")):
        with pytest.raises(GradingError, match="which the sandbox shows to every submission"):
            check_hidden([tmp_path, inside])


def test_recorded_answers_are_read_as_untrusted_data():
    from glmmteach.grading.runner import parse_answers

    lines = [
        b'{"record": "q1", "value": 1.5}',
        b'{"record": "q2", "value": [1, 2]}',
        b'not json at all',
        b'{"record": "q3", "value": NaN}',  # non-JSON constants are refused
        b'{"record": "q4", "value": ' + b"9" * 5000 + b"}",  # too many digits for Python's int parser
        b'{"record": "q5", "value": ' + b"[" * 50 + b"1" + b"]" * 50 + b"}",  # nested too deep
        b'{"record": "q6", "value": {"a": 1}}',  # not a number, string or list
        b'{"record": "", "value": 1}',
        b'{"record": "q7", "problem": "the value recorded is too large to grade (x)."}',
        b'["a list, not a record"]',
    ]
    answers, problems, results = parse_answers(b"\n".join(lines))
    assert answers == {"q1": 1.5, "q2": [1, 2]}
    assert problems == {"q7": "the value recorded is too large to grade (x)."}
    assert results == {}
    # a snapshot (written after each cell) replaces what came before; later records add to it
    snapshot = b'{"snapshot": {"q1": 2.0}, "problems": {}, "results": {"q1": true, "q2": "yes"}}'
    answers, problems, results = parse_answers(b"\n".join([*lines, snapshot, b'{"record": "q2", "value": 3}']))
    assert (answers, problems, results) == ({"q1": 2.0, "q2": 3}, {}, {"q1": True})
