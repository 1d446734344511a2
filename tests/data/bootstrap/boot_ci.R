# R's boot.ci (type perc, basic, norm) on the replicates of make_replicates.py, as confint.merMod(method =
# "boot") calls it: one boot object (sim = "parametric") per number of replicates R (the first R rows), each
# column an index. R 4.2, boot 1.3-28.1. Run from the repository root: Rscript tests/data/bootstrap/boot_ci.R
library(boot)
library(jsonlite)
here <- "tests/data/bootstrap"
t_all <- as.matrix(read.csv(file.path(here, "replicates.csv"), check.names = FALSE))
t0 <- unlist(read.csv(file.path(here, "observed.csv"), check.names = FALSE)[1, ])
out <- list(boot_version = as.character(packageVersion("boot")), cases = list())
for (R in c(39L, 199L, 200L)) {
  bb <- structure(list(t0 = t0, t = t_all[seq_len(R), , drop = FALSE], R = R, sim = "parametric",
                       stype = "i", call = quote(bootMer()), data = NULL, strata = 1, weights = 1),
                  class = "boot")
  for (conf in c(0.95, 0.9)) {
    for (type in c("perc", "basic", "norm")) {
      slot <- c(perc = "percent", basic = "basic", norm = "normal")[[type]]
      ends <- t(sapply(seq_along(t0), function(i) {
        ci <- suppressWarnings(boot.ci(bb, conf = conf, type = type, index = i))[[slot]]
        ci[1, ncol(ci) - 1:0]
      }))
      out$cases[[length(out$cases) + 1]] <- list(R = R, conf = conf, type = type, names = names(t0),
                                                 lower = ends[, 1], upper = ends[, 2])
    }
  }
}
writeLines(toJSON(out, digits = NA, auto_unbox = TRUE, pretty = TRUE), file.path(here, "boot_ci.json"))
