#!/usr/bin/env python3
"""Authenticated `GET /api/v1/me` under load: throughput and p50/p99 latency
of Cairn (release build, embedded SQLite) and of the reference stack
(FastAPI + uvicorn + python-jose, bench/reference_app.py) with one and with
two workers, measured with wrk on 127.0.0.1 in the same run.

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


def post(url, body, form=False):
    data = urllib.parse.urlencode(body).encode() if form else json.dumps(body).encode()
    kind = "application/x-www-form-urlencoded" if form else "application/json"
    request = urllib.request.Request(url, data=data, headers={"content-type": kind})
    with urllib.request.urlopen(request, timeout=30) as response:
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


def run_cairn(binary, seconds, connections):
    with tempfile.TemporaryDirectory(prefix="cairn-bench-") as work:
        port = free_port()
        env = clean_env({
            "CAIRN__SERVER__BIND": f"127.0.0.1:{port}",
            "CAIRN__LOG__LEVEL": "warn",
            "CAIRN__RATE_LIMIT__PER_USER_PER_MINUTE": "1000000000",
            "CAIRN__RATE_LIMIT__PER_ADDRESS_PER_MINUTE": "1000000000",
        })
        process = subprocess.Popen([binary, "serve"], env=env, cwd=work, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            wait_ready(port, process)
            base = f"http://127.0.0.1:{port}/api/v1"
            post(f"{base}/auth/register", {"email": "bench@example.com", "password": PASSWORD, "display_name": "Bench"})
            token = post(f"{base}/auth/token", {"grant_type": "password", "username": "bench@example.com",
                                                "password": PASSWORD}, form=True)["access_token"]
            wrk(f"{base}/me", token, 2, connections)  # warm-up
            return wrk(f"{base}/me", token, seconds, connections)
        finally:
            process.terminate()
            process.wait(timeout=15)


def reference_token(python, secret, user_id):
    code = (
        "import sys, time; from jose import jwt; now = int(time.time()); "
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
        command = [python, "-m", "uvicorn", "reference_app:app", "--host", "127.0.0.1", "--port", str(port),
                   "--workers", str(workers), "--log-level", "warning", "--no-access-log"]
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
    args = parser.parse_args()
    rows = [
        "| server | requests/s | p50 | p99 |",
        "|---|---|---|---|",
    ]
    results = {}
    for name, run in [
        ("cairn serve (release, SQLite)", lambda: run_cairn(os.path.abspath(args.cairn), args.seconds, args.connections)),
        *[
            (f"reference: FastAPI + uvicorn + python-jose, {kind} handler, {workers} worker{'s' if workers > 1 else ''}",
             lambda w=workers, p=path: run_fastapi(args.reference_python, w, args.seconds, args.connections, p))
            for kind, path in [("sync", "/api/v1/me"), ("async", "/api/v1/me-async")]
            for workers in (1, 2)
        ],
    ]:
        rps, p50, p99 = run()
        results[name] = rps
        rows.append(f"| {name} | {rps:,.0f} | {p50:.2f} ms | {p99:.2f} ms |")
    cairn = results["cairn serve (release, SQLite)"]
    best = max(v for k, v in results.items() if k.startswith("reference"))
    rows.append("")
    rows.append(f"Cairn serves {cairn / best:.1f}x the throughput of the reference's best configuration.")
    print("\n".join(rows))


if __name__ == "__main__":
    sys.exit(main())
