#!/usr/bin/env python3
"""Authenticated `GET /api/v1/me` under load: throughput and p50/p99 latency
of Cairn (release build, embedded SQLite), of Cairn's bare `GET /healthz`
(no middleware work: the machine's ceiling for Cairn), and of the reference
stack as FastAPI's docs deploy it (bench/reference_app.py: fastapi[standard]
with `fastapi run`, uvicorn with uvloop and httptools, one worker per core,
an async handler, PyJWT and aiosqlite), measured with wrk on 127.0.0.1 in
the same run.

Usage: bench/me.py CAIRN_BINARY --reference-python PATH [--seconds N] [--connections N]
Prints a Markdown table. Every server it starts it stops by its process id.
"""

import argparse
import json
import os
import re
import sqlite3
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from startup import clean_env, free_port, ready  # noqa: E402

PASSWORD = "load test passphrase 2026"


def wait_ready(port, process, timeout=60):
    started = time.time()
    while not ready(f"http://127.0.0.1:{port}/readyz"):
        if process.poll() is not None or time.time() - started > timeout:
            raise RuntimeError("server did not start")
        time.sleep(0.05)


def post(url, body, form=False, timeout=30):
    data = urllib.parse.urlencode(body).encode() if form else json.dumps(body).encode()
    kind = "application/x-www-form-urlencoded" if form else "application/json"
    request = urllib.request.Request(url, data=data, headers={"content-type": kind})
    with urllib.request.urlopen(request, timeout=timeout) as response:
        return json.load(response)


def wrk(url, token, seconds, connections):
    out = subprocess.run(
        ["wrk", "-t2", f"-c{connections}", f"-d{seconds}s", "--latency", "-H", f"Authorization: Bearer {token}", url],
        check=True, capture_output=True, text=True,
    ).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if errors:
        raise RuntimeError(f"{errors.group(1)} failed requests:\n{out}")

    def latency(pct):
        value, unit = re.search(rf"\s{pct}%\s+([\d.]+)(us|ms|s)", out).groups()
        return float(value) * {"us": 0.001, "ms": 1, "s": 1000}[unit]

    return rps, latency(50), latency(99)


def cairn_env(port):
    """Cairn's environment for these benchmarks: quiet logs, rate limits out of the way."""
    return clean_env({
        "CAIRN__SERVER__BIND": f"127.0.0.1:{port}",
        "CAIRN__LOG__LEVEL": "warn",
        "CAIRN__RATE_LIMIT__PER_USER_PER_MINUTE": "1000000000",
        "CAIRN__RATE_LIMIT__PER_ADDRESS_PER_MINUTE": "1000000000",
    })


def sign_in(base, timeout=30):
    """Registers the benchmark's account on `base` (`.../api/v1`) and returns an access token."""
    account = {"email": "bench@example.com", "password": PASSWORD, "display_name": "Bench"}
    post(f"{base}/auth/register", account, timeout=timeout)
    return post(f"{base}/auth/token", {"grant_type": "password", "username": "bench@example.com",
                                       "password": PASSWORD}, form=True, timeout=timeout)["access_token"]


def run_cairn(binary, seconds, connections, path="/me"):
    with tempfile.TemporaryDirectory(prefix="cairn-bench-") as work:
        port = free_port()
        env = cairn_env(port)
        process = subprocess.Popen([binary, "serve"], env=env, cwd=work, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            wait_ready(port, process)
            base = f"http://127.0.0.1:{port}/api/v1"
            token = sign_in(base)
            url = f"http://127.0.0.1:{port}/healthz" if path == "/healthz" else f"{base}{path}"
            wrk(url, token, 2, connections)  # warm-up
            return wrk(url, token, seconds, connections)
        finally:
            process.terminate()
            process.wait(timeout=15)


def reference_token(python, secret, user_id):
    code = (
        "import sys, time, jwt; now = int(time.time()); "
        "print(jwt.encode({'sub': sys.argv[2], 'iss': 'cairn', 'aud': 'cairn-api', 'iat': now, 'nbf': now, "
        "'exp': now + 3600, 'typ': 'access'}, sys.argv[1], algorithm='HS256'))"
    )
    return subprocess.run([python, "-c", code, secret, user_id], check=True, capture_output=True, text=True).stdout.strip()


def run_fastapi(python, workers, seconds, connections, path):
    here = os.path.dirname(os.path.abspath(__file__))
    with tempfile.TemporaryDirectory(prefix="cairn-bench-ref-") as work:
        db = os.path.join(work, "reference.db")
        with sqlite3.connect(db) as conn:
            conn.execute("CREATE TABLE users (id TEXT PRIMARY KEY, email TEXT, display_name TEXT, is_admin INTEGER, "
                         "disabled INTEGER, created_at TEXT)")
            conn.execute("INSERT INTO users VALUES ('u1', 'bench@example.com', 'Bench', 0, 0, '2026-01-01T00:00:00Z')")
        secret = "reference-secret-of-at-least-32-bytes"
        port = free_port()
        env = clean_env({"REFERENCE_DB": db, "REFERENCE_SECRET": secret, "PYTHONPATH": here})
        # `fastapi run`, as FastAPI's deployment docs say (uvicorn with
        # uvloop and httptools from fastapi[standard]).
        fastapi = os.path.join(os.path.dirname(python), "fastapi")
        command = [fastapi, "run", os.path.join(here, "reference_app.py"), "--host", "127.0.0.1",
                   "--port", str(port), "--workers", str(workers)]
        process = subprocess.Popen(command, env=env, cwd=work, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            wait_ready(port, process)
            token = reference_token(python, secret, "u1")
            url = f"http://127.0.0.1:{port}{path}"
            wrk(url, token, 2, connections)
            return wrk(url, token, seconds, connections)
        finally:
            process.terminate()
            process.wait(timeout=15)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("cairn")
    parser.add_argument("--reference-python", required=True)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=3,
                        help="rounds of the three series, one after the other; the table gives medians")
    args = parser.parse_args()
    cairn = os.path.abspath(args.cairn)
    workers = os.cpu_count() or 1
    me_name = "cairn serve (release, SQLite), GET /api/v1/me"
    ceiling_name = "cairn serve, GET /healthz (the ceiling)"
    reference = f"reference: fastapi run, {workers} workers, async handler, PyJWT + aiosqlite"
    series = [
        (me_name, lambda: run_cairn(cairn, args.seconds, args.connections)),
        (ceiling_name, lambda: run_cairn(cairn, args.seconds, args.connections, "/healthz")),
        (reference, lambda: run_fastapi(args.reference_python, workers, args.seconds, args.connections, "/api/v1/me")),
    ]
    # The machine is shared and noisy: the series alternate, round after
    # round, and each row is the median of its rounds.
    results = {name: [] for name, _ in series}
    for _ in range(args.rounds):
        for name, run in series:
            results[name].append(run())

    def median(values):
        values = sorted(values)
        return values[len(values) // 2]

    rows = ["| server | requests/s | p50 | p99 |", "|---|---|---|---|"]
    for name, _ in series:
        runs = results[name]
        rows.append(f"| {name} | {median([r[0] for r in runs]):,.0f} | {median([r[1] for r in runs]):.2f} ms "
                    f"| {median([r[2] for r in runs]):.2f} ms |")
    me = median([r[0] for r in results[me_name]])
    ceiling = median([r[0] for r in results[ceiling_name]])
    ratios = [m[0] / c[0] for m, c in zip(results[me_name], results[ceiling_name])]
    rows.append("")
    rows.append(f"Medians of {args.rounds} rounds. Cairn's /api/v1/me runs at {100 * me / ceiling:.0f}% of its "
                f"bare-route ceiling (per round: {', '.join(f'{100 * r:.0f}%' for r in ratios)}) and serves "
                f"{me / median([r[0] for r in results[reference]]):.1f}x the reference's throughput.")
    print("\n".join(rows))


if __name__ == "__main__":
    sys.exit(main())
