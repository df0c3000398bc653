#!/usr/bin/env bash
# Cairn's test command: runs every check CI runs, on a fresh clone.
#
#   ./scripts/test.sh
#
# Installs what it needs (Node.js/npm, curl, and PostgreSQL or Redis when none
# is running), finds or starts the PostgreSQL and Redis the tests talk to, then
# lints, type-checks, tests and builds the web app and formats, lints and tests
# the Rust workspace. Checks the dependencies first: npm audit (with
# web/audit-exceptions.json) and cargo-deny (deny.toml). Exits non-zero as
# soon as a stage fails.
#
# Environment:
#   CAIRN_CACHE_DIR           build cache (default: ~/.cache/cairn); cargo
#                             builds into $CAIRN_CACHE_DIR/target
#   CAIRN_TEST_POSTGRES_URL   PostgreSQL server to create test databases on;
#   CAIRN_TEST_REDIS_URL      Redis server to test against. When unset, the
#                             local default ports (5432, 6379) are used if a
#                             server answers there, otherwise a private
#                             throwaway server is started on a free port and
#                             stopped when the script ends.
#   CAIRN_TEST_PGVECTOR_URL   PostgreSQL with pgvector for the memory tests;
#                             when unset, a throwaway one is started from
#                             the pgserver package's binaries
#   CAIRN_ADVISORY_DB         a git clone of the RustSec advisory database to
#                             check the Rust dependencies against, for where
#                             cargo-deny cannot clone it from GitHub itself;
#                             `skip` leaves that check out (with a warning)
#   CAIRN_ADVISORY_DB_MAX_AGE_DAYS  how old that clone's newest advisory may
#                             be (default 30)
#   CAIRN_NPM_AUDIT=skip      leave out npm audit (with a warning), for where
#                             the npm registry's audit service cannot be reached
#   CAIRN_TEST_OWN_SERVICES=1  always start private servers
#   CAIRN_TEST_ONLY_SERVICES=1 only find/start the servers, print their URLs,
#                             check that they answer, then stop
set -euo pipefail

# shellcheck source=scripts/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
# shellcheck source=scripts/container-engine.sh
source "$(dirname "${BASH_SOURCE[0]}")/container-engine.sh"

ONLY_SERVICES=${CAIRN_TEST_ONLY_SERVICES:-0}
OWN_SERVICES=${CAIRN_TEST_OWN_SERVICES:-0}

# ---------------------------------------------------------------------------
# Helpers

# Runs one stage under a header line; a failing stage ends the script with
# its exit code.
stage() {
    local name=$1 rc=0
    shift
    log "$name"
    "$@" || rc=$?
    if [[ $rc -ne 0 ]]; then
        printf '==> FAILED: %s (exit code %d)\n' "$name" "$rc" >&2
        exit "$rc"
    fi
}

in_web() { (cd "$ROOT/web" && "$@"); }

# True when something accepts TCP connections on 127.0.0.1:PORT.
port_answers() {
    # shellcheck disable=SC2016 # $1 is expanded by the inner bash
    timeout 3 bash -c 'exec 3<>"/dev/tcp/127.0.0.1/$1"' _ "$1" 2>/dev/null
}

# Prints the first port from $1 on (at most 100 tried) that nothing listens on.
free_port() {
    local port=$1
    while port_answers "$port"; do
        port=$((port + 1))
        [[ $port -lt $(($1 + 100)) ]] || die "no free port found in $1..$((port - 1))"
    done
    printf '%s\n' "$port"
}

# True when a Redis server on 127.0.0.1:PORT answers PING.
redis_ping() {
    if command -v redis-cli >/dev/null 2>&1; then
        [[ $(timeout 3 redis-cli -h 127.0.0.1 -p "$1" PING 2>/dev/null) == PONG ]]
    else
        # shellcheck disable=SC2016 # expanded by the inner bash
        timeout 3 bash -c '
            exec 3<>"/dev/tcp/127.0.0.1/$1" || exit 1
            printf "PING\r\n" >&3
            IFS= read -r reply <&3 || exit 1
            [[ $reply == +PONG* ]]' _ "$1" 2>/dev/null
    fi
}

# ---------------------------------------------------------------------------
# Tools

# ---------------------------------------------------------------------------
# Services

PG_BINDIR=""    # server binaries of a private PostgreSQL
PG_TMP=""       # its temporary folder (data, socket, log)
PG_PID=""       # its postmaster
REDIS_TMP=""    # temporary folder of a private Redis
REDIS_PID=""
RUST_TESTS_RAN=0

# Runs a command as the PostgreSQL OS user when we are root (initdb and the
# server refuse to run as root), else as ourselves. From / since that user
# may not be able to enter the current folder.
as_pg() {
    if [[ $(id -u) -eq 0 ]]; then
        (cd / && runuser -u postgres -- "$@")
    else
        "$@"
    fi
}

# Prints the folder holding initdb/pg_ctl/postgres, if PostgreSQL's server is
# installed. Debian keeps it out of PATH, one folder per major version.
find_pg_bindir() {
    local initdb dir best=""
    if initdb=$(command -v initdb 2>/dev/null); then
        dir=$(dirname "$(readlink -f "$initdb")")
        if [[ -x $dir/pg_ctl ]]; then
            printf '%s\n' "$dir"
            return 0
        fi
    fi
    best=$(printf '%s\n' /usr/lib/postgresql/*/bin | sort -V | tail -n 1)
    if [[ -x $best/initdb && -x $best/pg_ctl ]]; then
        printf '%s\n' "$best"
        return 0
    fi
    return 1
}

start_private_postgres() {
    local port waited=0 status_rc
    PG_BINDIR=$(find_pg_bindir) || {
        apt_install postgresql
        PG_BINDIR=$(find_pg_bindir) || die "PostgreSQL was installed but its initdb/pg_ctl cannot be found"
    }
    if [[ $(id -u) -eq 0 ]] && ! id -u postgres >/dev/null 2>&1; then
        log "services: creating the postgres OS user"
        useradd --system --user-group --no-create-home postgres
    fi

    PG_TMP=$(mktemp -d "${TMPDIR:-/tmp}/cairn-test-pg.XXXXXX")
    if [[ $(id -u) -eq 0 ]]; then
        chown postgres: "$PG_TMP"
        as_pg test -w "$PG_TMP" ||
            die "the postgres user cannot write to $PG_TMP: point TMPDIR at a folder it can reach"
    fi
    port=$(free_port 55432)
    log "services: starting a private PostgreSQL ($PG_BINDIR) on 127.0.0.1:$port"

    if ! as_pg "$PG_BINDIR/initdb" -D "$PG_TMP/data" -U postgres --auth=trust \
        --no-locale -E UTF8 --no-sync >"$PG_TMP/initdb.log" 2>&1; then
        cat "$PG_TMP/initdb.log" >&2
        die "initdb failed"
    fi
    # A throwaway cluster: listen on loopback only, socket inside the temp
    # folder, and skip durability for speed.
    cat >>"$PG_TMP/data/postgresql.conf" <<EOF

# cairn test run
listen_addresses = '127.0.0.1'
port = $port
unix_socket_directories = '$PG_TMP'
max_connections = 200
fsync = off
synchronous_commit = off
full_page_writes = off
EOF
    as_pg "$PG_BINDIR/pg_ctl" -D "$PG_TMP/data" -l "$PG_TMP/server.log" -W start >/dev/null

    until pg_ready "$port"; do
        status_rc=0
        as_pg "$PG_BINDIR/pg_ctl" -D "$PG_TMP/data" status >/dev/null 2>&1 || status_rc=$?
        if [[ $waited -ge 30 ]] || { [[ $waited -ge 2 ]] && [[ $status_rc -ne 0 ]]; }; then
            printf -- '--- PostgreSQL server log ---\n' >&2
            cat "$PG_TMP/server.log" >&2 || true
            if [[ $status_rc -ne 0 ]]; then
                die "the private PostgreSQL on 127.0.0.1:$port stopped while starting (see its log above)"
            fi
            die "the private PostgreSQL did not become ready on 127.0.0.1:$port within 30 s (see its log above)"
        fi
        sleep 1
        waited=$((waited + 1))
    done
    PG_PID=$(head -n 1 "$PG_TMP/data/postmaster.pid")
    export CAIRN_TEST_POSTGRES_URL="postgres://postgres@127.0.0.1:$port/postgres"
}

# True when a PostgreSQL server on 127.0.0.1:PORT accepts connections.
pg_ready() {
    local isready
    if [[ -n $PG_BINDIR && -x $PG_BINDIR/pg_isready ]]; then
        isready=$PG_BINDIR/pg_isready
    else
        isready=$(command -v pg_isready 2>/dev/null) || {
            port_answers "$1"
            return
        }
    fi
    "$isready" -q -h 127.0.0.1 -p "$1" -t 3
}

stop_private_postgres() {
    [[ -n $PG_TMP ]] || return 0
    if [[ -n $PG_PID ]] && kill -0 "$PG_PID" 2>/dev/null; then
        log "services: stopping the private PostgreSQL (pid $PG_PID)"
        as_pg "$PG_BINDIR/pg_ctl" -D "$PG_TMP/data" -m fast -w -t 30 stop >/dev/null 2>&1 ||
            kill -9 "$PG_PID" 2>/dev/null || true
    fi
    rm -rf "$PG_TMP"
    PG_TMP=""
}

start_private_redis() {
    local port waited=0
    command -v redis-server >/dev/null 2>&1 || apt_install redis-server
    REDIS_TMP=$(mktemp -d "${TMPDIR:-/tmp}/cairn-test-redis.XXXXXX")
    port=$(free_port 56379)
    log "services: starting a private Redis on 127.0.0.1:$port"
    redis-server --bind 127.0.0.1 --port "$port" --save "" --appendonly no \
        --daemonize yes --pidfile "$REDIS_TMP/redis.pid" --dir "$REDIS_TMP" \
        --logfile "$REDIS_TMP/redis.log" >/dev/null
    until redis_ping "$port"; do
        if [[ $waited -ge 30 ]]; then
            printf -- '--- Redis server log ---\n' >&2
            cat "$REDIS_TMP/redis.log" >&2 || true
            die "the private Redis did not answer PING on 127.0.0.1:$port within 30 s"
        fi
        sleep 1
        waited=$((waited + 1))
    done
    REDIS_PID=$(cat "$REDIS_TMP/redis.pid")
    export CAIRN_TEST_REDIS_URL="redis://127.0.0.1:$port"
}

stop_private_redis() {
    local waited=0
    [[ -n $REDIS_TMP ]] || return 0
    # The PID file may have appeared only after a failed wait.
    if [[ -z $REDIS_PID && -s $REDIS_TMP/redis.pid ]]; then
        REDIS_PID=$(cat "$REDIS_TMP/redis.pid")
    fi
    if [[ -n $REDIS_PID ]] && kill -0 "$REDIS_PID" 2>/dev/null; then
        log "services: stopping the private Redis (pid $REDIS_PID)"
        kill "$REDIS_PID" 2>/dev/null || true
        while kill -0 "$REDIS_PID" 2>/dev/null && [[ $waited -lt 20 ]]; do
            sleep 0.5
            waited=$((waited + 1))
        done
        kill -9 "$REDIS_PID" 2>/dev/null || true
    fi
    rm -rf "$REDIS_TMP"
    REDIS_TMP=""
}

# A throwaway PostgreSQL with pgvector for the memory tests, from the server
# binaries the PyPI package pgserver ships (PostgreSQL 16 and pgvector),
# copied where the postgres OS user can read them.
PGV_TMP=""
PGV_PID=""
start_pgvector() {
    local venv package install port waited=0
    if [[ -n ${CAIRN_TEST_PGVECTOR_URL:-} ]]; then
        log "services: PostgreSQL with pgvector from CAIRN_TEST_PGVECTOR_URL"
        return 0
    fi
    venv=$(tools_venv)
    # The package's folder (not imported: only its files are used).
    package=$("$venv/bin/python" -c 'import importlib.util as u; print(u.find_spec("pgserver").submodule_search_locations[0])')
    [[ -x $package/pginstall/bin/postgres ]] || die "pgserver has no PostgreSQL binaries in $package"
    if [[ $(id -u) -eq 0 ]] && ! id -u postgres >/dev/null 2>&1; then
        useradd --system --user-group --no-create-home postgres
    fi
    PGV_TMP=$(mktemp -d "${TMPDIR:-/tmp}/cairn-test-pgvector.XXXXXX")
    # With the shared libraries beside it: the binaries find them relative
    # to themselves.
    mkdir "$PGV_TMP/site"
    cp -a "$package" "$PGV_TMP/site/"
    if [[ -d $package.libs ]]; then cp -a "$package.libs" "$PGV_TMP/site/"; fi
    install="$PGV_TMP/site/pgserver/pginstall"
    chmod -R a+rX "$PGV_TMP"
    mkdir "$PGV_TMP/data"
    [[ $(id -u) -ne 0 ]] || chown postgres: "$PGV_TMP/data"
    port=$(free_port 55532)
    log "services: starting PostgreSQL with pgvector on 127.0.0.1:$port"
    if ! as_pg "$install/bin/initdb" -D "$PGV_TMP/data" -U postgres --auth=trust \
        --no-locale -E UTF8 --no-sync >"$PGV_TMP/initdb.log" 2>&1; then
        cat "$PGV_TMP/initdb.log" >&2
        die "initdb (pgvector) failed"
    fi
    as_pg "$install/bin/postgres" -D "$PGV_TMP/data" -p "$port" -k "$PGV_TMP/data" \
        -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off -c max_connections=100 \
        >"$PGV_TMP/server.log" 2>&1 &
    until [[ -s $PGV_TMP/data/postmaster.pid ]] && port_answers "$port"; do
        if [[ $waited -ge 60 ]]; then
            cat "$PGV_TMP/server.log" >&2 || true
            die "PostgreSQL with pgvector did not start on 127.0.0.1:$port within 30 s (see its log above)"
        fi
        sleep 0.5
        waited=$((waited + 1))
    done
    PGV_PID=$(head -n 1 "$PGV_TMP/data/postmaster.pid")
    export CAIRN_TEST_PGVECTOR_URL="postgres://postgres@127.0.0.1:$port/postgres"
    # The distributed test runs a server of its own from these binaries, to
    # restart it for real.
    export CAIRN_TEST_PG_BINDIR="$install/bin"
}

stop_pgvector() {
    [[ -n $PGV_TMP ]] || return 0
    if [[ -n $PGV_PID ]] && kill -0 "$PGV_PID" 2>/dev/null; then
        kill -INT "$PGV_PID" 2>/dev/null || true
        for _ in $(seq 1 40); do
            kill -0 "$PGV_PID" 2>/dev/null || break
            sleep 0.25
        done
        kill -9 "$PGV_PID" 2>/dev/null || true
    fi
    rm -rf "$PGV_TMP"
    PGV_TMP=""
}

setup_postgres() {
    if [[ $OWN_SERVICES != 1 && -n ${CAIRN_TEST_POSTGRES_URL:-} ]]; then
        log "services: PostgreSQL from CAIRN_TEST_POSTGRES_URL"
    elif [[ $OWN_SERVICES != 1 ]] && pg_ready 5432; then
        log "services: using the PostgreSQL running on 127.0.0.1:5432"
        export CAIRN_TEST_POSTGRES_URL="postgres://postgres@127.0.0.1:5432/postgres"
    else
        start_private_postgres
    fi
}

setup_redis() {
    if [[ $OWN_SERVICES != 1 && -n ${CAIRN_TEST_REDIS_URL:-} ]]; then
        log "services: Redis from CAIRN_TEST_REDIS_URL"
    elif [[ $OWN_SERVICES != 1 ]] && redis_ping 6379; then
        log "services: using the Redis running on 127.0.0.1:6379"
        export CAIRN_TEST_REDIS_URL="redis://127.0.0.1:6379"
    else
        start_private_redis
    fi
    # The distributed test runs a Redis of its own, to restart it for real.
    command -v redis-server >/dev/null 2>&1 || apt_install redis-server
    CAIRN_TEST_REDIS_SERVER=$(command -v redis-server)
    export CAIRN_TEST_REDIS_SERVER
}

# psql to reach the PostgreSQL in use: the one on PATH, else the private
# cluster's own.
find_psql() {
    if command -v psql >/dev/null 2>&1; then
        command -v psql
    elif [[ -n $PG_BINDIR && -x $PG_BINDIR/psql ]]; then
        printf '%s\n' "$PG_BINDIR/psql"
    else
        return 1
    fi
}

check_services() {
    local psql
    psql=$(find_psql) || die "psql not found: cannot check PostgreSQL"
    [[ $("$psql" "$CAIRN_TEST_POSTGRES_URL" -X -A -t -q -c 'SELECT 1' 2>&1) == 1 ]] ||
        die "PostgreSQL at $CAIRN_TEST_POSTGRES_URL does not answer SELECT 1"
    echo "PostgreSQL answers SELECT 1"
    local hostport=${CAIRN_TEST_REDIS_URL#redis://}
    hostport=${hostport%%/*}
    if command -v redis-cli >/dev/null 2>&1; then
        [[ $(timeout 3 redis-cli -u "$CAIRN_TEST_REDIS_URL" PING 2>/dev/null) == PONG ]]
    elif [[ $hostport == 127.0.0.1:* ]]; then
        redis_ping "${hostport#127.0.0.1:}"
    else
        die "redis-cli not found: cannot check $CAIRN_TEST_REDIS_URL"
    fi || die "Redis at $CAIRN_TEST_REDIS_URL does not answer PING"
    echo "Redis answers PING"
}

# Drops test databases that test runs left behind (a test that crashed never
# drops its own). Databases still in use are left alone.
drop_test_databases() {
    local psql names name
    [[ -n ${CAIRN_TEST_POSTGRES_URL:-} ]] || return 0
    psql=$(find_psql) || return 0
    names=$("$psql" "$CAIRN_TEST_POSTGRES_URL" -X -A -t -q \
        -c "SELECT datname FROM pg_database WHERE datname LIKE 'cairn\_test\_%'" 2>/dev/null) || return 0
    for name in $names; do
        "$psql" "$CAIRN_TEST_POSTGRES_URL" -X -q -c "DROP DATABASE IF EXISTS \"$name\"" >/dev/null 2>&1 &&
            echo "dropped leftover test database $name"
    done
    return 0
}

cleanup() {
    local rc=$?
    set +e
    trap - EXIT INT TERM
    # On a shared server, only after our own tests ran (never while another
    # run's tests may be creating theirs); a private one goes away anyway.
    if [[ $RUST_TESTS_RAN -eq 1 || -n $PG_TMP ]]; then
        drop_test_databases
    fi
    stop_private_redis
    stop_private_postgres
    stop_pgvector
    stop_container_engine
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# The Python tools the checks use, in a virtualenv keyed by their pinned
# requirements, so a changed list makes a fresh one and an unchanged one is reused.
tools_venv() {
    local requirements="$ROOT/scripts/requirements-tools.txt" key venv
    if ! python3 -m venv --help >/dev/null 2>&1; then
        apt_install python3 python3-venv
    fi
    key=$(sha256sum "$requirements" | cut -c1-16)
    venv="$CAIRN_CACHE_DIR/venvs/tools-$key"
    if [[ ! -x $venv/bin/openapi-spec-validator ]]; then
        rm -rf "$venv"
        python3 -m venv "$venv" >&2
        "$venv/bin/pip" install --quiet --disable-pip-version-check -r "$requirements" >&2
    fi
    printf '%s\n' "$venv"
}

# The S3 server the file tests run against (it checks SigV4 signatures and
# presigned-URL expiry), built once into the cache folder.
S3S_FS_VERSION=0.14.1
ensure_s3s_fs() {
    local root="$CAIRN_CACHE_DIR/tools"
    if [[ ! -x $root/bin/s3s-fs ]] || ! grep -qx "$S3S_FS_VERSION" "$root/s3s-fs.version" 2>/dev/null; then
        log "setup: building s3s-fs $S3S_FS_VERSION (once; kept in the cache folder)"
        cargo install "s3s-fs@$S3S_FS_VERSION" --features binary --locked --force \
            --root "$root" --target-dir "$CAIRN_CACHE_DIR/tools-target"
        echo "$S3S_FS_VERSION" >"$root/s3s-fs.version"
    fi
    export CAIRN_TEST_S3S_FS="$root/bin/s3s-fs"
}

# The cloud object stores' emulators the file tests run against: Google
# Cloud Storage's (gcp-storage-emulator, in the tools virtualenv) and Azure
# Blob Storage's (Azurite, from npm, installed once into the cache folder).
AZURITE_VERSION=3.35.0
ensure_object_store_emulators() {
    local root="$CAIRN_CACHE_DIR/tools/azurite" venv
    venv=$(tools_venv)
    export CAIRN_TEST_GCS_EMULATOR="$venv/bin/gcp-storage-emulator"
    [[ -x $CAIRN_TEST_GCS_EMULATOR ]] || die "gcp-storage-emulator is missing from $venv"
    if [[ ! -x $root/node_modules/.bin/azurite-blob ]] || ! grep -qx "$AZURITE_VERSION" "$root/azurite.version" 2>/dev/null; then
        log "setup: installing Azurite $AZURITE_VERSION (once; kept in the cache folder)"
        rm -rf "$root"
        mkdir -p "$root"
        (cd "$root" && npm install --no-audit --no-fund --no-save --silent "azurite@$AZURITE_VERSION") ||
            die "installing Azurite $AZURITE_VERSION failed"
        echo "$AZURITE_VERSION" >"$root/azurite.version"
    fi
    export CAIRN_TEST_AZURITE="$root/node_modules/.bin/azurite-blob"
}

# cargo-deny, which checks the Rust dependency tree against deny.toml, built
# once into the cache folder.
CARGO_DENY_VERSION=0.20.2
CARGO_DENY=""
ensure_cargo_deny() {
    local root="$CAIRN_CACHE_DIR/tools"
    if [[ ! -x $root/bin/cargo-deny ]] || ! grep -qx "$CARGO_DENY_VERSION" "$root/cargo-deny.version" 2>/dev/null; then
        log "setup: building cargo-deny $CARGO_DENY_VERSION (once; kept in the cache folder)"
        cargo install "cargo-deny@$CARGO_DENY_VERSION" --locked --force \
            --root "$root" --target-dir "$CAIRN_CACHE_DIR/tools-target" ||
            die "building cargo-deny $CARGO_DENY_VERSION failed"
        echo "$CARGO_DENY_VERSION" >"$root/cargo-deny.version"
    fi
    CARGO_DENY="$root/bin/cargo-deny"
}

# Licences, sources (crates.io only) and duplicate crates, as deny.toml sets
# them. An exception there that no longer matches anything fails too, so the
# lists shrink when they can.
cargo_deny_check() {
    ensure_cargo_deny
    "$CARGO_DENY" --locked check --deny unmatched-skip --deny unnecessary-skip \
        --deny license-not-encountered licenses sources bans
}

# The folder cargo-deny $CARGO_DENY_VERSION keeps the RustSec database in,
# under its db-path (the URL's last segment and a hash of the URL).
RUSTSEC_DB_FOLDER=advisory-db-3157b0e258782691
ADVISORY_DB_MAX_AGE_DAYS=${CAIRN_ADVISORY_DB_MAX_AGE_DAYS:-30}

# Known vulnerabilities, unsound or unmaintained crates and yanked versions in
# the Rust dependency tree, from the RustSec advisory database. cargo-deny
# clones that database from GitHub into the cache folder; where GitHub cannot
# be reached, CAIRN_ADVISORY_DB names an up-to-date git clone of it to use
# instead. Without a database the check fails: it only skips when
# CAIRN_ADVISORY_DB=skip asks it to.
cargo_deny_advisories() {
    local db=${CAIRN_ADVISORY_DB:-} tmp root newest age rc=0
    if [[ $db == skip ]]; then
        warn "CAIRN_ADVISORY_DB=skip: the Rust dependencies are NOT checked against the RustSec advisory database"
        return 0
    fi
    ensure_cargo_deny
    if [[ -n $db ]]; then
        # cargo-deny needs a git clone; its own staleness check trusts the
        # clone's file times, so the age of the newest advisory is checked here.
        if [[ ! -d $db/crates ]] || ! newest=$(git -C "$db" log -1 --format=%ct 2>/dev/null); then
            die "CAIRN_ADVISORY_DB=$db is not a git clone of the RustSec advisory database"
        fi
        age=$((($(date +%s) - newest) / 86400))
        [[ $age -le $ADVISORY_DB_MAX_AGE_DAYS ]] ||
            die "the advisory database in $db is $age days old (at most $ADVISORY_DB_MAX_AGE_DAYS allowed; CAIRN_ADVISORY_DB_MAX_AGE_DAYS): update it with git pull"
    fi
    tmp=$(mktemp -d "${TMPDIR:-/tmp}/cairn-deny.XXXXXX")
    if [[ -n $db ]]; then
        root="$tmp/dbs"
        mkdir "$root"
        ln -s "$(cd "$db" && pwd)" "$root/$RUSTSEC_DB_FOLDER"
    else
        root="$CAIRN_CACHE_DIR/advisory-dbs"
    fi
    # deny.toml with the database's folder set (cargo-deny has no option for it).
    awk -v root="$root" '{ print } /^\[advisories\]$/ { printf "db-path = '\''%s'\''\n", root }' \
        "$ROOT/deny.toml" >"$tmp/deny.toml"
    grep -q '^db-path = ' "$tmp/deny.toml" || {
        rm -rf "$tmp"
        die "deny.toml has no [advisories] table to set the database's folder in"
    }
    if [[ -z $db ]] && ! "$CARGO_DENY" --config "$tmp/deny.toml" fetch db; then
        rm -rf "$tmp"
        die "cannot fetch the RustSec advisory database from GitHub, so the Rust dependencies cannot be checked for known vulnerabilities: point CAIRN_ADVISORY_DB at an up-to-date git clone of it, or set CAIRN_ADVISORY_DB=skip to leave this check out"
    fi
    # The crates must be on disk for an offline run (it reads their manifests).
    cargo fetch --locked --quiet &&
        "$CARGO_DENY" --locked --offline --config "$tmp/deny.toml" check \
            --deny advisory-not-detected --deny yanked-not-detected --deny unknown-advisory \
            advisories || rc=$?
    rm -rf "$tmp"
    return "$rc"
}

# The web app's production dependencies against the npm registry's security
# advisories, less those web/audit-exceptions.json accepts with a reason.
# Without the registry's report the check fails: it only skips when
# CAIRN_NPM_AUDIT=skip asks it to.
npm_audit() {
    if [[ ${CAIRN_NPM_AUDIT:-} == skip ]]; then
        warn "CAIRN_NPM_AUDIT=skip: the web app's dependencies are NOT checked against npm's security advisories"
        return 0
    fi
    in_web node scripts/audit.mjs
}

# The server (debug build, embedding the web app just built) and the scripted
# LLM server that the live checks below run.
build_servers() {
    cargo build --locked -p cairn --bin cairn
    cargo build --locked -p cairn-testkit --example scripted_llm
}

# Schemathesis against a live server: every operation of the OpenAPI
# document with generated, hostile and stateful input, as an anonymous
# caller, an API key, a viewer and an owner (scripts/api_fuzz.py). 30 cases
# per operation and phase: about 11,000 requests. Fails on any 5xx and on
# any answer the document does not describe.
api_fuzz() {
    local venv
    venv=$(tools_venv)
    build_servers
    "$venv/bin/python" "$ROOT/scripts/api_fuzz.py" --cairn "$CARGO_TARGET_DIR/debug/cairn" \
        --llm "$CARGO_TARGET_DIR/debug/examples/scripted_llm" --st "$venv/bin/st" --examples 30
}

# The standards Cairn speaks, driven by their official clients against a
# live server (scripts/client_tests.py): the `openai` SDK.
client_tests() {
    local venv
    venv=$(tools_venv)
    build_servers
    "$venv/bin/python" "$ROOT/scripts/client_tests.py" --cairn "$CARGO_TARGET_DIR/debug/cairn" \
        --llm "$CARGO_TARGET_DIR/debug/examples/scripted_llm"
}

# The web app end to end: a real server with the scripted LLM server, driven
# in Chromium.
web_e2e() {
    build_servers
    (cd "$ROOT/web" && CAIRN_BIN="$CARGO_TARGET_DIR/debug/cairn" \
        SCRIPTED_LLM_BIN="$CARGO_TARGET_DIR/debug/examples/scripted_llm" npm run e2e)
}

validate_openapi() {
    local venv
    venv=$(tools_venv)
    "$venv/bin/openapi-spec-validator" "$ROOT/docs/openapi.json" "$ROOT/docs/sandbox-host.openapi.json"
}

# ---------------------------------------------------------------------------
# Main

if [[ $ONLY_SERVICES != 1 ]]; then
    log "setup: checking tools"
    ensure_cargo
    ensure_rust_lints
    ensure_node
    ensure_curl
    # The sandbox tests run real kernels under bubblewrap; the browser tool's
    # tests drive a real headless Chromium.
    command -v bwrap >/dev/null 2>&1 || apt_install bubblewrap
    command -v chromium >/dev/null 2>&1 || apt_install chromium
fi

setup_postgres
setup_redis
echo "CAIRN_TEST_POSTGRES_URL=$CAIRN_TEST_POSTGRES_URL"
echo "CAIRN_TEST_REDIS_URL=$CAIRN_TEST_REDIS_URL"

if [[ $ONLY_SERVICES == 1 ]]; then
    stage "services: check" check_services
    exit 0
fi

mkdir -p "$CARGO_TARGET_DIR"

stage "web: npm ci" in_web npm ci --no-audit --no-fund

# The dependencies, before the builds and tests: known vulnerabilities (npm's
# advisories, the RustSec database), licences, sources and duplicate crates.
stage "supply chain: npm audit" npm_audit
stage "supply chain: cargo deny" cargo_deny_check
stage "supply chain: cargo deny advisories" cargo_deny_advisories

stage "web: API types match docs/openapi.json" in_web npm run check:api
stage "web: lint" in_web npm run lint
stage "web: typecheck" in_web npm run typecheck
stage "web: test" in_web npm test
stage "web: build" in_web npm run build

stage "api: validate the OpenAPI documents" validate_openapi
stage "deploy: render and validate the manifests" "$ROOT/scripts/check-deploy.sh"

stage "setup: s3s-fs" ensure_s3s_fs
stage "setup: object store emulators" ensure_object_store_emulators
stage "setup: sandbox Python" ensure_sandbox_python
stage "services: PostgreSQL with pgvector" start_pgvector
stage "services: container engine (Podman)" start_container_engine

stage "rust: fmt" cargo fmt --all --check
stage "rust: clippy" cargo clippy --workspace --all-targets --locked -- -D warnings
RUST_TESTS_RAN=1
stage "rust: test" cargo test --workspace --locked
stage "api: schemathesis against a live server" api_fuzz
stage "integrations: official clients against a live server" client_tests
stage "deploy: the container image, each role smoke-tested in it" image_smoke
stage "web: end-to-end in Chromium" web_e2e

log "all checks passed"
