# The row names of lme4's confint(fit, method = "boot", oldNames = FALSE) (the order of its default bootMer
# statistic): lme4:::tnames with prefixes sd/cor, then the fixed effects. lme4 1.1-31.
# Run from the repository root: Rscript tests/data/bootstrap/lme4_names.R
suppressMessages(library(lme4))
library(jsonlite)
slope <- read.csv("tests/data/lme4_features/pois_slope.csv")
crossover <- read.csv("data/crossover.csv")
crossed <- read.csv("tests/data/lme4_structures/crossed_slope.csv")
fits <- list(
  pois_slope = glmer(y ~ x + offset(logexpo) + (1 + x | g), slope, family = poisson),
  pois_uncorr = glmer(y ~ x + offset(logexpo) + (1 + x || g), slope, family = poisson),
  crossed_slope = glmer(y ~ x + (1 + x | a) + (1 | b), crossed, family = poisson),
  crossover = glmer(outcome ~ trt * period + (1 | ID), crossover, family = binomial)
)
out <- lapply(fits, function(m) c(lme4:::tnames(m, old = FALSE, prefix = c("sd", "cor")), names(fixef(m))))
writeLines(toJSON(lapply(out, unname), pretty = TRUE), "tests/data/bootstrap/lme4_names.json")
