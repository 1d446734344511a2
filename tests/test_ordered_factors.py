"""Ordered factors get R's polynomial contrasts (contr.poly): values, names and fits against R.

Reference: tests/data/ordered_factors/reference.json, made by make_reference.R there (R 4.2, lme4 1.1-31).
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from glmmteach import glm, glmer
from glmmteach.formula import build_design, contr_poly, contr_poly_names
from glmmteach.formula import direct as direct_builder

REFERENCE = json.loads((Path(__file__).parent / "data" / "ordered_factors" / "reference.json").read_text())


@pytest.fixture(scope="module")
def doses() -> pd.DataFrame:
    d = REFERENCE["data"]
    return pd.DataFrame({"y": d["y"], "counts": d["counts"], "x": d["x"], "g": d["g"],
                         "dose": pd.Categorical(d["dose"], categories=d["dose_levels"], ordered=True)})


@pytest.mark.parametrize("k", range(2, 7))
def test_contr_poly_equals_r(k):
    np.testing.assert_allclose(contr_poly(k), np.array(REFERENCE["contr_poly"][k - 2]).reshape(k, k - 1),
                               rtol=0, atol=2e-15)
    assert contr_poly_names(k) == ([REFERENCE["contr_poly_names"][k - 2]] if k == 2
                                   else REFERENCE["contr_poly_names"][k - 2])


@pytest.mark.parametrize(("key", "formula", "family"), [
    ("glm_binomial", "y ~ dose + x", "binomial"),
    ("glm_poisson_interaction", "counts ~ dose * x", "poisson"),
    ("glm_poisson_factor", "counts ~ factor(dose) + x", "poisson"),
])
def test_glm_with_an_ordered_factor_equals_r(key, formula, family, doses):
    fit, ref = glm(formula, doses, family=family), REFERENCE[key]
    assert list(fit.params.index) == ref["names"]  # dose.L, dose.Q, dose.C, dose.L:x, factor(dose).L ...
    np.testing.assert_allclose(fit.params, ref["estimate"], rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(fit.bse, ref["se"], rtol=1e-9)
    assert fit.llf == pytest.approx(ref["loglik"], abs=1e-9)


@pytest.mark.parametrize("direct", [True, False])
def test_glmer_with_an_ordered_factor_equals_lme4(direct, doses, monkeypatch):
    if not direct:  # the same through formulae (the builder for formulas the direct one declines)
        monkeypatch.setattr(direct_builder, "direct_matrix", lambda *args, **kwargs: None)
    fit, ref = glmer("y ~ dose + x + (1 | g)", doses, family="binomial"), REFERENCE["glmer_binomial"]
    assert list(fit.params.index) == ref["names"]
    np.testing.assert_allclose(fit.params, ref["estimate"], atol=1e-6)
    np.testing.assert_allclose(fit.bse, ref["se"], atol=1e-6)
    assert fit.llf == pytest.approx(ref["loglik"], abs=1e-8)


@pytest.mark.parametrize("rhs", ["dose + x", "dose*x", "factor(dose) + x", "x + dose:x + dose", "0 + dose",
                                 "dose:x", "log(g) + dose"])
def test_both_builders_code_ordered_factors_alike(rhs, doses, monkeypatch):
    direct = build_design(f"y ~ {rhs}", doses)
    with monkeypatch.context() as patch:
        patch.setattr(direct_builder, "direct_matrix", lambda *args, **kwargs: None)
        reference = build_design(f"y ~ {rhs}", doses)
    assert direct.column_names == reference.column_names
    assert direct.X.tobytes() == reference.X.tobytes()
    rows = [3, 1, 7, 0]
    new = doses.iloc[rows].assign(dose=lambda t: t["dose"].astype(str))  # plain strings: coded as in the fit
    for design in (direct, reference):
        np.testing.assert_array_equal(design.new_fixed(new)[0], direct.X[rows])


def test_full_coding_and_unordered_factors_keep_indicators(doses):
    assert build_design("y ~ 0 + dose", doses).column_names == ["doselow", "dosemid", "dosehigh", "dosetop"]
    unordered = doses.assign(dose=doses["dose"].cat.as_unordered())
    assert build_design("y ~ dose", unordered).column_names == ["(Intercept)", "dosemid", "dosehigh", "dosetop"]


def test_unused_levels_are_dropped_before_the_contrasts(doses):
    three = doses[doses["dose"] != "top"]  # the categorical keeps 'top' as an unused level
    design = build_design("y ~ dose", three)
    assert design.column_names == ["(Intercept)", "dose.L", "dose.Q"]
    codes = three["dose"].cat.codes.to_numpy()
    np.testing.assert_allclose(design.X[:, 1:], contr_poly(3)[codes], rtol=0, atol=0)


def test_predictions_with_an_ordered_factor(doses):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fit = glmer("y ~ dose + x + (1 | g)", doses, family="binomial")
    new = doses.iloc[:5]
    np.testing.assert_allclose(fit.predict(new), fit.predict().iloc[:5], rtol=1e-13)
