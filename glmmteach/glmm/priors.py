r"""blme's priors for :func:`glmmteach.bglmer`: their densities, as blme 1.0 evaluates them.

blme (Chung et al. 2013, 2015) maximises the Laplace (or quadrature) log-likelihood plus the log prior
density of the parameters: the objective is the deviance plus the *penalty* :math:`-2\log p`. With
:math:`\Lambda = T_\theta` (the relative covariance factor, lower triangular; the random effects'
covariance is :math:`\Sigma = TT^\top`, GLMMs have no residual scale) and :math:`d` the dimension of a term,
the penalties (blme's constants included) are

- ``wishart(df, scale)``: :math:`-2(\nu-d-1)\sum_i\log T_{ii} + \operatorname{tr}(S^{-1}\Sigma)
  + \nu(d\log 2 + \log|S|) + \tfrac{d(d-1)}{2}\log\pi + 2\sum_{i=1}^d\log\Gamma(\tfrac{\nu+1-i}{2})`;
  ``scale=inf`` (the default) drops the trace and the constants;
- ``invwishart(df, scale)``: :math:`2(\nu+d+1)\sum_i\log T_{ii} + \operatorname{tr}(S\Sigma^{-1})
  + \nu(d\log 2 - \log|S|) + \tfrac{d(d-1)}{2}\log\pi + 2\sum_i\log\Gamma(\tfrac{\nu+1-i}{2})`;
- ``gamma(shape, rate)`` on the SD :math:`\lambda`: :math:`-2(k-1)\log\lambda + 2r\lambda - 2(k\log r-\log\Gamma(k))`
  (``posterior_scale="var"``: the same density on :math:`\lambda^2`; the constant is 0 when :math:`r = 0`);
- ``invgamma(shape, scale)``: :math:`2(k+1)\log\lambda + 2s/\lambda - 2(k\log s-\log\Gamma(k))` (``"var"``: on
  :math:`\lambda^2`);
- ``normal(sd, cov)`` on :math:`\beta`: :math:`\beta^\top C^{-1}\beta + \operatorname{rank}\log 2\pi + \log|C|`;
- ``t(df, mean, scale)`` on :math:`\beta` (one multivariate t): :math:`(\nu+d)\log(1 + \delta/\nu)
  - 2\log\Gamma(\tfrac{\nu+d}{2}) + 2\log\Gamma(\tfrac{\nu}{2}) + d\log(\nu\pi) + \log|S|`,
  :math:`\delta = (\beta-\mu)^\top S^{-1}(\beta-\mu)`.

blme's defaults: ``cov_prior = wishart(df = d + 2.5, scale = inf)`` on every term (for a scalar term the
penalty :math:`-3\log\tau`, a gamma(2.5, 0) prior on the SD: it keeps :math:`\hat\tau` off 0, Chung et al.
2013), no fixed-effect prior. ``normal()`` has SD 10 for the first coefficient and 2.5 for the others, ``t()``
3 degrees of freedom with scales :math:`10^2` and :math:`2.5^2`. An uncorrelated term ``(1 + x || g)`` is
several scalar terms, each with its own prior (lme4 splits it). There is no Jacobian: the mode is that of the
density in :math:`\Sigma` (or :math:`\beta`) as written, evaluated at :math:`T_\theta`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import special

from ..exceptions import GlmmteachError
from .optimize import LogPrior, covariance_of

LOG_PI = float(np.log(np.pi))


def _number(value: Any, name: str, positive: bool = False) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError) as err:
        raise GlmmteachError(f"prior argument {name} must be a number, got {value!r}") from err
    if np.isnan(number) or number < 0 or (positive and number == 0):
        raise GlmmteachError(f"prior argument {name} must be {'positive' if positive else '>= 0'}, got {value!r}")
    return number


def _check_scale(posterior_scale: str, allowed: tuple[str, ...], prior: str) -> str:
    if posterior_scale not in allowed:
        raise GlmmteachError(f"{prior}: posterior_scale must be one of {', '.join(map(repr, allowed))}, got "
                             f"{posterior_scale!r} (blme's 'sqrt' scale is not offered)")
    return posterior_scale


# --------------------------------------------------------------------------------------------
# Covariance priors
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CovPrior:
    """A covariance prior as the user names it (blme's ``cov.prior``); its dimension is set per term."""

    kind: str  # "wishart", "invwishart", "gamma", "invgamma"
    df: float | None = None  # wishart, invwishart; None: blme's default for the term's dimension
    scale: Any = None  # wishart, invwishart (number, d numbers or d×d), invgamma (number)
    shape: float | None = None  # gamma, invgamma
    rate: float | None = None  # gamma
    posterior_scale: str = "cov"

    def for_dimension(self, d: int, group: str) -> TermPrior:
        """The prior of one term of dimension ``d`` (grouping factor ``group``) with blme's defaults filled in."""
        if self.kind in ("gamma", "invgamma") and d > 1:
            raise GlmmteachError(f"a {self.kind} prior is for a scalar random effect; the term of {group!r} has {d} "
                                 "correlated effects: give it wishart() or invwishart() (blme ignores it there)")
        if self.kind == "wishart":
            df = d + 2.5 if self.df is None else _number(self.df, "df")
            scale = np.inf if self.scale is None else self.scale
            return _wishart_term(df, scale, d, inverse=False, group=group)
        if self.kind == "invwishart":
            df = d - 0.5 if self.df is None else _number(self.df, "df")
            scale = 100.0 / (df + d + 1.0) if self.scale is None else self.scale
            return _wishart_term(df, scale, d, inverse=True, group=group)
        shape = _number(self.shape, "shape")
        if self.kind == "gamma":
            return TermPrior(self, group, d, shape=shape, rate=_number(self.rate, "rate"))
        return TermPrior(self, group, d, shape=shape, rate=_number(self.scale, "scale"))


def wishart(df: float | None = None, scale: Any = np.inf, posterior_scale: str = "cov") -> CovPrior:
    """blme's ``wishart(df = level.dim + 2.5, scale = Inf)``: on :math:`\\Sigma`; ``scale=inf`` is improper
    (only the determinant term, :math:`|\\Sigma|^{(\\nu-d-1)/2}`), the default of :func:`glmmteach.bglmer`."""
    return CovPrior("wishart", df=df, scale=scale, posterior_scale=_check_scale(posterior_scale, ("cov",), "wishart"))


def invwishart(df: float | None = None, scale: Any = None, posterior_scale: str = "cov") -> CovPrior:
    """blme's ``invwishart(df = level.dim - 0.5, scale = diag(10^2 / (df + level.dim + 1)))`` (GLMM defaults)."""
    return CovPrior("invwishart", df=df, scale=scale,
                    posterior_scale=_check_scale(posterior_scale, ("cov",), "invwishart"))


def gamma(shape: float = 2.5, rate: float = 0.0, posterior_scale: str = "sd") -> CovPrior:
    """blme's ``gamma(shape = 2.5, rate = 0)`` on a scalar term's SD (``posterior_scale="var"``: on its variance)."""
    return CovPrior("gamma", shape=shape, rate=rate, posterior_scale=_check_scale(posterior_scale, ("sd", "var"),
                                                                                  "gamma"))


def invgamma(shape: float = 0.5, scale: float = 100.0, posterior_scale: str = "sd") -> CovPrior:
    """blme's GLMM ``invgamma(shape = 0.5, scale = 10^2)`` on a scalar term's SD (or variance)."""
    return CovPrior("invgamma", shape=shape, scale=scale,
                    posterior_scale=_check_scale(posterior_scale, ("sd", "var"), "invgamma"))


def _scale_matrix(scale: Any, d: int, name: str) -> np.ndarray:
    """blme's reading of a (inverse) Wishart scale: one number, d numbers (a diagonal) or a d×d matrix."""
    values = np.asarray(scale, dtype=float)
    if values.size == 1:
        return np.diag(np.full(d, float(values.reshape(-1)[0])))
    if values.size == d:
        return np.diag(values.reshape(-1))
    if values.size == d * d:
        matrix = values.reshape(d, d)
        if not np.allclose(matrix, matrix.T):
            raise GlmmteachError(f"{name} scale must be symmetric")
        return matrix
    raise GlmmteachError(f"{name} scale must be one number, {d} numbers or a {d}x{d} matrix, got {values.size} values")


def _wishart_term(df: float, scale: Any, d: int, inverse: bool, group: str) -> TermPrior:
    name = "invwishart" if inverse else "wishart"
    if df <= d - 1:
        raise GlmmteachError(f"{name} prior for {group!r}: df must exceed {d - 1} (the term's dimension - 1), got {df}")
    S = _scale_matrix(scale, d, name)
    spec = CovPrior(name, df=df, scale=scale)
    improper = bool(np.isinf(S).any()) if not inverse else not np.any(S)
    if improper:
        return TermPrior(spec, group, d, df=df, matrix=None, constant=0.0)
    try:
        chol = np.linalg.cholesky(S)
    except np.linalg.LinAlgError as err:
        raise GlmmteachError(f"{name} prior for {group!r}: the scale must be positive definite") from err
    log_det = 2.0 * float(np.sum(np.log(np.diag(chol))))
    gammas = 2.0 * sum(special.gammaln(0.5 * (df + 1.0 - i)) for i in range(1, d + 1))
    constant = df * (d * np.log(2.0) + (-log_det if inverse else log_det)) + 0.5 * d * (d - 1) * LOG_PI + gammas
    # the Wishart's exponent needs S^{-1}, the inverse Wishart's S itself
    return TermPrior(spec, group, d, df=df, matrix=S if inverse else np.linalg.inv(S), constant=float(constant))


@dataclass(frozen=True)
class TermPrior:
    """One term's covariance prior with everything resolved: :meth:`penalty` and its gradient in T."""

    spec: CovPrior
    group: str
    d: int
    df: float = 0.0
    matrix: np.ndarray | None = None  # wishart: S^{-1}; invwishart: S; None: scale inf (wishart) or 0
    constant: float = 0.0
    shape: float = 0.0
    rate: float = 0.0  # gamma's rate, invgamma's scale

    def penalty(self, T: np.ndarray) -> tuple[float, np.ndarray]:
        """blme's :math:`-2\\log p` at the factor ``T`` (d×d lower triangular) and its derivative in T."""
        diagonal = np.diag(T)
        if np.any(diagonal <= 0.0):
            return np.inf, np.zeros_like(T)
        if self.spec.kind in ("gamma", "invgamma"):
            return self._scalar_penalty(float(diagonal[0]))
        sign = -1.0 if self.spec.kind == "wishart" else 1.0
        power = self.df - self.d - 1.0 if self.spec.kind == "wishart" else self.df + self.d + 1.0
        value = 2.0 * sign * power * float(np.sum(np.log(diagonal))) + self.constant
        grad = np.diag(2.0 * sign * power / diagonal)
        if self.matrix is not None:
            if self.spec.kind == "wishart":  # tr(S^{-1} T T')
                value += float(np.sum((self.matrix @ T) * T))
                grad = grad + 2.0 * self.matrix @ T
            else:  # tr(S (T T')^{-1})
                sigma_inv = np.linalg.inv(T @ T.T)
                value += float(np.sum(self.matrix * sigma_inv))
                grad = grad - 2.0 * sigma_inv @ self.matrix @ sigma_inv @ T
        return value, np.tril(grad)

    def _scalar_penalty(self, sd: float) -> tuple[float, np.ndarray]:
        k, r = self.shape, self.rate
        power = 2.0 if self.spec.posterior_scale == "var" else 1.0  # the density is on sd^power
        x = sd**power
        dx = power * sd ** (power - 1.0)
        constant = 0.0 if k == 0.0 or r == 0.0 else -2.0 * (k * np.log(r) - special.gammaln(k))
        if self.spec.kind == "gamma":  # x^(k-1) exp(-r x)
            value = -2.0 * (k - 1.0) * np.log(x) + 2.0 * r * x + constant
            slope = -2.0 * (k - 1.0) / x + 2.0 * r
        else:  # x^(-k-1) exp(-r / x)
            value = 2.0 * (k + 1.0) * np.log(x) + 2.0 * r / x + constant
            slope = 2.0 * (k + 1.0) / x - 2.0 * r / x**2
        return float(value), np.array([[slope * dx]])

    def describe(self) -> str:
        """The prior in blme's words (with the defaults it took for this term)."""
        spec = self.spec
        if spec.kind in ("gamma", "invgamma"):
            second = "rate" if spec.kind == "gamma" else "scale"
            return (f"{spec.kind}(shape = {self.shape:g}, {second} = {self.rate:g}, "
                    f"posterior.scale = {spec.posterior_scale})")
        if self.matrix is None:
            scale = "Inf" if spec.kind == "wishart" else "0"
        else:
            S = np.linalg.inv(self.matrix) if spec.kind == "wishart" else self.matrix
            scale = f"{S[0, 0]:g}" if self.d == 1 else f"c({', '.join(f'{v:g}' for v in S.ravel(order='F'))})"
        return f"{spec.kind}(df = {self.df:g}, scale = {scale}, posterior.scale = cov)"


# --------------------------------------------------------------------------------------------
# Fixed-effect priors
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class FixefPrior:
    """A fixed-effect prior as the user names it (blme's ``fixef.prior``)."""

    kind: str  # "normal" or "t"
    sd: Any = (10.0, 2.5)  # normal
    cov: Any = None  # normal: a p×p covariance (or p variances) instead of sd
    df: float = 3.0  # t
    mean: Any = 0.0  # t
    scale: Any = (100.0, 6.25)  # t: variances (squared scales), or a p×p matrix

    def resolve(self, names: Sequence[str]) -> ResolvedFixef:
        p = len(names)
        if self.kind == "normal":
            if self.cov is not None:
                cov = _as_covariance(self.cov, p, "normal cov")
            else:
                sd = _blme_recycle(np.asarray(self.sd, dtype=float).ravel(), p, "normal sd")
                if np.any(sd <= 0):
                    raise GlmmteachError(f"normal prior: sd must be positive (np.inf for flat), got {sd.tolist()}")
                cov = np.diag(sd**2)
            precision, log_det, rank = _precision(cov, "normal")
            constant = rank * np.log(2.0 * np.pi) + log_det
            return ResolvedFixef(self, list(names), np.zeros(p), precision, rank, float(constant), cov)
        df = _number(self.df, "df", positive=True)
        mean = _blme_recycle(np.asarray(self.mean, dtype=float).ravel(), p, "t mean", strict=True)
        scale_values = np.asarray(self.scale, dtype=float)
        if scale_values.size == p * p and p > 1:
            scale = _as_covariance(scale_values, p, "t scale")
        else:
            scale = np.diag(_blme_recycle(scale_values.ravel(), p, "t scale", strict=True))
        precision, log_det, rank = _precision(scale, "t")
        constant = (-2.0 * special.gammaln(0.5 * (df + rank)) + 2.0 * special.gammaln(0.5 * df)
                    + rank * (np.log(df) + LOG_PI) + log_det)
        return ResolvedFixef(self, list(names), mean, precision, rank, float(constant), scale, df)


def normal(sd: Any = (10.0, 2.5), cov: Any = None) -> FixefPrior:
    """blme's ``normal(sd = c(10, 2.5))``: independent normals of mean 0, SD ``sd[0]`` for the first
    coefficient and ``sd[1]`` for the others (one number: all; p numbers: each); or a covariance ``cov``.
    An infinite SD leaves that coefficient flat."""
    return FixefPrior("normal", sd=sd, cov=cov)


def t(df: float = 3.0, mean: Any = 0.0, scale: Any = (100.0, 6.25)) -> FixefPrior:
    """blme's ``t(df = 3, mean = 0, scale = c(10^2, 2.5^2))``: one multivariate t on all the fixed effects,
    its scale matrix diagonal with ``scale[0]`` for the first coefficient and ``scale[1]`` for the others."""
    return FixefPrior("t", df=df, mean=mean, scale=scale)


def _blme_recycle(values: np.ndarray, p: int, name: str, strict: bool = False) -> np.ndarray:
    """blme's lengths: one value for all, two (p > 2, or p > 1 for t) for the first and the rest, else p."""
    if values.size == 0 or np.any(np.isnan(values)):
        raise GlmmteachError(f"{name} must be numbers, got {values.tolist()}")
    if values.size == 1:
        return np.full(p, values[0])
    if values.size == 2 and p > (1 if strict else 2):
        return np.concatenate([values[:1], np.full(p - 1, values[1])])
    if values.size == p or not strict:
        return np.resize(values, p)
    raise GlmmteachError(f"{name} has {values.size} values; the model has {p} fixed effects (give 1, 2 or {p})")


def _as_covariance(values: Any, p: int, name: str) -> np.ndarray:
    array = np.asarray(values, dtype=float)
    if array.size == p:
        return np.diag(array.ravel())
    if array.size != p * p:
        raise GlmmteachError(f"{name} must be {p} variances or a {p}x{p} matrix, got {array.size} values")
    matrix = array.reshape(p, p)
    if not np.array_equal(matrix, matrix.T):
        raise GlmmteachError(f"{name} must be symmetric")
    return matrix


def _precision(cov: np.ndarray, name: str) -> tuple[np.ndarray, float, int]:
    """Inverse, log determinant over the finite part, and rank of a prior covariance (an infinite
    variance, diagonal only, means a flat prior on that coefficient, as blme)."""
    diagonal = np.diag(cov)
    if np.any(diagonal <= 0) or np.any(np.isnan(cov)):
        raise GlmmteachError(f"{name} prior: variances must be positive, got {diagonal.tolist()}")
    infinite = np.isinf(diagonal)
    if infinite.any():
        off = cov[~np.eye(len(cov), dtype=bool)]
        if np.any(off != 0):
            raise GlmmteachError(f"{name} prior: an infinite variance needs a diagonal covariance")
        finite = ~infinite
        precision = np.diag(np.where(finite, 1.0 / np.where(finite, diagonal, 1.0), 0.0))
        return precision, float(np.sum(np.log(diagonal[finite]))), int(finite.sum())
    try:
        chol = np.linalg.cholesky(cov)
    except np.linalg.LinAlgError as err:
        raise GlmmteachError(f"{name} prior: the covariance must be positive definite") from err
    return np.linalg.inv(cov), 2.0 * float(np.sum(np.log(np.diag(chol)))), len(cov)


@dataclass(frozen=True)
class ResolvedFixef:
    """A fixed-effect prior for the model's coefficients: :meth:`penalty` and its gradient in beta."""

    spec: FixefPrior
    names: list[str]
    mean: np.ndarray
    precision: np.ndarray
    rank: int  # coefficients with a proper prior
    constant: float
    cov: np.ndarray
    df: float = 0.0

    def penalty(self, beta: np.ndarray) -> tuple[float, np.ndarray]:
        centred = beta - self.mean
        scaled = self.precision @ centred
        distance = float(centred @ scaled)
        if self.spec.kind == "normal":
            return distance + self.constant, 2.0 * scaled
        factor = (self.df + self.rank) / (1.0 + distance / self.df)
        return (self.df + self.rank) * np.log1p(distance / self.df) + self.constant, factor * 2.0 * scaled / self.df

    def describe(self) -> str:
        sds = np.sqrt(np.diag(self.cov))
        listed = ", ".join(f"{name} {sd:g}" for name, sd in zip(self.names, sds, strict=True))
        if self.spec.kind == "normal":
            return f"normal(mean 0, sd: {listed})"
        means = ", ".join(f"{m:g}" for m in self.mean)
        return f"t(df = {self.df:g}, mean = ({means}), scale sd: {listed})"


# --------------------------------------------------------------------------------------------
# The priors of one model
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Priors:
    """The priors of a fitted model, resolved for its terms (in lme4's order) and fixed effects."""

    terms: list[list[TermPrior | None]]  # per random-effects term: one prior, or one per effect of a || term
    fixef: ResolvedFixef | None

    @property
    def bounds_fixef(self) -> bool:
        """Every fixed effect has a proper prior: the posterior mode exists even under separation."""
        return self.fixef is not None and self.fixef.rank == len(self.fixef.names)

    def log_density(self, model: Any, correlated: bool) -> LogPrior:
        """The log prior density of (theta, beta) and its gradient, for :func:`~glmmteach.glmm.optimize.fit_glmm`."""
        covariance = covariance_of(model, correlated)
        covs = getattr(covariance, "covs", [covariance])

        def log_prior(theta: np.ndarray, beta: np.ndarray) -> tuple[float, np.ndarray]:
            parts = covariance.split(theta) if hasattr(covariance, "covs") else [theta]
            total, grads = 0.0, []
            for cov, part, blocks in zip(covs, parts, self.terms, strict=True):  # the few terms
                value, dT = _term_penalty(cov, part, blocks)
                rows, cols = cov.positions
                total += value
                grads.append(dT[rows, cols])
            grad_beta = np.zeros(len(beta))
            if self.fixef is not None:
                value, grad_beta = self.fixef.penalty(beta)
                total += value
            if not np.isfinite(total):
                return -np.inf, np.zeros(len(theta) + len(beta))
            return -0.5 * total, -0.5 * np.concatenate([*grads, grad_beta])

        return log_prior

    def describe(self) -> list[str]:
        """One line per prior, as blme's summary lists them."""
        lines = []
        for blocks in self.terms:
            for block in blocks:
                if block is not None:
                    lines.append(f"Cov prior  : {block.group} ~ {block.describe()}")
        if all(block is None for blocks in self.terms for block in blocks):
            lines.append("Cov prior  : none (flat)")
        lines.append(f"Fixef prior: {'none (flat)' if self.fixef is None else self.fixef.describe()}")
        return lines


def _term_penalty(cov: Any, theta: np.ndarray, blocks: list[TermPrior | None]) -> tuple[float, np.ndarray]:
    """Penalty of one term and its derivative in T: one d-dimensional prior, or (an uncorrelated term) one
    scalar prior per diagonal entry."""
    T = cov.T(theta)
    grad = np.zeros_like(T)
    if len(blocks) == 1:
        if blocks[0] is None:
            return 0.0, grad
        return blocks[0].penalty(T)
    total = 0.0
    for i, block in enumerate(blocks):  # the few effects of an uncorrelated term
        if block is not None:
            value, d = block.penalty(T[i:i + 1, i:i + 1])
            total += value
            grad[i, i] = d[0, 0]
    return total, grad


def resolve_priors(cov_prior: Any, fixef_prior: Any, terms: Sequence[Any], fixef_names: Sequence[str]) -> Priors:
    """The user's ``cov_prior`` (a prior, a name, None for flat, or a dict by grouping factor) and
    ``fixef_prior`` for the model's random-effects terms (:class:`~glmmteach.formula.RandomTerm`) and
    fixed effects."""
    groups = [term.group_name for term in terms]
    if isinstance(cov_prior, dict):
        unknown = set(cov_prior) - set(groups)
        if unknown:
            raise GlmmteachError(f"cov_prior names grouping factors {sorted(unknown)} that are not in the model "
                                 f"(its terms: {', '.join(groups)})")
    resolved = []
    for term in terms:
        chosen = cov_prior.get(term.group_name) if isinstance(cov_prior, dict) else cov_prior
        spec = _cov_spec(chosen)
        d = len(term.names)
        if spec is None:
            resolved.append([None] if term.correlated or d == 1 else [None] * d)
        elif term.correlated or d == 1:
            resolved.append([spec.for_dimension(d, term.group_name)])
        else:  # lme4 splits (1 + x || g) into scalar terms, each with its own prior
            resolved.append([spec.for_dimension(1, term.group_name) for _ in range(d)])
    fixef = _fixef_spec(fixef_prior)
    return Priors(resolved, None if fixef is None else fixef.resolve(fixef_names))


_COV_NAMES = {"wishart": wishart, "invwishart": invwishart, "gamma": gamma, "invgamma": invgamma}
_FIXEF_NAMES = {"normal": normal, "t": t}


def _cov_spec(value: Any) -> CovPrior | None:
    if value is None or value == "flat":
        return None
    if isinstance(value, CovPrior):
        return value
    if isinstance(value, str) and value in _COV_NAMES:
        return _COV_NAMES[value]()
    raise GlmmteachError(f"cov_prior must be None (flat), one of {', '.join(map(repr, _COV_NAMES))}, a prior from "
                         f"glmmteach.priors (e.g. priors.wishart(df=4)) or a dict by grouping factor; got {value!r}")


def _fixef_spec(value: Any) -> FixefPrior | None:
    if value is None or value == "flat":
        return None
    if isinstance(value, FixefPrior):
        return value
    if isinstance(value, str) and value in _FIXEF_NAMES:
        return _FIXEF_NAMES[value]()
    raise GlmmteachError(f"fixef_prior must be None (flat), 'normal', 't' or a prior from glmmteach.priors "
                         f"(e.g. priors.normal(sd=5)); got {value!r}")
