r"""Comparing fitted models: likelihood-ratio tests and information criteria.

For nested models with maximised log-likelihoods :math:`\ell_0` (reduced) and :math:`\ell_1`
(full), the likelihood-ratio statistic

.. math:: \lambda_{LR} = -2(\ell_0 - \ell_1) = D_0 - D_1

(the drop in deviance) is approximately :math:`\chi^2_{p_1-p_0}` under the reduced model.
:math:`\mathrm{AIC} = -2\ell + 2p` and :math:`\mathrm{BIC} = -2\ell + p\log n` trade fit against
the number of parameters :math:`p`; smaller is better.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from scipy import special

from .bootstrap import ReplicateError, run_replicates
from .exceptions import GlmmteachError
from .glm import GLMResults
from .rformat import format_pval, format_r

# Fits converge to a Newton decrement of 1e-6: equal maxima can differ by about that much.
NEGATIVE_LR_TOLERANCE = 1e-5


def _llf_and_df(model: Any) -> tuple[float, int]:
    llf = float(model.llf)
    if np.isnan(llf):
        raise GlmmteachError(
            f"model {model.formula!r} has no likelihood ({model.family.name}); a likelihood-ratio "
            "test needs binomial, poisson or gaussian fits"
        )
    return llf, int(model.k_params)


class AnovaTable(pd.DataFrame):
    """R's "Analysis of Deviance Table": a DataFrame that prints as R prints it."""

    _metadata = ["formulas"]

    @property
    def _constructor(self) -> type:
        return AnovaTable

    def __str__(self) -> str:
        lines = ["Analysis of Deviance Table", ""]
        lines += [f"Model {i + 1}: {f}" for i, f in enumerate(self.formulas)]
        cols = {
            "Resid. Df": [str(int(v)) for v in self["Resid. Df"]],
            "Resid. Dev": format_r(self["Resid. Dev"], 5),
            "Df": ["" if np.isnan(v) else str(int(v)) for v in self["Df"]],
            "Deviance": [
                "" if np.isnan(v) else s for v, s in zip(self["Deviance"], format_r(self["Deviance"], 5), strict=True)
            ],
            "Pr(>Chi)": [
                "" if np.isnan(v) else s
                for v, s in zip(self["Pr(>Chi)"], format_pval(self["Pr(>Chi)"], 4), strict=True)
            ],
        }
        widths = {k: max(len(k), *(len(x) for x in v)) for k, v in cols.items()}
        label_w = len(str(len(self)))
        lines.append(" " * label_w + " " + " ".join(k.rjust(widths[k]) for k in cols))
        for i in range(len(self)):
            lines.append(str(i + 1).ljust(label_w) + " " + " ".join(cols[k][i].rjust(widths[k]) for k in cols))
        return "\n".join(lines)

    def __repr__(self) -> str:
        return self.__str__()


def anova(*models: Any) -> AnovaTable:
    """Likelihood-ratio tests of a sequence of nested models (R's ``anova(m1, m2, test="LRT")``).

    Each row after the first tests that model against the previous one: ``Deviance`` is
    :math:`-2(\\ell_{prev} - \\ell_{this})` and ``Pr(>Chi)`` its chi-square p-value on ``Df`` =
    the difference in the number of parameters. Works for :func:`glm` and :func:`glmer` fits of the
    same data.
    """
    if len(models) < 2:
        raise GlmmteachError("anova() needs at least two fitted models to compare")
    nobs = {int(m.nobs) for m in models}
    if len(nobs) > 1:
        raise GlmmteachError(f"models were fitted to different numbers of observations: {sorted(nobs)}")
    rows = []
    prev: tuple[float, int, str] | None = None
    for m in models:
        llf, k = _llf_and_df(m)
        # a GLM's residual deviance is relative to the saturated model; a GLMM's is -2 logLik
        is_glm = isinstance(m, GLMResults)
        row = {
            "Resid. Df": m.df_resid if is_glm else m.nobs - k,
            "Resid. Dev": m.deviance if is_glm else -2 * llf,
            "Df": np.nan,
            "Deviance": np.nan,
            "Pr(>Chi)": np.nan,
        }
        if prev is not None:
            df = k - prev[1]
            stat = 2 * (llf - prev[0])
            if df == 0:
                raise GlmmteachError("two models have the same number of parameters: they are not nested")
            if df < 0:
                raise GlmmteachError("list the models from the smallest to the largest (nested) model")
            if stat < -NEGATIVE_LR_TOLERANCE:
                raise GlmmteachError(
                    f"the larger model {m.formula!r} fits worse (log-likelihood {llf:.6g}) than the smaller "
                    f"model {prev[2]!r} ({prev[0]:.6g}): likelihood-ratio statistic {stat:.4g} < 0. A model that "
                    "contains the smaller one can always fit at least as well, so the larger fit did not reach "
                    "its maximum (or the models are not nested); check its warnings and refit it before comparing"
                )
            stat = max(stat, 0.0)  # rounding at equal fits
            row.update({"Df": df, "Deviance": stat, "Pr(>Chi)": special.chdtrc(df, stat)})  # chi2.sf
        rows.append(row)
        prev = (llf, k, m.formula)
    table = AnovaTable(rows, index=pd.RangeIndex(1, len(models) + 1))
    table.formulas = [m.formula for m in models]
    return table


def compare_ic(*models: Any, names: list[str] | None = None) -> pd.DataFrame:
    """AIC, BIC, log-likelihood and number of parameters of several models, one row each."""
    if not models:
        raise GlmmteachError("compare_ic() needs at least one fitted model")
    labels = names or [m.formula for m in models]
    if len(labels) != len(models):
        raise GlmmteachError(f"names has {len(labels)} entries for {len(models)} models")
    rows = [{"df": _llf_and_df(m)[1], "logLik": m.llf, "AIC": m.aic, "BIC": m.bic} for m in models]
    return pd.DataFrame(rows, index=pd.Index(labels, name="model"))


@dataclass
class BootstrapLRT:
    r"""A parametric-bootstrap likelihood-ratio test (:func:`bootstrap_lrt`).

    ``statistic`` is the observed :math:`2(\ell_{big} - \ell_{small})`, ``bootstrap`` the statistics of the
    successful refits in replicate order, ``pvalue`` :math:`(1 + \#\{LRT^* \ge LRT\})/(n + 1)` over those
    ``n`` refits, ``n_failed`` the simulations whose refits failed (an error, no convergence, or a larger model
    fitted worse than the smaller one) and were left out; ``failures`` lists them (columns ``replicate``,
    ``reason``).
    """

    statistic: float
    bootstrap: np.ndarray
    pvalue: float
    n_failed: int
    nsim: int
    df: int
    formulas: tuple[str, str]
    failures: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=["replicate", "reason"]))

    def __str__(self) -> str:
        used = len(self.bootstrap)
        lines = [
            "Parametric bootstrap likelihood-ratio test",
            f"Model 1: {self.formulas[0]}",
            f"Model 2: {self.formulas[1]}",
            f"LRT = {self.statistic:.4g} (Df = {self.df}), p = {self.pvalue:.4g} from {used} simulations"
            + (f" ({self.n_failed} of {self.nsim} failed and were left out)" if self.n_failed else ""),
        ]
        if self.n_failed:
            counts = self.failures["reason"].str.slice(0, 100).value_counts()
            lines += [f"  {n} x {reason}" for reason, n in counts.items()]
        return "\n".join(lines)

    __repr__ = __str__


LRT_TOLERANCE = 1e-4  # a larger model fitting worse than this (log-likelihood units x 2) missed its optimum


class LikelihoodRatioJob:
    """One replicate of :func:`bootstrap_lrt`: both models refitted to a response simulated from ``small``."""

    names = ["LRT"]
    size = 1

    def __init__(self, small: Any, big: Any):
        self.source = small
        self.big = big

    def __call__(self, response: pd.Series) -> np.ndarray:
        fit_small = self.source.refit(response)
        fit_big = self.big.refit(response)
        for label, refit in (("small", fit_small), ("big", fit_big)):
            if not refit.converged:
                reasons = "; ".join(getattr(refit, "warnings", [])) or "no reason given"
                raise ReplicateError(f"the {label} model did not converge: {reasons}")
        value = 2.0 * (fit_big.llf - fit_small.llf)
        if not np.isfinite(value):
            raise ReplicateError(f"the likelihood-ratio statistic is {value}")
        if value < -LRT_TOLERANCE:
            raise ReplicateError(f"the larger model fitted worse than the smaller one (LRT {value:.4g})")
        return np.array([max(value, 0.0)])


def bootstrap_lrt(small: Any, big: Any, nsim: int = 1000, seed: Any = None, n_jobs: int = 1,
                  client: Any = None) -> BootstrapLRT:
    r"""Parametric-bootstrap likelihood-ratio test of ``small`` (the null) against the larger ``big``.

    For a variance component the :math:`\chi^2` reference of :func:`anova` is wrong (the null value
    :math:`\sigma = 0` is on the boundary; for one variance the null distribution is
    :math:`\tfrac12\chi^2_0 + \tfrac12\chi^2_1`). This test simulates ``nsim`` responses from the fitted
    ``small`` model (new random effects each time, lme4's ``simulate`` default), refits both models to each,
    and compares the observed statistic with the simulated ones:
    :math:`p = (1 + \#\{LRT^* \ge LRT\}) / (n + 1)`, ``n`` the successful refits.

    ``small`` is a :func:`~glmmteach.glm` or :func:`~glmmteach.glmer` fit, ``big`` a ``glmer`` fit of the same
    response with more parameters. The replicates are those of :func:`glmmteach.bootstrap.run_replicates`:
    ``seed`` (integer, ``SeedSequence``, ``numpy.random.Generator`` or ``None``) fixes them whatever ``n_jobs``
    (local processes) or ``client`` (a ``dask.distributed.Client``). Warnings of the refits (e.g. boundary
    fits, expected under the null) are not shown; failed refits are counted in ``n_failed`` and listed with
    their reasons in ``failures``.
    """
    for label, model in (("small", small), ("big", big)):
        if not (hasattr(model, "simulate") and hasattr(model, "refit") and hasattr(model, "llf")):
            raise GlmmteachError(f"{label} must be a glm or glmer fit, got {type(model).__name__}")
    if isinstance(big, GLMResults):
        raise GlmmteachError("big must be a glmer fit: the bootstrap tests a variance component of the larger model")
    df = int(big.k_params) - int(small.k_params)
    if df <= 0:
        raise GlmmteachError(f"big must have more parameters than small ({big.k_params} vs {small.k_params}); "
                             "pass the smaller (null) model first")
    ds, db = small.design, big.design
    if len(ds.y) != len(db.y) or not (np.array_equal(ds.y, db.y) and np.array_equal(ds.trials, db.trials)):
        raise GlmmteachError("the two models were not fitted to the same responses (rows, values or trials differ)")
    statistic = 2.0 * (big.llf - small.llf)
    if statistic < -LRT_TOLERANCE:
        raise GlmmteachError(
            f"the larger model's log-likelihood is {-statistic / 2:.4g} below the smaller model's: the larger fit "
            "did not reach its optimum, so no likelihood-ratio test is possible"
        )
    statistic = max(statistic, 0.0)
    result = run_replicates(LikelihoodRatioJob(small, big), nsim, seed, n_jobs, client)
    boot = result.values[result.succeeded, 0]
    if len(boot) == 0:
        raise GlmmteachError(f"all {len(result.succeeded)} bootstrap refits failed: no reference distribution; the "
                             f"first: {result.failures['reason'].iloc[0]}")
    pvalue = (1.0 + float(np.sum(boot >= statistic))) / (len(boot) + 1.0)
    return BootstrapLRT(statistic, boot, pvalue, len(result.failures), len(result.succeeded), df,
                        (small.formula, big.formula), result.failures)
