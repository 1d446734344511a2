"""The secret key, per-student variants, one tolerance and the gradebook files, with real kernels where it counts.

Fixture: tests/grading_fixtures/source/tiny.ipynb, turned here into an exercise with variants (the data cell
draws a bootstrap resample of the patients from ``checks.seed``) and a free-text question.
"""

from __future__ import annotations

import ast
import csv
import json
import math
import re
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import numpy as np
import pandas as pd
import pytest
from grading_helpers import FIXTURE, TEST_RELEASE_SECRET, submission
from grading_helpers import RIGHT as RIGHT_Q1_TO_Q4

from glmmteach.checks import (
    ExactMatcher,
    ExerciseChecks,
    QuestionSpec,
    check_form,
    diagnose,
    make_public_key,
    size_hint,
)
from glmmteach.grading import GradingError, leaked_values, load_exercise
from glmmteach.grading.gradebook import survey_submissions
from glmmteach.grading.keys import KeyStore, read_secret
from glmmteach.variants import resample_clusters

pytestmark = pytest.mark.grading

ROOT = Path(__file__).resolve().parents[1]
TIMEOUT = 20
SECRET = TEST_RELEASE_SECRET

# ---------------------------------------------------------------------------------------------------------
# One tolerance, and what the notebook can say without the answer


TOLERANCE_SPECS = [{"id": "x", "kind": "number", "rtol": 1e-3}, {"id": "x", "kind": "odds_ratio", "rtol": 1e-2},
                   {"id": "x", "kind": "number", "rtol": 1e-3, "atol": 1e-2}]
EXPECTED = [1.2345678, 0.0123, -3.75, 987.6]


@pytest.mark.parametrize(("spec", "expected"), [
    (spec, expected) for spec in TOLERANCE_SPECS for expected in EXPECTED
    if spec["kind"] != "odds_ratio" or expected > 0  # a ratio is positive
])
def test_notebook_and_grader_share_one_tolerance_at_its_boundary(spec, expected):
    spec = QuestionSpec.from_dict(spec)
    hints = make_public_key("t", [spec], {"x": expected})["questions"]["x"]["hints"]
    tolerance = spec.tolerance(expected)
    for inside in (1 - 1e-9, 0.9, 0.95, 0.99):  # 0.09-0.099 % off was "outside the tolerance" in the notebook
        for sign in (-1, 1):
            value = expected + sign * inside * tolerance
            assert diagnose(spec, value, ExactMatcher(spec, expected)).correct
            notebook = check_form(spec, value, hints)
            assert notebook.correct and "outside the tolerance" not in notebook.message, notebook.message
    for sign in (-1, 1):
        value = expected + sign * (1 + 1e-6) * tolerance
        grader = diagnose(spec, value, ExactMatcher(spec, expected))
        assert not grader.correct and "close but outside the tolerance" in grader.message


def test_size_hint_window_holds_the_tolerance_and_is_coarse():
    rng = np.random.default_rng(1)
    spec = QuestionSpec.from_dict({"id": "x", "kind": "number", "rtol": 0.01})
    for expected in np.exp(rng.uniform(-12, 12, 500)) * rng.choice([-1, 1], 500):
        hint = size_hint(spec, float(expected))
        assert hint is not None
        low, high = 10 ** (hint["window"] / 2), 10 ** (hint["window"] / 2 + 1)
        assert low * 10**0.25 <= abs(expected) * (1 + 1e-12) and abs(expected) <= high / 10**0.25 * (1 + 1e-12)
    assert size_hint(QuestionSpec.from_dict({"id": "n", "kind": "integer"}), 12.0) is None
    assert size_hint(QuestionSpec.from_dict({"id": "x", "atol": 1.0}), 0.5) is None  # tolerance spans zero


def test_notebook_names_slips_it_can_see_and_never_says_right(capsys):
    specs = [QuestionSpec.from_dict(s) for s in (
        {"id": "or", "kind": "odds_ratio"}, {"id": "p", "kind": "probability"},
        {"id": "b", "kind": "log_odds", "shape": [2], "labels": ["a", "b"]}, {"id": "c", "kind": "choice",
                                                                           "options": ["x", "y"]})]
    checks = ExerciseChecks.from_key(json.dumps(make_public_key(
        "t", specs, {"or": 0.42, "p": 0.2, "b": [-1.5, 0.2], "c": "x"})))
    said = {}
    for question, value in [("or", math.log(0.42)), ("or", 0.42), ("p", 20.0), ("p", math.log(0.25)),
                            ("b", [1.5, 0.2]), ("b", [-1.5, math.exp(0.2)]), ("c", "y"), ("or", "0.42")]:
        assert checks.check(question, value) is None
        said[(question, repr(value))] = capsys.readouterr().out
    assert "log scale" in said[("or", repr(math.log(0.42)))]
    assert "expected form and size; the grader checks" in said[("or", "0.42")]
    assert "percentage" in said[("p", "20.0")]
    assert "log-odds scale" in said[("p", repr(math.log(0.25)))]
    assert "a has the wrong sign" in said[("b", "[1.5, 0.2]")]
    assert "b is on the ratio scale" in said[("b", repr([-1.5, math.exp(0.2)]))]
    assert said[("c", "'y'")] == "c: recorded; the grader marks it.\n"  # a wrong option is not revealed
    assert "expected a single number, got text" in said[("or", "'0.42'")]
    assert not any("right" in text for text in said.values())
    checks.check("or", 10**400)  # a huge integer gets a message, not an OverflowError
    assert "too large for a floating-point number (about 401 digits)" in capsys.readouterr().out
    assert "too large" in diagnose(specs[0], 10**400, ExactMatcher(specs[0], 0.42)).message


# ---------------------------------------------------------------------------------------------------------
# Release with variants and grading, real kernels


def _variant_source(folder: Path) -> Path:
    """The tiny fixture with per-student data and a free-text question q5 (2 points)."""
    folder.mkdir(parents=True)
    shutil.copy(FIXTURE / "crossover.csv", folder)
    notebook = nbformat.read(FIXTURE / "tiny.ipynb", as_version=4)
    data = next(c for c in notebook.cells if 'pd.read_csv("crossover.csv")' in c.source)
    data.source = data.source.replace(
        'crossover = pd.read_csv("crossover.csv")',
        'from glmmteach.variants import resample_clusters\n\n'
        'crossover = resample_clusters(pd.read_csv("crossover.csv"), "ID", seed=checks.seed)')
    text = nbformat.v4.new_code_cell('### BEGIN SOLUTION\nreason = "Each patient is measured twice."\n'
                                     '### END SOLUTION\ncheck("q5", reason)')
    text.metadata = {"tags": ["solution"], "glmmteach": {"question": {"id": "q5", "kind": "text", "points": 2}}}
    notebook.cells.append(text)
    notebook.metadata["glmmteach"] = {**notebook.metadata.get("glmmteach", {}), "variants": True}
    nbformat.write(notebook, folder / "tiny.ipynb")
    return folder


RIGHT = [*RIGHT_Q1_TO_Q4, "reason = 'Two periods per patient, so outcomes of one patient are correlated.'"]


def _complete(released: Path, codes: list[str]) -> nbformat.NotebookNode:
    """The released notebook at ``released`` with its placeholders answered by ``codes``."""
    assert released.name == "tiny.ipynb"
    return nbformat.reads(submission(released.parent, codes), as_version=4)


def _expected(seed: int | None) -> dict[str, float]:
    data = resample_clusters(pd.read_csv(FIXTURE / "crossover.csv"), "ID", seed=seed)
    t = pd.crosstab(data["trt"], data["outcome"])
    return {"q1": (t.loc[1, 1] / t.loc[1, 0]) / (t.loc[0, 1] / t.loc[0, 0]),
            "q2": data.query("trt == 0 and period == 1")["outcome"].mean()}


def _cli(*arguments: str) -> subprocess.CompletedProcess[str]:
    env = {"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin", "PYTHONHASHSEED": "0"}
    return subprocess.run([sys.executable, "-m", "glmmteach.cli", *arguments], capture_output=True, text=True,
                          timeout=600, env=env)


@pytest.fixture(scope="module")
def course(tmp_path_factory):
    root = tmp_path_factory.mktemp("variants")
    source = _variant_source(root / "source")
    (root / "roster.csv").write_text("student,name,email,section\nalice,Alice A,alice@uni.example,S1\n"
                                     "bob,Bob B,bob@uni.example,S1\ncarol,Carol C,carol@uni.example,S2\n"
                                     "dave,Dave D,dave@uni.example,S2\nerin,Erin E,erin@uni.example,S2\n")
    # a fixed release secret (TEST_RELEASE_SECRET: why, in grading_helpers)
    (root / "secret.txt").write_text(SECRET + "\n")
    released = _cli("release", str(source), str(root / "release"), "--students", str(root / "roster.csv"),
                    "--keys", str(root / "keys"), "--jobs", "2", "--timeout", "120",
                    "--secret-file", str(root / "secret.txt"))
    assert released.returncode == 0, released.stderr
    return {"root": root, "source": source, "release": root / "release", "keys": root / "keys",
            "stderr": released.stderr}


def test_release_writes_one_notebook_per_student_and_keeps_keys_outside(course):
    release, keys = course["release"], course["keys"]
    assert sorted(p.name for p in release.iterdir()) == ["alice", "bob", "carol", "dave", "erin"]
    assert (release / "alice" / "crossover.csv").is_file()
    store = KeyStore.open(keys, create=False)
    assert store.secret == SECRET  # from --secret-file
    assert (keys / "keys.json").stat().st_mode & 0o077 == 0
    assert not list(release.rglob("keys.json"))
    seeds = {s: store.exercises["tiny.ipynb"]["keys"][s]["seed"] for s in store.students}
    assert len(set(seeds.values())) == 5 and store.exercises["tiny.ipynb"]["keys"]["*"]["seed"] is None
    for student, seed in seeds.items():
        key = store.exercises["tiny.ipynb"]["keys"][student]["key"]
        expected = _expected(seed)
        assert math.isclose(key["q1"], expected["q1"], rel_tol=1e-12), student  # the student's own data
        assert math.isclose(key["q2"], expected["q2"], rel_tol=1e-12)
        assert f"seed\\\": {seed}" in (release / student / "tiny.ipynb").read_text()


def test_brute_force_finds_nothing_in_a_released_notebook(course):
    """What an attacker has is the notebook: search it for values and digests, then query its check."""
    store = KeyStore.open(course["keys"], create=False)
    text = (course["release"] / "alice" / "tiny.ipynb").read_text()
    key = store.exercises["tiny.ipynb"]["keys"]["alice"]["key"]
    # 1. No answer at any precision, no digest, no secret, no solution text.
    assert leaked_values(text, key) == []
    assert re.findall(r"[0-9a-f]{16,}", text) == []
    assert store.secret not in text and "Each patient is measured twice" not in text
    # 2. The notebook's own check as an oracle: scan a fine grid of candidates over eight decades.
    setup = next(c.source for c in nbformat.reads(text, as_version=4).cells
                 if "checks-setup" in c.metadata.get("tags", []))
    public = json.loads(ast.literal_eval(re.search(r"from_key\((.*)\)\n", setup).group(1)))
    spec = QuestionSpec.from_dict(public["questions"]["q1"]["spec"])
    hints = public["questions"]["q1"]["hints"]
    candidates = np.exp(np.linspace(np.log(1e-4), np.log(1e4), 400_001))  # steps of 0.005 %
    accepted = np.array([check_form(spec, float(v), hints).correct for v in candidates[::50]])
    plausible = candidates[::50][accepted]
    answer = key["q1"]
    assert plausible.min() <= answer <= plausible.max()
    assert plausible.max() / plausible.min() > 5  # the oracle only narrows the answer to a decade
    messages = {check_form(spec, answer * f, hints).message for f in (0.6, 0.8, 0.95, 0.999, 1, 1.001, 1.05, 1.5)}
    assert len(messages) == 1  # the right answer reads the same as values 40 % off
    # 3. The attacker's best guess (the middle of what the oracle accepts, in log scale) scores nothing.
    guess = float(np.exp(np.log(plausible).mean()))
    assert not diagnose(spec, guess, ExactMatcher(spec, answer)).correct


@pytest.fixture(scope="module")
def graded(course):
    root, release = course["root"], course["release"]
    submissions = root / "submissions"
    alice = _complete(release / "alice" / "tiny.ipynb", RIGHT)
    for student in ("alice", "bob", "carol", "dave"):
        (submissions / student).mkdir(parents=True)
    nbformat.write(alice, submissions / "alice" / "tiny.ipynb")
    # bob hands in alice's notebook (her seed inside): graded on bob's own data
    nbformat.write(alice, submissions / "bob" / "tiny.ipynb")
    # carol types in alice's numbers
    store = KeyStore.open(course["keys"], create=False)
    alice_key = store.exercises["tiny.ipynb"]["keys"]["alice"]["key"]
    copied = [f"odds_ratio = {alice_key['q1']!r}", f"p_placebo_2 = {alice_key['q2']!r}",
              f"log_odds_by_period = {alice_key['q3']!r}", f"more_frequent = {alice_key['q4']!r}",
              "reason = 'copied'"]
    nbformat.write(_complete(release / "carol" / "tiny.ipynb", copied), submissions / "carol" / "tiny.ipynb")
    # dave names his file "tiny (1).ipynb"; erin (on the roster) submits nothing
    nbformat.write(_complete(release / "dave" / "tiny.ipynb", RIGHT), submissions / "dave" / "tiny (1).ipynb")
    (submissions / ".frank").mkdir()
    shutil.copy(submissions / "alice" / "tiny.ipynb", submissions / ".frank" / "tiny.ipynb")
    shutil.copy(submissions / "alice" / "tiny.ipynb", submissions / "tiny.ipynb")
    out = root / "grades" / "gradebook.csv"
    finished = _cli("grade", str(course["source"]), str(submissions), "--out", str(out), "--keys",
                    str(course["keys"]), "--jobs", "2", "--timeout", str(TIMEOUT))
    assert finished.returncode == 0, finished.stderr
    return {"out": out, "stderr": finished.stderr, "submissions": submissions, "alice_key": alice_key}


def _rows(path: Path) -> dict[str, dict[str, str]]:
    with path.open() as handle:
        return {row["student"]: row for row in csv.DictReader(handle)}


def test_keys_are_reused_and_copied_numbers_earn_nothing(graded):
    assert "computing" not in graded["stderr"]  # every key came from the release's store
    rows = _rows(graded["out"])
    assert [rows["alice"][f"tiny:q{i}"] for i in range(1, 5)] == ["2", "1", "1", "1"]
    assert [rows["bob"][f"tiny:q{i}"] for i in range(1, 5)] == ["2", "1", "1", "1"]  # his data, his answers
    assert [rows["carol"][f"tiny:q{i}"] for i in range(1, 4)] == ["0", "0", "0"]
    assert rows["alice"]["tiny:q5"] == "" and rows["alice"]["to_mark"] == "1"
    assert (rows["erin"]["status"], rows["erin"]["total"]) == ("missing", "0")


def test_misnamed_misplaced_and_hidden_submissions_are_named(graded):
    rows = _rows(graded["out"])
    assert rows["dave"]["status"] == "missing"
    feedback = (graded["out"].parent / "feedback" / "dave.md").read_text()
    assert "q1 (0/2): not submitted (see the note below)." in feedback
    assert "Note:\n- `found 'tiny (1).ipynb' (misnamed); rename or move it to tiny.ipynb" in feedback
    warnings = (graded["out"].parent / "warnings.txt").read_text()
    assert "dave/tiny (1).ipynb: misnamed, looks like tiny.ipynb" in warnings
    assert "hidden folder '.frank' holds notebooks" in warnings
    assert "'tiny.ipynb' lies outside any student folder" in warnings
    assert "warning: dave/tiny (1).ipynb" in graded["stderr"]


def test_survey_recognises_the_usual_mangled_names(tmp_path):
    exercises = [load_exercise(FIXTURE / "tiny.ipynb")]
    for student, name in [("a", "Tiny.ipynb"), ("b", "tiny.ipynb.ipynb"), ("c", "sub/tiny.ipynb"),
                          ("d", "tiny - Copy.ipynb"), ("e", ".ipynb_checkpoints/tiny-checkpoint.ipynb")]:
        (tmp_path / student / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / student / name).write_text("{}")
    students, notes, _ = survey_submissions(tmp_path, exercises, [])
    assert students == ["a", "b", "c", "d", "e"]
    assert {student for student, _ in notes} == {"a", "b", "c", "d", "e"}
    assert "in a subfolder" in notes[("c", "tiny.ipynb")]
    assert "a Jupyter checkpoint copy" in notes[("e", "tiny.ipynb")]


def test_totals_and_lms_files(graded):
    folder = graded["out"].parent
    totals = _rows(folder / "totals.csv")
    assert list(totals) == ["alice", "bob", "carol", "dave", "erin"]
    assert (totals["alice"]["tiny"], totals["alice"]["max"], totals["alice"]["percent"]) == ("5", "7", "71.4")
    canvas = list(csv.reader((folder / "lms-canvas.csv").open()))
    assert canvas[0] == ["Student", "ID", "SIS User ID", "SIS Login ID", "Section", "tiny (7 points)"]
    assert canvas[1][0] == "Points Possible" and canvas[1][-1] == "7"
    assert ["Alice A", "", "alice", "", "S1", "5"] in canvas
    moodle = list(csv.reader((folder / "lms-moodle.csv").open()))
    assert moodle[0] == ["ID number", "Email address", "tiny"] and ["bob", "bob@uni.example", "5"] in moodle


def test_regrade_one_student_and_merge_manual_marks(graded, course):
    folder = graded["out"].parent
    before = _rows(graded["out"])
    answers = list(csv.DictReader((folder / "manual-answers.csv").open()))
    assert {(a["student"], a["answer"]) for a in answers} >= {
        ("alice", "Two periods per patient, so outcomes of one patient are correlated."), ("carol", "copied")}
    (folder / "marks.csv").write_text("student,notebook,question,points\nalice,tiny.ipynb,q5,1.5\n"
                                      "carol,tiny.ipynb,q5,9\ndave,tiny.ipynb,q5,1\n")
    submissions = graded["submissions"]
    (submissions / "dave" / "tiny (1).ipynb").rename(submissions / "dave" / "tiny.ipynb")
    finished = _cli("grade", str(course["source"]), str(submissions), "--out", str(graded["out"]), "--keys",
                    str(course["keys"]), "--student", "dave", "--timeout", str(TIMEOUT))
    assert finished.returncode == 0, finished.stderr
    assert "[1/1] dave/tiny.ipynb: ok" in finished.stderr and "computing" not in finished.stderr
    after = _rows(graded["out"])
    assert (after["dave"]["status"], after["dave"]["total"]) == ("ok", "6")
    dave = (folder / "feedback" / "dave.md").read_text()  # the feedback's total is the gradebook's
    assert "## tiny.ipynb: 6 / 7" in dave and "- q5 (1/2): marked by the instructor." in dave
    assert (after["alice"]["tiny:q5"], after["alice"]["total"], after["alice"]["to_mark"]) == ("1.5", "6.5", "0")
    assert after["carol"]["tiny:q5"] == ""  # 9 of 2 points is refused, with a warning
    assert "points 9 outside 0..2" in (folder / "warnings.txt").read_text()
    for student in ("bob", "carol", "erin"):
        assert {k: v for k, v in after[student].items() if k != "to_mark"} == \
            {k: v for k, v in before[student].items() if k != "to_mark"}
    assert _rows(folder / "totals.csv")["alice"]["tiny"] == "6.5"


def test_key_store_takes_a_given_secret_and_refuses_to_change_it(tmp_path):
    exercise = load_exercise(_variant_source(tmp_path / "source") / "tiny.ipynb")
    (tmp_path / "secret.txt").write_text(f"  {SECRET.upper()}\n")
    secret = read_secret(tmp_path / "secret.txt")
    assert secret == SECRET
    seeds = [KeyStore.open(tmp_path / folder, create=True, secret=secret).seed(exercise, "alice")
             for folder in ("one", "two")]
    assert seeds[0] == seeds[1]  # the same secret, the same student data, in any store
    assert KeyStore.open(tmp_path / "one", create=False, secret=secret).secret == SECRET
    with pytest.raises(GradingError, match="already has its own secret"):
        KeyStore.open(tmp_path / "one", create=True, secret="ab" * 32)
    for text in ("", "ab" * 31, "xy" * 32, "a" * 65, f"{SECRET} {SECRET}"):
        (tmp_path / "bad.txt").write_text(text)
        with pytest.raises(GradingError, match="bad.txt must hold an even number"):
            read_secret(tmp_path / "bad.txt")
    with pytest.raises(GradingError, match="cannot read the secret file"):
        read_secret(tmp_path / "missing.txt")


def test_key_store_computes_each_key_once_and_again_when_the_source_changes(tmp_path):
    source = _variant_source(tmp_path / "source")
    exercise = load_exercise(source / "tiny.ipynb")
    calls = []

    def compute(seed):
        calls.append(seed)
        return {"q1": float(len(calls))}

    store = KeyStore.open(tmp_path / "keys", create=True)
    first = store.key(exercise, "alice", compute)
    assert store.key(exercise, "alice", compute) == first and len(calls) == 1
    reopened = KeyStore.open(tmp_path / "keys", create=False)
    assert reopened.key(exercise, "alice", compute) == first and len(calls) == 1
    assert reopened.seed(exercise, "alice") == first[1] != reopened.seed(exercise, "bob")
    assert KeyStore.open(tmp_path / "other", create=True).seed(exercise, "alice") != first[1]  # new secret
    data = (source / "crossover.csv").read_text()
    (source / "crossover.csv").write_text(data.replace("\n1,1,0,0,0", "\n1,1,0,0,1", 1))
    changed = load_exercise(source / "tiny.ipynb")
    assert reopened.key(changed, "alice", compute)[0] == {"q1": 2.0} and calls == [first[1], first[1]]


def _tree_bytes(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_grade_without_the_key_store_refuses_exercises_with_variants(graded, course):
    """Without --keys a student's own data would be replaced by the course data (6 points became 8)."""
    before = graded["out"].read_bytes()
    for extra in ([], ["--student", "alice"]):
        refused = _cli("grade", str(course["source"]), str(graded["submissions"]), "--out", str(graded["out"]),
                       "--timeout", str(TIMEOUT), *extra)
        assert refused.returncode == 1, refused.stderr
        assert "tiny.ipynb in" in refused.stderr and "give each student their own data: pass --keys KEYS_DIR" \
            in refused.stderr
    assert graded["out"].read_bytes() == before


def test_release_again_is_refused_without_force_and_reuses_the_recorded_keys(course, graded):
    released = _tree_bytes(course["release"])
    store = (course["keys"] / "keys.json").read_bytes()
    arguments = ["release", str(course["source"]), str(course["release"]), "--students",
                 str(course["root"] / "roster.csv"), "--jobs", "2", "--timeout", "120"]
    refused = _cli(*arguments)  # no --keys: the first release's store was --keys elsewhere
    assert refused.returncode == 1
    assert f"{course['release']} already holds a release" in refused.stderr and "pass --force" in refused.stderr
    assert f"(the key store {course['keys'].resolve()} is reused)" in refused.stderr
    assert _tree_bytes(course["release"]) == released
    forced = _cli(*arguments, "--force")
    assert forced.returncode == 0, forced.stderr
    assert _tree_bytes(course["release"]) == released  # the same seeds: every student keeps their data
    assert (course["keys"] / "keys.json").read_bytes() == store
    assert not (course["release"].parent / "release-keys").exists()  # no new store with a new secret
