"""The numbers of lessons 13-16 (fitting by hand, simulation studies, effect sizes, model checking) and one of
lesson 7, checked independently.

Each lesson records the values its text quotes with ``glmmteach.booktools.record``; the stored notebook holds
them as ``application/papermill.record/text/plain`` outputs (what ``pytest --nbval`` proves equal to a fresh
run). Here they are compared with computations that do not go through the lesson: the R/lme4 reference fits,
a live ``glmer`` fit, the data themselves, and the defining formulas.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
from lesson_records import recorded_values, rounding
from scipy import stats

from glmmteach import glm, glmer
from glmmteach.booktools import ESTIMATE_DIGITS, SE_DIGITS

LESSONS = Path(__file__).resolve().parents[1] / "lessons"
MEDIAN_FACTOR = np.sqrt(2) * stats.norm.ppf(0.75)  # MOR = exp(MEDIAN_FACTOR * tau)


def value(lesson: str, name: str) -> float:
    values = recorded_values(LESSONS / f"{lesson}.ipynb")
    assert name in values, f"{lesson} does not record {name!r}"
    return float(values[name])


# ---- lesson 7: the syllabus's period effect and tau, not reproduced ----------------------------------


def test_lesson7_25_node_fit_is_lme4s(reference):
    """Lesson 7 quotes its 25-node fit beside the syllabus's 2.78 (2.02) and 4.92, saying lme4 gives the same."""
    lme4 = reference["crossover"]["glmm"]["nAGQ_25"]
    lesson = "07_crossover_glmm"
    for name, ref in [("period_k25", lme4["fixef"]["period"]), ("period_se_k25", lme4["se"]["period"]),
                      ("tau_k25", lme4["varcorr"][0]["sdcor"])]:
        # lme4 stops about 1e-4 from the optimum along the flat ridge; recorded to SE_DIGITS
        assert value(lesson, name) == pytest.approx(ref, abs=5e-4 + rounding(ref, SE_DIGITS)), name
    # the syllabus's numbers are not those of the 25-node fit
    assert abs(value(lesson, "tau_k25") - 4.92) > 0.01


# ---- lesson 13: fitting by hand --------------------------------------------------------------------


def test_hand_fit_matches_a_live_glmer_fit(crossover):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # warnings are not what this test judges
        fit = glmer("outcome ~ trt*period + (1|ID)", crossover, family="binomial", nAGQ=25)
    lesson = "13_fitting_by_hand"
    # recorded to SE_DIGITS (a flat ridge), the log-likelihood to ESTIMATE_DIGITS
    hand = [value(lesson, f"h13_{n}") for n in ("b0", "trt", "period", "inter", "tau")]
    for recorded, live in zip(hand, [*fit.params, fit.sd_re.iloc[0]], strict=True):
        assert recorded == pytest.approx(live, abs=1e-4 + rounding(live, SE_DIGITS))
    loglik = value(lesson, "h13_loglik")
    assert loglik == pytest.approx(fit.llf, abs=1e-6 + rounding(fit.llf, ESTIMATE_DIGITS))
    se = fit.bse["trt"]
    assert value(lesson, "h13_se_trt") == pytest.approx(se, abs=1e-4 * se + rounding(se, SE_DIGITS))


def test_hand_fit_matches_lme4_nagq25(reference):
    lme4 = reference["crossover"]["glmm"]["nAGQ_25"]
    lesson = "13_fitting_by_hand"
    for name, term in [("b0", "(Intercept)"), ("trt", "trt"), ("period", "period"), ("inter", "trt:period")]:
        # lme4's own stopping rule leaves it about 1e-4 from the optimum along the flat ridge
        ref = lme4["fixef"][term]
        assert value(lesson, f"h13_{name}") == pytest.approx(ref, abs=5e-4 + rounding(ref, SE_DIGITS)), name
    assert value(lesson, "h13_se_trt") == pytest.approx(lme4["se"]["trt"], rel=1e-3 + 5e-4)


def test_hand_fit_delta_method_and_intervals():
    lesson = "13_fitting_by_hand"
    # every value recorded to SE_DIGITS: each comparison allows the rounding of each input
    tau, se_log = value(lesson, "h13_tau"), value(lesson, "h13_se_log_tau")
    d_tau, d_se = rounding(tau, SE_DIGITS), rounding(se_log, SE_DIGITS)
    delta = value(lesson, "h13_se_tau_delta")
    inputs = se_log * d_tau + tau * d_se
    assert delta == pytest.approx(tau * se_log, abs=rounding(delta, SE_DIGITS) + inputs)
    direct = value(lesson, "h13_se_tau_direct")
    assert direct == pytest.approx(tau * se_log, abs=1e-4 * direct + rounding(direct, SE_DIGITS) + inputs)
    z = stats.norm.ppf(0.975)
    low, factor = value(lesson, "h13_wald_log_low"), np.exp(-z * se_log)
    assert low == pytest.approx(tau * factor, abs=rounding(low, SE_DIGITS) + factor * (d_tau + tau * z * d_se))
    high = value(lesson, "h13_wald_high")
    assert high == pytest.approx(tau + z * tau * se_log,
                                 abs=rounding(high, SE_DIGITS) + (1 + z * se_log) * d_tau + z * tau * d_se)
    # the text says the log-scale Wald interval is closer to the profile interval than the tau-scale one
    profile = np.array([value(lesson, "h13_profile_low"), value(lesson, "h13_profile_high")])
    wald = np.array([value(lesson, "h13_wald_low"), value(lesson, "h13_wald_high")])
    wald_log = np.array([value(lesson, "h13_wald_log_low"), value(lesson, "h13_wald_log_high")])
    assert np.abs(wald_log - profile).max() < np.abs(wald - profile).max()


# ---- lesson 14: simulation studies -------------------------------------------------------------------


def test_simulation_truth_and_reported_uncertainties(reference):
    lesson = "14_simulation_studies"
    lme4 = reference["crossover"]["glmm"]["nAGQ_25"]
    assert value(lesson, "s14_trt_true") == pytest.approx(lme4["fixef"]["trt"], abs=5e-4)
    n = value(lesson, "s14_n_sims")
    for key in ("wald", "wald_log", "profile", "trt"):
        p = value(lesson, f"s14_cover_{key}")
        mcse = np.sqrt(p * (1 - p) / n)  # recorded to two digits
        assert value(lesson, f"s14_cover_{key}_mcse") == pytest.approx(mcse, abs=rounding(mcse, 2))
        assert (p * n) == pytest.approx(round(p * n), abs=1e-6)  # a share of the simulated trials
    for key in ("wald", "wald_log", "profile"):
        misses = value(lesson, f"s14_{key}_below") + value(lesson, f"s14_{key}_above")
        assert misses >= round((1 - value(lesson, f"s14_cover_{key}")) * n) - value(lesson, "s14_no_se")


def test_bootstrap_test_of_tau_zero(ohio):
    lesson = "14_simulation_studies"
    women = ohio[(ohio["sex"] == 2) & (ohio["race"] == 2) & (ohio["year"] == 21)]
    assert value(lesson, "s14_ohio_n") == len(women)
    assert value(lesson, "s14_ohio_deaths") == women["death"].sum()
    assert value(lesson, "s14_ohio_zero") == (women["death"] == 0).sum()
    lr = value(lesson, "s14_ohio_lr")
    p_mixture = 0.5 * stats.chi2.sf(lr, 1)
    tolerance = rounding(p_mixture, ESTIMATE_DIGITS) + 0.5 * stats.chi2.pdf(lr, 1) * rounding(lr, ESTIMATE_DIGITS)
    assert value(lesson, "s14_ohio_p_mixture") == pytest.approx(p_mixture, abs=tolerance)
    # the bootstrap p-value (1 + k) / (B + 1), kept to the decimal of its Monte-Carlo error
    b, p_boot = value(lesson, "s14_n_boot"), value(lesson, "s14_p_boot")
    place = 10.0 ** np.floor(np.log10(value(lesson, "s14_p_boot_mcse")))
    exceed = round(p_boot * (b + 1) - 1)
    assert abs((1 + exceed) / (b + 1) - p_boot) <= place / 2 and 0 <= exceed <= b
    # the text contrasts the two p-values at the 5% level
    assert p_boot < 0.05 < value(lesson, "s14_ohio_p_mixture")


# ---- lesson 15: effect sizes --------------------------------------------------------------------------


def test_median_odds_ratio_and_icc_from_the_formulas(exact_mle):
    lesson = "15_effect_sizes"
    tau = value(lesson, "e15_tau")  # e15 values of the crossover fit are recorded to SE_DIGITS
    assert tau == pytest.approx(exact_mle["tau"], rel=1e-3)
    mor = np.exp(MEDIAN_FACTOR * tau)
    tolerance = rounding(mor, SE_DIGITS) + mor * MEDIAN_FACTOR * rounding(tau, SE_DIGITS)
    assert value(lesson, "e15_mor") == pytest.approx(mor, abs=tolerance)
    assert value(lesson, "e15_mor") == pytest.approx(np.exp(MEDIAN_FACTOR * exact_mle["tau"]), rel=5e-3)
    assert value(lesson, "e15_mor_simulated") == pytest.approx(value(lesson, "e15_mor"), rel=0.05)
    for end in ("low", "high"):
        tau_end = value(lesson, f"e15_tau_{end}")
        mor_end = np.exp(MEDIAN_FACTOR * tau_end)
        tolerance = rounding(mor_end, SE_DIGITS) + mor_end * MEDIAN_FACTOR * rounding(tau_end, SE_DIGITS)
        assert value(lesson, f"e15_mor_{end}") == pytest.approx(mor_end, abs=tolerance)
    icc = exact_mle["tau2"] / (exact_mle["tau2"] + np.pi**2 / 3)
    assert value(lesson, "e15_icc") == pytest.approx(icc, rel=1e-3)
    assert value(lesson, "e15_or_trt") == pytest.approx(np.exp(exact_mle["fixef"]["trt"]), rel=5e-3)
    assert value(lesson, "e15_observed_corr") < value(lesson, "e15_icc")


def test_median_rate_ratio_against_lme4(reference):
    lesson = "15_effect_sizes"
    lme4_tau = reference["ohio"]["glmm_poisson"]["varcorr"][0]["sdcor"]
    # the lesson's model adds sex x race and uses decades; tau hardly moves (lesson 11)
    assert value(lesson, "e15_tau_ohio") == pytest.approx(lme4_tau, rel=2e-3)
    tau = value(lesson, "e15_tau_ohio")
    mrr = np.exp(MEDIAN_FACTOR * tau)
    tolerance = rounding(mrr, ESTIMATE_DIGITS) + mrr * MEDIAN_FACTOR * rounding(tau, ESTIMATE_DIGITS)
    assert value(lesson, "e15_mrr") == pytest.approx(mrr, abs=tolerance)
    assert value(lesson, "e15_mrr_low") < value(lesson, "e15_mrr") < value(lesson, "e15_mrr_high")


# ---- lesson 16: model checking ------------------------------------------------------------------------


def test_pattern_counts_and_predicted_effects_from_the_data(crossover):
    lesson = "16_model_checking"
    abnormal = crossover.groupby("ID")["outcome"].sum()
    assert value(lesson, "c16_obs_both_normal") == (abnormal == 0).sum()
    assert value(lesson, "c16_obs_discordant") == (abnormal == 1).sum()
    # a patient's prediction depends only on the sequence and the number of abnormal ECGs (sufficient
    # for theta_i under the logit link)
    ordered = crossover.sort_values(["ID", "period"])
    first, second = ordered[ordered["period"] == 0], ordered[ordered["period"] == 1]
    patterns = set(zip(first["trt"], first["outcome"].to_numpy() + second["outcome"].to_numpy(), strict=True))
    assert value(lesson, "c16_crossover_distinct") == len(patterns)
    assert value(lesson, "c16_crossover_mode_sd") < value(lesson, "c16_crossover_tau")


def test_ohio_pearson_residuals_against_a_live_fit(ohio):
    lesson = "16_model_checking"
    ohio = ohio.assign(decade=(ohio["year"] - 11) / 10)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fit = glmer("death ~ offset(logpop) + factor(sex)*factor(race) + decade + (1|county)", ohio,
                    family="poisson")
    # recorded to ESTIMATE_DIGITS: 1e-6 relative plus the rounding
    for name, live in [("c16_pearson_var_glmm", np.mean(fit.resid_pearson**2)),
                       ("c16_ohio_tau", fit.sd_re.iloc[0]),
                       ("c16_ohio_mode_sd", np.std(fit.ranef["(Intercept)"], ddof=1))]:
        assert value(lesson, name) == pytest.approx(live, abs=1e-6 * live + rounding(live, ESTIMATE_DIGITS)), name
    assert value(lesson, "c16_n_rows") == len(ohio)


def ohio_fits(ohio):
    ohio = ohio.assign(decade=(ohio["year"] - 11) / 10)
    model = "death ~ offset(logpop) + factor(sex)*factor(race) + decade"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return glm(model, ohio, family="poisson"), glmer(model + " + (1|county)", ohio, family="poisson")


def dispersion_limit(y: np.ndarray, mu: np.ndarray, mu0: np.ndarray) -> float:
    """The limit (nsim -> infinity) of DHARMa's dispersion statistic, var(y - mu0) / mean var(Y* - mu0), for
    Poisson simulations Y* with means ``mu`` (conditional on the fitted effects) around the population-level
    means ``mu0``: with shift = mu - mu0, E var(Y* - mu0) = (sum(mu) (1 - 1/n) + sum((shift - mean)^2)) / (n - 1),
    as tests/test_simulated_residuals.py derives it."""
    n, shift = len(y), mu - mu0
    expected = (np.sum(mu) * (1 - 1 / n) + np.sum((shift - shift.mean()) ** 2)) / (n - 1)
    return float(np.var(y - mu0, ddof=1) / expected)


def test_ohio_dispersion_statistics_near_their_exact_limits(ohio):
    """Lesson 16's Monte Carlo dispersion statistics (250 simulations, recorded to 3 digits) lie within 4 Monte
    Carlo standard errors (delta method, about 0.3% here) of the limits computed from the fits, with no
    simulation: the GLM's and the county GLMM's overdispersion is the models', not the seed's."""
    lesson = "16_model_checking"
    poisson_glm, poisson_glmm = ohio_fits(ohio)
    y = np.asarray(poisson_glmm.design.y, dtype=float)
    mu_glm = poisson_glm.fittedvalues.to_numpy()
    mu_glmm = poisson_glmm.fittedvalues.to_numpy()
    mu0_glmm = poisson_glmm.predict(type="response", re_form=[]).to_numpy()
    for name, fit, limit in [("c16_disp_glm", poisson_glm, dispersion_limit(y, mu_glm, mu_glm)),
                             ("c16_disp_glmm", poisson_glmm, dispersion_limit(y, mu_glmm, mu0_glmm))]:
        simulated = fit.simulated_residuals(250, seed=2016).test_dispersion().simulated
        se = limit * simulated.std(ddof=1) / np.sqrt(len(simulated)) / simulated.mean()
        assert abs(value(lesson, name) - limit) < 4 * se + rounding(limit, 3), (name, limit)
    assert dispersion_limit(y, mu_glmm, mu0_glmm) > 1.1  # the county GLMM is overdispersed in the limit


def test_ohio_simulated_residual_records_are_the_librarys(ohio):
    """The lesson calls fit.simulated_residuals(250, seed=2016): the same call gives its recorded shares and
    tests (to the digits recorded), and the text's qualitative claims hold."""
    lesson = "16_model_checking"
    poisson_glm, poisson_glmm = ohio_fits(ohio)
    shares = {}
    for key, fit in [("glm", poisson_glm), ("glmm", poisson_glmm)]:
        res = fit.simulated_residuals(250, seed=2016)
        r = res.residuals.to_numpy()
        shares[key] = np.mean((r < 0.025) | (r > 0.975))
        assert value(lesson, f"c16_outer_{key}") == pytest.approx(shares[key], abs=rounding(shares[key], 3))
    dispersion, zeros = res.test_dispersion(), res.test_zero_inflation()
    assert value(lesson, "c16_disp_glmm_p") == dispersion.p_value == 0
    assert value(lesson, "c16_zeros_glmm") == pytest.approx(zeros.statistic, abs=rounding(zeros.statistic, 3))
    ks = res.test_uniformity().p_value
    assert value(lesson, "c16_ks_glmm") == pytest.approx(ks, rel=0.01) and ks < 1e-3
    assert value(lesson, "c16_nsim") == res.nsim == 250
    # "the county effects remove about half of the excess in the tails, not all of it"
    assert 0.4 < 1 - (shares["glmm"] - 0.05) / (shares["glm"] - 0.05) < 0.6
