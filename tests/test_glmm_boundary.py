"""glmer never stops at a wrong boundary: a variance parameter at 0 is tested before it is reported.

The data sets (``tests/data/boundary``, made by ``make_data.py``, fitted by lme4 in
``make_reference.R``) are simulated fits on which glmer once ended with a random-effect SD of exactly
0 (or at an early stop) while lme4 found a clearly higher likelihood; two are genuinely singular.
"""

from __future__ import annotations

import json
import warnings
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

import glmmteach
from glmmteach.exceptions import ConvergenceWarning, GlmmteachError, SingularFitWarning

DATA_DIR = Path(__file__).parent / "data" / "boundary"
CASES: dict[str, dict[str, Any]] = json.loads((DATA_DIR / "reference.json").read_text())["cases"]
SINGULAR = [name for name, case in CASES.items() if np.min(case["theta"]) < 1e-4]
INTERIOR = [name for name in CASES if name not in SINGULAR]


@cache
def data_of(name: str) -> pd.DataFrame:
    return pd.read_csv(DATA_DIR / f"{name}.csv")


@cache
def fit_of(name: str, formula: str | None = None) -> tuple[Any, list[type[Warning]]]:
    case = CASES[name]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        fit = glmmteach.glmer(formula or case["formula"], data_of(name), family=case["family"])
    return fit, [w.category for w in caught]


@pytest.mark.parametrize("name", list(CASES))
def test_loglik_reaches_lme4(name: str) -> None:
    fit, _ = fit_of(name)
    assert fit.llf >= CASES[name]["loglik"] - 1e-4, f"{fit.llf} below lme4's {CASES[name]['loglik']}"
    assert fit.converged


@pytest.mark.parametrize("name", INTERIOR)
def test_no_singular_warning_when_lme4_finds_the_sds_positive(name: str) -> None:
    fit, categories = fit_of(name)
    assert SingularFitWarning not in categories
    assert ConvergenceWarning not in categories
    assert not fit.singular
    np.testing.assert_allclose(fit.theta, CASES[name]["theta"], rtol=2e-3, atol=2e-4)


@pytest.mark.parametrize("name", SINGULAR)
def test_verified_boundary_still_warns_singular(name: str) -> None:
    fit, categories = fit_of(name)
    assert fit.singular
    assert SingularFitWarning in categories
    assert ConvergenceWarning not in categories


def test_anova_variance_component_matches_lme4() -> None:
    """The issue's symptom: (1|g) against (1 + x || g) printed a negative deviance with p = 1."""
    name = "pois_small_13"
    big, _ = fit_of(name)
    small, _ = fit_of(name, "y ~ x + (1 | g)")
    table = glmmteach.anova(small, big)
    expected = 2 * (CASES[name]["loglik"] - CASES[name]["loglik_intercept_only"])
    assert table["Deviance"].iloc[1] == pytest.approx(expected, abs=2e-4)
    assert table["Deviance"].iloc[1] > 0


def test_anova_refuses_a_larger_model_that_fits_worse() -> None:
    name = "pois_small_13"
    big, _ = fit_of(name)
    small, _ = fit_of(name, "y ~ x + (1 | g)")

    class Worse:  # the larger fit as a stuck optimiser would have left it
        formula, nobs, k_params, family = big.formula, big.nobs, big.k_params, big.family
        llf = small.llf - 3.0

    with pytest.raises(GlmmteachError, match="fits worse"):
        glmmteach.anova(small, Worse())


def test_a_boundary_that_cannot_be_verified_is_not_called_converged(monkeypatch: pytest.MonkeyPatch) -> None:
    """With no restarts allowed, the wrong boundary is found but not left: the fit must say so."""
    from glmmteach.glmm import optimize, start

    monkeypatch.setattr(optimize, "MAX_RESTARTS", 0)
    # from lme4's start (T = I) this fit reaches the wrong boundary; the moment start avoids it
    monkeypatch.setattr(start, "moment_theta",
                        lambda data, beta, term: (term.theta_start, np.full(term.n_theta, np.nan), 0.0))
    name = "pois_small_13"
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        fit = glmmteach.glmer(CASES[name]["formula"], data_of(name), family=CASES[name]["family"])
    categories = [w.category for w in caught]
    assert not fit.converged
    assert SingularFitWarning not in categories
    assert any(w.category is ConvergenceWarning and "not verified" in str(w.message) for w in caught)


def test_a_correlated_term_leaves_a_boundary_at_any_correlation() -> None:
    """(1 + x | a) on the data of the several-term scan's case scan303_079: with the intercept SD at 0, the
    entries of T below it are not identified, and the likelihood rises off the boundary only at a correlation
    the optimiser had not left there. lme4 (bobyqa, tolPwrss 1e-14, rhoend 1e-10): -997.094190 at
    theta (0.0274, -0.1232, 0); glmmteach used to stop, 'converged', at -997.188586."""
    data = pd.read_csv(Path(__file__).parent / "data" / "lme4_random_structures"
                       / "scan303_079_crs_pois_offform_300x4.csv")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SingularFitWarning)
        fit = glmmteach.glmer("y ~ x + (1 + x | a)", data, family="poisson", offset="logexpo")
    assert fit.converged
    assert fit.llf >= -997.094190 - 1e-6
