# R references for tests/test_negative_binomial.py (issue 9 item 3) that tests/data/lme4_structures lacks:
# links other than log for MASS::glm.nb, a known shape (negative.binomial(theta)) for glm and glmer, and
# MASS's printed summary. Data: tests/data/lme4_structures/nb_sim1.csv and nb_sim2.csv.
# Run from the repository root:  Rscript tests/data/negative_binomial/make_reference.R [output.json]
suppressMessages({library(MASS); library(lme4); library(jsonlite)})
dir <- "tests/data/lme4_structures"
sim1 <- read.csv(file.path(dir, "nb_sim1.csv"))
sim2 <- read.csv(file.path(dir, "nb_sim2.csv"))
tight <- glm.control(epsilon = 1e-12, maxit = 100)

glm_nb_case <- function(fit) list(
  fixef = as.list(coef(fit)), se = as.list(sqrt(diag(vcov(fit)))), nb_theta = fit$theta,
  se_theta = fit$SE.theta, loglik = as.numeric(logLik(fit)), aic = AIC(fit), deviance = deviance(fit),
  null_deviance = fit$null.deviance, df_residual = fit$df.residual)
glm_case <- function(fit) list(
  fixef = as.list(coef(fit)), se = as.list(sqrt(diag(vcov(fit)))), loglik = as.numeric(logLik(fit)),
  aic = AIC(fit), deviance = deviance(fit), null_deviance = fit$null.deviance, df_residual = fit$df.residual)

cases <- list()
cases$glm_nb_sqrt_sim1 <- c(list(data = "nb_sim1.csv", formula = "y ~ x", link = "sqrt", theta = NULL),
                            glm_nb_case(glm.nb(y ~ x, data = sim1, link = sqrt, control = tight)))
cases$glm_nb_identity_sim2 <- c(list(data = "nb_sim2.csv", formula = "y ~ x", link = "identity", theta = NULL),
                                glm_nb_case(glm.nb(y ~ x, data = sim2, link = identity, control = tight)))
sim1w <- transform(sim1, w = 1 + (seq_len(nrow(sim1)) - 1) %% 3)  # prior weights 1, 2, 3, 1, ...
cases$glm_nb_weights_sim1 <- c(list(data = "nb_sim1.csv", formula = "y ~ x", link = "log", theta = NULL,
                                    weights = "w = 1 + (row - 1) mod 3"),
                               glm_nb_case(glm.nb(y ~ x, data = sim1w, weights = w, control = tight)))
cases$glm_fixed_theta_sim1 <- c(list(data = "nb_sim1.csv", formula = "y ~ x", link = "log", theta = 2),
                                glm_case(glm(y ~ x, data = sim1, family = negative.binomial(2), control = tight)))
fit <- glmer(y ~ x + offset(logexpo) + (1 | g), data = sim2, family = negative.binomial(0.8),
             control = glmerControl(optimizer = "bobyqa", tolPwrss = 1e-14,
                                    optCtrl = list(rhoend = 1e-10, maxfun = 1e5)))
cases$glmer_fixed_theta_sim2 <- list(data = "nb_sim2.csv", formula = "y ~ x + offset(logexpo) + (1 | g)",
                                     link = "log", theta = 0.8, fixef = as.list(fixef(fit)),
                                     loglik = as.numeric(logLik(fit)), sd = attr(VarCorr(fit)$g, "stddev")[[1]],
                                     df = attr(logLik(fit), "df"))
# MASS's printed summary (the lines after the coefficient table), for the layout
printed <- capture.output(print(summary(glm.nb(y ~ x + offset(logexpo), data = sim2))))
cases$summary_glm_nb_sim2 <- list(data = "nb_sim2.csv", formula = "y ~ x + offset(logexpo)",
                                  printed = printed[grep("^\\(Dispersion", printed):length(printed)])
nb <- glmer.nb(y ~ x + (1 | g), data = sim1)
cases$summary_glmer_nb_sim1 <- list(data = "nb_sim1.csv", formula = "y ~ x + (1 | g)",
                                    printed = grep("Family:", capture.output(print(summary(nb))), value = TRUE),
                                    df = attr(logLik(nb), "df"))
out <- list(note = "made by tests/data/negative_binomial/make_reference.R",
            versions = list(R = R.version.string, MASS = as.character(packageVersion("MASS")),
                            lme4 = as.character(packageVersion("lme4"))),
            cases = cases)
args <- commandArgs(trailingOnly = TRUE)
writeLines(toJSON(out, auto_unbox = TRUE, digits = NA, pretty = TRUE, null = "null"),
           if (length(args)) args[1] else "tests/data/negative_binomial/reference.json")
