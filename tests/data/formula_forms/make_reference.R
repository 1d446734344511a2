# References for formula forms and inputs lme4 and R's glm accept (tests/test_formula_forms.py):
# nesting '/' in the fixed part (MASS's quine model), R's terms() order of the variables inside an interaction,
# lme4's reading of (1 + f || g) with a factor f, cbind() responses, factor and logical binary responses,
# binomial rows with 0 trials, subset and na.exclude, contrasts, Gamma and inverse Gaussian glm, glmer's start= and
# nAGQ = 0 (lme4's first stage: beta inside PIRLS, theta alone optimised).
# Run from this directory: Rscript make_reference.R  (R 4.2, lme4 1.1-31, MASS, jsonlite)
suppressMessages({library(lme4); library(MASS); library(jsonlite)})
set.seed(20261203)
n <- 240
G <- 30
g <- rep(seq_len(G), each = n / G)
x <- round(rnorm(n), 4)
z <- round(runif(n, 0, 2), 4)
f <- sample(c("a", "b", "c"), n, replace = TRUE)
f2 <- sample(c("N", "Y"), n, replace = TRUE)
u <- rnorm(G, 0, 0.7)
uf <- matrix(rnorm(3 * G, 0, 0.6), G, 3)
eta <- -0.3 + 0.5 * x + 0.4 * (f == "b") - 0.5 * (f == "c") + 0.3 * x * (f2 == "Y") + u[g] +
  uf[cbind(g, match(f, c("a", "b", "c")))]
y <- rbinom(n, 1, plogis(eta))
counts <- rpois(n, exp(0.5 + 0.3 * x + 0.2 * (f == "b") + u[g]))
trials <- sample(0:6, n, replace = TRUE, prob = c(0.08, rep(0.92 / 6, 6)))
succ <- rbinom(n, trials, plogis(eta))
fail <- trials - succ
pos <- round(rgamma(n, shape = 3, rate = 3 / exp(0.4 + 0.3 * x + 0.2 * (f == "b"))), 4)
xm <- x
xm[c(5, 17, 101)] <- NA
d <- data.frame(y = y, counts = counts, succ = succ, fail = fail, trials = trials, x = x, xm = xm, z = z, f = f,
                f2 = f2, g = g, pos = pos)
write.csv(d, "forms.csv", row.names = FALSE)
write.csv(quine, "quine.csv", row.names = FALSE)

ctrl <- glmerControl(tolPwrss = 1e-12, optimizer = "bobyqa", optCtrl = list(rhoend = 1e-10))
mm <- function(f, data = d) {
  m <- model.matrix(f, data)
  list(formula = paste(deparse(f, width.cutoff = 500L), collapse = ""), names = colnames(m),
       X = unname(lapply(seq_len(ncol(m)), function(j) m[, j])))
}
fit_table <- function(m) {
  s <- coef(summary(m))
  out <- list(names = rownames(s), estimate = unname(s[, 1]), se = unname(s[, 2]),
              loglik = as.numeric(logLik(m)), df = attr(logLik(m), "df"), nobs = nobs(m))
  if (inherits(m, "glm")) {
    out$aic <- AIC(m); out$deviance <- deviance(m); out$df_residual <- df.residual(m)
    out$dispersion <- summary(m)$dispersion
  } else {
    vc <- as.data.frame(VarCorr(m))
    out$varcorr <- list(grp = vc$grp, var1 = ifelse(is.na(vc$var1), "", vc$var1),
                        var2 = ifelse(is.na(vc$var2), "", vc$var2), sdcor = vc$sdcor)
  }
  out
}
re_names <- function(f) {
  # lme4's names of the random-effects columns of each bar (mkReTrms' cnms), in lme4's term order
  rt <- mkReTrms(findbars(f), model.frame(subbars(f), d))
  lapply(unname(rt$cnms), identity)
}
quine_nb <- glm.nb(Days ~ Sex/(Age + Eth*Lrn), data = quine)
quine_fit <- fit_table(quine_nb)
quine_fit$theta <- quine_nb$theta

excl <- glm(y ~ xm + f, family = binomial, data = d, na.action = na.exclude)
d_lgl <- d; d_lgl$yl <- d$y == 1
d_fac <- d; d_fac$yf <- factor(ifelse(d$y == 1, "yes", "no"))
d_rev <- d; d_rev$yf <- factor(ifelse(d$y == 1, "yes", "no"), levels = c("yes", "no"))
out <- list(
  nesting_matrices = list(mm(~ f/x), mm(~ f2/(x + z)), mm(~ f/(x + f2)), mm(~ (f + f2)/x), mm(~ x + f/z),
                          mm(Days ~ Sex/(Age + Eth*Lrn), quine), mm(~ (f/x)^2), mm(~ f %in% x), mm(~ x + f %in% x),
                          mm(~ (x + z + f)^2), mm(~ f/x - 1)),
  quine_nb = quine_fit,
  glmer_nesting = fit_table(glmer(y ~ f/x + (1 | g), family = binomial, data = d, control = ctrl)),
  glm_nesting = fit_table(glm(counts ~ f2/(x + z), family = poisson, data = d)),
  order_matrices = list(mm(~ x + f2 + x:f2), mm(~ f2 + x + x:f2), mm(~ x:f2 + f2 + x), mm(~ x*f2), mm(~ f2*x),
                        mm(~ x + f2 + f2:x), mm(~ z + f2:x + x), mm(~ f + f2 + f2:f), mm(~ x + z + z:x)),
  glmer_order = fit_table(glmer(y ~ x + f2 + f2:x + (1 | g), family = binomial, data = d, control = ctrl)),
  re_order = list(list(formula = "y ~ x + (0 + f2:x | g)", names = re_names(y ~ x + (0 + f2:x | g))),
                  list(formula = "y ~ x + (x + f2:x | g)", names = re_names(y ~ x + (x + f2:x | g)))),
  double_bar_factor = fit_table(glmer(y ~ x + f + (1 + f || g), family = binomial, data = d, control = ctrl)),
  double_bar_factor_names = re_names(y ~ x + f + (1 + f || g)),
  glm_cbind = fit_table(glm(cbind(succ, fail) ~ x + f, family = binomial, data = d)),
  glm_cbind_expr = fit_table(glm(cbind(succ, trials - succ) ~ x + f, family = binomial, data = d)),
  glmer_cbind = fit_table(glmer(cbind(succ, fail) ~ x + f + (1 | g), family = binomial, data = d, control = ctrl)),
  glm_logical = fit_table(glm(yl ~ x + f, family = binomial, data = d_lgl)),
  glm_factor = fit_table(glm(yf ~ x + f, family = binomial, data = d_fac)),
  glm_factor_reversed = fit_table(glm(yf ~ x + f, family = binomial, data = d_rev)),
  glmer_factor = fit_table(glmer(yf ~ x + (1 | g), family = binomial, data = d_fac, control = ctrl)),
  glm_subset = fit_table(glm(counts ~ x + f, family = poisson, data = d, subset = z > 0.5)),
  glmer_subset = fit_table(glmer(counts ~ x + (1 | g), family = poisson, data = d, subset = f != "c",
                                 control = ctrl)),
  glm_exclude = c(fit_table(excl), list(fitted = unname(fitted(excl)),
                                        resid_deviance = unname(residuals(excl, type = "deviance")),
                                        resid_pearson = unname(residuals(excl, type = "pearson")))),
  glm_gamma_log = fit_table(glm(pos ~ x + f, family = Gamma(link = "log"), data = d)),
  glm_gamma_inverse = fit_table(glm(pos ~ x + f, family = Gamma, data = d)),
  glm_gamma_identity = fit_table(glm(pos ~ x + f, family = Gamma(link = "identity"), data = d,
                                     start = c(1.5, 0.4, 0.3, 0))),
  glm_invgauss = fit_table(glm(pos ~ x + f, family = inverse.gaussian(link = "log"), data = d)),
  glm_invgauss_canonical = fit_table(glm(pos ~ z + f, family = inverse.gaussian, data = d)),
  glm_contrasts = fit_table(glm(counts ~ f + f2 + x, family = poisson, data = d,
                                contrasts = list(f = "contr.sum", f2 = "contr.helmert"))),
  glm_contrasts_helmert = fit_table(glm(counts ~ f + x, family = poisson, data = d,
                                        contrasts = list(f = "contr.helmert"))),
  glm_contrasts_interaction = fit_table(glm(counts ~ f*f2 + x, family = poisson, data = d,
                                            contrasts = list(f = "contr.sum", f2 = "contr.helmert"))),
  glm_contrasts_nested = fit_table(glm(counts ~ x + f:x, family = poisson, data = d,
                                       contrasts = list(f = "contr.sum"))),
  glm_C_sum = fit_table(glm(counts ~ C(f, sum) + x, family = poisson, data = transform(d, f = factor(f)))),
  glm_base_level = fit_table(glm(counts ~ f + x, family = poisson, data = d,
                                 contrasts = list(f = contr.treatment(c("a", "b", "c"), base = 2)))),
  glmer_contrasts = fit_table(glmer(counts ~ f + x + (1 | g), family = poisson, data = d, control = ctrl,
                                    contrasts = list(f = "contr.sum"))),
  glmer_start = fit_table(glmer(y ~ f/x + (1 | g), family = binomial, data = d, control = ctrl,
                                start = list(theta = 2, fixef = rep(0, 6)))),
  nagq0 = lapply(list(
    list(formula = "y ~ f/x + (1 | g)", family = "binomial"),
    list(formula = "counts ~ x + f + (1 | g)", family = "poisson"),
    list(formula = "y ~ x + (1 + x | g)", family = "binomial"),
    list(formula = "counts ~ x + (1 | g) + (1 | f)", family = "poisson")
  ), function(m) {
    fit <- glmer(as.formula(m$formula), family = m$family, data = d, nAGQ = 0L, control = ctrl)
    c(m, fit_table(fit), list(theta = unname(getME(fit, "theta"))))
  })
)
write_json(out, "reference.json", digits = NA, auto_unbox = TRUE, pretty = TRUE)
