"""Likelihood-ratio tests and information criteria against R."""

from __future__ import annotations

import numpy as np
import pytest

import glmmteach as gt
from glmmteach.exceptions import GlmmteachError


def test_lrt_model1_vs_model2_reproduces_r(crossover, reference):
    m1 = gt.glm("outcome ~ 1 + trt", crossover)
    m2 = gt.glm("outcome ~ 1 + trt + period", crossover)
    table = gt.anova(m1, m2)
    ref = reference["crossover"]["lrt_model1_vs_model2"]
    assert table["Deviance"].iloc[1] == pytest.approx(ref["deviance"], rel=1e-6)
    assert table["Pr(>Chi)"].iloc[1] == pytest.approx(ref["p"], rel=1e-6)
    assert table["Df"].iloc[1] == ref["df"]
    text = str(table)
    assert "Analysis of Deviance Table" in text
    assert "2       131     163.89  1  0.53169   0.4659" in text


def test_compare_ic_tabulates_aic(crossover, reference):
    fits = [gt.glm(f, crossover) for f in ("outcome ~ trt", "outcome ~ trt + period", "outcome ~ trt * period")]
    table = gt.compare_ic(*fits, names=["model 1", "model 2", "model 3"])
    expected = [reference["crossover"][f"glm_model{i}"]["aic"] for i in (1, 2, 3)]
    np.testing.assert_allclose(table["AIC"], expected, rtol=1e-9)
    assert table["AIC"].idxmin() == "model 1"
    np.testing.assert_allclose(table["BIC"], table["AIC"] + table["df"] * (np.log(134) - 2), rtol=1e-12)


def test_anova_refuses_quasi_and_unordered(crossover, ohio):
    small = gt.glm("outcome ~ trt", crossover)
    big = gt.glm("outcome ~ trt + period", crossover)
    with pytest.raises(GlmmteachError, match="smallest to the largest"):
        gt.anova(big, small)
    q1 = gt.glm("death ~ offset(logpop) + factor(sex)", ohio, family="quasipoisson")
    q2 = gt.glm("death ~ offset(logpop) + factor(sex) + year", ohio, family="quasipoisson")
    with pytest.raises(GlmmteachError, match="no likelihood"):
        gt.anova(q1, q2)
    with pytest.raises(GlmmteachError, match="different numbers of observations"):
        gt.anova(small, q1)
