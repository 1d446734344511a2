"""Shared fixtures (the course data and the R reference fits, copies of shared/reference) and the
markers of whole test files.

Markers (registered in pyproject.toml) let the library tests run alone in about a minute:
``pytest tests -m "not slow and not book and not grading and not r"``. Whole files are marked here,
by name, so that the files themselves stay free of bookkeeping; single slow or R-running tests of the
library files carry ``@pytest.mark.slow`` / ``@pytest.mark.r`` themselves.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from glmmteach import datasets

# (substring of a test file's name, marker): the course pages and the grader are not library tests.
FILE_MARKERS = (
    ("book_render", "book"),  # needs the built book (_build/html) and Chromium
    ("syllabus", "book"),  # reads the stored outputs of the executed lessons
    ("new_lessons", "book"),  # the numbers recorded by lessons 13-16
    ("lesson_cells", "book"),  # the lesson notebooks' code cells and figure metadata
    ("lessons_r_python", "book"),  # the R <-> Python page
    ("grading", "grading"),  # executes notebooks as students and instructors would
    ("exercises", "grading"),
    ("lme4_live", "r"),  # runs R with lme4
)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if item.path.suffix == ".ipynb":  # a lesson run by nbval
            item.add_marker(pytest.mark.book)
            continue
        for fragment, marker in FILE_MARKERS:
            if fragment in item.path.name:
                item.add_marker(getattr(pytest.mark, marker))

DATA = Path(__file__).parent / "data"


@pytest.fixture(scope="session")
def reference() -> dict:
    """R glm and lme4 glmer fits of every syllabus model (tests/data/lme4_reference.json)."""
    return json.loads((DATA / "lme4_reference.json").read_text())


@pytest.fixture(scope="session")
def exact_mle() -> dict:
    """The accurate quadrature MLE of the crossover GLMM (tests/data/crossover_exact_mle.json)."""
    return json.loads((DATA / "crossover_exact_mle.json").read_text())


@pytest.fixture()
def crossover() -> pd.DataFrame:
    return datasets.load_crossover()


@pytest.fixture()
def ohio() -> pd.DataFrame:
    return datasets.load_ohio_cancer()
