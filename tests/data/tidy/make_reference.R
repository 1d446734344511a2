# broom.mixed / broom tidy() references for fit.tidy() (tests/test_tidy.py).
#
# glmer fits at tight settings (bobyqa, tolPwrss 1e-12, rhoend 1e-10); glmer.nb's shape refined on the profile
# likelihood (optimize, tol 1e-9, as tests/data/negative_binomial/make_multi_reference.R) and the model refitted
# at it with negative.binomial(theta). Each case stores tidy(effects = "fixed", conf.int = TRUE) (Wald),
# tidy(effects = "ran_pars"), tidy(effects = "ran_vals") and the fit's coefficients and covariance; glm fits
# store broom's tidy(conf.int = TRUE) (profile intervals, MASS's confint.glm) and tidy(conf.int = FALSE).
#
# Run from the repository root:  Rscript tests/data/tidy/make_reference.R [output.json]
suppressMessages({library(MASS); library(lme4); library(broom.mixed); library(broom); library(jsonlite)})
args <- commandArgs(trailingOnly = TRUE)
out_file <- if (length(args)) args[1] else "tests/data/tidy/reference.json"
control <- glmerControl(optimizer = "bobyqa", tolPwrss = 1e-12, optCtrl = list(rhoend = 1e-10, maxfun = 1e5))
ohio <- read.csv("data/ohio_cancer.csv"); ohio$logpop <- log(ohio$pop)
structures <- "tests/data/lme4_structures"

columns <- function(tab) lapply(as.data.frame(tab), function(col) if (is.factor(col)) as.character(col) else col)
mixed_case <- function(fit, formula, family, data, theta = NULL) {
  list(formula = formula, family = family, data = data, theta = theta,
       beta = as.list(fixef(fit)), vcov = unname(as.matrix(vcov(fit))),
       fixed = columns(tidy(fit, effects = "fixed", conf.int = TRUE)),
       ran_pars = columns(tidy(fit, effects = "ran_pars")),
       ran_vals = columns(tidy(fit, effects = "ran_vals")))
}
cases <- list()

f_ohio <- "death ~ offset(logpop) + factor(sex) + factor(race) + year + (1 | county)"
cases$ohio <- mixed_case(glmer(as.formula(f_ohio), data = ohio, family = poisson, control = control),
                         f_ohio, "poisson", "ohio")

crossed <- read.csv(file.path(structures, "crossed_poisson.csv"))
f_crossed <- "y ~ x + (1 | a) + (1 | b)"
cases$crossed <- mixed_case(glmer(as.formula(f_crossed), data = crossed, family = poisson, control = control),
                            f_crossed, "poisson", "lme4_structures/crossed_poisson.csv")

slope <- read.csv(file.path(structures, "crossed_slope.csv"))
f_slope <- "y ~ x + (1 + x | a) + (1 | b)"
cases$slope <- mixed_case(glmer(as.formula(f_slope), data = slope, family = poisson, control = control),
                          f_slope, "poisson", "lme4_structures/crossed_slope.csv")

f_indep <- "y ~ x + (1 + x || a) + (1 | b)"  # uncorrelated: lme4's groups a and a.1
cases$slope_uncorrelated <- mixed_case(glmer(as.formula(f_indep), data = slope, family = poisson, control = control),
                                       f_indep, "poisson", "lme4_structures/crossed_slope.csv")

nb <- read.csv("tests/data/negative_binomial/nb_crossed.csv")
f_nb <- "y ~ x + (1 | a) + (1 | b)"
nb_raw <- glmer.nb(as.formula(f_nb), data = nb, control = control)
profile_ll <- function(log_theta) logLik(glmer(as.formula(f_nb), data = nb, family = negative.binomial(exp(log_theta)),
                                              control = control))
theta0 <- getME(nb_raw, "glmer.nb.theta")
theta <- exp(optimize(profile_ll, log(theta0) + c(-0.05, 0.05), maximum = TRUE, tol = 1e-9)$maximum)
nb_fit <- glmer(as.formula(f_nb), data = nb, family = negative.binomial(theta), control = control)
cases$nb <- mixed_case(nb_fit, f_nb, "negative_binomial", "negative_binomial/nb_crossed.csv", theta)

crossover <- read.csv("data/crossover.csv")
g <- glm(outcome ~ trt * period, data = crossover, family = binomial)
cases$crossover_glm <- list(formula = "outcome ~ trt * period", family = "binomial", data = "crossover",
                            tidy = columns(tidy(g)), tidy_conf = columns(tidy(g, conf.int = TRUE)))
ticks <- read.csv("data/grouseticks.csv")
gnb <- glm.nb(TICKS ~ factor(YEAR) + cHEIGHT, data = ticks)
cases$ticks_nb_glm <- list(formula = "TICKS ~ factor(YEAR) + cHEIGHT", family = "negative_binomial", data = "grouseticks",
                           theta = gnb$theta, tidy = columns(tidy(gnb)))

info <- list(R = R.version.string, broom.mixed = as.character(packageVersion("broom.mixed")),
             broom = as.character(packageVersion("broom")), lme4 = as.character(packageVersion("lme4")))
writeLines(toJSON(list(info = info, cases = cases), digits = NA, auto_unbox = TRUE, pretty = TRUE, na = "null"),
           out_file)
