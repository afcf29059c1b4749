# Shared set-up for the scripts: one virtualenv, one cargo target dir.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"
VENV="$ROOT/.venv"

# Each step with the elapsed time since the script started (seconds), to see where time goes.
log() { printf '\n==> [%4ss] %s\n' "$SECONDS" "$*" >&2; }

need_cmd() {
    command -v "$1" >/dev/null 2>&1 || { echo "error: '$1' is required but not installed" >&2; exit 1; }
}

# Install Debian packages that are missing (only when some are; needs root or sudo).
apt_install() {
    local missing=()
    for p in "$@"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
    [ ${#missing[@]} -eq 0 ] && return 0
    log "Installing Debian packages: ${missing[*]}"
    local sudo=""; [ "$(id -u)" -ne 0 ] && sudo="sudo"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

# The project's virtualenv with the pinned Python dependencies.
python_env() {
    need_cmd python3
    if [ ! -x "$VENV/bin/python" ]; then
        log "Creating $VENV"
        python3 -m venv "$VENV"
    fi
    log "Installing Python dependencies (python/requirements-dev.txt)"
    "$VENV/bin/pip" install -q -r python/requirements-dev.txt
}

# Build the Python extension into the virtualenv (dev profile, shared target dir).
python_module() {
    log "Building the coalmine Python module (maturin develop)"
    VIRTUAL_ENV="$VENV" PATH="$VENV/bin:$PATH" "$VENV/bin/maturin" develop -q
}

# The oracles of the sequential judge: savvi (wheels) and confseq (built against Boost).
oracle_env() {
    apt_install libboost-dev g++
    log "Installing the statistical oracles (savvi, confseq)"
    "$VENV/bin/pip" install -q -r python/requirements-oracles.txt
    if ! "$VENV/bin/python" -c "import confseq" 2>/dev/null; then
        "$VENV/bin/pip" install -q -r python/requirements-confseq-build.txt
        "$VENV/bin/pip" install -q --no-build-isolation confseq==0.0.11
    fi
}
