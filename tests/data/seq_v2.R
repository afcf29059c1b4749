# Reference values for coalmine-seq-v2 (src/judge/sequential/paired.rs, count.rs), written to
# tests/data/seq_v2.json. R 4.2.2 (Debian bookworm r-base-core) and sandwich.
library(sandwich)
# Run from the repository root: Rscript tests/data/seq_v2.R > tests/data/seq_v2.json
#
# 1. The t-mixture Bayes factor: the likelihood ratio of the t statistic (its density under
#    a N(0, g) prior on the standardised effect d, noncentral t with ncp d*sqrt(n), over the
#    central t density), integrated numerically.
# 2. The crossing point: uniroot on that integral for BF = 1/alpha.
# 3. The dispersion of per-look counts as the cumulative count sees it: the cluster-robust
#    (HC1) over the model-based variance of the intercept of glm(cbind(e, n - e) ~ 1,
#    binomial) fitted to the looks with events (sandwich 3.0-2, Debian r-cran-sandwich).
bf <- function(t, n, g) {
  nu <- n - 1
  # dt() warns that full precision may not be reached far in the noncentral tails, where the
  # integrand is negligible; the prior's mass beyond 8 sd is below 1e-15
  f <- function(d) suppressWarnings(dt(t, nu, ncp = d * sqrt(n))) / dt(t, nu) * dnorm(d, 0, sqrt(g))
  s <- 8 * sqrt(g)
  integrate(f, -s, s, rel.tol = 1e-9, subdivisions = 5000L)$value
}
cases <- list(c(2.5, 10, 0.5), c(0.7, 30, 0.1), c(3.8, 60, 0.05), c(-2.2, 120, 0.02), c(5, 25, 0.2))
out <- c()
for (cs in cases) {
  out <- c(out, sprintf('{"t": %.17g, "n": %.17g, "g": %.17g, "bf": %.17g}', cs[1], cs[2], cs[3], bf(cs[1], cs[2], cs[3])))
}
crit <- c()
for (cs in list(c(30, 0.05, 0.01), c(100, 0.02, 0.01), c(12, 0.3, 0.05))) {
  n <- cs[1]; g <- cs[2]; a <- cs[3]
  r <- uniroot(function(t) log(bf(t, n, g)) - log(1 / a), c(1, 8), tol = 1e-12)$root
  crit <- c(crit, sprintf('{"n": %.17g, "g": %.17g, "alpha": %.17g, "t": %.17g}', n, g, a, r))
}
set.seed(20261202)
disp <- c()
for (burst in c(1, 5)) {
  looks <- 200
  e <- c(); ctl <- c()
  for (i in 1:looks) {
    draw <- function(rate) {
      if (burst == 1) return(rpois(1, rate))
      k <- rpois(1, rate / burst)
      if (k == 0) 0 else sum(rgeom(k, 1 / burst) + 1)
    }
    ctl <- c(ctl, draw(1)); e <- c(e, draw(1))
  }
  n <- ctl + e
  k <- n > 0
  ek <- e[k]; nk <- n[k]
  fit <- glm(cbind(ek, nk - ek) ~ 1, family = binomial, control = glm.control(epsilon = 1e-14))
  ratio <- vcovHC(fit, type = "HC1")[1, 1] / vcov(fit)[1, 1]
  disp <- c(disp, sprintf('{"burst": %d, "control": [%s], "experiment": [%s], "dispersion": %.17g}',
    burst, paste(ctl, collapse = ", "), paste(e, collapse = ", "), ratio))
}
cat(sprintf('{"provenance": "Rscript tests/data/seq_v2.R (%s)",\n "bayes_factor": [\n  %s],\n "critical_t": [\n  %s],\n "dispersion": [\n  %s]}\n',
  R.version.string, paste(out, collapse = ",\n  "), paste(crit, collapse = ",\n  "), paste(disp, collapse = ",\n  ")))
