# lme4's profile-likelihood intervals, confint(method = "profile"), for fit.conf_int(method = "profile")
# (tests/test_profile_ci.py, benchmarks/bench_profile.py).
#
# Each glmer fit at tight settings (bobyqa, tolPwrss 1e-12, rhoend 1e-10); its profile with a fine step
# (delta = cutoff / steps, so that lme4's interpolating spline through the profile points is accurate) and
# confint() of that profile, with oldNames = FALSE row names (sd_(Intercept)|g, cor_x.(Intercept)|g).
# Stored per case: the formula, family, nAGQ, the fit's estimates and log-likelihood, the interval rows and
# the profile's points (parameter value and zeta) so that the Python test can evaluate its own profile
# exactly at lme4's ends. The NB case: lme4's confint of a glmer.nb fit holds the shape at its estimate, so the
# model is refitted with negative.binomial(theta) at the shape refined on the profile likelihood (optimize,
# tol 1e-9) and profiled; the shape's own interval is the root of the profile of
# glmer(family = negative.binomial(theta)) over log theta (uniroot, tol 1e-10).
#
# Run from the repository root:  Rscript tests/data/profile_ci/make_reference.R [output.json]   (a few minutes)
suppressMessages({library(MASS); library(lme4); library(jsonlite)})
args <- commandArgs(trailingOnly = TRUE)
out_file <- if (length(args)) args[1] else "tests/data/profile_ci/reference.json"
control <- glmerControl(optimizer = "bobyqa", tolPwrss = 1e-12, optCtrl = list(rhoend = 1e-10, maxfun = 1e5))
cutoff <- qnorm(0.975)
steps <- as.numeric(Sys.getenv("PROFILE_STEPS", "40"))  # profile step delta = cutoff / steps
structures <- "tests/data/lme4_structures"

profile_case <- function(fit, formula, family, data, trials = NULL, theta = NULL, extra = list()) {
  timing <- system.time({
    pr <- profile(fit, signames = FALSE, delta = cutoff / steps, alphamax = 0.02, devtol = 1e-9)
    ci <- confint(pr, level = 0.95)
  })[["elapsed"]]
  points <- lapply(split(as.data.frame(pr), as.character(as.data.frame(pr)$.par)), function(d) {
    par <- as.character(d$.par[1])
    list(value = d[[par]], zeta = d$.zeta)
  })
  vc <- as.data.frame(VarCorr(fit))
  c(list(formula = formula, family = family, data = data, trials = trials, theta = theta,
         nAGQ = fit@devcomp$dims[["nAGQ"]], loglik = as.numeric(logLik(fit)),
         beta = as.list(fixef(fit)), sdcor = vc$sdcor,
         rows = rownames(ci), lower = unname(ci[, 1]), upper = unname(ci[, 2]),
         points = points, delta = cutoff / steps, seconds = timing), extra)
}
cases <- list()
save <- function() {  # after every case: a long run keeps what it has done
  write_json(list(r_version = R.version.string, lme4 = as.character(packageVersion("lme4")), cases = cases),
             out_file, digits = NA, auto_unbox = TRUE, pretty = FALSE)
}

crossover <- read.csv("data/crossover.csv")
f_co <- "outcome ~ trt * period + (1 | ID)"
cases$crossover_agq25 <- profile_case(glmer(as.formula(f_co), data = crossover, family = binomial, nAGQ = 25,
                                            control = control), f_co, "binomial", "crossover")
save()

ohio <- read.csv("data/ohio_cancer.csv"); ohio$logpop <- log(ohio$pop)
f_ohio <- "death ~ offset(logpop) + factor(sex) + factor(race) + year + (1 | county)"
cases$ohio <- profile_case(glmer(as.formula(f_ohio), data = ohio, family = poisson, control = control),
                           f_ohio, "poisson", "ohio")
save()

crossed <- read.csv(file.path(structures, "crossed_poisson.csv"))
f_crossed <- "y ~ x + (1 | a) + (1 | b)"
cases$crossed <- profile_case(glmer(as.formula(f_crossed), data = crossed, family = poisson, control = control),
                              f_crossed, "poisson", "lme4_structures/crossed_poisson.csv")
save()

nested <- read.csv(file.path(structures, "nested_poisson.csv"))
f_nested <- "y ~ x + (1 | school/class)"
cases$nested <- profile_case(glmer(as.formula(f_nested), data = nested, family = poisson, control = control),
                             f_nested, "poisson", "lme4_structures/nested_poisson.csv")
save()

slope <- read.csv(file.path(structures, "crossed_slope.csv"))
f_slope <- "y ~ x + (1 + x | a) + (1 | b)"
cases$slope <- profile_case(glmer(as.formula(f_slope), data = slope, family = poisson, control = control),
                            f_slope, "poisson", "lme4_structures/crossed_slope.csv")
save()

cbpp <- read.csv(file.path(structures, "cbpp.csv"))
f_cbpp <- "cbind(incidence, size - incidence) ~ factor(period) + (1 | herd)"
cases$cbpp_laplace <- profile_case(glmer(as.formula(f_cbpp), data = cbpp, family = binomial, control = control),
                                   "incidence ~ factor(period) + (1 | herd)", "binomial",
                                   "lme4_structures/cbpp.csv", trials = "size")
cases$cbpp_agq10 <- profile_case(glmer(as.formula(f_cbpp), data = cbpp, family = binomial, nAGQ = 10,
                                       control = control),
                                 "incidence ~ factor(period) + (1 | herd)", "binomial",
                                 "lme4_structures/cbpp.csv", trials = "size")
save()

nb <- read.csv("tests/data/negative_binomial/nb_crossed.csv")
f_nb <- "y ~ x + (1 | a) + (1 | b)"
nb_raw <- glmer.nb(as.formula(f_nb), data = nb, control = control)
profile_ll <- function(log_theta) {
  as.numeric(logLik(glmer(as.formula(f_nb), data = nb, family = negative.binomial(exp(log_theta)),
                          control = control)))
}
theta0 <- getME(nb_raw, "glmer.nb.theta")
opt <- optimize(profile_ll, log(theta0) + c(-0.05, 0.05), maximum = TRUE, tol = 1e-9)
theta <- exp(opt$maximum)
nb_fit <- glmer(as.formula(f_nb), data = nb, family = negative.binomial(theta), control = control)
shape_zeta <- function(log_theta) sign(log_theta - opt$maximum) * sqrt(max(2 * (opt$objective - profile_ll(log_theta)), 0))
shape_lower <- exp(uniroot(function(s) shape_zeta(s) + cutoff, opt$maximum + c(-3, 0), tol = 1e-10)$root)
shape_upper <- exp(uniroot(function(s) shape_zeta(s) - cutoff, opt$maximum + c(0, 3), tol = 1e-10)$root)
cases$nb <- profile_case(nb_fit, f_nb, "negative_binomial", "negative_binomial/nb_crossed.csv", theta = theta,
                         extra = list(shape_lower = shape_lower, shape_upper = shape_upper))
save()
