"""Several random-effects terms (issue 9): the general (sparse) engine against the single-factor one, lme4's
reading of the terms, results objects that cover every term, and bad input.

Agreement with lme4's fits of the structures themselves is tests/test_lme4_structures.py.
"""

from __future__ import annotations

import json
import warnings
from functools import cache
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from glmmteach.datasets import load_crossover, load_ohio_cancer
from glmmteach.exceptions import DataError, GlmmteachError, GlmmteachWarning
from glmmteach.families import get_glmm_family
from glmmteach.formula import build_design
from glmmteach.glmm import GroupedData, fit_glmm, glmer, make_devfun
from glmmteach.glmm.api import general_model

STRUCTURES = Path(__file__).parent / "data" / "lme4_structures"
RANDOM = Path(__file__).parent / "data" / "lme4_random"


def quiet_glmer(*args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return glmer(*args, **kwargs)


@cache
def crossed() -> pd.DataFrame:
    return pd.read_csv(STRUCTURES / "crossed_binary.csv")


@cache
def crossed_fit():
    return quiet_glmer("y ~ x + (1 | a) + (1 | b)", crossed(), family="binomial")


# ---- the general engine gives the single-factor engine's numbers ---------------------------------------

def _both_engines(formula: str, data: pd.DataFrame, family: str, link: str | None = None, **kwargs):
    fam = get_glmm_family(family, link)
    design = build_design(formula, data, family=fam, **kwargs)
    term = design.random[0]
    grouped = GroupedData(design.X, term.Z, design.y, term.group_codes, term.n_groups, fam,
                          trials=design.trials if design.has_trials else None,
                          offset=design.offset if np.any(design.offset != 0) else None)
    batched = fit_glmm(grouped, term.correlated)
    general = fit_glmm(general_model(grouped, design.random), term.correlated)
    return batched, general


SINGLE_FACTOR = [
    ("ohio", "death ~ offset(logpop) + factor(sex) + factor(race) + year + (1 | county)", "poisson"),
    ("crossover", "outcome ~ trt * period + (1 | ID)", "binomial"),
]
# a correlated and an uncorrelated slope, a non-canonical link with trials, an offset in the formula
RANDOM_CASES = ["i8_logit_corr_40x8_s5", "i8_pois_uncorr_40x8_s7", "trials_probit_sd05_50unbal", "pois_offform_8x25",
                "cloglog_sd01_40x10"]


@pytest.mark.parametrize(("data_name", "formula", "family"), SINGLE_FACTOR)
def test_general_engine_equals_batched_engine_on_one_factor(data_name: str, formula: str, family: str) -> None:
    data = load_ohio_cancer() if data_name == "ohio" else load_crossover()
    batched, general = _both_engines(formula, data, family)
    assert general.llf == pytest.approx(batched.llf, abs=1e-8)
    np.testing.assert_allclose(general.beta, batched.beta, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(general.theta, batched.theta, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("name", RANDOM_CASES)
def test_general_engine_equals_batched_engine_on_lme4_random_cases(name: str) -> None:
    case = json.loads((RANDOM / "reference.json").read_text())["cases"][name]
    data = pd.read_csv(RANDOM / case["data"])
    batched, general = _both_engines(case["formula"], data, case["family"], case["link"], trials=case["trials"])
    assert general.llf == pytest.approx(batched.llf, abs=1e-8)
    np.testing.assert_allclose(general.beta, batched.beta, rtol=1e-4, atol=1e-6)


# ---- lme4's reading of the terms ----------------------------------------------------------------------

def test_nested_term_is_the_interaction_plus_the_outer_factor() -> None:
    data = pd.read_csv(STRUCTURES / "nested_poisson.csv")
    nested = quiet_glmer("y ~ x + (1 | school/class)", data, family="poisson")
    explicit = quiet_glmer("y ~ x + (1 | class:school) + (1 | school)", data, family="poisson")
    assert [t.group_name for t in nested.terms] == ["class:school", "school"]
    assert nested.llf == pytest.approx(explicit.llf, abs=1e-9)
    np.testing.assert_allclose(nested.theta, explicit.theta, rtol=1e-6)
    assert nested.ngroups == {"class:school": 100, "school": 25}


def test_terms_are_ordered_by_decreasing_levels_as_lme4() -> None:
    cancer = load_ohio_cancer().assign(obs=lambda d: np.arange(len(d)))
    design = build_design("death ~ year + (1 | county) + (1 | obs)", cancer)
    assert [t.group_name for t in design.random] == ["obs", "county"]
    # already non-increasing: formula order kept
    assert [t.group_name for t in build_design("y ~ x + (1 | a) + (1 | b)", crossed()).random] == ["a", "b"]


def test_summary_lists_every_term_and_grouping_factor() -> None:
    text = str(crossed_fit().summary())
    assert "Number of obs: 588, groups:  a, 40; b, 25" in text
    table = crossed_fit().varcorr()
    assert list(table["Groups"]) == ["a", "b"] and list(table["Name"]) == ["(Intercept)", "(Intercept)"]
    lines = table.to_text().split("\n")
    assert lines[0].split() == ["Groups", "Name", "Std.Dev."]
    assert lines[1].split()[0] == "a" and lines[2].split()[0] == "b"


def test_vector_and_scalar_terms_of_one_factor() -> None:
    data = pd.read_csv(STRUCTURES / "vector_scalar.csv")
    fit = quiet_glmer("y ~ x + z + (1 + x | g) + (0 + z | g)", data, family="poisson")
    assert fit.term_labels == ["g", "g.1"]
    table = fit.varcorr()
    assert list(table["Groups"]) == ["g", "g", "g.1"]
    text = table.to_text().split("\n")
    assert "Corr" in text[0] and len(text[2].split()) == 3  # x row: name, SD, correlation
    ranef = fit.ranef  # one frame for the factor g, both terms' columns
    assert list(ranef.columns) == ["(Intercept)", "(Intercept)_sd", "x", "x_sd", "z", "z_sd"]
    assert set(fit.cov_re) == {"g", "g.1"} and fit.cov_re["g"].shape == (2, 2)


def test_uncorrelated_term_next_to_another_term_of_its_factor_has_unique_labels() -> None:
    """lme4 reads ``(1 + x || g) + (0 + z | g)`` as three terms g, g.1, g.2 (VarCorr checked against lme4
    1.1-31 on these data): the later term must not reuse ``g.1``."""
    data = pd.read_csv(STRUCTURES / "vector_scalar.csv")
    fit = quiet_glmer("y ~ x + z + (1 + x || g) + (0 + z | g)", data, family="poisson")
    table = fit.varcorr()
    assert list(table["Groups"]) == ["g", "g.1", "g.2"]
    assert list(table["Name"]) == ["(Intercept)", "x", "z"]
    assert fit.term_labels == ["g", "g.2"] and set(fit.cov_re) == {"g", "g.2"}
    assert list(fit.sd_re.index.get_level_values("group")) == ["g", "g", "g.2"]


def test_ranef_and_conditional_covariances_cover_every_term() -> None:
    fit = crossed_fit()
    ranef = fit.ranef
    assert set(ranef) == {"a", "b"} and len(ranef["a"]) == 40 and len(ranef["b"]) == 25
    cov = fit.ranef_cov
    np.testing.assert_allclose(np.sqrt(cov["a"].to_numpy().ravel()), ranef["a"]["(Intercept)_sd"].to_numpy())
    # the conditional variance is below the prior variance
    assert (ranef["b"]["(Intercept)_sd"] < fit.sd_re[("b", "(Intercept)")]).all()


def test_conditional_covariances_equal_the_inverse_of_the_dense_hessian() -> None:
    fit = crossed_fit()
    model, state = fit.model, fit._outcome.state  # noqa: SLF001 (checking the engine's own record)
    H = np.eye(model.q)
    A = state.A
    W = state.values.fisher
    rows = np.repeat(np.arange(model.nobs), A.shape[1])
    dense_A = np.zeros((model.nobs, model.q))
    np.add.at(dense_A, (rows, model.slot_cols.ravel()), A.ravel())
    H += dense_A.T @ (W[:, None] * dense_A)
    inverse = np.linalg.inv(H)
    covs = model.conditional_covariances(state, fit.theta)
    for i, T in enumerate(fit.Ts):
        start = model.col_start[i]
        diag = np.diag(inverse)[start:start + model.terms[i].n_columns]
        np.testing.assert_allclose(covs[i][:, 0, 0], T[0, 0] ** 2 * diag, rtol=1e-10)
    assert state.factor_fisher.logdet == pytest.approx(np.linalg.slogdet(H)[1], rel=1e-12)


def test_predict_conditions_on_any_subset_of_terms() -> None:
    fit = crossed_fit()
    data = crossed()
    full = fit.predict()
    fixed = fit.predict(re_form=[])
    only_a = fit.predict(re_form=["a"])
    only_b = fit.predict(re_form="b")
    np.testing.assert_allclose(only_a + only_b - fixed, full, atol=1e-12)
    np.testing.assert_allclose(fixed, fit.predict(conditional=False), atol=1e-12)
    np.testing.assert_allclose(fit.predict(data.head(20)), full.head(20), atol=1e-12)
    b_a = fit.ranef["a"]["(Intercept)"]
    np.testing.assert_allclose(only_a - fixed, b_a.loc[data["a"]].to_numpy(), atol=1e-12)
    new = data.head(3).assign(a=999)
    with pytest.raises(DataError, match="999"):
        fit.predict(new)
    np.testing.assert_allclose(fit.predict(new, allow_new_levels=True), only_b.head(3).to_numpy(), atol=1e-12)
    with pytest.raises(GlmmteachError, match="re_form names 'c'"):
        fit.predict(re_form=["c"])


def test_predict_interaction_term_on_new_rows() -> None:
    data = pd.read_csv(STRUCTURES / "interaction.csv")
    fit = quiet_glmer("y ~ x + (1 | a:b)", data, family="poisson")
    assert fit.terms[0].group_name == "a:b"
    np.testing.assert_allclose(fit.predict(data.iloc[5:9]), fit.predict().iloc[5:9], atol=1e-12)


def test_simulate_refit_and_residuals_with_several_terms() -> None:
    fit = crossed_fit()
    sims = fit.simulate(3, seed=1)
    assert sims.shape == (588, 3) and set(np.unique(sims.to_numpy())) <= {0.0, 1.0}
    again = fit.simulate(1, seed=1, use_u=True)
    assert again.shape == (588, 1)
    refit = fit.refit(sims["sim_1"])
    assert refit.converged and len(refit.theta) == 2
    assert fit.resid("pearson").shape == (588,)
    np.testing.assert_allclose(fit.fittedvalues, fit.predict(type="response"), atol=1e-12)


# ---- bad input ----------------------------------------------------------------------------------------

def test_unidentifiable_terms_are_refused_for_every_term() -> None:
    data = crossed().assign(obs=np.arange(len(crossed())), one=1)
    with pytest.raises(DataError, match=r"number of observations \(=588\) < number of random effects \(=1176\) "
                                        r"for term \(1 \+ x \| obs\)"):
        glmer("y ~ x + (1 | a) + (1 + x | obs)", data, family="binomial")
    with pytest.raises(DataError, match="grouping factors must have > 1 sampled level: 'one'"):
        glmer("y ~ x + (1 | a) + (1 | one)", data, family="binomial")


def test_observation_level_effect_on_a_binary_response_warns() -> None:
    data = crossed().assign(obs=np.arange(len(crossed())))
    with pytest.warns(GlmmteachWarning, match=r"\(1 \| obs\) has one level per observation on a binary response"):
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="boundary")
            warnings.filterwarnings("ignore", message="flat likelihood")
            glmer("y ~ x + (1 | a) + (1 | obs)", data, family="binomial")


def test_quadrature_needs_a_single_scalar_term() -> None:
    with pytest.raises(GlmmteachError, match="nAGQ > 1 .* 2 random-effects terms"):
        glmer("y ~ x + (1 | a) + (1 | b)", crossed(), family="binomial", nAGQ=3)


def test_devfun_of_a_crossed_fit_is_its_log_likelihood() -> None:
    fit = crossed_fit()
    devfun = make_devfun(fit)
    assert devfun(fit.theta, fit.params.to_numpy()) == pytest.approx(fit.llf, abs=1e-8)
    value, gradient = make_devfun(fit, gradient=True)(fit.theta, fit.params.to_numpy())
    assert value == pytest.approx(fit.llf, abs=1e-8) and np.abs(gradient).max() < 1e-3
    assert "SD a:(Intercept)=" in repr(fit)


@pytest.mark.parametrize("name", ["crossed_slope", "nested_binary", "vector_and_scalar", "ohio_county_obs"])
def test_theta_is_named_and_ordered_as_lme4s(name: str) -> None:
    case = json.loads((STRUCTURES / "reference.json").read_text())["cases"][name]
    if case["data"] == "ohio":
        data = load_ohio_cancer().assign(decade=lambda d: (d["year"] - 11) / 10, obs=lambda d: np.arange(len(d)) + 1)
    else:
        data = pd.read_csv(STRUCTURES / case["data"])
    fit = quiet_glmer(case["formula"], data, family=case["family"], offset=case["offset"], trials=case["trials"])
    assert fit.theta_names == list(case["theta"])
    np.testing.assert_allclose(fit.theta, list(case["theta"].values()), atol=2e-4)
    assert fit.ngroups == case["ngroups"] or fit.ngroups == next(iter(case["ngroups"].values()))
