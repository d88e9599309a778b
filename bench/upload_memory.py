"""Peak memory of the app while it takes uploads of 50 and 250 MiB, versus raw boto3
`upload_file`: does the web process grow with the file?

The app runs in its own process (wsgiref, against a scratch database and a private SeaweedFS
with SSE); this script is only the client, streaming the file from disk. The app process is
warmed up (a 20 MiB upload each way loads boto3, the transfer threads, the templates), then for
each size and each way: its resident set (VmRSS) is the baseline, its peak (VmHWM) is reset
through /proc/<pid>/clear_refs, the upload runs, and the new peak is read. The ways: the page
(the form posted to the app), the presigned multipart API with read-back verification, and the
page's own direct-to-S3 upload (bench/_documents_app.py, upload_browser_style). The same is
measured for a bare Python process doing boto3 `upload_file` of the same file to the same
server: the floor any S3 upload through a process costs. Figures: peak minus baseline, as MiB,
as a share of the file size, and as a ratio to the raw boto3 process.

    .venv/bin/python scripts/local_services.py test
    METIS_ENV_FILE=var/test.env .venv/bin/python bench/upload_memory.py [--sizes-mib 50,250]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import django

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "metis.settings")
django.setup()

import _documents_app as common  # noqa: E402

from tests.support import scratch  # noqa: E402
from tests.support.seaweedfs import SeaweedS3  # noqa: E402

DATABASE = "bench_documents_memory"

RAW_UPLOAD_CODE = """
import sys, boto3
from botocore.config import Config
endpoint, access, secret, bucket, path = sys.argv[1:6]
client = boto3.client("s3", endpoint_url=endpoint, aws_access_key_id=access,
    aws_secret_access_key=secret, region_name="us-east-1",
    config=Config(s3={"addressing_style": "path"}))
sse = {"ServerSideEncryption": "AES256"}
client.upload_file(sys.argv[6], bucket, "raw/warm.pdf", ExtraArgs=sse)  # warm-up
print("ready", flush=True)
sys.stdin.readline()
client.upload_file(path, bucket, "raw/big.pdf", ExtraArgs=sse)
print("done", flush=True)
sys.stdin.readline()
"""


def memory_kib(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise KeyError(field)


def reset_peak(pid: int) -> int:
    """Reset the process's peak RSS to its current RSS; return that baseline (KiB)."""
    Path(f"/proc/{pid}/clear_refs").write_text("5")
    return memory_kib(pid, "VmRSS")


def measure(pid: int, action) -> tuple[float, float]:
    """Return (baseline MiB, peak - baseline MiB) of process `pid` while `action` runs."""
    baseline = reset_peak(pid)
    action()
    return baseline / 1024, (memory_kib(pid, "VmHWM") - baseline) / 1024


def raw_boto3(server, path: Path, warm: Path) -> tuple[float, float]:
    process = subprocess.Popen(
        [
            sys.executable,
            "-c",
            RAW_UPLOAD_CODE,
            server.endpoint_url,
            server.access_key,
            server.secret_key,
            common.BUCKET,
            str(path),
            str(warm),
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout.readline().strip() == "ready"

        def upload():
            process.stdin.write("go\n")
            process.stdin.flush()
            assert process.stdout.readline().strip() == "done"

        return measure(process.pid, upload)
    finally:
        process.stdin.write("bye\n")
        process.stdin.flush()
        process.wait(timeout=30)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes-mib", default="50,250")
    args = parser.parse_args()
    sizes = [int(size) for size in args.sizes_mib.split(",")]
    work = Path(tempfile.mkdtemp(prefix="metis-bench-memory-"))
    server = SeaweedS3(data_dir=work / "seaweed").start()
    try:
        server.client().create_bucket(Bucket=common.BUCKET)
        scratch.scratch_database_create(DATABASE)
        _tenant, email = common.seed_tenant()
        warm = work / "warm.pdf"
        common.make_pdf(warm, 20 * common.MiB)  # multipart too: loads the transfer machinery
        files = {size: work / f"statement-{size}.pdf" for size in sizes}
        for size, path in files.items():
            common.make_pdf(path, size * common.MiB)
        results: dict[tuple[str, int], tuple[float, float]] = {}
        for size, path in files.items():
            results[("raw boto3 upload_file", size)] = raw_boto3(server, path, warm)
        print("raw boto3 measured", file=sys.stderr, flush=True)
        with common.app_server(common.app_environment(server, DATABASE)) as app:
            session = common.TenantSession(app.port, "bench.localhost", email)
            ways = {
                "app: browser direct to S3": session.upload_browser_style,
                "app: presigned multipart": session.upload_presigned,
                "app: page upload": session.upload_page,
            }
            for upload in ways.values():
                common.make_unique(warm)
                upload(warm)
            for size, path in files.items():
                for name, upload in ways.items():
                    common.make_unique(path)
                    results[(name, size)] = measure(app.pid, lambda: upload(path))  # noqa: B023
                    print(f"{name} {size} MiB measured", file=sys.stderr, flush=True)
        print("\nPeak RSS over baseline while uploading (SSE AES256)")
        print(
            f"  {'':28}{'file':>9}{'baseline':>12}{'peak - baseline':>18}{'of file':>10}"
            f"{'vs raw':>9}"
        )
        for name in ["raw boto3 upload_file", *ways]:
            for size in sizes:
                baseline, growth = results[(name, size)]
                floor = results[("raw boto3 upload_file", size)][1]
                print(
                    f"  {name:28}{size:5d} MiB{baseline:8.1f} MiB{growth:14.1f} MiB"
                    f"{growth / size:9.1%}{growth / floor:8.2f}x"
                )
    finally:
        scratch.scratch_database_drop(DATABASE)
        server.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
