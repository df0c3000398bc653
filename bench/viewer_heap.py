#!/usr/bin/env python3
"""The heap an idle viewer costs the server, counted by a heap profiler
rather than read off the resident set: Cairn (all-in-one, SQLite; built with
`--features system-allocator`, as valgrind's massif sees malloc only) runs
under massif; N viewers (the Rust client, `viewers_client`) open one
thread's event stream; a detailed heap snapshot is taken once the first
tenth is connected and settled, and another once all are. The heap added
between the two, divided by the viewers added, is what each idle viewer
holds: the bytes the program asked for (`useful`), and with the
allocator's bookkeeping as massif estimates it (`with overhead`). The
resident-set figures of bench/viewers.py include what the allocator has not
yet returned to the system; these do not depend on when it does.

Usage: bench/viewer_heap.py CAIRN_SYSTEM_ALLOC VIEWERS_CLIENT [--viewers N] [--ws]
    [--reuse | --upload] [--log-level L] [--floor SSE_FLOOR]
(--ws: half the viewers on the WebSocket, half on SSE; else all SSE;
--reuse: each SSE viewer first asks for /api/v1/me in HTTP/1.1 and opens
its stream on the same connection, as a reused connection does;
--upload: the same after a chunked request body (16 KiB, read whole by the
server and refused with 400, so nothing is stored);
--log-level: warn by default, as bench/viewers.py runs the servers;
--floor: also a bare SSE router, the `sse_floor` example, measured the
same way: on Cairn's server loop with the Rust viewers' HTTP/1.0 requests
and with HTTP/1.1 ones held open as browsers send them (what the HTTP stack
alone holds per idle SSE connection), and on axum::serve).
Prints a Markdown table, a row per server, and the allocation sites that
grew most. Needs
valgrind (with vgdb). Every process it starts it stops by its process id.
"""

import argparse
import os
import re
import socket
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from me import PASSWORD  # noqa: E402
from startup import clean_env, free_port, ready  # noqa: E402
from viewers import more_files, post  # noqa: E402


def snapshot(pid, path):
    """A detailed massif snapshot of the running server, through vgdb."""
    if os.path.exists(path):
        os.remove(path)
    subprocess.run(["vgdb", f"--pid={pid}", "detailed_snapshot", path], check=True, capture_output=True, timeout=300)
    deadline = time.time() + 60
    while not (os.path.exists(path) and os.path.getsize(path) > 0):
        if time.time() > deadline:
            raise RuntimeError("massif wrote no snapshot")
        time.sleep(0.2)
    time.sleep(0.5)
    return open(path).read()


def totals(text):
    heap = int(re.search(r"^mem_heap_B=(\d+)", text, re.M).group(1))
    extra = int(re.search(r"^mem_heap_extra_B=(\d+)", text, re.M).group(1))
    return heap, extra


def sites(text):
    """Bytes by allocation site: the frame below the allocator's own ones
    (Rust's alloc and raw_vec, hashbrown and bytes growth, …) in each path of
    the snapshot's tree, summed over paths."""
    plumbing = re.compile(r"alloc::|raw_vec|__rust|hashbrown::raw|bytes::bytes_mut::BytesMut::reserve|<alloc::|"
                          r"malloc|realloc|calloc|core::ptr::|std::alloc")
    by_site = {}
    stack = []
    for line in text.splitlines():
        match = re.match(r"^( *)n(\d+): (\d+) (?:0x[0-9A-F]+: )?(.*)$", line)
        if not match:
            continue
        depth, children, size, name = len(match.group(1)), int(match.group(2)), int(match.group(3)), match.group(4)
        stack[depth:] = [name]
        if children == 0 and depth > 0:
            site = next((frame for frame in stack[1:] if not plumbing.search(frame)), name)
            site = re.sub(r" \(.*\)$", "", re.sub(r"::h[0-9a-f]{16}", "", site))
            by_site[site] = by_site.get(site, 0) + size
    return by_site


def measure(command, env, port, viewers, client, cairn):
    """Runs `command` under massif and returns the two snapshots (first
    tenth, all) and the viewers added between them; `client(token, thread)`
    is the viewers' command line. With `cairn`, signs up and opens a thread
    first; the floor server takes any request."""
    with tempfile.TemporaryDirectory(prefix="cairn-bench-heap-") as work:
        out = os.path.join(work, "massif.out")
        server = subprocess.Popen(
            ["valgrind", "--tool=massif", "--vgdb=yes", "--threshold=0.2", f"--massif-out-file={out}", *command],
            env=env, cwd=work, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        held = None
        try:
            deadline = time.time() + 600
            probe = f"http://127.0.0.1:{port}/readyz"
            while not (ready(probe) if cairn else listening(port)):
                if server.poll() is not None or time.time() > deadline:
                    raise RuntimeError(f"{command[0]} did not start under valgrind")
                time.sleep(0.5)
            token, thread = "none", NO_THREAD
            if cairn:
                base = f"http://127.0.0.1:{port}/api/v1"
                post(f"{base}/auth/register", {"email": "heap@example.com", "password": PASSWORD, "display_name": "H"})
                token = post(f"{base}/auth/token", {"grant_type": "password", "username": "heap@example.com",
                                                    "password": PASSWORD}, form=True)["access_token"]
                project = post(f"{base}/projects", {"name": "P"}, False, token)["id"]
                thread = post(f"{base}/projects/{project}/threads", {"title": "T"}, False, token)["id"]
            held = subprocess.Popen(client(token, thread), stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
            first = max(1, viewers // 10)
            assert held.stdout.readline().strip() == "first"
            time.sleep(10)
            before = snapshot(server.pid, os.path.join(work, "before"))
            held.stdin.write("go\n")
            held.stdin.flush()
            assert held.stdout.readline().strip() == "connected"
            time.sleep(20)
            after = snapshot(server.pid, os.path.join(work, "after"))
        finally:
            if held is not None and held.poll() is None:
                held.kill()
                held.wait()
            server.terminate()
            server.wait(timeout=120)
    return before, after, viewers - first


# The thread the floor's viewers name: it takes any request.
NO_THREAD = "00000000-0000-0000-0000-000000000000"

HOLDER = """
import asyncio, sys
port, n = int(sys.argv[1]), int(sys.argv[2])
async def one():
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"GET /events HTTP/1.1\\r\\nHost: 127.0.0.1\\r\\nAccept: text/event-stream\\r\\n\\r\\n")
    await writer.drain()
    await reader.read(4096)
    await asyncio.sleep(3600)
async def main():
    first = max(1, n // 10)
    held = [asyncio.create_task(one()) for _ in range(first)]
    await asyncio.sleep(3)
    print("first", flush=True)
    await asyncio.to_thread(sys.stdin.readline)
    held += [asyncio.create_task(one()) for _ in range(n - first)]
    await asyncio.sleep(5)
    print("connected", flush=True)
    await asyncio.sleep(3600)
asyncio.run(main())
"""


def listening(port):
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
        return True
    except OSError:
        return False


def report(label, before, after, added):
    (heap_a, extra_a), (heap_b, extra_b) = totals(before), totals(after)
    useful = (heap_b - heap_a) / added / 1024
    overhead = (heap_b + extra_b - heap_a - extra_a) / added / 1024
    grown = sites(after)
    for site, size in sites(before).items():
        grown[site] = grown.get(site, 0) - size
    lines = [f"| {label} | {useful:.2f} KiB | {overhead:.2f} KiB |", "", f"{label}: what grew, per viewer added "
             "(sites over 64 bytes):"]
    for site, size in sorted(grown.items(), key=lambda item: -item[1]):
        if size / added >= 64:
            lines.append(f"  {size / added / 1024:7.2f} KiB  {site}")
    return lines


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("cairn")
    parser.add_argument("client")
    parser.add_argument("--viewers", type=int, default=1000)
    parser.add_argument("--ws", action="store_true")
    parser.add_argument("--reuse", action="store_true",
                        help="each SSE viewer asks for /api/v1/me first and opens its stream on the same connection")
    parser.add_argument("--upload", action="store_true",
                        help="each SSE viewer sends a chunked body first and opens its stream on the same connection")
    parser.add_argument("--log-level", default="warn", help="log.level (info, the default, keeps a span per request)")
    parser.add_argument("--floor", help="the bare SSE server (sse_floor example), measured the same way")
    args = parser.parse_args()
    more_files()
    n = str(args.viewers)
    port = free_port()
    env = clean_env({
        "CAIRN__SERVER__BIND": f"127.0.0.1:{port}",
        "CAIRN__LOG__LEVEL": args.log_level,
        "CAIRN__SANDBOX__POOL_SIZE": "0",
        "CAIRN__RATE_LIMIT__PER_USER_PER_MINUTE": "1000000000",
        "CAIRN__RATE_LIMIT__PER_ADDRESS_PER_MINUTE": "1000000000",
        "CAIRN__LLM__PROVIDERS": '[{name="scripted",kind="openai-compatible",base_url="http://127.0.0.1:9/v1",'
                                 'models=[{name="m"}]}]',
    })
    ports = f"{port},{port}" if args.ws else str(port)
    kind = "half SSE, half WebSocket" if args.ws else "SSE"
    reuse = ["reuse"] if args.reuse else ["upload"] if args.upload else []
    if args.reuse:
        kind += " after a request on the same connection"
    elif args.upload:
        kind += " after a chunked request body on the same connection"
    # (label, server command, its environment, its port, the viewers, whether it is Cairn)
    series = [(f"Cairn ({kind}, log.level {args.log_level})", [args.cairn, "serve"], env, port,
               lambda token, thread: [args.client, ports, token, thread, n, *reuse], True)]
    if args.floor:
        # The Rust viewers ask in HTTP/1.0; browsers in HTTP/1.1 (chunked).
        # The bare router is served by Cairn's server loop, and by
        # axum::serve for comparison.
        for label, http11, loop in (("bare SSE, Cairn's server loop (the floor)", False, []),
                                    ("bare SSE, Cairn's server loop, HTTP/1.1 requests", True, []),
                                    ("bare SSE, axum::serve", False, ["axum-serve"])):
            floor_port = free_port()
            at = str(floor_port)
            viewer = [sys.executable, "-c", HOLDER, at, n] if http11 else [args.client, at, "none", NO_THREAD, n]
            series.append((label, [args.floor, at, *loop], clean_env({}), floor_port,
                           lambda token, thread, viewer=viewer: viewer, False))
    rows = ["| server, streams | heap per idle viewer (useful) | with the allocator's overhead |", "|---|---|---|"]
    notes = []
    for label, command, server_env, server_port, client, cairn in series:
        measured = report(label, *measure(command, server_env, server_port, args.viewers, client, cairn))
        rows.append(measured[0])
        notes += measured[1:]
    print("\n".join(rows + notes))
    return 0


if __name__ == "__main__":
    sys.exit(main())
