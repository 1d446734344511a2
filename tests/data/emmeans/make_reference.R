# R emmeans references for glmmteach.emmeans / glmmteach.contrast (tests/test_emmeans.py).
#
# Each case fits a model in R (glm, MASS's glm.nb, or lme4's glmer at tight settings: bobyqa, tolPwrss 1e-12,
# rhoend 1e-10) and stores its fixed effects and their covariance (so that Python can compute marginal means
# from R's own coefficients, where two optimisers agree only to their tolerance) with emmeans' marginal means
# (link and response scale) and contrasts. Data: the repository's data/ folder.
#
# Run from the repository root:  Rscript tests/data/emmeans/make_reference.R [output.json]
suppressMessages({library(MASS); library(lme4); library(emmeans); library(jsonlite)})
emm_options(opt.digits = FALSE)
args <- commandArgs(trailingOnly = TRUE)
out_file <- if (length(args)) args[1] else "tests/data/emmeans/reference.json"
control <- glmerControl(optimizer = "bobyqa", tolPwrss = 1e-12, optCtrl = list(rhoend = 1e-10, maxfun = 1e5))

crossover <- read.csv("data/crossover.csv")
ohio <- read.csv("data/ohio_cancer.csv"); ohio$logpop <- log(ohio$pop)
ticks <- read.csv("data/grouseticks.csv")

# a summary table as a list of columns; factor columns as character
as_columns <- function(tab) {
  tab <- as.data.frame(tab)
  lapply(tab, function(col) if (is.factor(col)) as.character(col) else col)
}
means <- function(grid) as_columns(confint(grid))  # estimate, SE, df, asymp.LCL / lower.CL, ...
contrasts_of <- function(grid, method, adjust) {
  con <- contrast(grid, method = method, adjust = adjust)
  s <- summary(con, infer = c(TRUE, TRUE))
  list(method = method, adjust = adjust, table = as_columns(s))
}
fit_info <- function(fit) {
  list(beta = as.list(fixef_or_coef(fit)), vcov = unname(as.matrix(vcov(fit))), names = names(fixef_or_coef(fit)))
}
fixef_or_coef <- function(fit) if (inherits(fit, "merMod")) fixef(fit) else coef(fit)

cases <- list()

# A: the crossover GLMM, trt and period as factors (the 2 x 2 grid), Laplace
a <- glmer(outcome ~ factor(trt) * factor(period) + (1 | ID), data = transform(crossover, trt = trt, period = period),
           family = binomial, control = control)
tau_a <- attr(VarCorr(a)$ID, "stddev")[[1]]
cases$crossover <- c(fit_info(a), list(
  formula = "outcome ~ factor(trt) * factor(period) + (1 | ID)", family = "binomial", kind = "glmer", tau = tau_a,
  emmeans = list(
    trt_period_link = means(emmeans(a, ~ trt * period)),
    trt_period_response = means(emmeans(a, ~ trt * period, type = "response")),
    trt_link = means(emmeans(a, ~ trt)),
    trt_by_period_response = means(emmeans(a, ~ trt | period, type = "response")),
    trt_response_bias_adjusted = means(emmeans(a, ~ trt, type = "response", bias.adjust = TRUE, sigma = tau_a))
  ),
  contrasts = list(
    trt_by_period_pairwise_or = contrasts_of(emmeans(a, ~ trt | period, type = "response"), "pairwise", "none"),
    cells_pairwise_tukey = contrasts_of(emmeans(a, ~ trt * period), "pairwise", "tukey"),
    cells_revpairwise_holm = contrasts_of(emmeans(a, ~ trt * period), "revpairwise", "holm"),
    cells_trt_vs_ctrl_bonferroni = contrasts_of(emmeans(a, ~ trt * period), "trt.vs.ctrl", "bonferroni")
  )))

# B: the Ohio Poisson GLMM; sex x race on the rate scale: offset = 0 gives deaths per person-year
b <- glmer(death ~ offset(logpop) + factor(sex) + factor(race) + year + (1 | county), data = ohio,
           family = poisson, control = control)
tau_b <- attr(VarCorr(b)$county, "stddev")[[1]]
cases$ohio <- c(fit_info(b), list(
  formula = "death ~ offset(logpop) + factor(sex) + factor(race) + year + (1 | county)", family = "poisson",
  kind = "glmer", tau = tau_b, mean_logpop = mean(ohio$logpop), mean_year = mean(ohio$year),
  emmeans = list(
    sex_race_rate_offset0 = means(emmeans(b, ~ sex * race, type = "response", offset = 0)),
    sex_race_link_default_offset = means(emmeans(b, ~ sex * race)),
    sex_race_rate_per_100000 = means(emmeans(b, ~ sex * race, type = "response", offset = log(1e5))),
    race_rate_bias_adjusted = means(emmeans(b, ~ race, type = "response", offset = log(1e5), bias.adjust = TRUE,
                                            sigma = tau_b))
  ),
  contrasts = list(
    sex_by_race_rate_ratio = contrasts_of(emmeans(b, ~ sex | race, type = "response", offset = 0), "pairwise", "none"),
    cells_revpairwise_tukey_ratio = contrasts_of(emmeans(b, ~ sex * race, type = "response", offset = 0),
                                                 "revpairwise", "tukey")
  )))

# C: a GLM (R's glm) of the crossover, and a quasi-Poisson GLM (t intervals on the residual df)
c_fit <- glm(outcome ~ factor(trt) * factor(period), data = crossover, family = binomial)
cases$crossover_glm <- c(fit_info(c_fit), list(
  formula = "outcome ~ factor(trt) * factor(period)", family = "binomial", kind = "glm",
  emmeans = list(trt_response = means(emmeans(c_fit, ~ trt, type = "response")),
                 trt_period_link = means(emmeans(c_fit, ~ trt * period))),
  contrasts = list(trt_odds_ratio = contrasts_of(emmeans(c_fit, ~ trt, type = "response"), "revpairwise", "none"),
                   cells_pairwise_tukey = contrasts_of(emmeans(c_fit, ~ trt * period), "pairwise", "tukey"))))
cases$crossover_glm$contrasts$cells_pairwise_sidak <- contrasts_of(emmeans(c_fit, ~ trt * period), "pairwise", "sidak")
ticks$logTICKS <- log(ticks$TICKS + 1)  # a gaussian glm: emmeans' t intervals on the residual df
g_fit <- glm(logTICKS ~ factor(YEAR) + cHEIGHT, data = ticks, family = gaussian)
cases$ticks_gaussian_glm <- c(fit_info(g_fit), list(
  formula = "logTICKS ~ factor(YEAR) + cHEIGHT", family = "gaussian", kind = "glm", df_resid = g_fit$df.residual,
  emmeans = list(year_link = means(emmeans(g_fit, ~ YEAR))),
  contrasts = list(year_pairwise_tukey = contrasts_of(emmeans(g_fit, ~ YEAR), "pairwise", "tukey"),
                   year_trt_vs_ctrl_sidak = contrasts_of(emmeans(g_fit, ~ YEAR), "trt.vs.ctrl", "sidak"))))
q_fit <- glm(death ~ offset(logpop) + factor(sex) * factor(race), data = ohio, family = quasipoisson)
cases$ohio_quasipoisson_glm <- c(fit_info(q_fit), list(
  formula = "death ~ offset(logpop) + factor(sex) * factor(race)", family = "quasipoisson", kind = "glm",
  df_resid = q_fit$df.residual,
  emmeans = list(sex_race_rate_offset0 = means(emmeans(q_fit, ~ sex * race, type = "response", offset = 0))),
  contrasts = list(race_by_sex_ratio = contrasts_of(emmeans(q_fit, ~ race | sex, type = "response", offset = 0),
                                                    "pairwise", "none"))))

# D: negative binomial GLM (MASS's glm.nb) with a numeric covariate at its mean
d_fit <- glm.nb(TICKS ~ factor(YEAR) + cHEIGHT, data = ticks)
cases$ticks_nb_glm <- c(fit_info(d_fit), list(
  formula = "TICKS ~ factor(YEAR) + cHEIGHT", family = "negative_binomial", kind = "glm.nb",
  theta = d_fit$theta, mean_cHEIGHT = mean(ticks$cHEIGHT),
  emmeans = list(year_response = means(emmeans(d_fit, ~ YEAR, type = "response")),
                 year_link = means(emmeans(d_fit, ~ YEAR))),
  contrasts = list(year_pairwise_ratio_tukey = contrasts_of(emmeans(d_fit, ~ YEAR, type = "response"),
                                                            "pairwise", "tukey"))))

# E: a Poisson GLMM with a factor x covariate interaction: covariate at its mean, and at= values with by
e_fit <- glmer(TICKS ~ factor(YEAR) * cHEIGHT + (1 | LOCATION), data = ticks, family = poisson, control = control)
cases$ticks_poisson_glmer <- c(fit_info(e_fit), list(
  formula = "TICKS ~ factor(YEAR) * cHEIGHT + (1 | LOCATION)", family = "poisson", kind = "glmer",
  tau = attr(VarCorr(e_fit)$LOCATION, "stddev")[[1]],
  emmeans = list(year_response = means(emmeans(e_fit, ~ YEAR, type = "response")),
                 year_at_height_link = means(emmeans(e_fit, ~ YEAR | cHEIGHT, at = list(cHEIGHT = c(-20, 0, 20))))),
  contrasts = list(year_by_height_holm = contrasts_of(emmeans(e_fit, ~ YEAR | cHEIGHT, at = list(cHEIGHT = c(-20, 0, 20))),
                                                      "trt.vs.ctrl", "holm"))))

info <- list(R = R.version.string, emmeans = as.character(packageVersion("emmeans")),
             lme4 = as.character(packageVersion("lme4")), control = "bobyqa, tolPwrss 1e-12, rhoend 1e-10")
writeLines(toJSON(list(info = info, cases = cases), digits = NA, auto_unbox = TRUE, pretty = TRUE,
                  na = "null"), out_file)
