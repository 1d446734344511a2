"""What an lme4 user expects of a fitted GLMM, against lme4 where lme4 has it.

``tests/data/lme4_features/make_reference.R`` generated the data sets (CSV) and fitted them with lme4
1.1-31 at tight tolerances; ``reference.json`` holds prior-weighted fits, residuals of every type,
conditional variances (``ranef(condVar = TRUE)``), ``VarCorr`` (numbers and printed text), predictions
for a new level (``allow.new.levels = TRUE``) and ``refit`` with a response lme4 simulated. Simulation
and the parametric bootstrap have no lme4 counterpart to compare numbers with (different random
streams): they are tested for their statistical properties.
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
from glmmteach import bootstrap_lrt, glm, glmer
from glmmteach.exceptions import DataError, GlmmteachError, GlmmteachWarning
from glmmteach.predict import population_average_mean

DATA = Path(__file__).parent / "data" / "lme4_features"
REFERENCE = json.loads((DATA / "reference.json").read_text())
CASES: dict[str, dict[str, Any]] = REFERENCE["cases"]
WRONG_OPTIMUM = 1e-4  # our log-likelihood this far below lme4's: a wrong (boundary) optimum, issue 8 item 1


@cache
def frame(name: str) -> pd.DataFrame:
    return pd.read_csv(DATA / name)


@cache
def fit_case(name: str) -> Any:
    spec = dict(CASES[name]["py"])
    formula = spec.pop("formula")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", GlmmteachWarning)
        return glmer(formula, frame(CASES[name]["data"]), **spec)


def values(mapping: dict) -> np.ndarray:
    return np.array(list(mapping.values()), dtype=float)


def lme4_comparable(name: str) -> Any:
    """The fit of ``name``, which must reach lme4's optimum (not stop at a boundary, issue 8 item 1)."""
    fit = fit_case(name)
    gap = CASES[name]["loglik"] - fit.llf
    assert gap <= WRONG_OPTIMUM, f"glmer's log-likelihood is {gap:.3g} below lme4's: a wrong optimum"
    return fit


# ---- prior weights -----------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["pois_w", "binom_prop_w", "binom_trials_w"])
def test_prior_weights_match_lme4(name: str) -> None:
    fit, ref = fit_case(name), CASES[name]
    assert fit.llf == pytest.approx(ref["loglik"], abs=1e-6)
    np.testing.assert_allclose(fit.params.to_numpy(), values(ref["fixef"]), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(fit.theta, values(ref["theta"]), rtol=1e-5, atol=1e-6)


def test_proportions_with_weights_are_the_trials_model() -> None:
    data = frame("binom.csv")
    for n_agq in (1, 7):
        by_weights = glmer("p ~ x + (1 | g)", data, "binomial", weights="n", nAGQ=n_agq)
        by_trials = glmer("y ~ x + (1 | g)", data, "binomial", trials="n", nAGQ=n_agq)
        assert by_weights.llf == pytest.approx(by_trials.llf, abs=1e-9)
        np.testing.assert_allclose(by_weights.params, by_trials.params, rtol=1e-8)
        np.testing.assert_allclose(by_weights.theta, by_trials.theta, rtol=1e-8)


@pytest.mark.parametrize("n_agq", [1, 5])
@pytest.mark.parametrize(("data_file", "family", "trials"), [("pois_w.csv", "poisson", None),
                                                             ("binom.csv", "binomial", "n")])
def test_integer_weights_count_rows_repeatedly(n_agq: int, data_file: str, family: str, trials: str | None) -> None:
    # w copies of a row in its group give the group the conditional likelihood f(y)^w: the same model (for
    # successes out of trials too: the prior weights multiply the trials' weights and the binomial constant)
    data = frame(data_file).assign(k=lambda d: (d.index % 3) + 1)
    weighted = glmer("y ~ x + (1 | g)", data, family, weights="k", nAGQ=n_agq, trials=trials)
    repeated = data.loc[data.index.repeat(data["k"])].reset_index(drop=True)
    plain = glmer("y ~ x + (1 | g)", repeated, family, nAGQ=n_agq, trials=trials)
    assert weighted.llf == pytest.approx(plain.llf, abs=1e-7)
    np.testing.assert_allclose(weighted.params, plain.params, rtol=1e-6)
    np.testing.assert_allclose(weighted.theta, plain.theta, rtol=1e-5)


@pytest.mark.parametrize(
    ("column", "values_", "message"),
    [
        ("n", lambda d: -d["n"], "weights must be non-negative"),
        ("n", lambda d: d["n"] + 0.5, "whole numbers of at least 1"),
        ("n", lambda d: np.where(d.index == 4, 3, d["n"]), "whole numbers of successes; row 4"),
    ],
)
def test_bad_weights_for_proportions_are_named(column: str, values_: Any, message: str) -> None:
    data = frame("binom.csv").copy()
    data[column] = values_(data)
    if message.endswith("row 4"):
        data.loc[4, "p"] = 0.5  # 0.5 x 3 trials is not a whole number of successes
    with pytest.raises(DataError, match=message):
        glmer("p ~ x + (1 | g)", data, "binomial", weights=column)


def test_proportion_above_one_with_weights_is_refused() -> None:
    data = frame("binom.csv").assign(p=lambda d: d["p"] * 2 + 0.01)
    with pytest.raises(DataError, match="proportion between 0 and 1"):
        glmer("p ~ x + (1 | g)", data, "binomial", weights="n")


# ---- residuals, fitted values, conditional variances, VarCorr ------------------------------------


@pytest.mark.parametrize("name", sorted(CASES))
@pytest.mark.parametrize("kind", ["deviance", "pearson", "response", "working"])
def test_residuals_match_lme4(name: str, kind: str) -> None:
    fit = lme4_comparable(name)
    np.testing.assert_allclose(fit.resid(kind).to_numpy(), CASES[name]["resid"][kind], atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("name", sorted(CASES))
def test_fitted_values_and_deviance_residuals_agree(name: str) -> None:
    fit = lme4_comparable(name)
    np.testing.assert_allclose(fit.fittedvalues.to_numpy(), CASES[name]["fitted"], atol=1e-6)
    assert fit.resid().name == "deviance"  # lme4's default type for a GLMM
    assert fit.deviance_conditional == pytest.approx(float(np.sum(np.square(CASES[name]["resid"]["deviance"]))),
                                                     rel=1e-5)
    np.testing.assert_allclose(fit.resid_pearson, fit.resid("pearson"))


def test_unknown_residual_type_is_named() -> None:
    with pytest.raises(GlmmteachError, match="'partial'"):
        fit_case("probit").resid("partial")


@pytest.mark.parametrize("name", sorted(CASES))
def test_conditional_variances_match_lme4_postvar(name: str) -> None:
    fit, ref = lme4_comparable(name), CASES[name]["ranef"]
    r = len(ref["names"])
    post_var = np.array(ref["postVar"], dtype=float).reshape(-1, r, r)
    got = fit.ranef_cov
    assert list(got.columns) == ref["names"]
    assert list(got.index.get_level_values(0)[::r]) == ref["levels"]
    ours = got.to_numpy().reshape(-1, r, r)
    if not fit.correlated:
        # lme4 reports each term of (1 + x || g) on its own: the diagonal; the effects' conditional
        # covariance (nonzero: independent a priori is not independent given the data) is ours alone
        ours = ours * np.eye(r)
    np.testing.assert_allclose(ours, post_var, atol=1e-5, rtol=1e-4)
    modes = fit.ranef
    for effect in ref["names"]:
        np.testing.assert_allclose(modes[effect].to_numpy(), ref["modes"][effect], atol=1e-5)
        np.testing.assert_allclose(modes[f"{effect}_sd"], np.sqrt(got.xs(effect, level="effect")[effect]))


@pytest.mark.parametrize("name", sorted(CASES))
def test_varcorr_numbers_and_print_match_lme4(name: str) -> None:
    fit, ref = lme4_comparable(name), CASES[name]["varcorr"]
    table = fit.varcorr()
    is_sd = np.array(ref["var2"]) == ""
    np.testing.assert_allclose(table["Variance"], np.array(ref["vcov"])[is_sd], rtol=1e-4, atol=1e-7)
    np.testing.assert_allclose(table["Std.Dev."], np.array(ref["sdcor"])[is_sd], rtol=1e-4, atol=1e-7)
    if (~is_sd).any():
        assert table.iloc[1, -1] == pytest.approx(np.array(ref["sdcor"])[~is_sd][0], abs=1e-4)
    assert str(table).split("\n") == ref["print_sd"]
    assert table.to_text(comp=("Variance", "Std.Dev.")).split("\n") == ref["print_var_sd"]


def test_varcorr_refuses_an_unknown_component() -> None:
    with pytest.raises(GlmmteachError, match="comp"):
        fit_case("probit").varcorr().to_text(comp=("Corr",))


# ---- prediction for new levels ----------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(CASES))
def test_new_levels_are_refused_unless_allowed(name: str) -> None:
    fit, ref = lme4_comparable(name), CASES[name]
    new = pd.DataFrame(ref["newdata"])
    with pytest.raises(DataError, match=r"'NEW' of 'g'.*allow_new_levels=True"):
        fit.predict(new)
    assert "new levels detected" in ref["predict_new_error"]  # lme4 refuses too
    link = fit.predict(new, allow_new_levels=True)
    np.testing.assert_allclose(link.to_numpy(), ref["predict_new_link"], atol=1e-5)
    mean = fit.predict(new, type="response", allow_new_levels=True)
    # relative: exp() turns the link scale's absolute accuracy into a relative one (means here up to ~7)
    np.testing.assert_allclose(mean.to_numpy(), ref["predict_new_response"], rtol=1e-6, atol=1e-8)


def test_missing_group_in_newdata_is_named() -> None:
    new = pd.DataFrame({"x": [0.1, 0.2], "g": ["G01", None]})
    with pytest.raises(DataError, match="missing values in the grouping factor 'g'"):
        fit_case("probit").predict(new)


# ---- refit --------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["pois_w", "logit_slope", "binom_trials"])
def test_refit_matches_lme4_refit(name: str) -> None:
    fit, ref = fit_case(name), CASES[name]["refit"]
    new = fit.refit(np.array(ref["new_response"]))
    assert new.llf == pytest.approx(ref["loglik"], abs=1e-6)
    np.testing.assert_allclose(new.params.to_numpy(), values(ref["fixef"]), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(new.theta, values(ref["theta"]), rtol=1e-4, atol=1e-6)
    assert new.formula == fit.formula and new.nobs == fit.nobs


def test_refit_to_the_own_response_reproduces_the_fit() -> None:
    fit = fit_case("binom_prop_w")
    again = fit.refit(frame("binom.csv")["p"])
    assert again.llf == pytest.approx(fit.llf, abs=1e-9)
    np.testing.assert_allclose(again.params, fit.params, rtol=1e-6)


@pytest.mark.parametrize(
    ("name", "response", "message"),
    [
        ("probit", "short", "one value per observation"),
        ("probit", "two", "must be 0/1"),
        ("pois_w", "negative", "negative count"),
        ("pois_w", "nan", "missing or infinite"),
        ("binom_trials", "too_many", "between 0 and the trials"),
        ("binom_prop_w", "two", "proportion between 0 and 1"),
    ],
)
def test_refit_refuses_impossible_responses(name: str, response: str, message: str) -> None:
    fit = fit_case(name)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", GlmmteachWarning)  # prior weights are ignored when simulating
        y = fit.simulate(1, seed=3)["sim_1"].to_numpy().copy()
    if response == "short":
        y = y[:3]
    elif response == "two":
        y[0] = 2
    elif response == "negative":
        y[0] = -1
    elif response == "nan":
        y[0] = np.nan
    elif response == "too_many":
        y[0] = frame("binom.csv")["n"].iloc[0] + 1
    with pytest.raises(DataError, match=message):
        fit.refit(y)


def test_glm_refit_equals_a_new_glm_fit() -> None:
    data = frame("binom.csv")
    fit = glm("y ~ x", data, "binomial", trials="n")
    y = fit.simulate(1, seed=2)["sim_1"]
    again = fit.refit(y)
    direct = glm("y ~ x", data.assign(y=y.to_numpy()), "binomial", trials="n")
    np.testing.assert_allclose(again.params, direct.params, rtol=1e-12)
    assert again.llf == pytest.approx(direct.llf, rel=1e-12)
    with pytest.raises(DataError, match="between 0 and the trials"):
        fit.refit(data["n"] + 1)
    with pytest.raises(GlmmteachError, match="binomial and poisson"):
        glm("x ~ y", data, "gaussian").simulate(1)


# ---- simulate -------------------------------------------------------------------------------------


def test_simulate_is_reproducible_and_in_the_response_units() -> None:
    fit = fit_case("binom_trials")
    first, again = fit.simulate(5, seed=11), fit.simulate(5, seed=11)
    pd.testing.assert_frame_equal(first, again)
    assert list(first.columns) == [f"sim_{k}" for k in range(1, 6)]
    assert not first.equals(fit.simulate(5, seed=12))
    counts, n = first.to_numpy(), frame("binom.csv")["n"].to_numpy()[:, None]
    assert np.all((counts >= 0) & (counts <= n) & (counts == np.round(counts)))
    proportions = fit_case("binom_prop_w").simulate(5, seed=11).to_numpy()
    np.testing.assert_allclose(proportions * n, counts)  # same draws, shown as proportions
    binary = fit_case("logit_slope").simulate(3, seed=1).to_numpy()
    assert set(np.unique(binary)) <= {0.0, 1.0}


def test_simulate_conditional_mean_is_the_fitted_mean() -> None:
    fit, nsim = fit_case("binom_trials"), 4000
    n = frame("binom.csv")["n"].to_numpy()
    draws = fit.simulate(nsim, seed=5, use_u=True).to_numpy()
    mu = fit.fittedvalues.to_numpy()
    z = (draws.mean(axis=1) - n * mu) / np.sqrt(n * mu * (1 - mu) / nsim)
    assert np.abs(z).max() < 4.5  # about 130 rows: |z| > 4.5 has probability ~1e-3 in all


def test_simulate_unconditional_mean_integrates_the_random_effects() -> None:
    fit, nsim = fit_case("pois_w"), 4000
    with pytest.warns(GlmmteachWarning, match="prior weights are ignored"):
        draws = fit.simulate(nsim, seed=8).to_numpy()
    # E[y] = exp(eta + sigma^2 / 2) over new random effects; Var[y] = E[y] + E[y]^2 (e^{sigma^2} - 1)
    mean = population_average_mean(fit.predict(type="link", conditional=False).to_numpy(),
                                   fit.sd_re.iloc[0] ** 2, "log")
    variance = mean + mean**2 * np.expm1(fit.sd_re.iloc[0] ** 2)
    z = (draws.mean(axis=1) - mean) / np.sqrt(variance / nsim)
    assert np.abs(z).max() < 4.5
    # new random effects make rows of one group move together: strong within-group correlation
    group = frame("pois_w.csv")["g"].to_numpy()
    rows = np.flatnonzero(group == group[0])[:2]
    assert np.corrcoef(np.log1p(draws[rows]))[0, 1] > 0.1
    conditional = fit_case("binom_trials").simulate(nsim, seed=8, use_u=True).to_numpy()
    assert abs(np.corrcoef(conditional[[0, 1]])[0, 1]) < 0.1  # given the modes, rows are independent


@pytest.mark.parametrize("bad", [0, -1, 2.5, True])
def test_simulate_refuses_a_bad_nsim(bad: Any) -> None:
    with pytest.raises(GlmmteachError, match="nsim"):
        fit_case("probit").simulate(bad)


# ---- parametric bootstrap LRT -------------------------------------------------------------------------


@cache
def probit_pair() -> tuple[Any, Any]:
    data = frame("probit.csv")
    return glm("y ~ x", data, "binomial", link="probit"), fit_case("probit")


def test_bootstrap_lrt_is_reproducible_and_its_pvalue_counts_the_exceedances() -> None:
    small, big = probit_pair()
    first = bootstrap_lrt(small, big, nsim=19, seed=4)
    again = bootstrap_lrt(small, big, nsim=19, seed=4)
    np.testing.assert_array_equal(first.bootstrap, again.bootstrap)
    assert first.statistic == pytest.approx(2 * (big.llf - small.llf))
    used = len(first.bootstrap)
    assert used + first.n_failed == 19
    assert first.pvalue == (1 + np.sum(first.bootstrap >= first.statistic)) / (used + 1)
    assert 1 / (used + 1) <= first.pvalue <= 1
    assert np.all(first.bootstrap >= 0)
    assert "Parametric bootstrap" in str(first) and "y ~ x + (1 | g)" in str(first)


def test_bootstrap_lrt_under_the_null_is_not_significant() -> None:
    # the data are simulated from the small model: the observed statistic is one more draw of the null
    small, big = probit_pair()
    y = small.simulate(1, seed=21)["sim_1"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", GlmmteachWarning)  # a boundary fit is likely under the null
        small0, big0 = small.refit(y), big.refit(y)
    result = bootstrap_lrt(small0, big0, nsim=19, seed=22)
    assert result.pvalue > 0.05
    # about half the null statistics of a single variance are 0 (the boundary): 0.5 chi2_0 + 0.5 chi2_1
    assert np.mean(result.bootstrap < 1e-6) >= 0.2
    assert np.median(result.bootstrap) < 1.0


def test_bootstrap_null_distribution_matches_lme4s() -> None:
    # lme4's own bootstrap of the same null (200 simulations from the GLM, both models refitted)
    lme4 = REFERENCE["bootstrap_null_probit"]
    small, big = probit_pair()
    result = bootstrap_lrt(small, big, nsim=40, seed=7)
    assert result.n_failed == 0
    zeros = float(np.mean(result.bootstrap < 1e-6))
    assert abs(zeros - lme4["zero_fraction"]) < 0.25  # binomial SD of the 40-draw fraction: 0.08
    assert abs(np.mean(result.bootstrap) - lme4["mean"]) < 0.3


def test_bootstrap_lrt_of_a_clear_variance_component_is_small() -> None:
    small, big = probit_pair()
    result = bootstrap_lrt(small, big, nsim=9, seed=1)
    assert result.statistic > 10
    assert result.pvalue == pytest.approx(1 / (len(result.bootstrap) + 1))


def test_bootstrap_lrt_refuses_models_that_cannot_be_compared() -> None:
    small, big = probit_pair()
    with pytest.raises(GlmmteachError, match="more parameters"):
        bootstrap_lrt(big, big, nsim=5)
    with pytest.raises(GlmmteachError, match="big must be a glmer fit"):
        bootstrap_lrt(small, small, nsim=5)
    other = fit_case("logit_slope")
    with pytest.raises(GlmmteachError, match="same responses"):
        bootstrap_lrt(small, other, nsim=5)
    assert glmmteach.BootstrapLRT is type(bootstrap_lrt(small, big, nsim=1, seed=0))
