r"""Confidence intervals for predictions: ``fit.predict(newdata, type, interval="confidence")``.

**Population level.** The linear predictor :math:`\hat\eta = x^\top\hat\beta + o` (a GLM's, or a GLMM's
with the random effects at 0, lme4's ``re.form = NA``) has the delta-method standard error
:math:`\sqrt{x^\top\hat V x}`, :math:`\hat V` the fixed-effects covariance (``fit.cov_params()``); the
interval is :math:`\hat\eta \pm q\,\mathrm{SE}` (``q`` the normal quantile, or the *t* quantile on the
residual degrees of freedom for a GLM whose dispersion is estimated). On the response scale the interval's
ends are transformed, :math:`g^{-1}(\hat\eta \pm q\,\mathrm{SE})`, and the standard error is
:math:`|d\mu/d\eta|\,\mathrm{SE}`. For a GLMM's population-averaged mean (``conditional=False``,
``type="response"``: :math:`\bar\mu(\eta) = E_b[g^{-1}(\eta + z^\top b)]`, as ``predict`` computes it) the
ends are :math:`\bar\mu(\hat\eta \pm q\,\mathrm{SE})` (:math:`\bar\mu` increases with :math:`\eta`) and the
standard error :math:`\bar\mu'(\hat\eta)\,\mathrm{SE}`, with the random-effect covariance held at its
estimate.

**Given the random effects** (``re_form=None`` or a list of terms, lme4's ``predict(fit, newdata)``): the
prediction :math:`\hat\eta = x^\top\hat\beta + o + a^\top\tilde u`, with :math:`a^\top = z^\top\Lambda_{\hat
\theta}` at the row's levels of the chosen terms, varies with the fixed effects and the conditional modes
together. Their joint covariance is the inverse of the negative Hessian of the penalised log-likelihood
:math:`\log p(y\mid\beta,u) - \tfrac12\|u\|^2` in :math:`(\beta, u)` at :math:`(\hat\beta, \tilde u)`, with
:math:`\theta` held at its estimate (as MixedModels.jl's conditional variances and merTools'
``predictInterval`` hold it; its uncertainty is not in these intervals):

.. math::

    \begin{pmatrix} X^\top W X & X^\top W A \\ A^\top W X & H \end{pmatrix}^{-1}, \qquad
    A = Z\Lambda_{\hat\theta},\quad H = I + A^\top W A,

:math:`W` the GLM working (Fisher) weights at the conditional modes (for a negative binomial GLMM at the
estimated shape, which is held too; for a canonical link, logit or log, they are the observed weights and the
matrix is the Hessian itself). By the block inverse the variance of
the row's :math:`\hat\eta` is

.. math::

    \operatorname{Var}(\hat\eta) = d^\top V_\beta\, d + a^\top H^{-1} a, \qquad d = x - K^\top a,

    K = H^{-1}A^\top W X,\quad V_\beta = (X^\top W X - X^\top W A\,K)^{-1}:

:math:`a^\top H^{-1}a` is the conditional variance of the random part with :math:`\beta` known (lme4's
``condVar``), :math:`d^\top V_\beta d` the fixed effects' uncertainty, carried through the modes' shift
(:math:`\partial\tilde u/\partial\beta = -K`). :math:`V_\beta` is the fixed-effects block of the joint inverse
(:math:`\theta` held). That is not ``fit.cov_params()``, the inverse Hessian of the Laplace (or quadrature)
log-likelihood in :math:`(\theta, \beta)`: on the Ohio fit the two give standard errors within 3e-4 of each
other, on the crossover (:math:`\hat\tau` near 23, a flat likelihood) the joint block's are 2-4 times larger.
``beta_cov="fit"`` puts ``fit.cov_params()`` in its place — the summary's standard errors, carried through the
modes' shift the same way, with :math:`\theta`'s uncertainty where ``cov_params`` has it — so that a new
level's interval (below) equals the population-level one. The interval is transformed to the response scale
as above.
A row of a level the fit has not seen (``allow_new_levels=True``) is predicted, as lme4 predicts it, with
that term's random effect at 0 — the typical group, not a random new one — so the term contributes nothing
to its variance. An interval for a randomly drawn new group (what merTools' ``new.levels = "draw"`` option
samples) would add :math:`z^\top\hat\Sigma z` and is a different quantity.

**Bootstrap** (``method="boot"``): the prediction is the statistic of :func:`glmmteach.bootstrap.bootstrap`
(lme4's ``bootMer(fit, function(m) predict(m, newdata, re.form = ...))``): each replicate refits a response
simulated with new random effects and predicts from the refit; the interval is the replicates' percentile
(or ``boot_type``) interval, ``se_fit`` their standard deviation, and the frame's ``attrs`` say how many
replicates succeeded and failed.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from scipy import sparse

from .exceptions import GlmmteachError, check_level
from .predict import population_average_mean, population_average_slope

METHODS = ("delta", "boot")
BETA_COVARIANCES = ("joint", "fit")


def predict_interval(fit: Any, newdata: pd.DataFrame | None = None, type: str = "link",  # noqa: A002
                     conditional: bool = True, re_form: Any = None, offset: Any = None,
                     interval: str = "confidence", level: float = 0.95, n_nodes: int | None = None,
                     allow_new_levels: bool = False, method: str = "delta", nsim: int = 1000, seed: Any = None,
                     beta_cov: str = "joint", **boot: Any) -> pd.DataFrame:
    """Predictions with confidence intervals (see the module docstring): columns ``fit``, ``se_fit``,
    ``lower``, ``upper``, indexed as the rows predicted. ``fit`` is what ``fit.predict`` gives with the same
    arguments. ``method="delta"`` (the default) or ``"boot"`` (``nsim`` replicates from ``seed``; ``boot``
    passes ``n_jobs``, ``client`` and ``boot_type``, the interval's type: ``"perc"``, ``"basic"``, ``"norm"``).
    ``beta_cov`` (given the random effects): ``"joint"`` the fixed-effects block of the joint inverse, ``"fit"``
    ``fit.cov_params()`` (see the module docstring)."""
    _check_options(interval, type, method, level, beta_cov)
    mixed = hasattr(fit, "terms")
    options = {"conditional": conditional, "re_form": re_form, "allow_new_levels": allow_new_levels} if mixed else {}
    if method == "boot":
        return _boot_interval(fit, newdata, type, offset, level, options, nsim, seed, **boot)
    if boot:
        raise GlmmteachError(f"{', '.join(boot)} apply to method='boot' only")
    if newdata is None:
        X, off, index = fit.design.X, fit.design.offset, fit.design.row_index
    else:
        X, off = fit.design.new_fixed(newdata, offset)
        index = newdata.index
    if mixed and conditional and not _population_level(re_form):
        predicted = fit.predict(newdata, "link", offset=offset, **options)  # checks re_form and the levels
        eta = predicted.reindex(index).to_numpy(dtype=float)
        se = np.sqrt(conditional_link_variance(fit, X, newdata, re_form, beta_cov))
    else:
        beta = np.nan_to_num(fit.params.to_numpy(dtype=float))  # an aliased coefficient contributes nothing (R)
        vcov = np.nan_to_num(fit.cov_params().to_numpy(dtype=float))
        eta = X @ beta + off
        se = np.sqrt(np.einsum("ij,jk,ik->i", X, vcov, X))
    use_t = bool(getattr(fit, "use_t", False))
    from scipy import stats  # imported when used: scipy.stats is the slowest import of the package

    q = stats.t.ppf(1 - (1 - level) / 2, fit.df_resid) if use_t else stats.norm.ppf(1 - (1 - level) / 2)
    link = fit.family.link
    if type == "link":
        value, lower, upper = eta, eta - q * se, eta + q * se
    elif mixed and not conditional:
        variance = _re_variance(fit, X, newdata)
        value = population_average_mean(eta, variance, fit.family, n_nodes)
        lower = population_average_mean(eta - q * se, variance, fit.family, n_nodes)
        upper = population_average_mean(eta + q * se, variance, fit.family, n_nodes)
        se = population_average_slope(eta, variance, fit.family, n_nodes) * se
    else:
        value = link.linkinv(eta)
        ends = np.sort(np.column_stack([link.linkinv(eta - q * se), link.linkinv(eta + q * se)]), axis=1)
        lower, upper = ends[:, 0], ends[:, 1]
        se = np.abs(link.mu_eta(eta)) * se
    return pd.DataFrame({"fit": value, "se_fit": se, "lower": lower, "upper": upper}, index=index)


def _check_options(interval: Any, type: Any, method: Any, level: Any, beta_cov: Any) -> None:  # noqa: A002
    if interval is None:
        raise GlmmteachError("method, beta_cov and the bootstrap's options apply to intervals: pass "
                             "interval='confidence'")
    if interval != "confidence":
        raise GlmmteachError(f"interval must be 'confidence', got {interval!r} (prediction intervals for a new "
                             "observation are not defined for a GLM's discrete response)")
    if type not in ("link", "response"):
        raise GlmmteachError(f"type must be 'link' or 'response', got {type!r}")
    if method not in METHODS:
        raise GlmmteachError(f"method must be one of {', '.join(map(repr, METHODS))}, got {method!r}")
    check_level("level", level)
    if beta_cov not in BETA_COVARIANCES:
        raise GlmmteachError(f"beta_cov must be one of {', '.join(map(repr, BETA_COVARIANCES))}, got {beta_cov!r}")


# ---- conditional on the random effects: the joint covariance of (beta, u) ----------------------------------
def conditional_link_variance(fit: Any, X: np.ndarray, newdata: pd.DataFrame | None, re_form: Any = None,
                              beta_cov: str = "joint") -> np.ndarray:
    r""":math:`\operatorname{Var}(\hat\eta) = d^\top V_\beta d + a^\top H^{-1} a` of each row given the random
    effects of the terms ``re_form`` chooses (None: all), :math:`\theta` held at its estimate (module
    docstring); ``X`` the rows' fixed-effects matrix, ``newdata`` None for the fitted rows; ``beta_cov``
    ``"joint"`` (:math:`V_\beta` of the joint inverse) or ``"fit"`` (``fit.cov_params()``)."""
    joint = JointCovariance(fit)
    A = joint.rows(_chosen_terms(fit, re_form), newdata)
    d = X - (A @ joint.K)
    columns = np.unique(A.indices)  # H^{-1} is needed only between the columns these rows touch
    A_used = A[:, columns]
    H_inv = joint.solve(np.eye(joint.q)[:, columns])[columns]
    random_part = np.asarray(A_used.multiply(A_used @ H_inv).sum(axis=1)).ravel()
    V_beta = joint.V_beta if beta_cov == "joint" else fit.cov_params().to_numpy(dtype=float)
    return ((d @ V_beta) * d).sum(axis=1) + random_part


class JointCovariance:
    r"""The pieces of the inverse of the penalised system in :math:`(\beta, u)` at the estimates:
    :math:`V_\beta`, :math:`K = H^{-1}A^\top W X` (q×p) and solves with :math:`H`, from the engine's
    conditional modes at :math:`(\hat\theta, \hat\beta)` (one PIRLS run: the fit keeps no state here)."""

    def __init__(self, fit: Any):
        model = fit.model  # the engine's model protocol (glmm.model.MixedModel)
        self.fit = fit
        self.state = model.conditional_modes(fit.theta, fit.params.to_numpy(dtype=float))
        self.q = model.q
        self.starts = model.effect_starts
        try:
            self.V_beta = np.linalg.inv(model.beta_information(self.state))
        except np.linalg.LinAlgError as error:
            raise GlmmteachError(
                "the fixed effects' information given the random effects is singular (outcomes separated by a "
                "covariate?): no delta-method interval given the random effects; method='boot' or re_form=[] "
                "may still give one") from error
        self.K = self.solve(self._AtWX())

    def _AtWX(self) -> np.ndarray:
        r""":math:`A^\top W X` (q×p)."""
        wX = self.state.values.fisher[:, None] * np.asarray(self.fit.model.X, dtype=float)
        return self.fit.model.effects_crossprod(self.state, wX)

    def solve(self, M: np.ndarray) -> np.ndarray:
        """:math:`H^{-1}M` for the columns of ``M`` (q×k)."""
        return self.fit.model.fisher_solve(self.state, M)

    def rows(self, chosen: list[int], newdata: pd.DataFrame | None) -> sparse.csr_matrix:
        r""":math:`a^\top = z^\top\Lambda_{\hat\theta}` of each row (n×q, sparse) at its levels of the chosen
        terms; a level the fit has not seen (code −1) gets no entries: its effect is 0."""
        fit = self.fit
        n = fit.nobs if newdata is None else len(newdata)
        rows, cols, values = [], [], []
        for k in chosen:
            term, T = fit.terms[k], fit.Ts[k]
            if newdata is None:
                Z, codes = np.asarray(term.Z, dtype=float).reshape(n, -1), np.asarray(term.group_codes)
            else:
                Z, codes = term.new_rows(newdata)
            r = T.shape[0]
            seen = np.flatnonzero(codes >= 0)
            entries = np.asarray(Z, dtype=float)[seen] @ T
            rows.append(np.repeat(seen, r))
            cols.append((self.starts[k] + codes[seen, None] * r + np.arange(r)).ravel())
            values.append(entries.ravel())
        if not rows:
            return sparse.csr_matrix((n, self.q))
        return sparse.csr_matrix((np.concatenate(values), (np.concatenate(rows), np.concatenate(cols))),
                                 shape=(n, self.q))


def _chosen_terms(fit: Any, re_form: Any) -> list[int]:
    """The terms ``re_form`` conditions on (None: all; a list of :attr:`term_labels` or grouping factors),
    named as ``fit.predict`` has already checked them."""
    if re_form is None:
        return list(range(len(fit.terms)))
    wanted = {re_form} if isinstance(re_form, str) else set(re_form)
    return [k for k, (label, term) in enumerate(zip(fit.term_labels, fit.terms, strict=True))
            if label in wanted or term.group_name in wanted]


# ---- the bootstrap ---------------------------------------------------------------------------------------
class PredictionStatistic:
    """A refit's predictions for ``newdata`` (the statistic of :func:`_boot_interval`): picklable, so that
    the replicates run in other processes or on a Dask cluster."""

    def __init__(self, newdata: pd.DataFrame | None, type: str, offset: Any, options: dict):  # noqa: A002
        self.newdata, self.type, self.offset, self.options = newdata, type, offset, options

    def __call__(self, refit: Any) -> np.ndarray:
        predicted = refit.predict(self.newdata, self.type, offset=self.offset, **self.options)
        return predicted.to_numpy(dtype=float)


def _boot_interval(fit: Any, newdata: pd.DataFrame | None, type: str, offset: Any, level: float,  # noqa: A002
                   options: dict, nsim: int, seed: Any, n_jobs: int = 1, client: Any = None,
                   boot_type: str = "perc") -> pd.DataFrame:
    from .bootstrap import bootstrap

    statistic = PredictionStatistic(newdata, type, offset, options)
    index = fit.predict(newdata, type, offset=offset, **options).index  # the checks, before any replicate
    result = bootstrap(fit, statistic, nsim, seed, n_jobs, client)
    ends = result.conf_int(boot_type, 1 - level)
    table = pd.DataFrame({"fit": result.observed.to_numpy(), "se_fit": result.replicates.std(ddof=1).to_numpy(),
                          "lower": ends["lower"].to_numpy(), "upper": ends["upper"].to_numpy()}, index=index)
    table.attrs.update(ends.attrs)
    table.attrs["failures"] = result.failures
    return table


def _population_level(re_form: Any) -> bool:
    """re_form=[] (no random-effects term): lme4's re.form = NA."""
    return re_form is not None and not isinstance(re_form, str) and len(list(re_form)) == 0


def _re_variance(fit: Any, X: np.ndarray, newdata: pd.DataFrame | None) -> np.ndarray:
    r""":math:`v = \sum_t z_t^\top\Sigma_t z_t` of each row (as ``predict(conditional=False)`` computes it)."""
    total = np.zeros(len(X))
    for term, T in zip(fit.terms, fit.Ts, strict=True):
        Z = np.asarray(term.Z, dtype=float).reshape(len(X), -1) if newdata is None else term.new_covariates(newdata)
        total += np.einsum("na,ab,nb->n", Z, T @ T.T, Z)
    return total


