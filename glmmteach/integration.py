r"""Cluster-level likelihood pieces of a GLMM: modes, Laplace, adaptive Gauss–Hermite.

A generalized linear mixed model with one grouping factor says that, given the random
effects :math:`b_i` of group :math:`i`,

.. math::

    y_{ij} \mid b_i \sim f(y_{ij} \mid \eta_{ij}), \qquad
    \eta_{ij} = x_{ij}^\top\beta + o_{ij} + z_{ij}^\top b_i, \qquad b_i \sim N(0, \Sigma).

The likelihood of :math:`(\beta, \Sigma)` integrates the random effects out, one group at a time:

.. math::

    L(\beta, \Sigma) = \prod_i \int p(y_i \mid b)\, \varphi_\Sigma(b)\, db .

This module has two layers.

*Steps a lesson can call* work on one cluster with a scalar random intercept
:math:`b \sim N(0, \sigma^2)`: :func:`cluster_conditional_loglik`,
:func:`cluster_log_integrand`, :func:`cluster_mode`, :func:`cluster_laplace`,
:func:`cluster_agq`, :func:`cluster_exact`, and for the whole data set
:func:`marginal_loglik_function` and :func:`profile_loglik_sd`.

*The batch machinery* used by :func:`glmmteach.glmer` lives in the engine subpackage
:mod:`glmmteach.glmm` (one module per stage) and handles every group at once, in lme4's
parametrisation :math:`b_i = T_\theta u_i`, :math:`u_i \sim N(0, I_r)`, with :math:`T_\theta`
lower triangular. Its functions that lessons and tests use are importable from here too:
:class:`GroupedData`, :func:`conditional_modes`, :func:`laplace_loglik`, :func:`agq_loglik`,
:func:`loglik_and_gradient`, :func:`marginal_loglik`, :func:`make_devfun`, :func:`theta_to_T`.
Every log-likelihood includes the constants :math:`-\log y!` (Poisson) and
:math:`\log\binom{n}{y}` (binomial), so the numbers are true log-likelihoods.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy import integrate, special

from .families import LOG_2PI, Family, get_glmm_family
from .glmm.devfun import (
    agq_loglik,
    laplace_loglik,
    loglik_and_gradient,
    make_devfun,
    marginal_loglik,
)
from .glmm.model import GroupedData
from .glmm.optimize import maximise_beta
from .glmm.pirls import ModeState, conditional_modes
from .glmm.terms import theta_lower_bounds, theta_positions, theta_to_T
from .quadrature import gauss_hermite

__all__ = [
    # one cluster, scalar random intercept (lessons 5 and 6)
    "ClusterMode",
    "cluster_agq",
    "cluster_conditional_loglik",
    "cluster_exact",
    "cluster_laplace",
    "cluster_log_integrand",
    "cluster_mode",
    "gauss_hermite",
    # whole data, random intercept
    "marginal_loglik_function",
    "profile_loglik_sd",
    # the engine's batch functions, re-exported from glmmteach.glmm
    "GroupedData",
    "ModeState",
    "agq_loglik",
    "conditional_modes",
    "laplace_loglik",
    "loglik_and_gradient",
    "make_devfun",
    "marginal_loglik",
    "maximise_beta",
    "theta_lower_bounds",
    "theta_positions",
    "theta_to_T",
]


# --------------------------------------------------------------------------------------------
# Steps a lesson can call: one cluster, scalar random intercept on the linear-predictor scale
# --------------------------------------------------------------------------------------------


def _cluster_arrays(y, eta_fixed, trials, z):
    """The cluster's rows as the family takes them: ``(response, weights, eta_fixed, z)``, with
    successes out of trials turned into the proportion and weights of R's convention."""
    y = np.atleast_1d(np.asarray(y, dtype=float))
    eta_fixed = np.broadcast_to(np.asarray(eta_fixed, dtype=float), y.shape)
    z_arr = np.ones_like(y) if z is None else np.broadcast_to(np.asarray(z, dtype=float), y.shape)
    if trials is None:
        return y, None, eta_fixed, z_arr
    weights = np.broadcast_to(np.asarray(trials, dtype=float), y.shape)
    return np.divide(y, weights, out=np.zeros_like(y), where=weights > 0), weights, eta_fixed, z_arr


def cluster_conditional_loglik(
    b: np.ndarray | float,
    y: np.ndarray,
    eta_fixed: np.ndarray | float,
    family: str | Family = "binomial",
    link: str | None = None,
    trials: np.ndarray | None = None,
    z: np.ndarray | None = None,
) -> np.ndarray:
    r"""Conditional log-likelihood of one cluster as a function of its random effect.

    .. math::

        \ell_i(b) = \log p(y_i \mid b) = \sum_j \log f\bigl(y_{ij} \mid
        \eta_{ij} = \eta^{\mathrm{fixed}}_{ij} + z_{ij} b\bigr),

    including the constants (:math:`\log\binom{n}{y}` or :math:`-\log y!`).

    Parameters
    ----------
    b : float or array
        Value(s) of the random effect on the linear-predictor scale; a grid gives a curve.
    y : array
        The cluster's responses (successes for a binomial with ``trials``).
    eta_fixed : array or float
        :math:`x_{ij}^\top\beta + \text{offset}_{ij}` for the cluster's rows.
    family, link
        ``"binomial"`` (logit, probit, cloglog) or ``"poisson"`` (log).
    trials : array, optional
        Binomial totals :math:`n_{ij}` (default 1: binary data).
    z : array, optional
        Random-effect covariate (default 1: random intercept).

    Returns
    -------
    ndarray with the shape of ``b``.
    """
    fam = get_glmm_family(family, link)
    response, weights, eta_fixed, z_arr = _cluster_arrays(y, eta_fixed, trials, z)
    b_arr = np.asarray(b, dtype=float)
    eta = eta_fixed + np.multiply.outer(b_arr, z_arr)
    const = fam.log_constant(response, weights).sum()
    return fam.loglik_eta(eta, response, weights).sum(axis=-1) + const


def cluster_log_integrand(
    b: np.ndarray | float,
    y: np.ndarray,
    eta_fixed: np.ndarray | float,
    sd: float,
    family: str | Family = "binomial",
    link: str | None = None,
    trials: np.ndarray | None = None,
    z: np.ndarray | None = None,
) -> np.ndarray:
    r"""Log of the integrand :math:`p(y_i \mid b)\,\varphi(b; 0, \sigma^2)` whose integral is
    the cluster's marginal likelihood :math:`L_i`.

    .. math::

        g_i(b) = \ell_i(b) - \frac{b^2}{2\sigma^2} - \log\sigma - \tfrac12\log 2\pi .
    """
    if sd <= 0:
        raise ValueError(f"sd must be positive for the integrand, got {sd}")
    b_arr = np.asarray(b, dtype=float)
    cond = cluster_conditional_loglik(b_arr, y, eta_fixed, family, link, trials, z)
    return cond - 0.5 * (b_arr / sd) ** 2 - np.log(sd) - 0.5 * LOG_2PI


@dataclass
class ClusterMode:
    r"""Mode :math:`\hat b_i` of :math:`g_i(b)` and the curvature :math:`-g_i''(\hat b_i)`.

    ``history`` lists the Newton iterates (starting value first) for plotting.
    """

    mode: float
    curvature: float
    log_integrand_at_mode: float
    iterations: int
    history: list[float] = field(default_factory=list)


def cluster_mode(
    y: np.ndarray,
    eta_fixed: np.ndarray | float,
    sd: float,
    family: str | Family = "binomial",
    link: str | None = None,
    trials: np.ndarray | None = None,
    z: np.ndarray | None = None,
    start: float = 0.0,
    tol: float = 1e-12,
    max_iter: int = 100,
) -> ClusterMode:
    r"""Mode and curvature of a cluster's log integrand by Newton's method with step-halving.

    Newton's update for :math:`g_i(b) = \ell_i(b) - b^2/(2\sigma^2) + \text{const}` is

    .. math::

        b \leftarrow b + \frac{g_i'(b)}{-g_i''(b)}, \qquad
        g_i'(b) = \sum_j z_{ij}\,\ell'_{ij} - \frac{b}{\sigma^2}, \qquad
        -g_i''(b) = \sum_j z_{ij}^2\,(-\ell''_{ij}) + \frac{1}{\sigma^2} .

    :math:`g_i` is concave for the supported families, so the Newton direction always points
    uphill; when a full step overshoots (it does when :math:`\sigma` is large and the data
    are binary), the step is halved until :math:`g_i` increases.
    """
    if sd <= 0:
        raise ValueError(f"sd must be positive, got {sd}")
    fam = get_glmm_family(family, link)
    response, weights, eta_rows, z_arr = _cluster_arrays(y, eta_fixed, trials, z)
    precision = 1.0 / sd**2

    def objective(b: float) -> float:
        return float(fam.loglik_eta(eta_rows + b * z_arr, response, weights).sum() - 0.5 * precision * b * b)

    b = float(start)
    history = [b]
    value = objective(b)
    iterations = 0
    for _ in range(max_iter):
        iterations += 1
        kv = fam.eta_values(eta_rows + b * z_arr, response, weights)
        gradient = float(np.dot(z_arr, kv.score)) - precision * b
        curvature = float(np.dot(z_arr**2, kv.neg_hessian)) + precision
        step = gradient / curvature
        for _ in range(60):
            new_value = objective(b + step)
            if new_value >= value - 1e-13 * (1.0 + abs(value)):
                break
            step *= 0.5
        b += step
        value = new_value
        history.append(b)
        if abs(step) <= tol * (1.0 + abs(b)):
            break
    kv = fam.eta_values(eta_rows + b * z_arr, response, weights)
    curvature = float(np.dot(z_arr**2, kv.neg_hessian)) + precision
    log_g = float(cluster_log_integrand(b, y, eta_fixed, sd, fam, None, trials, z))
    return ClusterMode(b, curvature, log_g, iterations, history)


def cluster_laplace(
    y: np.ndarray,
    eta_fixed: np.ndarray | float,
    sd: float,
    family: str | Family = "binomial",
    link: str | None = None,
    trials: np.ndarray | None = None,
    z: np.ndarray | None = None,
) -> float:
    r"""Laplace approximation of :math:`\log L_i = \log\int p(y_i\mid b)\varphi(b;0,\sigma^2)\,db`.

    Replace :math:`g_i` by its second-order Taylor expansion at the mode :math:`\hat b_i`,
    a Gaussian whose integral is known:

    .. math::

        \log L_i \approx g_i(\hat b_i) + \tfrac12\log 2\pi - \tfrac12\log\bigl(-g_i''(\hat b_i)\bigr).
    """
    m = cluster_mode(y, eta_fixed, sd, family, link, trials, z)
    return m.log_integrand_at_mode + 0.5 * LOG_2PI - 0.5 * np.log(m.curvature)


def cluster_agq(
    y: np.ndarray,
    eta_fixed: np.ndarray | float,
    sd: float,
    n_nodes: int,
    family: str | Family = "binomial",
    link: str | None = None,
    trials: np.ndarray | None = None,
    z: np.ndarray | None = None,
) -> float:
    r"""Adaptive Gauss–Hermite approximation of a cluster's log marginal likelihood.

    Centre the nodes at the mode and scale them by :math:`s_i = (-g_i''(\hat b_i))^{-1/2}`:
    with :math:`b_k = \hat b_i + \sqrt2\,s_i x_k`,

    .. math::

        L_i \approx \sqrt2\,s_i \sum_{k=1}^{K} w_k\, e^{x_k^2}\, e^{g_i(b_k)} ,

    summed in log space (``logsumexp``). One node (:math:`x_1 = 0`, :math:`w_1=\sqrt\pi`)
    gives exactly the Laplace approximation; more nodes converge to the exact integral.
    """
    nodes, weights = gauss_hermite(n_nodes)
    m = cluster_mode(y, eta_fixed, sd, family, link, trials, z)
    scale = 1.0 / np.sqrt(m.curvature)
    b_nodes = m.mode + np.sqrt(2.0) * scale * nodes
    log_g = cluster_log_integrand(b_nodes, y, eta_fixed, sd, family, link, trials, z)
    return float(np.log(np.sqrt(2.0) * scale) + special.logsumexp(np.log(weights) + nodes**2 + log_g))


def cluster_exact(
    y: np.ndarray,
    eta_fixed: np.ndarray | float,
    sd: float,
    family: str | Family = "binomial",
    link: str | None = None,
    trials: np.ndarray | None = None,
    z: np.ndarray | None = None,
    rel_tol: float = 1e-12,
) -> float:
    r"""The cluster's log marginal likelihood by adaptive quadrature (``scipy.integrate.quad``).

    The integrand is rescaled by its value at the mode, :math:`e^{g_i(b) - g_i(\hat b_i)}`,
    so that it peaks at 1, and integrated over :math:`\hat b_i \pm 40\sigma`, split at the mode
    and at :math:`\hat b_i \pm 10 s_i`. Because :math:`\ell_i` is concave,
    :math:`g_i(b) \le g_i(\hat b_i) - (b-\hat b_i)^2/(2\sigma^2)`, so the integrand is below
    :math:`e^{-800}` of its peak outside that range. Then
    :math:`\log L_i = g_i(\hat b_i) + \log\int e^{g_i - g_i(\hat b_i)}\,db`.
    """
    m = cluster_mode(y, eta_fixed, sd, family, link, trials, z)
    scale = 1.0 / np.sqrt(m.curvature)

    def rescaled(b: float) -> float:
        log_g = cluster_log_integrand(b, y, eta_fixed, sd, family, link, trials, z)
        return float(np.exp(log_g - m.log_integrand_at_mode))

    # Log-concavity gives g(b) <= g(mode) - (b - mode)^2 / (2 sd^2): nothing is lost beyond
    # mode +- 40 sd. The breakpoints keep quad from stepping over the (possibly narrow) peak.
    far, near = 40.0 * sd, 10.0 * scale
    edges = (m.mode - far, m.mode - near, m.mode, m.mode + near, m.mode + far)
    total = 0.0
    for lo, hi in zip(edges[:-1], edges[1:], strict=True):
        piece, _ = integrate.quad(rescaled, lo, hi, epsabs=0.0, epsrel=rel_tol, limit=500)
        total += piece
    return float(m.log_integrand_at_mode + np.log(total))


# --------------------------------------------------------------------------------------------
# Whole-data steps for lessons: the likelihood surface and the profile over the SD
# --------------------------------------------------------------------------------------------


def marginal_loglik_function(
    X: np.ndarray,
    y: np.ndarray,
    groups: np.ndarray,
    family: str | Family = "binomial",
    link: str | None = None,
    trials: np.ndarray | None = None,
    offset: np.ndarray | None = None,
    n_nodes: int = 1,
) -> Callable[[np.ndarray, float], float]:
    r"""The random-intercept model's marginal log-likelihood as a function of :math:`(\beta, \sigma)`.

    .. math::

        \log L(\beta, \sigma) = \sum_i \log \int p(y_i \mid b)\, \varphi(b; 0, \sigma^2)\, db,

    each integral by Laplace (``n_nodes=1``) or adaptive Gauss–Hermite with ``n_nodes`` nodes.
    The returned function takes ``(beta, sd)``; it is what :func:`glmmteach.glmer` maximises.
    """
    data = GroupedData.from_arrays(X, None, y, groups, family, link, trials, offset)

    def loglik(beta: np.ndarray, sd: float) -> float:
        if sd < 0:
            raise ValueError(f"sd must be non-negative, got {sd}")
        return marginal_loglik(data, np.array([sd]), np.asarray(beta, dtype=float), n_nodes=n_nodes)

    return loglik


def profile_loglik_sd(
    X: np.ndarray,
    y: np.ndarray,
    groups: np.ndarray,
    sd_values: np.ndarray,
    family: str | Family = "binomial",
    link: str | None = None,
    trials: np.ndarray | None = None,
    offset: np.ndarray | None = None,
    n_nodes: int = 1,
    beta_start: np.ndarray | None = None,
    column_names: list[str] | None = None,
) -> pd.DataFrame:
    r"""Profile log-likelihood of the random-intercept SD:
    :math:`\ell_p(\sigma) = \max_\beta \log L(\beta, \sigma)`.

    For each :math:`\sigma` in ``sd_values`` the fixed effects are re-estimated (L-BFGS with the
    analytic gradient, warm-started from the previous grid point). Returns a DataFrame with
    columns ``sd``, ``loglik`` and one column per fixed effect.
    """
    data = GroupedData.from_arrays(X, None, y, groups, family, link, trials, offset)
    names = column_names or [f"beta{j}" for j in range(data.X.shape[1])]
    beta = np.zeros(data.X.shape[1]) if beta_start is None else np.asarray(beta_start, dtype=float)
    rows = []
    for sd in np.asarray(sd_values, dtype=float):  # loop over grid points, not groups
        beta, value = maximise_beta(data, np.array([sd]), beta, correlated=True, n_nodes=n_nodes)
        rows.append([sd, value, *beta])
    return pd.DataFrame(rows, columns=["sd", "loglik", *names])
