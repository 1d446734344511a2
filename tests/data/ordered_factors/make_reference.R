# Reference for ordered factors (polynomial contrasts, R's contr.poly) in glm and glmer.
# Run from this directory: Rscript make_reference.R  (R 4.2, lme4 1.1-31, jsonlite)
suppressMessages({library(lme4); library(jsonlite)})
set.seed(20261129)
n <- 240
dose <- factor(sample(c("low", "mid", "high", "top"), n, replace = TRUE),
               levels = c("low", "mid", "high", "top"), ordered = TRUE)
g <- rep(1:24, each = 10)
x <- round(rnorm(n), 3)
eta <- -0.4 + c(0, 0.3, 0.9, 1.1)[as.integer(dose)] + 0.5 * x + rnorm(24, 0, 0.7)[g]
y <- rbinom(n, 1, plogis(eta))
counts <- rpois(n, exp(0.5 + 0.2 * as.integer(dose) + 0.3 * x))
d <- data.frame(y = y, counts = counts, dose = dose, x = x, g = g)

fit_table <- function(m) {
  s <- coef(summary(m))
  list(names = rownames(s), estimate = unname(s[, 1]), se = unname(s[, 2]), loglik = as.numeric(logLik(m)))
}
ctrl <- glmerControl(tolPwrss = 1e-12, optimizer = "bobyqa", optCtrl = list(rhoend = 1e-10))
out <- list(
  contr_poly = lapply(2:6, function(k) unname(contr.poly(k))),
  contr_poly_names = lapply(2:6, function(k) colnames(contr.poly(k))),
  data = list(y = y, counts = counts, dose = as.character(dose), x = x, g = g,
              dose_levels = levels(dose)),
  glm_binomial = fit_table(glm(y ~ dose + x, family = binomial, data = d)),
  glm_poisson_interaction = fit_table(glm(counts ~ dose * x, family = poisson, data = d)),
  glm_poisson_factor = fit_table(glm(counts ~ factor(dose) + x, family = poisson, data = d)),
  glmer_binomial = fit_table(glmer(y ~ dose + x + (1 | g), family = binomial, data = d, control = ctrl))
)
write_json(out, "reference.json", digits = NA, auto_unbox = TRUE, pretty = TRUE)
