"""Printing a fitted GLMM in the layout of lme4's ``summary(glmer)``.

:class:`GLMMSummary` reads only the public attributes of a :class:`~glmmteach.glmm.results.GLMMResults`;
:func:`r_abbreviate` is R's ``abbreviate``, which lme4 uses for the correlation table's labels.
"""

from __future__ import annotations

import html
import re
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from ..exceptions import GlmmteachError
from ..formula import parse_formula
from ..rformat import coef_table_text, format_r

if TYPE_CHECKING:
    from .results import GLMMResults


def _r_abbreviate_one(text: str, minlength: int) -> str:
    """R's ``abbreviate`` C routine for one string (drop lower-case vowels, then letters, from the right)."""
    s = list(text.strip())
    if len(s) <= minlength:
        return "".join(s)

    def first(i: int) -> bool:
        return s[i - 1].isspace()

    def last(i: int) -> bool:
        return (not s[i - 1].isspace()) and (i + 1 >= len(s) or s[i + 1].isspace())

    def vowel(i: int) -> bool:
        return s[i] in "aeiou"

    def lower(i: int) -> bool:
        return s[i].islower()

    rules = [
        lambda i: vowel(i) and last(i),
        lambda i: vowel(i) and not first(i),
        lambda i: lower(i) and last(i),
        lambda i: lower(i) and not first(i),
        lambda i: not first(i) and not s[i].isspace(),
    ]
    for rule in rules:
        for i in range(len(s) - 1, 0, -1):
            if i < len(s) and rule(i):
                del s[i]
            if len(s) <= minlength:
                return "".join(s)
    return "".join(s)


def r_abbreviate(names: list[str], minlength: int) -> list[str]:
    """R's ``abbreviate(names, minlength)``: lengthen the abbreviations until they are unique."""
    out = [_r_abbreviate_one(nm, minlength) for nm in names]
    length = minlength
    while len(set(out)) < len(out) and length < 200:
        length += 1
        dup = {a for a in out if out.count(a) > 1}
        out = [_r_abbreviate_one(nm, length) if a in dup else a for nm, a in zip(names, out, strict=True)]
    return out


def formula_text(result: GLMMResults) -> str:
    """The formula as lme4 prints it (spaces around ``*``, bars in lme4's form)."""
    parsed = parse_formula(result.formula)
    fixed = [re.sub(r"\s*\*\s*", " * ", t) for t in parsed.fixed_terms]
    bars = [f"({b.expr} {'|' if b.correlated else '||'} {b.group})" for b in parsed.bars]
    return f"{parsed.lhs} ~ " + " + ".join(fixed + bars)


def groups_line(result: GLMMResults) -> str:
    """lme4's "Number of obs: n, groups:  a, 40; b, 25" (grouping factors in lme4's term order)."""
    ngroups = result.ngroups if isinstance(result.ngroups, dict) else {result.group_name: result.ngroups}
    listed = "; ".join(f"{name}, {levels}" for name, levels in ngroups.items())
    return f"Number of obs: {result.nobs}, groups:  {listed}"


def varcorr_lines(result: GLMMResults) -> list[str]:
    """The "Random effects:" table of lme4's summary (4 significant digits, variances and SDs)."""
    return result.varcorr().to_text(digits=4, comp=("Variance", "Std.Dev.")).split("\n")


class VarCorrTable(pd.DataFrame):
    """Random-effect variances and correlations (lme4's ``VarCorr``): a DataFrame that prints as lme4 does."""

    @property
    def _constructor(self) -> type:
        return VarCorrTable

    def to_text(self, digits: int = 5, comp: tuple[str, ...] = ("Std.Dev.",)) -> str:
        """lme4's ``print(VarCorr(fit), digits, comp)``: ``digits`` significant digits for the variances and
        SDs (each column formatted as a whole, as R's ``format``), correlations rounded to
        ``max(2, digits - 2)`` decimals (the whole matrix formatted at once, as lme4's ``formatVC``)."""
        allowed = ("Variance", "Std.Dev.")
        if not comp or any(c not in allowed for c in comp):
            raise GlmmteachError(f"comp must list 'Variance' and/or 'Std.Dev.', got {comp!r}")
        names = [str(n) for n in self["Name"]]
        groups = [str(g) for g in self["Groups"]]
        shown = [g if a == 0 or g != groups[a - 1] else "" for a, g in enumerate(groups)]
        columns: list[tuple[str, list[str]]] = [("Groups", shown), ("Name", names)]
        for c in allowed:
            if c in comp:
                cells = format_r(self[c].to_numpy(dtype=float), digits)
                width = max(map(len, cells))
                columns.append((c, [x.rjust(width) for x in cells]))
        corr_cols = [c for c in self.columns if str(c).startswith("Corr ")]
        if corr_cols:
            dig = max(2, digits - 2)
            cells_by_col = [[""] * len(names) for _ in corr_cols]
            # one correlation matrix per term: a run of rows with the same group label
            bounds = [a for a in range(1, len(groups)) if groups[a] != groups[a - 1]]
            for start, stop in zip([0, *bounds], [*bounds, len(groups)], strict=True):
                r = stop - start
                if r < 2:
                    continue
                corr = np.eye(r)
                for k, c in enumerate(corr_cols[: r - 1]):
                    below = np.arange(r) > k
                    corr[below, k] = self[c].to_numpy(dtype=float)[start:stop][below]
                if np.isnan(corr).any():
                    continue
                full = np.tril(corr) + np.tril(corr, -1).T
                text = [f"{v:.{dig}f}" for v in np.round(full, dig).ravel()]
                width = max(map(len, text))
                grid = np.array([t.rjust(width) for t in text]).reshape(r, r)
                for k in range(r - 1):
                    for a in range(k + 1, r):
                        cells_by_col[k][start + a] = grid[a, k]
            for k in range(len(corr_cols)):
                columns.append(("Corr" if k == 0 else "", cells_by_col[k]))
        widths = [max(len(h), *(len(x) for x in cells)) for h, cells in columns]
        lines = [" " + " ".join(h.ljust(w) for (h, _), w in zip(columns, widths, strict=True))]
        for a in range(len(names)):
            lines.append(" " + " ".join(cells[a].ljust(w) for (_, cells), w in zip(columns, widths, strict=True)))
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.to_text()

    def __repr__(self) -> str:
        return self.to_text()


def fixef_corr_lines(result: GLMMResults) -> list[str]:
    """The "Correlation of Fixed Effects:" table of lme4's summary (empty for one coefficient)."""
    names = list(result.params.index)
    if len(names) < 2:
        return []
    corr = result.corr_fixef.to_numpy()
    row_names = r_abbreviate(names, 11)[1:]
    col_names = r_abbreviate(names, 6)[:-1]
    cells = [[f"{corr[i, j]:.3f}" if j < i else "" for j in range(len(names) - 1)] for i in range(1, len(names))]
    width = [max(len(col_names[j]), *(len(cells[i][j]) for i in range(len(cells)))) for j in range(len(col_names))]
    name_w = max(len(n) for n in row_names)
    lines = [" " * name_w + " " + " ".join(c.ljust(w) for c, w in zip(col_names, width, strict=True))]
    for rn, row in zip(row_names, cells, strict=True):
        lines.append(rn.ljust(name_w) + " " + " ".join(c.rjust(len(c)).ljust(w) if c.startswith("-")
                                                         else (" " + c).ljust(w) if c else "".ljust(w)
                                                         for c, w in zip(row, width, strict=True)))
    return lines


def _shape_lines(result: GLMMResults) -> list[str]:
    """The estimated negative binomial shape and its SE (lme4 prints the shape in the family line only)."""
    shape = result.nb_shape
    if shape is None:
        return []
    se = "NA" if not np.isfinite(shape.se) else format_r([shape.se], 4)[0]
    value = "Inf" if shape.theta == np.inf else format_r([shape.theta], 6)[0]  # the Poisson limit, as R prints it
    line = f"Negative binomial shape theta: {value}, Std. Err.: {se} (profile likelihood)"
    return [line] + ([f"Warning while fitting theta: {shape.message}"] if shape.message else [])


def _prior_lines(result: GLMMResults) -> list[str]:
    """A MAP fit (:func:`glmmteach.bglmer`): its priors, blme's "Prior dev" (-2 log prior at the estimates), and
    what the estimates are; nothing for a maximum-likelihood fit."""
    priors = result.spec.prior
    if priors is None:
        return []
    return [*priors.describe(), f"Prior dev  : {format_r([-2.0 * result.log_prior], 6)[0]}", "",
            "Estimates are posterior modes (maximum a posteriori with the priors above), not maximum-likelihood",
            "estimates; logLik, AIC and deviance are the likelihood's at the posterior modes, without the prior.", ""]


class GLMMSummary:
    """Printable summary of a :class:`GLMMResults` in the layout of lme4's ``summary(glmer)``."""

    def __init__(self, result: GLMMResults):
        self.result = result

    @property
    def coefficients(self) -> pd.DataFrame:
        r = self.result
        return pd.DataFrame({"Estimate": r.params, "Std. Error": r.bse, "z value": r.zvalues, "Pr(>|z|)": r.pvalues})

    def _ic_lines(self) -> list[str]:
        r = self.result
        values = np.round([r.aic, r.bic, r.llf, r.deviance], 1)
        cells = format_r(values, 7) + [str(r.df_resid)]
        names = ["AIC", "BIC", "logLik", "deviance", "df.resid"]
        width = max(max(map(len, cells)), max(map(len, names)))
        return [" ".join(n.rjust(width) for n in names) + " ", " ".join(c.rjust(width) for c in cells) + " "]

    def _resid_lines(self) -> list[str]:
        resid = self.result.resid_pearson.to_numpy()
        q = np.quantile(resid, [0, 0.25, 0.5, 0.75, 1.0])
        mx = np.max(np.abs(q))
        decimals = max(0, 6 - int(np.ceil(np.log10(mx)))) if mx > 0 else 6
        cells = format_r(np.round(q, decimals), 5)
        names = ["Min", "1Q", "Median", "3Q", "Max"]
        width = max(max(map(len, cells)), max(map(len, names)))
        return [" ".join(n.rjust(width) for n in names) + " ", " ".join(c.rjust(width) for c in cells) + " "]

    def __str__(self) -> str:
        r = self.result
        fit_by = "maximum likelihood" if r.spec.prior is None else "maximum a posteriori"
        tag = "[glmerMod]" if r.spec.prior is None else "['bglmerMod']"
        if r.nAGQ == 1:
            method = [*_prior_lines(r), f"Generalized linear mixed model fit by {fit_by} (Laplace",
                      f"  Approximation) {tag}"]
        else:
            method = [*_prior_lines(r), f"Generalized linear mixed model fit by {fit_by} (Adaptive",
                      f"  Gauss-Hermite Quadrature, nAGQ = {r.nAGQ}) {tag}"]
        table = coef_table_text(list(r.params.index), r.params.to_numpy(), r.bse.to_numpy(), r.zvalues.to_numpy(),
                                r.pvalues.to_numpy(), stat_name="z")
        lines = [
            *method,
            f" Family: {r.family.label}  ( {r.family.link.name} )",
            f"Formula: {formula_text(r)}",
            "   Data: data",
            "",
            *self._ic_lines(),
            "",
            "Scaled residuals: ",
            *self._resid_lines(),
            "",
            "Random effects:",
            *varcorr_lines(r),
            groups_line(r),
            *_shape_lines(r),
            "",
            "Fixed effects:",
            table,
        ]
        corr = fixef_corr_lines(r)
        if corr:
            lines += ["", "Correlation of Fixed Effects:", *corr]
        if r.dropped_rows:
            lines += [f"({r.dropped_rows} observation(s) deleted due to missingness)"]
        for message in r.warnings:
            lines.append(message)
        return "\n".join(lines)

    __repr__ = __str__

    def _repr_html_(self) -> str:
        r = self.result
        facts = pd.Series({
            "family (link)": f"{r.family.label} ({r.family.link.name})",
            "method": r.method,
            "observations / groups": groups_line(r).removeprefix("Number of obs: "),
            "logLik": f"{r.llf:.3f}",
            "AIC / BIC": f"{r.aic:.2f} / {r.bic:.2f}",
            "converged": str(r.converged),
            **({"NB shape theta (Std. Err.)": f"{r.nb_theta:.6g} ({r.nb_theta_se:.4g})"} if r.nb_shape is not None
               else {}),
        }, name="")
        vc = r.varcorr()
        re_table = pd.DataFrame({"Groups": vc["Groups"].to_numpy(), "Name": vc["Name"].to_numpy(),
                                 "Variance": vc["Variance"].to_numpy(), "Std.Dev.": vc["Std.Dev."].to_numpy()})
        fixed = self.coefficients.to_html(float_format=lambda v: f"{v:.4g}")
        warn = "".join(f"<p><i>{html.escape(m)}</i></p>" for m in r.warnings)
        prior = "".join(f"<p>{html.escape(line)}</p>" for line in _prior_lines(r) if line)
        return (f"<p><b>{'glmer' if r.spec.prior is None else 'bglmer'}</b>: "
                f"<code>{html.escape(formula_text(r))}</code></p>{prior}"
                f"{facts.to_frame().to_html(header=False)}<p>Random effects</p>{re_table.to_html()}"
                f"<p>Fixed effects</p>{fixed}{warn}")
