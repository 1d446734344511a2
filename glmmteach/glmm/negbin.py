r"""The negative binomial GLMM (lme4's ``glmer.nb``): the shape :math:`\theta_{NB}` by maximum likelihood.

As lme4, the shape is found by a one-dimensional optimisation over :math:`s = \log\theta_{NB}` of the
profile log-likelihood :math:`P(s) = \max_{\theta,\beta}\log L(\theta,\beta; e^s)`, each value a GLMM fit
at a fixed shape (:func:`glmmteach.glmm.optimize.fit_glmm`, warm-started from the nearest shape
evaluated so far), with one grouping factor or several random-effects terms (the general engine's
:class:`~glmmteach.glmm.sparse.SparseModel`, whose symbolic analysis every shape shares). lme4's
Laplace approximation is kept: the log link is not the negative binomial's canonical link, and the
log-determinant uses the expected (Fisher) weights :math:`\theta\mu/(\mu+\theta)`
(:meth:`glmmteach.families.Family.eta_values`), as for probit and cloglog.

Rather than a derivative-free search, the root of :math:`P'(s)` is found by bracketing and Brent's
method; by the envelope theorem :math:`P'(s) = \partial\log L/\partial s` at the inner optimum, a central
difference of the Laplace log-likelihood in :math:`s` alone with :math:`(\theta, \beta)` held (cheap: two
conditional-mode solves). The standard error of :math:`\hat\theta_{NB}` (lme4 reports none) is
:math:`1/\sqrt{-P''}` in :math:`\theta_{NB}` units, from a central difference of :math:`P'` — the
:math:`\theta_{NB}` entry of the inverse Hessian in all parameters.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, replace

import numpy as np
from scipy import optimize

from ..families import Family, get_glmm_family
from ..negbin import THETA_MAX, THETA_MIN, ShapeEstimate, bound_message, theta_ml
from .devfun import marginal_loglik
from .model import GroupedData
from .optimize import FitOutcome, fit_glmm, single_threaded_blas
from .sparse import SparseModel

_DERIVATIVE_STEP = 1e-3  # in log theta_NB, for P'(s) at fixed (theta, beta)
_CURVATURE_STEP = 2e-3  # in log theta_NB, for P''(s) from two values of P'
_XTOL = 1e-9  # on log theta_NB


def _with_family(model: GroupedData | SparseModel, family: Family) -> GroupedData | SparseModel:
    """The model with another family; a model of several terms keeps its symbolic analysis."""
    return model.with_family(family) if isinstance(model, SparseModel) else replace(model, family=family)


def _laplace_loglik(model: GroupedData | SparseModel, outcome: FitOutcome, correlated: bool, n_nodes: int) -> float:
    """The log-likelihood of ``model`` at ``outcome``'s (theta, beta), the modes solved from ``outcome``'s."""
    if isinstance(model, SparseModel):  # the general engine (Laplace only)
        return model.marginal_loglik(outcome.theta, outcome.beta, outcome.state.u, tol=1e-13)
    return marginal_loglik(model, outcome.theta, outcome.beta, correlated, n_nodes, outcome.state.u, tol=1e-13)


@dataclass
class _ProfilePoint:
    s: float
    outcome: FitOutcome
    slope: float


class _Profile:
    """Profile log-likelihood of the NB shape, with its slope, memoised by :math:`s = \\log\\theta_{NB}`."""

    def __init__(self, data: GroupedData | SparseModel, correlated: bool, n_nodes: int, start: FitOutcome):
        self.data, self.correlated, self.n_nodes = data, correlated, n_nodes
        self.points: list[_ProfilePoint] = []
        self.start = start
        self.evaluations = 0
        self.passes = 0

    def with_shape(self, s: float) -> GroupedData | SparseModel:
        return _with_family(self.data, self.data.family.with_theta(float(np.exp(s))))

    def __call__(self, s: float) -> _ProfilePoint:
        for point in self.points:
            if point.s == s:
                return point
        nearest = min(self.points, key=lambda p: abs(p.s - s)).outcome if self.points else self.start
        outcome = fit_glmm(self.with_shape(s), self.correlated, self.n_nodes, nearest.theta, nearest.beta)
        values = [_laplace_loglik(self.with_shape(s + sign * _DERIVATIVE_STEP), outcome, self.correlated,
                                  self.n_nodes) for sign in (1, -1)]
        point = _ProfilePoint(s, outcome, (values[0] - values[1]) / (2 * _DERIVATIVE_STEP))
        self.points.append(point)
        self.evaluations += outcome.evaluations
        self.passes += outcome.passes + 4
        return point

    def slope(self, s: float) -> float:
        return self(s).slope


def fit_negative_binomial_glmm(data: GroupedData | SparseModel, correlated: bool, n_nodes: int = 1
                               ) -> tuple[GroupedData | SparseModel, FitOutcome, ShapeEstimate]:
    """Maximum likelihood over (theta, beta) and the NB shape (lme4's ``glmer.nb``).

    ``data`` is one grouping factor's :class:`GroupedData` or the general engine's :class:`SparseModel`
    (several terms), its family the negative binomial (its ``theta``, if any, is ignored). Starts, as
    lme4, from a Poisson GLMM and MASS's ``theta.ml`` at its conditional means. Returns the model with
    the estimated shape in its family, the GLMM fit at that shape and the :class:`ShapeEstimate`
    (its ``message`` says when the shape is on a bound: no overdispersion beyond the random effects).
    """
    # The slopes between the fits factorise the general engine's small dense Schur complement many times:
    # multithreaded BLAS only adds thread wake-ups there (grouseticks: 0.6 s single-threaded, 1.8-4 s with
    # two threads on a busy machine). One grouping factor uses no BLAS beyond products with X: left as it was.
    with single_threaded_blas() if isinstance(data, SparseModel) else contextlib.nullcontext():
        return _fit_shape(data, correlated, n_nodes)


def _fit_shape(data: GroupedData | SparseModel, correlated: bool, n_nodes: int
               ) -> tuple[GroupedData | SparseModel, FitOutcome, ShapeEstimate]:
    start = fit_glmm(_with_family(data, get_glmm_family("poisson")), correlated, n_nodes)
    arrays = data.data if isinstance(data, SparseModel) else data
    first = theta_ml(arrays.response, np.exp(start.state.eta), arrays.weights)
    profile = _Profile(_with_family(data, data.family.with_theta(first.theta)), correlated, n_nodes, start)
    lo, hi = np.log(THETA_MIN), np.log(THETA_MAX)

    s0 = float(np.clip(np.log(first.theta), lo, hi))
    d0 = profile.slope(s0)
    direction = 1.0 if d0 > 0 else -1.0
    a, step, bound = s0, 0.5, None
    while True:  # bracket the root of P'(s), walking uphill with growing steps
        b = float(np.clip(a + direction * step, lo, hi))
        if profile.slope(b) * direction <= 0:
            break
        if b in (lo, hi):
            # P rises all the way to the bound (a flat, noisy slope there is judged by the values)
            if profile(b).outcome.llf >= profile(a).outcome.llf - 1e-9:
                bound = "upper" if b == hi else "lower"
                break
        a, step = b, 2.0 * step
    if bound is None:
        s_hat = optimize.brentq(profile.slope, min(a, b), max(a, b), xtol=_XTOL, rtol=4 * np.finfo(float).eps)
        best = profile(s_hat)
        # Near the upper bound P is nearly flat (P' ~ 1/theta) and its slope is noise: judge by values.
        if s_hat > hi - 2.0 and profile(hi).outcome.llf >= best.outcome.llf - 1e-9:
            bound, b = "upper", hi
    if bound is None:
        k = _CURVATURE_STEP
        curvature = (profile.slope(s_hat + k) - profile.slope(s_hat - k)) / (2 * k)  # P''(s)
        theta_nb = float(np.exp(s_hat))
        se = theta_nb / np.sqrt(-curvature) if curvature < 0 else np.nan
        message = None
    else:
        best = profile(b)
        theta_nb, se = float(np.exp(b)), np.nan
        message = bound_message(bound, "GLMM")
    outcome = best.outcome
    outcome.evaluations = profile.evaluations + start.evaluations
    outcome.passes = profile.passes + start.passes
    shape = ShapeEstimate(theta_nb, float(se), bound, len(profile.points), message)
    return _with_family(data, data.family.with_theta(theta_nb)), outcome, shape
