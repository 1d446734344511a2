#!/usr/bin/env Rscript
# lme4 references for what an lme4 user expects of a fitted GLMM (issue 8, item 5):
# prior weights, residuals of every type, conditional variances of the random effects (condVar),
# VarCorr (numbers and printed layout), predictions for new levels, and refit with a new response.
#
# Usage (from anywhere):  Rscript tests/data/lme4_features/make_reference.R
# Writes the data sets (CSV, generated here with set.seed) and reference.json next to this script.
# Every fit uses tolPwrss = 1e-14 and bobyqa with rhoend = 1e-10 (see tests/data/lme4_extra for why).
# nAGQ = 1 throughout: lme4's logLik() then includes every constant (prior weights multiply the
# log-density: Poisson -2 * sum(w * dpois(y, mu, log = TRUE)), binomial with cbind(y, n - y) and weights w:
# sum(w * dbinom(y, n, mu, log = TRUE)); a proportion y with weights = n is the same as cbind(n y, n - n y)).

suppressPackageStartupMessages({
  library(lme4)
  library(jsonlite)
})

script_dir <- function() {
  file_arg <- grep("^--file=", commandArgs(trailingOnly = FALSE), value = TRUE)
  if (length(file_arg) == 0) return(getwd())
  dirname(normalizePath(sub("^--file=", "", file_arg[1])))
}
OUT <- script_dir()

CONTROL <- glmerControl(tolPwrss = 1e-14, optimizer = c("bobyqa", "bobyqa"),
                        optCtrl = list(rhoend = 1e-10, maxfun = 1e5))

# ---- data -------------------------------------------------------------------------------------
set.seed(20261129)
make_groups <- function(n_groups, min_size, max_size) {
  sizes <- sample(min_size:max_size, n_groups, replace = TRUE)
  factor(rep(sprintf("G%02d", seq_len(n_groups)), sizes))
}

# Poisson with non-integer prior weights, random intercept
g <- make_groups(30, 3, 10)
n <- length(g); b <- rnorm(nlevels(g), 0, 0.6)[g]; x <- rnorm(n)
pois_w <- data.frame(g = g, x = round(x, 4), w = round(runif(n, 0.5, 2.5), 2))
pois_w$y <- rpois(n, exp(0.4 + 0.5 * pois_w$x + b))
write.csv(pois_w, file.path(OUT, "pois_w.csv"), row.names = FALSE)

# Binomial: successes y out of n (also given as a proportion p with weights n), integer prior weights w
g <- make_groups(25, 2, 8)
n <- length(g); b <- rnorm(nlevels(g), 0, 0.8)[g]; x <- rnorm(n)
binom <- data.frame(g = g, x = round(x, 4), n = sample(1:12, n, replace = TRUE), w = sample(1:3, n, replace = TRUE))
binom$y <- rbinom(n, binom$n, plogis(-0.3 + 0.7 * binom$x + b))
binom$p <- binom$y / binom$n
write.csv(binom, file.path(OUT, "binom.csv"), row.names = FALSE)

# Binary logit, correlated random intercept and slope
g <- make_groups(40, 5, 12)
n <- length(g); x <- rnorm(n)
u <- matrix(rnorm(2 * nlevels(g)), ncol = 2) %*% chol(matrix(c(1.0, 0.3, 0.3, 0.5), 2))
logit_slope <- data.frame(g = g, x = round(x, 4))
logit_slope$y <- rbinom(n, 1, plogis(0.2 + 0.8 * logit_slope$x + u[g, 1] + u[g, 2] * logit_slope$x))
write.csv(logit_slope, file.path(OUT, "logit_slope.csv"), row.names = FALSE)

# Poisson, offset, correlated and uncorrelated slopes
g <- make_groups(30, 4, 9)
n <- length(g); x <- rnorm(n)
u <- matrix(rnorm(2 * nlevels(g)), ncol = 2) %*% chol(matrix(c(0.36, -0.06, -0.06, 0.09), 2))
pois_slope <- data.frame(g = g, x = round(x, 4), logexpo = round(log(runif(n, 0.5, 3)), 4))
pois_slope$y <- rpois(n, exp(0.3 + pois_slope$logexpo + 0.4 * pois_slope$x + u[g, 1] + u[g, 2] * pois_slope$x))
write.csv(pois_slope, file.path(OUT, "pois_slope.csv"), row.names = FALSE)

# Binary probit, random intercept (non-canonical link: working and Pearson residuals differ in form)
g <- make_groups(35, 4, 10)
n <- length(g); x <- rnorm(n)
probit <- data.frame(g = g, x = round(x, 4))
probit$y <- rbinom(n, 1, pnorm(-0.2 + 0.6 * probit$x + rnorm(nlevels(g), 0, 0.7)[g]))
write.csv(probit, file.path(OUT, "probit.csv"), row.names = FALSE)

# ---- fits ------------------------------------------------------------------------------------------
# "py" lists what glmmteach.glmer is given; "r_call" builds the lme4 fit.
CASES <- list(
  pois_w = list(data = "pois_w.csv", py = list(formula = "y ~ x + (1 | g)", family = "poisson", weights = "w"),
                fit = function(d) glmer(y ~ x + (1 | g), data = d, family = poisson, weights = w, control = CONTROL),
                note = "Poisson, non-integer prior weights, random intercept"),
  binom_prop_w = list(data = "binom.csv", py = list(formula = "p ~ x + (1 | g)", family = "binomial", weights = "n"),
                      fit = function(d) glmer(p ~ x + (1 | g), data = d, family = binomial, weights = n,
                                              control = CONTROL),
                      note = "binomial proportions with weights = trials (the same model as trials = n)"),
  binom_trials = list(data = "binom.csv", py = list(formula = "y ~ x + (1 | g)", family = "binomial", trials = "n"),
                      fit = function(d) glmer(cbind(y, n - y) ~ x + (1 | g), data = d, family = binomial,
                                              control = CONTROL),
                      note = "binomial successes out of trials"),
  binom_trials_w = list(data = "binom.csv",
                        py = list(formula = "y ~ x + (1 | g)", family = "binomial", trials = "n", weights = "w"),
                        fit = function(d) glmer(cbind(y, n - y) ~ x + (1 | g), data = d, family = binomial,
                                                weights = w, control = CONTROL),
                        note = "binomial with trials and integer prior weights w (each row counts w times)"),
  logit_slope = list(data = "logit_slope.csv", py = list(formula = "y ~ x + (1 + x | g)", family = "binomial"),
                     fit = function(d) glmer(y ~ x + (1 + x | g), data = d, family = binomial, control = CONTROL),
                     note = "binary logit, correlated random intercept and slope"),
  pois_slope = list(data = "pois_slope.csv",
                    py = list(formula = "y ~ x + offset(logexpo) + (1 + x | g)", family = "poisson"),
                    fit = function(d) glmer(y ~ x + offset(logexpo) + (1 + x | g), data = d, family = poisson,
                                            control = CONTROL),
                    note = "Poisson with offset, correlated random intercept and slope"),
  pois_uncorr = list(data = "pois_slope.csv",
                     py = list(formula = "y ~ x + offset(logexpo) + (1 + x || g)", family = "poisson"),
                     fit = function(d) glmer(y ~ x + offset(logexpo) + (1 + x || g), data = d, family = poisson,
                                             control = CONTROL),
                     note = "Poisson with offset, uncorrelated random intercept and slope"),
  probit = list(data = "probit.csv", py = list(formula = "y ~ x + (1 | g)", family = "binomial", link = "probit"),
                fit = function(d) glmer(y ~ x + (1 | g), data = d, family = binomial(link = "probit"),
                                        control = CONTROL),
                note = "binary probit, random intercept")
)

named <- function(x) as.list(x)

postvar <- function(fit) {
  re <- ranef(fit, condVar = TRUE)$g
  pv <- attr(re, "postVar")  # r x r x groups
  if (is.list(pv)) {  # (1 + x || g): one array per term; the effects are independent a posteriori too
    r <- sum(vapply(pv, function(a) dim(a)[1], 1))
    full <- array(0, c(r, r, dim(pv[[1]])[3]))
    at <- 0
    for (a in pv) { k <- dim(a)[1]; full[at + seq_len(k), at + seq_len(k), ] <- a; at <- at + k }
    pv <- full
  }
  list(levels = I(rownames(re)), names = I(colnames(re)),
       modes = lapply(re, I),
       # one r x r matrix per group, rows listed: [[group]][[row]][col]
       postVar = lapply(seq_len(dim(pv)[3]), function(k) {
         m <- matrix(pv[, , k], nrow = dim(pv)[1])
         lapply(seq_len(nrow(m)), function(i) I(m[i, ]))
       }))
}

varcorr <- function(fit) {
  vc <- as.data.frame(VarCorr(fit))
  list(grp = I(vc$grp), var1 = I(vc$var1), var2 = I(ifelse(is.na(vc$var2), "", vc$var2)),
       vcov = I(vc$vcov), sdcor = I(vc$sdcor),
       print_sd = I(capture.output(print(VarCorr(fit)))),
       print_var_sd = I(capture.output(print(VarCorr(fit), comp = c("Variance", "Std.Dev.")))))
}

new_rows <- function(d) {
  # two rows of a seen group, one of an unseen level "NEW"; first level's x shifted
  nd <- d[c(1, 2, 3), ]
  nd$g <- as.character(nd$g)
  nd$g[3] <- "NEW"
  nd$x <- nd$x + c(0.5, -0.25, 1)
  nd
}

fit_summary <- function(fit) {
  list(fixef = named(fixef(fit)), theta = named(getME(fit, "theta")), loglik = as.numeric(logLik(fit)))
}

result <- list()
for (name in names(CASES)) {
  spec <- CASES[[name]]
  d <- read.csv(file.path(OUT, spec$data))
  fit <- spec$fit(d)
  nd <- new_rows(d)
  out <- c(list(data = spec$data, py = spec$py, note = spec$note), fit_summary(fit))
  out$resid <- list(deviance = I(unname(residuals(fit, type = "deviance"))),
                    pearson = I(unname(residuals(fit, type = "pearson"))),
                    response = I(unname(residuals(fit, type = "response"))),
                    working = I(unname(residuals(fit, type = "working"))))
  out$fitted <- I(unname(fitted(fit)))
  out$ranef <- postvar(fit)
  out$varcorr <- varcorr(fit)
  out$newdata <- list(g = I(nd$g), x = I(nd$x))
  if ("logexpo" %in% names(nd)) out$newdata$logexpo <- I(nd$logexpo)
  out$predict_new_link <- I(unname(predict(fit, newdata = nd, allow.new.levels = TRUE, type = "link")))
  out$predict_new_response <- I(unname(predict(fit, newdata = nd, allow.new.levels = TRUE, type = "response")))
  out$predict_new_error <- tryCatch({predict(fit, newdata = nd); ""}, error = function(e) conditionMessage(e))
  # refit with a response simulated by lme4 (drawn once here, stored, so the test needs no R)
  if (name %in% c("pois_w", "logit_slope", "binom_trials")) {
    set.seed(7)
    sim <- simulate(fit, nsim = 1)[[1]]
    new_y <- if (is.matrix(sim)) sim[, 1] else sim
    out$refit <- c(list(new_response = I(unname(as.numeric(new_y)))), fit_summary(refit(fit, sim)))
  }
  result[[name]] <- out
}

# Null distribution of the likelihood-ratio statistic for the random intercept of the probit data:
# responses simulated from the fitted GLM (no random effect), both models refitted (what bootstrap_lrt does).
probit_d <- read.csv(file.path(OUT, "probit.csv"))
null_glm <- glm(y ~ x, data = probit_d, family = binomial(link = "probit"))
set.seed(99)
NSIM <- 200
lrt <- numeric(NSIM)
for (k in seq_len(NSIM)) {
  probit_d$ys <- simulate(null_glm)[[1]]
  f0 <- glm(ys ~ x, data = probit_d, family = binomial(link = "probit"))
  f1 <- suppressMessages(suppressWarnings(glmer(ys ~ x + (1 | g), data = probit_d,
                                                family = binomial(link = "probit"), control = CONTROL)))
  lrt[k] <- max(0, 2 * (as.numeric(logLik(f1)) - as.numeric(logLik(f0))))
}
bootstrap_null <- list(nsim = NSIM, zero_fraction = mean(lrt < 1e-6), above_2.706 = mean(lrt > 2.706),
                       mean = mean(lrt), lrt = I(lrt))

meta <- list(R = R.version.string, lme4 = as.character(packageVersion("lme4")),
             control = "glmerControl(tolPwrss = 1e-14, optimizer = c('bobyqa', 'bobyqa'), optCtrl = list(rhoend = 1e-10, maxfun = 1e5))")
writeLines(toJSON(list(meta = meta, cases = result, bootstrap_null_probit = bootstrap_null), digits = NA, auto_unbox = TRUE, pretty = TRUE, null = "null"),
           file.path(OUT, "reference.json"))
cat("wrote", file.path(OUT, "reference.json"), "\n")
