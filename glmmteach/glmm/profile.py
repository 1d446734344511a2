r"""Profile-likelihood intervals for every parameter of a GLMM, in the shape of lme4's ``profile.merMod``.

The parameters are lme4's: for each random-effects term, in :math:`\theta`'s order (the lower triangle of
:math:`T_\theta` column by column), the SD of each effect on the diagonal and the correlation of each pair
below it (:math:`\Sigma = D C D`, :math:`T_\theta = D\,\mathrm{chol}(C)`), then the fixed effects. For one
parameter :math:`\phi_j` held at :math:`v` every other parameter is re-optimised
(:func:`~glmmteach.glmm.optimize.maximise_held`, the engine's analytic gradient chained through the map
:math:`\phi \mapsto (\theta, \beta)`), giving the profile log-likelihood :math:`\ell_p(v)` and lme4's signed
root :math:`\zeta(v) = \operatorname{sign}(v - \hat\phi_j)\sqrt{2(\hat\ell - \ell_p(v))}`. The interval's ends
are the roots of :math:`\zeta(v) = \pm z_{1-\alpha/2}`, found by bracketing (steps from the Wald scale,
lengthened by linear extrapolation of :math:`\zeta`) and Brent's method on the profile itself: every end is
an exact evaluation of the profile, never a spline or an extrapolation (lme4 interpolates its profile with a
spline through a few points). Where :math:`|\zeta|` stays below the cut-off up to a boundary (an SD of 0, a
correlation of :math:`\pm 1`) that boundary is the end and the ``note`` column says so; where it stays below
it however far the parameter goes, the end is :math:`\pm\infty` with a note (a runaway SD, separation).

A negative binomial GLMM's shape :math:`\theta_{NB}` is profiled by refitting the model at each fixed shape
(lme4's ``glmer(family = negative.binomial(theta))``), on :math:`\log\theta_{NB}`; the other parameters'
profiles hold the shape at its estimate, as lme4's ``confint`` of a ``glmer.nb`` fit does (its note says so), or,
with ``nb_shape="profiled"``, re-optimise it at every point too (the full profile; about ten times the work).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy import optimize, stats

from ..exceptions import check_level
from .grouped import as_model
from .model import GroupedData, MixedModel
from .optimize import fit_glmm, maximise_held
from .terms import CovarianceTerm

CORRELATION_LIMIT = 1.0 - 1e-7  # a correlation profiled up to +-1: C stays positive definite just inside
MAX_STEPS = 40  # bracketing steps per end before the end is declared infinite
MAX_DISTANCE = 1e4  # in Wald standard errors: beyond this the profile is declared flat (an infinite end)
FLAT_RISE = 1e-6  # a rise of |zeta| this small over a lengthening step: the profile has levelled off
ROOT_XTOL = 1e-9  # relative, on the parameter (Brent's method)
SHAPE_WINDOW = 1.0  # the search for the NB shape at a profile point: log theta_NB within this of the last


@dataclass
class Parameter:
    """One profiled parameter: its row name, kind (``"sd"``, ``"cor"``, ``"fixed"``, ``"shape"``) and
    estimate."""

    name: str
    kind: str
    estimate: float


@dataclass
class ProfileEnd:
    """One end of an interval: its value and a note (empty for an interior root)."""

    value: float
    note: str = ""


@dataclass
class ProfileTrace:
    """The points of one parameter's profile that were evaluated: parameter values and :math:`\\zeta`."""

    values: list[float] = field(default_factory=list)
    zeta: list[float] = field(default_factory=list)


def _terms(model: MixedModel | GroupedData, correlated: bool | None) -> list[CovarianceTerm]:
    cov = as_model(model, correlated).covariance
    return list(getattr(cov, "covs", [cov]))  # several terms stacked, or the one term


def _term_phi(cov: CovarianceTerm, part: np.ndarray) -> tuple[np.ndarray, list[str]]:
    """SDs and correlations of one term in theta's order, with their kinds."""
    T = cov.T(part)
    sigma = T @ T.T
    sd = np.sqrt(np.diag(sigma))
    safe = np.where(sd > 0, sd, 1.0)
    corr = sigma / np.outer(safe, safe)
    rows, cols = cov.positions
    values = np.where(rows == cols, sd[rows], corr[rows, cols])
    return values, ["sd" if a == c else "cor" for a, c in zip(rows, cols, strict=True)]


def _term_theta(cov: CovarianceTerm, phi: np.ndarray) -> np.ndarray:
    r""":math:`\theta` of one term from its SDs and correlations: :math:`T = D\,\mathrm{chol}(C)`."""
    rows, cols = cov.positions
    if not cov.correlated or cov.n_re == 1:
        return phi.copy()
    sd = np.zeros(cov.n_re)
    sd[rows[rows == cols]] = phi[rows == cols]
    C = np.eye(cov.n_re)
    off = rows != cols
    C[rows[off], cols[off]] = phi[off]
    C[cols[off], rows[off]] = phi[off]
    return cov.theta(sd[:, None] * np.linalg.cholesky(C))


def covariance_parameters(model: MixedModel | GroupedData, correlated: bool | None,
                          theta: np.ndarray) -> np.ndarray:
    """The SDs and correlations of every term, in theta's order (lme4's ``confint`` rows)."""
    covs = _terms(model, correlated)
    parts = np.split(np.asarray(theta, dtype=float), np.cumsum([c.n_theta for c in covs])[:-1])
    return np.concatenate([_term_phi(c, p)[0] for c, p in zip(covs, parts, strict=True)])


class Profiler:
    r"""The profile log-likelihood of each parameter of a fitted GLMM (see the module docstring).

    ``model`` is the fit's engine model (or a :class:`GroupedData`, :func:`~glmmteach.glmm.grouped.as_model`),
    ``theta``/``beta``/``llf`` its
    estimates and log-likelihood, ``hessian`` the Hessian of the log-likelihood in :math:`(\theta, \beta)` (it
    sets the scale of the first steps and of the optimiser's coordinates), ``names`` the row names of the
    covariance parameters (lme4's order) and ``beta_names`` the fixed effects'. ``profile_shape``: a negative
    binomial model's shape is re-optimised at every point (else held at the model's, as lme4)."""

    def __init__(self, model: MixedModel | GroupedData, correlated: bool | None, n_nodes: int | None,
                 theta: np.ndarray, beta: np.ndarray, llf: float, hessian: np.ndarray, names: list[str],
                 beta_names: list[str],
                 profile_shape: bool = False):
        self.model = as_model(model, correlated, n_nodes).sorted_by_group()
        self.llf = float(llf)
        self.covs = _terms(model, correlated)
        self.sizes = [c.n_theta for c in self.covs]
        parts = np.split(np.asarray(theta, dtype=float), np.cumsum(self.sizes)[:-1])
        phis = [_term_phi(c, p) for c, p in zip(self.covs, parts, strict=True)]
        self.n_cov = int(sum(self.sizes))
        self.phi_hat = np.concatenate([p for p, _ in phis] + [np.asarray(beta, dtype=float)])
        kinds = [k for _, ks in phis for k in ks] + ["fixed"] * len(beta)
        self.parameters = [Parameter(n, k, float(v)) for n, k, v in
                           zip(list(names) + list(beta_names), kinds, self.phi_hat, strict=True)]
        self.information = self._information(hessian)
        self.u0: np.ndarray | None = None
        self.found_higher = -np.inf  # the largest rise of a profile above the fit's log-likelihood
        # the NB shape re-optimised at each point (log theta_NB, its last optimum), or held in the model's family
        self.log_shape = float(np.log(model.family.theta)) if profile_shape else None

    # ---- the map phi -> (theta, beta) ----------------------------------------------------------
    def theta_of(self, phi_cov: np.ndarray) -> np.ndarray:
        parts = np.split(phi_cov, np.cumsum(self.sizes)[:-1])
        return np.concatenate([_term_theta(c, p) for c, p in zip(self.covs, parts, strict=True)])

    def theta_jacobian(self, phi_cov: np.ndarray) -> np.ndarray:
        """d theta / d phi_cov: the identity for scalar and uncorrelated terms, central differences of the
        (cheap, r×r) Cholesky map for correlated ones."""
        J = np.eye(self.n_cov)
        start = 0
        for cov, size in zip(self.covs, self.sizes, strict=True):  # loop over the few terms
            if cov.correlated and cov.n_re > 1:
                part = phi_cov[start:start + size]
                for k in range(size):  # the few parameters of the term
                    h = 1e-7 * max(1.0, abs(part[k]))
                    up, down = part.copy(), part.copy()
                    up[k] += h
                    down[k] -= h
                    J[start:start + size, start + k] = (_term_theta(cov, up) - _term_theta(cov, down)) / (2 * h)
            start += size
        return J

    def _information(self, hessian: np.ndarray) -> np.ndarray:
        """Observed information in phi (SDs, correlations, beta) at the estimates, from the fit's Hessian."""
        J = np.eye(len(self.phi_hat))
        try:
            J[: self.n_cov, : self.n_cov] = self.theta_jacobian(self.phi_hat[: self.n_cov])
        except np.linalg.LinAlgError:  # a correlation of +-1 at the estimates: the identity sets the scale
            pass
        return J.T @ (-np.asarray(hessian, dtype=float)) @ J

    def wald_se(self, j: int) -> float:
        """The Wald standard error of parameter ``j`` (the scale of the first steps); a fallback where the
        information is not positive definite (a boundary fit)."""
        try:
            se = float(np.sqrt(np.linalg.inv(self.information)[j, j]))
        except np.linalg.LinAlgError:
            se = np.nan
        if not (np.isfinite(se) and se > 0):
            info = self.information[j, j]
            se = 1.0 / np.sqrt(info) if info > 0 else 0.1 * max(1.0, abs(self.phi_hat[j]))
        return se

    # ---- one profile point ------------------------------------------------------------------
    def _coordinates(self, j: int):
        """Optimiser coordinates for profiling ``j``: each free covariance parameter divided by its scale
        (its bounds stay bounds), the free fixed effects whitened by the Cholesky factor of their information
        (as the fit's optimiser)."""
        free = np.flatnonzero(np.arange(len(self.phi_hat)) != j)
        cov_free = free[free < self.n_cov]
        beta_free = free[free >= self.n_cov]
        info_cov = np.diag(self.information)[cov_free]
        scale = np.where(info_cov > 0, 1.0 / np.sqrt(np.where(info_cov > 0, info_cov, 1.0)), 1.0)
        scale = np.clip(scale, 1e-3, 10.0)
        block = self.information[np.ix_(beta_free, beta_free)]
        try:
            R = np.linalg.cholesky(block).T
        except np.linalg.LinAlgError:
            R = np.diag(np.sqrt(np.maximum(np.diag(block), 1e-12)))
        R_inv = np.linalg.inv(R) if len(beta_free) else np.zeros((0, 0))
        return cov_free, beta_free, scale, R_inv

    def point(self, j: int, value: float, start: np.ndarray | None) -> tuple[float, np.ndarray]:
        """The profile log-likelihood with parameter ``j`` held at ``value`` and the maximiser over the others
        (in phi), started from ``start`` (phi; the estimates when ``None``). With ``profile_shape`` the
        negative binomial shape is re-optimised too (Brent's method on its log, around the last optimum)."""
        if self.log_shape is None:
            return self._point(self.model, j, value, start)
        found: dict[float, tuple[float, np.ndarray]] = {}

        def negative(s: float) -> float:
            family = self.model.family.with_theta(float(np.exp(s)))
            shaped = self.model.with_family(family)
            found[s] = self._point(shaped, j, value, start)
            return -found[s][0]

        centre = self.log_shape
        for _ in range(10):  # widen the search while its optimum is on an end of the window
            result = optimize.minimize_scalar(negative, bounds=(centre - SHAPE_WINDOW, centre + SHAPE_WINDOW),
                                              method="bounded", options={"xatol": 1e-7})
            if abs(result.x - centre) < 0.99 * SHAPE_WINDOW:
                break
            centre = float(result.x)
        self.log_shape = float(result.x)
        return found[result.x]

    def _point(self, model: MixedModel, j: int, value: float,
               start: np.ndarray | None) -> tuple[float, np.ndarray]:
        cov_free, beta_free, scale, R_inv = self._coordinates(j)
        beta_hat = self.phi_hat[beta_free]
        base = self.phi_hat.copy() if start is None else start.copy()
        base[j] = value
        n_cov_free = len(cov_free)

        def to_phi(x: np.ndarray) -> np.ndarray:
            phi = base.copy()
            phi[cov_free] = x[:n_cov_free] * scale
            phi[beta_free] = beta_hat + R_inv @ x[n_cov_free:]
            return phi

        def transform(x: np.ndarray):
            phi = to_phi(x)
            theta = self.theta_of(phi[: self.n_cov])
            J_x = np.zeros((len(phi), len(x)))  # d phi / d x
            J_x[cov_free, np.arange(n_cov_free)] = scale
            J_x[np.ix_(beta_free, n_cov_free + np.arange(len(beta_free)))] = R_inv
            J_full = np.eye(len(phi))
            J_full[: self.n_cov, : self.n_cov] = self.theta_jacobian(phi[: self.n_cov])
            return theta, phi[self.n_cov:], J_full @ J_x

        x0 = np.concatenate([base[cov_free] / scale, np.linalg.solve(R_inv, base[beta_free] - beta_hat)
                             if len(beta_free) else np.zeros(0)])
        bounds = [self._bounds(int(k), s) for k, s in zip(cov_free, scale, strict=True)]
        bounds += [(None, None)] * len(beta_free)
        x, loglik, u = maximise_held(model, x0, transform, bounds, self.u0)
        self.found_higher = max(self.found_higher, loglik - self.llf)
        self.u0 = u  # the next point is near: its modes start from these
        return loglik, to_phi(x)

    def _bounds(self, k: int, scale: float) -> tuple[float | None, float | None]:
        kind = self.parameters[k].kind
        if kind == "sd":
            return 0.0, None
        return -CORRELATION_LIMIT / scale, CORRELATION_LIMIT / scale

    def zeta(self, j: int, value: float, start: np.ndarray | None) -> tuple[float, np.ndarray]:
        """lme4's signed square root of the deviance difference at ``value``, and the maximiser."""
        loglik, phi = self.point(j, value, start)
        difference = max(2.0 * (self.llf - loglik), 0.0)
        return float(np.sign(value - self.phi_hat[j]) * np.sqrt(difference)), phi

    # ---- one interval -----------------------------------------------------------------------
    def limits(self, j: int) -> tuple[float, float]:
        kind = self.parameters[j].kind
        if kind == "sd":
            return 0.0, np.inf
        if kind == "cor":
            return -CORRELATION_LIMIT, CORRELATION_LIMIT
        return -np.inf, np.inf

    def interval(self, j: int, alpha: float) -> tuple[ProfileEnd, ProfileEnd, ProfileTrace]:
        """Both ends of parameter ``j``'s profile interval at level ``1 - alpha``."""
        z = float(stats.norm.ppf(1 - alpha / 2))
        trace = ProfileTrace([float(self.phi_hat[j])], [0.0])
        ends = [self._end(j, direction, z, trace) for direction in (-1.0, 1.0)]
        return ends[0], ends[1], trace

    def _end(self, j: int, direction: float, z: float, trace: ProfileTrace) -> ProfileEnd:
        estimate = float(self.phi_hat[j])
        limit = self.limits(j)[0 if direction < 0 else 1]
        se = self.wald_se(j)
        inner, inner_phi, inner_zeta, flat = estimate, None, 0.0, 0
        # a huge Wald SE (a runaway estimate) would start far out where the inner fits are extreme: start
        # within the estimate's own size, the extrapolation below lengthens the steps fast enough
        distance = min(z * se, max(abs(estimate), 1.0))
        for _ in range(MAX_STEPS):
            value = estimate + direction * distance
            at_limit = bool(np.isfinite(limit) and direction * (value - limit) >= 0)
            value = limit if at_limit else value
            zeta, phi = self.zeta(j, value, inner_phi)
            trace.values.append(value)
            trace.zeta.append(zeta)
            if direction * zeta >= z:
                return ProfileEnd(self._root(j, z * direction, inner, value, inner_phi))
            if at_limit:
                return ProfileEnd(limit, _boundary_note(self.parameters[j], limit, z, zeta))
            # the profile has levelled off below the cut-off (its asymptote): three steps, each at least
            # 1.3 times as far out, that raise |zeta| by less than FLAT_RISE
            flat = flat + 1 if abs(zeta) - abs(inner_zeta) < FLAT_RISE else 0
            inner, inner_phi, inner_zeta = value, phi, zeta
            if flat >= 3 or distance > MAX_DISTANCE * se:
                break
            # zeta is nearly linear in a well-behaved parameter: aim just past the cut-off
            growth = z / max(abs(zeta), 1e-3) * 1.1
            distance *= float(np.clip(growth, 1.3, 4.0))
        side = "upper" if direction > 0 else "lower"
        return ProfileEnd(direction * np.inf,
                          f"{side} end infinite: the profile deviance stays below the cut-off "
                          f"({z**2:.3g}) out to {inner:.4g}")

    def _root(self, j: int, target: float, inner: float, outer: float, start: np.ndarray | None) -> float:
        memo = {"phi": start}

        def excess(v: float) -> float:
            zeta, phi = self.zeta(j, v, memo["phi"])
            memo["phi"] = phi
            return zeta - target

        return float(optimize.brentq(excess, inner, outer, xtol=ROOT_XTOL * max(abs(inner), abs(outer), 1e-3),
                                     rtol=1e-12))


def _boundary_note(parameter: Parameter, limit: float, z: float, zeta: float) -> str:
    what = "SD = 0" if parameter.kind == "sd" else f"correlation = {np.sign(limit):+.0f}"
    return (f"{'upper' if limit > 0 else 'lower'} end at the boundary {what}: the profile's |zeta| there is "
            f"{abs(zeta):.3g}, below the cut-off {z:.3g}")


# --------------------------------------------------------------------------------------------
# The negative binomial shape
# --------------------------------------------------------------------------------------------

SHAPE_MAX = 1e6  # a shape beyond this is the Poisson limit for every practical purpose


def shape_interval(model: MixedModel | GroupedData, correlated: bool | None, n_nodes: int | None, shape: float,
                   llf: float, theta: np.ndarray, beta: np.ndarray, alpha: float) -> tuple[ProfileEnd, ProfileEnd]:
    r"""Profile interval of a negative binomial GLMM's shape :math:`\theta_{NB}`: the model refitted at each
    fixed shape (lme4's ``glmer(family = negative.binomial(theta))``), the root of :math:`\zeta` found on
    :math:`\log\theta_{NB}`. An infinite estimate (the Poisson limit) has an infinite upper end."""
    model = as_model(model, correlated, n_nodes)
    z = float(stats.norm.ppf(1 - alpha / 2))
    starts = {"theta": np.asarray(theta, dtype=float), "beta": np.asarray(beta, dtype=float)}
    s_hat = float(np.log(shape)) if np.isfinite(shape) else np.log(SHAPE_MAX)

    def zeta(s: float) -> float:
        family = model.family.with_theta(float(np.exp(s)))
        outcome = fit_glmm(model.with_family(family), theta_start=starts["theta"], beta_start=starts["beta"])
        starts["theta"], starts["beta"] = outcome.theta, outcome.beta
        return float(np.sign(s - s_hat) * np.sqrt(max(2.0 * (llf - outcome.llf), 0.0)))

    ends = []
    for direction in (-1.0, 1.0):
        if direction > 0 and not np.isfinite(shape):
            ends.append(ProfileEnd(np.inf, "upper end infinite: the estimate is the Poisson limit"))
            continue
        starts["theta"], starts["beta"] = np.asarray(theta, dtype=float), np.asarray(beta, dtype=float)
        inner, step, found = s_hat, 0.5, None
        for _ in range(MAX_STEPS):
            outer = inner + direction * step
            if direction > 0 and outer > np.log(SHAPE_MAX):
                break
            value = zeta(outer)
            if direction * value >= z:
                target = direction * z
                found = float(np.exp(optimize.brentq(lambda s, t=target: zeta(s) - t, min(inner, outer),
                                                     max(inner, outer), xtol=1e-10)))
                break
            inner, step = outer, step * 1.6
        if found is not None:
            ends.append(ProfileEnd(found))
        elif direction > 0:
            ends.append(ProfileEnd(np.inf, "upper end infinite: the profile stays above the cut-off up to the "
                                           "Poisson limit (no overdispersion excluded)"))
        else:
            ends.append(ProfileEnd(0.0, "lower end 0: the profile stays above the cut-off"))
    return ends[0], ends[1]


def check_alpha(alpha: float) -> float:
    """``alpha`` as a float in (0, 1), or a clear error."""
    return check_level("alpha", alpha)
