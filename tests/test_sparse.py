"""Stage test: the general engine's block factorisation (glmmteach.glmm.sparse) against dense linear algebra, and
the general engine against the batched one on a model both can fit."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import special

from glmmteach.exceptions import GlmmteachError
from glmmteach.families import get_glmm_family
from glmmteach.glmm import GroupedData, as_model
from glmmteach.glmm.api import general_model


class RandomTerm:
    """The formula layer's random term, as general_model reads it."""

    def __init__(self, name: str, codes: np.ndarray, levels: int, Z: np.ndarray, correlated: bool = True):
        self.group_name, self.group_codes, self.n_groups = name, codes, levels
        self.Z, self.names, self.correlated = Z, [f"z{k}" for k in range(Z.shape[1])], correlated


def _crossed(levels_b: int, slope: bool, seed: int = 2):
    rng = np.random.default_rng(seed)
    n = 400
    a, b = rng.integers(0, 40, n), rng.integers(0, levels_b, n)
    x = rng.normal(size=n)
    eta = -0.2 + 0.5 * x + rng.normal(0, 0.8, 40)[a] + rng.normal(0, 0.5, levels_b)[b]
    y = (rng.random(n) < special.expit(eta)).astype(float)
    X = np.column_stack([np.ones(n), x])
    grouped = GroupedData.from_arrays(X, None, y, a, "binomial")
    Za = np.column_stack([np.ones(n), x]) if slope else np.ones((n, 1))
    terms = [RandomTerm("a", a, 40, Za), RandomTerm("b", b, levels_b, np.ones((n, 1)))]
    theta = np.array([0.8, 0.1, 0.3, 0.5]) if slope else np.array([0.8, 0.5])
    return general_model(grouped, terms), theta, np.array([-0.2, 0.5])


def _dense_H(model, state) -> np.ndarray:
    A = np.zeros((model.nobs, model.q))
    np.add.at(A, (np.repeat(np.arange(model.nobs), state.A.shape[1]), model.slot_cols.ravel()), state.A.ravel())
    return A, np.eye(model.q) + A.T @ (state.values.fisher[:, None] * A)


@pytest.mark.parametrize(("levels_b", "slope"), [(8, False), (300, False), (8, True)])
def test_factorisation_equals_dense_algebra(levels_b: int, slope: bool) -> None:
    """log det H, H^{-1} g and the conditional covariances from the block factorisation (dense or sparse B, scalar
    or vector first term) equal numpy's on the dense H."""
    model, theta, beta = _crossed(levels_b, slope)
    state = model.conditional_modes(theta, beta, tol=1e-13)
    A, H = _dense_H(model, state)
    assert state.factor_fisher.logdet == pytest.approx(np.linalg.slogdet(H)[1], rel=1e-12)
    g = np.random.default_rng(0).normal(size=model.q)
    np.testing.assert_allclose(model.solve(state.factor_fisher, g), np.linalg.solve(H, g), rtol=1e-10, atol=1e-12)
    H_inv = np.linalg.inv(H)
    np.testing.assert_allclose(np.einsum("ns,ns->n", state.A, model.inverse_times_rows(state.factor_fisher, state.A)),
                               np.einsum("nq,qk,nk->n", A, H_inv, A), rtol=1e-9)
    X, w = model.X, state.values.fisher
    AWX = A.T @ (w[:, None] * X)
    np.testing.assert_allclose(model.beta_information(state), X.T @ (w[:, None] * X) - AWX.T @ H_inv @ AWX,
                               rtol=1e-9)


def test_general_engine_equals_batched_engine_on_one_factor() -> None:
    """One grouping factor fitted by both representations: the same Laplace value and gradient (to rounding)."""
    rng = np.random.default_rng(6)
    g = np.repeat(np.arange(25), 8)
    x = rng.normal(size=g.size)
    Z = np.column_stack([np.ones(g.size), x])
    y = rng.poisson(np.exp(0.2 + 0.3 * x + (Z * rng.normal(0, 0.5, (25, 2))[g]).sum(axis=1))).astype(float)
    grouped = GroupedData.from_arrays(np.column_stack([np.ones(g.size), x]), Z, y, g, "poisson")
    general = general_model(grouped, [RandomTerm("g", g, 25, Z)])
    batched = as_model(grouped, correlated=True)
    theta, beta = np.array([0.5, 0.1, 0.4]), np.array([0.2, 0.3])
    value_g, grad_g, _ = general.loglik_and_gradient(theta, beta, tol=1e-13)
    value_b, grad_b, _ = batched.loglik_and_gradient(theta, beta, tol=1e-13)
    assert value_g == pytest.approx(value_b, abs=1e-10)
    np.testing.assert_allclose(grad_g, grad_b, rtol=1e-8, atol=1e-9)


def test_a_shape_or_family_change_keeps_the_symbolic_analysis() -> None:
    model, theta, beta = _crossed(8, False)

    other = model.with_family(get_glmm_family("binomial", "probit"))
    assert other.pairs is model.pairs and other.family.link.name == "probit"
    assert other.marginal_loglik(theta, beta) != model.marginal_loglik(theta, beta)
    with pytest.raises(GlmmteachError, match="single scalar random-effects term"):
        model.with_nodes(5)
