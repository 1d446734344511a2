"""The Laplace log-likelihood's accuracy at a fit's optimum, by importance sampling (glmmteach.glmm.laplace_check).

The crossover's ``(1 + trt | ID)`` Laplace fit reaches log-likelihood -45.56 (lme4, at tight settings, stops at
-55.32 elsewhere on the same ridge); the true log-likelihood at either point is about -76 to -78, below even
the scalar model's maximum (-68.47): the Laplace approximation runs away as the slope SD grows. That fit must
not be called converged; ordinary fits (cbpp, Ohio, logit slopes) pass silently.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import glmmteach
from glmmteach import datasets
from glmmteach.exceptions import ConvergenceWarning
from glmmteach.glmm.laplace_check import (
    MAX_DRAWS_X_ROWS,
    SCREEN_DRAWS,
    TOLERANCE,
    checked_by_default,
    laplace_accuracy,
)
from glmmteach.glmm.optimize import maximise_beta

CROSSOVER_SLOPE = "outcome ~ trt * period + (1 + trt | ID)"
CROSSOVER = "outcome ~ trt * period + (1 | ID)"
DATA = Path(__file__).parent / "data"


def quiet_fit(formula: str, data: pd.DataFrame, family: str, **kwargs) -> glmmteach.GLMMResults:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return glmmteach.glmer(formula, data, family, **kwargs)


def test_runaway_slope_fit_is_not_called_converged() -> None:
    with pytest.warns(ConvergenceWarning, match="Laplace approximation is not accurate at the estimates") as caught:
        fit = glmmteach.glmer(CROSSOVER_SLOPE, datasets.load_crossover(), "binomial")
    assert not fit.converged
    message = next(str(w.message) for w in caught if "Laplace approximation is not accurate" in str(w.message))
    assert "bglmer" in message and "nAGQ = 25" in message and "simpler random-effects structure" in message


def test_runaway_slope_fit_overstates_the_likelihood() -> None:
    fit = quiet_fit(CROSSOVER_SLOPE, datasets.load_crossover(), "binomial")
    accuracy = laplace_accuracy(fit.model, fit.theta, fit.params.to_numpy(), fit.llf, draws=4000)
    assert fit.llf > -46
    assert accuracy.overstated and accuracy.error > 20 and accuracy.mc_se < 1
    # the true log-likelihood there is below the scalar model's maximum (nAGQ = 25): the extra SD and
    # correlation the Laplace fit reports do not fit the data better than the intercept alone does
    scalar = quiet_fit(CROSSOVER, datasets.load_crossover(), "binomial", nAGQ=25)
    assert accuracy.sampled + 4 * accuracy.mc_se < scalar.llf


def test_sampling_matches_quadrature_for_a_scalar_effect() -> None:
    """Exact in the limit: at the crossover's accurate tau-hat (4.9) and at tau = 2 the sampled value agrees with
    200-node adaptive quadrature within its Monte-Carlo error, where Laplace is 0.34 and 1.18 off."""
    fit = quiet_fit(CROSSOVER, datasets.load_crossover(), "binomial")
    model = fit.model.sorted_by_group()
    for tau in (4.9, 2.0):
        theta = np.array([tau])
        beta, _ = maximise_beta(model.with_nodes(1), theta, fit.params.to_numpy())
        laplace = model.with_nodes(1).marginal_loglik(theta, beta)
        exact = model.with_nodes(200).marginal_loglik(theta, beta)
        accuracy = laplace_accuracy(model, theta, beta, laplace, draws=4000)
        assert abs(accuracy.sampled - exact) < 4 * accuracy.mc_se
        assert accuracy.mc_se < 0.1
        assert abs(laplace - exact) > 0.3  # the check sees differences of that size


def test_sampling_is_reproducible() -> None:
    fit = quiet_fit(CROSSOVER_SLOPE, datasets.load_crossover(), "binomial")
    args = (fit.model, fit.theta, fit.params.to_numpy(), fit.llf)
    assert laplace_accuracy(*args, draws=300) == laplace_accuracy(*args, draws=300)
    assert laplace_accuracy(*args, draws=300, seed=1) != laplace_accuracy(*args, draws=300)


def test_cbpp_with_observation_level_effect_passes_silently() -> None:
    """Several terms (joint sampling of 15 + 56 effects): Laplace is accurate there."""
    cbpp = pd.read_csv(DATA / "lme4_structures" / "cbpp.csv")
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)
        fit = glmmteach.glmer("incidence ~ factor(period) + (1 | herd) + (1 | obs)", cbpp, "binomial",
                              trials="size")
    assert fit.converged and checked_by_default(fit.model, 1)
    accuracy = laplace_accuracy(fit.model, fit.theta, fit.params.to_numpy(), fit.llf)
    assert abs(accuracy.error) < 0.2 and accuracy.mc_se < 0.1


def test_logit_slope_fits_pass_silently() -> None:
    """Laplace understates the likelihood of small binary clusters (1.1 and 1.7 units here): not a runaway."""
    for name, formula in (("logit_corr_slope", "y ~ x + (1 + x | g)"), ("logit_uncorr_slope", "y ~ x + (1 + x || g)")):
        data = pd.read_csv(DATA / "lme4_extra" / f"{name}.csv")
        with warnings.catch_warnings():
            warnings.simplefilter("error", ConvergenceWarning)
            fit = glmmteach.glmer(formula, data, "binomial")
        assert fit.converged


def test_ohio_slope_model_is_accurate() -> None:
    """Ohio's 7,392 rows are above the default size limit; asked for, the check finds Laplace accurate."""
    ohio = datasets.load_ohio_cancer()
    fit = quiet_fit("death ~ offset(logpop) + factor(sex) + factor(race) + year + (1 + year | county)", ohio,
                    "poisson")
    assert not checked_by_default(fit.model, 1)
    assert fit.model.nobs * SCREEN_DRAWS > MAX_DRAWS_X_ROWS
    accuracy = laplace_accuracy(fit.model, fit.theta, fit.params.to_numpy(), fit.llf, draws=300)
    assert abs(accuracy.error) < TOLERANCE / 2 and accuracy.mc_se < 0.25


def test_which_fits_are_checked_by_default() -> None:
    crossover = datasets.load_crossover()
    scalar = quiet_fit(CROSSOVER, crossover, "binomial")
    slope = quiet_fit(CROSSOVER_SLOPE, crossover, "binomial")
    assert not checked_by_default(scalar.model, 1)  # a single scalar term has quadrature (nAGQ > 1)
    assert checked_by_default(slope.model, 1)
    assert not checked_by_default(slope.model, 0)  # nAGQ = 0 is a documented approximation, asked for by name
