# blme bglmer on the crossover at 25, 50 and 100 Gauss-Hermite nodes (default Wishart prior):
# Rscript make_reference_nagq.R -> reference_nagq.json. At tau near 7 with two binary observations per patient
# 25 nodes are not accurate: the posterior mode moves from 6.79 (nAGQ = 25) to 6.34 (50) and 6.32 (100).
suppressPackageStartupMessages({library(lme4); library(blme); library(jsonlite)})
ctrl <- glmerControl(optimizer = "bobyqa", tolPwrss = 1e-12, optCtrl = list(rhoend = 1e-10, maxfun = 1e5))
crossover <- read.csv("../../../data/crossover.csv")
out <- list()
for (k in c(25, 50, 100)) {
  fit <- bglmer(outcome ~ trt * period + (1 | ID), data = crossover, family = binomial, nAGQ = k,
                control = ctrl, cov.prior = wishart)
  out[[paste0("nAGQ_", k)]] <- list(nAGQ = k, fixef = as.list(fixef(fit)), theta = unname(getME(fit, "theta")),
                                    loglik = as.numeric(logLik(fit)),
                                    penalty = unname(fit@devcomp$cmp["penalty"]))
}
out <- list(note = paste("blme bglmer(outcome ~ trt * period + (1 | ID), crossover, cov.prior = wishart) at",
                         "nAGQ = 25, 50, 100; glmerControl(optimizer = 'bobyqa', tolPwrss = 1e-12,",
                         "optCtrl = list(rhoend = 1e-10))"),
            R = R.version.string, lme4 = as.character(packageVersion("lme4")),
            blme = as.character(packageVersion("blme")), cases = out)
write(toJSON(out, digits = NA, auto_unbox = TRUE, pretty = TRUE), "reference_nagq.json")
