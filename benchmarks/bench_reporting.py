"""Reporting functions against their R counterparts, side by side in one run (issue 16's benchmark rows).

Row ``emmeans``: the marginal means and contrasts of tests/data/emmeans/reference.json (15 tables of means, 14
of contrasts, 7 models; R runs the same 29 calls) computed by glmmteach.emmeans / glmmteach.contrast on R's own
coefficients and covariance; reported are the largest relative difference from R emmeans (estimates, SEs,
interval ends, statistics), the largest absolute difference of the p-values, and the time of glmmteach against
R emmeans for the same calls (each side's fits excluded: glmmteach's fitted once before its clock starts, R's
fitted, as in tests/data/emmeans/make_reference.R, before its own).
The profile-interval and bootstrap rows are in bench_inference.py, which runs this row beside them.

Usage: ``python benchmarks/bench_reporting.py [--repeats N]`` (R's column needs ``Rscript`` with lme4, MASS,
emmeans).
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

R_TIMING = r"""
suppressMessages({library(MASS); library(lme4); library(emmeans)})
control <- glmerControl(optimizer = "bobyqa", tolPwrss = 1e-12, optCtrl = list(rhoend = 1e-10, maxfun = 1e5))
crossover <- read.csv("data/crossover.csv"); ohio <- read.csv("data/ohio_cancer.csv"); ohio$logpop <- log(ohio$pop)
ticks <- read.csv("data/grouseticks.csv")
a <- glmer(outcome ~ factor(trt) * factor(period) + (1 | ID), data = crossover, family = binomial, control = control)
b <- glmer(death ~ offset(logpop) + factor(sex) + factor(race) + year + (1 | county), data = ohio, family = poisson,
           control = control)
c_fit <- glm(outcome ~ factor(trt) * factor(period), data = crossover, family = binomial)
q_fit <- glm(death ~ offset(logpop) + factor(sex) * factor(race), data = ohio, family = quasipoisson)
d_fit <- glm.nb(TICKS ~ factor(YEAR) + cHEIGHT, data = ticks)
ticks$logTICKS <- log(ticks$TICKS + 1)
g_fit <- glm(logTICKS ~ factor(YEAR) + cHEIGHT, data = ticks, family = gaussian)
e_fit <- suppressWarnings(glmer(TICKS ~ factor(YEAR) * cHEIGHT + (1 | LOCATION), data = ticks, family = poisson,
                                control = control))
calls <- function() {
  s <- function(x) summary(x, infer = c(TRUE, TRUE))
  confint(emmeans(a, ~ trt * period)); confint(emmeans(a, ~ trt * period, type = "response"))
  confint(emmeans(a, ~ trt))
  confint(emmeans(a, ~ trt | period, type = "response"))
  s(contrast(emmeans(a, ~ trt | period, type = "response"), "pairwise", adjust = "none"))
  s(contrast(emmeans(a, ~ trt * period), "pairwise", adjust = "tukey"))
  s(contrast(emmeans(a, ~ trt * period), "revpairwise", adjust = "holm"))
  s(contrast(emmeans(a, ~ trt * period), "trt.vs.ctrl", adjust = "bonferroni"))
  confint(emmeans(b, ~ sex * race, type = "response", offset = 0)); confint(emmeans(b, ~ sex * race))
  confint(emmeans(b, ~ sex * race, type = "response", offset = log(1e5)))
  s(contrast(emmeans(b, ~ sex | race, type = "response", offset = 0), "pairwise", adjust = "none"))
  s(contrast(emmeans(b, ~ sex * race, type = "response", offset = 0), "revpairwise", adjust = "tukey"))
  confint(emmeans(c_fit, ~ trt, type = "response")); confint(emmeans(c_fit, ~ trt * period))
  s(contrast(emmeans(c_fit, ~ trt, type = "response"), "revpairwise", adjust = "none"))
  s(contrast(emmeans(c_fit, ~ trt * period), "pairwise", adjust = "tukey"))
  s(contrast(emmeans(c_fit, ~ trt * period), "pairwise", adjust = "sidak"))
  confint(emmeans(g_fit, ~ YEAR)); s(contrast(emmeans(g_fit, ~ YEAR), "pairwise", adjust = "tukey"))
  s(contrast(emmeans(g_fit, ~ YEAR), "trt.vs.ctrl", adjust = "sidak"))
  confint(emmeans(q_fit, ~ sex * race, type = "response", offset = 0))
  s(contrast(emmeans(q_fit, ~ race | sex, type = "response", offset = 0), "pairwise", adjust = "none"))
  confint(emmeans(d_fit, ~ YEAR, type = "response")); confint(emmeans(d_fit, ~ YEAR))
  s(contrast(emmeans(d_fit, ~ YEAR, type = "response"), "pairwise", adjust = "tukey"))
  confint(emmeans(e_fit, ~ YEAR, type = "response"))
  confint(emmeans(e_fit, ~ YEAR | cHEIGHT, at = list(cHEIGHT = c(-20, 0, 20))))
  s(contrast(emmeans(e_fit, ~ YEAR | cHEIGHT, at = list(cHEIGHT = c(-20, 0, 20))), "trt.vs.ctrl", adjust = "holm"))
}
invisible(calls())  # warm-up
n <- as.integer(commandArgs(trailingOnly = TRUE)[1])
times <- replicate(n, system.time(calls())[["elapsed"]])
cat(median(times), "\n")
"""


def python_side(repeats: int) -> tuple[int, float, float, float]:
    """Largest relative difference from R emmeans (on R's coefficients), largest absolute difference of the
    p-values, and the median time of all calls."""
    import test_emmeans as t

    from glmmteach import contrast, emmeans

    proxies = {case: t.WithCoefficients(t.fitted(case), t.reference()[case]) for case in t.reference()}
    worst, worst_p = 0.0, 0.0
    for (case, name), args in t.MEANS.items():
        ours, theirs = emmeans(proxies[case], **args).table, t.r_table(t.reference()[case]["emmeans"][name])
        worst = max(worst, _relative(ours, theirs)[0])
    for (case, name), (args, method, adjust) in t.CONTRASTS.items():
        ours = contrast(emmeans(proxies[case], **args), method, adjust)
        rel, p = _relative(ours, t.r_table(t.reference()[case]["contrasts"][name]["table"]))
        worst, worst_p = max(worst, rel), max(worst_p, p)

    def calls() -> None:
        for (case, _), args in t.MEANS.items():
            emmeans(t.fitted(case), **args)
        for (case, _), (args, method, adjust) in t.CONTRASTS.items():
            contrast(emmeans(t.fitted(case), **args), method, adjust)

    calls()  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        calls()
        times.append(time.perf_counter() - start)
    return len(t.MEANS) + len(t.CONTRASTS), worst, worst_p, float(np.median(times))


def _relative(ours, theirs) -> tuple[float, float]:
    """Largest relative difference of the estimates, SEs, interval ends and z; largest absolute one of p
    (a p-value's accuracy is absolute: R's Tukey tail, 1 - ptukey(), cancels below about 1e-11)."""
    worst = 0.0
    for column in ("estimate", "SE", "lower", "upper", "z"):
        if column in theirs.columns:
            a, b = ours[column].to_numpy(dtype=float), theirs[column].to_numpy(dtype=float)
            worst = max(worst, float(np.max(np.abs(a - b) / np.abs(b))))
    p = float(np.max(np.abs(ours["p"].to_numpy() - theirs["p"].to_numpy(dtype=float)))) if "p" in theirs else 0.0
    return worst, p


def r_side(repeats: int) -> float | None:
    if shutil.which("Rscript") is None:
        return None
    out = subprocess.run(["Rscript", "-e", R_TIMING, str(repeats)], cwd=ROOT, capture_output=True, text=True,
                         check=True)
    return float(out.stdout.split()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    calls, worst, worst_p, ours = python_side(args.repeats)
    theirs = r_side(args.repeats)
    print(f"load average {' '.join(f'{v:.2f}' for v in __import__('os').getloadavg())}")
    print(f"{'row':<10} {'calls':>5} {'max rel. diff.':>15} {'max abs. diff. p':>17} {'glmmteach (s)':>14} "
          f"{'R (s)':>8} {'ratio':>7}")
    r_text = "n/a" if theirs is None else f"{theirs:.3f}"
    ratio = "n/a" if theirs is None else f"{theirs / ours:.1f}x"
    print(f"{'emmeans':<10} {calls:>5} {worst:>15.2e} {worst_p:>17.2e} {ours:>14.3f} {r_text:>8} {ratio:>7}")


if __name__ == "__main__":
    main()
