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
from dataclasses import dataclass

import numpy as np
from scipy import special, stats

from .exceptions import FamilyError

_EPS = np.finfo(float).eps
# R's binomial links clamp eta so that mu stays strictly inside (0, 1).
_PROBIT_BOUND = -stats.norm.ppf(_EPS)  # about 8.125
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


LINKS: dict[str, Link] = {
    "logit": Link("logit", special.logit, _logit_inv, _logit_mu_eta, (-500.0, 500.0)),
    "probit": Link("probit", special.ndtri, _probit_inv, _probit_mu_eta, (-38.0, 38.0)),
    "cloglog": Link("cloglog", lambda mu: np.log(-np.log1p(-mu)), _cloglog_inv, _cloglog_mu_eta, (-40.0, 30.0)),
    "log": Link("log", np.log, _log_inv, _log_inv, (-300.0, 300.0)),
    "identity": Link("identity", lambda mu: mu, lambda eta: eta, np.ones_like),
}


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
    return y * eta - (np.maximum(eta, 0.0) + np.log1p(np.exp(-np.abs(eta))))


def _logit_values(eta: np.ndarray, y: np.ndarray, deriv: bool) -> EtaValues:
    # One exp and one log1p: e = exp(-|eta|) gives both mu and log(1 + exp(eta)) stably.
    e = np.exp(-np.abs(eta))
    inv = 1.0 / (1.0 + e)
    mu = np.where(eta >= 0, inv, e * inv)
    fisher = mu * (1.0 - mu)
    loglik = y * eta - (np.maximum(eta, 0.0) + np.log1p(e))
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


# (family, link) -> (log-likelihood, all values): the combinations with a likelihood in eta
_ETA_FUNCTIONS = {
    ("poisson", "log"): (_poisson_log_loglik, _poisson_log_values),
    ("binomial", "logit"): (_logit_loglik, _logit_values),
    ("binomial", "probit"): (_probit_loglik, _probit_values),
    ("binomial", "cloglog"): (_cloglog_loglik, _cloglog_values),
}
GLMM_LINKS: dict[str, tuple[str, ...]] = {"binomial": ("logit", "probit", "cloglog"), "poisson": ("log",)}


# --------------------------------------------------------------------------------------------
# The family
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Family:
    r"""An exponential family with its link (R's ``family()`` object).

    Attributes
    ----------
    name:
        ``"binomial"``, ``"poisson"``, ``"gaussian"``, ``"quasibinomial"`` or ``"quasipoisson"``.
    link:
        The :class:`Link`.
    estimate_scale:
        Whether the dispersion :math:`\phi` is estimated (gaussian and quasi families) or fixed
        at 1 (binomial, Poisson).

    ``y`` and ``weights`` follow R's convention (see the module docstring): the binomial ``y`` is a
    proportion and its weights are the numbers of trials.
    """

    name: str
    link: Link
    estimate_scale: bool

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
        """True for the canonical link (logit, log, identity): observed and expected information agree."""
        return self.link.name == FAMILY_LINKS[self.name][0]

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
        return np.ones_like(mu)

    def starting_mu(self, y: np.ndarray, n: np.ndarray) -> np.ndarray:
        """R's ``mustart``: a first mean that is valid for the link."""
        if self.base == "binomial":
            return (n * y + 0.5) / (n + 1)
        if self.base == "poisson":
            return y + 0.1
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
        Poisson: :math:`y\log\mu - \mu - \log y!`; Gaussian with variance :math:`\phi/w`.
        Quasi families have no likelihood: asking for one is an error.
        """
        self._require_likelihood()
        if self.base == "binomial":
            successes = np.round(weights * y)
            return stats.binom.logpmf(successes, np.round(weights), mu)
        if self.base == "poisson":
            return special.xlogy(y, mu) - mu - special.gammaln(y + 1)
        return stats.norm.logpdf(y, mu, np.sqrt(scale / weights))

    # ---- linear-predictor scale (the GLMM's integrands) ---------------------------------------
    @property
    def has_eta_likelihood(self) -> bool:
        """Whether the log-likelihood in :math:`\\eta` is available (binomial logit/probit/cloglog, Poisson log)."""
        return (self.name, self.link.name) in _ETA_FUNCTIONS

    def _eta_functions(self) -> tuple[Callable, Callable]:
        try:
            return _ETA_FUNCTIONS[(self.name, self.link.name)]
        except KeyError:
            raise FamilyError(glmm_family_message(self.name, self.link.name)) from None

    def _clip(self, eta: np.ndarray) -> np.ndarray:
        return np.clip(eta, *self.link.eta_bounds)

    def log_constant(self, y: np.ndarray, weights: np.ndarray | None = None) -> np.ndarray:
        r"""Data-only part of the log-likelihood: :math:`\log\binom{n}{ny}` (binomial) or
        :math:`-w\log y!` (Poisson), so that :meth:`loglik_eta` plus it is the log-density."""
        self._require_likelihood()
        y = np.asarray(y, dtype=float)
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
        log        :math:`y\eta - e^\eta`
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


FAMILY_LINKS: dict[str, tuple[str, ...]] = {
    # the first link listed is the canonical (default) one
    "binomial": ("logit", "probit", "cloglog", "log"),
    "quasibinomial": ("logit", "probit", "cloglog", "log"),
    "poisson": ("log", "identity"),
    "quasipoisson": ("log", "identity"),
    "gaussian": ("identity", "log"),
}


def get_family(family: str | Family, link: str | None = None) -> Family:
    """Return the :class:`Family` called ``family`` with ``link`` (default: the canonical link).

    Raises :class:`~glmmteach.exceptions.FamilyError` naming the unknown family or link.
    """
    if isinstance(family, Family):
        if link is None or link == family.link.name:
            return family
        family = family.name
    if not isinstance(family, str):
        raise FamilyError(f"family must be a name such as 'binomial', got {family!r}")
    name = family.lower()
    if name not in FAMILY_LINKS:
        raise FamilyError(f"unknown family {family!r}; choose one of {', '.join(sorted(FAMILY_LINKS))}")
    allowed = FAMILY_LINKS[name]
    link_name = allowed[0] if link is None else str(link).lower()
    if link_name not in allowed:
        raise FamilyError(f"link {link!r} is not available for the {name} family; choose one of {', '.join(allowed)}")
    return Family(name, LINKS[link_name], estimate_scale=name.startswith("quasi") or name == "gaussian")


def glmm_family_message(name: str, link: str) -> str:
    """Why (family, link) has no GLMM likelihood, and what does."""
    if name not in GLMM_LINKS:
        return (f"family {name!r} is not available for GLMMs; glmer fits the binomial family (links "
                f"{', '.join(GLMM_LINKS['binomial'])}) and the poisson family (link log)")
    return (f"link {link!r} is not available for the {name} family in a GLMM; choose one of "
            f"{', '.join(GLMM_LINKS[name])}")


def get_glmm_family(family: str | Family, link: str | None = None) -> Family:
    """:func:`get_family` for a GLMM: also refuses, with a :class:`~glmmteach.exceptions.FamilyError`
    naming the option, a family or link without a likelihood in :math:`\\eta` (e.g. ``binomial`` with
    ``link="log"``, ``gaussian``, the quasi families)."""
    fam = get_family(family, link)
    if not fam.has_eta_likelihood:
        raise FamilyError(glmm_family_message(fam.name, fam.link.name))
    return fam
