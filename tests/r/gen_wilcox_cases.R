#!/usr/bin/env Rscript
# Generates tests/data/r_wilcox_cases.json: reference values of R's two-sample,
# two-sided wilcox.test(x, y, conf.int = TRUE, ...) for the Rust re-implementation.
# Run from the repository root:  Rscript tests/r/gen_wilcox_cases.R
# Base R only; JSON is written by hand. Output is deterministic (set.seed below).

set.seed(20240611)
out_path <- "tests/data/r_wilcox_cases.json"

# ---------------------------------------------------------------- JSON helpers
jnum <- function(v) {
  if (is.null(v) || length(v) == 0 || is.na(v)) return("null")
  if (is.infinite(v)) stop("infinite value cannot be written as JSON")
  sprintf("%.17g", as.double(v))
}
jstr <- function(s) {
  if (is.null(s) || is.na(s)) return("null")
  s <- gsub("\\", "\\\\", s, fixed = TRUE)
  s <- gsub("\"", "\\\"", s, fixed = TRUE)
  s <- gsub("\n", "\\n", s, fixed = TRUE)
  s <- gsub("\t", "\\t", s, fixed = TRUE)
  s <- gsub("\r", "\\r", s, fixed = TRUE)
  paste0("\"", s, "\"")
}
jbool <- function(b) if (is.null(b) || is.na(b)) "null" else if (b) "true" else "false"
jnumarr <- function(v) paste0("[", paste(vapply(v, jnum, ""), collapse = ", "), "]")
jstrarr <- function(v) if (length(v) == 0) "[]" else
  paste0("[", paste(vapply(v, jstr, ""), collapse = ", "), "]")
rlit <- function(v) if (is.null(v)) "NULL" else if (v) "TRUE" else "FALSE"

# ---------------------------------------------------------------- case builder
cases <- character(0)
n_exact <- 0L
n_asym <- 0L
case_counter <- 0L

add_case <- function(id, x, y, conf_level, exact = NULL, correct = TRUE) {
  case_counter <<- case_counter + 1L
  id <- sprintf("%03d_%s", case_counter, id)
  warns <- character(0)
  res <- tryCatch(
    withCallingHandlers(
      wilcox.test(x, y, conf.int = TRUE, conf.level = conf_level,
                  exact = exact, correct = correct),
      warning = function(w) {
        warns <<- c(warns, conditionMessage(w))
        invokeRestart("muffleWarning")
      }),
    error = function(e) e)
  if (inherits(res, "error")) {
    message(sprintf("note: dropping case %s: R error: %s", id, conditionMessage(res)))
    return(invisible(FALSE))
  }
  d <- sort(outer(x, y, "-"))
  L <- length(d)
  if (L %% 2 == 1) {
    mid_lo <- d[(L + 1) / 2]; mid_hi <- mid_lo
  } else {
    mid_lo <- d[L / 2]; mid_hi <- d[L / 2 + 1]
  }
  method <- if (grepl("exact", res$method)) "exact" else "asymptotic"
  if (method == "exact") n_exact <<- n_exact + 1L else n_asym <<- n_asym + 1L
  r_call <- sprintf(
    "wilcox.test(x, y, conf.int = TRUE, conf.level = %s, exact = %s, correct = %s)",
    format(conf_level), rlit(exact), rlit(correct))
  expected <- paste0(
    "{",
    "\"lower\": ", jnum(res$conf.int[1]), ", ",
    "\"upper\": ", jnum(res$conf.int[2]), ", ",
    "\"estimate\": ", jnum(unname(res$estimate)), ", ",
    "\"p_value\": ", jnum(res$p.value), ", ",
    "\"statistic\": ", jnum(unname(res$statistic)), ", ",
    "\"method\": ", jstr(method), ", ",
    "\"conf_level_attr\": ", jnum(attr(res$conf.int, "conf.level")), ", ",
    "\"hl_median\": ", jnum(median(d)), ", ",
    "\"mid_lo\": ", jnum(mid_lo), ", ",
    "\"mid_hi\": ", jnum(mid_hi), ", ",
    "\"warnings\": ", jstrarr(warns),
    "}")
  case <- paste0(
    "    {",
    "\"id\": ", jstr(id), ", ",
    "\"r_call\": ", jstr(r_call), ", ",
    "\"x\": ", jnumarr(x), ", ",
    "\"y\": ", jnumarr(y), ", ",
    "\"conf_level\": ", jnum(conf_level), ", ",
    "\"exact\": ", jbool(exact), ", ",
    "\"correct\": ", jbool(correct), ", ",
    "\"expected\": ", expected,
    "}")
  cases <<- c(cases, case)
  invisible(TRUE)
}

# ---------------------------------------------------------------- 1. exact path
# Continuous rnorm data (no ties), both n < 50, default exact = NULL.
exact_sizes <- list(c(3, 3), c(3, 5), c(5, 4), c(10, 12), c(20, 20), c(30, 45), c(49, 49))
exact_shifts <- c(0, 0.5, 2)
exact_cls <- c(0.90, 0.95, 0.98, 0.99)
k <- 0L
for (sz in exact_sizes) {
  for (sh in exact_shifts) {
    x <- rnorm(sz[1], mean = sh)
    y <- rnorm(sz[2])
    k <- k + 1L
    cl <- exact_cls[(k - 1L) %% length(exact_cls) + 1L]
    add_case(sprintf("exact_n%d_m%d_shift%g_cl%g", sz[1], sz[2], sh, cl), x, y, cl)
  }
}
# Unachievable confidence levels (R warns and reports the achieved level).
x <- rnorm(3); y <- rnorm(3)
add_case("exact_unachievable_n3_m3_cl0.99", x, y, 0.99)
add_case("exact_unachievable_n3_m3_cl0.95", x, y, 0.95)
x <- rnorm(2, 1); y <- rnorm(4)
add_case("exact_unachievable_n2_m4_cl0.95", x, y, 0.95)
# exact = NULL with correct = FALSE (correct is irrelevant for the exact path).
x <- rnorm(12, 0.5); y <- rnorm(9)
add_case("exact_n12_m9_correct_false", x, y, 0.95, NULL, FALSE)

# ---------------------------------------------------------------- 2. forced exact
x <- rnorm(60, 0.3); y <- rnorm(70)
add_case("forced_exact_n60_m70_cl0.95", x, y, 0.95, TRUE, TRUE)
add_case("forced_exact_n60_m70_cl0.99", x, y, 0.99, TRUE, TRUE)
x <- rnorm(55); y <- rnorm(52, -1)
add_case("forced_exact_n55_m52_cl0.90", x, y, 0.90, TRUE, FALSE)
# exact = TRUE with ties: R falls back to the normal approximation and warns.
x <- round(rnorm(15), 1); y <- round(rnorm(18, 0.4), 1)
add_case("forced_exact_ties_n15_m18_correct", x, y, 0.95, TRUE, TRUE)
add_case("forced_exact_ties_n15_m18_nocorrect", x, y, 0.95, TRUE, FALSE)
x <- rpois(20, 3); y <- rpois(25, 4)
add_case("forced_exact_ties_pois_n20_m25", x, y, 0.90, TRUE, TRUE)

# ---------------------------------------------------------------- 3. asymptotic
asym_sizes <- list(c(50, 50), c(60, 80), c(100, 100), c(200, 150),
                   c(500, 500), c(1000, 800), c(2000, 2000))
asym_cls <- c(0.90, 0.95, 0.975, 0.98, 0.99)
asym_shifts <- c(0, 0.7, -0.4, 0.2, -1.5, 0.1, 0)
for (i in seq_along(asym_sizes)) {
  sz <- asym_sizes[[i]]
  x <- rnorm(sz[1], mean = asym_shifts[i]); y <- rnorm(sz[2])
  cl <- asym_cls[(i - 1L) %% length(asym_cls) + 1L]
  add_case(sprintf("asym_n%d_m%d_cl%g_correct", sz[1], sz[2], cl), x, y, cl, NULL, TRUE)
  if (sz[1] * sz[2] <= 200000) {
    cl2 <- asym_cls[i %% length(asym_cls) + 1L]
    add_case(sprintf("asym_n%d_m%d_cl%g_nocorrect", sz[1], sz[2], cl2), x, y, cl2, NULL, FALSE)
  }
}
# Small samples with ties (rounded to 0 or 1 decimal; the smallest uses 0
# decimals so that ties are guaranteed to occur).
for (sz in list(c(6, 8, 0), c(12, 10, 1), c(25, 30, 1))) {
  x <- round(rnorm(sz[1], 0.5), sz[3]); y <- round(rnorm(sz[2]), sz[3])
  add_case(sprintf("ties_round%d_n%d_m%d_correct", sz[3], sz[1], sz[2]), x, y, 0.95, NULL, TRUE)
  add_case(sprintf("ties_round%d_n%d_m%d_nocorrect", sz[3], sz[1], sz[2]), x, y, 0.90, NULL, FALSE)
}
# Integer ties (rpois).
x <- rpois(10, 2); y <- rpois(12, 2)
add_case("ties_pois_n10_m12_cl0.975", x, y, 0.975, NULL, TRUE)
x <- rpois(40, 5); y <- rpois(35, 3)
add_case("ties_pois_n40_m35_cl0.99_nocorrect", x, y, 0.99, NULL, FALSE)
x <- rpois(80, 1); y <- rpois(90, 1.5)
add_case("ties_pois_n80_m90_cl0.98", x, y, 0.98, NULL, TRUE)
# Heavy ties: sparse error counts, mostly zeros.
x <- rpois(300, 0.2); y <- rpois(300, 0.2)
add_case("heavy_ties_pois0.2_n300_m300_correct", x, y, 0.95, NULL, TRUE)
add_case("heavy_ties_pois0.2_n300_m300_nocorrect", x, y, 0.90, NULL, FALSE)
x <- rpois(300, 0.4); y <- rpois(300, 0.1)
add_case("heavy_ties_pois_shift_n300_m300", x, y, 0.99, NULL, TRUE)
x <- rbinom(300, 1, 0.05); y <- rbinom(300, 1, 0.1)
add_case("heavy_ties_binom_n300_m300_correct", x, y, 0.95, NULL, TRUE)
add_case("heavy_ties_binom_n300_m300_nocorrect", x, y, 0.975, NULL, FALSE)
x <- rbinom(40, 2, 0.1); y <- rbinom(30, 2, 0.1)
add_case("heavy_ties_binom2_n40_m30", x, y, 0.95, NULL, TRUE)
# Degenerate: all observations tied (R errors -> dropped with a note).
add_case("all_tied_zero", rep(0, 10), rep(0, 12), 0.95, NULL, TRUE)
# Different scales.
x <- rnorm(30, 1e-3, 1e-3); y <- rnorm(40, 0.5e-3, 1e-3)
add_case("scale_1e-3_exact_n30_m40", x, y, 0.95, NULL, TRUE)
x <- rnorm(120, 1e-3, 1e-3); y <- rnorm(100, 1.3e-3, 1e-3)
add_case("scale_1e-3_asym_n120_m100", x, y, 0.95, NULL, TRUE)
x <- round(rnorm(60, 2e-3, 1e-3), 4); y <- round(rnorm(70, 1e-3, 1e-3), 4)
add_case("scale_1e-3_ties_n60_m70", x, y, 0.90, NULL, FALSE)
x <- rnorm(25, 1e4, 2e3); y <- rnorm(20, 1.1e4, 2e3)
add_case("scale_1e4_exact_n25_m20", x, y, 0.99, NULL, TRUE)
x <- rnorm(150, 1e4, 2e3); y <- rnorm(130, 0.95e4, 2e3)
add_case("scale_1e4_asym_n150_m130", x, y, 0.98, NULL, TRUE)
x <- round(rnorm(80, 1e4, 2e3), -2); y <- round(rnorm(90, 1e4, 2e3), -2)
add_case("scale_1e4_ties_n80_m90", x, y, 0.95, NULL, FALSE)
# exact = FALSE explicitly on small no-tie samples.
for (sz in list(c(3, 4), c(8, 6), c(15, 20), c(40, 30))) {
  x <- rnorm(sz[1], 0.6); y <- rnorm(sz[2])
  add_case(sprintf("forced_asym_n%d_m%d_correct", sz[1], sz[2]), x, y, 0.95, FALSE, TRUE)
  add_case(sprintf("forced_asym_n%d_m%d_nocorrect", sz[1], sz[2]), x, y, 0.90, FALSE, FALSE)
}
x <- rnorm(10, -2); y <- rnorm(10)
add_case("forced_asym_n10_m10_negshift_cl0.99", x, y, 0.99, FALSE, TRUE)
add_case("forced_asym_n10_m10_negshift_cl0.975", x, y, 0.975, FALSE, FALSE)

# ---------------------------------------------------------------- write
json <- paste0(
  "{\n",
  "  \"generator\": ", jstr("tests/r/gen_wilcox_cases.R"), ",\n",
  "  \"r_version\": ", jstr(R.version.string), ",\n",
  "  \"cases\": [\n",
  paste(cases, collapse = ",\n"), "\n",
  "  ]\n",
  "}\n")
dir.create(dirname(out_path), showWarnings = FALSE, recursive = TRUE)
con <- file(out_path, open = "wb")
writeBin(charToRaw(json), con)
close(con)
cat(sprintf("wrote %s: %d cases (%d exact, %d asymptotic), %d bytes\n",
            out_path, length(cases), n_exact, n_asym, file.size(out_path)))
