"""Shared by the grading tests: the fixture exercise, a right answer per question, and building submissions."""

from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path

import nbformat
import pytest

from glmmteach.grading import PLACEHOLDER

FIXTURE = Path(__file__).parent / "grading_fixtures" / "source"
# A fixed release secret for the tests that release per-student variants: with a fresh random one, two
# students' resamples now and then give answers within tolerance of each other (a chance event, not a leak),
# and their "copied numbers earn nothing" checks would fail at random.
TEST_RELEASE_SECRET = hashlib.sha256(b"glmmteach test release").hexdigest()

# Where these are all present (CI installs bubblewrap and runs as root), a security test that cannot run is
# a failure, not a skip: the hostile-submission tests as root and as an ordinary user are what the grader's
# promise rests on, and a skip there would hide a broken set-up.
SECURITY_TOOLS = ("root", "useradd", "bwrap")


def security_tools_missing() -> list[str]:
    """Which of root, ``useradd`` and ``bwrap`` this machine lacks (empty: every security test must run)."""
    missing = [] if os.geteuid() == 0 else ["root"]
    return missing + [tool for tool in SECURITY_TOOLS[1:] if shutil.which(tool) is None]


def skip_security_test(reason: str) -> None:
    """Skip a security test for ``reason`` when root, useradd or bubblewrap is missing here; else fail."""
    missing = security_tools_missing()
    if missing:
        pytest.skip(f"{reason} (this machine has no {', '.join(missing)})")
    pytest.fail(f"{reason}; root, useradd and bubblewrap are all present here, so this security test must "
                "run, not skip", pytrace=False)


# Student answers, as code that replaces each `raise NotImplementedError()` placeholder (in question order).
RIGHT = [
    "t = pd.crosstab(crossover['trt'], crossover['outcome'])\nodds_ratio = (t.loc[1, 1] / t.loc[1, 0]) / "
    "(t.loc[0, 1] / t.loc[0, 0])",
    "p_placebo_2 = crossover.query('trt == 0 and period == 1')['outcome'].mean()",
    "p_by_period = crossover.groupby('period')['outcome'].mean().to_numpy()\n"
    "log_odds_by_period = np.log(p_by_period / (1 - p_by_period))",
    "more_frequent = 'period 2' if p_by_period[1] > p_by_period[0] else 'period 1'",
]
WRONG = ["odds_ratio = 1.0", "p_placebo_2 = 0.5", "log_odds_by_period = [0, 0]", "more_frequent = 'maybe'"]


def submission(released: Path, codes: list[str], extra_cells: dict[int, str] | None = None) -> str:
    """A student's notebook: the released one with each placeholder replaced (and cells inserted before the
    cell at each given position of the released notebook; 100 appends)."""
    notebook = nbformat.read(released / "tiny.ipynb", as_version=4)
    answers = iter(codes)
    cells = []
    for cell in notebook.cells:
        if cell.cell_type == "code" and PLACEHOLDER in cell.source:
            cell.source = cell.source.replace(PLACEHOLDER, next(answers))
        cells.append(cell)
    for position, code in sorted((extra_cells or {}).items(), reverse=True):
        cells.insert(position, nbformat.v4.new_code_cell(code))
    notebook.cells = cells
    return nbformat.writes(notebook)
