r"""The fitted GLMM: :class:`GLMMResults`, a passive record of a fit.

It is built from what :func:`glmmteach.glmm.optimize.fit_glmm` found and what
:func:`glmmteach.glmm.diagnosis.diagnose` concluded (covariance, warnings): it computes no fit and
raises no warnings. Attributes follow statsmodels' vocabulary (``params``, ``bse``, ``llf``,
``conf_int()``, ``summary()``) and lme4's names where statsmodels has none.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import numpy as np
import pandas as pd
from scipy import special

from ..exceptions import GlmmteachError
from ..families import Family
from ..formula import Design
from ..simulation import as_generator, check_nsim
from ..theta_ml import ShapeEstimate
from . import prediction
from .diagnosis import Diagnosis, is_singular
from .model import MixedModel
from .outcome import FitOutcome
from .summary import GLMMSummary, VarCorrTable
from .terms import CovarianceTerm


@dataclass(frozen=True)
class ModelSpec:
    """What, besides the data, defines a glmer model: enough to fit it again to a new response.

    ``proportion``: the binomial response was given as a proportion with ``weights`` = trials (simulated
    and new responses are then proportions too).
    """

    formula: str
    family: Family
    n_nodes: int
    proportion: bool = False
    prior: Any = None  # a MAP fit's priors (glmmteach.glmm.bglmer.Priors); None: maximum likelihood
    optimizer: str | None = None  # fit_glmm's method (None: its default; glmmteach.all_fit refits with each)


class GLMMResults:
    """A fitted GLMM: estimates, standard errors, random effects, diagnostics, predictions.

    Attributes mirror :class:`glmmteach.GLMResults` where they mean the same thing. ``deviance`` is
    :math:`-2\\log L` (what lme4's summary prints under "deviance"); lme4's ``deviance(fit)``, the
    sum of squared deviance residuals at the conditional modes, is ``deviance_conditional``.
    ``warnings`` lists the texts of the warnings raised when the model was fitted. ``spec`` and
    ``frame`` (the data frame given to :func:`~glmmteach.glmer`) are what :meth:`refit` needs.
    """

    def __init__(self, formula: str, family: Family, design: Design, data: MixedModel,
                 outcome: FitOutcome,
                 diagnosis: Diagnosis, frame: pd.DataFrame | None = None,
                 spec: ModelSpec | None = None, *, nb_shape: ShapeEstimate | None = None,
                 refit_with: Callable[[GLMMResults, Any], GLMMResults] | None = None):
        self.formula = formula
        # nAGQ is held once, in the spec (what was asked: 0, 1 or the nodes); the outcome records the same
        self.spec = ModelSpec(formula, family, outcome.n_nodes) if spec is None else spec
        self.frame = frame
        self.nb_shape = nb_shape
        self._refit_with = refit_with  # glmer's refit_response: the record refits without importing the API
        self.family = family
        self.design = design
        self.model = data  # the engine model the likelihood is computed from (make_devfun(fit) uses it)
        self._data = data.data  # X, response, family, weights
        self._outcome = outcome
        self._frame = frame
        term = design.random[0]
        self._term = term
        self.terms = list(design.random)  # lme4's order
        self.correlated = term.correlated
        self.group_name = term.group_name
        self.re_names = list(term.names)
        self.theta = outcome.theta
        self.Ts = data.Ts(outcome.theta)
        self.T = self.Ts[0]
        self.llf = float(outcome.llf)
        self.log_prior = float(getattr(outcome, "log_prior", 0.0))  # a MAP fit's (bglmer); 0 for ML
        self.nobs = design.nobs
        # lme4's ngrps: levels of each grouping factor (a single factor: the number)
        factors = dict.fromkeys(t.group_name for t in self.terms)
        levels = {name: next(t.n_groups for t in self.terms if t.group_name == name) for name in factors}
        self.ngroups = levels[term.group_name] if len(levels) == 1 else levels
        self.dropped_rows = design.dropped_rows
        self.converged = outcome.converged
        self.n_evaluations = outcome.evaluations
        self.optimizer = outcome.method  # the optimiser fit_glmm used (glmmteach.all_fit)
        self.optimizer_message = str(getattr(outcome, "message", ""))
        self.newton_decrement = float(getattr(outcome, "newton_decrement", np.nan))  # the convergence test's
        self.data_passes = outcome.passes
        names = pd.Index(design.column_names)  # one index shared by the tables (building it is their main cost)
        self.params = pd.Series(outcome.beta, index=names, name="Estimate")
        self.warnings: list[str] = [item.message for item in diagnosis.warnings]
        self._cov_full = diagnosis.cov_full
        self._cov_beta = diagnosis.cov_beta
        # the tables below are built when first asked for: a refit in a simulation or bootstrap loop that
        # reads only estimates does not pay for four pandas objects

    @cached_property
    def _cov(self) -> pd.DataFrame:
        return pd.DataFrame(self._cov_beta, index=self.params.index, columns=self.params.index)

    @cached_property
    def bse(self) -> pd.Series:
        # a variance that is not positive is NaN by now (glmm.diagnosis names it in a warning)
        return pd.Series(np.sqrt(np.diag(self._cov_beta)), index=self.params.index, name="Std. Error")

    @cached_property
    def zvalues(self) -> pd.Series:
        with np.errstate(divide="ignore", invalid="ignore"):  # (as pandas divides: a zero SE gives inf quietly)
            z = self.params.to_numpy() / self.bse.to_numpy()
        return pd.Series(z, index=self.params.index, name="z value")

    @cached_property
    def pvalues(self) -> pd.Series:
        # the normal tail as stats.norm.sf computes it (ndtr(-|z|)), without its per-call argument handling
        return pd.Series(2 * special.ndtr(-np.abs(self.zvalues.to_numpy())), index=self.params.index,
                         name="Pr(>|z|)")

    # ---- basic quantities -------------------------------------------------------------------
    @property
    def k_params(self) -> int:
        """Number of estimated parameters: fixed effects plus random-effect (co)variances (plus an
        estimated negative binomial shape, as lme4 counts it for ``glmer.nb``)."""
        return len(self.params) + len(self.theta) + int(self.nb_shape is not None)

    @property
    def nb_theta(self) -> float | None:
        r"""The negative binomial shape :math:`\theta_{NB}` (estimated, or as given); ``None`` for other
        families. Not to be confused with ``theta``, lme4's relative covariance parameters. ``inf`` when
        the estimate is the Poisson limit (the fit is then the Poisson GLMM; ``nb_shape.message`` says so)."""
        if self.nb_shape is not None:
            return self.nb_shape.theta
        return self.family.theta if self.family.is_negative_binomial else None

    @property
    def nb_theta_se(self) -> float | None:
        """Standard error of an estimated shape, from the curvature of its profile log-likelihood (lme4
        reports none; NaN on a bound); ``None`` when the shape was not estimated."""
        return None if self.nb_shape is None else self.nb_shape.se

    @property
    def singular(self) -> bool:
        """True for a boundary fit: a random-effect SD below 1e-4 (lme4's ``isSingular``)."""
        return is_singular(self.theta, self.model.covariance)

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
    def term_labels(self) -> list[str]:
        """The terms' names as lme4's ``VarCorr`` gives them: the grouping factor, made unique (``g``, ``g.1``).
        An uncorrelated term ``(1 + x || g)`` is lme4's terms ``g``, ``g.1`` (one per effect), so a later
        term of ``g`` is ``g.2``; the term's label is its first effect's."""
        return [labels[0] for labels in self._effect_group_labels()]

    def _effect_group_labels(self) -> list[list[str]]:
        """Per term, the ``Groups`` label of each of its effects (lme4's ``VarCorr`` rows)."""
        seen: dict[str, int] = {}
        out = []
        for term in self.terms:
            name, k = term.group_name, seen.get(term.group_name, 0)
            r = len(term.names)
            if term.correlated:
                out.append([name if k == 0 else f"{name}.{k}"] * r)
            else:
                out.append([name if k + a == 0 else f"{name}.{k + a}" for a in range(r)])
            seen[name] = k + (1 if term.correlated else r)
        return out

    @property
    def theta_names(self) -> list[str]:
        """Names of the elements of :attr:`theta`, as lme4's ``getME(fit, "theta")``: ``g.(Intercept)`` for a
        relative SD, ``g.x.(Intercept)`` for the entry of row ``x``, column ``(Intercept)`` of :math:`T`."""
        names = []
        for term in self.terms:
            rows, cols = CovarianceTerm(len(term.names), term.correlated).positions
            for a, c in zip(rows, cols, strict=True):
                inner = term.names[a] if a == c else f"{term.names[a]}.{term.names[c]}"
                names.append(f"{term.group_name}.{inner}")
        return names

    @property
    def cov_re(self) -> pd.DataFrame | dict[str, pd.DataFrame]:
        r"""Random-effect covariance :math:`\Sigma = T_\theta T_\theta^\top` (r×r); with several terms a dict
        of one such matrix per term (keys :attr:`term_labels`, lme4's ``VarCorr`` list)."""
        blocks = {label: pd.DataFrame(T @ T.T, index=list(t.names), columns=list(t.names))
                  for label, t, T in zip(self.term_labels, self.terms, self.Ts, strict=True)}
        return blocks[self.term_labels[0]] if len(self.terms) == 1 else blocks

    @property
    def sd_re(self) -> pd.Series:
        """Random-effect standard deviations (with several terms indexed by (term, effect))."""
        sd = np.concatenate([np.sqrt(np.diag(T @ T.T)) for T in self.Ts])
        if len(self.terms) == 1:
            return pd.Series(sd, index=self.re_names, name="Std.Dev.")
        index = pd.MultiIndex.from_tuples([(label, name) for label, t in zip(self.term_labels, self.terms, strict=True)
                                           for name in t.names], names=["group", "effect"])
        return pd.Series(sd, index=index, name="Std.Dev.")

    @property
    def nAGQ(self) -> int:
        """lme4's ``nAGQ``: 0 (lme4's fast approximation), 1 (Laplace) or the adaptive Gauss-Hermite nodes."""
        return self.spec.n_nodes

    @property
    def outcome(self) -> FitOutcome:
        """The optimiser's immutable record of the fit (:class:`~glmmteach.glmm.outcome.FitOutcome`: estimates,
        conditional modes, Hessian, evaluations), as statsmodels' ``mle_retvals``."""
        return self._outcome

    def _term_effects(self) -> list[tuple[np.ndarray, np.ndarray]]:
        """Per term: conditional modes b (levels×r) and conditional covariances (levels×r×r)."""
        return self.model.term_effects(self._outcome.state, self.theta)

    @property
    def ranef(self) -> pd.DataFrame | dict[str, pd.DataFrame]:
        r"""Conditional modes :math:`\tilde b_i = T\tilde u_i` per group with conditional SDs
        (columns ``<name>`` and ``<name>_sd``; :math:`\operatorname{Var}(b_i\mid y)\approx T H_i^{-1}T^\top`).
        With several grouping factors, a dict of one such frame per factor (lme4's ``ranef`` list); terms of
        the same factor share its frame."""
        frames: dict[str, pd.DataFrame] = {}
        for term, (b, cov) in zip(self.terms, self._term_effects(), strict=True):
            cond_sd = np.sqrt(np.clip(np.diagonal(cov, axis1=1, axis2=2), 0, None))
            frame = {}
            for a, name in enumerate(term.names):
                frame[name] = b[:, a]
                frame[f"{name}_sd"] = cond_sd[:, a]
            part = pd.DataFrame(frame, index=pd.Index(term.group_levels, name=term.group_name))
            if term.group_name in frames:  # another term of the same factor: its columns join the factor's frame
                before = frames[term.group_name]
                part.columns = [f"{c}.1" if c in before.columns else c for c in part.columns]
                part = pd.concat([before, part], axis=1)
            frames[term.group_name] = part
        return frames[self.group_name] if len(frames) == 1 else frames

    @property
    def ranef_cov(self) -> pd.DataFrame | dict[str, pd.DataFrame]:
        r"""Conditional covariance matrix of each group's random effects (lme4's
        ``attr(ranef(fit, condVar = TRUE)$g, "postVar")``): :math:`T H_i^{-1} T^\top`, with
        :math:`H_i = I + T^\top Z_i^\top W_i Z_i T` at the conditional modes, :math:`W_i` the GLM working
        weights. One r×r block per group: rows indexed by (group, effect), columns by effect; the square
        roots of the diagonal are the ``_sd`` columns of :attr:`ranef`. For ``(1 + x || g)`` lme4 reports
        each term's block alone (zero covariances); here the effects' conditional covariance is kept:
        independent a priori, they are not independent given the data. With several terms, a dict of one
        such frame per term (keys :attr:`term_labels`): each term's diagonal blocks of the joint
        conditional covariance (as lme4's per-term ``postVar``).
        """
        out = {}
        for label, term, (_, cov) in zip(self.term_labels, self.terms, self._term_effects(), strict=True):
            index = pd.MultiIndex.from_product([term.group_levels, term.names], names=[term.group_name, "effect"])
            out[label] = pd.DataFrame(cov.reshape(-1, len(term.names)), index=index, columns=term.names)
        return out[self.term_labels[0]] if len(out) == 1 else out

    def varcorr(self) -> VarCorrTable:
        """lme4's ``VarCorr(fit)``: random-effect variances, standard deviations and correlations, one row per
        effect (columns ``Groups``, ``Name``, ``Variance``, ``Std.Dev.`` and, for a correlated term, one
        ``Corr <effect>`` column per earlier effect). It prints in lme4's layout; ``table.to_text(digits,
        comp)`` is lme4's ``print(VarCorr(fit), digits, comp)``. With several terms the rows follow lme4's
        term order and ``Corr k`` holds the correlation with the k-th effect of the row's own term."""
        groups, names, variances, sds, corr_rows = [], [], [], [], []
        for labels, term, T in zip(self._effect_group_labels(), self.terms, self.Ts, strict=True):
            cov = T @ T.T
            sd = np.sqrt(np.diag(cov))
            r = len(term.names)
            groups += labels  # lme4 lists (1 + x || g) as separate terms g, g.1, ...
            names += list(term.names)
            variances += list(np.diag(cov))
            sds += list(sd)
            safe = np.where(sd > 0, sd, 1.0)
            corr = cov / np.outer(safe, safe)
            corr_rows += [[corr[a, c] if (term.correlated and a > c) else np.nan for c in range(r - 1)]
                          for a in range(r)]
        table = VarCorrTable({"Groups": groups, "Name": names, "Variance": variances, "Std.Dev.": sds})
        width = max((len(row) for row in corr_rows), default=0)
        if any(not np.all(np.isnan(row)) for row in corr_rows if row):
            labels = (list(self.re_names[:width]) if len(self.terms) == 1
                      else [str(c + 1) for c in range(width)])
            for c in range(width):
                table[f"Corr {labels[c]}"] = [row[c] if c < len(row) else np.nan for row in corr_rows]
        return table

    def _conditional_mean(self) -> np.ndarray:
        return self.family.linkinv(self._outcome.state.eta)

    @property
    def fittedvalues(self) -> pd.Series:
        """Conditional means (probabilities for the binomial family) at the conditional modes."""
        return self.design.pad(pd.Series(self._conditional_mean(), index=self.design.row_index))

    RESIDUAL_TYPES = ("deviance", "pearson", "response", "working")

    def resid(self, type: str = "deviance") -> pd.Series:
        r"""Residuals at the conditional modes, as lme4's ``residuals(fit, type)`` for a glmer fit.

        With :math:`y` the response per trial (a proportion for binomial data), :math:`\mu` the fitted
        mean, :math:`w` the prior weights times the trials and :math:`d` the unit deviance:

        - ``"deviance"`` (the default, as in lme4): :math:`\operatorname{sign}(y-\mu)\sqrt{w\,d(y,\mu)}`;
        - ``"pearson"``: :math:`(y-\mu)\sqrt{w/V(\mu)}`;
        - ``"response"``: :math:`y-\mu` (on the proportion scale for binomial data, as lme4);
        - ``"working"``: :math:`(y-\mu)/(d\mu/d\eta)`.
        """
        if type not in self.RESIDUAL_TYPES:
            raise GlmmteachError(f"type must be one of {', '.join(map(repr, self.RESIDUAL_TYPES))}, got {type!r}")
        mu = self._conditional_mean()
        data = self._data
        y = data.response  # R's convention: proportions for binomial data, weights = prior weights x trials
        w = np.ones(data.nobs) if data.family_weights is None else data.family_weights
        if type == "deviance":
            unit = self.family.deviance_residuals(y, mu, w)
            values = np.where(y > mu, 1.0, -1.0) * np.sqrt(np.maximum(unit, 0.0))
        elif type == "pearson":
            values = (y - mu) * np.sqrt(w / self.family.variance(mu))
        elif type == "response":
            values = y - mu
        else:
            values = (y - mu) / self.family.link.mu_eta(self._outcome.state.eta)
        return self.design.pad(pd.Series(values, index=self.design.row_index, name=type))

    @property
    def resid_pearson(self) -> pd.Series:
        """Pearson residuals at the conditional modes, ``resid("pearson")`` (lme4's scaled residuals; the
        GLMM dispersion is 1)."""
        return self.resid("pearson")

    @property
    def deviance_conditional(self) -> float:
        """lme4's ``deviance(fit)``: the sum of squared deviance residuals at the conditional modes."""
        return float(np.sum(self.resid("deviance").to_numpy() ** 2))

    # ---- inference --------------------------------------------------------------------------
    def conf_int(self, alpha: float = 0.05, method: str | None = None, parm: Any = None, nsim: int = 1000,
                 seed: Any = None, nb_shape: str = "held", **boot: Any) -> pd.DataFrame:
        r"""Confidence intervals, as lme4's ``confint``.

        Without ``method``: Wald intervals :math:`\hat\beta \pm z_{1-\alpha/2}\,\mathrm{SE}` for the fixed
        effects, columns ``"2.5 %"``/``"97.5 %"`` (R's ``confint.default``; what the lessons use).

        With ``method`` (``"profile"``, ``"wald"`` or ``"boot"``): every parameter, rows in lme4's order — each
        term's SDs and correlations in :attr:`theta`'s order, named ``sd_(Intercept)|g`` and
        ``cor_(Intercept).x|g`` (lme4's ``.sig01``, ... with ``oldNames = FALSE``), then an estimated negative
        binomial shape ``nb_theta``, then the fixed effects — with columns ``estimate``, ``lower``, ``upper`` and
        ``note`` (why an end is a boundary or infinite, or what was held). ``"profile"``: the signed-root
        profile deviance of :mod:`glmmteach.glmm.profile` (lme4's ``profile``/``confint(method =
        "profile")``, its ends found on the profile itself). ``"wald"``: lme4's ``method = "Wald"``, no
        interval for the covariance parameters (NaN, as lme4's NA). ``"boot"``: the parametric bootstrap
        (``glmmteach.bootstrap.boot_conf_int``, ``nsim`` replicates from ``seed``; ``boot`` passes its ``type``,
        ``n_jobs`` and ``client``). ``parm``: row names (or
        positions), or lme4's ``"theta_"`` (the covariance parameters and shape) or ``"beta_"`` (the fixed
        effects); the default is all. ``nb_shape`` (a negative binomial GLMM whose shape was estimated):
        ``"held"`` profiles the other parameters at the estimated shape (lme4's ``confint`` of a ``glmer.nb``
        fit), ``"profiled"`` re-optimises the shape at every point too (the full profile; about ten times the
        work).
        """
        from .profile import check_alpha

        alpha = check_alpha(alpha)
        if method is None:
            q = special.ndtri(1 - alpha / 2)  # = scipy.stats.norm.ppf
            pct = [f"{100 * alpha / 2:g} %", f"{100 * (1 - alpha / 2):g} %"]
            return pd.DataFrame({pct[0]: self.params - q * self.bse, pct[1]: self.params + q * self.bse})
        methods = ("profile", "wald", "boot")
        if method not in methods:
            raise GlmmteachError(f"method must be one of {', '.join(map(repr, methods))}, got {method!r}")
        rows = self._selected_parameters(parm)
        if method == "boot":
            from ..bootstrap import boot_conf_int

            return boot_conf_int(self, alpha=alpha, parm=rows, nsim=nsim, seed=seed, **boot)
        if method == "wald":
            return self._wald_table(alpha, rows)
        if nb_shape not in ("held", "profiled"):
            raise GlmmteachError(f"nb_shape must be 'held' or 'profiled', got {nb_shape!r}")
        return self._profile_table(alpha, rows, nb_shape == "profiled" and self.nb_shape is not None)

    def _cov_parameter_names(self) -> list[str]:
        """lme4's ``confint`` names of the covariance parameters (``oldNames = FALSE``), in theta's order."""
        names = []
        for labels, term in zip(self._effect_group_labels(), self.terms, strict=True):
            rows, cols = CovarianceTerm(len(term.names), term.correlated).positions
            for a, c in zip(rows, cols, strict=True):
                names.append(f"sd_{term.names[a]}|{labels[a]}" if a == c
                             else f"cor_{term.names[c]}.{term.names[a]}|{labels[a]}")
        return names

    def _parameter_names(self) -> list[str]:
        shape = ["nb_theta"] if self.nb_shape is not None else []
        return self._cov_parameter_names() + shape + list(self.params.index)

    def _selected_parameters(self, parm: Any) -> list[str]:
        names = self._parameter_names()
        if parm is None:
            return names
        n_random = len(names) - len(self.params)
        if isinstance(parm, str) and parm in ("theta_", "beta_"):
            return names[:n_random] if parm == "theta_" else names[n_random:]
        chosen = [parm] if isinstance(parm, str | int | np.integer) else list(parm)
        out = []
        for item in chosen:
            if isinstance(item, int | np.integer) and not isinstance(item, bool) and 0 <= item < len(names):
                out.append(names[int(item)])
            elif isinstance(item, str) and item in names:
                out.append(item)
            else:
                raise GlmmteachError(f"parm {item!r} is not a parameter of this fit; the parameters are {names} "
                                     "(or their positions, or 'theta_' / 'beta_')")
        return [name for name in names if name in out]

    def _estimates(self) -> pd.Series:
        from .profile import covariance_parameters

        values = covariance_parameters(self.model, self.correlated, self.theta)
        cov_names = self._cov_parameter_names()
        shape = {"nb_theta": self.nb_shape.theta} if self.nb_shape is not None else {}
        return pd.Series({**dict(zip(cov_names, values[: len(cov_names)], strict=True)), **shape,
                          **self.params.to_dict()}, dtype=float)

    def _wald_table(self, alpha: float, rows: list[str]) -> pd.DataFrame:
        q = special.ndtri(1 - alpha / 2)  # = scipy.stats.norm.ppf
        estimates = self._estimates()
        table = pd.DataFrame({"estimate": estimates, "lower": np.nan, "upper": np.nan, "note": ""})
        fixed = list(self.params.index)
        table.loc[fixed, "lower"] = (self.params - q * self.bse).to_numpy()
        table.loc[fixed, "upper"] = (self.params + q * self.bse).to_numpy()
        random = [name for name in table.index if name not in fixed]
        table.loc[random, "note"] = ("no Wald interval for a covariance parameter (lme4 gives NA): use "
                                     "method='profile'")
        return table.loc[rows]

    def _profile_table(self, alpha: float, rows: list[str], profile_shape: bool = False) -> pd.DataFrame:
        from .profile import shape_interval

        if self.nAGQ == 0:
            raise GlmmteachError("method='profile' profiles the likelihood, which an nAGQ = 0 fit (an approximation) "
                                 "does not maximise; refit with nAGQ=1 (Laplace) or more")
        profiler = self._profiler(profile_shape)
        held = ""
        if self.nb_shape is not None:
            held = ("the NB shape re-optimised at every point" if profile_shape
                    else "the NB shape held at its estimate (as lme4's confint of a glmer.nb fit)")
        records = {}
        for j, parameter in enumerate(profiler.parameters):  # loop over the few parameters
            if parameter.name not in rows:
                continue
            lower, upper, _ = profiler.interval(j, alpha)
            note = "; ".join(text for text in (lower.note, upper.note, held) if text)
            records[parameter.name] = (parameter.estimate, lower.value, upper.value, note)
        if "nb_theta" in rows:
            lower, upper = shape_interval(self.model, self.correlated, self.nAGQ, self.nb_shape.theta, self.llf,
                                          self.theta, self.params.to_numpy(), alpha)
            records["nb_theta"] = (self.nb_shape.theta, lower.value, upper.value,
                                   "; ".join(text for text in (lower.note, upper.note) if text))
        if profiler.found_higher > 1e-6:
            raise GlmmteachError(
                f"the profile found a log-likelihood {profiler.found_higher:.3g} above the fit's: the fit is not "
                "the maximum, so its profile intervals are meaningless; refit (e.g. from other start values)")
        table = pd.DataFrame.from_dict(records, orient="index", columns=["estimate", "lower", "upper", "note"])
        return table.loc[rows]

    def profile_zeta(self, parm: str | int, values: Any) -> pd.Series:
        r"""lme4's profile ``.zeta`` of one parameter, evaluated exactly at ``values``: the signed root
        :math:`\operatorname{sign}(v - \hat\phi)\sqrt{2(\hat\ell - \ell_p(v))}` with every other parameter
        re-optimised (a row name of :meth:`conf_int` or its position; not the NB shape). ``|zeta|`` equals
        :math:`z_{1-\alpha/2}` at the ends of the profile interval."""
        if self.nAGQ == 0:
            raise GlmmteachError("profile_zeta profiles the likelihood, which an nAGQ = 0 fit does not maximise")
        name = self._selected_parameters(parm)[0]
        if name == "nb_theta":
            raise GlmmteachError("profile_zeta profiles the covariance parameters and fixed effects; the NB shape's "
                                 "interval is conf_int(method='profile', parm='nb_theta')")
        profiler = self._profiler()
        j = [p.name for p in profiler.parameters].index(name)
        grid = np.atleast_1d(np.asarray(values, dtype=float))
        low, high = profiler.limits(j)
        if not np.all(np.isfinite(grid) & (grid >= low) & (grid <= high)):
            raise GlmmteachError(f"values of {name} must be finite and within [{low:g}, {high:g}], got {values!r}")
        out, start = [], None
        for value in grid:  # the few values asked for
            zeta, start = profiler.zeta(j, float(value), start)
            out.append(zeta)
        return pd.Series(out, index=grid, name=name)

    def _profiler(self, profile_shape: bool = False):
        from .profile import Profiler

        return Profiler(self.model, self.correlated, self.nAGQ, self.theta, self.params.to_numpy(), self.llf,
                        self._outcome.hessian, self._cov_parameter_names(), list(self.params.index), profile_shape)

    def profile_sd(self, sd_values: np.ndarray) -> pd.DataFrame:
        r"""Profile log-likelihood :math:`\max_\beta \log L(\beta, \sigma)` on a grid of random-intercept SDs
        (the profile of :mod:`glmmteach.glmm.profile` at each value, started from the previous one)."""
        self._require_scalar("profile_sd")
        profiler = self._profiler()
        rows, start = [], None
        for sd in np.asarray(sd_values, dtype=float):  # loop over the grid the user asked for
            value, start = profiler.point(0, float(sd), start)
            rows.append([sd, value, *start[1:]])
        return pd.DataFrame(rows, columns=["sd", "loglik", *self.params.index])

    def _require_scalar(self, what: str) -> None:
        if self.nAGQ == 0:  # (its beta maximises the penalised likelihood, not a likelihood to profile)
            raise GlmmteachError(f"{what} profiles the likelihood, which an nAGQ = 0 fit (an approximation) does "
                                 "not maximise; refit with nAGQ=1 (Laplace) or more")
        if len(self.terms) > 1:
            raise GlmmteachError(f"{what} is available for a single scalar random effect; this model has "
                                 f"{len(self.terms)} random-effects terms ({', '.join(self.term_labels)})")
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
        row = self.conf_int(alpha=alpha, method="profile", parm=0).iloc[0]
        pct = [f"{100 * alpha / 2:g} %", f"{100 * (1 - alpha / 2):g} %"]
        return pd.Series([row["lower"], row["upper"]], index=pct, name=f"sd({self.re_names[0]}|{self.group_name})")

    profile_ci = conf_int_sd

    # ---- prediction -------------------------------------------------------------------------
    def predict(self, newdata: pd.DataFrame | None = None, type: str = "link", conditional: bool = True,
                n_nodes: int | None = None, offset: Any = None, allow_new_levels: bool = False,
                re_form: Any = None, interval: str | None = None, level: float = 0.95, method: str = "delta",
                nsim: int = 1000, seed: Any = None, **interval_options: Any) -> pd.Series | pd.DataFrame:
        r"""Predictions on the link scale (``type="link"``) or the mean scale (``type="response"``).

        ``conditional=True``: given the estimated random effects,
        :math:`g^{-1}(x^\top\hat\beta + o + z^\top\tilde b_i)`. A level of the grouping factor not seen
        in the fit is an error unless ``allow_new_levels=True`` (lme4's ``allow.new.levels``), which gives
        such rows the random effect 0, the mean of the population of groups (:math:`b = 0`).
        ``re_form`` (lme4's ``re.form``) conditions on a subset of the random-effects terms: ``None`` all of
        them, a list of grouping factors (``["a"]``, ``["class:school"]``) or of :attr:`term_labels` only
        those, ``[]`` none (the same as ``conditional=False`` on the link scale).
        ``conditional=False``: population level. On the link scale this is :math:`x^\top\hat\beta + o`
        (lme4's ``re.form = NA``); on the response scale the random effects are integrated out,
        :math:`E[y] = \int g^{-1}(x^\top\hat\beta + o + z^\top b)\varphi_\Sigma(b)\,db`, to 1e-12
        (:func:`glmmteach.predict.population_average_mean`; ``n_nodes``: Gauss–Hermite instead; with several terms
        :math:`z^\top b` is normal with variance :math:`\sum_i z_i^\top\Sigma_i z_i`) — not
        :math:`g^{-1}(x^\top\hat\beta)`, which is the mean for a group with :math:`b = 0`.
        Binomial means are probabilities. ``offset`` gives the new rows' extra offset when the fit
        was given ``offset=`` as an array (a column name is looked up in ``newdata``).
        ``interval="confidence"``: a DataFrame with ``fit``, ``se_fit``, ``lower``, ``upper`` at ``level``, by
        the delta method (given the random effects: their joint covariance with the fixed effects, theta held)
        or ``method="boot"`` (``nsim``, ``seed``); ``interval_options``: ``beta_cov``, and for the bootstrap
        ``n_jobs``, ``client``, ``boot_type``; see :func:`glmmteach.intervals.predict_interval`.
        """
        return prediction.predict(self, newdata, type, conditional, n_nodes, offset, allow_new_levels, re_form,
                                  interval, level, method, nsim, seed, **interval_options)

    # ---- simulation and refitting -----------------------------------------------------------
    def simulate(self, nsim: int = 1, seed: Any = None, use_u: bool = False) -> pd.DataFrame:
        r"""Simulate ``nsim`` response vectors from the fitted model (lme4's ``simulate``).

        ``use_u=False`` (lme4's default): new random effects :math:`b_i \sim N(0, \hat\Sigma)` in every
        simulation, the model's sampling distribution. ``use_u=True``: the conditional modes
        :math:`\tilde b_i` (new observations of the observed groups). ``seed``: an integer, a
        ``numpy.random.Generator`` or ``None``. Returns one column per simulation (``sim_1`` …), indexed
        as the fitted rows, in the response's units: 0/1, successes out of the trials, counts, or
        proportions when the response was given as a proportion with ``weights``. See
        :func:`glmmteach.glmm.simulate.simulate_glmm`.
        """
        nsim = check_nsim(nsim)
        rng = as_generator(seed)
        draws = self.model.simulate(self.params.to_numpy(), self.theta, self._outcome.state, nsim, rng, use_u)
        if self.spec.proportion:
            draws = draws / self._data.trials[:, None]
        return pd.DataFrame(draws, index=self.design.row_index, columns=[f"sim_{k + 1}" for k in range(nsim)])

    def simulated_residuals(self, nsim: int = 250, seed: Any = 123, simulate_re: str = "conditional") -> Any:
        """DHARMa's scaled residuals from ``nsim`` simulations: see :func:`glmmteach.residuals.simulated_residuals`."""
        from ..residuals import simulated_residuals

        return simulated_residuals(self, nsim, seed, simulate_re)

    def refit(self, new_response: Any) -> GLMMResults:
        """The same model fitted to a new response (lme4's ``refit(fit, newresp)``), e.g. a column of
        :meth:`simulate`: same formula, family, design, trials, offset and weights; one value per fitted row,
        in the response's units. The fit starts from these estimates (a diagonal entry of theta, a relative SD,
        below 0.1 restarts at 0.1). Fitting is the job of the function that made this fit
        (:func:`glmmteach.glmm.api.refit_response`, given by :func:`~glmmteach.glmer`); this record only delegates."""
        if self._refit_with is None:
            raise GlmmteachError("this result was built without its fitting function (refit_with): fit the model with "
                                 "glmmteach.glmer to refit it")
        return self._refit_with(self, new_response)

    # ---- reporting --------------------------------------------------------------------------
    def tidy(self, effects: str | list[str] = ("ran_pars", "fixed"), conf_int: bool = False,
             conf_level: float = 0.95, conf_method: str = "Wald") -> pd.DataFrame:
        """broom.mixed's ``tidy(fit)``: see :func:`glmmteach.tidy.tidy_glmm`."""
        from ..tidy import tidy_glmm

        return tidy_glmm(self, effects, conf_int, conf_level, conf_method)

    # ---- printing ---------------------------------------------------------------------------
    def summary(self) -> GLMMSummary:
        """lme4's ``summary(glmer)``: printed in its layout, shown as tables in a notebook."""
        return GLMMSummary(self)

    def _repr_html_(self) -> str:
        return self.summary()._repr_html_()

    def __repr__(self) -> str:
        coefs = ", ".join(f"{k}={v:.4g}" for k, v in self.params.items())
        if len(self.terms) == 1:
            sds = f"SD({self.group_name}) " + ", ".join(f"{k}={v:.4g}" for k, v in self.sd_re.items())
        else:
            sds = "SD " + ", ".join(f"{g}:{k}={v:.4g}" for (g, k), v in self.sd_re.items())
        return (f"<GLMMResults {self.family.name}({self.family.link.name}), {self.method}: {coefs}; "
                f"{sds}; logLik {self.llf:.3f}>")
