"""Lesson 20 (GLMMs in practice with lme4): the library-side claims of its text, against the stored R output.

``data/lme4_practice/reference.json`` (R 4.2, lme4 1.1-31, glmmTMB 1.1.5; its script beside it, re-run by
``tests/test_lesson20_r.py``) holds lme4's and glmmTMB's messages and estimates. The lesson asserts its claims
in hidden cells; these tests hold the library to the same claims without executing the lesson: the Ohio
random-slope fit with year in years is converged and only badly scaled (lme4's eigenvalue), its rescaled fit
is lme4's precise fit, the singular fit is lme4's, nAGQ > 1 is refused for a random slope as lme4 refuses it,
and the Poisson and negative binomial county GLMMs are glmmTMB's (the NB to a small fraction of an SE:
glmmTMB's Laplace uses the exact Hessian, glmmteach's the Fisher weights).
"""

from __future__ import annotations

import json
import re
import warnings

import numpy as np
import pandas as pd
import pytest

from glmmteach import glmer
from glmmteach.datasets import data_path, load_ohio_cancer
from glmmteach.exceptions import GlmmteachError, ScalingWarning, SingularFitWarning

REFERENCE = json.loads(data_path("lme4_practice/reference.json").read_text())
MEAN_MODEL = "death ~ offset(logpop) + factor(sex)*factor(race)"


def r_name(name: str) -> str:
    """lme4's coefficient names (sex2, sex2:race2) in glmmteach's spelling."""
    return re.sub(r"\b(sex|race)(?=\d)", r"factor(\1)", name)


def lme4_fixef(case: dict) -> pd.Series:
    return pd.Series(case["fixef"]).rename(r_name)


@pytest.fixture(scope="module")
def ohio() -> pd.DataFrame:
    data = load_ohio_cancer()
    data["decade"] = (data["year"] - 11) / 10
    return data


def fit_caught(formula: str, data: pd.DataFrame, **options):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        fit = glmer(formula, data, **options)
    return fit, caught


def test_year_in_years_is_converged_and_only_badly_scaled(ohio):
    case = REFERENCE["ohio_year_slope"]
    assert any("max|grad|" in text for text in case["warnings"])  # lme4 warns of convergence ...
    fit, caught = fit_caught(MEAN_MODEL + " + year + (1 + year | county)", ohio, family="poisson")
    assert [w.category for w in caught] == [ScalingWarning]  # ... glmmteach of the scaling only
    assert fit.converged
    eigenvalue = float(re.search(r"very large eigenvalue \(([\d.e+]+)\)", str(caught[0].message)).group(1))
    assert eigenvalue == pytest.approx(case["conv"]["hessian_eigen_max"], rel=0.01)
    # lme4's warned estimates are right to a thousandth of an SE, its log-likelihood a hair lower
    gap = (lme4_fixef(case)[fit.params.index] - fit.params).abs() / fit.bse
    assert gap.max() < 1e-3
    assert 0 <= fit.llf - case["loglik"] < 1e-5


def test_rescaled_fit_is_lme4s_precise_fit(ohio):
    tight = REFERENCE["ohio_decade_slope_tight"]
    fit, caught = fit_caught(MEAN_MODEL + " + decade + (1 + decade | county)", ohio, family="poisson")
    assert caught == [] and REFERENCE["ohio_decade_slope"]["warnings"] == []
    assert (lme4_fixef(tight)[fit.params.index] - fit.params).abs().max() < 1e-6
    assert np.abs(np.array(tight["theta"]) - fit.theta).max() < 1e-6
    assert fit.llf >= tight["loglik"] - 1e-6


def test_singular_fit_is_lme4s():
    case = REFERENCE["singular"]
    data = pd.read_csv(data_path("lme4_practice/singular.csv"))
    fit, caught = fit_caught("y ~ x + (1 | g)", data, family="binomial")
    assert [w.category for w in caught] == [SingularFitWarning]
    assert case["singular"] and fit.singular and fit.converged and fit.sd_re.iloc[0] == 0.0
    assert fit.llf == pytest.approx(case["loglik"], abs=1e-6)
    assert (pd.Series(case["fixef"]) - fit.params).abs().max() < 1e-5


def test_quadrature_is_refused_for_a_random_slope_as_in_lme4(ohio):
    assert REFERENCE["nagq_slope_error"].startswith("nAGQ > 1 is only available")
    with pytest.raises(GlmmteachError, match=r"single scalar random effect.*\(1 \+ decade \| county\)"):
        glmer(MEAN_MODEL + " + decade + (1 + decade | county)", ohio, family="poisson", nAGQ=5)


def test_county_glmms_are_glmmtmbs(ohio):
    tmb = REFERENCE["glmmtmb"]
    formula = MEAN_MODEL + " + decade + (1 | county)"
    poisson = glmer(formula, ohio, family="poisson")
    assert poisson.llf == pytest.approx(tmb["poisson"]["loglik"], abs=1e-6)
    nb = glmer(formula, ohio, family="negative_binomial")
    nb2 = tmb["nbinom2"]
    gap = (lme4_fixef(nb2)[nb.params.index] - nb.params).abs() / nb.bse
    assert gap.max() < 0.05
    assert abs(nb.llf - nb2["loglik"]) < 0.05
    assert nb.nb_theta == pytest.approx(nb2["dispersion"], rel=0.01)
    # the lesson's reading of the AICs: NB2 best, zero-inflation adds nothing
    aic = {name: fit["aic"] for name, fit in tmb.items()}
    assert aic["nbinom2"] < aic["nbinom2_zi"] < aic["nbinom1"] < aic["poisson"]


def test_lme4s_optimisers_agree_on_the_year_model():
    """allFit's refits all warn, yet all reach one maximum: the lesson's 'false alarm'."""
    fits = REFERENCE["allfit_year_slope"]
    assert len(fits) == 5
    assert all(any("max|grad|" in w for w in fit["warnings"]) for fit in fits.values())
    logliks = np.array([fit["loglik"] for fit in fits.values()])
    assert np.ptp(logliks) < 0.01
    slopes = np.array([fit["fixef"]["year"] for fit in fits.values()])
    assert np.ptp(slopes) < 1e-4


def test_runaway_laplace_fit_lme4_silent_glmmteach_warns():
    """Trial 130 (an infinite MLE of tau): lme4's Laplace refits agree, all without a warning, on the maximum of
    the approximation; glmmteach's Laplace fit warns of the flat ridge, and lme4's 25-node fit fails."""
    fits = REFERENCE["allfit_runaway_laplace"]
    assert REFERENCE["runaway_laplace"]["warnings"] == [] and all(f["warnings"] == [] for f in fits.values())
    assert np.ptp([f["loglik"] for f in fits.values()]) < 1e-4
    assert "not positive definite" in REFERENCE["runaway_agq25_error"]
    runaway = pd.read_csv(data_path("lme4_practice/runaway.csv"))
    fit, caught = fit_caught("outcome ~ trt * period + (1 | ID)", runaway, family="binomial")
    assert [w.category.__name__ for w in caught] == ["FlatRidgeWarning"]
    assert fit.llf == pytest.approx(REFERENCE["runaway_laplace"]["loglik"], abs=1e-3)
