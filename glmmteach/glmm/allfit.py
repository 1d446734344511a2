"""lme4's ``allFit``: the same model refitted with every optimiser glmmteach offers, side by side.

A convergence warning says that one optimiser's stopping point failed a test; it does not say whether the
estimates are wrong. lme4's advice is to refit with other optimisers: if they all reach the same
log-likelihood and estimates (to the precision that matters), the warning was a false alarm; if they
disagree, the model is not identified by the data (a flat ridge, a runaway SD) and no single fit should be
trusted. :func:`all_fit` refits a :class:`~glmmteach.glmm.results.GLMMResults` (or a :func:`glmmteach.bglmer`
fit, with its priors) with each optimiser of :data:`~glmmteach.glmm.optimize.OPTIMISERS` that applies to it —
Newton's method with the analytic Hessian (glmmteach's default for a Laplace fit of one scalar random effect
with a canonical link), L-BFGS-B with the analytic gradient (the default otherwise), Nelder-Mead, COBYQA
(Powell's successor of lme4's bobyqa) and Powell on the log-likelihood alone — each followed by glmmteach's
Newton polish and convergence test, and tabulates what allFit's ``summary`` shows: which fits succeeded, their
log-likelihoods, estimates and warnings, and the time each took.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np
import pandas as pd

from ..exceptions import GlmmteachError
from .api import fit_design
from .optimize import available_optimisers
from .results import GLMMResults


@dataclass
class AllFit:
    """The refits of one model by each optimiser (lme4's ``allFit`` object and its ``summary``).

    ``fits`` maps each optimiser to its :class:`GLMMResults` or to the error it raised; ``warnings`` to the
    warning texts of its fit. The tables below have one row per optimiser that returned a fit.
    """

    fits: dict[str, GLMMResults | Exception]
    warnings: dict[str, list[str]]
    seconds: dict[str, float]

    @property
    def ok(self) -> dict[str, GLMMResults]:
        """The optimisers that returned a fit (allFit's ``which.OK``)."""
        return {name: fit for name, fit in self.fits.items() if isinstance(fit, GLMMResults)}

    @property
    def loglik(self) -> pd.Series:
        """Log-likelihood of each fit (allFit's ``llik``); a MAP fit's is the likelihood at its posterior mode."""
        return pd.Series({name: fit.llf for name, fit in self.ok.items()}, name="logLik")

    @property
    def fixef(self) -> pd.DataFrame:
        """Fixed effects, one row per optimiser (allFit's ``fixef``)."""
        return pd.DataFrame({name: fit.params for name, fit in self.ok.items()}).T

    @property
    def theta(self) -> pd.DataFrame:
        """The covariance parameters theta (lme4's order and names), one row per optimiser."""
        return pd.DataFrame({name: pd.Series(fit.theta, index=fit.theta_names) for name, fit in self.ok.items()}).T

    @property
    def sdcor(self) -> pd.DataFrame:
        """Random-effect SDs (and correlations), one row per optimiser (allFit's ``sdcor``)."""
        rows = {}
        for name, fit in self.ok.items():
            vc = fit.varcorr()
            labels = [f"{g}.{n}" for g, n in zip(vc["Groups"], vc["Name"], strict=True)]
            row = dict(zip(labels, vc["Std.Dev."].to_numpy(dtype=float), strict=True))
            for column in (c for c in vc.columns if str(c).startswith("Corr ")):
                for label, value in zip(labels, vc[column].to_numpy(dtype=float), strict=True):
                    if np.isfinite(value):
                        row[f"{label}.{column.removeprefix('Corr ')}"] = value
            rows[name] = row
        return pd.DataFrame(rows).T

    @property
    def table(self) -> pd.DataFrame:
        """One row per optimiser: log-likelihood, its difference from the best, convergence (glmmteach's test:
        Newton decrement < 1e-6 and a verified boundary), the optimiser's own message, the number of
        likelihood evaluations, seconds and the number of warnings; failed refits appear with their error."""
        best = self.loglik.max() if len(self.ok) else np.nan
        rows = []
        for name, fit in self.fits.items():
            if isinstance(fit, GLMMResults):
                rows.append({"optimizer": name, "logLik": fit.llf, "logLik - best": fit.llf - best,
                             "converged": fit.converged, "newton_decrement": fit.newton_decrement,
                             "message": fit.optimizer_message, "evaluations": fit.n_evaluations,
                             "seconds": self.seconds[name], "warnings": len(self.warnings[name])})
            else:
                rows.append({"optimizer": name, "logLik": np.nan, "logLik - best": np.nan, "converged": False,
                             "newton_decrement": np.nan, "message": f"error: {fit}", "evaluations": 0,
                             "seconds": self.seconds[name], "warnings": len(self.warnings[name])})
        return pd.DataFrame(rows).set_index("optimizer")

    def spread(self) -> pd.Series:
        """The largest difference between optimisers of the log-likelihood and of each estimate (fixed effects
        and theta): what decides whether they agree."""
        if not self.ok:
            raise GlmmteachError("no optimiser returned a fit")
        estimates = pd.concat([self.fixef, self.theta], axis=1)
        return pd.concat([pd.Series({"logLik": float(np.ptp(self.loglik.to_numpy()))}),
                          (estimates.max() - estimates.min())]).rename("max - min")

    def __str__(self) -> str:
        table = self.table.drop(columns=["message"])
        lines = ["Refits with each optimiser (lme4's allFit):", table.to_string(float_format=lambda v: f"{v:.6g}"),
                 "", "Fixed effects:", self.fixef.to_string(float_format=lambda v: f"{v:.6g}"),
                 "", "Random-effect SDs (correlations):", self.sdcor.to_string(float_format=lambda v: f"{v:.6g}"),
                 "", "Largest difference between optimisers:",
                 self.spread().to_string(float_format=lambda v: f"{v:.3g}")]
        failed = [f"{name}: {fit}" for name, fit in self.fits.items() if not isinstance(fit, GLMMResults)]
        if failed:
            lines += ["", "Failed:", *failed]
        return "\n".join(lines)

    __repr__ = __str__


def all_fit(fit: GLMMResults, optimizers: Sequence[str] | None = None) -> AllFit:
    """Refit ``fit``'s model with each optimiser (lme4's ``allFit``) and tabulate the results.

    ``optimizers``: names from ``OPTIMISERS``; ``None``: every one that applies to the model (Newton's method
    only where the analytic Hessian is defined and there is no prior).

    Each refit starts where glmmteach's fits start (the GLM and moment estimates, not ``fit``'s estimates),
    so that the optimisers' paths are independent; each ends with the same Newton polish and convergence
    test. A refit that raises is kept as its error; warnings are recorded per optimiser, not raised.

    Examples
    --------
    >>> fits = glmmteach.all_fit(glmmteach.glmer("outcome ~ trt * period + (1 | ID)", crossover))  # doctest: +SKIP
    >>> fits.table[["logLik", "converged"]]                                                          # doctest: +SKIP
    >>> fits.spread()                                                                                # doctest: +SKIP
    """
    if not isinstance(fit, GLMMResults):
        raise GlmmteachError(f"all_fit needs a fitted GLMM (glmer or bglmer), got {type(fit).__name__}")
    applicable = available_optimisers(fit.model, prior=fit.spec.prior is not None)
    if optimizers is None:
        optimizers = applicable
    unknown = [name for name in optimizers if name not in applicable]
    if unknown or not optimizers:
        raise GlmmteachError(f"optimizers must be some of {', '.join(applicable)} for this model; got "
                             f"{list(optimizers)!r}")
    if fit.spec.n_nodes == 0 or (fit.family.is_negative_binomial and fit.nb_shape is not None):
        raise GlmmteachError("all_fit refits Laplace and quadrature fits of a known family (not nAGQ = 0 or an "
                             "estimated negative binomial shape, whose optimisers are not these)")
    fits: dict[str, GLMMResults | Exception] = {}
    texts: dict[str, list[str]] = {}
    seconds: dict[str, float] = {}
    for name in optimizers:  # the few optimisers
        start = time.perf_counter()
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                fits[name] = fit_design(replace(fit.spec, optimizer=name), fit.design, fit.frame)
            except (GlmmteachError, ValueError, np.linalg.LinAlgError) as err:
                fits[name] = err
        seconds[name] = time.perf_counter() - start
        texts[name] = [str(w.message) for w in caught]
    return AllFit(fits, texts, seconds)
