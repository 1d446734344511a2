"""The GLMM engine as a whole (glmmteach.glmm): covariance terms, warnings of a glmer call. The stages have their own
files: test_pirls, test_devfun, test_sparse, test_optimize, test_diagnose."""

from __future__ import annotations

import warnings

import numpy as np

from glmmteach import datasets, glmer
from glmmteach.exceptions import ScalingWarning
from glmmteach.glmm import CovarianceTerm

OHIO = "death ~ offset(logpop) + factor(sex) + factor(race) + year + (1 | county)"


def test_covariance_term_maps_theta_to_T_and_back() -> None:
    term = CovarianceTerm(3, correlated=True)
    theta = np.arange(1.0, 7.0)
    T = term.T(theta)
    np.testing.assert_array_equal(T, [[1, 0, 0], [2, 4, 0], [3, 5, 6]])  # column-major, as lme4
    np.testing.assert_array_equal(term.theta(T), theta)
    np.testing.assert_array_equal(term.diagonal, [True, False, False, True, False, True])
    np.testing.assert_array_equal(term.lower_bounds, [0, -np.inf, -np.inf, 0, -np.inf, 0])
    np.testing.assert_array_equal(term.T(term.theta_start), np.eye(3))
    independent = CovarianceTerm(2, correlated=False)
    assert independent.n_theta == 2
    np.testing.assert_array_equal(independent.T(np.array([0.5, 2.0])), np.diag([0.5, 2.0]))


def test_glmer_warns_once_per_finding_and_records_the_same_messages() -> None:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        fit = glmer(OHIO, datasets.load_ohio_cancer(), "poisson")
    emitted = [str(w.message) for w in caught if issubclass(w.category, UserWarning)]
    assert any(issubclass(w.category, ScalingWarning) for w in caught)
    assert emitted == fit.warnings
    assert all(w.filename == __file__ for w in caught)  # the warnings point at the user's call


def test_quadrature_is_available_for_exactly_one_scalar_term_and_every_check_asks_the_model() -> None:
    import inspect

    import pytest

    from glmmteach.exceptions import GlmmteachError
    from glmmteach.glmm import api, diagnosis, laplace_check, terms

    ticks = datasets.load_grouseticks()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        scalar = glmer("TICKS ~ cHEIGHT + (1 | LOCATION)", ticks, "poisson")
        vector = glmer("TICKS ~ cHEIGHT + (1 + cHEIGHT | LOCATION)", ticks, "poisson")
        crossed = glmer("TICKS ~ cHEIGHT + (1 | LOCATION) + (1 | BROOD)", ticks, "poisson")
    assert [f.model.quadrature_available for f in (scalar, vector, crossed)] == [True, False, False]
    assert [f.model.one_grouping_factor for f in (scalar, vector, crossed)] == [True, True, False]
    assert terms.quadrature_available([1]) and not terms.quadrature_available([2])
    assert not terms.quadrature_available([1, 1])
    for bars, said in (("(1 + cHEIGHT | LOCATION)", "2 effects per group"),
                       ("(1 | LOCATION) + (1 | BROOD)", "2 random-effects terms")):
        with pytest.raises(GlmmteachError, match=said):
            glmer(f"TICKS ~ cHEIGHT + {bars}", ticks, "poisson", nAGQ=5)
    # the rule is written once: the diagnosis, the Laplace check and glmer's refusal ask it
    for module in (api, diagnosis, laplace_check):
        source = inspect.getsource(module)
        assert "n_re > 1" not in source and "offers_quadrature" not in source


def test_both_representations_solve_the_penalised_system_the_same_way() -> None:
    # A'V and H^{-1}M from each model equal the dense algebra: A = Z Lambda (n x q), H = I + A'WA
    from glmmteach.glmm.sparse import SparseModel, TermLayout

    ticks = datasets.load_grouseticks()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fit = glmer("TICKS ~ cHEIGHT + (1 + cHEIGHT | LOCATION)", ticks, "poisson")
    grouped = fit.model
    data = grouped.data
    sparse_model = SparseModel(data, [TermLayout("LOCATION", data.groups, data.n_groups, data.Z, grouped.covariance)])
    beta = fit.params.to_numpy()
    rng = np.random.default_rng(2)
    V, M = rng.normal(size=(data.nobs, 3)), rng.normal(size=(grouped.q, 2))
    T = grouped.covariance.T(fit.theta)
    A = np.zeros((data.nobs, grouped.q))
    r = data.n_re
    for a in range(r):  # group-major: effect a of group g is column g r + a
        A[np.arange(data.nobs), data.groups * r + a] = (data.Z @ T)[:, a]
    for model in (grouped, sparse_model):
        state = model.conditional_modes(fit.theta, beta, tol=1e-13, min_iter=2)
        H = np.eye(grouped.q) + A.T @ (state.values.fisher[:, None] * A)
        assert model.q == grouped.q
        np.testing.assert_allclose(model.effects_crossprod(state, V), A.T @ V, rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(model.fisher_solve(state, M), np.linalg.solve(H, M), rtol=1e-9, atol=1e-12)
