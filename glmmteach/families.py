r"""Exponential families and link functions: the one family object of GLMs and GLMMs.

A generalized linear model says that, given covariates, :math:`y_i` has a distribution from an
exponential family with mean :math:`\mu_i` and variance :math:`\phi\, V(\mu_i) / w_i`, and that a
link function :math:`g` maps the mean to the linear predictor,

.. math:: g(\mu_i) = \eta_i = x_i^\top \beta + o_i ,

with :math:`o_i` a known offset. A GLMM adds random effects to :math:`\eta`. As R's ``family()``
serves both ``glm`` and ``glmer``, one :class:`Family` serves :func:`glmmteach.glm` and
:func:`glmmteach.glmer`:

- *mean scale* (what Fisher scoring, fitted values, residuals and predictions use): the link
  :math:`g`, its inverse :math:`g^{-1}` and derivative :math:`d\mu/d\eta`, the variance function
  :math:`V(\mu)`, the unit deviance, the log-likelihood with its constants and R's starting values;
- *linear-predictor scale* (what the GLMM's integrals over the random effects use): the
  log-likelihood as a function of :math:`\eta`, its score :math:`\partial\ell/\partial\eta`, the
  observed and expected information (closed forms; for the canonical links they coincide), in log
  space so that they stay accurate at extreme :math:`\eta`.

**One convention for the response and trials** (R's): ``y`` is the *proportion* of successes for the
binomial family and the count for the Poisson family; ``weights`` are the prior weights, which for
the binomial family are the numbers of trials (``None`` means 1: binary data). Functions that take
successes and trials from a user (``glmer(trials=...)``, the one-cluster steps of
:mod:`glmmteach.integration`) convert once, to ``y = successes / trials`` and ``weights = trials``.

**One clipping convention.** The mean-scale functions are R's: for the binomial links
:math:`\mu` is kept in :math:`[\epsilon, 1-\epsilon]` (beyond :math:`|\eta| = 30` for the logit), and the
log link's mean is at least :math:`\epsilon`, so that GLM fits, fitted values and predictions are
R's to the last digit. The linear-predictor-scale functions are computed from :math:`\eta` directly
(:math:`\log(1 + e^\eta)`, :math:`\log\Phi(\eta)`, ...), not from a clipped :math:`\mu`, so a GLMM's
log-likelihood is exact where the integrand of a cluster with a large random-effect SD reaches
:math:`|\eta| = 40` or more; there :math:`\eta` is only bounded (:attr:`Link.eta_bounds`) so that
:math:`e^\eta` stays finite.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from functools import partial

import numpy as np
from scipy import special

from .exceptions import FamilyError

_EPS = np.finfo(float).eps
# R's binomial links clamp eta so that mu stays strictly inside (0, 1).
_PROBIT_BOUND = -special.ndtri(_EPS)  # -scipy.stats.norm.ppf(eps), about 8.125
_LOGIT_BOUND = 30.0
_ETA_MAX_LOG = 700.0  # exp(700) is finite; beyond it overflow
LOG_2PI = float(np.log(2.0 * np.pi))


@dataclass(frozen=True)
class Link:
    r"""A link function :math:`\eta = g(\mu)` with its inverse and derivative.

    ``eta_bounds`` is the range to which :math:`\eta` is clipped before the log-likelihood is
    evaluated on the linear-predictor scale: wide enough never to matter at an optimum, narrow
    enough that trial points far from it give large but finite values (:math:`e^{300} \approx 10^{130}`).
    """

    name: str
    linkfun: Callable[[np.ndarray], np.ndarray]
    linkinv: Callable[[np.ndarray], np.ndarray]
    mu_eta: Callable[[np.ndarray], np.ndarray]
    eta_bounds: tuple[float, float] = (-np.inf, np.inf)


def _logit_inv(eta: np.ndarray) -> np.ndarray:
    # As R's binomial()$linkinv: beyond |eta| = 30 the probability is pinned at eps or 1 - eps,
    # which is what makes "fitted probabilities numerically 0 or 1" detectable.
    eta = np.asarray(eta, dtype=float)
    return np.where(eta < -_LOGIT_BOUND, _EPS, np.where(eta > _LOGIT_BOUND, 1 / (1 + _EPS), special.expit(eta)))


def _logit_mu_eta(eta: np.ndarray) -> np.ndarray:
    # d expit / d eta = mu (1 - mu), computed without cancellation; eps beyond |eta| = 30 (as R)
    eta = np.asarray(eta, dtype=float)
    e = np.exp(-np.abs(eta))
    return np.where(np.abs(eta) > _LOGIT_BOUND, _EPS, e / (1.0 + e) ** 2)


def _probit_inv(eta: np.ndarray) -> np.ndarray:
    return special.ndtr(np.clip(eta, -_PROBIT_BOUND, _PROBIT_BOUND))


def _probit_mu_eta(eta: np.ndarray) -> np.ndarray:
    return np.maximum(np.exp(-0.5 * eta**2) / np.sqrt(2 * np.pi), _EPS)


def _cloglog_inv(eta: np.ndarray) -> np.ndarray:
    mu = -np.expm1(-np.exp(np.minimum(eta, _ETA_MAX_LOG)))
    return np.clip(mu, _EPS, 1 - _EPS)


def _cloglog_mu_eta(eta: np.ndarray) -> np.ndarray:
    eta = np.minimum(eta, _ETA_MAX_LOG)
    return np.maximum(np.exp(eta - np.exp(eta)), _EPS)


def _log_inv(eta: np.ndarray) -> np.ndarray:
    return np.maximum(np.exp(np.minimum(eta, _ETA_MAX_LOG)), _EPS)


def _sqrt_inv(eta: np.ndarray) -> np.ndarray:
    return np.asarray(eta, dtype=float) ** 2


def _sqrt_mu_eta(eta: np.ndarray) -> np.ndarray:
    return 2.0 * np.asarray(eta, dtype=float)


LINKS: dict[str, Link] = {
    "logit": Link("logit", special.logit, _logit_inv, _logit_mu_eta, (-500.0, 500.0)),
    "probit": Link("probit", special.ndtri, _probit_inv, _probit_mu_eta, (-38.0, 38.0)),
    "cloglog": Link("cloglog", lambda mu: np.log(-np.log1p(-mu)), _cloglog_inv, _cloglog_mu_eta, (-40.0, 30.0)),
    "log": Link("log", np.log, _log_inv, _log_inv, (-300.0, 300.0)),
    "identity": Link("identity", lambda mu: mu, lambda eta: eta, np.ones_like),
    "sqrt": Link("sqrt", np.sqrt, _sqrt_inv, _sqrt_mu_eta),
    "inverse": Link("inverse", lambda mu: 1.0 / mu, lambda eta: 1.0 / eta, lambda eta: -1.0 / eta**2),
    "1/mu^2": Link("1/mu^2", lambda mu: 1.0 / mu**2, lambda eta: 1.0 / np.sqrt(eta),
                   lambda eta: -1.0 / (2.0 * eta**1.5)),
}
# R's families of positive continuous responses (glm only): their R names, and a scale estimated as R does
GAMMA, INVERSE_GAUSSIAN = "gamma", "inverse_gaussian"
_R_NAMES = {GAMMA: "Gamma", INVERSE_GAUSSIAN: "inverse.gaussian"}


# --------------------------------------------------------------------------------------------
# The log-likelihood on the linear-predictor scale, per unit weight
# --------------------------------------------------------------------------------------------


@dataclass
class EtaValues:
    r"""Per-observation quantities at a linear predictor :math:`\eta` (see :meth:`Family.eta_values`).

    ``loglik`` is :math:`\log f(y \mid \eta)` without its data-only constant, ``score`` is
    :math:`\partial \ell/\partial\eta`, ``neg_hessian`` is :math:`-\partial^2\ell/\partial\eta^2`
    (observed information), ``fisher`` is the expected information
    :math:`w\,\mu'(\eta)^2/V(\mu)` (identical to ``neg_hessian`` for canonical links) and
    ``fisher_deriv`` its derivative in :math:`\eta` (filled only when asked for). ``mu`` is the mean
    (canonical links only), kept so that ``fisher_deriv`` costs no new exponentials.
    """

    loglik: np.ndarray
    score: np.ndarray
    neg_hessian: np.ndarray
    fisher: np.ndarray
    fisher_deriv: np.ndarray | None = None
    mu: np.ndarray | None = None


def _poisson_log_loglik(eta: np.ndarray, y: np.ndarray) -> np.ndarray:
    return y * eta - np.exp(eta)


def _poisson_log_values(eta: np.ndarray, y: np.ndarray, deriv: bool) -> EtaValues:
    mu = np.exp(eta)
    return EtaValues(y * eta - mu, y - mu, mu, mu, mu if deriv else None, mu)


def _logit_loglik(eta: np.ndarray, y: np.ndarray) -> np.ndarray:
    # y eta - log(1 + exp(eta)); scipy's log_expit is stable for every eta (log(1 - mu) = log_expit(-eta)) and
    # gave the same bits as max(eta, 0) + log1p(exp(-|eta|)) on 4e6 values up to |eta| = 1e3, in one call for four
    loglik = y * eta
    loglik += special.log_expit(-eta)
    return loglik


def _logit_values(eta: np.ndarray, y: np.ndarray, deriv: bool) -> EtaValues:
    # scipy's expit is stable for every eta: one call where exp-based formulas take five (on small data the number
    # of calls is the cost of a pass)
    mu = special.expit(eta)
    loglik = _logit_loglik(eta, y)
    fisher = 1.0 - mu
    fisher *= mu
    return EtaValues(loglik, y - mu, fisher, fisher, fisher * (1.0 - 2.0 * mu) if deriv else None, mu)


def _probit_loglik(eta: np.ndarray, y: np.ndarray) -> np.ndarray:
    return y * special.log_ndtr(eta) + (1.0 - y) * special.log_ndtr(-eta)


def _probit_values(eta: np.ndarray, y: np.ndarray, deriv: bool) -> EtaValues:
    log_p = special.log_ndtr(eta)
    log_q = special.log_ndtr(-eta)
    log_phi = -0.5 * eta * eta - 0.5 * LOG_2PI
    r1 = np.exp(log_phi - log_p)  # phi/Phi
    r0 = np.exp(log_phi - log_q)  # phi/(1-Phi)
    loglik = y * log_p + (1.0 - y) * log_q
    score = y * r1 - (1.0 - y) * r0
    neg_h = y * r1 * (eta + r1) + (1.0 - y) * r0 * (r0 - eta)
    fisher = r1 * r0
    return EtaValues(loglik, score, neg_h, fisher, fisher * (r0 - r1 - 2.0 * eta) if deriv else None)


def _cloglog_loglik(eta: np.ndarray, y: np.ndarray) -> np.ndarray:
    t = np.exp(eta)
    return y * np.log(-np.expm1(-t)) - (1.0 - y) * t


def _cloglog_values(eta: np.ndarray, y: np.ndarray, deriv: bool) -> EtaValues:
    t = np.exp(eta)
    with np.errstate(over="ignore"):
        odds_fail = 1.0 / np.expm1(t)  # (1 - mu) / mu
    loglik = y * np.log(-np.expm1(-t)) - (1.0 - y) * t
    ta = t * odds_fail
    score = y * ta - (1.0 - y) * t
    neg_h = y * ta * (t * (1.0 + odds_fail) - 1.0) + (1.0 - y) * t
    fisher = ta * t
    return EtaValues(loglik, score, neg_h, fisher, fisher * (2.0 - t * (1.0 + odds_fail)) if deriv else None)


def _nb_log_loglik(eta: np.ndarray, y: np.ndarray, theta: float) -> np.ndarray:
    # y eta + theta log theta - (y + theta) log(theta + e^eta), written with t = eta - log theta
    # so that it stays exact for large theta (the Poisson limit) and large eta
    t = eta - np.log(theta)
    return y * t - (y + theta) * np.logaddexp(0.0, t)


def _nb_log_values(eta: np.ndarray, y: np.ndarray, deriv: bool, theta: float) -> EtaValues:
    # NB2 with the log link (not canonical): with p = mu / (mu + theta),
    # score = theta (y - mu) / (mu + theta) = y - (y + theta) p, observed information
    # (y + theta) p (1 - p), expected information theta p, its derivative theta p (1 - p).
    t = eta - np.log(theta)
    p = special.expit(t)
    q = special.expit(-t)
    loglik = y * t - (y + theta) * np.logaddexp(0.0, t)
    fisher = theta * p
    return EtaValues(loglik, y - (y + theta) * p, (y + theta) * p * q, fisher,
                     fisher * q if deriv else None)


# (family, link) -> (log-likelihood, all values): the combinations with a likelihood in eta
_ETA_FUNCTIONS = {
    ("poisson", "log"): (_poisson_log_loglik, _poisson_log_values),
    ("binomial", "logit"): (_logit_loglik, _logit_values),
    ("binomial", "probit"): (_probit_loglik, _probit_values),
    ("binomial", "cloglog"): (_cloglog_loglik, _cloglog_values),
    ("negative_binomial", "log"): (_nb_log_loglik, _nb_log_values),  # bound to the family's theta
}
GLMM_LINKS: dict[str, tuple[str, ...]] = {"binomial": ("logit", "probit", "cloglog"), "poisson": ("log",),
                                          "negative_binomial": ("log",)}
NEGATIVE_BINOMIAL = "negative_binomial"


def _nb_lgamma_ratio(y: np.ndarray, theta: float) -> np.ndarray:
    r""":math:`\log\Gamma(y+\theta) - \log\Gamma(\theta)`, accurate also for large :math:`\theta`
    (as :math:`\log\Gamma(y) - \log B(\theta, y)`; 0 for :math:`y = 0`)."""
    y = np.asarray(y, dtype=float)
    positive = y > 0
    safe = np.where(positive, y, 1.0)
    return np.where(positive, special.gammaln(safe) - special.betaln(theta, safe), 0.0)


# --------------------------------------------------------------------------------------------
# The family
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Family:
    r"""An exponential family with its link (R's ``family()`` object).

    Attributes
    ----------
    name:
        ``"binomial"``, ``"poisson"``, ``"negative_binomial"``, ``"gaussian"``, ``"quasibinomial"``,
        ``"quasipoisson"``, ``"gamma"`` (R's ``Gamma``) or ``"inverse_gaussian"`` (R's ``inverse.gaussian``; glm
        only).
    link:
        The :class:`Link`.
    estimate_scale:
        Whether the dispersion :math:`\phi` is estimated (gaussian, Gamma, inverse Gaussian and quasi families) or fixed
        at 1 (binomial, Poisson, negative binomial).
    theta:
        The negative binomial shape :math:`\theta` (NB2: :math:`V(\mu) = \mu + \mu^2/\theta`, R's
        ``negative.binomial(theta)``); ``None`` for the other families, and for a negative binomial
        family whose :math:`\theta` is still to be estimated (``glm``/``glmer`` then estimate it, as
        MASS's ``glm.nb`` and lme4's ``glmer.nb``).

    ``y`` and ``weights`` follow R's convention (see the module docstring): the binomial ``y`` is a
    proportion and its weights are the numbers of trials.
    """

    name: str
    link: Link
    estimate_scale: bool
    theta: float | None = None

    # ---- mean scale (R's family functions) ---------------------------------------------------
    @property
    def base(self) -> str:
        """The distribution behind the family: quasi families share their parent's variance."""
        return self.name.removeprefix("quasi")

    @property
    def is_binomial(self) -> bool:
        return self.base == "binomial"

    @property
    def canonical(self) -> bool:
        r"""True for the canonical link (logit, log, identity): observed and expected information agree.
        The negative binomial's log link is not its canonical link (that would be
        :math:`\log(\mu/(\mu+\theta))`)."""
        return self.name != NEGATIVE_BINOMIAL and self.link.name == FAMILY_LINKS[self.name][0]

    @property
    def is_negative_binomial(self) -> bool:
        return self.name == NEGATIVE_BINOMIAL

    @property
    def label(self) -> str:
        """The family's name as R prints it: ``Negative Binomial(17.8092)`` (MASS), else the name."""
        if self.is_negative_binomial and self.theta is not None:
            return f"Negative Binomial({_r_format7(round(self.theta, 4))})"
        return _R_NAMES.get(self.name, self.name)

    @property
    def positive_continuous(self) -> bool:
        r"""Gamma and inverse Gaussian: a positive response, its variance :math:`\phi\mu^2` or :math:`\phi\mu^3`."""
        return self.name in _R_NAMES

    def with_theta(self, theta: float) -> Family:
        """This negative binomial family with shape ``theta`` (R's ``negative.binomial(theta)``)."""
        if not self.is_negative_binomial:
            raise FamilyError(f"theta (the negative binomial shape) does not apply to the {self.name} family")
        return replace(self, theta=_check_theta(theta))

    def _require_theta(self) -> float:
        if self.theta is None:
            raise FamilyError("the negative binomial shape theta is not known yet: glm() and glmer() estimate it, "
                              "or give it with theta=")
        return self.theta

    def linkfun(self, mu: np.ndarray) -> np.ndarray:
        r""":math:`\eta = g(\mu)`."""
        return self.link.linkfun(mu)

    def linkinv(self, eta: np.ndarray) -> np.ndarray:
        r""":math:`\mu = g^{-1}(\eta)`, clamped as R clamps it (a probability for the binomial family)."""
        return self.link.linkinv(eta)

    def mu_eta(self, eta: np.ndarray) -> np.ndarray:
        r""":math:`d\mu/d\eta`."""
        return self.link.mu_eta(eta)

    def variance(self, mu: np.ndarray) -> np.ndarray:
        r"""Variance function :math:`V(\mu)`: :math:`\mu(1-\mu)`, :math:`\mu` or 1."""
        if self.base == "binomial":
            return mu * (1 - mu)
        if self.base == "poisson":
            return mu
        if self.is_negative_binomial:
            return mu + mu**2 / self._require_theta()
        if self.name == GAMMA:
            return mu**2
        if self.name == INVERSE_GAUSSIAN:
            return mu**3
        return np.ones_like(mu)

    def starting_mu(self, y: np.ndarray, n: np.ndarray) -> np.ndarray:
        """R's ``mustart``: a first mean that is valid for the link."""
        if self.base == "binomial":
            return (n * y + 0.5) / (n + 1)
        if self.base == "poisson":
            return y + 0.1
        if self.is_negative_binomial:  # MASS's negative.binomial()$initialize
            return y + (y == 0) / 6.0
        return y.astype(float)

    def starting_eta(self, y: np.ndarray, weights: np.ndarray | None = None) -> np.ndarray:
        """R's starting linear predictor, :math:`g` of :meth:`starting_mu`."""
        n = np.ones_like(y, dtype=float) if weights is None else weights
        return self.link.linkfun(self.starting_mu(y, n))

    def deviance_residuals(self, y: np.ndarray, mu: np.ndarray, weights: np.ndarray) -> np.ndarray:
        r"""Unit deviances :math:`d_i` with :math:`D = \sum_i d_i` (weights include trials).

        Binomial: :math:`2 w_i [y_i \log(y_i/\mu_i) + (1-y_i)\log((1-y_i)/(1-\mu_i))]`;
        Poisson: :math:`2 w_i [y_i \log(y_i/\mu_i) - (y_i - \mu_i)]`; Gaussian: :math:`w_i (y_i-\mu_i)^2`.
        """
        if self.base == "binomial":
            return 2 * weights * (special.xlogy(y, y / mu) + special.xlogy(1 - y, (1 - y) / (1 - mu)))
        if self.base == "poisson":
            return 2 * weights * (special.xlogy(y, y / mu) - (y - mu))
        if self.is_negative_binomial:  # MASS: 2 w [y log(y/mu) - (y + theta) log((y + theta)/(mu + theta))]
            theta = self._require_theta()
            return 2 * weights * (special.xlogy(y, y / mu) - (y + theta) * np.log1p((y - mu) / (mu + theta)))
        if self.name == GAMMA:  # R's Gamma()$dev.resids: -2 w [log(y/mu) - (y - mu)/mu]
            return -2 * weights * (np.log(np.where(y == 0, 1.0, y / mu)) - (y - mu) / mu)
        if self.name == INVERSE_GAUSSIAN:  # R's inverse.gaussian()$dev.resids: w (y - mu)^2 / (y mu^2)
            return weights * (y - mu) ** 2 / (y * mu**2)
        return weights * (y - mu) ** 2

    def _require_likelihood(self) -> None:
        if self.name.startswith("quasi"):
            raise FamilyError(
                f"the {self.name} family has no likelihood (and so no logLik or AIC); "
                "fit the binomial or poisson family for likelihood-based comparisons"
            )

    def loglik(self, y: np.ndarray, mu: np.ndarray, weights: np.ndarray, scale: float = 1.0) -> np.ndarray:
        r"""Log-density of each observation at mean :math:`\mu`, with every constant.

        Binomial (``y`` a proportion of ``weights`` trials):
        :math:`\log\binom{n}{ny} + ny\log\mu + n(1-y)\log(1-\mu)`;
        Poisson: :math:`y\log\mu - \mu - \log y!`; negative binomial (NB2, MASS's ``glm.nb``):
        :math:`\log\Gamma(y+\theta) - \log\Gamma(\theta) - \log y! + \theta\log\frac{\theta}{\theta+\mu}
        + y\log\frac{\mu}{\theta+\mu}`, times the weight; Gaussian with variance :math:`\phi/w`.
        Quasi families have no likelihood: asking for one is an error.
        """
        self._require_likelihood()
        from scipy import stats  # imported when used: scipy.stats is the slowest import of the package

        if self.base == "binomial":
            successes = np.round(weights * y)
            return stats.binom.logpmf(successes, np.round(weights), mu)
        if self.base == "poisson":
            return special.xlogy(y, mu) - mu - special.gammaln(y + 1)
        if self.is_negative_binomial:
            theta = self._require_theta()
            value = (_nb_lgamma_ratio(y, theta) - special.gammaln(y + 1) - theta * np.log1p(mu / theta)
                     - special.xlogy(y, 1.0 + theta / mu))
            return weights * value
        if self.name == GAMMA:  # R's Gamma()$aic: w dgamma(y, 1/phi, scale = mu phi)
            return weights * stats.gamma.logpdf(y, 1.0 / scale, scale=mu * scale)
        if self.name == INVERSE_GAUSSIAN:  # R's inverse.gaussian()$aic, per row
            return weights * (-0.5 * np.log(2 * np.pi * scale * y**3) - (y - mu) ** 2 / (2 * scale * mu**2 * y))
        return stats.norm.logpdf(y, mu, np.sqrt(scale / weights))

    # ---- linear-predictor scale (the GLMM's integrands) ---------------------------------------
    @property
    def has_eta_likelihood(self) -> bool:
        """Whether the log-likelihood in :math:`\\eta` is available (binomial logit/probit/cloglog, Poisson log)."""
        return (self.name, self.link.name) in _ETA_FUNCTIONS

    def _eta_functions(self) -> tuple[Callable, Callable]:
        try:
            functions = _ETA_FUNCTIONS[(self.name, self.link.name)]
        except KeyError:
            raise FamilyError(glmm_family_message(self.name, self.link.name)) from None
        if self.is_negative_binomial:
            theta = self._require_theta()
            return partial(functions[0], theta=theta), partial(functions[1], theta=theta)
        return functions

    def _clip(self, eta: np.ndarray) -> np.ndarray:
        low, high = self.link.eta_bounds
        if eta.size and low <= eta.min() and eta.max() <= high:  # nearly always: no copy (read-only below)
            return eta
        return np.clip(eta, low, high)

    def log_constant(self, y: np.ndarray, weights: np.ndarray | None = None) -> np.ndarray:
        r"""Data-only part of the log-likelihood: :math:`\log\binom{n}{ny}` (binomial),
        :math:`-w\log y!` (Poisson) or :math:`w[\log\Gamma(y+\theta) - \log\Gamma(\theta) - \log y!]`
        (negative binomial at its :math:`\theta`), so that :meth:`loglik_eta` plus it is the log-density."""
        self._require_likelihood()
        y = np.asarray(y, dtype=float)
        if self.is_negative_binomial:
            constant = _nb_lgamma_ratio(y, self._require_theta()) - special.gammaln(y + 1.0)
            return constant if weights is None else weights * constant
        if self.base == "poisson":
            constant = -special.gammaln(y + 1.0)
            return constant if weights is None else weights * constant
        if self.base != "binomial":
            raise FamilyError(glmm_family_message(self.name, self.link.name))
        if weights is None:
            return np.zeros_like(y)
        n = np.round(weights)
        successes = np.round(weights * y)
        return special.gammaln(n + 1.0) - special.gammaln(successes + 1.0) - special.gammaln(n - successes + 1.0)

    def loglik_eta(self, eta: np.ndarray, y: np.ndarray, weights: np.ndarray | None = None) -> np.ndarray:
        r"""Log-likelihood of each observation as a function of :math:`\eta`, without the constant
        (the cheap path: no derivatives).

        =========  ==========================================================================
        link       :math:`\ell(\eta) / w` without constant
        =========  ==========================================================================
        log        :math:`y\eta - e^\eta` (Poisson)
        log        :math:`y(\eta - \log\theta) - (y+\theta)\log(1 + e^{\eta}/\theta)` (negative binomial)
        logit      :math:`y\eta - \log(1 + e^\eta)`
        probit     :math:`y\log\Phi(\eta) + (1-y)\log\Phi(-\eta)`
        cloglog    :math:`y\log(1 - e^{-e^\eta}) - (1-y)e^\eta`
        =========  ==========================================================================
        """
        loglik = self._eta_functions()[0](self._clip(eta), y)
        return loglik if weights is None else weights * loglik

    def eta_values(
        self, eta: np.ndarray, y: np.ndarray, weights: np.ndarray | None = None, with_fisher_deriv: bool = False
    ) -> EtaValues:
        """Log-likelihood, score, observed and expected information at ``eta`` (one pass)."""
        values = self._eta_functions()[1](self._clip(eta), y, with_fisher_deriv)
        if weights is not None:
            values.loglik = weights * values.loglik
            values.score = weights * values.score
            values.fisher = weights * values.fisher
            values.neg_hessian = values.fisher if self.canonical else weights * values.neg_hessian
            if values.fisher_deriv is not None:
                values.fisher_deriv = weights * values.fisher_deriv
        return values

    def fisher_deriv(
        self, eta: np.ndarray, y: np.ndarray, weights: np.ndarray | None = None, values: EtaValues | None = None
    ) -> np.ndarray:
        r""":math:`\partial w/\partial\eta` of the expected-information weight :math:`w`
        (from ``values`` at the same ``eta`` when they carry the mean: no new exponentials)."""
        if values is not None and values.mu is not None:
            if self.link.name == "log":
                return values.fisher
            return values.fisher * (1.0 - 2.0 * values.mu)
        values = self.eta_values(eta, y, weights, with_fisher_deriv=True)
        assert values.fisher_deriv is not None
        return values.fisher_deriv

    @property
    def has_fisher_second_deriv(self) -> bool:
        r"""Whether :meth:`fisher_second_deriv` is available: the canonical links with a likelihood in
        :math:`\eta` (binomial logit, Poisson log), where the log-likelihood's third and fourth derivatives
        are minus the expected-information weight's first and second."""
        return self.canonical and self.has_eta_likelihood

    def fisher_second_deriv(self, values: EtaValues) -> np.ndarray:
        r""":math:`\partial^2 w/\partial\eta^2` of the expected-information weight, from ``values`` (with the
        mean) at the same :math:`\eta`: :math:`w` for the log link (:math:`w = \mu`), and
        :math:`w(1 - 6\mu(1-\mu))` for the logit (:math:`w = \mu(1-\mu)` per trial)."""
        if not self.has_fisher_second_deriv or values.mu is None:
            raise FamilyError(f"the second derivative of the weights is not available for the {self.name} "
                              f"family with the {self.link.name} link")
        if self.link.name == "log":
            return values.fisher
        return values.fisher * (1.0 - 6.0 * values.mu * (1.0 - values.mu))


FAMILY_LINKS: dict[str, tuple[str, ...]] = {
    # the first link listed is the canonical (default) one
    "binomial": ("logit", "probit", "cloglog", "log"),
    "quasibinomial": ("logit", "probit", "cloglog", "log"),
    "poisson": ("log", "identity"),
    "quasipoisson": ("log", "identity"),
    "gaussian": ("identity", "log"),
    NEGATIVE_BINOMIAL: ("log", "sqrt", "identity"),  # MASS's negative.binomial links
    GAMMA: ("inverse", "identity", "log"),
    INVERSE_GAUSSIAN: ("1/mu^2", "inverse", "identity", "log"),
}


def _r_format7(value: float) -> str:
    from .rformat import format_r  # local: rformat is display code

    return format_r([value], 7)[0]


def _check_theta(theta: object) -> float:
    try:
        value = float(theta)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise FamilyError(f"theta (the negative binomial shape) must be a positive number, got {theta!r}") from None
    if not np.isfinite(value) or value <= 0:
        raise FamilyError(f"theta (the negative binomial shape) must be a positive finite number, got {theta!r}")
    return value


def get_family(family: str | Family, link: str | None = None, theta: float | None = None) -> Family:
    """Return the :class:`Family` called ``family`` with ``link`` (default: the canonical link).

    ``theta`` is the negative binomial shape (``family="negative_binomial"`` only; omitted, it is
    estimated by the fit). Raises :class:`~glmmteach.exceptions.FamilyError` naming the unknown
    family, link or a misplaced ``theta``.
    """
    if isinstance(family, Family):
        if link is None or link == family.link.name:
            return family if theta is None else family.with_theta(theta)
        theta = family.theta if theta is None else theta
        family = family.name
    if not isinstance(family, str):
        raise FamilyError(f"family must be a name such as 'binomial', got {family!r}")
    name = family.lower()
    if name in ("negative.binomial", "negbin", "nb", "negative binomial"):
        name = NEGATIVE_BINOMIAL
    if name in ("inverse.gaussian", "inverse gaussian", "inversegaussian"):
        name = INVERSE_GAUSSIAN
    if name not in FAMILY_LINKS:
        raise FamilyError(f"unknown family {family!r}; choose one of {', '.join(sorted(FAMILY_LINKS))}")
    allowed = FAMILY_LINKS[name]
    link_name = allowed[0] if link is None else str(link).lower()
    if link_name not in allowed:
        raise FamilyError(f"link {link!r} is not available for the {name} family; choose one of {', '.join(allowed)}")
    if theta is not None and name != NEGATIVE_BINOMIAL:
        raise FamilyError(f"theta= (the negative binomial shape) does not apply to the {name} family")
    return Family(name, LINKS[link_name], estimate_scale=name.startswith("quasi") or name in ("gaussian", *_R_NAMES),
                  theta=None if theta is None else _check_theta(theta))


def glmm_family_message(name: str, link: str) -> str:
    """Why (family, link) has no GLMM likelihood, and what does."""
    if name not in GLMM_LINKS:
        return (f"family {name!r} is not available for GLMMs; glmer fits the binomial family (links "
                f"{', '.join(GLMM_LINKS['binomial'])}), the poisson family and the negative_binomial family "
                "(link log)")
    return (f"link {link!r} is not available for the {name} family in a GLMM; choose one of "
            f"{', '.join(GLMM_LINKS[name])}")


def get_glmm_family(family: str | Family, link: str | None = None, theta: float | None = None) -> Family:
    """:func:`get_family` for a GLMM: also refuses, with a :class:`~glmmteach.exceptions.FamilyError`
    naming the option, a family or link without a likelihood in :math:`\\eta` (e.g. ``binomial`` with
    ``link="log"``, ``gaussian``, the quasi families)."""
    fam = get_family(family, link, theta)
    if not fam.has_eta_likelihood:
        raise FamilyError(glmm_family_message(fam.name, fam.link.name))
    return fam
