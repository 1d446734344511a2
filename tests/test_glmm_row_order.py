"""The engine fits rows in group order (contiguous group sums); a user's row order changes nothing."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

from glmmteach import datasets
from glmmteach.exceptions import ScalingWarning
from glmmteach.glmm import glmer
from glmmteach.glmm.model import GroupedData

OHIO = "death ~ offset(logpop) + factor(sex) + factor(race) + year + (1 | county)"


def _fit(frame: pd.DataFrame, formula: str, family: str, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ScalingWarning)
        return glmer(formula, frame, family, **kwargs)


@pytest.mark.parametrize("n_agq", [1, 5])
def test_shuffled_rows_give_the_same_fit_in_the_users_row_order(n_agq: int) -> None:
    ordered = datasets.load_ohio_cancer()
    shuffled = ordered.sample(frac=1.0, random_state=3)
    a, b = _fit(ordered, OHIO, "poisson", nAGQ=n_agq), _fit(shuffled, OHIO, "poisson", nAGQ=n_agq)
    assert not np.all(np.diff(b._data.groups) >= 0)  # the user's rows really are out of group order
    assert b.llf == pytest.approx(a.llf, abs=1e-8)
    np.testing.assert_allclose(b.params, a.params, rtol=1e-7)
    np.testing.assert_allclose(b.bse, a.bse, rtol=1e-5)
    # fitted values and residuals come back in the user's row order (the frame's index)
    np.testing.assert_allclose(b.fittedvalues.to_numpy(), a.fittedvalues.loc[shuffled.index].to_numpy(), rtol=1e-7)
    np.testing.assert_allclose(b.resid().to_numpy(), a.resid().loc[shuffled.index].to_numpy(), rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(b.ranef.to_numpy(), a.ranef.to_numpy(), rtol=1e-6, atol=1e-9)


def test_shuffled_rows_random_slope() -> None:
    rng = np.random.default_rng(7)
    g = np.repeat(np.arange(30), 12)
    x = rng.normal(size=g.size)
    eta = 0.3 + 0.5 * x + rng.normal(0, 0.6, 30)[g] + rng.normal(0, 0.4, 30)[g] * x
    frame = pd.DataFrame({"y": rng.poisson(np.exp(eta)), "x": x, "g": g})
    shuffled = frame.sample(frac=1.0, random_state=1)
    a, b = _fit(frame, "y ~ x + (1 + x | g)", "poisson"), _fit(shuffled, "y ~ x + (1 + x | g)", "poisson")
    assert b.llf == pytest.approx(a.llf, abs=1e-8)
    np.testing.assert_allclose(b.params, a.params, rtol=1e-6)
    np.testing.assert_allclose(b.fittedvalues.to_numpy(), a.fittedvalues.loc[shuffled.index].to_numpy(), rtol=1e-6)


def test_sorted_copy_keeps_the_model() -> None:
    rng = np.random.default_rng(2)
    groups = rng.integers(0, 5, size=40)
    X = np.column_stack([np.ones(40), rng.normal(size=40)])
    trials = rng.integers(1, 6, size=40).astype(float)
    y = rng.binomial(trials.astype(int), 0.4).astype(float)
    data = GroupedData(X, np.ones((40, 1)), y, groups, 5, "binomial", trials=trials,
                       offset=rng.normal(size=40), prior_weights=rng.integers(1, 3, size=40).astype(float))
    work = data.sorted_by_group()
    assert work is not data and np.all(np.diff(work.groups) >= 0)
    assert work.log_constant == pytest.approx(data.log_constant, rel=1e-14)
    order = np.argsort(groups, kind="stable")
    np.testing.assert_array_equal(work.response, data.response[order])
    np.testing.assert_array_equal(work.family_weights, data.family_weights[order])
    np.testing.assert_allclose(work.group_sum(work.y), data.group_sum(data.y))
    assert work.sorted_by_group() is work
