#!/usr/bin/env bash
# The floor under any durable graph step: what the databases themselves take
# to commit one checkpoint-sized row, without any runtime around them.
#
#   bench/commit_floor.sh POSTGRES_ADMIN_URL
#
# PostgreSQL: pgbench (C, libpq, a prepared statement, one connection)
# committing one upsert per transaction for 5 s, and a bare `SELECT 1` round
# trip beside it. SQLite: Python's sqlite3 module (C) committing the same
# upsert in WAL mode, with synchronous=NORMAL (Cairn's setting) and FULL
# (SqliteSaver's default). Prints one JSON object (ms).
set -euo pipefail
admin=$1
command -v pgbench >/dev/null || { echo "pgbench is needed (Debian: postgresql-contrib or the server package)" >&2; exit 1; }
db="cairn_bench_floor_$$"
work=$(mktemp -d)
trap 'psql "$admin" -qc "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null; rm -rf "$work"' EXIT
psql "$admin" -qc "CREATE DATABASE $db" >/dev/null
url="${admin%/*}/$db"
psql "$url" -qc "CREATE TABLE cp (run_id uuid, step bigint, state jsonb NOT NULL, created_at timestamptz NOT NULL, PRIMARY KEY (run_id, step))"
cat >"$work/upsert.sql" <<'SQL'
\set s random(1, 1000000000)
INSERT INTO cp VALUES ('6f1c2a7e-1d2b-4c3d-9e8f-0a1b2c3d4e5f', :s, '{"state": {"n": 5, "messages": ["reply", "reply"]}, "position": {"next": "act", "step": 5}}', now()) ON CONFLICT (run_id, step) DO UPDATE SET state = excluded.state, created_at = excluded.created_at;
SQL
echo 'SELECT 1;' >"$work/select.sql"
latency() { pgbench "$url" -n -c1 -T5 -M prepared -f "$1" 2>/dev/null | sed -n 's/^latency average = \([0-9.]*\) ms$/\1/p'; }
pg_commit=$(latency "$work/upsert.sql")
pg_select=$(latency "$work/select.sql")
python3 - "$work" "$pg_commit" "$pg_select" <<'PY'
import json, os, sqlite3, sys, time
work, pg_commit, pg_select = sys.argv[1], float(sys.argv[2]), float(sys.argv[3])
db = sqlite3.connect(os.path.join(work, "floor.db"), isolation_level=None)
db.execute("PRAGMA journal_mode=WAL")
db.execute("CREATE TABLE cp (run_id BLOB, step INTEGER, state TEXT, created_at TEXT, PRIMARY KEY (run_id, step))")
state = json.dumps({"state": {"n": 5, "messages": ["reply", "reply"]}, "position": {"next": "act", "step": 5}})
result = {"postgres_commit_avg_ms": pg_commit, "postgres_select_1_avg_ms": pg_select}
step = 0
for mode in ("NORMAL", "FULL"):
    db.execute(f"PRAGMA synchronous={mode}")
    times = []
    for _ in range(2000):
        step += 1
        started = time.perf_counter()
        db.execute("INSERT INTO cp VALUES (?, ?, ?, ?) ON CONFLICT (run_id, step) DO UPDATE SET state = excluded.state",
                   (b"r" * 16, step, state, "2026-01-01T00:00:00Z"))
        times.append((time.perf_counter() - started) * 1000)
    times.sort()
    result[f"sqlite_{mode.lower()}_commit_p50_ms"] = times[len(times) // 2]
print(json.dumps({k: round(v, 3) for k, v in result.items()}))
PY
