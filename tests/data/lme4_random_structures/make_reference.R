#!/usr/bin/env Rscript
# Fit every case of cases.json (written by make_data.py) with lme4 (and glmmTMB) and write reference.json.
#
# Usage (from anywhere):
#   Rscript tests/data/lme4_random_structures/make_reference.R [--out FILE] [--cases name1,name2] [--on-error skip]
# Defaults: all cases; data, cases.json and reference.json next to this script; stop at a case no lme4 start
# can fit (--on-error skip leaves it out instead, for scans: see scan.py).
#
# lme4 (Laplace, nAGQ = 1) from three starts, the best log-likelihood kept, as in
# tests/data/lme4_random/make_reference.R:
#   "bobyqa"      glmerControl(optimizer = "bobyqa", tolPwrss = TOL,
#                              optCtrl = list(rhoend = 1e-10, maxfun = 1e5))   (both stages)
#   "nelder_mead" glmerControl(optimizer = c("bobyqa", "Nelder_Mead"), tolPwrss = TOL,
#                              optCtrl = list(maxfun = 1e5))                    (lme4's default pair)
#   "polish"      the "bobyqa" control again, started from the better of the two fits' (theta, beta).
#   "from_glmmTMB" only where glmmTMB's log-likelihood is above all three by more than 1e-6: the "bobyqa"
#                 control without the nAGQ = 0 first stage, started from glmmTMB's estimates (theta = each
#                 term's lower Cholesky factor of glmmTMB's covariance matrix). lme4 and glmmteach can both stop on a boundary below the optimum.
# TOL is 1e-14; if PIRLS fails at 1e-14 (step-halving) the fit is redone at 1e-12 (stored per fit).
# A later start replaces the kept one only if better by more than 1e-9.
#
# Also recorded, not used as a candidate: lme4's default fit (glmerControl() as a user calls it) with its
# time and log-likelihood ("default"), for the timing comparison; and glmmTMB's Laplace fit ("glmmTMB")
# for the canonical links (logit, log), where its Laplace approximation is lme4's (for probit glmmTMB
# uses the observed, lme4 the expected information). `(x || a)` is given to glmmTMB as diag(1 + x | a).

suppressPackageStartupMessages({
  library(lme4)
  library(glmmTMB)
  library(jsonlite)
})

script_dir <- function() {
  file_arg <- grep("^--file=", commandArgs(trailingOnly = FALSE), value = TRUE)
  if (length(file_arg) == 0) return(getwd())
  dirname(normalizePath(sub("^--file=", "", file_arg[1])))
}

parse_args <- function(args) {
  opts <- list(out = NULL, cases = NULL, on_error = "stop")
  i <- 1
  while (i <= length(args)) {
    key <- args[i]
    if (i == length(args)) stop("option ", key, " needs a value")
    value <- args[i + 1]
    if (key == "--out") opts$out <- value
    else if (key == "--cases") opts$cases <- strsplit(value, ",", fixed = TRUE)[[1]]
    else if (key == "--on-error" && value %in% c("stop", "skip")) opts$on_error <- value
    else stop("unknown option ", key, " ", value, " (expected --out, --cases, --on-error stop|skip)")
    i <- i + 2
  }
  opts
}

control_for <- function(start, tol) {
  if (start == "nelder_mead") {
    glmerControl(optimizer = c("bobyqa", "Nelder_Mead"), tolPwrss = tol, optCtrl = list(maxfun = 1e5))
  } else if (start == "from_glmmTMB") {  # no nAGQ = 0 first stage: it would leave the start for its own optimum
    glmerControl(optimizer = "bobyqa", tolPwrss = tol, optCtrl = list(rhoend = 1e-10, maxfun = 1e5),
                 nAGQ0initStep = FALSE)
  } else {
    glmerControl(optimizer = "bobyqa", tolPwrss = tol, optCtrl = list(rhoend = 1e-10, maxfun = 1e5))
  }
}

r_family <- function(spec) {
  switch(spec$family, binomial = binomial(link = spec$link), poisson = poisson(link = spec$link))
}

# Warnings are recorded, not printed.
quietly <- function(expr, messages) {
  withCallingHandlers(expr, warning = function(w) {
    messages(paste0("warning: ", conditionMessage(w)))
    invokeRestart("muffleWarning")
  })
}

# One glmer fit; fit NULL (with the error messages) if it fails at both tolerances.
try_fit <- function(spec, d, start_name, start = NULL) {
  msgs <- character(0)
  add <- function(m) msgs <<- c(msgs, m)
  t0 <- proc.time()[["elapsed"]]
  for (tol in c(1e-14, 1e-12)) {
    fit <- quietly(tryCatch(
      glmer(as.formula(spec$r_formula), data = d, family = r_family(spec), offset = .offset,
            control = control_for(start_name, tol), start = start),
      error = function(e) { add(paste0("tolPwrss ", tol, ": ", conditionMessage(e))); NULL }), add)
    if (!is.null(fit)) {
      return(list(fit = fit, tol = tol, loglik = as.numeric(logLik(fit)), messages = msgs,
                  seconds = proc.time()[["elapsed"]] - t0))
    }
  }
  list(fit = NULL, tol = NA, loglik = -Inf, messages = msgs, seconds = proc.time()[["elapsed"]] - t0)
}

# lme4's default fit, as a user makes it (timing and log-likelihood only).
default_fit <- function(spec, d) {
  msgs <- character(0)
  add <- function(m) msgs <<- c(msgs, m)
  t0 <- proc.time()[["elapsed"]]
  fit <- quietly(tryCatch(glmer(as.formula(spec$r_formula), data = d, family = r_family(spec), offset = .offset),
                          error = function(e) { add(conditionMessage(e)); NULL }), add)
  list(seconds = proc.time()[["elapsed"]] - t0, loglik = if (is.null(fit)) NULL else as.numeric(logLik(fit)),
       messages = I(msgs))
}

# SDs as one entry per (group, effect), lme4's VarCorr names; correlations per vector term.
random_part <- function(vc) {
  sds <- vc[is.na(vc$var2), ]
  cors <- vc[!is.na(vc$var2), ]
  list(
    terms = lapply(seq_len(nrow(sds)), function(k) list(group = sds$grp[k], name = sds$var1[k], sd = sds$sdcor[k])),
    corr = lapply(seq_len(nrow(cors)), function(k) list(group = cors$grp[k], names = I(c(cors$var1[k], cors$var2[k])),
                                                         corr = cors$sdcor[k]))
  )
}

tmb_formula <- function(r_formula) {
  gsub("\\(([^()|]*)\\|\\|([^()]*)\\)", "diag(1 + \\1|\\2)", r_formula)
}

tmb_fit <- function(spec, d) {
  if (!(spec$link %in% c("logit", "log"))) return(NULL)
  msgs <- character(0)
  add <- function(m) msgs <<- c(msgs, m)
  t0 <- proc.time()[["elapsed"]]
  fit <- quietly(tryCatch(
    glmmTMB(as.formula(tmb_formula(spec$r_formula)), data = d, family = r_family(spec), offset = d$.offset),
    error = function(e) { add(conditionMessage(e)); NULL }), add)
  seconds <- proc.time()[["elapsed"]] - t0
  if (is.null(fit)) return(list(loglik = NULL, messages = I(msgs), seconds = seconds))
  if (!is.finite(as.numeric(logLik(fit)))) return(list(loglik = NULL, messages = I(c(msgs, "log-likelihood not finite")),
                                                       seconds = seconds))
  vc <- VarCorr(fit)$cond
  sd_terms <- list()
  for (grp in names(vc)) {
    s <- attr(vc[[grp]], "stddev")
    for (k in seq_along(s)) sd_terms[[length(sd_terms) + 1]] <- list(group = grp, name = names(s)[k], sd = s[[k]])
  }
  list(
    formula = tmb_formula(spec$r_formula),
    loglik = as.numeric(logLik(fit)),
    fixef = as.list(fixef(fit)$cond),
    sd = sd_terms,
    pdHess = fit$sdr$pdHess,
    convergence = fit$fit$convergence,
    messages = I(c(msgs, fit$fit$message)),
    seconds = seconds,
    object = fit
  )
}

# lme4's theta (each term's lower Cholesky factor, column by column, in lme4's term order) from glmmTMB's
# covariance matrices: a start for lme4 at glmmTMB's optimum.
theta_from_glmmTMB <- function(lme4_fit, tmb_fit) {
  vc <- VarCorr(tmb_fit)$cond
  base <- sub("\\.[0-9]+$", "", names(vc))
  cnms <- getME(lme4_fit, "cnms")
  theta <- numeric(0)
  for (k in seq_along(cnms)) {
    effects <- cnms[[k]]
    hit <- which(base == names(cnms)[k] & vapply(vc, function(m) all(effects %in% rownames(m)), TRUE))[1]
    S <- as.matrix(vc[[hit]])[effects, effects, drop = FALSE]
    L <- tryCatch(t(chol(S)), error = function(e) t(chol(S + diag(1e-8, nrow(S)))))
    theta <- c(theta, L[lower.tri(L, diag = TRUE)])
  }
  theta
}

fit_case <- function(name, spec, data_dir) {
  d <- read.csv(file.path(data_dir, spec$data))
  d$.offset <- if (is.null(spec$offset)) 0 else d[[spec$offset]]
  attempts <- list(bobyqa = try_fit(spec, d, "bobyqa"), nelder_mead = try_fit(spec, d, "nelder_mead"))
  lls <- vapply(attempts, function(a) a$loglik, 0)
  first <- attempts[[which.max(lls)]]
  if (is.null(first$fit)) stop(name, ": every lme4 fit failed: ", paste(unlist(lapply(attempts, `[[`, "messages")), collapse = "; "))
  attempts$polish <- try_fit(spec, d, "polish", start = list(theta = getME(first$fit, "theta"), fixef = fixef(first$fit)))
  best_name <- "bobyqa"
  for (candidate in c("nelder_mead", "polish")) {
    if (attempts[[candidate]]$loglik > attempts[[best_name]]$loglik + 1e-9) best_name <- candidate
  }
  # glmmTMB higher than every lme4 start: lme4 once more, from glmmTMB's optimum (a fourth candidate).
  tmb <- tmb_fit(spec, d)
  if (!is.null(tmb$loglik) && tmb$loglik > attempts[[best_name]]$loglik + 1e-6) {
    start <- list(theta = theta_from_glmmTMB(attempts[[best_name]]$fit, tmb$object), fixef = fixef(tmb$object)$cond)
    attempts$from_glmmTMB <- try_fit(spec, d, "from_glmmTMB", start = start)
    if (attempts$from_glmmTMB$loglik > attempts[[best_name]]$loglik + 1e-9) best_name <- "from_glmmTMB"
  }
  tmb$object <- NULL
  fit <- attempts[[best_name]]$fit
  se <- tryCatch(sqrt(diag(as.matrix(vcov(fit)))), error = function(e) rep(NA_real_, length(fixef(fit))))
  list(
    data = spec$data, formula = spec$formula, r_formula = spec$r_formula, family = spec$family,
    link = spec$link, offset = spec$offset, trials = spec$trials, structure = spec$structure, notes = spec$notes,
    fixef = as.list(fixef(fit)),
    se = as.list(setNames(se, names(fixef(fit)))),
    theta = as.list(getME(fit, "theta")),
    hessian = I(fit@optinfo$derivs$Hessian),
    random = random_part(as.data.frame(VarCorr(fit))),
    loglik = as.numeric(logLik(fit)),
    isSingular = isSingular(fit),
    nobs = nobs(fit),
    ngroups = as.list(ngrps(fit)),
    best_start = best_name,
    tolPwrss = attempts[[best_name]]$tol,
    starts = lapply(attempts, function(a) list(
      loglik = if (is.finite(a$loglik)) a$loglik else NULL,
      tolPwrss = a$tol,
      seconds = a$seconds,
      theta = if (is.null(a$fit)) NULL else as.list(getME(a$fit, "theta")),
      fixef = if (is.null(a$fit)) NULL else as.list(fixef(a$fit)),
      messages = I(c(a$messages, if (is.null(a$fit)) character(0) else a$fit@optinfo$conv$lme4$messages))
    )),
    default = default_fit(spec, d),
    glmmTMB = tmb
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
    fitted <- if (opts$on_error == "skip") {
      tryCatch(fit_case(name, cases[[name]], here), error = function(e) { message("SKIPPED ", conditionMessage(e)); NULL })
    } else {
      fit_case(name, cases[[name]], here)
    }
    if (is.null(fitted)) next
    results[[name]] <- fitted
    tmb <- results[[name]]$glmmTMB
    message(sprintf("%-30s %-11s loglik %.6f  glmmTMB %+.2e  (%.1f s)", name, results[[name]]$best_start,
                    results[[name]]$loglik,
                    if (is.null(tmb$loglik)) NA else tmb$loglik - results[[name]]$loglik,
                    proc.time()[["elapsed"]] - t0))
  }
  doc <- list(
    note = paste("lme4 glmer reference fits (and glmmTMB cross-checks) of the randomised several-term data sets",
                 "(make_data.py); regenerate with Rscript tests/data/lme4_random_structures/make_reference.R"),
    versions = list(R = R.version.string, lme4 = as.character(packageVersion("lme4")),
                    glmmTMB = as.character(packageVersion("glmmTMB")),
                    Matrix = as.character(packageVersion("Matrix"))),
    control = list(
      bobyqa = "glmerControl(optimizer = 'bobyqa', tolPwrss = TOL, optCtrl = list(rhoend = 1e-10, maxfun = 1e5))",
      nelder_mead = "glmerControl(optimizer = c('bobyqa', 'Nelder_Mead'), tolPwrss = TOL, optCtrl = list(maxfun = 1e5))",
      polish = "the bobyqa control, start = list(theta, fixef) of the better of the two fits above",
      from_glmmTMB = "only where glmmTMB is above the three by > 1e-6: the bobyqa control (nAGQ0initStep = FALSE) from glmmTMB's estimates",
      TOL = "1e-14, or 1e-12 if PIRLS fails at 1e-14 (see tolPwrss per case)",
      default = "glmer with lme4's default glmerControl() (timing only; not a candidate)",
      glmmTMB = "glmmTMB defaults, Laplace; logit and log links only; (x || a) as diag(1 + x | a)"
    ),
    fields = list(
      fixef = "fixef(fit) of the best start", se = "sqrt(diag(vcov(fit)))", theta = "getME(fit, 'theta')",
      hessian = "fit@optinfo$derivs$Hessian: lme4's finite-difference Hessian of the deviance in (theta, beta)",
      random = "VarCorr(fit): one entry per (group, effect) with its SD; correlations per vector term",
      loglik = "logLik(fit) (Laplace, every constant)", isSingular = "lme4::isSingular(fit) (tolerance 1e-4)",
      best_start = "which start gave the kept (highest log-likelihood) fit",
      starts = "log-likelihood, elapsed seconds, theta, fixef and messages of every start"
    ),
    cases = results
  )
  writeLines(toJSON(doc, auto_unbox = TRUE, digits = NA, pretty = TRUE, null = "null", na = "null"), out_file)
  message("wrote ", out_file)
}

main()
