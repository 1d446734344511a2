"""Simulated quantile residuals and DHARMa's tests (glmmteach.residuals), against DHARMa's own code.

tests/data/dharma/make_simulations.py writes the simulations of four cases; make_reference.R gives DHARMa the
same matrices (createDHARMa) and stores its residuals and test results. Given the same simulations the
dispersion and zero-inflation tests are deterministic and must equal DHARMa's; the residuals' randomisation of
ties uses R's generator, so there the bounds must be equal and R's residuals lie between them, and the
uniformity test applied to R's residuals must give R's statistic and p-value. Calibration: with the true
model's simulations the tests reject at their nominal rates; with fitted models they are conservative (the
fit has seen the data), never anti-conservative. Power: the Ohio Poisson GLMM is overdispersed.
"""

from __future__ import annotations

import json
import warnings
from functools import cache
from pathlib import Path

import matplotlib
import numpy as np
import pandas as pd
import pytest
from scipy import stats

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402

import glmmteach as gt  # noqa: E402
from glmmteach import GlmmteachError, datasets, plots  # noqa: E402
from glmmteach.residuals import SimulatedResiduals, from_simulations, rank_transform  # noqa: E402

DATA = Path(__file__).parent / "data" / "dharma"
CASES = ("grouseticks_poisson", "crossover_binomial", "glm_small_poisson", "continuous")


@cache
def reference() -> dict:
    return json.loads((DATA / "reference.json").read_text())


@cache
def case(name: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    frame = pd.read_csv(DATA / f"{name}.csv.gz")
    return frame["observed"].to_numpy(), frame["fitted"].to_numpy(), frame.filter(like="sim_").to_numpy()


def quiet_glmer(*args, **kwargs) -> gt.GLMMResults:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return gt.glmer(*args, **kwargs)


@cache
def ohio_fit() -> gt.GLMMResults:
    return quiet_glmer("death ~ offset(logpop) + factor(sex) + factor(race) + year + (1 | county)",
                       datasets.load_ohio_cancer(), "poisson")


def r_one_term_kolmogorov(x: float) -> float:
    """R 4.2's pkstwo (C_pKS2, tol 1e-6) below x = 1: the series sqrt(2 pi)/x sum_k exp(-(2k-1)^2 pi^2/(8x^2))
    with k_max = floor(sqrt(2 - log(tol))) = 3 and the loop k = 1, 3, ... < k_max: one term."""
    return float(np.sqrt(2 * np.pi) / x * np.exp(-np.pi**2 / (8 * x**2)))


# ---- the same simulations give DHARMa's numbers -------------------------------------------------------------
@pytest.mark.parametrize("name", CASES)
def test_dispersion_and_zero_tests_equal_dharma(name):
    observed, fitted, sims = case(name)
    ref = reference()[name]
    res = from_simulations(sims, observed, fitted)
    dispersion = res.test_dispersion()
    assert dispersion.statistic == pytest.approx(ref["dispersion"], rel=1e-12)
    assert dispersion.p_value == ref["dispersion_p"]
    assert res.test_dispersion("less").p_value == ref["dispersion_less_p"]
    zeros = res.test_zero_inflation()
    if ref["zero_ratio"] == "NaN":  # (jsonlite's NaN) no zeros observed or simulated: 0/0
        assert np.isnan(zeros.statistic)
    else:
        assert zeros.statistic == pytest.approx(ref["zero_ratio"], rel=1e-12)
    assert zeros.p_value == ref["zero_p"]
    assert res.test_zero_inflation("greater").p_value == ref["zero_greater_p"]


@pytest.mark.parametrize("name", CASES)
def test_residuals_lie_where_dharma_puts_them(name):
    observed, fitted, sims = case(name)
    ref = reference()[name]
    res = from_simulations(sims, observed, fitted, seed=5)
    lower = np.mean(sims < observed[:, None], axis=1)
    upper = np.mean(sims <= observed[:, None], axis=1)
    np.testing.assert_array_equal(lower, ref["lower"])
    np.testing.assert_array_equal(upper, ref["lower_or_equal"])
    r_res, py_res = np.asarray(ref["residuals"]), res.residuals.to_numpy()
    for values in (r_res, py_res):  # both randomise within the same bounds, exactly the bound where they agree
        assert np.all((values >= lower) & (values <= upper))
        np.testing.assert_array_equal(values[lower == upper], lower[lower == upper])
    if name == "continuous":  # no ties: nothing randomised, the residuals are DHARMa's exactly
        np.testing.assert_array_equal(py_res, r_res)
    else:
        assert np.any(lower != upper)


@pytest.mark.parametrize("name", CASES)
def test_uniformity_test_on_dharmas_residuals_equals_dharma(name):
    observed, fitted, sims = case(name)
    ref = reference()[name]
    r_residuals = pd.Series(ref["residuals"])
    ks = SimulatedResiduals(r_residuals, observed, sims, fitted).test_uniformity()
    assert ks.method == ref["ks_method"]
    assert ks.statistic == pytest.approx(ref["ks_statistic"], rel=1e-12)
    x = np.sqrt(len(r_residuals)) * ks.statistic
    assert ks.p_value == pytest.approx(stats.kstwobign.sf(x), rel=1e-12)  # the Kolmogorov limit, exactly
    if x < 1:
        # R sums one term of the series below x = 1 (2.8e-5 low for the crossover, x = 0.99): R's p-value is
        # that term's, ours the exact limit
        assert ref["ks_p"] == pytest.approx(1 - r_one_term_kolmogorov(x), rel=1e-12)
        assert abs(ks.p_value - ref["ks_p"]) < 1e-4
    else:
        assert ks.p_value == pytest.approx(ref["ks_p"], rel=1e-8)


def test_uniformity_exact_path_equals_dharma():
    ref = reference()["ks_exact"]
    values = np.asarray(ref["residuals"])
    res = from_simulations(np.column_stack([values, values]), values)  # the residuals themselves are replaced
    ks = SimulatedResiduals(pd.Series(values), res.observed, res.simulated, res.fitted).test_uniformity()
    assert ks.method == ref["method"] == "Exact one-sample Kolmogorov-Smirnov test"
    assert ks.statistic == pytest.approx(ref["statistic"], rel=1e-12)
    assert ks.p_value == pytest.approx(ref["p"], rel=1e-9)


def test_fitted_is_lme4_population_level_prediction():
    """DHARMa's fittedPredictedResponse for glmer: predict(type = "response", re.form = ~0)."""
    fit = quiet_glmer("TICKS ~ factor(YEAR) + cHEIGHT + (1 | BROOD)", datasets.load_grouseticks(), "poisson")
    res = fit.simulated_residuals(20, seed=1)
    np.testing.assert_allclose(res.fitted, reference()["grouseticks_poisson"]["lme4_fitted"], rtol=2e-5)
    np.testing.assert_array_equal(res.observed, datasets.load_grouseticks()["TICKS"])


# ---- calibration and power --------------------------------------------------------------------------------
def poisson_glmm_data(rng: np.random.Generator, groups: int = 25,
                      per_group: int = 6) -> tuple[pd.DataFrame, np.ndarray]:
    g = np.repeat(np.arange(groups), per_group)
    x = rng.normal(size=groups * per_group)
    eta = 0.5 + 0.4 * x + rng.normal(scale=0.6, size=groups)[g]
    return pd.DataFrame({"y": rng.poisson(np.exp(eta)).astype(float), "x": x, "g": g}), np.exp(eta)


def band(n: int, p: float) -> tuple[float, float]:
    """The 99.9% binomial band of a rejection rate over n independent data sets."""
    lo, hi = stats.binom.interval(0.999, n, p)
    return lo / n, hi / n


def exchangeable_rejection_rate(nsim: int, alpha: float = 0.05) -> float:
    """P(DHARMa's two-sided simulation p <= alpha) when the observed summary is exchangeable with nsim simulated
    ones (no ties): its rank k among them is uniform on 0..nsim and p = min(2 min(k, nsim - k)/nsim, 1)."""
    k = np.arange(nsim + 1)
    return float(np.mean(np.minimum(2 * np.minimum(k, nsim - k) / nsim, 1) <= alpha))


def test_tests_are_calibrated_with_the_true_models_simulations():
    """Simulations from the true (conditional) model: residuals exactly uniform, observed and simulated
    exchangeable, so each test rejects at its nominal rate."""
    rng = np.random.default_rng(16)
    n_sets, nsim = 300, 100
    p = []
    for _ in range(n_sets):
        data, mean = poisson_glmm_data(rng)
        res = from_simulations(rng.poisson(mean[:, None], size=(len(mean), nsim)), data["y"], mean, seed=rng)
        p.append((res.test_uniformity().p_value, res.test_dispersion().p_value))
    rates = (np.asarray(p) <= 0.05).mean(axis=0)
    lo, hi = band(n_sets, 0.05)
    assert lo <= rates[0] <= hi, rates
    lo, hi = band(n_sets, exchangeable_rejection_rate(nsim))
    assert lo <= rates[1] <= hi, rates


def test_tests_on_fitted_models_are_not_anticonservative():
    """Correctly specified Poisson GLMMs, fitted: DHARMa's tests compare the data with simulations from a model
    fitted to those data, so they reject less often than nominal (measured: dispersion 1%, uniformity 0% of
    200 data sets at 5%) - and never more."""
    rng = np.random.default_rng(2016)
    n_sets = 100
    p = []
    for _ in range(n_sets):
        data, _ = poisson_glmm_data(rng)
        res = quiet_glmer("y ~ x + (1 | g)", data, "poisson").simulated_residuals(100, seed=rng)
        p.append((res.test_uniformity().p_value, res.test_dispersion().p_value, res.test_zero_inflation().p_value))
    rates = (np.asarray(p) <= 0.05).mean(axis=0)
    assert np.all(rates <= band(n_sets, 0.05)[1]), rates
    assert np.all(np.mean(p, axis=0) > 0.5)  # p-values pushed up: conservative
    # DHARMa in R (simulateResiduals on lme4 fits of the same design) is conservative in the same way
    dharma = reference()["calibration"]
    assert np.all(np.asarray(dharma["rejection_rate"]) <= band(dharma["n_sets"], 0.05)[1])
    assert np.all(np.asarray(dharma["mean_p"]) > 0.5)


def test_ohio_poisson_glmm_is_overdispersed():
    res = ohio_fit().simulated_residuals(250, seed=123)
    dispersion = res.test_dispersion()
    assert dispersion.statistic > 1.1
    assert dispersion.p_value < 0.05
    assert res.test_dispersion("greater").p_value < 0.025
    assert res.test_uniformity().p_value < 0.001
    zeros = res.test_zero_inflation()
    assert zeros.statistic > 1 and zeros.p_value < 0.05  # more zeros than the Poisson model expects


def test_ohio_dispersion_statistic_agrees_with_dharma_on_lme4():
    """DHARMa's own simulateResiduals on lme4's Ohio fit (six seeds, stored) and glmmteach's (six seeds) estimate the
    same limit var(y - mu0) / E var(Y* - mu0), computed exactly from each fit: the limits agree to 1e-5, every
    Monte Carlo statistic lies within 4 of its standard errors of the limit, and every p-value is below 0.05
    (R's six are 0; glmmteach's 0 or 0.008)."""
    fit = ohio_fit()
    ref = reference()["ohio"]
    y, mu = fit.design.y, fit.fittedvalues.to_numpy()
    mu0 = fit.predict(type="response", re_form=[]).to_numpy()
    shift = mu - mu0
    expected = (np.sum(mu) * (1 - 1 / len(y)) + np.sum((shift - shift.mean()) ** 2)) / (len(y) - 1)
    limit = np.var(y - mu0, ddof=1) / expected
    assert limit == pytest.approx(ref["limit"], rel=1e-5)
    for seed in range(6):
        dispersion = fit.simulated_residuals(250, seed=seed).test_dispersion()
        simulated = dispersion.simulated
        se = limit * simulated.std(ddof=1) / np.sqrt(len(simulated)) / simulated.mean()  # delta method, about 0.003
        assert abs(dispersion.statistic - limit) < 4 * se
        assert abs(ref["dispersion"][seed] - limit) < 4 * se
        assert dispersion.p_value < 0.05 and ref["dispersion_p"][seed] < 0.05
    assert max(ref["ks_p"]) < 0.001


def test_overdispersed_and_zero_inflated_glms_are_flagged():
    rng = np.random.default_rng(7)
    x = rng.normal(size=300)
    mean = np.exp(1 + 0.3 * x)
    nb = pd.DataFrame({"y": rng.negative_binomial(2, 2 / (2 + mean)), "x": x})
    res = gt.glm("y ~ x", nb, "poisson").simulated_residuals(200, seed=1)
    assert res.test_dispersion().p_value < 0.01 and res.test_dispersion().statistic > 1.5
    zi = pd.DataFrame({"y": np.where(rng.random(300) < 0.3, 0, rng.poisson(mean)), "x": x})
    res = gt.glm("y ~ x", zi, "poisson").simulated_residuals(200, seed=1)
    assert res.test_zero_inflation().p_value < 0.01 and res.test_zero_inflation().statistic > 1.5
    correct = gt.glm("y ~ x", nb, "negative_binomial", theta=2.0).simulated_residuals(200, seed=1)
    assert correct.test_dispersion().p_value > 0.05


# ---- behaviour ----------------------------------------------------------------------------------------------
def test_seed_fixes_the_residuals_and_conditional_differs_from_unconditional():
    fit = ohio_fit()
    a, b = fit.simulated_residuals(30, seed=4), gt.simulated_residuals(fit, 30, seed=4)
    pd.testing.assert_series_equal(a.residuals, b.residuals)
    assert a.nsim == 30 and a.simulated.shape == (fit.nobs, 30)
    unconditional = fit.simulated_residuals(30, seed=4, simulate_re="unconditional")
    # conditional simulations keep each county's level: they scatter less around the observed counts
    assert np.mean(np.var(a.simulated - a.observed[:, None], axis=1)) < np.mean(
        np.var(unconditional.simulated - unconditional.observed[:, None], axis=1))


def test_binomial_successes_whether_given_as_trials_or_proportions():
    cbpp = pd.read_csv(Path(__file__).parent / "data" / "lme4_structures" / "cbpp.csv")
    cbpp["p"] = cbpp["incidence"] / cbpp["size"]
    by_trials = quiet_glmer("incidence ~ factor(period) + (1 | herd)", cbpp, "binomial", trials="size")
    by_weights = quiet_glmer("p ~ factor(period) + (1 | herd)", cbpp, "binomial", weights="size")
    a, b = by_trials.simulated_residuals(50, seed=3), by_weights.simulated_residuals(50, seed=3)
    np.testing.assert_array_equal(a.observed, cbpp["incidence"])
    np.testing.assert_array_equal(a.simulated, b.simulated)
    pd.testing.assert_series_equal(a.residuals, b.residuals)


def test_rank_transform_is_dharmas():
    np.testing.assert_allclose(rank_transform(np.array([3.0, 1.0, 1.0, 2.0])), [1.0, 0.375, 0.375, 0.75])


@pytest.mark.parametrize(("call", "message"), [
    (lambda fit: fit.simulated_residuals(1), "nsim >= 2"),
    (lambda fit: fit.simulated_residuals(0), "nsim must be"),
    (lambda fit: fit.simulated_residuals(10, simulate_re="new"), "simulate_re"),
    (lambda fit: fit.simulated_residuals(10).test_dispersion("bigger"), "alternative"),
    (lambda fit: fit.simulated_residuals(10, seed=-1), "seed"),
])
def test_bad_options_are_named(call, message):
    with pytest.raises(GlmmteachError, match=message):
        call(ohio_fit())


def test_bad_inputs_are_named():
    with pytest.raises(GlmmteachError, match="observed has 3 values"):
        from_simulations(np.zeros((4, 10)), [1, 2, 3])
    with pytest.raises(GlmmteachError, match="at least 2"):
        from_simulations(np.zeros((4, 1)), [1, 2, 3, 4])
    with pytest.raises(GlmmteachError, match="finite"):
        from_simulations(np.zeros((4, 10)), [1, 2, np.nan, 4])
    data = pd.DataFrame({"y": [2.0, 5.0, 4.0, 9.0, 3.0], "x": [1.0, 2.0, 3.0, 4.0, 5.0], "w": [5, 2, 5, 10, 1]})
    with pytest.raises(GlmmteachError, match="prior weights"):
        gt.glm("y ~ x", data, "poisson", weights="w").simulated_residuals(10)
    with pytest.raises(GlmmteachError, match="needs a fitted glmer or glm model, got DataFrame"):
        gt.simulated_residuals(data)
    with pytest.raises(GlmmteachError, match="gaussian"):
        gt.glm("y ~ x", data, "gaussian").simulated_residuals(10)


# ---- plots --------------------------------------------------------------------------------------------------
def test_residual_plots_draw_the_residuals():
    res = ohio_fit().simulated_residuals(50, seed=2)
    ax = res.plot_qq()
    np.testing.assert_array_equal(ax.lines[0].get_ydata(), np.sort(res.residuals.to_numpy()))
    assert "KS test: p = " in ax.texts[0].get_text()
    ax = plots.plot_residuals_predicted(res)
    np.testing.assert_array_equal(ax.lines[0].get_xdata(), rank_transform(res.fitted))
    plt.close("all")


def test_caterpillar_from_a_fit_is_lme4s_dotplot():
    grouse = datasets.load_grouseticks()
    fit = quiet_glmer("TICKS ~ cHEIGHT + (1 + cHEIGHT | LOCATION) + (1 | BROOD)", grouse, "poisson")
    axes = plots.plot_caterpillar(fit, term="LOCATION")
    assert [a.get_title() for a in axes] == ["(Intercept)", "cHEIGHT"]
    frame = fit.ranef["LOCATION"]
    order = np.argsort(frame["(Intercept)"].to_numpy(), kind="stable")
    for a, name in zip(axes, ["(Intercept)", "cHEIGHT"], strict=True):
        modes = frame[name].to_numpy()[order]
        np.testing.assert_array_equal(a.lines[0].get_xdata(), modes)  # sorted by the intercepts in both panels
        segments = a.collections[0].get_segments()
        half = np.array([s[1, 0] - s[0, 0] for s in segments]) / 2
        np.testing.assert_allclose(half, stats.norm.ppf(0.975) * frame[f"{name}_sd"].to_numpy()[order])
    assert [t.get_text() for t in axes[0].get_yticklabels()] == [str(v) for v in frame.index[order]]
    with pytest.raises(GlmmteachError, match="several grouping factors"):
        plots.plot_caterpillar(fit)
    with pytest.raises(GlmmteachError, match="'county' is not a grouping factor"):
        plots.plot_caterpillar(fit, term="county")
    one = plots.plot_caterpillar(ohio_fit(), level=0.5)
    assert len(one) == 1 and one[0].get_ylabel() == "county"
    plt.close("all")


def test_caterpillar_from_arrays_is_unchanged():
    ax = plots.plot_caterpillar(np.array([2.0, 0.0, 1.0]), np.array([1.0, -1.0, 0.0]), np.array([3.0, 1.0, 2.0]),
                                labels=["a", "b", "c"], reference=0.0)
    np.testing.assert_array_equal(ax.lines[0].get_xdata(), [0.0, 1.0, 2.0])
    assert [t.get_text() for t in ax.get_yticklabels()] == ["b", "c", "a"]
    plt.close("all")


def test_rows_dropped_for_missing_values_and_other_models():
    grouse = datasets.load_grouseticks()
    holes = grouse.copy()
    holes.loc[[3, 10], "cHEIGHT"] = np.nan
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fits = (gt.glmer("TICKS ~ cHEIGHT + (1 | BROOD)", holes, "poisson"),
                gt.glmer("TICKS ~ cHEIGHT + (1 | BROOD)", holes, "poisson", na_action="exclude"),
                gt.glm("TICKS ~ cHEIGHT", holes, "poisson"), gt.glm("TICKS ~ cHEIGHT", holes, "poisson",
                                                                     na_action="exclude"))
    for fit in fits:
        res = fit.simulated_residuals(20, seed=1)
        assert list(res.residuals.index) == [i for i in holes.index if i not in (3, 10)]
        assert np.all(np.isfinite(res.fitted)) and res.simulated.shape == (401, 20)
    # crossed terms and the negative binomial GLMM: the Poisson fit is overdispersed, the NB fit is not flagged
    crossed = quiet_glmer("TICKS ~ cHEIGHT + (1 | BROOD) + (1 | LOCATION)", grouse, "poisson")
    assert crossed.simulated_residuals(100, seed=1).test_dispersion().p_value < 0.05
    nb = quiet_glmer("TICKS ~ cHEIGHT + (1 | BROOD)", grouse, "negative_binomial")
    assert nb.simulated_residuals(100, seed=1).test_dispersion().p_value > 0.05


def test_qq_plot_shows_p_values_to_the_digits_simulation_determines():
    """DHARMa-style plot text: 2 significant digits, none below a simulated p-value's Monte-Carlo error."""
    assert plots.monte_carlo_p_text(0.123456) == "0.12"
    assert plots.monte_carlo_p_text(0.0004567) == "0.00046"
    assert plots.monte_carlo_p_text(0.0432, nsim=100) == "0.04"  # MC SE 0.02: hundredths only
    assert plots.monte_carlo_p_text(0.0432, nsim=100_000) == "0.043"
    assert plots.monte_carlo_p_text(0.0, nsim=250) == "< 0.004"
    assert plots.monte_carlo_p_text(1.0, nsim=250) == "1"
    res = ohio_fit().simulated_residuals(50, seed=2)
    text = res.plot_qq().texts[0].get_text()
    ks, dispersion = (line.split("p = ")[1] for line in text.splitlines())
    assert ks == plots.monte_carlo_p_text(res.test_uniformity().p_value)
    assert dispersion == plots.monte_carlo_p_text(res.test_dispersion().p_value, 50)
    for shown in (ks, dispersion):  # at most 2 significant digits (before: 4)
        value = float(shown.lstrip("< "))
        assert float(f"{value:.2g}") == value
    plt.close("all")


def test_caterpillar_level_is_checked_by_the_one_level_rule():
    fit = ohio_fit()
    for bad in (1.5, 0, "0.95", True):
        with pytest.raises(GlmmteachError, match="level must be between 0 and 1"):
            plots.plot_caterpillar(fit, level=bad)
    plt.close("all")
