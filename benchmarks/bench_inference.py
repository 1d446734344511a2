"""Issue 16's inference functions against R, side by side in one run: one table of times, ratios and accuracy.

Rows (each side's fits made before its clock starts; R's times by ``system.time`` inside R, so R's start-up
and package loading are excluded, as Python's imports are on this side):

- ``profile ohio``, ``profile crossed``: ``fit.conf_int(method="profile")`` for every parameter of the Ohio
  Poisson GLMM and of the crossed Poisson GLMM ``y ~ x + (1 | a) + (1 | b)`` against lme4's
  ``confint(fit, method = "profile")`` (its default step and spline), the median of ``--profile-repeats`` runs
  (default 1: lme4's profile of the Ohio fit takes minutes)
  (``bench_profile.py``'s two sides); accuracy: the largest relative difference of the interval ends from
  lme4's and from the fine-step reference (tests/data/profile_ci/reference.json).
- ``bootstrap n_jobs=1``, ``bootstrap n_jobs=2``: ``glmmteach.bootstrap`` of ``--nsim`` crossover replicates
  (Laplace, ``outcome ~ trt*period + (1|ID)``, default statistic: the SD and the fixed effects; two local
  processes started inside the timing) against lme4's ``bootMer`` with the same statistic, serial, default
  ``glmerControl`` (as a user runs it), ``--r-nsim`` replicates (default 100: a bootMer refit of this fit
  takes 0.75-2 s on a shared 2-core machine, 1,000 would take 15-30 minutes) scaled to ``--nsim``; accuracy:
  the largest relative difference of the bootstrap standard errors (a Monte-Carlo quantity: about
  ``1/sqrt(2 nsim)`` is chance), and whether the two glmmteach runs gave the same replicates.
- ``emmeans``: the 29 marginal-mean and contrast calls of tests/data/emmeans/reference.json against R emmeans
  (``bench_reporting.py``'s two sides, the median of ``--repeats`` runs); accuracy on R's own coefficients.

The ratio is R's time over glmmteach's (above 1: glmmteach is faster). The load average (``os.getloadavg``,
what ``uptime`` prints) is shown before and after each row: on a shared machine times under load are longer.

Usage: ``python benchmarks/bench_inference.py [--profile-repeats 1] [--repeats 5] [--nsim 1000]
[--r-nsim 100]`` (R's column needs ``Rscript`` with lme4, MASS, emmeans, jsonlite).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_profile  # noqa: E402
import bench_reporting  # noqa: E402

from glmmteach import bootstrap, datasets, glmer  # noqa: E402
from glmmteach.exceptions import GlmmteachWarning  # noqa: E402

CROSSOVER = "outcome ~ trt*period + (1|ID)"
BOOT_R = r"""
suppressMessages(library(lme4))
args <- commandArgs(trailingOnly = TRUE)
d <- read.csv(args[1])
nsim <- as.integer(args[2])
fit <- glmer(outcome ~ trt * period + (1 | ID), d, family = binomial)
stat <- function(x) c(sqrt(diag(VarCorr(x)$ID)), fixef(x))
elapsed <- system.time(bb <- suppressWarnings(suppressMessages(bootMer(fit, stat, nsim = nsim, seed = 1))))
ok <- stats::complete.cases(bb$t)
cat(jsonlite::toJSON(list(seconds = unname(elapsed[["elapsed"]]), nsim = nsim, failed = sum(!ok),
                          se = unname(apply(bb$t[ok, , drop = FALSE], 2, sd))), auto_unbox = TRUE, digits = NA))
"""


def load() -> str:
    return " ".join(f"{v:.2f}" for v in os.getloadavg())


def have_r() -> bool:
    return shutil.which("Rscript") is not None


def profile_rows(repeats: int) -> list[dict]:
    reference = json.loads((ROOT / "tests" / "data" / "profile_ci" / "reference.json").read_text())["cases"]
    before = load()
    ours = bench_profile.python_side(repeats)
    theirs = bench_profile.r_side(repeats) if have_r() else None
    rows = []
    for case, (seconds, ends) in ours.items():
        fine = np.column_stack([reference[case]["lower"], reference[case]["upper"]])
        accuracy = f"vs fine-step ref {np.max(np.abs(ends - fine) / np.abs(fine)):.1e}"
        r_seconds = float("nan")
        if theirs is not None:
            lme4 = np.column_stack([theirs[case]["lower"], theirs[case]["upper"]])
            r_seconds = float(theirs[case]["seconds"])
            accuracy += f", vs lme4 {np.max(np.abs(ends - lme4) / np.abs(lme4)):.1e}"
        rows.append({"row": f"profile {case} ({len(ends)} par.)", "ours": seconds, "r": r_seconds,
                     "accuracy": accuracy, "load": f"{before} / {load()}"})
    return rows


def bootstrap_rows(nsim: int, r_nsim: int) -> list[dict]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", GlmmteachWarning)
        fit = glmer(CROSSOVER, datasets.load_crossover(), "binomial")
    runs = {}
    for n_jobs in (1, 2):
        before = load()
        start = time.perf_counter()
        boot = bootstrap(fit, nsim=nsim, seed=1, n_jobs=n_jobs)
        runs[n_jobs] = (time.perf_counter() - start, boot, before, load())
    same = np.array_equal(runs[1][1].replicates.to_numpy(), runs[2][1].replicates.to_numpy())
    lme4 = _bootmer(r_nsim) if have_r() else None
    rows = []
    for n_jobs, (seconds, boot, before, after) in runs.items():
        accuracy = f"{boot.n_failed} failed; same replicates for n_jobs 1, 2: {same}"
        r_seconds = float("nan")
        if lme4 is not None:
            r_seconds = lme4["seconds"] * nsim / lme4["nsim"]
            se = boot.replicates.std(ddof=1).to_numpy()
            accuracy += (f"; SEs vs bootMer {np.max(np.abs(se - lme4['se']) / np.abs(lme4['se'])):.1e}"
                         f" (R: {lme4['nsim']} reps, {lme4['failed']} failed)")
        rows.append({"row": f"bootstrap {nsim} n_jobs={n_jobs}", "ours": seconds, "r": r_seconds,
                     "accuracy": accuracy, "load": f"{before} / {after}"})
    return rows


def _bootmer(r_nsim: int) -> dict | None:
    with tempfile.TemporaryDirectory() as tmp:
        script = Path(tmp) / "boot.R"
        script.write_text(BOOT_R)
        run = subprocess.run(["Rscript", str(script), str(ROOT / "data" / "crossover.csv"), str(r_nsim)],
                             capture_output=True, text=True, timeout=3600)
    if run.returncode != 0:
        print("lme4 bootMer failed:", run.stderr[-500:])
        return None
    out = json.loads(run.stdout.strip().splitlines()[-1])
    out["se"] = np.asarray(out["se"], dtype=float)
    return out


def emmeans_rows(repeats: int) -> list[dict]:
    before = load()
    calls, worst, worst_p, ours = bench_reporting.python_side(repeats)
    theirs = bench_reporting.r_side(repeats) if have_r() else None
    return [{"row": f"emmeans ({calls} calls)", "ours": ours, "r": float("nan") if theirs is None else theirs,
             "accuracy": f"vs R emmeans {worst:.1e} (p: {worst_p:.1e} abs.)", "load": f"{before} / {load()}"}]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile-repeats", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--nsim", type=int, default=1000)
    parser.add_argument("--r-nsim", type=int, default=100)
    args = parser.parse_args()
    print(f"{os.cpu_count()} cores; load average at start {load()}; R: {'Rscript' if have_r() else 'not available'}")
    rows = profile_rows(args.profile_repeats) + bootstrap_rows(args.nsim, args.r_nsim) + emmeans_rows(args.repeats)
    print(f"{'row':<28} {'glmmteach s':>11} {'R s':>8} {'R/ours':>7}  {'load before / after':<31} accuracy")
    for row in rows:
        ratio = row["r"] / row["ours"]
        print(f"{row['row']:<28} {row['ours']:>11.3f} {row['r']:>8.3f} {ratio:>6.1f}x  {row['load']:<31} "
              f"{row['accuracy']}")
    print(f"load average at end {load()}")


if __name__ == "__main__":
    main()
