"""The syllabus's printed ``summary(glmer)`` blocks, checked against the summaries the lessons print.

``tests/test_syllabus_numbers.py`` checks the values lessons record; this test reads the printed
summaries themselves (stored outputs, which ``pytest --nbval`` proves equal to a fresh run) for
what the syllabus shows only there: scaled-residual quantiles, z values and the correlation of
fixed effects.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest

LESSONS = Path(__file__).resolve().parents[1] / "lessons"
NUMBER = re.compile(r"-?\d+(?:\.\d+)?(?:e[-+]?\d+)?")

# lme4's default Laplace fit of the crossover stops early (tolPwrss 1e-7) on a flat ridge; the
# converged optimum, which glmmteach prints, differs in the 4th digit of these quantities.
SYLLABUS = {
    "07_crossover_glmm": {
        "residuals": ([-1.52490, -0.01098, -0.00454, 0.06238, 1.59183], 2e-4),
        "z": ([-5.407, 3.220, 2.551, -1.799], 0.015),
        "correlation": ([-0.857, -0.762, 0.887, 0.634, -0.881, -0.929], 1.5e-3),
    },
    "10_ohio_glmm": {
        "residuals": ([-6.6678, -0.5699, -0.2176, 0.3900, 10.5059], 5e-5),
        # standard errors from a finite-difference Hessian agree with lme4's to 1e-4 relative
        "z": ([-332.90, -155.85, -4.60, 70.22], 0.03),
        "correlation": ([-0.077, -0.005, -0.005, -0.278, -0.002, -0.036], 1e-3),
    },
}


def first_summary(lesson: str) -> list[str]:
    """Lines of the first printed ``summary(glmer)`` in a lesson's stored outputs."""
    notebook = json.loads((LESSONS / f"{lesson}.ipynb").read_text(encoding="utf-8"))
    for cell in notebook["cells"]:
        for output in cell.get("outputs", []):
            text = output.get("text") or output.get("data", {}).get("text/plain", "")
            text = "".join(text) if isinstance(text, list) else text
            if "Scaled residuals:" in text:
                return text.splitlines()
    raise AssertionError(f"{lesson}.ipynb prints no summary(glmer)")


def block_after(lines: list[str], header: str, skip: int = 1) -> list[str]:
    """Lines after ``header`` (and ``skip`` column-title lines) up to a blank line or '---'."""
    start = next(i for i, line in enumerate(lines) if line.strip().startswith(header)) + 1 + skip
    block = []
    for line in lines[start:]:
        if not line.strip() or line.startswith("---"):
            break
        block.append(line)
    return block


def parsed(lines: list[str], what: str) -> list[float]:
    if what == "residuals":
        return [float(x) for x in NUMBER.findall(block_after(lines, "Scaled residuals:")[0])]
    if what == "z":
        rows = block_after(lines, "Fixed effects:")
        return [float(row.split()[3]) for row in rows]
    values = []
    for row in block_after(lines, "Correlation of Fixed Effects:"):
        cells = row.split()[1:]
        if not all(NUMBER.fullmatch(c) for c in cells):
            break  # a message printed after the table (lme4 prints its warnings there too)
        values += [float(c) for c in cells]
    return values


@pytest.mark.parametrize(("lesson", "what"), [(lesson, what) for lesson, rows in SYLLABUS.items() for what in rows])
def test_printed_summary_matches_syllabus(lesson: str, what: str) -> None:
    expected, tolerance = SYLLABUS[lesson][what]
    ours = parsed(first_summary(lesson), what)
    assert len(ours) == len(expected), f"{lesson}: {what} has {len(ours)} values, syllabus {len(expected)}"
    np.testing.assert_allclose(ours, expected, rtol=0, atol=tolerance, err_msg=f"{lesson}: {what}")
