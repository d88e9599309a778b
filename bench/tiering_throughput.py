"""Measure tiering throughput: objects/s through `documents_tier_due` against raw boto3 loops.

All sides move the same number of same-sized objects STANDARD → STANDARD_IA on the same
SeaweedFS server in the same run, alternated round by round (which side goes first alternates
too), each round on fresh objects:

- app: `tiering.documents_tier_due` for one tenant, called as the Celery task and the command
  call it (a tenant scope, no transaction around it): per batch of DOCUMENT_TIER_BATCH_SIZE the
  row query, lock and claim, then `copy_object` guarded by the row's ETag (no HEAD) on a pool
  of DOCUMENT_TIERING_WORKERS threads, then the batch's rows in one transaction (documents,
  versions, access log, events);
- raw copy: a sequential loop of `copy_object` (same class, MetadataDirective=REPLACE, SSE,
  content type, metadata), the baseline the issue asks for;
- raw head+copy: the same loop with a HEAD before each copy (what the app did before: read the
  metadata to re-send and skip objects already moved);
- app, one at a time (DOCUMENT_TIERING_WORKERS=1): the app's path with a pool of one thread,
  to show what the pool brings and what the batched rows bring;

It starts its own SeaweedFS (`weed mini`, auth on, versioning on) and a scratch database
(`bench_tiering`), and removes both at the end, also on error. Run it with:

    METIS_ENV_FILE=var/test.env .venv/bin/python bench/tiering_throughput.py
"""

from __future__ import annotations

import hashlib
import os
import statistics
import sys
import time
import uuid
from datetime import timedelta
from pathlib import Path

import django
from tqdm import tqdm

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run as a script from anywhere
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "metis.settings")
django.setup()

from _document_rows import document_row, version_row  # noqa: E402
from django.conf import settings  # noqa: E402
from django.utils import timezone  # noqa: E402

from documents import keys, tiering  # noqa: E402
from documents.models import Document, DocumentVersion  # noqa: E402
from tenants import db, services  # noqa: E402
from tests.support import scratch  # noqa: E402
from tests.support.seaweedfs import SeaweedS3  # noqa: E402

DATABASE = "bench_tiering"
BUCKET = "metis-bench-tiering"
OBJECTS = 200  # per side per round
OBJECT_BYTES = 128 * 1024  # a scanned KYC page
ROUNDS = 4
SIDES = ("app", "raw copy", "raw head+copy", "app, one at a time")


def configure_storage(server: SeaweedS3) -> None:
    """Point the object-storage room at the benchmark's own server and bucket."""
    settings.AWS_STORAGE_BUCKET_NAME = BUCKET
    settings.AWS_S3_ENDPOINT_URL = server.endpoint_url
    settings.AWS_ACCESS_KEY_ID = server.access_key
    settings.AWS_SECRET_ACCESS_KEY = server.secret_key
    settings.AWS_S3_SSE = "AES256"


def put_objects(client, tenant, count: int, label: str) -> list[tuple[uuid.UUID, str, str, str]]:
    """Store `count` encrypted objects under the tenant's prefix; return (id, key, version,
    ETag)."""
    stored = []
    for _ in tqdm(range(count), desc=f"  storing {label}", file=sys.stderr, disable=None):
        document_id = uuid.uuid4()
        key = keys.document_key(
            tenant_id=tenant.pk, document_type="pan", document_id=document_id, extension="pdf"
        )
        body = document_id.bytes * (OBJECT_BYTES // 16)
        put = client.put_object(
            Bucket=BUCKET,
            Key=key,
            Body=body,
            ContentType="application/pdf",
            ServerSideEncryption="AES256",
            Metadata={"sha256": hashlib.sha256(body).hexdigest()},
        )
        stored.append((document_id, key, put["VersionId"], put["ETag"]))
    return stored


def create_rows(tenant, stored: list[tuple[uuid.UUID, str, str, str]]) -> None:
    """Rows for the stored objects (with the ETag, as an upload records it), 40 days old: all
    due for STANDARD_IA."""
    stored_at = timezone.now() - timedelta(days=40)
    with db.tenant_context(tenant.pk):
        Document.objects.bulk_create(
            document_row(
                tenant,
                document_id,
                key=key,
                version_id=version_id,
                size=OBJECT_BYTES,
                kind="pan",
                name="pan.pdf",
                etag=etag,
            )
            for document_id, key, version_id, etag in stored
        )
        DocumentVersion.objects.bulk_create(
            version_row(
                tenant,
                document_id,
                1,
                key=key,
                version_id=version_id,
                size=OBJECT_BYTES,
                name="pan.pdf",
            )
            for document_id, key, version_id, _ in stored
        )
        ids = [document_id for document_id, *_ in stored]
        Document.objects.filter(pk__in=ids).update(created_at=stored_at, stored_at=stored_at)
        DocumentVersion.objects.filter(document_id__in=ids).update(created_at=stored_at)


def run_app(tenant, stored, outcome: str = tiering.MOVED) -> float:
    start = time.perf_counter()
    # A script is an entry point; it opens the tenant scope as the task does (no transaction).
    with db.tenant_context(tenant.pk, atomic=False):
        report = tiering.documents_tier_due(tenant_id=tenant.pk)
    elapsed = time.perf_counter() - start
    assert report.outcomes == {outcome: len(stored)}, report.outcomes
    return elapsed


def run_raw(client, stored, *, head: bool) -> float:
    start = time.perf_counter()
    for _, key, *_ in stored:
        if head:
            metadata = client.head_object(Bucket=BUCKET, Key=key)["Metadata"]
        else:
            metadata = {"sha256": "known in advance"}
        client.copy_object(
            Bucket=BUCKET,
            Key=key,
            CopySource={"Bucket": BUCKET, "Key": key},
            StorageClass="STANDARD_IA",
            MetadataDirective="REPLACE",
            ContentType="application/pdf",
            Metadata=metadata,
            ServerSideEncryption="AES256",
        )
    return time.perf_counter() - start


def check_moved(client, stored) -> None:
    for _, key, *_ in stored:
        head = client.head_object(Bucket=BUCKET, Key=key)
        assert head["StorageClass"] == "STANDARD_IA" and head["ServerSideEncryption"] == "AES256"


def main() -> None:
    print(f"scratch database {DATABASE} and a private SeaweedFS: starting")
    server = SeaweedS3()
    try:
        server.start()
        client = server.client()
        client.create_bucket(Bucket=BUCKET)
        client.put_bucket_versioning(Bucket=BUCKET, VersioningConfiguration={"Status": "Enabled"})
        configure_storage(server)
        scratch.scratch_database_create(DATABASE)
        rates: dict[str, list[float]] = {side: [] for side in SIDES}
        default_workers = settings.DOCUMENT_TIERING_WORKERS
        for round_number in range(ROUNDS):
            # Each side gets its own tenant and fresh objects; the order rotates every round.
            order = SIDES[round_number % len(SIDES) :] + SIDES[: round_number % len(SIDES)]
            print(f"round {round_number + 1}/{ROUNDS}: {', '.join(order)}", flush=True)
            for side in order:
                tenant = services.tenant_create(
                    name=f"Bench {round_number} {side}", subdomain=f"bench{uuid.uuid4().hex[:8]}"
                )
                stored = put_objects(client, tenant, OBJECTS, side)
                if side.startswith("app"):
                    create_rows(tenant, stored)
                    workers = 1 if side == "app, one at a time" else default_workers
                    settings.DOCUMENT_TIERING_WORKERS = workers
                    elapsed = run_app(tenant, stored)
                else:
                    elapsed = run_raw(client, stored, head=side == "raw head+copy")
                check_moved(client, stored)
                rates[side].append(OBJECTS / elapsed)
                print(f"  {side:20} {OBJECTS / elapsed:8.1f} objects/s", flush=True)
        settings.DOCUMENT_TIERING_WORKERS = default_workers
        report(rates)
    finally:
        scratch.scratch_database_drop(DATABASE)
        server.stop()
        print(f"\nscratch database {DATABASE} dropped, SeaweedFS stopped")


def report(rates: dict[str, list[float]]) -> None:
    baseline = statistics.median(rates["raw copy"])
    print(
        f"\nTiering STANDARD → STANDARD_IA, {OBJECTS} objects of {OBJECT_BYTES // 1024} KiB per "
        f"side per round, {ROUNDS} rounds (median of rounds), "
        f"DOCUMENT_TIERING_WORKERS={settings.DOCUMENT_TIERING_WORKERS}"
    )
    print(f"  {'':22}{'objects/s':>12}{'ms/object':>12}{'vs raw copy':>14}")
    for side in SIDES:
        median = statistics.median(rates[side])
        print(f"  {side:22}{median:12.1f}{1000 / median:12.1f}{median / baseline:13.2f}x")
    per_round = ", ".join(
        f"{app / raw:.2f}x" for app, raw in zip(rates["app"], rates["raw copy"], strict=True)
    )
    print(f"  app / raw copy per round: {per_round}")


if __name__ == "__main__":
    main()
