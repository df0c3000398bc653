#!/usr/bin/env python3
"""File service throughput: upload and download of one large file through
Cairn (release build) on local storage and on S3 (s3s-fs), each beside the
raw throughput of the same storage measured in the same run: a plain file
copy for local storage, a direct S3 client (curl with SigV4) against the same
S3 server. Also reports Cairn's peak resident memory while moving the file.

Usage: bench/files.py CAIRN_BINARY S3S_FS_BINARY [--mib N]
Prints a Markdown table. Everything runs on 127.0.0.1; every process it
starts it stops by its process id.
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from me import post, wait_ready  # noqa: E402
from startup import clean_env, free_port  # noqa: E402

PASSWORD = "load test passphrase 2026"
KEY, SECRET = "bench", "bench-secret-key-for-s3s"


def timed(command):
    started = time.perf_counter()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - started


def peak_rss_mib(pid):
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def cairn_run(binary, work, source, extra_env):
    port = free_port()
    env = clean_env({"CAIRN__SERVER__BIND": f"127.0.0.1:{port}", "CAIRN__LOG__LEVEL": "warn",
                     "CAIRN__FILES__MAX_UPLOAD_BYTES": str(64 << 30), **extra_env})
    process = subprocess.Popen([binary, "serve"], env=env, cwd=work, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_ready(port, process)
        base = f"http://127.0.0.1:{port}/api/v1"
        post(f"{base}/auth/register", {"email": "bench@example.com", "password": PASSWORD, "display_name": "Bench"})
        token = post(f"{base}/auth/token", {"grant_type": "password", "username": "bench@example.com",
                                            "password": PASSWORD}, form=True)["access_token"]
        request = __import__("urllib.request").request
        req = request.Request(f"{base}/projects", data=json.dumps({"name": "bench"}).encode(),
                              headers={"content-type": "application/json", "authorization": f"Bearer {token}"})
        project = json.load(request.urlopen(req))["id"]
        auth = ["-H", f"Authorization: Bearer {token}"]
        upload_url = f"{base}/projects/{project}/files/content?path=bench.bin"
        out = os.path.join(work, "upload.json")
        up = timed(["curl", "-sf", "-X", "PUT", *auth, "-T", source, "-o", out, upload_url])
        file_id = json.load(open(out))["id"]
        down = timed(["curl", "-sf", *auth, "-o", "/dev/null", f"{base}/projects/{project}/files/{file_id}/content"])
        return up, down, peak_rss_mib(process.pid)
    finally:
        process.terminate()
        process.wait(timeout=15)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("cairn")
    parser.add_argument("s3s_fs")
    parser.add_argument("--mib", type=int, default=1024)
    args = parser.parse_args()
    size = args.mib * 1024 * 1024
    rate = lambda seconds: f"{size / seconds / 1e6:,.0f} MB/s"  # noqa: E731
    rows = ["| what | upload | download | Cairn peak RSS |", "|---|---|---|---|"]
    with tempfile.TemporaryDirectory(prefix="cairn-bench-files-", dir=os.environ.get("BENCH_DIR")) as work:
        source = os.path.join(work, "source.bin")
        with open(source, "wb") as out:
            block = os.urandom(1 << 20)
            for _ in range(args.mib):
                out.write(block)

        # Local storage, and the plain copy it competes with.
        copy_up = timed(["cp", source, os.path.join(work, "copy.bin")])
        copy_down = timed(["cp", os.path.join(work, "copy.bin"), os.path.join(work, "copy2.bin")])
        os.remove(os.path.join(work, "copy.bin"))
        os.remove(os.path.join(work, "copy2.bin"))
        local_work = os.path.join(work, "local")
        os.makedirs(local_work)
        up, down, rss = cairn_run(os.path.abspath(args.cairn), local_work, source, {})
        rows.append(f"| Cairn, local storage | {rate(up)} | {rate(down)} | {rss:.0f} MiB |")
        rows.append(f"| reference: plain file copy (cp) on the same disk | {rate(copy_up)} | {rate(copy_down)} | |")
        shutil.rmtree(local_work)

        # S3: s3s-fs, reached by Cairn and directly by curl.
        s3_root = os.path.join(work, "s3")
        os.makedirs(os.path.join(s3_root, "bench"))
        port = free_port()
        s3 = subprocess.Popen([args.s3s_fs, "--host", "127.0.0.1", "--port", str(port), "--access-key", KEY,
                               "--secret-key", SECRET, s3_root], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            time.sleep(0.5)
            endpoint = f"http://127.0.0.1:{port}"
            sig = ["--aws-sigv4", "aws:amz:us-east-1:s3", "--user", f"{KEY}:{SECRET}",
                   "-H", "x-amz-content-sha256: UNSIGNED-PAYLOAD"]
            direct_up = timed(["curl", "-sf", *sig, "-T", source, f"{endpoint}/bench/direct.bin"])
            direct_down = timed(["curl", "-sf", *sig, "-o", "/dev/null", f"{endpoint}/bench/direct.bin"])
            s3_work = os.path.join(work, "cairn-s3")
            os.makedirs(s3_work)
            up, down, rss = cairn_run(os.path.abspath(args.cairn), s3_work, source, {
                "CAIRN__FILES__STORE_URL": "s3://bench",
                "CAIRN__FILES__S3_ENDPOINT": endpoint,
                "CAIRN__FILES__S3_ACCESS_KEY_ID": KEY,
                "CAIRN__FILES__S3_SECRET_ACCESS_KEY": SECRET,
                "CAIRN__FILES__S3_PATH_STYLE": "true",
                "CAIRN__FILES__ALLOW_HTTP": "true",
            })
            rows.append(f"| Cairn, S3 (s3s-fs) | {rate(up)} | {rate(down)} | {rss:.0f} MiB |")
            rows.append(f"| reference: direct S3 client (curl, SigV4) on the same s3s-fs | {rate(direct_up)} | {rate(direct_down)} | |")
        finally:
            s3.terminate()
            s3.wait(timeout=15)
    print(f"{args.mib} MiB file.\n")
    print("\n".join(rows))


if __name__ == "__main__":
    sys.exit(main())
