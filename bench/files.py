#!/usr/bin/env python3
"""File service throughput: upload and download of one large file through
Cairn (release build) on local storage, on S3 (s3s-fs) and, with their
emulators given, on Google Cloud Storage (gcp-storage-emulator) and Azure
Blob Storage (Azurite), each beside the raw throughput of the same storage
measured in the same run: a plain file copy for local storage, a direct
client (curl; SigV4 for S3, Shared Key for Azure) against the same server
for the others. Also reports Cairn's peak resident memory while moving the
file. The emulators keep objects in memory and are slow themselves, so they
move a smaller file (--cloud-mib).

Usage: bench/files.py CAIRN_BINARY S3S_FS_BINARY [--mib N]
           [--gcs-emulator PATH --azurite PATH --cloud-mib N]
Prints a Markdown table. Everything runs on 127.0.0.1; every process it
starts it stops by its process id.
"""

import argparse
import base64
import email.utils
import hashlib
import hmac
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


def source_file(work, mib, name):
    path = os.path.join(work, name)
    with open(path, "wb") as out:
        block = os.urandom(1 << 20)
        for _ in range(mib):
            out.write(block)
    return path


def wait_port(port, process, what):
    import socket
    for _ in range(600):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            if process.poll() is not None:
                raise RuntimeError(f"{what} exited while starting")
            time.sleep(0.05)
    raise RuntimeError(f"{what} did not start")


def gcs_rows(args, cairn, work, source, rate):
    port = free_port()
    emulator = subprocess.Popen([args.gcs_emulator, "start", "--host", "127.0.0.1", "--port", str(port),
                                 "--in-memory", "--default-bucket", "bench"],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_port(port, emulator, "the GCS emulator")
        endpoint = f"http://127.0.0.1:{port}"
        direct_up = timed(["curl", "-sf", "-X", "POST", "-T", source, "-H", "content-type: application/octet-stream",
                           f"{endpoint}/upload/storage/v1/b/bench/o?uploadType=media&name=direct.bin"])
        direct_down = timed(["curl", "-sf", "-o", "/dev/null",
                             f"{endpoint}/storage/v1/b/bench/o/direct.bin?alt=media"])
        cairn_work = os.path.join(work, "cairn-gcs")
        os.makedirs(cairn_work)
        up, down, rss = cairn_run(cairn, cairn_work, source, {
            "CAIRN__FILES__STORE_URL": "gs://bench",
            "CAIRN__FILES__GCS_ENDPOINT": endpoint,
            "CAIRN__FILES__ALLOW_HTTP": "true",
        })
        return [f"| Cairn, GCS (gcp-storage-emulator) | {rate(up)} | {rate(down)} | {rss:.0f} MiB |",
                f"| reference: direct GCS JSON API client (curl) on the same emulator | {rate(direct_up)} | {rate(direct_down)} | |"]
    finally:
        emulator.terminate()
        emulator.wait(timeout=15)


AZURITE_ACCOUNT = "devstoreaccount1"
# Azurite's well-known development key (public, for the emulator only).
AZURITE_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="


def azure_headers(method, resource, length="", content_type="", extra=None):
    """Shared Key headers for one request to Azurite (path-style account)."""
    date = email.utils.formatdate(usegmt=True)
    headers = {"x-ms-date": date, "x-ms-version": "2021-08-06", **(extra or {})}
    canonical = "".join(f"{k}:{v}\n" for k, v in sorted(headers.items()))
    to_sign = f"{method}\n\n\n{length}\n\n{content_type}\n\n\n\n\n\n\n{canonical}{resource}"
    signature = base64.b64encode(hmac.new(base64.b64decode(AZURITE_KEY), to_sign.encode(), hashlib.sha256).digest())
    headers["authorization"] = f"SharedKey {AZURITE_ACCOUNT}:{signature.decode()}"
    return [item for k, v in headers.items() for item in ("-H", f"{k}: {v}")]


def azure_rows(args, cairn, work, source, rate):
    port = free_port()
    azurite_dir = os.path.join(work, "azurite")
    os.makedirs(azurite_dir)
    azurite = subprocess.Popen([args.azurite, "--blobHost", "127.0.0.1", "--blobPort", str(port),
                                "--inMemoryPersistence", "--silent", "--skipApiVersionCheck", "--disableTelemetry"],
                               cwd=azurite_dir, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_port(port, azurite, "Azurite")
        account = f"http://127.0.0.1:{port}/{AZURITE_ACCOUNT}"
        prefix = f"/{AZURITE_ACCOUNT}/{AZURITE_ACCOUNT}/bench"
        subprocess.run(["curl", "-sf", "-X", "PUT", "-H", "content-length: 0",
                        *azure_headers("PUT", f"{prefix}\nrestype:container"), f"{account}/bench?restype=container"],
                       check=True, stdout=subprocess.DEVNULL)
        size = os.path.getsize(source)
        put = azure_headers("PUT", f"{prefix}/direct.bin", str(size), "application/octet-stream",
                            {"x-ms-blob-type": "BlockBlob"})
        direct_up = timed(["curl", "-sf", "-T", source, "-H", "content-type: application/octet-stream", *put,
                           f"{account}/bench/direct.bin"])
        direct_down = timed(["curl", "-sf", "-o", "/dev/null", *azure_headers("GET", f"{prefix}/direct.bin"),
                             f"{account}/bench/direct.bin"])
        cairn_work = os.path.join(work, "cairn-azure")
        os.makedirs(cairn_work)
        up, down, rss = cairn_run(cairn, cairn_work, source, {
            "CAIRN__FILES__STORE_URL": "az://bench",
            "CAIRN__FILES__AZURE_ACCOUNT": AZURITE_ACCOUNT,
            "CAIRN__FILES__AZURE_ACCESS_KEY": AZURITE_KEY,
            "CAIRN__FILES__AZURE_ENDPOINT": account,
            "CAIRN__FILES__ALLOW_HTTP": "true",
        })
        return [f"| Cairn, Azure (Azurite) | {rate(up)} | {rate(down)} | {rss:.0f} MiB |",
                f"| reference: direct Azure client (curl, Shared Key, one Put Blob) on the same Azurite | {rate(direct_up)} | {rate(direct_down)} | |"]
    finally:
        azurite.terminate()
        azurite.wait(timeout=15)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("cairn")
    parser.add_argument("s3s_fs")
    parser.add_argument("--mib", type=int, default=1024)
    parser.add_argument("--gcs-emulator")
    parser.add_argument("--azurite")
    parser.add_argument("--cloud-mib", type=int, default=256)
    args = parser.parse_args()
    size = args.mib * 1024 * 1024
    rate = lambda seconds: f"{size / seconds / 1e6:,.0f} MB/s"  # noqa: E731
    rows = ["| what | upload | download | Cairn peak RSS |", "|---|---|---|---|"]
    with tempfile.TemporaryDirectory(prefix="cairn-bench-files-", dir=os.environ.get("BENCH_DIR")) as work:
        source = source_file(work, args.mib, "source.bin")

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
        os.remove(source)

        if args.gcs_emulator or args.azurite:
            cloud_size = args.cloud_mib * 1024 * 1024
            cloud_rate = lambda seconds: f"{cloud_size / seconds / 1e6:,.0f} MB/s"  # noqa: E731
            cloud_source = source_file(work, args.cloud_mib, "cloud.bin")
            rows.append(f"| *{args.cloud_mib} MiB file, through the emulators:* | | | |")
            if args.gcs_emulator:
                rows.extend(gcs_rows(args, os.path.abspath(args.cairn), work, cloud_source, cloud_rate))
            if args.azurite:
                rows.extend(azure_rows(args, os.path.abspath(args.cairn), work, cloud_source, cloud_rate))
    print(f"{args.mib} MiB file (local, S3).\n")
    print("\n".join(rows))


if __name__ == "__main__":
    sys.exit(main())
