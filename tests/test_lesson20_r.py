"""Lesson 20's stored R output (``data/lme4_practice/reference.json``) is what its script gives today.

Re-runs ``data/lme4_practice/make_reference.R`` (R 4.2, lme4 1.1-31, glmmTMB 1.1.5) in a temporary copy of
the folder and compares every message exactly and every number to 1e-6 relative (or 1e-9 absolute): the
lesson quotes lme4's and glmmTMB's warnings and values from the stored file, so a change in R's answers
must show here, not silently in the book.
"""

from __future__ import annotations

import json
import math
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from lme4_compare import skip_without_r

pytestmark = [pytest.mark.r, pytest.mark.slow]

DATA = Path(__file__).resolve().parents[1] / "data"
FOLDER = DATA / "lme4_practice"


def differences(old: Any, new: Any, where: str = "") -> list[str]:
    """Where ``new`` differs from ``old``: strings and structure exactly, numbers to 1e-6 relative."""
    if isinstance(old, dict) and isinstance(new, dict):
        if set(old) != set(new):
            return [f"{where}: keys {sorted(set(old) ^ set(new))}"]
        return [d for key in old for d in differences(old[key], new[key], f"{where}/{key}")]
    if isinstance(old, list) and isinstance(new, list):
        if len(old) != len(new):
            return [f"{where}: length {len(old)} -> {len(new)}"]
        return [d for i, (a, b) in enumerate(zip(old, new, strict=True)) for d in differences(a, b, f"{where}[{i}]")]
    numbers = (int, float)
    if isinstance(old, numbers) and isinstance(new, numbers) and not isinstance(old, bool):
        return [] if math.isclose(old, new, rel_tol=1e-6, abs_tol=1e-9) else [f"{where}: {old} -> {new}"]
    return [] if old == new else [f"{where}: {old!r} -> {new!r}"]


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
