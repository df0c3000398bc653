#!/usr/bin/env python3
"""Many viewers of one run: N members' browsers hold the same thread's event
stream (SSE) open on one Cairn process while a run prints 20 lines. Measures
how late each `output` event reaches each viewer (its receipt time minus the
time the server logged it, both on this machine's clock), how many presence
messages the viewers received in all, and the server's memory per idle
viewer (resident set with N viewers connected and idle, minus before; and
per viewer past the first tenth, which leaves out what the server sets up
once for many clients, such as database connections).

With `--gateways 2` the shape is the distributed one: two gateways and one
worker on PostgreSQL (CAIRN_TEST_POSTGRES_URL, a database of its own,
dropped after) and Redis (CAIRN_TEST_REDIS_URL); the viewers alternate
between the gateways and between SSE and WebSocket (which needs the
`websockets` package: run it with the bench venv's Python), and the memory
per idle viewer is the two gateways' together.

With `--client PATH` the viewers are the Rust client
(`crates/cairn-gateway/examples/viewers_client.rs`) instead of Python's
asyncio in this process: the same connections and measures, at a fraction
of the CPU (the clients share the machine with the servers they measure).

Usage: bench/viewers.py CAIRN_BINARY SCRIPTED_LLM_BINARY [--viewers N ...] [--gateways 2] [--client PATH]
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
import uuid

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import urllib.parse  # noqa: E402
import urllib.request  # noqa: E402

from me import PASSWORD  # noqa: E402
from startup import free_port, rss_mib, start_roles  # noqa: E402

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


async def ws_viewer(port, token, thread, ready, results):
    import websockets  # the bench venv's (uvicorn[standard] brings it)

    lags, presence = [], 0
    url = f"ws://127.0.0.1:{port}/api/v1/threads/{thread}/events/ws"
    async with websockets.connect(url, additional_headers={"authorization": f"Bearer {token}"},
                                  max_queue=None, ping_interval=None) as socket:
        ready.release()
        try:
            async for message in socket:
                received = time.time()
                event = json.loads(message)
                if "here" in event and "kind" not in event:
                    presence += 1
                    continue
                if event.get("kind") == "output":
                    logged = datetime.datetime.fromisoformat(event["created_at"].replace("Z", "+00:00")).timestamp()
                    lags.append((received - logged) * 1000)
                elif event.get("kind") == "run.status" and event["payload"].get("status") in TERMINAL:
                    return
        finally:
            results.append((lags, presence))


def percentile(values, p):
    values = sorted(values)
    return values[min(len(values) - 1, round((len(values) - 1) * p))] if values else float("nan")


async def measure(ports, token, thread, pids, viewers):
    base = f"http://127.0.0.1:{ports[0]}/api/v1"
    before = sum(rss_mib(pid) for pid in pids)
    ready, results = asyncio.Semaphore(0), []
    tasks = []
    # A tenth first: what they cost includes what the servers set up once
    # (database connections, threads); the rest cost only themselves.
    first = max(1, viewers // 10)
    warm = None
    for n in range(viewers):
        if n == first:
            for _ in range(first):
                await ready.acquire()
            await asyncio.sleep(3)
            warm = sum(rss_mib(pid) for pid in pids)
        port = ports[n % len(ports)]
        # One gateway: all over SSE, as before; two: SSE and WebSocket in turn.
        kind = ws_viewer if len(ports) > 1 and (n // len(ports)) % 2 == 1 else viewer
        tasks.append(asyncio.create_task(kind(port, token, thread, ready, results)))
    for _ in range(viewers - first):
        await ready.acquire()
    await asyncio.sleep(3)  # every stream open and idle
    after = sum(rss_mib(pid) for pid in pids)
    idle_kib = (after - before) * 1024 / viewers
    marginal_kib = (after - warm) * 1024 / (viewers - first) if warm is not None else float("nan")
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
        "marginal_kib_per_viewer": marginal_kib,
        "seconds": time.time() - started,
    }


def settled_rss(pids, samples=5):
    """The servers' resident set, the median of a few samples a fifth of a
    second apart (the allocator returns freed pages lazily, so one reading
    can catch it mid-way)."""
    readings = []
    for _ in range(samples):
        readings.append(sum(rss_mib(pid) for pid in pids))
        time.sleep(0.2)
    return sorted(readings)[len(readings) // 2]


def measure_native(client, ports, token, thread, pids, viewers):
    """`measure`, the viewers being the Rust client (`viewers_client`): the
    same connections, events and lags, at a fraction of the CPU the Python
    viewers take from the servers they measure. Memory is read once the
    servers settled: signing in just before hashed a password (Argon2 takes
    tens of MiB for a moment), and each reading is a median of samples."""
    time.sleep(3)
    before = settled_rss(pids)
    base = f"http://127.0.0.1:{ports[0]}/api/v1"
    process = subprocess.Popen([client, ",".join(map(str, ports)), token, thread, str(viewers)],
                               stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        first = max(1, viewers // 10)
        assert process.stdout.readline().strip() == "first"
        time.sleep(3)
        warm = settled_rss(pids)
        process.stdin.write("go\n")
        process.stdin.flush()
        assert process.stdout.readline().strip() == "connected"
        time.sleep(3)  # every stream open and idle
        after = settled_rss(pids)
        started = time.time()
        post(f"{base}/threads/{thread}/messages", {"content": "Count."}, False, token)
        result = json.loads(process.stdout.readline())
        process.wait(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    sse_lags, ws_lags = result["sse_lags_ms"], result["ws_lags_ms"]
    lags = sse_lags + ws_lags
    if ws_lags:
        print(f"{viewers} viewers: SSE p50 {percentile(sse_lags, 0.5):.1f} ms, p99 {percentile(sse_lags, 0.99):.1f} ms; "
              f"WebSocket p50 {percentile(ws_lags, 0.5):.1f} ms, p99 {percentile(ws_lags, 0.99):.1f} ms", file=sys.stderr)
    return {
        "viewers": viewers,
        "complete": result["complete"],
        "lag_p50_ms": percentile(lags, 0.5),
        "lag_p99_ms": percentile(lags, 0.99),
        "presence_messages": result["presence"],
        "idle_kib_per_viewer": (after - before) * 1024 / viewers,
        "marginal_kib_per_viewer": (after - warm) * 1024 / (viewers - first),
        "seconds": time.time() - started,
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("cairn")
    parser.add_argument("scripted_llm")
    parser.add_argument("--viewers", type=int, nargs="+", default=[100, 1000])
    parser.add_argument("--gateways", type=int, choices=[1, 2], default=1)
    parser.add_argument("--client", help="the Rust viewers (viewers_client); without it, Python's asyncio")
    args = parser.parse_args()
    more_files()
    llm = subprocess.Popen([args.scripted_llm, CODE], stdout=subprocess.PIPE, text=True)
    rows = ["| viewers | all 20 lines reached | output lag p50 | p99 | presence messages (all viewers) "
            "| memory per idle viewer | each viewer past the first tenth |", "|---|---|---|---|---|---|---|"]
    try:
        llm_url = llm.stdout.readline().strip()
        for n in args.viewers:
            with tempfile.TemporaryDirectory(prefix="cairn-bench-viewers-") as work:
                providers = f'[{{name="scripted",kind="openai-compatible",base_url="{llm_url}/v1",models=[{{name="m"}}]}}]'
                shared = {
                    "CAIRN__LOG__LEVEL": "warn",
                    "CAIRN__LLM__PROVIDERS": providers,
                    "CAIRN__RATE_LIMIT__PER_USER_PER_MINUTE": "1000000000",
                    "CAIRN__RATE_LIMIT__PER_ADDRESS_PER_MINUTE": "1000000000",
                    "CAIRN__SANDBOX__PYTHON": os.environ.get("CAIRN_SANDBOX_PYTHON", ""),
                }
                roles, database, admin = [("all", free_port())], None, None
                if args.gateways == 2:
                    admin = os.environ.get("CAIRN_TEST_POSTGRES_URL", "postgres://postgres@127.0.0.1:5432/postgres")
                    database = f"cairn_bench_{uuid.uuid4().hex[:12]}"
                    subprocess.run(["psql", admin, "-q", "-c", f"CREATE DATABASE {database}"], check=True)
                    shared.update({
                        "CAIRN__DATABASE__URL": admin.rsplit("/", 1)[0] + "/" + database,
                        "CAIRN__REDIS__URL": os.environ.get("CAIRN_TEST_REDIS_URL", "redis://127.0.0.1:6379"),
                        "CAIRN__REDIS__PREFIX": f"bench-{uuid.uuid4().hex[:8]}",
                        "CAIRN__AUTH__SIGNING_KEYS": '[{kid="k1",secret="' + "A" * 43 + '"}]',
                    })
                    roles = [("gateway", free_port()), ("gateway", free_port()), ("worker", free_port())]
                servers = []
                try:
                    start_roles(args.cairn, roles, shared, work, servers)
                    gateways = [(port, server) for (role, port), server in zip(roles, servers) if role != "worker"]
                    base = f"http://127.0.0.1:{gateways[0][0]}/api/v1"
                    post(f"{base}/auth/register",
                         {"email": "bench@example.com", "password": PASSWORD, "display_name": "Bench"})
                    token = post(f"{base}/auth/token", {"grant_type": "password", "username": "bench@example.com",
                                                        "password": PASSWORD}, form=True)["access_token"]
                    project = post(f"{base}/projects", {"name": "P"}, False, token)["id"]
                    thread = post(f"{base}/projects/{project}/threads", {"title": "T"}, False, token)["id"]
                    ports, pids = [p for p, _ in gateways], [s.pid for _, s in gateways]
                    if args.client:
                        r = measure_native(args.client, ports, token, thread, pids, n)
                    else:
                        r = asyncio.run(measure(ports, token, thread, pids, n))
                    rows.append(f"| {n} | {r['complete']} of {n} | {r['lag_p50_ms']:.1f} ms | {r['lag_p99_ms']:.1f} ms "
                                f"| {r['presence_messages']:,} | {r['idle_kib_per_viewer']:.1f} KiB "
                                f"| {r['marginal_kib_per_viewer']:.1f} KiB |")
                finally:
                    for server in servers:
                        server.terminate()
                    for server in servers:
                        server.wait(timeout=60)
                    if database:
                        subprocess.run(["psql", admin, "-q", "-c", f"DROP DATABASE IF EXISTS {database} WITH (FORCE)"],
                                       check=False)
    finally:
        llm.terminate()
        llm.wait(timeout=15)
    print("\n".join(rows))


if __name__ == "__main__":
    sys.exit(main())
