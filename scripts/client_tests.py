"""The standards Cairn speaks, driven by their own official clients against a
live server: OpenAI's chat completions with the `openai` Python SDK,
webhooks checked by a receiver on 127.0.0.1 that verifies them with the
`standardwebhooks` package (Standard Webhooks' own library), Cairn's MCP
server used by the official MCP Python SDK's client, an MCP server built
with that SDK whose tool Cairn's agent calls from its sandbox, and a Python
and a
TypeScript client generated from docs/openapi.json by standard generators
(openapi-python-client; openapi-typescript with openapi-fetch), each
driving clients/python_smoke.py or clients/typescript/smoke.ts.

    python scripts/client_tests.py --cairn target/debug/cairn --llm target/debug/examples/scripted_llm

Runs from scripts/test.sh in the tools venv (the clients are pinned in
scripts/requirements-tools.txt). Starts its own server (scripts/live_server.py)
with sandboxes and the scripted LLM server, whose every reply computes 6 × 7
and answers. Exits non-zero, naming the check, on the first failure.
"""

from __future__ import annotations

import argparse
import http.server
import importlib.util
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

from live_server import LiveServer, call, free_port, sign_up

REPLY = 'Let me compute.\n```python\nprint(6 * 7)\nfinal_answer("The answer is 42.")\n```'


def check(condition: bool, what: str) -> None:
    if not condition:
        raise AssertionError(what)


def openai_sdk(base: str, key: str, token: str) -> None:
    """The official `openai` SDK: models, a completion, a stream with the
    agent's steps going on in the same thread, and its error classes."""
    import openai

    client = openai.OpenAI(base_url=f"{base}/v1", api_key=key, max_retries=0)
    ids = [model.id for model in client.models.list()]
    check(ids[:3] == ["cairn", "cairn-plan", "cairn:scripted/m"] and "agent:writer" in ids, f"models listed: {ids}")
    check(client.models.retrieve("cairn-plan").owned_by == "cairn", "a model retrieved")

    raw = client.chat.completions.with_raw_response.create(
        model="cairn", messages=[{"role": "user", "content": "What is 6 times 7?"}]
    )
    thread = raw.headers["x-cairn-thread-id"]
    completion = raw.parse()
    check(completion.choices[0].message.content == "The answer is 42.", f"the answer: {completion}")
    check(completion.choices[0].finish_reason == "stop", "the finish reason")
    check(completion.usage is not None and completion.usage.total_tokens > 0, f"the usage: {completion.usage}")

    stream = client.chat.completions.create(
        model="cairn:scripted/m",
        messages=[{"role": "user", "content": "And again?"}],
        stream=True,
        stream_options={"include_usage": True},
        reasoning_effort="low",
        extra_headers={"X-Cairn-Thread-Id": thread},
    )
    content, reasoning, usage, finish = "", "", None, []
    for chunk in stream:
        usage = chunk.usage or usage
        for choice in chunk.choices:
            content += choice.delta.content or ""
            # Not in OpenAI's own schema: the SDK keeps it as an extra field.
            reasoning += getattr(choice.delta, "reasoning_content", None) or ""
            if choice.finish_reason:
                finish.append(choice.finish_reason)
    check(content == "The answer is 42.", f"the streamed answer: {content!r}")
    check("print(6 * 7)" in reasoning and "42\n" in reasoning, f"the streamed steps: {reasoning!r}")
    check(finish == ["stop"], f"finish reasons: {finish}")
    check(usage is not None and usage.completion_tokens > 0, f"the streamed usage: {usage}")
    messages = call(base, "GET", f"/api/v1/threads/{thread}/messages", token=token)
    said = [m["content"] for m in messages]
    check(said == ["What is 6 times 7?", "The answer is 42.", "And again?", "The answer is 42."], f"the thread: {said}")

    try:
        client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "Hi"}])
        check(False, "an unknown model was accepted")
    except openai.NotFoundError as error:
        check(error.code == "model_not_found", f"unknown model: {error.code}")
    wrong = openai.OpenAI(base_url=f"{base}/v1", api_key="cairn_k_wrong", max_retries=0)
    try:
        wrong.models.list()
        check(False, "a wrong key was accepted")
    except openai.AuthenticationError as error:
        check(error.type == "authentication_error", f"wrong key: {error.type}")
    try:
        client.chat.completions.create(model="cairn", messages=[{"role": "assistant", "content": "Hi"}])
        check(False, "a conversation ending with the assistant was accepted")
    except openai.UnprocessableEntityError as error:
        check("last message" in error.message, f"no task: {error.message}")
    print("openai SDK: models, a completion, a stream with steps in the same thread, errors: passed")


class Receiver(http.server.ThreadingHTTPServer):
    """A webhook endpoint: records each request (headers and body) and
    answers 500 to the first attempt of every message, 204 after."""

    def __init__(self, port: int):
        self.got: list[tuple[dict, bytes]] = []
        self.seen: set[str] = set()
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("content-length", 0)))
                headers = {k.lower(): v for k, v in self.headers.items()}
                receiver.got.append((headers, body))
                first = headers.get("webhook-id") not in receiver.seen
                receiver.seen.add(headers.get("webhook-id"))
                self.send_response(500 if first else 204)
                self.end_headers()

            def log_message(self, *args):
                pass

        super().__init__(("127.0.0.1", port), Handler)
        threading.Thread(target=self.serve_forever, daemon=True).start()

    def wait_for(self, kind: str, count: int) -> list[tuple[dict, bytes]]:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            got = [(h, b) for h, b in self.got if json.loads(b).get("type") == kind]
            if len(got) >= count:
                return got
            time.sleep(0.05)
        raise AssertionError(f"fewer than {count} {kind} deliveries arrived: {self.got}")


def standard_webhooks(base: str, token: str, project: str, receiver: Receiver, port: int) -> None:
    """Deliveries verified by the `standardwebhooks` package: signed, retried
    after a failure with the same id, and, after a secret rotation, valid
    under the new secret and still under the old one (the grace period)."""
    from standardwebhooks import Webhook
    from standardwebhooks.webhooks import WebhookVerificationError

    hooks = f"/api/v1/projects/{project}/webhooks"
    events = ["run.succeeded", "member.added"]
    hook = call(base, "POST", hooks, {"url": f"http://127.0.0.1:{port}/hook", "events": events}, token)
    secret = hook["secret"]
    thread = call(base, "POST", f"/api/v1/projects/{project}/threads", {"title": "Hooked"}, token)["id"]
    posted = call(base, "POST", f"/api/v1/threads/{thread}/messages", {"content": "Go.", "wait": True}, token)
    attempts = receiver.wait_for("run.succeeded", 2)
    check(attempts[0][0]["webhook-id"] == attempts[1][0]["webhook-id"], "a retry keeps its webhook-id")
    for headers, body in attempts:
        payload = Webhook(secret).verify(body, headers)
        check(payload["data"]["run"] == posted["run"]["id"], f"the payload: {payload}")
        try:
            Webhook("whsec_" + "QUJD" * 8).verify(body, headers)
            check(False, "a delivery verified under another secret")
        except WebhookVerificationError:
            pass
    log = call(base, "GET", f"{hooks}/{hook['id']}/deliveries", token=token)
    check(log[0]["status"] == "delivered" and log[0]["attempts"] == 2, f"the delivery log: {log}")

    rotated = call(base, "POST", f"{hooks}/{hook['id']}/secret", token=token)
    call(base, "POST", f"/api/v1/projects/{project}/members", {"email": "editor@example.com", "role": "editor"}, token)
    headers, body = receiver.wait_for("member.added", 2)[-1]
    for key in [rotated["secret"], secret]:
        check(Webhook(key).verify(body, headers)["data"]["role"] == "editor", "verified under the new and the old secret")
    print("standardwebhooks: signed deliveries, a retry, the log, a rotated secret: passed")


def mcp_sdk(base: str, key: str, token: str) -> None:
    """The official MCP Python SDK's client against `/mcp`: it connects
    (the handshake), lists the tools, runs a task (its steps arriving as
    progress) and reads the run, and uses the library and memory tools; a
    tool's failure is `isError`."""
    import asyncio

    import httpx2
    from mcp import Client
    from mcp.client.streamable_http import streamable_http_client

    async def session() -> None:
        http = httpx2.AsyncClient(headers={"Authorization": f"Bearer {key}"}, timeout=60)
        async with Client(streamable_http_client(f"{base}/mcp", http_client=http)) as client:
            names = [tool.name for tool in (await client.list_tools()).tools]
            check(names == ["run_task", "get_run", "list_files", "read_file", "upload_file", "search_memory"], f"tools: {names}")
            steps: list[str] = []

            async def progress(done: float, total: float | None, message: str | None) -> None:
                steps.append(message or "")

            ran = await client.call_tool("run_task", {"task": "What is 6 times 7?"}, progress_callback=progress)
            check(not ran.is_error and ran.content[0].text == "The answer is 42.", f"run_task: {ran}")
            streamed = "".join(steps)
            check("print(6 * 7)" in streamed and "42" in streamed, f"the run's steps as progress: {steps}")
            run_id = ran.structured_content["run_id"]
            read = await client.call_tool("get_run", {"run_id": run_id})
            check(read.structured_content["status"] == "succeeded", f"get_run: {read}")
            check(read.structured_content["answer"] == "The answer is 42.", f"get_run: {read}")
            saved = await client.call_tool("upload_file", {"path": "notes/mcp.txt", "content": "written over MCP"})
            check(saved.structured_content["version"] == 1, f"upload_file: {saved}")
            listed = await client.call_tool("list_files", {"folder": "notes"})
            check([f["path"] for f in listed.structured_content["files"]] == ["notes/mcp.txt"], f"list_files: {listed}")
            text = await client.call_tool("read_file", {"path": "notes/mcp.txt"})
            check(text.content[0].text == "written over MCP", f"read_file: {text}")
            missing = await client.call_tool("read_file", {"path": "notes/none.txt"})
            check(missing.is_error, f"a missing file is the tool's error: {missing}")
            found = await client.call_tool("search_memory", {"query": "written over MCP"})
            check(not found.is_error, f"search_memory: {found}")

    asyncio.run(session())
    messages = call(base, "GET", "/api/v1/me", token=token)
    check(bool(messages["id"]), "the person's token still works")
    print("MCP SDK: handshake, tools, a run, library and memory tools, a tool error: passed")


ROOT = Path(__file__).resolve().parent.parent


def generated_clients(base: str) -> None:
    """Generates a Python client (openapi-python-client, from the tools venv)
    and a TypeScript one (openapi-typescript, type-checked with tsc) from
    docs/openapi.json and runs each one's smoke test against the server."""
    with tempfile.TemporaryDirectory(prefix="cairn-clients-") as scratch:
        generator = Path(sys.executable).parent / "openapi-python-client"
        output = Path(scratch) / "cairn_client"
        generated = subprocess.run(
            [str(generator), "generate", "--path", str(ROOT / "docs/openapi.json"), "--meta", "none", "--output-path", str(output)],
            capture_output=True,
            text=True,
        )
        if generated.returncode != 0:
            raise AssertionError(f"openapi-python-client failed:\n{generated.stdout}\n{generated.stderr}")
        # It warns of the responses it cannot type (files, archives, images:
        # their bodies are bytes); a schema it cannot model is a failure.
        said = generated.stdout + generated.stderr
        if "Unable to process schema" in said:
            raise AssertionError(f"openapi-python-client left schemas out:\n{said}")
        env = {**os.environ, "PYTHONPATH": scratch}
        subprocess.run([sys.executable, str(ROOT / "clients/python_smoke.py"), base, "The answer is 42."], check=True, env=env)
    typescript = ROOT / "clients/typescript"
    npm = shutil.which("npm") or "npm"
    subprocess.run([npm, "ci", "--no-audit", "--no-fund", "--silent"], cwd=typescript, check=True)
    subprocess.run([npm, "run", "--silent", "build"], cwd=typescript, check=True, stdout=subprocess.DEVNULL)
    subprocess.run(["node", "build/smoke.js", base, "The answer is 42."], cwd=typescript, check=True)


CALC_SERVER = """
import sys
from mcp.server.mcpserver import MCPServer

server = MCPServer("calc")


@server.tool()
def add(a: int, b: int) -> dict:
    \"\"\"Adds two whole numbers.\"\"\"
    return {"sum": a + b}


server.run("streamable-http", host="127.0.0.1", port=int(sys.argv[1]))
"""

MCP_CALL = 'Let me add.\n```python\nresult = mcp_calc_add(a=2, b=3)\nprint(result)\nfinal_answer(f"The sum is {result[\'sum\']}.")\n```'


def mcp_client(args) -> None:
    """An MCP server built with the official Python SDK (streamable HTTP,
    answering with server-sent events and a session id) added to a project:
    its tool is listed, and the agent calls it as a Python function from its
    sandbox; a destination the web tools may not reach is refused."""
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="cairn-mcp-") as scratch:
        script = Path(scratch) / "calc.py"
        script.write_text(CALC_SERVER)
        server = subprocess.Popen([sys.executable, str(script), str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            url = f"http://127.0.0.1:{port}/mcp"
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=1).close()
                    break
                except OSError:
                    time.sleep(0.1)
            env = {"CAIRN__TOOLS__ALLOW_PRIVATE": f'["127.0.0.1:{port}"]'}
            with LiveServer(args.cairn, llm=args.llm, replies=[MCP_CALL], env=env) as cairn:
                token = sign_up(cairn.base, "owner")
                project = call(cairn.base, "POST", "/api/v1/projects", {"name": "Tools"}, token)["id"]
                added = call(cairn.base, "POST", f"/api/v1/projects/{project}/mcp-servers", {"name": "calc", "url": url}, token)
                check([t["name"] for t in added["tools"]] == ["add"], f"the server's tools: {added}")
                thread = call(cairn.base, "POST", f"/api/v1/projects/{project}/threads", {"title": "Sum"}, token)["id"]
                posted = call(cairn.base, "POST", f"/api/v1/threads/{thread}/messages", {"content": "Add 2 and 3.", "wait": True}, token)
                if posted["answer"] != "The sum is 5.":
                    events = call(cairn.base, "GET", f"/api/v1/threads/{thread}/events", token=token)
                    seen = [e["payload"].get("text") for e in events if e["kind"] == "observation"][:2]
                    check(False, f"the agent's answer: {posted['answer']!r}; it saw {seen}")
                refused = urllib.request.Request(
                    f"{cairn.base}/api/v1/projects/{project}/mcp-servers",
                    data=json.dumps({"name": "inside", "url": "http://127.0.0.1:9/mcp"}).encode(),
                    headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
                    method="POST",
                )
                try:
                    urllib.request.urlopen(refused, timeout=30)
                    check(False, "a private MCP server was accepted")
                except urllib.error.HTTPError as error:
                    check(json.loads(error.read())["code"] == "destination_refused", "a private address is refused")
            # Under the same approval rules as Cairn's own tools.
            env["CAIRN__AGENT__REQUIRE_APPROVAL"] = '["mcp:*"]'
            with LiveServer(args.cairn, llm=args.llm, replies=[MCP_CALL], env=env) as cairn:
                token = sign_up(cairn.base, "owner")
                project = call(cairn.base, "POST", "/api/v1/projects", {"name": "Guarded"}, token)["id"]
                call(cairn.base, "POST", f"/api/v1/projects/{project}/mcp-servers", {"name": "calc", "url": url}, token)
                thread = call(cairn.base, "POST", f"/api/v1/projects/{project}/threads", {"title": "Sum"}, token)["id"]
                posted = call(cairn.base, "POST", f"/api/v1/threads/{thread}/messages", {"content": "Add.", "wait": True}, token)
                check(posted["run"]["status"] == "waiting", f"an MCP tool waits for approval: {posted['run']}")
                resumed = call(cairn.base, "POST", f"/api/v1/runs/{posted['run']['id']}/resume", {"answer": "yes"}, token)
                deadline = time.monotonic() + 60
                while time.monotonic() < deadline and resumed["status"] not in ("succeeded", "failed"):
                    time.sleep(0.2)
                    resumed = call(cairn.base, "GET", f"/api/v1/runs/{posted['run']['id']}", token=token)
                messages = call(cairn.base, "GET", f"/api/v1/threads/{thread}/messages", token=token)
                check(messages[-1]["content"] == "The sum is 5.", f"approved, it ran: {resumed} {messages[-1]}")
        finally:
            server.terminate()
            server.wait(timeout=10)
    print("MCP client: an SDK-built server's tool called by the agent from its sandbox, under approval rules; a private address refused: passed")


STDIO_CALC_SERVER = """
import os
from mcp.server.mcpserver import MCPServer

server = MCPServer("calc")


@server.tool()
def add(a: int, b: int) -> dict:
    \"\"\"Adds two whole numbers and the offset the server was given.\"\"\"
    return {"sum": a + b + int(os.environ["CALC_OFFSET"])}


server.run("stdio")
"""


def mcp_stdio_client() -> None:
    """The kernel's client of stdio MCP servers (what the agent's sandbox
    runs) against a server built with the official Python SDK: it starts
    the server with its environment, lists its tools, calls one, and hears
    the SDK's refusal of bad arguments as the tool's error."""
    spec = importlib.util.spec_from_file_location("mcp_stdio", ROOT / "crates/cairn-agent/src/codeact/mcp_stdio.py")
    client = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(client)
    with tempfile.TemporaryDirectory(prefix="cairn-mcp-stdio-") as scratch:
        script = Path(scratch) / "calc.py"
        script.write_text(STDIO_CALC_SERVER)
        client.configure({"calc": {"command": ["python", str(script)], "env": {"CALC_OFFSET": "100"}}})
        try:
            listed = client.list_all(["calc"])["calc"]
            check("result" in listed, f"the SDK server is listed: {listed}")
            tools = listed["result"]["tools"]
            check([t["name"] for t in tools] == ["add"], f"its tools: {tools}")
            check(sorted(tools[0]["inputSchema"]["properties"]) == ["a", "b"], f"its schema: {tools[0]}")

            def value(called):
                # What Cairn reads of a result: structured content, or JSON text.
                result = called.get("result") or {}
                if result.get("structuredContent") is not None:
                    return result["structuredContent"]
                return json.loads("".join(part.get("text", "") for part in result.get("content", [])) or "null")

            called = client.call("calc", "add", {"a": 2, "b": 3})
            check(value(called) == {"sum": 105}, f"a call, with the environment: {called}")
            refused = client.call("calc", "add", {"a": 2})
            check(refused.get("result", {}).get("isError") is True, f"missing arguments are the tool's error: {refused}")
            client.SERVERS["calc"].process.kill()
            client.SERVERS["calc"].process.wait()
            again = client.call("calc", "add", {"a": 1, "b": 1})
            check(value(again) == {"sum": 102}, f"a server that died starts again: {again}")
        finally:
            client.SERVERS["calc"].stop()
    print("MCP stdio client: an SDK-built stdio server listed and called with its environment, restarted after it died: passed")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cairn", required=True, help="the cairn binary")
    parser.add_argument("--llm", required=True, help="the scripted LLM server binary")
    args = parser.parse_args()
    port = free_port()
    receiver = Receiver(port)
    # The receiver is on a private address: allowlisted, as an operator
    # would allowlist an intranet endpoint; retries come a second apart.
    env = {"CAIRN__TOOLS__ALLOW_PRIVATE": f'["127.0.0.1:{port}"]', "CAIRN__WEBHOOKS__RETRY_SECS": "[1, 1]"}
    try:
        with LiveServer(args.cairn, llm=args.llm, replies=[REPLY], env=env) as server:
            token = sign_up(server.base, "owner")
            sign_up(server.base, "editor")
            project = call(server.base, "POST", "/api/v1/projects", {"name": "Clients"}, token)["id"]
            key = call(
                server.base, "POST", "/api/v1/api-keys", {"project_id": project, "role": "editor", "name": "clients"}, token
            )["token"]
            openai_sdk(server.base, key, token)
            mcp_sdk(server.base, key, token)
            generated_clients(server.base)
            standard_webhooks(server.base, token, project, receiver, port)
    finally:
        receiver.shutdown()
    mcp_client(args)
    mcp_stdio_client()
    return 0


if __name__ == "__main__":
    sys.exit(main())
