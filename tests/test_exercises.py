"""Every exercise notebook: its solutions pass their own checks and its released form gives nothing away."""

from __future__ import annotations

import ast
import concurrent.futures
import re
from pathlib import Path

import nbformat
import numpy as np
import pytest
from grading_helpers import TEST_RELEASE_SECRET
from nbformat import NotebookNode

from glmmteach.bookbuild import hide_graded_solutions
from glmmteach.checks import (
    NUMERIC_KINDS,
    RECORDED,
    TRANSFORMS,
    alternative_id,
    check_form,
    make_public_key,
    solution_range_problem,
)
from glmmteach.grading import (
    PLACEHOLDER,
    SETUP_TAG,
    SOLUTION_TAG,
    Exercise,
    Released,
    ReleaseError,
    compute_key,
    execute_notebook,
    grade_submission,
    leaked_values,
    load_exercises,
    prepare_release,
    score_answer,
    solution_lines,
    solution_notebook,
    strip_solution,
)
from glmmteach.grading.keys import KeyStore
from glmmteach.grading.notebooks import setup_source
from glmmteach.grading.release import prepare_variant

EXERCISES = Path(__file__).resolve().parents[1] / "exercises"
SOURCES = sorted(EXERCISES.glob("*.ipynb"))


def test_there_is_an_exercise_per_lesson_group():
    names = {path.stem for path in SOURCES}
    for topic in ("crossover_glm", "glmm_likelihood", "crossover_glmm", "population_vs_conditional",
                  "poisson_ohio", "overdispersion"):
        assert any(topic in name for name in names), topic


@pytest.mark.parametrize("path", SOURCES, ids=[p.stem for p in SOURCES])
def test_exercise_is_well_formed_for_the_book_and_the_grader(path):
    exercise = load_exercises(EXERCISES)[SOURCES.index(path)]
    assert len(exercise.specs) >= 4
    cells = exercise.notebook.cells
    assert sum(SETUP_TAG in c.metadata.get("tags", []) for c in cells) == 1
    for index, cell in enumerate(cells):
        spec = cell.metadata.get("glmmteach", {}).get("question")
        if spec is None:
            continue
        # The book shows each question as an {exercise} with its solution in a dropdown around the cell.
        assert re.search(r"\{exercise\}", cells[index - 2].source), (spec["id"], index)
        assert "{solution-start}" in cells[index - 1].source and ":class: dropdown" in cells[index - 1].source
        assert "{solution-end}" in cells[index + 1].source
        assert SOLUTION_TAG in cell.metadata["tags"]
        assert f'check("{spec["id"]}",' in cell.source


@pytest.fixture(scope="module")
def all_prepared() -> dict[Path, Released | Exception]:
    """Every exercise run through the release checks, two at a time."""

    def attempt(exercise: Exercise) -> Released | Exception:
        try:
            return prepare_release(exercise, timeout=300)
        except ReleaseError as exc:
            return exc

    exercises = load_exercises(EXERCISES)
    with concurrent.futures.ThreadPoolExecutor(max_workers=2) as pool:
        return dict(zip([ex.path for ex in exercises], pool.map(attempt, exercises), strict=True))


@pytest.mark.parametrize("path", SOURCES, ids=[p.stem for p in SOURCES])
def test_solutions_pass_their_checks_and_release_hides_them(all_prepared, path):
    prepared = all_prepared[path]
    if isinstance(prepared, Exception):
        pytest.fail(str(prepared))
    text = nbformat.writes(prepared.notebook)
    assert leaked_values(text, prepared.key) == []
    assert [line for line in solution_lines(prepared.exercise) if line in text] == []
    assert text.count(PLACEHOLDER.splitlines()[-1]) == len(prepared.exercise.specs)
    assert "{solution-start}" not in text and "{exercise}" not in text


@pytest.mark.parametrize("path", SOURCES, ids=[p.stem for p in SOURCES])
def test_released_checks_cannot_tell_the_answer_from_values_five_percent_off(all_prepared, path):
    """The released notebook's check, used as an oracle, gives the same reply for the answer and its
    neighbours: nothing in it pins an answer down (see also tests/test_grading_key.py)."""
    prepared = all_prepared[path]
    if isinstance(prepared, Exception):
        pytest.fail(str(prepared))
    text = nbformat.writes(prepared.notebook)
    assert re.findall(r"[0-9a-f]{16,}", text) == []  # no digests
    public = make_public_key(prepared.exercise.name, prepared.exercise.specs, prepared.key)
    for spec in prepared.exercise.specs:
        if spec.kind not in NUMERIC_KINDS or spec.kind == "integer":
            continue
        hints = public["questions"][spec.id]["hints"]
        answer = np.asarray(prepared.key[spec.id], dtype=float)
        nearby = [(answer * factor).tolist() for factor in (0.95, 1, 1.05)]
        # (a probability of 0.99 plus 5 % is no probability: the kind says so, not the notebook's hints)
        nearby = [value for value in nearby if solution_range_problem(spec, value) is None]
        replies = {check_form(spec, value, hints).message for value in nearby}
        assert len(replies) == 1, (spec.id, replies)


def _book_run(exercise: Exercise):
    """The source notebook as the book runs it (``ExerciseChecks("name")``, no key, course data)."""
    return execute_notebook(exercise.notebook, timeout=300, data_files=exercise.data_files)


def test_book_view_shows_one_short_confirmation_per_question():
    exercises = load_exercises(EXERCISES)
    with concurrent.futures.ThreadPoolExecutor(max_workers=2) as pool:
        runs = list(pool.map(_book_run, exercises))
    for exercise, run in zip(exercises, runs, strict=True):
        assert run.status == "ok", (exercise.filename, run.errors)
        for cell in run.notebook.cells:
            if cell.cell_type != "code":
                continue
            shown = "".join(o.get("text", "") if o.get("name") == "stdout" else
                            str(o.get("data", {}).get("text/plain", "")) for o in cell.outputs)
            assert "no answer key" not in shown and shown.strip() not in ("False", "True"), exercise.filename
            spec = cell.metadata.get("glmmteach", {}).get("question")
            if spec is not None:
                assert shown == f"{spec['id']}: answer recorded.\n", (exercise.filename, shown)


@pytest.mark.parametrize("name", ["01_crossover_glm", "06_overdispersion"])
def test_exercises_with_variants_give_each_student_own_data_and_key(name, tmp_path):
    """Two students' keys from their own resamples differ from each other and from the course data's."""
    exercise = next(ex for ex in load_exercises(EXERCISES) if ex.name == name)
    assert exercise.variants
    store = KeyStore.open(tmp_path / "keys", create=True, secret=TEST_RELEASE_SECRET)
    keys = {}
    for student in ("alice", "bob"):
        released = prepare_variant(exercise, store, student, timeout=300)
        keys[student] = released.key
        seed = store.seed(exercise, student)
        assert f'\\"seed\\": {seed}' in nbformat.writes(released.notebook)
    default = compute_key(exercise, timeout=300)
    numeric = [s for s in exercise.specs if s.kind in NUMERIC_KINDS]
    for spec in numeric[:2]:
        values = [keys["alice"][spec.id], keys["bob"][spec.id], default[spec.id]]
        assert not score_answer(spec, values[0], values[1]).correct, spec.id
        assert not score_answer(spec, values[2], values[0]).correct, spec.id


@pytest.mark.parametrize("path", SOURCES, ids=[p.stem for p in SOURCES])
def test_public_book_hides_solutions_of_graded_sets_only(path):
    text = path.read_text()
    graded = nbformat.reads(text, as_version=4).metadata.get("glmmteach", {}).get("graded", False)
    hidden = hide_graded_solutions(text)
    if not graded:
        assert hidden is None
        return
    cells = nbformat.reads(hidden, as_version=4).cells
    solutions = [c for c in cells if SOLUTION_TAG in c.metadata.get("tags", [])]
    assert solutions and all("remove-cell" in c.metadata["tags"] for c in solutions)
    assert "solutions are not published" in cells[1].source
    shown = [c for c in cells if "remove-cell" not in c.metadata.get("tags", [])]
    assert not any("### BEGIN SOLUTION" in c.source or "{solution-start}" in c.source for c in shown)


def _question_cells(exercise: Exercise) -> list[tuple[str, NotebookNode]]:
    return [(c.metadata["glmmteach"]["question"]["id"], c) for c in exercise.notebook.cells
            if c.cell_type == "code" and "question" in c.metadata.get("glmmteach", {})]


def _records_a_misconception(statement: ast.stmt) -> bool:
    """``record("q5~name", ...)``: the solution computing a misconception's wrong value for the key (never
    released, so no dependency of the student's notebook)."""
    call = statement.value if isinstance(statement, ast.Expr) else None
    return (isinstance(call, ast.Call) and isinstance(call.func, ast.Name) and call.func.id == "record"
            and bool(call.args) and isinstance(call.args[0], ast.Constant) and "~" in str(call.args[0].value))


@pytest.mark.parametrize("path", SOURCES, ids=[p.stem for p in SOURCES])
def test_a_question_that_uses_an_earlier_questions_work_declares_it(path):
    """A name a solution reads that only an earlier question's solution defines makes that question depend
    on the earlier one: the spec says so (``uses``), so the grader can tell a student who left the earlier
    one blank why this one failed. Independent questions define what they need themselves."""
    exercise = next(ex for ex in load_exercises(EXERCISES) if ex.path == path)
    owner: dict[str, str | None] = {}
    specs = {s.id: s for s in exercise.specs}
    for cell in exercise.notebook.cells:
        if cell.cell_type != "code":
            continue
        qid = cell.metadata.get("glmmteach", {}).get("question", {}).get("id")
        tree = ast.parse(cell.source)
        tree.body = [statement for statement in tree.body if not _records_a_misconception(statement)]
        stored = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store)}
        stored |= {n.name for n in ast.walk(tree) if isinstance(n, ast.FunctionDef)}
        stored |= {(a.asname or a.name).split(".")[0] for n in ast.walk(tree)
                   if isinstance(n, (ast.Import, ast.ImportFrom)) for a in n.names}
        if qid is not None:
            read = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load)}
            needed = {owner[name] for name in read - stored if owner.get(name) not in (None, qid)}
            assert needed <= set(specs[qid].uses), (qid, sorted(needed), specs[qid].uses)
            assert set(specs[qid].uses) <= set(specs), (qid, specs[qid].uses)
        for name in stored:
            owner.setdefault(name, qid)


def test_a_blank_answer_fails_only_the_questions_that_build_on_it(tmp_path):
    """Exercise 01 with q1 and q5 left blank (the released placeholder): q6 and q7 are independent and
    still right; q2-q4 build on q1 and say that q1 is missing."""
    exercise = next(ex for ex in load_exercises(EXERCISES) if ex.name == "01_crossover_glm")
    key = compute_key(exercise, timeout=300)
    assert all(score_answer(s, key[s.id], key[s.id], key).correct for s in exercise.specs)
    notebook = solution_notebook(exercise)
    for qid, cell in _question_cells(Exercise(exercise.path, notebook, exercise.specs)):
        if qid in ("q1", "q5"):
            cell.source = strip_solution(cell.source)
    path = tmp_path / exercise.filename
    nbformat.write(notebook, path)
    public = make_public_key(exercise.name, exercise.specs, key)
    row = grade_submission(exercise, key, "alice", path, timeout=300, sandbox=None,
                           setup=setup_source(exercise, public))
    feedback = {f.question: f for f in row.feedback}
    assert feedback["q6"].correct and feedback["q7"].correct
    assert feedback["q5"].message == "no answer recorded."
    for qid in ("q2", "q3", "q4"):
        assert feedback[qid].message.startswith(f"no answer recorded; {qid} uses your answer to q1, which is "
                                                "missing"), feedback[qid].message


def test_recorded_misconceptions_are_recognised_in_exercise_01():
    """The wrong values the solution records (here: Model 3's period coefficient for Model 2's) are named."""
    exercise = next(ex for ex in load_exercises(EXERCISES) if ex.name == "01_crossover_glm")
    key = compute_key(exercise, timeout=300)
    q5 = next(s for s in exercise.specs if s.id == "q5")
    feedback = score_answer(q5, key["q5"], key["q5~model3"], key)
    assert "conditional on the interaction" in feedback.message and feedback.points == 0
    q6 = next(s for s in exercise.specs if s.id == "q6")
    statistic, p_value = key["q6"]
    halved = score_answer(q6, key["q6"], [statistic / 2, p_value], key)
    assert halved.points == pytest.approx(q6.points / 2)
    assert halved.message.startswith("p-value is right (1 of 2); statistic") and "twice" in halved.message


@pytest.mark.parametrize("path", SOURCES, ids=[p.stem for p in SOURCES])
def test_each_misconception_is_named_when_its_wrong_value_is_given(all_prepared, path):
    """Per question and misconception: the wrong value it predicts (computed from the key, or recorded by the
    solution) is told apart from the right answer, and scoring it gives the misconception's sentence."""
    prepared = all_prepared[path]
    if isinstance(prepared, Exception):
        pytest.fail(str(prepared))
    key = prepared.key
    for spec in [s for s in prepared.exercise.specs if s.misconceptions]:
        right = np.asarray(key[spec.id], dtype=float).ravel()
        for number, m in enumerate(spec.misconceptions):
            if m.transform == RECORDED:
                wrong = np.asarray(key[alternative_id(spec.id, m.name)], dtype=float).ravel()
            else:
                wrong = np.array([TRANSFORMS[m.transform](e) for e in right])
            distinct = [i for i in range(right.size) if m.concerns(spec, i)
                        and not spec.accepts(wrong[i], right[i], loose=True)]
            assert distinct, (spec.id, m.name)  # a misconception no answer could reveal is no feedback
            for i in distinct:
                value = right.copy()
                value[i] = wrong[i]
                message = score_answer(spec, key[spec.id], value.reshape(spec.shape).tolist(), key).message
                earlier = [e.message.rstrip(".") for e in spec.misconceptions[:number + 1]]
                assert any(text in message for text in earlier), (spec.id, m.name, message)
