"""A live Cairn for the checks that drive it from outside (scripts/api_fuzz.py,
scripts/client_tests.py): a `cairn serve` on a free port of 127.0.0.1 with a
fresh data folder and, when given, the scripted LLM server, stopped when the
`with` block ends. The server's log is kept when the block fails.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

PASSWORD = "correct horse battery staple"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def call(base: str, method: str, path: str, body=None, token: str | None = None, form: dict | None = None):
    """One request during set-up; a refusal stops the check with its answer."""
    headers = {"Accept": "application/json"}
    data = None
    if form is not None:
        data = "&".join(f"{k}={urllib.request.quote(v)}" for k, v in form.items()).encode()
        headers["Content-Type"] = "application/x-www-form-urlencoded"
    elif body is not None:
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        headers["Content-Type"] = "application/octet-stream" if isinstance(body, bytes) else "application/json"
    if token:
        headers["Authorization"] = f"Bearer {token}"
    request = urllib.request.Request(base + path, data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            text = response.read()
    except urllib.error.HTTPError as error:
        raise SystemExit(f"setup: {method} {path} answered {error.code}: {error.read()[:500]!r}") from None
    return json.loads(text) if text else None


def sign_up(base: str, who: str) -> str:
    """Registers `who`@example.com and signs in; the access token."""
    email = f"{who}@example.com"
    call(base, "POST", "/api/v1/auth/register", {"email": email, "password": PASSWORD, "display_name": who})
    signed_in = call(
        base, "POST", "/api/v1/auth/token", form={"grant_type": "password", "username": email, "password": PASSWORD}
    )
    return signed_in["access_token"]


class LiveServer:
    """`with LiveServer(cairn, llm=…, replies=[…]) as server:` — `server.base`
    is its URL; `env` adds or overrides settings (`CAIRN__…`)."""

    def __init__(self, cairn: str, llm: str | None = None, replies: list[str] | None = None, env: dict | None = None):
        self.cairn, self.llm, self.replies, self.extra = cairn, llm, replies or [], env or {}
        self.data = Path(tempfile.mkdtemp(prefix="cairn-live-"))
        port = free_port()
        self.base = f"http://127.0.0.1:{port}"
        self.env = {
            "PATH": os.environ.get("PATH", ""),
            "HOME": os.environ.get("HOME", ""),
            "CAIRN__SERVER__BIND": f"127.0.0.1:{port}",
            "CAIRN__DATA_DIR": str(self.data / "data"),
            "CAIRN__LOG__LEVEL": "warn",
            "CAIRN__AUTH__PUBLIC_URL": self.base,
            "CAIRN__SANDBOX__POOL_SIZE": "0",
            "CAIRN__SANDBOX__WALL_TIME_SECS": "10",
            "CAIRN__SANDBOX__ALLOW_NETWORK": "false",
        }
        if os.environ.get("CAIRN_SANDBOX_PYTHON"):
            self.env["CAIRN__SANDBOX__PYTHON"] = os.environ["CAIRN_SANDBOX_PYTHON"]
        self.children: list[subprocess.Popen] = []
        self.server: subprocess.Popen | None = None

    def __enter__(self) -> "LiveServer":
        try:
            if self.llm:
                llm = subprocess.Popen([self.llm, *self.replies], stdout=subprocess.PIPE, text=True)
                self.children.append(llm)
                llm_url = llm.stdout.readline().strip() if llm.stdout else ""
                self.env["CAIRN__LLM__PROVIDERS"] = (
                    f'[{{name="scripted",kind="openai-compatible",base_url="{llm_url}/v1",models=[{{name="m"}}]}}]'
                )
                self.env["CAIRN__LLM__EMBEDDING_MODEL"] = "scripted/embedder"
            self.env.update(self.extra)
            self.log = open(self.data / "cairn.log", "w")
            self.server = subprocess.Popen([self.cairn, "serve"], env=self.env, stdout=self.log, stderr=subprocess.STDOUT)
            self.children.append(self.server)
            self.wait_ready()
        except BaseException:
            self.__exit__(*sys.exc_info())
            raise
        return self

    def wait_ready(self) -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.server is not None and self.server.poll() is not None:
                raise SystemExit(f"cairn exited with {self.server.returncode} while starting")
            try:
                with urllib.request.urlopen(self.base + "/readyz", timeout=2):
                    return
            except (urllib.error.URLError, ConnectionError, OSError):
                time.sleep(0.2)
        raise SystemExit("cairn did not become ready within 60 s")

    def exited(self) -> int | None:
        """The server's exit code, if it stopped."""
        return self.server.poll() if self.server else None

    def __exit__(self, kind, error, trace) -> None:
        for child in self.children:
            child.terminate()
        for child in self.children:
            try:
                child.wait(timeout=20)
            except subprocess.TimeoutExpired:
                child.kill()
        if kind is None:
            shutil.rmtree(self.data, ignore_errors=True)
        else:
            print(f"the server's log is in {self.data / 'cairn.log'}", file=sys.stderr)
