"""Shared fixtures: the course data and the R reference fits (copies of shared/reference)."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from glmmteach import datasets

DATA = Path(__file__).parent / "data"


@pytest.fixture(scope="session")
def reference() -> dict:
    """R glm and lme4 glmer fits of every syllabus model (tests/data/lme4_reference.json)."""
    return json.loads((DATA / "lme4_reference.json").read_text())


@pytest.fixture(scope="session")
def exact_mle() -> dict:
    """The accurate quadrature MLE of the crossover GLMM (tests/data/crossover_exact_mle.json)."""
    return json.loads((DATA / "crossover_exact_mle.json").read_text())


@pytest.fixture()
def crossover() -> pd.DataFrame:
    return datasets.load_crossover()


@pytest.fixture()
def ohio() -> pd.DataFrame:
    return datasets.load_ohio_cancer()
