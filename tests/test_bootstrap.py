"""The parametric bootstrap (glmmteach.bootstrap, lme4's bootMer) and bootstrap_lrt running on it.

Intervals are checked against R's ``boot.ci`` on stored replicates (``tests/data/bootstrap/boot_ci.R``), the
default statistic's names against lme4's ``confint`` (``lme4_names.R``). The replicates themselves have no R
counterpart (different random streams): they are checked for their invariance (the same for a seed wherever
they run) and their statistical sense.
"""

from __future__ import annotations

import json
import warnings
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

import glmmteach
from glmmteach import bootstrap, bootstrap_lrt, datasets, glm, glmer
from glmmteach.bootstrap import BootstrapResult, RefitStatistic, covariance_parameters, fixef_and_covariance, run_block
from glmmteach.exceptions import GlmmteachError, GlmmteachWarning

DATA = Path(__file__).parent / "data"
BOOT = DATA / "bootstrap"
CROSSOVER = "outcome ~ trt*period + (1|ID)"


def quiet_glmer(*args: Any, **kwargs: Any) -> Any:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", GlmmteachWarning)
        return glmer(*args, **kwargs)


@cache
def crossover_fit() -> Any:
    return quiet_glmer(CROSSOVER, datasets.load_crossover(), "binomial")


@cache
def slope_data() -> pd.DataFrame:
    return pd.read_csv(DATA / "lme4_features" / "pois_slope.csv")


@cache
def probit_pair() -> tuple[Any, Any]:
    data = pd.read_csv(DATA / "lme4_features" / "probit.csv")
    return glm("y ~ x", data, "binomial", link="probit"), quiet_glmer("y ~ x + (1 | g)", data, "binomial",
                                                                        link="probit")


@cache
def rare_events_fit() -> Any:
    """Binary data with 2 successes in 20 rows: about 1 simulated response in 8 has none, and glmer refuses it."""
    data = pd.DataFrame({"g": np.repeat(list("abcde"), 4), "y": np.zeros(20)})
    data.loc[[3, 9], "y"] = 1
    return quiet_glmer("y ~ 1 + (1 | g)", data, "binomial")


# ---- intervals: R's boot.ci on the same replicates ------------------------------------------------------
@cache
def stored_replicates() -> tuple[pd.Series, pd.DataFrame]:
    t = pd.read_csv(BOOT / "replicates.csv")
    t0 = pd.read_csv(BOOT / "observed.csv").iloc[0]
    return t0, t


BOOT_CI = json.loads((BOOT / "boot_ci.json").read_text())


@pytest.mark.parametrize("case", BOOT_CI["cases"], ids=lambda c: f"{c['type']}-R{c['R']}-conf{c['conf']}")
def test_intervals_equal_boot_ci(case: dict) -> None:
    t0, t = stored_replicates()
    R = case["R"]
    result = BootstrapResult(t0, t.iloc[:R], pd.DataFrame(columns=["replicate", "reason"]), R, 0)
    table = result.conf_int(type=case["type"], alpha=1 - case["conf"])
    assert list(table.index) == case["names"] and list(table.columns) == ["lower", "upper"]
    np.testing.assert_allclose(table["lower"], case["lower"], rtol=1e-10)
    np.testing.assert_allclose(table["upper"], case["upper"], rtol=1e-10)
    assert table.attrs["n_replicates"] == R and table.attrs["n_failed"] == 0


def test_the_stored_cases_cover_whole_and_interpolated_order_statistics() -> None:
    # (R + 1) alpha/2 is whole for R = 39 and 199 at 95%, not for R = 200 nor at 90% with R = 39
    sizes = {(c["R"], c["conf"]) for c in BOOT_CI["cases"]}
    assert {(39, 0.95), (199, 0.95), (200, 0.95), (39, 0.9)} <= sizes


# ---- the default statistic: lme4's confint rows ---------------------------------------------------------
LME4_NAMES = json.loads((BOOT / "lme4_names.json").read_text())


@pytest.mark.parametrize("case", ["pois_slope", "pois_uncorr", "crossed_slope", "crossover"])
def test_default_statistic_has_lme4s_confint_names_and_order(case: str) -> None:
    if case == "crossover":
        fit = crossover_fit()
    elif case == "crossed_slope":
        data = pd.read_csv(DATA / "lme4_structures" / "crossed_slope.csv")
        fit = quiet_glmer("y ~ x + (1 + x | a) + (1 | b)", data, "poisson")
    else:
        bar = "|" if case == "pois_slope" else "||"
        fit = quiet_glmer(f"y ~ x + offset(logexpo) + (1 + x {bar} g)", slope_data(), "poisson")
    stat = fixef_and_covariance(fit)
    assert list(stat.index) == LME4_NAMES[case]
    # the values are varcorr()'s SDs and correlation and the fixed effects
    vc = fit.varcorr()
    np.testing.assert_allclose(stat[[n for n in stat.index if n.startswith("sd_")]], vc["Std.Dev."], rtol=1e-12)
    np.testing.assert_array_equal(stat[list(fit.params.index)], fit.params)
    if case == "pois_slope":
        assert stat["cor_x.(Intercept)|g"] == pytest.approx(vc["Corr (Intercept)"].iloc[1], rel=1e-12)


def test_an_estimated_negative_binomial_shape_is_bootstrapped_too() -> None:
    data = pd.read_csv(DATA / "negative_binomial" / "nb_crossed.csv")
    fit = quiet_glmer("y ~ x + (1 | a) + (1 | b)", data, "negative_binomial")
    boot = bootstrap(fit, nsim=3, seed=1)
    assert list(boot.observed.index) == ["sd_(Intercept)|a", "sd_(Intercept)|b", "(Intercept)", "x", "nb_theta"]
    assert boot.observed["nb_theta"] == fit.nb_theta
    # each refit estimates the shape again: the replicates differ from the fit's shape and from each other
    assert boot.replicates["nb_theta"].nunique() == 3 and not (boot.replicates["nb_theta"] == fit.nb_theta).any()


def test_a_correlation_with_a_zero_sd_is_undefined_not_zero() -> None:
    fit = quiet_glmer("y ~ x + offset(logexpo) + (1 + x | g)", slope_data(), "poisson")
    T = fit.Ts[0].copy()
    T[1, :] = 0.0  # the slope's SD at 0

    class AtZeroSlope:  # the fit's terms with a covariance whose slope SD is 0 (a boundary refit)
        terms, Ts = fit.terms, [T]

        def varcorr(self) -> Any:
            return fit.varcorr()

    values = covariance_parameters(AtZeroSlope())
    assert values["sd_x|g"] == 0 and np.isnan(values["cor_x.(Intercept)|g"])


# ---- replicates: one stream each, in order -----------------------------------------------------------------
def test_replicate_i_depends_on_its_own_stream_only() -> None:
    fit = crossover_fit()
    ten = bootstrap(fit, nsim=10, seed=5)
    six = bootstrap(fit, nsim=6, seed=5)
    # the first six of ten are the six (SeedSequence.spawn's children do not depend on how many there are)
    pd.testing.assert_frame_equal(ten.replicates.iloc[:6], six.replicates)
    assert list(ten.replicates.index) == list(range(10)) and ten.n_failed == 0
    # a block run in another order (as a worker would) gives the same value for each replicate
    job = RefitStatistic(fit, fixef_and_covariance, list(ten.observed.index))
    seqs = np.random.SeedSequence(5).spawn(10)
    shuffled = run_block(job, [(i, seqs[i]) for i in (7, 2, 9)])
    for index, values, reason in shuffled:
        assert reason is None
        np.testing.assert_array_equal(values, ten.replicates.loc[index].to_numpy())
    # a Generator in the same state gives the same root
    pd.testing.assert_frame_equal(bootstrap(fit, nsim=3, seed=np.random.default_rng(1)).replicates,
                                  bootstrap(fit, nsim=3, seed=np.random.default_rng(1)).replicates)
    # the root entropy reproduces a bootstrap run with seed=None
    fresh = bootstrap(fit, nsim=3, seed=None)
    again = bootstrap(fit, nsim=3, seed=fresh.entropy)
    pd.testing.assert_frame_equal(fresh.replicates, again.replicates)


def test_failed_refits_are_listed_with_their_reasons_and_left_out() -> None:
    boot = bootstrap(rare_events_fit(), nsim=40, seed=3)
    assert boot.n_failed > 0 and boot.n_success + boot.n_failed == boot.nsim == 40
    assert list(boot.failures.columns) == ["replicate", "reason"]
    assert boot.failures["reason"].str.contains("0 \\(no successes\\) in every row").all()
    assert set(boot.failures["replicate"]).isdisjoint(boot.replicates.index)
    assert sorted([*boot.failures["replicate"], *boot.replicates.index]) == list(range(40))
    # each failed replicate's simulated response has no success (the same stream as the replicate)
    seqs = np.random.SeedSequence(3).spawn(40)
    for index in boot.failures["replicate"]:
        assert rare_events_fit().simulate(1, seed=np.random.default_rng(seqs[index]))["sim_1"].sum() == 0
    table = boot.conf_int()
    assert table.attrs["n_replicates"] == boot.n_success and table.attrs["n_failed"] == boot.n_failed
    assert f"{boot.n_failed} failed" in str(boot)


class NotConvergedOnOddTotals:
    """A real fit whose refits are reported not converged when the simulated total is odd (a stand-in for a
    refit that stops short: the bootstrap must count it, not use it)."""

    def __init__(self, fit: Any):
        self.fit = fit
        self.params = fit.params

    def simulate(self, nsim: int, seed: Any) -> pd.DataFrame:
        return self.fit.simulate(nsim, seed=seed)

    def refit(self, response: pd.Series) -> Any:
        refit = self.fit.refit(response)
        if response.sum() % 2 == 1:
            refit.converged = False
            refit.warnings = ["stopped short (odd total)"]
        return refit


def test_refits_that_did_not_converge_are_failures() -> None:
    fit = NotConvergedOnOddTotals(crossover_fit())
    boot = bootstrap(fit, lambda f: f.params, nsim=12, seed=8)
    odd = [i for i, s in enumerate(np.random.SeedSequence(8).spawn(12))
           if crossover_fit().simulate(1, seed=np.random.default_rng(s))["sim_1"].sum() % 2 == 1]
    assert 0 < len(odd) < 12
    assert list(boot.failures["replicate"]) == odd
    assert (boot.failures["reason"] == "not converged: stopped short (odd total)").all()


def test_a_statistic_of_any_shape_and_its_names() -> None:
    fit = crossover_fit()
    scalar = bootstrap(fit, lambda f: f.params["trt"], nsim=4, seed=2)
    series = bootstrap(fit, lambda f: f.params[["trt"]], nsim=4, seed=2)
    assert list(scalar.observed.index) == ["t1"] and list(series.observed.index) == ["trt"]
    np.testing.assert_array_equal(scalar.replicates["t1"], series.replicates["trt"])
    full = bootstrap(fit, nsim=4, seed=2)
    np.testing.assert_array_equal(full.replicates["trt"], series.replicates["trt"])
    assert scalar.observed["t1"] == fit.params["trt"]


def test_glm_bootstrap_standard_errors_are_the_wald_ones() -> None:
    # a Poisson GLM with 600 rows: the bootstrap SD of the estimates is the Wald SE to within sampling error
    rng = np.random.default_rng(11)
    x = rng.normal(size=600)
    data = pd.DataFrame({"x": x, "y": rng.poisson(np.exp(0.5 + 0.4 * x))})
    fit = glm("y ~ x", data, "poisson")
    boot = bootstrap(fit, nsim=400, seed=1)
    assert list(boot.observed.index) == ["(Intercept)", "x"]
    ratio = boot.table()["std. error"] / fit.bse
    assert np.all(np.abs(ratio - 1) < 0.12), ratio  # the SD of an SD estimate from 400 draws is 3.5%
    assert np.all(np.abs(boot.table()["bias"]) < 0.2 * fit.bse)
    perc = boot.conf_int()
    wald = fit.conf_int()
    np.testing.assert_allclose(perc.to_numpy(), wald.to_numpy(), atol=0.25 * fit.bse.max())


def test_conf_int_method_boot_is_the_bootstrap() -> None:
    fit = crossover_fit()
    table = fit.conf_int(method="boot", nsim=10, seed=4, type="basic", alpha=0.1)
    direct = bootstrap(fit, nsim=10, seed=4).conf_int(type="basic", alpha=0.1)
    pd.testing.assert_frame_equal(table, direct)
    assert list(table.index) == LME4_NAMES["crossover"]
    one = fit.conf_int(method="boot", nsim=10, seed=4, parm="trt", type="basic", alpha=0.1)
    pd.testing.assert_frame_equal(one, direct.loc[["trt"]])
    with pytest.raises(GlmmteachError, match="method must be one of 'profile', 'wald', 'boot'"):
        fit.conf_int(method="bootstrap")


def test_bad_options_are_named() -> None:
    fit = crossover_fit()
    with pytest.raises(GlmmteachError, match="seed must be"):
        bootstrap(fit, nsim=2, seed=-1)
    with pytest.raises(GlmmteachError, match="nsim must be"):
        bootstrap(fit, nsim=0)
    with pytest.raises(GlmmteachError, match="n_jobs must be"):
        bootstrap(fit, nsim=2, n_jobs=0)
    with pytest.raises(GlmmteachError, match="not both"):
        bootstrap(fit, nsim=2, n_jobs=2, client=object())
    with pytest.raises(GlmmteachError, match="client must be a dask.distributed.Client"):
        bootstrap(fit, nsim=2, client=object())
    with pytest.raises(GlmmteachError, match="statistic must be a function"):
        bootstrap(fit, "params", nsim=2)
    with pytest.raises(GlmmteachError, match="fit must be a glm or glmer fit"):
        bootstrap(pd.DataFrame(), nsim=2)
    boot = bootstrap(fit, nsim=3, seed=1)
    with pytest.raises(GlmmteachError, match="type must be one of"):
        boot.conf_int(type="bca")
    with pytest.raises(GlmmteachError, match="alpha must be"):
        boot.conf_int(alpha=5)
    with pytest.raises(GlmmteachError, match="parm names 'slope'"):
        boot.conf_int(parm="slope")


def test_a_statistic_that_fails_everywhere_is_an_error_with_its_reason() -> None:
    def broken(f: Any) -> Any:
        if f is crossover_fit():
            return f.params
        raise KeyError("no such column")

    with pytest.raises(GlmmteachError, match="all 3 bootstrap replicates failed; the first: KeyError"):
        bootstrap(crossover_fit(), broken, nsim=3, seed=1)


def test_bootstrap_lrt_lists_its_failures() -> None:
    small = glm("y ~ 1", rare_events_fit().frame, "binomial")
    result = bootstrap_lrt(small, rare_events_fit(), nsim=30, seed=3)
    assert result.n_failed == len(result.failures) > 0
    assert len(result.bootstrap) + result.n_failed == 30
    assert result.failures["reason"].str.startswith("refit refused").all()
    assert "failed and were left out" in str(result)


# ---- local processes and a Dask cluster: the same replicates ---------------------------------------------
@pytest.mark.slow
def test_replicates_are_the_same_on_local_processes() -> None:
    fit = crossover_fit()
    serial = bootstrap(fit, nsim=24, seed=9)
    parallel = bootstrap(fit, nsim=24, seed=9, n_jobs=2)
    pd.testing.assert_frame_equal(serial.replicates, parallel.replicates)
    rare = bootstrap(rare_events_fit(), nsim=40, seed=3, n_jobs=2)
    pd.testing.assert_frame_equal(rare.failures, bootstrap(rare_events_fit(), nsim=40, seed=3).failures)
    small, big = probit_pair()
    a, b = bootstrap_lrt(small, big, nsim=12, seed=4), bootstrap_lrt(small, big, nsim=12, seed=4, n_jobs=2)
    np.testing.assert_array_equal(a.bootstrap, b.bootstrap)


@pytest.mark.slow
def test_replicates_are_the_same_on_a_dask_cluster() -> None:
    distributed = pytest.importorskip("dask.distributed")
    fit = crossover_fit()
    small, big = probit_pair()
    serial = bootstrap(fit, nsim=16, seed=9)
    serial_lrt = bootstrap_lrt(small, big, nsim=8, seed=4)
    cluster = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None)
    with cluster, distributed.Client(cluster) as client:
        on_cluster = bootstrap(fit, nsim=16, seed=9, client=client)
        lrt = bootstrap_lrt(small, big, nsim=8, seed=4, client=client)
        ran_on = set(client.run(lambda: True))
    assert len(ran_on) == 2
    pd.testing.assert_frame_equal(serial.replicates, on_cluster.replicates)
    np.testing.assert_array_equal(serial_lrt.bootstrap, lrt.bootstrap)


def test_exported() -> None:
    assert glmmteach.bootstrap is bootstrap and glmmteach.BootstrapResult is BootstrapResult
