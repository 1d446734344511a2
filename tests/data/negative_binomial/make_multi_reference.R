# lme4 references for the negative binomial GLMM with several random-effects terms (glmer.nb with crossed
# and nested terms), for tests/test_negative_binomial.py. Data: nb_crossed.csv and nb_nested.csv beside this
# script (written by make_multi_data.py) and the repository's data/grouseticks.csv (lme4's grouseticks).
#
# Each case: lme4's glmer.nb (glmerControl(optimizer = "bobyqa", tolPwrss = 1e-12, rhoend = 1e-10); where its
# PIRLS fails during glmer.nb's search over theta -- grouseticks -- lme4's default optimizers with tolPwrss =
# 1e-12) is run and recorded under glmer_nb with its elapsed time and control; lme4 stops at a tolerance of 5e-5 on log theta, so the
# shape is then refined as in tests/data/lme4_structures/make_reference.R: optimize(tol = 1e-9) on log theta
# of the profile log-likelihood l(theta) = max over (beta, theta_RE) of glmer(family = negative.binomial(theta))
# with the same control. se_theta = 1 / sqrt(-l''(theta)) by central differences of the profile (h = 1e-3
# theta): lme4 reports no standard error for theta.
#
# Run from the repository root:  Rscript tests/data/negative_binomial/make_multi_reference.R [output.json]
suppressMessages({library(MASS); library(lme4); library(jsonlite)})
dir <- "tests/data/negative_binomial"
control <- glmerControl(optimizer = "bobyqa", tolPwrss = 1e-12, optCtrl = list(rhoend = 1e-10, maxfun = 1e5))

load_data <- function(name) {
  if (name == "grouseticks") return(read.csv("data/grouseticks.csv"))
  read.csv(file.path(dir, name))
}

random_part <- function(fit) {
  vc <- as.data.frame(VarCorr(fit))
  sds <- vc[is.na(vc$var2), ]
  lapply(seq_len(nrow(sds)), function(k) list(group = sds$grp[k], name = sds$var1[k], sd = sds$sdcor[k]))
}

profile_fit <- function(formula, d, theta) glmer(formula, data = d, family = negative.binomial(theta), control = control)

nb_case <- function(data, formula, note) {
  d <- load_data(data)
  f <- as.formula(formula)
  used <- "bobyqa, tolPwrss 1e-12, rhoend 1e-10"
  elapsed <- system.time(raw <- tryCatch(glmer.nb(f, data = d, control = control), error = function(e) NULL))[["elapsed"]]
  if (is.null(raw)) {
    used <- "lme4's default optimizers, tolPwrss 1e-12 (bobyqa: pwrssUpdate did not converge)"
    elapsed <- system.time(raw <- glmer.nb(f, data = d, control = glmerControl(tolPwrss = 1e-12)))[["elapsed"]]
  }
  theta_raw <- getME(raw, "glmer.nb.theta")
  profile <- function(log_theta) as.numeric(logLik(profile_fit(f, d, exp(log_theta))))
  opt <- optimize(profile, log(theta_raw) + c(-0.2, 0.2), maximum = TRUE, tol = 1e-9)
  if (abs(opt$maximum - log(theta_raw)) > 0.19) stop(formula, ": profile maximum at the edge of the interval")
  theta_hat <- exp(opt$maximum)
  best <- profile_fit(f, d, theta_hat)
  h <- 1e-3 * theta_hat
  curvature <- (profile(log(theta_hat + h)) - 2 * as.numeric(logLik(best)) + profile(log(theta_hat - h))) / h^2
  list(data = data, formula = formula, note = note,
       fixef = as.list(fixef(best)), se = as.list(setNames(sqrt(diag(as.matrix(vcov(best)))), names(fixef(best)))),
       theta = as.list(getME(best, "theta")), random = random_part(best), loglik = as.numeric(logLik(best)),
       isSingular = isSingular(best), nobs = nobs(best), ngroups = as.list(ngrps(best)),
       nb_theta = theta_hat, se_theta = 1 / sqrt(-curvature),
       glmer_nb = list(theta = theta_raw, loglik = as.numeric(logLik(raw)), fixef = as.list(fixef(raw)),
                       df = attr(logLik(raw), "df"), control = used, elapsed_seconds = elapsed,
                       note = "lme4::glmer.nb as it stands (tol 5e-5 on log theta), before the refinement"))
}

cases <- list(
  nb_crossed = nb_case("nb_crossed.csv", "y ~ x + (1 | a) + (1 | b)",
                       "simulated NB2 (shape 1.5), a (30) crossed with b (20), 70% of cells, 1-2 rows each"),
  nb_crossed_slope = nb_case("nb_crossed.csv", "y ~ x + (1 + x | a) + (1 | b)",
                             "the same data with a correlated random slope of x by a (small: a boundary-near fit)"),
  nb_nested = nb_case("nb_nested.csv", "y ~ x + (1 | school/class)",
                      "simulated NB2 (shape 3), 3 classes (labelled 1-3 within school) in 30 schools"),
  nb_grouseticks = nb_case("grouseticks", "TICKS ~ factor(YEAR) + cHEIGHT + (1 | BROOD) + (1 | LOCATION)",
                           "lme4's grouseticks (data/grouseticks.csv): chicks in broods in locations")
)
out <- list(note = "made by tests/data/negative_binomial/make_multi_reference.R",
            versions = list(R = R.version.string, MASS = as.character(packageVersion("MASS")),
                            lme4 = as.character(packageVersion("lme4"))),
            cases = cases)
args <- commandArgs(trailingOnly = TRUE)
writeLines(toJSON(out, auto_unbox = TRUE, digits = NA, pretty = TRUE, null = "null"),
           if (length(args)) args[1] else file.path(dir, "multi_reference.json"))
