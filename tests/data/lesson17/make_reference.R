#!/usr/bin/env Rscript
# lme4/MASS reference fits of every model that lessons/17_richer_structures.ipynb and
# lessons/18_nested_crossed.ipynb fit (one lesson when this was written), for tests/test_lesson17.py and
# tests/test_lesson18.py (through tests/lesson_reference_fits.py).
#
# Usage (from anywhere):  Rscript tests/data/lesson17/make_reference.R [output.json]
#
# Data: the repository's data/ folder, read as the lesson reads it.
#   ohio: data/ohio_cancer.csv with logpop = log(pop), decade = (year - 11) / 10, obs = row number.
#   grouseticks: data/grouseticks.csv (lme4's grouseticks); YEAR, LOCATION, BROOD, INDEX as factors.
#   verbagg: data/verbagg.csv (lme4's VerbAgg); r2 a factor with levels N, Y (Y = success), Gender, btype,
#   situ factors with lme4's levels (alphabetical here, as in lme4).
#
# glmer: the better of two fits, bobyqa for both stages (tolPwrss 1e-12, rhoend 1e-10, maxfun 1e5) and
# lme4's default optimizers c("bobyqa", "Nelder_Mead") with tolPwrss 1e-12, then a bobyqa polish started
# from the better one; the best log-likelihood is kept.
# glmer.nb: lme4's glmer.nb is run and recorded; the shape theta is then refined by maximising the profile
# log-likelihood (glmer with negative.binomial(theta) at the control above) with optimize(tol = 1e-9) on
# log theta; se_theta = 1 / sqrt(-profile curvature) by central differences.
# glm (Poisson, quasi-Poisson): glm.control(epsilon = 1e-12, maxit = 100).

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
DATA <- file.path(script_dir(), "..", "..", "..", "data")

ohio <- read.csv(file.path(DATA, "ohio_cancer.csv"))
ohio$logpop <- log(ohio$pop)
ohio$decade <- (ohio$year - 11) / 10
ohio$obs <- seq_len(nrow(ohio))

grouse <- read.csv(file.path(DATA, "grouseticks.csv"))
for (column in c("INDEX", "BROOD", "LOCATION")) grouse[[column]] <- factor(grouse[[column]])

verbagg <- read.csv(file.path(DATA, "verbagg.csv"))
verbagg$r2 <- factor(verbagg$r2, levels = c("N", "Y"))
verbagg$Gender <- factor(verbagg$Gender, levels = c("F", "M"))
verbagg$btype <- factor(verbagg$btype, levels = c("curse", "scold", "shout"))
verbagg$situ <- factor(verbagg$situ, levels = c("other", "self"))
verbagg$id <- factor(verbagg$id)
verbagg$item <- factor(verbagg$item, levels = unique(verbagg$item))

OHIO <- "death ~ offset(logpop) + factor(sex)*factor(race) + decade"
GROUSE <- "TICKS ~ factor(YEAR) + cHEIGHT"
VERBAGG <- "r2 ~ Anger + Gender + btype + situ"

# name, kind, data, R formula; the lesson's formula is the same except where noted in the test
CASES <- list(
  list(name = "ohio_glm", kind = "glm", data = "ohio", formula = OHIO, family = "poisson"),
  list(name = "ohio_quasi", kind = "glm", data = "ohio", formula = OHIO, family = "quasipoisson"),
  list(name = "ohio_quasi_county", kind = "glm", data = "ohio", formula = paste(OHIO, "+ factor(county)"),
       family = "quasipoisson"),
  list(name = "ohio_county", kind = "glmer", data = "ohio", formula = paste(OHIO, "+ (1 | county)")),
  list(name = "ohio_slope", kind = "glmer", data = "ohio", formula = paste(OHIO, "+ (1 + decade | county)")),
  list(name = "ohio_county_obs", kind = "glmer", data = "ohio",
       formula = paste(OHIO, "+ (1 | county) + (1 | obs)")),
  list(name = "ohio_nb", kind = "glmer.nb", data = "ohio", formula = paste(OHIO, "+ (1 | county)")),
  list(name = "ohio_county_sexdecade", kind = "glmer", data = "ohio",
       formula = paste(OHIO, "+ factor(sex):decade + (1 | county)")),
  list(name = "ohio_nb_sexdecade", kind = "glmer.nb", data = "ohio",
       formula = paste(OHIO, "+ factor(sex):decade + (1 | county)")),
  list(name = "grouse_nested", kind = "glmer", data = "grouse",
       formula = paste(GROUSE, "+ (1 | LOCATION/BROOD) + (1 | INDEX)")),
  list(name = "grouse_nested_noobs", kind = "glmer", data = "grouse",
       formula = paste(GROUSE, "+ (1 | LOCATION/BROOD)")),
  list(name = "verbagg_crossed", kind = "glmer", data = "verbagg", family = "binomial",
       formula = paste(VERBAGG, "+ (1 | id) + (1 | item)")),
  list(name = "verbagg_id", kind = "glmer", data = "verbagg", family = "binomial",
       formula = paste(VERBAGG, "+ (1 | id)")),
  list(name = "verbagg_item", kind = "glmer", data = "verbagg", family = "binomial",
       formula = paste(VERBAGG, "+ (1 | item)"))
)

control_for <- function(optimizer, tol = 1e-12) {
  if (optimizer == "default") {
    glmerControl(optimizer = c("bobyqa", "Nelder_Mead"), tolPwrss = tol, optCtrl = list(maxfun = 1e5))
  } else {
    glmerControl(optimizer = "bobyqa", tolPwrss = tol, optCtrl = list(rhoend = 1e-10, maxfun = 1e5))
  }
}

quiet_glmer <- function(formula, d, fam, optimizer, start = NULL) {
  messages <- character(0)
  fit <- withCallingHandlers(
    glmer(formula, data = d, family = fam, control = control_for(optimizer), start = start),
    warning = function(w) {
      messages <<- c(messages, conditionMessage(w))
      invokeRestart("muffleWarning")
    })
  list(fit = fit, loglik = as.numeric(logLik(fit)), messages = c(messages, fit@optinfo$conv$lme4$messages))
}

best_glmer <- function(formula, d, fam) {
  tries <- list(bobyqa = quiet_glmer(formula, d, fam, "bobyqa"),
                default = quiet_glmer(formula, d, fam, "default"))
  first <- tries[[which.max(vapply(tries, function(t) t$loglik, 0))]]$fit
  tries$polish <- quiet_glmer(formula, d, fam, "bobyqa",
                              start = list(theta = getME(first, "theta"), fixef = fixef(first)))
  best <- names(tries)[which.max(vapply(tries, function(t) t$loglik, 0))]
  list(fit = tries[[best]]$fit, best = best,
       starts = lapply(tries, function(t) list(loglik = t$loglik, messages = I(t$messages))))
}

random_part <- function(fit) {
  vc <- as.data.frame(VarCorr(fit))
  sds <- vc[is.na(vc$var2), ]
  cors <- vc[!is.na(vc$var2), ]
  list(
    terms = lapply(seq_len(nrow(sds)), function(k) list(group = sds$grp[k], name = sds$var1[k],
                                                         sd = sds$sdcor[k], variance = sds$vcov[k])),
    corr = lapply(seq_len(nrow(cors)), function(k) list(group = cors$grp[k],
                                                         names = I(c(cors$var1[k], cors$var2[k])),
                                                         corr = cors$sdcor[k]))
  )
}

glmer_summary <- function(fit) {
  list(
    fixef = as.list(fixef(fit)),
    se = as.list(setNames(sqrt(diag(as.matrix(vcov(fit)))), names(fixef(fit)))),
    random = random_part(fit),
    loglik = as.numeric(logLik(fit)),
    aic = AIC(fit),
    df = attr(logLik(fit), "df"),
    pearson_chi2 = sum(residuals(fit, type = "pearson")^2),
    df_residual = df.residual(fit),
    isSingular = isSingular(fit),
    nobs = nobs(fit),
    ngroups = as.list(ngrps(fit))
  )
}

fit_case <- function(spec) {
  d <- get(spec$data)
  formula <- as.formula(spec$formula)
  family <- if (is.null(spec$family)) "poisson" else spec$family
  if (spec$kind == "glm") {
    fit <- glm(formula, data = d, family = family, control = glm.control(epsilon = 1e-12, maxit = 100))
    out <- list(fixef = as.list(coef(fit)), se = as.list(sqrt(diag(vcov(fit)))),
                dispersion = summary(fit)$dispersion, deviance = deviance(fit), df_residual = fit$df.residual)
    if (family == "poisson") out <- c(out, list(loglik = as.numeric(logLik(fit)), aic = AIC(fit)))
    return(out)
  }
  if (spec$kind == "glmer") {
    fam <- if (family == "binomial") binomial() else poisson()
    res <- best_glmer(formula, d, fam)
    return(c(glmer_summary(res$fit), list(best_start = res$best, starts = res$starts)))
  }
  # glmer.nb, with the shape refined on the profile log-likelihood
  raw <- glmer.nb(formula, data = d, control = control_for("bobyqa"))
  theta_raw <- getME(raw, "glmer.nb.theta")
  profile_fit <- function(theta) quiet_glmer(formula, d, MASS::negative.binomial(theta), "bobyqa")
  opt <- optimize(function(lt) profile_fit(exp(lt))$loglik, log(theta_raw) + c(-0.2, 0.2),
                  maximum = TRUE, tol = 1e-9)
  if (abs(opt$maximum - log(theta_raw)) > 0.19) stop(spec$name, ": profile maximum at the interval's edge")
  theta_hat <- exp(opt$maximum)
  h <- 1e-3 * theta_hat
  at <- profile_fit(theta_hat)
  curvature <- (profile_fit(theta_hat + h)$loglik - 2 * at$loglik + profile_fit(theta_hat - h)$loglik) / h^2
  out <- glmer_summary(at$fit)  # lme4 counts the shape in df (and AIC) of a negative.binomial(theta) fit
  c(out, list(nb_theta = theta_hat, se_theta = 1 / sqrt(-curvature), messages = I(at$messages),
              glmer_nb = list(theta = theta_raw, loglik = as.numeric(logLik(raw)), aic = AIC(raw),
                              fixef = as.list(fixef(raw)),
                              note = "lme4::glmer.nb as it stands, before the refinement of theta")))
}

results <- list()
for (spec in CASES) {
  t0 <- proc.time()[["elapsed"]]
  results[[spec$name]] <- c(spec[c("kind", "data", "formula")], fit_case(spec))
  message(sprintf("%-20s loglik %s  (%.1f s)", spec$name, format(results[[spec$name]]$loglik, digits = 12),
                  proc.time()[["elapsed"]] - t0))
}
doc <- list(
  note = "lme4/MASS fits of the models of lessons/17_richer_structures.ipynb and 18_nested_crossed.ipynb; made by tests/data/lesson17/make_reference.R",
  versions = list(R = R.version.string, lme4 = as.character(packageVersion("lme4")),
                  MASS = as.character(packageVersion("MASS")), Matrix = as.character(packageVersion("Matrix"))),
  cases = results
)
args <- commandArgs(trailingOnly = TRUE)
out_file <- if (length(args)) args[1] else file.path(script_dir(), "reference.json")
writeLines(toJSON(doc, auto_unbox = TRUE, digits = NA, pretty = TRUE, null = "null", na = "null"), out_file)
message("wrote ", out_file)
