"""Tidy tables of a fit, as broom (``tidy.glm``) and broom.mixed (``tidy.merMod``) make them.

One row per estimated quantity, one column per property. For a GLMM (:func:`tidy_glmm`):

- ``effects="fixed"``: ``effect`` (``"fixed"``), ``term``, ``estimate``, ``std.error``, ``statistic``
  (Wald z), ``p.value`` and, with ``conf_int=True``, Wald ``conf.low`` and ``conf.high``;
- ``effects="ran_pars"``: ``effect``, ``group`` (lme4's ``VarCorr`` group label), ``term`` —
  ``sd__(Intercept)``, ``cor__(Intercept).x`` — ``estimate``; per term in lme4's order, the standard
  deviations and correlations in broom.mixed's order (the lower triangle of the correlation matrix with
  the SDs on its diagonal, column by column: ``sd__a, cor__a.b, cor__a.c, sd__b, cor__b.c, sd__c``);
  broom.mixed gives no standard errors or Wald intervals for them (NaN here, NA there);
- ``effects="ran_vals"``: ``effect``, ``group``, ``level``, ``term``, ``estimate`` (the conditional mode),
  ``std.error`` (its conditional SD), by grouping factor, then effect, then level.

Several effects (broom.mixed's default is ``["ran_pars", "fixed"]``) are stacked fixed, ran_pars, ran_vals,
with the columns of all of them (missing entries NaN). For a GLM (:func:`tidy_glm`): broom's ``term``,
``estimate``, ``std.error``, ``statistic``, ``p.value`` and, with ``conf_int=True``, ``conf.low``,
``conf.high`` by profile likelihood (broom calls R's ``confint``, MASS's profile method) or Wald.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from .exceptions import GlmmteachError, check_level

EFFECTS = ("fixed", "ran_pars", "ran_vals")
_ORDER = {name: k for k, name in enumerate(EFFECTS)}


def tidy_glmm(fit: Any, effects: str | list[str] = ("ran_pars", "fixed"), conf_int: bool = False,
              conf_level: float = 0.95, conf_method: str = "Wald") -> pd.DataFrame:
    """broom.mixed's ``tidy(fit, effects, conf.int, conf.level, conf.method)`` of a glmer fit (see the module
    docstring). ``conf_method``: ``"Wald"`` (broom.mixed's default; profile intervals of every parameter are
    not available yet)."""
    chosen = _effects(effects)
    _check_conf(conf_level)
    if conf_int and conf_method.lower() != "wald":
        raise GlmmteachError(f"conf_method={conf_method!r} is not available for a GLMM: use 'Wald' (the default)")
    parts = []
    for effect in sorted(chosen, key=_ORDER.get):
        if effect == "fixed":
            parts.append(_fixed(fit, conf_int, conf_level))
        elif effect == "ran_pars":
            parts.append(_ran_pars(fit))
        else:
            parts.append(_ran_vals(fit))
    table = pd.concat(parts, ignore_index=True)
    if len(chosen) == 1 and chosen[0] == "fixed":
        return table
    columns = ["effect", "group", *[c for c in table.columns if c not in ("effect", "group")]]
    if conf_int and "conf.low" not in columns:  # broom.mixed keeps the interval columns (NA) for ran_pars alone
        columns += ["conf.low", "conf.high"]
    return table.reindex(columns=columns)


def tidy_glm(fit: Any, conf_int: bool = False, conf_level: float = 0.95, conf_method: str = "profile") -> pd.DataFrame:
    """broom's ``tidy(fit, conf.int, conf.level)`` of a glm: ``term``, ``estimate``, ``std.error``,
    ``statistic``, ``p.value`` (and ``conf.low``, ``conf.high``: profile likelihood as broom, or
    ``conf_method="wald"``)."""
    _check_conf(conf_level)
    table = pd.DataFrame({"term": list(fit.params.index), "estimate": fit.params.to_numpy(),
                          "std.error": fit.bse.to_numpy(), "statistic": fit.zvalues.to_numpy(),
                          "p.value": fit.pvalues.to_numpy()})
    if conf_int:
        method = conf_method.lower()
        if method not in ("profile", "wald"):
            raise GlmmteachError(f"conf_method must be 'profile' or 'wald', got {conf_method!r}")
        bounds = fit.conf_int(alpha=1 - conf_level, method=method).loc[fit.params.index].to_numpy()
        table = table.assign(**{"conf.low": bounds[:, 0], "conf.high": bounds[:, 1]})
    return table


def _effects(effects: str | list[str] | tuple[str, ...]) -> list[str]:
    chosen = [effects] if isinstance(effects, str) else list(effects)
    unknown = [e for e in chosen if e not in EFFECTS]
    if unknown or not chosen:
        raise GlmmteachError(f"effects must be among {', '.join(map(repr, EFFECTS))}, got {effects!r}")
    return list(dict.fromkeys(chosen))


def _check_conf(level: float) -> None:
    check_level("conf_level", level)


def _fixed(fit: Any, conf_int: bool, conf_level: float) -> pd.DataFrame:
    table = pd.DataFrame({"effect": "fixed", "term": list(fit.params.index), "estimate": fit.params.to_numpy(),
                          "std.error": fit.bse.to_numpy(), "statistic": fit.zvalues.to_numpy(),
                          "p.value": fit.pvalues.to_numpy()})
    if conf_int:
        # rows by name: an interval table may also hold the random-effect parameters (lme4's confint order)
        bounds = fit.conf_int(alpha=1 - conf_level).loc[fit.params.index].to_numpy()
        table = table.assign(**{"conf.low": bounds[:, 0], "conf.high": bounds[:, 1]})
    return table


def _ran_pars(fit: Any) -> pd.DataFrame:
    """SDs and correlations of each term, named and ordered as broom.mixed."""
    rows = []
    for label, term, T in zip(fit.term_labels, fit.terms, fit.Ts, strict=True):
        cov = T @ T.T
        sd = np.sqrt(np.diag(cov))
        names = list(term.names)
        if not term.correlated:  # lme4's (1 + x || g): one group label per effect (g, g.1, ...), no correlations
            groups = _uncorrelated_labels(fit, label, len(names))
            rows += [(g, f"sd__{n}", s) for g, n, s in zip(groups, names, sd, strict=True)]
            continue
        safe = np.where(sd > 0, sd, 1.0)
        corr = cov / np.outer(safe, safe)
        for c, name in enumerate(names):  # column by column down the lower triangle, the SD on the diagonal
            rows.append((label, f"sd__{name}", sd[c]))
            rows += [(label, f"cor__{name}.{names[a]}", corr[a, c]) for a in range(c + 1, len(names))]
    groups, terms, values = zip(*rows, strict=True) if rows else ((), (), ())
    return pd.DataFrame({"effect": "ran_pars", "group": list(groups), "term": list(terms),
                         "estimate": np.array(values, dtype=float), "std.error": np.nan, "statistic": np.nan,
                         "p.value": np.nan})


def _uncorrelated_labels(fit: Any, first: str, r: int) -> list[str]:
    """The VarCorr group labels of an uncorrelated term's r effects (its label is the first effect's)."""
    table = fit.varcorr()
    labels = list(table["Groups"])
    start = labels.index(first)
    return labels[start:start + r]


def _ran_vals(fit: Any) -> pd.DataFrame:
    """Conditional modes and SDs, by grouping factor, effect and level (broom.mixed's order)."""
    ranef = fit.ranef  # (a property that computes the modes' covariances: read once)
    frames = ranef if isinstance(ranef, dict) else {fit.group_name: ranef}
    parts = []
    for group, frame in frames.items():
        levels = [str(v) for v in frame.index]
        for name in [c for c in frame.columns if not c.endswith("_sd")]:
            parts.append(pd.DataFrame({"effect": "ran_vals", "group": group, "level": levels, "term": name,
                                       "estimate": frame[name].to_numpy(),
                                       "std.error": frame[f"{name}_sd"].to_numpy()}))
    return pd.concat(parts, ignore_index=True)
