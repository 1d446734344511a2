"""Profile intervals of every parameter against lme4's confint(method = "profile"), side by side in one run
(issue 16's benchmark row for item 1).

For the Ohio Poisson GLMM (one scalar term, 4 fixed effects) and the crossed Poisson GLMM
``y ~ x + (1 | a) + (1 | b)`` (tests/data/lme4_structures/crossed_poisson.csv): the time of
``fit.conf_int(method="profile")`` (all parameters; the fit itself excluded, fitted before the clock starts)
against R's ``confint(fit)`` (lme4's default: ``profile`` at its default step, then its spline; the fit
excluded, as on this side), the median of ``--repeats`` runs, and the largest relative difference of the
interval ends from lme4's confint at its default settings and from the fine-step reference
(tests/data/profile_ci/reference.json, ``delta = cutoff / 40``).

Usage: ``python benchmarks/bench_profile.py [--repeats N]`` (R's column needs ``Rscript`` with lme4).
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from glmmteach import datasets, glmer  # noqa: E402

CASES = {
    "ohio": ("death ~ offset(logpop) + factor(sex) + factor(race) + year + (1 | county)", "poisson"),
    "crossed": ("y ~ x + (1 | a) + (1 | b)", "poisson"),
}
R_TIMING = r"""
suppressMessages({library(lme4); library(jsonlite)})
control <- glmerControl(optimizer = "bobyqa", tolPwrss = 1e-12, optCtrl = list(rhoend = 1e-10, maxfun = 1e5))
ohio <- read.csv("data/ohio_cancer.csv"); ohio$logpop <- log(ohio$pop)
crossed <- read.csv("tests/data/lme4_structures/crossed_poisson.csv")
fits <- list(
  ohio = glmer(death ~ offset(logpop) + factor(sex) + factor(race) + year + (1 | county), data = ohio,
               family = poisson, control = control),
  crossed = glmer(y ~ x + (1 | a) + (1 | b), data = crossed, family = poisson, control = control))
n <- as.integer(commandArgs(trailingOnly = TRUE)[1])
out <- lapply(fits, function(fit) {  # every call timed (one call with n = 1: lme4's profile is the slow side)
  times <- numeric(n)
  for (k in seq_len(n)) {
    times[k] <- system.time(ci <- suppressMessages(confint(fit, method = "profile", oldNames = FALSE)))[["elapsed"]]
  }
  list(seconds = median(times), lower = unname(ci[, 1]), upper = unname(ci[, 2]))
})
cat(toJSON(out, digits = NA, auto_unbox = TRUE))
"""


def data_for(case: str) -> pd.DataFrame:
    if case == "ohio":
        return datasets.load_ohio_cancer()
    return pd.read_csv(ROOT / "tests" / "data" / "lme4_structures" / "crossed_poisson.csv")


def python_side(repeats: int) -> dict[str, tuple[float, np.ndarray]]:
    out = {}
    for case, (formula, family) in CASES.items():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            fit = glmer(formula, data_for(case), family)
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            table = fit.conf_int(method="profile")
            times.append(time.perf_counter() - start)
        out[case] = (float(np.median(times)), table[["lower", "upper"]].to_numpy(dtype=float))
    return out


def r_side(repeats: int) -> dict | None:
    if shutil.which("Rscript") is None:
        return None
    result = subprocess.run(["Rscript", "-e", R_TIMING, str(repeats)], cwd=ROOT, capture_output=True, text=True,
                            check=True)
    return json.loads(result.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    reference = json.loads((ROOT / "tests" / "data" / "profile_ci" / "reference.json").read_text())["cases"]
    ours = python_side(args.repeats)
    theirs = r_side(args.repeats)
    print(f"{'case':10s} {'glmmteach s':>12s} {'lme4 s':>8s} {'vs fine-step ref':>17s} {'vs lme4 default':>16s}")
    for case, (seconds, ends) in ours.items():
        fine = np.column_stack([reference[case]["lower"], reference[case]["upper"]])
        fine_diff = float(np.max(np.abs(ends - fine) / np.abs(fine)))
        if theirs is None:
            r_seconds, default_diff = float("nan"), float("nan")
        else:
            default = np.column_stack([theirs[case]["lower"], theirs[case]["upper"]])
            r_seconds, default_diff = theirs[case]["seconds"], float(np.max(np.abs(ends - default) / np.abs(default)))
        print(f"{case:10s} {seconds:12.3f} {r_seconds:8.3f} {fine_diff:17.2e} {default_diff:16.2e}")


if __name__ == "__main__":
    main()
