#!/usr/bin/env python3
"""Many runs at once in the distributed shape: one gateway queues N runs (one
thread and one message each, posted together) and two worker processes work
them, on PostgreSQL and Redis. The scripted model answers every call 200 ms
late with code that prints a line and gives the answer, so each run is one
model call and one sandbox execution (in a sandbox of its own, on its
worker). Measures the time until every run succeeded, each run's time from
posting to done (p50, p99), and the memory the workers and their sandboxes
needed per run (the peak of their resident sets, process trees included,
minus before, over N).

Usage: bench/runs_load.py CAIRN_BINARY SCRIPTED_LLM_BINARY [--runs N]
Needs PostgreSQL (CAIRN_TEST_POSTGRES_URL, default the local one, where it
makes a database of its own and drops it), Redis (CAIRN_TEST_REDIS_URL) and
the sandbox's Python (CAIRN_SANDBOX_PYTHON). Every process it starts it
stops by its process id. Prints one Markdown row.
"""

import argparse
import concurrent.futures
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import urllib.request
import uuid

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from me import PASSWORD  # noqa: E402
from startup import free_port, start_roles  # noqa: E402

REPLY = "Here it is.\n```python\nprint('hello from the sandbox')\nfinal_answer('done')\n```"


def call(url, body=None, token=None, form=False, method=None):
    data = None
    headers = {}
    if body is not None:
        data = urllib.parse.urlencode(body).encode() if form else json.dumps(body).encode()
        headers["content-type"] = "application/x-www-form-urlencoded" if form else "application/json"
    if token:
        headers["authorization"] = f"Bearer {token}"
    request = urllib.request.Request(url, data=data, headers=headers, method=method)
    with urllib.request.urlopen(request, timeout=120) as response:
        return json.load(response)


def tree_rss_kib(root):
    """Resident memory of a process and all its descendants, in KiB."""
    children = {}
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/stat") as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
            children.setdefault(ppid, []).append(int(pid))
        except (OSError, IndexError, ValueError):
            continue
    total, todo = 0, [root]
    while todo:
        pid = todo.pop()
        todo.extend(children.get(pid, []))
        try:
            with open(f"/proc/{pid}/status") as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1])
        except OSError:
            continue
    return total


def percentile(values, p):
    values = sorted(values)
    return values[min(len(values) - 1, round((len(values) - 1) * p))] if values else float("nan")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("cairn")
    parser.add_argument("scripted_llm")
    parser.add_argument("--runs", type=int, default=1000)
    parser.add_argument("--per-worker", type=int, default=64, help="runs a worker process works at once")
    args = parser.parse_args()
    admin = os.environ.get("CAIRN_TEST_POSTGRES_URL", "postgres://postgres@127.0.0.1:5432/postgres")
    redis = os.environ.get("CAIRN_TEST_REDIS_URL", "redis://127.0.0.1:6379")
    database = f"cairn_bench_{uuid.uuid4().hex[:12]}"
    subprocess.run(["psql", admin, "-q", "-c", f"CREATE DATABASE {database}"], check=True)
    url = admin.rsplit("/", 1)[0] + "/" + database
    llm = subprocess.Popen([args.scripted_llm, REPLY], stdout=subprocess.PIPE, text=True,
                           env={**os.environ, "SCRIPTED_LLM_LATENCY_MS": "200"})
    processes = []
    try:
        llm_url = llm.stdout.readline().strip()
        providers = f'[{{name="scripted",kind="openai-compatible",base_url="{llm_url}/v1",models=[{{name="m"}}]}}]'
        shared = {
            "CAIRN__DATABASE__URL": url,
            "CAIRN__DATABASE__MAX_CONNECTIONS": "20",
            "CAIRN__REDIS__URL": redis,
            "CAIRN__REDIS__PREFIX": f"bench-{uuid.uuid4().hex[:8]}",
            "CAIRN__AUTH__SIGNING_KEYS": '[{kid="k1",secret="' + "A" * 43 + '"}]',
            "CAIRN__LOG__LEVEL": "warn",
            "CAIRN__LLM__PROVIDERS": providers,
            "CAIRN__RATE_LIMIT__PER_USER_PER_MINUTE": "1000000000",
            "CAIRN__RATE_LIMIT__PER_ADDRESS_PER_MINUTE": "1000000000",
            "CAIRN__SANDBOX__PYTHON": os.environ.get("CAIRN_SANDBOX_PYTHON", ""),
            "CAIRN__SANDBOX__POOL_SIZE": "4",
            "CAIRN__SANDBOX__MAX_RUNNING": str(args.per_worker),
            "CAIRN__SANDBOX__MAX_RUNNING_PER_USER": str(args.per_worker),
            "CAIRN__AGENT__WORKERS": str(args.per_worker),
        }
        work = tempfile.mkdtemp(prefix="cairn-bench-runs-")
        gateway_port = free_port()
        roles = [("gateway", gateway_port), ("worker", free_port()), ("worker", free_port())]
        start_roles(args.cairn, roles, shared, work, processes)
        base = f"http://127.0.0.1:{gateway_port}/api/v1"
        call(f"{base}/auth/register", {"email": "bench@example.com", "password": PASSWORD, "display_name": "B"})
        token = call(f"{base}/auth/token", {"grant_type": "password", "username": "bench@example.com",
                                            "password": PASSWORD}, form=True)["access_token"]
        project = call(f"{base}/projects", {"name": "P"}, token)["id"]
        threads = [call(f"{base}/projects/{project}/threads", {"title": f"T{n}"}, token)["id"]
                   for n in range(args.runs)]
        workers = [p.pid for p in processes[1:]]
        before = sum(tree_rss_kib(pid) for pid in workers)
        peak = [before]
        done = threading.Event()

        def sample():
            while not done.is_set():
                peak[0] = max(peak[0], sum(tree_rss_kib(pid) for pid in workers))
                time.sleep(0.5)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        started = time.time()
        with concurrent.futures.ThreadPoolExecutor(max_workers=32) as pool:
            posted = list(pool.map(lambda t: call(f"{base}/threads/{t}/messages", {"content": "Go."}, token),
                                   threads))
        runs = [p["run"]["id"] for p in posted]
        posting = time.time() - started
        pending = set(runs)
        statuses = {}
        deadline = time.time() + 1800
        while pending and time.time() < deadline:
            time.sleep(1)
            with concurrent.futures.ThreadPoolExecutor(max_workers=16) as pool:
                for run in pool.map(lambda r: call(f"{base}/runs/{r}", token=token), list(pending)):
                    if run["status"] in ("succeeded", "failed", "cancelled"):
                        statuses[run["id"]] = run
                        pending.discard(run["id"])
        total = time.time() - started
        done.set()
        sampler.join()
        succeeded = sum(1 for r in statuses.values() if r["status"] == "succeeded")

        def seconds(run):
            parse = lambda s: time.mktime(time.strptime(s[:19], "%Y-%m-%dT%H:%M:%S")) + float("0" + s[19:-1])
            return parse(run["updated_at"]) - parse(run["created_at"])

        latencies = [seconds(r) for r in statuses.values()]
        per_run_kib = (peak[0] - before) / max(1, args.runs)
        print("| runs | succeeded | posted in | all done in | run time p50 | p99 | memory per run (workers and sandboxes, peak) |")
        print("|---|---|---|---|---|---|---|")
        print(f"| {args.runs} | {succeeded} | {posting:.1f} s | {total:.1f} s | {percentile(latencies, 0.5):.1f} s "
              f"| {percentile(latencies, 0.99):.1f} s | {per_run_kib:.0f} KiB |")
        for run in statuses.values():
            if run["status"] != "succeeded":
                print(f"run {run['id']} ended {run['status']}: {run.get('error')}", file=sys.stderr)
        if pending:
            print(f"{len(pending)} runs had not ended after 30 minutes", file=sys.stderr)
            return 1
        return 0 if succeeded == args.runs else 1
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            try:
                process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                process.kill()
        llm.terminate()
        llm.wait(timeout=15)
        subprocess.run(["psql", admin, "-q", "-c", f"DROP DATABASE IF EXISTS {database} WITH (FORCE)"], check=False)


if __name__ == "__main__":
    sys.exit(main())
