"""Lesson 19 (boundaries, singular fits and regularisation): its recorded numbers against R and scipy.

The lesson records the values its text quotes with ``glmmteach.booktools.record``; the stored notebook keeps
them (``tests/lesson_records.py`` reads them). Here they are compared with

* lme4 (``tests/data/lme4_reference.json``: the crossover by Laplace and 25-node quadrature;
  ``tests/data/boundary/reference.json``: the singular data set ``bin_scalar_7``, which the lesson simulates
  with the same generator);
* R blme 1.0.5 (``tests/data/bglmer/reference.json``): the default (Wishart) and gamma(2, 0.5) priors on the
  singular data, the crossover and lesson 14's runaway trial 130 (``tests/data/runaway/crossover_sim130.csv``,
  which the lesson regenerates);
* closed forms (the boundary mixture's p-value and critical value, the gamma prior's quantile, the median
  odds ratio) and lesson 14's own records (the count of trials with an infinite MLE of tau).

A recorded value is held to its reference within the reference tolerance plus the rounding ``record`` applied.
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from lesson_records import recorded_values, rounding
from scipy import stats

ROOT = Path(__file__).resolve().parents[1]
LESSON = ROOT / "lessons" / "19_boundaries.ipynb"
LESSON14 = ROOT / "lessons" / "14_simulation_studies.ipynb"
DATA = ROOT / "tests" / "data"
CROSSOVER = json.loads((DATA / "lme4_reference.json").read_text())["crossover"]
LME4, GLM_CROSSOVER = CROSSOVER["glmm"], CROSSOVER["glm_model3"]  # glm: outcome ~ trt * period
BOUNDARY = json.loads((DATA / "boundary" / "reference.json").read_text())["cases"]
BLME = json.loads((DATA / "bglmer" / "reference.json").read_text())["cases"]

# digits each group of records keeps in the lesson (its hidden cells)
DIGITS = {"sing": 6, "cross": 4, "trial": 4}
TRIAL_RUNAWAY_DIGITS = 3  # the trial's ML and default-prior fits

# (glue name, blme case, field, relative tolerance): MAP fits against R blme. The runaway default lies on a
# ridge of curvature 2e-5 (glmmteach 210.70, blme 210.68); the other fits are well determined by the prior.
BLME_CASES = [
    ("r19_sing_default_tau", "singular_default", "theta", 1e-4),
    ("r19_sing_default_loglik", "singular_default", "loglik", 1e-6),
    ("r19_cross_default_tau", "crossover_default", "theta", 1e-4),
    ("r19_cross_default_loglik", "crossover_default", "loglik", 1e-6),
    ("r19_cross_gamma_tau", "crossover_gamma", "theta", 1e-4),
    ("r19_cross_gamma_loglik", "crossover_gamma", "loglik", 1e-6),
    ("r19_trial_default_tau", "runaway_default", "theta", 1e-3),
    ("r19_trial_default_loglik", "runaway_default", "loglik", 1e-5),
    ("r19_trial_gamma_tau", "runaway_gamma", "theta", 1e-4),
    ("r19_trial_gamma_loglik", "runaway_gamma", "loglik", 1e-6),
]


@pytest.fixture(scope="module")
def values() -> dict[str, object]:
    return recorded_values(LESSON)


def digits_of(name: str) -> int:
    group = name.split("_")[1]
    if group == "trial" and ("_default_" in name or "_ml_" in name):
        return TRIAL_RUNAWAY_DIGITS
    return DIGITS.get(group, 6)


def close(recorded: float, reference: float, rtol: float, digits: int) -> bool:
    return abs(recorded - reference) <= rtol * abs(reference) + rounding(reference, digits)


@pytest.mark.parametrize(("name", "case", "field", "rtol"), BLME_CASES, ids=[c[0] for c in BLME_CASES])
def test_map_fits_agree_with_blme(values: dict[str, object], name: str, case: str, field: str,
                                  rtol: float) -> None:
    reference = BLME[case][field]
    assert close(float(values[name]), reference, rtol, digits_of(name)), (values[name], reference)


def test_the_defaults_effect_is_what_the_text_says(values: dict[str, object]) -> None:
    # blme (R) itself: the default moves the singular fit off 0 and pushes the runaway SDs up
    assert BLME["singular_default"]["theta"] > 0.1 and BOUNDARY["bin_scalar_7"]["theta"] == 0
    assert BLME["crossover_default"]["theta"] > LME4["nAGQ_1_tolPwrss_1e12"]["varcorr"][0]["sdcor"]
    assert BLME["runaway_default"]["theta"] > 2 * float(values["r19_trial_ml_tau"])
    assert max(BLME["crossover_gamma"]["theta"], BLME["runaway_gamma"]["theta"]) < 20


def test_singular_fit_is_lme4s(values: dict[str, object]) -> None:
    reference = BOUNDARY["bin_scalar_7"]
    assert values["r19_sing_tau"] == 0.0 == reference["theta"]
    for name in ("r19_sing_loglik", "r19_sing_glm_loglik"):
        assert close(float(values[name]), reference["loglik"], 1e-7, 6)
    for name, expected in zip(("r19_sing_b0", "r19_sing_x"), reference["fixef"], strict=True):
        assert close(float(values[name]), expected, 1e-4, 6)
    assert values["r19_sing_ci_low"] == 0.0 and float(values["r19_sing_ci_high"]) > 0.5


def test_singular_data_are_the_reference_data(values: dict[str, object]) -> None:
    # the lesson simulates bin_scalar_7 (tests/data/boundary/make_data.py); Pearson's chi-squared here
    data = pd.read_csv(DATA / "boundary" / "bin_scalar_7.csv")
    statistic, p, df = stats.chi2_contingency(pd.crosstab(data["g"], data["y"]), correction=False)[:3]
    assert values["r19_sing_pearson_df"] == df
    assert close(float(values["r19_sing_pearson"]), statistic, 1e-9, 6)
    assert close(float(values["r19_sing_pearson_p"]), p, 1e-9, 6)


def test_crossover_fits_are_lme4s(values: dict[str, object]) -> None:
    laplace, quadrature = LME4["nAGQ_1_tolPwrss_1e12"], LME4["nAGQ_25"]
    assert close(float(values["r19_lap_tau"]), laplace["varcorr"][0]["sdcor"], 1e-3, 4)
    assert close(float(values["r19_cross_ml_tau"]), laplace["varcorr"][0]["sdcor"], 1e-3, 4)
    assert close(float(values["r19_lap_loglik"]), laplace["loglik"], 1e-6, 4)
    assert close(float(values["r19_quad_tau"]), quadrature["varcorr"][0]["sdcor"], 1e-3, 4)
    assert close(float(values["r19_quad_loglik"]), quadrature["loglik"], 1e-6, 6)


def test_boundary_lrt(values: dict[str, object]) -> None:
    # the statistic from lme4's 25-node fit and R's glm of the same fixed effects
    reference = 2 * (LME4["nAGQ_25"]["loglik"] - GLM_CROSSOVER["loglik"])
    lrt = float(values["r19_lrt"])
    assert close(lrt, reference, 1e-6, 6)
    assert close(float(values["r19_p_chi2"]), stats.chi2.sf(lrt, 1), 1e-4, 6)
    assert close(float(values["r19_p_mixture"]), 0.5 * stats.chi2.sf(lrt, 1), 1e-4, 6)
    mixture = 0.5 * stats.chi2.sf(float(values["r19_crit_mixture"]), 1)
    assert abs(mixture - 0.05) < 1e-6
    assert close(float(values["r19_crit_chi2"]), 3.841458820694124, 0, 6)


def test_closed_forms(values: dict[str, object]) -> None:
    assert close(float(values["r19_gamma_q95"]), stats.gamma.ppf(0.95, a=2, scale=2), 1e-12, 6)
    mor = math.exp(math.sqrt(2) * stats.norm.ppf(0.75) * 5)
    assert close(float(values["r19_mor_5"]), mor, 1e-12, 6)


def test_trial_130_is_lesson_14s(values: dict[str, object]) -> None:
    trial = pd.read_csv(DATA / "runaway" / "crossover_sim130.csv")
    wide = trial.pivot_table(index=["ID", "group"], columns="period", values="outcome")
    pattern = wide[0].astype(int).astype(str) + wide[1].astype(int).astype(str)
    counts = pd.crosstab(pattern.index.get_level_values("group"), pattern.to_numpy())
    first, second = sorted(counts.index)
    assert values["r19_trial_seq0_10"] == counts.loc[first, "10"] and counts.loc[first].get("01", 0) == 0
    assert values["r19_trial_seq1_01"] == counts.loc[second, "01"] and counts.loc[second].get("10", 0) == 0


def test_lesson_14s_counts_are_glued_from_it() -> None:
    # The counts of lesson 14's simulation are pasted from its records ({glue:text}`14_...ipynb::key`), never typed.
    notebook = json.loads(LESSON.read_text(encoding="utf-8"))
    prose = "\n".join("".join(c["source"]) for c in notebook["cells"] if c["cell_type"] == "markdown")
    glued = set(re.findall(r"\{glue:text\}`14_simulation_studies\.ipynb::(\w+)", prose))
    assert glued == {"s14_n_infinite", "s14_n_sims"}
    assert glued <= set(recorded_values(LESSON14))
    assert not re.search(r"\b200 (simulated )?trials\b", prose), "lesson 14's number of trials is typed"


def test_costs_in_likelihood(values: dict[str, object]) -> None:
    cost = BLME["crossover_gamma"]["loglik"]
    laplace = LME4["nAGQ_1_tolPwrss_1e12"]["loglik"]
    assert close(float(values["r19_cross_gamma_cost"]), laplace - cost, 1e-3, 4)
    singular = BOUNDARY["bin_scalar_7"]["loglik"] - BLME["singular_default"]["loglik"]
    assert close(float(values["r19_sing_default_cost"]), singular, 1e-4, 6)
    assert np.isfinite(float(values["r19_trial_gamma_tau"]))
