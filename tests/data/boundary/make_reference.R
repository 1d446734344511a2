# lme4 fits of the boundary cases (make_data.py): Rscript make_reference.R  ->  reference.json
library(lme4); library(jsonlite)
formulas <- list(pois_uncorr = c("y ~ x + (1 + x || g)", "poisson"), pois_small = c("y ~ x + (1 + x || g)", "poisson"),
                 bin_corr = c("y ~ x + (1 + x | g)", "binomial"), pois_scalar = c("y ~ x + (1 | g)", "poisson"),
                 bin_scalar = c("y ~ x + (1 | g)", "binomial"))
ctrl <- glmerControl(optimizer = "bobyqa", tolPwrss = 1e-12, optCtrl = list(rhoend = 1e-10))
out <- list()
for (file in sort(list.files(".", pattern = "\\.csv$"))) {
  name <- sub("\\.csv$", "", file)
  spec <- formulas[[sub("_[0-9]+$", "", name)]]
  d <- read.csv(file)
  fit <- glmer(as.formula(spec[1]), data = d, family = spec[2], control = ctrl)
  small <- glmer(y ~ x + (1 | g), data = d, family = spec[2], control = ctrl)
  out[[name]] <- list(formula = spec[1], family = spec[2], loglik = as.numeric(logLik(fit)),
                      fixef = unname(fixef(fit)), theta = unname(getME(fit, "theta")),
                      loglik_intercept_only = as.numeric(logLik(small)))
}
out <- list(note = "lme4 glmer fits, glmerControl(optimizer = 'bobyqa', tolPwrss = 1e-12, optCtrl = list(rhoend = 1e-10))",
            lme4 = as.character(packageVersion("lme4")), cases = out)
write(toJSON(out, digits = NA, auto_unbox = TRUE, pretty = TRUE), "reference.json")
