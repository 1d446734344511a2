"""Lesson 17 (richer random-effects structures): its recorded numbers against lme4/MASS.

``tests/data/lesson17/reference.json`` (made by ``make_reference.R`` beside it) holds lme4/MASS fits of every
model the lesson fits. The lesson records the values its text quotes with ``glmmteach.booktools.record``; the
stored notebook keeps them as ``application/papermill.record/text/plain`` outputs (what ``pytest --nbval``
proves equal to a fresh run). Here they are compared with the reference:

* log-likelihood never more than 1e-4 below lme4's. The recorded values are rounded to 6 significant digits
  (``booktools.ESTIMATE_DIGITS``: 5e-3 for a log-likelihood of -13402.5), too coarse for that, so each GLMM is
  also refitted here: the
  recorded value must be the refit's, rounded, and the unrounded refit is held to the 1e-4;
* fixed effects within 1e-4 relative wherever lme4's log-likelihood is at least as good (the refit not
  more than 1e-6 above it) -- or within 1e-4 of their standard error: along a flat direction (VerbAgg's
  intercept, correlated -0.83 with Anger) two fits whose log-likelihoods agree to 1e-8 differ by that
  much, a difference no likelihood criterion can resolve;
* standard errors, variance parameters and the negative binomial shape within the tolerances named below.
"""

from __future__ import annotations

import json
import math
import warnings
from functools import cache
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from lesson_records import recorded_values

from glmmteach import glmer
from glmmteach.booktools import ESTIMATE_DIGITS
from glmmteach.datasets import load_grouseticks, load_ohio_cancer, load_verbagg

ROOT = Path(__file__).resolve().parents[1]
LESSON = ROOT / "lessons" / "17_richer_structures.ipynb"
REFERENCE = json.loads((ROOT / "tests" / "data" / "lesson17" / "reference.json").read_text())["cases"]

LOGLIK_TOLERANCE = 1e-4
BETTER_THAN_REFERENCE = 1e-6  # a fit this much above lme4's is better: its estimates may differ
FIXEF_RELATIVE = 1e-4
FIXEF_IN_SE = 1e-4  # or this many standard errors
SE_RELATIVE = 1e-3  # SEs from the Hessian: lme4's finite differences against glmmteach's

OHIO_TERMS = {
    "b0": "(Intercept)",
    "female": "factor(sex)2",
    "nonwhite": "factor(race)2",
    "inter": "factor(sex)2:factor(race)2",
    "decade": "decade",
}
GROUSE_TERMS = {"b0": "(Intercept)", "y96": "factor(YEAR)96", "y97": "factor(YEAR)97", "height": "cHEIGHT"}
VERBAGG_TERMS = {
    "b0": "(Intercept)",
    "anger": "Anger",
    "male": "GenderM",
    "scold": "btypescold",
    "shout": "btypeshout",
    "self": "situself",
}

# reference case -> (glue name of the log-likelihood or None, glue prefix of the fixed effects, terms)
MODELS = {
    "ohio_quasi": (None, "r17_quasi", OHIO_TERMS),
    "ohio_quasi_county": (None, "r17_quasicounty", OHIO_TERMS),
    "ohio_county": ("r17_county_loglik", "r17_county", OHIO_TERMS),
    "ohio_slope": ("r17_slope_loglik", "r17_slope", OHIO_TERMS),
    "ohio_county_obs": ("r17_obs_loglik", "r17_obs", OHIO_TERMS),
    "ohio_nb": ("r17_nb_loglik", "r17_nb", OHIO_TERMS),
    "ohio_county_sexdecade": ("r17_county_trend_loglik", None, {}),
    "ohio_nb_sexdecade": ("r17_nb_trend_loglik", None, {}),
    "grouse_nested": ("r17_grouse_loglik", "r17_grouse", GROUSE_TERMS),
    "grouse_nested_noobs": ("r17_grouse_noobs_loglik", "r17_grouse_noobs", GROUSE_TERMS),
    "verbagg_crossed": ("r17_va_loglik", "r17_va", VERBAGG_TERMS),
    "verbagg_id": ("r17_va_person_loglik", "r17_va_person", VERBAGG_TERMS),
    "verbagg_item": ("r17_va_item_loglik", None, {}),
}


def recorded() -> dict[str, object]:
    return recorded_values(LESSON)


def value(name: str) -> float:
    assert name in recorded(), f"lesson 17 does not record {name!r}"
    return float(recorded()[name])


def rounding(x: float) -> float:
    """Half a unit in the last digit booktools.record keeps by default (ESTIMATE_DIGITS significant digits)."""
    return 0.0 if x == 0 else 0.5 * 10.0 ** (math.floor(math.log10(abs(x))) - ESTIMATE_DIGITS + 1)


def random_sd(case: str, group: str, name: str = "(Intercept)") -> float:
    terms = REFERENCE[case]["random"]["terms"]
    return next(t["sd"] for t in terms if t["group"] == group and t["name"] == name)


def test_every_reference_model_is_checked():
    assert set(MODELS) | {"ohio_glm"} == set(REFERENCE)


@cache
def data_sets() -> dict[str, pd.DataFrame]:
    ohio = load_ohio_cancer()
    ohio["decade"] = (ohio["year"] - 11) / 10
    ohio["obs"] = np.arange(len(ohio))
    return {"ohio": ohio, "grouse": load_grouseticks(), "verbagg": load_verbagg()}


@cache
def live_loglik(case: str) -> float:
    """The unrounded log-likelihood of the lesson's model, refitted as the lesson fits it."""
    ref = REFERENCE[case]
    formula = ref["formula"].replace("r2 ~", "y ~")  # the loader's 0/1 column for r2
    family = "negative_binomial" if ref["kind"] == "glmer.nb" else (
        "binomial" if ref["data"] == "verbagg" else "poisson")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return float(glmer(formula, data_sets()[ref["data"]], family=family).llf)


GLMM_CASES = [c for c, (loglik, _, _) in MODELS.items() if loglik]


@pytest.mark.parametrize("case", GLMM_CASES)
def test_loglik_not_below_lme4(case):
    name = MODELS[case][0]
    recorded_value, live, reference = value(name), live_loglik(case), REFERENCE[case]["loglik"]
    assert recorded_value == pytest.approx(live, abs=rounding(live) * 1.01), (case, "the lesson records another fit")
    assert live >= reference - LOGLIK_TOLERANCE, (case, live, reference)


@pytest.mark.parametrize("case", [c for c, (_, prefix, _) in MODELS.items() if prefix])
def test_fixed_effects_and_standard_errors(case):
    _, prefix, terms = MODELS[case]
    ref = REFERENCE[case]
    if case in GLMM_CASES and live_loglik(case) > ref["loglik"] + BETTER_THAN_REFERENCE:
        pytest.skip(f"glmmteach's optimum is above lme4's ({live_loglik(case)} > {ref['loglik']})")
    for short, term in terms.items():
        name = f"{prefix}_{short}"
        if name not in recorded():
            continue
        tolerance = max(FIXEF_RELATIVE * abs(ref["fixef"][term]), FIXEF_IN_SE * ref["se"][term])
        assert value(name) == pytest.approx(ref["fixef"][term], abs=tolerance), name
        if f"{name}_se" in recorded():
            assert value(f"{name}_se") == pytest.approx(ref["se"][term], rel=SE_RELATIVE), f"{name}_se"


def test_slope_model_variance_parameters():
    ref = REFERENCE["ohio_slope"]
    assert value("r17_slope_decade") == pytest.approx(ref["fixef"]["decade"], rel=FIXEF_RELATIVE)
    assert value("r17_tau0") == pytest.approx(random_sd("ohio_slope", "county"), rel=1e-4)
    assert value("r17_tau1") == pytest.approx(random_sd("ohio_slope", "county", "decade"), rel=1e-3)
    assert value("r17_rho") == pytest.approx(ref["random"]["corr"][0]["corr"], abs=1e-3)
    assert value("r17_county_tau") == pytest.approx(random_sd("ohio_county", "county"), rel=1e-4)


def test_overdispersion_parameters():
    assert value("r17_obs_sigma") == pytest.approx(random_sd("ohio_county_obs", "obs"), rel=1e-3)
    assert value("r17_obs_county_tau") == pytest.approx(random_sd("ohio_county_obs", "county"), rel=1e-3)
    nb = REFERENCE["ohio_nb"]
    assert value("r17_nb_k") == pytest.approx(nb["nb_theta"], rel=1e-4)
    assert value("r17_nb_k_se") == pytest.approx(nb["se_theta"], rel=1e-2)
    assert value("r17_nb_tau") == pytest.approx(random_sd("ohio_nb", "county"), rel=1e-4)
    assert value("r17_nb_trend_k") == pytest.approx(REFERENCE["ohio_nb_sexdecade"]["nb_theta"], rel=1e-4)
    for name, case in [("r17_quasi_phi", "ohio_quasi"), ("r17_quasicounty_phi", "ohio_quasi_county")]:
        phi = REFERENCE[case]["dispersion"]  # 1e-6 relative, plus the recording's rounding
        assert value(name) == pytest.approx(phi, abs=1e-6 * phi + rounding(phi)), name
    # Pearson chi-squared / residual df of the county GLMM, as R computes it from the lme4 fit
    county = REFERENCE["ohio_county"]
    assert value("r17_pearson_county") == pytest.approx(county["pearson_chi2"] / county["df_residual"], rel=1e-5)


def test_aic_where_comparable():
    for case, name in [("ohio_glm", "r17_aic_glm"), ("ohio_county", "r17_aic_county"),
                       ("ohio_slope", "r17_aic_slope"), ("ohio_county_obs", "r17_aic_obs"),
                       ("ohio_nb", "r17_aic_nb")]:
        # AIC = -2 logLik + 2 df: the loglik tolerance doubled, plus the recording's rounding
        ref = REFERENCE[case]["aic"]
        assert value(name) <= ref + 2 * LOGLIK_TOLERANCE + rounding(ref), case
        assert value(name) == pytest.approx(ref, abs=1e-2 + rounding(ref)), case
    assert value("r17_k_obs") == REFERENCE["ohio_county_obs"]["df"]
    assert value("r17_k_nb") == REFERENCE["ohio_nb"]["df"]


def test_structures_variance_components():
    for group, name in [("INDEX", "r17_grouse_sd_chick"), ("BROOD:LOCATION", "r17_grouse_sd_brood"),
                        ("LOCATION", "r17_grouse_sd_location")]:
        assert value(name) == pytest.approx(random_sd("grouse_nested", group), rel=1e-3), name
    assert value("r17_va_sd_person") == pytest.approx(random_sd("verbagg_crossed", "id"), rel=1e-4)
    assert value("r17_va_sd_item") == pytest.approx(random_sd("verbagg_crossed", "item"), rel=1e-4)
    assert value("r17_va_person_only_sd") == pytest.approx(random_sd("verbagg_id", "id"), rel=1e-4)
    groups = REFERENCE["grouse_nested"]["ngroups"]
    assert (value("r17_n_broods"), value("r17_n_locations"), value("r17_n_chicks")) == (
        groups["BROOD:LOCATION"], groups["LOCATION"], groups["INDEX"])


def test_test_statistics_follow_from_the_logliks():
    for name, full, reduced in [("r17_lrt", "ohio_slope", "ohio_county"),
                                ("r17_grouse_chick_lrt", "grouse_nested", "grouse_nested_noobs"),
                                ("r17_va_item_lrt", "verbagg_crossed", "verbagg_id"),
                                ("r17_trend_lrt", "ohio_county_sexdecade", "ohio_county")]:
        lrt = 2 * (REFERENCE[full]["loglik"] - REFERENCE[reduced]["loglik"])
        assert value(name) == pytest.approx(lrt, abs=1e-3 + rounding(lrt)), name
