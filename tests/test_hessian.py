"""The analytic Hessian of the scalar Laplace log-likelihood (glmm.hessian) and Newton's method on it."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from glmmteach.exceptions import GlmmteachError
from glmmteach.families import get_glmm_family
from glmmteach.glmm import devfun
from glmmteach.glmm.grouped import as_model
from glmmteach.glmm.hessian import hessian_available, scalar_laplace_hessian
from glmmteach.glmm.model import GroupedData
from glmmteach.glmm.optimize import available_optimisers, fit_glmm


def _data(family: str, seed: int, slope: bool, weighted: bool, n: int = 240, groups: int = 24,
          sd: float = 0.8) -> GroupedData:
    """Random data, rows not in group order; binomial with varying trials, an offset, prior weights if asked."""
    rng = np.random.default_rng(seed)
    g = rng.integers(0, groups, n)
    x = rng.normal(size=n)
    X = np.column_stack([np.ones(n), x, rng.integers(0, 2, n)])
    z = rng.normal(size=n) + 1.0 if slope else np.ones(n)
    eta = -0.3 + 0.5 * x + sd * rng.normal(size=groups)[g] * z
    offset = 0.1 * rng.normal(size=n)
    weights = rng.uniform(0.5, 2.0, n) if weighted else None
    if family == "binomial":
        trials = rng.integers(1, 6, n).astype(float)
        y = rng.binomial(trials.astype(int), 1 / (1 + np.exp(-eta - offset))).astype(float)
        return GroupedData(X, z[:, None], y, g, groups, family, trials, offset, weights)
    y = rng.poisson(np.exp(eta + offset)).astype(float)
    return GroupedData(X, z[:, None], y, g, groups, family, None, offset, weights)


def _central_hessian(data: GroupedData, theta: np.ndarray, beta: np.ndarray, h: float = 1e-5) -> np.ndarray:
    point = np.concatenate([theta, beta])
    columns = []
    for i in range(len(point)):  # the few parameters
        up, down = point.copy(), point.copy()
        up[i] += h
        down[i] -= h
        g_up = devfun.loglik_and_gradient(data, up[:1], up[1:], tol=1e-14, min_iter=3)[1]
        g_down = devfun.loglik_and_gradient(data, down[:1], down[1:], tol=1e-14, min_iter=3)[1]
        columns.append((g_up - g_down) / (2 * h))
    return np.column_stack(columns)


CASES = [(family, slope, weighted) for family in ("binomial", "poisson") for slope in (False, True)
         for weighted in (False, True)]


@pytest.mark.parametrize(("family", "slope", "weighted"), CASES)
@pytest.mark.parametrize("tau", [0.3, 1.2, 3.0])
def test_the_hessian_is_the_derivative_of_the_gradient(family: str, slope: bool, weighted: bool, tau: float) -> None:
    data = _data(family, 7, slope, weighted)
    theta, beta = np.array([tau]), np.array([-0.2, 0.4, 0.1])
    state = devfun.loglik_and_gradient(data, theta, beta, tol=1e-14, min_iter=3)[2]
    analytic, _ = scalar_laplace_hessian(data, state, tau)
    numeric = _central_hessian(data, theta, beta)
    assert np.max(np.abs(analytic - numeric)) < 1e-7 * np.max(np.abs(numeric))


@pytest.mark.parametrize(("family", "slope"), [("binomial", True), ("poisson", False)])
def test_the_modes_derivatives_predict_the_modes(family: str, slope: bool) -> None:
    data = _data(family, 11, slope, False)
    theta, beta = np.array([0.9]), np.array([-0.2, 0.4, 0.1])
    state = devfun.loglik_and_gradient(data, theta, beta, tol=1e-14, min_iter=3)[2]
    slopes = scalar_laplace_hessian(data, state, 0.9)[1]
    h = 1e-6
    for i in range(4):  # each parameter
        point = np.concatenate([theta, beta])
        point[i] += h
        moved = devfun.loglik_and_gradient(data, point[:1], point[1:], state.u, tol=1e-14, min_iter=3)[2]
        np.testing.assert_allclose((moved.u[:, 0] - state.u[:, 0]) / h, slopes[:, i], rtol=1e-4, atol=1e-7)


def test_the_hessian_is_offered_where_it_is_defined() -> None:
    assert hessian_available(_data("binomial", 1, False, False), 1)
    assert hessian_available(_data("poisson", 1, True, True), 1)
    assert not hessian_available(_data("binomial", 1, False, False), 5)  # quadrature: differences
    data = _data("binomial", 1, False, False)
    assert as_model(data, True).hessian_available
    with_probit = as_model(data, True).with_family(get_glmm_family("binomial", "probit"))
    assert not with_probit.hessian_available
    assert available_optimisers(with_probit)[0] == "L-BFGS-B"
    with pytest.raises(GlmmteachError, match="Newton"):
        fit_glmm(with_probit, method="Newton")


def _rounding(data, outcome) -> float:
    """A few ulps of the log-likelihood's terms' sizes (y eta and the mean, summed): its rounding, which with
    large Poisson means (5e6 in one data set below, Σ|y eta| ≈ 9e7) is 1e-8, above 1e-9."""
    eta = outcome.state.eta
    return 4 * np.finfo(float).eps * float(np.abs(data.response * eta).sum() + np.abs(outcome.state.values.mu).sum())


def test_newton_and_lbfgsb_reach_the_same_optimum() -> None:
    """Newton's method (the default here) and L-BFGS-B from the same start, on 32 random data sets with true SDs
    from 0 to 2.5 (boundary fits among them): the same log-likelihood to 1e-9 (plus its rounding), estimates to
    1e-5 (a boundary SD exactly 0 in both), both converged; Newton in at most two thirds of the evaluations over
    all of them."""
    evaluations = {"Newton": 0, "L-BFGS-B": 0}
    boundaries = 0
    for family in ("binomial", "poisson"):
        for seed in range(16):  # the data sets
            data = _data(family, 100 + seed, seed % 2 == 1, seed % 3 == 0, n=120, groups=12,
                         sd=(0.0, 0.15, 0.8, 2.5)[seed % 4])
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                newton = fit_glmm(data, True)
                lbfgsb = fit_glmm(data, True, method="L-BFGS-B")
            assert newton.method == "Newton" and lbfgsb.method == "L-BFGS-B"
            assert newton.converged and lbfgsb.converged
            assert newton.llf >= lbfgsb.llf - 1e-9 - _rounding(data, newton)
            np.testing.assert_allclose(newton.beta, lbfgsb.beta, rtol=1e-5, atol=1e-6)
            np.testing.assert_allclose(newton.theta, lbfgsb.theta, rtol=1e-5, atol=1e-6)
            assert (newton.theta[0] == 0.0) == (lbfgsb.theta[0] == 0.0)
            boundaries += newton.theta[0] == 0.0
            evaluations["Newton"] += newton.evaluations
            evaluations["L-BFGS-B"] += lbfgsb.evaluations
    assert boundaries >= 3
    assert evaluations["Newton"] <= 2 / 3 * evaluations["L-BFGS-B"], evaluations
