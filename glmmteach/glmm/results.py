r"""The fitted GLMM: :class:`GLMMResults`, a passive record of a fit.

It is built from what :func:`glmmteach.glmm.optimize.fit_glmm` found and what
:func:`glmmteach.glmm.optimize.diagnose` concluded (covariance, warnings): it computes no fit and
raises no warnings. Attributes follow statsmodels' vocabulary (``params``, ``bse``, ``llf``,
``conf_int()``, ``summary()``) and lme4's names where statsmodels has none.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from scipy import optimize, stats

from ..exceptions import DataError, GlmmteachError
from ..families import Family
from ..formula import Design
from ..negbin import ShapeEstimate
from .model import GroupedData, batch_inverse
from .optimize import Diagnosis, FitOutcome, is_singular, maximise_beta
from .summary import GLMMSummary
from .terms import CovarianceTerm


class GLMMResults:
    """A fitted GLMM: estimates, standard errors, random effects, diagnostics, predictions.

    Attributes mirror :class:`glmmteach.GLMResults` where they mean the same thing. ``deviance`` is
    :math:`-2\\log L` (what lme4's summary prints under "deviance"); lme4's ``deviance(fit)``, the
    sum of squared deviance residuals at the conditional modes, is ``deviance_conditional``.
    ``warnings`` lists the texts of the warnings raised when the model was fitted.
    """

    def __init__(self, formula: str, family: Family, design: Design, data: GroupedData, outcome: FitOutcome,
                 diagnosis: Diagnosis, n_nodes: int, frame: pd.DataFrame | None = None, *,
                 nb_shape: ShapeEstimate | None = None):
        self.formula = formula
        self.nb_shape = nb_shape
        self.family = family
        self.design = design
        self.nAGQ = n_nodes
        self.model = data  # the arrays the likelihood is computed from (make_devfun(fit) uses them)
        self._data = data
        self._outcome = outcome
        self._frame = frame
        term = design.random[0]
        self._term = term
        self.correlated = term.correlated
        self.group_name = term.group_name
        self.re_names = list(term.names)
        self.theta = outcome.theta
        self.T = CovarianceTerm(data.n_re, term.correlated).T(outcome.theta)
        self.llf = float(outcome.llf)
        self.nobs = design.nobs
        self.ngroups = term.n_groups
        self.dropped_rows = design.dropped_rows
        self.converged = outcome.converged
        self.n_evaluations = outcome.evaluations
        self.data_passes = outcome.passes
        names = design.column_names
        self.params = pd.Series(outcome.beta, index=names, name="Estimate")
        self.warnings: list[str] = [item.message for item in diagnosis.warnings]
        self._cov_full = diagnosis.cov_full
        self._cov = pd.DataFrame(diagnosis.cov_beta, index=names, columns=names)
        self.bse = pd.Series(np.sqrt(np.diag(diagnosis.cov_beta)), index=names, name="Std. Error")
        self.zvalues = pd.Series(self.params / self.bse, name="z value")
        self.pvalues = pd.Series(2 * stats.norm.sf(np.abs(self.zvalues)), index=names, name="Pr(>|z|)")

    # ---- basic quantities -------------------------------------------------------------------
    @property
    def k_params(self) -> int:
        """Number of estimated parameters: fixed effects plus random-effect (co)variances (plus an
        estimated negative binomial shape, as lme4 counts it for ``glmer.nb``)."""
        return len(self.params) + len(self.theta) + int(self.nb_shape is not None)

    @property
    def nb_theta(self) -> float | None:
        r"""The negative binomial shape :math:`\theta_{NB}` (estimated, or as given); ``None`` for other
        families. Not to be confused with ``theta``, lme4's relative covariance parameters."""
        return self.family.theta if self.family.is_negative_binomial else None

    @property
    def nb_theta_se(self) -> float | None:
        """Standard error of an estimated shape, from the curvature of its profile log-likelihood (lme4
        reports none; NaN on a bound); ``None`` when the shape was not estimated."""
        return None if self.nb_shape is None else self.nb_shape.se

    @property
    def singular(self) -> bool:
        """True for a boundary fit: a random-effect SD below 1e-4 (lme4's ``isSingular``)."""
        return is_singular(self.theta, CovarianceTerm(self._data.n_re, self.correlated))

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
        cond_cov = np.einsum("ab,gbc,dc->gad", self.T, batch_inverse(state.hessian_fisher), self.T)
        cond_sd = np.sqrt(np.clip(np.diagonal(cond_cov, axis1=1, axis2=2), 0, None))
        frame = {}
        for a, name in enumerate(self.re_names):
            frame[name] = b[:, a]
            frame[f"{name}_sd"] = cond_sd[:, a]
        return pd.DataFrame(frame, index=pd.Index(self._term.group_levels, name=self.group_name))

    def _conditional_mean(self) -> np.ndarray:
        return self.family.linkinv(self._outcome.state.eta)

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
        resid = (self._data.y - n * mu) / np.sqrt(n * self.family.variance(mu))
        return pd.Series(resid, index=self.design.row_index, name="pearson")

    @property
    def deviance_conditional(self) -> float:
        """lme4's ``deviance(fit)``: the sum of unit deviances at the conditional modes."""
        data = self._data
        weights = np.ones(data.nobs) if data.weights is None else data.weights
        return float(self.family.deviance_residuals(data.response, self._conditional_mean(), weights).sum())

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
            beta, value = maximise_beta(self._data, np.array([sd]), beta, True, self.nAGQ)
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
            return maximise_beta(self._data, np.array([sd]), beta_hat, True, self.nAGQ)[1] - cutoff

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
        from ..predict import population_average_mean

        if type not in ("link", "response"):
            raise GlmmteachError(f"type must be 'link' or 'response', got {type!r}")
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
            values = eta if type == "link" else self.family.linkinv(eta)
        elif type == "link":
            values = eta_fixed
        else:
            re_variance = np.einsum("na,ab,nb->n", Z, self.T @ self.T.T, Z)
            values = population_average_mean(eta_fixed, re_variance, self.family, n_nodes)
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
