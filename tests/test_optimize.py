"""Stage test: start values (glmmteach.glmm.start) and the optimiser (glmmteach.glmm.optimize)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest
from scipy import optimize, special

from glmmteach import glm
from glmmteach.exceptions import GlmmteachError
from glmmteach.glmm import GroupedData, as_model, fit_glmm, glm_start, maximise_beta
from glmmteach.glmm.start import moment_theta


def _data(sd: float = 1.0, seed: int = 8, groups: int = 60, per: int = 10) -> GroupedData:
    rng = np.random.default_rng(seed)
    g = np.repeat(np.arange(groups), per)
    x = rng.normal(size=g.size)
    y = rng.poisson(np.exp(0.4 + 0.3 * x + rng.normal(0, sd, groups)[g])).astype(float)
    return GroupedData.from_arrays(np.column_stack([np.ones(g.size), x]), None, y, g, "poisson")


def test_glm_start_is_the_glm_fit() -> None:
    data = _data()
    beta, information = glm_start(data)
    reference = glm("y ~ x", pd.DataFrame({"y": data.y, "x": data.X[:, 1]}), "poisson").params.to_numpy()
    np.testing.assert_allclose(beta, reference, rtol=1e-6)
    assert np.all(np.linalg.eigvalsh(information) > 0)


def test_moment_start_is_near_the_random_effect_sd() -> None:
    """DerSimonian-Laird at the GLM fit: within 30 % of the SD that made the data (60 groups of 10)."""
    for sd in (0.4, 1.0):
        data = _data(sd)
        theta, information, variance = moment_theta(data, glm_start(data)[0], as_model(data).covariance)
        assert theta[0] == pytest.approx(sd, rel=0.3)
        assert information[0] > 0 and variance == pytest.approx(theta[0] ** 2)


def test_fit_equals_a_direct_maximisation_and_its_outcome_is_frozen() -> None:
    """fit_glmm's optimum against scipy's Nelder-Mead on the same Laplace log-likelihood; the outcome is an
    immutable record; a bare GroupedData and its model give the same fit."""
    data = _data(0.7, groups=30)
    outcome = fit_glmm(data, correlated=True)
    model = as_model(data)
    assert outcome.converged and outcome.newton_decrement < 1e-6

    def negative(point: np.ndarray) -> float:
        return -model.marginal_loglik(point[:1], point[1:], tol=1e-13)

    direct = optimize.minimize(negative, np.concatenate([outcome.theta, outcome.beta]) + 0.05, method="Nelder-Mead",
                               options={"xatol": 1e-9, "fatol": 1e-12, "maxfev": 20000})
    assert outcome.llf >= -direct.fun - 1e-8
    np.testing.assert_allclose(np.concatenate([outcome.theta, outcome.beta]), direct.x, atol=1e-4)
    with pytest.raises(dataclasses.FrozenInstanceError):
        outcome.llf = 0.0  # type: ignore[misc]
    again = fit_glmm(model)
    assert again.llf == outcome.llf
    np.testing.assert_array_equal(again.beta, outcome.beta)


def test_maximise_beta_at_the_fitted_theta_returns_the_fitted_beta() -> None:
    data = _data(0.7, groups=30)
    outcome = fit_glmm(data, correlated=True)
    beta, value = maximise_beta(data, outcome.theta, outcome.beta + 0.1)
    np.testing.assert_allclose(beta, outcome.beta, atol=1e-5)
    assert value == pytest.approx(outcome.llf, abs=1e-8)


def test_rows_out_of_group_order_give_the_same_fit_in_the_callers_order() -> None:
    data = _data(0.7, groups=30)
    order = np.random.default_rng(1).permutation(data.nobs)
    shuffled = GroupedData(data.X[order], data.Z[order], data.y[order], data.groups[order], data.n_groups,
                           data.family)
    a, b = fit_glmm(data, True), fit_glmm(shuffled, True)
    assert b.llf == pytest.approx(a.llf, abs=1e-9)
    np.testing.assert_allclose(b.state.eta, a.state.eta[order], atol=1e-7)
    np.testing.assert_allclose(special.expit(b.state.eta), special.expit(a.state.eta[order]), atol=1e-7)


def test_a_model_is_required() -> None:
    with pytest.raises(GlmmteachError, match="GroupedData or an engine model"):
        as_model(np.ones((3, 2)))


def test_a_newton_step_past_zero_tries_the_boundary_first() -> None:
    """A boundary optimum (Poisson, 10 groups of 8, true SD 0.5, SD estimated 0): the first Newton steps overshoot
    past 0, and their reflections land far on the other side; trying the point where a step crosses 0 first
    reaches the boundary in 9 evaluations (4 of them the boundary probes) where the reflections took 17. Same
    optimum as L-BFGS-B, boundary verified."""
    rng = np.random.default_rng(6)
    for choices in ([5, 10, 30, 100], [3, 8, 20], [0.0, 0.1, 0.5, 1.0, 3.0]):  # the randomised study's draws that
        rng.choice(choices)  # chose this layout (10 groups, 8 rows, SD 0.5): they fix the data's stream
    g = np.repeat(np.arange(10), 8)
    x = rng.normal(size=g.size)
    y = rng.poisson(np.exp(-0.5 + 0.7 * x + rng.normal(0, 0.5, 10)[g])).astype(float)
    data = GroupedData.from_arrays(np.column_stack([np.ones(g.size), x]), None, y, g, "poisson")
    newton, lbfgsb = fit_glmm(data), fit_glmm(data, method="L-BFGS-B")
    assert newton.method == "Newton" and newton.converged and newton.boundary_verified
    assert newton.theta[0] == 0.0 and lbfgsb.theta[0] == 0.0
    assert newton.llf >= lbfgsb.llf - 1e-9
    np.testing.assert_allclose(newton.beta, lbfgsb.beta, rtol=1e-6)
    assert newton.evaluations <= 10
