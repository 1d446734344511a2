"""Inputs of the DHARMa reference (from the repository root: .venv/bin/python tests/data/dharma/make_simulations.py).

Each case is a fitted model's simulations from glmmteach.simulated_residuals (seed 2026), written as
<case>.csv.gz: columns observed, fitted, sim_1 ... sim_nsim. make_reference.R feeds the same matrix to DHARMa's
createDHARMa and writes reference.json; tests/test_simulated_residuals.py compares.
"""

from pathlib import Path

import numpy as np
import pandas as pd

import glmmteach as gt
from glmmteach import datasets
from glmmteach.residuals import simulated_residuals

HERE = Path(__file__).parent
NSIM = 100


def write(name: str, observed: np.ndarray, fitted: np.ndarray, sims: np.ndarray) -> None:
    frame = pd.DataFrame({"observed": observed, "fitted": fitted})
    frame = pd.concat([frame, pd.DataFrame(sims, columns=[f"sim_{k + 1}" for k in range(sims.shape[1])])], axis=1)
    frame.to_csv(HERE / f"{name}.csv.gz", index=False, float_format="%.17g")


def main() -> None:
    grouse = datasets.load_grouseticks()
    fits = {
        "grouseticks_poisson": gt.glmer("TICKS ~ factor(YEAR) + cHEIGHT + (1 | BROOD)", grouse, "poisson"),
        "crossover_binomial": gt.glmer("outcome ~ factor(trt) + factor(period) + (1 | ID)",
                                       datasets.load_crossover(), "binomial", nAGQ=25),
        "glm_small_poisson": gt.glm("TICKS ~ cHEIGHT", grouse.head(60), "poisson"),
    }
    for name, fit in fits.items():
        res = simulated_residuals(fit, NSIM, seed=2026)
        write(name, res.observed, res.fitted, res.simulated)
    # a continuous response: no ties, so the residuals are the empirical CDF itself, without randomisation
    rng = np.random.default_rng(2026)
    write("continuous", rng.normal(size=50), np.zeros(50), rng.normal(size=(50, 40)))


if __name__ == "__main__":
    main()
