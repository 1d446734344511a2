"""Formula forms and inputs R's glm and lme4's glmer accept, against R (tests/data/formula_forms/reference.json,
made by make_reference.R there from forms.csv and MASS's quine; R 4.2, lme4 1.1-31).

- Nesting in the fixed part: ``a/b`` is ``a + a:b``, ``a/(b + c)`` is ``a + a:b + a:c``, ``a %in% b`` is ``a:b``,
  ``(a/b)^2`` and ``a/b - 1`` as R reads them (R's columns, names and fits, MASS's
  ``glm.nb(Days ~ Sex/(Age + Eth*Lrn), quine)`` among them); a nesting it cannot read is a FormulaError.
- R's ``terms()`` order: the variables of an interaction in their order of first appearance in the formula
  (``y ~ x + f2 + f2:x`` has the column ``x:f2Y``), in the fixed part, a bar's expression and new rows.
- ``(1 + f || g)`` with a factor ``f`` is lme4's ``(1 | g) + (0 + f | g)`` (the levels' correlations kept), with
  a warning saying so.
- Responses ``cbind(successes, failures)``, factor, character and logical; binomial rows with 0 trials; ``subset=``,
  ``na_action=``; ``contrasts=`` and ``C(f, sum)``; Gamma and inverse Gaussian glm; glmer's ``start=`` and
  ``nAGQ=0``.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from glmmteach import glm, glmer
from glmmteach.exceptions import FormulaError, GlmmteachError, GlmmteachWarning
from glmmteach.formula import build_design, r_terms

HERE = Path(__file__).parent / "data" / "formula_forms"
REFERENCE = json.loads((HERE / "reference.json").read_text())


@pytest.fixture(scope="module")
def forms() -> pd.DataFrame:
    return pd.read_csv(HERE / "forms.csv")


@pytest.fixture(scope="module")
def quine() -> pd.DataFrame:
    return pd.read_csv(HERE / "quine.csv")


def _assert_fit(fit, ref, beta_rtol: float = 2e-5, se_rtol: float = 1e-4) -> None:
    """R's coefficient names, estimates and standard errors; a log-likelihood never below R's by 1e-6."""
    assert list(fit.params.index) == ref["names"]
    scale = np.maximum(np.abs(ref["estimate"]), 1e-2)
    assert np.max(np.abs(fit.params.to_numpy() - ref["estimate"]) / scale) < beta_rtol
    np.testing.assert_allclose(fit.bse.to_numpy(), ref["se"], rtol=se_rtol)
    assert fit.llf > ref["loglik"] - 1e-6
    assert fit.llf < ref["loglik"] + 1e-4


def _check_matrix(ref, data: pd.DataFrame) -> None:
    formula = ref["formula"] if not ref["formula"].startswith("~") else "y " + ref["formula"]
    design = build_design(formula, data)
    assert design.column_names == ref["names"]
    # (R's products written with 15 significant digits)
    np.testing.assert_allclose(design.X, np.column_stack(ref["X"]), rtol=1e-14, atol=0)
    rows = [7, 0, 31, 4]
    X_new, _ = design.new_fixed(data.iloc[rows])  # new rows are coded the same way
    np.testing.assert_array_equal(X_new, design.X[rows])


@pytest.mark.parametrize("ref", REFERENCE["nesting_matrices"], ids=lambda ref: ref["formula"])
def test_nesting_gives_r_model_matrix(ref, forms, quine):
    _check_matrix(ref, quine if "Days" in ref["formula"] else forms)


def test_nesting_expansion():
    assert r_terms(["f/(x + z)"]) == ("f", "f:x", "f:z")
    assert r_terms(["(a + b)/c"]) == ("a", "b", "a:b:c")
    assert r_terms(["a/b/c"]) == ("a", "a:b", "a:b:c")
    assert r_terms(["Sex/(Age + Eth*Lrn)"]) == ("Sex", "Sex:Age", "Sex:Eth", "Sex:Lrn", "Sex:Eth:Lrn")
    assert r_terms(["a", "a/b"]) == ("a", "a:b")  # (a term already in the formula is not repeated)
    assert r_terms(["(f/x)^2"]) == ("f", "f:x")
    assert r_terms(["f %in% x"]) == ("f:x",) and r_terms(["I(x %in% y)"]) == ("I(x %in% y)",)
    assert r_terms(["f/x - 1"]) == ("0", "f", "f:x")
    assert r_terms(["x - 1", "log(x/2)", "(a + b)^2"]) == ("x - 1", "log(x/2)", "(a + b)^2")
    # terms already in R's form are kept as written (their matrices do not change)
    assert r_terms(["x*z*k", "log(x + 5)", "factor(f):w"]) == ("x*z*k", "log(x + 5)", "factor(f):w")
    assert r_terms(["x*z*k", "factor(f):x"]) == ("x*z*k", "x:factor(f)")


@pytest.mark.parametrize("formula", ["counts ~ f/(x - z)", "counts ~ f/x^2", "counts ~ (f/x)**2"])
def test_nesting_not_read_is_a_formula_error(formula, forms):
    with pytest.raises(FormulaError, match=r"the formula term '.*' nests with '/' in a form glmmteach does not read"):
        glm(formula, forms, family="poisson")


def test_quine_negative_binomial_nesting_equals_mass(quine):
    ref = REFERENCE["quine_nb"]
    fit = glm("Days ~ Sex/(Age + Eth*Lrn)", quine, family="negative_binomial")
    _assert_fit(fit, ref, beta_rtol=1e-6, se_rtol=1e-6)
    assert fit.nb_theta == pytest.approx(ref["theta"], rel=1e-6)
    assert fit.aic == pytest.approx(ref["aic"], rel=1e-9)


def test_glm_and_glmer_with_nesting_equal_r(forms):
    fit = glm("counts ~ f2/(x + z)", forms, family="poisson")
    _assert_fit(fit, REFERENCE["glm_nesting"], beta_rtol=1e-10, se_rtol=1e-10)
    _assert_fit(glmer("y ~ f/x + (1 | g)", forms), REFERENCE["glmer_nesting"])


@pytest.mark.parametrize("ref", REFERENCE["order_matrices"], ids=lambda ref: ref["formula"])
def test_interaction_variables_in_r_terms_order(ref, forms):
    _check_matrix(ref, forms)


def test_glmer_interaction_names_follow_r(forms):
    fit = glmer("y ~ x + f2 + f2:x + (1 | g)", forms)
    _assert_fit(fit, REFERENCE["glmer_order"])
    assert fit.params["x:f2Y"] == fit.params.iloc[3]


@pytest.mark.parametrize("ref", REFERENCE["re_order"], ids=lambda ref: ref["formula"])
def test_random_effect_names_follow_r(ref, forms):
    design = build_design(ref["formula"], forms)
    assert [term.names for term in design.random] == ref["names"]
    Z_new, _ = design.random[0].new_rows(forms.iloc[[5, 2]])
    np.testing.assert_array_equal(Z_new, design.random[0].Z[[5, 2]])


@pytest.mark.filterwarnings("ignore::glmmteach.exceptions.SingularFitWarning")  # (the intercept SD is 0, as in R)
def test_double_bar_with_a_factor_is_lme4s_expansion(forms):
    ref = REFERENCE["double_bar_factor"]
    with pytest.warns(GlmmteachWarning, match=r"\(0 \+ f \| g\) '\|\|' does not remove the correlations") as record:
        fit = glmer("y ~ x + f + (1 + f || g)", forms)
    assert sum("does not remove" in str(w.message) for w in record) == 1  # once
    assert [t.names for t in fit.design.random] == [["(Intercept)"], ["fa", "fb", "fc"]]
    _assert_fit(fit, ref, beta_rtol=1e-5, se_rtol=1e-4)
    # the factor's block: R's SDs and correlations (the intercept's SD is at its boundary, near 0 in both)
    cov = fit.cov_re[fit.term_labels[1]].to_numpy()
    sd = np.sqrt(np.diag(cov))
    corr = cov / np.outer(sd, sd)
    vc = ref["varcorr"]
    np.testing.assert_allclose(sd, vc["sdcor"][1:4], rtol=1e-3)
    np.testing.assert_allclose(corr[np.tril_indices(3, -1)], vc["sdcor"][4:], atol=1e-3)
    assert vc["sdcor"][0] < 1e-4 and fit.sd_re.iloc[0] < 1e-4


def test_double_bar_with_numeric_effects_is_unchanged(forms):
    with warnings.catch_warnings():
        warnings.simplefilter("error", GlmmteachWarning)
        design = build_design("y ~ x + (1 + x + z || g)", forms)
        crossed = build_design("y ~ x + (x*z || g)", forms)  # (x*z: the terms x, z and x:z, all numeric)
    (term,) = design.random
    assert not term.correlated and term.names == ["(Intercept)", "x", "z"]
    assert [t.names for t in crossed.random] == [["(Intercept)", "x", "z", "x:z"]]


# --------------------------------------------------------------------------------------------
# Responses: cbind(successes, failures), factor, character and logical; binomial rows with 0 trials


def _assert_glm(fit, ref) -> None:
    """A glm against R's glm: to R's printed precision (1e-10) in everything, with R's counts."""
    _assert_fit(fit, ref, beta_rtol=1e-9, se_rtol=1e-9)
    assert fit.llf == pytest.approx(ref["loglik"], rel=1e-10)
    assert fit.aic == pytest.approx(ref["aic"], rel=1e-10)
    assert fit.deviance == pytest.approx(ref["deviance"], rel=1e-10)
    assert (fit.nobs, fit.df_resid) == (ref["nobs"], ref["df_residual"])


@pytest.mark.parametrize("response", ["cbind(succ, fail)", "cbind(succ, trials - succ)", "cbind( succ ,trials-succ )"])
def test_glm_cbind_response_with_zero_trial_rows_equals_r(response, forms):
    assert (forms["trials"] == 0).sum() == 15  # rows R gives weight 0: in no likelihood and no df
    _assert_glm(glm(f"{response} ~ x + f", forms), REFERENCE["glm_cbind"])


def test_glmer_cbind_response_with_zero_trial_rows_equals_lme4(forms):
    ref = REFERENCE["glmer_cbind"]
    fit = glmer("cbind(succ, fail) ~ x + f + (1 | g)", forms)
    _assert_fit(fit, ref)
    assert fit.nobs == ref["nobs"] == 240  # (lme4 counts the rows with 0 trials as observations)
    assert "Formula: cbind(succ, fail) ~ x + f + (1 | g)" in str(fit.summary())
    same = glmer("succ ~ x + f + (1 | g)", forms, trials="trials")  # trials= with 0 trials: the same model
    assert same.llf == pytest.approx(fit.llf, abs=1e-9)


@pytest.mark.parametrize(
    ("formula", "kwargs", "message"),
    [
        ("cbind(succ, fail) ~ x", {"trials": "trials"}, r"gives the binomial trials .* do not pass trials="),
        ("cbind(succ, fail) ~ x", {"family": "poisson"}, "is a binomial response .* the family is poisson"),
        ("cbind(succ, x) ~ f", {}, r"failures 'x' of cbind\(succ, x\) must be whole numbers"),
        ("cbind(succ, log(fail)) ~ x", {}, r"must be a column name or cbind\(successes, failures\)"),
        ("cbind(succ, nothere) ~ x", {}, "'nothere'"),
    ],
)
def test_bad_cbind_responses_are_named(formula, kwargs, message, forms):
    with pytest.raises(GlmmteachError, match=message):
        glm(formula, forms, **kwargs)


@pytest.mark.parametrize(
    ("values", "key"),
    [
        (lambda d: d["y"] == 1, "glm_logical"),
        (lambda d: np.where(d["y"] == 1, "yes", "no"), "glm_factor"),  # characters: levels sorted, as factor()
        (lambda d: pd.Categorical(np.where(d["y"] == 1, "yes", "no")), "glm_factor"),
        (lambda d: pd.Categorical(np.where(d["y"] == 1, "yes", "no"), categories=["yes", "no"]), "glm_factor_reversed"),
    ],
    ids=["logical", "character", "factor", "factor-yes-first"],
)
def test_factor_and_logical_binary_responses_equal_r(values, key, forms):
    _assert_glm(glm("yf ~ x + f", forms.assign(yf=values(forms))), REFERENCE[key])


def test_glmer_factor_response_equals_lme4(forms):
    data = forms.assign(yf=pd.Categorical(np.where(forms["y"] == 1, "yes", "no")))
    _assert_fit(glmer("yf ~ x + (1 | g)", data), REFERENCE["glmer_factor"])


def test_factor_response_with_one_level_is_refused(forms):
    with pytest.raises(GlmmteachError, match="'yf' has one level only"):
        glm("yf ~ x", forms.assign(yf="yes"))
    with pytest.raises(GlmmteachError, match="'yf' must be numeric"):
        glm("yf ~ x", forms.assign(yf="yes"), family="poisson")


# --------------------------------------------------------------------------------------------
# subset= and na_action=


def _r_values(values: list) -> np.ndarray:
    return np.array([np.nan if v == "NA" else v for v in values], dtype=float)


@pytest.mark.parametrize("subset", ["z > 0.5", "mask", "series"])
def test_glm_subset_equals_r(subset, forms):
    chosen = {"z > 0.5": "z > 0.5", "mask": (forms["z"] > 0.5).to_numpy(), "series": forms["z"] > 0.5}[subset]
    before = forms.copy()
    fit = glm("counts ~ x + f", forms, family="poisson", subset=chosen)
    _assert_glm(fit, REFERENCE["glm_subset"])
    pd.testing.assert_frame_equal(forms, before)  # the caller's data is not modified


def test_glmer_subset_equals_lme4(forms):
    ref = REFERENCE["glmer_subset"]
    fit = glmer("counts ~ x + (1 | g)", forms, family="poisson", subset="f != 'c'")
    _assert_fit(fit, ref)
    assert fit.nobs == ref["nobs"]


def test_subset_with_array_weights_keeps_their_rows(forms):
    weights = np.linspace(0.5, 2.0, len(forms))
    keep = (forms["z"] > 0.5).to_numpy()
    fit = glm("counts ~ x", forms, family="poisson", weights=weights, subset=keep)
    whole = glm("counts ~ x", forms[keep], family="poisson", weights=weights[keep])
    np.testing.assert_array_equal(fit.params, whole.params)


@pytest.mark.parametrize(
    ("subset", "message"),
    [("nothere > 1", "cannot evaluate subset='nothere > 1'"), ("z > 10", "selects no row"),
     (np.ones(3, dtype=bool), r"one True/False per row of the data \(240 rows\)"), ("x", "one True/False per row")],
)
def test_bad_subsets_are_named(subset, message, forms):
    with pytest.raises(GlmmteachError, match=message):
        glm("counts ~ x", forms, family="poisson", subset=subset)


def test_na_exclude_pads_fitted_values_and_residuals_as_r(forms):
    ref = REFERENCE["glm_exclude"]
    with pytest.warns(Warning, match="3 row"):
        fit = glm("y ~ xm + f", forms, na_action="exclude")
    _assert_glm(fit, ref)
    for values, key in [(fit.fittedvalues, "fitted"), (fit.resid_deviance, "resid_deviance"),
                        (fit.resid_pearson, "resid_pearson")]:
        assert list(values.index) == list(forms.index)
        np.testing.assert_allclose(values.to_numpy(), _r_values(ref[key]), rtol=1e-10, atol=1e-14)
    assert fit.predict(type="response").isna().sum() == 3
    with pytest.warns(Warning, match="3 row"):
        omitted = glm("y ~ xm + f", forms)  # na_action="omit": the rows used only
    assert len(omitted.fittedvalues) == 237


def test_glmer_na_exclude_pads_and_na_fail_refuses(forms):
    with pytest.warns(Warning, match="3 row"):
        fit = glmer("y ~ xm + (1 | g)", forms, na_action="exclude")
    assert len(fit.fittedvalues) == len(forms) and fit.resid().isna().sum() == 3
    assert fit.predict().isna().sum() == 3 and len(fit.predict(forms.iloc[:4])) == 4
    assert fit.nobs == 237
    with pytest.raises(GlmmteachError, match=r"na_action='fail': 3 row\(s\) have a missing value, in column 'xm'"):
        glmer("y ~ xm + (1 | g)", forms, na_action="fail")
    with pytest.raises(GlmmteachError, match="na_action must be one of 'omit', 'exclude', 'fail'"):
        glm("y ~ xm", forms, na_action="pass")


# --------------------------------------------------------------------------------------------
# Gamma and inverse Gaussian glm


@pytest.mark.parametrize(
    ("key", "family", "link", "formula"),
    [("glm_gamma_log", "Gamma", "log", "pos ~ x + f"), ("glm_gamma_inverse", "Gamma", None, "pos ~ x + f"),
     ("glm_invgauss", "inverse.gaussian", "log", "pos ~ x + f"),
     ("glm_invgauss_canonical", "inverse.gaussian", None, "pos ~ z + f")],
)
def test_gamma_and_inverse_gaussian_glm_equal_r(key, family, link, formula, forms):
    ref = REFERENCE[key]
    fit = glm(formula, forms, family=family, link=link)
    _assert_glm(fit, ref)
    assert fit.scale == pytest.approx(ref["dispersion"], rel=1e-10)  # Pearson's, as summary.glm
    assert fit.k_params == ref["df"]  # (the dispersion counts in AIC, as R's logLik)


def test_gamma_identity_link_reaches_r_optimum(forms):
    # R stopped this fit (from start = c(1.5, 0.4, 0.3, 0)) at its deviance tolerance; this one climbs higher
    ref = REFERENCE["glm_gamma_identity"]
    fit = glm("pos ~ x + f", forms, family="Gamma", link="identity")
    assert list(fit.params.index) == ref["names"]
    assert fit.llf > ref["loglik"] - 1e-10
    assert fit.deviance == pytest.approx(ref["deviance"], rel=1e-9)
    np.testing.assert_allclose(fit.bse, ref["se"], rtol=1e-3)


def test_positive_families_refuse_non_positive_responses(forms):
    with pytest.raises(GlmmteachError, match="Gamma response 'x' must be positive"):
        glm("x ~ z", forms, family="Gamma")
    with pytest.raises(GlmmteachError, match="family 'gamma' is not available for GLMMs"):
        glmer("pos ~ x + (1 | g)", forms, family="Gamma")


# --------------------------------------------------------------------------------------------
# contrasts= and C(f, sum)


@pytest.mark.parametrize(
    ("key", "formula", "contrasts"),
    [("glm_contrasts", "counts ~ f + f2 + x", {"f": "contr.sum", "f2": "contr.helmert"}),
     ("glm_contrasts_helmert", "counts ~ f + x", {"f": "contr.helmert"}),
     ("glm_base_level", "counts ~ f + x", {"f": ("contr.treatment", "b")}),
     ("glm_contrasts_interaction", "counts ~ f*f2 + x", {"f": "contr.sum", "f2": "contr.helmert"}),
     ("glm_contrasts_nested", "counts ~ x + f:x", {"f": "contr.sum"}),
     ("glm_C_sum", "counts ~ C(f, sum) + x", None),
     ("glm_C_sum", "counts ~ C(f, Sum) + x", None)],  # (patsy's spelling too)
)
def test_contrasts_equal_r(key, formula, contrasts, forms):
    fit = glm(formula, forms, family="poisson", contrasts=contrasts)
    _assert_glm(fit, REFERENCE[key])
    rows = [3, 1, 17]
    np.testing.assert_allclose(fit.predict(forms.iloc[rows]), fit.predict().iloc[rows], rtol=1e-14)


def test_glmer_contrasts_equal_lme4(forms):
    fit = glmer("counts ~ f + x + (1 | g)", forms, family="poisson", contrasts={"f": "contr.sum"})
    _assert_fit(fit, REFERENCE["glmer_contrasts"])


def test_contrast_matrices_are_rs():
    from glmmteach.formula import contr_helmert, contr_sum

    np.testing.assert_array_equal(contr_sum(3), [[1, 0], [0, 1], [-1, -1]])
    np.testing.assert_array_equal(contr_helmert(4), [[-1, -1, -1], [1, -1, -1], [0, 2, -1], [0, 0, 3]])


@pytest.mark.parametrize(
    ("contrasts", "message"),
    [({"f": "contr.SAS"}, "'contr.SAS' is not one of contr.treatment, contr.sum"),
     ({"w": "contr.sum"}, "names 'w', which is not a variable of the fixed effects"),
     ({"x": "contr.sum"}, "for 'x': the column is numeric"),
     ({"f": ("contr.treatment", "z")}, "the base level 'z' is not a level of the column"),
     ({"f": ("contr.sum", "b")}, "a base level applies to contr.treatment only"),
     ("contr.sum", "contrasts= must be a dict")],
)
def test_bad_contrasts_are_named(contrasts, message, forms):
    with pytest.raises(GlmmteachError, match=message):
        glm("counts ~ f + x", forms, family="poisson", contrasts=contrasts)


# --------------------------------------------------------------------------------------------
# glmer's start=


def test_glmer_start_reaches_lme4s_optimum(forms):
    ref = REFERENCE["glmer_start"]  # lme4 from start = list(theta = 2, fixef = rep(0, 6))
    fit = glmer("y ~ f/x + (1 | g)", forms, start={"theta": [2.0], "fixef": np.zeros(6)})
    _assert_fit(fit, ref)
    from_theta = glmer("y ~ f/x + (1 | g)", forms, start=[0.3])  # an array: theta, as lme4
    assert from_theta.llf == pytest.approx(fit.llf, abs=1e-8)


@pytest.mark.parametrize(
    ("start", "message"),
    [({"theta": [1.0, 2.0]}, "start=theta: the model has 1 theta values"),
     ({"fixef": [0.0]}, r"start=fixef: the model has 6 fixef values \(\(Intercept\), fb, fc, fa:x"),
     ({"beta": [0.0]}, "takes the keys 'theta' and 'fixef'"), ([-1.0], "must be >= 0"),
     ({"theta": ["a"]}, "theta must be numbers")],
)
def test_bad_starts_are_named(start, message, forms):
    with pytest.raises(GlmmteachError, match=message):
        glmer("y ~ f/x + (1 | g)", forms, start=start)


# --------------------------------------------------------------------------------------------
# nAGQ = 0


@pytest.mark.parametrize("ref", REFERENCE["nagq0"], ids=lambda ref: ref["formula"])
def test_nagq0_equals_lme4(ref, forms):
    fit = glmer(ref["formula"], forms, family=ref["family"], nAGQ=0)
    assert fit.converged and fit.nAGQ == 0
    _assert_fit(fit, ref, beta_rtol=2e-6, se_rtol=5e-6)  # (lme4's PIRLS stops 2e-6 short in log-likelihood)
    np.testing.assert_allclose(fit.theta, ref["theta"], atol=2e-6)
    assert "Gauss-Hermite Quadrature, nAGQ = 0) [glmerMod]" in str(fit.summary())


def test_nagq0_is_not_the_laplace_fit_and_is_below_it(forms):
    approx = glmer("y ~ f/x + (1 | g)", forms, nAGQ=0)
    laplace = glmer("y ~ f/x + (1 | g)", forms)
    assert laplace.llf > approx.llf + 1e-3  # (an approximation: its beta maximises the penalised likelihood)
    from glmmteach.glmm.devfun import make_devfun

    assert make_devfun(approx)(approx.theta, approx.params.to_numpy()) == pytest.approx(approx.llf, abs=1e-9)
    with pytest.raises(GlmmteachError, match="nAGQ = 0 fit"):
        approx.conf_int_sd()
    with pytest.raises(GlmmteachError, match="nAGQ=0 is not available when the negative binomial shape"):
        glmer("counts ~ x + (1 | g)", forms, family="negative_binomial", nAGQ=0)
    with pytest.raises(GlmmteachError, match="nAGQ must be a whole number >= 0"):
        glmer("y ~ x + (1 | g)", forms, nAGQ=-1)
