r"""Population-averaged (marginal) means of a GLMM.

A GLMM's coefficients are *conditional*: :math:`g^{-1}(x^\top\beta)` is the mean for a group whose
random effect is zero. The mean over the population of groups integrates the random effect out:

.. math::

    \bar\mu(x) = E_b\bigl[g^{-1}(x^\top\beta + z^\top b)\bigr]
               = \int g^{-1}(\eta + s)\,\varphi(s; 0, v)\,ds, \qquad v = z^\top\Sigma z,

because :math:`z^\top b` is normal with variance :math:`v` whatever the dimension of :math:`b`.

For a non-linear :math:`g^{-1}` (logit, probit, cloglog) :math:`\bar\mu \ne g^{-1}(\eta)`: the
population curve is flatter than any group's curve. :func:`population_average_mean` computes the integral
to 1e-12 absolute for every variance by the trapezoidal rule in :math:`s` (below); for the log, identity and
square-root links it is exact in closed form: :math:`e^{\eta + v/2}`, :math:`\eta`, :math:`\eta^2 + v`.

Gauss–Hermite quadrature, with nodes :math:`x_k` and weights :math:`w_k` for :math:`e^{-x^2}`,

.. math::

    \bar\mu(x) \approx \frac{1}{\sqrt\pi}\sum_k w_k\, g^{-1}\bigl(\eta + \sqrt{2v}\,x_k\bigr),

is what lessons show (``n_nodes=``), but it is not accurate for a large variance: the inverse link has
singularities at :math:`\operatorname{Im} s = \pm\pi` (logit), which in Gauss–Hermite's scaled variable lie
:math:`\pi/\sqrt{2v}` from the real axis, so the nodes needed grow like :math:`v`. With 40 nodes the logit
mean is off by 1e-8 at :math:`\sqrt v = 2`, 3e-4 at 4.9 (the crossover's :math:`\hat\tau`) and 5e-3 at 8;
200 nodes: 3e-10 at 4, 1e-8 at 4.9, 9e-6 at 8 (cloglog and probit are worse).

The trapezoidal rule on a grid :math:`s_k = kh` is exact to :math:`O(e^{-2\pi d/h})` for an integrand analytic
in the strip :math:`|\operatorname{Im} s| < d` where it stays bounded. For the three bounded links the
inverse link is bounded by 2 there with :math:`d = \pi/2`, and the normal density grows by
:math:`e^{d^2/2v}`; with :math:`d = \min(\pi/2, 2\sqrt v)` and :math:`h = d/5` the error is below
:math:`2e^2 e^{-10\pi} \approx 3\times10^{-13}`, and the grid spans :math:`\pm 8.5\sqrt v` (the normal tail
beyond holds 2e-17): about 43 points for a small SD, :math:`54\sqrt v` for a large one (1,100 at
:math:`\sqrt v = 20`).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from .exceptions import FamilyError, GlmmteachError
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
    n_nodes: int | None = None,
) -> np.ndarray:
    r"""Marginal mean :math:`E_b[g^{-1}(\eta + s)]`, :math:`s \sim N(0, v)`, accurate to 1e-12 for every variance.

    Parameters
    ----------
    eta_fixed : array
        Population-level linear predictor :math:`x^\top\beta + o`.
    re_variance : array or float
        Variance :math:`v = z^\top\Sigma z` of the random part of :math:`\eta` (per row).
    link : str or Family
        ``"logit"``, ``"probit"``, ``"cloglog"``, ``"log"``, ``"identity"`` or ``"sqrt"``, or the fitted
        model's family.
    n_nodes : int, optional
        ``None`` (the default): the accurate rule of the module docstring (closed forms for the log, identity
        and square-root links). An integer: Gauss–Hermite quadrature with that many nodes instead, as lessons
        show it; its error grows with the variance (the module docstring gives figures: 40 nodes are off by
        3e-4 at an SD of 4.9).
    """
    return _averaged(eta_fixed, re_variance, link, n_nodes, derivative=False)


def population_average_slope(
    eta_fixed: np.ndarray | float, re_variance: np.ndarray | float, link: str | Link | Family = "logit",
    n_nodes: int | None = None,
) -> np.ndarray:
    r"""The derivative of :func:`population_average_mean` in :math:`\eta`,
    :math:`E_b[(g^{-1})'(\eta + s)]` (what a delta-method standard error of the averaged mean needs), by the
    same rule and with the same arguments."""
    return _averaged(eta_fixed, re_variance, link, n_nodes, derivative=True)


def _averaged(eta_fixed: np.ndarray | float, re_variance: np.ndarray | float, link: str | Link | Family,
              n_nodes: int | None, derivative: bool) -> np.ndarray:
    """E[f(eta + s)], s ~ N(0, v), for f the inverse link or its derivative (see the module docstring)."""
    inverse = inverse_link(link)
    function = inverse.mu_eta if derivative else inverse.linkinv
    eta = np.asarray(eta_fixed, dtype=float)
    variance = np.broadcast_to(np.asarray(re_variance, dtype=float), eta.shape)
    if np.any(variance < 0) or not np.all(np.isfinite(variance)):
        raise GlmmteachError(f"re_variance must be finite and non-negative, got {variance[~(variance >= 0)][:3]}")
    if n_nodes is not None:
        return _gauss_hermite_mean(eta, variance, function, n_nodes)
    closed_form = (CLOSED_SLOPES if derivative else CLOSED_FORMS).get(inverse.name)
    if closed_form is not None:
        return closed_form(inverse, eta, variance)
    if inverse.name not in BOUNDED_LINKS:
        raise FamilyError(f"the population-averaged mean for the {inverse.name!r} link is not offered (its mean "
                          "over a normal linear predictor does not exist); choose one of "
                          f"{', '.join(BOUNDED_LINKS + tuple(CLOSED_FORMS))}")
    return _trapezoid_mean(eta, variance, function)


# E[g^{-1}(eta + s)], s ~ N(0, v), and its derivative in eta, in closed form through the link's own functions
# (R's clamps included: with v = 0 they are the conditional mean exactly)
CLOSED_FORMS = {
    "log": lambda link, eta, v: link.linkinv(eta + v / 2),
    "identity": lambda link, eta, v: link.linkinv(eta),
    "sqrt": lambda link, eta, v: link.linkinv(eta) + v,
}
CLOSED_SLOPES = {
    "log": lambda link, eta, v: link.mu_eta(eta + v / 2),
    "identity": lambda link, eta, v: link.mu_eta(eta),
    "sqrt": lambda link, eta, v: link.mu_eta(eta),
}
# inverse links bounded (by 2) in the strip |Im s| < pi/2: the trapezoidal rule's error bound holds (their
# derivatives are bounded there too)
BOUNDED_LINKS = ("logit", "probit", "cloglog")
STRIP = np.pi / 2
TAIL_SDS = 8.5


def _trapezoid_mean(eta: np.ndarray, variance: np.ndarray, function: Callable[[np.ndarray], np.ndarray]
                    ) -> np.ndarray:
    """The trapezoidal rule of the module docstring, one grid per distinct variance (usually one or a few)."""
    out = np.empty(eta.shape)
    flat_eta, flat_var, flat_out = eta.ravel(), variance.ravel(), out.reshape(-1)
    values, which = np.unique(flat_var, return_inverse=True)
    for k, v in enumerate(values):  # a loop over the distinct variances, not over rows
        rows = which == k
        if v == 0:
            flat_out[rows] = function(flat_eta[rows])
            continue
        sd = np.sqrt(v)
        h = min(STRIP, 2 * sd) / 5
        s = h * np.arange(-np.ceil(TAIL_SDS * sd / h), np.ceil(TAIL_SDS * sd / h) + 1)
        weights = h * np.exp(-0.5 * (s / sd) ** 2) / (sd * np.sqrt(2 * np.pi))
        flat_out[rows] = function(flat_eta[rows, None] + s[None, :]) @ weights
    return out


def _gauss_hermite_mean(eta: np.ndarray, variance: np.ndarray, function: Callable[[np.ndarray], np.ndarray],
                        n_nodes: int) -> np.ndarray:
    nodes, weights = gauss_hermite(n_nodes)
    shifts = np.sqrt(2.0 * variance)[..., None] * nodes
    means = function(eta[..., None] + shifts)
    return (means * weights).sum(axis=-1) / np.sqrt(np.pi)


def conditional_mean(eta: np.ndarray | float, link: str | Link | Family = "logit") -> np.ndarray:
    r"""Mean for one group given its random effect: :math:`g^{-1}(\eta)`."""
    return inverse_link(link).linkinv(np.asarray(eta, dtype=float))


def marginal_curve(
    eta_fixed: np.ndarray, sd: float, link: str | Link | Family = "logit", n_nodes: int | None = None
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
