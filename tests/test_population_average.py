"""glmmteach.predict.population_average_mean against scipy.integrate.quad for SDs from 0 to 20.

The default (the trapezoidal rule in s, closed forms for the log, identity and square-root links) is accurate
to 1e-12 for every SD; Gauss-Hermite with 40 nodes, the old default, is 3e-4 off at the crossover's tau-hat.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy import integrate, stats

from glmmteach.exceptions import FamilyError, GlmmteachError
from glmmteach.predict import inverse_link, marginal_curve, population_average_mean

SDS = (0.0, 0.05, 0.6, 2.0, 4.9, 9.0, 20.0)
# quad's own round-off note on the flattest pieces (the value is still good to 1e-14)
pytestmark = pytest.mark.filterwarnings("ignore::scipy.integrate.IntegrationWarning")
ETAS = np.array([-12.0, -2.5, 0.0, 0.7, 6.0])


def quad_means(eta: np.ndarray, sd: float, link: str) -> np.ndarray:
    """The integrals for every eta at once by adaptive quadrature (scipy's quad_vec, to 1e-13), split where
    each inverse link turns (s = -eta) and at the normal's centre."""
    linkinv = inverse_link(link).linkinv
    eta = np.asarray(eta, dtype=float)
    if sd == 0:
        return linkinv(eta)
    points = sorted({0.0, *np.clip(-eta, -12 * sd, 12 * sd)} - {-12 * sd, 12 * sd})
    value, _ = integrate.quad_vec(lambda s: linkinv(eta + s) * stats.norm.pdf(s, scale=sd), -12 * sd, 12 * sd,
                                  epsabs=1e-14, epsrel=1e-13, points=points, limit=2000)
    return value


def quad_mean(eta: float, sd: float, link: str) -> float:
    return float(quad_means(np.array([eta]), sd, link)[0])


@pytest.mark.parametrize("link", ["logit", "probit", "cloglog"])
def test_accurate_for_every_sd(link: str) -> None:
    for sd in SDS:
        got = population_average_mean(ETAS, sd**2, link)
        expected = quad_means(ETAS, sd, link)
        np.testing.assert_allclose(got, expected, rtol=0, atol=1e-12, err_msg=f"{link}, sd {sd}")


def test_old_default_was_off_at_the_crossovers_tau() -> None:
    """What the fix is for: 40 Gauss-Hermite nodes leave 3e-4 at tau = 4.9; the default leaves < 1e-12."""
    eta = np.linspace(-8, 8, 17)
    expected = quad_means(eta, 4.9, "logit")
    assert np.abs(population_average_mean(eta, 4.9**2, "logit", n_nodes=40) - expected).max() > 1e-4
    assert np.abs(population_average_mean(eta, 4.9**2, "logit") - expected).max() < 1e-12


def test_closed_forms() -> None:
    eta = np.array([-2.0, 0.0, 1.5])
    np.testing.assert_allclose(population_average_mean(eta, 2.25, "log"), np.exp(eta + 1.125), rtol=1e-15)
    np.testing.assert_array_equal(population_average_mean(eta, 2.25, "identity"), eta)
    np.testing.assert_allclose(population_average_mean(eta, 2.25, "sqrt"), eta**2 + 2.25, rtol=1e-15)
    for link in ("log", "sqrt"):  # the closed forms are the integrals
        assert float(population_average_mean(np.array(0.3), 0.49, link)) == pytest.approx(
            quad_mean(0.3, 0.7, link), rel=1e-12)


def test_one_variance_per_row_and_shapes() -> None:
    eta = np.array([[-1.0, 0.0], [2.0, 0.5]])
    variance = np.array([[0.0, 4.0], [25.0, 4.0]])
    got = population_average_mean(eta, variance, "logit")
    assert got.shape == (2, 2)
    for i, j in np.ndindex(2, 2):
        assert got[i, j] == pytest.approx(quad_mean(eta[i, j], np.sqrt(variance[i, j]), "logit"), abs=1e-12)
    assert marginal_curve(np.array([0.0, 1.0]), 4.9)["population"] == pytest.approx(
        population_average_mean(np.array([0.0, 1.0]), 4.9**2), abs=0)


def test_bad_inputs_are_named() -> None:
    with pytest.raises(GlmmteachError, match="re_variance must be finite and non-negative"):
        population_average_mean(np.array([0.0]), -1.0)
    with pytest.raises(FamilyError, match="'inverse' link is not offered"):
        population_average_mean(np.array([1.0]), 1.0, "inverse")


@pytest.mark.parametrize("link", ["logit", "probit", "cloglog", "log"])
def test_slope_is_the_derivative_of_the_mean(link: str) -> None:
    """population_average_slope (the delta-method SE's factor) against central differences of the mean."""
    from glmmteach.predict import population_average_slope

    eta, h = np.array([-3.0, -0.5, 0.0, 1.2]), 1e-4
    for sd in (0.0, 0.5, 4.9, 15.0):
        difference = (population_average_mean(eta + h, sd**2, link) - population_average_mean(eta - h, sd**2, link))
        np.testing.assert_allclose(population_average_slope(eta, sd**2, link), difference / (2 * h),
                                   rtol=1e-7, atol=1e-12)
