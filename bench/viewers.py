#!/usr/bin/env python3
"""Many viewers of one run: N members' browsers hold the same thread's event
stream (SSE) open on one Cairn process while a run prints 20 lines. Measures
how late each `output` event reaches each viewer (its receipt time minus the
time the server logged it, both on this machine's clock), how many presence
messages the viewers received in all, and the server's memory per idle
viewer (resident set with N viewers connected and idle, minus before).

Usage: bench/viewers.py CAIRN_BINARY SCRIPTED_LLM_BINARY [--viewers N ...]
Needs the sandbox's Python (CAIRN_SANDBOX_PYTHON, as the tests use). Prints
one Markdown row per N. Every server it starts it stops by its process id.
"""

import argparse
import asyncio
import datetime
import json
import os
import resource
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import urllib.parse  # noqa: E402
import urllib.request  # noqa: E402

from me import PASSWORD, wait_ready  # noqa: E402
from startup import clean_env, free_port, rss_mib  # noqa: E402

LINES = 20
TERMINAL = ("succeeded", "failed", "cancelled")
CODE = (
    "```python\nimport time\nfor i in range(%d):\n    print(f'line {i}', flush=True)\n    time.sleep(0.05)\n"
    "final_answer('done')\n```" % LINES
)


def post(url, body, form=False, token=None):
    data = urllib.parse.urlencode(body).encode() if form else json.dumps(body).encode()
    headers = {"content-type": "application/x-www-form-urlencoded" if form else "application/json"}
    if token:
        headers["authorization"] = f"Bearer {token}"
    with urllib.request.urlopen(urllib.request.Request(url, data=data, headers=headers), timeout=60) as response:
        return json.load(response)


def more_files():
    # A thousand sockets on each side need more than the usual 1,024 descriptors.
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 65536), hard))


async def viewer(port, token, thread, ready, results):
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    # HTTP/1.0: the answer streams as it is, without chunked framing.
    writer.write(
        (f"GET /api/v1/threads/{thread}/events HTTP/1.0\r\nHost: 127.0.0.1\r\nAccept: text/event-stream\r\n"
         f"Authorization: Bearer {token}\r\n\r\n").encode()
    )
    await writer.drain()
    lags, presence, buffer = [], 0, b""
    ready.release()
    try:
        while True:
            chunk = await reader.read(65536)
            if not chunk:
                break
            received = time.time()
            buffer += chunk
            while b"\n\n" in buffer:
                block, buffer = buffer.split(b"\n\n", 1)
                text = block.decode(errors="replace")
                if "event: presence" in text:
                    presence += 1
                    continue
                data = "".join(line[5:].strip() for line in text.split("\n") if line.startswith("data:"))
                if not data.startswith("{"):
                    continue
                event = json.loads(data)
                if event.get("kind") == "output":
                    logged = datetime.datetime.fromisoformat(event["created_at"].replace("Z", "+00:00")).timestamp()
                    lags.append((received - logged) * 1000)
                elif event.get("kind") == "run.status" and event["payload"].get("status") in TERMINAL:
                    status = event["payload"]["status"]
                    if status != "succeeded":
                        print(f"the run ended {status}: {event['payload'].get('error')}", file=sys.stderr)
                    return
    finally:
        writer.close()
        results.append((lags, presence))


def percentile(values, p):
    values = sorted(values)
    return values[min(len(values) - 1, round((len(values) - 1) * p))] if values else float("nan")


async def measure(port, token, thread, pid, viewers):
    base = f"http://127.0.0.1:{port}/api/v1"
    before = rss_mib(pid)
    ready, results = asyncio.Semaphore(0), []
    tasks = [asyncio.create_task(viewer(port, token, thread, ready, results)) for _ in range(viewers)]
    for _ in range(viewers):
        await ready.acquire()
    await asyncio.sleep(3)  # every stream open and idle
    idle_kib = (rss_mib(pid) - before) * 1024 / viewers
    started = time.time()
    await asyncio.to_thread(post, f"{base}/threads/{thread}/messages", {"content": "Count."}, False, token)
    await asyncio.wait_for(asyncio.gather(*tasks), timeout=int(os.environ.get("VIEWERS_TIMEOUT", "300")))
    lags = [lag for lag_list, _ in results for lag in lag_list]
    presence = sum(count for _, count in results)
    complete = sum(1 for lag_list, _ in results if len(lag_list) >= LINES)
    return {
        "viewers": viewers,
        "complete": complete,
        "lag_p50_ms": percentile(lags, 0.5),
        "lag_p99_ms": percentile(lags, 0.99),
        "presence_messages": presence,
        "idle_kib_per_viewer": idle_kib,
        "seconds": time.time() - started,
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("cairn")
    parser.add_argument("scripted_llm")
    parser.add_argument("--viewers", type=int, nargs="+", default=[100, 1000])
    args = parser.parse_args()
    more_files()
    llm = subprocess.Popen([args.scripted_llm, CODE], stdout=subprocess.PIPE, text=True)
    rows = ["| viewers | all 20 lines reached | output lag p50 | p99 | presence messages (all viewers) "
            "| memory per idle viewer |", "|---|---|---|---|---|---|"]
    try:
        llm_url = llm.stdout.readline().strip()
        for n in args.viewers:
            with tempfile.TemporaryDirectory(prefix="cairn-bench-viewers-") as work:
                port = free_port()
                providers = f'[{{name="scripted",kind="openai-compatible",base_url="{llm_url}/v1",models=[{{name="m"}}]}}]'
                env = clean_env({
                    "CAIRN__SERVER__BIND": f"127.0.0.1:{port}",
                    "CAIRN__LOG__LEVEL": "warn",
                    "CAIRN__LLM__PROVIDERS": providers,
                    "CAIRN__RATE_LIMIT__PER_USER_PER_MINUTE": "1000000000",
                    "CAIRN__RATE_LIMIT__PER_ADDRESS_PER_MINUTE": "1000000000",
                    "CAIRN__SANDBOX__PYTHON": os.environ.get("CAIRN_SANDBOX_PYTHON", ""),
                })
                server = subprocess.Popen([args.cairn, "serve"], env=env, cwd=work,
                                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                try:
                    wait_ready(port, server)
                    base = f"http://127.0.0.1:{port}/api/v1"
                    post(f"{base}/auth/register",
                         {"email": "bench@example.com", "password": PASSWORD, "display_name": "Bench"})
                    token = post(f"{base}/auth/token", {"grant_type": "password", "username": "bench@example.com",
                                                        "password": PASSWORD}, form=True)["access_token"]
                    project = post(f"{base}/projects", {"name": "P"}, False, token)["id"]
                    thread = post(f"{base}/projects/{project}/threads", {"title": "T"}, False, token)["id"]
                    r = asyncio.run(measure(port, token, thread, server.pid, n))
                    rows.append(f"| {n} | {r['complete']} of {n} | {r['lag_p50_ms']:.1f} ms | {r['lag_p99_ms']:.1f} ms "
                                f"| {r['presence_messages']:,} | {r['idle_kib_per_viewer']:.1f} KiB |")
                finally:
                    server.terminate()
                    server.wait(timeout=60)
    finally:
        llm.terminate()
        llm.wait(timeout=15)
    print("\n".join(rows))


if __name__ == "__main__":
    sys.exit(main())
