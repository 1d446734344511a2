"""Bad input gets a clear error naming the column, value or option at fault."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import glmmteach as gt
from glmmteach.exceptions import DataError, FamilyError, FormulaError, MissingDataWarning


def test_missing_column_is_named(crossover):
    with pytest.raises(DataError, match="column 'dose' named in the formula is not in data"):
        gt.glm("outcome ~ trt + dose", crossover)


def test_binomial_outcome_outside_01_without_trials():
    data = pd.DataFrame({"y": [0, 1, 2, 1], "x": [1, 2, 3, 4]})
    with pytest.raises(DataError, match=r"'y' must be 0/1 but has value 2.0.*trials="):
        gt.glm("y ~ x", data)


@pytest.mark.parametrize(("value", "message"), [(-1, "negative count -1.0"), (1.5, "whole counts")])
def test_bad_poisson_counts(value, message):
    data = pd.DataFrame({"y": [0, 3, value, 1], "x": [1, 2, 3, 4]})
    with pytest.raises(DataError, match=message):
        gt.glm("y ~ x", data, family="poisson")


def test_unknown_family_and_link(crossover):
    with pytest.raises(FamilyError, match="unknown family 'binomail'"):
        gt.glm("outcome ~ trt", crossover, family="binomail")
    with pytest.raises(FamilyError, match="link 'loglog' is not available for the binomial family"):
        gt.glm("outcome ~ trt", crossover, link="loglog")


def test_empty_data_frame(crossover):
    with pytest.raises(DataError, match="empty"):
        gt.glm("outcome ~ trt", crossover.iloc[:0])


def test_bad_formulas(crossover):
    with pytest.raises(FormulaError, match="exactly one '~'"):
        gt.glm("outcome trt", crossover)
    with pytest.raises(FormulaError, match="cbind"):
        gt.glm("cbind(outcome, 1 - outcome) ~ trt", crossover)
    with pytest.raises(FormulaError, match="unbalanced"):
        gt.glm("outcome ~ factor(trt", crossover)


def test_trials_out_of_range():
    data = pd.DataFrame({"y": [1, 5], "n": [3, 4], "x": [0, 1]})
    with pytest.raises(DataError, match="between 0 and the trials; it has value 5.0"):
        gt.glm("y ~ x", data, trials="n")


def test_missing_rows_dropped_and_counted(crossover):
    data = crossover.astype({"trt": float}).copy()
    data.loc[[0, 5, 7], "trt"] = np.nan
    with pytest.warns(MissingDataWarning, match="3 row"):
        fit = gt.glm("outcome ~ trt", data)
    assert fit.nobs == 131 and fit.design.dropped_rows == 3
    assert not fit.design.row_index.isin([0, 5, 7]).any()


def test_data_not_modified(crossover):
    before = crossover.copy()
    gt.glm("outcome ~ trt*period", crossover)
    pd.testing.assert_frame_equal(crossover, before)
