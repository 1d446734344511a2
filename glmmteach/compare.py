r"""Comparing fitted models: likelihood-ratio tests and information criteria.

For nested models with maximised log-likelihoods :math:`\ell_0` (reduced) and :math:`\ell_1`
(full), the likelihood-ratio statistic

.. math:: \lambda_{LR} = -2(\ell_0 - \ell_1) = D_0 - D_1

(the drop in deviance) is approximately :math:`\chi^2_{p_1-p_0}` under the reduced model.
:math:`\mathrm{AIC} = -2\ell + 2p` and :math:`\mathrm{BIC} = -2\ell + p\log n` trade fit against
the number of parameters :math:`p`; smaller is better.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

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
            row.update({"Df": df, "Deviance": stat, "Pr(>Chi)": stats.chi2.sf(stat, df)})
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
