r"""Predictions of a fitted GLMM (lme4's ``predict.merMod``): conditional on the random effects or at the
population level, on the link or the response scale, for the fitted rows or new data.

:meth:`GLMMResults.predict <glmmteach.glmm.results.GLMMResults.predict>` delegates here in one line (the results
object is a passive record). Intervals are :func:`glmmteach.intervals.predict_interval`'s; the population-averaged
mean is :func:`glmmteach.predict.population_average_mean`'s.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from ..exceptions import DataError, GlmmteachError
from ..predict import population_average_mean


def predict(fit: Any, newdata: pd.DataFrame | None = None, type: str = "link", conditional: bool = True,
            n_nodes: int | None = None, offset: Any = None, allow_new_levels: bool = False, re_form: Any = None,
            interval: str | None = None, level: float = 0.95, method: str = "delta", nsim: int = 1000,
            seed: Any = None, **interval_options: Any) -> pd.Series | pd.DataFrame:
    """The predictions of :meth:`GLMMResults.predict <glmmteach.glmm.results.GLMMResults.predict>` (which documents
    the arguments) for the fit ``fit``."""
    if interval is not None or method != "delta" or interval_options:  # (the options without interval: refused)
        from ..intervals import predict_interval

        return predict_interval(fit, newdata, type, conditional, re_form, offset, interval, level, n_nodes,
                                allow_new_levels, method, nsim, seed, **interval_options)
    if type not in ("link", "response"):
        raise GlmmteachError(f"type must be 'link' or 'response', got {type!r}")
    selected = selected_terms(fit, re_form) if conditional else []
    if newdata is None:
        X, offset = fit.model.X, fit.design.offset
        index = fit.design.row_index
        rows = [(np.asarray(t.Z, dtype=float).reshape(fit.nobs, -1), np.asarray(t.group_codes)) for t in fit.terms]
    else:
        X, offset = fit.design.new_fixed(newdata, offset)
        index = newdata.index
        rows = [_new_random(t, newdata, k in selected) for k, t in enumerate(fit.terms)]
        for k in selected:
            codes = rows[k][1]
            if not allow_new_levels and np.any(codes < 0):
                term = fit.terms[k]
                _refuse_new_levels(term, np.asarray(term.group_values(newdata), dtype=object)[codes < 0])
    eta_fixed = X @ fit.params.to_numpy() + offset
    if conditional:
        eta = eta_fixed.copy()
        effects = fit.model.term_effects(fit.outcome.state, fit.theta)
        for k in selected:
            Z, codes = rows[k]
            b = effects[k][0]
            b_rows = np.where((codes >= 0)[:, None], b[np.clip(codes, 0, None)], 0.0)
            eta += np.einsum("nr,nr->n", Z, b_rows)
        values = eta if type == "link" else fit.family.linkinv(eta)
    elif type == "link":
        values = eta_fixed
    else:
        re_variance = sum(np.einsum("na,ab,nb->n", Z, T @ T.T, Z) for (Z, _), T in zip(rows, fit.Ts, strict=True))
        values = population_average_mean(eta_fixed, re_variance, fit.family, n_nodes)
    out = pd.Series(values, index=index, name=f"{type}{'' if conditional else ' (population)'}")
    return fit.design.pad(out) if newdata is None else out  # (na_action="exclude": NaN rows, as R)


def selected_terms(fit: Any, re_form: Any) -> list[int]:
    """Indices of the terms of ``fit`` that ``re_form`` conditions on (None: all), by term label or grouping
    factor."""
    if re_form is None:
        return list(range(len(fit.terms)))
    wanted = [re_form] if isinstance(re_form, str) else list(re_form)
    known = {name: [k] for k, name in enumerate(fit.term_labels)}
    for k, t in enumerate(fit.terms):
        known.setdefault(t.group_name, [])
        if k not in known[t.group_name]:
            known[t.group_name].append(k)
    chosen: list[int] = []
    for name in wanted:
        if name not in known:
            raise GlmmteachError(f"re_form names {name!r}, which is not a random-effects term of this model; the "
                                 f"terms are {', '.join(map(repr, fit.term_labels))}")
        chosen += [k for k in known[name] if k not in chosen]
    return sorted(chosen)


def _refuse_new_levels(term: Any, unseen: np.ndarray) -> None:
    column = term.group_name
    if pd.isna(unseen).any():
        raise DataError(f"newdata has missing values in the grouping factor {column!r}: give every row a level "
                        "(or predict with allow_new_levels=True to give those rows the random effect 0)")
    levels = list(dict.fromkeys(unseen.tolist()))
    shown = ", ".join(map(repr, levels[:5])) + (f" and {len(levels) - 5} more" if len(levels) > 5 else "")
    raise DataError(
        f"newdata has level(s) {shown} of {column!r} that the model was not fitted to; pass "
        "allow_new_levels=True to predict them with the random effect 0 (a new group), or conditional=False "
        "for population-level predictions"
    )


def _new_random(term: Any, newdata: pd.DataFrame, conditional: bool) -> tuple[np.ndarray, np.ndarray]:
    """The term's covariates and level codes (−1: a level the fit has not seen) for the rows of ``newdata``."""
    missing = [c for c in term.group_name.split(":") if c not in newdata.columns]
    if missing:
        if conditional:
            raise DataError(
                f"newdata has no column {missing[0]!r} (of the grouping factor {term.group_name!r}); add it, or "
                "use conditional=False (or a re_form without that term) for predictions without its effects"
            )
        # predictions without this term's effects need its Z but no group: any level will do
        return term.new_covariates(newdata), np.full(len(newdata), -1, dtype=np.intp)
    return term.new_rows(newdata)
