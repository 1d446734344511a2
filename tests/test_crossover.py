"""glmmteach.crossover against R (tests/data/crossover_reference.R → crossover_reference.json).

Conditional logistic regression against ``survival::clogit(outcome ~ trt + period + strata(ID))`` (its
estimates and standard errors where they are finite, its log-likelihoods and the likelihood-ratio test of
the treatment effect always), the profile-likelihood interval against R's own root search over
``offset(tau * trt)``, the Mainland–Gart test against ``fisher.test`` and Prescott's test against Jones &
Kenward's formula, ``prop.trend.test`` and an enumeration of the exact conditional distribution in R.
"""

from __future__ import annotations

import json
import math
import subprocess
from functools import cache
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from glmmteach import GlmmteachError, conditional_logit, mainland_gart, pair_table, prescott
from glmmteach.datasets import load_crossover
from glmmteach.exceptions import DataError

DATA = Path(__file__).parent / "data"
REFERENCE = DATA / "crossover_reference.json"


@cache
def reference() -> dict:
    return json.loads(REFERENCE.read_text())["cases"]


def as_float(value: object) -> float:
    return float(value)  # jsonlite writes Inf as the string "Inf"


def table_of(case: dict) -> pd.DataFrame:
    return pd.DataFrame([case["RT"], case["TR"]], index=pd.Index(["R-T", "T-R"], name="sequence"),
                        columns=["00", "01", "10", "11"])


def long_data(table: pd.DataFrame) -> pd.DataFrame:
    """One row per patient and period, as the course's crossover.csv, from a pattern table."""
    frames, patient = [], 0
    for sequence, row in table.iterrows():
        trt = (0, 1) if sequence == "R-T" else (1, 0)
        for pattern, count in row.items():
            ids = np.repeat(np.arange(patient, patient + count), 2)
            patient += count
            frames.append(pd.DataFrame({"ID": ids, "period": np.tile([0, 1], count),
                                        "trt": np.tile(trt, count),
                                        "outcome": np.tile([int(pattern[0]), int(pattern[1])], count)}))
    return pd.concat(frames, ignore_index=True)


CASES = sorted(json.loads(REFERENCE.read_text())["cases"])


def test_pair_table_of_the_course_data() -> None:
    table = pair_table(load_crossover())
    expected = table_of(reference()["course"])
    pd.testing.assert_frame_equal(table, expected, check_dtype=False, check_names=False)
    # from long data built out of the table, the same table again
    pd.testing.assert_frame_equal(pair_table(long_data(expected)), expected, check_dtype=False,
                                  check_names=False)


@pytest.mark.parametrize("name", CASES)
def test_conditional_logit_matches_clogit(name: str) -> None:
    case = reference()[name]
    fit = conditional_logit(table_of(case))
    assert math.isclose(fit.llf, case["loglik"], abs_tol=1e-7)
    assert math.isclose(fit.llf_null_treatment, case["loglik_no_trt"], abs_tol=1e-9)
    assert math.isclose(fit.lr_statistic, case["lr_trt"], rel_tol=1e-7, abs_tol=1e-7)
    assert math.isclose(fit.lr_p_value, case["lr_trt_p"], rel_tol=1e-6)
    assert fit.infinite == (not case["finite"])
    lower, upper = (as_float(v) for v in case["profile_ci"])
    assert math.isclose(fit.conf_int[0], lower, rel_tol=1e-7, abs_tol=1e-8)
    assert fit.conf_int[1] == upper or math.isclose(fit.conf_int[1], upper, rel_tol=1e-7, abs_tol=1e-8)
    if case["finite"]:
        for ours, r in (("treatment", "trt"), ("period", "period")):
            assert math.isclose(fit.params[ours], case["coef"][r], rel_tol=1e-8)
            assert math.isclose(fit.bse[ours], case["se"][r], rel_tol=1e-6)
        assert math.isclose(fit.cov.loc["treatment", "period"], case["cov_trt_period"], rel_tol=1e-6,
                            abs_tol=1e-10)
        assert fit.wald_conf_int[0] < fit.params["treatment"] < fit.wald_conf_int[1]
    else:
        # clogit stops at a large finite value; ours is the limit
        assert np.isposinf(fit.params["treatment"]) and case["coef_raw"]["trt"] > 10
        assert np.isinf(fit.bse["treatment"])


@pytest.mark.parametrize("name", CASES)
def test_mainland_gart_matches_fisher_test(name: str) -> None:
    case = reference()[name]
    test = mainland_gart(table_of(case))
    assert math.isclose(test.p_value, case["fisher_p"], rel_tol=1e-9)
    # R's fisher.test finds the estimate and each end by uniroot at its default tolerance (1.2e-4) on
    # the scale of the odds ratio below 1 or of its reciprocal above; ours solve the defining equations
    # (the conditional mean equal to the observed count; the tail probabilities) to 1e-6
    table = test.table.to_numpy()
    margins = dict(M=table.sum(), n=table[:, 0].sum(), N=table[0].sum())
    odds = as_float(case["fisher_or"])
    ours = test.odds_ratio
    assert ours == odds or abs(min(ours, 1 / ours) - min(odds, 1 / odds)) < 1.3e-4
    if 0 < test.odds_ratio < np.inf:
        mean = stats.nchypergeom_fisher(odds=test.odds_ratio, **margins).mean()
        assert math.isclose(mean, table[0, 0], rel_tol=1e-6)
    alpha = (1 - test.level) / 2
    for ours, r, tail in zip(test.conf_int, case["fisher_ci"], ("upper", "lower"), strict=True):
        r = as_float(r)
        assert ours == r or abs(min(ours, 1 / ours) - min(r, 1 / r)) < 1.3e-4
        if 0 < ours < np.inf:
            dist = stats.nchypergeom_fisher(odds=ours, **margins)
            p_tail = dist.sf(table[0, 0] - 1) if tail == "upper" else dist.cdf(table[0, 0])
            assert math.isclose(p_tail, alpha, rel_tol=1e-6)
    # the conditional-logistic estimate of the treatment effect is half the log sample odds ratio
    fit = conditional_logit(table_of(case))
    assert math.isclose(np.log(test.sample_odds_ratio) / 2, fit.params["treatment"]) or (
        np.isinf(test.sample_odds_ratio) and fit.infinite)


@pytest.mark.parametrize("name", CASES)
def test_prescott_matches_jones_kenward(name: str) -> None:
    case = reference()[name]
    test = prescott(table_of(case))
    assert math.isclose(case["prescott_jk"], case["prescott_trend"], rel_tol=1e-12)  # two R routes agree
    assert math.isclose(test.statistic, case["prescott_jk"], rel_tol=1e-12)
    assert math.isclose(test.p_value, case["prescott_p"], rel_tol=1e-10)
    assert math.isclose(test.exact_p_value, case["prescott_exact_p"], rel_tol=1e-10)
    assert list(test.table.columns) == ["10", "00 or 11", "01"]


def test_long_data_and_table_give_the_same_answers() -> None:
    data = load_crossover()
    table = pair_table(data)
    assert conditional_logit(data).lr_statistic == conditional_logit(table).lr_statistic
    assert mainland_gart(data).p_value == mainland_gart(table).p_value
    assert prescott(data).exact_p_value == prescott(table).exact_p_value
    # other column names
    renamed = data.rename(columns={"ID": "patient", "trt": "drug", "outcome": "abnormal"})
    again = conditional_logit(renamed, id="patient", treatment="drug", outcome="abnormal")
    assert again.conf_int == conditional_logit(data).conf_int


def test_profile_interval_ends_are_at_the_critical_value() -> None:
    fit = conditional_logit(table_of(reference()["finite_small"]), level=0.9)
    from glmmteach.crossover import _profile_treatment

    counts = fit.table.to_numpy().astype(float)
    for end in fit.conf_int:
        assert math.isclose(2 * (fit.llf - _profile_treatment(counts, end)), 2.705543454095404, rel_tol=1e-8)
    zeta = fit.profile_zeta(np.array([fit.conf_int[0], fit.params["treatment"], fit.conf_int[1]]))
    np.testing.assert_allclose(zeta, [-1.6448536269514722, 0.0, 1.6448536269514722], atol=1e-7)
    # an infinite estimate: zeta below the interval's finite end is -1.96 there, and rises towards 0
    course = conditional_logit(load_crossover())
    zeta = course.profile_zeta([course.conf_int[0], 2.0, 50.0])
    assert math.isclose(zeta[0], -1.959963984540054, rel_tol=1e-7) and zeta[0] < zeta[1] < zeta[2] <= 0


def test_bad_input_names_the_problem() -> None:
    data = load_crossover()
    with pytest.raises(DataError, match="'patient'"):
        pair_table(data, id="patient")
    with pytest.raises(DataError, match="0/1"):
        pair_table(data.assign(outcome=data["outcome"] * 2))
    with pytest.raises(DataError, match="one row in each of the two periods"):
        pair_table(data.iloc[1:])
    with pytest.raises(DataError, match="received one treatment twice"):
        pair_table(data.assign(trt=np.where(data["ID"] == 1, 1, data["trt"])))
    with pytest.raises(DataError, match="two values of period"):
        pair_table(data.assign(period=np.arange(len(data)) % 3))
    with pytest.raises(DataError, match="missing values"):
        pair_table(data.assign(outcome=data["outcome"].where(data.index != 3)))
    with pytest.raises(GlmmteachError, match="level"):
        conditional_logit(data, level=95)
    empty = table_of(reference()["course"]).assign(**{"01": [0, 2], "10": [0, 4]})
    with pytest.raises(DataError, match="no discordant pairs"):
        conditional_logit(empty)
    with pytest.raises(DataError, match="empty row"):
        mainland_gart(empty)
    one_way = table_of(reference()["course"]).assign(**{"01": [3, 2], "10": [0, 0]})
    with pytest.raises(GlmmteachError, match="not identified"):
        conditional_logit(one_way)
    with pytest.raises(DataError, match="column"):
        prescott(pd.DataFrame({"a": [1]}))
    with pytest.raises(DataError, match="whole numbers"):
        prescott(table_of(reference()["course"]).assign(**{"01": [-1, 2]}))


@pytest.mark.r
def test_reference_script_reproduces_the_stored_output(tmp_path: Path) -> None:
    from lme4_compare import skip_without_r

    skip_without_r("library(survival); library(jsonlite)")
    out = tmp_path / "crossover_reference.json"
    run = subprocess.run(["Rscript", str(DATA / "crossover_reference.R"), str(out)], capture_output=True,
                         text=True, check=False, timeout=300, cwd=DATA.parent.parent)
    assert run.returncode == 0, run.stderr
    fresh, stored = json.loads(out.read_text())["cases"], reference()
    assert sorted(fresh) == sorted(stored)
    for name, case in stored.items():
        for key in ("loglik", "loglik_no_trt", "lr_trt", "fisher_p", "prescott_jk", "prescott_exact_p"):
            assert math.isclose(fresh[name][key], case[key], rel_tol=1e-9), f"{name}: {key}"
        assert fresh[name]["profile_ci"] == case["profile_ci"]
