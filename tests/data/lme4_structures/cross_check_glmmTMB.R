#!/usr/bin/env Rscript
# Independent check of reference.json: refit every case with glmmTMB (Laplace by TMB's automatic
# differentiation; nbinom2 for the negative binomial) and print the log-likelihood and largest
# fixed-effect difference against the stored lme4/MASS fit. Nothing is written.
#   Rscript tests/data/lme4_structures/cross_check_glmmTMB.R
suppressPackageStartupMessages({ library(glmmTMB); library(jsonlite) })
file_arg <- grep("^--file=", commandArgs(trailingOnly = FALSE), value = TRUE)
here <- if (length(file_arg)) dirname(normalizePath(sub("^--file=", "", file_arg[1]))) else getwd()
ref <- fromJSON(file.path(here, "reference.json"), simplifyVector = FALSE)$cases
load_data <- function(name) {
  if (name != "ohio") return(read.csv(file.path(here, name)))
  d <- read.csv(file.path(here, "..", "..", "..", "data", "ohio_cancer.csv"))
  d$logpop <- log(d$pop); d$decade <- (d$year - 11) / 10; d$obs <- seq_len(nrow(d)); d
}
for (name in names(ref)) {
  spec <- ref[[name]]
  d <- load_data(spec$data)
  fam <- switch(spec$family, binomial = binomial(link = spec$link), poisson = poisson(link = spec$link),
                negative_binomial = nbinom2())
  fit <- glmmTMB(as.formula(spec$r_formula), data = d, family = fam,
                 control = glmmTMBControl(optCtrl = list(iter.max = 1e4, eval.max = 1e4, rel.tol = 1e-14)))
  beta <- fixef(fit)$cond
  ref_beta <- unlist(spec$fixef)[names(beta)]
  extra <- if (!is.null(spec$nb_theta)) sprintf("  theta %.6f vs %.6f", sigma(fit), spec$nb_theta) else ""
  cat(sprintf("%-24s loglik glmmTMB - reference %+.2e   max |beta diff| %.2e%s\n", name,
              as.numeric(logLik(fit)) - spec$loglik, max(abs(beta - ref_beta)), extra))
}
