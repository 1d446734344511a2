r"""Start values of a GLMM fit: the GLM fit for :math:`\beta` and moment estimates of the random effects' SDs.

:func:`glm_start` fits the fixed-effects-only GLM (the start for :math:`\beta`); :func:`moment_theta` (one
grouping factor) and :func:`moment_theta_terms` (several terms) start :math:`T_\theta` diagonal at
DerSimonian–Laird estimates of each random effect's SD at that fit, with an approximate information for each
:math:`\theta` entry (the optimiser's scale); :func:`conditional_scale` turns both from marginal into
conditional quantities for a logit or probit model (lme4 starts from :math:`T_\theta = I`).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .model import GroupedData
from .terms import CovarianceTerm


def glm_start(data: GroupedData, max_iter: int = 50) -> tuple[np.ndarray, np.ndarray]:
    r"""Fixed-effects-only GLM fit (Newton/Fisher scoring with step-halving), the starting point.

    Starts from least squares on the linked, slightly shrunk responses (R's ``mustart``) and stops
    when the Newton decrement is below 1e-6: a starting point needs no more. It works on the family's
    log-likelihood in :math:`\eta` rather than calling :func:`glmmteach.glm.irls` (R's algorithm, with its
    deviance bookkeeping and QR solves), which costs three times as much on the 1e6-row benchmark.
    Returns
    :math:`\hat\beta_{GLM}` and the information :math:`X^\top W X` there.
    """
    family = data.family
    offset = 0.0 if data.offset is None else data.offset
    eta_start = family.starting_eta(data.response, data.family_weights)
    target = eta_start - offset
    gram = data.X.T @ data.X
    if np.linalg.cond(gram) < 1e10:  # normal equations: a tenth of lstsq's SVD of the n-row matrix
        beta = np.linalg.solve(gram, data.X.T @ target)
    else:
        beta = np.linalg.lstsq(data.X, target, rcond=None)[0]
    kv = family.eta_values(data.eta_fixed(beta), data.response, data.family_weights)
    value = float(kv.loglik.sum())
    info = np.eye(data.X.shape[1])
    for _ in range(max_iter):
        grad = data.X.T @ kv.score
        info = data.X.T @ (kv.fisher[:, None] * data.X)
        step = np.linalg.solve(info, grad)
        if float(grad @ step) < 1e-6:
            break
        for _ in range(40):  # step-halving: the new point must not lower the log-likelihood
            kv_new = family.eta_values(data.eta_fixed(beta + step), data.response, data.family_weights)
            new_value = float(kv_new.loglik.sum())
            if new_value >= value - 1e-12 * abs(value):
                break
            step = step * 0.5
        beta, value, kv = beta + step, new_value, kv_new
    return beta, info


def moment_theta(data: GroupedData, beta: np.ndarray, term: CovarianceTerm) -> tuple[np.ndarray, np.ndarray, float]:
    r"""Start for :math:`\theta`: a method-of-moments estimate of each random effect's SD (DerSimonian–Laird),
    :math:`T_\theta` diagonal, and an approximate information for each :math:`\theta` entry.

    At the GLM fit each group's effect of random-effect column :math:`z` is estimated by one Newton
    step, :math:`\hat b_i = \sum_j z_j s_j / \sum_j w_j z_j^2` with sampling variance
    :math:`v_i = 1/\sum_j w_j z_j^2` (:math:`s, w` score and information); the between-group
    variance is what their spread leaves over :math:`v_i`. A start near the optimum saves most of the
    optimiser's iterations (and the whitening of :math:`\beta` is then computed where it matters).
    A column whose spread says nothing (no excess, or under 3 groups) keeps lme4's start, 1.
    See :func:`_moment_sd` for the information.
    """
    kv = data.family.eta_values(data.eta_fixed(beta), data.response, data.family_weights)
    columns = []
    for a in range(data.n_re):  # loop over the few random-effect columns
        z = data.Z[:, a]
        ones = data.z_is_ones or bool(np.all(z == 1.0))
        columns.append((data.group_sum(kv.fisher if ones else kv.fisher * z * z),
                        data.group_sum(kv.score if ones else kv.score * z)))
    return _moment_term(term, columns, data.Z)


def _moment_term(term: CovarianceTerm, columns: list[tuple[np.ndarray, np.ndarray]],
                 Z: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
    """:math:`\theta` (diagonal :math:`T`), the information of its diagonal entries (NaN elsewhere) and the
    variance the term adds to an average linear predictor, from each random-effect column's per-group
    information and score sums (``Z``: the term's random-effect columns, n×r)."""
    sds, informations, variances = np.array([_moment_sd(info, score) for info, score in columns]).T
    rows, cols = term.positions
    information = np.where(rows == cols, informations[rows], np.nan)
    variance = float(variances @ np.mean(Z * Z, axis=0))
    return term.theta(np.diag(sds)), information, variance


def _moment_sd(info: np.ndarray, score: np.ndarray) -> tuple[float, float, float]:
    r"""DerSimonian–Laird SD :math:`\hat\tau` of one random-effect column from its per-group information and
    score sums (see :func:`moment_theta`; 1 when the spread says nothing), and the expected information for
    :math:`\tau` there in the normal model of the one-step estimates, :math:`\hat b_i \sim N(0, \tau^2 + v_i)`:
    :math:`2\tau^2\sum_i (\tau^2 + v_i)^{-2}` (NaN with under 3 groups). It sets the optimiser's scale of that
    :math:`\theta` entry (an SD for a scalar term) without a finite difference of the likelihood. Third: the
    estimated variance itself (0 when the spread shows none)."""
    keep = info > 0
    if keep.sum() < 3:
        return 1.0, np.nan, 0.0
    w = info[keep]
    b = score[keep] / w
    b_mean = (w @ b) / w.sum()
    excess = float(w @ (b - b_mean) ** 2) - (keep.sum() - 1)
    tau2 = excess / float(w.sum() - (w @ w) / w.sum())
    found = bool(np.isfinite(tau2) and tau2 > 0)
    sd = min(max(np.sqrt(tau2), 0.1), 10.0) if found else 1.0
    return sd, float(2.0 * sd**2 * np.sum((sd**2 + 1.0 / w) ** -2.0)), sd**2 if found else 0.0


def moment_theta_terms(data: GroupedData, terms: list[Any], beta: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
    """:func:`moment_theta` for each term of the general engine (``terms``: its term layouts), every term read
    at the GLM fit on its own (the other terms' effects only add to the spread: a start, not an estimate)."""
    kv = data.family.eta_values(data.eta_fixed(beta), data.response, data.family_weights)
    starts = []
    for term in terms:  # loop over the few terms and their columns
        columns = [(np.bincount(term.codes, kv.fisher * z * z, minlength=term.n_levels),
                    np.bincount(term.codes, kv.score * z, minlength=term.n_levels)) for z in term.Z.T]
        starts.append(_moment_term(term.cov, columns, term.Z))
    return (np.concatenate([t for t, _, _ in starts]), np.concatenate([i for _, i, _ in starts]),
            sum(v for _, _, v in starts))


# Attenuation of a logit or probit model's coefficients by random effects of total variance s^2 on the
# linear predictor: marginal = conditional / sqrt(1 + c^2 s^2) (Zeger, Liang & Albert 1988; exact for the
# probit, c = 16 sqrt(3) / (15 pi) for the logit).
ATTENUATION_C2 = {"logit": (16 * np.sqrt(3) / (15 * np.pi)) ** 2, "probit": 1.0}


def conditional_scale(family, variance: float) -> float:
    r"""The factor from marginal (GLM, no random effects) to conditional (GLMM) coefficients: the GLM start and
    the moment SDs, both read off the marginal fit, are that much too small for a logit or probit model."""
    if not family.is_binomial:
        return 1.0
    return float(np.sqrt(1.0 + ATTENUATION_C2.get(family.link.name, 0.0) * variance))
