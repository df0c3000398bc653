#!/usr/bin/env bash
# Cairn's run command: builds the web app and the server, then serves.
#
#   ./scripts/run.sh [extra arguments for `cairn serve`]
#
# Installs Node.js/npm when missing, builds web/ (the server embeds web/dist),
# builds the release binary and runs `cairn serve`. Needs no PostgreSQL or
# Redis: the defaults are embedded (SQLite and an in-process bus). Configure
# with CAIRN__SECTION__KEY variables, e.g. CAIRN__SERVER__BIND=127.0.0.1:9000.
#
# Environment:
#   CAIRN_CACHE_DIR  build cache (default: ~/.cache/cairn); cargo builds into
#                    $CAIRN_CACHE_DIR/target
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$(pwd)

: "${HOME:=$(cd ~ && pwd)}"
CAIRN_CACHE_DIR=${CAIRN_CACHE_DIR:-$HOME/.cache/cairn}
export CAIRN_CACHE_DIR
export CARGO_TARGET_DIR="$CAIRN_CACHE_DIR/target"

log() { printf '==> %s\n' "$*"; }
die() {
    printf 'error: %s\n' "$*" >&2
    exit 1
}

# Runs a command as root: directly when we are root, else through sudo.
as_root() {
    if [[ $(id -u) -eq 0 ]]; then
        "$@"
    elif command -v sudo >/dev/null 2>&1; then
        sudo "$@"
    else
        die "root (or sudo) is needed to run: $*"
    fi
}

# Installs Debian packages (refreshing the package lists first).
apt_install() {
    command -v apt-get >/dev/null 2>&1 ||
        die "cannot install $* (no apt-get on this machine): install it by hand and retry"
    log "setup: apt-get update"
    as_root apt-get update -qq
    log "setup: installing $*"
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@"
}

ensure_cargo() {
    if ! command -v cargo >/dev/null 2>&1 && [[ -x $HOME/.cargo/bin/cargo ]]; then
        PATH="$HOME/.cargo/bin:$PATH"
    fi
    command -v cargo >/dev/null 2>&1 ||
        die "cargo not found: install the Rust toolchain (rustup, Rust 1.95 or newer) and put cargo on PATH"
}

ensure_node() {
    local missing=() version major minor
    command -v node >/dev/null 2>&1 || missing+=(nodejs)
    command -v npm >/dev/null 2>&1 || missing+=(npm)
    if [[ ${#missing[@]} -gt 0 ]]; then
        apt_install "${missing[@]}"
    fi
    # web/package.json: "engines": { "node": "^20.19.0 || >=22.12.0" }
    version=$(node --version)
    version=${version#v}
    major=${version%%.*}
    minor=${version#*.}
    minor=${minor%%.*}
    if ! { [[ $major -eq 20 && $minor -ge 19 ]] || [[ $major -eq 22 && $minor -ge 12 ]] || [[ $major -gt 22 ]]; }; then
        die "Node.js $version is too old for the web app (it needs ^20.19 or >=22.12): install a newer Node.js"
    fi
}

log "setup: checking tools"
ensure_cargo
ensure_node

if [[ ! -d $ROOT/web/node_modules || $ROOT/web/package-lock.json -nt $ROOT/web/node_modules ]]; then
    log "web: npm ci"
    (cd "$ROOT/web" && npm ci --no-audit --no-fund)
    touch "$ROOT/web/node_modules"
fi
log "web: build"
(cd "$ROOT/web" && npm run build)

log "rust: build (release)"
mkdir -p "$CARGO_TARGET_DIR"
cargo build --release --locked -p cairn

bind=${CAIRN__SERVER__BIND:-127.0.0.1:8080}
log "Cairn will be at http://$bind"
exec "$CARGO_TARGET_DIR/release/cairn" serve "$@"
