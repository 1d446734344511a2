# R references for glmmteach.crossover (tests/test_crossover.py): conditional logistic regression
# (survival::clogit), the Mainland-Gart test (Fisher's exact test on the discordant pairs, fisher.test)
# and Prescott's test (Jones & Kenward 1989, section 2.13: the chi-squared trend statistic, by their
# formula and by prop.trend.test with scores -1, 0, 1, and its exact conditional p-value by enumeration).
# Run from the repository root:  Rscript tests/data/crossover_reference.R  (R 4.2, survival 3.4)
# -> tests/data/crossover_reference.json (or the path given as its one argument)
suppressPackageStartupMessages({library(survival); library(jsonlite)})

# pattern counts (period 1, period 2) per sequence: R-T = reference first, T-R = test first
cases <- list(
  # the course's crossover trial (data/crossover.csv): R = placebo, T = active drug
  course = list(RT = c("00" = 22, "01" = 6, "10" = 0, "11" = 6), TR = c("00" = 18, "01" = 2, "10" = 4, "11" = 9)),
  finite_small = list(RT = c("00" = 10, "01" = 7, "10" = 2, "11" = 5), TR = c("00" = 9, "01" = 3, "10" = 6, "11" = 8)),
  finite_large = list(RT = c("00" = 30, "01" = 12, "10" = 5, "11" = 14), TR = c("00" = 25, "01" = 4, "10" = 11, "11" = 16)),
  # no period effect, treatment against: a negative estimate
  negative = list(RT = c("00" = 12, "01" = 3, "10" = 8, "11" = 7), TR = c("00" = 11, "01" = 9, "10" = 4, "11" = 6)),
  # Senn's asthma example (formoterol T, salbutamol R; for/sal is T-R; the no-preference split is arbitrary)
  senn_asthma = list(RT = c("00" = 2, "01" = 6, "10" = 1, "11" = 3), TR = c("00" = 2, "01" = 0, "10" = 9, "11" = 1))
)

long_data <- function(case) {
  rows <- list(); id <- 0
  for (seq in c("RT", "TR")) for (p in names(case[[seq]])) for (k in seq_len(case[[seq]][[p]])) {
    id <- id + 1
    y <- as.integer(strsplit(p, "")[[1]])
    trt <- if (seq == "RT") c(0, 1) else c(1, 0)
    rows[[id]] <- data.frame(ID = id, period = c(0, 1), trt = trt, outcome = y)
  }
  do.call(rbind, rows)
}

profile_ci <- function(d, estimate, llf, level = 0.95) {
  crit <- qchisq(level, 1)
  excess <- function(tau) {
    f <- clogit(outcome ~ period + offset(tau * trt) + strata(ID), data = d,
                control = coxph.control(eps = 1e-12, iter.max = 100))
    2 * (llf - f$loglik[2]) - crit
  }
  finite <- is.finite(estimate)
  start <- if (finite) estimate else 0
  ends <- c(-Inf, Inf)
  for (k in 1:2) {
    dir <- c(-1, 1)[k]
    if (!finite && sign(estimate) == dir) { ends[k] <- Inf * dir; next }
    inside <- start
    if (!finite) { s <- 1; while (excess(-dir * s) > 0) s <- 2 * s; inside <- -dir * s }
    s <- 1; while (excess(inside + dir * s) < 0) s <- 2 * s
    ends[k] <- uniroot(excess, sort(c(inside, inside + dir * s)), tol = 1e-12)$root
  }
  ends
}

prescott_exact <- function(x, totals) {
  n1 <- sum(x); N <- sum(totals); s <- c(-1, 0, 1)
  dev <- function(r) N * sum(s * r) - n1 * sum(s * totals)
  obs <- abs(dev(x)); p <- 0
  for (a in 0:totals[1]) for (c3 in 0:totals[3]) {
    b <- n1 - a - c3
    if (b < 0 || b > totals[2]) next
    r <- c(a, b, c3)
    if (abs(dev(r)) >= obs * (1 - 1e-9))
      p <- p + prod(choose(totals, r)) / choose(N, n1)
  }
  p
}

out <- list(R_version = R.version.string, survival = as.character(packageVersion("survival")), cases = list())
for (name in names(cases)) {
  case <- cases[[name]]
  d <- long_data(case)
  full <- suppressWarnings(clogit(outcome ~ trt + period + strata(ID), data = d,
                                  control = coxph.control(eps = 1e-12, iter.max = 100)))
  no_trt <- clogit(outcome ~ period + strata(ID), data = d, control = coxph.control(eps = 1e-12))
  sfull <- summary(full)
  finite <- all(c(case$RT[c("01", "10")], case$TR[c("01", "10")]) > 0)  # else infinite estimates
  disc <- rbind(case$RT[c("01", "10")], case$TR[c("01", "10")])
  fisher <- fisher.test(disc)
  three <- rbind(c(case$RT["10"], case$RT["00"] + case$RT["11"], case$RT["01"]),
                 c(case$TR["10"], case$TR["00"] + case$TR["11"], case$TR["01"]))
  totals <- colSums(three); n1 <- sum(three[1, ]); n2 <- sum(three[2, ]); N <- sum(totals)
  # Jones & Kenward's statistic
  jk <- N * ((three[1, 3] - three[1, 1]) * N - (totals[3] - totals[1]) * n1)^2 /
    (n1 * n2 * (N * (totals[1] + totals[3]) - (totals[3] - totals[1])^2))
  trend <- prop.trend.test(three[1, ], totals, score = c(-1, 0, 1))
  tau <- if (finite) unname(coef(full)["trt"]) else sign(coef(full)["trt"]) * Inf
  out$cases[[name]] <- list(
    RT = as.list(case$RT), TR = as.list(case$TR), finite = finite,
    coef = if (finite) as.list(coef(full)) else NULL,
    se = if (finite) as.list(sqrt(diag(vcov(full)))) else NULL,
    cov_trt_period = if (finite) vcov(full)[1, 2] else NULL,
    coef_raw = as.list(coef(full)),
    loglik = full$loglik[2], loglik_no_trt = no_trt$loglik[2],
    lr_trt = 2 * (full$loglik[2] - no_trt$loglik[2]),
    lr_trt_p = pchisq(2 * (full$loglik[2] - no_trt$loglik[2]), 1, lower.tail = FALSE),
    wald_p = if (finite) unname(sfull$coefficients["trt", "Pr(>|z|)"]) else NULL,
    profile_ci = as.list(profile_ci(d, tau, full$loglik[2])),
    fisher_p = fisher$p.value, fisher_or = unname(fisher$estimate),
    fisher_ci = as.list(fisher$conf.int),
    prescott_jk = unname(jk), prescott_trend = unname(trend$statistic),
    prescott_p = unname(trend$p.value), prescott_exact_p = prescott_exact(three[1, ], totals)
  )
}
args <- commandArgs(trailingOnly = TRUE)
out_path <- if (length(args)) args[1] else "tests/data/crossover_reference.json"
writeLines(toJSON(out, digits = NA, auto_unbox = TRUE, pretty = TRUE), out_path)
