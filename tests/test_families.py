"""One family object for GLM and GLMM: the same values wherever both use a quantity, and clear errors.

R's ``family()`` serves ``glm`` and ``glmer``; :class:`glmmteach.families.Family` serves
:func:`glmmteach.glm` and :func:`glmmteach.glmer`. These tests evaluate both fitters' quantities at
extreme linear predictors (η = ±40, where clipping conventions used to differ) and check the
errors for families and links a GLMM cannot fit.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
from scipy import special

from glmmteach import glm, glmer
from glmmteach.exceptions import FamilyError
from glmmteach.families import get_family, get_glmm_family
from glmmteach.predict import conditional_mean, population_average_mean

GLMM_FAMILIES = [("binomial", "logit"), ("binomial", "probit"), ("binomial", "cloglog"), ("poisson", "log")]
EXTREME_ETA = np.array([-40.0, -35.0, -30.5, -8.5, 0.0, 8.5, 30.5, 35.0, 40.0])


def small_data(family: str, seed: int = 3) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    g = np.repeat(np.arange(12), 6)
    x = rng.normal(size=len(g))
    eta = -0.3 + 0.6 * x + rng.normal(scale=0.8, size=12)[g]
    y = rng.binomial(1, special.expit(eta)) if family == "binomial" else rng.poisson(np.exp(eta))
    return pd.DataFrame({"y": y, "x": x, "g": g})


@pytest.fixture(scope="module", params=GLMM_FAMILIES, ids=lambda p: f"{p[0]}-{p[1]}")
def glm_and_glmm(request):
    family, link = request.param
    data = small_data(family)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return (glm("y ~ x", data, family=family, link=link),
                glmer("y ~ x + (1 | g)", data, family=family, link=link), data)


def test_glm_and_glmm_share_one_family(glm_and_glmm) -> None:
    glm_fit, glmm_fit, _ = glm_and_glmm
    assert glm_fit.family == glmm_fit.family
    assert glmm_fit._data.family is glmm_fit.family  # the engine evaluates the fit's own family


def test_means_agree_at_extreme_eta(glm_and_glmm) -> None:
    """At η = ±40 both fitters' predictions are R's clamped inverse link, bit for bit."""
    glm_fit, glmm_fit, data = glm_and_glmm
    # new rows whose linear predictor is exactly EXTREME_ETA: x solves beta0 + beta1 x = eta
    rows_glm = pd.DataFrame({"x": (EXTREME_ETA - glm_fit.params.iloc[0]) / glm_fit.params.iloc[1]})
    eta_glm = glm_fit.predict(rows_glm, type="link").to_numpy()
    mean_glm = glm_fit.predict(rows_glm, type="response").to_numpy()
    rows_glmm = pd.DataFrame({"x": (EXTREME_ETA - glmm_fit.params.iloc[0]) / glmm_fit.params.iloc[1],
                              "g": data.g.iloc[0]})
    eta_glmm = glmm_fit.predict(rows_glmm, type="link", conditional=False).to_numpy()
    np.testing.assert_allclose(eta_glm, EXTREME_ETA, atol=1e-9)
    np.testing.assert_allclose(eta_glmm, EXTREME_ETA, atol=1e-9)
    family = glm_fit.family
    np.testing.assert_array_equal(mean_glm, family.linkinv(eta_glm))
    # conditional predictions of the GLMM use the same inverse link at its own linear predictor
    conditional = glmm_fit.predict(rows_glmm, type="response").to_numpy()
    eta_conditional = glmm_fit.predict(rows_glmm, type="link").to_numpy()
    np.testing.assert_array_equal(conditional, family.linkinv(eta_conditional))
    # population averages with no random-effect variance reduce to the same inverse link (up to the
    # rounding of the Gauss-Hermite weights' sum)
    np.testing.assert_allclose(population_average_mean(eta_glm, 0.0, glmm_fit.family), family.linkinv(eta_glm),
                               rtol=1e-14)
    np.testing.assert_array_equal(conditional_mean(eta_glm, glmm_fit.family), family.linkinv(eta_glm))


def test_r_clamps_at_extreme_eta() -> None:
    """R: binomial()$linkinv(-40) is .Machine$double.eps; poisson()$linkinv(-800) too."""
    eps = np.finfo(float).eps
    assert get_family("binomial").linkinv(np.array([-40.0]))[0] == eps
    assert get_family("binomial").linkinv(np.array([40.0]))[0] == 1 / (1 + eps)
    assert get_family("poisson").linkinv(np.array([-800.0]))[0] == eps
    assert get_family("binomial", "probit").linkinv(np.array([-40.0]))[0] == pytest.approx(eps, rel=1e-3)


@pytest.mark.parametrize(("family", "link"), GLMM_FAMILIES)
def test_eta_scale_loglik_is_the_mean_scale_loglik_where_mu_is_not_clamped(family: str, link: str) -> None:
    """The GLMM's log-likelihood in η plus its constant is the GLM's log-likelihood at μ = g⁻¹(η)."""
    fam = get_glmm_family(family, link)
    eta = np.linspace(-6.0, 2.0, 10)  # beyond, log(1 - mu) of the mean scale loses digits to cancellation
    weights = np.full(10, 7.0) if family == "binomial" else np.ones(10)
    y = np.arange(10) % 8 / 7.0 if family == "binomial" else np.arange(10.0)
    via_eta = fam.loglik_eta(eta, y, weights) + fam.log_constant(y, weights)
    np.testing.assert_allclose(via_eta, fam.loglik(y, fam.linkinv(eta), weights), rtol=1e-12)


@pytest.mark.parametrize(("link", "eta", "y", "expected"), [
    # exact values of the Bernoulli/Poisson log-likelihood far beyond R's mean clamp
    ("logit", -40.0, 1.0, -40.0 - np.log1p(np.exp(-40.0))),
    ("logit", -40.0, 0.0, -np.log1p(np.exp(-40.0))),
    ("logit", 40.0, 0.0, -40.0 - np.log1p(np.exp(-40.0))),
    ("probit", -30.0, 1.0, float(special.log_ndtr(-30.0))),
    ("cloglog", -40.0, 1.0, float(np.log(-np.expm1(-np.exp(-40.0))))),
])
def test_eta_scale_loglik_is_exact_at_extreme_eta(link: str, eta: float, y: float, expected: float) -> None:
    """The GLMM integrates over random effects that reach |η| = 40: its log-likelihood there is
    computed in log space, not from the clamped mean (log(eps) = -36.04 would be wrong by 4 units)."""
    fam = get_glmm_family("binomial", link)
    value = fam.loglik_eta(np.array([eta]), np.array([y]))[0]
    assert value == pytest.approx(expected, rel=1e-12)
    values = fam.eta_values(np.array([eta]), np.array([y]))
    assert np.isfinite(values.score[0]) and np.isfinite(values.neg_hessian[0]) and values.fisher[0] >= 0


@pytest.mark.parametrize(("family", "link", "message"), [
    ("binomial", "log", "link 'log' is not available for the binomial family in a GLMM"),
    ("poisson", "identity", "link 'identity' is not available for the poisson family in a GLMM"),
    ("gaussian", None, "family 'gaussian' is not available for GLMMs"),
    ("quasibinomial", None, "family 'quasibinomial' is not available for GLMMs"),
    ("binomail", None, "unknown family 'binomail'"),
    ("binomial", "loglog", "link 'loglog' is not available for the binomial family"),
])
def test_glmer_refuses_a_family_or_link_it_cannot_fit(family: str, link: str | None, message: str) -> None:
    data = small_data("binomial")
    with pytest.raises(FamilyError, match=message):
        glmer("y ~ x + (1 | g)", data, family=family, link=link)


def test_glm_still_fits_the_binomial_log_link() -> None:
    """R's glm allows binomial(link = "log"); only the GLMM refuses it. R 4.2:
    glm(y ~ x, binomial(link = "log")) gives -1.865206608123726, 0.692205741836799, logLik -6.63263028046253."""
    data = pd.DataFrame({"y": [0, 0, 1, 0, 0, 0, 0, 1, 0, 0, 1, 0], "x": np.arange(1, 13) / 10})
    fit = glm("y ~ x", data, family="binomial", link="log")
    np.testing.assert_allclose(fit.params.to_numpy(), [-1.865206608123726, 0.692205741836799], rtol=1e-9)
    assert fit.llf == pytest.approx(-6.63263028046253, abs=1e-11)


def test_prediction_helpers_name_an_unknown_link() -> None:
    with pytest.raises(FamilyError, match="unknown link 'logt'"):
        conditional_mean(np.zeros(2), "logt")
