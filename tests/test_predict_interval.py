"""fit.predict(..., interval="confidence") against R (tests/data/predict_interval/make_reference.R).

The delta-method arithmetic is checked on R's coefficients and covariance (to 1e-8); glmmteach's own fits
reproduce R's glm to 1e-6, and the GLMMs as closely as their covariances agree (lme4's is a
finite-difference Hessian). Population-averaged intervals are checked against direct integration.
Intervals given the random effects are checked against the joint covariance of (beta, u) built here from the
data with NumPy (the penalised log-likelihood's Hessian, itself checked by central differences of its
gradient), and the bootstrap ones against glmmteach.bootstrap with the same statistic and seed.
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

from glmmteach import GlmmteachError, bootstrap, datasets, glm, glmer
from glmmteach.exceptions import DataError
from glmmteach.intervals import predict_interval
from glmmteach.predict import population_average_mean

REFERENCE = Path(__file__).parent / "data" / "predict_interval" / "reference.json"
COLUMNS = ["fit", "se_fit", "lower", "upper"]


@cache
def reference() -> dict:
    return json.loads(REFERENCE.read_text())["cases"]


@cache
def fitted(case: str) -> Any:
    stored = reference()[case]
    data = datasets.load_ohio_cancer() if case.startswith("ohio") else datasets.load_crossover()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if case.endswith("_glm"):
            return glm(stored["formula"], data, stored["family"])
        return glmer(stored["formula"], data, "poisson" if case == "ohio" else "binomial")


class WithCoefficients:
    """A fit with R's coefficients and covariance in place of its own."""

    def __init__(self, fit: Any, stored: dict):
        names = list(stored["beta"])
        assert list(fit.params.index) == names
        self._fit = fit
        self.params = pd.Series(stored["beta"], dtype=float)[names]
        self._cov = pd.DataFrame(np.array(stored["vcov"], dtype=float), index=names, columns=names)

    def cov_params(self) -> pd.DataFrame:
        return self._cov

    def __getattr__(self, name: str) -> Any:
        return getattr(self._fit, name)


def newdata(case: str) -> pd.DataFrame:
    return pd.DataFrame(reference()[case]["newdata"])


def population_level(case: str) -> dict:
    return {} if case.endswith("_glm") else {"re_form": []}


@pytest.mark.parametrize("case", ["ohio", "crossover", "crossover_glm", "ohio_quasipoisson_glm"])
@pytest.mark.parametrize("scale", ["link", "response"])
def test_delta_method_intervals_equal_r_on_r_coefficients(case: str, scale: str) -> None:
    proxy = WithCoefficients(fitted(case), reference()[case])
    table = predict_interval(proxy, newdata(case), scale, **population_level(case))
    expected = pd.DataFrame(reference()[case][scale])
    np.testing.assert_allclose(table[COLUMNS].to_numpy(), expected[COLUMNS].to_numpy(), rtol=1e-8)


# the quasi-Poisson dispersion: glmmteach's is the Pearson statistic at the final means, R's summary.glm takes the
# working weights of the last step's start (1.5498690 against 1.5499060 here), so R's SEs are 1.2e-5 larger
@pytest.mark.parametrize(("case", "rtol"), [("crossover_glm", 1e-6), ("ohio_quasipoisson_glm", 2e-5), ("ohio", 1e-4)])
def test_own_fit_intervals_match_r(case: str, rtol: float) -> None:
    fit = fitted(case)
    table = fit.predict(newdata(case), type="response", interval="confidence", **population_level(case))
    expected = pd.DataFrame(reference()[case]["response"])
    np.testing.assert_allclose(table[COLUMNS].to_numpy(), expected[COLUMNS].to_numpy(), rtol=rtol)
    plain = fit.predict(newdata(case), type="response", **population_level(case))
    np.testing.assert_allclose(table["fit"], plain, rtol=1e-14)


def test_population_averaged_interval_is_the_averaged_mean_at_the_ends() -> None:
    fit = fitted("crossover")
    new = newdata("crossover")
    table = fit.predict(new, type="response", conditional=False, interval="confidence")
    np.testing.assert_allclose(table["fit"], fit.predict(new, type="response", conditional=False), rtol=1e-14)
    link = fit.predict(new, re_form=[], interval="confidence")
    variance = float(fit.cov_re.to_numpy()[0, 0])
    np.testing.assert_allclose(table["lower"], population_average_mean(link["lower"].to_numpy(), variance, "logit"),
                               rtol=1e-12)
    # its SE is the derivative of the averaged mean times the link SE (central differences, h = 1e-5)
    h = 1e-5
    eta = link["fit"].to_numpy()
    up, down = population_average_mean(eta + h, variance, "logit"), population_average_mean(eta - h, variance, "logit")
    slope = (up - down) / (2 * h)
    np.testing.assert_allclose(table["se_fit"], slope * link["se_fit"], rtol=1e-6)


def test_bad_interval_options_are_named() -> None:
    with pytest.raises(GlmmteachError, match="interval must be 'confidence'"):
        fitted("crossover_glm").predict(newdata("crossover_glm"), interval="prediction")
    with pytest.raises(GlmmteachError, match="method must be one of 'delta', 'boot'"):
        fitted("crossover").predict(newdata("crossover"), re_form=[], interval="confidence", method="wald")
    with pytest.raises(GlmmteachError, match="n_jobs apply to method='boot' only"):
        fitted("crossover").predict(newdata("crossover"), re_form=[], interval="confidence", n_jobs=2)
    with pytest.raises(DataError, match="'county'"):  # the level checks of predict itself
        fitted("ohio").predict(newdata("ohio").assign(county=999), interval="confidence")
    with pytest.raises(GlmmteachError, match="re_form names 'school'"):
        fitted("ohio").predict(newdata("ohio").assign(county=1), re_form=["school"], interval="confidence")


# ---- given the random effects: the joint covariance of (beta, u), built here from the data -------------------
CROSSED = Path(__file__).parent / "data" / "lme4_structures" / "crossed_poisson.csv"


@cache
def crossed_fit() -> Any:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return glmer("y ~ x + (1 | a) + (1 | b)", pd.read_csv(CROSSED), "poisson")


def intercept_sd(fit: Any, name: str) -> float:
    return float(fit.sd_re.iloc[0] if len(fit.terms) == 1 else fit.sd_re[(name, "(Intercept)")])


def intercept_columns(fit: Any, frame: pd.DataFrame, factors: list[str]) -> np.ndarray:
    """:math:`A = Z\\Lambda` of random intercepts: a block of columns per factor, one per level (sorted, as
    the fit orders them), holding the factor's SD in each row's own level."""
    blocks = [intercept_sd(fit, name) * (frame[name].to_numpy()[:, None] == np.unique(frame[name])[None, :])
              for name in factors]
    return np.hstack(blocks).astype(float)


def joint_system(fit: Any, frame: pd.DataFrame, X: np.ndarray, factors: list[str], family: str):
    """The penalised log-likelihood's gradient and negative Hessian in (beta, u) at (beta-hat, u-tilde)."""
    A = intercept_columns(fit, frame, factors)
    modes = [fit.ranef if len(fit.terms) == 1 else fit.ranef[name] for name in factors]
    u = np.concatenate([m["(Intercept)"].to_numpy() / intercept_sd(fit, name) for m, name in zip(modes, factors,
                                                                                                  strict=True)])
    C = np.hstack([X, A])
    p, y = X.shape[1], frame["y" if family == "poisson" else "outcome"].to_numpy(dtype=float)

    def mean(x: np.ndarray) -> np.ndarray:
        eta = C @ x
        return np.exp(eta) if family == "poisson" else 1 / (1 + np.exp(-eta))

    def gradient(x: np.ndarray) -> np.ndarray:
        return C.T @ (y - mean(x)) - np.concatenate([np.zeros(p), x[p:]])

    x0 = np.concatenate([fit.params.to_numpy(), u])
    mu = mean(x0)
    weights = mu if family == "poisson" else mu * (1 - mu)
    information = C.T @ (weights[:, None] * C) + np.diag(np.r_[np.zeros(p), np.ones(A.shape[1])])
    return x0, gradient, information, A


@pytest.mark.parametrize("case", ["crossover", "crossed"])
def test_the_test_s_hessian_is_the_penalised_log_likelihood_s(case: str) -> None:
    fit, frame, X, factors, family = conditional_case(case)
    x0, gradient, information, _ = joint_system(fit, frame, X, factors, family)
    p = X.shape[1]
    assert np.max(np.abs(gradient(x0)[p:])) < 1e-6  # u-tilde is the mode given beta-hat
    h = 1e-5
    steps = np.eye(len(x0)) * h
    differences = np.column_stack([(gradient(x0 + e) - gradient(x0 - e)) / (2 * h) for e in steps])
    np.testing.assert_allclose(-differences, information, rtol=1e-6, atol=1e-6 * np.abs(information).max())


def conditional_case(case: str) -> tuple[Any, pd.DataFrame, np.ndarray, list[str], str]:
    if case == "crossover":
        frame = datasets.load_crossover()[["outcome", "trt", "period", "ID"]]
        X = np.column_stack([np.ones(len(frame)), frame.trt, frame.period, frame.trt * frame.period])
        return fitted("crossover"), frame, X, ["ID"], "binomial"
    frame = pd.read_csv(CROSSED)
    return crossed_fit(), frame, np.column_stack([np.ones(len(frame)), frame.x]), ["a", "b"], "poisson"


@pytest.mark.parametrize("case", ["crossover", "crossed"])
def test_conditional_intervals_are_the_joint_covariance_s(case: str) -> None:
    fit, frame, X, factors, family = conditional_case(case)
    x0, _, information, A = joint_system(fit, frame, X, factors, family)
    covariance = np.linalg.inv(information)
    C = np.hstack([X, A])
    expected = np.sqrt(np.einsum("ij,jk,ik->i", C, covariance, C))
    rows = frame.iloc[::7]
    table = fit.predict(rows, interval="confidence")
    np.testing.assert_allclose(table["fit"], C[::7] @ x0, rtol=1e-9)
    np.testing.assert_allclose(table["se_fit"], expected[::7], rtol=1e-7)
    # the fitted rows (newdata=None) are the same computation
    np.testing.assert_allclose(fit.predict(interval="confidence")["se_fit"], expected, rtol=1e-7)
    # response scale: the link interval's ends transformed, the SE by the derivative of the inverse link
    response = fit.predict(rows, type="response", interval="confidence")
    link = fit.family.link
    np.testing.assert_allclose(response["lower"], link.linkinv(table["lower"].to_numpy()), rtol=1e-12)
    np.testing.assert_allclose(response["se_fit"], link.mu_eta(table["fit"].to_numpy()) * table["se_fit"],
                               rtol=1e-12)


def test_re_form_conditions_on_the_chosen_terms_only() -> None:
    fit, frame, X, factors, family = conditional_case("crossed")
    _, _, information, A = joint_system(fit, frame, X, factors, family)
    covariance = np.linalg.inv(information)
    n_a = frame["a"].nunique()
    C = np.hstack([X, A[:, :n_a], np.zeros_like(A[:, n_a:])])  # the b effects are left out
    expected = np.sqrt(np.einsum("ij,jk,ik->i", C, covariance, C))
    np.testing.assert_allclose(fit.predict(frame, re_form=["a"], interval="confidence")["se_fit"], expected,
                               rtol=1e-7)


def test_a_new_level_has_the_random_effect_zero_and_the_fixed_effects_uncertainty() -> None:
    fit, frame, X, factors, family = conditional_case("crossover")
    _, _, information, _ = joint_system(fit, frame, X, factors, family)
    V_beta = np.linalg.inv(information)[:4, :4]  # the fixed-effects block of the joint inverse (theta held)
    rows = pd.DataFrame({"trt": [0, 1], "period": [1, 0], "ID": ["new", frame.ID.iloc[0]]})
    table = fit.predict(rows, interval="confidence", allow_new_levels=True)
    x = np.array([1.0, 0.0, 1.0, 0.0])
    assert table["fit"].iloc[0] == pytest.approx(x @ fit.params.to_numpy(), rel=1e-12)
    assert table["se_fit"].iloc[0] == pytest.approx(np.sqrt(x @ V_beta @ x), rel=1e-7)
    seen = fit.predict(rows.iloc[1:], interval="confidence")
    pd.testing.assert_frame_equal(table.iloc[1:], seen)
    with pytest.raises(DataError, match="allow_new_levels=True"):
        fit.predict(rows, interval="confidence")


def test_given_beta_the_random_part_is_lme4s_condvar() -> None:
    fit, frame, X, factors, family = conditional_case("crossed")
    _, _, information, A = joint_system(fit, frame, X, factors, family)
    p, n_a = X.shape[1], frame["a"].nunique()
    given_beta = np.linalg.inv(information[p:, p:])  # H^{-1}: the u block with beta known
    np.testing.assert_allclose(intercept_sd(fit, "a")**2 * np.diag(given_beta)[:n_a],
                               fit.ranef_cov["a"].to_numpy().ravel(), rtol=1e-7)


# ---- the bootstrap --------------------------------------------------------------------------------------
class CrossoverPrediction:
    def __init__(self, rows: pd.DataFrame):
        self.rows = rows

    def __call__(self, refit: Any) -> np.ndarray:
        return refit.predict(self.rows, type="response").to_numpy()


def test_bootstrap_intervals_are_the_bootstrap_of_the_prediction() -> None:
    fit = fitted("crossover")
    rows = datasets.load_crossover().iloc[[0, 1, 2]]
    table = fit.predict(rows, type="response", interval="confidence", method="boot", nsim=8, seed=5)
    direct = bootstrap(fit, CrossoverPrediction(rows), nsim=8, seed=5)
    np.testing.assert_array_equal(table["fit"], fit.predict(rows, type="response"))
    np.testing.assert_array_equal(table[["lower", "upper"]].to_numpy(), direct.conf_int().to_numpy())
    np.testing.assert_array_equal(table["se_fit"], direct.replicates.std(ddof=1))
    assert table.attrs["n_replicates"] + table.attrs["n_failed"] == 8
    assert len(table.attrs["failures"]) == table.attrs["n_failed"]
    basic = fit.predict(rows, type="response", interval="confidence", method="boot", nsim=8, seed=5,
                        boot_type="basic", level=0.9)
    np.testing.assert_array_equal(basic[["lower", "upper"]].to_numpy(),
                                  direct.conf_int("basic", alpha=0.1).to_numpy())


@pytest.mark.slow
def test_bootstrap_intervals_are_the_same_on_local_processes() -> None:
    fit = fitted("crossover")
    rows = newdata("crossover")
    one = fit.predict(rows, re_form=[], interval="confidence", method="boot", nsim=24, seed=2)
    two = fit.predict(rows, re_form=[], interval="confidence", method="boot", nsim=24, seed=2, n_jobs=2)
    pd.testing.assert_frame_equal(one, two)
