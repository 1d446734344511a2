"""Bad input to glmer, found by trying it: each gets a GlmmteachError naming the column or value
(or, where lme4 fits it, a correct fit)."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

import glmmteach
from glmmteach.exceptions import DataError, FormulaError


@pytest.fixture(scope="module")
def counts() -> pd.DataFrame:
    rng = np.random.default_rng(11)
    g = np.repeat(np.arange(20), 6)
    x = rng.normal(size=g.size)
    y = rng.poisson(np.exp(0.5 + 0.3 * x + rng.normal(0, 0.5, 20)[g]))
    return pd.DataFrame({"g": [f"s{i}" for i in g], "x": x, "y": y})


def fit(formula: str, data: pd.DataFrame, **options):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return glmmteach.glmer(formula, data, **options)


def test_count_of_2_to_the_62_is_refused(counts: pd.DataFrame) -> None:
    data = counts.assign(y=counts["y"].astype(np.int64))
    data.loc[4, "y"] = 2**62
    with pytest.raises(DataError, match=r"counts in 'y' are too large.*4\.61169e\+18 \(row 4\)"):
        fit("y ~ x + (1 | g)", data, family="poisson")


def test_counts_near_1e15_are_refused_not_returned_as_start_values(counts: pd.DataFrame) -> None:
    with pytest.raises(DataError, match="counts in 'y' are too large for a poisson log-likelihood"):
        fit("y ~ x + (1 | g)", counts.assign(y=counts["y"] + 10**15), family="poisson")


def test_trials_of_1e12_are_refused(counts: pd.DataFrame) -> None:
    data = counts.assign(n=10**12, k=3 * 10**11 + counts["y"])
    with pytest.raises(DataError, match=r"binomial trials 'n' are too large.*1e\+12"):
        fit("k ~ x + (1 | g)", data, family="binomial", trials="n")


def test_large_counts_within_double_precision_still_fit(counts: pd.DataFrame) -> None:
    result = fit("y ~ x + (1 | g)", counts.assign(y=counts["y"] + 10**6), family="poisson")
    assert result.converged


def test_infinite_covariate_is_named(counts: pd.DataFrame) -> None:
    data = counts.copy()
    data.loc[3, "x"] = np.inf
    with pytest.raises(DataError, match=r"column 'x' is infinite \(inf\) in row 3"):
        fit("y ~ x + (1 | g)", data, family="poisson")


def test_fewer_observations_than_random_effects_is_refused_as_lme4_does(counts: pd.DataFrame) -> None:
    one_per_group = counts.groupby("g").head(1)
    with pytest.raises(DataError, match=r"number of observations \(=20\) < number of random effects \(=40\) "
                                        r"for term \(1 \+ x \| g\)"):
        fit("y ~ x + (1 + x | g)", one_per_group, family="poisson")


def test_two_observations_per_group_fit_as_lme4_does(counts: pd.DataFrame) -> None:
    assert fit("y ~ x + (1 + x | g)", counts.groupby("g").head(2), family="poisson").converged


def test_a_single_group_is_refused(counts: pd.DataFrame) -> None:
    with pytest.raises(DataError, match=r"grouping factors must have > 1 sampled level: 'g' has only 'one'"):
        fit("y ~ x + (1 | g)", counts.assign(g="one"), family="poisson")


def test_all_zero_random_effect_column_is_refused(counts: pd.DataFrame) -> None:
    with pytest.raises(DataError, match=r"random-effect column 'c' of \(0 \+ c \| g\) is zero in every row"):
        fit("y ~ x + (0 + c | g)", counts.assign(c=0.0), family="poisson")


def test_unknown_operator_in_a_bar_is_a_formula_error(counts: pd.DataFrame) -> None:
    with pytest.raises(FormulaError, match=r"grouping factor of \(1 \| g \+ x\) must be a column name, an "
                                           r"interaction of columns \(a:b\) or a nesting"):
        fit("y ~ x + (1 | g + x)", counts, family="poisson")
    with pytest.raises(FormulaError, match=r"uses '%' left of the bar"):
        fit("y ~ x + (x %in% g | g)", counts, family="poisson")



@pytest.mark.parametrize("formula", ["y ~ 0 + (1 | g)", "y ~ 0 + offset(x) + (1 | g)"])
def test_no_fixed_effect_is_refused_by_name(counts: pd.DataFrame, formula: str) -> None:
    with pytest.raises(FormulaError, match="no fixed effect"):
        fit(formula, counts, family="poisson")
