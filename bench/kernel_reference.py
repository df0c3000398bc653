#!/usr/bin/env python3
"""The kernel reference: a local Jupyter kernel (ipykernel, started and
driven by jupyter_client, no sandbox) measured the way
crates/cairn-sandbox/examples/kernel_bench.rs measures Cairn's kernel: start
to the first `print(1)` result, execute round trips of trivial code, idle
resident memory. Prints one JSON object.

Usage: kernel_reference.py [STARTS] [EXECUTIONS]   (run with the bench venv's Python)
"""

import json
import sys
import time

from jupyter_client.manager import start_new_kernel


def percentile(samples, p):
    samples = sorted(samples)
    return samples[round((len(samples) - 1) * p)]


def run(client, code):
    client.execute_interactive(code, timeout=60, output_hook=lambda msg: None)


def main():
    starts = int(sys.argv[1]) if len(sys.argv) > 1 else 10
    executions = int(sys.argv[2]) if len(sys.argv) > 2 else 1000
    cold = []
    for _ in range(starts):
        started = time.perf_counter()
        manager, client = start_new_kernel(kernel_name="python3")
        run(client, "print(1)")
        cold.append((time.perf_counter() - started) * 1000)
        client.stop_channels()
        manager.shutdown_kernel(now=True)
    manager, client = start_new_kernel(kernel_name="python3")
    for _ in range(100):
        run(client, "1")
    trips = []
    for _ in range(executions):
        started = time.perf_counter()
        run(client, "x = 1")
        trips.append((time.perf_counter() - started) * 1000)
    time.sleep(1)
    with open(f"/proc/{manager.provisioner.process.pid}/status") as status:
        rss = next(int(line.split()[1]) for line in status if line.startswith("VmRSS:")) / 1024
    client.stop_channels()
    manager.shutdown_kernel(now=True)
    print(json.dumps({"cold_p50_ms": round(percentile(cold, 0.5), 1), "cold_p99_ms": round(percentile(cold, 0.99), 1),
                      "exec_p50_ms": round(percentile(trips, 0.5), 3), "exec_p99_ms": round(percentile(trips, 0.99), 3),
                      "idle_mib": round(rss, 1)}))


if __name__ == "__main__":
    sys.exit(main())
