"""Simulate the data behind the several-term negative binomial GLMM references (``make_multi_reference.R``).

NB2 counts (a gamma-mixed Poisson, Var = mu + mu^2 / shape) with crossed or nested random intercepts.
Each data set has its own ``numpy.random.default_rng(seed)``, so re-running this script reproduces every
CSV byte for byte. The third reference case, lme4's ``grouseticks``, is the repository's
``data/grouseticks.csv``.

Run from anywhere:  python tests/data/negative_binomial/make_multi_data.py
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

OUT_DIR = Path(__file__).resolve().parent


def _nb2(rng: np.random.Generator, eta: np.ndarray, shape: float) -> np.ndarray:
    return rng.poisson(rng.gamma(shape, np.exp(eta) / shape))


def crossed(seed: int) -> pd.DataFrame:
    """Factors a (30 levels) and b (20 levels) crossed, 70 % of the cells present with 1-2 rows each; shape 1.5."""
    rng = np.random.default_rng(seed)
    a, b = (grid.ravel() + 1 for grid in np.meshgrid(np.arange(30), np.arange(20), indexing="ij"))
    present = rng.uniform(size=a.size) < 0.7
    reps = rng.integers(1, 3, size=int(present.sum()))
    a, b = np.repeat(a[present], reps), np.repeat(b[present], reps)
    x = np.round(rng.standard_normal(a.size), 3)
    eta = 0.8 + 0.4 * x + (0.5 * rng.standard_normal(30))[a - 1] + (0.3 * rng.standard_normal(20))[b - 1]
    return pd.DataFrame({"a": a, "b": b, "x": x, "y": _nb2(rng, eta, 1.5)})


def nested(seed: int) -> pd.DataFrame:
    """Pupils (5-12 per class) in 3 classes (labelled 1-3 within school) in 30 schools; shape 3."""
    rng = np.random.default_rng(seed)
    n_school, n_class = 30, 3
    sizes = rng.integers(5, 13, size=n_school * n_class)
    cls_global = np.repeat(np.arange(n_school * n_class), sizes)
    school, cls = cls_global // n_class + 1, cls_global % n_class + 1
    x = np.round(rng.standard_normal(cls_global.size), 3)
    eta = (0.3 - 0.3 * x + (0.6 * rng.standard_normal(n_school))[school - 1]
           + (0.4 * rng.standard_normal(n_school * n_class))[cls_global])
    return pd.DataFrame({"school": school, "class": cls, "x": x, "y": _nb2(rng, eta, 3.0)})


DATASETS: dict[str, Callable[[], pd.DataFrame]] = {
    "nb_crossed.csv": lambda: crossed(17_2026_001),
    "nb_nested.csv": lambda: nested(17_2026_002),
}


def main() -> None:
    for file, make in DATASETS.items():
        frame = make()
        frame.to_csv(OUT_DIR / file, index=False, lineterminator="\n")
        print(f"{file}: {len(frame)} rows, mean y {frame['y'].mean():.3f}, var y {frame['y'].var():.3f}")


if __name__ == "__main__":
    main()
