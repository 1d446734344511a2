# DHARMa references for tests/test_simulated_residuals.py (run from the repository root):
#   DHARMA_SRC=/path/to/DHARMa/R Rscript tests/data/dharma/make_reference.R
# DHARMa is not installed here (no Debian package, no CRAN access), so the script sources DHARMa's own R files from
# a checkout of github.com/florianhartig/DHARMa (commit 746f969, DESCRIPTION version 0.5.0, NEWS 0.5.1): the
# functions used below (createDHARMa, getQuantile, testUniformity, testDispersion, testZeroInflation, testGeneric,
# getP) need only base R. Each <case>.csv.gz (written by make_simulations.py) holds the observed response, the
# fitted population-level mean and the simulations; createDHARMa gets exactly that matrix.
suppressPackageStartupMessages({library(jsonlite); library(lme4)})
src <- Sys.getenv("DHARMA_SRC")
for (f in c("DHARMa.R", "helper.R", "tests.R", "compatibility.R", "random.R", "simulateResiduals.R")) {
  source(file.path(src, f))
}

cases <- c(grouseticks_poisson = TRUE, crossover_binomial = TRUE, glm_small_poisson = TRUE, continuous = FALSE)
out <- list()
for (name in names(cases)) {
  d <- read.csv(file.path("tests/data/dharma", paste0(name, ".csv.gz")))
  sims <- as.matrix(d[, grepl("^sim_", names(d))])
  res <- createDHARMa(simulatedResponse = sims, observedResponse = d$observed,
                      fittedPredictedResponse = d$fitted, integerResponse = cases[[name]], seed = 123)
  u <- testUniformity(res, plot = FALSE)
  disp <- testDispersion(res, plot = FALSE)
  zero <- testZeroInflation(res, plot = FALSE)
  zero_greater <- testZeroInflation(res, plot = FALSE, alternative = "greater")
  disp_less <- testDispersion(res, plot = FALSE, alternative = "less")
  out[[name]] <- list(
    residuals = res$scaledResiduals,
    lower = unname(rowMeans(sims < d$observed)), lower_or_equal = unname(rowMeans(sims <= d$observed)),
    ks_statistic = unname(u$statistic), ks_p = u$p.value, ks_method = u$method,
    dispersion = unname(disp$statistic), dispersion_p = disp$p.value, dispersion_less_p = disp_less$p.value,
    zero_ratio = unname(zero$statistic), zero_p = zero$p.value, zero_greater_p = zero_greater$p.value)
}

# testUniformity's exact path (fewer than 100 residuals, no ties): the first 60 distinct grouseticks residuals
# strictly inside (0, 1)
r <- out$grouseticks_poisson$residuals
distinct <- unique(r[r > 0 & r < 1])[1:60]
u <- testUniformity(distinct, plot = FALSE)
out$ks_exact <- list(residuals = distinct, statistic = unname(u$statistic), p = u$p.value, method = u$method)

# DHARMa's fittedPredictedResponse of a glmer fit is predict(type = "response", re.form = ~0); lme4's, for the
# grouseticks model of make_simulations.py (tight settings), to check glmmteach's fitted population-level mean
g <- read.csv("data/grouseticks.csv")
fit <- glmer(TICKS ~ factor(YEAR) + cHEIGHT + (1 | BROOD), g, poisson,
             control = glmerControl(optimizer = "bobyqa", optCtrl = list(rhoend = 1e-10), tolPwrss = 1e-12))
out$grouseticks_poisson$lme4_fitted <- unname(predict(fit, type = "response", re.form = ~0))
# DHARMa itself (simulateResiduals: lme4's conditional simulations) on lme4's Ohio Poisson GLMM, six seeds; and the
# limit of its dispersion statistic as nsim grows, var(y - mu0) / E var(Y* - mu0) with Y*_i ~ Poisson(mu_i)
ohio <- read.csv("data/ohio_cancer.csv")
tight <- glmerControl(optimizer = "bobyqa", optCtrl = list(rhoend = 1e-10), tolPwrss = 1e-12)
fit <- glmer(death ~ offset(log(pop)) + factor(sex) + factor(race) + year + (1 | county), ohio, poisson, control = tight)
runs <- t(sapply(1:6, function(s) {
  res <- simulateResiduals(fit, n = 250, seed = s)
  c(dispersion = unname(testDispersion(res, plot = FALSE)$statistic), dispersion_p = testDispersion(res, plot = FALSE)$p.value,
    ks_p = testUniformity(res, plot = FALSE)$p.value, zero_ratio = unname(testZeroInflation(res, plot = FALSE)$statistic))
}))
y <- ohio$death; mu <- fitted(fit); mu0 <- predict(fit, type = "response", re.form = ~0); n <- length(y)
expected <- (sum(mu) * (1 - 1/n) + sum((mu - mu0 - mean(mu - mu0))^2)) / (n - 1)
out$ohio <- c(as.list(as.data.frame(runs)), list(limit = var(y - mu0) / expected))

# DHARMa's calibration on correctly specified, fitted Poisson GLMMs (the design of the Python test): 100 data sets
set.seed(16)
p <- t(replicate(100, {
  g <- rep(1:25, each = 6); x <- rnorm(150); eta <- 0.5 + 0.4 * x + rnorm(25, sd = 0.6)[g]
  f <- glmer(y ~ x + (1 | g), data.frame(y = rpois(150, exp(eta)), x = x, g = g), poisson)
  r <- simulateResiduals(f, n = 100, seed = NULL)
  c(testUniformity(r, plot = FALSE)$p.value, testDispersion(r, plot = FALSE)$p.value,
    testZeroInflation(r, plot = FALSE)$p.value)
}))
out$calibration <- list(tests = c("uniformity", "dispersion", "zero_inflation"), rejection_rate = unname(colMeans(p <= 0.05)),
                        mean_p = unname(colMeans(p)), n_sets = nrow(p))
out$dharma_version <- "DHARMa source commit 746f969 (DESCRIPTION 0.5.0)"
write_json(out, "tests/data/dharma/reference.json", digits = NA, auto_unbox = TRUE, pretty = FALSE)
