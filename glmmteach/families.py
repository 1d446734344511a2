r"""Exponential families and link functions.

A generalized linear model says that, given covariates, :math:`y_i` has a distribution from an
exponential family with mean :math:`\mu_i` and variance :math:`\phi\, V(\mu_i) / w_i`, and that a
link function :math:`g` maps the mean to the linear predictor,

.. math:: g(\mu_i) = \eta_i = x_i^\top \beta + o_i ,

with :math:`o_i` a known offset. Fisher scoring needs only four functions of the family and link:
:math:`g`, its inverse :math:`g^{-1}`, the derivative :math:`d\mu/d\eta` and the variance function
:math:`V(\mu)`. The log-likelihood and deviance need the density itself.

Binomial outcomes are handled as R does: ``y`` is the *proportion* of successes out of ``n`` trials
(``n = 1`` for binary data) and ``n`` enters as a prior weight.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import special, stats

from .exceptions import FamilyError

_EPS = np.finfo(float).eps
# R's binomial links clamp eta so that mu stays strictly inside (0, 1).
_PROBIT_BOUND = -stats.norm.ppf(_EPS)  # about 8.125
_LOGIT_BOUND = 30.0
_ETA_MAX_LOG = 700.0  # exp(700) is finite; beyond it overflow


@dataclass(frozen=True)
class Link:
    r"""A link function :math:`\eta = g(\mu)` with its inverse and derivative."""

    name: str
    linkfun: Callable[[np.ndarray], np.ndarray]
    linkinv: Callable[[np.ndarray], np.ndarray]
    mu_eta: Callable[[np.ndarray], np.ndarray]


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
    "logit": Link("logit", special.logit, _logit_inv, _logit_mu_eta),
    "probit": Link("probit", special.ndtri, _probit_inv, _probit_mu_eta),
    "cloglog": Link("cloglog", lambda mu: np.log(-np.log1p(-mu)), _cloglog_inv, _cloglog_mu_eta),
    "log": Link("log", np.log, _log_inv, _log_inv),
    "identity": Link("identity", lambda mu: mu, lambda eta: eta, np.ones_like),
}


@dataclass(frozen=True)
class Family:
    r"""An exponential family with its link.

    Attributes
    ----------
    name:
        ``"binomial"``, ``"poisson"``, ``"gaussian"``, ``"quasibinomial"`` or ``"quasipoisson"``.
    link:
        The :class:`Link`.
    estimate_scale:
        Whether the dispersion :math:`\phi` is estimated (gaussian and quasi families) or fixed
        at 1 (binomial, Poisson).
    """

    name: str
    link: Link
    estimate_scale: bool

    @property
    def base(self) -> str:
        """The distribution behind the family: quasi families share their parent's variance."""
        return self.name.removeprefix("quasi")

    @property
    def is_binomial(self) -> bool:
        return self.base == "binomial"

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

    def loglik(self, y: np.ndarray, mu: np.ndarray, weights: np.ndarray, scale: float = 1.0) -> np.ndarray:
        r"""Log-density of each observation, with every constant.

        Binomial (``y`` a proportion of ``weights`` trials):
        :math:`\log\binom{n}{ny} + ny\log\mu + n(1-y)\log(1-\mu)`;
        Poisson: :math:`y\log\mu - \mu - \log y!`; Gaussian with variance :math:`\phi/w`.
        Quasi families have no likelihood: asking for one is an error.
        """
        if self.name.startswith("quasi"):
            raise FamilyError(
                f"the {self.name} family has no likelihood (and so no logLik or AIC); "
                "fit the binomial or poisson family for likelihood-based comparisons"
            )
        if self.base == "binomial":
            successes = np.round(weights * y)
            return stats.binom.logpmf(successes, np.round(weights), mu)
        if self.base == "poisson":
            return special.xlogy(y, mu) - mu - special.gammaln(y + 1)
        return stats.norm.logpdf(y, mu, np.sqrt(scale / weights))


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


# --------------------------------------------------------------------------------------------
# GLMM likelihood kernels: log-likelihood and its derivatives with respect to the linear predictor
# --------------------------------------------------------------------------------------------

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
_ALLOWED_LINKS = {"poisson": ("log",), "binomial": ("logit", "probit", "cloglog")}


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
