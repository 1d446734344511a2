"""R's response convention, in one place (glmmteach.formula.response), used by glm and the GLMM engine alike.

The family is fitted to successes / trials with prior weight x trials as its weights; a row with 0 trials has
weight 0; a prior weight w on a row is the row counted w times. The forms of the response (cbind, factor,
character, logical, trials=) are compared with R in tests/test_formula_forms.py; here: the convention's
functions, the same convention in glm and glmer, and bad offset=/weights=/trials= named in a GlmmteachError.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from glmmteach import glm, glmer
from glmmteach.exceptions import DataError, GlmmteachError
from glmmteach.formula import build_design, parse_formula
from glmmteach.formula.response import family_weights, proportions, read_response
from glmmteach.glmm.model import GroupedData

HERE = Path(__file__).parent / "data" / "response"
REFERENCE = json.loads((HERE / "reference.json").read_text())


@pytest.fixture(scope="module")
def counts() -> pd.DataFrame:
    """Binomial successes out of 0-6 trials in 12 groups, with a covariate and prior weights 1 or 2."""
    rng = np.random.default_rng(15)
    n = 96
    data = pd.DataFrame({"x": rng.normal(size=n), "g": np.repeat(np.arange(12), 8),
                         "n": rng.integers(1, 7, n), "w": rng.choice([1.0, 2.0], n)})
    p = 1 / (1 + np.exp(-(-0.3 + 0.8 * data["x"] + rng.normal(0, 0.7, 12)[data["g"]])))
    data["s"] = rng.binomial(data["n"], p)
    return data


def test_proportions_are_successes_over_trials_and_zero_without_trials():
    y, trials = np.array([0.0, 2.0, 3.0, 0.0]), np.array([4.0, 4.0, 3.0, 0.0])
    assert proportions(y, trials).tolist() == [0.0, 0.5, 1.0, 0.0]  # (no 0/0 in the row with no trials)


def test_family_weights_are_trials_times_prior_weights():
    trials, prior = np.array([2.0, 0.0, 5.0]), np.array([0.5, 3.0, 2.0])
    assert family_weights(trials, prior).tolist() == [1.0, 0.0, 10.0]
    assert family_weights(trials, None) is trials and family_weights(None, prior) is prior
    assert family_weights(None, None) is None


def test_grouped_data_is_fitted_to_the_same_response_and_weights(counts):
    design = build_design("s ~ x + (1 | g)", counts, family="binomial", trials="n", weights="w")
    term = design.random[0]
    model = GroupedData(design.X, term.Z, design.y, term.group_codes, term.n_groups, "binomial",
                        trials=design.trials, prior_weights=design.weights)
    np.testing.assert_array_equal(model.response, proportions(design.y, design.trials))
    np.testing.assert_array_equal(model.family_weights, family_weights(design.trials, design.weights))


def _doubled(data: pd.DataFrame) -> pd.DataFrame:
    return pd.concat([data, data[data["w"] == 2]], ignore_index=True)


def test_a_prior_weight_is_the_row_counted_that_often_in_glm(counts):
    weighted = glm("s ~ x", counts, family="binomial", trials="n", weights="w")
    repeated = glm("s ~ x", _doubled(counts), family="binomial", trials="n")
    np.testing.assert_allclose(weighted.params, repeated.params, rtol=1e-10)
    assert weighted.llf == pytest.approx(repeated.llf, rel=1e-12)
    assert weighted.deviance == pytest.approx(repeated.deviance, rel=1e-12)


def test_a_prior_weight_is_the_row_counted_that_often_in_glmer(counts):
    weighted = glmer("s ~ x + (1 | g)", counts, family="binomial", trials="n", weights="w")
    repeated = glmer("s ~ x + (1 | g)", _doubled(counts), family="binomial", trials="n")
    np.testing.assert_allclose(weighted.params, repeated.params, rtol=1e-6)
    assert weighted.llf == pytest.approx(repeated.llf, abs=1e-8)


def test_rows_with_zero_trials_count_in_no_likelihood(counts):
    extra = counts.iloc[:10].assign(n=0, s=0)
    with_zeros = pd.concat([counts, extra], ignore_index=True)
    design = build_design("s ~ x", with_zeros, family="binomial", trials="n")
    assert np.all(design.weights[-10:] == 0) and np.all(design.weights[:-10] == 1)
    fit, without = glm("s ~ x", with_zeros, family="binomial", trials="n"), glm("s ~ x", counts, "binomial", trials="n")
    np.testing.assert_allclose(fit.params, without.params, rtol=1e-12)
    assert (fit.nobs, fit.llf) == (without.nobs, pytest.approx(without.llf, rel=1e-12))
    mixed = glmer("s ~ x + (1 | g)", with_zeros, family="binomial", trials="n")
    assert mixed.llf == pytest.approx(glmer("s ~ x + (1 | g)", counts, "binomial", trials="n").llf, abs=1e-8)


@pytest.mark.parametrize(("formula", "key"), [("cbind(succ, trials - succ) ~ x", "glm_trials_weights"),
                                            ("y ~ x", "glm_binary_weights")], ids=["trials", "binary"])
def test_glm_with_prior_weights_equals_r(formula, key):
    # with trials, R's log-likelihood counts a row of weight w w times; with 0/1 responses the weights are trials
    fit, ref = glm(formula, pd.read_csv(HERE / "weights.csv"), family="binomial", weights="w"), REFERENCE[key]
    assert list(fit.params.index) == ref["names"]
    np.testing.assert_allclose(fit.params, ref["estimate"], rtol=1e-9)
    np.testing.assert_allclose(fit.bse, ref["se"], rtol=1e-9)
    for name in ("llf", "aic", "bic", "deviance"):
        assert getattr(fit, name) == pytest.approx(ref["loglik" if name == "llf" else name], rel=1e-10), name
    assert (fit.nobs, fit.df_resid) == (ref["nobs"], ref["df_residual"])


def test_glmer_with_trials_and_prior_weights_equals_lme4():
    data, ref = pd.read_csv(HERE / "weights.csv"), REFERENCE["glmer_trials_weights"]
    for fit in (glmer("cbind(succ, trials - succ) ~ x + (1 | g)", data, family="binomial", weights="w"),
                glmer("succ ~ x + (1 | g)", data, family="binomial", trials="trials", weights="w")):
        np.testing.assert_allclose(fit.params, ref["estimate"], rtol=2e-6)
        np.testing.assert_allclose(fit.bse, ref["se"], rtol=1e-4)
        np.testing.assert_allclose(fit.theta, ref["theta"], rtol=2e-5)
        assert fit.llf == pytest.approx(ref["loglik"], abs=1e-8)


def _read(formula: str, data: pd.DataFrame, family: str | None = "binomial", trials=None, weights=None):
    from glmmteach.families import get_family

    columns = {name: data[name] for name in data.columns}
    return read_response(parse_formula(formula), columns, None if family is None else get_family(family),
                         trials, weights)


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        (["no", "yes", "yes", "no"], [0, 1, 1, 0]),  # characters: levels sorted, the first is failure
        (pd.Categorical(["no", "yes", "yes", "no"], categories=["yes", "no"]), [1, 0, 0, 1]),  # a factor's order
        ([True, False, True, True], [1, 0, 1, 1]),
        (["b", "c", "a", "a"], [1, 1, 0, 0]),  # every level after the first is success
    ],
)
def test_binary_responses_read_as_r_reads_them(values, expected):
    y, trials, weights = _read("r ~ 1", pd.DataFrame({"r": values}))
    assert y.tolist() == expected and trials is None and weights.tolist() == [1.0] * 4


def test_cbind_gives_the_trials_and_zero_trials_weight_zero():
    data = pd.DataFrame({"s": [1, 0, 2], "f": [1, 0, 3], "n": [2, 0, 5]})
    y, trials, weights = _read("cbind(s, f) ~ 1", data, weights=np.array([2.0, 3.0, 1.0]))
    assert (y.tolist(), trials.tolist(), weights.tolist()) == ([1, 0, 2], [2, 0, 5], [2, 0, 1])
    assert _read("cbind(s, n - s) ~ 1", data)[1].tolist() == [2, 0, 5]


def test_negative_weights_are_refused():
    with pytest.raises(DataError, match="weights must be non-negative"):
        _read("y ~ 1", pd.DataFrame({"y": [0, 1]}), weights=np.array([1.0, -1.0]))


BAD_VALUES = [({}, "dict {}"), ({1, 2}, r"set \{1, 2\}"), (object(), "object <object"), (3, "int 3"),
              (["a"] * 96, r"list \['a', 'a'"), ((x for x in range(96)), "generator")]


@pytest.mark.parametrize("argument", ["trials", "weights", "offset"])
@pytest.mark.parametrize(("value", "shown"), BAD_VALUES, ids=["dict", "set", "object", "int", "text", "generator"])
@pytest.mark.parametrize("fitter", ["glm", "glmer"])
def test_wrong_types_of_per_row_arguments_are_named(fitter, argument, value, shown, counts):
    message = rf"{argument}= must be a column name or one number per row \(96: an array, list or Series\), got {shown}"
    family = "poisson" if argument == "offset" else "binomial"
    with pytest.raises(GlmmteachError, match=message):
        if fitter == "glm":
            glm("s ~ x", counts, family=family, **{argument: value})
        else:
            glmer("s ~ x + (1 | g)", counts, family=family, **{argument: value})


def test_wrong_types_are_named_with_a_subset_too(counts):
    with pytest.raises(GlmmteachError, match=r"trials= must be a column name .* got dict \{\}"):
        glm("s ~ x", counts, family="binomial", trials={}, subset="x > 0")
    with pytest.raises(GlmmteachError, match=r"weights= must have one value per row \(96\), got shape \(5,\)"):
        glm("s ~ x", counts, family="binomial", weights=[1.0] * 5)
