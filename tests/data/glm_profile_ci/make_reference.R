# Profile-likelihood confidence intervals of R's confint() for two syllabus GLMs
# (MASS's profile.glm, which interpolates the profile on a grid: accurate to about 1e-4).
# Run from the repository root:  Rscript tests/data/glm_profile_ci/make_reference.R
suppressMessages(library(jsonlite))
crossover <- read.csv("data/crossover.csv")
cancer <- read.csv("data/ohio_cancer.csv")
cancer$logpop <- log(cancer$pop)
fits <- list(
  crossover_model3 = glm(outcome ~ 1 + trt + period + trt * period, family = binomial, data = crossover),
  ohio_poisson = glm(death ~ offset(logpop) + factor(sex) + factor(race) + year, family = poisson,
                     data = cancer)
)
out <- lapply(fits, function(fit) {
  ci <- suppressMessages(confint(fit))
  list(formula = deparse1(formula(fit)), family = family(fit)$family,
       lower = as.list(ci[, 1]), upper = as.list(ci[, 2]))
})
out$versions <- list(R = R.version.string)
writeLines(toJSON(out, auto_unbox = TRUE, digits = NA, pretty = TRUE),
           "tests/data/glm_profile_ci/reference.json")
