"""The flat-ridge warning: computed in standardised coordinates, raised once, only where the data
leave a combination of the estimates undetermined (see RIDGE_CURVATURE in glmmteach/glmm/optimize.py)."""

from __future__ import annotations

import json
import re
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

import glmmteach
from glmmteach import datasets
from glmmteach.exceptions import FlatRidgeWarning

CROSSOVER = "outcome ~ trt*period + (1|ID)"
EXTRA_DIR = Path(__file__).parent / "data" / "lme4_extra"
EXTRA = json.loads((EXTRA_DIR / "reference.json").read_text())["cases"]
BOUNDARY_DIR = Path(__file__).parent / "data" / "boundary"
BOUNDARY = json.loads((BOUNDARY_DIR / "reference.json").read_text())["cases"]


def ridge_messages(formula: str, data: pd.DataFrame, **options: Any) -> list[str]:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        glmmteach.glmer(formula, data, **options)
    return [str(w.message) for w in caught if w.category is FlatRidgeWarning]


def curvature(message: str) -> float:
    return float(re.search(r"curvature there is only ([-0-9.e+]+)", message).group(1))


def test_crossover_laplace_warns_once_and_names_the_direction() -> None:
    messages = ridge_messages(CROSSOVER, datasets.load_crossover(), family="binomial")
    assert len(messages) == 1
    assert "theta" in messages[0] and "(Intercept)" in messages[0]  # tau runs up the ridge with the intercept
    assert "nAGQ = 25" in messages[0]  # what would identify it
    assert curvature(messages[0]) < 0.1


def test_rescaling_a_covariate_changes_neither_verdict_nor_curvature() -> None:
    data = datasets.load_crossover()
    recoded = data.assign(trt=10 * data["trt"])
    original = ridge_messages(CROSSOVER, data, family="binomial")
    rescaled = ridge_messages(CROSSOVER, recoded, family="binomial")
    assert len(original) == len(rescaled) == 1
    assert curvature(rescaled[0]) == pytest.approx(curvature(original[0]), rel=1e-3)


@pytest.mark.parametrize("n_agq", [25, 100])
def test_accurate_quadrature_of_the_crossover_is_silent(n_agq: int) -> None:
    assert ridge_messages(CROSSOVER, datasets.load_crossover(), family="binomial", nAGQ=n_agq) == []


def test_ohio_is_silent() -> None:
    formula = "death ~ offset(logpop) + factor(sex) + factor(race) + year + (1 | county)"
    assert ridge_messages(formula, datasets.load_ohio_cancer(), family="poisson") == []


@pytest.mark.parametrize("name", list(EXTRA))
def test_lme4_extra_cases_are_silent(name: str) -> None:
    case = EXTRA[name]
    data = pd.read_csv(EXTRA_DIR / case["data"])
    assert ridge_messages(case["formula"], data, family=case["family"], link=case["link"], nAGQ=case["nAGQ"],
                          offset=case["offset"], trials=case["trials"]) == []


@pytest.mark.parametrize("name", list(BOUNDARY))
def test_simulated_40_by_8_fits_are_silent(name: str) -> None:
    case = BOUNDARY[name]
    data = pd.read_csv(BOUNDARY_DIR / f"{name}.csv")
    assert ridge_messages(case["formula"], data, family=case["family"]) == []


def test_nearly_collinear_covariates_are_named() -> None:
    rng = np.random.default_rng(7)
    g = np.repeat(np.arange(40), 8)
    x1 = rng.normal(size=g.size)
    data = pd.DataFrame({"g": g, "x1": x1, "x2": x1 + 0.005 * rng.normal(size=g.size)})
    data["y"] = rng.poisson(np.exp(0.5 + 0.3 * x1 + rng.normal(0, 0.4, 40)[g]))
    messages = ridge_messages("y ~ x1 + x2 + (1 | g)", data, family="poisson")
    assert len(messages) == 1
    assert "x1" in messages[0] and "x2" in messages[0] and "nearly interchangeable" in messages[0]
