r"""Population-averaged (marginal) means of a GLMM.

A GLMM's coefficients are *conditional*: :math:`g^{-1}(x^\top\beta)` is the mean for a group whose
random effect is zero. The mean over the population of groups integrates the random effect out:

.. math::

    \bar\mu(x) = E_b\bigl[g^{-1}(x^\top\beta + z^\top b)\bigr]
               = \int g^{-1}(\eta + s)\,\varphi(s; 0, v)\,ds, \qquad v = z^\top\Sigma z,

because :math:`z^\top b` is normal with variance :math:`v` whatever the dimension of :math:`b`.
With Gauss–Hermite nodes :math:`x_k` and weights :math:`w_k` for :math:`e^{-x^2}`,

.. math::

    \bar\mu(x) \approx \frac{1}{\sqrt\pi}\sum_k w_k\, g^{-1}\bigl(\eta + \sqrt{2v}\,x_k\bigr).

For a non-linear :math:`g^{-1}` (logit, probit, cloglog) :math:`\bar\mu \ne g^{-1}(\eta)`: the
population curve is flatter than any group's curve. For the log link the integral is exact,
:math:`\bar\mu = e^{\eta + v/2}`, which :func:`population_average_mean` uses as a check.
"""

from __future__ import annotations

import numpy as np

from .exceptions import FamilyError
from .families import LINKS, Family, Link
from .glmm.devfun import gauss_hermite


def inverse_link(link: str | Link | Family) -> Link:
    """The :class:`~glmmteach.families.Link` named ``link``, or the link of a fitted model's family.

    The mean :math:`g^{-1}(\\eta)` depends on the link alone (R's clamps included), so no family is guessed.
    """
    if isinstance(link, Family):
        return link.link
    if isinstance(link, Link):
        return link
    if isinstance(link, str) and link.lower() in LINKS:
        return LINKS[link.lower()]
    raise FamilyError(f"unknown link {link!r}; choose one of {', '.join(LINKS)}, or pass the fit's family")


def population_average_mean(
    eta_fixed: np.ndarray | float, re_variance: np.ndarray | float, link: str | Link | Family = "logit",
    n_nodes: int = 40,
) -> np.ndarray:
    r"""Marginal mean :math:`E_b[g^{-1}(\eta + s)]`, :math:`s \sim N(0, v)`, by Gauss–Hermite quadrature.

    Parameters
    ----------
    eta_fixed : array
        Population-level linear predictor :math:`x^\top\beta + o`.
    re_variance : array or float
        Variance :math:`v = z^\top\Sigma z` of the random part of :math:`\eta` (per row).
    link : str or Family
        ``"logit"``, ``"probit"``, ``"cloglog"`` or ``"log"``, or the fitted model's family.
    n_nodes : int
        Quadrature nodes (40 is far more than enough for variances up to ~100).
    """
    linkinv = inverse_link(link).linkinv
    eta = np.asarray(eta_fixed, dtype=float)
    variance = np.broadcast_to(np.asarray(re_variance, dtype=float), eta.shape)
    if np.any(variance < 0):
        raise ValueError("the random-effect variance must be non-negative")
    nodes, weights = gauss_hermite(n_nodes)
    shifts = np.sqrt(2.0 * variance)[..., None] * nodes
    means = linkinv(eta[..., None] + shifts)
    return (means * weights).sum(axis=-1) / np.sqrt(np.pi)


def conditional_mean(eta: np.ndarray | float, link: str | Link | Family = "logit") -> np.ndarray:
    r"""Mean for one group given its random effect: :math:`g^{-1}(\eta)`."""
    return inverse_link(link).linkinv(np.asarray(eta, dtype=float))


def marginal_curve(
    eta_fixed: np.ndarray, sd: float, link: str | Link | Family = "logit", n_nodes: int = 40
) -> dict[str, np.ndarray]:
    r"""Conditional curve at :math:`b=0`, and the population-averaged curve, for a random intercept with SD
    :math:`\sigma` over a grid of linear predictors (what a lesson plots to show that averaging
    flattens the curve)."""
    eta = np.asarray(eta_fixed, dtype=float)
    return {
        "eta": eta,
        "conditional": conditional_mean(eta, link),
        "population": population_average_mean(eta, sd**2, link, n_nodes),
    }
