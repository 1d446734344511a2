# MASS's confint.glm (profile intervals) for glm families whose dispersion is estimated, for
# GLMResults.conf_int(method = "profile") (tests/test_profile_ci.py). MASS's profile.glm uses
# tau = sign(b - b_hat) sqrt((D(b) - D_hat) / dispersion), the dispersion from summary(), and the normal
# cut-off; confint() interpolates tau on a grid (spline: good to about 1e-4), so the exact roots of the same
# tau (uniroot on the refitted deviance, tol 1e-12) are stored too.
#
# Run from the repository root:  Rscript tests/data/profile_ci/make_glm_reference.R [output.json]
suppressMessages({library(MASS); library(jsonlite)})
args <- commandArgs(trailingOnly = TRUE)
out_file <- if (length(args)) args[1] else "tests/data/profile_ci/glm_reference.json"
ticks <- read.csv("data/grouseticks.csv")
ticks$logTICKS <- log(ticks$TICKS + 1); ticks$TICKS1 <- ticks$TICKS + 1  # (glmmteach takes a column as the response)
ohio <- read.csv("data/ohio_cancer.csv"); ohio$logpop <- log(ohio$pop)
fits <- list(
  ohio_quasipoisson = list(glm(death ~ offset(logpop) + factor(sex) * factor(race), family = quasipoisson, data = ohio),
                           "death ~ offset(logpop) + factor(sex) * factor(race)", "quasipoisson", "ohio"),
  ticks_gaussian = list(glm(logTICKS ~ factor(YEAR) + cHEIGHT, family = gaussian, data = ticks),
                        "logTICKS ~ factor(YEAR) + cHEIGHT", "gaussian", "grouseticks"),
  ticks_gamma = list(glm(TICKS1 ~ factor(YEAR) + cHEIGHT, family = Gamma(link = "log"), data = ticks),
                     "TICKS1 ~ factor(YEAR) + cHEIGHT", "Gamma", "grouseticks")
)
z <- qnorm(0.975)
exact_root <- function(fit, j, side) {
  X <- model.matrix(fit); y <- fit$y; w <- fit$prior.weights
  off <- if (is.null(fit$offset)) rep(0, length(y)) else fit$offset
  disp <- summary(fit)$dispersion; d0 <- deviance(fit); b0 <- coef(fit)[j]; se <- sqrt(diag(vcov(fit)))[j]
  tau <- function(b) {
    refit <- glm.fit(X[, -j, drop = FALSE], y, weights = w, offset = off + X[, j] * b, family = family(fit),
                     control = glm.control(epsilon = 1e-14, maxit = 100))
    sign(b - b0) * sqrt(max((refit$deviance - d0) / disp, 0))
  }
  far <- b0 + side * 4 * z * se
  uniroot(function(b) tau(b) - side * z, sort(c(b0, far)), tol = 1e-12)$root
}
out <- lapply(fits, function(item) {
  fit <- item[[1]]
  ci <- suppressMessages(confint(fit))
  p <- length(coef(fit))
  list(formula = item[[2]], family = item[[3]], data = item[[4]], dispersion = summary(fit)$dispersion,
       rows = names(coef(fit)), confint_lower = unname(ci[, 1]), confint_upper = unname(ci[, 2]),
       lower = sapply(seq_len(p), exact_root, fit = fit, side = -1),
       upper = sapply(seq_len(p), exact_root, fit = fit, side = 1))
})
write_json(list(r_version = R.version.string, MASS = as.character(packageVersion("MASS")), cases = out),
           out_file, digits = NA, auto_unbox = TRUE, pretty = TRUE)
