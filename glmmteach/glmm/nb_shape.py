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
method on :math:`\theta_{NB} \le 10^4` (from MASS's ``theta.ml`` at the Poisson GLMM's means, capped
there: when the random effects already take the extra variation ``theta.ml`` is at its upper bound,
where :math:`P'(s) \sim 1/\theta_{NB}` is below the noise of its difference and gave spurious roots,
issue 15). When :math:`P` still rises at the cap the values decide: the supremum is the Poisson limit
(:math:`\theta_{NB} = \infty`: the Poisson GLMM is the fit and says so, as MASS warns) unless the profile
at the cap is above the Poisson GLMM's log-likelihood or :math:`P` falls towards the limit, and then the
peak beyond the cap is searched on the values. The optimum is verified as a variance boundary is: the
profile at :math:`\hat\theta_{NB}/2` and :math:`2\hat\theta_{NB}` is lower (else the search restarts
from the higher one) and the Poisson limit is not higher; a shape that cannot be verified is reported
with a warning and ``converged=False``. By the envelope theorem
:math:`P'(s) = \partial\log L/\partial s` at the inner optimum, a central
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

from ..families import get_glmm_family
from ..theta_ml import THETA_MAX, THETA_MIN, ShapeEstimate, bound_message, theta_ml
from .grouped import as_model
from .model import GroupedData, MixedModel
from .optimize import fit_glmm, single_threaded_blas
from .outcome import FitOutcome

_DERIVATIVE_STEP = 1e-3  # in log theta_NB, for P'(s) at fixed (theta, beta)
_CURVATURE_STEP = 2e-3  # in log theta_NB, for P''(s) from two values of P'
_XTOL = 1e-9  # on log theta_NB
# The slope P'(s) is a central difference of two Laplace values, each as accurate as the inner fits make it
# (measured on the NB references: about 1e-12 relative); its noise is that over twice the step. Once
# |P'(s)| is below it the root is found to the accuracy the values allow, and bisecting further (Brent's
# xtol) only spent five to seven more GLMM fits on the noise (half of a fit's time).
_VALUE_NOISE = 1e-12
# Beyond this shape P'(s) ~ 1/theta_NB is below the noise of its central difference: the search on slopes
# stops there and the values decide (the Poisson limit, or a peak further out).
_THETA_CAP = 1e4
_LIMIT_PROBE = 1e5  # a shape at which the Poisson fit's likelihood gives the sign of dP/d(1/theta) at 0
_VERIFY_STEP = float(np.log(2.0))  # the optimum is checked against the profile at theta/2 and 2 theta


def _laplace_loglik(model: MixedModel, outcome: FitOutcome) -> float:
    """The log-likelihood of ``model`` at ``outcome``'s (theta, beta), the modes solved from ``outcome``'s."""
    return model.marginal_loglik(outcome.theta, outcome.beta, outcome.state.u, tol=1e-13)


@dataclass
class _ProfilePoint:
    s: float
    outcome: FitOutcome
    slope: float


class _Profile:
    """Profile log-likelihood of the NB shape, with its slope, memoised by :math:`s = \\log\\theta_{NB}`."""

    def __init__(self, model: MixedModel, start: FitOutcome):
        self.model = model
        self.points: list[_ProfilePoint] = []
        self.start = start
        self.evaluations = 0
        self.passes = 0

    def with_shape(self, s: float) -> MixedModel:
        return self.model.with_family(self.model.family.with_theta(float(np.exp(s))))

    def __call__(self, s: float) -> _ProfilePoint:
        for point in self.points:
            if point.s == s:
                return point
        nearest = min(self.points, key=lambda p: abs(p.s - s)).outcome if self.points else self.start
        outcome = fit_glmm(self.with_shape(s), theta_start=nearest.theta, beta_start=nearest.beta)
        values = [_laplace_loglik(self.with_shape(s + sign * _DERIVATIVE_STEP), outcome) for sign in (1, -1)]
        point = _ProfilePoint(s, outcome, (values[0] - values[1]) / (2 * _DERIVATIVE_STEP))
        self.points.append(point)
        self.evaluations += outcome.evaluations
        self.passes += outcome.passes + 4
        return point

    def slope(self, s: float) -> float:
        return self(s).slope


def fit_negative_binomial_glmm(model: MixedModel | GroupedData, correlated: bool | None = None,
                               n_nodes: int | None = None) -> tuple[MixedModel, FitOutcome, ShapeEstimate]:
    """Maximum likelihood over (theta, beta) and the NB shape (lme4's ``glmer.nb``).

    ``model`` is an engine model (or a :class:`GroupedData` with ``correlated`` and ``n_nodes``,
    :func:`~glmmteach.glmm.grouped.as_model`), its family the negative binomial (its ``theta``, if any, is
    ignored). Starts, as lme4, from a Poisson GLMM and MASS's ``theta.ml`` at its conditional means. Returns the
    model with
    the estimated shape in its family, the GLMM fit at that shape and the :class:`ShapeEstimate`
    (its ``message`` says when the shape is on a bound: no overdispersion beyond the random effects).
    """
    # The slopes between the fits factorise the general engine's small dense Schur complement many times:
    # multithreaded BLAS only adds thread wake-ups there (grouseticks: 0.6 s single-threaded, 1.8-4 s with
    # two threads on a busy machine). One grouping factor uses no BLAS beyond products with X: left as it was.
    model = as_model(model, correlated, n_nodes)
    with single_threaded_blas() if model.n_terms > 1 else contextlib.nullcontext():
        return _fit_shape(model)


def _fit_shape(model: MixedModel) -> tuple[MixedModel, FitOutcome, ShapeEstimate]:
    data = model
    poisson = fit_glmm(model.with_family(get_glmm_family("poisson")))
    arrays = model.data
    first = theta_ml(arrays.response, np.exp(poisson.state.eta), arrays.family_weights)
    profile = _Profile(model.with_family(model.family.with_theta(first.theta)), poisson)
    lo, cap = np.log(THETA_MIN), np.log(_THETA_CAP)
    s_hat, bound = _bracket_and_solve(profile, float(np.clip(np.log(first.theta), lo, cap)), lo, cap)
    if bound == "upper":  # still rising at the cap: a peak beyond it, or the supremum is the Poisson limit
        s_hat, bound = _beyond_cap(profile, poisson, cap)
    message, verified = None, True
    if bound is None:
        s_hat, verified = _verify(profile, poisson, s_hat, lo, cap)
        if s_hat == np.inf:
            bound = "upper"
    if bound == "upper":  # the Poisson GLMM is the fit (theta = infinity), as MASS warns
        model, outcome, theta_nb, se = data.with_family(get_glmm_family("poisson")), poisson, np.inf, np.nan
        message = poisson_limit_message()
    else:
        best = profile(s_hat)
        model, outcome, theta_nb = profile.with_shape(s_hat), best.outcome, float(np.exp(s_hat))
        se = np.nan if bound is not None else _standard_error(profile, s_hat)
        if bound is not None:
            message = bound_message(bound, "GLMM")
        elif not verified:
            message = unverified_message(profile, s_hat)
            outcome = replace(outcome, converged=False)
    outcome = replace(outcome, evaluations=profile.evaluations + poisson.evaluations,
                      passes=profile.passes + poisson.passes)
    shape = ShapeEstimate(theta_nb, float(se), bound, len(profile.points), message)
    return model, outcome, shape


def _bracket_and_solve(profile: _Profile, s0: float, lo: float, hi: float) -> tuple[float, str | None]:
    """The root of :math:`P'(s)` in ``[lo, hi]`` found from ``s0`` (bracketed walking uphill with growing
    steps, then Brent's method), or the edge ``lo``/``hi`` with ``"lower"``/``"upper"`` when ``P`` still
    rises there."""
    direction = 1.0 if profile.slope(s0) > 0 else -1.0
    a, step = s0, 0.5
    while True:
        b = float(np.clip(a + direction * step, lo, hi))
        if b == a or (b in (lo, hi) and profile.slope(b) * direction > 0):
            return b, "upper" if b == hi else "lower"
        if profile.slope(b) * direction <= 0:
            break
        a, step = b, 2.0 * step
    return _root_in_bracket(profile, min(a, b), max(a, b)), None


class _RootFound(Exception):  # noqa: N818 (a signal to stop Brent's method, not an error)
    """Raised inside Brent's method when the slope is within its noise (or the Newton step below ``_XTOL``)."""

    def __init__(self, s: float):
        self.s = s


def _root_in_bracket(profile: _Profile, a: float, b: float) -> float:
    """Brent's method for the root of :math:`P'` in ``[a, b]``, stopped as soon as the slope at a point is
    within its numerical noise or the Newton step from it, with the curvature from the nearest point of
    the other sign, is below ``_XTOL``: further steps would only follow the noise."""
    def slope(s: float) -> float:
        point = profile(s)
        noise = _VALUE_NOISE * max(1.0, abs(point.outcome.llf)) / _DERIVATIVE_STEP
        other = [p for p in profile.points if p.slope * point.slope < 0]
        if point.slope == 0.0 or abs(point.slope) <= noise:
            raise _RootFound(s)
        if other:
            nearest = min(other, key=lambda p: abs(p.s - s))
            curvature = abs(nearest.slope - point.slope) / abs(nearest.s - s)
            if abs(point.slope) / curvature < _XTOL:
                raise _RootFound(s)
        return point.slope

    try:
        return optimize.brentq(slope, a, b, xtol=_XTOL, rtol=4 * np.finfo(float).eps)
    except _RootFound as found:
        return found.s


def _beyond_cap(profile: _Profile, poisson: FitOutcome, cap: float) -> tuple[float, str | None]:
    r"""Where :math:`P` rises at :math:`\theta_{NB} = ` ``_THETA_CAP``: the supremum is the Poisson limit
    unless the profile there is above the Poisson GLMM's log-likelihood or :math:`P` falls towards the
    limit. Otherwise the peak is searched beyond the cap on the values (the slope there is below its
    numerical noise)."""
    limit = poisson.llf
    if profile(cap).outcome.llf <= limit + _value_tolerance(limit) and not _falls_towards_limit(profile, poisson):
        return np.inf, "upper"
    return _peak_beyond_cap(profile, cap), None


def _falls_towards_limit(profile: _Profile, poisson: FitOutcome) -> bool:
    r"""Whether :math:`P` falls towards the Poisson limit, i.e. :math:`dP/d(1/\theta_{NB}) > 0` at 0: by the
    envelope theorem its sign is that of the Poisson fit's likelihood at a large shape minus its own."""
    probe = _laplace_loglik(profile.with_shape(np.log(_LIMIT_PROBE)), poisson)
    return probe > poisson.llf + _value_tolerance(poisson.llf)


def _peak_beyond_cap(profile: _Profile, cap: float) -> float:
    """The maximum of the profile's values over :math:`\\theta_{NB}` from the cap to ``THETA_MAX``."""
    result = optimize.minimize_scalar(lambda s: -profile(s).outcome.llf, bounds=(cap, np.log(THETA_MAX)),
                                      method="bounded", options={"xatol": 1e-6})
    return float(result.x)


def _value_tolerance(value: float) -> float:
    """Two log-likelihood values closer than this are equal (the inner fits' tolerance)."""
    return 1e-9 * max(1.0, abs(value))


def _verify(profile: _Profile, poisson: FitOutcome, s_hat: float, lo: float, cap: float,
            restarts: int = 3) -> tuple[float, bool]:
    r"""Check :math:`\hat s` as a variance boundary is checked: the profile at :math:`\hat\theta_{NB}/2`
    and :math:`2\hat\theta_{NB}` is lower, and the Poisson limit is not higher. A higher neighbour
    restarts the search from it (a spurious root of a noisy slope); a higher Poisson limit makes it the
    fit (``inf``) if the profile rises towards it, else the peak beyond the cap is searched. Returns the
    estimate and whether it was verified."""
    for attempt in range(restarts + 1):
        best = profile(s_hat).outcome.llf
        tolerance = _value_tolerance(best)
        higher = [s for s in (s_hat - _VERIFY_STEP, s_hat + _VERIFY_STEP) if profile(s).outcome.llf > best + tolerance]
        limit_higher = poisson.llf > best + tolerance
        if limit_higher and not _falls_towards_limit(profile, poisson):
            return np.inf, True
        if not higher and not limit_higher:
            return s_hat, True
        if attempt == restarts:
            break
        if limit_higher:
            s_hat = _peak_beyond_cap(profile, cap)
            continue
        restart = max(higher, key=lambda s: profile(s).outcome.llf)
        found, bound = _bracket_and_solve(profile, float(np.clip(restart, lo, cap)), lo, cap)
        if bound == "upper":
            found, bound = _beyond_cap(profile, poisson, cap)
        if bound is not None:  # a bound now that the root was not a maximum: not a verified answer
            break
        s_hat = found
    return s_hat, False


def _standard_error(profile: _Profile, s_hat: float) -> float:
    r""":math:`1/\sqrt{-P''}` in :math:`\theta_{NB}` units, from a central difference of :math:`P'`."""
    k = _CURVATURE_STEP
    curvature = (profile.slope(s_hat + k) - profile.slope(s_hat - k)) / (2 * k)  # P''(s)
    return float(np.exp(s_hat) / np.sqrt(-curvature)) if curvature < 0 else np.nan


def poisson_limit_message() -> str:
    """What an infinite shape means, for the warning and the summary."""
    return ("the negative binomial shape theta is infinite (theta = inf): the profile likelihood rises all the "
            "way to the Poisson limit, so the data show no overdispersion relative to the Poisson GLMM: its "
            "random effects describe all the variation there is. The Poisson GLMM is the fit (its estimates "
            "are reported; MASS warns 'iteration limit reached' here); theta has no standard error")


def unverified_message(profile: _Profile, s_hat: float) -> str:
    """The warning for a shape whose profile could not be verified as a maximum."""
    values = {f"{factor:g}": profile(s_hat + np.log(factor)).outcome.llf for factor in (0.5, 1.0, 2.0)}
    return (f"the negative binomial shape theta = {np.exp(s_hat):.6g} could not be verified as the maximum of "
            "its profile likelihood (log-likelihood at theta/2, theta, 2 theta: "
            + ", ".join(f"{v:.10g}" for v in values.values()) + "); the fit is not converged")
