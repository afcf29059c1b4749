#!/usr/bin/env python3
"""coalmine vs R's wilcox.test(conf.int = TRUE), measured in one run on the same samples.

    python3 benches/compare_r.py            # installs r-base-core if missing (Debian)

Writes samples to bench-results/compare_r/, times coalmine (release build of
examples/timing.rs, median over repetitions in-process) and R (median of per-call times in
one Rscript process), checks that both give the same interval, and prints medians and
ratios. Also times a full judgment of 100 metrics x 1,000 points per side with both judges,
against R doing the 100 wilcox.test calls such a judgment needs.
"""

import json
import math
import random
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "bench-results" / "compare_r"
SIZES = [100, 1_000, 10_000]

R_SCRIPT = r"""
args <- commandArgs(trailingOnly = TRUE)
mode <- args[1]
time_calls <- function(f, reps, budget = 20) {
  f()
  t <- numeric(0)
  start <- proc.time()[["elapsed"]]
  for (i in seq_len(reps)) {
    s <- proc.time()[["elapsed"]]
    f()
    t <- c(t, proc.time()[["elapsed"]] - s)
    if (proc.time()[["elapsed"]] - start > budget) break
  }
  t
}
if (mode == "mw") {
  x <- scan(args[2], quiet = TRUE); y <- scan(args[3], quiet = TRUE); reps <- as.integer(args[4])
  r <- wilcox.test(x, y, conf.int = TRUE)
  # per-call time: R's timer has 1 ms resolution, so time batches of calls for small samples
  batch <- max(1L, as.integer(args[5]))
  t <- time_calls(function() for (k in seq_len(batch)) wilcox.test(x, y, conf.int = TRUE), reps) / batch
  cat(sprintf('{"median_s": %.9g, "reps": %d, "batch": %d, "lower": %.17g, "upper": %.17g, "estimate": %.17g, "p_value": %.17g}\n',
              median(t), length(t), batch, r$conf.int[1], r$conf.int[2], r$estimate, r$p.value))
} else {
  files <- sort(list.files(args[2], pattern = "^pair-.*-x.csv$", full.names = TRUE))
  pairs <- lapply(files, function(f) list(x = scan(f, quiet = TRUE), y = scan(sub("-x.csv$", "-y.csv", f), quiet = TRUE)))
  reps <- as.integer(args[3])
  t <- time_calls(function() for (p in pairs) wilcox.test(p$x, p$y, conf.int = TRUE, conf.level = 0.98), reps)
  cat(sprintf('{"median_s": %.9g, "reps": %d, "metrics": %d}\n', median(t), length(t), length(pairs)))
}
"""


def run(cmd, **kw):
    return subprocess.run(cmd, check=True, capture_output=True, text=True, cwd=ROOT, **kw)


def ensure_r():
    if shutil.which("Rscript"):
        return
    print("Installing r-base-core (Debian) ...", file=sys.stderr)
    sudo = [] if hasattr(subprocess, "os") and __import__("os").geteuid() == 0 else ["sudo"]
    subprocess.run(sudo + ["apt-get", "update", "-qq"], check=True)
    subprocess.run(sudo + ["apt-get", "install", "-y", "-qq", "--no-install-recommends", "r-base-core"], check=True)


def write_column(path, values):
    path.write_text("\n".join(repr(v) for v in values) + "\n")


def main():
    ensure_r()
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "timer.R").write_text(R_SCRIPT)
    print("Building the timing harness (release) ...", file=sys.stderr)
    run(["cargo", "build", "--release", "--example", "timing", "-q"])
    timer = ROOT / "target" / "release" / "examples" / "timing"
    rng = random.Random(20261122)
    rows = []
    for n in SIZES:
        x = [rng.gauss(0.1, 1.0) for _ in range(n)]
        y = [rng.gauss(0.0, 1.0) for _ in range(n)]
        xf, yf = OUT / f"mw-{n}-x.csv", OUT / f"mw-{n}-y.csv"
        write_column(xf, x)
        write_column(yf, y)
        reps = 200 if n <= 1000 else 50
        ours = json.loads(run([str(timer), "mw", str(xf), str(yf), str(reps)]).stdout)
        batch = {100: 200, 1_000: 5, 10_000: 1}[n]
        theirs = json.loads(run(["Rscript", str(OUT / "timer.R"), "mw", str(xf), str(yf), "15", str(batch)]).stdout)
        agree = max(abs(ours["lower"] - theirs["lower"]), abs(ours["upper"] - theirs["upper"]))
        rows.append((f"mann_whitney n=m={n:,}", ours["median_s"], theirs["median_s"], agree,
                     abs(ours["p_value"] - theirs["p_value"]) / theirs["p_value"]))
    # a full judgment: 100 metrics x 1,000 points per side
    jdir = OUT / "judgment"
    jdir.mkdir(exist_ok=True)
    metrics, pairs = [], []
    for i in range(100):
        base = 100.0 + i
        shift = 1.03 if i % 5 == 0 else 1.0
        ctl = [rng.gauss(base, base * 0.1) for _ in range(1000)]
        exp = [rng.gauss(base * shift, base * 0.1) for _ in range(1000)]
        write_column(jdir / f"pair-{i:03}-x.csv", exp)
        write_column(jdir / f"pair-{i:03}-y.csv", ctl)
        name = f"metric-{i:03}"
        metrics.append({"name": name, "query": {"type": "sql", "sql": "SELECT value FROM metrics"},
                        "groups": [f"group-{i % 5}"], "analysisConfigurations": {"canary": {"direction": "increase"}},
                        "scopeName": "default"})
        pairs.append({"name": name, "id": f"pair-{i}", "tags": {}, "values": {"control": ctl, "experiment": exp}})
    request = {"canaryConfig": {"name": "bench", "applications": ["bench"], "metrics": metrics},
               "metricSetPairList": pairs, "scoreThresholds": {"pass": 95, "marginal": 75}}
    (jdir / "request.json").write_text(json.dumps(request))
    ours = json.loads(run([str(timer), "judge", str(jdir / "request.json"), "30"]).stdout)
    theirs = json.loads(run(["Rscript", str(OUT / "timer.R"), "judge", str(jdir), "5"]).stdout)
    for name, r in ours.items():
        rows.append((f"judgment 100x1000 {name}", r["median_s"], theirs["median_s"], None, None))

    print()
    print(f"{'workload':<44} {'coalmine':>12} {'R wilcox.test':>14} {'ratio':>8}  agreement")
    for name, ours_s, r_s, agree, p_rel in rows:
        ratio = r_s / ours_s
        note = "" if agree is None else f"CI diff {agree:.1e}, p rel diff {p_rel:.1e}"
        print(f"{name:<44} {fmt(ours_s):>12} {fmt(r_s):>14} {ratio:>7.0f}x  {note}")
    print("\n(medians; R's judgment column is the 100 wilcox.test(conf.int=TRUE) calls a judgment needs)")
    (OUT / "results.json").write_text(json.dumps(rows, indent=1))


def fmt(seconds):
    if seconds >= 1:
        return f"{seconds:.2f} s"
    if seconds >= 1e-3:
        return f"{seconds * 1e3:.2f} ms"
    return f"{seconds * 1e6:.1f} µs"


if __name__ == "__main__":
    main()
