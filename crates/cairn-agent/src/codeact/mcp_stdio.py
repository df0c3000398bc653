"""Cairn's client of stdio MCP servers, defined in the sandbox's kernel by
the agent (and importable on its own, for tests against other servers).

A server is a command the sandbox runs, speaking JSON-RPC messages, one per
line, on its standard input and output (MCP's stdio transport). It is
started on first use (`initialize`, then `notifications/initialized`) and
kept for the kernel's life; one that exited is started again. Its standard
error is kept (the last lines) to say why it failed, with any line of its
output that is not a message. Requests the server
makes are answered (`ping`) or refused; its notifications are ignored.

The raw `tools/list` and `tools/call` results go back to Cairn, which reads
them as it reads an HTTP server's.
"""

import collections
import json
import os
import select
import subprocess
import sys
import threading
import time

VERSION = "2025-06-18"
# How long a server has to answer one request.
TIMEOUT_SECS = 120


class McpError(RuntimeError):
    pass


class StdioServer:
    def __init__(self, name, command, env=None):
        self.name = name
        self.command = list(command)
        self.env = dict(env or {})
        self.process = None
        self.next_id = 1
        self.buffer = b""
        self.errors = collections.deque(maxlen=20)
        self.lock = threading.Lock()

    def _start(self):
        command = list(self.command)
        # `python` is the sandbox's interpreter, whatever PATH says.
        if command[0] in ("python", "python3"):
            command[0] = sys.executable
        environment = dict(os.environ)
        environment.update(self.env)
        try:
            self.process = subprocess.Popen(
                command,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                env=environment,
                start_new_session=True,
            )
        except OSError as error:
            raise McpError(f"the MCP server {self.name} could not be started ({' '.join(self.command)}): {error}")
        self.buffer = b""
        self.errors.clear()
        threading.Thread(target=self._keep_errors, args=(self.process.stderr,), daemon=True).start()
        info = {"name": "cairn", "version": "1"}
        self._request("initialize", {"protocolVersion": VERSION, "capabilities": {}, "clientInfo": info})
        self._send({"jsonrpc": "2.0", "method": "notifications/initialized"})

    def _keep_errors(self, stream):
        for line in iter(stream.readline, b""):
            self.errors.append(line.decode("utf-8", "replace").rstrip())

    def _why(self):
        said = "; ".join(line for line in self.errors if line)[-600:]
        code = self.process.poll() if self.process else None
        ended = f" (it exited with {code})" if code is not None else ""
        return f"{ended}{': ' + said if said else ''}"

    def _send(self, message):
        try:
            self.process.stdin.write(json.dumps(message).encode() + b"\n")
            self.process.stdin.flush()
        except (BrokenPipeError, OSError):
            raise McpError(f"the MCP server {self.name} stopped{self._why()}")

    def _read(self, deadline):
        """The next message the server sends."""
        out = self.process.stdout.fileno()
        while b"\n" not in self.buffer:
            left = deadline - time.monotonic()
            if left <= 0:
                raise McpError(f"the MCP server {self.name} did not answer within {TIMEOUT_SECS} s")
            ready, _, _ = select.select([out], [], [], left)
            if not ready:
                continue
            chunk = os.read(out, 65536)
            if not chunk:
                raise McpError(f"the MCP server {self.name} stopped{self._why()}")
            self.buffer += chunk
        line, self.buffer = self.buffer.split(b"\n", 1)
        line = line.strip()
        if not line:
            return None
        try:
            return json.loads(line)
        except ValueError:
            # Not a message (a server that prints to its output, which MCP
            # forbids): kept with its errors, to say why if it fails.
            self.errors.append(line[:200].decode("utf-8", "replace"))
            return None

    def _request(self, method, params):
        request_id = self.next_id
        self.next_id += 1
        self._send({"jsonrpc": "2.0", "id": request_id, "method": method, "params": params})
        deadline = time.monotonic() + TIMEOUT_SECS
        while True:
            message = self._read(deadline)
            if not isinstance(message, dict):
                continue
            if "method" in message:
                if "id" in message:
                    # The server asks something of the client.
                    if message["method"] == "ping":
                        self._send({"jsonrpc": "2.0", "id": message["id"], "result": {}})
                    else:
                        error = {"code": -32601, "message": f"{message['method']} is not supported by this client"}
                        self._send({"jsonrpc": "2.0", "id": message["id"], "error": error})
                continue
            if message.get("id") != request_id:
                # An answer to a request an interrupt abandoned.
                continue
            if "error" in message:
                said = (message.get("error") or {}).get("message", "an error")
                raise McpError(f"the MCP server {self.name} refused {method}: {said}")
            return message.get("result")

    def request(self, method, params):
        with self.lock:
            if self.process is None or self.process.poll() is not None:
                self._start()
            return self._request(method, params)

    def list_tools(self):
        return self.request("tools/list", {})

    def call_tool(self, tool, arguments):
        return self.request("tools/call", {"name": tool, "arguments": arguments})

    def stop(self):
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()


SERVERS = {}


def configure(servers):
    """The project's stdio servers: name -> {"command": [...], "env": {...}}.
    A server whose command or environment changed is stopped, to start
    anew."""
    for name, spec in servers.items():
        known = SERVERS.get(name)
        if known is not None and (known.command, known.env) == (list(spec["command"]), dict(spec.get("env") or {})):
            continue
        if known is not None:
            known.stop()
        SERVERS[name] = StdioServer(name, spec["command"], spec.get("env"))


def list_all(names):
    """Each server's `tools/list` result, or why it could not be listed."""
    listed = {}
    for name in names:
        try:
            listed[name] = {"result": SERVERS[name].list_tools()}
        except Exception as error:  # noqa: BLE001 - told to the agent, in words
            listed[name] = {"error": str(error)}
    return listed


def call(server, tool, arguments):
    """A `tools/call` result, or why the call failed."""
    try:
        return {"result": SERVERS[server].call_tool(tool, arguments)}
    except KeyboardInterrupt:
        raise
    except Exception as error:  # noqa: BLE001 - told to the agent, in words
        return {"error": str(error)}
