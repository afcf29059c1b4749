#!/usr/bin/env bash
# The main job on the embedded default: `coalmine demo` runs the whole pipeline in one
# process — an in-process Kafka-protocol broker, synthetic traffic from 3 baseline and 3
# canary instances, the daemon with a bundled SQL canary config, a canary run printed tick
# by tick. First with the canary's latency regressed by 15% (coalmine must catch it), then
# a clean canary (coalmine must let it pass).
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
need_cmd cargo
log "Building coalmine (first build: about 7 minutes on 2 cores)"
cargo build -q -p coalmine --bin coalmine
BIN="$ROOT/target/debug/coalmine"

log "coalmine demo --regression latency=+15%   (the canary is slower: expect FAIL)"
status=0
mkdir -p "$ROOT/target/demo"
"$BIN" demo --regression latency=+15% --report "$ROOT/target/demo/report-regressed.html" || status=$?
if [ "$status" -ne 1 ]; then
    echo "error: the regressed canary was not failed (exit $status)" >&2
    exit 1
fi

log "coalmine demo --regression none   (a healthy canary: expect PASS)"
"$BIN" demo --regression none --report "$ROOT/target/demo/report-healthy.html"

log "Both verdicts as expected: the regression was caught, the healthy canary passed."
echo "Their reports: target/demo/report-regressed.html and target/demo/report-healthy.html"
