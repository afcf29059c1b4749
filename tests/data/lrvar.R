# Reference values for src/judge/lrv.rs: sandwich::lrvar (R 4.2.2, sandwich 3.0-2, Debian bookworm).
library(sandwich)
set.seed(20261202)
series <- list(
  ar08_n60 = as.numeric(arima.sim(list(ar = 0.8), n = 60)),
  iid_n60 = rnorm(60),
  ar05_n200 = as.numeric(arima.sim(list(ar = 0.5), n = 200)) * 3 + 100,
  neg_n25 = as.numeric(arima.sim(list(ar = -0.4), n = 25))
)
for (name in names(series)) {
  x <- series[[name]]
  cat(sprintf("// %s\n", name))
  cat(sprintf("x: [%s],\n", paste(sprintf("%.17g", x), collapse = ", ")))
  cat(sprintf("bartlett_prewhite: %.17g,\n", lrvar(x, kernel = "Bartlett")))
  cat(sprintf("bartlett_plain: %.17g,\n", lrvar(x, kernel = "Bartlett", prewhite = FALSE)))
  cat(sprintf("qs_prewhite: %.17g,\n", lrvar(x)))
  cat(sprintf("bartlett_bw: %.17g,\n", bwAndrews(lm(x ~ 1), kernel = "Bartlett")))
}
