"""Re-judge throughput: `Archive.rejudge` against a pure-Python scipy loop, same data, same run.

    .venv/bin/python benches/rejudge_vs_scipy.py [--runs 2800] [--judgments 5] [--metrics 20]

Writes a fixture archive (``coalmine.archive.write_fixture``: runs x judgments judgments of
`metrics` metric-set pairs each) to a temporary directory, then times

* ``archive.rejudge(judge="NetflixACAJudge-v1.0")`` on every core (median of ``--repeat``),
  i.e. Mann-Whitney with its confidence interval and Hodges-Lehmann estimate, effect sizes,
  NaN handling, classification and weighted scoring of every judgment;
* a pure-Python loop calling ``scipy.stats.mannwhitneyu`` once per metric-set pair of every
  judgment (the p-value only: no interval, no estimate, no scoring), over arrays extracted
  from the archive beforehand (extraction not timed), once.

Build the module in release mode first (``maturin develop --release``); a debug build is ~20x
slower and the script says so.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import numpy as np
import scipy
import scipy.stats

import coalmine
from coalmine.archive import Archive, write_fixture


def extract(archive: Archive) -> list:
    """Each judgment's pairs as (control, experiment) float arrays."""
    t = archive.pairs().to_pandas()
    groups: dict = defaultdict(lambda: ([], []))
    for (run, j, pid, scope), g in t.groupby(["run_id", "judgment", "pair_id", "scope"], observed=True, sort=False):
        side = 0 if scope == "control" else 1
        groups[(run, j, pid)][side].extend(g.sort_values("position")["value"].tolist())
    return [(np.asarray(c, dtype=float), np.asarray(e, dtype=float)) for c, e in groups.values()]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=2800)
    ap.add_argument("--judgments", type=int, default=5)
    ap.add_argument("--metrics", type=int, default=20)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--dir", type=Path, help="archive directory (default: a temporary one)")
    a = ap.parse_args()
    if coalmine.__build__ != "release":
        print(f"warning: coalmine was built in {coalmine.__build__} mode; figures are not representative")

    with tempfile.TemporaryDirectory(prefix="coalmine-rejudge-") as tmp:
        root = a.dir or Path(tmp) / "archive"
        t0 = time.perf_counter()
        n = write_fixture(root, runs=a.runs, judgments=a.judgments, metrics=a.metrics, judge="NetflixACAJudge-v1.0")
        print(f"fixture: {n} judgments x {a.metrics} metrics in {time.perf_counter() - t0:.1f} s ({root})")
        archive = Archive.open(root)
        judgments = len(archive.judgments())

        times = []
        for _ in range(a.repeat):
            t0 = time.perf_counter()
            cmp = archive.rejudge(judge="NetflixACAJudge-v1.0")
            times.append(time.perf_counter() - t0)
        ours = statistics.median(times)
        changed = cmp.summary()
        print(f"coalmine rejudge (NetflixACAJudge-v1.0, all cores): median {ours:.3f} s of {a.repeat} "
              f"-> {judgments / ours:,.0f} judgments/s; {changed}")

        pairs = extract(archive)
        t0 = time.perf_counter()
        p_sum = 0.0
        for control, experiment in pairs:
            p_sum += scipy.stats.mannwhitneyu(experiment, control, alternative="two-sided").pvalue
        theirs = time.perf_counter() - t0
        print(f"scipy {scipy.__version__} loop ({len(pairs)} mannwhitneyu calls, 1 thread): {theirs:.3f} s "
              f"-> {judgments / theirs:,.0f} judgments/s (mean p {p_sum / max(len(pairs), 1):.3f})")
        print(f"ratio: coalmine is {theirs / ours:.1f}x faster, doing more work per metric")


if __name__ == "__main__":
    main()
