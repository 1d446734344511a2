"""Cluster-level likelihood pieces: kernels, modes, Laplace, adaptive quadrature, gradients."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import integrate, special

from glmmteach import integration as ig
from glmmteach.exceptions import FamilyError
from glmmteach.families import get_glmm_family
from glmmteach.predict import conditional_mean, marginal_curve, population_average_mean

LINKS = [("binomial", "logit"), ("binomial", "probit"), ("binomial", "cloglog"), ("poisson", "log")]


def crossover_arrays(crossover: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    X = np.column_stack([np.ones(len(crossover)), crossover.trt, crossover.period, crossover.trt * crossover.period])
    return X, crossover.outcome.to_numpy(float), crossover.ID.to_numpy()


def synthetic_slopes(family: str, n_groups: int = 40, per_group: int = 8, seed: int = 1) -> ig.GroupedData:
    rng = np.random.default_rng(seed)
    groups = np.repeat(np.arange(n_groups), per_group)
    x = rng.normal(size=n_groups * per_group)
    b = rng.normal(size=(n_groups, 2)) * [0.7, 0.4]
    eta = -0.3 + 0.5 * x + b[groups, 0] + b[groups, 1] * x
    X = np.column_stack([np.ones_like(x), x])
    if family == "poisson":
        offset = rng.uniform(0, 1, size=len(x))
        y = rng.poisson(np.exp(eta + offset))
        return ig.GroupedData.from_arrays(X, X, y, groups, "poisson", offset=offset)
    trials = rng.integers(1, 6, size=len(x))
    y = rng.binomial(trials, special.expit(eta))
    return ig.GroupedData.from_arrays(X, X, y, groups, "binomial", trials=trials)


def finite_difference_gradient(data, theta, beta, correlated, n_nodes, h=1e-6):
    x0 = np.concatenate([theta, beta])
    k = len(theta)
    grad = []
    for i in range(len(x0)):
        xp, xm = x0.copy(), x0.copy()
        xp[i] += h
        xm[i] -= h
        fp = ig.marginal_loglik(data, xp[:k], xp[k:], correlated, n_nodes, tol=1e-14)
        fm = ig.marginal_loglik(data, xm[:k], xm[k:], correlated, n_nodes, tol=1e-14)
        grad.append((fp - fm) / (2 * h))
    return np.array(grad)


@pytest.mark.parametrize(("family", "link"), LINKS)
def test_eta_derivatives_match_finite_differences(family: str, link: str) -> None:
    """The family's score, curvatures and Fisher-weight derivative on the eta scale (binomial: R's
    convention, proportions with the trials as weights)."""
    fam = get_glmm_family(family, link)
    eta = np.linspace(-3, 2.5, 12)
    counts = np.array([0, 1, 2, 3, 0, 5, 1, 4, 2, 0, 3, 1], dtype=float)
    weights = np.full(12, 5.0) if family == "binomial" else None
    y = counts / 5.0 if family == "binomial" else counts
    h = 1e-5
    values = fam.eta_values(eta, y, weights, with_fisher_deriv=True)
    plus, minus = fam.eta_values(eta + h, y, weights), fam.eta_values(eta - h, y, weights)
    np.testing.assert_allclose(values.score, (plus.loglik - minus.loglik) / (2 * h), rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(values.neg_hessian, -(plus.score - minus.score) / (2 * h), rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(values.fisher_deriv, (plus.fisher - minus.fisher) / (2 * h), rtol=1e-5, atol=1e-8)
    np.testing.assert_allclose(fam.fisher_deriv(eta, y, weights, values), values.fisher_deriv, rtol=1e-12)
    np.testing.assert_allclose(fam.loglik_eta(eta, y, weights), values.loglik, rtol=1e-14)
    # Expected information n * (dmu/deta)^2 / V(mu), with dmu/deta by differences of the inverse link.
    mu = fam.linkinv(eta)
    mu_eta = (fam.linkinv(eta + h) - fam.linkinv(eta - h)) / (2 * h)
    n = 5.0 if family == "binomial" else 1.0
    np.testing.assert_allclose(values.fisher, n * mu_eta**2 / fam.variance(mu), rtol=1e-6)
    # ... and the log-likelihood with its constant is the exact log pmf, as the GLM's loglik says.
    full = values.loglik + fam.log_constant(y, weights)
    reference = (ig.special.gammaln(6) - ig.special.gammaln(counts + 1) - ig.special.gammaln(6 - counts)
                 + special.xlogy(counts, mu) + special.xlogy(5 - counts, 1 - mu)) if family == "binomial" else (
        special.xlogy(counts, mu) - mu - ig.special.gammaln(counts + 1))
    np.testing.assert_allclose(full, reference, rtol=1e-10)
    np.testing.assert_allclose(full, fam.loglik(y, mu, np.full(12, n)), rtol=1e-10)


def test_fisher_weight_is_expected_observed_information() -> None:
    """For probit, E[-l''] over y ~ Binomial(n, mu) equals the Fisher weight."""
    fam = get_glmm_family("binomial", "probit")
    eta, n = 0.7, 6.0
    mu = float(fam.linkinv(np.array([eta]))[0])
    ys = np.arange(7.0)
    pmf = np.exp(ig.special.gammaln(7) - ig.special.gammaln(ys + 1) - ig.special.gammaln(7 - ys)
                 + special.xlogy(ys, mu) + special.xlogy(n - ys, 1 - mu))
    values = fam.eta_values(np.full(7, eta), ys / n, np.full(7, n))
    assert float(pmf @ values.neg_hessian) == pytest.approx(float(values.fisher[0]), rel=1e-10)


def test_unknown_link_is_a_clear_error() -> None:
    with pytest.raises(FamilyError, match="link 'identity' is not available for the binomial family"):
        ig.cluster_exact(np.array([0.0, 1.0]), 0.0, 1.0, "binomial", "identity")
    with pytest.raises(FamilyError, match="link 'log' is not available for the binomial family in a GLMM"):
        ig.GroupedData.from_arrays(np.ones((2, 1)), None, np.array([0.0, 1.0]), np.array([0, 1]), "binomial", "log")


@pytest.fixture()
def one_cluster(crossover: pd.DataFrame) -> dict:
    X, y, ids = crossover_arrays(crossover)
    rows = ids == 40  # a patient with (0, 1) outcomes
    beta = np.array([-4.98, 3.58, 2.77, -3.32])
    return {"y": y[rows], "eta_fixed": X[rows] @ beta, "sd": 4.91}


def test_cluster_mode_is_a_stationary_point_with_the_right_curvature(one_cluster: dict) -> None:
    mode = ig.cluster_mode(**one_cluster)
    h = 1e-4
    g = ig.cluster_log_integrand(mode.mode + np.array([-h, 0.0, h]), **one_cluster)
    assert abs(g[2] - g[0]) / (2 * h) < 1e-8
    assert -(g[2] - 2 * g[1] + g[0]) / h**2 == pytest.approx(mode.curvature, rel=1e-5)
    assert mode.history[0] == 0.0 and mode.history[-1] == mode.mode


def test_cluster_mode_needs_step_halving_for_a_wide_prior(one_cluster: dict) -> None:
    """With sd = 23 (the crossover's Laplace fit) a full Newton step from 0 overshoots; halving saves it."""
    wide = dict(one_cluster, sd=23.5)
    mode = ig.cluster_mode(**wide)
    h = 1e-4
    g = ig.cluster_log_integrand(mode.mode + np.array([-h, h]), **wide)
    assert abs(g[1] - g[0]) / (2 * h) < 1e-8


def test_laplace_is_agq_with_one_node(one_cluster: dict) -> None:
    assert ig.cluster_agq(n_nodes=1, **one_cluster) == pytest.approx(ig.cluster_laplace(**one_cluster), abs=1e-13)


def test_agq_converges_to_the_exact_integral(one_cluster: dict) -> None:
    exact = ig.cluster_exact(**one_cluster)
    errors = [abs(ig.cluster_agq(n_nodes=k, **one_cluster) - exact) for k in (1, 5, 25, 100)]
    assert errors[-1] < 1e-8
    assert errors[0] > 1e-3  # Laplace is visibly off for two binary observations
    assert errors[2] < errors[0]  # (the error need not fall monotonically with the nodes)


def test_exact_integral_agrees_with_a_brute_force_sum(one_cluster: dict) -> None:
    grid = np.linspace(-60, 60, 240_001)
    integrand = np.exp(ig.cluster_log_integrand(grid, **one_cluster))
    brute = np.log(integrate.trapezoid(integrand, grid))
    assert ig.cluster_exact(**one_cluster) == pytest.approx(brute, abs=1e-8)


def test_batch_laplace_equals_agq_with_one_node(crossover: pd.DataFrame) -> None:
    X, y, ids = crossover_arrays(crossover)
    data = ig.GroupedData.from_arrays(X, None, y, ids, "binomial")
    beta, T = np.array([-4.0, 3.0, 2.0, -3.0]), np.array([[3.0]])
    laplace, _ = ig.laplace_loglik(data, T, beta)
    agq, _ = ig.agq_loglik(data, T, beta, 1)
    assert agq == pytest.approx(laplace, abs=1e-12)


@pytest.mark.parametrize("n_nodes", [1, 7])
def test_batch_loglik_is_the_sum_of_cluster_pieces(crossover: pd.DataFrame, n_nodes: int) -> None:
    X, y, ids = crossover_arrays(crossover)
    beta, sd = np.array([-4.0, 3.0, 2.0, -3.0]), 3.0
    total = ig.marginal_loglik_function(X, y, ids, "binomial", n_nodes=n_nodes)(beta, sd)
    pieces = sum(ig.cluster_agq(y[ids == i], X[ids == i] @ beta, sd, n_nodes) for i in np.unique(ids))
    assert total == pytest.approx(pieces, abs=1e-9)


def test_conditional_modes_solve_the_score_equations() -> None:
    data = synthetic_slopes("poisson")
    T = ig.theta_to_T(np.array([0.8, 0.2, 0.5]), 2, True)
    beta = np.array([-0.2, 0.4])
    state = ig.conditional_modes(data, T, beta)
    score = np.stack([data.group_sum(state.values.score * state.ZT[:, a]) for a in range(2)], axis=1) - state.u
    assert np.abs(score).max() < 1e-7
    assert state.converged and state.iterations < 15


@pytest.mark.parametrize(
    ("family", "correlated", "n_nodes"),
    [("binomial", True, 1), ("poisson", True, 1), ("poisson", False, 1)],
)
def test_analytic_gradient_matches_finite_differences_for_slopes(family: str, correlated: bool, n_nodes: int) -> None:
    data = synthetic_slopes(family)
    theta = np.array([0.8, 0.2, 0.5]) if correlated else np.array([0.8, 0.5])
    beta = np.array([-0.2, 0.4])
    _, grad, _ = ig.loglik_and_gradient(data, theta, beta, correlated, n_nodes, tol=1e-14)
    numeric = finite_difference_gradient(data, theta, beta, correlated, n_nodes)
    np.testing.assert_allclose(grad, numeric, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize(("link", "n_nodes"), [("logit", 1), ("probit", 1), ("cloglog", 5), ("logit", 9)])
def test_analytic_gradient_matches_finite_differences_scalar(crossover: pd.DataFrame, link: str, n_nodes: int) -> None:
    X, y, ids = crossover_arrays(crossover)
    data = ig.GroupedData.from_arrays(X, None, y, ids, "binomial", link)
    theta, beta = np.array([2.5]), np.array([-2.0, 1.5, 1.0, -1.5])
    _, grad, _ = ig.loglik_and_gradient(data, theta, beta, True, n_nodes, tol=1e-14)
    numeric = finite_difference_gradient(data, theta, beta, True, n_nodes)
    np.testing.assert_allclose(grad, numeric, rtol=1e-5, atol=1e-6)


def test_poisson_agq_gradient_with_offset() -> None:
    rng = np.random.default_rng(3)
    groups = np.repeat(np.arange(30), 5)
    x = rng.normal(size=150)
    offset = rng.uniform(0, 2, size=150)
    y = rng.poisson(np.exp(0.2 + 0.3 * x + offset + rng.normal(size=30)[groups] * 0.6))
    X = np.column_stack([np.ones(150), x])
    data = ig.GroupedData.from_arrays(X, None, y, groups, "poisson", offset=offset)
    theta, beta = np.array([0.5]), np.array([0.1, 0.2])
    _, grad, _ = ig.loglik_and_gradient(data, theta, beta, True, 6, tol=1e-14)
    np.testing.assert_allclose(grad, finite_difference_gradient(data, theta, beta, True, 6), rtol=1e-5, atol=1e-6)


def test_agq_needs_a_scalar_random_effect() -> None:
    data = synthetic_slopes("poisson")
    with pytest.raises(ValueError, match="single scalar random effect"):
        ig.agq_loglik(data, np.eye(2), np.zeros(2), 5)


@pytest.mark.slow
def test_profile_loglik_peaks_near_the_quadrature_mle(crossover: pd.DataFrame, exact_mle: dict) -> None:
    X, y, ids = crossover_arrays(crossover)
    sds = np.array([3.0, exact_mle["tau"], 7.0])
    profile = ig.profile_loglik_sd(X, y, ids, sds, n_nodes=100,
                                   column_names=["(Intercept)", "trt", "period", "trt:period"])
    assert profile["loglik"].iloc[1] == pytest.approx(exact_mle["loglik"], abs=1e-6)
    assert profile["loglik"].iloc[1] > profile["loglik"].iloc[0]
    assert profile["loglik"].iloc[1] > profile["loglik"].iloc[2]
    assert profile["(Intercept)"].iloc[1] == pytest.approx(exact_mle["fixef"]["(Intercept)"], rel=1e-4)


def test_theta_to_T_uses_lme4_column_major_order() -> None:
    T = ig.theta_to_T(np.array([1.0, 2.0, 3.0, 4.0, 5.0, 6.0]), 3, True)
    np.testing.assert_array_equal(T, [[1, 0, 0], [2, 4, 0], [3, 5, 6]])
    np.testing.assert_array_equal(ig.theta_to_T(np.array([1.0, 2.0]), 2, False), np.diag([1.0, 2.0]))
    np.testing.assert_array_equal(ig.theta_lower_bounds(2, True), [0, -np.inf, 0])


def test_population_average_is_exact_for_the_log_link() -> None:
    eta = np.array([-1.0, 0.0, 2.0])
    np.testing.assert_allclose(population_average_mean(eta, 0.49, "log"), np.exp(eta + 0.49 / 2), rtol=1e-12)


def test_population_average_logit_matches_numerical_integration() -> None:
    eta, sd = 1.2, 2.0
    value = integrate.quad(lambda s: special.expit(eta + s) * np.exp(-0.5 * (s / sd) ** 2) / (sd * np.sqrt(2 * np.pi)),
                           -60, 60, epsabs=1e-13)[0]
    # Gauss-Hermite converges slowly-ish for expit (poles at i*pi): 40 nodes give ~1e-8, 120 ~1e-12.
    assert float(population_average_mean(np.array(eta), sd**2, "logit")) == pytest.approx(value, abs=1e-7)
    assert float(population_average_mean(np.array(eta), sd**2, "logit", 120)) == pytest.approx(value, abs=1e-11)
    curve = marginal_curve(np.linspace(-3, 3, 7), sd)
    # averaging over groups pulls probabilities towards 1/2
    assert np.all(np.abs(curve["population"] - 0.5) <= np.abs(curve["conditional"] - 0.5) + 1e-15)
    np.testing.assert_allclose(population_average_mean(curve["eta"], 0.0), conditional_mean(curve["eta"]))
