r"""The parametric bootstrap of a fitted model (lme4's ``bootMer``), on local processes or a Dask cluster.

One replicate simulates a response from the fitted model (new random effects, lme4's ``simulate``
default), fits the same model to it (:meth:`~glmmteach.GLMMResults.refit`) and applies a statistic
to the refit. Replicate :math:`i` draws its response from its own random stream, child :math:`i` of
``numpy.random.SeedSequence(seed).spawn(nsim)``: the replicates are the same numbers whether they run
in this process, in ``n_jobs`` local processes (joblib's loky backend) or on a
``dask.distributed.Client``, and they come back in replicate order.

A refit that raises an error or does not converge is a *failed* replicate: it is listed with its
reason in :attr:`BootstrapResult.failures` and left out of the intervals, which say on how many
replicates they rest. The intervals are those of R's ``boot.ci`` (as ``confint.merMod(method =
"boot")`` uses them), with :math:`t_0` the statistic of the fit and :math:`t^*_1, \dots, t^*_R` the
successful replicates:

- ``"perc"``: the :math:`\alpha/2` and :math:`1-\alpha/2` quantiles of :math:`t^*`, as the order
  statistic :math:`t^*_{((R+1)p)}`, interpolated on the normal-quantile scale when :math:`(R+1)p`
  is not whole (``boot``'s ``norm.inter``);
- ``"basic"``: :math:`2t_0 - q_{1-\alpha/2}` to :math:`2t_0 - q_{\alpha/2}` with the same quantiles;
- ``"norm"``: :math:`t_0 - b \mp z_{1-\alpha/2}\,s` with the bias :math:`b = \bar t^* - t_0` and
  :math:`s` the standard deviation of :math:`t^*`.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from scipy import special

from .exceptions import GlmmteachError, GlmmteachWarning, check_level

INTERVAL_TYPES = ("perc", "basic", "norm")
BLOCKS_PER_WORKER = 4  # several blocks per worker even out refits of unequal length


class ReplicateError(Exception):
    """Raised by a replicate job for a refit that must not count (the message is the reason)."""


# ---- the default statistic ---------------------------------------------------------------------------------
def covariance_parameters(fit: Any) -> pd.Series:
    """The random-effect SDs and correlations of a ``glmer`` fit in lme4's order and with the names of
    ``confint(fit, oldNames = FALSE)``: per term, the lower triangle of its covariance column by column
    (``sd_(Intercept)|g``, ``cor_x.(Intercept)|g``, ``sd_x|g``), a term named by its grouping factor. Should
    two terms give the same name, the ``Groups`` labels of :meth:`~glmmteach.GLMMResults.varcorr` (``g.1``)
    name them apart."""
    series = _covariance_parameters(fit, [t.group_name for t in fit.terms for _ in t.names])
    if series.index.has_duplicates:
        series = _covariance_parameters(fit, list(fit.varcorr()["Groups"]))
    return series


def _covariance_parameters(fit: Any, groups: list[str]) -> pd.Series:
    names, values, row = [], [], 0
    for term, T in zip(fit.terms, fit.Ts, strict=True):
        effects = list(term.names)
        cov = T @ T.T
        sd = np.sqrt(np.diag(cov))
        labels = groups[row:row + len(effects)]
        row += len(effects)
        for c, first in enumerate(effects):
            names.append(f"sd_{first}|{labels[c]}")
            values.append(sd[c])
            if not term.correlated:
                continue
            for a in range(c + 1, len(effects)):
                names.append(f"cor_{effects[a]}.{first}|{labels[c]}")
                # undefined with an SD of 0 (lme4's cov2cor gives NaN too): the intervals skip such values
                values.append(cov[a, c] / (sd[a] * sd[c]) if sd[a] > 0 and sd[c] > 0 else np.nan)
    return pd.Series(values, index=names, dtype=float)


def fixef_and_covariance(fit: Any) -> pd.Series:
    """The default statistic (lme4's ``confint(method = "boot")``): the covariance parameters of
    :func:`covariance_parameters`, then the fixed effects by name (a ``glm`` fit: its coefficients), then, for
    a negative binomial fit whose shape was estimated (and is estimated again in each refit), ``nb_theta``
    (lme4 leaves the shape out; named as the fit's attribute)."""
    parts = [fit.params.astype(float)]
    if hasattr(fit, "varcorr"):
        parts.insert(0, covariance_parameters(fit))
    if getattr(fit, "nb_shape", None) is not None:
        parts.append(pd.Series({"nb_theta": float(fit.nb_theta)}))
    return pd.concat(parts) if len(parts) > 1 else parts[0]


# ---- replicates: seeds, jobs and where they run -------------------------------------------------------------
def seed_sequence(seed: Any) -> np.random.SeedSequence:
    """``seed`` as the root of the replicates' streams: a non-negative integer, a ``SeedSequence``, a
    ``numpy.random.Generator`` (a root is drawn from it) or ``None`` (fresh entropy)."""
    if isinstance(seed, np.random.SeedSequence):
        return seed
    if isinstance(seed, np.random.Generator):
        return np.random.SeedSequence(seed.integers(0, 2**63, size=4).tolist())
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int | np.integer) or seed < 0):
        raise GlmmteachError(f"seed must be a non-negative whole number, a numpy SeedSequence or Generator, or "
                             f"None, got {seed!r}")
    return np.random.SeedSequence(None if seed is None else int(seed))


def _check_nsim(nsim: Any) -> int:
    if isinstance(nsim, bool) or not isinstance(nsim, int | np.integer) or nsim < 1:
        raise GlmmteachError(f"nsim must be a whole number >= 1, got {nsim!r}")
    return int(nsim)


def _check_workers(n_jobs: Any, client: Any) -> int:
    if isinstance(n_jobs, bool) or not isinstance(n_jobs, int | np.integer) or (n_jobs < 1 and n_jobs != -1):
        raise GlmmteachError(f"n_jobs must be a whole number >= 1 (local processes) or -1 (one per core), "
                             f"got {n_jobs!r}")
    if client is not None:
        if n_jobs != 1:
            raise GlmmteachError("give either client= (a Dask cluster runs the replicates) or n_jobs= (local "
                                 f"processes), not both; got n_jobs={n_jobs!r} with a client")
        if not (hasattr(client, "map") and hasattr(client, "gather") and hasattr(client, "scatter")):
            raise GlmmteachError(f"client must be a dask.distributed.Client, got {type(client).__name__}")
    return int(n_jobs)


def _one_replicate(job: Any, seq: np.random.SeedSequence) -> tuple[np.ndarray | None, str | None]:
    rng = np.random.default_rng(seq)
    try:
        response = job.source.simulate(1, seed=rng).iloc[:, 0]
        values = np.asarray(job(response), dtype=float).reshape(-1)
    except ReplicateError as failure:
        return None, str(failure)
    except GlmmteachError as error:  # e.g. a simulated binary response with only zeros
        return None, f"refit refused: {error}"
    except Exception as error:  # noqa: BLE001 - counted and reported with its reason, never dropped silently
        return None, f"{type(error).__name__}: {error}"
    if len(values) != job.size:
        return None, f"the statistic gave {len(values)} values, the fit's statistic {job.size}"
    return values, None


def run_block(job: Any, block: Sequence[tuple[int, np.random.SeedSequence]]) -> list[tuple[int, Any, Any]]:
    """Run the replicates of ``block`` (pairs of replicate index and stream) in this process: BLAS on one
    thread (the workers already share the cores), the refits' warnings not shown (their failures are
    counted instead)."""
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1, user_api="blas"), warnings.catch_warnings():
        warnings.simplefilter("ignore", GlmmteachWarning)
        warnings.simplefilter("ignore", RuntimeWarning)
        return [(index, *_one_replicate(job, seq)) for index, seq in block]


def _blocks(seqs: list[np.random.SeedSequence], workers: int) -> list[list[tuple[int, np.random.SeedSequence]]]:
    size = max(1, math.ceil(len(seqs) / (workers * BLOCKS_PER_WORKER)))
    indexed = list(enumerate(seqs))
    return [indexed[k:k + size] for k in range(0, len(indexed), size)]


def _run_local(job: Any, blocks: list, n_jobs: int) -> list:
    try:
        from joblib import Parallel, delayed
    except ImportError as error:
        raise GlmmteachError("n_jobs > 1 needs joblib: pip install 'glmmteach[parallel]'") from error
    return Parallel(n_jobs=n_jobs, backend="loky")(delayed(run_block)(job, block) for block in blocks)


def _run_dask(job: Any, blocks: list, client: Any) -> list:
    shared = client.scatter(job, broadcast=True)  # the fit travels to each worker once
    futures = client.map(run_block, [shared] * len(blocks), blocks, pure=False)
    return client.gather(futures)


@dataclass
class Replicates:
    """The raw outcome of :func:`run_replicates`: ``values`` (nsim × p, NaN rows for the failed replicates),
    ``succeeded`` (which rows are replicates), ``failures`` (columns ``replicate``, ``reason``) and the root
    stream's ``entropy``."""

    values: np.ndarray
    succeeded: np.ndarray
    failures: pd.DataFrame
    entropy: Any


def run_replicates(job: Any, nsim: int, seed: Any = None, n_jobs: int = 1, client: Any = None) -> Replicates:
    """Run ``nsim`` replicates of ``job`` (an object with ``source``, the fit to simulate from, ``size`` and
    ``names`` of its statistic, and ``job(response)`` giving the statistic of one simulated response or
    raising :class:`ReplicateError`): here, in ``n_jobs`` loky processes or on the Dask ``client``."""
    nsim = _check_nsim(nsim)
    n_jobs = _check_workers(n_jobs, client)
    root = seed_sequence(seed)
    seqs = root.spawn(nsim)
    if client is not None:
        workers = max(1, len(client.scheduler_info().get("workers", {})))
        results = _run_dask(job, _blocks(seqs, workers), client)
    elif n_jobs == 1:
        results = [run_block(job, [(i, s) for i, s in enumerate(seqs)])]
    else:
        workers = n_jobs if n_jobs > 0 else max(1, _cpu_count())
        results = _run_local(job, _blocks(seqs, workers), n_jobs)
    values = np.full((nsim, job.size), np.nan)
    succeeded = np.zeros(nsim, dtype=bool)
    failed: list[tuple[int, str]] = []
    for block in results:
        for index, row, reason in block:
            if reason is None:
                values[index], succeeded[index] = row, True
            else:
                failed.append((index, reason))
    failures = pd.DataFrame(sorted(failed), columns=["replicate", "reason"])
    return Replicates(values, succeeded, failures, root.entropy)


def _cpu_count() -> int:
    import os

    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


# ---- intervals (R's boot.ci) ---------------------------------------------------------------------------------
def _norm_inter(t: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """``boot:::norm.inter``: quantiles of the sorted replicates ``t`` at ``alpha``, the order statistic
    ``(R+1) alpha`` when it is whole, else interpolated between its neighbours on the normal-quantile scale
    (the extreme order statistics beyond the ends)."""
    t = np.sort(t)
    R = len(t)
    rk = (R + 1) * alpha
    k = np.trunc(rk).astype(int)
    out = np.empty(len(alpha))
    for j in range(len(alpha)):  # two entries per parameter: no hot path
        if k[j] == rk[j] and 0 < k[j] <= R:
            out[j] = t[k[j] - 1]
        elif k[j] <= 0:
            out[j] = t[0]
        elif k[j] >= R:
            out[j] = t[R - 1]
        else:
            z, z_lo, z_hi = special.ndtri([alpha[j], k[j] / (R + 1), (k[j] + 1) / (R + 1)])
            out[j] = t[k[j] - 1] + (z - z_lo) / (z_hi - z_lo) * (t[k[j]] - t[k[j] - 1])
    return out


def boot_interval(t: np.ndarray, t0: float, type: str = "perc", alpha: float = 0.05) -> tuple[float, float]:
    """One parameter's ``boot.ci(..., type = type, conf = 1 - alpha)`` from its replicates ``t``."""
    t = np.asarray(t, dtype=float)
    t = t[np.isfinite(t)]
    ends = np.array([alpha / 2, 1 - alpha / 2])
    if type == "perc":
        lo, hi = _norm_inter(t, ends)
    elif type == "basic":
        q_hi, q_lo = _norm_inter(t, ends[::-1])
        lo, hi = 2 * t0 - q_hi, 2 * t0 - q_lo
    elif type == "norm":
        bias = t.mean() - t0
        half = np.sqrt(t.var(ddof=1)) * special.ndtri(1 - alpha / 2)
        lo, hi = t0 - bias - half, t0 - bias + half
    else:
        raise GlmmteachError(f"type must be one of {', '.join(map(repr, INTERVAL_TYPES))}, got {type!r}")
    return float(lo), float(hi)


def _check_alpha(alpha: Any) -> float:
    return check_level("alpha", alpha, " (0.05 for 95% intervals)")


# ---- the bootstrap of a fit -----------------------------------------------------------------------------------
@dataclass
class BootstrapResult:
    """A parametric bootstrap (:func:`bootstrap`): ``observed`` is the statistic of the fit (:math:`t_0`),
    ``replicates`` the statistics of the successful replicates (one row each, indexed by replicate number),
    ``failures`` the failed ones with their reasons (columns ``replicate``, ``reason``); ``nsim``
    replicates were run from the root ``entropy`` (``bootstrap(..., seed=entropy)`` runs them again)."""

    observed: pd.Series
    replicates: pd.DataFrame
    failures: pd.DataFrame
    nsim: int
    entropy: Any
    formula: str = field(default="")

    @property
    def n_failed(self) -> int:
        return len(self.failures)

    @property
    def n_success(self) -> int:
        return len(self.replicates)

    def conf_int(self, type: str = "perc", alpha: float = 0.05, parm: Sequence[str] | str | None = None,
                 ) -> pd.DataFrame:
        """Intervals from the successful replicates (R's ``boot.ci``, ``type`` ``"perc"``, ``"basic"`` or
        ``"norm"``), one row per statistic (or per name in ``parm``), columns ``lower`` and ``upper``; the
        frame's ``attrs`` say how many replicates they rest on."""
        alpha = _check_alpha(alpha)
        if type not in INTERVAL_TYPES:
            raise GlmmteachError(f"type must be one of {', '.join(map(repr, INTERVAL_TYPES))}, got {type!r}")
        names = list(self.observed.index) if parm is None else ([parm] if isinstance(parm, str) else list(parm))
        unknown = [p for p in names if p not in self.observed.index]
        if unknown:
            raise GlmmteachError(f"parm names {unknown[0]!r}, which is not a bootstrapped statistic; they are "
                                 f"{', '.join(map(repr, self.observed.index))}")
        if self.n_success < 2:
            raise GlmmteachError(f"only {self.n_success} of {self.nsim} replicates succeeded: too few for an "
                                 "interval (see .failures for the reasons)")
        finite = np.isfinite(self.replicates[names]).sum()
        for p in names:
            if finite[p] < self.n_success:
                warnings.warn(f"{p} is not finite (undefined) in {self.n_success - finite[p]} of the {self.n_success} "
                              f"successful replicates: its interval rests on the other {finite[p]}",
                              GlmmteachWarning, stacklevel=2)
            if finite[p] < 2:
                raise GlmmteachError(f"{p} is finite in {finite[p]} replicates: too few for an interval")
        rows = [boot_interval(self.replicates[p].to_numpy(), float(self.observed[p]), type, alpha) for p in names]
        table = pd.DataFrame(rows, index=pd.Index(names), columns=["lower", "upper"])
        table.attrs.update({"method": f"parametric bootstrap ({type})", "n_replicates": self.n_success,
                            "n_failed": self.n_failed, "n_finite": finite.to_dict()})
        return table

    def table(self) -> pd.DataFrame:
        """``print(bootMer(...))``'s table: the statistic (``original``), the bootstrap ``bias`` (mean of the
        replicates minus the original) and ``std. error`` (their standard deviation)."""
        t = self.replicates
        return pd.DataFrame({"original": self.observed, "bias": t.mean() - self.observed,
                             "std. error": t.std(ddof=1)})

    def __str__(self) -> str:
        head = [f"Parametric bootstrap of {self.formula}" if self.formula else "Parametric bootstrap",
                f"{self.n_success} of {self.nsim} replicates succeeded"
                + (f"; {self.n_failed} failed (see .failures):" if self.n_failed else "")]
        if self.n_failed:
            counts = self.failures["reason"].str.slice(0, 100).value_counts()
            head += [f"  {n} x {reason}" for reason, n in counts.items()]
        return "\n".join([*head, "", self.table().to_string()])

    __repr__ = __str__


class RefitStatistic:
    """The job of :func:`bootstrap`: refit ``fit`` to a simulated response and apply ``statistic``."""

    def __init__(self, fit: Any, statistic: Callable[[Any], Any], names: list[str]):
        self.source = fit
        self.statistic = statistic
        self.names = names
        self.size = len(names)

    def __call__(self, response: pd.Series) -> Any:
        refit = self.source.refit(response)
        if not refit.converged:
            reasons = "; ".join(getattr(refit, "warnings", [])) or "no reason given"
            raise ReplicateError(f"not converged: {reasons}")
        return np.asarray(self.statistic(refit), dtype=float)


def _statistic_names(value: Any) -> tuple[np.ndarray, list[str]]:
    if isinstance(value, pd.Series):
        return value.to_numpy(dtype=float), [str(k) for k in value.index]
    array = np.asarray(value, dtype=float).reshape(-1)
    return array, [f"t{k + 1}" for k in range(len(array))]


def bootstrap(fit: Any, statistic: Callable[[Any], Any] | None = None, nsim: int = 1000, seed: Any = None,
              n_jobs: int = 1, client: Any = None) -> BootstrapResult:
    """Parametric bootstrap of a ``glmer`` (or ``glm``) fit, as lme4's ``bootMer(fit, FUN, nsim, seed)``.

    Each of ``nsim`` replicates simulates a response from ``fit`` (:meth:`~glmmteach.GLMMResults.simulate`,
    new random effects), refits the model (:meth:`~glmmteach.GLMMResults.refit`) and applies ``statistic``
    to the refit: a function of a fit returning a number, an array or a ``pandas.Series`` (its index names
    the values). The default is :func:`fixef_and_covariance`: the random-effect SDs and correlations, then
    the fixed effects. ``seed`` (an integer, ``SeedSequence``, ``Generator`` or ``None``) fixes the
    replicates, the same whatever ``n_jobs`` (local processes; -1: one per core) or ``client`` (a
    ``dask.distributed.Client``: the replicates run on its cluster). Refits that fail or do not converge
    are listed in ``.failures`` and left out of ``.conf_int()``.

    >>> boot = glmmteach.bootstrap(fit, nsim=1000, seed=1, n_jobs=2)   # doctest: +SKIP
    >>> boot.conf_int(type="perc")                                      # doctest: +SKIP
    """
    statistic = fixef_and_covariance if statistic is None else statistic
    if not callable(statistic):
        raise GlmmteachError(f"statistic must be a function of a fitted model, got {type(statistic).__name__}")
    if not (hasattr(fit, "simulate") and hasattr(fit, "refit")):
        raise GlmmteachError(f"fit must be a glm or glmer fit, got {type(fit).__name__}")
    observed, names = _statistic_names(statistic(fit))
    if len(names) == 0:
        raise GlmmteachError("the statistic of the fit has no values: nothing to bootstrap")
    job = RefitStatistic(fit, statistic, names)
    result = run_replicates(job, nsim, seed, n_jobs, client)
    ok = result.succeeded
    replicates = pd.DataFrame(result.values[ok], index=pd.Index(np.flatnonzero(ok), name="replicate"),
                              columns=names)
    if not ok.any():
        raise GlmmteachError(f"all {len(ok)} bootstrap replicates failed; the first: "
                             f"{result.failures['reason'].iloc[0]}")
    return BootstrapResult(pd.Series(observed, index=names, name="original"), replicates, result.failures,
                           len(ok), result.entropy, str(getattr(fit, "formula", "")))


def boot_conf_int(fit: Any, alpha: float = 0.05, parm: Sequence[str] | str | None = None, nsim: int = 1000,
                  seed: Any = None, type: str = "perc", n_jobs: int = 1, client: Any = None) -> pd.DataFrame:
    """``confint(fit, method = "boot", boot.type = type)``: :func:`bootstrap` with the default statistic,
    then :meth:`BootstrapResult.conf_int` (rows in lme4's order: SDs and correlations, then fixed effects)."""
    _check_alpha(alpha)
    if type not in INTERVAL_TYPES:
        raise GlmmteachError(f"type must be one of {', '.join(map(repr, INTERVAL_TYPES))}, got {type!r}")
    return bootstrap(fit, None, nsim, seed, n_jobs, client).conf_int(type, alpha, parm)
