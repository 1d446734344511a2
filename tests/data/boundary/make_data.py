"""Simulated data sets on which glmer once stopped at a wrong boundary (a variance parameter at 0
while lme4 found it clearly positive), plus two genuinely singular ones. 40 groups x 8 rows.

Run from this folder: ``python make_data.py`` then ``Rscript make_reference.R``.
"""

import numpy as np
import pandas as pd

# name: (kind, seed). Kinds: Poisson (1 + x || g) with SDs (0.4, 0.3) or small (0.2, 0.1); binary
# (1 + x | g) with SDs (0.8, 0.6), correlation 0.42; scalar (1 | g) Poisson (SD 0.25) and binary (0.5).
CASES = {
    "pois_uncorr_0": ("pois_uncorr", 0),  # optimiser stopped early at an interior point
    "pois_uncorr_1": ("pois_uncorr", 1),  # slope SD at 0, lme4 0.19
    "pois_small_13": ("pois_small", 13),  # both SDs at 0, 12.9 log-likelihood units below lme4
    "bin_corr_19": ("bin_corr", 19),  # slope diagonal at 0
    "pois_scalar_12": ("pois_scalar", 12),  # scalar SD at 0, lme4 0.11
    "bin_scalar_22": ("bin_scalar", 22),  # scalar SD at 0, lme4 0.099
    "bin_scalar_7": ("bin_scalar", 7),  # genuinely singular (lme4: SD 0)
    "pois_small_0": ("pois_small", 0),  # genuinely singular slope SD (lme4: 0)
}


def make(kind: str, seed: int, n_groups: int = 40, size: int = 8) -> pd.DataFrame:
    rng = np.random.default_rng(1000 + seed)
    g = np.repeat(np.arange(n_groups), size)
    x = rng.normal(size=n_groups * size)
    if kind.startswith("pois"):
        sd0, sd1 = (0.2, 0.1) if "small" in kind else (0.4, 0.3)
        b0 = rng.normal(0, sd0, n_groups)
        b1 = rng.normal(0, sd1, n_groups)
        if "scalar" in kind:
            b0, b1 = rng.normal(0, 0.25, n_groups), np.zeros(n_groups)
        y = rng.poisson(np.exp(0.5 + 0.3 * x + b0[g] + b1[g] * x))
    else:
        if "scalar" in kind:
            b0, b1 = rng.normal(0, 0.5, n_groups), np.zeros(n_groups)
        else:
            L = np.linalg.cholesky(np.array([[0.64, 0.2], [0.2, 0.36]]))
            b = rng.normal(size=(n_groups, 2)) @ L.T
            b0, b1 = b[:, 0], b[:, 1]
        y = rng.binomial(1, 1 / (1 + np.exp(-(-0.3 + 0.5 * x + b0[g] + b1[g] * x))))
    return pd.DataFrame({"y": y, "x": x, "g": [f"g{i:02d}" for i in g]})


if __name__ == "__main__":
    for name, (kind, seed) in CASES.items():
        make(kind, seed).to_csv(f"{name}.csv", index=False)
