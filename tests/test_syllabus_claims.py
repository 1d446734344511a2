"""Qualitative claims that set one lesson's result beside another's (issue 17 B), checked on the stored outputs.

A claim within one lesson is asserted in a hidden cell of that lesson. A claim that compares numbers from two
lessons, or that the summary (lessons/12_summary.md) or the corrections page makes from several lessons'
records, cannot be: it is checked here, on the values the lessons record (``tests/lesson_records.py``), so that a
changed engine or data set that breaks it fails a test rather than the reader's trust.
"""

from __future__ import annotations

import math
from pathlib import Path

from lesson_records import recorded_values

LESSONS = Path(__file__).resolve().parents[1] / "lessons"


def records(stem: str) -> dict[str, object]:
    return recorded_values(LESSONS / f"{stem}.ipynb")


def test_gee_and_cluster_bootstrap_agree_on_the_treatment_se() -> None:
    """Lesson 8: the GEE robust SE "is close to what resampling whole patients gave in lesson 4", both far
    below the GLM's (the corrections page: the GLM overestimates it, for a within-patient covariate)."""
    gee_se = records("08_population_vs_subject")["gee2_trt_se"]
    boot_se, glm_se = records("04_independence")["boot_se_trt"], records("04_independence")["glm_se_trt"]
    assert abs(gee_se / boot_se - 1) < 0.15
    assert max(gee_se, boot_se) < 0.75 * glm_se


def test_crossover_summary_claims() -> None:
    """The summary's crossover paragraph: the Laplace fit far off; the population-averaged odds ratio close to
    the GLM's; the conditional analysis agreeing with the GLMM (both borderline, no useful upper limit)."""
    lesson7, lesson8 = records("07_crossover_glmm"), records("08_population_vs_subject")
    lesson2 = records("02_crossover_glm")
    assert lesson7["laplace_sd"] > 3 * lesson7["agq_tau"]
    assert abs(math.log(lesson8["marginal_or_from_glmm"] / lesson2["m3_or_trt"])) < 0.1
    assert 0.05 < lesson7["mainland_gart_p"] < 0.1 and 0.05 < lesson7["agq_trt_p"] < 0.1
    assert lesson7["agq_or_trt_low"] < 1 and lesson7["conditional_or_low"] < 1
    assert lesson7["agq_or_trt_high"] > 100


def test_ohio_summary_claims() -> None:
    """The summary's Ohio paragraph and lesson 10: women's rates rose much faster; the single trend and the single
    sex ratio describe neither sex; the race ratio near 1 for men and clearly below 1 for women; the GLM's race
    effect of lesson 9 above 1, the within-county one below; the county GLMM still overdispersed."""
    ohio, glm = records("10_ohio_glmm"), records("09_poisson")
    assert ohio["trend_women_pct"] > 2 * ohio["trend_men_pct"] > 0
    assert ohio["trend_men_pct"] < ohio["ohio_year_pct"] < ohio["trend_women_pct"]
    assert ohio["female_rr_1968"] < ohio["ohio_female_rr"] < ohio["female_rr_1988"]
    assert ohio["nonwhite_rr_men_low"] < 1 < ohio["nonwhite_rr_men_high"]
    assert ohio["nonwhite_rr_women_high"] < 1
    assert glm["glm_nonwhite_rr"] > 1 > ohio["ohio_nonwhite_rr"]
    assert ohio["glmm_pearson_dispersion"] > 1.1


def test_lessons_quote_one_interval_for_tau() -> None:
    """Lessons 7, 13 and 15 quote the same accurate (100-node) profile interval for the crossover's tau."""
    lesson7, lesson13, lesson15 = (records(stem) for stem in
                                   ("07_crossover_glmm", "13_fitting_by_hand", "15_effect_sizes"))
    for low, high in [(lesson13["h13_profile100_low"], lesson13["h13_profile100_high"]),
                      (lesson15["e15_tau_low"], lesson15["e15_tau_high"])]:
        assert abs(low - lesson7["tau_ci_low"]) < 2e-3 and abs(high - lesson7["tau_ci_high"]) < 2e-3


def test_corrections_page_claims() -> None:
    """The corrections page: leaving out the period hardly changes the treatment estimate; the GLM overestimates
    the treatment's SE (within patients); the heterogeneity interval is wider than the notes' (-11.6, 2.9), a
    half-width of 6.6; the within-patient contrasts are far better determined than beta3; the Laplace estimates
    are worse by the true likelihood; the women-to-men ratio grew over the years."""
    lesson2, lesson4, lesson7 = records("02_crossover_glm"), records("04_independence"), records("07_crossover_glmm")
    assert abs(lesson2["m2_trt"] - lesson2["m1_trt"]) < 0.05 * abs(lesson2["m1_trt"])
    assert lesson4["glm_se_trt"] > lesson4["boot_se_trt"]
    notes_half_width = 6.6  # the syllabus's (-11.6, 2.9) about -4.98
    assert lesson7["half_width"] > notes_half_width
    assert max(lesson7["se_within_drug_first"], lesson7["se_within_placebo_first"]) < 0.5 * lesson7["agq_inter_se"]
    assert lesson7["true_loglik_at_laplace"] < lesson7["true_loglik_at_accurate"] - 2
    ohio = records("10_ohio_glmm")
    assert ohio["female_rr_1968"] < ohio["female_rr_1988"]
