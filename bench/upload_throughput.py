"""Upload throughput through the app versus raw boto3 `upload_file`, same server, same run.

Four ways to store the same file (random bytes that sniff as a PDF, SSE AES256 on every
write), alternated round by round so drift lands on all of them:

- raw: boto3 `upload_file` straight to the bucket (multipart past 8 MiB): the baseline;
- page: the tenant upload page over HTTP, streamed as multipart/form-data to the app, which
  spools it to a temporary file, hashes and sniffs it, uploads it (multipart, SSE) and writes
  the rows;
- presigned: the presigned multipart flow as an API client may use it: SHA-256 of the file,
  start (JSON), PUT every part in turn straight to S3, complete (the app reads the object back
  to verify size, SHA-256 and type, writes the rows);
- browser: what the upload page's JavaScript does (documents/static/documents/upload.js), from
  Python with the same part size (8 MiB) and concurrency (4 parts at a time): start, each part
  hashed, its URL asked for with the digest and PUT with it (S3 checks it), the file's SHA-256
  alongside, complete (the app checks S3's part listing, type and content by ranged reads).

The app runs in a subprocess (wsgiref) against a scratch database and a private SeaweedFS.

    .venv/bin/python scripts/local_services.py test
    METIS_ENV_FILE=var/test.env .venv/bin/python bench/upload_throughput.py [--size-mib 128]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import django

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "metis.settings")
django.setup()

import _documents_app as common  # noqa: E402

from documents import multipart  # noqa: E402
from tests.support import scratch  # noqa: E402
from tests.support.seaweedfs import SeaweedS3  # noqa: E402

DATABASE = "bench_documents_throughput"
ROUNDS = 5
# The page's: the concurrency and the part size it renders (documents/views.py, direct_upload).
PARALLEL_PARTS = multipart.PARALLEL_PARTS
PART_SIZE = multipart.MIN_PART_SIZE


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--size-mib", type=int, default=128)
    parser.add_argument("--rounds", type=int, default=ROUNDS)
    args = parser.parse_args()
    size = args.size_mib * common.MiB
    work = Path(tempfile.mkdtemp(prefix="metis-bench-upload-"))
    server = SeaweedS3(data_dir=work / "seaweed").start()
    try:
        client = server.client()
        client.create_bucket(Bucket=common.BUCKET)
        scratch.scratch_database_create(DATABASE)
        _tenant, email = common.seed_tenant()
        path = work / "statement.pdf"
        common.make_pdf(path, size)
        samples: dict[str, list[float]] = {
            "raw boto3 upload_file": [],
            "app: page": [],
            "app: presigned multipart": [],
            "app: browser direct to S3": [],
        }
        with common.app_server(common.app_environment(server, DATABASE)) as app:
            session = common.TenantSession(app.port, "bench.localhost", email)
            ways = {
                "raw boto3 upload_file": lambda n: client.upload_file(
                    str(path),
                    common.BUCKET,
                    f"raw/{n}.pdf",
                    ExtraArgs={"ServerSideEncryption": "AES256"},
                ),
                "app: page": lambda n: session.upload_page(path),
                "app: presigned multipart": lambda n: session.upload_presigned(path),
                "app: browser direct to S3": lambda n: session.upload_browser_style(
                    path, parallel=PARALLEL_PARTS, part_size=PART_SIZE
                ),
            }
            for name, upload in ways.items():  # warm-up, not kept
                common.make_unique(path)
                upload(f"warm-{name[:3]}")
            for round_number in range(args.rounds):
                # Rotate the order each round, so no side always goes first.
                turn = round_number % len(ways)
                names = list(ways)[turn:] + list(ways)[:turn]
                for name in names:
                    common.make_unique(path)
                    start = time.perf_counter()
                    ways[name](f"{round_number}")
                    samples[name].append(time.perf_counter() - start)
                print(f"round {round_number + 1}/{args.rounds} done", file=sys.stderr, flush=True)
        baseline = statistics.median(samples["raw boto3 upload_file"])
        print(f"\nUpload of {args.size_mib} MiB, SSE AES256, {args.rounds} rounds, local SeaweedFS")
        print(f"  {'':28}{'median':>10}{'MiB/s':>10}{'time vs raw':>14}{'throughput vs raw':>20}")
        for name, times in samples.items():
            median = statistics.median(times)
            print(
                f"  {name:28}{median:8.2f} s{args.size_mib / median:10.1f}"
                f"{median / baseline:13.2f}x{baseline / median:19.2f}x"
            )
    finally:
        scratch.scratch_database_drop(DATABASE)
        server.stop()
        import shutil

        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
