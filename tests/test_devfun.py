"""Stage test: the deviance function (glmmteach.glmm.devfun), Laplace and adaptive Gauss-Hermite.

Against numerical integration of each group's likelihood (scipy.integrate.quad), against finite differences of
itself for the analytic gradient, and as the fit's own objective."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from scipy import integrate, special

from glmmteach import datasets, glmer
from glmmteach.glmm import GroupedData, devfun, make_devfun


@pytest.fixture(scope="module")
def crossover_fit():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return glmer("outcome ~ trt*period + (1|ID)", datasets.load_crossover(), nAGQ=10)


def _binary(seed: int = 21, groups: int = 10, per: int = 6) -> GroupedData:
    rng = np.random.default_rng(seed)
    g = np.repeat(np.arange(groups), per)
    x = rng.normal(size=g.size)
    y = (rng.random(g.size) < special.expit(0.2 + 0.5 * x + rng.normal(0, 1.0, groups)[g])).astype(float)
    return GroupedData.from_arrays(np.column_stack([np.ones(g.size), x]), None, y, g, "binomial")


def _exact_loglik(data: GroupedData, sd: float, beta: np.ndarray) -> float:
    """sum_i log int prod_j p(y_ij | eta_ij + b) N(b; 0, sd^2) db by adaptive quadrature (scipy.integrate.quad)."""
    eta0 = data.eta_fixed(beta)
    total = 0.0
    for i in range(data.n_groups):  # a reference: one integral per group
        rows = data.groups == i

        def integrand(b: float, rows=rows) -> float:
            loglik = data.family.eta_values(eta0[rows] + b, data.response[rows], None).loglik.sum()
            return float(np.exp(loglik - 0.5 * (b / sd) ** 2) / (sd * np.sqrt(2 * np.pi)))

        total += np.log(integrate.quad(integrand, -12 * sd, 12 * sd, epsabs=0, epsrel=1e-12, limit=200)[0])
    return total + data.log_constant


def test_quadrature_converges_to_the_integral_and_laplace_is_close() -> None:
    data = _binary()
    theta, beta = np.array([1.3]), np.array([0.1, 0.4])
    exact = _exact_loglik(data, 1.3, beta)
    agq = devfun.marginal_loglik(data, theta, beta, n_nodes=30, tol=1e-13)
    laplace = devfun.marginal_loglik(data, theta, beta, n_nodes=1, tol=1e-13)
    assert agq == pytest.approx(exact, abs=1e-9)
    assert 1e-4 < abs(laplace - exact) < 0.5  # an approximation, of the right size for 6 binary rows per group
    # adaptive rules improve with the nodes towards the integral
    errors = [abs(devfun.marginal_loglik(data, theta, beta, n_nodes=k, tol=1e-13) - exact) for k in (3, 7, 15)]
    assert errors[0] > errors[1] > errors[2]


@pytest.mark.parametrize(("n_re", "correlated", "n_nodes"), [(1, True, 1), (1, True, 9), (2, True, 1),
                                                             (2, False, 1)])
def test_analytic_gradient_equals_central_differences(n_re: int, correlated: bool, n_nodes: int) -> None:
    rng = np.random.default_rng(4)
    g = np.repeat(np.arange(15), 10)
    x = rng.normal(size=g.size)
    Z = np.column_stack([np.ones(g.size), x])[:, :n_re]
    y = rng.poisson(np.exp(0.3 + 0.3 * x + (Z * rng.normal(0, 0.5, (15, n_re))[g]).sum(axis=1))).astype(float)
    data = GroupedData.from_arrays(np.column_stack([np.ones(g.size), x]), Z, y, g, "poisson")
    theta = {(1, True): [0.6], (2, True): [0.6, 0.1, 0.4], (2, False): [0.6, 0.4]}[(n_re, correlated)]
    point = np.concatenate([theta, [0.2, 0.25]])
    k = len(theta)
    _, gradient, _ = devfun.loglik_and_gradient(data, point[:k], point[k:], correlated, n_nodes, tol=1e-14)
    h = 1e-5
    numeric = []
    for i in range(len(point)):  # one central difference per parameter
        up, down = point.copy(), point.copy()
        up[i] += h
        down[i] -= h
        numeric.append((devfun.marginal_loglik(data, up[:k], up[k:], correlated, n_nodes, tol=1e-14)
                        - devfun.marginal_loglik(data, down[:k], down[k:], correlated, n_nodes, tol=1e-14)) / (2 * h))
    np.testing.assert_allclose(gradient, numeric, rtol=1e-6, atol=1e-6)


def test_devfun_is_the_fits_objective(crossover_fit) -> None:
    """make_devfun(fit) evaluated at the estimates is the fit's log-likelihood; deviance = -2 logLik;
    the gradient vanishes at the (interior) optimum."""
    theta, beta = crossover_fit.theta, crossover_fit.params.to_numpy()
    assert make_devfun(crossover_fit)(theta, beta) == pytest.approx(crossover_fit.llf, abs=1e-8)
    assert make_devfun(crossover_fit, deviance=True)(theta, beta) == pytest.approx(-2 * crossover_fit.llf, abs=2e-8)
    value, gradient = make_devfun(crossover_fit, gradient=True)(theta, beta)
    assert value == pytest.approx(crossover_fit.llf, abs=1e-8)
    assert np.abs(gradient).max() < 1e-3
    # Laplace on the same data is a different function of (theta, beta): lower at these estimates
    assert make_devfun(crossover_fit.model, True, 1)(theta, beta) < crossover_fit.llf - 1.0
    assert make_devfun(crossover_fit.model.data, True, 1)(theta, beta) < crossover_fit.llf - 1.0


@pytest.mark.parametrize("n_nodes", [2, 7, 25])
def test_agq_nodes_in_blocks_are_one_node_at_a_time(n_nodes: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """The quadrature nodes are evaluated in blocks (one NumPy call per block, not per node): any block size,
    down to one node per block, gives the same log-likelihood and gradient bit for bit (the same operations
    on the same numbers, summed in node order); rows in group order or not."""
    rng = np.random.default_rng(11)
    groups = rng.integers(0, 30, 240)
    x = rng.normal(size=240)
    y = (rng.random(240) < 1 / (1 + np.exp(-(0.3 * x + rng.normal(0, 1.2, 30)[groups])))).astype(float)
    X = np.column_stack([np.ones(240), x])
    unsorted = GroupedData.from_arrays(X, np.ones((240, 1)), y, groups, "binomial")
    for data in (unsorted, unsorted.sorted_by_group()):
        whole = devfun.loglik_and_gradient(data, np.array([1.1]), np.array([0.1, 0.4]), n_nodes=n_nodes)
        monkeypatch.setattr(devfun, "NODE_BLOCK_ELEMENTS", 1)
        single = devfun.loglik_and_gradient(data, np.array([1.1]), np.array([0.1, 0.4]), n_nodes=n_nodes)
        monkeypatch.undo()
        assert whole[0] == single[0]
        np.testing.assert_array_equal(whole[1], single[1])
