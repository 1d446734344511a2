"""Profile-likelihood intervals for every GLMM parameter against lme4's confint(method = "profile").

References: tests/data/profile_ci/make_reference.R (lme4's profile at a fine step and its confint, with the
profile's points) and make_glm_reference.R (MASS's confint.glm for families with an estimated dispersion,
and the exact roots of the same profile). lme4 interpolates its profile with a spline; glmmteach's ends are
roots of the profile itself, so where the two differ the test evaluates glmmteach's profile exactly at
lme4's end (see test_crossover_agq25_differences_are_lme4s_spline).
"""

from __future__ import annotations

import json
import re
import sys
import types
import warnings
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from glmmteach import GlmmteachError, datasets, glm, glmer

HERE = Path(__file__).parent / "data"
Z = float(stats.norm.ppf(0.975))
RTOL = 1e-3  # the issue's agreement with lme4's confint


@cache
def reference() -> dict:
    return json.loads((HERE / "profile_ci" / "reference.json").read_text())["cases"]


@cache
def glm_reference() -> dict:
    return json.loads((HERE / "profile_ci" / "glm_reference.json").read_text())["cases"]


def load(name: str) -> pd.DataFrame:
    if name == "ohio":
        return datasets.load_ohio_cancer()
    if name == "crossover":
        return datasets.load_crossover()
    if name == "grouseticks":  # with the responses of make_glm_reference.R
        ticks = pd.read_csv(datasets.data_path("grouseticks.csv"))
        return ticks.assign(logTICKS=np.log(ticks["TICKS"] + 1), TICKS1=ticks["TICKS"] + 1)
    return pd.read_csv(HERE / name)


@cache
def fitted(case: str) -> Any:
    stored = reference()[case]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        trials = stored["trials"] if isinstance(stored["trials"], str) else None  # (jsonlite writes NULL as {})
        return glmer(stored["formula"], load(stored["data"]), stored["family"], nAGQ=stored["nAGQ"], trials=trials)


@cache
def profile_table(case: str) -> pd.DataFrame:
    return fitted(case).conf_int(method="profile")


def lme4_name(name: str) -> str:
    """lme4's confint row name (oldNames = FALSE) of a glmmteach row: its correlations name the later effect
    first (``cor_x.(Intercept)|g``), glmmteach's as ``varcorr()``/``tidy()`` (``cor_(Intercept).x|g``)."""
    match = re.fullmatch(r"cor_(.+?)\.(.+)\|(.+)", name)
    if match is None:
        return name
    first, second, group = match.groups()
    return f"cor_{second}.{first}|{group}"


def lme4_rows(case: str) -> pd.DataFrame:
    stored = reference()[case]
    return pd.DataFrame({"lower": stored["lower"], "upper": stored["upper"]}, index=stored["rows"])


CASES = ["ohio", "crossed", "nested", "slope", "cbpp_laplace", "cbpp_agq10", "nb",
         pytest.param("crossover_agq25", marks=pytest.mark.slow)]
# Ends where lme4's confint differs by more than RTOL, each explained by exact evaluation below: the nested
# model's intercept, whose lme4 profile points all lie below glmmteach's profile (|zeta| larger by 0.0027: its
# inner fits stop 0.005 short in log-likelihood), so its interval is too narrow.
EXPLAINED = {("nested", "(Intercept)", "lower")}


@pytest.mark.parametrize("case", CASES)
def test_profile_intervals_agree_with_lme4(case: str) -> None:
    """Every end within 1e-3 of lme4's confint, or (the few in EXPLAINED) lme4's end is off the cut-off of the
    exact profile, ours is on it, and lme4's profile point nearest its end is either on our profile (then the
    difference is lme4's spline) or below it (lme4's inner fit stopped short: a maximum over the same
    parameters cannot be lower than a point of it)."""
    fit, ours, theirs = fitted(case), profile_table(case).drop(index="nb_theta", errors="ignore"), lme4_rows(case)
    assert [lme4_name(name) for name in ours.index] == list(theirs.index)  # lme4's rows, in lme4's order
    points = reference()[case]["points"]
    differing = set()
    for name in ours.index:
        r_name = lme4_name(name)
        for column, sign in (("lower", -1.0), ("upper", 1.0)):
            mine, lme4 = float(ours.loc[name, column]), float(theirs.loc[r_name, column])
            if abs(mine - lme4) <= RTOL * abs(lme4):
                continue
            differing.add((case, name, column))
            at_ends = fit.profile_zeta(name, [mine, lme4]).to_numpy()
            assert at_ends[0] == pytest.approx(sign * Z, abs=1e-6)  # ours is on the cut-off
            assert abs(at_ends[1] - sign * Z) > 1e-3  # lme4's is not
            values, zetas = np.asarray(points[r_name]["value"]), np.asarray(points[r_name]["zeta"])
            k = int(np.argmin(np.abs(zetas - sign * Z)))
            exact = float(fit.profile_zeta(name, [values[k]]).iloc[0])
            assert abs(exact) <= abs(zetas[k]) + 1e-3, (name, column, exact, zetas[k])
    assert differing == {item for item in EXPLAINED if item[0] == case}


def test_nb_shape_interval_is_lme4s_profile_over_the_shape() -> None:
    """The shape's interval: roots of the profile of glmer(negative.binomial(theta)) over the shape (R)."""
    stored = reference()["nb"]
    row = profile_table("nb").loc["nb_theta"]
    assert row["estimate"] == pytest.approx(stored["theta"], rel=1e-5)
    assert row["lower"] == pytest.approx(stored["shape_lower"], rel=RTOL)
    assert row["upper"] == pytest.approx(stored["shape_upper"], rel=RTOL)
    table = profile_table("nb")
    assert list(table.index).index("nb_theta") == 2  # after the covariance parameters, before the fixed effects
    assert table.drop(index="nb_theta")["note"].str.contains("shape held at its estimate").all()


def test_wald_table_and_rows() -> None:
    fit = fitted("slope")
    wald = fit.conf_int(method="wald")
    assert list(wald.columns) == ["estimate", "lower", "upper", "note"]
    assert list(wald.index) == list(profile_table("slope").index)
    fixed = fit.conf_int()
    np.testing.assert_allclose(wald.loc[fit.params.index, ["lower", "upper"]].to_numpy(dtype=float),
                               fixed.to_numpy(), rtol=1e-12)
    random = wald.drop(index=fit.params.index)
    assert random[["lower", "upper"]].isna().all().all() and random["note"].str.contains("lme4 gives NA").all()
    # the estimates are varcorr()'s SDs and correlation
    vc = fit.varcorr()
    np.testing.assert_allclose(wald.loc[["sd_(Intercept)|a", "sd_x|a", "sd_(Intercept)|b"], "estimate"],
                               vc["Std.Dev."].to_numpy(), rtol=1e-12)
    assert wald.loc["cor_(Intercept).x|a", "estimate"] == pytest.approx(vc["Corr 1"].iloc[1], rel=1e-12)


def test_parm_selects_rows_in_lmer_order() -> None:
    fit = fitted("crossed")
    names = list(profile_table("crossed").index)
    assert list(fit.conf_int(method="wald", parm="theta_").index) == names[:2]
    assert list(fit.conf_int(method="wald", parm="beta_").index) == names[2:]
    assert list(fit.conf_int(method="wald", parm=["x", 0]).index) == [names[0], "x"]  # lme4's order kept
    part = fit.conf_int(method="profile", parm="x")
    assert part.loc["x", "upper"] == pytest.approx(profile_table("crossed").loc["x", "upper"], rel=1e-8)


def test_bad_arguments_are_named() -> None:
    fit = fitted("crossed")
    with pytest.raises(GlmmteachError, match="method must be one of"):
        fit.conf_int(method="score")
    with pytest.raises(GlmmteachError, match="parm 'z' is not a parameter"):
        fit.conf_int(method="wald", parm="z")
    with pytest.raises(GlmmteachError, match="alpha must be between 0 and 1"):
        fit.conf_int(alpha=1.5, method="wald")
    with pytest.raises(GlmmteachError, match="within"):
        fit.profile_zeta("sd_(Intercept)|a", [-1.0])


def test_nagq0_fit_is_refused() -> None:
    fit = glmer("y ~ x + (1 | a) + (1 | b)", load("lme4_structures/crossed_poisson.csv"), "poisson", nAGQ=0)
    with pytest.raises(GlmmteachError, match="nAGQ = 0"):
        fit.conf_int(method="profile")


def test_boundary_sd_ends_at_zero_with_a_note() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fit = glmer("y ~ x + (1 | a) + (1 | b)", load("lme4_structures/crossed_singular.csv"), "binomial")
    table = fit.conf_int(method="profile", parm="theta_")
    row = table.loc["sd_(Intercept)|b"]
    assert row["lower"] == 0.0 and "boundary SD = 0" in row["note"]
    assert 0 < row["upper"] < np.inf
    assert fit.profile_zeta("sd_(Intercept)|b", [row["upper"]]).iloc[0] == pytest.approx(Z, abs=1e-6)


def test_separated_fixed_effect_has_an_infinite_end() -> None:
    """Quasi-complete separation of a GLMM covariate: the profile never reaches the cut-off on one side."""
    rng = np.random.default_rng(3)
    n_groups, size = 30, 6
    g = np.repeat(np.arange(n_groups), size)
    x = rng.uniform(-1, 1, n_groups * size)
    b = rng.normal(0, 0.7, n_groups)
    y = (rng.uniform(size=len(x)) < 1 / (1 + np.exp(-(0.3 * x + b[g])))).astype(int)
    z = (rng.uniform(size=len(x)) < 0.2).astype(int)
    y[z == 1] = 1  # every row with z = 1 is a success
    data = pd.DataFrame({"y": y, "x": x, "z": z, "g": g})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fit = glmer("y ~ x + z + (1 | g)", data, "binomial")
    row = fit.conf_int(method="profile", parm="z").loc["z"]
    assert np.isfinite(row["lower"]) and row["upper"] == np.inf
    assert "upper end infinite" in row["note"]


def test_old_sd_interval_delegates_to_the_profile() -> None:
    fit = fitted("ohio")
    interval = fit.conf_int_sd()
    np.testing.assert_allclose(interval.to_numpy(), profile_table("ohio").iloc[0][["lower", "upper"]].to_numpy(
        dtype=float), rtol=1e-10)
    grid = fit.profile_sd(interval.to_numpy())
    np.testing.assert_allclose(2 * (fit.llf - grid["loglik"].to_numpy()), Z**2, rtol=1e-6)


def test_boot_delegates_to_the_bootstrap_module(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = []
    fake = types.ModuleType("glmmteach.bootstrap")

    def boot_conf_int(fit: Any, alpha: float, parm: list[str], nsim: int, seed: Any) -> pd.DataFrame:
        calls.append((alpha, parm, nsim, seed))
        return pd.DataFrame({"lower": [0.0], "upper": [1.0]}, index=["x"])

    fake.boot_conf_int = boot_conf_int
    monkeypatch.setitem(sys.modules, "glmmteach.bootstrap", fake)
    fitted("crossed").conf_int(alpha=0.1, method="boot", parm="x", nsim=50, seed=7)
    assert calls == [(0.1, ["x"], 50, 7)]


@pytest.mark.parametrize("case", ["ohio_quasipoisson", "ticks_gaussian", "ticks_gamma"])
def test_glm_profile_for_estimated_dispersion(case: str) -> None:
    """MASS's confint.glm for families with an estimated dispersion: the exact roots of its tau to 1e-6, its
    interpolated confint() to 1e-4."""
    stored = glm_reference()[case]
    fit = glm(stored["formula"], load(stored["data"]), stored["family"], **(
        {"link": "log"} if stored["family"] == "Gamma" else {}))
    assert fit.scale == pytest.approx(stored["dispersion"], rel=1e-8)
    ci = fit.conf_int(method="profile")
    assert list(ci.index) == stored["rows"]
    np.testing.assert_allclose(ci.iloc[:, 0], stored["lower"], rtol=1e-6)
    np.testing.assert_allclose(ci.iloc[:, 1], stored["upper"], rtol=1e-6)
    np.testing.assert_allclose(ci.iloc[:, 0], stored["confint_lower"], rtol=1e-4)
    np.testing.assert_allclose(ci.iloc[:, 1], stored["confint_upper"], rtol=1e-4)


@pytest.mark.slow
def test_nb_profile_with_the_shape_reoptimised_is_at_least_as_wide() -> None:
    """nb_shape="profiled": the full profile (the shape re-optimised at each point) lies below the profile at
    the estimated shape, so its interval contains lme4's; the shape's own row is unchanged."""
    fit = fitted("nb")
    held = profile_table("nb")
    full = fit.conf_int(method="profile", nb_shape="profiled")
    assert (full["lower"] <= held["lower"] + 1e-9).all() and (full["upper"] >= held["upper"] - 1e-9).all()
    assert full.loc["nb_theta", "upper"] == pytest.approx(held.loc["nb_theta", "upper"], rel=1e-10)
    assert full.drop(index="nb_theta")["note"].str.contains("re-optimised").all()
    with pytest.raises(GlmmteachError, match="nb_shape must be"):
        fit.conf_int(method="profile", nb_shape="free")
