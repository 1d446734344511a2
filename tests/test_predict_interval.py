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
    with pytest.raises(GlmmteachError, match="pass interval='confidence'"):
        fitted("crossover").predict(newdata("crossover"), method="boot")
    with pytest.raises(GlmmteachError, match="n_jobs apply to method='boot' only"):
        fitted("crossover").predict(newdata("crossover"), re_form=[], interval="confidence", n_jobs=2)
    with pytest.raises(DataError, match="'county'"):  # the level checks of predict itself
        fitted("ohio").predict(newdata("ohio").assign(county=999), interval="confidence")
    with pytest.raises(GlmmteachError, match="re_form names 'school'"):
        fitted("ohio").predict(newdata("ohio").assign(county=1), re_form=["school"], interval="confidence")


# ---- given the random effects: the joint covariance of (beta, u), built here from the data -------------------
CROSSED = Path(__file__).parent / "data" / "lme4_structures" / "crossed_poisson.csv"
CROSSED_SLOPE = CROSSED.with_name("crossed_slope.csv")


@cache
def crossed_fit() -> Any:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return glmer("y ~ x + (1 | a) + (1 | b)", pd.read_csv(CROSSED), "poisson")


def random_columns(fit: Any, frame: pd.DataFrame, terms: list[tuple[str, list[str]]]):
    """:math:`A = Z\\Lambda` built from the data (a block of columns per term, r per level, levels sorted as the
    fit orders them, :math:`z_j^\\top T` in row j's own level) and the spherical modes :math:`u = T^{-1}b`."""
    blocks, modes = [], []
    for k, (name, covariates) in enumerate(terms):
        Z = np.column_stack([np.ones(len(frame)) if c == "1" else frame[c].to_numpy(float) for c in covariates])
        T = fit.Ts[k]
        member = frame[name].to_numpy()[:, None] == np.unique(frame[name])[None, :]
        blocks.append((member[:, :, None] * (Z @ T)[:, None, :]).reshape(len(frame), -1))
        ranef = fit.ranef if len(fit.terms) == 1 else fit.ranef[name]
        modes.append((ranef[fit.terms[k].names].to_numpy() @ np.linalg.inv(T).T).ravel())
    return np.hstack(blocks), np.concatenate(modes)


def joint_system(case: str):
    """The penalised log-likelihood's gradient and negative Hessian in (beta, u) at (beta-hat, u-tilde)."""
    fit, frame, X, terms, family, offset = conditional_case(case)
    A, u = random_columns(fit, frame, terms)
    C = np.hstack([X, A])
    p, y = X.shape[1], frame["y" if family == "poisson" else "outcome"].to_numpy(dtype=float)

    def mean(x: np.ndarray) -> np.ndarray:
        eta = C @ x + offset
        return np.exp(eta) if family == "poisson" else 1 / (1 + np.exp(-eta))

    def gradient(x: np.ndarray) -> np.ndarray:
        return C.T @ (y - mean(x)) - np.concatenate([np.zeros(p), x[p:]])

    x0 = np.concatenate([fit.params.to_numpy(), u])
    mu = mean(x0)
    weights = mu if family == "poisson" else mu * (1 - mu)
    information = C.T @ (weights[:, None] * C) + np.diag(np.r_[np.zeros(p), np.ones(A.shape[1])])
    return x0, gradient, information, C


def conditional_case(case: str) -> tuple[Any, pd.DataFrame, np.ndarray, list, str, Any]:
    """The fit, its data, X built by hand, its random-effects terms (factor, covariates), family, offset."""
    if case == "crossover":
        frame = datasets.load_crossover()[["outcome", "trt", "period", "ID"]]
        X = np.column_stack([np.ones(len(frame)), frame.trt, frame.period, frame.trt * frame.period])
        return fitted("crossover"), frame, X, [("ID", ["1"])], "binomial", 0.0
    if case == "pois_slope":  # one correlated term with two effects: the grouped engine's r = 2
        path = Path(__file__).parent / "data" / "lme4_features" / "pois_slope.csv"
        frame, fit = pd.read_csv(path), quiet_glmer("y ~ x + offset(logexpo) + (1 + x | g)", path)
        return fit, frame, np.column_stack([np.ones(len(frame)), frame.x]), [("g", ["1", "x"])], "poisson", \
            frame.logexpo.to_numpy()
    frame = pd.read_csv(CROSSED if case == "crossed" else CROSSED_SLOPE)
    X = np.column_stack([np.ones(len(frame)), frame.x])
    if case == "crossed":
        return crossed_fit(), frame, X, [("a", ["1"]), ("b", ["1"])], "poisson", 0.0
    fit = quiet_glmer("y ~ x + (1 + x | a) + (1 | b)", CROSSED_SLOPE)
    return fit, frame, X, [("a", ["1", "x"]), ("b", ["1"])], "poisson", 0.0


@cache
def quiet_glmer(formula: str, path: Path) -> Any:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return glmer(formula, pd.read_csv(path), "poisson")


CASES = ["crossover", "pois_slope", "crossed", "crossed_slope"]


@pytest.mark.parametrize("case", CASES)
def test_the_test_s_hessian_is_the_penalised_log_likelihood_s(case: str) -> None:
    x0, gradient, information, _ = joint_system(case)
    p = len(conditional_case(case)[0].params)
    assert np.max(np.abs(gradient(x0)[p:])) < 1e-6  # u-tilde is the mode given beta-hat
    h = 1e-5
    steps = np.eye(len(x0)) * h
    differences = np.column_stack([(gradient(x0 + e) - gradient(x0 - e)) / (2 * h) for e in steps])
    np.testing.assert_allclose(-differences, information, rtol=1e-6, atol=1e-6 * np.abs(information).max())


@pytest.mark.parametrize("case", CASES)
def test_conditional_intervals_are_the_joint_covariance_s(case: str) -> None:
    fit, frame, _, _, _, offset = conditional_case(case)
    x0, _, information, C = joint_system(case)
    covariance = np.linalg.inv(information)
    expected = np.sqrt(np.einsum("ij,jk,ik->i", C, covariance, C))
    rows = frame.iloc[::7]
    table = fit.predict(rows, interval="confidence")
    np.testing.assert_allclose(table["fit"], (C @ x0 + offset)[::7], rtol=1e-9)
    np.testing.assert_allclose(table["se_fit"], expected[::7], rtol=1e-7)
    # the fitted rows (newdata=None) are the same computation
    np.testing.assert_allclose(fit.predict(interval="confidence")["se_fit"], expected, rtol=1e-7)
    # response scale: the link interval's ends transformed, the SE by the derivative of the inverse link
    response = fit.predict(rows, type="response", interval="confidence")
    link = fit.family.link
    np.testing.assert_allclose(response["lower"], link.linkinv(table["lower"].to_numpy()), rtol=1e-12)
    np.testing.assert_allclose(response["se_fit"], link.mu_eta(table["fit"].to_numpy()) * table["se_fit"],
                               rtol=1e-12)


@pytest.mark.parametrize("case", ["crossover", "crossed_slope"])
def test_beta_cov_fit_carries_the_fits_covariance_through_the_modes(case: str) -> None:
    fit, frame, X, _, _, _ = conditional_case(case)
    _, _, information, C = joint_system(case)
    p = X.shape[1]
    K = np.linalg.solve(information[p:, p:], information[p:, :p])  # the modes' shift per unit of beta
    d = X - C[:, p:] @ K
    given_beta = np.linalg.inv(information[p:, p:])
    variance = np.einsum("ij,jk,ik->i", d, fit.cov_params().to_numpy(), d) + np.einsum(
        "ij,jk,ik->i", C[:, p:], given_beta, C[:, p:])
    table = fit.predict(frame.iloc[::5], interval="confidence", beta_cov="fit")
    np.testing.assert_allclose(table["se_fit"], np.sqrt(variance[::5]), rtol=1e-7)


def test_a_new_level_with_beta_cov_fit_is_the_population_interval() -> None:
    rows = pd.DataFrame({"trt": [0, 1, 0, 1], "period": [0, 0, 1, 1], "ID": ["new"] * 4})
    fit = fitted("crossover")
    new_level = fit.predict(rows, interval="confidence", allow_new_levels=True, beta_cov="fit")
    pd.testing.assert_frame_equal(new_level, fit.predict(rows, re_form=[], interval="confidence"), rtol=1e-12)
    # what the module docstring says of the two fixed-effects covariances
    joint = fit.predict(rows, interval="confidence", allow_new_levels=True)
    assert np.all(joint["se_fit"] / new_level["se_fit"] > 2)
    ohio = fitted("ohio")
    new = newdata("ohio").assign(county=-1)
    ratio = (ohio.predict(new, interval="confidence", allow_new_levels=True)["se_fit"]
             / ohio.predict(new, re_form=[], interval="confidence")["se_fit"])
    assert np.all(np.abs(ratio - 1) < 3e-4)
    with pytest.raises(GlmmteachError, match="beta_cov must be one of 'joint', 'fit'"):
        fit.predict(rows, re_form=[], interval="confidence", beta_cov="wald")


def test_re_form_conditions_on_the_chosen_terms_only() -> None:
    fit, frame, X, _, _, _ = conditional_case("crossed")
    _, _, information, C = joint_system("crossed")
    covariance = np.linalg.inv(information)
    C[:, X.shape[1] + frame["a"].nunique():] = 0  # the b effects are left out
    expected = np.sqrt(np.einsum("ij,jk,ik->i", C, covariance, C))
    np.testing.assert_allclose(fit.predict(frame, re_form=["a"], interval="confidence")["se_fit"], expected,
                               rtol=1e-7)


def test_a_new_level_has_the_random_effect_zero_and_the_fixed_effects_uncertainty() -> None:
    fit, frame, _, _, _, _ = conditional_case("crossover")
    _, _, information, _ = joint_system("crossover")
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


@pytest.mark.parametrize("case", CASES)
def test_given_beta_the_random_part_is_lme4s_condvar(case: str) -> None:
    fit, frame, X, terms, _, _ = conditional_case(case)
    _, _, information, _ = joint_system(case)
    given_beta = np.linalg.inv(information[X.shape[1]:, X.shape[1]:])  # H^{-1}: the u block with beta known
    start = 0
    for k, (name, covariates) in enumerate(terms):
        T, r, levels = fit.Ts[k], len(covariates), frame[name].nunique()
        blocks = np.stack([given_beta[start + g * r:start + (g + 1) * r, start + g * r:start + (g + 1) * r]
                           for g in range(levels)])
        start += levels * r
        stored = fit.ranef_cov if len(fit.terms) == 1 else fit.ranef_cov[fit.term_labels[k]]
        np.testing.assert_allclose(T @ blocks @ T.T, stored.to_numpy().reshape(levels, r, r), rtol=1e-6,
                                   atol=1e-12)


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
