#!/usr/bin/env Rscript
# Reference fits for general random-effects structures and the negative binomial (issue 9, items 3-4).
#
# Usage (from anywhere):
#   Rscript tests/data/lme4_structures/make_reference.R [--out FILE] [--cases name1,name2]
#
# Data: the CSVs written by make_data.py; cbpp.csv, written here from lme4's cbpp (herd and period as
# integers, obs = row number); the Ohio lung-cancer data from the repository's data/ohio_cancer.csv
# with logpop = log(pop), decade = (year - 11) / 10 and obs = row number (the test derives the same
# columns from glmmteach.datasets.load_ohio_cancer()).
#
# glmer fits: three starts as in tests/data/lme4_random/make_reference.R ("bobyqa": optimizer bobyqa for
# both stages, tolPwrss 1e-14 (1e-12 if PIRLS fails), rhoend 1e-10, maxfun 1e5; "nelder_mead": lme4's
# default c("bobyqa", "Nelder_Mead"); "polish": bobyqa from the better of the two), best log-likelihood kept.
#
# glmer.nb: lme4's glmer.nb (tolerance 5e-5 on log theta by default) is run first and recorded; then the
# shape theta is refined by maximising the profile log-likelihood l(theta) = max over (beta, theta_RE) of
# the glmer fit with family negative.binomial(theta) (bobyqa control above) with optimize(tol = 1e-9) on
# log theta around glmer.nb's value. lme4 reports no SE for theta; se_theta = 1 / sqrt(-l''(theta)) by
# central differences of the profile (equal to the theta entry of the inverse Hessian in (theta, beta,
# theta_RE)). MASS::glm.nb: glm.control(epsilon = 1e-12, maxit = 100); SE.theta is MASS's (expected
# information for theta with mu fixed); se_theta_profile is the profile curvature, as for glmer.nb.

suppressPackageStartupMessages({
  library(lme4)
  library(MASS)
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

HERE <- script_dir()

# ---- data ------------------------------------------------------------------------------------------
write_cbpp <- function() {
  d <- lme4::cbpp
  out <- data.frame(herd = as.integer(as.character(d$herd)), incidence = d$incidence, size = d$size,
                    period = as.integer(as.character(d$period)), obs = seq_len(nrow(d)))
  write.csv(out, file.path(HERE, "cbpp.csv"), row.names = FALSE, quote = FALSE)
}

load_data <- function(name) {
  if (name == "ohio") {
    d <- read.csv(file.path(HERE, "..", "..", "..", "data", "ohio_cancer.csv"))
    d$logpop <- log(d$pop)
    d$decade <- (d$year - 11) / 10
    d$obs <- seq_len(nrow(d))
    return(d)
  }
  read.csv(file.path(HERE, name))
}

# ---- cases -----------------------------------------------------------------------------------------
# kind: "glmer" (lme4::glmer), "glmer.nb" (lme4::glmer.nb) or "glm.nb" (MASS::glm.nb).
# "formula" is what glmmteach takes (trials by column name); "r_formula" what R is given.
case <- function(name, kind, data, formula, r_formula = formula, family = "poisson", link = "log",
                 trials = NULL, structure = "", note = "") {
  list(name = name, kind = kind, data = data, formula = formula, r_formula = r_formula, family = family,
       link = link, nAGQ = 1, offset = NULL, trials = trials, structure = structure, note = note)
}

OHIO_FIXED <- "death ~ offset(logpop) + factor(sex) + factor(race) + decade"

CASES <- list(
  case("crossed_binary", "glmer", "crossed_binary.csv", "y ~ x + (1 | a) + (1 | b)", family = "binomial",
       link = "logit", structure = "crossed", note = "binary, a (40) crossed with b (25), 60% of cells"),
  case("crossed_poisson", "glmer", "crossed_poisson.csv", "y ~ x + (1 | a) + (1 | b)",
       structure = "crossed", note = "Poisson, a (30) fully crossed with b (20), one row per cell"),
  case("crossed_singular", "glmer", "crossed_singular.csv", "y ~ x + (1 | a) + (1 | b)", family = "binomial",
       link = "logit", structure = "crossed, singular", note = "binary, true SD of b is 0"),
  case("crossed_slope", "glmer", "crossed_slope.csv", "y ~ x + (1 + x | a) + (1 | b)",
       structure = "crossed with a correlated random slope",
       note = "Poisson, subjects a (30) x items b (15), random slope of x by subject"),
  case("crossed_three", "glmer", "crossed_three.csv", "y ~ x + (1 | a) + (1 | b) + (1 | c)",
       structure = "three crossed factors", note = "Poisson, 20 x 15 x 5 levels, random combinations"),
  case("nested_binary", "glmer", "nested_binary.csv", "y ~ x + (1 | school/class)", family = "binomial",
       link = "logit", structure = "nested, three levels",
       note = "pupils in classes (labelled 1-4 within school) in 25 schools"),
  case("nested_poisson", "glmer", "nested_poisson.csv", "y ~ x + (1 | school/class)",
       structure = "nested, three levels", note = "Poisson counts of pupils in classes in schools"),
  case("interaction", "glmer", "interaction.csv", "y ~ x + (1 | a:b)", structure = "interaction of factors",
       note = "one effect per (a, b) cell, 8 x 6 cells, 5 rows each"),
  case("interaction_with_main", "glmer", "interaction.csv", "y ~ x + (1 | a) + (1 | a:b)",
       structure = "interaction of factors plus a main effect (= (1 | a/b))",
       note = "same data as interaction"),
  case("vector_and_scalar", "glmer", "vector_scalar.csv", "y ~ x + z + (1 + x | g) + (0 + z | g)",
       structure = "vector term next to a scalar term of the same factor",
       note = "correlated (intercept, x) by g and an independent z slope by g"),
  case("ohio_county_obs", "glmer", "ohio", paste(OHIO_FIXED, "+ (1 | county) + (1 | obs)"),
       structure = "county + observation-level effect",
       note = "Ohio lung cancer (data/ohio_cancer.csv): 88 counties + 7,392 observation-level effects"),
  case("cbpp_herd_obs", "glmer", "cbpp.csv", "incidence ~ factor(period) + (1 | herd) + (1 | obs)",
       "cbind(incidence, size - incidence) ~ factor(period) + (1 | herd) + (1 | obs)", family = "binomial",
       link = "logit", trials = "size", structure = "herd + observation-level effect",
       note = "lme4's cbpp (Lesnoff et al. 2004), binomial with trials"),
  case("nb_glmer_ohio", "glmer.nb", "ohio", paste(OHIO_FIXED, "+ (1 | county)"),
       family = "negative_binomial", structure = "negative binomial GLMM",
       note = "glmer.nb on the Ohio county model"),
  case("nb_glmer_sim1", "glmer.nb", "nb_sim1.csv", "y ~ x + (1 | g)", family = "negative_binomial",
       structure = "negative binomial GLMM", note = "simulated NB2, shape 2, 50 groups x 8"),
  case("nb_glmer_sim2", "glmer.nb", "nb_sim2.csv", "y ~ x + offset(logexpo) + (1 | g)",
       family = "negative_binomial", structure = "negative binomial GLMM",
       note = "simulated NB2, shape 0.8, offset, 30 unbalanced groups"),
  case("nb_glm_ohio", "glm.nb", "ohio", OHIO_FIXED, family = "negative_binomial",
       structure = "negative binomial GLM", note = "MASS::glm.nb on the Ohio fixed effects"),
  case("nb_glm_sim1", "glm.nb", "nb_sim1.csv", "y ~ x", family = "negative_binomial",
       structure = "negative binomial GLM", note = "MASS::glm.nb, nb_sim1 without the random effect"),
  case("nb_glm_sim2", "glm.nb", "nb_sim2.csv", "y ~ x + offset(logexpo)", family = "negative_binomial",
       structure = "negative binomial GLM", note = "MASS::glm.nb, nb_sim2 without the random effect")
)

# ---- glmer with several starts ---------------------------------------------------------------------
control_for <- function(start, tol) {
  if (start == "nelder_mead") {
    glmerControl(optimizer = c("bobyqa", "Nelder_Mead"), tolPwrss = tol, optCtrl = list(maxfun = 1e5))
  } else {
    glmerControl(optimizer = "bobyqa", tolPwrss = tol, optCtrl = list(rhoend = 1e-10, maxfun = 1e5))
  }
}

try_fit <- function(formula, d, fam, start_name, start = NULL) {
  messages <- character(0)
  for (tol in c(1e-14, 1e-12)) {
    fit <- withCallingHandlers(
      tryCatch(glmer(formula, data = d, family = fam, control = control_for(start_name, tol), start = start),
               error = function(e) { messages <<- c(messages, paste0("tolPwrss ", tol, ": ", conditionMessage(e)))
                                     NULL }),
      warning = function(w) { messages <<- c(messages, paste0("warning: ", conditionMessage(w)))
                              invokeRestart("muffleWarning") })
    if (!is.null(fit)) return(list(fit = fit, tol = tol, loglik = as.numeric(logLik(fit)), messages = messages))
  }
  list(fit = NULL, tol = NA, loglik = -Inf, messages = messages)
}

best_glmer <- function(formula, d, fam, starts = c("bobyqa", "nelder_mead")) {
  attempts <- lapply(setNames(starts, starts), function(s) try_fit(formula, d, fam, s))
  lls <- vapply(attempts, function(a) a$loglik, 0)
  first <- attempts[[which.max(lls)]]
  if (is.null(first$fit)) stop("every glmer fit failed: ", paste(unlist(lapply(attempts, `[[`, "messages")), collapse = "; "))
  attempts$polish <- try_fit(formula, d, fam, "polish",
                             start = list(theta = getME(first$fit, "theta"), fixef = fixef(first$fit)))
  best <- "bobyqa"
  for (candidate in setdiff(names(attempts), "bobyqa")) {
    if (attempts[[candidate]]$loglik > attempts[[best]]$loglik + 1e-9) best <- candidate
  }
  list(fit = attempts[[best]]$fit, best = best, tol = attempts[[best]]$tol, attempts = attempts)
}

random_part <- function(fit) {
  vc <- as.data.frame(VarCorr(fit))
  sds <- vc[is.na(vc$var2), ]
  cors <- vc[!is.na(vc$var2), ]
  list(
    terms = lapply(seq_len(nrow(sds)), function(k) list(group = sds$grp[k], name = sds$var1[k],
                                                         sd = sds$sdcor[k], variance = sds$vcov[k])),
    corr = lapply(seq_len(nrow(cors)), function(k) list(group = cors$grp[k], names = I(c(cors$var1[k], cors$var2[k])),
                                                         corr = cors$sdcor[k]))
  )
}

glmer_summary <- function(fit) {
  list(
    fixef = as.list(fixef(fit)),
    se = as.list(setNames(sqrt(diag(as.matrix(vcov(fit)))), names(fixef(fit)))),
    theta = as.list(getME(fit, "theta")),
    random = random_part(fit),
    loglik = as.numeric(logLik(fit)),
    isSingular = isSingular(fit),
    nobs = nobs(fit),
    ngroups = as.list(ngrps(fit))
  )
}

starts_summary <- function(attempts) {
  lapply(attempts, function(a) list(
    loglik = if (is.finite(a$loglik)) a$loglik else NULL, tolPwrss = a$tol,
    messages = I(c(a$messages, if (is.null(a$fit)) character(0) else a$fit@optinfo$conv$lme4$messages))))
}

r_family <- function(spec) {
  switch(spec$family, binomial = binomial(link = spec$link), poisson = poisson(link = spec$link))
}

fit_glmer <- function(spec, d) {
  res <- best_glmer(as.formula(spec$r_formula), d, r_family(spec))
  c(glmer_summary(res$fit), list(best_start = res$best, tolPwrss = res$tol, starts = starts_summary(res$attempts)))
}

# ---- negative binomial -----------------------------------------------------------------------------
nb_profile <- function(formula, d, theta) {
  fam <- MASS::negative.binomial(theta)
  try_fit(formula, d, fam, "bobyqa")
}

fit_glmer_nb <- function(spec, d) {
  formula <- as.formula(spec$r_formula)
  raw <- glmer.nb(formula, data = d, control = control_for("bobyqa", 1e-12))
  theta_raw <- getME(raw, "glmer.nb.theta")
  profile <- function(log_theta) nb_profile(formula, d, exp(log_theta))$loglik
  opt <- optimize(profile, log(theta_raw) + c(-0.2, 0.2), maximum = TRUE, tol = 1e-9)
  theta_hat <- exp(opt$maximum)
  if (abs(opt$maximum - log(theta_raw)) > 0.19) stop(spec$name, ": profile maximum at the edge of the interval")
  h <- 1e-3 * theta_hat
  l0 <- nb_profile(formula, d, theta_hat)
  lp <- nb_profile(formula, d, theta_hat + h)$loglik
  lm <- nb_profile(formula, d, theta_hat - h)$loglik
  curvature <- (lp - 2 * l0$loglik + lm) / h^2
  out <- glmer_summary(l0$fit)
  c(out, list(
    nb_theta = theta_hat,
    se_theta = 1 / sqrt(-curvature),
    tolPwrss = l0$tol,
    messages = I(l0$messages),
    glmer_nb = list(theta = theta_raw, loglik = as.numeric(logLik(raw)), fixef = as.list(fixef(raw)),
                    note = "lme4::glmer.nb as it stands (tol 5e-5 on log theta), before the refinement")
  ))
}

fit_glm_nb <- function(spec, d) {
  fit <- glm.nb(as.formula(spec$r_formula), data = d, control = glm.control(epsilon = 1e-12, maxit = 100))
  profile <- function(theta) {
    as.numeric(logLik(glm(as.formula(spec$r_formula), data = d, family = negative.binomial(theta),
                          control = glm.control(epsilon = 1e-14, maxit = 100))))
  }
  h <- 1e-3 * fit$theta
  curvature <- (profile(fit$theta + h) - 2 * profile(fit$theta) + profile(fit$theta - h)) / h^2
  list(
    fixef = as.list(coef(fit)),
    se = as.list(sqrt(diag(vcov(fit)))),
    nb_theta = fit$theta,
    se_theta = fit$SE.theta,
    se_theta_profile = 1 / sqrt(-curvature),
    loglik = as.numeric(logLik(fit)),
    twologlik = fit$twologlik,
    deviance = deviance(fit),
    df_residual = fit$df.residual,
    nobs = nobs(fit),
    converged = fit$converged
  )
}

# ---- main ------------------------------------------------------------------------------------------
main <- function() {
  opts <- parse_args(commandArgs(trailingOnly = TRUE))
  out_file <- if (is.null(opts$out)) file.path(HERE, "reference.json") else opts$out
  names_all <- vapply(CASES, function(s) s$name, "")
  wanted <- if (is.null(opts$cases)) names_all else opts$cases
  unknown <- setdiff(wanted, names_all)
  if (length(unknown) > 0) stop("unknown case(s): ", paste(unknown, collapse = ", "))
  if ("cbpp_herd_obs" %in% wanted) write_cbpp()
  results <- list()
  for (spec in CASES) {
    if (!(spec$name %in% wanted)) next
    t0 <- proc.time()[["elapsed"]]
    d <- load_data(spec$data)
    fitted <- switch(spec$kind, glmer = fit_glmer(spec, d), glmer.nb = fit_glmer_nb(spec, d),
                     glm.nb = fit_glm_nb(spec, d))
    name <- spec$name
    spec$name <- NULL
    results[[name]] <- c(spec, fitted)
    message(sprintf("%-24s loglik %.6f  (%.1f s)", name, fitted$loglik,
                    proc.time()[["elapsed"]] - t0))
  }
  doc <- list(
    note = paste("lme4/MASS reference fits for general random-effects structures and the negative binomial;",
                 "regenerate with Rscript tests/data/lme4_structures/make_reference.R"),
    versions = list(R = R.version.string, lme4 = as.character(packageVersion("lme4")),
                    MASS = as.character(packageVersion("MASS")), Matrix = as.character(packageVersion("Matrix"))),
    data = list(
      ohio = "data/ohio_cancer.csv with logpop = log(pop), decade = (year - 11) / 10, obs = row number 1..7392",
      cbpp = "cbpp.csv: lme4::cbpp (Lesnoff et al. 2004, contagious bovine pleuropneumonia; lme4 1.1-31) with herd and period as integers and obs = row number",
      other = "CSV files written by make_data.py"
    ),
    control = list(
      glmer = "best of bobyqa / c('bobyqa', 'Nelder_Mead') / bobyqa polish, tolPwrss 1e-14 (1e-12 if PIRLS fails), rhoend 1e-10",
      glmer.nb = "shape refined by optimize(tol = 1e-9) on log theta of the profile log-likelihood (glmer with negative.binomial(theta), bobyqa control)",
      glm.nb = "MASS::glm.nb, glm.control(epsilon = 1e-12, maxit = 100)"
    ),
    fields = list(
      kind = "glmer, glmer.nb or glm.nb", formula = "for glmmteach (trials by column name)",
      r_formula = "as given to R", loglik = "logLik(fit): full log-likelihood (Laplace for glmer)",
      random = "VarCorr(fit): one entry per (group, effect) with SD and variance; correlations",
      nb_theta = "negative binomial shape theta (Var = mu + mu^2 / theta)",
      se_theta = "glmer.nb: 1/sqrt(-profile curvature); glm.nb: MASS's SE.theta",
      se_theta_profile = "glm.nb: 1/sqrt(-profile curvature)"
    ),
    cases = results
  )
  writeLines(toJSON(doc, auto_unbox = TRUE, digits = NA, pretty = TRUE, null = "null", na = "null"), out_file)
  message("wrote ", out_file)
}

main()
