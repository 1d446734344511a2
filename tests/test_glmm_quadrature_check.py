"""The quadrature check at an adaptive Gauss-Hermite optimum (QUADRATURE_TOLERANCE in glmmteach/glmm/optimize.py):
a fit whose log-likelihood changes with twice the nodes is not called converged, because its optimum is a
maximum of the approximation's error, not of the likelihood."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import glmmteach
from glmmteach import datasets
from glmmteach.exceptions import ConvergenceWarning
from glmmteach.integration import cluster_exact

CROSSOVER = "outcome ~ trt*period + (1|ID)"
RUNAWAY = Path(__file__).parent / "data" / "runaway" / "crossover_sim130.csv"


def fit_with_warnings(data: pd.DataFrame, n_agq: int):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        fit = glmmteach.glmer(CROSSOVER, data, family="binomial", nAGQ=n_agq)
    return fit, [str(w.message) for w in caught if w.category is ConvergenceWarning]


def exact_loglik(fit, data: pd.DataFrame) -> float:
    """The marginal log-likelihood at the fit's estimates, each patient's integral by scipy.integrate.quad."""
    eta = fit.design.X @ fit.params.to_numpy()
    codes = np.unique(data["ID"], return_inverse=True)[1]
    y = data["outcome"].to_numpy(dtype=float)
    return sum(cluster_exact(y[codes == g], eta[codes == g], fit.sd_re.iloc[0]) for g in range(codes.max() + 1))


def pattern_supremum(data: pd.DataFrame) -> float:
    """No parameter value beats the multinomial fit of each sequence's outcome-pattern counts."""
    wide = data.pivot(index="ID", columns="period", values="outcome")
    pattern = wide[0].astype(str) + wide[1].astype(str)
    counts = pd.crosstab(data.groupby("ID")["group"].first(), pattern).to_numpy(dtype=float)
    shares = counts / counts.sum(axis=1, keepdims=True)
    return float(np.sum(counts[counts > 0] * np.log(shares[counts > 0])))


def test_runaway_tau_fit_is_not_called_converged() -> None:
    data = pd.read_csv(RUNAWAY)
    fit, messages = fit_with_warnings(data, 25)
    # Why the fit must not be called converged: its log-likelihood is a quadrature artefact, above the true
    # value at the same estimates and even above the likelihood's supremum over all parameter values.
    assert fit.sd_re.iloc[0] > 20
    assert fit.llf > exact_loglik(fit, data) + 1.0
    assert fit.llf > pattern_supremum(data) + 1.0
    assert not fit.converged
    assert len(messages) == 1 and messages[0].startswith("the nAGQ = 25 quadrature is not accurate at the estimates")
    assert "with 50 nodes" in messages[0] and "may be infinite" in messages[0]


@pytest.mark.parametrize("n_agq", [25, 50])
def test_accurate_crossover_fit_passes_the_check(n_agq: int) -> None:
    fit, messages = fit_with_warnings(datasets.load_crossover(), n_agq)
    assert fit.converged and messages == []


def test_too_few_nodes_on_the_crossover_is_not_converged_and_says_refit() -> None:
    # lesson 7: the crossover estimates move until about 25 nodes; at 10 nodes tau-hat is 8.6, not 4.9
    fit, messages = fit_with_warnings(datasets.load_crossover(), 10)
    assert not fit.converged
    assert len(messages) == 1 and "Refit with nAGQ = 25" in messages[0]
