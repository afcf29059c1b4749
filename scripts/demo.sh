#!/usr/bin/env bash
# The main job on the bundled default: judge examples/checkout-canary.json (a canary whose
# p99 latency regressed ~15%) and print the per-metric table and the verdict.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
need_cmd cargo
log "Building coalmine (first build takes ~4 minutes on 2 cores)"
cargo build -q -p coalmine --bin coalmine
log "coalmine judge examples/checkout-canary.json --format table"
status=0
"$ROOT/target/debug/coalmine" judge examples/checkout-canary.json --format table --fail-on fail || status=$?
if [ "$status" -eq 3 ]; then
    echo
    echo "The canary failed, as it should: its p99 latency regressed. (exit status 3 = verdict Fail)"
    exit 0
fi
exit "$status"
