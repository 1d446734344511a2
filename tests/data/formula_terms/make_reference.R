# Reference for model-matrix columns as R builds them (tests/test_formula_terms.py):
# - interactions of factors with several contrast columns each: R varies the FIRST factor fastest;
# - arithmetic inside function calls (log(x + 5), I(x^2), ...): R's column names and a fit.
# Run from this directory: Rscript make_reference.R  (R 4.2, lme4 1.1-31, jsonlite)
suppressMessages({library(lme4); library(jsonlite)})
set.seed(20261129)
n <- 120
a <- sample(1:3, n, replace = TRUE)
b <- sample(c("p", "q", "r"), n, replace = TRUE)
c4 <- sample(c("w", "v", "u", "t"), n, replace = TRUE)
x <- round(runif(n, 0, 3), 3)
g <- rep(1:20, each = 6)
eta <- 0.2 + 0.3 * (a == 2) - 0.2 * (b == "r") + 0.4 * (a == 3 & b == "q") + 0.3 * log(x + 5) + rnorm(20, 0, 0.5)[g]
counts <- rpois(n, exp(eta))
d <- data.frame(counts = counts, a = a, b = b, c4 = c4, x = x, g = g)

matrix_of <- function(f) {
  m <- model.matrix(f, d)
  list(formula = paste(deparse(f, width.cutoff = 500L), collapse = ""), names = colnames(m), X = unname(lapply(seq_len(ncol(m)), function(j) m[, j])))
}
fit_table <- function(m) {
  s <- coef(summary(m))
  list(names = rownames(s), estimate = unname(s[, 1]), se = unname(s[, 2]), loglik = as.numeric(logLik(m)))
}
ctrl <- glmerControl(tolPwrss = 1e-12, optimizer = "bobyqa", optCtrl = list(rhoend = 1e-10))
out <- list(
  data = list(counts = counts, a = a, b = b, c4 = c4, x = x, g = g),
  interaction_matrices = list(
    matrix_of(~ factor(a) * factor(b)),
    matrix_of(~ factor(a) * b + x),
    matrix_of(~ b * c4),
    matrix_of(~ factor(a) + b + factor(a):b)
  ),
  glm_interaction = fit_table(glm(counts ~ factor(a) * b + x, family = poisson, data = d)),
  glmer_interaction = fit_table(glmer(counts ~ factor(a) * b + (1 | g), family = poisson, data = d,
                                      control = ctrl)),
  call_matrices = list(
    matrix_of(~ log(x + 5) + exp(x/3) + I(x^2) + sqrt(x + 1) + I(2 * x) + I((x + 1)^2) + log(x + 0.5)),
    matrix_of(~ poly(x, 2) + scale(x)),
    matrix_of(~ poly(x, 2, raw = TRUE) + log(x, 2) + log10(x + 1) + I(-x/2) + x:I(x^2))
  ),
  glm_log_shift = fit_table(glm(counts ~ log(x + 5) + b, family = poisson, data = d)),
  glmer_log_shift = fit_table(glmer(counts ~ log(x + 5) + (1 | g), family = poisson, data = d, control = ctrl))
)
write_json(out, "reference.json", digits = NA, auto_unbox = TRUE, pretty = TRUE)
