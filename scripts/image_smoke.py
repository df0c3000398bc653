"""Each role of the container image, smoke-tested in it: a sandbox host, a
worker and a gateway, each in a container of the image built from
deploy/Dockerfile, run as the deployment files run them (the image's user,
every capability dropped, a read-only root file system with /tmp on tmpfs
and the data folder a volume; the sandbox host with the seccomp, AppArmor and /proc
allowances deploy/Dockerfile documents, nothing more), sharing PostgreSQL,
Redis and an S3 server (s3s-fs) on this machine's loopback. A member signs
up through the gateway and posts a task; the worker takes the run, asks the
scripted model, and runs the agent's Python in a sandbox the sandbox host
starts with bubblewrap inside its container; the answer comes back, and the
workspace the code changed is snapshotted into the object store. Then each
role is stopped with SIGTERM, as an orchestrator stops it, and must exit
cleanly.

    python scripts/image_smoke.py --image localhost/cairn:smoke --llm target/debug/examples/scripted_llm \\
        --s3s-fs ~/.cache/cairn/tools/bin/s3s-fs --database-url postgres://postgres@127.0.0.1:5432/postgres \\
        --redis-url redis://127.0.0.1:6379

Podman is called as `podman` with the environment it is given (the test
command's private configuration). Exits non-zero, naming the check and
printing the containers' logs, on the first failure.
"""

from __future__ import annotations

import argparse
import json
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
import zipfile
from pathlib import Path

from live_server import call, free_port, sign_up

# The agent's code: Python the sandbox runs, which also says where it ran.
REPLY = (
    "Let me compute.\n```python\nimport os, socket\n"
    "open('answer.txt', 'w').write(str(6 * 7))\n"
    "print(6 * 7, os.getuid(), socket.gethostname())\n"
    'final_answer("The answer is 42.")\n```'
)
# As the deployment files run every role.
# (the data folder a volume, as in deploy/compose.yaml: owned by the image's
# user, as the image made it).
HARDENED = ["--cap-drop", "ALL", "--security-opt", "no-new-privileges", "--read-only", "--tmpfs", "/tmp",
            "--volume", "/var/lib/cairn"]
# What bubblewrap needs besides (deploy/Dockerfile, "sandbox-host").
SANDBOX_HOST = ["--security-opt", "seccomp=unconfined", "--security-opt", "apparmor=unconfined",
                "--security-opt", "unmask=ALL"]


def check(condition: bool, what: str) -> None:
    if not condition:
        raise AssertionError(what)


def podman(*args: str, check_rc: bool = True, timeout: float = 120) -> subprocess.CompletedProcess:
    done = subprocess.run(["podman", *args], capture_output=True, text=True, timeout=timeout)
    if check_rc and done.returncode != 0:
        raise AssertionError(f"podman {' '.join(args[:3])} … failed ({done.returncode}): {done.stderr.strip()[-800:]}")
    return done


def wait_http(url: str, what: str, container: str, seconds: float = 90) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except (urllib.error.URLError, ConnectionError, OSError):
            state = podman("inspect", "--format", "{{.State.Status}}", container, check_rc=False).stdout.strip()
            if state in ("exited", "stopped"):
                raise AssertionError(f"{what} exited while starting") from None
            time.sleep(0.3)
    raise AssertionError(f"{what} did not answer {url} within {seconds:.0f} s")


def get_text(url: str) -> str:
    with urllib.request.urlopen(url, timeout=10) as response:
        return response.read().decode()


class Smoke:
    def __init__(self, args: argparse.Namespace):
        self.args = args
        self.tmp = Path(tempfile.mkdtemp(prefix="cairn-image-smoke-"))
        self.suffix = secrets.token_hex(4)
        self.children: list[subprocess.Popen] = []
        self.containers: list[str] = []
        self.database = f"cairn_image_{self.suffix}"

    # -- the services on this machine ---------------------------------------

    def start_llm(self) -> str:
        llm = subprocess.Popen([self.args.llm, REPLY], stdout=subprocess.PIPE, text=True)
        self.children.append(llm)
        return (llm.stdout.readline().strip() if llm.stdout else "") + "/v1"

    def start_s3(self) -> dict[str, str]:
        root, bucket, port = self.tmp / "s3", "cairn-library", free_port()
        (root / bucket).mkdir(parents=True)
        keys = {"access": "cairn-smoke", "secret": secrets.token_hex(16)}
        self.children.append(subprocess.Popen(
            [self.args.s3s_fs, "--host", "127.0.0.1", "--port", str(port), "--access-key", keys["access"],
             "--secret-key", keys["secret"], str(root)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        return {
            "CAIRN__FILES__STORE_URL": f"s3://{bucket}",
            "CAIRN__FILES__S3_ENDPOINT": f"http://127.0.0.1:{port}",
            "CAIRN__FILES__S3_ACCESS_KEY_ID": keys["access"],
            "CAIRN__FILES__S3_SECRET_ACCESS_KEY": keys["secret"],
            "CAIRN__FILES__S3_PATH_STYLE": "true",
            "CAIRN__FILES__ALLOW_HTTP": "true",
            "CAIRN__FILES__S3_REGION": "us-east-1",
        }

    def database_url(self) -> str:
        subprocess.run(["psql", self.args.database_url, "-qc", f"CREATE DATABASE {self.database}"],
                       check=True, capture_output=True)
        parts = urllib.parse.urlsplit(self.args.database_url)
        return urllib.parse.urlunsplit(parts._replace(path=f"/{self.database}"))

    # -- the roles, each in a container of the image ------------------------

    def run(self, role: str, env: dict[str, str], extra: list[str] = ()) -> str:
        name = f"cairn-smoke-{role}-{self.suffix}"
        self.containers.append(name)
        flags = [flag for key, value in env.items() for flag in ("--env", f"{key}={value}")]
        podman("run", "--detach", "--name", name, "--network", "host", *HARDENED, *extra, *flags,
               self.args.image, "serve", "--role", role)
        return name

    def stop(self, name: str, what: str) -> None:
        started = time.monotonic()
        podman("stop", "--time", "60", name, timeout=90)
        took = time.monotonic() - started
        code = podman("inspect", "--format", "{{.State.ExitCode}}", name).stdout.strip()
        check(code == "0", f"{what} exited with {code} on SIGTERM")
        check(took < 55, f"{what} took {took:.0f} s to stop on SIGTERM (killed at the deadline?)")
        print(f"  {what}: stopped on SIGTERM in {took:.1f} s, exit code 0")

    def image_contents(self) -> None:
        """What the roles need beside the binary, present and working."""
        probe = podman("run", "--rm", "--network", "none", *HARDENED, "--entrypoint", "/bin/sh", self.args.image, "-c",
                       "id -u && cairn --version && bwrap --version && chromium --version && "
                       "/opt/sandbox-python/bin/python -c 'import numpy, pandas, matplotlib, scipy, bs4, openpyxl; "
                       "print(\"data stack\", numpy.__version__, pandas.__version__)'").stdout
        lines = probe.splitlines()
        check(lines[0] == "10001", f"the image runs as uid 10001, not {lines[0]}")
        check(any(line.startswith("cairn") for line in lines), f"cairn --version: {probe}")
        check(any(line.startswith("bubblewrap") for line in lines), f"bwrap --version: {probe}")
        check(any("Chromium" in line for line in lines), f"chromium --version: {probe}")
        check(any(line.startswith("data stack") for line in lines), f"the sandbox's Python: {probe}")
        print("image: runs as uid 10001; " + "; ".join(lines[1:]))

    def smoke(self) -> None:
        self.image_contents()
        llm = self.start_llm()
        shared = {
            "CAIRN__DATABASE__URL": self.database_url(),
            "CAIRN__SANDBOX__HOST_TOKEN": secrets.token_urlsafe(32),
            "CAIRN__LOG__FORMAT": "json",
            "CAIRN__SANDBOX__POOL_SIZE": "0",
            **self.start_s3(),
        }
        host_port, host_admin, gateway_port, gateway_admin, worker_admin = (free_port() for _ in range(5))
        app = {
            **shared,
            "CAIRN__REDIS__URL": self.args.redis_url,
            "CAIRN__REDIS__PREFIX": f"smoke{self.suffix}",
            "CAIRN__AUTH__SIGNING_KEYS": f'[{{kid="k1",secret="{secrets.token_urlsafe(32)}"}}]',
            "CAIRN__LLM__SECRET_KEYS": f'[{{kid="k1",secret="{secrets.token_urlsafe(32)}"}}]',
            "CAIRN__FILES__LINK_SIGNING_KEY": secrets.token_urlsafe(32),
            "CAIRN__SANDBOX__CLUSTER": "true",
            "CAIRN__LLM__PROVIDERS": f'[{{name="scripted",kind="openai-compatible",base_url="{llm}",models=[{{name="m"}}]}}]',
        }
        host = self.run("sandbox-host", {
            **shared,
            "CAIRN__SERVER__BIND": f"127.0.0.1:{host_port}",
            "CAIRN__SERVER__ADMIN_BIND": f"127.0.0.1:{host_admin}",
            "CAIRN__SANDBOX__ADVERTISE_URL": f"http://127.0.0.1:{host_port}",
            "CAIRN__SANDBOX__ALLOW_NETWORK": "false",
        }, SANDBOX_HOST)
        wait_http(f"http://127.0.0.1:{host_port}/readyz", "the sandbox host", host)
        worker = self.run("worker", {**app, "CAIRN__SERVER__ADMIN_BIND": f"127.0.0.1:{worker_admin}"})
        wait_http(f"http://127.0.0.1:{worker_admin}/readyz", "the worker", worker)
        base = f"http://127.0.0.1:{gateway_port}"
        gateway = self.run("gateway", {
            **app,
            "CAIRN__SERVER__BIND": f"127.0.0.1:{gateway_port}",
            "CAIRN__SERVER__ADMIN_BIND": f"127.0.0.1:{gateway_admin}",
            "CAIRN__AUTH__PUBLIC_URL": base,
        })
        wait_http(f"{base}/readyz", "the gateway", gateway)
        said = json.loads(get_text(f"{base}/api/v1/version"))
        check(said.get("role") == "gateway", f"the gateway's /version: {said}")
        check("<!doctype html>" in get_text(base + "/").lower(), "the gateway serves the web app")
        print("roles: sandbox host, worker and gateway ready in their containers")

        token = sign_up(base, "smoke")
        project = call(base, "POST", "/api/v1/projects", {"name": "Image"}, token)["id"]
        thread = call(base, "POST", f"/api/v1/projects/{project}/threads", {"title": "Smoke"}, token)["id"]
        posted = call(base, "POST", f"/api/v1/threads/{thread}/messages", {"content": "What is 6 times 7?", "wait": True},
                      token)
        events = call(base, "GET", f"/api/v1/threads/{thread}/events", token=token)
        printed = "".join(e["payload"].get("text", "") for e in events if e["kind"] == "output")
        check(posted.get("answer") == "The answer is 42.",
              f"the run's answer: {posted.get('answer')!r} (run {posted.get('run', {}).get('status')}); printed {printed!r}")
        check(printed.startswith("42 "), f"the sandbox printed {printed!r}")
        print(f"run: posted through the gateway, worked by the worker, its code run on the sandbox host: {printed.strip()!r}")

        metrics = get_text(f"http://127.0.0.1:{worker_admin}/metrics")
        check("cairn_model_calls_total" in metrics, "the worker's /metrics count its model calls")
        # The thread's sandbox is on the sandbox host (a worker's own could
        # not start bubblewrap under the runtime's default seccomp profile).
        host_metrics = get_text(f"http://127.0.0.1:{host_admin}/metrics")
        check('cairn_sandboxes{state="running"} 1' in host_metrics, "the sandbox host runs the thread's sandbox")
        zombies = podman("exec", host, "sh", "-c", "ps -eo stat= | grep -c '^Z' || true").stdout.strip()
        check(zombies == "0", f"{zombies} zombie processes in the sandbox host's container")
        print("metrics: worker and sandbox host; no zombie processes in the sandbox host's container")

        self.stop(gateway, "gateway")
        self.stop(worker, "worker")
        self.stop(host, "sandbox host")
        # The step changed the workspace: its snapshot is in the object store,
        # written from the sandbox host's container.
        snapshots = list((self.tmp / "s3" / "cairn-library" / "sandbox-snapshots").glob("*.zip"))
        check(len(snapshots) == 1, f"workspace snapshots in the object store: {snapshots}")
        with zipfile.ZipFile(snapshots[0]) as archive:
            check(archive.read("answer.txt") == b"42", f"the snapshot holds {archive.namelist()}")
        print("snapshot: the workspace, with the file the code wrote, in the object store")

    def logs(self) -> None:
        for name in self.containers:
            done = podman("logs", "--tail", "40", name, check_rc=False)
            print(f"--- {name} (last 40 lines) ---\n{done.stdout}{done.stderr}", file=sys.stderr)

    def close(self) -> None:
        for name in self.containers:
            podman("rm", "--force", "--volumes", "--time", "5", name, check_rc=False)
        for child in self.children:
            child.terminate()
            try:
                child.wait(timeout=10)
            except subprocess.TimeoutExpired:
                child.kill()
        subprocess.run(["psql", self.args.database_url, "-qc", f"DROP DATABASE IF EXISTS {self.database} WITH (FORCE)"],
                       capture_output=True)
        shutil.rmtree(self.tmp, ignore_errors=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--image", required=True)
    parser.add_argument("--llm", required=True, help="the scripted LLM server (scripted_llm example)")
    parser.add_argument("--s3s-fs", required=True)
    parser.add_argument("--database-url", required=True, help="a PostgreSQL database in which to create one")
    parser.add_argument("--redis-url", required=True)
    args = parser.parse_args()
    smoke = Smoke(args)
    try:
        smoke.smoke()
    except BaseException:
        smoke.logs()
        raise
    finally:
        smoke.close()
    print("image: every role passed its smoke test")
    return 0


if __name__ == "__main__":
    sys.exit(main())
