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

*The batch machinery* used by :func:`glmmteach.glmer` handles every group at once, in lme4's
parametrisation :math:`b_i = T_\theta u_i`, :math:`u_i \sim N(0, I_r)`, with :math:`T_\theta`
lower triangular: :class:`GroupedData`, :func:`conditional_modes`, :func:`laplace_loglik`,
:func:`agq_loglik`. Group sums are ``np.bincount`` calls and the per-group :math:`r\times r`
Newton systems are solved as one stacked batch, so there is no Python loop over groups.
Every log-likelihood includes the constants :math:`-\log y!` (Poisson) and
:math:`\log\binom{n}{y}` (binomial), so the numbers are true log-likelihoods.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from scipy import integrate, optimize, special

LOG_2PI = float(np.log(2.0 * np.pi))

# Linear predictors are clipped to these ranges before exp/log evaluations so that trial points
# far from the optimum give large but finite values instead of overflow (exp(300) ~ 1e130).
_ETA_RANGE = {
    "log": (-300.0, 300.0),
    "logit": (-500.0, 500.0),
    "probit": (-38.0, 38.0),
    "cloglog": (-40.0, 30.0),
}
_CANONICAL = {"poisson": "log", "binomial": "logit"}
# Inner Newton iterations stop when the largest step (spherical scale u) is below _STEP_EXACT, or
# right after a full step below _STEP_QUADRATIC (quadratic convergence makes the new point exact to
# roughly its square). Mode errors enter the Laplace log-determinant and the gradient to first order,
# so the decrement alone (second order) is not a sufficient test.
_STEP_EXACT = 1e-9
_STEP_QUADRATIC = 1e-6
_ALLOWED_LINKS = {"poisson": ("log",), "binomial": ("logit", "probit", "cloglog")}


# --------------------------------------------------------------------------------------------
# Family kernels: log-likelihood and its derivatives with respect to the linear predictor
# --------------------------------------------------------------------------------------------


@dataclass
class KernelValues:
    r"""Per-observation quantities at a linear predictor :math:`\eta`.

    ``loglik`` is :math:`\log f(y \mid \eta)` without its data-only constant, ``score`` is
    :math:`\partial \ell/\partial\eta`, ``neg_hessian`` is :math:`-\partial^2\ell/\partial\eta^2`
    (observed information), ``fisher`` is the expected information
    :math:`n\,\mu'(\eta)^2/V(\mu)` (identical to ``neg_hessian`` for canonical links) and
    ``fisher_deriv`` its derivative in :math:`\eta` (filled only when asked for).
    """

    loglik: np.ndarray
    score: np.ndarray
    neg_hessian: np.ndarray
    fisher: np.ndarray
    fisher_deriv: np.ndarray | None = None
    mean: np.ndarray | None = None  # mu (canonical links), kept so fisher_deriv costs no exp()


@dataclass(frozen=True)
class LikelihoodKernel:
    r"""Log-likelihood of one exponential-family response as a function of :math:`\eta`.

    Supported: Poisson with log link, binomial (:math:`y` successes out of :math:`n` trials,
    :math:`n = 1` for binary data) with logit, probit or complementary log-log link.

    =========  ==========================================================================
    family     :math:`\ell(\eta)` without constant
    =========  ==========================================================================
    Poisson    :math:`y\eta - e^\eta`
    logit      :math:`y\eta - n\log(1 + e^\eta)`
    probit     :math:`y\log\Phi(\eta) + (n-y)\log\Phi(-\eta)`
    cloglog    :math:`y\log(1 - e^{-e^\eta}) - (n-y)e^\eta`
    =========  ==========================================================================
    """

    family: str
    link: str

    @classmethod
    def from_spec(cls, family: Any, link: str | None = None) -> LikelihoodKernel:
        """Build from a family name (``"binomial"``/``"poisson"``) or a family object.

        A family object is anything with ``.name`` and ``.link.name`` (or ``.link`` a string),
        such as the objects returned by :func:`glmmteach.families.get_family`.
        """
        if isinstance(family, LikelihoodKernel):
            return family
        if isinstance(family, str):
            name = family.lower()
        elif hasattr(family, "name"):
            name = str(family.name).lower()
            if link is None:
                family_link = getattr(family, "link", None)
                link = getattr(family_link, "name", family_link)
        else:
            raise TypeError(f"family must be a string or a family object, got {type(family).__name__}")
        if name not in _ALLOWED_LINKS:
            raise ValueError(f"family {name!r} is not supported for GLMMs; use 'binomial' or 'poisson'")
        link_name = _CANONICAL[name] if link is None else str(link).lower()
        if link_name not in _ALLOWED_LINKS[name]:
            raise ValueError(
                f"link {link_name!r} is not available for family {name!r}; choose one of "
                f"{', '.join(_ALLOWED_LINKS[name])}"
            )
        return cls(name, link_name)

    @property
    def canonical(self) -> bool:
        """True for the canonical links (observed and expected information agree)."""
        return _CANONICAL[self.family] == self.link

    def log_constant(self, y: np.ndarray, trials: np.ndarray | None) -> np.ndarray:
        r"""Data-only part of the log-likelihood: :math:`-\log y!` or :math:`\log\binom{n}{y}`."""
        y = np.asarray(y, dtype=float)
        if self.family == "poisson":
            return -special.gammaln(y + 1.0)
        n = np.ones_like(y) if trials is None else np.asarray(trials, dtype=float)
        return special.gammaln(n + 1.0) - special.gammaln(y + 1.0) - special.gammaln(n - y + 1.0)

    def mean(self, eta: np.ndarray) -> np.ndarray:
        r"""Inverse link :math:`\mu = g^{-1}(\eta)` (a probability for the binomial family)."""
        eta = np.clip(eta, *_ETA_RANGE[self.link])
        if self.link == "log":
            return np.exp(eta)
        if self.link == "logit":
            return special.expit(eta)
        if self.link == "probit":
            return special.ndtr(eta)
        return -np.expm1(-np.exp(eta))

    def variance(self, mu: np.ndarray) -> np.ndarray:
        """Variance function per trial: :math:`\\mu` (Poisson) or :math:`\\mu(1-\\mu)` (binomial)."""
        return mu if self.family == "poisson" else mu * (1.0 - mu)

    def loglik(self, eta: np.ndarray, y: np.ndarray, trials: np.ndarray | None) -> np.ndarray:
        """Per-observation log-likelihood without the constant (cheap path, no derivatives)."""
        eta = np.clip(eta, *_ETA_RANGE[self.link])
        n = 1.0 if trials is None else trials
        if self.link == "log":
            return y * eta - np.exp(eta)
        if self.link == "logit":
            return y * eta - n * (np.maximum(eta, 0.0) + np.log1p(np.exp(-np.abs(eta))))
        if self.link == "probit":
            return y * special.log_ndtr(eta) + (n - y) * special.log_ndtr(-eta)
        t = np.exp(eta)
        return y * np.log(-np.expm1(-t)) - (n - y) * t

    def evaluate(
        self, eta: np.ndarray, y: np.ndarray, trials: np.ndarray | None, with_fisher_deriv: bool = False
    ) -> KernelValues:
        """Log-likelihood, score, observed and expected information at ``eta`` (one pass)."""
        eta = np.clip(eta, *_ETA_RANGE[self.link])
        n = 1.0 if trials is None else trials
        deriv = None
        if self.link == "log":
            mu = np.exp(eta)
            ll = y * eta - mu
            score = y - mu
            neg_h = fisher = mu
            deriv = mu if with_fisher_deriv else None
            return KernelValues(ll, score, neg_h, fisher, deriv, mu)
        elif self.link == "logit":
            # One exp and one log1p: e = exp(-|eta|) gives both mu and log(1 + exp(eta)) stably.
            e = np.exp(-np.abs(eta))
            inv = 1.0 / (1.0 + e)
            mu = np.where(eta >= 0, inv, e * inv)
            ll = y * eta - n * (np.maximum(eta, 0.0) + np.log1p(e))
            score = y - n * mu
            neg_h = fisher = n * mu * (1.0 - mu)
            if with_fisher_deriv:
                deriv = fisher * (1.0 - 2.0 * mu)
            return KernelValues(ll, score, neg_h, fisher, deriv, mu)
        elif self.link == "probit":
            log_p = special.log_ndtr(eta)
            log_q = special.log_ndtr(-eta)
            log_phi = -0.5 * eta * eta - 0.5 * LOG_2PI
            r1 = np.exp(log_phi - log_p)  # phi/Phi
            r0 = np.exp(log_phi - log_q)  # phi/(1-Phi)
            ll = y * log_p + (n - y) * log_q
            score = y * r1 - (n - y) * r0
            neg_h = y * r1 * (eta + r1) + (n - y) * r0 * (r0 - eta)
            fisher = n * r1 * r0
            if with_fisher_deriv:
                deriv = fisher * (r0 - r1 - 2.0 * eta)
        else:  # cloglog
            t = np.exp(eta)
            with np.errstate(over="ignore"):
                odds_fail = 1.0 / np.expm1(t)  # (1 - mu) / mu
            ll = y * np.log(-np.expm1(-t)) - (n - y) * t
            ta = t * odds_fail
            score = y * ta - (n - y) * t
            neg_h = y * ta * (t * (1.0 + odds_fail) - 1.0) + (n - y) * t
            fisher = n * ta * t
            if with_fisher_deriv:
                deriv = fisher * (2.0 - t * (1.0 + odds_fail))
        return KernelValues(ll, score, neg_h, fisher, deriv)

    def fisher_deriv(
        self, eta: np.ndarray, y: np.ndarray, trials: np.ndarray | None, values: KernelValues | None = None
    ) -> np.ndarray:
        r""":math:`\partial w/\partial\eta` of the expected-information weight :math:`w`
        (from ``values`` at the same ``eta`` when they carry the mean: no new transcendentals)."""
        if values is not None and values.mean is not None:
            if self.link == "log":
                return values.fisher
            return values.fisher * (1.0 - 2.0 * values.mean)
        values = self.evaluate(eta, y, trials, with_fisher_deriv=True)
        assert values.fisher_deriv is not None
        return values.fisher_deriv


# --------------------------------------------------------------------------------------------
# Steps a lesson can call: one cluster, scalar random intercept on the linear-predictor scale
# --------------------------------------------------------------------------------------------


def _cluster_arrays(y, eta_fixed, trials, z):
    y = np.atleast_1d(np.asarray(y, dtype=float))
    eta_fixed = np.broadcast_to(np.asarray(eta_fixed, dtype=float), y.shape)
    trials_arr = None if trials is None else np.broadcast_to(np.asarray(trials, dtype=float), y.shape)
    z_arr = np.ones_like(y) if z is None else np.broadcast_to(np.asarray(z, dtype=float), y.shape)
    return y, eta_fixed, trials_arr, z_arr


def cluster_conditional_loglik(
    b: np.ndarray | float,
    y: np.ndarray,
    eta_fixed: np.ndarray | float,
    family: Any = "binomial",
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
    kernel = LikelihoodKernel.from_spec(family, link)
    y, eta_fixed, trials_arr, z_arr = _cluster_arrays(y, eta_fixed, trials, z)
    b_arr = np.asarray(b, dtype=float)
    eta = eta_fixed + np.multiply.outer(b_arr, z_arr)
    const = kernel.log_constant(y, trials_arr).sum()
    return kernel.loglik(eta, y, trials_arr).sum(axis=-1) + const


def cluster_log_integrand(
    b: np.ndarray | float,
    y: np.ndarray,
    eta_fixed: np.ndarray | float,
    sd: float,
    family: Any = "binomial",
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
    family: Any = "binomial",
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
    kernel = LikelihoodKernel.from_spec(family, link)
    y, eta_fixed, trials_arr, z_arr = _cluster_arrays(y, eta_fixed, trials, z)
    precision = 1.0 / sd**2

    def objective(b: float) -> float:
        return float(kernel.loglik(eta_fixed + b * z_arr, y, trials_arr).sum() - 0.5 * precision * b * b)

    b = float(start)
    history = [b]
    value = objective(b)
    iterations = 0
    for _ in range(max_iter):
        iterations += 1
        kv = kernel.evaluate(eta_fixed + b * z_arr, y, trials_arr)
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
    kv = kernel.evaluate(eta_fixed + b * z_arr, y, trials_arr)
    curvature = float(np.dot(z_arr**2, kv.neg_hessian)) + precision
    log_g = float(cluster_log_integrand(b, y, eta_fixed, sd, kernel, None, trials_arr, z_arr))
    return ClusterMode(b, curvature, log_g, iterations, history)


def cluster_laplace(
    y: np.ndarray,
    eta_fixed: np.ndarray | float,
    sd: float,
    family: Any = "binomial",
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


def gauss_hermite(n_nodes: int) -> tuple[np.ndarray, np.ndarray]:
    r"""Gauss–Hermite nodes :math:`x_k` and weights :math:`w_k` for
    :math:`\int e^{-x^2} f(x)\,dx \approx \sum_k w_k f(x_k)`."""
    if int(n_nodes) != n_nodes or n_nodes < 1:
        raise ValueError(f"the number of quadrature nodes must be a positive integer, got {n_nodes!r}")
    nodes, weights = np.polynomial.hermite.hermgauss(int(n_nodes))
    return nodes, weights


def cluster_agq(
    y: np.ndarray,
    eta_fixed: np.ndarray | float,
    sd: float,
    n_nodes: int,
    family: Any = "binomial",
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
    family: Any = "binomial",
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
# Batch machinery: all groups at once, lme4 parametrisation b_i = T u_i, u_i ~ N(0, I)
# --------------------------------------------------------------------------------------------


@dataclass
class GroupedData:
    r"""Arrays of a GLMM with one grouping factor.

    ``X`` (n×p) fixed-effects design, ``Z`` (n×r) random-effects design, ``y`` responses
    (successes for binomial), ``trials`` binomial totals (``None``: binary or Poisson),
    ``offset``, ``groups`` integer codes 0..G-1, ``kernel`` the family's
    :class:`LikelihoodKernel`.
    """

    X: np.ndarray
    Z: np.ndarray
    y: np.ndarray
    groups: np.ndarray
    n_groups: int
    kernel: LikelihoodKernel
    trials: np.ndarray | None = None
    offset: np.ndarray | None = None
    log_constant: float = field(init=False)
    z_is_ones: bool = field(init=False)

    def __post_init__(self) -> None:
        self.X = np.ascontiguousarray(self.X, dtype=float)
        self.Z = np.ascontiguousarray(np.asarray(self.Z, dtype=float).reshape(len(self.y), -1))
        self.y = np.ascontiguousarray(self.y, dtype=float)
        self.groups = np.ascontiguousarray(self.groups, dtype=np.intp)
        if self.trials is not None:
            self.trials = np.ascontiguousarray(self.trials, dtype=float)
        if self.offset is not None:
            self.offset = np.ascontiguousarray(self.offset, dtype=float)
        self.log_constant = float(self.kernel.log_constant(self.y, self.trials).sum())
        self.z_is_ones = self.n_re == 1 and bool(np.all(self.Z[:, 0] == 1.0))

    @classmethod
    def from_arrays(
        cls,
        X: np.ndarray,
        Z: np.ndarray | None,
        y: np.ndarray,
        groups: np.ndarray,
        family: Any = "binomial",
        link: str | None = None,
        trials: np.ndarray | None = None,
        offset: np.ndarray | None = None,
    ) -> GroupedData:
        """Build from arrays; ``groups`` may hold any labels (they are coded 0..G-1)."""
        codes, uniques = pd.factorize(pd.Series(np.asarray(groups)), sort=True)
        y = np.asarray(y, dtype=float)
        Z = np.ones((len(y), 1)) if Z is None else Z
        return cls(np.asarray(X, dtype=float), Z, y, codes, len(uniques), LikelihoodKernel.from_spec(family, link),
                   trials, offset)

    @property
    def nobs(self) -> int:
        return len(self.y)

    @property
    def n_re(self) -> int:
        return self.Z.shape[1]

    def eta_fixed(self, beta: np.ndarray) -> np.ndarray:
        r""":math:`X\beta + \text{offset}`."""
        eta = self.X @ np.asarray(beta, dtype=float)
        return eta if self.offset is None else eta + self.offset

    def group_sum(self, values: np.ndarray) -> np.ndarray:
        """Sum ``values`` (length n) within groups: length-G array."""
        return np.bincount(self.groups, weights=values, minlength=self.n_groups)


def theta_to_T(theta: np.ndarray, n_re: int, correlated: bool) -> np.ndarray:
    r"""lme4's relative covariance factor :math:`T_\theta` (r×r lower triangular).

    For correlated terms :math:`\theta` lists the lower triangle column by column
    (:math:`T_{11}, T_{21}, \dots, T_{r1}, T_{22}, \dots`); for uncorrelated terms
    (``(1 + x || g)``) only the diagonal. :math:`\Sigma = T T^\top` in :math:`\sigma`-free
    GLMMs, so for a random intercept :math:`\theta = \tau`, the SD.
    """
    T = np.zeros((n_re, n_re))
    if correlated:
        rows, cols = np.tril_indices(n_re)
        order = np.lexsort((rows, cols))  # column-major, as lme4
        T[rows[order], cols[order]] = theta
    else:
        T[np.diag_indices(n_re)] = theta
    return T


def theta_positions(n_re: int, correlated: bool) -> tuple[np.ndarray, np.ndarray]:
    """Row and column of T for each element of theta (see :func:`theta_to_T`)."""
    if correlated:
        rows, cols = np.tril_indices(n_re)
        order = np.lexsort((rows, cols))
        return rows[order], cols[order]
    idx = np.arange(n_re)
    return idx, idx


def theta_lower_bounds(n_re: int, correlated: bool) -> np.ndarray:
    """Lower bounds for theta: 0 for diagonal entries of T, -inf for off-diagonal ones."""
    rows, cols = theta_positions(n_re, correlated)
    return np.where(rows == cols, 0.0, -np.inf)


@dataclass
class ModeState:
    r"""Conditional modes :math:`\tilde u` for all groups and what was computed there.

    ``u`` (G×r) modes in the spherical scale, ``eta`` linear predictor, ``values`` kernel
    quantities, ``penalised`` per-group :math:`\sum_j\ell_{ij} - \frac12\|u_i\|^2` (without
    constants), ``hessian_obs`` / ``hessian_fisher`` the per-group matrices
    :math:`I + T^\top Z_i^\top W Z_i T` with observed / expected weights, ``iterations`` Newton
    iterations, ``passes`` full data passes.
    """

    u: np.ndarray
    eta: np.ndarray
    values: KernelValues
    penalised: np.ndarray
    hessian_obs: np.ndarray
    hessian_fisher: np.ndarray
    ZT: np.ndarray
    iterations: int
    passes: int
    converged: bool


def _weighted_crossprod(data: GroupedData, weights: np.ndarray, A: np.ndarray) -> np.ndarray:
    """Per-group :math:`\\sum_j w_j a_j a_j^T` (G×r×r) for rows ``a_j`` of ``A`` (n×r)."""
    r = A.shape[1]
    out = np.empty((data.n_groups, r, r))
    for a in range(r):  # loops over the r(r+1)/2 matrix entries, not over groups
        wa = weights * A[:, a]
        for c in range(a, r):
            out[:, a, c] = out[:, c, a] = data.group_sum(wa * A[:, c])
    return out


def _group_vector_sum(data: GroupedData, weights: np.ndarray, A: np.ndarray) -> np.ndarray:
    """Per-group :math:`\\sum_j w_j a_j` (G×r)."""
    return np.stack([data.group_sum(weights * A[:, a]) for a in range(A.shape[1])], axis=1)


def _random_part(data: GroupedData, ZT: np.ndarray, u: np.ndarray) -> np.ndarray:
    r""":math:`z_j^\top T u_{g(j)}` for every row (one gather per random-effect term)."""
    out = ZT[:, 0] * u[:, 0][data.groups]
    for a in range(1, ZT.shape[1]):
        out += ZT[:, a] * u[:, a][data.groups]
    return out


# Stacked symmetric r×r systems: closed forms for r = 1 and 2 (the usual cases), LAPACK otherwise.


def _batch_solve(H: np.ndarray, g: np.ndarray) -> np.ndarray:
    """Solve the stacked symmetric systems H_i x_i = g_i (G×r×r, G×r)."""
    if H.shape[1] == 1:
        return g / H[:, :, 0]
    if H.shape[1] == 2:
        a, b, d = H[:, 0, 0], H[:, 0, 1], H[:, 1, 1]
        det = a * d - b * b
        return np.stack([(d * g[:, 0] - b * g[:, 1]) / det, (a * g[:, 1] - b * g[:, 0]) / det], axis=1)
    return np.linalg.solve(H, g[:, :, None])[:, :, 0]


def _batch_logdet(H: np.ndarray) -> np.ndarray:
    if H.shape[1] == 1:
        return np.log(H[:, 0, 0])
    if H.shape[1] == 2:
        return np.log(H[:, 0, 0] * H[:, 1, 1] - H[:, 0, 1] ** 2)
    chol = np.linalg.cholesky(H)
    return 2.0 * np.log(np.diagonal(chol, axis1=1, axis2=2)).sum(axis=1)


def _batch_inverse(H: np.ndarray) -> np.ndarray:
    if H.shape[1] == 1:
        return 1.0 / H
    if H.shape[1] == 2:
        a, b, d = H[:, 0, 0], H[:, 0, 1], H[:, 1, 1]
        det = a * d - b * b
        return np.stack([np.stack([d, -b], axis=1), np.stack([-b, a], axis=1)], axis=1) / det[:, None, None]
    return np.linalg.inv(H)


def _leverage(data: GroupedData, ZT: np.ndarray, M: np.ndarray) -> np.ndarray:
    r""":math:`q_j = (T^\top z_j)^\top M_{g(j)} (T^\top z_j)` for every row."""
    g = data.groups
    if ZT.shape[1] == 1:
        return ZT[:, 0] ** 2 * M[:, 0, 0][g]
    if ZT.shape[1] == 2:
        return (ZT[:, 0] ** 2 * M[:, 0, 0][g] + 2.0 * ZT[:, 0] * ZT[:, 1] * M[:, 0, 1][g]
                + ZT[:, 1] ** 2 * M[:, 1, 1][g])
    return np.einsum("na,nab,nb->n", ZT, M[g], ZT)


def conditional_modes(
    data: GroupedData,
    beta: np.ndarray,
    T: np.ndarray,
    u_start: np.ndarray | None = None,
    tol: float = 1e-10,
    max_iter: int = 200,
    eta_fixed: np.ndarray | None = None,
    min_iter: int = 1,
) -> ModeState:
    r"""Conditional modes of the spherical random effects for all groups at once.

    For each group maximise the penalised log-likelihood

    .. math::

        h_i(u) = \sum_{j \in i} \ell(y_{ij} \mid \eta_{ij}) - \tfrac12\|u\|^2, \qquad
        \eta_{ij} = x_{ij}^\top\beta + o_{ij} + z_{ij}^\top T u,

    by Newton's method. Gradient and Hessian of group :math:`i` are

    .. math::

        \nabla h_i = T^\top \sum_j z_{ij}\,\ell'_{ij} - u, \qquad
        -\nabla^2 h_i = I + T^\top\Bigl(\sum_j (-\ell''_{ij})\, z_{ij} z_{ij}^\top\Bigr) T,

    built with one ``np.bincount`` per vector/matrix entry and solved as a stack of r×r
    systems. Groups whose :math:`h_i` would decrease get their step halved (other groups are
    not held back). Iteration stops when the summed Newton decrement
    :math:`\sum_i \nabla h_i^\top (-\nabla^2 h_i)^{-1} \nabla h_i` (about twice the distance
    to the maximum in log-likelihood units) is below ``tol`` × ``(1 + |Σ h_i|)`` and every step is
    below 1e-9, or right after a full Newton step below 1e-6; and only after at least
    ``min_iter`` Newton steps: a warm start from the modes of a nearby (θ, β) can already pass
    the test while the modes have not yet responded to the change, which would make the
    gradient inconsistent with the value.
    """
    r = data.n_re
    ZT = data.Z @ T if not data.z_is_ones else np.full((data.nobs, 1), T[0, 0])
    eta0 = data.eta_fixed(beta) if eta_fixed is None else eta_fixed
    u = np.zeros((data.n_groups, r)) if u_start is None else np.array(u_start, dtype=float).reshape(data.n_groups, r)
    eye = np.eye(r)

    def evaluate(u_try: np.ndarray) -> tuple[np.ndarray, KernelValues, np.ndarray]:
        eta = eta0 + _random_part(data, ZT, u_try)
        kv = data.kernel.evaluate(eta, data.y, data.trials)
        h = data.group_sum(kv.loglik) - 0.5 * np.einsum("gr,gr->g", u_try, u_try)
        return eta, kv, h

    eta, kv, h = evaluate(u)
    passes = 1
    if not np.all(np.isfinite(h)) and u_start is not None:
        u = np.zeros_like(u)
        eta, kv, h = evaluate(u)
        passes += 1
    converged = False
    iterations = 0
    for iterations in range(1, max_iter + 1):
        gradient = _group_vector_sum(data, kv.score, ZT) - u
        H_obs = eye + _weighted_crossprod(data, kv.neg_hessian, ZT)
        step = _batch_solve(H_obs, gradient)
        decrement = float(np.einsum("gr,gr->", gradient, step))
        largest_step = float(np.abs(step).max()) if step.size else 0.0
        if iterations > min_iter and decrement <= tol * (1.0 + abs(float(h.sum()))) and largest_step <= _STEP_EXACT:
            converged = True
            break
        fraction = np.ones(data.n_groups)
        for _ in range(50):
            u_new = u + fraction[:, None] * step
            eta_new, kv_new, h_new = evaluate(u_new)
            passes += 1
            worse = ~(h_new >= h - 1e-12 * (1.0 + np.abs(h)))
            if not worse.any():
                break
            fraction[worse] *= 0.5
        u, eta, kv, h = u_new, eta_new, kv_new, h_new
        # Newton converges quadratically: after a full step this small, the new point is exact to
        # about the square of it, so stop there (saving the pass that would only confirm it).
        if iterations >= min_iter and largest_step <= _STEP_QUADRATIC and np.all(fraction == 1.0):
            H_obs = eye + _weighted_crossprod(data, kv.neg_hessian, ZT)
            converged = True
            break
    if data.kernel.canonical:
        H_fisher = H_obs
    else:
        H_fisher = eye + _weighted_crossprod(data, kv.fisher, ZT)
    return ModeState(u, eta, kv, h, H_obs, H_fisher, ZT, iterations, passes, converged)


def laplace_loglik(
    data: GroupedData, beta: np.ndarray, T: np.ndarray, state: ModeState | None = None, **mode_kwargs: Any
) -> tuple[float, ModeState]:
    r"""Laplace approximation of the marginal log-likelihood (with all constants).

    .. math::

        \log L(\theta, \beta) \approx \sum_i \Bigl[ \sum_j \ell(y_{ij} \mid \tilde\eta_{ij})
        - \tfrac12 \|\tilde u_i\|^2 - \tfrac12 \log\det\bigl(I + T^\top Z_i^\top W_i Z_i T\bigr)\Bigr],

    :math:`W_i` the expected-information (GLM working) weights at the modes, as in lme4
    (for canonical links they equal the observed ones). Returns the value and the
    :class:`ModeState` it was computed from.
    """
    if state is None:
        state = conditional_modes(data, beta, T, **mode_kwargs)
    logdet = _batch_logdet(state.hessian_fisher)
    value = float(state.penalised.sum() - 0.5 * logdet.sum()) + data.log_constant
    return value, state


def agq_loglik(
    data: GroupedData,
    beta: np.ndarray,
    T: np.ndarray,
    n_nodes: int,
    state: ModeState | None = None,
    **mode_kwargs: Any,
) -> tuple[float, ModeState]:
    r"""Adaptive Gauss–Hermite approximation of the marginal log-likelihood (scalar random effect).

    With modes :math:`\tilde u_i` and scales :math:`s_i = (1 + \tau^2\sum_j w_{ij} z_{ij}^2)^{-1/2}`,
    nodes :math:`u_{ik} = \tilde u_i + \sqrt2 s_i x_k`:

    .. math::

        \log L_i = \log(\sqrt2\,s_i) + \operatorname{logsumexp}_k\Bigl[\log w_k + x_k^2
        - \tfrac12\log 2\pi + \sum_j \ell(y_{ij}\mid\eta_{ij}(u_{ik})) - \tfrac12 u_{ik}^2\Bigr].

    ``n_nodes = 1`` reproduces :func:`laplace_loglik` exactly.
    """
    value, state, _ = _agq_value_and_gradient(data, beta, T, n_nodes, state, want_gradient=False, **mode_kwargs)
    return value, state


def _node_log_terms(data: GroupedData, state: ModeState, eta0: np.ndarray, n_nodes: int):
    nodes, weights = gauss_hermite(n_nodes)
    u_mode = state.u[:, 0]
    scale = 1.0 / np.sqrt(state.hessian_fisher[:, 0, 0])
    zt = state.ZT[:, 0]
    u_nodes = u_mode[:, None] + np.sqrt(2.0) * scale[:, None] * nodes[None, :]  # G×K
    log_terms = np.empty_like(u_nodes)
    for k in range(n_nodes):  # loop over quadrature nodes, each a vectorised pass over the data
        if nodes[k] == 0.0:
            sums = state.penalised + 0.5 * u_mode**2
        else:
            eta = eta0 + zt * u_nodes[data.groups, k]
            sums = data.group_sum(data.kernel.loglik(eta, data.y, data.trials))
        log_terms[:, k] = np.log(weights[k]) + nodes[k] ** 2 - 0.5 * LOG_2PI + sums - 0.5 * u_nodes[:, k] ** 2
    return nodes, scale, u_nodes, log_terms


def _agq_value_and_gradient(
    data: GroupedData,
    beta: np.ndarray,
    T: np.ndarray,
    n_nodes: int,
    state: ModeState | None = None,
    want_gradient: bool = True,
    **mode_kwargs: Any,
) -> tuple[float, ModeState, np.ndarray | None]:
    if data.n_re != 1:
        raise ValueError(
            f"adaptive Gauss-Hermite quadrature (nAGQ > 1) needs a single scalar random effect; "
            f"this model has {data.n_re} random-effect terms per group"
        )
    eta0 = data.eta_fixed(beta)
    if state is None:
        state = conditional_modes(data, beta, T, eta_fixed=eta0, **mode_kwargs)
    nodes, scale, u_nodes, log_terms = _node_log_terms(data, state, eta0, n_nodes)
    per_group = np.log(np.sqrt(2.0) * scale) + special.logsumexp(log_terms, axis=1)
    value = float(per_group.sum()) + data.log_constant
    if not want_gradient:
        return value, state, None
    grad = _agq_gradient(data, state, eta0, T, nodes, scale, u_nodes, log_terms)
    return value, state, grad


def _agq_gradient(data, state, eta0, T, nodes, scale, u_nodes, log_terms) -> np.ndarray:
    r"""Gradient of the AGQ log-likelihood in (tau, beta), differentiating through the modes
    and scales (implicit function theorem); see :func:`loglik_and_gradient`."""
    tau = T[0, 0]
    z = data.Z[:, 0]
    g = data.groups
    kv = state.values
    u_mode = state.u[:, 0]
    H_obs = state.hessian_obs[:, 0, 0]
    H_f = state.hessian_fisher[:, 0, 0]
    fisher_deriv = data.kernel.fisher_deriv(state.eta, data.y, data.trials, kv)
    weights_node = np.exp(log_terms - special.logsumexp(log_terms, axis=1, keepdims=True))  # G×K, pi_ik

    # Second sweep over the nodes: the pi-weighted score per row and the per-group sums E_ik.
    score_avg = np.zeros(data.nobs)
    E = np.empty_like(u_nodes)
    for k in range(len(nodes)):
        if nodes[k] == 0.0:
            score_k = kv.score
        else:
            eta = eta0 + tau * z * u_nodes[g, k]
            score_k = data.kernel.evaluate(eta, data.y, data.trials).score
        score_avg += weights_node[g, k] * score_k
        E[:, k] = data.group_sum(score_k * z)
    D = tau * E - u_nodes
    alpha = (weights_node * D).sum(axis=1)
    gamma = 1.0 / scale + np.sqrt(2.0) * (weights_node * D * nodes[None, :]).sum(axis=1)
    explicit_tau = (weights_node * E * u_nodes).sum(axis=1)

    A = data.group_sum(kv.fisher * z * z)
    C = data.group_sum(fisher_deriv * z**3)
    dmode_deta = -kv.neg_hessian * tau * z / H_obs[g]
    dmode_dtau = (data.group_sum(-kv.neg_hessian * z * z) * tau * u_mode + data.group_sum(kv.score * z)) / H_obs
    half_h32 = -0.5 * H_f ** (-1.5)
    dscale_deta = half_h32[g] * tau**2 * (fisher_deriv * z * z + C[g] * tau * dmode_deta)
    dscale_dtau = half_h32 * (2.0 * tau * A + tau**2 * C * (u_mode + tau * dmode_dtau))

    d_eta = score_avg + alpha[g] * dmode_deta + gamma[g] * dscale_deta
    d_tau = explicit_tau + alpha * dmode_dtau + gamma * dscale_dtau
    return np.concatenate([[d_tau.sum()], data.X.T @ d_eta])


def _laplace_gradient(data: GroupedData, state: ModeState, T: np.ndarray, correlated: bool) -> np.ndarray:
    r"""Gradient of the Laplace log-likelihood in (theta, beta) through the modes.

    With :math:`F = \sum\ell - \frac12\|u\|^2` stationary in :math:`u` at the modes and
    :math:`G = -\frac12\sum_i\log\det H_i`,
    :math:`\frac{d}{d\phi}(F + G) = \partial_\phi F + \partial_\phi G + v^\top \partial_u\partial_\phi F`
    with the adjoint :math:`v_i = H_{\mathrm{obs},i}^{-1}\,\partial G/\partial u_i`.
    """
    kv = state.values
    ZT = state.ZT
    fisher_deriv = data.kernel.fisher_deriv(state.eta, data.y, data.trials, kv)
    M = _batch_inverse(state.hessian_fisher)  # G×r×r
    e = -0.5 * fisher_deriv * _leverage(data, ZT, M)  # dG/deta_j
    dG_du = _group_vector_sum(data, e, ZT)
    v = _batch_solve(state.hessian_obs, dG_du)
    s = _random_part(data, ZT, v)
    c = kv.score + e - kv.neg_hessian * s
    grad_beta = data.X.T @ c
    # d/dT_ab: sum_i (P_i u_i^T + Q_i v_i^T)_ab - sum_i (A_i T M_i)_ab
    P = _group_vector_sum(data, c, data.Z)
    Q = _group_vector_sum(data, kv.score, data.Z)
    A = _weighted_crossprod(data, kv.fisher, data.Z)
    grad_T = np.einsum("ga,gb->ab", P, state.u) + np.einsum("ga,gb->ab", Q, v)
    grad_T -= np.einsum("gab,bc,gcd->ad", A, T, M)
    rows, cols = theta_positions(data.n_re, correlated)
    return np.concatenate([grad_T[rows, cols], grad_beta])


def loglik_and_gradient(
    data: GroupedData,
    theta: np.ndarray,
    beta: np.ndarray,
    correlated: bool = True,
    n_nodes: int = 1,
    u_start: np.ndarray | None = None,
    tol: float = 1e-10,
    min_iter: int = 1,
) -> tuple[float, np.ndarray, ModeState]:
    r"""Marginal log-likelihood (Laplace or AGQ) and its analytic gradient in (theta, beta).

    The modes :math:`\tilde u(\theta,\beta)` solve :math:`\nabla_u F = 0`; by the implicit
    function theorem :math:`d\tilde u/d\phi = H_{\mathrm{obs}}^{-1}\,\partial_u\partial_\phi F`,
    so the gradient needs one extra adjoint solve per group rather than finite differences
    (which are inaccurate with warm-started inner solves). Returns
    ``(loglik, gradient, mode_state)``; the gradient lists theta first, then beta.
    """
    T = theta_to_T(np.asarray(theta, dtype=float), data.n_re, correlated)
    eta0 = data.eta_fixed(beta)
    state = conditional_modes(data, beta, T, u_start=u_start, tol=tol, eta_fixed=eta0, min_iter=min_iter)
    if n_nodes == 1:
        value, _ = laplace_loglik(data, beta, T, state=state)
        grad = _laplace_gradient(data, state, T, correlated)
    else:
        value, _, grad = _agq_value_and_gradient(data, beta, T, n_nodes, state=state)
        assert grad is not None
    return value, grad, state


def marginal_loglik(
    data: GroupedData,
    theta: np.ndarray,
    beta: np.ndarray,
    correlated: bool = True,
    n_nodes: int = 1,
    u_start: np.ndarray | None = None,
    tol: float = 1e-10,
) -> float:
    """Marginal log-likelihood (Laplace for ``n_nodes=1``, else AGQ) at (theta, beta)."""
    T = theta_to_T(np.asarray(theta, dtype=float), data.n_re, correlated)
    state = conditional_modes(data, beta, T, u_start=u_start, tol=tol)
    if n_nodes == 1:
        return laplace_loglik(data, beta, T, state=state)[0]
    return agq_loglik(data, beta, T, n_nodes, state=state)[0]


# --------------------------------------------------------------------------------------------
# Whole-data steps for lessons: the likelihood surface and the profile over the SD
# --------------------------------------------------------------------------------------------


def marginal_loglik_function(
    X: np.ndarray,
    y: np.ndarray,
    groups: np.ndarray,
    family: Any = "binomial",
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
    family: Any = "binomial",
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


def maximise_beta(
    data: GroupedData,
    theta: np.ndarray,
    beta_start: np.ndarray,
    correlated: bool = True,
    n_nodes: int = 1,
) -> tuple[np.ndarray, float]:
    """Maximise the marginal log-likelihood over beta with theta held fixed."""
    n_theta = len(theta)
    u_cache: dict[str, np.ndarray] = {}

    def objective(beta: np.ndarray) -> tuple[float, np.ndarray]:
        value, grad, state = loglik_and_gradient(data, theta, beta, correlated, n_nodes, u_cache.get("u"))
        u_cache["u"] = state.u
        return -value, -grad[n_theta:]

    result = optimize.minimize(objective, beta_start, jac=True, method="L-BFGS-B",
                               options={"maxiter": 500, "ftol": 1e-15, "gtol": 1e-7})
    return result.x, -float(result.fun)
