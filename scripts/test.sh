#!/usr/bin/env bash
# Runs every test: Rust unit and integration tests, then the Python suite against the
# module built from this checkout. Installs what it needs on a fresh machine.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
need_cmd cargo

python_env
oracle_env
# the documentation tests run the docs' curl | jq commands; the real-canary test runs nginx
# servers under load from hey; the SQL function tests compare with a real Prometheus; the
# report tests render pages in a real browser (chromium, headless)
apt_install curl jq nginx hey prometheus chromium

log "Starting a Kafka-protocol broker (Tansu) for the integration tests"
COALMINE_TEST_KAFKA="$("$VENV/bin/python" scripts/tansu.py start)"
export COALMINE_TEST_KAFKA COALMINE_REQUIRE_KAFKA=1
trap '"$VENV/bin/python" scripts/tansu.py stop >/dev/null 2>&1 || true' EXIT
echo "broker at $COALMINE_TEST_KAFKA"

log "The Python module shares the daemon's build (same features for every crate both build)"
python3 scripts/check_features.py
log "The module graph points one way (no cycles between files or stages)"
python3 scripts/check_module_graph.py

log "Rust tests (cargo test; the broker tests are #[ignore]d without a broker, so include them)"
cargo test -p coalmine --lib --bins --tests --examples -- --include-ignored
log "Benchmarks compile (they run with scripts in benches/, not here)"
cargo test -p coalmine --benches --no-run

python_module

log "Python tests (pytest)"
COALMINE_BIN="$ROOT/target/debug/coalmine" "$VENV/bin/pytest" -q

log "Notebooks (executed top to bottom)"
PATH="$VENV/bin:$PATH" "$VENV/bin/python" scripts/run_notebooks.py

log "Type stubs (mypy.stubtest) and types (mypy --strict)"
(cd /tmp && "$VENV/bin/python" -m mypy.stubtest coalmine._internal)
(cd /tmp && "$VENV/bin/python" -m mypy --config-file "$ROOT/pyproject.toml" -p coalmine)

log "All tests passed"
