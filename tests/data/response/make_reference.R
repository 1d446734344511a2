# References for R's response convention with prior weights (tests/test_response.py): a binomial glm with trials
# and prior weights (R's binomial()$aic: each row's log-density of its trials, times its prior weight, since some
# row has more than one trial), the same with 0/1 responses (no row above 1 trial: the prior weights are then the
# trials, dbinom(w y, w)), and lme4's glmer with trials and prior weights (tolPwrss 1e-12, bobyqa).
# Run from this directory: Rscript make_reference.R  (R 4.2, lme4 1.1-31, jsonlite)
suppressMessages({library(lme4); library(jsonlite)})
set.seed(20261203)
n <- 120
G <- 15
g <- rep(seq_len(G), each = n / G)
x <- round(rnorm(n), 4)
trials <- sample(1:6, n, replace = TRUE)
w <- sample(c(1, 2, 3), n, replace = TRUE)
u <- rnorm(G, 0, 0.8)
succ <- rbinom(n, trials, plogis(-0.2 + 0.7 * x + u[g]))
y <- rbinom(n, 1, plogis(0.3 - 0.6 * x))
d <- data.frame(succ = succ, trials = trials, y = y, x = x, w = w, g = g)
write.csv(d, "weights.csv", row.names = FALSE)

glm_values <- function(fit) {
  list(names = names(coef(fit)), estimate = unname(coef(fit)), se = unname(sqrt(diag(vcov(fit)))),
       loglik = as.numeric(logLik(fit)), aic = AIC(fit), bic = BIC(fit), deviance = deviance(fit),
       nobs = nobs(fit), df_residual = df.residual(fit))
}
trials_fit <- glm(cbind(succ, trials - succ) ~ x, binomial, d, weights = w)
binary_fit <- glm(y ~ x, binomial, d, weights = w)
control <- glmerControl(optimizer = "bobyqa", tolPwrss = 1e-12, optCtrl = list(rhoend = 1e-10, maxfun = 1e5))
mixed <- glmer(cbind(succ, trials - succ) ~ x + (1 | g), d, binomial, weights = w, control = control)
ref <- list(
  glm_trials_weights = glm_values(trials_fit),
  glm_binary_weights = glm_values(binary_fit),
  glmer_trials_weights = list(names = names(fixef(mixed)), estimate = unname(fixef(mixed)),
                              se = unname(sqrt(diag(as.matrix(vcov(mixed))))), theta = unname(getME(mixed, "theta")),
                              loglik = as.numeric(logLik(mixed)))
)
writeLines(toJSON(ref, digits = NA, auto_unbox = TRUE, pretty = TRUE), "reference.json")
