r"""The within-patient analyses of a 2×2 crossover trial with a binary outcome (Jones & Kenward 1989, §2.13).

Each patient receives a reference treatment R and a test treatment T, in the order R then T (sequence
"R-T") or T then R ("T-R"), and has one binary outcome per period. A patient with the same outcome in
both periods (a *concordant* pair, 00 or 11) says nothing about the within-patient difference; the
*discordant* pairs (01: the outcome in period 2 only; 10: in period 1 only) carry the information.

In the logistic model with a fixed effect for each patient, :math:`\operatorname{logit} P(y_{ij} = 1)
= \alpha_i + \pi\,[j = 2] + \tau\,[\text{T in period } j]`, conditioning on each patient's total removes
:math:`\alpha_i`: a discordant pair of sequence R-T is "01" with log-odds :math:`\pi + \tau`, one of
sequence T-R with log-odds :math:`\pi - \tau`. Hence

* :func:`mainland_gart` (Mainland 1963; Gart 1969): Fisher's exact test on the 2×2 table of sequence by
  discordant pattern, whose odds ratio is :math:`e^{2\tau}`;
* :func:`conditional_logit`: the conditional maximum-likelihood estimates of :math:`\tau` and :math:`\pi`
  (R's ``survival::clogit(outcome ~ trt + period + strata(ID))``), in closed form because the model is
  saturated (two parameters, two binomial proportions), with Wald and likelihood-ratio tests and a
  profile-likelihood interval for :math:`\tau` that stays valid when the estimate is infinite;
* :func:`prescott` (Prescott 1981): the test for linear trend in the 2×3 table of sequence by
  (10, concordant, 01), which uses the concordant patients as well, asymptotic (Jones & Kenward's
  :math:`\chi^2_1` statistic) and exact (conditional on the table's margins).

:func:`pair_table` gives the counts of the four patterns in each sequence, from data in long format.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike
from scipy import optimize, special

from .exceptions import DataError, GlmmteachError, check_level

PATTERNS = ("00", "01", "10", "11")
SEQUENCES = ("R-T", "T-R")


def _check_columns(data: pd.DataFrame, columns: dict[str, str]) -> None:
    if not isinstance(data, pd.DataFrame):
        raise DataError(f"the crossover data must be a pandas DataFrame, got {type(data).__name__}")
    missing = [f"{role}={name!r}" for role, name in columns.items() if name not in data.columns]
    if missing:
        raise DataError(f"column(s) not in the data: {', '.join(missing)}; the data have {list(data.columns)}")
    for role, name in columns.items():
        if data[name].isna().any():
            raise DataError(f"column {name!r} ({role}) has missing values: drop those patients first")


def _two_levels(values: pd.Series, role: str) -> np.ndarray:
    levels = np.sort(values.unique())
    if len(levels) != 2:
        raise DataError(f"a 2x2 crossover has exactly two values of {role} column {values.name!r}, "
                        f"got {len(levels)}: {list(levels)[:6]}")
    return levels


def pair_table(data: pd.DataFrame, id: str = "ID", period: str = "period", treatment: str = "trt",  # noqa: A002
               outcome: str = "outcome") -> pd.DataFrame:
    """Counts of the outcome patterns (period 1, period 2) in each sequence of a 2×2 crossover.

    ``data`` has one row per patient and period. The smaller value of ``treatment`` is the reference R,
    the larger the test treatment T; the smaller value of ``period`` is period 1; ``outcome`` is 0/1
    (or False/True). Rows ``"R-T"`` and ``"T-R"``, columns ``"00"``, ``"01"``, ``"10"``, ``"11"``.
    """
    _check_columns(data, {"id": id, "period": period, "treatment": treatment, "outcome": outcome})
    periods = _two_levels(data[period], "period")
    treatments = _two_levels(data[treatment], "treatment")
    y = data[outcome]
    if not y.isin([0, 1]).all():
        bad = y[~y.isin([0, 1])].unique()[:5]
        raise DataError(f"outcome column {outcome!r} must be 0/1 (binary), got {list(bad)}")
    per_patient = data.groupby(id)[period].agg(["size", "nunique"])
    wrong = per_patient.index[(per_patient["size"] != 2) | (per_patient["nunique"] != 2)]
    if len(wrong):
        raise DataError(f"each patient ({id!r}) needs one row in each of the two periods; "
                        f"not so for {id} {list(wrong[:5])}")
    wide = data.assign(_second=data[period] == periods[1], _test=data[treatment] == treatments[1],
                       _y=y.astype(int)).pivot(index=id, columns="_second", values=["_test", "_y"])
    if (wide[("_test", False)] == wide[("_test", True)]).any():
        same = wide.index[wide[("_test", False)] == wide[("_test", True)]][:5]
        raise DataError(f"in a crossover each patient receives both treatments ({treatment!r}); "
                        f"{id} {list(same)} received one treatment twice")
    sequence = np.where(wide[("_test", False)], "T-R", "R-T")
    pattern = wide[("_y", False)].astype(str) + wide[("_y", True)].astype(str)
    table = pd.crosstab(pd.Series(sequence, index=wide.index, name="sequence"), pattern.rename("pattern"))
    return table.reindex(index=list(SEQUENCES), columns=list(PATTERNS), fill_value=0)


def _discordant(table: pd.DataFrame) -> np.ndarray:
    """[[R-T 01, R-T 10], [T-R 01, T-R 10]] from a :func:`pair_table` (or an equivalent 2×4 table)."""
    if not isinstance(table, pd.DataFrame) or set(table.index) != set(SEQUENCES) \
            or not set(PATTERNS) <= set(table.columns):
        raise DataError("expected a pair_table: rows 'R-T', 'T-R' and columns '00', '01', '10', '11'")
    counts = table.loc[list(SEQUENCES), ["01", "10"]].to_numpy()
    if (counts < 0).any() or not np.all(np.equal(np.mod(counts, 1), 0)):
        raise DataError("the pattern counts must be whole numbers >= 0")
    return counts.astype(int)


def _as_table(data: pd.DataFrame, columns: dict[str, str]) -> pd.DataFrame:
    if isinstance(data, pd.DataFrame) and list(data.columns) == list(PATTERNS) \
            and set(data.index) == set(SEQUENCES):
        return data
    return pair_table(data, **columns)


@dataclass(frozen=True)
class MainlandGart:
    """Fisher's exact test on the sequence-by-preference table of the discordant pairs.

    ``table``: rows R-T, T-R; columns 01, 10. ``odds_ratio`` is Fisher's conditional maximum-likelihood
    estimate of :math:`e^{2\\tau}` (R's ``fisher.test`` estimate) and ``conf_int`` its exact interval;
    ``sample_odds_ratio`` is :math:`(n_{01}^{RT} n_{10}^{TR}) / (n_{10}^{RT} n_{01}^{TR})`, whose half
    log is the conditional-logistic estimate of :math:`\\tau`. ``p_value``: two-sided, as R's.
    """

    table: pd.DataFrame
    odds_ratio: float
    conf_int: tuple[float, float]
    sample_odds_ratio: float
    p_value: float
    level: float

    def __str__(self) -> str:
        lo, hi = self.conf_int
        return (f"Mainland-Gart test (Fisher's exact test on the discordant pairs)\n{self.table}\n"
                f"odds ratio (conditional MLE) {self.odds_ratio:.4g}, {100 * self.level:g}% CI "
                f"({lo:.4g}, {hi:.4g}); p-value {self.p_value:.4g}")


def mainland_gart(data: pd.DataFrame, level: float = 0.95, **columns: str) -> MainlandGart:
    """The Mainland–Gart test for a treatment difference in a 2×2 crossover with a binary outcome.

    ``data``: long-format data (``columns`` as for :func:`pair_table`) or a :func:`pair_table`.
    """
    from scipy import stats  # imported when used: scipy.stats is the slowest import of the package
    from scipy.stats.contingency import odds_ratio

    level = check_level("level", level)
    counts = _discordant(_as_table(data, columns))
    if counts.sum(axis=1).min() == 0:
        raise DataError("a sequence has no discordant pairs: the Mainland-Gart table has an empty row")
    p_value = float(stats.fisher_exact(counts, alternative="two-sided").pvalue)
    conditional = odds_ratio(counts, kind="conditional")
    ci = conditional.confidence_interval(confidence_level=level)
    (a, b), (c, d) = counts
    with np.errstate(divide="ignore", invalid="ignore"):
        sample = np.float64(a * d) / np.float64(b * c)
    table = pd.DataFrame(counts, index=pd.Index(SEQUENCES, name="sequence"), columns=["01", "10"])
    return MainlandGart(table, float(conditional.statistic), (float(ci.low), float(ci.high)),
                        float(sample), p_value, level)


@dataclass(frozen=True)
class Prescott:
    """Prescott's test: linear trend in the 2×3 table of sequence by (10, concordant, 01).

    ``statistic`` is Jones & Kenward's :math:`\\chi^2_1` statistic (the Cochran–Armitage trend statistic
    with scores -1, 0, 1; R's ``prop.trend.test``), ``p_value`` its :math:`\\chi^2_1` p-value;
    ``exact_p_value`` the two-sided exact p-value given the table's margins (every 2×3 table with these
    margins whose trend score is at least as far from its expectation as the observed one).
    """

    table: pd.DataFrame
    statistic: float
    p_value: float
    exact_p_value: float

    def __str__(self) -> str:
        return (f"Prescott's test (trend in sequence x preference)\n{self.table}\n"
                f"chi-squared {self.statistic:.4g} on 1 df, p-value {self.p_value:.4g}; "
                f"exact p-value {self.exact_p_value:.4g}")


def _log_hypergeometric(first_row: np.ndarray, column_totals: np.ndarray) -> np.ndarray:
    """Log probabilities of first rows (one per row of ``first_row``) given both margins of a 2×k table."""
    n_first, n_total = first_row.sum(axis=1), column_totals.sum()
    log_choose = (special.gammaln(column_totals + 1) - special.gammaln(first_row + 1)
                  - special.gammaln(column_totals - first_row + 1)).sum(axis=1)
    return log_choose - (special.gammaln(n_total + 1) - special.gammaln(n_first + 1)
                         - special.gammaln(n_total - n_first + 1))


def prescott(data: pd.DataFrame, **columns: str) -> Prescott:
    """Prescott's (1981) test for a treatment difference in a 2×2 crossover with a binary outcome.

    ``data``: long-format data (``columns`` as for :func:`pair_table`) or a :func:`pair_table`.
    """
    from scipy import stats  # imported when used: scipy.stats is the slowest import of the package

    table = _as_table(data, columns)
    _discordant(table)  # the same checks of the counts
    three = pd.DataFrame({"10": table["10"], "00 or 11": table["00"] + table["11"], "01": table["01"]})
    counts = three.loc[list(SEQUENCES)].to_numpy().astype(int)
    scores = np.array([-1, 0, 1])
    n_rt, totals = counts[0].sum(), counts.sum(axis=0)
    n = totals.sum()
    spread = n * (scores**2 @ totals) - (scores @ totals) ** 2  # N sum s^2 n_j - (sum s n_j)^2
    if n_rt == 0 or n_rt == n or spread == 0:
        raise DataError("Prescott's test needs patients in both sequences and some discordant pairs")
    observed = scores @ counts[0]
    deviation = n * observed - n_rt * (scores @ totals)
    statistic = float(n * deviation**2 / (n_rt * (n - n_rt) * spread))
    # every first row (x10, x_concordant, x01) with the same margins, vectorised
    x10, x01 = np.meshgrid(np.arange(totals[0] + 1), np.arange(totals[2] + 1), indexing="ij")
    rows = np.column_stack([x10.ravel(), n_rt - x10.ravel() - x01.ravel(), x01.ravel()])
    rows = rows[(rows[:, 1] >= 0) & (rows[:, 1] <= totals[1])]
    log_p = _log_hypergeometric(rows, totals)
    far = np.abs(n * (rows @ scores) - n_rt * (scores @ totals)) >= abs(deviation) * (1 - 1e-9)
    exact = float(min(1.0, np.exp(special.logsumexp(log_p[far]))))
    three.index.name = "sequence"
    return Prescott(three, statistic, float(stats.chi2.sf(statistic, 1)), exact)


@dataclass(frozen=True)
class ConditionalLogit:
    r"""Conditional logistic regression of a 2×2 crossover (patients as strata).

    ``params``: the conditional maximum-likelihood estimates of the treatment effect :math:`\tau`
    (T against R) and the period effect :math:`\pi` (period 2 against 1) on the log-odds scale, infinite
    when a sequence's discordant pairs all go one way; ``bse`` their standard errors (infinite then, and
    the Wald test meaningless). ``llf`` is the conditional log-likelihood at the estimates (its supremum),
    ``llf_null_treatment`` its maximum with :math:`\tau = 0`; ``lr_statistic`` and ``lr_p_value`` the
    likelihood-ratio test of :math:`\tau = 0` on 1 df; ``conf_int`` the profile-likelihood interval for
    :math:`\tau` (an end at infinity when the estimate is infinite); ``wald_conf_int`` the Wald interval
    (nan when the estimate is infinite).
    """

    table: pd.DataFrame
    params: pd.Series
    bse: pd.Series
    cov: pd.DataFrame
    llf: float
    llf_null_treatment: float
    lr_statistic: float
    lr_p_value: float
    conf_int: tuple[float, float]
    wald_conf_int: tuple[float, float]
    level: float

    def profile_zeta(self, treatment: ArrayLike) -> np.ndarray:
        r"""The signed square root of the profile deviance of the treatment effect at the values
        ``treatment`` (lme4's :math:`\zeta`: :math:`\pm 1.96` at the ends of the 95% interval), the period
        effect re-estimated at each value."""
        values = np.asarray(treatment, dtype=float)
        counts = self.table.to_numpy().astype(float)
        deviance = np.array([2 * (self.llf - _profile_treatment(counts, v)) for v in values.ravel()])
        with np.errstate(invalid="ignore"):
            sign = np.sign(values.ravel() - self.params["treatment"])
        sign = np.where(np.isinf(self.params["treatment"]), -np.sign(self.params["treatment"]), sign)
        return (sign * np.sqrt(np.maximum(deviance, 0.0))).reshape(values.shape)

    @property
    def infinite(self) -> bool:
        """Whether the estimates are infinite (a sequence's discordant pairs all go one way)."""
        return bool(not np.isfinite(self.params).all())

    def __str__(self) -> str:
        lo, hi = self.conf_int
        note = "  (infinite: a sequence's discordant pairs all go one way)" if self.infinite else ""
        return (f"Conditional logistic regression (strata: patients)\n"
                f"{pd.DataFrame({'estimate': self.params, 'std.error': self.bse})}{note}\n"
                f"conditional log-likelihood {self.llf:.6g}; LR test of treatment = 0: "
                f"{self.lr_statistic:.4g} on 1 df, p-value {self.lr_p_value:.4g}\n"
                f"{100 * self.level:g}% profile-likelihood interval for treatment: ({lo:.4g}, {hi:.4g})")


def _binomial_loglik(successes: np.ndarray, failures: np.ndarray, eta: np.ndarray) -> float:
    # log sigma(eta) = -log1p(exp(-eta)); xlogy-like guards so that 0 * log 0 = 0 at infinite eta
    with np.errstate(invalid="ignore"):
        up = np.where(successes > 0, successes * -np.logaddexp(0.0, -eta), 0.0)
        down = np.where(failures > 0, failures * -np.logaddexp(0.0, eta), 0.0)
    return float(np.sum(up + down))


def _profile_treatment(counts: np.ndarray, tau: float) -> float:
    r"""Maximum over :math:`\pi` of the conditional log-likelihood at treatment effect ``tau``."""
    n01, n10 = counts[:, 0], counts[:, 1]
    signs = np.array([1.0, -1.0])  # R-T: pi + tau, T-R: pi - tau

    def score(pi: float) -> float:  # d loglik / d pi, decreasing in pi
        return float(np.sum(n01 - (n01 + n10) * special.expit(pi + signs * tau)))

    lo, hi = -1.0, 1.0
    while score(lo) < 0:
        lo *= 2
    while score(hi) > 0:
        hi *= 2
    pi = optimize.brentq(score, lo, hi, xtol=1e-13)
    return _binomial_loglik(n01, n10, pi + signs * tau)


def conditional_logit(data: pd.DataFrame, level: float = 0.95, **columns: str) -> ConditionalLogit:
    """Conditional logistic regression for the treatment and period effects of a 2×2 crossover.

    ``data``: long-format data (``columns`` as for :func:`pair_table`) or a :func:`pair_table`. Only the
    discordant pairs enter the conditional likelihood. R: ``clogit(outcome ~ trt + period + strata(ID))``.
    """
    from scipy import stats  # imported when used: scipy.stats is the slowest import of the package

    level = check_level("level", level)
    counts = _discordant(_as_table(data, columns)).astype(float)
    n01, n10 = counts[:, 0], counts[:, 1]
    if (counts.sum(axis=1) == 0).any():
        raise DataError("a sequence has no discordant pairs: the within-patient analysis has no information "
                        "on the treatment effect")
    if n01.sum() == 0 or n10.sum() == 0:
        raise GlmmteachError("every discordant pair has the same pattern: the period effect is infinite and "
                             "the treatment effect is not identified")
    with np.errstate(divide="ignore"):
        eta = np.log(n01) - np.log(n10)  # each sequence's log-odds of "01", infinite if a count is 0
        var_eta = 1 / n01 + 1 / n10
    names = ["treatment", "period"]
    params = pd.Series([(eta[0] - eta[1]) / 2, (eta[0] + eta[1]) / 2], index=names)
    cov = pd.DataFrame([[var_eta.sum(), var_eta[0] - var_eta[1]], [var_eta[0] - var_eta[1], var_eta.sum()]],
                       index=names, columns=names) / 4
    if not np.isfinite(var_eta).all():
        cov[:] = np.inf
    bse = pd.Series(np.sqrt(np.diag(cov)), index=names)
    llf = _binomial_loglik(n01, n10, eta)
    llf_null = _profile_treatment(counts, 0.0)
    lr = max(0.0, 2 * (llf - llf_null))
    crit = stats.chi2.isf(1 - level, 1)
    z = stats.norm.isf((1 - level) / 2)
    with np.errstate(invalid="ignore"):  # infinite estimate and SE: no Wald interval (nan)
        wald = (params["treatment"] - z * bse["treatment"], params["treatment"] + z * bse["treatment"])
    ends = _profile_ends(counts, float(params["treatment"]), llf, crit)
    table = pd.DataFrame(counts.astype(int), index=pd.Index(SEQUENCES, name="sequence"), columns=["01", "10"])
    return ConditionalLogit(table, params, bse, cov, llf, llf_null, lr, float(stats.chi2.sf(lr, 1)), ends,
                            (float(wald[0]), float(wald[1])), level)


def _profile_ends(counts: np.ndarray, estimate: float, llf: float, crit: float) -> tuple[float, float]:
    """Where the profile deviance of the treatment effect reaches ``crit``, on each side of ``estimate``.

    The deviance is 0 at the estimate and grows without bound away from it towards an end whose
    discordant counts are positive; towards an infinite estimate it falls to 0, and that end is infinite.
    """
    def excess(tau: float) -> float:
        return 2 * (llf - _profile_treatment(counts, tau)) - crit

    def walk(start: float, direction: float, want_positive: bool) -> float:
        step = 1.0
        while (excess(start + direction * step) > 0) != want_positive:
            step *= 2
        return start + direction * step

    ends = {}
    for direction in (-1.0, 1.0):
        if np.isinf(estimate) and np.sign(estimate) == direction:
            ends[direction] = float(estimate)
            continue
        inside = estimate if np.isfinite(estimate) else walk(0.0, -direction, want_positive=False)
        outside = walk(inside, direction, want_positive=True)
        ends[direction] = float(optimize.brentq(excess, min(inside, outside), max(inside, outside),
                                                xtol=1e-12))
    return ends[-1.0], ends[1.0]
