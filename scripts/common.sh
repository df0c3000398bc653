# Shared by Cairn's scripts (sourced, not run): the repository root, the
# build cache outside the clone, and installing what the machine lacks.
# shellcheck shell=bash

cd "$(dirname "${BASH_SOURCE[0]}")/.." || exit 1
ROOT=$(pwd)
export ROOT

: "${HOME:=$(cd ~ && pwd)}"
CAIRN_CACHE_DIR=${CAIRN_CACHE_DIR:-$HOME/.cache/cairn}
export CAIRN_CACHE_DIR
export CARGO_TARGET_DIR="$CAIRN_CACHE_DIR/target"

log() { printf '==> %s\n' "$*"; }
warn() { printf 'warning: %s\n' "$*" >&2; }
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

APT_UPDATED=0
# Installs Debian packages; refreshes the package lists once per run, and only
# when something must be installed.
apt_install() {
    command -v apt-get >/dev/null 2>&1 ||
        die "cannot install $* (no apt-get on this machine): install it by hand and retry"
    if [[ $APT_UPDATED -eq 0 ]]; then
        log "setup: apt-get update"
        as_root apt-get update -qq
        APT_UPDATED=1
    fi
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

# Finds rustfmt and clippy, which the checks need.
ensure_rust_lints() {
    cargo fmt --version >/dev/null 2>&1 ||
        die "rustfmt not found: add it with 'rustup component add rustfmt'"
    cargo clippy --version >/dev/null 2>&1 ||
        die "clippy not found: add it with 'rustup component add clippy'"
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

ensure_curl() {
    command -v curl >/dev/null 2>&1 || apt_install curl
}

# The sandboxes' Python environment (a standard data stack), built once per
# version of its requirements into the cache folder, and exported as
# CAIRN_SANDBOX_PYTHON for the server and the tests.
ensure_sandbox_python() {
    local requirements="$ROOT/crates/cairn-sandbox/python-requirements.txt" key venv
    if ! python3 -m venv --help >/dev/null 2>&1; then
        apt_install python3 python3-venv
    fi
    key=$(sha256sum "$requirements" | cut -c1-16)
    venv="$CAIRN_CACHE_DIR/venvs/sandbox-$key"
    if [[ ! -f $venv/.complete ]]; then
        log "setup: building the sandbox Python environment (once; kept in the cache folder)"
        rm -rf "$venv"
        python3 -m venv "$venv"
        "$venv/bin/pip" install --quiet --disable-pip-version-check -r "$requirements"
        touch "$venv/.complete"
    fi
    export CAIRN_SANDBOX_PYTHON="$venv/bin/python"
}
