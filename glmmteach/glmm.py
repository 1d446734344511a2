r"""Generalized linear mixed models by maximum likelihood: :func:`glmer`.

The model (one grouping factor, lme4's parametrisation):

.. math::

    g\bigl(E[y_{ij} \mid u_i]\bigr) = \eta_{ij} = x_{ij}^\top\beta + o_{ij} + z_{ij}^\top T_\theta u_i,
    \qquad u_i \sim N(0, I_r), \qquad \Sigma = T_\theta T_\theta^\top .

:math:`\theta` holds the entries of the lower-triangular :math:`T_\theta` (its diagonal is
bounded below by zero). The fit has two nested loops:

1. *inner*: for given :math:`(\theta, \beta)`, the conditional modes :math:`\tilde u_i` of every
   group by batched Newton (:func:`glmmteach.integration.conditional_modes`), to a relative
   tolerance of 1e-10;
2. *outer*: maximise the Laplace (``nAGQ=1``) or adaptive Gauss–Hermite (``nAGQ>1``)
   log-likelihood over :math:`(\theta, \beta)` with L-BFGS-B, using the analytic gradient
   (differentiated through the modes by the implicit function theorem), starting from the
   GLM fit for :math:`\beta` and :math:`\theta = 1`. The fixed effects are optimised in
   whitened coordinates :math:`\delta = R(\beta - \beta_0)`, :math:`R^\top R` the information
   for :math:`\beta` at the start, and each :math:`\theta_k` is divided by its standard error
   at the start, so that all directions have a comparable scale.

Standard errors follow lme4: the Hessian of the objective with respect to :math:`(\theta, \beta)`
at the optimum (central differences of the analytic gradient; forward differences above
200,000 rows, where the log-likelihood is nearly quadratic), inverted; the :math:`\beta` block is
the covariance of :math:`\hat\beta`. The same Hessian gives a final Newton step and the
convergence test (Newton decrement below 1e-6), whatever message the optimiser stopped with.

Warnings: singular (boundary) fit, non-convergence, a badly scaled problem (largest eigenvalue of
the deviance Hessian above 1e6, as lme4's "very large eigenvalue"; the warning names the column
and a rescaling) and a flat likelihood ridge (smallest eigenvalue of the deviance Hessian, per
standard deviation of each covariate, below 1).
"""

from __future__ import annotations

import contextlib
import html
import re
import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from scipy import optimize, stats

from . import integration as ig
from .exceptions import (
    ConvergenceWarning,
    DataError,
    FlatRidgeWarning,
    FormulaError,
    GlmmteachError,
    ScalingWarning,
    SingularFitWarning,
)
from .families import Family, get_family
from .formula import Design, build_design, parse_formula
from .rformat import coef_table_text, format_r

try:  # optional: keeps OpenBLAS from waking threads for tiny matrices (10x slower on a busy machine)
    from threadpoolctl import threadpool_limits
except ImportError:  # pragma: no cover
    threadpool_limits = None

SINGULAR_TOLERANCE = 1e-4  # lme4's isSingular() default
LARGE_EIGENVALUE = 1e6  # lme4: "very large eigenvalue" when the deviance Hessian exceeds 1/tol
RIDGE_CURVATURE = 1.0  # smallest scaled deviance curvature below which the likelihood is a flat ridge


# --------------------------------------------------------------------------------------------
# Fitting
# --------------------------------------------------------------------------------------------


@dataclass
class FitOutcome:
    """What the optimiser found: estimates, log-likelihood, modes, Hessian and diagnostics."""

    theta: np.ndarray
    beta: np.ndarray
    llf: float
    state: ig.ModeState
    hessian: np.ndarray  # of the log-likelihood in (theta, beta)
    gradient: np.ndarray  # of the log-likelihood in (theta, beta)
    evaluations: int
    passes: int
    converged: bool
    message: str
    newton_decrement: float


def glm_start(data: ig.GroupedData, max_iter: int = 50) -> tuple[np.ndarray, np.ndarray]:
    r"""Fixed-effects-only GLM fit (Newton/Fisher scoring with step-halving), the starting point.

    Starts from least squares on the linked, slightly shrunk responses (R's ``mustart``) and stops
    when the Newton decrement is below 1e-6: a starting point needs no more. It works on the GLMM's
    own likelihood kernel rather than calling :func:`glmmteach.glm.irls` (R's algorithm, with its
    deviance bookkeeping and QR solves), which costs three times as much on the 1e6-row benchmark.
    Returns
    :math:`\hat\beta_{GLM}` and the information :math:`X^\top W X` there.
    """
    kernel = data.kernel
    n = np.ones(data.nobs) if data.trials is None else data.trials
    offset = 0.0 if data.offset is None else data.offset
    if kernel.family == "poisson":
        eta_start = np.log(data.y + 0.1)
    else:
        p = (data.y + 0.5) / (n + 1.0)
        eta_start = {"logit": np.log(p / (1 - p)), "probit": ig.special.ndtri(p),
                     "cloglog": np.log(-np.log1p(-p))}[kernel.link]
    beta = np.linalg.lstsq(data.X, eta_start - offset, rcond=None)[0]
    kv = kernel.evaluate(data.eta_fixed(beta), data.y, data.trials)
    value = float(kv.loglik.sum())
    info = np.eye(data.X.shape[1])
    for _ in range(max_iter):
        grad = data.X.T @ kv.score
        info = data.X.T @ (kv.fisher[:, None] * data.X)
        step = np.linalg.solve(info, grad)
        if float(grad @ step) < 1e-6:
            break
        for _ in range(40):  # step-halving: the new point must not lower the log-likelihood
            kv_new = kernel.evaluate(data.eta_fixed(beta + step), data.y, data.trials)
            new_value = float(kv_new.loglik.sum())
            if new_value >= value - 1e-12 * abs(value):
                break
            step = step * 0.5
        beta, value, kv = beta + step, new_value, kv_new
    return beta, info


def _beta_information(data: ig.GroupedData, state: ig.ModeState) -> np.ndarray:
    r"""Information for :math:`\beta` with the random effects profiled out at fixed :math:`\theta`:
    :math:`X^\top W X - \sum_i B_i^\top H_i^{-1} B_i`, :math:`B_i = \sum_j w_j (T^\top z_j) x_j^\top`."""
    w = state.values.fisher
    X = data.X
    info = X.T @ (w[:, None] * X)
    r, p = state.ZT.shape[1], X.shape[1]
    B = np.empty((data.n_groups, r, p))
    for a in range(r):
        wa = w * state.ZT[:, a]
        for k in range(p):
            B[:, a, k] = data.group_sum(wa * X[:, k])
    HinvB = np.linalg.solve(state.hessian_fisher, B)
    return info - np.einsum("gak,gal->kl", B, HinvB)


class _Objective:
    r"""Negative log-likelihood and gradient in optimiser coordinates :math:`x = (\theta/s, \delta)`.

    :math:`\beta = \beta_0 + R^{-1}\delta` whitens the fixed effects; :math:`s` scales each
    :math:`\theta_k` by :math:`(-\partial^2\ell/\partial\theta_k^2)^{-1/2}` at the start, so that a
    unit step means about one standard error in every coordinate (L-BFGS-B is not scale free).
    """

    def __init__(self, data: ig.GroupedData, correlated: bool, n_nodes: int, beta0: np.ndarray, R: np.ndarray):
        self.data, self.correlated, self.n_nodes = data, correlated, n_nodes
        self.beta0 = beta0
        self.R_inv = np.linalg.inv(R)
        self.n_theta = len(ig.theta_positions(data.n_re, correlated)[0])
        self.theta_scale = np.ones(self.n_theta)
        self.u: np.ndarray | None = None
        self.evaluations = 0
        self.passes = 0
        self.best: tuple[float, np.ndarray] | None = None

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
        value, grad, state = ig.loglik_and_gradient(self.data, theta, beta, self.correlated, self.n_nodes, start,
                                                    tol, min_iter)
        self.evaluations += 1
        self.passes += state.passes + (1 if self.n_nodes == 1 else 2 * self.n_nodes)
        grad_x = np.concatenate([grad[: self.n_theta] * self.theta_scale, self.R_inv.T @ grad[self.n_theta :]])
        return value, grad_x, state

    def __call__(self, x: np.ndarray) -> tuple[float, np.ndarray]:
        value, grad_x, state = self.loglik(x)
        if not np.isfinite(value):
            return 1e300, np.zeros_like(x)
        self.u = state.u
        if self.best is None or value > self.best[0]:
            self.best = (value, x.copy(), grad_x, state)
        return -value, -grad_x

    def hessian(self, x: np.ndarray, grad_x: np.ndarray, u_start: np.ndarray, central: bool) -> np.ndarray:
        """Differences of the analytic gradient (log-likelihood, optimiser coordinates): central, or
        forward from the known ``grad_x`` (half the evaluations; used for large data, where the
        log-likelihood is close to quadratic)."""
        k = len(x)
        H = np.empty((k, k))
        h = 1e-3 if central else 1e-4  # about 1e-3 (1e-4) standard errors in these coordinates
        for i in range(k):  # loop over the few parameters, not over data
            xp = x.copy()
            xp[i] += h
            gp = self.loglik(xp, u_start, tol=1e-13, min_iter=2)[1]
            if central:
                xm = x.copy()
                xm[i] -= h
                H[:, i] = (gp - self.loglik(xm, u_start, tol=1e-13, min_iter=2)[1]) / (2 * h)
            else:
                H[:, i] = (gp - grad_x) / h
        return 0.5 * (H + H.T)


CENTRAL_DIFFERENCE_LIMIT = 200_000  # rows up to which the Hessian uses central differences


def fit_glmm(
    data: ig.GroupedData,
    correlated: bool,
    n_nodes: int = 1,
    beta_start: np.ndarray | None = None,
    theta_start: np.ndarray | None = None,
) -> FitOutcome:
    """Maximise the (approximate) marginal likelihood over (theta, beta); see the module docstring.

    The linear algebra here is on tiny matrices (parameters, r×r blocks), where multithreaded
    BLAS only costs time, so BLAS runs single-threaded during the fit when threadpoolctl is present.
    """
    limit = threadpool_limits(1, user_api="blas") if threadpool_limits is not None else contextlib.nullcontext()
    with limit:
        return _fit_glmm(data, correlated, n_nodes, beta_start, theta_start)


def _fit_glmm(
    data: ig.GroupedData,
    correlated: bool,
    n_nodes: int,
    beta_start: np.ndarray | None,
    theta_start: np.ndarray | None,
) -> FitOutcome:
    beta0 = glm_start(data)[0] if beta_start is None else np.asarray(beta_start, dtype=float)
    rows, cols = ig.theta_positions(data.n_re, correlated)
    theta0 = np.where(rows == cols, 1.0, 0.0) if theta_start is None else np.asarray(theta_start, dtype=float)
    T0 = ig.theta_to_T(theta0, data.n_re, correlated)
    state0 = ig.conditional_modes(data, beta0, T0)
    info = _beta_information(data, state0)
    try:
        R = np.linalg.cholesky(info).T
    except np.linalg.LinAlgError:
        R = np.diag(np.sqrt(np.maximum(np.diag(info), 1e-12)))
    objective = _Objective(data, correlated, n_nodes, beta0, R)
    objective.passes += state0.passes + 1
    objective.u = state0.u
    n_theta = objective.n_theta

    # Scale theta by its curvature at the start (one gradient difference per theta element).
    _, grad0, _ = objective.loglik(objective.to_x(theta0, beta0))
    for k in range(n_theta):
        step = 1e-3 * max(1.0, abs(theta0[k]))
        shifted = theta0.copy()
        shifted[k] += step
        curvature = (objective.loglik(objective.to_x(shifted, beta0))[1][k] - grad0[k]) / step
        if curvature < 0 and np.isfinite(curvature):
            objective.theta_scale[k] = min(1.0 / np.sqrt(-curvature), 10.0)
    objective.u = state0.u

    lower = ig.theta_lower_bounds(data.n_re, correlated)
    bounds = [(0.0 if np.isfinite(lo) else None, None) for lo in lower] + [(None, None)] * data.X.shape[1]
    x0 = objective.to_x(theta0, beta0)
    result = optimize.minimize(objective, x0, jac=True, method="L-BFGS-B", bounds=bounds,
                               options={"maxiter": 2000, "maxfun": 5000, "ftol": 1e-13, "gtol": 1e-6,
                                        "maxcor": 20})
    assert objective.best is not None
    _, x, grad_x, state = objective.best

    # Judge convergence by the gradient (Newton decrement on the finite-difference Hessian of the
    # analytic gradient), not by the optimiser's message; take one Newton step to polish.
    central = data.nobs <= CENTRAL_DIFFERENCE_LIMIT
    value, grad_x, state = objective.loglik(x, state.u, tol=1e-13, min_iter=2)
    H_x = objective.hessian(x, grad_x, state.u, central)
    decrement = _newton_decrement(H_x, grad_x, x, n_theta, lower)[0]
    if decrement > 1e-10:
        _, step = _newton_decrement(H_x, grad_x, x, n_theta, lower)
        x_new = x + step
        x_new[:n_theta] = np.where(np.isfinite(lower), np.maximum(x_new[:n_theta], 0.0), x_new[:n_theta])
        new_value, new_grad, new_state = objective.loglik(x_new, state.u, tol=1e-13, min_iter=2)
        if new_value > value:
            x, value, grad_x, state = x_new, new_value, new_grad, new_state
            decrement = _newton_decrement(H_x, grad_x, x, n_theta, lower)[0]
    converged = bool(decrement < 1e-6)

    theta, beta = objective.split(x)
    J_inv = np.linalg.inv(objective.jacobian())
    hessian = J_inv.T @ H_x @ J_inv
    gradient = J_inv.T @ grad_x
    return FitOutcome(theta, beta, value, state, hessian, gradient, objective.evaluations, objective.passes,
                      converged, str(result.message), decrement)


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


# --------------------------------------------------------------------------------------------
# Input checks and the public entry point
# --------------------------------------------------------------------------------------------


def _check_nagq(nAGQ: Any) -> int:
    if isinstance(nAGQ, bool) or not isinstance(nAGQ, int | np.integer) or nAGQ < 1:
        raise GlmmteachError(
            f"nAGQ must be a whole number >= 1 (1 = Laplace, more = adaptive Gauss-Hermite nodes), got {nAGQ!r}"
        )
    return int(nAGQ)


def _check_response_varies(design: Design, family: Family) -> None:
    y = design.y
    name = design.response_name
    if family.is_binomial:
        if np.all(y == 0):
            what = "0 (no successes)"
        elif np.all(y == design.trials):
            what = "all trials (successes)" if design.has_trials else "1"
        else:
            return
        raise DataError(
            f"the response {name!r} is {what} in every row: with identical outcomes the fixed effects "
            "have no finite maximum-likelihood estimate"
        )
    if np.all(y == y[0]):
        raise DataError(
            f"the response {name!r} has the same value ({y[0]:g}) in every row: there is no variation to model"
        )


def glmer(
    formula: str,
    data: pd.DataFrame,
    family: str | Family = "binomial",
    link: str | None = None,
    nAGQ: int = 1,
    offset: Any = None,
    trials: Any = None,
) -> GLMMResults:
    r"""Fit a generalized linear mixed model by maximum likelihood, as lme4's ``glmer``.

    Parameters
    ----------
    formula : str
        R-style formula with one random-effects term, e.g. ``"outcome ~ trt*period + (1|ID)"``,
        ``"y ~ x + (1 + x | g)"`` (correlated intercept and slope) or ``"y ~ x + (1 + x || g)"``
        (uncorrelated). ``offset(z)`` terms are allowed.
    data : DataFrame
        Rows with a missing value in a model variable are dropped (and counted).
    family, link
        ``"binomial"`` (logit, probit, cloglog) or ``"poisson"`` (log).
    nAGQ : int
        1: Laplace approximation; > 1: adaptive Gauss–Hermite quadrature with that many nodes
        per group (only for a single scalar random effect, as in lme4).
    offset : str or array, optional
        Extra known term of the linear predictor (column name or values).
    trials : str or array, optional
        Binomial totals: the response then counts successes out of ``trials``.

    Returns
    -------
    GLMMResults
    """
    n_nodes = _check_nagq(nAGQ)
    fam = get_family(family, link)
    if fam.name not in ("binomial", "poisson"):
        raise GlmmteachError(f"glmer fits the binomial and poisson families, not {fam.name!r}")
    kernel = ig.LikelihoodKernel.from_spec(fam.name, fam.link.name)
    parsed = parse_formula(formula)
    if not parsed.bars:
        raise FormulaError(
            f"the formula {formula!r} has no random-effects term such as (1 | group); "
            "for a model without random effects use glmmteach.glm"
        )
    bar = parsed.bars[0]
    if isinstance(data, pd.DataFrame) and bar.group not in data.columns:
        raise DataError(
            f"the grouping factor {bar.group!r} of the random-effects term {bar} is not a column of the data"
        )
    design = build_design(formula, data, family=fam, offset=offset, trials=trials)
    if len(design.random) > 1:
        raise FormulaError(
            f"glmer fits one grouping factor; the formula has {len(design.random)}: "
            + ", ".join(t.group_name for t in design.random)
        )
    term = design.random[0]
    if n_nodes > 1 and term.Z.shape[1] != 1:
        raise GlmmteachError(
            f"nAGQ > 1 (adaptive Gauss-Hermite quadrature) needs a single scalar random effect; "
            f"{' + '.join(map(str, parsed.bars))} has "
            f"{term.Z.shape[1]} effects per group ({', '.join(term.names)}). Use nAGQ=1 (Laplace)."
        )
    _check_response_varies(design, fam)
    if np.linalg.matrix_rank(design.X) < design.X.shape[1]:
        raise DataError(
            "the fixed-effects model matrix is rank deficient (some columns of "
            f"{', '.join(design.column_names)} are linear combinations of others); drop the redundant terms"
        )
    grouped = ig.GroupedData(
        design.X, term.Z, design.y, term.group_codes, term.n_groups, kernel,
        trials=design.trials if design.has_trials else None,
        offset=design.offset if np.any(design.offset != 0) else None,
    )
    outcome = fit_glmm(grouped, term.correlated, n_nodes)
    return GLMMResults(formula, fam, design, grouped, outcome, n_nodes, data)


# --------------------------------------------------------------------------------------------
# Results
# --------------------------------------------------------------------------------------------


def _r_abbreviate_one(text: str, minlength: int) -> str:
    """R's ``abbreviate`` C routine for one string (drop lower-case vowels, then letters, from the right)."""
    s = list(text.strip())
    if len(s) <= minlength:
        return "".join(s)

    def first(i: int) -> bool:
        return s[i - 1].isspace()

    def last(i: int) -> bool:
        return (not s[i - 1].isspace()) and (i + 1 >= len(s) or s[i + 1].isspace())

    def vowel(i: int) -> bool:
        return s[i] in "aeiou"

    def lower(i: int) -> bool:
        return s[i].islower()

    rules = [
        lambda i: vowel(i) and last(i),
        lambda i: vowel(i) and not first(i),
        lambda i: lower(i) and last(i),
        lambda i: lower(i) and not first(i),
        lambda i: not first(i) and not s[i].isspace(),
    ]
    for rule in rules:
        for i in range(len(s) - 1, 0, -1):
            if i < len(s) and rule(i):
                del s[i]
            if len(s) <= minlength:
                return "".join(s)
    return "".join(s)


def r_abbreviate(names: list[str], minlength: int) -> list[str]:
    """R's ``abbreviate(names, minlength)``: lengthen the abbreviations until they are unique."""
    out = [_r_abbreviate_one(nm, minlength) for nm in names]
    length = minlength
    while len(set(out)) < len(out) and length < 200:
        length += 1
        dup = {a for a in out if out.count(a) > 1}
        out = [_r_abbreviate_one(nm, length) if a in dup else a for nm, a in zip(names, out, strict=True)]
    return out


class GLMMResults:
    """A fitted GLMM: estimates, standard errors, random effects, diagnostics, predictions.

    Attributes mirror :class:`glmmteach.GLMResults` where they mean the same thing. ``deviance`` is
    :math:`-2\\log L` (what lme4's summary prints under "deviance"); lme4's ``deviance(fit)``, the
    sum of squared deviance residuals at the conditional modes, is ``deviance_conditional``.
    """

    def __init__(self, formula: str, family: Family, design: Design, data: ig.GroupedData, outcome: FitOutcome,
                 n_nodes: int, frame: pd.DataFrame | None = None):
        self.formula = formula
        self.family = family
        self.design = design
        self.nAGQ = n_nodes
        self._data = data
        self._outcome = outcome
        self._frame = frame
        term = design.random[0]
        self._term = term
        self.correlated = term.correlated
        self.group_name = term.group_name
        self.re_names = list(term.names)
        self.theta = outcome.theta
        self.T = ig.theta_to_T(outcome.theta, data.n_re, term.correlated)
        self.llf = float(outcome.llf)
        self.nobs = design.nobs
        self.ngroups = term.n_groups
        self.dropped_rows = design.dropped_rows
        self.converged = outcome.converged
        self.n_evaluations = outcome.evaluations
        self.data_passes = outcome.passes
        names = design.column_names
        self.params = pd.Series(outcome.beta, index=names, name="Estimate")
        n_theta = len(self.theta)
        self.warnings: list[str] = []

        # Covariance of the estimates from the Hessian of the log-likelihood in (theta, beta).
        info = -outcome.hessian
        try:
            np.linalg.cholesky(info)
            cov_full = np.linalg.inv(info)
            cov_beta = cov_full[n_theta:, n_theta:]
        except np.linalg.LinAlgError:
            cov_full = None
            cov_beta = np.linalg.inv(info[n_theta:, n_theta:])
            self._warn("the Hessian with respect to (theta, beta) is not positive definite; standard errors "
                       "are conditional on the random-effect parameters", ConvergenceWarning)
        self._cov_full = cov_full
        self._cov = pd.DataFrame(cov_beta, index=names, columns=names)
        self.bse = pd.Series(np.sqrt(np.diag(cov_beta)), index=names, name="Std. Error")
        self.zvalues = pd.Series(self.params / self.bse, name="z value")
        self.pvalues = pd.Series(2 * stats.norm.sf(np.abs(self.zvalues)), index=names, name="Pr(>|z|)")
        self._diagnose(n_theta)

    # ---- warnings ---------------------------------------------------------------------------
    def _warn(self, message: str, category: type[Warning]) -> None:
        self.warnings.append(message)
        warnings.warn(message, category, stacklevel=5)

    def _diagnose(self, n_theta: int) -> None:
        if self.singular:
            self._warn("boundary (singular) fit: a random-effect standard deviation is estimated at (or near) "
                       "zero; see cov_re", SingularFitWarning)
        if not self.converged:
            self._warn(f"the fit may not have converged: Newton decrement {self._outcome.newton_decrement:.2g} "
                       "at the final estimates (should be < 1e-6)", ConvergenceWarning)
        deviance_hessian = -2.0 * self._outcome.hessian
        eigenvalues = np.linalg.eigvalsh(deviance_hessian)
        if eigenvalues.max() > LARGE_EIGENVALUE:
            # The eigenvalue comes from the column with the largest curvature (sum of w x^2):
            # dividing that column by f divides its curvature by f^2.
            diag_h = np.diag(deviance_hessian)[n_theta:]
            worst = int(np.argmax(diag_h))
            column = self.params.index[worst]
            factor = 10.0 ** np.ceil(np.log10(np.sqrt(diag_h[worst] / LARGE_EIGENVALUE)))
            values = self._data.X[:, worst]
            constant = np.flatnonzero(np.ptp(self._data.X, axis=0) == 0)
            if constant.size and diag_h[constant].max() > LARGE_EIGENVALUE:
                # Even the intercept's curvature is huge: the data carry that much information
                # (large counts or many rows); no rescaling of covariates removes it.
                advice = (f"even the intercept's curvature is {diag_h[constant].max():.3g}, so this reflects the "
                          "amount of information in the data (large counts or many rows), and no rescaling removes "
                          "it")
            else:
                advice = f"Column {column!r} dominates: measure it in larger units (e.g. {column}/{factor:g})"
                if np.std(values) > 0 and abs(values.mean()) > np.std(values):
                    advice += (f" and centre it (subtract its mean, {values.mean():.4g}) so the intercept is "
                               "interpretable")
            self._warn(
                f"model is nearly unidentifiable: very large eigenvalue ({eigenvalues.max():.3g}) of the deviance "
                f"Hessian (lme4: 'Rescale variables?'). {advice}. This is a scaling issue, not a fit problem: "
                "the estimates are unaffected", ScalingWarning)
        # Flat ridge: the smallest curvature of the deviance, with each coefficient measured per
        # standard deviation of its covariate (so the scale of x does not matter). Well-determined
        # fits have values in the tens to thousands; the crossover data's are below 0.1.
        X = self._data.X
        spread = X.std(axis=0)
        spread[spread == 0] = 1.0
        scale = np.concatenate([np.ones(n_theta), spread])
        scaled = scale[:, None] * deviance_hessian * scale[None, :]
        values, vectors = np.linalg.eigh(scaled)
        if values[0] < RIDGE_CURVATURE:
            labels = [f"theta{k + 1}" for k in range(n_theta)] + list(self.params.index)
            direction = vectors[:, 0]
            top = np.argsort(-np.abs(direction))[:3]
            along = ", ".join(f"{labels[k]} ({direction[k]:+.2f})" for k in top)
            self._warn(
                f"flat likelihood ridge: moving the estimates by one unit (per SD of each covariate) along the "
                f"direction {along} changes -2 logLik by only {values[0] / 2:.3g}; the optimum is poorly "
                "determined (with few observations per group, compare nAGQ > 1 fits)", FlatRidgeWarning)

    # ---- basic quantities -------------------------------------------------------------------
    @property
    def k_params(self) -> int:
        """Number of estimated parameters: fixed effects plus random-effect (co)variances."""
        return len(self.params) + len(self.theta)

    @property
    def singular(self) -> bool:
        """True for a boundary fit: a random-effect SD below 1e-4 (lme4's ``isSingular``)."""
        rows, cols = ig.theta_positions(self._data.n_re, self.correlated)
        return bool(np.any(np.abs(self.theta[rows == cols]) < SINGULAR_TOLERANCE))

    @property
    def df_resid(self) -> int:
        return self.nobs - self.k_params

    @property
    def deviance(self) -> float:
        r""":math:`-2\log L` (the "deviance" of lme4's summary table)."""
        return -2.0 * self.llf

    @property
    def aic(self) -> float:
        return -2.0 * self.llf + 2 * self.k_params

    @property
    def bic(self) -> float:
        return -2.0 * self.llf + np.log(self.nobs) * self.k_params

    @property
    def method(self) -> str:
        return "Laplace" if self.nAGQ == 1 else f"adaptive Gauss-Hermite quadrature, nAGQ = {self.nAGQ}"

    def cov_params(self) -> pd.DataFrame:
        """Covariance matrix of the fixed-effect estimates."""
        return self._cov.copy()

    @property
    def corr_fixef(self) -> pd.DataFrame:
        """Correlation of the fixed-effect estimates."""
        sd = np.sqrt(np.diag(self._cov.to_numpy()))
        return pd.DataFrame(self._cov.to_numpy() / np.outer(sd, sd), index=self._cov.index, columns=self._cov.columns)

    @property
    def cov_re(self) -> pd.DataFrame:
        r"""Random-effect covariance :math:`\Sigma = T_\theta T_\theta^\top` (r×r)."""
        return pd.DataFrame(self.T @ self.T.T, index=self.re_names, columns=self.re_names)

    @property
    def sd_re(self) -> pd.Series:
        """Random-effect standard deviations."""
        return pd.Series(np.sqrt(np.diag(self.T @ self.T.T)), index=self.re_names, name="Std.Dev.")

    @property
    def ranef(self) -> pd.DataFrame:
        r"""Conditional modes :math:`\tilde b_i = T\tilde u_i` per group with conditional SDs
        (columns ``<name>`` and ``<name>_sd``; :math:`\operatorname{Var}(b_i\mid y)\approx T H_i^{-1}T^\top`)."""
        state = self._outcome.state
        b = state.u @ self.T.T
        cond_cov = np.einsum("ab,gbc,dc->gad", self.T, ig._batch_inverse(state.hessian_fisher), self.T)
        cond_sd = np.sqrt(np.clip(np.diagonal(cond_cov, axis1=1, axis2=2), 0, None))
        frame = {}
        for a, name in enumerate(self.re_names):
            frame[name] = b[:, a]
            frame[f"{name}_sd"] = cond_sd[:, a]
        return pd.DataFrame(frame, index=pd.Index(self._term.group_levels, name=self.group_name))

    def _conditional_mean(self) -> np.ndarray:
        mu = self._data.kernel.mean(self._outcome.state.eta)
        return mu

    @property
    def fittedvalues(self) -> pd.Series:
        """Conditional means (probabilities for the binomial family) at the conditional modes."""
        return pd.Series(self._conditional_mean(), index=self.design.row_index)

    @property
    def resid_pearson(self) -> pd.Series:
        r"""Pearson residuals at the conditional modes, :math:`(y - n\mu)/\sqrt{n V(\mu)}` (lme4's
        scaled residuals; the GLMM dispersion is 1)."""
        mu = self._conditional_mean()
        n = 1.0 if self._data.trials is None else self._data.trials
        resid = (self._data.y - n * mu) / np.sqrt(n * self._data.kernel.variance(mu))
        return pd.Series(resid, index=self.design.row_index, name="pearson")

    @property
    def deviance_conditional(self) -> float:
        """lme4's ``deviance(fit)``: the sum of unit deviances at the conditional modes."""
        mu = self._conditional_mean()
        y = self._data.y
        if self._data.kernel.family == "poisson":
            unit = 2 * (ig.special.xlogy(y, y / mu) - (y - mu))
        else:
            n = 1.0 if self._data.trials is None else self._data.trials
            unit = 2 * (ig.special.xlogy(y, y / (n * mu)) + ig.special.xlogy(n - y, (n - y) / (n * (1 - mu))))
        return float(unit.sum())

    # ---- inference --------------------------------------------------------------------------
    def conf_int(self, alpha: float = 0.05) -> pd.DataFrame:
        r"""Wald intervals :math:`\hat\beta \pm z_{1-\alpha/2}\,\mathrm{SE}` for the fixed effects."""
        q = stats.norm.ppf(1 - alpha / 2)
        pct = [f"{100 * alpha / 2:g} %", f"{100 * (1 - alpha / 2):g} %"]
        return pd.DataFrame({pct[0]: self.params - q * self.bse, pct[1]: self.params + q * self.bse})

    def profile_sd(self, sd_values: np.ndarray) -> pd.DataFrame:
        r"""Profile log-likelihood :math:`\max_\beta \log L(\beta, \sigma)` on a grid of random-intercept SDs."""
        self._require_scalar("profile_sd")
        beta = self.params.to_numpy()
        rows = []
        for sd in np.asarray(sd_values, dtype=float):
            beta, value = ig.maximise_beta(self._data, np.array([sd]), beta, True, self.nAGQ)
            rows.append([sd, value, *beta])
        return pd.DataFrame(rows, columns=["sd", "loglik", *self.params.index])

    def _require_scalar(self, what: str) -> None:
        if self._data.n_re != 1:
            raise GlmmteachError(f"{what} is available for a single scalar random effect; this model has "
                                 f"{self._data.n_re} ({', '.join(self.re_names)})")

    def conf_int_sd(self, alpha: float = 0.05) -> pd.Series:
        r"""Profile-likelihood confidence interval for the random-effect SD :math:`\sigma`.

        The interval is :math:`\{\sigma : 2[\log L(\hat\beta,\hat\sigma) - \ell_p(\sigma)] \le
        \chi^2_{1,1-\alpha}\}`, with :math:`\ell_p(\sigma) = \max_\beta \log L(\beta, \sigma)`; its lower
        end is 0 when :math:`\sigma = 0` is inside.
        """
        self._require_scalar("conf_int_sd")
        sd_hat = float(abs(self.theta[0]))
        cutoff = self.llf - 0.5 * stats.chi2.ppf(1 - alpha, 1)
        beta_hat = self.params.to_numpy()

        def excess(sd: float) -> float:
            return ig.maximise_beta(self._data, np.array([sd]), beta_hat, True, self.nAGQ)[1] - cutoff

        lower = 0.0
        if sd_hat > 0 and excess(0.0) < 0:
            lower = optimize.brentq(excess, 0.0, sd_hat, xtol=1e-6 * max(sd_hat, 1e-3))
        hi = max(2.0 * sd_hat, 0.1)
        for _ in range(60):
            if excess(hi) < 0:
                break
            hi *= 2.0
        upper = optimize.brentq(excess, max(sd_hat, 1e-12), hi, xtol=1e-6 * max(sd_hat, 1e-3))
        pct = [f"{100 * alpha / 2:g} %", f"{100 * (1 - alpha / 2):g} %"]
        return pd.Series([lower, upper], index=pct, name=f"sd({self.re_names[0]}|{self.group_name})")

    profile_ci = conf_int_sd

    # ---- prediction -------------------------------------------------------------------------
    def predict(self, newdata: pd.DataFrame | None = None, type: str = "link", conditional: bool = True,
                n_nodes: int = 40, offset: Any = None) -> pd.Series:
        r"""Predictions on the link scale (``type="link"``) or the mean scale (``type="response"``).

        ``conditional=True``: given the estimated random effects (groups not seen in the fit get 0),
        :math:`g^{-1}(x^\top\hat\beta + o + z^\top\tilde b_i)`.
        ``conditional=False``: population level. On the link scale this is :math:`x^\top\hat\beta + o`
        (lme4's ``re.form = NA``); on the response scale the random effect is integrated out,
        :math:`E[y] = \int g^{-1}(x^\top\hat\beta + o + z^\top b)\varphi_\Sigma(b)\,db`, by
        Gauss–Hermite quadrature (:func:`glmmteach.predict.population_average_mean`) — not
        :math:`g^{-1}(x^\top\hat\beta)`, which is the mean for a group with :math:`b = 0`.
        Binomial means are probabilities. ``offset`` gives the new rows' extra offset when the fit
        was given ``offset=`` as an array (a column name is looked up in ``newdata``).
        """
        from .predict import population_average_mean

        if type not in ("link", "response"):
            raise GlmmteachError(f"type must be 'link' or 'response', got {type!r}")
        kernel = self._data.kernel
        if newdata is None:
            X, offset, Z = self._data.X, self.design.offset, self._data.Z
            codes = self._data.groups
            index = self.design.row_index
        else:
            X, offset = self.design.new_fixed(newdata, offset)
            Z, codes = self._new_random(newdata, conditional)
            index = newdata.index
        eta_fixed = X @ self.params.to_numpy() + offset
        if conditional:
            b = self._outcome.state.u @ self.T.T
            b_rows = np.where((codes >= 0)[:, None], b[np.clip(codes, 0, None)], 0.0)
            eta = eta_fixed + np.einsum("nr,nr->n", Z, b_rows)
            values = eta if type == "link" else kernel.mean(eta)
        elif type == "link":
            values = eta_fixed
        else:
            re_variance = np.einsum("na,ab,nb->n", Z, self.T @ self.T.T, Z)
            values = population_average_mean(eta_fixed, re_variance, kernel.link, n_nodes)
        return pd.Series(values, index=index, name=f"{type}{'' if conditional else ' (population)'}")

    def _new_random(self, newdata: pd.DataFrame, conditional: bool) -> tuple[np.ndarray, np.ndarray]:
        frame = newdata
        if self._term.group_name not in frame.columns:
            if conditional:
                raise DataError(
                    f"newdata has no column {self._term.group_name!r} (the grouping factor); add it, or use "
                    "conditional=False for population-level predictions"
                )
            # population-level predictions need Z but no group: any level will do
            frame = newdata.assign(**{self._term.group_name: self._term.group_levels[0]})
        return self._term.new_rows(frame)

    # ---- printing ---------------------------------------------------------------------------
    def _formula_text(self) -> str:
        parsed = parse_formula(self.formula)
        fixed = [re.sub(r"\s*\*\s*", " * ", t) for t in parsed.fixed_terms]
        bars = [f"({b.expr} {'|' if b.correlated else '||'} {b.group})" for b in parsed.bars]
        return f"{parsed.response} ~ " + " + ".join(fixed + bars)

    def _varcorr_lines(self) -> list[str]:
        cov = self.T @ self.T.T
        var = np.diag(cov)
        sd = np.sqrt(var)
        var_s = format_r(var, 4)
        sd_s = format_r(sd, 4)
        header = ["Groups", "Name", "Variance", "Std.Dev."]
        if self.correlated:
            groups = [self.group_name if a == 0 else "" for a in range(len(self.re_names))]
        else:  # lme4 lists (1 + x || g) as separate terms g, g.1, ...
            groups = [self.group_name if a == 0 else f"{self.group_name}.{a}" for a in range(len(self.re_names))]
        rows = [[groups[a], name, var_s[a], sd_s[a]] for a, name in enumerate(self.re_names)]
        if len(self.re_names) > 1 and self.correlated:
            header.append("Corr")
            corr = cov / np.outer(np.where(sd > 0, sd, 1), np.where(sd > 0, sd, 1))
            for a in range(len(self.re_names)):
                rows[a].append(" ".join(f"{corr[a, c]:.2f}" for c in range(a)))
        widths = [max(len(header[j]), *(len(r[j]) for r in rows)) for j in range(len(header))]
        out = [" " + " ".join(h.ljust(w) for h, w in zip(header, widths, strict=True))]
        for r in rows:
            out.append(" " + " ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)))
        return out

    def _corr_lines(self) -> list[str]:
        names = list(self.params.index)
        if len(names) < 2:
            return []
        corr = self.corr_fixef.to_numpy()
        row_names = r_abbreviate(names, 11)[1:]
        col_names = r_abbreviate(names, 6)[:-1]
        cells = [[f"{corr[i, j]:.3f}" if j < i else "" for j in range(len(names) - 1)] for i in range(1, len(names))]
        width = [max(len(col_names[j]), *(len(cells[i][j]) for i in range(len(cells)))) for j in range(len(col_names))]
        name_w = max(len(n) for n in row_names)
        lines = [" " * name_w + " " + " ".join(c.ljust(w) for c, w in zip(col_names, width, strict=True))]
        for rn, row in zip(row_names, cells, strict=True):
            lines.append(rn.ljust(name_w) + " " + " ".join(c.rjust(len(c)).ljust(w) if c.startswith("-")
                                                             else (" " + c).ljust(w) if c else "".ljust(w)
                                                             for c, w in zip(row, width, strict=True)))
        return lines

    def summary(self) -> GLMMSummary:
        """lme4's ``summary(glmer)``: printed in its layout, shown as tables in a notebook."""
        return GLMMSummary(self)

    def _repr_html_(self) -> str:
        return self.summary()._repr_html_()

    def __repr__(self) -> str:
        coefs = ", ".join(f"{k}={v:.4g}" for k, v in self.params.items())
        sds = ", ".join(f"{k}={v:.4g}" for k, v in self.sd_re.items())
        return (f"<GLMMResults {self.family.name}({self.family.link.name}), {self.method}: {coefs}; "
                f"SD({self.group_name}) {sds}; logLik {self.llf:.3f}>")


class GLMMSummary:
    """Printable summary of a :class:`GLMMResults` in the layout of lme4's ``summary(glmer)``."""

    def __init__(self, result: GLMMResults):
        self.result = result

    @property
    def coefficients(self) -> pd.DataFrame:
        r = self.result
        return pd.DataFrame({"Estimate": r.params, "Std. Error": r.bse, "z value": r.zvalues, "Pr(>|z|)": r.pvalues})

    def _ic_lines(self) -> list[str]:
        r = self.result
        values = np.round([r.aic, r.bic, r.llf, r.deviance], 1)
        cells = format_r(values, 7) + [str(r.df_resid)]
        names = ["AIC", "BIC", "logLik", "deviance", "df.resid"]
        width = max(max(map(len, cells)), max(map(len, names)))
        return [" ".join(n.rjust(width) for n in names) + " ", " ".join(c.rjust(width) for c in cells) + " "]

    def _resid_lines(self) -> list[str]:
        resid = self.result.resid_pearson.to_numpy()
        q = np.quantile(resid, [0, 0.25, 0.5, 0.75, 1.0])
        mx = np.max(np.abs(q))
        decimals = max(0, 6 - int(np.ceil(np.log10(mx)))) if mx > 0 else 6
        cells = format_r(np.round(q, decimals), 5)
        names = ["Min", "1Q", "Median", "3Q", "Max"]
        width = max(max(map(len, cells)), max(map(len, names)))
        return [" ".join(n.rjust(width) for n in names) + " ", " ".join(c.rjust(width) for c in cells) + " "]

    def __str__(self) -> str:
        r = self.result
        if r.nAGQ == 1:
            method = ["Generalized linear mixed model fit by maximum likelihood (Laplace",
                      "  Approximation) [glmerMod]"]
        else:
            method = ["Generalized linear mixed model fit by maximum likelihood (Adaptive",
                      f"  Gauss-Hermite Quadrature, nAGQ = {r.nAGQ}) [glmerMod]"]
        table = coef_table_text(list(r.params.index), r.params.to_numpy(), r.bse.to_numpy(), r.zvalues.to_numpy(),
                                r.pvalues.to_numpy(), stat_name="z")
        lines = [
            *method,
            f" Family: {r.family.name}  ( {r.family.link.name} )",
            f"Formula: {r._formula_text()}",
            "   Data: data",
            "",
            *self._ic_lines(),
            "",
            "Scaled residuals: ",
            *self._resid_lines(),
            "",
            "Random effects:",
            *r._varcorr_lines(),
            f"Number of obs: {r.nobs}, groups:  {r.group_name}, {r.ngroups}",
            "",
            "Fixed effects:",
            table,
        ]
        corr = r._corr_lines()
        if corr:
            lines += ["", "Correlation of Fixed Effects:", *corr]
        if r.dropped_rows:
            lines += [f"({r.dropped_rows} observation(s) deleted due to missingness)"]
        for message in r.warnings:
            lines.append(message)
        return "\n".join(lines)

    __repr__ = __str__

    def _repr_html_(self) -> str:
        r = self.result
        facts = pd.Series({
            "family (link)": f"{r.family.name} ({r.family.link.name})",
            "method": r.method,
            "observations / groups": f"{r.nobs} / {r.ngroups} ({r.group_name})",
            "logLik": f"{r.llf:.3f}",
            "AIC / BIC": f"{r.aic:.2f} / {r.bic:.2f}",
            "converged": str(r.converged),
        }, name="")
        re_table = pd.DataFrame({"Variance": np.diag(r.cov_re.to_numpy()), "Std.Dev.": r.sd_re.to_numpy()},
                                index=r.re_names)
        fixed = self.coefficients.to_html(float_format=lambda v: f"{v:.4g}")
        warn = "".join(f"<p><i>{html.escape(m)}</i></p>" for m in r.warnings)
        return (f"<p><b>glmer</b>: <code>{html.escape(r._formula_text())}</code></p>"
                f"{facts.to_frame().to_html(header=False)}<p>Random effects</p>{re_table.to_html()}"
                f"<p>Fixed effects</p>{fixed}{warn}")
