r"""Simulated quantile residuals and the simulation tests of R's DHARMa (version 0.5).

A fitted model is simulated ``nsim`` times; each observation's residual is where it falls among its own
simulations, the empirical CDF :math:`r_i = \#\{s : y^{(s)}_i < y_i\} / n_{sim}`. For a discrete response
that value is randomised between :math:`\#\{y^{(s)}_i < y_i\}/n_{sim}` and
:math:`\#\{y^{(s)}_i \le y_i\}/n_{sim}` (the probability integral transform, DHARMa's default ``"PIT"``
method), so that under a correct model the residuals are uniform on (0, 1) whatever the family: a
Q-Q plot against the uniform should be the diagonal, and a residual-vs-predicted plot a flat band.

The tests are DHARMa's, with its definitions (``DHARMa/R/tests.R``):

- :meth:`SimulatedResiduals.test_uniformity` — ``testUniformity``: the one-sample Kolmogorov–Smirnov test of
  the residuals against U(0, 1), as R's ``ks.test`` computes it (the exact distribution for fewer than 100
  residuals without ties, else the asymptotic one);
- :meth:`SimulatedResiduals.test_dispersion` — ``testDispersion`` (type ``"DHARMa"``, no refit): the variance
  of the observed response around the fitted population-level mean, against the same variance of each
  simulated response; statistic the observed over the mean simulated, p-value the simulated tail;
- :meth:`SimulatedResiduals.test_zero_inflation` — ``testZeroInflation``: the number of zeros, observed
  against simulated.

As DHARMa 0.5, the simulations of a GLMM are conditional on the fitted random effects by default
(``simulate_re="conditional"``: lme4's ``simulate(fit, re.form = NULL)``, here ``use_u=True``), which gives the
dispersion test its power; ``"unconditional"`` draws new random effects (lme4's default ``simulate``).
DHARMa's ``fittedPredictedResponse`` is the population-level prediction on the response scale, lme4's
``predict(fit, type = "response", re.form = ~0)``; the residual-vs-predicted plot ranks it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from .exceptions import GlmmteachError
from .simulation import as_generator, check_nsim

__all__ = ["SimulatedResiduals", "SimulationTest", "from_simulations", "quantile_residuals", "rank_transform",
           "simulated_residuals"]

ALTERNATIVES = ("two.sided", "greater", "less")
SIMULATE_RE = ("conditional", "unconditional")


@dataclass(frozen=True)
class SimulationTest:
    """A test's result, as R's ``htest``: ``statistic`` (named ``statistic_name``), ``p_value``, ``method``,
    ``alternative``; for the simulation tests also the observed summary and the simulated ones
    (``observed``, ``simulated``) that DHARMa's histogram shows."""

    statistic: float
    p_value: float
    method: str
    alternative: str
    statistic_name: str
    observed: float | None = None
    simulated: np.ndarray | None = field(default=None, repr=False)

    def __str__(self) -> str:
        return (f"{self.method}\n{self.statistic_name} = {self.statistic:.6g}, p-value = {self.p_value:.4g}\n"
                f"alternative hypothesis: {self.alternative}")


def quantile_residuals(simulated: np.ndarray, observed: np.ndarray, seed: Any = None) -> np.ndarray:
    r"""DHARMa's ``getQuantile(method = "PIT")``: per row of ``simulated`` (n×nsim) the share of simulations below
    the observation, drawn uniformly between the share strictly below and the share below or equal where the
    two differ (ties: discrete responses)."""
    below = np.mean(simulated < observed[:, None], axis=1)
    below_or_equal = np.mean(simulated <= observed[:, None], axis=1)
    ties = below != below_or_equal
    if not ties.any():
        return below
    # one uniform per row, as DHARMa's runif(n, lower, lowerOrEqual), kept only where there are ties
    return np.where(ties, as_generator(seed).uniform(below, below_or_equal), below)


def rank_transform(x: np.ndarray) -> np.ndarray:
    """DHARMa's ``rankTransform``: average ranks divided by the largest rank (predictions spread on (0, 1])."""
    from scipy import stats  # imported when used: scipy.stats is the slowest import of the package

    ranks = stats.rankdata(x, method="average")
    return ranks / ranks.max()


def simulation_p_value(simulated: np.ndarray, observed: float, alternative: str) -> float:
    """DHARMa's ``getP``: the share of simulated summaries at least as extreme as the observed one."""
    greater = float(np.mean(simulated >= observed))
    less = float(np.mean(simulated <= observed))
    if alternative == "greater":
        return greater
    if alternative == "less":
        return less
    return min(2 * min(greater, less), 1.0)


def _check_alternative(alternative: str) -> str:
    if alternative not in ALTERNATIVES:
        raise GlmmteachError(f"alternative must be one of {', '.join(map(repr, ALTERNATIVES))}, got {alternative!r}")
    return alternative


@dataclass(frozen=True)
class SimulatedResiduals:
    """Scaled residuals of a model from its simulations (DHARMa's ``DHARMa`` object).

    ``residuals`` (indexed as the fitted rows) lie in [0, 1]; ``observed`` (n), ``simulated`` (n×nsim) and
    ``fitted`` (the population-level predicted mean, DHARMa's ``fittedPredictedResponse``) are what the tests
    use. Build one with :func:`simulated_residuals` (from a fit) or :func:`from_simulations`."""

    residuals: pd.Series
    observed: np.ndarray = field(repr=False)
    simulated: np.ndarray = field(repr=False)
    fitted: np.ndarray = field(repr=False)

    @property
    def nsim(self) -> int:
        return self.simulated.shape[1]

    def test_uniformity(self) -> SimulationTest:
        """``testUniformity``: Kolmogorov–Smirnov test against U(0, 1), two-sided, as R's ``ks.test``."""
        r = self.residuals.to_numpy()
        n = len(r)
        exact = n < 100 and len(np.unique(r)) == n  # R's default: exact without ties below 100 values
        from scipy import stats  # imported when used: scipy.stats is the slowest import of the package

        result = stats.kstest(r, "uniform", method="exact" if exact else "asymp")
        p = float(np.clip(result.pvalue, 0.0, 1.0))
        return SimulationTest(float(result.statistic), p, "Exact one-sample Kolmogorov-Smirnov test" if exact
                              else "Asymptotic one-sample Kolmogorov-Smirnov test", "two.sided", "D")

    def test_dispersion(self, alternative: str = "two.sided") -> SimulationTest:
        r"""``testDispersion`` (DHARMa's default, no refit): :math:`s(y) = \operatorname{var}(y - \hat\mu)/v` with
        :math:`\hat\mu` the fitted population-level mean and :math:`v` the variance of all simulated values;
        statistic :math:`s(y)/\overline{s(y^{(s)})}` (above 1: overdispersed), p-value from the simulated
        :math:`s(y^{(s)})`."""
        _check_alternative(alternative)
        expected = np.var(self.simulated, ddof=1)
        observed = float(np.var(self.observed - self.fitted, ddof=1) / expected)
        simulated = np.var(self.simulated - self.fitted[:, None], axis=0, ddof=1) / expected
        return self._generic(observed, simulated, alternative, "dispersion",
                             "DHARMa nonparametric dispersion test via sd of residuals fitted vs. simulated")

    def test_zero_inflation(self, alternative: str = "two.sided") -> SimulationTest:
        """``testZeroInflation``: the number of zeros observed against its simulated distribution; statistic the
        observed over the mean simulated count (``ratioObsSim``; above 1: more zeros than the model expects)."""
        _check_alternative(alternative)
        observed = float(np.sum(self.observed == 0))
        simulated = np.sum(self.simulated == 0, axis=0).astype(float)
        return self._generic(observed, simulated, alternative, "ratioObsSim",
                             "DHARMa zero-inflation test via comparison to expected zeros with simulation under "
                             "H0 = fitted model")

    @staticmethod
    def _generic(observed: float, simulated: np.ndarray, alternative: str, name: str, method: str) -> SimulationTest:
        """DHARMa's ``testGeneric``: ratio to the simulated mean and the simulated tail probability."""
        with np.errstate(divide="ignore", invalid="ignore"):  # no simulated zeros: R's Inf or NaN as well
            ratio = float(np.float64(observed) / np.mean(simulated))
        return SimulationTest(ratio, simulation_p_value(simulated, observed, alternative), method, alternative, name,
                              observed, simulated)

    def plot_qq(self, ax: Any = None) -> Any:
        """The uniform Q-Q plot (DHARMa's ``plotQQunif``): see :func:`glmmteach.plots.plot_qq_uniform`."""
        from .plots import plot_qq_uniform

        return plot_qq_uniform(self, ax=ax)

    def plot_vs_predicted(self, ax: Any = None) -> Any:
        """Residuals against the rank-transformed predictions (DHARMa's ``plotResiduals``): see
        :func:`glmmteach.plots.plot_residuals_predicted`."""
        from .plots import plot_residuals_predicted

        return plot_residuals_predicted(self, ax=ax)


def from_simulations(simulated: Any, observed: Any, fitted: Any = None, seed: Any = 123) -> SimulatedResiduals:
    """DHARMa's ``createDHARMa``: scaled residuals from a simulated-response matrix (n×nsim, one column per
    simulation, e.g. posterior predictive draws) and the observed response (n). ``fitted`` defaults, as in
    DHARMa, to the row means of the simulations. ``seed`` fixes the randomisation of ties."""
    sims = np.asarray(simulated, dtype=float)
    y = np.asarray(observed, dtype=float)
    index = observed.index if isinstance(observed, pd.Series) else pd.RangeIndex(len(y))
    if sims.ndim != 2 or sims.shape[1] < 2:
        raise GlmmteachError(f"simulated must be a matrix with one column per simulation (at least 2), got shape "
                             f"{sims.shape}")
    if y.ndim != 1 or len(y) != sims.shape[0]:
        raise GlmmteachError(f"observed has {y.size} values but simulated has {sims.shape[0]} rows")
    if len(y) < 3:
        raise GlmmteachError(f"scaled residuals need at least 3 observations, got {len(y)}")
    if not (np.all(np.isfinite(sims)) and np.all(np.isfinite(y))):
        raise GlmmteachError("simulated and observed must be finite numbers (no NaN: drop incomplete rows first)")
    mean = sims.mean(axis=1) if fitted is None else np.asarray(fitted, dtype=float)
    if mean.shape != y.shape:
        raise GlmmteachError(f"fitted has {mean.size} values, observed {len(y)}")
    residuals = pd.Series(quantile_residuals(sims, y, seed), index=index, name="scaled residual")
    return SimulatedResiduals(residuals, y, sims, mean)


def simulated_residuals(fit: Any, nsim: int = 250, seed: Any = 123,
                        simulate_re: str = "conditional") -> SimulatedResiduals:
    """DHARMa's ``simulateResiduals(fit, n = nsim, seed)`` for a fitted GLMM (:class:`~glmmteach.GLMMResults`) or
    GLM (:class:`~glmmteach.GLMResults`; binomial, Poisson or negative binomial). ``simulate_re`` (a GLMM's
    random effects, DHARMa's ``simulateREs``): ``"conditional"`` keeps the conditional modes (DHARMa 0.5's
    default), ``"unconditional"`` draws new ones. One generator seeded by ``seed`` draws the simulations, then
    the randomisation of ties. Binomial responses are compared as counts of successes, as DHARMa does."""
    nsim = check_nsim(nsim)
    if nsim < 2:
        raise GlmmteachError(f"scaled residuals need nsim >= 2 simulations, got {nsim}")
    if simulate_re not in SIMULATE_RE:
        raise GlmmteachError(f"simulate_re must be one of {', '.join(map(repr, SIMULATE_RE))}, got {simulate_re!r}")
    from .glm import GLMResults
    from .glmm.results import GLMMResults

    if not isinstance(fit, GLMMResults | GLMResults):
        raise GlmmteachError(f"simulated_residuals needs a fitted glmer or glm model, got {type(fit).__name__}")
    rng = as_generator(seed)
    design = fit.design
    if isinstance(fit, GLMMResults):
        sims = fit.simulate(nsim, seed=rng, use_u=simulate_re == "conditional")
        fitted = fit.predict(type="response", re_form=[])
    else:
        if np.any(design.weights != 1):
            raise GlmmteachError("simulated residuals of a glm with prior weights are not available: the weights "
                                 "are not part of the model's sampling distribution (fit counts with trials=)")
        sims = fit.simulate(nsim, seed=rng)
        fitted = fit.fittedvalues
    observed = pd.Series(np.asarray(design.y, dtype=float), index=design.row_index)
    sims_values = sims.to_numpy()
    if getattr(getattr(fit, "spec", None), "proportion", False):
        # proportions with weights: the design holds successes out of trials; simulate gives proportions
        sims_values = np.rint(sims_values * np.asarray(design.trials, dtype=float)[:, None])
    # a fit with na_action="exclude" pads its per-row values with the dropped rows (NaN): keep the fitted rows
    fitted_values = fitted.loc[design.row_index] if len(fitted) != len(observed) else fitted
    return from_simulations(sims_values, observed, fitted_values.to_numpy(), rng)
