"""Cairn's kernel driver: runs inside the sandbox, executes Python like a
notebook (state persists between executions) and speaks a framed JSON
protocol with the host.

Frames are a 4-byte big-endian length followed by that many bytes of UTF-8
JSON, on the process's original stdin (host to kernel) and stdout (kernel to
host). The driver then points file descriptors 1 and 2 at pipes of its own,
so everything the code prints -- through `print`, `os.write(1, ...)` or a
child process -- is captured and sent on as `stream` frames, and can never
corrupt the protocol.

Host to kernel:  {"type": "execute", "id": ..., "code": ...}
                 {"type": "shell", "id": ..., "command": ...}  (a /bin/sh command in the sandbox)
                 {"type": "interrupt"}  (raises KeyboardInterrupt in the running code)
                 {"type": "tool_result", "call": ..., "ok": bool, "value"|"error": ...}
Kernel to host:  {"type": "ready", "python": ...}
                 {"type": "stream", "id": ..., "name": "stdout"|"stderr", "text": ...}
                 {"type": "display", "id": ..., "data": {mime: content}}
                 {"type": "result", "id": ..., "data": {mime: content}}
                 {"type": "error", "id": ..., "ename": ..., "evalue": ..., "traceback": [...]}
                 {"type": "tool_call", "id": ..., "call": ..., "name": ..., "args": ..., "kwargs": ...}
                 {"type": "done", "id": ..., "ok": bool, "exit_code": int (shell only)}
"""

import array
import ast
import base64
import fcntl
import io
import json
import os
import queue
import select
import signal
import struct
import sys
import termios
import threading
import traceback

MAIN_PID = os.getpid()
# The interpreter starts without `site` (-S: much faster); the host names the
# folders with installed packages as arguments instead.
sys.path.extend(arg for arg in sys.argv[1:] if os.path.isdir(arg))
PROTO_IN = os.fdopen(os.dup(0), "rb", buffering=0)
PROTO_OUT = os.fdopen(os.dup(1), "wb", buffering=0)
SEND_LOCK = threading.Lock()
CURRENT = {"id": None}
MARKER = ("\x00cairn-flush-" + os.urandom(16).hex() + "\x00").encode()


def send(message):
    if os.getpid() != MAIN_PID:
        os._exit(1)
    data = json.dumps(message, default=repr).encode()
    with SEND_LOCK:
        PROTO_OUT.write(struct.pack(">I", len(data)) + data)


def receive():
    header = PROTO_IN.read(4)
    if len(header) < 4:
        return None
    (length,) = struct.unpack(">I", header)
    data = b""
    while len(data) < length:
        chunk = PROTO_IN.read(length - len(data))
        if not chunk:
            return None
        data += chunk
    return json.loads(data)


class Capture(threading.Thread):
    """Forwards one of the kernel's output pipes as stream frames."""

    def __init__(self, fd, name):
        super().__init__(daemon=True)
        self.fd, self.name = fd, name
        self.flushed = threading.Event()
        # Held while a chunk read from the pipe is being forwarded.
        self.busy = threading.Lock()
        self.pending = b""

    def unread(self):
        count = array.array("i", [0])
        fcntl.ioctl(self.fd, termios.FIONREAD, count)
        return count[0]

    def run(self):
        # Wait without consuming, then read and forward under the lock: bytes
        # are always either still in the pipe or being forwarded under `busy`,
        # which is what lets `flush_outputs` know when everything was sent.
        while True:
            select.select([self.fd], [], [])
            with self.busy:
                chunk = os.read(self.fd, 65536)
                if not chunk:
                    return
                self.pending = self.forward(self.pending + chunk)

    def forward(self, pending):
            while True:
                at = pending.find(MARKER)
                text, rest = (pending, b"") if at < 0 else (pending[:at], pending[at + len(MARKER):])
                # Keep a possibly cut marker or UTF-8 character for the next read.
                keep = 0
                if at < 0:
                    for n in range(min(len(MARKER) - 1, len(text)), 0, -1):
                        if MARKER.startswith(text[-n:]):
                            keep = n
                            break
                    if keep == 0:
                        for n in range(1, 4):
                            if len(text) >= n and (text[-n] & 0xC0) == 0xC0:
                                keep = n
                                break
                emit = text[: len(text) - keep] if keep else text
                if emit:
                    send({"type": "stream", "id": CURRENT["id"], "name": self.name,
                          "text": emit.decode("utf-8", "replace")})
                if at < 0:
                    return text[len(text) - keep:] if keep else b""
                pending = rest
                self.flushed.set()


def redirect(fd, name):
    read_end, write_end = os.pipe()
    os.dup2(write_end, fd)
    os.close(write_end)
    capture = Capture(read_end, name)
    capture.start()
    return capture


CAPTURES = [redirect(1, "stdout"), redirect(2, "stderr")]
devnull = os.open(os.devnull, os.O_RDONLY)
os.dup2(devnull, 0)
sys.stdout = io.TextIOWrapper(os.fdopen(1, "wb", buffering=0), encoding="utf-8", line_buffering=True, write_through=True)
sys.stderr = io.TextIOWrapper(os.fdopen(2, "wb", buffering=0), encoding="utf-8", line_buffering=True, write_through=True)
sys.stdin = io.TextIOWrapper(os.fdopen(0, "rb"), encoding="utf-8")


def flush_outputs():
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except Exception:  # noqa: BLE001 - user code may have replaced the stream
            pass
    # Fast path: nothing left in either pipe and nothing half-forwarded, so
    # every byte the code wrote has been sent.
    quiet = True
    for capture in CAPTURES:
        with capture.busy:
            if capture.unread() or capture.pending:
                quiet = False
    if quiet:
        return
    # Otherwise mark the end of this execution's output in each pipe and wait
    # for the marker to come through.
    for capture, fd in zip(CAPTURES, (1, 2)):
        capture.flushed.clear()
        os.write(fd, MARKER)
    for capture in CAPTURES:
        capture.flushed.wait(timeout=5)


def rich(value):
    """The richest representations of a value, by MIME type."""
    data = {}
    for method, mime in (("_repr_png_", "image/png"), ("_repr_html_", "text/html"), ("_repr_markdown_", "text/markdown")):
        fn = getattr(value, method, None)
        if callable(fn):
            try:
                out = fn()
            except Exception:  # noqa: BLE001
                out = None
            if out is not None:
                data[mime] = base64.b64encode(out).decode() if isinstance(out, bytes) else out
    data["text/plain"] = repr(value)
    return data


def display(value):
    """Shows a value as a rich output of the current execution."""
    send({"type": "display", "id": CURRENT["id"], "data": rich(value)})


def show_figures():
    plt = sys.modules.get("matplotlib.pyplot")
    if plt is None:
        return
    for number in plt.get_fignums():
        figure = plt.figure(number)
        buffer = io.BytesIO()
        figure.savefig(buffer, format="png", bbox_inches="tight")
        send({"type": "display", "id": CURRENT["id"],
              "data": {"image/png": base64.b64encode(buffer.getvalue()).decode(), "text/plain": repr(figure)}})
    plt.close("all")


def forked_child():
    # A process the code forks must never speak the protocol: the host would
    # read its frames as the kernel's. It gets no protocol, and leaves when
    # control comes back to the driver.
    for handle in (PROTO_IN, PROTO_OUT):
        try:
            handle.close()
        except OSError:
            pass


os.register_at_fork(after_in_child=forked_child)

EXECUTIONS = queue.Queue()
TOOL_RESULTS = queue.Queue()
TOOL_LOCK = threading.Lock()


def dispatch():
    """Reads frames from the host while code runs: executions queue up,
    interrupts signal the main thread at once, tool results wake their call."""
    while True:
        message = receive()
        if message is None:
            EXECUTIONS.put(None)
            TOOL_RESULTS.put(None)
            return
        kind = message.get("type")
        if kind in ("execute", "shell"):
            EXECUTIONS.put(message)
        elif kind == "interrupt":
            os.kill(os.getpid(), signal.SIGINT)
        elif kind == "tool_result":
            TOOL_RESULTS.put(message)


def call_tool(name, /, *args, **kwargs):
    """Calls a host tool and returns its result (the tool bridge). `name` is
    positional-only, so a tool may have an argument called `name` too."""
    call = os.urandom(16).hex()
    with TOOL_LOCK:
        send({"type": "tool_call", "id": CURRENT["id"], "call": call, "name": name, "args": args, "kwargs": kwargs})
        reply = TOOL_RESULTS.get()
        # A result for a call an interrupt abandoned is not this call's.
        while reply is not None and reply.get("call") != call:
            reply = TOOL_RESULTS.get()
    if reply is None:
        raise SystemExit(0)
    if reply.get("ok"):
        return reply.get("value")
    raise RuntimeError(f"tool {name} failed: {reply.get('error')}")


NAMESPACE = {"__name__": "__main__", "display": display, "call_tool": call_tool}


def execute(code):
    tree = ast.parse(code, "<cell>", "exec")
    last = None
    if tree.body and isinstance(tree.body[-1], ast.Expr):
        last = ast.Expression(tree.body.pop().value)
    exec(compile(tree, "<cell>", "exec"), NAMESPACE)
    if last is not None:
        value = eval(compile(last, "<cell>", "eval"), NAMESPACE)
        if value is not None:
            NAMESPACE["_"] = value
            return value
    return None


def run_shell(command):
    """Runs a shell command with the kernel's output pipes, so its output
    streams like any other; an interrupt stops it."""
    import subprocess

    try:
        process = subprocess.Popen(["/bin/sh", "-c", command], stdin=subprocess.DEVNULL, start_new_session=True)
        try:
            code = process.wait()
        except KeyboardInterrupt:
            os.killpg(process.pid, signal.SIGKILL)
            code = process.wait()
    except OSError as error:
        print(f"cannot run the command: {error}", file=sys.stderr)
        code = 127
    flush_outputs()
    send({"type": "done", "id": CURRENT["id"], "ok": code == 0, "exit_code": code})


def start_egress_relay():
    """With network allowed, the sandbox still has no interface: the host's
    egress proxy listens on a Unix socket mounted in, and this relays
    127.0.0.1:3128 (where HTTP_PROXY points) to it."""
    path = os.environ.get("CAIRN_EGRESS")
    if not path:
        return
    import socket

    server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server.bind(("127.0.0.1", 3128))
    server.listen(64)

    def pump(source, target):
        try:
            while True:
                data = source.recv(65536)
                if not data:
                    break
                target.sendall(data)
        except OSError:
            pass
        finally:
            try:
                target.shutdown(socket.SHUT_WR)
            except OSError:
                pass

    def serve():
        while True:
            try:
                client, _ = server.accept()
                upstream = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                upstream.connect(path)
            except OSError:
                continue
            threading.Thread(target=pump, args=(client, upstream), daemon=True).start()
            threading.Thread(target=pump, args=(upstream, client), daemon=True).start()

    threading.Thread(target=serve, daemon=True).start()


def main():
    signal.signal(signal.SIGINT, signal.default_int_handler)
    start_egress_relay()
    threading.Thread(target=dispatch, daemon=True).start()
    send({"type": "ready", "python": sys.version.split()[0], "pid": os.getpid()})
    while True:
        message = EXECUTIONS.get()
        if message is None:
            return
        CURRENT["id"] = message.get("id")
        if message.get("type") == "shell":
            run_shell(message.get("command", ""))
            continue
        ok = True
        result = None
        try:
            result = execute(message.get("code", ""))
        except KeyboardInterrupt:
            ok = False
            send({"type": "error", "id": CURRENT["id"], "ename": "KeyboardInterrupt",
                  "evalue": "the execution was interrupted", "traceback": []})
        except BaseException as error:  # noqa: BLE001 - everything the code raises is the code's error
            ok = False
            frames = traceback.format_exception(type(error), error, error.__traceback__)
            # Drop the driver's own frames: show the user's code only.
            frames = [f for f in frames if "cairn-kernel-driver" not in f and __file__ not in f]
            send({"type": "error", "id": CURRENT["id"], "ename": type(error).__name__,
                  "evalue": str(error), "traceback": frames})
            if isinstance(error, SystemExit):
                flush_outputs()
                send({"type": "done", "id": CURRENT["id"], "ok": False})
                return
        try:
            show_figures()
        except Exception:  # noqa: BLE001
            pass
        flush_outputs()
        if result is not None:
            send({"type": "result", "id": CURRENT["id"], "data": rich(result)})
        send({"type": "done", "id": CURRENT["id"], "ok": ok})


if __name__ == "__main__":
    main()
