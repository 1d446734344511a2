"""Every Python name on the R <-> Python page (lessons/r_python.md) exists in the package.

The page maps each R call of the course notes to glmmteach; if an attribute or function is renamed,
the page would silently teach a call that fails. This test reads the Python column's inline code and
checks each ``glmmteach.<name>``, ``glmmteach.integration.<name>``, ``fit.<attribute>`` and bare
integration function it mentions.
"""

from __future__ import annotations

import dataclasses
import re
import warnings
from pathlib import Path

import pytest

import glmmteach
from glmmteach import integration
from glmmteach.datasets import load_crossover

PAGE = Path(__file__).resolve().parents[1] / "lessons" / "r_python.md"


def table_cells(line: str) -> list[str]:
    """The cells of a Markdown table row, split at unescaped pipes (`\\|` is a literal pipe)."""
    return [cell.strip() for cell in re.split(r"(?<!\\)\|", line.strip().strip("|"))]


def python_cells() -> list[str]:
    """Inline code of the last column of every table row on the page."""
    cells = []
    for line in PAGE.read_text(encoding="utf-8").splitlines():
        if line.startswith("|") and not line.startswith("| ---"):
            cells.extend(re.findall(r"`([^`]+)`", table_cells(line)[-1]))
    return cells


def test_table_rows_have_as_many_cells_as_their_header() -> None:
    """A bare `|` inside a cell, as in `(1|ID)`, would split the cell and break the row."""
    width = None
    for number, line in enumerate(PAGE.read_text(encoding="utf-8").splitlines(), 1):
        if not line.startswith("|"):
            width = None
            continue
        cells = table_cells(line)
        width = width or len(cells)
        assert len(cells) == width, f"r_python.md line {number}: {len(cells)} cells, its table has {width}"


def test_page_has_python_cells() -> None:
    assert len(python_cells()) > 30


@pytest.mark.parametrize("name", sorted(set(re.findall(
    r"\bglmmteach\.(\w+)", " ".join(python_cells())))))
def test_package_function_exists(name: str) -> None:
    assert hasattr(glmmteach, name), f"r_python.md uses glmmteach.{name}, which does not exist"


@pytest.mark.parametrize("name", sorted(set(re.findall(
    r"\b(cluster_\w+|marginal_loglik_function)\b", " ".join(python_cells())))))
def test_integration_step_exists(name: str) -> None:
    assert callable(getattr(integration, name, None)), (
        f"r_python.md names glmmteach.integration.{name}, which does not exist"
    )


@pytest.fixture(scope="module")
def fits() -> list:
    """A GLM and a GLMM of the crossover trial, the objects the page calls ``fit``."""
    crossover = load_crossover()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the GLMM warns about its flat likelihood ridge
        return [glmmteach.glm("outcome ~ trt*period", crossover, family="binomial"),
                glmmteach.glmer("outcome ~ trt*period + (1|ID)", crossover, family="binomial")]


@pytest.mark.parametrize("attribute", sorted(set(re.findall(
    r"\bfit\.(\w+)", " ".join(python_cells())))))
def test_results_attribute_exists(attribute: str, fits: list) -> None:
    assert any(hasattr(fit, attribute) for fit in fits), (
        f"r_python.md uses fit.{attribute}, which neither a GLM nor a GLMM fit has"
    )


# The objects the page's inference rows name besides ``fit``: what each name stands for.
PAGE_OBJECTS = {
    "res": glmmteach.SimulatedResiduals,
    "boot": glmmteach.BootstrapResult,
    "fits": glmmteach.AllFit,
    "means": glmmteach.MarginalMeans,
}


@pytest.mark.parametrize("name, attribute", sorted(set(re.findall(
    rf"\b({'|'.join(PAGE_OBJECTS)})\.(\w+)", " ".join(python_cells())))))
def test_reporting_object_attribute_exists(name: str, attribute: str) -> None:
    cls = PAGE_OBJECTS[name]
    # a dataclass field without a default is not a class attribute
    fields = {field.name for field in dataclasses.fields(cls)} if dataclasses.is_dataclass(cls) else set()
    assert hasattr(cls, attribute) or attribute in fields, (
        f"r_python.md uses {name}.{attribute}, which {PAGE_OBJECTS[name].__name__} does not have"
    )


@pytest.mark.parametrize("name", sorted(set(re.findall(r"\bplots\.(\w+)", " ".join(python_cells())))))
def test_plot_function_exists(name: str) -> None:
    from glmmteach import plots

    assert callable(getattr(plots, name, None)), f"r_python.md names glmmteach.plots.{name}, which does not exist"


def test_page_maps_the_inference_calls() -> None:
    """The R calls a GLMM report needs (issue 17), each with its glmmteach counterpart on the page."""
    text = PAGE.read_text(encoding="utf-8")
    for r_call, python_call in [
        ("glmer.nb(", 'family="negative_binomial"'), ("confint(fit)", "fit.conf_int("),
        ("bootMer(", "glmmteach.bootstrap("), ("emmeans::emmeans(", "glmmteach.emmeans("),
        ("allFit(", "glmmteach.all_fit("), ("bglmer(", "glmmteach.bglmer("),
        ("simulateResiduals(", "fit.simulated_residuals("), ("broom.mixed::tidy(", "fit.tidy("),
    ]:
        assert r_call in text and python_call in text, (r_call, python_call)
    assert "The default family differs" in text
