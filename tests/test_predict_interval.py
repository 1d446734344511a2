"""fit.predict(..., interval="confidence") against R (tests/data/predict_interval/make_reference.R).

The delta-method arithmetic is checked on R's coefficients and covariance (to 1e-8); glmmteach's own fits
reproduce R's glm to 1e-6, and the GLMMs as closely as their covariances agree (lme4's is a
finite-difference Hessian). Population-averaged intervals are checked against direct integration.
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

from glmmteach import GlmmteachError, datasets, glm, glmer
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


def test_conditional_intervals_are_refused_with_the_way_out() -> None:
    with pytest.raises(GlmmteachError, match="re_form=\\[\\]"):
        fitted("ohio").predict(newdata("ohio").assign(county=1), interval="confidence")
    with pytest.raises(GlmmteachError, match="interval must be 'confidence'"):
        fitted("crossover_glm").predict(newdata("crossover_glm"), interval="prediction")
