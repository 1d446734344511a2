# lme4's and glmmTMB's own messages and values for lesson 20 ("GLMMs in practice with lme4").
# Run from this folder: Rscript make_reference.R  (writes reference.json; R 4.2, lme4 1.1-31, glmmTMB 1.1.5).
# The lesson reads reference.json, so the book builds without R; tests/test_lesson20_r.py re-runs this
# script and compares its output with the stored file.
suppressPackageStartupMessages({
  library(lme4)
  library(glmmTMB)
  library(jsonlite)
})

ohio <- read.csv("../ohio_cancer.csv")
ohio$decade <- (ohio$year - 11) / 10
ohio$sex <- factor(ohio$sex)
ohio$race <- factor(ohio$race)
singular_data <- read.csv("singular.csv")
runaway <- read.csv("runaway.csv")

# Every warning and message of an expression, and its value (or its error's text).
caught <- function(expr) {
  texts <- character(0)
  value <- withCallingHandlers(
    tryCatch(expr, error = function(e) structure(conditionMessage(e), class = "fit_error")),
    warning = function(w) {
      texts <<- c(texts, conditionMessage(w))
      invokeRestart("muffleWarning")
    },
    message = function(m) {
      texts <<- c(texts, trimws(conditionMessage(m)))
      invokeRestart("muffleMessage")
    })
  list(value = value, warnings = texts)
}

# What lme4's checkConv computes from the optimiser's finite-difference derivatives (optinfo$derivs):
# the gradient scaled by the Cholesky factor of the Hessian, min(|scaled|, |raw|) per component, and the
# eigenvalues of the Hessian its "very large eigenvalue" and "degenerate Hessian" messages test.
conv_checks <- function(fit) {
  derivs <- fit@optinfo$derivs
  scaled <- solve(chol(derivs$Hessian), derivs$gradient)
  mingrad <- pmin(abs(scaled), abs(derivs$gradient))
  eig <- eigen(derivs$Hessian, symmetric = TRUE, only.values = TRUE)$values
  list(max_grad = max(mingrad), max_grad_component = which.max(mingrad),
       max_abs_gradient = max(abs(derivs$gradient)),
       hessian_eigen_max = max(eig), hessian_eigen_min = min(eig),
       messages = as.list(fit@optinfo$conv$lme4$messages),
       optimizer_code = fit@optinfo$conv$opt)
}

summarise_fit <- function(fit) {
  vc <- as.data.frame(VarCorr(fit))
  list(fixef = as.list(fixef(fit)), theta = unname(getME(fit, "theta")),
       sdcor = setNames(as.list(vc$sdcor), paste(vc$var1, vc$var2, sep = ".")),
       loglik = as.numeric(logLik(fit)), singular = isSingular(fit))
}

lme4_case <- function(formula, data, family = poisson, ...) {
  run <- caught(glmer(formula, data = data, family = family, ...))
  fit <- run$value
  c(list(formula = deparse1(formula), warnings = as.list(run$warnings)), summarise_fit(fit),
    list(conv = conv_checks(fit)))
}

tight <- glmerControl(optimizer = "bobyqa", tolPwrss = 1e-12, optCtrl = list(rhoend = 1e-10, maxfun = 1e5))
f_year <- death ~ offset(log(pop)) + sex * race + year + (1 | county)
f_year_slope <- death ~ offset(log(pop)) + sex * race + year + (1 + year | county)
f_decade_slope <- death ~ offset(log(pop)) + sex * race + decade + (1 + decade | county)
f_decade <- death ~ offset(log(pop)) + sex * race + decade + (1 | county)

out <- list(
  versions = list(R = R.version.string, lme4 = as.character(packageVersion("lme4")),
                  glmmTMB = as.character(packageVersion("glmmTMB"))),
  tolerances = list(check_conv_grad = glmerControl()$checkConv$check.conv.grad$tol,
                    check_conv_singular = glmerControl()$checkConv$check.conv.singular$tol,
                    check_conv_hess = glmerControl()$checkConv$check.conv.hess$tol),
  ohio_year = lme4_case(f_year, ohio),
  ohio_year_slope = lme4_case(f_year_slope, ohio),
  ohio_decade_slope = lme4_case(f_decade_slope, ohio),
  ohio_decade_slope_tight = lme4_case(f_decade_slope, ohio, control = tight),
  singular = lme4_case(y ~ x + (1 | g), singular_data, family = binomial)
)

# allFit: every optimiser of lme4's table whose package is installed. optimx and dfoptim are not, and with
# both missing allFit 1.1-31 fails (it subsets its table twice with the same 7-row mask), so this is allFit's
# own loop: refit with each optimiser, maxfun = 1e5, nloptwrap with each of its two algorithms.
default_slope <- suppressWarnings(glmer(f_year_slope, data = ohio, family = poisson))
optimizers <- list(bobyqa = list("bobyqa", list(maxfun = 1e5)),
                   Nelder_Mead = list("Nelder_Mead", list(maxfun = 1e5)),
                   nlminbwrap = list("nlminbwrap", list(maxfun = 1e5)),
                   nloptwrap.NLOPT_LN_NELDERMEAD = list("nloptwrap", list(algorithm = "NLOPT_LN_NELDERMEAD",
                                                                           maxeval = 1e5)),
                   nloptwrap.NLOPT_LN_BOBYQA = list("nloptwrap", list(algorithm = "NLOPT_LN_BOBYQA", maxeval = 1e5)))
refit_all <- function(fit) lapply(optimizers, function(o) {
  run <- caught(update(fit, control = glmerControl(optimizer = o[[1]], optCtrl = o[[2]])))
  c(list(warnings = as.list(run$warnings)), summarise_fit(run$value))
})
out$allfit_year_slope <- refit_all(default_slope)

# A runaway SD (the maximum-likelihood estimate of tau is infinite): Laplace, every optimiser, 25 nodes
f_crossover <- outcome ~ trt * period + (1 | ID)
out$runaway_laplace <- lme4_case(f_crossover, runaway, family = binomial)
out$allfit_runaway_laplace <- refit_all(glmer(f_crossover, data = runaway, family = binomial))
out$runaway_agq25_error <- as.character(caught(glmer(f_crossover, data = runaway, family = binomial,
                                                     nAGQ = 25))$value)

# nAGQ > 1 with a random slope: lme4 refuses
nagq <- caught(glmer(f_decade_slope, data = ohio, family = poisson, nAGQ = 5))
out$nagq_slope_error <- as.character(nagq$value)

# glmmTMB: Poisson, NB2 (Var = mu + mu^2/k), NB1 (Var = mu (1 + phi)) and NB2 with a constant zero-inflation
tmb_case <- function(family, ziformula = ~0) {
  run <- caught(glmmTMB(f_decade, data = ohio, family = family, ziformula = ziformula))
  fit <- run$value
  zi <- if (length(fixef(fit)$zi)) unname(fixef(fit)$zi) else NULL
  list(warnings = as.list(run$warnings), fixef = as.list(fixef(fit)$cond),
       county_sd = unname(attr(VarCorr(fit)$cond$county, "stddev")),
       dispersion = sigma(fit), loglik = as.numeric(logLik(fit)), aic = AIC(fit),
       df = attr(logLik(fit), "df"), zi_logit = zi,
       converged = fit$fit$convergence == 0 && isTRUE(fit$sdr$pdHess))
}
out$glmmtmb <- list(poisson = tmb_case(poisson), nbinom2 = tmb_case(nbinom2), nbinom1 = tmb_case(nbinom1),
                    nbinom2_zi = tmb_case(nbinom2, ~1))

writeLines(toJSON(out, auto_unbox = TRUE, digits = NA, pretty = TRUE, null = "null"), "reference.json")
