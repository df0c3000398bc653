#!/usr/bin/env bash
# Runs Cairn's benchmarks beside their references and prints the tables that
# BENCHMARKS.md records. Builds the release binary first.
#
#   ./bench/run.sh            # 10 runs per series
#   RUNS=20 ./bench/run.sh
#   SECONDS_PER_RUN=30 CONNECTIONS=128 ./bench/run.sh
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
CAIRN_CACHE_DIR=${CAIRN_CACHE_DIR:-$HOME/.cache/cairn}
export CARGO_TARGET_DIR="$CAIRN_CACHE_DIR/target"

command -v wrk >/dev/null 2>&1 || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk; }
cargo build --release --locked -p cairn
key=$(sha256sum bench/requirements.txt | cut -c1-16)
venv="$CAIRN_CACHE_DIR/venvs/bench-$key"
if [[ ! -x $venv/bin/uvicorn || ! -f $venv/.complete ]]; then
    rm -rf "$venv"
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check -r bench/requirements.txt
    "$venv/bin/python" -m ipykernel install --sys-prefix --name python3 >/dev/null
    touch "$venv/.complete"
fi
echo "## Start-up to ready and idle memory ($(nproc) cores, $(date -u +%Y-%m-%d))"
python3 bench/startup.py "$CARGO_TARGET_DIR/release/cairn" --runs "${RUNS:-10}" --reference-python "$venv/bin/python"
echo
echo "## Authenticated GET /api/v1/me (wrk, 2 threads, ${CONNECTIONS:-64} connections, ${SECONDS_PER_RUN:-10} s)"
python3 bench/me.py "$CARGO_TARGET_DIR/release/cairn" --reference-python "$venv/bin/python" \
    --seconds "${SECONDS_PER_RUN:-10}" --connections "${CONNECTIONS:-64}"
echo
echo "## Instructions per request, /api/v1/me and /healthz (valgrind's callgrind)"
command -v valgrind >/dev/null 2>&1 || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq valgrind; }
python3 bench/me_instructions.py "$CARGO_TARGET_DIR/release/cairn"
echo
echo "## File upload and download (${FILE_MIB:-1024} MiB)"
s3s_fs="$CAIRN_CACHE_DIR/tools/bin/s3s-fs"
if [[ ! -x $s3s_fs ]]; then
    cargo install s3s-fs@0.14.1 --features binary --locked --root "$CAIRN_CACHE_DIR/tools" \
        --target-dir "$CAIRN_CACHE_DIR/tools-target"
fi
azurite="$CAIRN_CACHE_DIR/tools/azurite/node_modules/.bin/azurite-blob"
if [[ ! -x $azurite ]]; then
    mkdir -p "$CAIRN_CACHE_DIR/tools/azurite"
    (cd "$CAIRN_CACHE_DIR/tools/azurite" && npm install --no-audit --no-fund --no-save --silent azurite@3.35.0)
fi
python3 bench/files.py "$CARGO_TARGET_DIR/release/cairn" "$s3s_fs" --mib "${FILE_MIB:-1024}" \
    --gcs-emulator "$venv/bin/gcp-storage-emulator" --azurite "$azurite" --cloud-mib "${CLOUD_FILE_MIB:-256}"
echo
echo "## Sandbox kernel (bubblewrap, limits, seccomp) beside a local Jupyter kernel"
cargo build --release --locked -p cairn-sandbox --example kernel_bench
echo "cairn:     $("$CARGO_TARGET_DIR/release/examples/kernel_bench" 20 2000)"
echo "ipykernel: $("$venv/bin/python" bench/kernel_reference.py 10 1000 2>/dev/null)"

echo "## Sandbox backends: the same kernels in containers of a private Podman"
(
    # shellcheck source=scripts/common.sh
    source scripts/common.sh
    # shellcheck source=scripts/container-engine.sh
    source scripts/container-engine.sh
    trap stop_container_engine EXIT
    start_container_engine >&2
    echo "container: $("$CARGO_TARGET_DIR/release/examples/kernel_bench" 20 2000 container \
        "$CAIRN_TEST_CONTAINER_ENGINE" "$CAIRN_TEST_CONTAINER_IMAGE")"
    echo "## Pause and resume (no kernel checkpoint: see docs/backends.md)"
    cargo build --release --locked -p cairn-sandbox --example pause_bench >&2
    echo "bubblewrap: $("$CARGO_TARGET_DIR/release/examples/pause_bench" 20)"
    echo "container:  $("$CARGO_TARGET_DIR/release/examples/pause_bench" 20 container \
        "$CAIRN_TEST_CONTAINER_ENGINE" "$CAIRN_TEST_CONTAINER_IMAGE")"
    echo "## Packages the agent installs (a loopback index; pip on the host is the reference)"
    ensure_sandbox_python >/dev/null
    cargo build --release --locked -p cairn-sandbox --example packages_bench >&2
    echo "bubblewrap: $("$CARGO_TARGET_DIR/release/examples/packages_bench" 5 "$CAIRN_SANDBOX_PYTHON")"
    echo "container:  $("$CARGO_TARGET_DIR/release/examples/packages_bench" 5 "$CAIRN_SANDBOX_PYTHON" container \
        "$CAIRN_TEST_CONTAINER_ENGINE" "$CAIRN_TEST_CONTAINER_IMAGE")"
)

echo "## Sandbox backends: E2B's protocol over loopback (the stand-in that follows E2B's API)"
cargo build --release --locked -p cairn-sandbox --example e2b_bench
echo "e2b:       $("$CARGO_TARGET_DIR/release/examples/e2b_bench" 20 2000)"

echo "## Sandbox service: in-process and over the sandbox host's HTTP API"
cargo build --release --locked -p cairn-gateway --example sandbox_service_bench
echo "cairn:     $("$CARGO_TARGET_DIR/release/examples/sandbox_service_bench" 20 2000)"

echo "## Tools: a bridged tool call, and a browser page load"
cargo build --release --locked -p cairn-tools --example tools_bench
echo "cairn:     $("$CARGO_TARGET_DIR/release/examples/tools_bench" 2000 50)"

echo "## Agent: graph step overhead beside LangGraph, first-token overhead, concurrent runs"
postgres_admin=${CAIRN_TEST_POSTGRES_URL:-postgres://postgres@127.0.0.1:5432/postgres}
cargo build --release --locked -p cairn-agent --example agent_bench -p cairn-testkit --example scripted_llm
echo "cairn:     $("$CARGO_TARGET_DIR/release/examples/agent_bench" "${CONCURRENT_RUNS:-32}")"
# The reference's model calls go to the same scripted LLM server.
llm_log=$(mktemp)
"$CARGO_TARGET_DIR/release/examples/scripted_llm" >"$llm_log" &
llm_pid=$!
while [[ ! -s $llm_log ]]; do sleep 0.1; done
echo "langgraph: $("$venv/bin/python" bench/graph_reference.py 1000 "$postgres_admin" "$(head -1 "$llm_log")")"
kill "$llm_pid"
rm -f "$llm_log"
echo "floor:     $(bench/commit_floor.sh "$postgres_admin")"

echo "## Viewers of one run: N event streams of one thread while a run prints 20 lines"
source scripts/common.sh
ensure_sandbox_python >/dev/null
python3 bench/viewers.py "$CARGO_TARGET_DIR/release/cairn" "$CARGO_TARGET_DIR/release/examples/scripted_llm" \
    --viewers ${VIEWERS:-100 1000}
echo "## The same across two gateways (PostgreSQL and Redis), half over SSE and half over WebSocket"
"$venv/bin/python" bench/viewers.py "$CARGO_TARGET_DIR/release/cairn" \
    "$CARGO_TARGET_DIR/release/examples/scripted_llm" --viewers ${VIEWERS:-100 1000} --gateways 2
echo "## Both again, the viewers a Rust client (its own CPU cost out of the measure)"
cargo build --release --locked -p cairn-gateway --example viewers_client
for gateways in 1 2; do
    python3 bench/viewers.py "$CARGO_TARGET_DIR/release/cairn" "$CARGO_TARGET_DIR/release/examples/scripted_llm" \
        --viewers ${VIEWERS:-100 1000} --gateways "$gateways" --client "$CARGO_TARGET_DIR/release/examples/viewers_client"
done
echo "## The heap an idle viewer holds, counted by valgrind's massif (SSE, half WebSocket, SSE on reused connections)"
command -v valgrind >/dev/null 2>&1 || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq valgrind; }
# A build on the system's malloc, which massif sees, with its symbols (its own
# folder: the other benchmarks keep the stripped mimalloc build).
CARGO_PROFILE_RELEASE_STRIP=none cargo build --release --locked -p cairn --features system-allocator \
    --target-dir "$CAIRN_CACHE_DIR/target-heap"
CARGO_PROFILE_RELEASE_STRIP=none cargo build --release --locked -p cairn-gateway --example sse_floor \
    --target-dir "$CAIRN_CACHE_DIR/target-heap"
python3 bench/viewer_heap.py "$CAIRN_CACHE_DIR/target-heap/release/cairn" \
    "$CARGO_TARGET_DIR/release/examples/viewers_client" --viewers 1000 \
    --floor "$CAIRN_CACHE_DIR/target-heap/release/examples/sse_floor"
python3 bench/viewer_heap.py "$CAIRN_CACHE_DIR/target-heap/release/cairn" \
    "$CARGO_TARGET_DIR/release/examples/viewers_client" --viewers 1000 --ws
python3 bench/viewer_heap.py "$CAIRN_CACHE_DIR/target-heap/release/cairn" \
    "$CARGO_TARGET_DIR/release/examples/viewers_client" --viewers 1000 --reuse

echo "## Many runs at once: one gateway and two workers on PostgreSQL and Redis, the model answering after 200 ms"
python3 bench/runs_load.py "$CARGO_TARGET_DIR/release/cairn" "$CARGO_TARGET_DIR/release/examples/scripted_llm" \
    --runs "${RUNS_AT_ONCE:-1000}"

echo "## Prompt caching: a 10-step run's unchanged prompt prefixes, and its cost with and without caching"
cargo build --release --locked -p cairn-agent --example cache_bench
echo "cairn:     $("$CARGO_TARGET_DIR/release/examples/cache_bench")"

echo "## Project memory: top-10 similarity search over 100k chunks"
cargo build --release --locked -p cairn-store --example memory_bench
source scripts/common.sh
ensure_sandbox_python >/dev/null
pgvector=${CAIRN_TEST_PGVECTOR_URL:-}
if [[ -z $pgvector ]]; then
    echo "(set CAIRN_TEST_PGVECTOR_URL to a PostgreSQL with pgvector to measure it too; scripts/test.sh starts one)"
fi
echo "cairn:     $("$CARGO_TARGET_DIR/release/examples/memory_bench" "${MEMORY_CHUNKS:-100000}" 384 50 $pgvector)"
echo "numpy:     $("$CAIRN_SANDBOX_PYTHON" bench/memory_reference.py "${MEMORY_CHUNKS:-100000}" 384 50)"
