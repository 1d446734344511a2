r"""Fitting a GLMM: the optimiser, the Newton polish, the boundary checks and the convergence test.

:func:`fit_glmm` maximises the Laplace (``nAGQ=1``) or adaptive Gauss–Hermite (``nAGQ>1``)
log-likelihood of :mod:`glmmteach.glmm.devfun` over :math:`(\theta, \beta)`: by Newton's method with the
analytic Hessian (:mod:`glmmteach.glmm.hessian`) for a Laplace fit of one scalar random effect with a canonical
link, otherwise with L-BFGS-B and the analytic gradient; starting from the GLM fit for :math:`\beta`
(:func:`glm_start`) and a diagonal :math:`T_\theta` from moment estimates of the random effects' SDs at the GLM fit
(:func:`_moment_theta`; lme4 starts from :math:`T_\theta = I`), both scaled from marginal to conditional
for a logit or probit model (:func:`_conditional_scale`). The fixed effects are optimised in whitened coordinates
:math:`\delta = R(\beta - \beta_0)`, :math:`R^\top R` the information for :math:`\beta` at the start,
and each :math:`\theta_k` is divided by its standard error at the start, so that all directions
have a comparable scale.

The Hessian of the log-likelihood in :math:`(\theta, \beta)` at the optimum (analytic where the model gives
it, else forward differences of the analytic gradient, made central in any column where they are not
symmetric) gives a final Newton
step, the convergence test (Newton decrement below 1e-6, whatever
message the optimiser stopped with) and, inverted, the covariance of the estimates (as lme4).

A variance parameter (a diagonal entry of :math:`T_\theta`) that ends at 0 proves nothing by itself:
the likelihood is even in it, so its gradient there is 0 whatever the data, and L-BFGS-B stops on the
bound. Every such component is tested (the likelihood at small and moderate positive values) and the
optimiser restarts from the interior while one of them raises the likelihood; an early stop away
from the boundary gets up to two restarts. Only a boundary verified this way is reported as singular;
one that cannot be verified makes the fit unconverged.

An adaptive Gauss–Hermite fit (``nAGQ > 1``) is also checked for the accuracy of its quadrature at the
optimum: the log-likelihood there is recomputed with twice the nodes, and a change above
``QUADRATURE_TOLERANCE`` makes the fit unconverged (see :func:`_quadrature_change`). The optimiser
maximises the approximation, and where the approximation is poor it finds the maxima of its error.

The fit's outcome, :class:`FitOutcome`, is an immutable record; :mod:`glmmteach.glmm.diagnosis` turns it into the
covariance of the estimates and the warnings about the fit, and :mod:`glmmteach.glmm.start` gives the start values.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import replace
from typing import Any

import numpy as np
from scipy import optimize

from ..exceptions import GlmmteachError
from .diagnosis import QUADRATURE_CHECK_FACTOR, QUADRATURE_TOLERANCE, SINGULAR_TOLERANCE
from .grouped import as_model
from .model import GroupedData, MixedModel
from .outcome import FitOutcome
from .pirls import ModeState
from .sparse import StackedCovariance
from .start import conditional_scale, glm_start
from .terms import CovarianceTerm

try:  # optional: keeps OpenBLAS from waking threads for tiny matrices (10x slower on a busy machine)
    from threadpoolctl import ThreadpoolController
except ImportError:  # pragma: no cover
    ThreadpoolController = None
_BLAS_CONTROLLER: list = []  # created once: finding the BLAS libraries reads /proc (2-6 ms per fit)

def single_threaded_blas() -> contextlib.AbstractContextManager:
    """BLAS limited to one thread inside the ``with`` block (when threadpoolctl is installed): the fits'
    linear algebra is on small matrices, where more threads only add wake-ups (several times slower on a
    busy machine)."""
    if ThreadpoolController is None:
        return contextlib.nullcontext()
    if not _BLAS_CONTROLLER:
        _BLAS_CONTROLLER.append(ThreadpoolController())
    return _BLAS_CONTROLLER[0].limit(limits=1, user_api="blas")


# --------------------------------------------------------------------------------------------
# Fitting
# --------------------------------------------------------------------------------------------


def covariance_of(model: Any, correlated: bool | None = None) -> CovarianceTerm | StackedCovariance:
    r"""The map :math:`\theta \leftrightarrow T` of a model (one term, or several stacked); ``correlated`` is
    read only when ``model`` is a bare :class:`GroupedData`."""
    return as_model(model, correlated).covariance


def beta_information(model: MixedModel, state) -> np.ndarray:
    r"""Information for :math:`\beta` with the random effects profiled out at fixed :math:`\theta`."""
    return model.beta_information(state)


class _Objective:
    r"""Negative log-likelihood and gradient in optimiser coordinates :math:`x = (\theta/s, \delta)`.

    :math:`\beta = \beta_0 + R^{-1}\delta` whitens the fixed effects; :math:`s` scales each
    :math:`\theta_k` by :math:`(-\partial^2\ell/\partial\theta_k^2)^{-1/2}` at the start, so that a
    unit step means about one standard error in every coordinate (L-BFGS-B is not scale free).
    """

    def __init__(self, model: MixedModel, beta0: np.ndarray, R: np.ndarray, log_prior: LogPrior | None = None):
        self.model = model
        self.log_prior = log_prior  # a MAP fit: the objective is the log-likelihood plus this (bglmer)
        self.beta0 = beta0
        self.R_inv = np.linalg.inv(R)
        self.n_theta = model.covariance.n_theta
        self.theta_scale = np.ones(self.n_theta)
        self.u: np.ndarray | None = None
        self.u_theta: np.ndarray | None = None  # the theta at which self.u are the modes (general engine)
        self.evaluations = 0
        self.passes = 0
        self.best: tuple[float, np.ndarray] | None = None
        self.known: tuple[np.ndarray, float, np.ndarray, ModeState] | None = None  # an evaluation to reuse once

    def split(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return x[: self.n_theta] * self.theta_scale, self.beta0 + self.R_inv @ x[self.n_theta :]

    def to_x(self, theta: np.ndarray, beta: np.ndarray) -> np.ndarray:
        return np.concatenate([theta / self.theta_scale, np.linalg.solve(self.R_inv, beta - self.beta0)])

    def jacobian(self) -> np.ndarray:
        """d(theta, beta)/dx."""
        J = np.zeros((self.n_theta + len(self.beta0),) * 2)
        J[: self.n_theta, : self.n_theta] = np.diag(self.theta_scale)
        J[self.n_theta :, self.n_theta :] = self.R_inv
        return J

    def loglik(self, x: np.ndarray, u_start: np.ndarray | None = None, tol: float = 1e-10, min_iter: int = 1):
        theta, beta = self.split(x)
        start = self.u if u_start is None else u_start
        if u_start is None and self.u_theta is not None:
            start = self.model.warm_start(self.u, self.u_theta, theta)
        self.evaluations += 1
        try:
            value, grad, state = self.model.loglik_and_gradient(theta, beta, start, tol, min_iter)
        except np.linalg.LinAlgError:
            # H lost positive definiteness to rounding at an extreme trial point of the line search (huge
            # weights): a point to back off from, not the end of the fit (lme4 fits these data)
            return -np.inf, np.zeros(len(x)), None
        return self.in_x(theta, beta, value, grad, state)

    def in_x(self, theta: np.ndarray, beta: np.ndarray, value: float, grad: np.ndarray,
             state: ModeState) -> tuple[float, np.ndarray, ModeState]:
        """The objective and its gradient in optimiser coordinates from the model's log-likelihood ``value`` and
        gradient ``grad`` (in (theta, beta)) at the modes ``state``; counts the evaluation's data passes."""
        self.passes += state.passes + (1 if self.model.n_nodes == 1 else 2 * self.model.n_nodes)
        if self.log_prior is not None:
            prior_value, prior_grad = self.log_prior(theta, beta)
            value, grad = value + prior_value, grad + prior_grad
        grad_x = np.concatenate([grad[: self.n_theta] * self.theta_scale, self.R_inv.T @ grad[self.n_theta :]])
        return value, grad_x, state

    def __call__(self, x: np.ndarray) -> tuple[float, np.ndarray]:
        if self.known is not None and np.array_equal(x, self.known[0]):
            value, grad_x, state = self.known[1:]
        else:
            value, grad_x, state = self.loglik(x)
        self.known = None
        if not np.isfinite(value):
            return 1e300, np.zeros_like(x)
        self.u = state.u
        self.u_theta = x[: self.n_theta] * self.theta_scale  # split(x)'s theta, without its beta
        if self.best is None or value > self.best[0]:
            self.best = (value, x.copy(), grad_x, state)
        return -value, -grad_x

    @property
    def analytic_hessian(self) -> bool:
        """The model gives its Hessian (:mod:`glmmteach.glmm.hessian`) and the objective is the log-likelihood
        (a MAP fit adds a prior whose Hessian the model does not know)."""
        return self.log_prior is None and self.model.hessian_available

    def hessian(self, x: np.ndarray, grad_x: np.ndarray, state: ModeState) -> np.ndarray:
        """The Hessian of the objective in optimiser coordinates at ``x`` (``grad_x`` and the modes ``state``
        evaluated there): the model's analytic one where it has one, else :meth:`difference_hessian`."""
        return self.hessian_and_mode_slopes(x, grad_x, state)[0]

    def hessian_and_mode_slopes(self, x: np.ndarray, grad_x: np.ndarray,
                                state: ModeState) -> tuple[np.ndarray, np.ndarray | None]:
        """:meth:`hessian`, and with the analytic Hessian the modes' derivatives in optimiser coordinates
        (G×k: a step ``s`` moves the modes by about ``slopes @ s``)."""
        if self.analytic_hessian:
            J = self.jacobian()
            H, mode_slopes = self.model.loglik_hessian(self.split(x)[0], state)
            return J.T @ H @ J, mode_slopes @ J
        return self.difference_hessian(x, grad_x, state.u), None

    def difference_hessian(self, x: np.ndarray, grad_x: np.ndarray, u_start: np.ndarray) -> np.ndarray:
        """Differences of the analytic gradient (log-likelihood, optimiser coordinates): forward from the known
        ``grad_x``, completed to central differences in every column whose forward result is not symmetric to
        ``FORWARD_ASYMMETRY`` (the asymmetry of a forward-difference Hessian shows its truncation error, the
        third derivatives, and any noise of the gradient), and in every column of a one-parameter model."""
        k = len(x)

        def column(i: int, h: float) -> np.ndarray:
            shifted = x.copy()
            shifted[i] += h
            return self.loglik(shifted, u_start, tol=1e-13, min_iter=2)[1]

        # loops over the few parameters, not over data
        H = np.column_stack([(column(i, FORWARD_STEP) - grad_x) / FORWARD_STEP for i in range(k)])
        asymmetric = np.abs(H - H.T) > FORWARD_ASYMMETRY * np.maximum(1.0, np.abs(H))
        for i in range(k) if k == 1 else np.flatnonzero(asymmetric.any(axis=0)):
            H[:, i] = (column(i, CENTRAL_STEP) - column(i, -CENTRAL_STEP)) / (2 * CENTRAL_STEP)
        return 0.5 * (H + H.T)


# Steps of the finite-difference Hessian, in the optimiser's coordinates (about standard errors; the Hessian
# there is about -I). Measured against central differences with step 1e-3 (themselves within 3e-7 of step
# 1e-4) on Ohio, the crossover and nine randomised lme4 cases: forward differences give standard errors
# within 4e-5 (step 1e-4), 4.5e-6 (1e-5) and 7e-7 (1e-6) relative, with an asymmetry of the same size
# (at most 5.8e-7 with step 1e-6): the gradient's noise (PIRLS to 1e-13) is far below the truncation error.
FORWARD_STEP = 1e-6
CENTRAL_STEP = 1e-3
FORWARD_ASYMMETRY = 2e-6


def fit_glmm(
    model: MixedModel | GroupedData,
    correlated: bool | None = None,
    n_nodes: int | None = None,
    theta_start: np.ndarray | None = None,
    beta_start: np.ndarray | None = None,
    log_prior: LogPrior | None = None,
    method: str | None = None,
) -> FitOutcome:
    """Maximise the (approximate) marginal likelihood over (theta, beta); see the module docstring.

    ``model``: an engine model (:class:`~glmmteach.glmm.model.MixedModel`), or a :class:`GroupedData` with
    ``correlated`` and ``n_nodes`` (:func:`~glmmteach.glmm.grouped.as_model`).
    ``log_prior`` (:mod:`glmmteach.glmm.bglmer`): maximise the log-likelihood plus this log density of
    (theta, beta) instead, the posterior mode; the outcome's ``llf`` is still the log-likelihood there.
    ``method``: the optimiser, one of ``OPTIMISERS`` (:func:`glmmteach.all_fit` tries each); every one ends
    with the same Newton polish, boundary checks and convergence test. ``None``: :func:`default_optimiser`
    (Newton's method where the model gives its Hessian, else L-BFGS-B).

    The linear algebra here is on tiny matrices (parameters, r×r blocks), where multithreaded
    BLAS only costs time, so BLAS runs single-threaded during the fit when threadpoolctl is present.
    Rows not in group order are fitted in group order (:meth:`GroupedData.sorted_by_group`); the
    returned modes and linear predictor are in the caller's order.
    """
    model = as_model(model, correlated, n_nodes)
    if method is None:
        method = default_optimiser(model, log_prior)
    elif method == "Newton" and method not in available_optimisers(model, log_prior is not None):
        raise GlmmteachError("optimizer 'Newton' needs the analytic Hessian: a Laplace fit (nAGQ = 1) of one scalar "
                             "random effect with a canonical link (binomial logit, Poisson log) and no prior; "
                             f"use one of {', '.join(OPTIMISERS[1:])}")
    with single_threaded_blas():
        work = model.sorted_by_group()
        outcome = _fit_glmm(work, theta_start, beta_start, log_prior, method)
        if work is not model:  # the modes, linear predictor and weights in the caller's row order
            state = model.conditional_modes(outcome.theta, outcome.beta, u_start=outcome.state.u, tol=1e-13,
                                            min_iter=2)
            outcome = replace(outcome, state=state, passes=outcome.passes + state.passes)
        return outcome


def _fit_glmm(
    model: MixedModel,
    theta_start: np.ndarray | None,
    beta_start: np.ndarray | None,
    log_prior: LogPrior | None,
    method: str,
) -> FitOutcome:
    beta0 = glm_start(model.data)[0] if beta_start is None else np.asarray(beta_start, dtype=float)
    term = model.covariance
    theta0 = term.theta_start if theta_start is None else np.asarray(theta_start, dtype=float)
    theta_information = np.full(term.n_theta, np.nan)
    if theta_start is None:
        theta0, theta_information, variance = model.moment_start(beta0)
        scale = conditional_scale(model.family, variance)
        theta0, theta_information = theta0 * scale, theta_information / scale**2
        beta0 = beta0 * scale if beta_start is None else beta0
    # the modes at the start, and the log-likelihood and gradient there: the whitening of beta needs the modes,
    # the optimiser's first step the value and gradient (one evaluation for both)
    value0, grad0, state_start = model.loglik_and_gradient(theta0, beta0)
    info = model.beta_information(state_start)
    try:
        R = np.linalg.cholesky(info).T
    except np.linalg.LinAlgError:
        R = np.diag(np.sqrt(np.maximum(np.diag(info), 1e-12)))
    objective = _Objective(model, beta0, R, log_prior)
    objective.evaluations += 1
    objective.passes += 1  # beta's information
    value0, grad0, state_start = objective.in_x(theta0, beta0, value0, grad0, state_start)
    objective.u, objective.u_theta = state_start.u, theta0
    n_theta = objective.n_theta

    # Scale theta by its curvature at the start: the moment start's information where it gives one, else
    # one gradient difference per theta element.
    for k in range(n_theta):
        curvature = -theta_information[k]
        if not (np.isfinite(curvature) and curvature < 0):
            step = 1e-3 * max(1.0, abs(theta0[k]))
            shifted = theta0.copy()
            shifted[k] += step
            curvature = (objective.loglik(objective.to_x(shifted, beta0))[1][k] - grad0[k]) / step
        if curvature < 0 and np.isfinite(curvature):
            objective.theta_scale[k] = min(1.0 / np.sqrt(-curvature), 10.0)
    objective.u, objective.u_theta = state_start.u, theta0
    # the optimiser's first call is at this start point, evaluated above from the same modes: reuse it
    x0 = objective.to_x(theta0, beta0)
    objective.known = (x0, value0, np.concatenate([grad0[:n_theta] * objective.theta_scale, grad0[n_theta:]]),
                       state_start)

    lower = term.lower_bounds
    bounds = [(0.0 if np.isfinite(lo) else None, None) for lo in lower] + [(None, None)] * model.X.shape[1]
    if log_prior is not None:  # blme's default prior is -inf at an SD of 0: L-BFGS-B's projections must stay finite
        bounds = [(MAP_THETA_FLOOR if lo == 0.0 else lo, hi) for lo, hi in bounds]
    x = objective.to_x(theta0, beta0)
    restarts, plain_restarts, previous = 0, 0, -np.inf
    while True:
        result = _minimise(objective, x, bounds, method)
        assert objective.best is not None
        x, value, grad_x, state, H_x, decrement = _polish(objective, objective.best[1], objective.best[3],
                                                           lower, result.get("polish_start"))
        # A variance parameter at 0 is a stationary point whatever the data (the likelihood is even
        # in it), so the optimiser's stop proves nothing there: look inside the boundary, and
        # restart from the interior when the likelihood rises.
        interior = _interior_improvement(objective, x, value, state, lower)
        stalled = interior is None and (decrement < 1e-6 or value <= previous + 1e-9
                                        or plain_restarts >= MAX_PLAIN_RESTARTS)
        if stalled or restarts >= MAX_RESTARTS:
            break
        previous = value
        plain_restarts += interior is None
        x = x if interior is None else interior
        restarts += 1
    boundary_verified = interior is None
    theta, beta = objective.split(x)
    prior_value = 0.0 if log_prior is None else float(log_prior(theta, beta)[0])
    value -= prior_value  # the log-likelihood (for a MAP fit the objective added the log prior)
    quadrature_change = _quadrature_change(model, theta, beta, state, value)
    converged = bool(decrement < 1e-6) and boundary_verified and abs(quadrature_change) <= QUADRATURE_TOLERANCE

    J_inv = np.linalg.inv(objective.jacobian())
    hessian = J_inv.T @ H_x @ J_inv
    gradient = J_inv.T @ grad_x
    return FitOutcome(theta, beta, value, state, hessian, gradient, objective.evaluations, objective.passes,
                      converged, str(result.message), decrement, model.n_nodes, boundary_verified, restarts,
                      quadrature_change, prior_value, method)


# A log prior density of (theta, beta) and its gradient: the hook of a MAP fit (glmmteach.glmm.bglmer)
LogPrior = Callable[[np.ndarray, np.ndarray], tuple[float, np.ndarray]]

# The optimisers fit_glmm offers (lme4's allFit tries each of its own): Newton's method with the analytic
# Hessian (the default where the model gives one: available_optimisers), L-BFGS-B with the analytic gradient
# (the default otherwise), and derivative-free methods on the log-likelihood alone, as lme4's Nelder-Mead and
# bobyqa: Nelder-Mead and COBYQA (Powell's successor of BOBYQA, in scipy >= 1.14), and Powell's conjugate
# directions. Derivative-free stops are tested by the same analytic gradient afterwards.
OPTIMISERS = ("Newton", "L-BFGS-B", "Nelder-Mead", "COBYQA", "Powell")


def available_optimisers(model: MixedModel, prior: bool = False) -> tuple[str, ...]:
    """The optimisers of ``OPTIMISERS`` for ``model`` (``prior``: a MAP fit): Newton's method needs the analytic
    Hessian of the objective, which the model gives for its log-likelihood only."""
    return OPTIMISERS if model.hessian_available and not prior else OPTIMISERS[1:]


def default_optimiser(model: MixedModel, log_prior: LogPrior | None = None) -> str:
    """The first of :func:`available_optimisers`: Newton's method where the model gives its Hessian and the
    objective is the log-likelihood, else L-BFGS-B."""
    return available_optimisers(model, log_prior is not None)[0]

_DERIVATIVE_FREE_OPTIONS = {
    "Nelder-Mead": {"maxfev": 20000, "xatol": 1e-9, "fatol": 1e-12, "adaptive": True},
    "COBYQA": {"maxfev": 20000, "final_tr_radius": 1e-7},
    "Powell": {"maxfev": 20000, "xtol": 1e-9, "ftol": 1e-14},
}


def _minimise(objective: _Objective, x: np.ndarray, bounds: list, method: str) -> optimize.OptimizeResult:
    """One run of the chosen optimiser from ``x`` (the derivative-free ones see only the value)."""
    if method == "Newton":
        return _newton(objective, x)
    if method == "L-BFGS-B":
        return optimize.minimize(objective, x, jac=True, method="L-BFGS-B", bounds=bounds,
                                 options={"maxiter": 2000, "maxfun": 5000, "ftol": 1e-13, "gtol": 1e-6,
                                          "maxcor": 20})
    lower = [-np.inf if lo is None else lo for lo, _ in bounds]
    box = optimize.Bounds(lower, [np.inf] * len(bounds))
    return optimize.minimize(lambda z: objective(z)[0], x, method=method, bounds=box,
                             options=_DERIVATIVE_FREE_OPTIONS[method])


def _newton(objective: _Objective, x: np.ndarray) -> optimize.OptimizeResult:
    r"""Newton's method with the analytic Hessian (:mod:`glmmteach.glmm.hessian`), for one scalar
    :math:`\theta`: each step solves with :math:`|{-H}|` (the eigenvalues' absolute values, so that it rises
    where the log-likelihood is not concave), at most a bound long (``NEWTON_MAX_STEP`` at first, doubled after
    each full step at the bound: a start far from the optimum is left in a few steps), halved until the
    log-likelihood does not fall. The likelihood is even in the SD :math:`\theta`, so a step past 0 is
    reflected (the same likelihood), after first trying the point where it crosses 0
    (:func:`_step_fractions`); a full step to an SD of nearly 0 (``NEWTON_SNAP``) is tried at 0 itself: where
    the maximum is on the boundary the steps shrink towards it (cubically: the likelihood is even) but never
    reach it, and the boundary probes test 0, not a point near it. The modes of each trial
    point start from their first-order prediction (the implicit function theorem). Stops when the Newton
    decrement is below ``NEWTON_DECREMENT``; the fit's polish, boundary probes and convergence test follow as
    after any optimiser, the polish from the last point's evaluation.

    On the crossover trial (134 rows, SD 23.5 from a start of 1.5) it takes 13 evaluations where L-BFGS-B took
    32 and its Hessian 5 more; on a 500-row random intercept, 4 where L-BFGS-B took 11 (and 2 more)."""
    n_theta = objective.n_theta
    if objective.known is not None and np.array_equal(x, objective.known[0]):
        value, grad_x, state = objective.known[1:]
    else:
        value, grad_x, state = objective.loglik(x)
    objective.known = None
    message = f"Newton: {NEWTON_MAX_ITER} steps without a decrement below {NEWTON_DECREMENT:g}"
    tight, polish_start, radius = False, None, NEWTON_MAX_STEP
    for _ in range(NEWTON_MAX_ITER):  # the optimiser's steps, each over all the data
        H_x, mode_slopes = objective.hessian_and_mode_slopes(x, grad_x, state)
        step, decrement = _ascent_step(H_x, grad_x, radius)
        if decrement < NEWTON_DECREMENT:
            message = f"Newton decrement below {NEWTON_DECREMENT:g}"
            if tight:  # the point was evaluated as the polish evaluates it: hand it over
                polish_start = (value, grad_x, state, H_x)
            break
        tight = decrement < NEWTON_TIGHTEN  # near the end: evaluate as tightly as the polish does
        evaluation = (1e-13, 2) if tight else (1e-10, 1)
        mode_step = (mode_slopes @ step).reshape(state.u.shape)
        accepted = None
        for halving, fraction in enumerate(_step_fractions(x[:n_theta], step[:n_theta])):
            trial = x + fraction * step
            # the modes predicted to first order (implicit function theorem): fewer inner Newton steps
            u_start = state.u + fraction * mode_step if np.all(trial[:n_theta] >= 0) else state.u
            trial[:n_theta] = np.abs(trial[:n_theta])
            if halving == 0:  # a boundary is reached exactly: Newton's steps towards it shrink (cubically)
                # (and the fraction that ends on 0 ends there, not a rounding error away)
                trial[:n_theta] = np.where(trial[:n_theta] < NEWTON_SNAP, 0.0, trial[:n_theta])
            trial_value, trial_grad, trial_state = objective.loglik(trial, u_start, *evaluation)
            if trial_value >= value - 1e-12 * (1.0 + abs(value)):
                accepted = trial
                break
        if accepted is None:
            message = "Newton: no step raised the log-likelihood"
            break
        # the step bound follows the steps taken: doubled after a full step at the bound, else the step taken
        length = float(np.sqrt(step @ step))
        radius = 2.0 * radius if fraction == 1.0 and length >= radius * (1 - 1e-12) else max(fraction * length,
                                                                                            NEWTON_MAX_STEP)
        x, value, grad_x, state = accepted, trial_value, trial_grad, trial_state
    objective.u, objective.u_theta = state.u, objective.split(x)[0]
    objective.best = (value, x.copy(), grad_x, state)
    return optimize.OptimizeResult(x=x, fun=-value, jac=-grad_x, message=message,
                                   polish_start=polish_start)


def _step_fractions(theta_x: np.ndarray, theta_step: np.ndarray) -> Iterator[float]:
    """The fractions of a Newton step tried in turn: 1, 1/2, 1/4, ...; and first, when the full step takes an SD
    (``theta_x``, optimiser units) past 0, the fraction that ends on 0. Its reflection has the same likelihood,
    but a step that crosses 0 is most often one towards a boundary maximum that overshoots it (a quadratic
    model of a likelihood that is flat in the SD), and the reflected point is then far on the other side."""
    crossing = (theta_x > 0) & (theta_x + theta_step < 0)
    if crossing.any():
        yield float(np.min(theta_x[crossing] / -theta_step[crossing]))
    for halving in range(NEWTON_HALVINGS):
        yield 0.5**halving


def _ascent_step(H_x: np.ndarray, grad_x: np.ndarray, radius: float) -> tuple[np.ndarray, float]:
    """The Newton step up the log-likelihood with the absolute eigenvalues of ``-H_x`` (at least 1e-8 of the
    largest), shortened to ``radius``, and the decrement ``g' |H|^{-1} g``."""
    eigenvalues, vectors = np.linalg.eigh(-H_x)
    magnitude = np.abs(eigenvalues)
    magnitude = np.maximum(magnitude, 1e-8 * max(float(magnitude.max()), 1e-300))
    projected = vectors.T @ grad_x
    step = vectors @ (projected / magnitude)
    decrement = float(projected @ (projected / magnitude))
    length = float(np.sqrt(step @ step))
    if length > radius:
        step *= radius / length
    return step, decrement


NEWTON_MAX_ITER = 200
NEWTON_HALVINGS = 40
NEWTON_MAX_STEP = 20.0  # the first step bound, in optimiser units: about twenty standard errors at the start
NEWTON_SNAP = 1e-4  # a full step to an SD below this (optimiser units) is tried at the boundary, 0, itself
NEWTON_TIGHTEN = 1e-4  # below this decrement the trial points are evaluated with the polish's tolerance
NEWTON_DECREMENT = 1e-12  # twice the distance to the maximum, in log-likelihood units
MAP_THETA_FLOOR = 1e-10  # lower bound of a diagonal theta (optimiser units) in a MAP fit; < SINGULAR_TOLERANCE
MAX_RESTARTS = 10  # each restart strictly raises the log-likelihood; this only bounds the work
MAX_PLAIN_RESTARTS = 2  # restarts of an unconverged fit away from the boundary (fresh L-BFGS-B memory)
BOUNDARY_PROBES = (0.01, 0.1, 0.3, 1.0)  # trial values of a boundary theta, in start standard errors
BOUNDARY_RISE = 1e-7  # a rise of the log-likelihood above evaluation noise (PIRLS to 1e-13)


def _polish(objective: _Objective, x: np.ndarray, state: ModeState, lower: np.ndarray,
            evaluated: tuple[float, np.ndarray, ModeState, np.ndarray] | None = None):
    """Re-evaluate ``x`` tightly, take one Newton step if it helps, and return the point with its
    log-likelihood, gradient, modes, Hessian (optimiser coordinates) and Newton decrement. ``evaluated``: the
    value, gradient, modes and Hessian at ``x`` already evaluated tightly (by Newton's method), not redone.

    Convergence is judged by the gradient (Newton decrement on the analytic Hessian, or the finite-difference
    Hessian of the analytic gradient), not by the optimiser's message."""
    n_theta = objective.n_theta
    if evaluated is None:
        value, grad_x, state = objective.loglik(x, state.u, tol=1e-13, min_iter=2)
        H_x = objective.hessian(x, grad_x, state)
    else:
        value, grad_x, state, H_x = evaluated
    decrement, step = _newton_decrement(H_x, grad_x, x, n_theta, lower)
    if decrement > 1e-10:
        x_new = x + step
        x_new[:n_theta] = np.where(np.isfinite(lower), np.maximum(x_new[:n_theta], 0.0), x_new[:n_theta])
        new_value, new_grad, new_state = objective.loglik(x_new, state.u, tol=1e-13, min_iter=2)
        if new_value > value:
            x, value, grad_x, state = x_new, new_value, new_grad, new_state
            decrement = _newton_decrement(H_x, grad_x, x, n_theta, lower)[0]
    return x, value, grad_x, state, H_x, decrement


def _interior_improvement(objective: _Objective, x: np.ndarray, value: float, state: ModeState,
                          lower: np.ndarray) -> np.ndarray | None:
    r"""Test every variance parameter at (or near) 0: the log-likelihood at small and moderate
    positive values of that :math:`\theta_k` (the others held). Because the likelihood is even in
    :math:`\theta_k` for a scalar SD, its gradient there is 0 and only this one-sided look shows whether 0 is
    a maximum (the curvature is :math:`2\,\Delta\ell/\delta^2` at the smallest probe). Returns the
    best interior point when one beats ``x``, else ``None`` (every boundary component verified).

    A correlated term with a diagonal entry of :math:`T` at 0 is probed from each of its equivalent forms
    (:func:`_boundary_forms`): there the entries below that 0 are not identified, and the one-sided slope
    of moving the diagonal off 0 depends on them (to first order, through the correlation it implies)."""
    theta, beta = objective.split(x)
    starts = [x] + [objective.to_x(form, beta)
                    for form in _boundary_forms(objective.model.covariance, theta)]
    best_value, best_x = value + BOUNDARY_RISE, None
    for start in starts:  # the point and its few equivalent forms
        at_bound = np.flatnonzero(np.isfinite(lower) & (np.abs(objective.split(start)[0]) < SINGULAR_TOLERANCE))
        for k in at_bound:
            for delta in BOUNDARY_PROBES:
                trial = start.copy()
                trial[k] = max(delta, start[k])
                trial_value = objective.loglik(trial, state.u, tol=1e-13, min_iter=2)[0]
                if trial_value > best_value:
                    best_value, best_x = trial_value, trial
    return best_x


def _boundary_forms(covariance: CovarianceTerm | StackedCovariance, theta: np.ndarray) -> list[np.ndarray]:
    r"""Equivalent :math:`\theta` (the same :math:`TT^\top`, so the same model and likelihood) of every
    correlated term that has a diagonal entry of :math:`T` below ``SINGULAR_TOLERANCE``: its canonical factor
    (lower Cholesky factor of :math:`TT^\top`, a zero column at each zero pivot; moving that diagonal off 0
    then means correlation 0), and the same with a later column moved into the zero column with either sign
    (correlation :math:`\pm 1`). One term changes at a time.

    Found by the randomised several-term test against lme4: for :math:`(1 + x | a)` the boundary
    :math:`(t_{11}, t_{21}, t_{22}) = (0, -0.10, 0)` looked verified (moving :math:`t_{11}` off 0 there means a
    correlation of -1, and the likelihood fell), while from the same model written :math:`(0, 0, 0.10)` it
    rose by 2.65 to the optimum (lme4 stops at the same wrong boundary); in other cases only the form with
    correlation +1 or -1 rises."""
    stacked = isinstance(covariance, StackedCovariance)
    covs = covariance.covs if stacked else [covariance]
    parts = covariance.split(theta) if stacked else [np.asarray(theta, dtype=float)]
    forms = []
    for i, (cov, part) in enumerate(zip(covs, parts, strict=True)):  # loop over the few terms
        T = cov.T(part)
        if not (cov.correlated and cov.n_re > 1 and np.min(np.abs(np.diag(T))) < SINGULAR_TOLERANCE):
            continue
        canonical = _semidefinite_cholesky(T @ T.T)
        variants = [canonical]
        for k in np.flatnonzero(np.diag(canonical) == 0.0):  # a zero column, and a later one moved into it
            for j in range(k + 1, cov.n_re):
                if np.any(canonical[:, j]):
                    for sign in (1.0, -1.0):
                        moved = canonical.copy()
                        moved[:, k], moved[:, j] = sign * canonical[:, j], 0.0
                        variants.append(moved)
        for variant in variants:
            new_parts = list(parts)
            new_parts[i] = cov.theta(variant)
            forms.append(np.concatenate(new_parts))
    return forms


def _semidefinite_cholesky(sigma: np.ndarray) -> np.ndarray:
    """Lower-triangular :math:`L` with :math:`LL^\top` = ``sigma`` (positive semidefinite, r×r with r a few),
    a zero column wherever the pivot vanishes."""
    r = len(sigma)
    L = np.zeros((r, r))
    scale = max(float(np.max(np.diag(sigma))), 1e-300)
    for k in range(r):  # r is the number of effects of one term
        pivot = sigma[k, k] - L[k, :k] @ L[k, :k]
        if pivot <= 1e-12 * scale:
            continue
        L[k, k] = np.sqrt(pivot)
        L[k + 1:, k] = (sigma[k + 1:, k] - L[k + 1:, :k] @ L[k, :k]) / L[k, k]
    return L


def _quadrature_change(model: MixedModel, theta: np.ndarray, beta: np.ndarray, state, value: float) -> float:
    r"""The log-likelihood at the optimum with ``QUADRATURE_CHECK_FACTOR`` times the nodes minus the fit's
    (0 for the Laplace approximation, which is the model's objective by choice, not an attempt at the integral;
    ``value``: the fit's log-likelihood there, from the same modes ``state``).

    An optimum of the ``n_nodes`` approximation is a maximum of the likelihood only where the approximation is
    accurate; where it is not, the optimiser climbs its error, and different start values or step rules end at
    different points of a noisy surface, each with a small gradient (lesson 14's runaway trials: two versions of
    the engine and lme4 reported different "optima" whose log-likelihoods differed by up to 1, each 2.6-5.4
    above the true log-likelihood at its estimates, and all called converged)."""
    if model.n_nodes == 1:
        return 0.0
    check = model.with_nodes(QUADRATURE_CHECK_FACTOR * model.n_nodes).marginal_loglik(theta, beta, state.u, tol=1e-13)
    return float(check - value)


def _newton_decrement(H_x: np.ndarray, grad_x: np.ndarray, x: np.ndarray, n_theta: int,
                      lower: np.ndarray) -> tuple[float, np.ndarray]:
    """Newton decrement g' (-H)^{-1} g over the coordinates not held at a bound, and the step."""
    free = np.ones(len(x), dtype=bool)
    free[:n_theta] = ~(np.isfinite(lower) & (x[:n_theta] <= 1e-10) & (grad_x[:n_theta] < 0))
    step = np.zeros(len(x))
    if not free.any():
        return 0.0, step
    neg_H = -H_x[np.ix_(free, free)]
    try:
        np.linalg.cholesky(neg_H)
    except np.linalg.LinAlgError:
        return float(np.max(np.abs(grad_x[free]))), step
    step[free] = np.linalg.solve(neg_H, grad_x[free])
    return float(grad_x[free] @ step[free]), step


def maximise_beta(
    model: MixedModel | GroupedData,
    theta: np.ndarray,
    beta_start: np.ndarray,
    correlated: bool | None = None,
    n_nodes: int | None = None,
) -> tuple[np.ndarray, float]:
    """Maximise the marginal log-likelihood over beta with theta held fixed (``correlated`` and ``n_nodes``: for
    a bare :class:`GroupedData`, see :func:`~glmmteach.glmm.grouped.as_model`)."""
    model = as_model(model, correlated, n_nodes)
    n_theta = len(theta)
    u_cache: dict[str, np.ndarray] = {}

    def objective(beta: np.ndarray) -> tuple[float, np.ndarray]:
        value, grad, state = model.loglik_and_gradient(theta, beta, u_cache.get("u"))
        u_cache["u"] = state.u
        return -value, -grad[n_theta:]

    result = optimize.minimize(objective, beta_start, jac=True, method="L-BFGS-B",
                               options={"maxiter": 500, "ftol": 1e-15, "gtol": 1e-7})
    return result.x, -float(result.fun)



# --------------------------------------------------------------------------------------------
# Maximisation with parameters held (profile likelihood)
# --------------------------------------------------------------------------------------------


def maximise_held(model: MixedModel, x0: np.ndarray,
                  transform, bounds: list[tuple[float | None, float | None]],
                  u_start: np.ndarray | None = None) -> tuple[np.ndarray, float, np.ndarray | None]:
    r"""Maximise the log-likelihood over free coordinates ``x`` of :math:`(\theta, \beta)`, the rest held:
    ``transform(x)`` returns :math:`(\theta, \beta, J)`, :math:`J = \partial(\theta, \beta)/\partial x`, so that
    the held values (a fixed effect, an SD or a correlation, for :mod:`glmmteach.glmm.profile`) live inside
    ``transform``. L-BFGS-B with the engine's analytic gradient (chained through ``J``), the modes carried from
    one evaluation to the next. Returns the maximiser, the log-likelihood there and its modes. ``model``
    in group order (:meth:`~glmmteach.glmm.model.MixedModel.sorted_by_group`)."""
    memo: dict[str, np.ndarray | None] = {"u": u_start}

    def objective(x: np.ndarray) -> tuple[float, np.ndarray]:
        try:
            theta, beta, J = transform(x)
            value, grad, state = model.loglik_and_gradient(theta, beta, memo["u"], 1e-12, 1)
        except np.linalg.LinAlgError:  # an extreme trial point of the line search (as _Objective.loglik)
            return 1e300, np.zeros_like(x)
        if not np.isfinite(value):
            return 1e300, np.zeros_like(x)
        memo["u"] = state.u
        return -value, -(J.T @ grad)

    with single_threaded_blas():
        if len(x0) == 0:
            value = -objective(np.asarray(x0, dtype=float))[0]
            return np.asarray(x0, dtype=float), value, memo["u"]
        result = optimize.minimize(objective, x0, jac=True, method="L-BFGS-B", bounds=bounds,
                                   options={"maxiter": 2000, "maxfun": 5000, "ftol": 1e-15, "gtol": 1e-8,
                                            "maxcor": 20})
        value = -objective(result.x)[0]  # the modes of the returned point, evaluated last
    return result.x, value, memo["u"]
