#!/usr/bin/env Rscript
# Independent check of reference.json: refit every Laplace case with a canonical link (logit, log) with
# glmmTMB, whose Laplace approximation then equals lme4's, and print the log-likelihood and largest
# fixed-effect difference against the stored lme4 fit (a positive log-likelihood difference above ~1e-6
# would mean lme4 stopped short). Probit/cloglog (lme4 uses Fisher weights, glmmTMB the observed Hessian)
# and nAGQ > 1 (glmmTMB has no adaptive quadrature) are left out. Nothing is written.
#   Rscript tests/data/lme4_random/cross_check_glmmTMB.R
suppressPackageStartupMessages({ library(glmmTMB); library(jsonlite) })
file_arg <- grep("^--file=", commandArgs(trailingOnly = FALSE), value = TRUE)
here <- if (length(file_arg)) dirname(normalizePath(sub("^--file=", "", file_arg[1]))) else getwd()
ref <- fromJSON(file.path(here, "reference.json"), simplifyVector = FALSE)$cases
for (name in names(ref)) {
  spec <- ref[[name]]
  if (spec$nAGQ > 1 || !(spec$link %in% c("logit", "log"))) next
  d <- read.csv(file.path(here, spec$data))
  d$.offset <- if (is.null(spec$offset)) 0 else d[[spec$offset]]
  fam <- switch(spec$family, binomial = binomial(), poisson = poisson())
  fit <- tryCatch(suppressWarnings(glmmTMB(as.formula(spec$r_formula), data = d, family = fam, offset = .offset,
                 control = glmmTMBControl(optCtrl = list(iter.max = 1e4, eval.max = 1e4, rel.tol = 1e-14)))),
                 error = function(e) NULL)
  if (is.null(fit)) { cat(sprintf("%-32s glmmTMB failed\n", name)); next }
  beta <- fixef(fit)$cond
  cat(sprintf("%-32s loglik glmmTMB - lme4 %+.2e   max |beta diff| %.2e\n", name,
              as.numeric(logLik(fit)) - spec$loglik, max(abs(beta - unlist(spec$fixef)[names(beta)]))))
}
