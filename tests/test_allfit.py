"""all_fit (lme4's allFit): every optimiser refits the model; where the optimum is unique they agree."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

import glmmteach
from glmmteach.datasets import load_crossover
from glmmteach.exceptions import GlmmteachError
from glmmteach.glmm.optimize import OPTIMISERS


def quiet(function, *args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return function(*args, **kwargs)


@pytest.fixture(scope="module")
def crossover_fits() -> tuple[glmmteach.GLMMResults, glmmteach.AllFit]:
    fit = quiet(glmmteach.glmer, "outcome ~ trt * period + (1 | ID)", load_crossover())
    return fit, glmmteach.all_fit(fit)


def test_every_optimiser_reaches_the_crossover_optimum(crossover_fits) -> None:
    """The crossover's convergence-style warning (a flat ridge, tau 23.5) is not an optimiser failure:
    Newton, L-BFGS-B, Nelder-Mead, COBYQA and Powell reach the same log-likelihood and estimates, and all pass
    the gradient test."""
    fit, fits = crossover_fits
    assert list(fits.table.index) == list(OPTIMISERS)
    assert fits.table["converged"].all()
    np.testing.assert_allclose(fits.loglik.to_numpy(), fit.llf, atol=1e-7)
    # Where a stop that passes the decrement test (< 1e-6) leaves the estimates depends on the optimiser's path,
    # and for COBYQA on the CPU's last bits: on an AMD EPYC it ends 6e-6 standard errors from Newton in beta and
    # 2.7e-6 relative in tau (on the ridge, curvature about -0.05 per unit tau squared), 3e-11 in log-likelihood.
    # The estimates are compared in standard errors (beta) and relative to their size, not to the last digits.
    assert ((fits.fixef - fit.params) / fit.bse).abs().to_numpy().max() < 1e-4
    np.testing.assert_allclose(fits.theta.to_numpy().ravel(), fit.theta[0], rtol=1e-5)
    spread = fits.spread()
    estimates = pd.concat([fit.params, pd.Series(fit.theta, index=fits.theta.columns)])
    assert spread["logLik"] < 1e-7
    assert (spread.drop("logLik") <= 1e-5 * np.maximum(1.0, estimates.abs())).all()
    assert all(any("flat likelihood ridge" in text for text in fits.warnings[name]) for name in OPTIMISERS)


def test_table_and_printout_have_allfits_summary(crossover_fits) -> None:
    _, fits = crossover_fits
    assert {"logLik", "logLik - best", "converged", "newton_decrement", "message", "evaluations", "seconds",
            "warnings"} <= set(fits.table.columns)
    assert list(fits.sdcor.columns) == ["ID.(Intercept)"]
    assert fits.sdcor.iloc[0, 0] == pytest.approx(23.4819, rel=1e-5)  # lme4's tolPwrss 1e-12 fit
    text = str(fits)
    assert "Nelder-Mead" in text and "COBYQA" in text and "Largest difference between optimisers" in text


def test_all_fit_keeps_a_bglmer_prior() -> None:
    """Refitting a MAP fit refits the posterior (blme's allFit on a bglmer fit does the same)."""
    fit = quiet(glmmteach.bglmer, "outcome ~ trt * period + (1 | ID)", load_crossover())
    fits = glmmteach.all_fit(fit, optimizers=("L-BFGS-B", "Powell"))
    np.testing.assert_allclose(fits.theta.to_numpy().ravel(), fit.theta[0], rtol=1e-6)  # 28.27, not 23.5
    assert all(refit.spec.prior is fit.spec.prior for refit in fits.ok.values())


def test_a_boundary_fit_is_verified_by_each_optimiser() -> None:
    data = pd.read_csv("tests/data/boundary/bin_scalar_7.csv")
    fit = quiet(glmmteach.glmer, "y ~ x + (1 | g)", data)
    fits = glmmteach.all_fit(fit, optimizers=("L-BFGS-B", "Nelder-Mead"))
    assert fits.table["converged"].all() and np.all(fits.theta.to_numpy() < 1e-4)
    assert all(any("singular" in text for text in fits.warnings[name]) for name in fits.fits)


@pytest.mark.parametrize(("optimizers", "message"), [(("bobyqa",), "optimizers must be"), ((), "optimizers must")])
def test_unknown_optimiser_is_named(crossover_fits, optimizers, message) -> None:
    fit, _ = crossover_fits
    with pytest.raises(GlmmteachError, match=message):
        glmmteach.all_fit(fit, optimizers=optimizers)


def test_a_glm_is_refused() -> None:
    fit = glmmteach.glm("outcome ~ trt", load_crossover(), family="binomial")
    with pytest.raises(GlmmteachError, match="needs a fitted GLMM"):
        glmmteach.all_fit(fit)


def test_crossed_terms_are_refitted_by_the_general_engine() -> None:
    """Several terms (the sparse engine): grouseticks' (1 | BROOD) + (1 | LOCATION) from L-BFGS-B and COBYQA."""
    from glmmteach.datasets import load_grouseticks

    fit = quiet(glmmteach.glmer, "TICKS ~ YEAR + cHEIGHT + (1 | BROOD) + (1 | LOCATION)", load_grouseticks(),
                "poisson")
    fits = glmmteach.all_fit(fit, optimizers=("L-BFGS-B", "COBYQA"))
    assert fits.table["converged"].all() and list(fits.theta.columns) == fit.theta_names
    spread = fits.spread()
    assert spread["logLik"] < 1e-8 and spread.drop("logLik").max() < 1e-4
