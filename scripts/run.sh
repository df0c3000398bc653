#!/usr/bin/env bash
# Cairn's run command: builds the web app and the server, then serves.
#
#   ./scripts/run.sh [extra arguments for `cairn serve`]
#
# Installs Node.js/npm, bubblewrap and Chromium when missing, builds web/ (the server
# embeds web/dist), the sandboxes' Python environment (once, into the cache
# folder) and the release binary, and runs `cairn serve`. Needs no PostgreSQL or
# Redis: the defaults are embedded (SQLite and an in-process bus). Configure
# with CAIRN__SECTION__KEY variables, e.g. CAIRN__SERVER__BIND=127.0.0.1:9000.
#
# Environment:
#   CAIRN_CACHE_DIR  build cache (default: ~/.cache/cairn); cargo builds into
#                    $CAIRN_CACHE_DIR/target
set -euo pipefail

# shellcheck source=scripts/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

log "setup: checking tools"
ensure_cargo
ensure_node
# Sandboxes run under bubblewrap with a Python environment of their own; the
# browser tool drives Debian's Chromium.
command -v bwrap >/dev/null 2>&1 || apt_install bubblewrap
command -v chromium >/dev/null 2>&1 || apt_install chromium
ensure_sandbox_python
export CAIRN__SANDBOX__PYTHON=${CAIRN__SANDBOX__PYTHON:-$CAIRN_SANDBOX_PYTHON}

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
