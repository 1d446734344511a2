"""Stage test: the conditional modes (glmmteach.glmm.pirls), the one Newton loop of both representations.

The modes are checked against a direct optimiser of the penalised log-likelihood (scipy's BFGS on each group's
h_i(u), or on the whole h(u) for crossed terms), from zero and from far-off starts where step halving acts."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import optimize

from glmmteach.glmm import CovarianceTerm, GroupedData, GroupedModel, as_model
from glmmteach.glmm.api import general_model
from glmmteach.glmm.pirls import MAX_HALVINGS, newton_modes


def _grouped(family: str, r: int, seed: int = 3, groups: int = 12, per: int = 8) -> GroupedData:
    rng = np.random.default_rng(seed)
    g = np.repeat(np.arange(groups), per)
    x = rng.normal(size=g.size)
    Z = np.column_stack([np.ones(g.size), x][:r])
    eta = 0.2 + 0.4 * x + (Z * rng.normal(0, 0.8, (groups, r))[g]).sum(axis=1)
    y = rng.poisson(np.exp(eta)) if family == "poisson" else (rng.random(g.size) < 1 / (1 + np.exp(-eta)))
    return GroupedData.from_arrays(np.column_stack([np.ones(g.size), x]), Z, y.astype(float), g, family)


def _direct_modes(data: GroupedData, T: np.ndarray, beta: np.ndarray) -> np.ndarray:
    """Each group's mode of h_i(u) = sum_j l_ij - |u|^2/2 by BFGS (no Newton, no step halving)."""
    eta0 = data.eta_fixed(beta)
    modes = []
    for i in range(data.n_groups):  # a reference, not the engine: one optimisation per group
        rows = data.groups == i

        def negative(u: np.ndarray, rows=rows) -> float:
            eta = eta0[rows] + data.Z[rows] @ (T @ u)
            w = None if data.family_weights is None else data.family_weights[rows]
            return -float(data.family.eta_values(eta, data.response[rows], w).loglik.sum()) + 0.5 * u @ u

        modes.append(optimize.minimize(negative, np.zeros(data.n_re), method="BFGS", options={"gtol": 1e-10}).x)
    return np.array(modes)


@pytest.mark.parametrize(("family", "r"), [("binomial", 1), ("poisson", 1), ("binomial", 2), ("poisson", 2)])
def test_modes_equal_a_direct_optimiser(family: str, r: int) -> None:
    data = _grouped(family, r)
    model = as_model(data, correlated=True)
    theta = np.array([0.9]) if r == 1 else np.array([0.9, 0.2, 0.5])
    beta = np.array([0.1, 0.3])
    state = model.conditional_modes(theta, beta)
    assert state.converged
    np.testing.assert_allclose(state.u, _direct_modes(data, model.covariance.T(theta), beta), atol=2e-6)
    # at the modes each group's gradient T'Z_i' l' - u_i vanishes: the Newton step left is below 1e-9
    gradient = np.stack([data.group_sum(state.values.score * state.ZT[:, a]) for a in range(r)], axis=1) - state.u
    assert np.abs(np.linalg.solve(state.hessian_obs, gradient[:, :, None])).max() < 1e-9


@pytest.mark.parametrize("r", [1, 2])
def test_far_start_is_step_halved_to_the_same_modes(r: int) -> None:
    """From u = 40 in every group the full Newton step overshoots (binary data, large SD); the per-group step
    halving still reaches the modes found from zero, and a warm start at the modes stops within two steps."""
    data = _grouped("binomial", r, seed=5)
    model = as_model(data, correlated=False)
    theta = np.full(r, 3.0)
    beta = np.array([0.0, 0.5])
    from_zero = model.conditional_modes(theta, beta)
    far = model.conditional_modes(theta, beta, u_start=np.full((data.n_groups, r), 40.0))
    assert far.converged and far.passes > far.iterations + 1  # some step was halved
    np.testing.assert_allclose(far.u, from_zero.u, atol=1e-8)
    warm = model.conditional_modes(theta, beta, u_start=from_zero.u)
    assert warm.iterations <= 2


def test_sparse_modes_equal_a_direct_optimiser() -> None:
    """Crossed terms (1 | a) + (1 | b): the modes of the whole q-vector against BFGS on h(u)."""
    rng = np.random.default_rng(9)
    n = 300
    a, b = rng.integers(0, 15, n), rng.integers(0, 6, n)
    x = rng.normal(size=n)
    y = rng.poisson(np.exp(0.3 + 0.2 * x + rng.normal(0, 0.6, 15)[a] + rng.normal(0, 0.4, 6)[b])).astype(float)
    grouped = GroupedData.from_arrays(np.column_stack([np.ones(n), x]), None, y, a, "poisson")

    class RandomTerm:  # the formula layer's random term, as general_model reads it
        def __init__(self, name, codes, levels):
            self.group_name, self.group_codes, self.n_groups = name, codes, levels
            self.Z, self.names, self.correlated = np.ones((n, 1)), ["(Intercept)"], True

    model = general_model(grouped, [RandomTerm("a", a, 15), RandomTerm("b", b, 6)])
    theta, beta = np.array([0.7, 0.5]), np.array([0.2, 0.1])
    state = model.conditional_modes(theta, beta)
    A = model.A_values(theta)
    eta0 = grouped.eta_fixed(beta)

    def negative(u: np.ndarray) -> float:
        values = grouped.family.eta_values(eta0 + model.Au(A, u), grouped.response, None)
        return -float(values.loglik.sum()) + 0.5 * u @ u

    direct = optimize.minimize(negative, np.zeros(model.q), method="BFGS", options={"gtol": 1e-10}).x
    assert state.converged
    np.testing.assert_allclose(state.u, direct, atol=2e-6)


def test_one_loop_serves_any_representation() -> None:
    """newton_modes on a one-dimensional problem given by its callables: the maximum of
    h(u) = -(exp(u) - 2u) - u^2/2 solves exp(u) + u = 2 (a scalar h: the global acceptance test)."""

    def evaluate(u):
        return u, None, float(-(np.exp(u[0]) - 2 * u[0]) - 0.5 * u[0] ** 2)

    def newton_step(u, _):
        g = np.array([-(np.exp(u[0]) - 2) - u[0]])
        step = g / (np.exp(u[0]) + 1.0)
        return None, step, float(g @ step)

    found = newton_modes(evaluate, newton_step, lambda _: None, np.array([8.0]), False, 1e-12, 200, 1)
    assert found.converged and found.iterations < 20
    root = optimize.brentq(lambda u: np.exp(u) + u - 2, -5, 5, xtol=1e-14)
    assert found.u[0] == pytest.approx(root, abs=1e-10)
    assert MAX_HALVINGS >= 50


def test_group_sum_rows_is_group_sum_of_each_row() -> None:
    rng = np.random.default_rng(12)
    groups = rng.integers(0, 9, 50)
    data = GroupedData.from_arrays(np.ones((50, 1)), np.ones((50, 1)), rng.poisson(2.0, 50), groups, "poisson")
    values = rng.normal(size=(4, 50))
    for d in (data, data.sorted_by_group()):  # bincount per row, or one reduceat over the rows in group order
        np.testing.assert_array_equal(d.group_sum_rows(values), np.stack([d.group_sum(row) for row in values]))


def test_grouped_model_carries_its_covariance_term() -> None:
    data = _grouped("poisson", 2)
    model = GroupedModel(data, CovarianceTerm(2, correlated=False))
    assert model.covariance.n_theta == 2 and not model.correlated and model.n_nodes == 1
    assert model.with_nodes(5).n_nodes == 5 and model.with_nodes(5).covariance is model.covariance
