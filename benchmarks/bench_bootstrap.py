"""Speed of glmmteach.bootstrap against lme4's bootMer: 1,000 parametric-bootstrap replicates of the crossover
Laplace fit ``outcome ~ trt*period + (1|ID)`` (default statistic: the SD and the fixed effects).

Measured in one run: glmmteach with ``n_jobs=2`` (loky processes; the first call includes starting them, the
second reuses them), with ``n_jobs=1`` on 100 replicates (the time per replicate), the share of one refit's
time in each stage (``--profile``), and, where ``Rscript`` with lme4 is available, ``bootMer`` on the same
model and statistic (default ``glmerControl``, as a user runs it) for 100 replicates serially and 200 with
``parallel = "multicore", ncpus = 2``, each scaled to 1,000. The machine's load average is printed before
and after (the machine may be shared: times under load are longer than on idle cores).

Target (2 cores): 1,000 replicates in under 15 s.

Usage: ``python benchmarks/bench_bootstrap.py [--nsim 1000] [--skip-lme4] [--profile]``
"""

from __future__ import annotations

import argparse
import cProfile
import json
import os
import pstats
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

from glmmteach import bootstrap, datasets, glmer  # noqa: E402
from glmmteach.exceptions import GlmmteachWarning  # noqa: E402

FORMULA = "outcome ~ trt*period + (1|ID)"
TARGET_SECONDS = 15.0

R_SCRIPT = r"""
suppressMessages(library(lme4))
args <- commandArgs(trailingOnly = TRUE)
d <- read.csv(args[1])
fit <- glmer(outcome ~ trt * period + (1 | ID), d, family = binomial)
stat <- function(x) c(sqrt(diag(VarCorr(x)$ID)), fixef(x))
run <- function(nsim, ...) {
  fails <- 0
  elapsed <- system.time(bb <- suppressWarnings(suppressMessages(bootMer(fit, stat, nsim = nsim, seed = 1, ...))))
  list(nsim = nsim, seconds = unname(elapsed[["elapsed"]]),
       failed = sum(!stats::complete.cases(bb$t)), warned = length(attr(bb, "boot.fail.msgs")))
}
out <- list(serial = run(100), multicore = run(200, parallel = "multicore", ncpus = 2),
            lme4 = as.character(packageVersion("lme4")))
cat(jsonlite::toJSON(out, auto_unbox = TRUE, digits = NA))
"""


def load() -> str:
    one, five, fifteen = os.getloadavg()
    return f"load average {one:.2f}, {five:.2f}, {fifteen:.2f} on {os.cpu_count()} cores"


def timed_bootstrap(fit: object, nsim: int, n_jobs: int) -> tuple[float, float, object]:
    """Wall-clock and this process's CPU seconds (with n_jobs=1 the CPU time of the replicates: on a shared
    machine the wall-clock time also counts the other processes' turns)."""
    start, cpu = time.perf_counter(), time.process_time()
    boot = bootstrap(fit, nsim=nsim, seed=1, n_jobs=n_jobs)
    return time.perf_counter() - start, time.process_time() - cpu, boot


def lme4_times() -> dict | None:
    if shutil.which("Rscript") is None:
        return None
    with tempfile.TemporaryDirectory() as tmp:
        script = Path(tmp) / "boot.R"
        script.write_text(R_SCRIPT)
        run = subprocess.run(["Rscript", str(script), str(ROOT / "data" / "crossover.csv")], capture_output=True,
                             text=True, timeout=3600)
    if run.returncode != 0:
        print("lme4 bootMer failed:", run.stderr[-500:])
        return None
    return json.loads(run.stdout)


def profile_refits(fit: object, n: int = 50) -> None:
    """Where one refit's time goes: the cumulative share of the main stages over ``n`` refits."""
    sims = fit.simulate(n, seed=2)
    profiler = cProfile.Profile()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", GlmmteachWarning)
        profiler.enable()
        for column in sims:
            fit.refit(sims[column])
        profiler.disable()
    stats = pstats.Stats(profiler)
    total = sum(row[3] for key, row in stats.stats.items() if key[2] == "refit")
    stages = {"fit_glmm": "optimiser (L-BFGS-B on the Laplace log-likelihood)",
              "conditional_modes": "  of which PIRLS conditional modes",
              "diagnose": "diagnosis (Hessian, covariance, warnings)",
              "separation_warning": "separation check",
              "build_design": "model matrices"}
    print(f"where a refit's time goes ({n} refits, {1000 * total / n:.1f} ms each):")
    for name, label in stages.items():
        cum = sum(row[3] for key, row in stats.stats.items() if key[2] == name)
        if cum:
            print(f"  {label:55s} {100 * cum / total:5.1f}%")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nsim", type=int, default=1000)
    parser.add_argument("--skip-lme4", action="store_true")
    parser.add_argument("--profile", action="store_true")
    args = parser.parse_args()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", GlmmteachWarning)
        fit = glmer(FORMULA, datasets.load_crossover(), "binomial")
    print(f"crossover Laplace fit {FORMULA}: {fit.nobs} rows; {load()}")
    serial_seconds, serial_cpu, _ = timed_bootstrap(fit, 100, 1)
    per, per_cpu = serial_seconds / 100, serial_cpu / 100
    print(f"glmmteach n_jobs=1: 100 replicates in {serial_seconds:.2f} s ({1000 * per:.1f} ms each, "
          f"{1000 * per_cpu:.1f} ms of CPU; {per * args.nsim:.1f} s per {args.nsim}; on two idle cores "
          f"{per_cpu * args.nsim / 2:.1f} s plus starting the processes)")
    cold, _, boot = timed_bootstrap(fit, args.nsim, 2)
    warm, _, again = timed_bootstrap(fit, args.nsim, 2)
    assert np.array_equal(boot.replicates.to_numpy(), again.replicates.to_numpy())
    verdict = "meets" if cold < TARGET_SECONDS else "misses"
    print(f"glmmteach n_jobs=2: {args.nsim} replicates in {cold:.2f} s with starting the processes, {warm:.2f} s "
          f"reusing them ({verdict} the {TARGET_SECONDS:g} s target); {boot.n_failed} failed; {load()}")
    for reason, count in boot.failures["reason"].str.slice(0, 150).value_counts().items():
        print(f"  failed: {count} x {reason}")
    if args.profile:
        profile_refits(fit)
    if not args.skip_lme4:
        lme4 = lme4_times()
        if lme4 is None:
            print("lme4: Rscript with lme4 not available")
        else:
            for key, label in (("serial", "1 core"), ("multicore", "ncpus = 2")):
                row = lme4[key]
                scaled = row["seconds"] * args.nsim / row["nsim"]
                print(f"lme4 {lme4['lme4']} bootMer, {label}: {row['nsim']} replicates in {row['seconds']:.2f} s, "
                      f"{scaled:.1f} s per {args.nsim} ({row['failed']} failed, {row['warned']} with warnings); "
                      f"glmmteach n_jobs=2 is {scaled / cold:.1f}x faster")
    print(load())


if __name__ == "__main__":
    main()
