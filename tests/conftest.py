"""Shared fixtures (the course data and the R reference fits, copies of shared/reference) and the
markers of whole test files.

Markers (registered in pyproject.toml) let the library tests run alone in about a minute:
``pytest tests -m "not slow and not book and not grading and not r"``. Whole files are marked here,
by name, so that the files themselves stay free of bookkeeping; single slow or R-running tests of the
library files carry ``@pytest.mark.slow`` / ``@pytest.mark.r`` themselves.
"""

from __future__ import annotations

import json
import time
from collections import defaultdict
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
    ("test_pdf", "book"),  # make pdf: the book printed by Chromium
    ("lesson19", "book"),  # the numbers recorded by lesson 19
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


# ---- where the time goes: one line per part of the suite at the end of the run ----------------------------
# A plugin object, registered for the whole session: this conftest's own hooks would only see the items under
# tests/, not the lessons nbval runs.
class TimeByPart:
    PARTS = ("lessons (nbval)", "book", "grading", "r", "slow", "library")

    def __init__(self) -> None:
        self.seconds: defaultdict[str, float] = defaultdict(float)
        self.counts: defaultdict[str, int] = defaultdict(int)
        self.part_of: dict[str, str] = {}
        self.start = time.monotonic()

    @staticmethod
    def part(item: pytest.Item) -> str:
        if item.path.suffix == ".ipynb":
            return "lessons (nbval)"
        names = {mark.name for mark in item.iter_markers()}
        return next((part for part in TimeByPart.PARTS[1:-1] if part in names), "library")

    @pytest.hookimpl(trylast=True)
    def pytest_collection_finish(self, session: pytest.Session) -> None:
        self.part_of.update({item.nodeid: self.part(item) for item in session.items})

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        part = self.part_of.get(report.nodeid, "library")
        self.seconds[part] += report.duration  # setup, call and teardown (fixtures such as a built venv)
        if report.when == "call":
            self.counts[part] += 1

    def pytest_terminal_summary(self, terminalreporter: pytest.TerminalReporter) -> None:
        if not self.seconds:
            return
        terminalreporter.section("where the time goes")
        for part in self.PARTS:
            if part in self.seconds:
                terminalreporter.write_line(f"{part:>16}: {self.seconds[part]:7.1f} s in {self.counts[part]} tests")
        terminalreporter.write_line(f"{'whole run':>16}: {time.monotonic() - self.start:7.1f} s")


def pytest_configure(config: pytest.Config) -> None:
    config.pluginmanager.register(TimeByPart(), "glmmteach-time-by-part")


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
