#!/usr/bin/env Rscript
# Fit every case of cases.json (written by make_data.py) with lme4 and write reference.json.
#
# Usage (from anywhere):
#   Rscript tests/data/lme4_random/make_reference.R [--out FILE] [--cases name1,name2]
# Defaults: all cases; data, cases.json and reference.json next to this script.
#
# Each case is fitted from up to three starts, and the best log-likelihood is kept (lme4 itself can
# stop short of the optimum):
#   "bobyqa"      glmerControl(optimizer = "bobyqa", tolPwrss = TOL,
#                              optCtrl = list(rhoend = 1e-10, maxfun = 1e5))   (both stages)
#   "nelder_mead" glmerControl(optimizer = c("bobyqa", "Nelder_Mead"), tolPwrss = TOL,
#                              optCtrl = list(maxfun = 1e5))                    (lme4's default pair)
#   "polish"      the "bobyqa" control again, started from the better of the two fits' (theta, beta).
# TOL is 1e-14 (tests/data/lme4_extra/README.md: with 1e-12 lme4's logLik stayed 2e-6..6e-6 off the
# Laplace value at its own estimates); if PIRLS fails at 1e-14 (step-halving), the fit is redone at 1e-12.
# The tolerance actually used is stored per fit.
#
# Log-likelihoods: for nAGQ = 1 lme4's logLik() has every constant; for nAGQ > 1 it leaves out the
# saturated log-likelihood sum(log f(y | mu = y)), which is added back as in
# tests/data/lme4_extra/make_reference.R ("loglik" = "loglik_lme4" + "saturated_loglik_added").

suppressPackageStartupMessages({
  library(lme4)
  library(jsonlite)
})

script_dir <- function() {
  file_arg <- grep("^--file=", commandArgs(trailingOnly = FALSE), value = TRUE)
  if (length(file_arg) == 0) return(getwd())
  dirname(normalizePath(sub("^--file=", "", file_arg[1])))
}

parse_args <- function(args) {
  opts <- list(out = NULL, cases = NULL)
  i <- 1
  while (i <= length(args)) {
    key <- args[i]
    if (i == length(args)) stop("option ", key, " needs a value")
    value <- args[i + 1]
    if (key == "--out") opts$out <- value
    else if (key == "--cases") opts$cases <- strsplit(value, ",", fixed = TRUE)[[1]]
    else stop("unknown option ", key, " (expected --out, --cases)")
    i <- i + 2
  }
  opts
}

control_for <- function(start, tol) {
  if (start == "nelder_mead") {
    glmerControl(optimizer = c("bobyqa", "Nelder_Mead"), tolPwrss = tol, optCtrl = list(maxfun = 1e5))
  } else {
    glmerControl(optimizer = "bobyqa", tolPwrss = tol, optCtrl = list(rhoend = 1e-10, maxfun = 1e5))
  }
}

saturated_loglik <- function(spec, d) {
  y <- d$y
  if (spec$family == "poisson") return(sum(dpois(y, y, log = TRUE)))
  n <- if (is.null(spec$trials)) rep(1, length(y)) else d[[spec$trials]]
  sum(dbinom(y, n, y / n, log = TRUE))
}

# One glmer fit; NULL (with the error message) if it fails at both tolerances.
try_fit <- function(spec, d, start_name, start = NULL) {
  fam <- switch(spec$family, binomial = binomial(link = spec$link), poisson = poisson(link = spec$link))
  messages <- character(0)
  for (tol in c(1e-14, 1e-12)) {
    fit <- withCallingHandlers(
      tryCatch(
        glmer(as.formula(spec$r_formula), data = d, family = fam, nAGQ = spec$nAGQ, offset = .offset,
              control = control_for(start_name, tol), start = start),
        error = function(e) { messages <<- c(messages, paste0("tolPwrss ", tol, ": ", conditionMessage(e))); NULL }),
      warning = function(w) { messages <<- c(messages, paste0("warning: ", conditionMessage(w)))
                              invokeRestart("muffleWarning") })
    if (!is.null(fit)) {
      ll <- as.numeric(logLik(fit))
      return(list(fit = fit, tol = tol, loglik_lme4 = ll, messages = messages))
    }
  }
  list(fit = NULL, tol = NA, loglik_lme4 = -Inf, messages = messages)
}

random_part <- function(fit) {
  vc <- as.data.frame(VarCorr(fit))
  sds <- vc[is.na(vc$var2), ]
  cors <- vc[!is.na(vc$var2), ]
  list(
    names = I(sds$var1),
    sd = as.list(setNames(sds$sdcor, sds$var1)),
    variance = as.list(setNames(sds$vcov, sds$var1)),
    corr = if (nrow(cors) > 0) as.list(setNames(cors$sdcor, paste(cors$var1, cors$var2, sep = ":"))) else NULL
  )
}

fit_case <- function(name, spec, data_dir) {
  d <- read.csv(file.path(data_dir, spec$data))
  d$.offset <- if (is.null(spec$offset)) 0 else d[[spec$offset]]
  attempts <- list(bobyqa = try_fit(spec, d, "bobyqa"), nelder_mead = try_fit(spec, d, "nelder_mead"))
  lls <- vapply(attempts, function(a) a$loglik_lme4, 0)
  best_name <- names(lls)[which.max(lls)]
  best <- attempts[[best_name]]
  if (is.null(best$fit)) stop(name, ": every lme4 fit failed: ", paste(unlist(lapply(attempts, `[[`, "messages")), collapse = "; "))
  start <- list(theta = getME(best$fit, "theta"), fixef = fixef(best$fit))
  attempts$polish <- try_fit(spec, d, "polish", start = start)
  # A later start replaces the kept one only if it is better by more than rounding (1e-9).
  best_name <- "bobyqa"
  for (candidate in c("nelder_mead", "polish")) {
    if (attempts[[candidate]]$loglik_lme4 > attempts[[best_name]]$loglik_lme4 + 1e-9) best_name <- candidate
  }
  fit <- attempts[[best_name]]$fit
  correction <- if (spec$nAGQ > 1) saturated_loglik(spec, d) else 0
  loglik_lme4 <- as.numeric(logLik(fit))
  se <- tryCatch(sqrt(diag(as.matrix(vcov(fit)))), error = function(e) rep(NA_real_, length(fixef(fit))))
  list(
    data = spec$data, formula = spec$formula, r_formula = spec$r_formula, family = spec$family,
    link = spec$link, nAGQ = spec$nAGQ, offset = spec$offset, trials = spec$trials, re = spec$re,
    notes = spec$notes,
    fixef = as.list(fixef(fit)),
    se = as.list(setNames(se, names(fixef(fit)))),
    theta = as.list(getME(fit, "theta")),
    random = random_part(fit),
    loglik = loglik_lme4 + correction,
    loglik_lme4 = loglik_lme4,
    saturated_loglik_added = correction,
    isSingular = isSingular(fit),
    nobs = nobs(fit),
    ngroups = as.numeric(ngrps(fit)[["g"]]),
    best_start = best_name,
    tolPwrss = attempts[[best_name]]$tol,
    starts = lapply(attempts, function(a) list(
      loglik = if (is.finite(a$loglik_lme4)) a$loglik_lme4 + correction else NULL,
      tolPwrss = a$tol,
      theta = if (is.null(a$fit)) NULL else as.list(getME(a$fit, "theta")),
      fixef = if (is.null(a$fit)) NULL else as.list(fixef(a$fit)),
      messages = I(c(a$messages, if (is.null(a$fit)) character(0) else a$fit@optinfo$conv$lme4$messages))
    ))
  )
}

main <- function() {
  opts <- parse_args(commandArgs(trailingOnly = TRUE))
  here <- script_dir()
  out_file <- if (is.null(opts$out)) file.path(here, "reference.json") else opts$out
  cases <- fromJSON(file.path(here, "cases.json"), simplifyVector = FALSE)
  wanted <- if (is.null(opts$cases)) names(cases) else opts$cases
  unknown <- setdiff(wanted, names(cases))
  if (length(unknown) > 0) stop("unknown case(s): ", paste(unknown, collapse = ", "))
  results <- list()
  for (name in wanted) {
    t0 <- proc.time()[["elapsed"]]
    results[[name]] <- fit_case(name, cases[[name]], here)
    message(sprintf("%-32s %-11s loglik %.6f  (%.1f s)", name, results[[name]]$best_start,
                    results[[name]]$loglik, proc.time()[["elapsed"]] - t0))
  }
  doc <- list(
    note = paste("lme4 glmer reference fits of the randomised data sets (make_data.py);",
                 "regenerate with Rscript tests/data/lme4_random/make_reference.R"),
    versions = list(R = R.version.string, lme4 = as.character(packageVersion("lme4")),
                    Matrix = as.character(packageVersion("Matrix"))),
    control = list(
      bobyqa = "glmerControl(optimizer = 'bobyqa', tolPwrss = TOL, optCtrl = list(rhoend = 1e-10, maxfun = 1e5))",
      nelder_mead = "glmerControl(optimizer = c('bobyqa', 'Nelder_Mead'), tolPwrss = TOL, optCtrl = list(maxfun = 1e5))",
      polish = "the bobyqa control, start = list(theta, fixef) of the better of the two fits above",
      TOL = "1e-14, or 1e-12 if PIRLS fails at 1e-14 (see tolPwrss per case)"
    ),
    fields = list(
      fixef = "fixef(fit) of the best start", se = "sqrt(diag(vcov(fit)))", theta = "getME(fit, 'theta')",
      random = "VarCorr(fit): SDs, variances and correlations (var1:var2)",
      loglik = "full marginal log-likelihood: logLik(fit) plus, for nAGQ > 1, the saturated log-likelihood lme4 leaves out",
      loglik_lme4 = "as.numeric(logLik(fit)) as lme4 reports it",
      isSingular = "lme4::isSingular(fit) (default tolerance 1e-4)",
      best_start = "which start gave the kept (highest log-likelihood) fit",
      starts = "log-likelihood (full), theta, fixef and messages of every start"
    ),
    cases = results
  )
  writeLines(toJSON(doc, auto_unbox = TRUE, digits = NA, pretty = TRUE, null = "null", na = "null"), out_file)
  message("wrote ", out_file)
}

main()
