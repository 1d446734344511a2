"""Number formatting as R prints it, so summaries can be read side by side with the syllabus.

R's ``format(x, digits = d)`` shows every element of a vector with the same number of decimals: the
fewest that give each element ``d`` significant digits (trailing zeros dropped), switching to
scientific notation when that is narrower. ``printCoefmat`` (used by ``summary.glm`` and lme4's
``summary``) formats estimates and standard errors jointly, test statistics rounded to 3 decimals,
and p-values with ``format.pval``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

_P_EPS = np.finfo(float).eps


def _sig_decimals(x: float, digits: int) -> tuple[int, int]:
    """(decimals, significant digits) R needs to show ``x`` to ``digits`` significant digits."""
    if x == 0 or not math.isfinite(x):
        return 0, 1
    text = f"{abs(x):.{digits - 1}e}"
    mantissa, exponent = text.split("e")
    sig = len(mantissa.replace(".", "").rstrip("0")) or 1
    return max(0, sig - 1 - int(exponent)), sig


def format_r(values: Sequence[float] | np.ndarray, digits: int = 7) -> list[str]:
    """Format a vector as R's ``format(x, digits = digits)`` does (common decimals, NA for NaN)."""
    arr = np.asarray(values, dtype=float)
    finite = arr[np.isfinite(arr)]
    if finite.size == 0:
        return ["NA" if np.isnan(v) else str(v) for v in arr]
    info = [_sig_decimals(float(v), digits) for v in finite]
    decimals = max(d for d, _ in info)
    fixed = [f"{v:.{decimals}f}" for v in finite]
    sig = max(s for _, s in info)
    sci = [f"{v:.{sig - 1}e}" for v in finite]
    sci = [s.replace("e-0", "e-").replace("e+0", "e+") if len(s.split("e")[1]) > 3 else s for s in sci]
    chosen = fixed if max(map(len, fixed)) <= max(map(len, sci)) else sci
    out, it = [], iter(chosen)
    for v in arr:
        out.append(next(it) if np.isfinite(v) else ("NA" if np.isnan(v) else ("Inf" if v > 0 else "-Inf")))
    return out


def format_pval(pvalues: Sequence[float] | np.ndarray, digits: int = 3) -> list[str]:
    """R's ``format.pval``: tiny p-values as ``< 2e-16``, others with ``digits`` significant digits."""
    pv = np.asarray(pvalues, dtype=float)
    out = ["NA"] * len(pv)
    ok = ~np.isnan(pv)
    tiny = ok & (pv < _P_EPS)
    normal = ok & ~tiny
    if normal.any():
        values = pv[normal]
        expo = np.floor(np.log10(np.where(values > 0, values, 1e-50)))
        # R prints p-values down to 1e-4 in fixed notation on a common number of decimals
        # (0.000122 and 0.138120 in one column), smaller ones each in scientific notation.
        fixp = (expo >= -4) | (values == 0)
        texts = np.empty(len(values), dtype=object)
        if fixp.any():
            texts[fixp] = format_r(values[fixp], digits)
        if (~fixp).any():
            texts[~fixp] = [format_r([v], digits)[0] for v in values[~fixp]]
        for idx, text in zip(np.flatnonzero(normal), texts, strict=True):
            out[idx] = text
    if tiny.any():
        width = max((len(out[i]) for i in np.flatnonzero(normal)), default=0)
        sep = " " if width > 6 or not normal.any() else ""
        for idx in np.flatnonzero(tiny):
            out[idx] = f"<{sep}2e-16"
    return out


def signif_stars(pvalues: Sequence[float] | np.ndarray) -> list[str]:
    """Significance codes: ``***`` < 0.001 < ``**`` < 0.01 < ``*`` < 0.05 < ``.`` < 0.1."""
    stars = []
    for p in np.asarray(pvalues, dtype=float):
        if np.isnan(p):
            stars.append("")
        else:
            stars.append("***" if p < 0.001 else "**" if p < 0.01 else "*" if p < 0.05 else "." if p < 0.1 else " ")
    return stars


SIGNIF_LEGEND = "Signif. codes:  0 '***' 0.001 '**' 0.01 '*' 0.05 '.' 0.1 ' ' 1"


def coef_table_text(
    names: Sequence[str],
    estimate: np.ndarray,
    std_error: np.ndarray,
    statistic: np.ndarray,
    pvalue: np.ndarray,
    stat_name: str = "z",
    digits: int = 4,
) -> str:
    """The coefficient block of R's ``printCoefmat`` with significance stars; for no coefficients R's
    ``No Coefficients`` (what ``print.summary.glm`` prints in place of the table)."""
    if len(names) == 0:
        return "No Coefficients"
    est, se = np.asarray(estimate, float), np.asarray(std_error, float)
    both = np.abs(np.concatenate([est, se]))
    both = both[np.isfinite(both) & (both != 0)]
    digmin = 1 + (math.floor(math.log10(both.min())) if both.size else 0)
    rounded = np.round(np.concatenate([est, se]), max(1, digits - digmin))
    cs = format_r(rounded, digits)
    est_s, se_s = cs[: len(est)], cs[len(est) :]
    stat_s = format_r(np.round(np.asarray(statistic, float), 3), digits)
    p_s = format_pval(pvalue, max(1, min(5, digits - 1)))
    stars = signif_stars(pvalue)
    header = ["Estimate", "Std. Error", f"{stat_name} value", f"Pr(>|{stat_name}|)"]
    rows = [[e, s, t, p] for e, s, t, p in zip(est_s, se_s, stat_s, p_s, strict=True)]
    widths = [max(len(header[j]), *(len(r[j]) for r in rows)) for j in range(4)]
    name_w = max(len(n) for n in names)
    any_star = any(s.strip() for s in stars)
    lines = [
        " " * name_w
        + " "
        + " ".join(h.rjust(w) for h, w in zip(header, widths, strict=True))
        + ("    " if any_star else "")
    ]
    for name, row, star in zip(names, rows, stars, strict=True):
        text = name.ljust(name_w) + " " + " ".join(c.rjust(w) for c, w in zip(row, widths, strict=True))
        lines.append(text + (" " + star.ljust(3) if any_star else ""))
    if any_star:
        lines += ["---", SIGNIF_LEGEND]
    return "\n".join(lines)
