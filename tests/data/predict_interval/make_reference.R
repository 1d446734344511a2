# R references for fit.predict(newdata, interval = "confidence") (tests/test_predict_interval.py).
#
# glmer fits at tight settings (bobyqa, tolPwrss 1e-12, rhoend 1e-10): lme4's predict(re.form = NA) on new rows
# and the delta-method standard error sqrt(x' V x) from R's model matrix of the new rows and vcov(fit) (lme4's
# predict gives no standard error); glm fits: R's predict.glm(se.fit = TRUE) on the link and response scales.
# Intervals: eta +- q SE, q = qnorm(0.975) (qt(0.975, df.residual) for a quasi family), ends back-transformed.
# Each case stores the fit's coefficients and covariance too.
#
# Run from the repository root:  Rscript tests/data/predict_interval/make_reference.R [output.json]
suppressMessages({library(lme4); library(jsonlite)})
args <- commandArgs(trailingOnly = TRUE)
out_file <- if (length(args)) args[1] else "tests/data/predict_interval/reference.json"
control <- glmerControl(optimizer = "bobyqa", tolPwrss = 1e-12, optCtrl = list(rhoend = 1e-10, maxfun = 1e5))
ohio <- read.csv("data/ohio_cancer.csv"); ohio$logpop <- log(ohio$pop)
crossover <- read.csv("data/crossover.csv")
new_ohio <- data.frame(sex = c(1, 2, 1, 2), race = c(1, 1, 2, 2), year = c(1, 8, 15, 21), logpop = log(c(1e4, 2e4, 5e3, 1e5)))
new_cross <- data.frame(trt = c(0, 1, 0, 1), period = c(0, 0, 1, 1))

mixed_case <- function(fit, formula, newdata) {
  X <- model.matrix(delete.response(terms(fit, fixed.only = TRUE)), newdata)
  V <- as.matrix(vcov(fit))
  eta <- predict(fit, newdata, re.form = NA)
  se <- sqrt(rowSums((X %*% V) * X))
  q <- qnorm(0.975)
  list(formula = formula, beta = as.list(fixef(fit)), vcov = unname(V), newdata = newdata,
       link = list(fit = unname(eta), se_fit = unname(se), lower = unname(eta - q * se), upper = unname(eta + q * se)),
       response = list(fit = unname(predict(fit, newdata, re.form = NA, type = "response")),
                       se_fit = unname(family(fit)$mu.eta(eta) * se), lower = unname(family(fit)$linkinv(eta - q * se)),
                       upper = unname(family(fit)$linkinv(eta + q * se))))
}
glm_case <- function(fit, formula, family, newdata) {
  q <- if (family == "quasipoisson") qt(0.975, fit$df.residual) else qnorm(0.975)
  link <- predict(fit, newdata, se.fit = TRUE)
  response <- predict(fit, newdata, se.fit = TRUE, type = "response")
  list(formula = formula, family = family, newdata = newdata, beta = as.list(coef(fit)), vcov = unname(vcov(fit)),
       link = list(fit = unname(link$fit), se_fit = unname(link$se.fit), lower = unname(link$fit - q * link$se.fit),
                   upper = unname(link$fit + q * link$se.fit)),
       response = list(fit = unname(response$fit), se_fit = unname(response$se.fit),
                       lower = unname(family(fit)$linkinv(link$fit - q * link$se.fit)),
                       upper = unname(family(fit)$linkinv(link$fit + q * link$se.fit))))
}
cases <- list()
f_ohio <- "death ~ offset(logpop) + factor(sex) + factor(race) + year + (1 | county)"
cases$ohio <- mixed_case(glmer(as.formula(f_ohio), data = ohio, family = poisson, control = control), f_ohio, new_ohio)
f_cross <- "outcome ~ trt * period + (1 | ID)"
cases$crossover <- mixed_case(glmer(as.formula(f_cross), data = crossover, family = binomial, control = control),
                              f_cross, new_cross)
f_glm <- "outcome ~ trt * period"
cases$crossover_glm <- glm_case(glm(as.formula(f_glm), data = crossover, family = binomial), f_glm, "binomial", new_cross)
f_q <- "death ~ offset(logpop) + factor(sex) * factor(race) + year"
cases$ohio_quasipoisson_glm <- glm_case(glm(as.formula(f_q), data = ohio, family = quasipoisson), f_q, "quasipoisson",
                                        new_ohio)
writeLines(toJSON(list(info = list(R = R.version.string, lme4 = as.character(packageVersion("lme4"))), cases = cases),
                  digits = NA, auto_unbox = TRUE, pretty = TRUE, dataframe = "columns"), out_file)
