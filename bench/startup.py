#!/usr/bin/env python3
"""Start-up benchmark: time from process start to the first 200 from
/readyz, and resident memory once idle, for `cairn serve` (embedded
defaults, and on PostgreSQL + Redis when they answer) and for the reference
stack (FastAPI + uvicorn, bench/reference_app.py) in the same run.

Usage: bench/startup.py CAIRN_BINARY [--runs N] [--reference-python PATH]
Prints a Markdown table. Targets 127.0.0.1 only; every server it starts it
stops by its process id.
"""

import argparse
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rss_mib(pid):
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def ready(url):
    try:
        with urllib.request.urlopen(url, timeout=1) as response:
            return response.status == 200
    except (urllib.error.URLError, ConnectionError, OSError):
        return False


def measure(command, env, cwd, port, idle_seconds=2.0, timeout=60.0):
    """Returns (seconds to ready, idle RSS in MiB)."""
    url = f"http://127.0.0.1:{port}/readyz"
    started = time.perf_counter()
    process = subprocess.Popen(command, env=env, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        while not ready(url):
            if process.poll() is not None:
                raise RuntimeError(f"{command[0]} exited with {process.returncode}")
            if time.perf_counter() - started > timeout:
                raise RuntimeError(f"{command[0]} not ready after {timeout} s")
            time.sleep(0.002)
        elapsed = time.perf_counter() - started
        time.sleep(idle_seconds)
        return elapsed, rss_mib(process.pid)
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def clean_env(extra):
    env = {k: v for k, v in os.environ.items() if not k.startswith("CAIRN__")}
    env.update(extra)
    return env


def port_answers(port):
    with socket.socket() as s:
        s.settimeout(1)
        return s.connect_ex(("127.0.0.1", port)) == 0


def series(name, runs, make):
    times, memory = [], []
    for _ in range(runs):
        with tempfile.TemporaryDirectory(prefix="cairn-bench-") as work:
            port = free_port()
            command, env = make(work, port)
            seconds, rss = measure(command, env, work, port)
            times.append(seconds * 1000)
            memory.append(rss)
    times.sort()
    p90 = times[max(0, int(round(0.9 * len(times))) - 1)]
    return f"| {name} | {statistics.median(times):.0f} ms | {p90:.0f} ms | {statistics.median(memory):.1f} MiB |"


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("cairn")
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--reference-python", help="a Python with fastapi and uvicorn (bench/requirements.txt)")
    args = parser.parse_args()
    cairn = os.path.abspath(args.cairn)
    here = os.path.dirname(os.path.abspath(__file__))

    rows = ["| server | ready p50 | ready p90 | idle RSS (p50) |", "|---|---|---|---|"]

    def embedded(work, port):
        env = clean_env({"CAIRN__SERVER__BIND": f"127.0.0.1:{port}"})
        return [cairn, "serve"], env

    rows.append(series("cairn serve, embedded (SQLite, in-process bus; first start creates the database)", args.runs, embedded))

    if port_answers(5432) and port_answers(6379) and shutil.which("psql"):
        database = "cairn_bench_startup"
        admin = ["psql", "-h", "127.0.0.1", "-U", "postgres", "-q", "-c"]
        subprocess.run(admin + [f"DROP DATABASE IF EXISTS {database}"], check=True)
        subprocess.run(admin + [f"CREATE DATABASE {database}"], check=True)

        def distributed(work, port):
            env = clean_env(
                {
                    "CAIRN__SERVER__BIND": f"127.0.0.1:{port}",
                    "CAIRN__DATABASE__URL": f"postgres://postgres@127.0.0.1:5432/{database}",
                    "CAIRN__REDIS__URL": "redis://127.0.0.1:6379",
                    "CAIRN__REDIS__PREFIX": "cairn-bench",
                }
            )
            return [cairn, "serve"], env

        try:
            rows.append(series("cairn serve, PostgreSQL + Redis", args.runs, distributed))
        finally:
            subprocess.run(admin + [f"DROP DATABASE IF EXISTS {database}"], check=False)

    if args.reference_python:

        def reference(work, port):
            env = clean_env({"REFERENCE_DB": os.path.join(work, "reference.db"), "PYTHONPATH": here})
            fastapi = os.path.join(os.path.dirname(args.reference_python), "fastapi")
            command = [fastapi, "run", os.path.join(here, "reference_app.py"), "--host", "127.0.0.1",
                       "--port", str(port)]
            return command, env

        rows.append(series("reference: fastapi run, 1 worker (SQLite probe)", args.runs, reference))

    print("\n".join(rows))


if __name__ == "__main__":
    sys.exit(main())


def start_roles(binary, roles, settings, work, started):
    """Starts `cairn serve --role ROLE` for each (role, port), each in a folder
    of its own under `work` with `settings`, appending each process to
    `started` (so the caller stops them whatever happens) once it is ready."""
    for n, (role, port) in enumerate(roles):
        folder = os.path.join(work, f"{role}-{n}")
        os.makedirs(folder)
        env = clean_env({**settings, "CAIRN__SERVER__BIND": f"127.0.0.1:{port}"})
        started.append(subprocess.Popen([binary, "serve", "--role", role], env=env, cwd=folder,
                                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        deadline = time.time() + 60
        while not ready(f"http://127.0.0.1:{port}/readyz"):
            if started[-1].poll() is not None or time.time() > deadline:
                raise RuntimeError(f"the {role} did not start")
            time.sleep(0.05)
