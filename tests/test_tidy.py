"""fit.tidy() against broom.mixed's and broom's tidy() (tests/data/tidy/make_reference.R).

The GLMMs' estimates are compared on the fits themselves (lme4 at tight settings and glmmteach reach the
same optimum: coefficients and SDs to 1e-5); standard errors to 1e-4 (lme4's finite-difference Hessian);
names, order and columns exactly. The GLMs match R's glm to 1e-6 and the profile intervals to 1e-6.
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

from glmmteach import GlmmteachError, datasets, glm, glmer

HERE = Path(__file__).parent / "data"
NUMBERS = ("estimate", "std.error", "statistic", "p.value", "conf.low", "conf.high")


@cache
def reference() -> dict:
    return json.loads((HERE / "tidy" / "reference.json").read_text())["cases"]


def load(name: str) -> pd.DataFrame:
    if name == "ohio":
        return datasets.load_ohio_cancer()
    if name == "crossover":
        return datasets.load_crossover()
    if name == "grouseticks":
        return pd.read_csv(datasets.data_path("grouseticks.csv"))
    return pd.read_csv(HERE / name)


@cache
def fitted(case: str) -> Any:
    stored = reference()[case]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if case.endswith("_glm"):
            return glm(stored["formula"], load(stored["data"]), stored["family"])
        return glmer(stored["formula"], load(stored["data"]), stored["family"])


def r_frame(stored: dict) -> pd.DataFrame:
    return pd.DataFrame({k: np.atleast_1d(v) for k, v in stored.items()})


def assert_tidy(ours: pd.DataFrame, theirs: pd.DataFrame, rtol: dict[str, float], atol: float = 1e-8) -> None:
    assert list(ours.columns) == list(theirs.columns)
    assert len(ours) == len(theirs)
    for column in ours.columns:
        if column in NUMBERS:
            expected = pd.to_numeric(theirs[column]).to_numpy(dtype=float)  # (R's NA is NaN here)
            np.testing.assert_allclose(ours[column].to_numpy(dtype=float), expected, rtol=rtol.get(column, 1e-5),
                                       atol=1e-12 if column == "p.value" else atol, err_msg=column)
        else:
            assert ours[column].astype(str).tolist() == theirs[column].astype(str).tolist(), column


MIXED = ["ohio", "crossed", "slope", "slope_uncorrelated", "nb"]
SE_RTOL = {"std.error": 2e-4, "statistic": 2e-4, "p.value": 2e-3, "conf.low": 1e-4, "conf.high": 1e-4}


@pytest.mark.parametrize("case", MIXED)
def test_fixed_effects_table_is_broom_mixed(case: str) -> None:
    ours = fitted(case).tidy(effects="fixed", conf_int=True)
    assert_tidy(ours, r_frame(reference()[case]["fixed"]), SE_RTOL)


@pytest.mark.parametrize("case", MIXED)
def test_random_effect_parameters_are_broom_mixed(case: str) -> None:
    theirs = r_frame(reference()[case]["ran_pars"])
    ours = fitted(case).tidy(effects="ran_pars")
    assert list(ours.columns) == ["effect", "group", "term", "estimate", "std.error", "statistic", "p.value"]
    assert_tidy(ours[list(theirs.columns)], theirs, {"estimate": 1e-5})
    assert ours[["std.error", "statistic", "p.value"]].isna().all().all()  # broom.mixed: NA


@pytest.mark.parametrize("case", MIXED)
def test_conditional_modes_are_broom_mixed(case: str) -> None:
    # conditional modes and SDs at the two fits' estimates: as close as the estimates (1e-6 absolute near 0)
    assert_tidy(fitted(case).tidy(effects="ran_vals"), r_frame(reference()[case]["ran_vals"]),
                {"estimate": 1e-4, "std.error": 1e-4}, atol=1e-6)


def test_default_effects_stack_fixed_then_random_parameters() -> None:
    table = fitted("slope").tidy()
    assert table["effect"].tolist() == ["fixed"] * 2 + ["ran_pars"] * 4
    assert table["group"].iloc[:2].isna().all()
    assert table["term"].tolist()[2:] == ["sd__(Intercept)", "cor__(Intercept).x", "sd__x", "sd__(Intercept)"]
    with_ci = fitted("slope").tidy(conf_int=True)
    assert with_ci[["conf.low", "conf.high"]].iloc[2:].isna().all().all()
    assert not with_ci[["conf.low", "conf.high"]].iloc[:2].isna().any().any()


def test_glm_tables_are_broom() -> None:
    stored = reference()["crossover_glm"]
    fit = fitted("crossover_glm")
    assert_tidy(fit.tidy(), r_frame(stored["tidy"]), {})
    # broom's intervals for a glm are R's confint: MASS's profile, interpolated on a grid (good to about 1e-4;
    # glmmteach's bounds are the exact roots, tests/test_glm.py checks the likelihood-ratio statistic there)
    ours, theirs = fit.tidy(conf_int=True), r_frame(stored["tidy_conf"])
    assert_tidy(ours.drop(columns=["conf.low", "conf.high"]), theirs.drop(columns=["conf.low", "conf.high"]), {})
    assert list(ours.columns) == list(theirs.columns)
    np.testing.assert_allclose(ours[["conf.low", "conf.high"]], theirs[["conf.low", "conf.high"]], rtol=0, atol=2e-4)
    wald = fit.tidy(conf_int=True, conf_method="wald")
    np.testing.assert_allclose(wald["conf.low"], fit.params - 1.959963984540054 * fit.bse, rtol=1e-12)
    assert_tidy(fitted("ticks_nb_glm").tidy(), r_frame(reference()["ticks_nb_glm"]["tidy"]), {"estimate": 1e-6})


def test_bad_options_are_named() -> None:
    with pytest.raises(GlmmteachError, match="effects must be among"):
        fitted("ohio").tidy(effects="random")
    with pytest.raises(GlmmteachError, match="conf_method='profile' is not available"):
        fitted("ohio").tidy(effects="fixed", conf_int=True, conf_method="profile")
    with pytest.raises(GlmmteachError, match="conf_level"):
        fitted("crossover_glm").tidy(conf_int=True, conf_level=95)
