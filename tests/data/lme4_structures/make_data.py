"""Simulate the data sets behind the general random-effects structure references (issue 9).

Each data set has its own ``numpy.random.default_rng(seed)``, so re-running this script reproduces
every CSV byte for byte. ``make_reference.R`` fits them (and two data sets that are not simulated:
the Ohio lung-cancer data shipped in ``data/ohio_cancer.csv`` and lme4's ``cbpp``, which it writes
to ``cbpp.csv``) with lme4 and MASS and writes ``reference.json``.

Run from anywhere:  python tests/data/lme4_structures/make_data.py
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.special import expit

OUT_DIR = Path(__file__).resolve().parent


def _respond(rng: np.random.Generator, eta: np.ndarray, family: str, shape: float | None = None) -> np.ndarray:
    if family == "binary":
        return rng.binomial(1, expit(eta))
    if family == "poisson":
        return rng.poisson(np.exp(eta))
    assert shape is not None  # negative binomial (NB2): a gamma-mixed Poisson, Var = mu + mu^2 / shape
    return rng.poisson(rng.gamma(shape, np.exp(eta) / shape))


def _x(rng: np.random.Generator, n: int) -> np.ndarray:
    return np.round(rng.standard_normal(n), 3)


def crossed(seed: int, n_a: int, n_b: int, keep: float, sd_a: float, sd_b: float, beta: tuple[float, float],
            family: str) -> pd.DataFrame:
    """Two crossed factors: each (a, b) cell present with probability ``keep``, one row per cell."""
    rng = np.random.default_rng(seed)
    a, b = (grid.ravel() + 1 for grid in np.meshgrid(np.arange(n_a), np.arange(n_b), indexing="ij"))
    present = rng.uniform(size=a.size) < keep
    a, b = a[present], b[present]
    x = _x(rng, a.size)
    u_a, u_b = sd_a * rng.standard_normal(n_a), sd_b * rng.standard_normal(n_b)
    eta = beta[0] + beta[1] * x + u_a[a - 1] + u_b[b - 1]
    return pd.DataFrame({"a": a, "b": b, "x": x, "y": _respond(rng, eta, family)})


def crossed_three(seed: int) -> pd.DataFrame:
    """Three crossed factors (20, 15 and 5 levels), 500 rows with random level combinations, Poisson."""
    rng = np.random.default_rng(seed)
    levels = {"a": 20, "b": 15, "c": 5}
    sds = {"a": 0.5, "b": 0.3, "c": 0.4}
    n = 500
    codes = {k: rng.integers(1, m + 1, size=n) for k, m in levels.items()}
    x = _x(rng, n)
    eta = 0.3 + 0.4 * x
    for k, m in levels.items():
        eta = eta + (sds[k] * rng.standard_normal(m))[codes[k] - 1]
    return pd.DataFrame(codes | {"x": x, "y": _respond(rng, eta, "poisson")})


def crossed_slope(seed: int) -> pd.DataFrame:
    """Subjects (a, 30) crossed with items (b, 15), one row each; correlated random slope of x by subject."""
    rng = np.random.default_rng(seed)
    a, b = (grid.ravel() + 1 for grid in np.meshgrid(np.arange(30), np.arange(15), indexing="ij"))
    x = _x(rng, a.size)
    sd0, sd1, corr = 0.5, 0.3, 0.4
    cov = np.array([[sd0**2, corr * sd0 * sd1], [corr * sd0 * sd1, sd1**2]])
    u = rng.standard_normal((30, 2)) @ np.linalg.cholesky(cov).T
    u_b = 0.4 * rng.standard_normal(15)
    eta = 0.5 + 0.3 * x + u[a - 1, 0] + u[a - 1, 1] * x + u_b[b - 1]
    return pd.DataFrame({"a": a, "b": b, "x": x, "y": _respond(rng, eta, "poisson")})


def nested(seed: int, family: str) -> pd.DataFrame:
    """Pupils (8-15 per class) in 4 classes per school in 25 schools; class labelled 1-4 within school."""
    rng = np.random.default_rng(seed)
    n_school, n_class = 25, 4
    sizes = rng.integers(8, 16, size=n_school * n_class)
    cls_global = np.repeat(np.arange(n_school * n_class), sizes)
    school = cls_global // n_class + 1
    cls = cls_global % n_class + 1
    x = _x(rng, cls_global.size)
    u_school = 0.6 * rng.standard_normal(n_school)
    u_class = 0.5 * rng.standard_normal(n_school * n_class)
    beta = (-0.2, 0.7) if family == "binary" else (0.4, 0.3)
    eta = beta[0] + beta[1] * x + u_school[school - 1] + u_class[cls_global]
    return pd.DataFrame({"school": school, "class": cls, "x": x, "y": _respond(rng, eta, family)})


def interaction(seed: int) -> pd.DataFrame:
    """Factors a (8 levels) and b (6 levels), 5 rows per (a, b) cell, a Poisson effect per cell and per a."""
    rng = np.random.default_rng(seed)
    a, b = (grid.ravel() + 1 for grid in np.meshgrid(np.arange(8), np.arange(6), indexing="ij"))
    a, b = np.repeat(a, 5), np.repeat(b, 5)
    x = _x(rng, a.size)
    u_a = 0.4 * rng.standard_normal(8)
    u_ab = 0.5 * rng.standard_normal(48)
    eta = 0.2 + 0.4 * x + u_a[a - 1] + u_ab[(a - 1) * 6 + (b - 1)]
    return pd.DataFrame({"a": a, "b": b, "x": x, "y": _respond(rng, eta, "poisson")})


def vector_and_scalar(seed: int) -> pd.DataFrame:
    """60 groups x 10 rows: correlated (intercept, x) effects and an independent z slope, same factor g."""
    rng = np.random.default_rng(seed)
    g = np.repeat(np.arange(60), 10)
    x, z = _x(rng, g.size), _x(rng, g.size)
    sd0, sd1, corr, sd_z = 0.5, 0.3, -0.3, 0.25
    cov = np.array([[sd0**2, corr * sd0 * sd1], [corr * sd0 * sd1, sd1**2]])
    u = rng.standard_normal((60, 2)) @ np.linalg.cholesky(cov).T
    u_z = sd_z * rng.standard_normal(60)
    eta = 0.4 + 0.3 * x - 0.2 * z + u[g, 0] + u[g, 1] * x + u_z[g] * z
    return pd.DataFrame({"g": g + 1, "x": x, "z": z, "y": _respond(rng, eta, "poisson")})


def negative_binomial(seed: int, n_groups: int, rows: tuple[int, int], shape: float, sd: float,
                      beta: tuple[float, float], exposure: bool) -> pd.DataFrame:
    """NB2 counts with a random intercept per group (and optionally a log-exposure offset)."""
    rng = np.random.default_rng(seed)
    g = np.repeat(np.arange(n_groups), rng.integers(rows[0], rows[1] + 1, size=n_groups))
    x = _x(rng, g.size)
    eta = beta[0] + beta[1] * x + (sd * rng.standard_normal(n_groups))[g]
    columns: dict[str, np.ndarray] = {"g": g + 1, "x": x}
    if exposure:
        columns["logexpo"] = np.round(np.log(np.round(rng.uniform(0.5, 4.0, size=g.size), 2)), 6)
        eta = eta + columns["logexpo"]
    columns["y"] = _respond(rng, eta, "negative_binomial", shape)
    return pd.DataFrame(columns)


DATASETS: dict[str, Callable[[], pd.DataFrame]] = {
    "crossed_binary.csv": lambda: crossed(9_2026_001, 40, 25, 0.6, 1.0, 0.6, (-0.3, 0.8), "binary"),
    "crossed_poisson.csv": lambda: crossed(9_2026_002, 30, 20, 1.0, 0.5, 0.3, (0.5, 0.3), "poisson"),
    # True SD of b is 0. The seed is the first of 9_2026_003 + 1000 k at which lme4 puts b's SD on the
    # boundary (with 9_2026_003 itself it estimates 0.19; a singular reference is what this case is for).
    "crossed_singular.csv": lambda: crossed(9_2026_003 + 1000, 30, 10, 1.0, 0.8, 0.0, (0.2, 0.6), "binary"),
    "crossed_slope.csv": lambda: crossed_slope(9_2026_004),
    "crossed_three.csv": lambda: crossed_three(9_2026_005),
    "nested_binary.csv": lambda: nested(9_2026_006, "binary"),
    "nested_poisson.csv": lambda: nested(9_2026_007, "poisson"),
    "interaction.csv": lambda: interaction(9_2026_008),
    "vector_scalar.csv": lambda: vector_and_scalar(9_2026_009),
    "nb_sim1.csv": lambda: negative_binomial(9_2026_010, 50, (8, 8), 2.0, 0.5, (1.0, 0.4), exposure=False),
    "nb_sim2.csv": lambda: negative_binomial(9_2026_011, 30, (5, 20), 0.8, 0.7, (0.2, -0.3), exposure=True),
}


def main() -> None:
    for file, make in DATASETS.items():
        frame = make()
        frame.to_csv(OUT_DIR / file, index=False, lineterminator="\n")
        print(f"{file}: {len(frame)} rows, mean y {frame['y'].mean():.3f}")


if __name__ == "__main__":
    main()
