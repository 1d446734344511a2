"""The negative binomial family (issue 9 item 3): ``glm`` as MASS's ``glm.nb`` and ``glmer`` as lme4's ``glmer.nb``.

References: ``tests/data/lme4_structures/reference.json`` (MASS ``glm.nb`` and lme4 ``glmer.nb`` on the Ohio
county model and two simulated data sets; made by ``make_reference.R`` there) and
``tests/data/negative_binomial/reference.json`` (sqrt and identity links, a known shape, MASS's printed
summary; made by ``make_reference.R`` beside it).

Agreement measured when these tests were written (glmmteach minus R, relative unless said):

=================  ===========  ===========  ===============  =========================================
case               coefficients  theta        log-likelihood   notes
=================  ===========  ===========  ===============  =========================================
glm.nb Ohio        6e-12        1e-11        4e-12 (abs)      SE.theta 8e-7
glm.nb sim1        4e-10        1e-8         3e-13 (abs)      SE.theta 1.3e-4 (MASS: info at the last
glm.nb sim2        1.4e-7       3e-9         5e-13 (abs)      Newton iterate but one)
glmer.nb Ohio      2.2e-6       3.9e-6       -3e-8 (abs)      SE(theta) 9e-6, SEs 5e-6
glmer.nb sim1      1.8e-6       3.9e-7       -8e-9 (abs)      SE(theta) 5e-4; fixed-effect SEs: below
glmer.nb sim2      1.6e-6       7e-8         +1.8e-7 (abs)    SE(theta) 7e-7, SEs 2e-6
crossed (2 terms)  2.3e-7       8.9e-8       -6.4e-8 (abs)    SE(theta) 8e-7, SDs 1.0e-6
crossed + slope    4.2e-7       7e-9         -7.4e-8 (abs)    SE(theta) 1.1e-6, SDs 1.3e-5 (slope SD 0.06)
nested (2 terms)   2.1e-7       2.2e-8       -5.1e-7 (abs)    SE(theta) 4e-6, SDs 1.2e-6
grouseticks        5.4e-7       7.9e-7       -1.8e-6 (abs)    SE(theta) 1.4e-6, SDs 2.3e-6
=================  ===========  ===========  ===============  =========================================

The last four (several random-effects terms, the general engine) are in
``tests/data/negative_binomial/multi_reference.json`` (``make_multi_reference.R``): crossed ``(1 | a) + (1 | b)``
(and with a correlated random slope, ``(1 + x | a) + (1 | b)``) and nested ``(1 | school/class)`` on
simulated NB2 counts (``make_multi_data.py``) and lme4's grouseticks,
``TICKS ~ factor(YEAR) + cHEIGHT + (1 | BROOD) + (1 | LOCATION)``.

On sim1 lme4's fixed-effect SEs are not a reference: its own finite-difference Hessian gives 0.09839 and
0.05381, the stored file 0.09555 and 0.05382; glmmteach's 0.09848 and 0.05432 are those of the exact
Hessian of the Laplace log-likelihood (checked below by second differences of the value).
"""

from __future__ import annotations

import importlib.util
import json
import shutil
import subprocess
import warnings
from functools import cache
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from lme4_compare import skip_without_r
from scipy import special, stats

import glmmteach
from glmmteach.datasets import load_grouseticks, load_ohio_cancer
from glmmteach.exceptions import ConvergenceWarning, DataError, FamilyError
from glmmteach.families import get_family, get_glmm_family
from glmmteach.glmm import make_devfun
from glmmteach.theta_ml import THETA_MAX, theta_ml

DATA = Path(__file__).parent / "data"
STRUCTURES = json.loads((DATA / "lme4_structures" / "reference.json").read_text())["cases"]
EXTRA = json.loads((DATA / "negative_binomial" / "reference.json").read_text())["cases"]
GLM_CASES = ["nb_glm_ohio", "nb_glm_sim1", "nb_glm_sim2"]
GLMER_CASES = ["nb_glmer_ohio", "nb_glmer_sim1", "nb_glmer_sim2"]
MULTI = json.loads((DATA / "negative_binomial" / "multi_reference.json").read_text())["cases"]
MULTI_CASES = list(MULTI)


@cache
def load(name: str) -> pd.DataFrame:
    if name == "ohio":  # as tests/data/lme4_structures/make_reference.R derives it
        cancer = load_ohio_cancer()
        cancer["decade"] = (cancer["year"] - 11) / 10
        return cancer
    return pd.read_csv(DATA / "lme4_structures" / name)


@cache
def fit(name: str):
    case = STRUCTURES[name]
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # none of the reference fits warns
        if case["kind"] == "glm.nb":
            return glmmteach.glm(case["formula"], load(case["data"]), family="negative_binomial")
        return glmmteach.glmer(case["formula"], load(case["data"]), family="negative_binomial")


def relative(got: pd.Series, expected: dict) -> float:
    want = pd.Series(expected, dtype=float)
    return float(((got[want.index] - want) / want).abs().max())


# ---- the family ------------------------------------------------------------------------------


def test_family_values_are_the_nb2_distribution() -> None:
    theta = 1.7
    family = get_family("negative_binomial", theta=theta)
    y = np.array([0.0, 1, 2, 7, 40, 300])
    mu = np.array([0.3, 1.5, 2.0, 9.0, 25.0, 280.0])
    expected = stats.nbinom.logpmf(y, theta, theta / (theta + mu))
    np.testing.assert_allclose(family.loglik(y, mu, np.ones_like(y)), expected, rtol=1e-12)
    eta = np.log(mu)
    np.testing.assert_allclose(family.loglik_eta(eta, y) + family.log_constant(y), expected, rtol=1e-12)
    np.testing.assert_allclose(family.variance(mu), mu + mu**2 / theta)
    values = family.eta_values(eta, y, with_fisher_deriv=True)
    h = 1e-6
    plus, minus = family.eta_values(eta + h, y), family.eta_values(eta - h, y)
    np.testing.assert_allclose(values.score, (plus.loglik - minus.loglik) / (2 * h), rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(values.neg_hessian, -(plus.score - minus.score) / (2 * h), rtol=1e-6)
    np.testing.assert_allclose(values.fisher, theta * mu / (theta + mu))  # expected information
    np.testing.assert_allclose(values.fisher_deriv, (plus.fisher - minus.fisher) / (2 * h), rtol=1e-6)
    assert not family.canonical  # the log link is not the NB's canonical link: Fisher weights differ
    data = load("nb_sim1.csv")
    glm_fit = glmmteach.glm("y ~ x", data, family="negative_binomial", theta=theta)
    glmm_fit = glmmteach.glmer("y ~ x + (1 | g)", data, family="negative_binomial", theta=theta)
    assert glm_fit.family == glmm_fit.family == family  # one family object for GLM and GLMM
    assert family.label == "Negative Binomial(1.7)"
    # exact in the Poisson limit (no lgamma cancellation at large theta)
    big = get_family("negative_binomial", theta=1e12)
    np.testing.assert_allclose(big.loglik(y, mu, np.ones_like(y)), stats.poisson.logpmf(y, mu), rtol=1e-9)


def test_family_errors_name_the_option() -> None:
    with pytest.raises(FamilyError, match="theta= .* does not apply to the poisson family"):
        get_family("poisson", theta=2.0)
    for bad in (0.0, -1.0, np.inf, "a"):
        with pytest.raises(FamilyError, match="theta .* must be a positive"):
            get_family("negative_binomial", theta=bad)  # type: ignore[arg-type]
    with pytest.raises(FamilyError, match="link 'logit' is not available for the negative_binomial family"):
        get_family("negative_binomial", "logit")
    with pytest.raises(FamilyError, match="link 'sqrt' is not available for the negative_binomial family in a GLMM"):
        get_glmm_family("negative_binomial", "sqrt")
    with pytest.raises(FamilyError, match="theta is not known yet"):
        get_family("negative_binomial").variance(np.ones(2))


def test_theta_ml_is_the_root_of_the_score() -> None:
    rng = np.random.default_rng(1)
    mu = np.exp(rng.normal(1.0, 0.5, size=500))
    y = rng.negative_binomial(2.0, 2.0 / (2.0 + mu)).astype(float)
    shape = theta_ml(y, mu)
    grid = np.linspace(0.9, 1.1, 201) * shape.theta
    values = [np.sum(stats.nbinom.logpmf(y, t, t / (t + mu))) for t in grid]
    assert abs(grid[int(np.argmax(values))] / shape.theta - 1) < 1e-3
    assert shape.at_bound is None and shape.se > 0


# ---- glm = MASS::glm.nb ----------------------------------------------------------------------


@pytest.mark.parametrize("name", GLM_CASES)
def test_glm_nb_matches_mass(name: str) -> None:
    case, result = STRUCTURES[name], fit(name)
    assert relative(result.params, case["fixef"]) < 1e-6
    assert relative(result.bse, case["se"]) < 1e-6
    assert result.nb_theta == pytest.approx(case["nb_theta"], rel=1e-6)
    # MASS's SE.theta is 1/sqrt(information) at its last Newton iterate but one; glmmteach's at the estimate
    assert result.nb_theta_se == pytest.approx(case["se_theta"], rel=5e-4)
    assert result.llf == pytest.approx(case["loglik"], abs=1e-6)
    assert result.deviance == pytest.approx(case["deviance"], rel=1e-8)
    assert result.df_resid == case["df_residual"]
    assert result.aic == pytest.approx(-2 * case["loglik"] + 2 * (len(case["fixef"]) + 1), abs=1e-5)  # theta counts


@pytest.mark.parametrize("name", ["glm_nb_sqrt_sim1", "glm_nb_identity_sim2", "glm_nb_weights_sim1",
                                  "glm_fixed_theta_sim1"])
def test_glm_other_links_weights_and_known_theta_match_r(name: str) -> None:
    case = EXTRA[name]
    data = load(case["data"])
    weights = 1.0 + np.arange(len(data)) % 3 if "weights" in case else None
    result = glmmteach.glm(case["formula"], data, family="negative_binomial", link=case["link"],
                           theta=case["theta"], weights=weights)
    assert relative(result.params, case["fixef"]) < 1e-5  # R's default glm tolerance here; the reference 1e-12
    assert relative(result.bse, case["se"]) < 1e-5
    assert result.llf == pytest.approx(case["loglik"], abs=1e-6)
    assert result.aic == pytest.approx(case["aic"], abs=1e-5)
    assert result.deviance == pytest.approx(case["deviance"], rel=1e-7)
    assert result.null_deviance == pytest.approx(case["null_deviance"], rel=1e-7)
    if case["theta"] is None:
        assert result.nb_theta == pytest.approx(case["nb_theta"], rel=1e-6)
        assert result.nb_theta_se == pytest.approx(case["se_theta"], rel=5e-4)
    else:  # a known theta: R's summary.glm estimates the dispersion (t tests); theta is not a parameter
        assert result.nb_theta == case["theta"] and result.nb_theta_se is None
        assert result.use_t and result.scale > 1


def test_glm_nb_summary_is_mass_layout() -> None:
    case = EXTRA["summary_glm_nb_sim2"]
    result = glmmteach.glm(case["formula"], load(case["data"]), family="negative_binomial")
    assert "<td>0.577064 (0.05426)</td>" in result._repr_html_()
    text = str(result.summary())
    lines = text.splitlines()
    start = lines.index(case["printed"][0])
    assert lines[start:start + len(case["printed"])] == case["printed"]
    assert "glm.nb(formula = y ~ x + offset(logexpo), data = data, init.theta = 0.577064" in text


# ---- glmer = lme4::glmer.nb -----------------------------------------------------------------


@pytest.mark.parametrize("name", GLMER_CASES)
def test_glmer_nb_matches_lme4(name: str) -> None:
    case, result = STRUCTURES[name], fit(name)
    assert result.llf >= case["loglik"] - 1e-6
    assert result.llf == pytest.approx(case["loglik"], abs=1e-5)
    assert relative(result.params, case["fixef"]) < 1e-5
    assert result.nb_theta == pytest.approx(case["nb_theta"], rel=2e-5)
    assert result.theta[0] == pytest.approx(case["random"]["terms"][0]["sd"], rel=1e-5)
    assert result.nb_theta_se == pytest.approx(case["se_theta"], rel=1e-3)
    if name != "nb_glmer_sim1":  # see the module docstring
        assert relative(result.bse, case["se"]) < 1e-4
    assert result.k_params == len(case["fixef"]) + 2  # lme4's df: beta, the random-effect SD and theta
    assert result.converged and not result.warnings


def test_glmer_nb_standard_errors_are_the_laplace_hessians() -> None:
    """On sim1 (where lme4's own SEs disagree with each other), the SEs are those of the exact Hessian."""
    result = fit("nb_glmer_sim1")
    value = make_devfun(result, tol=1e-14)
    x0 = np.concatenate([result.theta, result.params.to_numpy()])
    h, k = 1e-4, len(x0)
    H = np.empty((k, k))
    for i in range(k):
        for j in range(k):
            ei, ej = np.eye(k)[i] * h, np.eye(k)[j] * h
            H[i, j] = sum(s * value((x0 + a + b)[:1], (x0 + a + b)[1:])
                          for s, a, b in [(1, ei, ej), (-1, ei, -ej), (-1, -ei, ej), (1, -ei, -ej)]) / (4 * h * h)
    np.testing.assert_allclose(result.bse.to_numpy(), np.sqrt(np.diag(np.linalg.inv(-H)))[1:], rtol=1e-5)


def test_glmer_known_theta_matches_lme4() -> None:
    case = EXTRA["glmer_fixed_theta_sim2"]
    result = glmmteach.glmer(case["formula"], load(case["data"]), family="negative_binomial", theta=case["theta"])
    assert relative(result.params, case["fixef"]) < 1e-5
    assert result.llf == pytest.approx(case["loglik"], abs=1e-6)
    assert result.theta[0] == pytest.approx(case["sd"], rel=1e-5)
    # a known theta is not estimated, so AIC does not count it (lme4 counts it anyway: df = 4)
    assert result.nb_theta == case["theta"] and result.nb_theta_se is None and result.k_params == case["df"] - 1


def test_glmer_nb_summary_family_line() -> None:
    case = EXTRA["summary_glmer_nb_sim1"]
    text = str(fit("nb_glmer_sim1").summary())
    assert case["printed"] in text.splitlines()
    assert "Negative binomial shape theta: 1.97253, Std. Err.: 0.2939 (profile likelihood)" in text


# ---- glmer.nb with several random-effects terms (the general engine) ---------------------------


@cache
def fit_multi(name: str):
    case = MULTI[name]
    if case["data"] == "grouseticks":
        data = load_grouseticks()
    else:
        data = pd.read_csv(DATA / "negative_binomial" / case["data"])
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # none of the reference fits warns
        return glmmteach.glmer(case["formula"], data, family="negative_binomial")


@pytest.mark.parametrize("name", MULTI_CASES)
def test_glmer_nb_several_terms_matches_lme4(name: str) -> None:
    case, result = MULTI[name], fit_multi(name)
    assert result.llf >= case["loglik"] - 1e-4
    assert result.llf == pytest.approx(case["loglik"], rel=1e-4)
    assert relative(result.params, case["fixef"]) < 1e-4
    assert result.nb_theta == pytest.approx(case["nb_theta"], rel=1e-4)
    sds = [term["sd"] for term in case["random"]]
    np.testing.assert_allclose(result.sd_re.to_numpy(), sds, rtol=1e-4)
    assert [group for group, _ in result.sd_re.index] == [term["group"] for term in case["random"]]
    np.testing.assert_allclose(result.theta, list(case["theta"].values()), rtol=1e-4, atol=1e-6)  # lme4's theta
    assert result.nb_theta_se == pytest.approx(case["se_theta"], rel=1e-3)
    assert result.k_params == case["glmer_nb"]["df"]  # lme4's df: beta, the random-effect SDs and theta
    assert result.converged and not result.warnings


def test_a_shape_change_shares_the_general_engines_symbolic_analysis() -> None:
    model = fit_multi("nb_nested").model
    other = model.with_family(get_glmm_family("negative_binomial", theta=2.0))
    assert other.pairs is model.pairs and other.perm is model.perm and other.slot_cols is model.slot_cols
    assert other.family.theta == 2.0 and model.family.theta == fit_multi("nb_nested").nb_theta  # a copy
    theta, beta = fit_multi("nb_nested").theta, fit_multi("nb_nested").params.to_numpy()
    assert other.marginal_loglik(theta, beta) < model.marginal_loglik(theta, beta)


def test_glmer_nb_several_terms_summary_shows_the_shape_and_its_se() -> None:
    result = fit_multi("nb_grouseticks")
    lines = str(result.summary()).splitlines()
    assert f" Family: Negative Binomial({result.nb_theta:.5g})  ( log )" in lines
    shape = [line for line in lines if line.startswith("Negative binomial shape theta:")]
    assert shape == [f"Negative binomial shape theta: {result.nb_theta:.6g}, Std. Err.: {result.nb_theta_se:.4g} "
                     "(profile likelihood)"]


def test_glmer_nb_several_terms_simulate_and_predict() -> None:
    result = fit_multi("nb_crossed")
    mu = result.fittedvalues.to_numpy()
    data = pd.read_csv(DATA / "negative_binomial" / MULTI["nb_crossed"]["data"])
    np.testing.assert_allclose(result.predict(data, type="response").to_numpy(), mu, rtol=1e-12)
    np.testing.assert_allclose(result.predict(type="response").to_numpy(), mu, rtol=1e-12)
    # with the modes held, each row is NB2 around its fitted mean: E[(y - mu)^2 - y] = mu^2 / theta
    draws = result.simulate(400, seed=3, use_u=True).to_numpy()
    assert np.all(draws == np.round(draws)) and draws.min() >= 0
    excess = (((draws - mu[:, None]) ** 2 - draws).mean(axis=1)).sum() / (mu**2).sum()
    assert excess == pytest.approx(1 / result.nb_theta, rel=0.08)  # seeds 0-4: within 4 %
    refit = result.refit(result.simulate(1, seed=4)["sim_1"])
    assert refit.nb_shape is not None and np.isfinite(refit.nb_theta_se) and len(refit.terms) == 2


def test_multi_term_data_files_are_what_the_script_writes() -> None:
    spec = importlib.util.spec_from_file_location("make_multi_data", DATA / "negative_binomial" / "make_multi_data.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    for file, make in module.DATASETS.items():
        stored = pd.read_csv(DATA / "negative_binomial" / file)
        pd.testing.assert_frame_equal(make().reset_index(drop=True), stored, check_dtype=False)


# ---- no overdispersion, bad input --------------------------------------------------------------


@cache
def underdispersed() -> pd.DataFrame:
    """Binomial(10, p) counts: less variable than Poisson, so the NB likelihood rises as theta -> infinity."""
    rng = np.random.default_rng(5)
    x = rng.normal(size=400)
    return pd.DataFrame({"y": rng.binomial(10, special.expit(-1 + 0.3 * x)), "x": x, "g": np.repeat(np.arange(50), 8)})


def test_no_overdispersion_glm_is_the_poisson_limit_with_a_clear_warning() -> None:
    data = underdispersed()
    expected = "upper bound .* no overdispersion relative to the Poisson GLM"
    with pytest.warns(ConvergenceWarning, match=expected) as record:
        result = glmmteach.glm("y ~ x", data, family="negative_binomial")
    assert record[0].filename == __file__  # the warning points at the user's line
    poisson = glmmteach.glm("y ~ x", data, family="poisson")
    assert result.nb_theta == THETA_MAX and np.isnan(result.nb_theta_se) and result.nb_shape.at_bound == "upper"
    np.testing.assert_allclose(result.params, poisson.params, rtol=1e-4)
    assert result.llf == pytest.approx(poisson.llf, abs=1e-3)
    assert "Warning while fitting theta: the negative binomial shape theta is at its upper bound" in str(
        result.summary())


def test_no_overdispersion_glmer_is_the_poisson_limit_with_a_clear_warning() -> None:
    data = underdispersed()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = glmmteach.glmer("y ~ x + (1 | g)", data, family="negative_binomial")
        poisson = glmmteach.glmer("y ~ x + (1 | g)", data, family="poisson")  # singular, as lme4's
    texts = [str(w.message) for w in caught]
    assert any("theta = inf" in t and "no overdispersion relative to the Poisson GLMM" in t
               and "The Poisson GLMM is the fit" in t for t in texts)
    assert {w.filename for w in caught} == {__file__}
    # the supremum is the Poisson limit (issue 15): theta = inf and the fit is the Poisson GLMM itself
    assert result.nb_shape.at_bound == "upper" and result.nb_theta == np.inf and np.isnan(result.nb_theta_se)
    assert result.family.name == "poisson" and result.llf == poisson.llf and result.converged
    pd.testing.assert_series_equal(result.params, poisson.params)
    assert result.k_params == poisson.k_params + 1  # the shape was estimated (lme4's df for glmer.nb)
    lines = str(result.summary()).splitlines()
    assert "Negative binomial shape theta: Inf, Std. Err.: NA (profile likelihood)" in lines
    assert any(line.startswith("Warning while fitting theta: the negative binomial shape theta is infinite")
               for line in lines)


@pytest.mark.parametrize("fitter", ["glm", "glmer"])
def test_all_zero_counts_are_refused(fitter: str) -> None:
    data = underdispersed().assign(y=0)
    formula = "y ~ x" if fitter == "glm" else "y ~ x + (1 | g)"
    with pytest.raises(DataError, match=r"0\)? in every row"):
        getattr(glmmteach, fitter)(formula, data, family="negative_binomial")


@pytest.mark.parametrize("fitter", ["glm", "glmer"])
@pytest.mark.parametrize("value, message", [(-1.0, "negative count -1.0"),
                                            (2.5, "must be whole counts; it has value 2.5")])
def test_bad_counts_are_refused_as_for_poisson(fitter: str, value: float, message: str) -> None:
    data = underdispersed().astype({"y": float})
    data.loc[3, "y"] = value
    formula = "y ~ x" if fitter == "glm" else "y ~ x + (1 | g)"
    with pytest.raises(DataError, match=message):
        getattr(glmmteach, fitter)(formula, data, family="negative_binomial")


@pytest.mark.r
@pytest.mark.slow
def test_make_reference_script_reproduces_reference(tmp_path: Path) -> None:
    """Re-running tests/data/negative_binomial/make_reference.R reproduces its reference.json."""
    skip_without_r("library(lme4); library(MASS); library(jsonlite)")
    out = tmp_path / "reference.json"
    root = Path(__file__).parent.parent
    run = subprocess.run(["Rscript", str(DATA / "negative_binomial" / "make_reference.R"), str(out)], cwd=root,
                         capture_output=True, text=True, check=False, timeout=300)
    assert run.returncode == 0, run.stderr
    fresh = json.loads(out.read_text())["cases"]
    assert fresh.keys() == EXTRA.keys()
    for name, case in EXTRA.items():
        for key in ("loglik", "nb_theta", "printed"):
            if key in case:
                assert fresh[name][key] == pytest.approx(case[key], rel=1e-8) if key != "printed" else (
                    fresh[name][key] == case[key]), f"{name}: {key}"


@pytest.mark.r
@pytest.mark.slow
def test_make_multi_reference_script_reproduces_reference(tmp_path: Path) -> None:
    """Re-running tests/data/negative_binomial/make_multi_reference.R reproduces multi_reference.json."""
    if shutil.which("Rscript") is None:
        pytest.skip("Rscript is not installed")
    out = tmp_path / "multi_reference.json"
    run = subprocess.run(["Rscript", str(DATA / "negative_binomial" / "make_multi_reference.R"), str(out)],
                         cwd=Path(__file__).parent.parent, capture_output=True, text=True, check=False, timeout=600)
    assert run.returncode == 0, run.stderr
    fresh = json.loads(out.read_text())["cases"]
    assert fresh.keys() == MULTI.keys()
    for name, case in MULTI.items():
        for key in ("loglik", "nb_theta", "se_theta"):
            assert fresh[name][key] == pytest.approx(case[key], rel=1e-8), f"{name}: {key}"
