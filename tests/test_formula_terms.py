"""Model-matrix columns as R builds them, against R (tests/data/formula_terms/reference.json, made by
make_reference.R there; R 4.2, lme4 1.1-31).

- An interaction of factors with several contrast columns each has its columns in R's order, the FIRST factor
  varying fastest (``a2:b2, a3:b2, a2:b3, a3:b3``), from the direct builder and from formulae alike, in glm and
  glmer fits, their predictions and their summaries.
- Arithmetic inside a function call (``log(x + 5)``, ``I(x^2)``, ``exp(x/3)``) is evaluated as R does, with R's
  column names (R's deparse: ``log(x + 5)``, ``exp(x/3)``, ``I(x^2)`` also for ``I(x**2)``); ``scale(x)`` divides by
  R's standard deviation; ``poly(x, 2)`` columns are ``poly(x, 2)1``, ``poly(x, 2)2``. A function that cannot be
  evaluated is a FormulaError naming the term and the functions that can.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from glmmteach import glm, glmer
from glmmteach.exceptions import FormulaError
from glmmteach.formula import build_design
from glmmteach.formula import direct as direct_builder
from glmmteach.formula.backend import DeferredModel

REFERENCE = json.loads((Path(__file__).parent / "data" / "formula_terms" / "reference.json").read_text())


@pytest.fixture(scope="module")
def data() -> pd.DataFrame:
    return pd.DataFrame(REFERENCE["data"])


@pytest.fixture(params=["direct", "formulae"])
def builder(request, monkeypatch) -> str:
    """Each test runs with the direct builder and with formulae (the builder of the formulas it declines)."""
    if request.param == "formulae":
        monkeypatch.setattr(direct_builder, "direct_matrix", lambda *args, **kwargs: None)
    return request.param


def _rhs(formula: str) -> str:
    return formula.removeprefix("~")


@pytest.mark.parametrize("ref", REFERENCE["interaction_matrices"], ids=lambda ref: ref["formula"])
def test_interaction_columns_in_r_order(ref, data, builder):
    design = build_design(f"counts ~ {_rhs(ref['formula'])}", data)
    assert isinstance(design._common, DeferredModel) == (builder == "direct")
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


@pytest.mark.parametrize("ref", REFERENCE["call_matrices"], ids=lambda ref: ref["formula"])
def test_function_calls_evaluated_and_named_as_r(ref, data):
    design = build_design(f"counts ~ {_rhs(ref['formula'])}", data)
    assert design.column_names == ref["names"]
    np.testing.assert_allclose(design.X, np.column_stack(ref["X"]), rtol=1e-13, atol=1e-13)
    rows = [7, 0, 31]  # new rows: scale() and poly() keep the fitted rows' centre and scale, as R's predict does
    X_new, _ = design.new_fixed(data.iloc[rows])
    np.testing.assert_array_equal(X_new, design.X[rows])


def test_python_power_is_r_power(data):
    assert build_design("counts ~ I(x**2)", data).column_names == ["(Intercept)", "I(x^2)"]
    a, b = build_design("counts ~ I(x**2)", data), build_design("counts ~ I(x^2)", data)
    assert a.X.tobytes() == b.X.tobytes()


def test_glm_with_log_of_a_sum_equals_r_and_the_precomputed_column(data):
    fit, ref = glm("counts ~ log(x + 5) + b", data, family="poisson"), REFERENCE["glm_log_shift"]
    assert list(fit.params.index) == ref["names"]
    np.testing.assert_allclose(fit.params, ref["estimate"], rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(fit.bse, ref["se"], rtol=1e-8)
    plain = glm("counts ~ logx5 + b", data.assign(logx5=np.log(data["x"] + 5)), family="poisson")
    np.testing.assert_allclose(fit.params.to_numpy(), plain.params.to_numpy(), rtol=1e-12)
    assert "log(x + 5)" in str(fit.summary())
    new = data.iloc[[2, 40]]
    np.testing.assert_allclose(fit.predict(new), fit.predict().iloc[[2, 40]], rtol=1e-12)


def test_glmer_with_log_of_a_sum_equals_lme4(data):
    fit, ref = glmer("counts ~ log(x + 5) + (1 | g)", data, family="poisson"), REFERENCE["glmer_log_shift"]
    assert list(fit.params.index) == ref["names"]
    np.testing.assert_allclose(fit.params, ref["estimate"], atol=1e-6)
    assert fit.llf == pytest.approx(ref["loglik"], abs=1e-8)
    new = data.iloc[[3, 50]]
    np.testing.assert_allclose(fit.predict(new), fit.predict().iloc[[3, 50]], rtol=1e-12)


def test_random_covariate_of_a_call_named_as_r(data):
    term = build_design("counts ~ 1 + (1 + log(x + 5) | g)", data).random[0]
    assert term.names == ["(Intercept)", "log(x + 5)"]
    np.testing.assert_allclose(term.Z[:, 1], np.log(data["x"] + 5), rtol=1e-15)
    np.testing.assert_array_equal(term.new_covariates(data.iloc[[4, 9]]), term.Z[[4, 9]])


@pytest.mark.parametrize(("formula", "names"), [
    ("counts ~ pmax(x, 1)", ["'pmax(x, 1)'", "pmax()"]),
    ("counts ~ b + log(sqrt(foo(x + 1)))", ["'log(sqrt(foo(x + 1)))'", "foo()"]),
    ("counts ~ x + (1 + ns(x, 3) | g)", ["'ns(x, 3)'", "ns()"]),
    ("counts ~ I(x %% 2)", ["'I(x %% 2)'"]),
])
def test_a_call_that_cannot_be_evaluated_is_a_clear_error(formula, names, data):
    with pytest.raises(FormulaError) as err:
        build_design(formula, data)
    message = str(err.value)
    assert all(name in message for name in names)
    assert "log()" in message and "I()" in message and "scale()" in message  # what a formula may call
