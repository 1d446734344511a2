"""Every exercise notebook: its solutions pass their own checks and its released form gives nothing away."""

from __future__ import annotations

import concurrent.futures
import re
from pathlib import Path

import nbformat
import pytest

from glmmteach.grading import (
    PLACEHOLDER,
    SETUP_TAG,
    SOLUTION_TAG,
    Exercise,
    Released,
    ReleaseError,
    leaked_values,
    load_exercises,
    prepare_release,
    solution_lines,
)

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
