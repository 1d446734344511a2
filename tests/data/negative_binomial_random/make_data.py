"""Simulate the randomised negative binomial GLMM data sets (issue 15 item 1) behind ``make_reference.R``.

50 data sets: NB2 counts (a gamma-mixed Poisson, Var = mu + mu^2 / shape) with true shape 0.3 to 100, and
Poisson counts (shape infinity), with a random intercept ``(1 | g)``, crossed intercepts ``(1 | a) + (1 | b)``
or a correlated random slope ``(1 + x | g)``, half of them with an offset ``log(expo)``, 5 to 500 groups.
Among the Poisson-generated sets some have a large random-intercept SD: the random effect then takes the
variation that MASS's theta.ml on the Poisson GLMM's means calls overdispersion (issue 15's failing case).
The last two have counts near 2,000 and shape 3e4: a peak beyond theta = 1e4.
Each data set has its own ``numpy.random.default_rng(seed)``; re-running this script rewrites every CSV
byte for byte and ``cases.json`` (the formula and truth of each).

Run from anywhere:  python tests/data/negative_binomial_random/make_data.py
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd

OUT_DIR = Path(__file__).resolve().parent
SHAPES = [0.3, 0.8, 2.0, 5.0, 20.0, 100.0, math.inf, math.inf]
STRUCTURES = ["scalar", "crossed", "slope"]
GROUPS = [5, 12, 30, 60, 150, 500]
FORMULAS = {"scalar": "y ~ x + (1 | g)", "crossed": "y ~ x + (1 | a) + (1 | b)", "slope": "y ~ x + (1 + x | g)"}


@dataclass(frozen=True)
class Case:
    name: str
    seed: int
    structure: str
    shape: float  # math.inf: Poisson counts
    groups: int  # levels of g (or of a; b has about half as many, at least 4)
    offset: bool
    sd: float  # random-intercept SD
    intercept: float = 0.6  # of the linear predictor (7.5: counts near 2,000)

    @property
    def formula(self) -> str:
        return FORMULAS[self.structure].replace("x +", "x + offset(log(expo)) +") if self.offset else \
            FORMULAS[self.structure]


def cases() -> list[Case]:
    out = []
    for k in range(48):
        shape, structure = SHAPES[k % len(SHAPES)], STRUCTURES[(k // len(SHAPES)) % len(STRUCTURES)]
        groups = GROUPS[(k * 5 + k // len(SHAPES)) % len(GROUPS)]
        if structure != "scalar":  # the general engine's fits: keep R's time modest
            groups = min(groups, 150)
        sd = 1.2 if (math.isinf(shape) and k % 2 == 1) else 0.5  # a large SD: the RE absorbs the variation
        out.append(Case(f"nbr_{k:02d}", 15_2026_000 + k, structure, shape, groups, k // len(SHAPES) >= 3, sd))
    # large counts with slight overdispersion: the profile peaks beyond theta = 1e4, where its slope is noise
    out += [Case(f"nbr_{k:02d}", 15_2026_000 + k, "scalar", 3e4, 40, False, 0.3, 7.5) for k in (48, 49)]
    return out


def simulate(case: Case) -> pd.DataFrame:
    rng = np.random.default_rng(case.seed)
    if case.intercept > 5:
        size = np.full(case.groups, 50)
    elif case.groups <= 150:
        size = rng.integers(2, 9, size=case.groups)
    else:
        size = rng.integers(1, 4, size=case.groups)
    g = np.repeat(np.arange(case.groups), size)
    n = g.size
    x = np.round(rng.standard_normal(n), 3)
    expo = np.round(rng.uniform(0.5, 3.0, size=n), 2)
    eta = case.intercept + 0.4 * x + (case.sd * rng.standard_normal(case.groups))[g]
    frame = {"g": g + 1}
    if case.structure == "crossed":
        n_b = max(4, case.groups // 2)
        b = rng.integers(0, n_b, size=n)
        eta = eta + (0.4 * rng.standard_normal(n_b))[b]
        frame = {"a": g + 1, "b": b + 1}
    elif case.structure == "slope":
        eta = eta + (0.3 * rng.standard_normal(case.groups))[g] * x
    if case.offset:
        eta = eta + np.log(expo)
    mu = np.exp(eta)
    y = rng.poisson(mu if math.isinf(case.shape) else rng.gamma(case.shape, mu / case.shape))
    frame.update({"x": x, "y": y})
    if case.offset:
        frame["expo"] = expo
    return pd.DataFrame(frame)


def main() -> None:
    meta = {}
    for case in cases():
        simulate(case).to_csv(OUT_DIR / f"{case.name}.csv", index=False, lineterminator="\n")
        record = asdict(case) | {"formula": case.formula, "data": f"{case.name}.csv"}
        record["shape"] = "Inf" if math.isinf(case.shape) else case.shape
        meta[case.name] = record
    (OUT_DIR / "cases.json").write_text(json.dumps(meta, indent=1) + "\n")


if __name__ == "__main__":
    main()
