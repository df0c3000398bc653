"""Schemathesis against a live Cairn: generated, hostile and stateful input
for every operation of the OpenAPI document, as four callers — anonymous, a
project's owner (also the deployment's admin), a viewer of that project, and
an editor's API key. The run passes when the server answers no request with
an error of its own (5xx) and every answer keeps to the document: a
documented status, content type, headers and body schema.

    python scripts/api_fuzz.py --cairn target/debug/cairn [--examples 25]

Runs from scripts/test.sh in the tools venv (schemathesis is pinned in
scripts/requirements-tools.txt). Starts its own server on a free port of
127.0.0.1 with a fresh data folder, with sandboxes (CAIRN_SANDBOX_PYTHON)
and the scripted LLM server (--llm) when given, and stops both at the end.
Reports go to --report-dir (JUnit XML and the failing cases as a cassette).
"""

from __future__ import annotations

import argparse
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
CHECKS = ",".join(
    [
        "not_a_server_error",
        "status_code_conformance",
        "content_type_conformance",
        "response_headers_conformance",
        "response_schema_conformance",
    ]
)
# The WebSocket upgrade is not an HTTP exchange schemathesis can make.
EXCLUDED_PATHS = ["/api/v1/threads/{thread_id}/events/ws"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def call(base: str, method: str, path: str, body=None, token: str | None = None, form: dict | None = None):
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
        with urllib.request.urlopen(request, timeout=30) as response:
            text = response.read()
    except urllib.error.HTTPError as error:
        raise SystemExit(f"setup: {method} {path} answered {error.code}: {error.read()[:500]!r}") from None
    return json.loads(text) if text else None


def wait_ready(base: str, server: subprocess.Popen) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise SystemExit(f"cairn exited with {server.returncode} while starting")
        try:
            with urllib.request.urlopen(base + "/readyz", timeout=2):
                return
        except (urllib.error.URLError, ConnectionError, OSError):
            time.sleep(0.2)
    raise SystemExit("cairn did not become ready within 60 s")


def setup(base: str) -> dict[str, str]:
    """Accounts, a project with a viewer, a thread, a library file and an
    editor's API key: what the generated requests can reach."""
    tokens = {}
    for who in ["owner", "viewer"]:
        email = f"{who}@example.com"
        call(base, "POST", "/api/v1/auth/register", {"email": email, "password": PASSWORD, "display_name": who})
        signed_in = call(
            base, "POST", "/api/v1/auth/token", form={"grant_type": "password", "username": email, "password": PASSWORD}
        )
        tokens[who] = signed_in["access_token"]
    project = call(base, "POST", "/api/v1/projects", {"name": "Fuzzed"}, tokens["owner"])["id"]
    call(base, "POST", f"/api/v1/projects/{project}/members", {"email": "viewer@example.com", "role": "viewer"}, tokens["owner"])
    thread = call(base, "POST", f"/api/v1/projects/{project}/threads", {"title": "Fuzzed"}, tokens["owner"])["id"]
    file = call(
        base, "PUT", f"/api/v1/projects/{project}/files/content?path=data/sales.csv", b"month,sales\n1,10\n", tokens["owner"]
    )["id"]
    link = call(base, "POST", f"/api/v1/projects/{project}/files/{file}/links", {}, tokens["owner"])["url"]
    posted = call(base, "POST", f"/api/v1/threads/{thread}/messages", {"content": "Hello", "wait": True}, tokens["owner"])
    key = call(
        base, "POST", "/api/v1/api-keys", {"project_id": project, "role": "editor", "name": "fuzz"}, tokens["owner"]
    )
    viewer = call(base, "GET", "/api/v1/me", token=tokens["viewer"])["id"]
    tokens["api_key"] = key["token"]
    known = {
        "project_id": project,
        "thread_id": thread,
        "file_id": file,
        "run_id": posted["run"]["id"],
        "key_id": key["id"],
        "user_id": viewer,
        "token": link.rsplit("/", 1)[-1],
    }
    return {"known": known, **tokens}


def schemathesis(st: str, base: str, caller: str, token: str | None, known: dict[str, str], args, report: Path) -> int:
    """One schemathesis run as `caller`; its exit code."""
    config = report / f"{caller}.toml"
    # Operations on the known project, thread, file, run, key, member and
    # link reach the handlers' depths; every other parameter (and these, in
    # the negative cases) is generated.
    config.write_text("[parameters]\n" + "".join(f'{name} = "{value}"\n' for name, value in known["known"].items()))
    command = [
        st,
        "--config-file",
        str(config),
        "run",
        f"{base}/api/openapi.json",
        "--url",
        base,
        "--checks",
        CHECKS,
        "--max-examples",
        str(args.examples),
        "--phases",
        "examples,coverage,fuzzing,stateful",
        # One worker: Hypothesis's lambda descriptions are not thread-safe
        # on Python 3.11 (it fails with "AST constructor recursion depth").
        "--workers",
        "1",
        "--seed",
        str(args.seed),
        "--request-timeout",
        "30",
        "--generation-database",
        "none",
        "--suppress-health-check",
        "all",
        "--no-color",
        "--report",
        "junit,vcr",
        "--report-junit-path",
        str(report / f"{caller}.junit.xml"),
        "--report-vcr-path",
        str(report / f"{caller}.cassette.yaml"),
    ]
    for path in EXCLUDED_PATHS:
        command += ["--exclude-path", path]
    if token:
        command += ["--header", f"Authorization: Bearer {token}"]
    print(f"==> schemathesis as {caller} ({args.examples} examples per operation)", flush=True)
    return subprocess.run(command, check=False).returncode


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cairn", required=True, help="the cairn binary")
    parser.add_argument("--st", default=shutil.which("st") or "st", help="schemathesis's command")
    parser.add_argument("--llm", help="the scripted LLM server binary (so that posted messages start runs)")
    parser.add_argument("--examples", type=int, default=25, help="generated cases per operation and phase")
    parser.add_argument("--seed", type=int, default=20261129)
    parser.add_argument("--report-dir", default=None)
    # The owner last: its requests may revoke the key and remove the viewer.
    parser.add_argument("--callers", default="anonymous,api_key,viewer,owner")
    args = parser.parse_args()

    data = Path(tempfile.mkdtemp(prefix="cairn-fuzz-"))
    report = Path(args.report_dir) if args.report_dir else data / "report"
    report.mkdir(parents=True, exist_ok=True)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = {
        "PATH": os.environ.get("PATH", ""),
        "HOME": os.environ.get("HOME", ""),
        "CAIRN__SERVER__BIND": f"127.0.0.1:{port}",
        "CAIRN__DATA_DIR": str(data / "data"),
        "CAIRN__LOG__LEVEL": "warn",
        "CAIRN__AUTH__PUBLIC_URL": base,
        # The fuzzer is one client sending thousands of requests a minute.
        "CAIRN__RATE_LIMIT__PER_USER_PER_MINUTE": "1000000",
        "CAIRN__RATE_LIMIT__PER_API_KEY_PER_MINUTE": "1000000",
        "CAIRN__RATE_LIMIT__PER_ADDRESS_PER_MINUTE": "1000000",
        "CAIRN__RATE_LIMIT__SIGN_IN_FAILURES_PER_ACCOUNT": "1000000",
        "CAIRN__RATE_LIMIT__SIGN_IN_FAILURES_PER_ADDRESS": "1000000",
        "CAIRN__SANDBOX__POOL_SIZE": "0",
        "CAIRN__SANDBOX__WALL_TIME_SECS": "10",
        "CAIRN__SANDBOX__ALLOW_NETWORK": "false",
    }
    if os.environ.get("CAIRN_SANDBOX_PYTHON"):
        env["CAIRN__SANDBOX__PYTHON"] = os.environ["CAIRN_SANDBOX_PYTHON"]
    children = []
    passed = False
    try:
        if args.llm:
            llm = subprocess.Popen([args.llm], stdout=subprocess.PIPE, text=True)
            children.append(llm)
            llm_url = llm.stdout.readline().strip() if llm.stdout else ""
            env["CAIRN__LLM__PROVIDERS"] = (
                f'[{{name="scripted",kind="openai-compatible",base_url="{llm_url}/v1",models=[{{name="m"}}]}}]'
            )
            env["CAIRN__LLM__EMBEDDING_MODEL"] = "scripted/embedder"
        log = open(data / "cairn.log", "w")
        server = subprocess.Popen([args.cairn, "serve"], env=env, stdout=log, stderr=subprocess.STDOUT)
        children.append(server)
        wait_ready(base, server)
        known = setup(base)
        failed = []
        tokens = {"anonymous": None, "owner": known["owner"], "viewer": known["viewer"], "api_key": known["api_key"]}
        for caller in args.callers.split(","):
            if schemathesis(args.st, base, caller, tokens[caller], known, args, report) != 0:
                failed.append(caller)
        if server.poll() is not None:
            print(f"error: cairn exited with {server.returncode} during the run; its log is in {data / 'cairn.log'}")
            return 1
        if failed:
            print(f"error: schemathesis found failures as {', '.join(failed)}; reports in {report}")
            log.flush()
            return 1
        print(f"schemathesis: no failures as {args.callers}")
        passed = True
        return 0
    finally:
        for child in children:
            child.terminate()
        for child in children:
            try:
                child.wait(timeout=20)
            except subprocess.TimeoutExpired:
                child.kill()
        # Kept after a failure: the server's log and the failing cases.
        if passed and not args.report_dir:
            shutil.rmtree(data, ignore_errors=True)
        elif not passed:
            print(f"the server's log and the reports are in {data}", file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
