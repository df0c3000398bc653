#!/usr/bin/env bash
# Runs Cairn's benchmarks beside their references and prints the tables that
# BENCHMARKS.md records. Builds the release binary first.
#
#   ./bench/run.sh            # 10 runs per series
#   RUNS=20 ./bench/run.sh
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
CAIRN_CACHE_DIR=${CAIRN_CACHE_DIR:-$HOME/.cache/cairn}
export CARGO_TARGET_DIR="$CAIRN_CACHE_DIR/target"

cargo build --release --locked -p cairn
key=$(sha256sum bench/requirements.txt | cut -c1-16)
venv="$CAIRN_CACHE_DIR/venvs/bench-$key"
if [[ ! -x $venv/bin/uvicorn ]]; then
    rm -rf "$venv"
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check -r bench/requirements.txt
fi
echo "## Start-up to ready and idle memory ($(nproc) cores, $(date -u +%Y-%m-%d))"
python3 bench/startup.py "$CARGO_TARGET_DIR/release/cairn" --runs "${RUNS:-10}" --reference-python "$venv/bin/python"
