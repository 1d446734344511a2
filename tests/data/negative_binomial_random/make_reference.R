# lme4 and glmmTMB references for the randomised negative binomial GLMM test (issue 15 item 1),
# tests/test_negative_binomial_random.py. Data: the 50 CSV files beside this script, written by make_data.py
# (cases.json gives each file's formula and the truth it was simulated from).
#
# Each case: the lme4 profile log-likelihood of the shape, l(theta) = logLik(glmer(formula, family =
# negative.binomial(theta))) with glmerControl(optimizer = "bobyqa", tolPwrss = 1e-12, rhoend = 1e-10) (lme4's
# glmer.nb stops at 5e-5 on log theta and from a start that can be far off, so it is not used), is evaluated
# on a grid theta = 0.2 * 5^k (k = 0..6) and maximised by optimize(tol = 1e-9) over log theta between the
# best grid point's neighbours (up to theta = 1e6 when the best is the last); each fit is warm-started from
# the previous one, then cold, then with lme4's default optimizers where PIRLS fails (the shapes where all
# three fail are listed in lme4_failed_at). The Poisson GLMM (the limit
# theta -> infinity) is fitted with the same control. poisson_limit is TRUE when the Poisson GLMM's
# log-likelihood is at least the profile's best (the supremum is theta = infinity; MASS warns so). At a
# finite optimum: the profile at theta/2 and 2 theta and se_theta = 1 / sqrt(-l''(theta)) by central
# differences (h = 1e-3 theta). glmmTMB's nbinom2 (its own Laplace approximation, exact Hessian) is fitted
# as a second opinion on theta.
#
# Run from the repository root (about 8 minutes of R on a shared 2-core machine):
#   Rscript tests/data/negative_binomial_random/make_reference.R [output.json [case,case,...]]
suppressMessages({library(MASS); library(lme4); library(glmmTMB); library(jsonlite)})
dir <- "tests/data/negative_binomial_random"
control <- glmerControl(optimizer = "bobyqa", tolPwrss = 1e-12, optCtrl = list(rhoend = 1e-10, maxfun = 1e5))
fallback <- glmerControl(tolPwrss = 1e-12)  # where bobyqa's PIRLS fails: lme4's default optimizers
meta <- fromJSON(file.path(dir, "cases.json"), simplifyVector = FALSE)

random_part <- function(fit) {
  vc <- as.data.frame(VarCorr(fit))
  sds <- vc[is.na(vc$var2), ]
  lapply(seq_len(nrow(sds)), function(k) list(group = sds$grp[k], name = sds$var1[k], sd = sds$sdcor[k]))
}

fit_summary <- function(fit) list(fixef = as.list(fixef(fit)), theta = as.list(getME(fit, "theta")),
                                  random = random_part(fit), loglik = as.numeric(logLik(fit)))

nb_case <- function(info) {
  d <- read.csv(file.path(dir, info$data))
  f <- as.formula(info$formula)
  start <- NULL
  fits <- list()
  failures <- numeric(0)
  profile <- function(log_theta) {  # memoised; each fit warm-started from the previous one
    key <- sprintf("%.17g", log_theta)
    if (!is.null(fits[[key]])) return(as.numeric(logLik(fits[[key]])))
    fit <- NULL
    for (attempt in list(list(control, start), list(control, NULL), list(fallback, NULL))) {
      fit <- tryCatch(suppressWarnings(suppressMessages(
        glmer(f, data = d, family = negative.binomial(exp(log_theta)), control = attempt[[1]], start = attempt[[2]]))),
        error = function(e) NULL)
      if (!is.null(fit)) break
    }
    if (is.null(fit)) {  # lme4 cannot fit at this shape (PIRLS fails): recorded as failed
      failures <<- c(failures, exp(log_theta))
      return(-Inf)
    }
    start <<- list(theta = getME(fit, "theta"), fixef = fixef(fit))
    fits[[key]] <<- fit
    as.numeric(logLik(fit))
  }
  elapsed <- system.time({
    pois <- suppressWarnings(suppressMessages(glmer(f, data = d, family = poisson, control = control)))
    grid <- log(0.2 * 5^(0:6))
    values <- vapply(grid, profile, 0.0)
    k <- which.max(values)
    lower <- if (k == 1) log(1e-3) else grid[k - 1]
    upper <- if (k == length(grid)) log(1e6) else grid[k + 1]
    opt <- optimize(profile, c(lower, upper), maximum = TRUE, tol = 1e-9)
    theta_hat <- exp(opt$maximum)
    best <- max(opt$objective, values)
    poisson_limit <- as.numeric(logLik(pois)) >= best
    checks <- NULL
    if (!poisson_limit) {
      h <- 1e-3 * theta_hat
      curvature <- (profile(log(theta_hat + h)) - 2 * opt$objective + profile(log(theta_hat - h))) / h^2
      checks <- list(half = profile(log(theta_hat / 2)), double = profile(log(2 * theta_hat)),
                     se_theta = if (isTRUE(curvature < 0)) 1 / sqrt(-curvature) else NA)
    }
  })[["elapsed"]]
  lls <- vapply(fits, function(fit) as.numeric(logLik(fit)), 0.0)
  kept <- fits[[which.max(lls)]]  # the best lme4 fit of the profile (optimize's last point can have failed)
  if (max(lls) > opt$objective) {
    theta_hat <- exp(as.numeric(names(fits)[which.max(lls)]))
    opt$objective <- max(lls)
  }
  tmb <- tryCatch({
    m <- suppressWarnings(glmmTMB(f, data = d, family = nbinom2))
    list(nb_theta = sigma(m), loglik = as.numeric(logLik(m)), fixef = as.list(fixef(m)$cond),
         converged = m$fit$convergence == 0 && isTRUE(m$sdr$pdHess))
  }, error = function(e) list(error = conditionMessage(e)))
  c(list(data = info$data, formula = info$formula, truth = info$shape, nobs = nrow(d),
         poisson_limit = poisson_limit, nb_theta = if (poisson_limit) "Inf" else theta_hat,
         profile_optimum = list(nb_theta = theta_hat, loglik = opt$objective),
         loglik = if (poisson_limit) as.numeric(logLik(pois)) else opt$objective,
         grid = list(nb_theta = exp(grid), loglik = values), poisson = fit_summary(pois), at_optimum = fit_summary(kept)),
    checks, list(lme4_failed_at = failures, glmmTMB = tmb, elapsed_seconds = elapsed))
}

args <- commandArgs(trailingOnly = TRUE)
only <- if (length(args) > 1) strsplit(args[2], ",")[[1]] else names(meta)  # a subset, for the test's re-run
cases <- list()
for (name in only) {
  cases[[name]] <- tryCatch(nb_case(meta[[name]]), error = function(e) list(error = conditionMessage(e)))
  message(name, ": theta ", format(c(cases[[name]]$nb_theta, cases[[name]]$error), digits = 6), ", ", round(c(cases[[name]]$elapsed_seconds, NA)[1], 1), " s")
}
out <- list(note = "made by tests/data/negative_binomial_random/make_reference.R",
            versions = list(R = R.version.string, lme4 = as.character(packageVersion("lme4")),
                            glmmTMB = as.character(packageVersion("glmmTMB"))),
            cases = cases)
writeLines(toJSON(out, auto_unbox = TRUE, digits = NA, pretty = TRUE, null = "null", na = "null"),
           if (length(args)) args[1] else file.path(dir, "reference.json"))
