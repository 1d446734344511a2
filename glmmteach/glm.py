r"""Generalized linear models fitted by Fisher scoring (iteratively reweighted least squares).

Maximising :math:`\ell(\beta) = \sum_i \log f(y_i; \mu_i)` with :math:`g(\mu_i) = x_i^\top\beta + o_i`
by Fisher scoring gives, at each step, a weighted least-squares problem. With the current
:math:`\eta = X\beta + o` and :math:`\mu = g^{-1}(\eta)`, form the *working response* and *working
weights*

.. math::

   z_i = \eta_i - o_i + (y_i - \mu_i)\,\frac{d\eta_i}{d\mu_i}, \qquad
   w_i = \frac{p_i}{V(\mu_i)}\Big(\frac{d\mu_i}{d\eta_i}\Big)^2 ,

(:math:`p_i` the prior weights, the trials for binomial data) and solve

.. math:: \beta^{(t+1)} = (X^\top W X)^{-1} X^\top W z .

Iteration stops, as in R's ``glm``, when the deviance changes by less than
:math:`\epsilon = 10^{-8}` relative: :math:`|D^{(t)} - D^{(t-1)}| / (|D^{(t)}| + 0.1) < \epsilon`.
At convergence :math:`\widehat{\operatorname{Var}}(\hat\beta) = \phi\,(X^\top W X)^{-1}`, with the
dispersion :math:`\phi = 1` for binomial and Poisson and the Pearson statistic
:math:`\hat\phi = \sum_i w_i (y_i-\hat\mu_i)^2 / V(\hat\mu_i) / (n - p)` for quasi, Gaussian, Gamma
(:math:`V = \mu^2`) and inverse Gaussian (:math:`V = \mu^3`) families (for the last two, as R's ``summary.glm``,
with the working weights of the last step). Their AIC, as R's, uses :math:`\phi = D / \sum_i p_i` and counts
:math:`\phi` as a parameter.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import pandas as pd
from scipy import linalg, optimize, special

from .exceptions import (
    ConvergenceWarning,
    DataError,
    GlmmteachError,
    GlmmteachWarning,
    RankDeficiencyWarning,
    SeparationWarning,
)
from .families import Family, get_family
from .formula import ArrayLike, Design, build_design, check_response, new_response_values
from .formula.response import binomial_density_weights, binomial_start_weights, family_weights, proportions
from .negbin import ShapeEstimate, bound_message, theta_ml, warn_bound
from .rformat import coef_table_text, format_r

EPSILON = 1e-8
MAX_ITERATIONS = 25
# R's rank tolerance for the QR decomposition in glm.fit
RANK_TOLERANCE = 1e-7


@dataclass
class IRLSStep:
    """One Fisher-scoring iteration: its number, the coefficients after it, and the deviance."""

    iteration: int
    params: np.ndarray
    deviance: float


@dataclass
class IRLSFit:
    """Raw result of :func:`irls`: coefficients of the estimable columns and the final state."""

    params: np.ndarray
    mu: np.ndarray
    eta: np.ndarray
    working_weights: np.ndarray  # at the start of the last step, as R's glm.fit reports them
    deviance: float
    iterations: int
    converged: bool
    history: list[IRLSStep] = field(default_factory=list)


def estimable_columns(X: np.ndarray, tol: float = RANK_TOLERANCE) -> np.ndarray:
    """Boolean mask of the columns of ``X`` that are not linear combinations of earlier ones.

    Like R's pivoted QR (``dqrdc2``), a column is aliased if what is left of it after projecting
    out the columns kept so far is below ``tol`` times its own norm; aliased coefficients are
    reported as ``NaN`` ("not defined because of singularities").
    """
    keep = np.zeros(X.shape[1], dtype=bool)
    Q = np.empty((X.shape[0], 0))
    for j in range(X.shape[1]):  # a loop over columns (few), not rows
        col = X[:, j]
        norm = np.linalg.norm(col)
        if norm == 0:
            continue
        resid = col - Q @ (Q.T @ col)
        if np.linalg.norm(resid) > tol * norm:
            keep[j] = True
            Q = np.column_stack([Q, resid / np.linalg.norm(resid)])
    return keep


def irls_step(
    X: np.ndarray, y: np.ndarray, weights: np.ndarray, eta: np.ndarray, offset: np.ndarray, family: Family
) -> tuple[np.ndarray, np.ndarray]:
    r"""One Fisher-scoring step from linear predictor ``eta``: the new coefficients and the weights used.

    Solves the weighted least-squares problem :math:`\min_\beta \sum_i w_i (z_i - x_i^\top\beta)^2`
    with working response :math:`z` and weights :math:`w` evaluated at ``eta`` (see the module
    docstring); ``y`` is a proportion for binomial data and ``weights`` the prior weights × trials.
    """
    mu = family.link.linkinv(eta)
    mu_eta = family.link.mu_eta(eta)
    z = eta - offset + (y - mu) / mu_eta
    w = weights * mu_eta**2 / family.variance(mu)
    sqrt_w = np.sqrt(w)
    coef, *_ = linalg.lstsq(X * sqrt_w[:, None], z * sqrt_w, lapack_driver="gelsy")
    return coef, w


def irls(
    X: np.ndarray,
    y: np.ndarray,
    family: Family,
    weights: np.ndarray | None = None,
    offset: np.ndarray | None = None,
    *,
    tol: float = EPSILON,
    max_iter: int = MAX_ITERATIONS,
    eta_start: np.ndarray | None = None,
    start_weights: np.ndarray | None = None,
) -> IRLSFit:
    """Fit a GLM by Fisher scoring, as R's ``glm.fit`` does (same start, step halving, criterion).

    ``X`` must have full column rank (drop aliased columns first, see :func:`estimable_columns`).
    The iteration history (coefficients and deviance after each step) is kept. ``eta_start`` is R's
    ``etastart`` (default: the family's starting means, those of a binomial response of ``start_weights``
    trials, by default ``weights``: see :func:`~glmmteach.formula.response.binomial_start_weights`).
    """
    n = len(y)
    weights = np.ones(n) if weights is None else weights
    offset = np.zeros(n) if offset is None else offset
    if X.shape[1] == 0:  # no coefficients (y ~ 0, y ~ 0 + offset(z)): R's glm.fit takes eta = offset, 0 iterations
        eta = np.array(offset, dtype=float)
        mu = family.link.linkinv(eta)
        _, step_weights = irls_step(X, y, weights, eta, offset, family)
        dev = float(np.sum(family.deviance_residuals(y, mu, weights)))
        return IRLSFit(np.zeros(0), mu, eta, step_weights, dev, 0, True, [])
    if eta_start is None:
        mu = family.starting_mu(y, weights if start_weights is None else start_weights)
        eta = family.link.linkfun(mu)
    else:
        eta = np.asarray(eta_start, dtype=float)
        mu = family.link.linkinv(eta)
    dev_old = float(np.sum(family.deviance_residuals(y, mu, weights)))
    coef_old: np.ndarray | None = None
    history: list[IRLSStep] = []
    converged = False
    iteration = 0
    for iteration in range(1, max_iter + 1):
        # R's standard errors come from the weighted least squares of the last step, i.e. the
        # weights at the linear predictor the step started from; keep them.
        coef, step_weights = irls_step(X, y, weights, eta, offset, family)
        eta_new = X @ coef + offset
        mu_new = family.link.linkinv(eta_new)
        dev = float(np.sum(family.deviance_residuals(y, mu_new, weights)))
        halvings = 0
        # step halving when the deviance is not finite (R does the same)
        while not np.isfinite(dev) and coef_old is not None and halvings < 30:
            coef = (coef + coef_old) / 2
            eta_new = X @ coef + offset
            mu_new = family.link.linkinv(eta_new)
            dev = float(np.sum(family.deviance_residuals(y, mu_new, weights)))
            halvings += 1
        eta, mu = eta_new, mu_new
        history.append(IRLSStep(iteration, coef.copy(), dev))
        if abs(dev - dev_old) / (abs(dev) + 0.1) < tol:
            converged = True
            break
        dev_old, coef_old = dev, coef
    return IRLSFit(coef, mu, eta, step_weights, dev, iteration, converged, history)


class GLMResults:
    """A fitted generalized linear model (attribute names follow statsmodels; output follows R).

    Attributes
    ----------
    params, bse, zvalues, pvalues : pandas.Series
        Estimates, standard errors, Wald statistics (*t* for families with an estimated
        dispersion) and two-sided p-values, in formula order, intercept first; ``NaN`` for
        coefficients that are not estimable (aliased columns).
    llf, aic, bic, deviance, null_deviance : float
        Log-likelihood with all constants (``NaN`` for quasi families), information criteria,
        residual and null deviance.
    df_resid, df_null, nobs, scale, iterations, converged, history
        Residual/null degrees of freedom, number of observations, dispersion, number of Fisher
        scoring iterations, convergence flag and the iteration history.
    """

    def __init__(
        self, design: Design, family: Family, fit: IRLSFit, keep: np.ndarray, null_deviance: float, formula: str,
        *, nb_shape: ShapeEstimate | None = None,
    ):
        self.design = design
        self.nb_shape = nb_shape
        self.family = family
        self.formula = formula
        self.frame: pd.DataFrame | None = None  # the data frame given to glm() (set there; emmeans reads it)
        self.converged = fit.converged
        self.iterations = fit.iterations
        self.fittedvalues = design.pad(pd.Series(fit.mu, index=design.row_index, name="fitted"))
        self.linear_predictor = fit.eta
        self.deviance = fit.deviance
        self.null_deviance = null_deviance
        self._fit = fit
        self._keep = keep
        names = design.column_names
        prior = family_weights(design.trials, design.weights)
        self.nobs = int(np.sum(prior > 0))
        self.rank = int(keep.sum())
        self.df_resid = self.nobs - self.rank
        has_intercept = "(Intercept)" in names
        self.df_null = self.nobs - int(has_intercept)
        y = proportions(design.y, design.trials)
        if self.dispersion_estimated:
            pearson = np.sum(prior * (y - fit.mu) ** 2 / family.variance(fit.mu))
            if family.positive_continuous:
                # R's summary.glm: the working weights of the last step times the final working residuals
                # (for the non-canonical links they differ from the final Pearson statistic by the tolerance)
                pearson = np.sum(fit.working_weights * ((y - fit.mu) / family.mu_eta(fit.eta)) ** 2)
            self.scale = float(pearson / self.df_resid) if self.df_resid > 0 else np.nan
        else:
            self.scale = 1.0
        full = np.full(len(names), np.nan)
        full[keep] = fit.params
        self.params = pd.Series(full, index=names, name="Estimate")
        Xk = design.X[:, keep]
        xtwx = Xk.T @ (Xk * fit.working_weights[:, None])
        cov = self.scale * linalg.inv(xtwx)
        cov_full = np.full((len(names), len(names)), np.nan)
        cov_full[np.ix_(keep, keep)] = cov
        self._cov = pd.DataFrame(cov_full, index=names, columns=names)
        self.bse = pd.Series(np.sqrt(np.diag(cov_full)), index=names, name="Std. Error")
        self.zvalues = pd.Series(self.params / self.bse, name="t value" if self.use_t else "z value")
        # the tails as scipy.stats' t.sf and norm.sf compute them, without importing scipy.stats at fit time
        abs_z = np.abs(self.zvalues.to_numpy())
        p = 2 * special.stdtr(self.df_resid, -abs_z) if self.use_t else 2 * special.ndtr(-abs_z)
        self.pvalues = pd.Series(p, index=names, name=f"Pr(>|{'t' if self.use_t else 'z'}|)")
        self.history = pd.DataFrame(
            [
                {
                    "iteration": s.iteration,
                    **dict(zip(np.array(names)[keep], s.params, strict=True)),
                    "deviance": s.deviance,
                }
                for s in fit.history
            ],
            columns=["iteration", *np.array(names)[keep], "deviance"],  # (and none for a model without coefficients)
        ).set_index("iteration")

    # ---- likelihood-based summaries -------------------------------------------------------
    @property
    def use_t(self) -> bool:
        """Wald tests use the t distribution when the dispersion is estimated."""
        return self.dispersion_estimated

    @property
    def dispersion_estimated(self) -> bool:
        """Whether the dispersion is estimated (Pearson): gaussian and quasi families, and, as R's
        ``summary.glm``, a negative binomial family with a known ``theta`` (MASS's ``glm.nb`` fixes it at 1)."""
        return self.family.estimate_scale or (self.family.is_negative_binomial and self.nb_shape is None)

    @property
    def k_params(self) -> int:
        """Number of estimated parameters counted by AIC (the dispersion too, for gaussian; an estimated
        negative binomial shape too, as MASS's ``glm.nb``)."""
        scale = self.family.name == "gaussian" or self.family.positive_continuous
        return self.rank + int(scale) + int(self.nb_shape is not None)

    @property
    def nb_theta(self) -> float | None:
        r"""The negative binomial shape :math:`\theta` (estimated, or as given); ``None`` for other families."""
        return self.family.theta if self.family.is_negative_binomial else None

    @property
    def nb_theta_se(self) -> float | None:
        """Standard error of an estimated shape (MASS's ``SE.theta``; NaN on its bound); else ``None``."""
        return None if self.nb_shape is None else self.nb_shape.se

    @property
    def llf(self) -> float:
        """Maximised log-likelihood with all constants (NaN for quasi families)."""
        if self.family.name.startswith("quasi"):
            return np.nan
        d = self.design
        y = proportions(d.y, d.trials)
        weights, multiplier = family_weights(d.trials, d.weights), 1.0
        if self.family.base == "binomial":  # (R's binomial()$aic: a prior weight with trials counts the row w times)
            weights, multiplier = binomial_density_weights(d.trials, d.weights)
        scale = self.deviance / self.nobs if self.family.name == "gaussian" else 1.0
        if self.family.positive_continuous:  # (R's Gamma and inverse.gaussian aic: deviance / sum of weights)
            scale = self.deviance / float(np.sum(weights))
        return float(np.sum(multiplier * self.family.loglik(y, self._fit.mu, weights, scale)))

    @property
    def aic(self) -> float:
        r""":math:`\mathrm{AIC} = -2\ell(\hat\beta) + 2p`."""
        return -2 * self.llf + 2 * self.k_params

    @property
    def bic(self) -> float:
        r""":math:`\mathrm{BIC} = -2\ell(\hat\beta) + p\log n`."""
        return -2 * self.llf + np.log(self.nobs) * self.k_params

    # ---- simulation and refitting ---------------------------------------------------------
    def simulate(self, nsim: int = 1, seed: Any = None) -> pd.DataFrame:
        """Simulate ``nsim`` responses from the fitted binomial or Poisson model (R's ``simulate``): one
        column per simulation (``sim_1`` …), in the response's units (0/1, successes out of the trials,
        counts). Prior weights are ignored, with a warning, as in R. ``seed``: an integer, a
        ``numpy.random.Generator`` or ``None``."""
        from .glmm.simulate import as_generator, check_nsim, draw_responses

        nsim = check_nsim(nsim)
        if self.family.name not in ("binomial", "poisson", "negative_binomial"):
            raise GlmmteachError(f"simulate is available for binomial and poisson fits and the negative binomial, "
                                 f"not {self.family.name!r}")
        if np.any(self.design.weights != 1):
            warnings.warn("prior weights are ignored when simulating (as R does): each row is simulated from "
                          "its fitted distribution", GlmmteachWarning, stacklevel=2)
        # the fitted rows only (fittedvalues is padded with NaN rows under na_action="exclude")
        mean = np.repeat(self._fit.mu[:, None], nsim, axis=1)
        trials = self.design.trials if self.design.has_trials else None
        draws = draw_responses(self.family.name, mean, trials, as_generator(seed), self.family.theta)
        return pd.DataFrame(draws, index=self.design.row_index, columns=[f"sim_{k + 1}" for k in range(nsim)])

    def simulated_residuals(self, nsim: int = 250, seed: Any = 123) -> Any:
        """DHARMa's scaled residuals from ``nsim`` simulations: see :func:`glmmteach.residuals.simulated_residuals`."""
        from .residuals import simulated_residuals

        return simulated_residuals(self, nsim, seed)

    def refit(self, new_response: Any) -> GLMResults:
        """The same model fitted to a new response (e.g. a column of :meth:`simulate`): one value per
        fitted row, in the response's units."""
        d = self.design
        y = new_response_values(new_response, len(d.y), d.response_name)
        check_response(self.family, y, d.trials if d.has_trials else None, d.response_name)
        # an estimated negative binomial shape is estimated again (MASS's glm.nb on the new response)
        family = replace(self.family, theta=None) if self.nb_shape is not None else self.family
        return fit_glm_design(replace(d, y=y), family, self.formula)

    def cov_params(self) -> pd.DataFrame:
        r"""Estimated covariance of the estimates, :math:`\phi (X^\top W X)^{-1}`."""
        return self._cov.copy()

    def conf_int(self, alpha: float = 0.05, method: str = "wald") -> pd.DataFrame:
        r"""Confidence intervals for the coefficients.

        ``method="wald"`` (R's ``confint.default``): :math:`\hat\beta \pm q_{1-\alpha/2}\,\mathrm{SE}`,
        ``q`` the normal quantile, or the *t* quantile on ``df_resid`` degrees of freedom when the
        dispersion is estimated. ``method="profile"`` (R's ``confint`` for a glm, MASS's ``confint.glm``): the
        values of :math:`\beta_j` whose likelihood-ratio test is not rejected, see :meth:`profile_deviance`
        (every family; for an estimated dispersion the deviance difference is scaled by it, as MASS, and the
        cut-off is the normal quantile, as MASS). The ends are roots of the profile itself, not MASS's
        interpolation of it on a grid.
        Exponentiate either for odds or rate ratios.
        """
        pct = [f"{100 * alpha / 2:g} %", f"{100 * (1 - alpha / 2):g} %"]
        if method == "profile":
            bounds = [self._profile_bounds(name, alpha) for name in self.params.index]
            return pd.DataFrame(bounds, index=self.params.index, columns=pct)
        if method != "wald":
            raise GlmmteachError(f"method must be 'wald' or 'profile', got {method!r}")
        from scipy import stats  # imported when used: scipy.stats is the slowest import of the package

        q = stats.t.ppf(1 - alpha / 2, self.df_resid) if self.use_t else stats.norm.ppf(1 - alpha / 2)
        lower, upper = self.params - q * self.bse, self.params + q * self.bse
        return pd.DataFrame({pct[0]: lower, pct[1]: upper})

    def profile_deviance(self, name: str, value: float) -> float:
        r"""Deviance of the model with coefficient ``name`` held at ``value``, the others refitted.

        The signed root :math:`\operatorname{sign}(b-\hat\beta_j)\sqrt{D(b) - D(\hat\beta)}` is
        approximately standard normal at the true :math:`\beta_j`; the profile interval is where its
        absolute value stays below :math:`z_{1-\alpha/2}`. For a family whose dispersion is estimated
        (gaussian, Gamma, inverse Gaussian, quasi) the deviance difference is divided by the estimated
        dispersion (MASS's ``profile.glm``, its ``tau``) and compared with the same normal cut-off.
        """
        if name not in self.params.index:
            raise GlmmteachError(f"no coefficient {name!r}; the coefficients are {list(self.params.index)}")
        d = self.design
        names = np.array(d.column_names)
        others = self._keep & (names != name)
        j = int(np.flatnonzero(names == name)[0])
        prior = family_weights(d.trials, d.weights)
        offset = d.offset + value * d.X[:, j]
        start = binomial_start_weights(d.trials if d.has_trials else None, d.weights)
        return irls(d.X[:, others], proportions(d.y, d.trials), self.family, prior, offset,
                    start_weights=start).deviance

    def _profile_bounds(self, name: str, alpha: float) -> tuple[float, float]:
        if np.isnan(self.params[name]):
            return np.nan, np.nan
        estimate, se = float(self.params[name]), float(self.bse[name])
        z = special.ndtri(1 - alpha / 2)  # = scipy.stats.norm.ppf

        def excess(b: float) -> float:  # > 0 outside the interval
            return (self.profile_deviance(name, b) - self.deviance) / self.scale - z**2

        bounds = []
        for direction in (-1.0, 1.0):
            step, inner = se, estimate
            outer = estimate + direction * z * se  # start at the Wald bound, walk out until outside
            for _ in range(60):
                if excess(outer) > 0:
                    break
                inner, outer = outer, outer + direction * step
                step *= 1.5
            else:
                bounds.append(direction * np.inf)  # the likelihood never drops enough (separation)
                continue
            bounds.append(optimize.brentq(excess, inner, outer, xtol=1e-10 * max(1.0, abs(estimate))))
        return bounds[0], bounds[1]

    # ---- prediction -------------------------------------------------------------------------
    def predict(
        self,
        newdata: pd.DataFrame | None = None,
        type: str = "link",  # noqa: A002 - R's argument name
        offset: ArrayLike | str | None = None,
        se_fit: bool = False,
        interval: str | None = None,
        level: float = 0.95,
    ) -> pd.Series | pd.DataFrame:
        """Predictions on the link scale (``type="link"``) or the mean scale (``type="response"``).

        With ``se_fit=True`` returns a DataFrame with the prediction and its standard error (delta
        method on the response scale). Aliased coefficients contribute nothing, as in R.
        ``interval="confidence"``: ``fit``, ``se_fit``, ``lower``, ``upper``, see
        :func:`glmmteach.intervals.predict_interval`.
        """
        if interval is not None:
            from .intervals import predict_interval

            return predict_interval(self, newdata, type, offset=offset, interval=interval, level=level)
        if type not in ("link", "response"):
            raise ValueError(f"type must be 'link' or 'response', got {type!r}")
        pad = self.design.pad if newdata is None else (lambda values: values)
        if newdata is None:
            X, off, index = self.design.X, self.design.offset, self.design.row_index
        else:
            X, off = self.design.new_fixed(newdata, offset)
            index = newdata.index
        beta = np.nan_to_num(self.params.to_numpy())
        eta = X @ beta + off
        keep = self._keep
        cov = self._cov.to_numpy()[np.ix_(keep, keep)]
        se_eta = np.sqrt(np.einsum("ij,jk,ik->i", X[:, keep], cov, X[:, keep]))
        if type == "link":
            value, se = eta, se_eta
        else:
            value, se = self.family.link.linkinv(eta), se_eta * self.family.link.mu_eta(eta)
        if se_fit:
            return pad(pd.DataFrame({"fit": value, "se_fit": se}, index=index))
        return pad(pd.Series(value, index=index, name=type))

    # ---- residuals ---------------------------------------------------------------------------
    @property
    def resid_pearson(self) -> pd.Series:
        r"""Pearson residuals :math:`\sqrt{p_i}(y_i - \hat\mu_i)/\sqrt{V(\hat\mu_i)}`."""
        d = self.design
        y = proportions(d.y, d.trials)
        mu = self._fit.mu
        prior = family_weights(d.trials, d.weights)
        return d.pad(pd.Series(np.sqrt(prior) * (y - mu) / np.sqrt(self.family.variance(mu)), index=d.row_index))

    @property
    def resid_deviance(self) -> pd.Series:
        r"""Deviance residuals :math:`\operatorname{sign}(y_i-\hat\mu_i)\sqrt{d_i}`."""
        d = self.design
        y = proportions(d.y, d.trials)
        unit = self.family.deviance_residuals(y, self._fit.mu, family_weights(d.trials, d.weights))
        return d.pad(pd.Series(np.sign(y - self._fit.mu) * np.sqrt(np.maximum(unit, 0)), index=d.row_index))

    def tidy(self, conf_int: bool = False, conf_level: float = 0.95, conf_method: str = "profile") -> pd.DataFrame:
        """broom's ``tidy(fit)``: see :func:`glmmteach.tidy.tidy_glm`."""
        from .tidy import tidy_glm

        return tidy_glm(self, conf_int, conf_level, conf_method)

    # ---- display ---------------------------------------------------------------------------
    def coef_table(self) -> pd.DataFrame:
        """The coefficient table as a DataFrame (estimate, SE, statistic, p-value)."""
        return pd.concat([self.params, self.bse, self.zvalues, self.pvalues], axis=1)

    def summary(self) -> GLMSummary:
        """R's ``summary.glm``: printed as R prints it, shown as tables in a notebook."""
        return GLMSummary(self)

    def _repr_html_(self) -> str:
        return self.summary()._repr_html_()

    def __repr__(self) -> str:
        coefs = ", ".join(f"{k}={v:.4g}" for k, v in self.params.items())
        return f"<GLMResults {self.family.name}({self.family.link.name}): {coefs}>"


class GLMSummary:
    """Printable summary of a :class:`GLMResults` in the layout of R's ``summary.glm``."""

    def __init__(self, result: GLMResults):
        self.result = result

    @property
    def coefficients(self) -> pd.DataFrame:
        return self.result.coef_table()

    def __str__(self) -> str:
        r = self.result
        fam = r.family
        if r.nb_shape is not None:
            call = f"glm.nb(formula = {r.formula}, data = data, init.theta = {r.nb_theta:.10g}, link = {fam.link.name})"
        elif fam.is_negative_binomial:
            call = (f'glm(formula = {r.formula}, family = negative.binomial(theta = {r.nb_theta:.10g}, '
                    f'link = "{fam.link.name}"), data = data)')
        else:
            call = f'glm(formula = {r.formula}, family = {fam.label}(link = "{fam.link.name}"), data = data)'
        n_na = int((~r._keep).sum())
        if len(r.params) == 0:  # e.g. y ~ 0 + offset(z): R's print.summary.glm says so in place of the table
            coef_block = ["No Coefficients"]
        else:
            coef_head = "Coefficients:" + (f" ({n_na} not defined because of singularities)" if n_na else "")
            coef_block = [coef_head, coef_table_text(
                list(r.params.index),
                r.params.to_numpy(),
                r.bse.to_numpy(),
                r.zvalues.to_numpy(),
                r.pvalues.to_numpy(),
                stat_name="t" if r.use_t else "z",
            )]
        disp = "1" if not r.dispersion_estimated else format_r([r.scale], 7)[0]
        dev = format_r([r.null_deviance, r.deviance], 5)
        width = max(map(len, dev))
        aic = "NA" if np.isnan(r.aic) else format_r([r.aic], 5)[0]
        lines = [
            "",
            "Call:",
            call,
            "",
            *coef_block,
            "",
            f"(Dispersion parameter for {fam.label} family taken to be {disp})",
            "",
            f"    Null deviance: {dev[0].rjust(width)}  on {r.df_null}  degrees of freedom",
            f"Residual deviance: {dev[1].rjust(width)}  on {r.df_resid}  degrees of freedom",
            f"AIC: {aic}",
            "",
            f"Number of Fisher Scoring iterations: {r.iterations}",
            "",
        ]
        if r.nb_shape is not None:
            lines += _theta_lines(r.nb_shape, r.llf)
        return "\n".join(lines)

    __repr__ = __str__

    def _repr_html_(self) -> str:
        r = self.result
        table = self.coefficients.to_html(float_format=lambda v: f"{v:.4g}", na_rep="NA")
        facts = pd.Series(
            {
                "family (link)": f"{r.family.name} ({r.family.link.name})",
                "observations": r.nobs,
                "dispersion": r.scale,
                "null deviance (df)": f"{r.null_deviance:.2f} ({r.df_null})",
                "residual deviance (df)": f"{r.deviance:.2f} ({r.df_resid})",
                "AIC": "NA" if np.isnan(r.aic) else f"{r.aic:.2f}",
                "Fisher scoring iterations": r.iterations,
                **({"theta (Std. Err.)": f"{r.nb_theta:.6g} ({r.nb_theta_se:.4g})"} if r.nb_shape is not None else {}),
            },
            name="",
        )
        return f"<p><b>glm</b>: <code>{r.formula}</code></p>{table}{facts.to_frame().to_html(header=False)}"


def _theta_lines(shape: ShapeEstimate, llf: float) -> list[str]:
    """MASS's ``print.summary.negbin``: theta and its SE to a common number of decimals, 2 x log-likelihood."""
    dp = max(2 - int(np.floor(np.log10(shape.se))), 0) if np.isfinite(shape.se) and shape.se > 0 else 0
    lines = ["", f"              Theta:  {shape.theta:.{dp}f} ",
             f"          Std. Err.:  {'NA' if not np.isfinite(shape.se) else f'{shape.se:.{dp}f}'} "]
    if shape.message is not None:
        lines.append(f"Warning while fitting theta: {shape.message} ")
    two_ll = format_r([round(2 * llf, 3)], 7)[0]
    if dp > 0 and len(two_ll.split(".")[-1] if "." in two_ll else "") < dp and "e" not in two_ll:
        two_ll = f"{round(2 * llf, 3):.{dp}f}"
    return lines + ["", f" 2 x log-likelihood:  {two_ll} ", ""]


def glm(
    formula: str,
    data: pd.DataFrame,
    family: str | Family = "binomial",
    link: str | None = None,
    offset: ArrayLike | str | None = None,
    weights: ArrayLike | str | None = None,
    trials: ArrayLike | str | None = None,
    maxit: int = MAX_ITERATIONS,
    theta: float | None = None,
    subset: Any = None,
    na_action: str = "omit",
    contrasts: dict[str, Any] | None = None,
) -> GLMResults:
    """Fit a generalized linear model with an R-style formula, as R's ``glm`` does.

    Parameters
    ----------
    formula:
        e.g. ``"outcome ~ 1 + trt + period + trt*period"`` or
        ``"death ~ offset(logpop) + factor(sex) + factor(race) + year"``. A random-effects term
        such as ``(1|county)`` is *not* a random effect here: like R, ``glm`` evaluates
        ``1 | county`` as a logical covariate (always TRUE, so aliased with the intercept); use
        :func:`glmmteach.glmer` for random effects. As in R, ``cbind(successes, failures) ~ ...`` (or
        ``cbind(s, n - s)``) is a binomial response with trials (a row with 0 trials has weight 0: in no
        likelihood and no degree of freedom), and a binomial response may be a factor, characters or logical
        (the first level, sorted for characters, FALSE for logical, is failure); ``a/b`` is ``a + a:b``.
    family, link:
        ``"binomial"`` (links logit, probit, cloglog), ``"poisson"`` (log), ``"quasipoisson"``,
        ``"quasibinomial"``, ``"gaussian"``, ``"Gamma"`` (links inverse, identity, log), ``"inverse.gaussian"``
        (links 1/mu^2, inverse, identity, log; both with the dispersion estimated by Pearson's statistic and R's
        AIC), ``"negative_binomial"`` (NB2, links log, sqrt, identity):
        MASS's ``glm.nb``, its shape :math:`\theta` estimated by maximum likelihood alternating with
        Fisher scoring (``nb_theta``, ``nb_theta_se`` on the result), or R's
        ``glm(family = negative.binomial(theta))`` when ``theta`` is given (then, as R's ``summary.glm``,
        the dispersion is estimated from the Pearson statistic and the tests are *t* tests).
    offset, weights, trials:
        Column names or arrays: a known term added to the linear predictor, prior weights, and the
        number of binomial trials (the response is then the number of successes).
    maxit:
        Maximum number of Fisher-scoring iterations (R's ``glm.control(maxit = 25)``).
    theta:
        A known negative binomial shape (``family="negative_binomial"`` only).
    subset:
        The rows to fit (R's ``subset=``): a boolean mask, one value per row, or an expression on the columns such
        as ``"z > 0.5"``.
    na_action:
        R's ``na.action``: ``"omit"`` (the default) drops the rows with a missing value in a model variable,
        ``"exclude"`` drops them too but pads the fitted values, residuals and predictions with NaN in those rows,
        ``"fail"`` refuses missing values.
    contrasts:
        R's ``contrasts=``: the coding of factors by column, ``{"f": "contr.sum", "h": "contr.helmert"}``, or
        ``("contr.treatment", "b")`` for treatment contrasts against level ``"b"``; columns named as R names them
        (``f1``, ``f2`` for sum and Helmert contrasts). ``C(f, sum)`` in the formula codes one term so
        (columns ``C(f, sum)1``, ...).
    """
    fam = get_family(family, link, theta)
    design = build_design(formula, data, family=fam, offset=offset, weights=weights, trials=trials, random="logical",
                          subset=subset, na_action=na_action, contrasts=contrasts)
    if design._logical_bars:
        bars = ", ".join(design._logical_bars.values())
        warnings.warn(
            f"glm() does not fit random effects: {bars} is treated as R treats it, a logical "
            "covariate that is always TRUE (reported as not estimable). Use glmer() for a random effect.",
            RankDeficiencyWarning,
            stacklevel=2,
        )
    result = fit_glm_design(design, fam, formula, maxit)
    result.frame = data
    return result


def fit_glm_design(design: Design, fam: Family, formula: str, maxit: int = MAX_ITERATIONS) -> GLMResults:
    """Fit the GLM of a built :class:`~glmmteach.formula.Design` (the last step of :func:`glm`, and what
    :meth:`GLMResults.refit` calls with a new response)."""
    keep = estimable_columns(design.X)
    if not keep.all() and not design._logical_bars:
        dropped = ", ".join(np.array(design.column_names)[~keep])
        warnings.warn(
            f"design is rank deficient: {dropped} not estimable (reported as NaN, as R reports NA)",
            RankDeficiencyWarning,
            stacklevel=3,
        )
    y = proportions(design.y, design.trials)
    prior = family_weights(design.trials, design.weights)
    start = binomial_start_weights(design.trials if design.has_trials else None, design.weights)
    shape = None
    if fam.is_negative_binomial and fam.theta is None:
        fit, fam, shape = fit_negative_binomial(design.X[:, keep], y, fam, prior, design.offset, maxit)
        warn_bound(shape, stacklevel=3)
    else:
        fit = irls(design.X[:, keep], y, fam, prior, design.offset, max_iter=maxit, start_weights=start)
    fit = _warn_fit_problems(fit, fam, design, keep, stacklevel=4)
    if "(Intercept)" in design.column_names:
        null_fit = irls(np.ones((len(y), 1)), y, fam, prior, design.offset, start_weights=start)
        null_deviance = null_fit.deviance
    else:
        mu0 = fam.link.linkinv(design.offset)
        null_deviance = float(np.sum(fam.deviance_residuals(y, mu0, prior)))
    return GLMResults(design, fam, fit, keep, null_deviance, formula, nb_shape=shape)


def fit_negative_binomial(
    X: np.ndarray, y: np.ndarray, family: Family, weights: np.ndarray, offset: np.ndarray,
    maxit: int = MAX_ITERATIONS, tol: float = EPSILON,
) -> tuple[IRLSFit, Family, ShapeEstimate]:
    r"""MASS's ``glm.nb``: the shape :math:`\theta` by maximum likelihood alternating with Fisher scoring.

    A Poisson fit (same link) gives the first means and :func:`glmmteach.negbin.theta_ml` the first
    :math:`\theta`; then, in turn, Fisher scoring at the current :math:`\theta` (started from the current
    means) and :math:`\theta` at the new means, until MASS's criterion
    :math:`|\Delta\ell|/\sqrt{2\,\mathrm{df}} + |\Delta\theta| <` ``tol``. A last Fisher-scoring pass at
    the final :math:`\theta` makes the coefficients, deviance and standard errors those of that
    :math:`\theta`. Returns the fit, the family with its :math:`\theta`, and the :class:`ShapeEstimate`.
    """
    if not np.any(y[weights > 0] > 0):
        raise DataError("the response is 0 in every row: the negative binomial shape theta cannot be estimated "
                        "(the likelihood does not depend on it); give it with theta= or fit the poisson family")
    poisson = get_family("poisson", "log") if family.link.name == "log" else Family(
        "poisson", family.link, estimate_scale=False)
    fit = irls(X, y, poisson, weights, offset, tol=tol, max_iter=maxit)
    shape = theta_ml(y, fit.mu, weights)
    d1 = np.sqrt(2.0 * max(1, len(y) - X.shape[1]))
    loglik = float(np.sum(family.with_theta(shape.theta).loglik(y, fit.mu, weights)))
    previous = loglik + 2.0 * d1
    change = 1.0
    iteration = 0
    while abs(previous - loglik) / d1 + abs(change) > tol:
        iteration += 1
        if iteration > maxit:
            break
        fam = family.with_theta(shape.theta)
        fit = irls(X, y, fam, weights, offset, tol=tol, max_iter=maxit, eta_start=fit.eta)
        old = shape.theta
        shape = theta_ml(y, fit.mu, weights, start=old)
        change = old - shape.theta
        previous, loglik = loglik, float(np.sum(family.with_theta(shape.theta).loglik(y, fit.mu, weights)))
    fam = family.with_theta(shape.theta)
    fit = irls(X, y, fam, weights, offset, tol=tol, max_iter=maxit, eta_start=fit.eta)
    message = None
    if shape.at_bound is not None:
        message = bound_message(shape.at_bound, "GLM")
    elif iteration > maxit:
        message = (f"alternation limit reached: theta and the coefficients did not settle in {maxit} alternations "
                   "(MASS's glm.nb warns the same); the estimates are not the maximum likelihood estimates")
    shape = ShapeEstimate(shape.theta, shape.se, shape.at_bound, iteration, message)
    return fit, fam, shape


def _warn_fit_problems(fit: IRLSFit, family: Family, design: Design, keep: np.ndarray,
                       stacklevel: int = 3) -> IRLSFit:
    """Warn about non-convergence and separation; a separated fit is returned as not converged (its estimates
    are where Fisher scoring stopped on the way to infinity)."""
    if not fit.converged:
        warnings.warn(
            f"Fisher scoring did not converge in {fit.iterations} iterations; the estimates are not "
            "the maximum likelihood estimates",
            ConvergenceWarning,
            stacklevel=stacklevel,
        )
    if not family.is_binomial:
        return fit
    from .glmm.separation import separation_warning  # the one separation test, shared with glmer

    used = np.where(design.weights > 0, design.trials, 0.0)  # a row with prior weight 0 carries no outcome
    names = list(np.array(design.column_names)[keep])
    separated = separation_warning(family, design.X[:, keep], design.y, used, fit.mu, names)
    if separated is not None:
        warnings.warn(separated.message, separated.category, stacklevel=stacklevel)
        return replace(fit, converged=False)
    eps = 10 * np.finfo(float).eps
    if np.any((fit.mu > 1 - eps) | (fit.mu < eps)):
        warnings.warn(
            "fitted probabilities numerically 0 or 1 occurred (as R's glm warns), though the outcomes are not "
            "separated (checked exactly): the estimates are finite, but some rows' fitted probabilities are "
            "within 2e-15 of 0 or 1 (extreme covariate values?)",
            SeparationWarning,
            stacklevel=stacklevel,
        )
    return fit
