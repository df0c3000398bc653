#!/usr/bin/env python3
"""Instructions Cairn's own code runs per request, for authenticated
`GET /api/v1/me` and for the bare `GET /healthz`, counted by valgrind's
callgrind on a release build (embedded SQLite). Unlike requests per second
this does not move with whatever else the machine is doing: the same build
gives the same counts, so a change to the request path shows its effect
even on a noisy machine. It counts user-space instructions only (the
kernel's socket work is not in it) and the server runs slowly under
valgrind, so the counts are for comparing builds, not for throughput.

Usage: bench/me_instructions.py CAIRN_BINARY [--seconds N] [--keep DIR]
Prints a Markdown table; with --keep, also leaves the two dumps in DIR for
`callgrind_annotate --inclusive=yes` to say where the instructions go. The
server it starts it stops by its process id.
"""

import argparse
import glob
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from me import cairn_env, sign_in  # noqa: E402
from startup import free_port, ready  # noqa: E402


def wrk(url, token, seconds):
    out = subprocess.run(
        ["wrk", "-t1", "-c4", f"-d{seconds}s", "-H", f"Authorization: Bearer {token}", url],
        check=True, capture_output=True, text=True,
    ).stdout
    if "Non-2xx" in out:
        raise RuntimeError(f"failed requests:\n{out}")
    return int(re.search(r"(\d+) requests in", out).group(1))


def total_instructions(path):
    with open(path) as dump:
        for line in dump:
            if line.startswith(("summary:", "totals:")) and int(line.split()[1]) > 0:
                return int(line.split()[1])
    # callgrind_control dumps write per-function costs only; add them up.
    out = subprocess.run(["callgrind_annotate", "--auto=no", "--threshold=100", path],
                         check=True, capture_output=True, text=True).stdout
    match = re.search(r"^\s*([\d,]+) \([^)]*\)\s+PROGRAM TOTALS", out, re.M)
    return int(match.group(1).replace(",", ""))


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("cairn")
    parser.add_argument("--seconds", type=int, default=8)
    parser.add_argument("--keep", help="a folder to copy the callgrind dumps into")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="cairn-bench-instr-") as work:
        port = free_port()
        env = cairn_env(port)
        out = os.path.join(work, "callgrind.%p")
        process = subprocess.Popen(
            ["valgrind", "--tool=callgrind", "--instr-atstart=no", f"--callgrind-out-file={out}",
             os.path.abspath(args.cairn), "serve"],
            env=env, cwd=work, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            started = time.time()
            while not ready(f"http://127.0.0.1:{port}/readyz"):
                if process.poll() is not None or time.time() - started > 300:
                    raise RuntimeError("server did not start under valgrind")
                time.sleep(0.5)
            base = f"http://127.0.0.1:{port}/api/v1"
            token = sign_in(base, timeout=120)  # the server runs slowly under valgrind

            def control(*flags):
                subprocess.run(["callgrind_control", *flags, str(process.pid)], check=True, capture_output=True)

            rows = ["| request | requests counted | instructions per request |", "|---|---|---|"]
            counts = {}
            for name, url in [("GET /api/v1/me", f"{base}/me"), ("GET /healthz", f"http://127.0.0.1:{port}/healthz")]:
                wrk(url, token, 3)  # warm-up: caches filled, first-use paths taken
                control("-z")
                control("-i", "on")
                requests = wrk(url, token, args.seconds)
                control("-i", "off")
                before = set(glob.glob(os.path.join(work, "callgrind.*")))
                label = name.replace(" ", "_").replace("/", "_")
                control("-d", label)
                dump = (set(glob.glob(os.path.join(work, "callgrind.*"))) - before).pop()
                counts[name] = total_instructions(dump) / requests
                if args.keep:
                    os.makedirs(args.keep, exist_ok=True)
                    shutil.copy(dump, os.path.join(args.keep, f"callgrind.{label}"))
                rows.append(f"| {name} | {requests:,} | {counts[name]:,.0f} |")
            extra = counts["GET /api/v1/me"] - counts["GET /healthz"]
            rows.append("")
            rows.append(f"Authentication, rate limits and the JSON answer add {extra:,.0f} instructions per request "
                        f"to the bare route's {counts['GET /healthz']:,.0f}.")
            print("\n".join(rows))
        finally:
            process.terminate()
            process.wait(timeout=60)


if __name__ == "__main__":
    sys.exit(main())
