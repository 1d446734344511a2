"""Shared by tests/test_lesson17.py and tests/test_lesson18.py: the lme4/MASS reference fits of lessons 17
(random slopes and overdispersion in the Ohio data) and 18 (nested and crossed random effects).

``tests/data/lesson17/reference.json`` (made by ``make_reference.R`` beside it, one script for the models of
both lessons, which were one lesson when it was written) holds lme4/MASS fits of every model the two lessons
fit. The lessons record the values their text quotes with ``glmmteach.booktools.record``; the stored notebooks
keep them (``tests/lesson_records.py`` reads them). The rules the two test files apply:

* log-likelihood never more than 1e-4 below lme4's. The recorded values are rounded to 6 significant digits
  (``booktools.ESTIMATE_DIGITS``: 5e-3 for a log-likelihood of -13402.5), too coarse for that, so each GLMM is
  also refitted here: the recorded value must be the refit's, rounded, and the unrounded refit is held to the
  1e-4;
* fixed effects within 1e-4 relative wherever lme4's log-likelihood is at least as good (the refit not more
  than 1e-6 above it) -- or within 1e-4 of their standard error: along a flat direction (VerbAgg's intercept,
  correlated -0.83 with Anger) two fits whose log-likelihoods agree to 1e-8 differ by that much, a difference
  no likelihood criterion can resolve;
* standard errors, variance parameters and the negative binomial shape within the tolerances the tests name.
"""

from __future__ import annotations

import json
import math
import warnings
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from lesson_records import recorded_values

from glmmteach import glmer
from glmmteach.booktools import ESTIMATE_DIGITS
from glmmteach.datasets import load_grouseticks, load_ohio_cancer, load_verbagg

ROOT = Path(__file__).resolve().parents[1]
LESSON17 = ROOT / "lessons" / "17_richer_structures.ipynb"
LESSON18 = ROOT / "lessons" / "18_nested_crossed.ipynb"
REFERENCE = json.loads((ROOT / "tests" / "data" / "lesson17" / "reference.json").read_text())["cases"]

LOGLIK_TOLERANCE = 1e-4
BETTER_THAN_REFERENCE = 1e-6  # a fit this much above lme4's is better: its estimates may differ
FIXEF_RELATIVE = 1e-4
FIXEF_IN_SE = 1e-4  # or this many standard errors
SE_RELATIVE = 1e-3  # SEs from the Hessian: lme4's finite differences against glmmteach's


@dataclass(frozen=True)
class Case:
    """One reference model as a lesson records it."""

    lesson: Path
    loglik: str | None  # glue name of the log-likelihood (None for a quasi-likelihood fit)
    prefix: str | None = None  # glue prefix of the fixed effects
    terms: dict[str, str] = field(default_factory=dict)  # glue suffix -> coefficient name


def value(lesson: Path, name: str) -> float:
    values = recorded_values(lesson)
    assert name in values, f"{lesson.name} does not record {name!r}"
    return float(values[name])


def rounding(x: float) -> float:
    """Half a unit in the last digit booktools.record keeps by default (ESTIMATE_DIGITS significant digits)."""
    return 0.0 if x == 0 else 0.5 * 10.0 ** (math.floor(math.log10(abs(x))) - ESTIMATE_DIGITS + 1)


def random_sd(case: str, group: str, name: str = "(Intercept)") -> float:
    terms = REFERENCE[case]["random"]["terms"]
    return next(t["sd"] for t in terms if t["group"] == group and t["name"] == name)


@cache
def data_sets() -> dict[str, pd.DataFrame]:
    ohio = load_ohio_cancer()
    ohio["decade"] = (ohio["year"] - 11) / 10
    ohio["obs"] = np.arange(len(ohio))
    return {"ohio": ohio, "grouse": load_grouseticks(), "verbagg": load_verbagg()}


@cache
def live_loglik(case: str) -> float:
    """The unrounded log-likelihood of the lesson's model, refitted as the lesson fits it."""
    ref = REFERENCE[case]
    formula = ref["formula"].replace("r2 ~", "y ~")  # the loader's 0/1 column for r2
    family = "negative_binomial" if ref["kind"] == "glmer.nb" else (
        "binomial" if ref["data"] == "verbagg" else "poisson")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return float(glmer(formula, data_sets()[ref["data"]], family=family).llf)


def check_loglik(case: str, spec: Case) -> None:
    recorded_value, live = value(spec.lesson, spec.loglik), live_loglik(case)
    reference = REFERENCE[case]["loglik"]
    assert recorded_value == pytest.approx(live, abs=rounding(live) * 1.01), (case, "the lesson records another fit")
    assert live >= reference - LOGLIK_TOLERANCE, (case, live, reference)


def check_fixed_effects(case: str, spec: Case) -> None:
    """The recorded fixed effects (and their SEs, where recorded) against the reference fit."""
    ref = REFERENCE[case]
    if spec.loglik and live_loglik(case) > ref["loglik"] + BETTER_THAN_REFERENCE:
        pytest.skip(f"glmmteach's optimum is above lme4's ({live_loglik(case)} > {ref['loglik']})")
    recorded = recorded_values(spec.lesson)
    for short, term in spec.terms.items():
        name = f"{spec.prefix}_{short}"
        if name not in recorded:
            continue
        tolerance = max(FIXEF_RELATIVE * abs(ref["fixef"][term]), FIXEF_IN_SE * ref["se"][term])
        assert value(spec.lesson, name) == pytest.approx(ref["fixef"][term], abs=tolerance), name
        if f"{name}_se" in recorded:
            assert value(spec.lesson, f"{name}_se") == pytest.approx(ref["se"][term], rel=SE_RELATIVE), f"{name}_se"


def lrt(full: str, reduced: str) -> float:
    """The likelihood-ratio statistic of two reference fits."""
    return 2 * (REFERENCE[full]["loglik"] - REFERENCE[reduced]["loglik"])


OHIO_TERMS = {
    "b0": "(Intercept)",
    "female": "factor(sex)2",
    "nonwhite": "factor(race)2",
    "inter": "factor(sex)2:factor(race)2",
    "decade": "decade",
}

# reference case -> how lesson 17 records it
LESSON17_CASES = {
    "ohio_quasi": Case(LESSON17, None, "r17_quasi", OHIO_TERMS),
    "ohio_quasi_county": Case(LESSON17, None, "r17_quasicounty", OHIO_TERMS),
    "ohio_county": Case(LESSON17, "r17_county_loglik", "r17_county", OHIO_TERMS),
    "ohio_slope": Case(LESSON17, "r17_slope_loglik", "r17_slope", OHIO_TERMS),
    "ohio_county_obs": Case(LESSON17, "r17_obs_loglik", "r17_obs", OHIO_TERMS),
    "ohio_nb": Case(LESSON17, "r17_nb_loglik", "r17_nb", OHIO_TERMS),
    "ohio_county_sexdecade": Case(LESSON17, "r17_county_trend_loglik"),
    "ohio_nb_sexdecade": Case(LESSON17, "r17_nb_trend_loglik"),
}

GROUSE_TERMS = {"b0": "(Intercept)", "y96": "factor(YEAR)96", "y97": "factor(YEAR)97", "height": "cHEIGHT"}
VERBAGG_TERMS = {
    "b0": "(Intercept)",
    "anger": "Anger",
    "male": "GenderM",
    "scold": "btypescold",
    "shout": "btypeshout",
    "self": "situself",
}

# reference case -> how lesson 18 records it
LESSON18_CASES = {
    "grouse_nested": Case(LESSON18, "r18_grouse_loglik", "r18_grouse", GROUSE_TERMS),
    "grouse_nested_noobs": Case(LESSON18, "r18_grouse_noobs_loglik", "r18_grouse_noobs", GROUSE_TERMS),
    "verbagg_crossed": Case(LESSON18, "r18_va_loglik", "r18_va", VERBAGG_TERMS),
    "verbagg_id": Case(LESSON18, "r18_va_person_loglik", "r18_va_person", VERBAGG_TERMS),
    "verbagg_item": Case(LESSON18, "r18_va_item_loglik"),
}
