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
import shutil
import subprocess
import sys
from pathlib import Path

from live_server import LiveServer, call, sign_up

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
OWNER_EXCLUDED_OPERATIONS = ["delete_project", "delete_thread", "delete_me", "delete_user"]


def setup(base: str) -> dict[str, str]:
    """Accounts, a project with a viewer, a thread, a library file and an
    editor's API key: what the generated requests can reach."""
    tokens = {who: sign_up(base, who) for who in ["owner", "viewer"]}
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
        # The OpenAI-compatible API: an agent, and a thread to go on in.
        "model": "cairn",
        "X-Cairn-Thread-Id": thread,
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
    if caller == "owner":
        # The owner may delete the known project, thread and accounts, after
        # which every later request would only meet 404: the deletions are
        # fuzzed as the other callers (who are refused) and tested on their own.
        for operation in OWNER_EXCLUDED_OPERATIONS:
            command += ["--exclude-operation-id", operation]
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

    report_dir = Path(args.report_dir) if args.report_dir else None
    # The fuzzer is one client sending thousands of requests a minute.
    limits = {
        f"CAIRN__RATE_LIMIT__{name}": "1000000"
        for name in [
            "PER_USER_PER_MINUTE",
            "PER_API_KEY_PER_MINUTE",
            "PER_ADDRESS_PER_MINUTE",
            "SIGN_IN_FAILURES_PER_ACCOUNT",
            "SIGN_IN_FAILURES_PER_ADDRESS",
        ]
    }
    # Every run answers at its first step: the fuzzer's runs end at once.
    answer = ['```python\nfinal_answer("done")\n```']
    with LiveServer(args.cairn, llm=args.llm, replies=answer, env=limits) as server:
        report = report_dir or server.data / "report"
        report.mkdir(parents=True, exist_ok=True)
        known = setup(server.base)
        failed = []
        tokens = {"anonymous": None, "owner": known["owner"], "viewer": known["viewer"], "api_key": known["api_key"]}
        for caller in args.callers.split(","):
            if schemathesis(args.st, server.base, caller, tokens[caller], known, args, report) != 0:
                failed.append(caller)
        if server.exited() is not None:
            raise SystemExit(f"error: cairn exited with {server.exited()} during the run")
        if failed:
            # Raised, so the server's folder (log and reports) is kept.
            raise SystemExit(f"error: schemathesis found failures as {', '.join(failed)}; reports in {report}")
        print(f"schemathesis: no failures as {args.callers}")
        if report_dir is None:
            shutil.rmtree(report, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
