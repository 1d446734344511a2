"""Shared by the tests that hold glmmteach to stored lme4 (and MASS) reference fits.

test_lme4_random.py, test_lme4_random_structures.py and test_lme4_structures.py judge a fit the same way:
its log-likelihood never more than ``LOGLIK_TOLERANCE`` below the reference's, and its fixed effects within
``FIXEF_RELATIVE`` relative (or ``FIXEF_ABSOLUTE``) wherever the reference is at least as good. With
test_lme4_extra.py they also import their data folder's ``make_data.py`` and re-run its ``make_reference.R``
when R is installed; the two randomised tests also check their references' kept start and generated CSV
files the same way.
"""

from __future__ import annotations

import importlib.util
import json
import math
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import pandas as pd
import pytest

LOGLIK_TOLERANCE = 1e-4  # glmmteach may be at most this far below the reference log-likelihood
BETTER_THAN_REFERENCE = 1e-6  # above the reference by more than this: it stopped short, fixed effects not compared
FIXEF_RELATIVE = 1e-4
FIXEF_ABSOLUTE = 1e-6


def assert_loglik_not_below(result: Any, case: dict[str, Any], details: Callable[[], str], optimum: str) -> None:
    """``result.llf`` at most LOGLIK_TOLERANCE below ``case["loglik"]``; ``optimum`` names it in the message."""
    expected = case["loglik"]
    gap = expected - result.llf
    assert gap <= LOGLIK_TOLERANCE, (
        f"glmmteach stopped {gap:.6g} log-likelihood units below {optimum} {expected:.8f}:\n{details()}"
    )


def assert_fixed_effects_match(result: Any, case: dict[str, Any], details: Callable[[], str], source: str) -> None:
    """Fixed effects within FIXEF_RELATIVE (or FIXEF_ABSOLUTE) of ``case["fixef"]``, wherever the reference's
    log-likelihood is at least as good; otherwise the test is skipped, saying so. ``source`` names the
    reference ("lme4", "R") in the messages."""
    if result.llf > case["loglik"] + BETTER_THAN_REFERENCE:
        pytest.skip(
            f"glmmteach's log-likelihood is {result.llf - case['loglik']:.3g} above {source}'s: {source} stopped "
            "short, so only the log-likelihood is compared"
        )
    expected = pd.Series(case["fixef"], dtype=float)
    got = result.params
    assert list(got.index) == list(expected.index), f"coefficient names differ from {source}'s"
    tolerance = np.maximum(FIXEF_RELATIVE * expected.abs(), FIXEF_ABSOLUTE)
    diff = (got - expected).abs()
    assert (diff <= tolerance).all(), (
        f"fixed effects differ from {source}'s (max |diff| {diff.max():.3g}; log-likelihood "
        f"{result.llf - case['loglik']:+.3g} against {source}'s):\n{details()}"
    )


def import_make_data(data_dir: Path, module_name: str) -> ModuleType:
    """The data folder's make_data.py, imported as a module."""
    spec = importlib.util.spec_from_file_location(module_name, data_dir / "make_data.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look the module up while the class is built
    try:
        spec.loader.exec_module(module)
    finally:
        sys.modules.pop(spec.name, None)
    return module


def assert_best_start_kept(cases: dict[str, dict[str, Any]]) -> None:
    """Every case's kept lme4 fit has the highest log-likelihood of the starts the reference script tried."""
    for name, case in cases.items():
        best = max(start["loglik"] for start in case["starts"].values() if start["loglik"] is not None)
        assert case["loglik"] >= best - 1e-9, name
        assert case["starts"][case["best_start"]]["loglik"] == pytest.approx(case["loglik"], abs=1e-12), name


def assert_csv_files_generated(data_dir: Path, module_name: str, cases: dict[str, dict[str, Any]],
                               keys: tuple[str, ...]) -> None:
    """Every CSV in ``data_dir`` is exactly what its make_data.py generates, every generated case has a reference
    fit, and the reference records the ``keys`` of the fit make_data.py plans."""
    make_data = import_make_data(data_dir, module_name)
    assert [spec.name for spec in make_data.SPECS] == list(cases)
    for spec in make_data.SPECS:
        stored = pd.read_csv(data_dir / spec.file)
        pd.testing.assert_frame_equal(stored, make_data.simulate(spec), check_dtype=False, check_exact=True,
                                      obj=spec.file)
        planned = make_data.fit_spec(spec)
        for key in keys:
            assert cases[spec.name][key] == planned[key], f"{spec.name}: {key}"


def skip_without_r(packages: str) -> None:
    """Skip the calling test unless Rscript runs and ``packages`` (an R expression loading them) load."""
    if shutil.which("Rscript") is None:
        pytest.skip("Rscript is not installed")
    probe = subprocess.run(["Rscript", "-e", packages], capture_output=True, text=True, check=False)
    if probe.returncode != 0:
        pytest.skip(f"R packages are missing: {probe.stderr.strip()[-200:]}")


def rerun_make_reference(data_dir: Path, names: list[str], packages: str, tmp_path: Path) -> dict[str, Any]:
    """The cases ``names`` as data_dir/make_reference.R fits them afresh (a skip when R or ``packages``,
    an R expression loading them, is missing)."""
    skip_without_r(packages)
    out = tmp_path / "reference.json"
    run = subprocess.run(
        ["Rscript", str(data_dir / "make_reference.R"), "--out", str(out), "--cases", ",".join(names)],
        capture_output=True, text=True, check=False, timeout=300,
    )
    assert run.returncode == 0, f"make_reference.R failed:\n{run.stderr}"
    fresh = json.loads(out.read_text())["cases"]
    assert list(fresh) == names
    return fresh


def assert_reproduces(old: dict[str, Any], new: dict[str, Any], name: str, *, same: tuple[str, ...],
                      coefficients: tuple[str, ...], logliks: tuple[str, ...]) -> None:
    """A fresh fit ``new`` of case ``name`` reproduces the stored ``old``: the ``same`` keys equal, every
    coefficient of the ``coefficients`` dicts to 1e-7 relative (1e-10 absolute), ``logliks`` to 1e-10."""
    for key in same:
        assert new[key] == old[key], f"{name}: {key}"
    for key in coefficients:
        for coef, value in old[key].items():
            assert math.isclose(new[key][coef], value, rel_tol=1e-7, abs_tol=1e-10), f"{name}: {key}[{coef}]"
    for key in logliks:
        assert math.isclose(new[key], old[key], rel_tol=1e-10), f"{name}: {key}"
