# blme bglmer references (maximum a posteriori with blme's priors): Rscript make_reference.R -> reference.json
# Data: the course's crossover trial, lme4 boundary cases (../boundary), lesson 14's runaway trial (../runaway),
# and separated.csv (made here).
suppressPackageStartupMessages({library(lme4); library(blme); library(jsonlite)})
ctrl <- glmerControl(optimizer = "bobyqa", tolPwrss = 1e-12, optCtrl = list(rhoend = 1e-10, maxfun = 1e5))
# lme4's first PIRLS (nAGQ = 0: beta inside, no prior yet) diverges on separated data: start those at nAGQ = 1
ctrl_separated <- glmerControl(optimizer = "bobyqa", tolPwrss = 1e-12, nAGQ0initStep = FALSE,
                               optCtrl = list(rhoend = 1e-10, maxfun = 1e5))
crossover <- read.csv("../../../data/crossover.csv")
boundary <- function(name) read.csv(file.path("..", "boundary", paste0(name, ".csv")))

# Separated binary outcomes: every x > 0 a success, every x < 0 a failure (no finite MLE of beta_x)
set.seed(16)
sep <- data.frame(g = rep(1:20, each = 5), x = round(rnorm(100), 3), z = round(rnorm(100), 3))
sep$y <- as.integer(sep$x > 0)
write.csv(sep, "separated.csv", row.names = FALSE)

cases <- list(
  crossover_default = list(data = "crossover", formula = "outcome ~ trt * period + (1 | ID)",
                           cov = quote(wishart), fixef = NULL, nAGQ = 1),
  crossover_gamma = list(data = "crossover", formula = "outcome ~ trt * period + (1 | ID)",
                         cov = quote(gamma(shape = 2, rate = 0.5, posterior.scale = "sd")), fixef = NULL, nAGQ = 1),
  crossover_invgamma_var = list(data = "crossover", formula = "outcome ~ trt * period + (1 | ID)",
                                cov = quote(invgamma(shape = 1, scale = 2, posterior.scale = "var")),
                                fixef = NULL, nAGQ = 1),
  crossover_t = list(data = "crossover", formula = "outcome ~ trt * period + (1 | ID)",
                     cov = quote(wishart), fixef = quote(t), nAGQ = 1),
  crossover_normal = list(data = "crossover", formula = "outcome ~ trt * period + (1 | ID)",
                          cov = quote(wishart), fixef = quote(normal(sd = c(5, 2))), nAGQ = 1),
  crossover_nAGQ25 = list(data = "crossover", formula = "outcome ~ trt * period + (1 | ID)",
                          cov = quote(wishart), fixef = NULL, nAGQ = 25),
  singular_default = list(data = "bin_scalar_7", formula = "y ~ x + (1 | g)", cov = quote(wishart),
                          fixef = NULL, nAGQ = 1),
  singular_wishart_scale = list(data = "bin_scalar_7", formula = "y ~ x + (1 | g)",
                                cov = quote(wishart(df = 4, scale = 0.5)), fixef = NULL, nAGQ = 1),
  uncorrelated_default = list(data = "pois_small_0", formula = "y ~ x + (1 + x || g)", cov = quote(wishart),
                              fixef = NULL, nAGQ = 1),
  correlated_default = list(data = "bin_corr_19", formula = "y ~ x + (1 + x | g)", cov = quote(wishart),
                            fixef = NULL, nAGQ = 1),
  correlated_wishart_scale = list(data = "bin_corr_19", formula = "y ~ x + (1 + x | g)",
                                  cov = quote(wishart(df = 4, scale = c(1, 0.5))), fixef = NULL, nAGQ = 1),
  correlated_invwishart = list(data = "bin_corr_19", formula = "y ~ x + (1 + x | g)", cov = quote(invwishart),
                               fixef = NULL, nAGQ = 1),
  # lesson 14's simulated trial 130: every discordant pair of each sequence goes one way, the ML tau is infinite
  runaway_default = list(data = "crossover_sim130", formula = "outcome ~ trt * period + (1 | ID)",
                         cov = quote(wishart), fixef = NULL, nAGQ = 1),
  runaway_t = list(data = "crossover_sim130", formula = "outcome ~ trt * period + (1 | ID)",
                   cov = quote(wishart), fixef = quote(t), nAGQ = 1),
  runaway_gamma = list(data = "crossover_sim130", formula = "outcome ~ trt * period + (1 | ID)",
                       cov = quote(gamma(shape = 2, rate = 0.5)), fixef = NULL, nAGQ = 1),
  runaway_gamma_t = list(data = "crossover_sim130", formula = "outcome ~ trt * period + (1 | ID)",
                         cov = quote(gamma(shape = 2, rate = 0.5)), fixef = quote(t), nAGQ = 1),
  separated_normal = list(data = "separated", formula = "y ~ x + z + (1 | g)", cov = quote(wishart),
                          fixef = quote(normal), nAGQ = 1),
  separated_t = list(data = "separated", formula = "y ~ x + z + (1 | g)", cov = quote(wishart),
                     fixef = quote(t), nAGQ = 1),
  separated_t_flat_cov = list(data = "separated", formula = "y ~ x + z + (1 | g)", cov = NULL,
                              fixef = quote(t(df = 5, mean = 0, scale = c(9, 4))), nAGQ = 1)
)

out <- list()
for (name in names(cases)) {
  case <- cases[[name]]
  d <- switch(case$data, crossover = crossover, separated = sep,
              crossover_sim130 = read.csv("../runaway/crossover_sim130.csv"), boundary(case$data))
  cat(name, "\n")
  family <- if (startsWith(case$data, "pois")) "poisson" else "binomial"
  fit <- eval(bquote(bglmer(as.formula(.(case$formula)), data = d, family = .(family), nAGQ = .(case$nAGQ),
                            control = if (case$data == "separated") ctrl_separated else ctrl, cov.prior = .(case$cov), fixef.prior = .(case$fixef))))
  penalty <- unname(fit@devcomp$cmp["penalty"])
  out[[name]] <- list(data = case$data, formula = case$formula, family = family(fit)$family, nAGQ = case$nAGQ,
                      cov_prior = if (is.null(case$cov)) "NULL" else deparse(case$cov),
                      fixef_prior = if (is.null(case$fixef)) "NULL" else deparse(case$fixef),
                      fixef = as.list(fixef(fit)), theta = unname(getME(fit, "theta")),
                      loglik = as.numeric(logLik(fit)), penalty = penalty,
                      objective = -2 * as.numeric(logLik(fit)) + penalty,
                      se = unname(sqrt(diag(as.matrix(vcov(fit))))),
                      printed_priors = capture.output(print(fit@priors)))
}
out <- list(note = paste("blme bglmer fits (maximum a posteriori), glmerControl(optimizer = 'bobyqa',",
                         "tolPwrss = 1e-12, optCtrl = list(rhoend = 1e-10)); penalty = -2 log prior (blme's",
                         "devcomp 'penalty', with its normalising constants); objective = deviance + penalty"),
            R = R.version.string, lme4 = as.character(packageVersion("lme4")),
            blme = as.character(packageVersion("blme")), cases = out)
write(toJSON(out, digits = NA, auto_unbox = TRUE, pretty = TRUE), "reference.json")
