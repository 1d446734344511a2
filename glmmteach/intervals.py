r"""Confidence intervals for predictions: ``fit.predict(newdata, type, interval="confidence")``.

The population-level linear predictor :math:`\hat\eta = x^\top\hat\beta + o` (a GLM's, or a GLMM's with
the random effects at 0, lme4's ``re.form = NA``) has the delta-method standard error
:math:`\sqrt{x^\top\hat V x}`, :math:`\hat V` the fixed-effects covariance; the interval is
:math:`\hat\eta \pm q\,\mathrm{SE}` (``q`` the normal quantile, or the *t* quantile on the residual degrees
of freedom for a GLM whose dispersion is estimated). On the response scale the interval's ends are
transformed, :math:`g^{-1}(\hat\eta \pm q\,\mathrm{SE})`, and the standard error is
:math:`|d\mu/d\eta|\,\mathrm{SE}`. For a GLMM's population-averaged mean (``conditional=False``,
``type="response"``: :math:`\bar\mu(\eta) = E_b[g^{-1}(\eta + z^\top b)]`, as ``predict`` computes it) the
ends are :math:`\bar\mu(\hat\eta \pm q\,\mathrm{SE})` (:math:`\bar\mu` increases with :math:`\eta`) and the
standard error :math:`\bar\mu'(\hat\eta)\,\mathrm{SE}`, with the random-effect covariance held at its
estimate. Intervals for predictions conditional on the estimated random effects need the joint
uncertainty of :math:`\hat\beta` and the conditional modes and are refused here (a parametric bootstrap
gives them).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from .exceptions import GlmmteachError, check_level
from .predict import population_average_mean, population_average_slope


def predict_interval(fit: Any, newdata: pd.DataFrame | None = None, type: str = "link",  # noqa: A002
                     conditional: bool = True, re_form: Any = None, offset: Any = None,
                     interval: str = "confidence", level: float = 0.95, n_nodes: int | None = None) -> pd.DataFrame:
    """Predictions with delta-method confidence intervals (see the module docstring): columns ``fit``,
    ``se_fit``, ``lower``, ``upper``, indexed as the rows predicted. ``fit`` is what ``fit.predict`` gives
    with the same arguments."""
    if interval != "confidence":
        raise GlmmteachError(f"interval must be 'confidence', got {interval!r} (prediction intervals for a new "
                             "observation are not defined for a GLM's discrete response)")
    if type not in ("link", "response"):
        raise GlmmteachError(f"type must be 'link' or 'response', got {type!r}")
    check_level("level", level)
    mixed = hasattr(fit, "terms")
    if mixed and conditional and not _population_level(re_form):
        raise GlmmteachError(
            "interval='confidence' is available for population-level predictions: pass re_form=[] (random "
            "effects at 0, lme4's re.form = NA) or conditional=False (averaged over the random effects); "
            "intervals given the estimated random effects need their joint uncertainty with the coefficients")
    if newdata is None:
        X, off, index = fit.design.X, fit.design.offset, fit.design.row_index
    else:
        X, off = fit.design.new_fixed(newdata, offset)
        index = newdata.index
    beta = np.nan_to_num(fit.params.to_numpy(dtype=float))  # an aliased coefficient contributes nothing (R)
    vcov = np.nan_to_num(fit.cov_params().to_numpy(dtype=float))
    eta = X @ beta + off
    se = np.sqrt(np.einsum("ij,jk,ik->i", X, vcov, X))
    use_t = bool(getattr(fit, "use_t", False))
    from scipy import stats  # imported when used: scipy.stats is the slowest import of the package

    q = stats.t.ppf(1 - (1 - level) / 2, fit.df_resid) if use_t else stats.norm.ppf(1 - (1 - level) / 2)
    link = fit.family.link
    if type == "link":
        value, lower, upper = eta, eta - q * se, eta + q * se
    elif mixed and not conditional:
        variance = _re_variance(fit, X, newdata)
        value = population_average_mean(eta, variance, fit.family, n_nodes)
        lower = population_average_mean(eta - q * se, variance, fit.family, n_nodes)
        upper = population_average_mean(eta + q * se, variance, fit.family, n_nodes)
        se = population_average_slope(eta, variance, fit.family, n_nodes) * se
    else:
        value = link.linkinv(eta)
        ends = np.sort(np.column_stack([link.linkinv(eta - q * se), link.linkinv(eta + q * se)]), axis=1)
        lower, upper = ends[:, 0], ends[:, 1]
        se = np.abs(link.mu_eta(eta)) * se
    return pd.DataFrame({"fit": value, "se_fit": se, "lower": lower, "upper": upper}, index=index)


def _population_level(re_form: Any) -> bool:
    """re_form=[] (no random-effects term): lme4's re.form = NA."""
    return re_form is not None and not isinstance(re_form, str) and len(list(re_form)) == 0


def _re_variance(fit: Any, X: np.ndarray, newdata: pd.DataFrame | None) -> np.ndarray:
    r""":math:`v = \sum_t z_t^\top\Sigma_t z_t` of each row (as ``predict(conditional=False)`` computes it)."""
    total = np.zeros(len(X))
    for term, T in zip(fit.terms, fit.Ts, strict=True):
        Z = np.asarray(term.Z, dtype=float).reshape(len(X), -1) if newdata is None else term.new_covariates(newdata)
        total += np.einsum("na,ab,nb->n", Z, T @ T.T, Z)
    return total


