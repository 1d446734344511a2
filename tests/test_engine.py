"""The GLMM engine's stages (glmmteach.glmm): terms, the deviance function, fit diagnosis, passive results."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from glmmteach import datasets, glmer
from glmmteach.exceptions import ScalingWarning
from glmmteach.glmm import CovarianceTerm, GLMMResults, diagnose, fit_glmm, make_devfun

OHIO = "death ~ offset(logpop) + factor(sex) + factor(race) + year + (1 | county)"


@pytest.fixture(scope="module")
def crossover_fit():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return glmer("outcome ~ trt*period + (1|ID)", datasets.load_crossover(), nAGQ=10)


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


def test_glmer_warns_once_per_finding_and_records_the_same_messages() -> None:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        fit = glmer(OHIO, datasets.load_ohio_cancer(), "poisson")
    emitted = [str(w.message) for w in caught if issubclass(w.category, UserWarning)]
    assert any(issubclass(w.category, ScalingWarning) for w in caught)
    assert emitted == fit.warnings
    assert all(w.filename == __file__ for w in caught)  # the warnings point at the user's call


def test_results_object_is_passive(crossover_fit) -> None:
    """Building, printing and querying a results object computes no fit and raises no warning;
    the warnings about a fit come from the diagnosis of the optimiser's outcome."""
    data = crossover_fit.model
    outcome = fit_glmm(data, crossover_fit.correlated, crossover_fit.nAGQ)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        diagnosis = diagnose(outcome, data, crossover_fit.correlated, crossover_fit.design.column_names)
        result = GLMMResults(crossover_fit.formula, crossover_fit.family, crossover_fit.design, data, outcome,
                             diagnosis, crossover_fit.nAGQ)
        str(result.summary())
        result._repr_html_()
    assert result.llf == crossover_fit.llf
    assert result.warnings == [w.message for w in diagnosis.warnings] == crossover_fit.warnings
    np.testing.assert_array_equal(result.bse, crossover_fit.bse)


@pytest.mark.parametrize("n_nodes", [2, 7, 25])
def test_agq_nodes_in_blocks_are_one_node_at_a_time(n_nodes: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """The quadrature nodes are evaluated in blocks (one NumPy call per block, not per node): any block size,
    down to one node per block, gives the same log-likelihood and gradient bit for bit (the same operations
    on the same numbers, summed in node order); rows in group order or not."""
    from glmmteach.glmm import devfun
    from glmmteach.glmm.model import GroupedData

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


def test_group_sum_rows_is_group_sum_of_each_row() -> None:
    from glmmteach.glmm.model import GroupedData

    rng = np.random.default_rng(12)
    groups = rng.integers(0, 9, 50)
    data = GroupedData.from_arrays(np.ones((50, 1)), np.ones((50, 1)), rng.poisson(2.0, 50), groups, "poisson")
    values = rng.normal(size=(4, 50))
    for d in (data, data.sorted_by_group()):  # bincount per row, or one reduceat over the rows in group order
        np.testing.assert_array_equal(d.group_sum_rows(values), np.stack([d.group_sum(row) for row in values]))
