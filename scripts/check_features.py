#!/usr/bin/env python3
"""Check that the Python module builds its dependencies with the daemon's features.

`cargo test -p coalmine` (the daemon: axum, clap, rdkafka, tracing-subscriber on) and
`maturin develop` (the Python module: coalmine without those features) share one target
directory. A crate built with other features is built twice, and so is everything above
it: a single feature of tokio or serde_json more on one side rebuilt DataFusion and arrow
for the Python module, minutes on 2 cores. Cargo.toml turns on, for both, the features the
daemon's optional dependencies need (its "feature unification" list); this script fails,
naming the crates, when the two sides differ again (a dependency was added or upgraded).

    python3 scripts/check_features.py
"""

import subprocess
import sys


def features(package: str) -> dict:
    out = subprocess.run(
        ["cargo", "tree", "-p", package, "-e", "features", "--prefix", "none", "-f", "{p} {f}"],
        check=True, capture_output=True, text=True,
    ).stdout
    seen: dict = {}
    for line in out.splitlines():
        parts = line.replace(" (*)", "").split(" ")
        if len(parts) < 2 or not parts[1].startswith("v"):
            continue  # "feature" nodes of the graph
        name = f"{parts[0]} {parts[1]}"
        feats = parts[-1] if len(parts) > 2 and not parts[-1].startswith("(") else ""
        seen.setdefault(name, set()).add(feats)
    return seen


def main() -> int:
    daemon, python = features("coalmine"), features("coalmine-python")
    # coalmine itself differs by design; toml's parser is only ours (nothing builds on it)
    exempt = ("coalmine ", "toml_parser ", "winnow ")
    differ = sorted(
        k for k in daemon.keys() & python.keys()
        if daemon[k] != python[k] and not k.startswith(exempt)
    )
    for k in differ:
        print(f"{k}: daemon {sorted(daemon[k])} vs Python module {sorted(python[k])}", file=sys.stderr)
    if differ:
        print("error: the Python module would rebuild these crates (and all that depends on them):"
              " add their features to the feature-unification list in Cargo.toml", file=sys.stderr)
        return 1
    print(f"ok: the Python module builds its {len(python)} crates with the daemon's features")
    return 0


if __name__ == "__main__":
    sys.exit(main())
