"""Lesson 20's stored R output (``data/lme4_practice/reference.json``) is what its script gives today.

Re-runs ``data/lme4_practice/make_reference.R`` (R 4.2, lme4 1.1-31, glmmTMB 1.1.5) in a temporary copy of
the folder and compares it with the stored file to what R's answers determine: the lesson quotes lme4's and
glmmTMB's warnings and values from the stored file, so a change in R's answers must show here, not silently in
the book. What an optimiser's stop leaves to the machine is not compared digit by digit: lme4's fits stop
at its optimiser's tolerance (max|grad| up to 0.002 by default, and beyond it in the fits it warns about), so
on another CPU (another OpenBLAS kernel) the same script gives estimates that differ in their 4th-5th
significant digit, other max|grad| values and even another count of warnings (found on a fresh machine:
allFit's bobyqa without its "nearly unidentifiable" warning, nlminb stopping on its iteration limit instead
of "false convergence"). Compared: every structure and string that is not a number or a diagnostic of the stop
exactly; glmmTMB's converged fits and every other number to 1e-6; lme4's estimates and log-likelihoods to its
stop (1e-3 relative or 1e-4 absolute; 1e-2 for a fit it flags); whether lme4 flags a fit as unconverged or
singular, and its max|grad| on the same side of lme4's tolerance.
"""

from __future__ import annotations

import json
import math
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from lme4_compare import skip_without_r

pytestmark = [pytest.mark.r, pytest.mark.slow]

DATA = Path(__file__).resolve().parents[1] / "data"
FOLDER = DATA / "lme4_practice"


EXACT_TOLERANCE = {"rel_tol": 1e-6, "abs_tol": 1e-9}  # a converged optimum (glmmTMB's) and everything else
STOP_TOLERANCE = {"rel_tol": 1e-3, "abs_tol": 1e-4}  # lme4's estimates are determined to its optimiser's stop
FLAGGED_TOLERANCE = {"rel_tol": 1e-2, "abs_tol": 1e-4}  # a fit lme4 flags stopped short: to about 1 %
GRADIENT_TOLERANCE = 0.002  # lme4's check.conv.grad (stored under "tolerances")


def differences(old: Any, new: Any, where: str = "", tolerance: dict = EXACT_TOLERANCE) -> list[str]:
    """Where ``new`` differs from ``old`` in what R's answers determine (module docstring): strings and structure
    exactly, numbers to ``tolerance``, an lme4 fit by :func:`_fit_differences`."""
    if isinstance(old, dict) and isinstance(new, dict):
        if set(old) != set(new):
            return [f"{where}: keys {sorted(set(old) ^ set(new))}"]
        if {"warnings", "fixef", "theta"} <= set(old):  # an lme4 fit (glmmTMB's keep no theta)
            return _fit_differences(old, new, where)
        return [d for key in old for d in differences(old[key], new[key], f"{where}/{key}", tolerance)]
    if isinstance(old, list) and isinstance(new, list):
        if len(old) != len(new):
            return [f"{where}: length {len(old)} -> {len(new)}"]
        return [d for i, (a, b) in enumerate(zip(old, new, strict=True))
                for d in differences(a, b, f"{where}[{i}]", tolerance)]
    numbers = (int, float)
    if isinstance(old, numbers) and isinstance(new, numbers) and not isinstance(old, bool):
        return [] if math.isclose(old, new, **tolerance) else [f"{where}: {old} -> {new}"]
    return [] if old == new else [f"{where}: {old!r} -> {new!r}"]


def _flagged(messages: list[str]) -> bool:
    """lme4 calls the fit unconverged (its own checks, or the optimiser's code)."""
    return any("converge" in text for text in messages)


def _singular(messages: list[str]) -> bool:
    return any("singular" in text for text in messages)


def _max_grad(fit: dict) -> float | None:
    """lme4's max|grad| at the stop: stored, or quoted in its warning; None when neither (allFit keeps no
    diagnostics and lme4 warned of none: below its tolerance)."""
    if "conv" in fit:
        return fit["conv"]["max_grad"]
    quoted = [re.search(r"max\|grad\| = ([0-9.e-]+)", text) for text in fit["warnings"]]
    return next((float(m.group(1)) for m in quoted if m), None)


def _borderline(old: dict, new: dict) -> bool:
    """Both runs stopped within a factor 5 of lme4's gradient tolerance: whether lme4 then warns is the stop's
    noise (found: allFit's bobyqa at max|grad| 0.0070 on one machine, below 0.002 on another)."""
    grads = [_max_grad(fit) for fit in (old, new)]
    return all(g is None or GRADIENT_TOLERANCE / 5 < g < 5 * GRADIENT_TOLERANCE for g in grads) and any(
        g is not None for g in grads)


def _fit_differences(old: dict, new: dict, where: str) -> list[str]:
    """An lme4 fit: its verdicts (unconverged, singular), its max|grad| on the same side of the tolerance, and
    its estimates to its optimiser's stop."""
    found = []
    flagged = _flagged(old["warnings"]), _flagged(new["warnings"])
    if (flagged[0] != flagged[1] and not _borderline(old, new)) or (
            _singular(old["warnings"]) != _singular(new["warnings"])):
        found.append(f"{where}/warnings: {old['warnings']!r} -> {new['warnings']!r}")
    tolerance = FLAGGED_TOLERANCE if any(flagged) else STOP_TOLERANCE
    for key in old:
        if key == "warnings":
            continue
        if key == "conv":
            before, after = old[key]["max_grad"], new[key]["max_grad"]
            if (before > GRADIENT_TOLERANCE) != (after > GRADIENT_TOLERANCE) and not _borderline(old, new):
                found.append(f"{where}/conv/max_grad: {before} -> {after} (across lme4's tolerance)")
            continue
        found += differences(old[key], new[key], f"{where}/{key}", tolerance)
    return found


def test_make_reference_reproduces_the_stored_output(tmp_path: Path) -> None:
    skip_without_r("library(lme4); library(glmmTMB); library(jsonlite)")
    folder = tmp_path / "lme4_practice"
    folder.mkdir()
    for name in ("make_reference.R", "singular.csv", "runaway.csv"):
        shutil.copy(FOLDER / name, folder / name)
    shutil.copy(DATA / "ohio_cancer.csv", tmp_path / "ohio_cancer.csv")
    run = subprocess.run(["Rscript", "make_reference.R"], cwd=folder, capture_output=True, text=True,
                         check=False, timeout=900)
    assert run.returncode == 0, f"make_reference.R failed:\n{run.stderr[-3000:]}"
    stored = json.loads((FOLDER / "reference.json").read_text())
    fresh = json.loads((folder / "reference.json").read_text())
    assert differences(stored, fresh) == []
