"""Generate the synthetic data sets behind the extra lme4 parity cases.

Each data set is simulated from a GLMM with known parameters, using its own
``numpy.random.default_rng(seed)``, so re-running this script reproduces every
CSV byte for byte.  ``make_reference.R`` then fits them with lme4 and writes
``reference.json``; ``truth.json`` records the parameters used to simulate.

The true parameters are chosen so that each fit is well determined (random-effect
SDs clearly away from zero, enough groups), except ``singular_binary.csv``, whose
true random-intercept SD is 0 so that lme4 ends on the boundary (theta = 0).

Run from anywhere:  python tests/data/lme4_extra/make_data.py
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.special import expit, ndtr

OUT_DIR = Path(__file__).resolve().parent


@dataclass(frozen=True)
class Spec:
    """Simulation settings for one data set (linear predictor b0 + b1*x + u0 + u1*x)."""

    file: str
    seed: int
    n_groups: int
    rows_per_group: int
    family: str  # "binomial" or "poisson"
    link: str  # inverse link used to simulate: logit, probit, log
    beta: tuple[float, float]  # intercept, slope of x
    sd: tuple[float, float]  # SDs of the random intercept and random slope
    corr: float = 0.0  # correlation of random intercept and slope
    max_trials: int = 1  # binomial: trials drawn uniformly from 1..max_trials
    exposure: tuple[float, float] | None = None  # poisson: uniform exposure range
    string_groups: bool = False  # label groups "g01", ... instead of 1, 2, ...
    notes: str = ""


SPECS: tuple[Spec, ...] = (
    Spec(
        file="binom_trials.csv",
        seed=20261,
        n_groups=40,
        rows_per_group=6,
        family="binomial",
        link="logit",
        beta=(-0.4, 0.8),
        sd=(0.7, 0.0),
        max_trials=20,
        notes="successes y out of n trials, random intercept",
    ),
    Spec(
        file="binary_probit.csv",
        seed=20262,
        n_groups=60,
        rows_per_group=6,
        family="binomial",
        link="probit",
        beta=(0.3, 0.6),
        sd=(0.8, 0.0),
        notes="binary, probit random intercept; also fitted with cloglog",
    ),
    Spec(
        file="logit_corr_slope.csv",
        seed=20263,
        n_groups=60,
        rows_per_group=8,
        family="binomial",
        link="logit",
        beta=(-0.2, 0.9),
        sd=(1.0, 0.7),
        corr=0.5,
        notes="binary, correlated random intercept and slope",
    ),
    Spec(
        file="logit_uncorr_slope.csv",
        seed=20264,
        n_groups=60,
        rows_per_group=8,
        family="binomial",
        link="logit",
        beta=(0.1, -0.7),
        sd=(0.9, 0.8),
        corr=0.0,
        notes="binary, independent random intercept and slope",
    ),
    Spec(
        file="poisson_offset_slope.csv",
        seed=20265,
        n_groups=40,
        rows_per_group=8,
        family="poisson",
        link="log",
        beta=(0.2, 0.4),
        sd=(0.5, 0.35),
        corr=-0.4,
        exposure=(0.5, 4.0),
        string_groups=True,
        notes="counts with exposure offset, correlated random slope, string group labels",
    ),
    Spec(
        file="binom_trials_agq.csv",
        seed=20266,
        n_groups=80,
        rows_per_group=3,
        family="binomial",
        link="logit",
        beta=(-1.0, 0.5),
        sd=(1.2, 0.0),
        max_trials=20,
        notes="few rows per group, for adaptive quadrature (nAGQ = 10)",
    ),
    Spec(
        file="poisson_agq.csv",
        seed=20267,
        n_groups=80,
        rows_per_group=3,
        family="poisson",
        link="log",
        beta=(-0.5, 0.3),
        sd=(1.0, 0.0),
        exposure=(0.5, 2.0),
        notes="low counts, few rows per group, for nAGQ = 10",
    ),
    Spec(
        file="singular_binary.csv",
        seed=20268,
        n_groups=30,
        rows_per_group=8,
        family="binomial",
        link="logit",
        beta=(0.0, 1.0),
        sd=(0.0, 0.0),
        notes="true random-intercept SD 0: the fit should be singular",
    ),
)


def simulate(spec: Spec) -> pd.DataFrame:
    """Draw one data set; the draw order is fixed so the output depends only on the spec."""
    rng = np.random.default_rng(spec.seed)
    n_rows = spec.n_groups * spec.rows_per_group
    group = np.repeat(np.arange(spec.n_groups), spec.rows_per_group)
    # Round the covariate so the CSV is readable and R and Python parse identical doubles.
    x = np.round(rng.standard_normal(n_rows), 3)

    sd0, sd1 = spec.sd
    cov = np.array([[sd0**2, spec.corr * sd0 * sd1], [spec.corr * sd0 * sd1, sd1**2]])
    # Cholesky would fail for SD 0; draw independent normals and scale by a symmetric root.
    eigval, eigvec = np.linalg.eigh(cov)
    root = eigvec * np.sqrt(np.clip(eigval, 0.0, None))
    effects = rng.standard_normal((spec.n_groups, 2)) @ root.T
    eta = spec.beta[0] + spec.beta[1] * x + effects[group, 0] + effects[group, 1] * x

    columns: dict[str, np.ndarray] = {}
    if spec.string_groups:
        columns["g"] = np.array([f"g{k + 1:02d}" for k in group])
    else:
        columns["g"] = group + 1
    columns["x"] = x

    if spec.family == "binomial":
        prob = expit(eta) if spec.link == "logit" else ndtr(eta)
        trials = rng.integers(1, spec.max_trials + 1, size=n_rows)
        columns["y"] = rng.binomial(trials, prob)
        if spec.max_trials > 1:
            columns["n"] = trials
    else:
        assert spec.exposure is not None
        exposure = np.round(rng.uniform(*spec.exposure, size=n_rows), 2)
        columns["expo"] = exposure
        columns["logexpo"] = np.log(exposure)
        columns["y"] = rng.poisson(exposure * np.exp(eta))
    return pd.DataFrame(columns)


def main() -> None:
    truth = {}
    for spec in SPECS:
        frame = simulate(spec)
        # float_format=None writes the shortest repr that round-trips every double.
        frame.to_csv(OUT_DIR / spec.file, index=False, lineterminator="\n")
        truth[spec.file] = asdict(spec) | {"nrows": len(frame)}
        print(f"{spec.file}: {len(frame)} rows, mean y {frame['y'].mean():.3f}")
    (OUT_DIR / "truth.json").write_text(json.dumps(truth, indent=2) + "\n")


if __name__ == "__main__":
    main()
