"""A GLM without coefficients (``y ~ 0``, ``y ~ 0 + offset(z)``) is fitted and summarised as R does: the linear
predictor is the offset, R's ``glm.fit`` makes 0 iterations and ``print.summary.glm`` writes "No Coefficients"
where the table would be."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import glmmteach as gt
from glmmteach.rformat import coef_table_text

DATA = pd.DataFrame({"z": [0.1, -0.2, 0.05, 0.3, -0.1, 0.0, 0.2, -0.3], "y": [1, 3, 2, 0, 4, 2, 1, 5]})


def poisson_deviance(y: np.ndarray, mu: np.ndarray) -> float:
    term = np.where(y > 0, y * np.log(np.where(y > 0, y, 1) / mu), 0.0)
    return float(2 * np.sum(term - (y - mu)))


@pytest.mark.parametrize(("formula", "family", "offset"), [
    ("y ~ 0 + offset(z)", "poisson", DATA["z"].to_numpy()),
    ("y ~ 0", "poisson", np.zeros(len(DATA))),
])
def test_summary_prints_no_coefficients(formula: str, family: str, offset: np.ndarray) -> None:
    fit = gt.glm(formula, DATA, family=family)
    assert len(fit.params) == 0
    assert fit.iterations == 0
    y = DATA["y"].to_numpy(dtype=float)
    assert fit.deviance == pytest.approx(poisson_deviance(y, np.exp(offset)), rel=1e-12)
    lines = str(fit.summary()).splitlines()
    # R 4.2: "Call:", the call, "", [deviance residuals], "No Coefficients", "", "(Dispersion ..."
    k = lines.index("No Coefficients")
    assert lines[k - 1] == "" and lines[k + 1] == "" and lines[k + 2].startswith("(Dispersion parameter")
    assert not any(line.startswith("Coefficients:") for line in lines)
    assert "Number of Fisher Scoring iterations: 0" in lines
    fit.summary()._repr_html_()


def test_gaussian_without_coefficients_dispersion() -> None:
    # R: (Dispersion parameter for gaussian family taken to be 7.5) = sum(y^2) / n
    fit = gt.glm("y ~ 0", DATA, family="gaussian")
    y = DATA["y"].to_numpy(dtype=float)
    assert fit.scale == pytest.approx(np.sum(y**2) / len(y), rel=1e-12)
    assert "(Dispersion parameter for gaussian family taken to be 7.5)" in str(fit.summary())


def test_coef_table_text_without_rows() -> None:
    empty = np.zeros(0)
    assert coef_table_text([], empty, empty, empty, empty) == "No Coefficients"
