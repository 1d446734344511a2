"""Lesson 18 (nested and crossed random effects): its recorded numbers against lme4.

The reference fits and the rules are those of ``tests/lesson_reference_fits.py`` (shared with lesson 17,
whose models the same R script fits).
"""

from __future__ import annotations

import pytest
from lesson_reference_fits import (
    LESSON17_CASES,
    LESSON18,
    LESSON18_CASES,
    REFERENCE,
    check_fixed_effects,
    check_loglik,
    lrt,
    random_sd,
    rounding,
)
from lesson_reference_fits import value as lesson_value

CASES = LESSON18_CASES


def value(name: str) -> float:
    return lesson_value(LESSON18, name)


def test_every_reference_model_is_checked():
    # one R script fits the models of lessons 17 and 18; its plain Poisson GLM enters only lesson 17's AIC table
    assert set(LESSON17_CASES) | set(CASES) | {"ohio_glm"} == set(REFERENCE)
    assert not set(LESSON17_CASES) & set(CASES)


@pytest.mark.parametrize("case", list(CASES))
def test_loglik_not_below_lme4(case):
    check_loglik(case, CASES[case])


@pytest.mark.parametrize("case", [c for c, spec in CASES.items() if spec.prefix])
def test_fixed_effects_and_standard_errors(case):
    check_fixed_effects(case, CASES[case])


def test_structures_variance_components():
    for group, name in [("INDEX", "r18_grouse_sd_chick"), ("BROOD:LOCATION", "r18_grouse_sd_brood"),
                        ("LOCATION", "r18_grouse_sd_location")]:
        assert value(name) == pytest.approx(random_sd("grouse_nested", group), rel=1e-3), name
    assert value("r18_va_sd_person") == pytest.approx(random_sd("verbagg_crossed", "id"), rel=1e-4)
    assert value("r18_va_sd_item") == pytest.approx(random_sd("verbagg_crossed", "item"), rel=1e-4)
    assert value("r18_va_person_only_sd") == pytest.approx(random_sd("verbagg_id", "id"), rel=1e-4)
    groups = REFERENCE["grouse_nested"]["ngroups"]
    assert (value("r18_n_broods"), value("r18_n_locations"), value("r18_n_chicks")) == (
        groups["BROOD:LOCATION"], groups["LOCATION"], groups["INDEX"])


def test_test_statistics_follow_from_the_logliks():
    for name, full, reduced in [("r18_grouse_chick_lrt", "grouse_nested", "grouse_nested_noobs"),
                                ("r18_va_item_lrt", "verbagg_crossed", "verbagg_id")]:
        statistic = lrt(full, reduced)
        assert value(name) == pytest.approx(statistic, abs=1e-3 + rounding(statistic)), name
