r"""The negative binomial shape :math:`\theta` by maximum likelihood (MASS's ``theta.ml``).

NB2: :math:`\operatorname{Var}(y) = \mu + \mu^2/\theta`; :math:`\theta \to \infty` is the Poisson model.
For fixed means :math:`\mu_i` the log-likelihood in :math:`\theta` is

.. math::

    \ell(\theta) = \sum_i w_i\bigl[\log\Gamma(y_i+\theta) - \log\Gamma(\theta) + \theta\log\theta
    - (y_i+\theta)\log(\theta+\mu_i)\bigr] + \text{const},

with score :math:`\sum_i w_i[\psi(y_i+\theta) - \psi(\theta) + \log\theta + 1 - \log(\theta+\mu_i)
- (y_i+\theta)/(\mu_i+\theta)]` and observed information
:math:`\sum_i w_i[\psi'(\theta) - \psi'(y_i+\theta) - 1/\theta + 2/(\mu_i+\theta) - (y_i+\theta)/(\mu_i+\theta)^2]`.
:func:`theta_ml` solves the score equation by Newton's method from MASS's moment start
:math:`n/\sum_i w_i(y_i/\mu_i - 1)^2`; its standard error is MASS's ``SE.theta``,
:math:`1/\sqrt{\text{information}}` (with :math:`\mu` held fixed).

When the data show no overdispersion the likelihood keeps rising as :math:`\theta \to \infty` (MASS
stops with "iteration limit reached" at some large value). Here :math:`\theta` is kept in
:math:`[\theta_{\min}, \theta_{\max}]` and an estimate on a bound is reported as such
(:attr:`ShapeEstimate.at_bound`), with a warning that says what it means.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
from scipy import optimize, special

from .exceptions import ConvergenceWarning

THETA_MAX = 1e6  # the Poisson limit for practical purposes: mu^2/theta is 1e-6 mu^2
THETA_MIN = 1e-6


@dataclass(frozen=True)
class ShapeEstimate:
    """The estimated negative binomial shape: ``theta``, its standard error ``se`` (NaN on a bound),
    ``at_bound`` (``"upper"``: no overdispersion, the Poisson limit, where a GLMM's ``theta`` is ``inf`` and
    its fit the Poisson GLMM; ``"lower"``; or ``None``),
    ``iterations`` of the outer alternation/optimisation and ``message`` (the warning given, if any)."""

    theta: float
    se: float
    at_bound: str | None = None
    iterations: int = 0
    message: str | None = None


def theta_loglik(theta: float, y: np.ndarray, mu: np.ndarray, w: np.ndarray) -> float:
    """The NB2 log-likelihood as a function of theta (means held fixed), without y's constant."""
    ratio = np.where(y > 0, special.gammaln(np.where(y > 0, y, 1.0)) - special.betaln(theta, np.where(y > 0, y, 1.0)),
                     0.0)
    return float(np.sum(w * (ratio - theta * np.log1p(mu / theta) - special.xlogy(y, 1.0 + theta / mu))))


def theta_score(theta: float, y: np.ndarray, mu: np.ndarray, w: np.ndarray) -> float:
    return float(np.sum(w * (special.digamma(theta + y) - special.digamma(theta) - np.log1p(mu / theta)
                             + (mu - y) / (mu + theta))))


def theta_information(theta: float, y: np.ndarray, mu: np.ndarray, w: np.ndarray) -> float:
    return float(np.sum(w * (special.polygamma(1, theta) - special.polygamma(1, theta + y) - 1.0 / theta
                             + 2.0 / (mu + theta) - (y + theta) / (mu + theta) ** 2)))


def theta_ml(y: np.ndarray, mu: np.ndarray, weights: np.ndarray | None = None, start: float | None = None,
             max_iter: int = 50, tol: float = 1e-10) -> ShapeEstimate:
    r"""Maximum-likelihood shape :math:`\theta` for counts ``y`` with means ``mu`` (MASS's ``theta.ml``).

    Newton's method on the score from ``start`` (default MASS's moment estimate), each step kept inside
    :math:`[\theta_{\min}, \theta_{\max}]` and halved until the log-likelihood does not fall. Returns a
    :class:`ShapeEstimate` (no warning is raised here: the caller words it).
    """
    y = np.asarray(y, dtype=float)
    mu = np.asarray(mu, dtype=float)
    w = np.ones_like(y) if weights is None else np.asarray(weights, dtype=float)
    if start is None:
        moment = np.sum(w) / np.sum(w * (y / mu - 1.0) ** 2)
        start = moment if np.isfinite(moment) else 1.0
    theta = float(np.clip(start, THETA_MIN, THETA_MAX))
    value = theta_loglik(theta, y, mu, w)
    iterations = 0
    while iterations < max_iter:
        iterations += 1
        score = theta_score(theta, y, mu, w)
        info = theta_information(theta, y, mu, w)
        # Newton in theta (MASS) where the likelihood is concave; otherwise a step in log theta along the score
        step = score / info if info > 0 else np.sign(score) * theta
        new = float(np.clip(theta + step, THETA_MIN, THETA_MAX))
        for _ in range(60):
            new_value = theta_loglik(new, y, mu, w)
            if new_value >= value - 1e-12 * abs(value):
                break
            new = 0.5 * (theta + new)
        moved = abs(new - theta)
        theta, value = new, new_value
        if moved <= tol * theta or theta in (THETA_MIN, THETA_MAX) and moved == 0.0:
            break
    bound = None
    if theta >= THETA_MAX * (1 - 1e-12) and theta_score(THETA_MAX, y, mu, w) >= 0:
        bound = "upper"
    elif theta <= THETA_MIN * (1 + 1e-12) and theta_score(THETA_MIN, y, mu, w) <= 0:
        bound = "lower"
    if bound is None and not (0 < theta_information(theta, y, mu, w)):
        # not a maximum of the score equation: fall back to a bounded search in log theta
        result = optimize.minimize_scalar(lambda s: -theta_loglik(np.exp(s), y, mu, w),
                                          bounds=(np.log(THETA_MIN), np.log(THETA_MAX)), method="bounded",
                                          options={"xatol": 1e-10})
        theta = float(np.exp(result.x))
    info = theta_information(theta, y, mu, w)
    se = float(1.0 / np.sqrt(info)) if bound is None and info > 0 else np.nan
    return ShapeEstimate(theta, se, bound, iterations)


def bound_message(bound: str, model: str) -> str:
    """What an estimate of the shape on its bound means, for the warning and the summary."""
    if bound == "upper":
        return (f"the negative binomial shape theta is at its upper bound ({THETA_MAX:g}): the data show no "
                f"overdispersion relative to the Poisson {model} (the likelihood rises as theta -> infinity, "
                f"where the negative binomial becomes the Poisson). Fit the Poisson {model} instead; "
                "theta has no standard error here")
    return (f"the negative binomial shape theta is at its lower bound ({THETA_MIN:g}): the counts are more "
            "overdispersed than a negative binomial with these covariates can describe (e.g. almost all zeros); "
            "theta has no standard error here")


def warn_bound(shape: ShapeEstimate, stacklevel: int) -> None:
    if shape.message is not None:
        warnings.warn(shape.message, ConvergenceWarning, stacklevel=stacklevel + 1)
