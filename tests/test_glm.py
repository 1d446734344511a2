"""GLM fits against R's glm (tests/data/lme4_reference.json) and statsmodels."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm

import glmmteach as gt
from glmmteach.exceptions import ConvergenceWarning, GlmmteachError, RankDeficiencyWarning, SeparationWarning

CROSSOVER_MODELS = {
    "glm_model1": "outcome ~ 1 + trt",
    "glm_model2": "outcome ~ 1 + trt + period",
    "glm_model3": "outcome ~ 1 + trt + period + trt*period",
}
OHIO_POISSON = "death ~ offset(logpop) + factor(sex) + factor(race) + year"
OHIO_QUASI = "death ~ offset(logpop) + factor(sex)*factor(race) + (1|county)"
REL = 1e-6


def assert_matches_r(fit: gt.GLMResults, ref: dict) -> None:
    """Coefficients, SEs, z/t, p, deviances, AIC to 1e-6 relative; iterations equal."""
    names = list(ref["coef"])
    assert [n for n in fit.params.index if not np.isnan(fit.params[n])] == names
    for key, ours in (("coef", fit.params), ("se", fit.bse), ("stat", fit.zvalues), ("p", fit.pvalues)):
        expected = pd.Series(ref[key])
        np.testing.assert_allclose(ours[names], expected[names], rtol=REL, atol=1e-300, err_msg=key)
    np.testing.assert_allclose(fit.deviance, ref["deviance"], rtol=REL)
    np.testing.assert_allclose(fit.null_deviance, ref["null_deviance"], rtol=REL)
    assert fit.df_resid == ref["df_resid"] and fit.df_null == ref["df_null"]
    assert fit.iterations == ref["iterations"]
    np.testing.assert_allclose(fit.scale, ref["dispersion"], rtol=REL)
    if isinstance(ref.get("aic"), float):  # R gives NA (stored as []) for quasi families
        np.testing.assert_allclose(fit.aic, ref["aic"], rtol=REL)
        np.testing.assert_allclose(fit.llf, ref["loglik"], rtol=REL)


@pytest.mark.parametrize("key", list(CROSSOVER_MODELS))
def test_crossover_glms_reproduce_r(key, crossover, reference):
    fit = gt.glm(CROSSOVER_MODELS[key], crossover, family="binomial", link="logit")
    assert_matches_r(fit, reference["crossover"][key])


def test_ohio_poisson_glm_reproduces_r(ohio, reference):
    fit = gt.glm(OHIO_POISSON, ohio, family="poisson")
    assert_matches_r(fit, reference["ohio"]["glm_poisson"])


def test_quasipoisson_with_bar_term_reports_aliased_column_as_r(ohio, reference):
    with pytest.warns(RankDeficiencyWarning, match="logical covariate"):
        fit = gt.glm(OHIO_QUASI, ohio, family="quasipoisson")
    assert list(fit.params.index) == [
        "(Intercept)",
        "factor(sex)2",
        "factor(race)2",
        "1 | countyTRUE",
        "factor(sex)2:factor(race)2",
    ]
    assert np.isnan(fit.params["1 | countyTRUE"]) and np.isnan(fit.bse["1 | countyTRUE"])
    assert_matches_r(fit, reference["ohio"]["glm_quasipoisson_sex_by_race"])
    assert round(fit.scale, 6) == 2.200393
    assert np.isnan(fit.aic) and fit.use_t
    assert "(1 not defined because of singularities)" in str(fit.summary())
    assert "taken to be 2.200393" in str(fit.summary())


def test_summary_has_r_layout(crossover):
    text = str(gt.glm(CROSSOVER_MODELS["glm_model3"], crossover).summary())
    assert "(Intercept)  -1.5404     0.4499  -3.424 0.000617 ***" in text
    assert "trt           1.1097     0.5739   1.934 0.053148 .  " in text
    assert "    Null deviance: 166.65  on 133  degrees of freedom" in text
    assert "Residual deviance: 162.10  on 130  degrees of freedom" in text
    assert "AIC: 170.1" in text and "Number of Fisher Scoring iterations: 4" in text


def test_iteration_history_ends_at_the_estimates(crossover):
    fit = gt.glm(CROSSOVER_MODELS["glm_model2"], crossover)
    assert len(fit.history) == fit.iterations == 4
    np.testing.assert_allclose(fit.history.iloc[-1][fit.params.index], fit.params, rtol=1e-12)
    assert fit.history["deviance"].iloc[-1] == pytest.approx(fit.deviance, rel=1e-12)
    assert (np.diff(fit.history["deviance"]) <= 1e-9).all()  # Fisher scoring descends here


@pytest.mark.parametrize(
    ("formula", "data_name", "family", "sm_family"),
    [
        (CROSSOVER_MODELS["glm_model3"], "crossover", "binomial", sm.families.Binomial()),
        ("death ~ factor(sex) + factor(race) + year", "ohio", "poisson", sm.families.Poisson()),
    ],
)
def test_agrees_with_statsmodels(formula, data_name, family, sm_family, request):
    data = request.getfixturevalue(data_name)
    ours = gt.glm(formula, data, family=family, offset="logpop" if data_name == "ohio" else None)
    X = ours.design.X
    theirs = sm.GLM(ours.design.y, X, family=sm_family, offset=ours.design.offset).fit()
    np.testing.assert_allclose(ours.params, theirs.params, rtol=1e-7)
    np.testing.assert_allclose(ours.bse, theirs.bse, rtol=1e-5)
    np.testing.assert_allclose(ours.llf, theirs.llf, rtol=1e-9)
    np.testing.assert_allclose(ours.deviance, theirs.deviance, rtol=1e-9)


def test_binomial_trials_equals_expanded_binary(crossover):
    cells = crossover.groupby(["trt", "period"], as_index=False).agg(y=("outcome", "sum"), n=("outcome", "size"))
    grouped = gt.glm("y ~ trt*period", cells, trials="n")
    binary = gt.glm("outcome ~ trt*period", crossover)
    np.testing.assert_allclose(grouped.params, binary.params, rtol=1e-8)
    np.testing.assert_allclose(grouped.bse, binary.bse, rtol=1e-6)
    np.testing.assert_allclose(grouped.deviance, 0, atol=1e-8)  # saturated by the cells


@pytest.mark.parametrize("link", ["probit", "cloglog"])
def test_other_binomial_links_agree_with_statsmodels(link, crossover):
    ours = gt.glm("outcome ~ trt + period", crossover, link=link)
    sm_link = {"probit": sm.families.links.Probit(), "cloglog": sm.families.links.CLogLog()}[link]
    theirs = sm.GLM(ours.design.y, ours.design.X, family=sm.families.Binomial(sm_link)).fit(tol=1e-12)
    np.testing.assert_allclose(ours.params, theirs.params, rtol=1e-6)
    np.testing.assert_allclose(ours.llf, theirs.llf, rtol=1e-10)


def test_predict_link_and_response(crossover):
    fit = gt.glm(CROSSOVER_MODELS["glm_model3"], crossover)
    cells = pd.DataFrame({"trt": [0, 1, 0, 1], "period": [0, 0, 1, 1]})
    b = fit.params
    eta = [b.iloc[0], b.iloc[0] + b["trt"], b.iloc[0] + b["period"], b.sum()]
    np.testing.assert_allclose(fit.predict(cells), eta, rtol=1e-12)
    np.testing.assert_allclose(fit.predict(cells, type="response"), 1 / (1 + np.exp(-np.array(eta))), rtol=1e-12)
    # each cell is saturated here, so the fitted probability is the observed proportion
    observed = crossover.groupby(["trt", "period"])["outcome"].mean()
    np.testing.assert_allclose(
        fit.predict(cells, type="response"), observed.loc[[(0, 0), (1, 0), (0, 1), (1, 1)]], rtol=1e-6
    )


def test_predict_with_factor_levels_and_offset_column(ohio):
    fit = gt.glm(OHIO_POISSON, ohio, family="poisson")
    new = pd.DataFrame({"sex": [2], "race": [1], "year": [3], "logpop": [np.log(1e5)]})
    expected = np.exp(fit.params["(Intercept)"] + fit.params["factor(sex)2"] + 3 * fit.params["year"]) * 1e5
    assert fit.predict(new, type="response").iloc[0] == pytest.approx(expected, rel=1e-12)


def test_conf_int_is_wald(crossover):
    fit = gt.glm(CROSSOVER_MODELS["glm_model3"], crossover)
    ci = fit.conf_int()
    np.testing.assert_allclose(ci.iloc[:, 0], fit.params - 1.959963984540054 * fit.bse, rtol=1e-12)
    lo, hi = np.exp(ci.loc["trt"])
    assert lo < 1 < hi  # the odds ratio interval covers 1 (p = 0.053)


def test_separation_warns(crossover):
    data = pd.DataFrame({"y": [0, 0, 0, 1, 1, 1], "x": [1, 2, 3, 4, 5, 6]})
    with pytest.warns(SeparationWarning, match="separated"):
        gt.glm("y ~ x", data)


def test_non_convergence_warns(crossover):
    with pytest.warns(ConvergenceWarning, match="did not converge in 2 iterations"):
        fit = gt.glm("outcome ~ trt", crossover, maxit=2)
    assert not fit.converged


def test_rank_deficient_design_reports_nan(crossover):
    data = crossover.assign(trt_copy=2 * crossover["trt"])
    with pytest.warns(RankDeficiencyWarning, match="trt_copy not estimable"):
        fit = gt.glm("outcome ~ trt + trt_copy", data)
    assert np.isnan(fit.params["trt_copy"]) and np.isfinite(fit.params["trt"])


def test_gaussian_matches_least_squares():
    rng = np.random.default_rng(1)
    data = pd.DataFrame({"x": rng.normal(size=50)})
    data["y"] = 1 + 2 * data["x"] + rng.normal(size=50)
    fit = gt.glm("y ~ x", data, family="gaussian")
    ols = sm.OLS(data["y"], sm.add_constant(data["x"])).fit()
    np.testing.assert_allclose(fit.params, ols.params, rtol=1e-10)
    np.testing.assert_allclose(fit.bse, ols.bse, rtol=1e-10)
    np.testing.assert_allclose(fit.llf, ols.llf, rtol=1e-10)


def test_no_warnings_on_clean_fit(crossover):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        gt.glm(CROSSOVER_MODELS["glm_model1"], crossover)


def test_profile_intervals_reproduce_r_confint(crossover, ohio):
    """R's confint() for a glm (MASS's profile, interpolated on a grid: good to about 1e-4)."""
    import json
    from pathlib import Path

    ref = json.loads((Path(__file__).parent / "data" / "glm_profile_ci" / "reference.json").read_text())
    fits = {
        "crossover_model3": gt.glm(CROSSOVER_MODELS["glm_model3"], crossover),
        "ohio_poisson": gt.glm(OHIO_POISSON, ohio, family="poisson"),
    }
    for key, fit in fits.items():
        ci = fit.conf_int(method="profile")
        names = list(ref[key]["lower"])
        np.testing.assert_allclose(ci.iloc[:, 0][names], list(ref[key]["lower"].values()), atol=2e-4, err_msg=key)
        np.testing.assert_allclose(ci.iloc[:, 1][names], list(ref[key]["upper"].values()), atol=2e-4, err_msg=key)


def test_profile_interval_is_where_the_lrt_stops_rejecting(crossover):
    fit = gt.glm(CROSSOVER_MODELS["glm_model3"], crossover)
    lower, upper = fit.conf_int(method="profile").loc["trt"]
    for bound in (lower, upper):
        assert fit.profile_deviance("trt", bound) - fit.deviance == pytest.approx(1.959963984540054**2, rel=1e-8)
    # unlike the Wald interval (p = 0.053), the likelihood-ratio interval for the drug excludes 0
    assert lower > 0 > fit.conf_int().loc["trt"].iloc[0]


def test_profile_interval_with_an_estimated_dispersion(ohio):
    """MASS's profile.glm scales the deviance difference by the dispersion (tests/test_profile_ci.py checks
    it against R): the quasi-Poisson interval is the Poisson one widened, about by sqrt(dispersion)."""
    fit = gt.glm("death ~ offset(logpop) + factor(sex)", ohio, family="quasipoisson")
    poisson = gt.glm("death ~ offset(logpop) + factor(sex)", ohio, family="poisson")
    width = np.diff(fit.conf_int(method="profile").to_numpy(), axis=1)[:, 0]
    narrow = np.diff(poisson.conf_int(method="profile").to_numpy(), axis=1)[:, 0]
    np.testing.assert_allclose(width / narrow, np.sqrt(fit.scale), rtol=1e-2)
    with pytest.raises(GlmmteachError, match="'wald' or 'profile'"):
        fit.conf_int(method="score")
