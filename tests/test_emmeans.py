"""glmmteach.emmeans and glmmteach.contrast against R emmeans (tests/data/emmeans/make_reference.R).

Each R case stores its model's coefficients and covariance. The marginal means are computed twice: from
R's coefficients on glmmteach's own design and reference grid (so that the emmeans arithmetic is checked to
1e-6 whatever two optimisers' last digits are), and from glmmteach's own fit (checked against R as closely
as the two fits agree: the crossover's Laplace fit runs along a flat ridge and its covariance is lme4's
finite-difference Hessian, 1e-3 relative; the others to 1e-5).
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

from glmmteach import GlmmteachError, contrast, datasets, emmeans, glm, glmer

REFERENCE = Path(__file__).parent / "data" / "emmeans" / "reference.json"
R_ESTIMATE = ("emmean", "prob", "rate", "response", "estimate", "ratio", "odds.ratio")
R_COLUMNS = {"SE": "SE", "asymp.LCL": "lower", "asymp.UCL": "upper", "lower.CL": "lower", "upper.CL": "upper",
             "z.ratio": "z", "t.ratio": "t", "p.value": "p"}


@cache
def reference() -> dict:
    return json.loads(REFERENCE.read_text())["cases"]


@cache
def fitted(case: str) -> Any:
    """glmmteach's fit of the R case's model."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if case == "crossover":
            return glmer(reference()[case]["formula"], datasets.load_crossover(), "binomial")
        if case == "ohio":
            return glmer(reference()[case]["formula"], datasets.load_ohio_cancer(), "poisson")
        if case == "crossover_glm":
            return glm(reference()[case]["formula"], datasets.load_crossover(), "binomial")
        if case == "ohio_quasipoisson_glm":
            return glm(reference()[case]["formula"], datasets.load_ohio_cancer(), "quasipoisson")
        ticks = pd.read_csv(datasets.data_path("grouseticks.csv"))
        if case == "ticks_nb_glm":
            return glm(reference()[case]["formula"], ticks, "negative_binomial")
        if case == "ticks_gaussian_glm":
            return glm(reference()[case]["formula"], ticks.assign(logTICKS=np.log(ticks["TICKS"] + 1)), "gaussian")
        return glmer(reference()[case]["formula"], ticks, "poisson")


class WithCoefficients:
    """A fit with R's coefficients and covariance in place of its own (everything else delegated)."""

    def __init__(self, fit: Any, case: dict):
        assert list(fit.params.index) == case["names"]
        self._fit = fit
        self.params = pd.Series(case["beta"], index=case["names"], dtype=float)[case["names"]]
        self._cov = pd.DataFrame(np.array(case["vcov"], dtype=float), index=case["names"], columns=case["names"])

    def cov_params(self) -> pd.DataFrame:
        return self._cov

    def __getattr__(self, name: str) -> Any:
        return getattr(self._fit, name)


# Python's call for each stored R result: emmeans arguments, and contrast arguments for the contrasts
MEANS = {
    ("crossover", "trt_period_link"): dict(specs=["trt", "period"]),
    ("crossover", "trt_period_response"): dict(specs=["trt", "period"], type="response"),
    ("crossover", "trt_link"): dict(specs="trt"),
    ("crossover", "trt_by_period_response"): dict(specs="trt", by="period", type="response"),
    ("ohio", "sex_race_rate_offset0"): dict(specs=["sex", "race"], type="response", offset=0.0),
    ("ohio", "sex_race_link_default_offset"): dict(specs=["sex", "race"]),
    ("ohio", "sex_race_rate_per_100000"): dict(specs=["sex", "race"], type="response", offset=np.log(1e5)),
    ("crossover_glm", "trt_response"): dict(specs="trt", type="response"),
    ("crossover_glm", "trt_period_link"): dict(specs=["trt", "period"]),
    ("ohio_quasipoisson_glm", "sex_race_rate_offset0"): dict(specs=["sex", "race"], type="response", offset=0.0),
    ("ticks_nb_glm", "year_response"): dict(specs="YEAR", type="response"),
    ("ticks_nb_glm", "year_link"): dict(specs="YEAR"),
    ("ticks_poisson_glmer", "year_response"): dict(specs="YEAR", type="response"),
    ("ticks_poisson_glmer", "year_at_height_link"): dict(specs="YEAR", by="cHEIGHT", at={"cHEIGHT": [-20, 0, 20]}),
    ("ticks_gaussian_glm", "year_link"): dict(specs="YEAR"),
}
CONTRASTS = {
    ("crossover", "trt_by_period_pairwise_or"): (dict(specs="trt", by="period", type="response"), "pairwise", "none"),
    ("crossover", "cells_pairwise_tukey"): (dict(specs=["trt", "period"]), "pairwise", "tukey"),
    ("crossover", "cells_revpairwise_holm"): (dict(specs=["trt", "period"]), "revpairwise", "holm"),
    ("crossover", "cells_trt_vs_ctrl_bonferroni"): (dict(specs=["trt", "period"]), "trt.vs.ctrl", "bonferroni"),
    ("ohio", "sex_by_race_rate_ratio"): (dict(specs="sex", by="race", type="response", offset=0.0), "pairwise", "none"),
    ("ohio", "cells_revpairwise_tukey_ratio"): (dict(specs=["sex", "race"], type="response", offset=0.0),
                                                "revpairwise", "tukey"),
    ("crossover_glm", "trt_odds_ratio"): (dict(specs="trt", type="response"), "revpairwise", "none"),
    ("crossover_glm", "cells_pairwise_tukey"): (dict(specs=["trt", "period"]), "pairwise", "tukey"),
    ("crossover_glm", "cells_pairwise_sidak"): (dict(specs=["trt", "period"]), "pairwise", "sidak"),
    ("ticks_gaussian_glm", "year_pairwise_tukey"): (dict(specs="YEAR"), "pairwise", "tukey"),
    ("ticks_gaussian_glm", "year_trt_vs_ctrl_sidak"): (dict(specs="YEAR"), "trt.vs.ctrl", "sidak"),
    ("ohio_quasipoisson_glm", "race_by_sex_ratio"): (dict(specs="race", by="sex", type="response", offset=0.0),
                                                     "pairwise", "none"),
    ("ticks_nb_glm", "year_pairwise_ratio_tukey"): (dict(specs="YEAR", type="response"), "pairwise", "tukey"),
    ("ticks_poisson_glmer", "year_by_height_holm"): (dict(specs="YEAR", by="cHEIGHT", at={"cHEIGHT": [-20, 0, 20]}),
                                                     "trt.vs.ctrl", "holm"),
}
# how closely glmmteach's own fit reproduces R's numbers (rtol, atol; see the module docstring): the GLMMs'
# standard errors differ by lme4's finite-difference Hessian, the crossover's coefficients by its flat ridge
OWN_FIT_TOLERANCE = {"crossover": (5e-3, 0.0), "ohio": (1e-4, 0.0), "ticks_poisson_glmer": (1e-4, 1e-5)}


def r_table(stored: dict) -> pd.DataFrame:
    frame = pd.DataFrame({k: np.atleast_1d(v) for k, v in stored.items()})
    estimate = next(c for c in R_ESTIMATE if c in frame.columns)
    return frame.rename(columns={estimate: "estimate", **R_COLUMNS})


def assert_table(ours: pd.DataFrame, theirs: pd.DataFrame, keys: list[str], rtol: float, atol: float = 1e-14) -> None:
    assert len(ours) == len(theirs)
    for key in keys:  # the grid's order and labels: R's factor values may come back as text
        assert [as_text(v) for v in ours[key]] == [as_text(v) for v in theirs[key]], key
    for column in ("estimate", "SE", "lower", "upper", "z", "t", "p"):
        if column in theirs.columns:
            expected = theirs[column].to_numpy(dtype=float)
            # a p-value is accurate in absolute terms (R's ptukey to about 1e-12 near 0)
            # a p-value is compared in absolute terms: R's Tukey tail is 1 - ptukey(), which cancels below 1e-11
            np.testing.assert_allclose(ours[column].to_numpy(), expected, rtol=rtol,
                                       atol=max(atol, 1e-10) if column == "p" else atol, err_msg=column)


def as_text(value: Any) -> str:
    """A grid value as R prints it: -20 for -20.0, text as it is."""
    return f"{value:g}" if isinstance(value, float | np.floating) else str(value)


@pytest.mark.parametrize(("case", "name"), list(MEANS))
def test_means_equal_r_emmeans_on_r_coefficients(case: str, name: str) -> None:
    args = MEANS[(case, name)]
    means = emmeans(WithCoefficients(fitted(case), reference()[case]), **args)
    keys = [*np.atleast_1d(args["specs"]), *np.atleast_1d(args.get("by", []))]
    assert list(means.table.columns) == [*keys, "estimate", "SE", "lower", "upper"]
    assert_table(means.table, r_table(reference()[case]["emmeans"][name]), keys, 1e-6)


@pytest.mark.parametrize(("case", "name"), list(CONTRASTS))
def test_contrasts_equal_r_emmeans_on_r_coefficients(case: str, name: str) -> None:
    args, method, adjust = CONTRASTS[(case, name)]
    stored = reference()[case]["contrasts"][name]
    assert (stored["method"], stored["adjust"]) == (method, adjust)
    table = contrast(emmeans(WithCoefficients(fitted(case), reference()[case]), **args), method, adjust)
    by = list(np.atleast_1d(args.get("by", [])))
    statistic = "t" if case == "ticks_gaussian_glm" else "z"  # a gaussian glm's df is its residual df
    assert list(table.columns) == ["contrast", *by, "estimate", "SE", "lower", "upper", statistic, "p"]
    assert_table(table, r_table(stored["table"]), ["contrast", *by], 1e-6)


@pytest.mark.parametrize("case", list(dict.fromkeys(c for c, _ in MEANS)))
def test_means_from_glmmteach_own_fit(case: str) -> None:
    """The same means from glmmteach's coefficients, as close to R's as the two fits are."""
    fit, stored = fitted(case), reference()[case]
    rtol, atol = OWN_FIT_TOLERANCE.get(case, (1e-6, 1e-14))
    np.testing.assert_allclose(fit.params.to_numpy(), np.array(list(stored["beta"].values())), rtol=rtol)
    for (c, name), args in MEANS.items():
        if c == case:
            keys = [*np.atleast_1d(args["specs"]), *np.atleast_1d(args.get("by", []))]
            assert_table(emmeans(fit, **args).table, r_table(stored["emmeans"][name]), keys, rtol, atol)


def test_default_offset_is_the_mean_log_population_and_offset_zero_gives_rates_per_person() -> None:
    fit = fitted("ohio")
    stored = reference()["ohio"]
    default = emmeans(fit, ["sex", "race"]).table["estimate"]
    per_person = emmeans(fit, ["sex", "race"], offset=0.0).table["estimate"]
    np.testing.assert_allclose(default - per_person, stored["mean_logpop"], rtol=1e-12)


def test_population_average_is_exact_and_emmeans_bias_adjustment_is_its_taylor_approximation() -> None:
    """Ohio (log link): the population mean exp(eta + tau^2/2) exactly; emmeans' bias.adjust gives
    exp(eta)(1 + tau^2/2), its second-order expansion. The crossover (logit): emmeans' expansion, and the
    exact average (adaptive quadrature) checked by a fine trapezoid rule."""
    fit = WithCoefficients(fitted("ohio"), reference()["ohio"])
    tau = reference()["ohio"]["tau"]
    conditional = emmeans(fit, "race", type="response", offset=np.log(1e5)).table["estimate"].to_numpy()
    fit_tau = float(np.sqrt(fitted("ohio").cov_re.to_numpy()[0, 0]))
    averaged = emmeans(fit, "race", type="response", offset=np.log(1e5), population_average=True).table
    np.testing.assert_allclose(averaged["estimate"], conditional * np.exp(fit_tau**2 / 2), rtol=1e-12)
    r_bias = r_table(reference()["ohio"]["emmeans"]["race_rate_bias_adjusted"])["estimate"].to_numpy()
    np.testing.assert_allclose(r_bias, conditional * (1 + tau**2 / 2), rtol=1e-6)  # emmeans' approximation
    # the two differ by the higher-order terms: exp(v/2) - (1 + v/2) ~ v^2/8 of the mean
    gap = averaged["estimate"].to_numpy() / r_bias - 1
    np.testing.assert_allclose(gap, np.exp(fit_tau**2 / 2) / (1 + tau**2 / 2) - 1, rtol=1e-4)

    # logit: emmeans' expansion is p + (v/2) p(1-p)(1-2p); with the crossover's tau (23.5 under Laplace) it is
    # useless (1e-4 and 0.036) where the population-averaged probabilities are 0.26 and 0.35
    stored = reference()["crossover"]
    r_fit = WithCoefficients(fitted("crossover"), stored)
    p = 1 / (1 + np.exp(-emmeans(r_fit, "trt").table["estimate"].to_numpy()))
    r_bias = r_table(stored["emmeans"]["trt_response_bias_adjusted"])["estimate"].to_numpy()
    np.testing.assert_allclose(r_bias, p + stored["tau"] ** 2 / 2 * p * (1 - p) * (1 - 2 * p), rtol=1e-6)
    exact = emmeans(r_fit, "trt", type="response", population_average=True).table["estimate"].to_numpy()
    assert np.all(exact > 0.25) and np.all(r_bias < 0.04)

    cross = fitted("crossover")
    means = emmeans(cross, "trt", type="response", population_average=True).table
    eta = emmeans(cross, "trt").table["estimate"].to_numpy()
    sd = float(np.sqrt(cross.cov_re.to_numpy()[0, 0]))
    s = np.linspace(-12, 12, 400_001)
    density = np.exp(-s**2 / 2) / np.sqrt(2 * np.pi)
    direct = [np.trapezoid(density / (1 + np.exp(-(e + sd * s))), s) for e in eta]
    np.testing.assert_allclose(means["estimate"], direct, rtol=1e-9)
    assert np.all(means["lower"] < means["estimate"]) and np.all(means["estimate"] < means["upper"])


def test_bad_requests_are_named() -> None:
    fit = fitted("ohio")
    with pytest.raises(GlmmteachError, match="'county'"):
        emmeans(fit, "county")
    with pytest.raises(GlmmteachError, match="'year' is a numeric covariate"):
        emmeans(fit, "year")
    with pytest.raises(GlmmteachError, match="type must be"):
        emmeans(fit, "sex", type="rate")
    with pytest.raises(GlmmteachError, match=r"level\(s\) \[3\]"):
        emmeans(fit, "sex", at={"sex": [1, 3]})
    means = emmeans(fit, ["sex", "race"])
    with pytest.raises(GlmmteachError, match="method must be"):
        contrast(means, "consec")
    with pytest.raises(GlmmteachError, match="'tukey' is for a family"):
        contrast(means, "trt.vs.ctrl", "tukey")
    with pytest.raises(GlmmteachError, match="population_average"):
        emmeans(fitted("crossover_glm"), "trt", type="response", population_average=True)


def test_one_sided_formula_specs_are_emmeans_specs() -> None:
    fit = fitted("crossover_glm")
    pd.testing.assert_frame_equal(emmeans(fit, "~ trt | period").table, emmeans(fit, "trt", by="period").table)
    pd.testing.assert_frame_equal(emmeans(fit, "~ trt * period").table, emmeans(fit, ["trt", "period"]).table)
    with pytest.raises(GlmmteachError, match="not both"):
        emmeans(fit, "~ trt | period", by="period")


@pytest.mark.parametrize("kind", ["text", "categorical"])
def test_text_and_categorical_factors_give_the_same_means(kind: str) -> None:
    """A factor given as text or as a pandas Categorical (levels in the categories' order, as R's factor
    levels) is coded by the fit's design exactly as factor(trt) of the numeric column."""
    crossover = datasets.load_crossover()
    labels = crossover["trt"].map({0: "placebo", 1: "drug"})
    if kind == "categorical":
        labels = pd.Categorical(labels, categories=["placebo", "drug"])
    data = crossover.assign(treatment=labels)
    reference_fit = fitted("crossover_glm")
    formula = "outcome ~ treatment * factor(period)"
    fit = glm(formula, data, "binomial")
    ours = emmeans(fit, "treatment", type="response").table
    expected = emmeans(reference_fit, "trt", type="response").table
    order = ["placebo", "drug"] if kind == "categorical" else ["drug", "placebo"]  # text levels sort
    assert ours["treatment"].astype(str).tolist() == order
    by_label = ours.set_index(ours["treatment"].astype(str))
    for code, label in ((0, "placebo"), (1, "drug")):
        row = expected[expected["trt"] == code].iloc[0]
        np.testing.assert_allclose(by_label.loc[label, ["estimate", "SE", "lower", "upper"]].to_numpy(dtype=float),
                                   row[["estimate", "SE", "lower", "upper"]].to_numpy(dtype=float), rtol=1e-9)
    pairs = contrast(emmeans(fit, "treatment", type="response"), "pairwise", "none")
    assert pairs["contrast"].tolist() == [f"{order[0]} / {order[1]}"]


def test_an_offset_argument_is_a_covariate_at_its_mean_as_an_offset_term() -> None:
    """emmeans treats glm(..., offset = logpop) as it treats offset(logpop): at the mean log population.
    An offset given as an array needs offset= for the grid."""
    ohio = datasets.load_ohio_cancer()
    fit = glm("death ~ factor(sex) + offset(logpop)", ohio, "poisson")
    in_formula = emmeans(fit, "sex").table
    as_column = emmeans(glm("death ~ factor(sex)", ohio, "poisson", offset="logpop"), "sex").table
    pd.testing.assert_frame_equal(in_formula, as_column, rtol=1e-12)
    assert in_formula["estimate"].iloc[0] == pytest.approx(fit.params.iloc[0] + ohio["logpop"].mean(), rel=1e-12)
    as_array = glm("death ~ factor(sex)", ohio, "poisson", offset=ohio["logpop"].to_numpy())
    with pytest.raises(GlmmteachError, match="offset="):
        emmeans(as_array, "sex")
    rates = emmeans(as_array, "sex", offset=0.0).table
    np.testing.assert_allclose(rates["estimate"], in_formula["estimate"] - ohio["logpop"].mean(), rtol=1e-12)


def test_population_average_with_a_random_slope_uses_the_variance_at_each_covariate_value() -> None:
    """(1 + x | a) + (1 | b), log link: v(x) = (1, x) Sigma_a (1, x)' + sigma_b^2 and the mean exp(eta + v/2)."""
    data = pd.read_csv(Path(__file__).parent / "data" / "lme4_structures" / "crossed_slope.csv")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fit = glmer("y ~ x + (1 + x | a) + (1 | b)", data, "poisson")
    values = [-1.0, 0.0, 1.5]
    eta = emmeans(fit, "x", at={"x": values}).table["estimate"].to_numpy()
    averaged = emmeans(fit, "x", at={"x": values}, type="response", population_average=True).table
    sigma_a, sigma_b = fit.cov_re["a"].to_numpy(), fit.cov_re["b"].to_numpy()[0, 0]
    variance = np.array([np.array([1.0, x]) @ sigma_a @ np.array([1.0, x]) + sigma_b for x in values])
    np.testing.assert_allclose(averaged["estimate"], np.exp(eta + variance / 2), rtol=1e-12)
