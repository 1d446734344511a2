r"""The diagnosis of a GLMM fit, apart from the fit (as lme4 keeps ``checkConv.R`` apart from the optimiser).

:func:`diagnose` turns a :class:`FitOutcome` into the covariance of the estimates and the warnings
about the fit: a Hessian that is not positive definite, a singular (boundary) fit, non-convergence,
a badly scaled problem (largest eigenvalue of the deviance Hessian above 1e6, as lme4's "very large
eigenvalue"; the warning names the column and a rescaling) and a flat likelihood ridge (see
``RIDGE_CURVATURE``).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field

import numpy as np

from ..exceptions import ConvergenceWarning, FlatRidgeWarning, ScalingWarning, SingularFitWarning
from .grouped import as_model
from .model import GroupedData, MixedModel, column_sd
from .outcome import FitOutcome
from .sparse import StackedCovariance
from .terms import CovarianceTerm

SINGULAR_TOLERANCE = 1e-4  # lme4's isSingular() default
LARGE_EIGENVALUE = 1e6  # lme4: "very large eigenvalue" when the deviance Hessian exceeds 1/tol
# Flat ridge: smallest eigenvalue of the deviance Hessian in standardised coordinates (each beta per SD of
# its column, so one unit is a change of 1 in the linear predictor per SD: for a logit an odds ratio of
# e per SD, a large effect). Below 0.1 the standard error along that direction exceeds sqrt(2/0.1) = 4.5
# such units, a 95% interval wider than +-8.8 (odds ratios beyond 1:6600 per SD): the data do not place
# the combination at all. Measured: crossover Laplace 0.023-0.030 in any coding of trt and period (tau
# runs up the ridge to 23 with the intercept), nAGQ = 10 0.064 (tau 8.6); the accurate nAGQ >= 25 fits
# (tau 4.9) 0.20-0.42 and nAGQ = 5 0.46; Ohio 3,600; lme4_extra cases >= 26; non-singular simulated
# 40 x 8 fits >= 0.65.
RIDGE_CURVATURE = 0.1
ACCURATE_NODES = 25  # quadrature nodes from which the crossover estimates no longer move (lesson 7)

# Quadrature check: the log-likelihood at the optimum with QUADRATURE_CHECK_FACTOR times the nodes may differ
# from the fit's by at most QUADRATURE_TOLERANCE. Why: with two binary outcomes per patient and a large tau, a
# patient's integrand in the random effect is a normal density of SD tau cut off by a logistic edge, far from
# the Gaussian shape that adaptive Gauss-Hermite rules assume, and 25 (or 100) nodes misjudge it by whole units
# of log-likelihood. Measured on the 200 simulated crossover trials of lesson 14 (nAGQ = 25 optima, exact
# value by scipy.integrate.quad per patient): the change with 50 nodes tracks the true error (correlation of
# their logs 0.995; both 4e-4 at tau-hat 3-5, 0.06 at 6-8, 0.2-0.4 at 8-20, 3-57 at the runaway tau-hat of
# 57-203, where the 25-node value exceeds the true likelihood, and even its supremum, by 2.8-5.4). Twice the
# nodes cost one evaluation.
QUADRATURE_CHECK_FACTOR = 2
QUADRATURE_TOLERANCE = 0.01


def is_singular(theta: np.ndarray, term: CovarianceTerm | StackedCovariance) -> bool:
    """A boundary fit: a diagonal entry of :math:`T_\\theta` (a relative SD) below 1e-4 (lme4's ``isSingular``)."""
    return bool(np.any(np.abs(np.asarray(theta)[term.diagonal]) < SINGULAR_TOLERANCE))


# --------------------------------------------------------------------------------------------
# Covariance of the estimates and the warnings about the fit
# --------------------------------------------------------------------------------------------


@dataclass
class FitWarning:
    """One warning about a fit: its text and its warning class."""

    message: str
    category: type[Warning]


@dataclass
class Diagnosis:
    r"""Covariance of the estimates and the warnings about a fit.

    ``cov_full`` is the inverse of the negative Hessian in :math:`(\theta, \beta)` (``None`` when that
    Hessian is not positive definite); ``cov_beta`` the fixed-effects block (conditional on
    :math:`\theta` when the full inverse does not exist).
    """

    cov_full: np.ndarray | None
    cov_beta: np.ndarray
    warnings: list[FitWarning] = field(default_factory=list)

    def emit(self, stacklevel: int = 2) -> None:
        """Raise every warning with :func:`warnings.warn` (``stacklevel`` counted from the caller)."""
        for item in self.warnings:
            warnings.warn(item.message, item.category, stacklevel=stacklevel + 1)


def diagnose(outcome: FitOutcome, model: MixedModel | GroupedData, correlated: bool | None = None,
             column_names: list[str] | None = None) -> Diagnosis:
    """Covariance of the estimates and every warning about the fit, in the order they are reported
    (``correlated``: for a bare :class:`GroupedData`, see :func:`~glmmteach.glmm.grouped.as_model`)."""
    model = as_model(model, correlated)
    column_names = [f"x{k + 1}" for k in range(len(outcome.beta))] if column_names is None else column_names
    n_theta = len(outcome.theta)
    found: list[FitWarning] = []
    info = -outcome.hessian
    try:
        np.linalg.cholesky(info)
        cov_full = np.linalg.inv(info)
        cov_beta = cov_full[n_theta:, n_theta:]
    except np.linalg.LinAlgError:
        cov_full = None
        try:
            cov_beta = np.linalg.inv(info[n_theta:, n_theta:])
        except np.linalg.LinAlgError:  # singular even for beta alone (separated outcomes): no standard errors
            cov_beta = np.full((len(outcome.beta),) * 2, np.nan)
        message = ("the Hessian with respect to (theta, beta) is not positive definite; standard errors are "
                   "conditional on the random-effect parameters")
        negative = ~(np.diag(cov_beta) > 0)
        if negative.any():  # not even the conditional variance: no standard error (NaN), said here in words
            cov_beta[negative, :] = np.nan
            cov_beta[:, negative] = np.nan
            names = ", ".join(name for name, bad in zip(column_names, negative, strict=True) if bad)
            message += f", and for {names} even that variance is not positive: no standard error (NaN)"
        found.append(FitWarning(message, ConvergenceWarning))
    if outcome.boundary_verified and is_singular(outcome.theta, model.covariance):
        found.append(FitWarning("boundary (singular) fit: a random-effect standard deviation is estimated at (or "
                                "near) zero; see cov_re", SingularFitWarning))
    if not outcome.boundary_verified:
        found.append(FitWarning("the optimum is not verified: a random-effect standard deviation is at 0, but the "
                                "log-likelihood still rises when it moves off 0 after "
                                f"{outcome.restarts} restarts from the interior; the estimates are not the maximum",
                                ConvergenceWarning))
    elif abs(outcome.quadrature_change) > QUADRATURE_TOLERANCE:
        found.append(FitWarning(_quadrature_message(outcome, model), ConvergenceWarning))
    elif not outcome.converged:
        found.append(FitWarning(f"the fit may not have converged: Newton decrement {outcome.newton_decrement:.2g} "
                                "at the final estimates (should be < 1e-6)", ConvergenceWarning))
    deviance_hessian = -2.0 * outcome.hessian
    scaling = _scaling_warning(deviance_hessian, model.X, n_theta, column_names)
    ridge = _ridge_warning(outcome, model, column_names)
    found += [w for w in (scaling, ridge) if w is not None]
    return Diagnosis(cov_full, cov_beta, found)


def _quadrature_message(outcome: FitOutcome, model: MixedModel) -> str:
    n, sd = outcome.n_nodes, float(np.max(np.abs(outcome.theta)))
    more = max(QUADRATURE_CHECK_FACTOR * n, ACCURATE_NODES)
    message = (f"the nAGQ = {n} quadrature is not accurate at the estimates: with {QUADRATURE_CHECK_FACTOR * n} "
               f"nodes the log-likelihood there changes by {outcome.quadrature_change:+.3g} (tolerance "
               f"{QUADRATURE_TOLERANCE:g}), so the optimiser has climbed the approximation's error and these are "
               f"not the {'posterior modes' if outcome.log_prior else 'maximum-likelihood estimates'}. Refit with "
               f"nAGQ = {more}")
    if outcome.log_prior:  # a MAP fit (bglmer): the prior keeps the SD finite, more nodes are the remedy
        return message
    return (f"{message}; if this warning persists, the groups' "
            f"integrands ({model.nobs / model.n_groups:.3g} observations per group, random-effect SD {sd:.3g}) are too "
            "far from normal for Gauss-Hermite quadrature, as when the SD runs away because the likelihood still "
            "rises as it grows (binary pairs whose discordant pairs all go one way): the maximum-likelihood "
            "estimate of the SD may be infinite")


def _scaling_warning(deviance_hessian: np.ndarray, X: np.ndarray, n_theta: int,
                     column_names: list[str]) -> FitWarning | None:
    eigenvalues = np.linalg.eigvalsh(deviance_hessian)
    if eigenvalues.max() <= LARGE_EIGENVALUE:
        return None
    # The eigenvalue comes from the column with the largest curvature (sum of w x^2):
    # dividing that column by f divides its curvature by f^2.
    diag_h = np.diag(deviance_hessian)[n_theta:]
    worst = int(np.argmax(diag_h))
    column = column_names[worst]
    factor = 10.0 ** np.ceil(np.log10(np.sqrt(diag_h[worst] / LARGE_EIGENVALUE)))
    values = X[:, worst]
    constant = np.flatnonzero(np.ptp(X, axis=0) == 0)
    if constant.size and diag_h[constant].max() > LARGE_EIGENVALUE:
        # Even the intercept's curvature is huge: the data carry that much information
        # (large counts or many rows); no rescaling of covariates removes it.
        advice = (f"even the intercept's curvature is {diag_h[constant].max():.3g}, so this reflects the "
                  "amount of information in the data (large counts or many rows), and no rescaling removes "
                  "it")
    else:
        advice = f"Column {column!r} dominates: measure it in larger units (e.g. {column}/{factor:g})"
        if np.std(values) > 0 and abs(values.mean()) > np.std(values):
            advice += (f" and centre it (subtract its mean, {values.mean():.4g}) so the intercept is "
                       "interpretable")
    return FitWarning(
        f"model is nearly unidentifiable: very large eigenvalue ({eigenvalues.max():.3g}) of the deviance "
        f"Hessian (lme4: 'Rescale variables?'). {advice}. This is a scaling issue, not a fit problem: "
        "the estimates are unaffected", ScalingWarning)


def _ridge_warning(outcome: FitOutcome, model: MixedModel, column_names: list[str]) -> FitWarning | None:
    r"""A flat likelihood ridge: the deviance barely changes along some combination of the estimates.

    Measured in standardised coordinates, so that rescaling a covariate changes nothing: each
    :math:`\beta_j` per SD of its model-matrix column, each :math:`\theta` entry of row ``a`` of
    :math:`T_\theta` per SD of random-effect column ``a`` (constant columns: unscaled). Variance
    parameters on the boundary are left out: the singular-fit warning covers them.
    """
    term = model.covariance
    theta_sd = model.thetacolumn_sd()  # each theta entry per SD of its term's random-effect column
    n_groups = model.n_groups
    free = np.ones(len(outcome.theta) + len(outcome.beta), dtype=bool)
    free[: term.n_theta] = ~(term.diagonal & (np.abs(outcome.theta) < SINGULAR_TOLERANCE))
    scale = np.concatenate([theta_sd, column_sd(model.X)])[free]
    deviance_hessian = -2.0 * outcome.hessian[np.ix_(free, free)]
    values, vectors = np.linalg.eigh(deviance_hessian / np.outer(scale, scale))
    if values[0] >= RIDGE_CURVATURE:
        return None
    theta_labels = ["theta"] if term.n_theta == 1 else [f"theta{k + 1}" for k in range(term.n_theta)]
    labels = [name for name, keep in zip(theta_labels + list(column_names), free, strict=True) if keep]
    direction = vectors[:, 0] * np.sign(vectors[np.argmax(np.abs(vectors[:, 0])), 0])
    top = [k for k in np.argsort(-np.abs(direction))[:4] if abs(direction[k]) >= 0.1]
    combination = " ".join(f"{'-' if direction[k] < 0 else '+'} {abs(direction[k]):.2f} {labels[k]}"
                           for k in top).lstrip("+ ")
    se = np.sqrt(2.0 / max(values[0], 1e-300))
    theta_share = float(np.sum(direction[: int(free[: term.n_theta].sum())] ** 2))
    per_group = model.nobs / n_groups
    if theta_share >= 0.1:
        advice = "theta and the fixed effects trade off along it"
        if not model.quadrature_available:
            advice += (f": with {per_group:.3g} observations per level of the largest grouping factor the Laplace "
                       "approximation may be crude here (quadrature, nAGQ > 1, is defined for a single scalar "
                       "random effect only), and only more observations per level identify it")
        elif outcome.n_nodes < ACCURATE_NODES:
            method = "Laplace approximation" if outcome.n_nodes == 1 else f"nAGQ = {outcome.n_nodes} quadrature"
            advice += (f": with {per_group:.3g} observations per group the {method} is crude here; refit with "
                       f"nAGQ = {ACCURATE_NODES} or more (if the ridge persists, only more observations per group "
                       "identify it)")
        else:
            advice += "; more observations per group would identify it"
    else:
        advice = (f"the columns {', '.join(labels[k] for k in top)} are nearly interchangeable in these data; data "
                  "in which they vary independently (or dropping one of them) would identify it")
    return FitWarning(
        f"flat likelihood ridge along {combination} (per SD of each column): the deviance curvature there is only "
        f"{values[0]:.3g} (standard error {se:.3g} on the link scale), so the data do not determine this "
        f"combination and the Wald standard errors are unreliable; {advice}.", FlatRidgeWarning)
