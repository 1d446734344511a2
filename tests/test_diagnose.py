"""Stage test: the diagnosis of a fit (glmmteach.glmm.diagnosis), apart from the optimiser: constructed boundary,
unconverged and indefinite cases, and the passive results object built from an outcome and its diagnosis."""

from __future__ import annotations

import dataclasses
import warnings

import numpy as np
import pytest

from glmmteach import datasets, glmer
from glmmteach.exceptions import ConvergenceWarning, SingularFitWarning
from glmmteach.glmm import GLMMResults, GroupedData, diagnose, fit_glmm


def _no_between_group_variation(seed: int = 30) -> GroupedData:
    """Poisson counts with no random effect at all and groups of equal means: the SD estimate is 0."""
    rng = np.random.default_rng(seed)
    g = np.repeat(np.arange(20), 10)
    x = rng.normal(size=g.size)
    y = rng.poisson(np.exp(0.5 + 0.3 * x)).astype(float)
    return GroupedData.from_arrays(np.column_stack([np.ones(g.size), x]), None, y, g, "poisson")


def _singular_case() -> GroupedData:
    for seed in range(30, 60):  # the first of these seeds whose estimate is on the boundary (most are)
        data = _no_between_group_variation(seed)
        if fit_glmm(data, True).theta[0] == 0.0:
            return data
    raise AssertionError("no boundary case among the seeds")


def test_a_verified_boundary_is_singular_and_converged() -> None:
    data = _singular_case()
    outcome = fit_glmm(data, True)
    assert outcome.boundary_verified and outcome.converged
    diagnosis = diagnose(outcome, data, True, ["(Intercept)", "x"])
    categories = [w.category for w in diagnosis.warnings]
    assert categories.count(SingularFitWarning) == 1 and ConvergenceWarning not in categories
    assert np.all(np.isfinite(diagnosis.cov_beta))


def test_an_unverified_boundary_and_a_large_decrement_are_not_converged() -> None:
    data = _singular_case()
    outcome = fit_glmm(data, True)
    unverified = dataclasses.replace(outcome, boundary_verified=False, converged=False, restarts=3)
    messages = [w.message for w in diagnose(unverified, data, True).warnings]
    assert any("not verified" in m and "3 restarts" in m for m in messages)
    assert not any("boundary (singular)" in m for m in messages)  # an unverified boundary is not reported as one
    stopped = dataclasses.replace(outcome, converged=False, newton_decrement=0.25)
    messages = [w.message for w in diagnose(stopped, data, True).warnings]
    assert any("Newton decrement 0.25" in m for m in messages)


def test_an_indefinite_hessian_gives_conditional_standard_errors_and_says_so() -> None:
    data = _singular_case()
    outcome = fit_glmm(data, True)
    hessian = outcome.hessian.copy()
    hessian[0, 0] = 5.0  # positive curvature in theta: not a maximum of the full likelihood
    diagnosis = diagnose(dataclasses.replace(outcome, hessian=hessian), data, True, ["(Intercept)", "x"])
    assert diagnosis.cov_full is None
    np.testing.assert_allclose(diagnosis.cov_beta, np.linalg.inv(-hessian[1:, 1:]))
    assert any("not positive definite" in w.message and w.category is ConvergenceWarning
               for w in diagnosis.warnings)


@pytest.fixture(scope="module")
def crossover_fit():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return glmer("outcome ~ trt*period + (1|ID)", datasets.load_crossover(), nAGQ=10)


def test_results_object_is_passive(crossover_fit) -> None:
    """Building, printing and querying a results object computes no fit and raises no warning;
    the warnings about a fit come from the diagnosis of the optimiser's outcome."""
    model = crossover_fit.model
    outcome = fit_glmm(model)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        diagnosis = diagnose(outcome, model, column_names=crossover_fit.design.column_names)
        result = GLMMResults(crossover_fit.formula, crossover_fit.family, crossover_fit.design, model, outcome,
                             diagnosis)
        assert result.nAGQ == crossover_fit.nAGQ == outcome.n_nodes
        str(result.summary())
        result._repr_html_()
    assert result.llf == crossover_fit.llf
    assert result.warnings == [w.message for w in diagnosis.warnings] == crossover_fit.warnings
    np.testing.assert_array_equal(result.bse, crossover_fit.bse)


def test_the_ridge_advice_offers_quadrature_only_where_it_exists() -> None:
    """A flat ridge in a fit with a vector random effect (one grouping factor): nAGQ > 1 is refused for it, so
    the advice must not tell the user to refit with more nodes."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        glmer("outcome ~ trt * period + (1 + trt | ID)", datasets.load_crossover(), family="binomial")
    ridge = [str(w.message) for w in caught if "flat likelihood ridge" in str(w.message)]
    assert ridge and all("refit with nAGQ" not in text and "single scalar" in text for text in ridge)
