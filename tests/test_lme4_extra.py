"""glmer parity with lme4 beyond the syllabus models.

The cases (binomial with trials, probit and cloglog links, correlated and uncorrelated random
slopes, Poisson offsets given as an argument and inside the formula, adaptive quadrature with 10
nodes for binomial-with-trials, Poisson and probit data, and one singular fit) are synthetic data
sets made by ``tests/data/lme4_extra/make_data.py`` and fitted by
``tests/data/lme4_extra/make_reference.R`` with lme4 at tight tolerances; ``reference.json`` holds
the results. For ``nAGQ > 1`` its ``loglik`` adds back the saturated log-likelihood that lme4's
printed value leaves out (``loglik_lme4``), so it is the full marginal log-likelihood that
:func:`glmmteach.glmer` reports.
"""

from __future__ import annotations

import json
import math
import warnings
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from lme4_compare import assert_reproduces, import_make_data, rerun_make_reference

try:
    import glmmteach
    from glmmteach.exceptions import SingularFitWarning
except ModuleNotFoundError as err:  # only a missing package skips; a broken one must fail
    if err.name != "glmmteach":
        raise
    glmmteach = None

GLMER = getattr(glmmteach, "glmer", None)
needs_glmer = pytest.mark.skipif(GLMER is None, reason="glmmteach.glmer is not implemented yet")

DATA_DIR = Path(__file__).parent / "data" / "lme4_extra"
REFERENCE = json.loads((DATA_DIR / "reference.json").read_text())
CASES: dict[str, dict[str, Any]] = REFERENCE["cases"]
LAPLACE_CASES = [name for name, case in CASES.items() if case["nAGQ"] == 1]
VECTOR_CASES = [name for name, case in CASES.items() if len(case["random"]["names"]) > 1]
SINGULAR_SD = 1e-4  # an SD below this is "on the boundary" for the comparisons below


@cache
def load_case_data(name: str) -> pd.DataFrame:
    return pd.read_csv(DATA_DIR / CASES[name]["data"])


@cache
def fit_case(name: str) -> Any:
    """Fit one case with glmmteach.glmer, exactly as the reference records it (cached per case)."""
    case = CASES[name]
    with warnings.catch_warnings():
        # The boundary fit warns; test_singular_fit_warns checks that on its own fit.
        warnings.simplefilter("ignore", SingularFitWarning)
        return GLMER(
            case["formula"],
            load_case_data(name),
            family=case["family"],
            link=case["link"],
            nAGQ=case["nAGQ"],
            offset=case["offset"],
            trials=case["trials"],
        )


def side_by_side(got: pd.Series, expected: pd.Series) -> str:
    return pd.DataFrame({"ours": got, "lme4": expected, "diff": got - expected}).to_string()


def random_effect_sds(result: Any) -> pd.Series:
    """Standard deviations of the random effects, from the covariance matrix ``cov_re``."""
    cov = result.cov_re
    return pd.Series(np.sqrt(np.diag(cov.to_numpy())), index=list(cov.index), dtype=float)


def random_effect_corr(result: Any) -> pd.DataFrame:
    cov = result.cov_re.to_numpy()
    sd = np.sqrt(np.diag(cov))
    return pd.DataFrame(cov / np.outer(sd, sd), index=result.cov_re.index, columns=result.cov_re.columns)


@needs_glmer
@pytest.mark.parametrize("name", list(CASES))
def test_fixed_effects_match_lme4(name: str) -> None:
    result = fit_case(name)
    expected = pd.Series(CASES[name]["fixef"], dtype=float)
    got = result.params
    assert list(got.index) == list(expected.index), "coefficient names differ from lme4's"
    tolerance = np.maximum(1e-4 * expected.abs(), 1e-5)
    diff = (got - expected).abs()
    assert (diff <= tolerance).all(), f"fixed effects differ from lme4:\n{side_by_side(got, expected)}"


@needs_glmer
@pytest.mark.parametrize("name", list(CASES))
def test_standard_errors_match_lme4(name: str) -> None:
    result = fit_case(name)
    expected = pd.Series(CASES[name]["se"], dtype=float)
    got = result.bse[expected.index]
    rel = ((got - expected) / expected).abs()
    assert (rel <= 1e-3).all(), f"standard errors differ from lme4:\n{side_by_side(got, expected)}"


@needs_glmer
@pytest.mark.parametrize("name", list(CASES))
def test_random_effect_sds_match_lme4(name: str) -> None:
    result = fit_case(name)
    expected = pd.Series(CASES[name]["random"]["sd"], dtype=float)
    got = random_effect_sds(result)
    assert list(got.index) == list(expected.index), "random-effect names differ from lme4's"
    # Relative 1e-3; an SD lme4 puts on the boundary only has to be within 1e-3 of 0.
    tolerance = np.where(expected < SINGULAR_SD, 1e-3, 1e-3 * expected)
    diff = (got - expected).abs()
    assert (diff <= tolerance).all(), f"random-effect SDs differ:\n{side_by_side(got, expected)}"


@needs_glmer
@pytest.mark.parametrize("name", VECTOR_CASES)
def test_random_effect_correlation_matches_lme4(name: str) -> None:
    random = CASES[name]["random"]
    result = fit_case(name)
    got = random_effect_corr(result).to_numpy()
    # lme4 reports no correlation for (1 + x || g): the effects are independent by construction.
    expected = np.asarray(random["corr"]) if random["correlated"] else np.eye(len(random["names"]))
    assert np.abs(got - expected).max() <= 1e-3, f"correlation {got} differs from lme4's {expected}"


@needs_glmer
@pytest.mark.parametrize("name", LAPLACE_CASES)
def test_laplace_loglik_matches_lme4(name: str) -> None:
    """Laplace log-likelihoods agree, and ours is not below lme4's converged optimum."""
    result = fit_case(name)
    expected = CASES[name]["loglik"]
    assert result.llf == pytest.approx(expected, abs=1e-4)
    assert result.llf >= expected - 1e-6, "glmer stopped below lme4's optimum"


@needs_glmer
@pytest.mark.parametrize("name", [name for name in CASES if name not in LAPLACE_CASES])
def test_quadrature_loglik_matches_lme4_with_constants(name: str) -> None:
    """With nAGQ > 1 we compare to lme4's value plus the saturated log-likelihood it drops."""
    case = CASES[name]
    result = fit_case(name)
    # The reference itself is consistent: an independent integration at lme4's estimates agrees.
    assert case["loglik_integrated"] == pytest.approx(case["loglik"], abs=1e-4)
    assert case["loglik"] - case["loglik_lme4"] == pytest.approx(case["saturated_loglik_added"])
    assert result.llf == pytest.approx(case["loglik"], abs=1e-4)


@needs_glmer
@pytest.mark.parametrize("name", list(CASES))
def test_singular_flag_matches_lme4(name: str) -> None:
    assert bool(fit_case(name).singular) is CASES[name]["isSingular"]


@needs_glmer
def test_singular_fit_warns() -> None:
    """A boundary fit is announced, as lme4's "boundary (singular) fit" message."""
    case = CASES["singular_binary"]
    with pytest.warns(SingularFitWarning):
        GLMER(case["formula"], load_case_data("singular_binary"), family=case["family"])


@needs_glmer
@pytest.mark.parametrize("name", list(CASES))
def test_conditional_modes_match_lme4(name: str) -> None:
    ranef = CASES[name]["ranef"]
    got = fit_case(name).ranef
    got.index = got.index.astype(str)  # lme4 writes factor levels as strings
    assert list(got.index) == ranef["levels"], "group levels (or their order) differ from lme4's"
    for column, values in ranef["values"].items():
        diff = np.abs(got[column].to_numpy() - np.asarray(values)).max()
        assert diff <= 1e-3, f"conditional modes of {column} differ from lme4's by {diff:.2e}"


@needs_glmer
@pytest.mark.parametrize("name", list(CASES))
def test_fit_reports_convergence_and_sizes(name: str) -> None:
    case = CASES[name]
    result = fit_case(name)
    assert result.converged
    assert result.nobs == case["nobs"]
    assert result.ngroups == case["ngroups"]["g"]


def test_reference_covers_the_planned_cases() -> None:
    """The reference keeps one singular case and several quadrature and random-slope cases."""
    assert [name for name, case in CASES.items() if case["isSingular"]] == ["singular_binary"]
    assert {case["nAGQ"] for case in CASES.values()} == {1, 10}
    # lme4 drops a nonzero saturated log-likelihood for Poisson and binomial-with-trials data.
    assert {name for name, case in CASES.items() if abs(case["saturated_loglik_added"]) > 1} == {
        "binom_trials_agq10",
        "poisson_agq10",
    }
    assert {case["link"] for case in CASES.values()} >= {"logit", "probit", "cloglog", "log"}
    assert any(not case["random"]["correlated"] and len(case["random"]["names"]) == 2 for case in CASES.values())


def test_csv_files_are_what_make_data_generates() -> None:
    """Every CSV is what make_data.py generates (the script is the source): exactly, but for the last bit of
    ``logexpo``, which NumPy's ``np.log`` gives by a CPU-dependent SIMD kernel (one value of 320 differs by one
    ulp on an AMD EPYC from the machine that wrote the file). The CSV, not the script, is what R fitted."""
    make_data = import_make_data(DATA_DIR, "lme4_extra_make_data")
    files = {spec.file for spec in make_data.SPECS}
    assert {case["data"] for case in CASES.values()} <= files
    for spec in make_data.SPECS:
        simulated = make_data.simulate(spec)
        stored = pd.read_csv(DATA_DIR / spec.file)
        last_bit = [column for column in ("logexpo",) if column in simulated]  # np.log's, to one ulp
        pd.testing.assert_frame_equal(stored.drop(columns=last_bit), simulated.drop(columns=last_bit),
                                      check_dtype=False, check_exact=True, obj=spec.file)
        for column in last_bit:
            np.testing.assert_array_max_ulp(stored[column].to_numpy(), simulated[column].to_numpy(), maxulp=1)


@pytest.mark.r
@pytest.mark.slow
def test_make_reference_script_reproduces_reference(tmp_path: Path) -> None:
    """Re-running make_reference.R on two cases reproduces reference.json's numbers."""
    names = ["poisson_offset_slope", "poisson_agq10"]  # offset argument, offset(), nAGQ, constants
    fresh = rerun_make_reference(DATA_DIR, names, "library(lme4); library(jsonlite)", tmp_path)
    for name in names:
        old, new = CASES[name], fresh[name]
        assert_reproduces(old, new, name,
                          same=("formula", "family", "link", "nAGQ", "offset", "trials", "nobs", "isSingular"),
                          coefficients=("fixef", "se", "theta"), logliks=("loglik", "loglik_lme4", "deviance_lme4"))
        for coef, value in old["random"]["sd"].items():
            assert math.isclose(new["random"]["sd"][coef], value, rel_tol=1e-7), f"{name}: sd[{coef}]"
