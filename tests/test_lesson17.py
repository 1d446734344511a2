"""Lesson 17 (random slopes and overdispersion in the Ohio data): its recorded numbers against lme4/MASS.

The reference fits and the rules are those of ``tests/lesson_reference_fits.py`` (shared with lesson 18,
whose models the same R script fits).
"""

from __future__ import annotations

import pytest
from lesson_reference_fits import (
    LESSON17,
    LESSON17_CASES,
    LOGLIK_TOLERANCE,
    REFERENCE,
    check_fixed_effects,
    check_loglik,
    lrt,
    random_sd,
    rounding,
)
from lesson_reference_fits import value as lesson_value

CASES = LESSON17_CASES


def value(name: str) -> float:
    return lesson_value(LESSON17, name)


@pytest.mark.parametrize("case", [c for c, spec in CASES.items() if spec.loglik])
def test_loglik_not_below_lme4(case):
    check_loglik(case, CASES[case])


@pytest.mark.parametrize("case", [c for c, spec in CASES.items() if spec.prefix])
def test_fixed_effects_and_standard_errors(case):
    check_fixed_effects(case, CASES[case])


def test_slope_model_variance_parameters():
    ref = REFERENCE["ohio_slope"]
    assert value("r17_slope_decade") == pytest.approx(ref["fixef"]["decade"], rel=1e-4)
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


def test_test_statistics_follow_from_the_logliks():
    for name, full, reduced in [("r17_lrt", "ohio_slope", "ohio_county"),
                                ("r17_trend_lrt", "ohio_county_sexdecade", "ohio_county")]:
        statistic = lrt(full, reduced)
        assert value(name) == pytest.approx(statistic, abs=1e-3 + rounding(statistic)), name
