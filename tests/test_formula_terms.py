"""Model-matrix columns as R builds them, against R (tests/data/formula_terms/reference.json, made by
make_reference.R there; R 4.2, lme4 1.1-31).

- An interaction of factors with several contrast columns each has its columns in R's order, the FIRST factor
  varying fastest (``a2:b2, a3:b2, a2:b3, a3:b3``), from the direct builder and from formulae alike, in glm and
  glmer fits, their predictions and their summaries.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from glmmteach import formula as formula_module
from glmmteach import glm, glmer
from glmmteach.formula import build_design

REFERENCE = json.loads((Path(__file__).parent / "data" / "formula_terms" / "reference.json").read_text())


@pytest.fixture(scope="module")
def data() -> pd.DataFrame:
    return pd.DataFrame(REFERENCE["data"])


@pytest.fixture(params=["direct", "formulae"])
def builder(request, monkeypatch) -> str:
    """Each test runs with the direct builder and with formulae (the builder of the formulas it declines)."""
    if request.param == "formulae":
        monkeypatch.setattr(formula_module, "_direct_matrix", lambda *args, **kwargs: None)
    return request.param


def _rhs(formula: str) -> str:
    return formula.removeprefix("~")


@pytest.mark.parametrize("ref", REFERENCE["interaction_matrices"], ids=lambda ref: ref["formula"])
def test_interaction_columns_in_r_order(ref, data, builder):
    design = build_design(f"counts ~ {_rhs(ref['formula'])}", data)
    assert isinstance(design._common, formula_module._DeferredModel) == (builder == "direct")
    assert design.column_names == ref["names"]
    np.testing.assert_array_equal(design.X, np.column_stack(ref["X"]))
    new = data.iloc[[7, 0, 31, 4]]  # new rows are coded in the same order
    X_new, _ = design.new_fixed(new)
    np.testing.assert_array_equal(X_new, design.X[[7, 0, 31, 4]])


def test_glm_with_a_factor_interaction_equals_r(data, builder):
    fit, ref = glm("counts ~ factor(a) * b + x", data, family="poisson"), REFERENCE["glm_interaction"]
    assert list(fit.params.index) == ref["names"]
    np.testing.assert_allclose(fit.params, ref["estimate"], rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(fit.bse, ref["se"], rtol=1e-8)
    assert fit.llf == pytest.approx(ref["loglik"], abs=1e-9)
    np.testing.assert_allclose(fit.predict(data.iloc[::7], type="response"), fit.predict(type="response").iloc[::7],
                               rtol=1e-12)
    rows = [line.split()[0] for line in str(fit.summary()).splitlines() if line.startswith(("factor(a)", "b"))]
    assert rows == ref["names"][1:5] + ref["names"][6:]


def test_glmer_with_a_factor_interaction_equals_lme4(data, builder):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fit = glmer("counts ~ factor(a) * b + (1 | g)", data, family="poisson")
    ref = REFERENCE["glmer_interaction"]
    assert list(fit.params.index) == ref["names"]
    np.testing.assert_allclose(fit.params, ref["estimate"], atol=1e-6)
    np.testing.assert_allclose(fit.bse, ref["se"], rtol=1e-4)  # (lme4's from its finite-difference Hessian)
    assert fit.llf == pytest.approx(ref["loglik"], abs=1e-8)
    new = data.iloc[[3, 50, 99]]
    np.testing.assert_allclose(fit.predict(new), fit.predict().iloc[[3, 50, 99]], rtol=1e-12)
    np.testing.assert_allclose(fit.predict(new, conditional=False), fit.predict(conditional=False).iloc[[3, 50, 99]],
                               rtol=1e-12)
    rows = [line.split()[0] for line in str(fit.summary()).splitlines() if line.startswith(("factor(a)", "b"))]
    assert rows[: len(ref["names"]) - 1] == ref["names"][1:]


@pytest.mark.parametrize("bar", ["factor(a)*b", "0 + b:c4"])
def test_random_covariates_of_an_interaction_in_r_order(bar, data, builder):
    design = build_design(f"counts ~ 1 + ({bar} | g)", data)
    term = design.random[0]
    mm = {"factor(a)*b": REFERENCE["interaction_matrices"][1]}.get(bar)
    if mm is not None:  # (the same columns as the fixed-effects matrix of factor(a) * b, without x)
        names = [nm for nm in mm["names"] if nm != "x"]
        assert term.names == names
        np.testing.assert_array_equal(term.Z, np.column_stack([v for nm, v in zip(mm["names"], mm["X"],
                                                                                   strict=True) if nm != "x"]))
    else:
        assert term.names[:4] == ["bp:c4t", "bq:c4t", "br:c4t", "bp:c4u"]
    np.testing.assert_array_equal(term.new_covariates(data.iloc[[5, 2, 60]]), term.Z[[5, 2, 60]])
