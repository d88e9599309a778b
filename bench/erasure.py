"""Measure the erasure of one borrower against deleting the same object versions with raw boto3.

A borrower (subject reference `CUST-ERASED`) has DOCUMENTS documents, every VERSIONS_EVERY-th of
them with VERSIONS stored versions, one access-log row per version, EVENTS ClickHouse events
naming its documents, and its rows in a Parquet export; around it, other borrowers of the same
tenant and a borrower with the same reference in another tenant have their own documents,
objects and events (OTHER_EVENTS). Each round, alternating which side goes first, on fresh data:

- app: `run.erasure_run` as `manage.py erase_subject` calls it, end to end: the plan, the ledger
  entry, every store (S3, PostgreSQL, sessions, ClickHouse, cached dashboards, Parquet exports),
  the read-back of each, the receipt; the time of each step is taken by wrapping its function;
- raw loop: the same number of object versions in the same folder layout, deleted the way the
  issue names: `list_object_versions` per document folder, then `delete_object` per version id.

After every round the other subjects' objects, rows and events are counted again: all still
there. The seeding writes rows with bulk_create, objects with boto3 (eight threads) and events
with `INSERT ... SELECT FROM numbers(...)`, as the analytics benches do; none of it is timed.

It starts its own SeaweedFS (auth on, versioning on, SSE), a scratch database
(`bench_erasure_<pid>`), chdb in a temporary directory, and a private Redis key prefix; all
removed at the end, also on error. Run it with (several minutes per round by default):

    METIS_ENV_FILE=var/test.env .venv/bin/python bench/erasure.py   # --documents 5000 --rounds 3
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import os
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import django
from tqdm import tqdm

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run as a script from anywhere
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "metis.settings")
# Our own cache keys: the erasure drops dashboard keys by pattern, never someone else's.
os.environ["CACHE_KEY_PREFIX"] = f"bench-erasure-{uuid.uuid4().hex[:8]}"
django.setup()

from _document_rows import document_row, version_row  # noqa: E402
from django.conf import settings  # noqa: E402
from django.contrib.auth import get_user_model  # noqa: E402

from analytics import clickhouse, exports, schema  # noqa: E402
from documents import keys  # noqa: E402
from documents.models import AccessAction, Document, DocumentAccess, DocumentVersion  # noqa: E402
from privacy import services as privacy_services  # noqa: E402
from privacy.erasure import ledger, postgres, run, stores  # noqa: E402
from privacy.models import ErasureStatus  # noqa: E402
from tenants import db  # noqa: E402
from tenants import services as tenant_services  # noqa: E402
from tests.support import scratch  # noqa: E402
from tests.support.seaweedfs import SeaweedS3  # noqa: E402

DATABASE = f"bench_erasure_{os.getpid()}"  # runs side by side do not collide
BUCKET = "metis-bench-erasure"
SUBJECT = "CUST-ERASED"
OBJECT_BYTES = 16 * 1024  # small: the cost under test is per version, not per byte
SIDES = ("app", "raw loop")

# The steps of one erasure, each the function run.py calls for it (module, attribute, label).
STEPS = [
    (run, "_plan", "plan (PostgreSQL reads)"),
    (ledger, "ledger_append", "ledger entry"),
    (stores, "objects_erase", "S3 versions"),
    (postgres, "rows_erase", "PostgreSQL rows"),
    (stores, "sessions_erase", "sessions"),
    (stores, "events_erase", "ClickHouse events"),
    (stores, "caches_erase", "cached dashboards"),
    (stores, "exports_erase", "Parquet exports"),
    (run, "_verify", "read-back of every store"),
    (stores, "objects_remaining", "  of which S3"),
    (stores, "events_remaining", "  of which ClickHouse"),
    (stores, "exports_remaining", "  of which Parquet"),
    (run, "_finish", "receipt and audit row"),
]


@dataclass(frozen=True)
class Sizes:
    documents: int
    versions_every: int
    versions: int
    events: int
    other_documents: int
    other_events: int
    rounds: int

    def versions_of(self, number: int) -> int:
        return self.versions if number % self.versions_every == 0 else 1

    @property
    def object_versions(self) -> int:
        return sum(self.versions_of(n) for n in range(self.documents))


def parse_sizes() -> Sizes:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--documents", type=int, default=1000, help="the subject's documents")
    parser.add_argument("--versions-every", type=int, default=4, help="every Nth has versions")
    parser.add_argument("--versions", type=int, default=3, help="stored versions of those")
    parser.add_argument("--events", type=int, default=100_000, help="the subject's events")
    parser.add_argument("--other-documents", type=int, default=1000, help="other borrowers'")
    parser.add_argument("--other-events", type=int, default=400_000, help="other subjects'")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    return Sizes(**vars(args))


# --- Set-up ------------------------------------------------------------------------------------


def configure(server: SeaweedS3, chdb_path: Path) -> None:
    """Point the object-storage room, ClickHouse and the ledger at the benchmark's own."""
    settings.AWS_STORAGE_BUCKET_NAME = BUCKET
    settings.AWS_S3_ENDPOINT_URL = server.endpoint_url
    settings.AWS_ACCESS_KEY_ID = server.access_key
    settings.AWS_SECRET_ACCESS_KEY = server.secret_key
    settings.AWS_S3_SSE = "AES256"
    settings.BACKUP_REPO_BUCKET = ""  # the ledger goes beside the documents
    settings.CLICKHOUSE_URL = ""
    settings.CLICKHOUSE_CHDB_PATH = chdb_path
    settings.CLICKHOUSE_DATABASE = "bench"


def put_versions(client, tenant_id, counts: list[int], label: str) -> list[list[tuple[str, str]]]:
    """Store each document's versions (one folder per document); return [(key, version id)]."""
    document_ids = [uuid.uuid4() for _ in counts]

    def store_one(index: int) -> list[tuple[str, str]]:
        stored = []
        for _ in range(counts[index]):
            key = keys.document_key(
                tenant_id=tenant_id,
                document_type="bank-statement",
                document_id=document_ids[index],
                extension="pdf",
            )
            body = os.urandom(OBJECT_BYTES)
            put = client.put_object(
                Bucket=BUCKET,
                Key=key,
                Body=body,
                ContentType="application/pdf",
                ServerSideEncryption="AES256",
                Metadata={"sha256": hashlib.sha256(body).hexdigest()},
            )
            stored.append((key, put["VersionId"]))
        return stored

    with ThreadPoolExecutor(max_workers=8) as pool:
        return list(
            tqdm(
                pool.map(store_one, range(len(counts))),
                total=len(counts),
                desc=f"  storing {label}",
                file=sys.stderr,
                disable=None,
            )
        )


def create_rows(tenant, stored: list[list[tuple[str, str]]], ref: str) -> list[str]:
    """Document, version and access-log rows for stored objects of borrower `ref`; return ids."""
    documents, versions, accesses = [], [], []
    for folder in stored:
        document_id = uuid.UUID(folder[0][0].rsplit("/", 2)[-2])
        latest_key, latest_version = folder[-1]
        documents.append(
            document_row(
                tenant,
                document_id,
                key=latest_key,
                version_id=latest_version,
                size=OBJECT_BYTES,
                kind="bank-statement",
                name="statement.pdf",
                metadata={"subject_ref": ref},
            )
        )
        for number, (key, version_id) in enumerate(folder, start=1):
            versions.append(
                version_row(
                    tenant,
                    document_id,
                    number,
                    key=key,
                    version_id=version_id,
                    size=OBJECT_BYTES,
                    name="statement.pdf",
                )
            )
            action = AccessAction.UPLOAD if number == 1 else AccessAction.REPLACE
            accesses.append(DocumentAccess(tenant=tenant, document_id=document_id, action=action))
    with db.tenant_context(tenant.pk):  # a script is an entry point
        Document.objects.bulk_create(documents, batch_size=1000)
        DocumentVersion.objects.bulk_create(versions, batch_size=1000)
        DocumentAccess.objects.bulk_create(accesses, batch_size=1000)
    return [str(document.pk) for document in documents]


LOAD_EVENTS = """
INSERT INTO events (event_id, tenant_id, event_type, event_data, user_id, timestamp)
SELECT
    generateUUIDv4(number),
    {tenant:UUID},
    arrayElement(['document.uploaded', 'document.downloaded'], 1 + number % 2),
    concat('{"document_id": "', arrayElement({documents:Array(String)},
        1 + number % length({documents:Array(String)})), '", "document_type": "bank-statement"}'),
    NULL,
    now64(3) - toIntervalSecond(intHash64(number) % (30 * 86400))
FROM numbers({events:UInt64})
"""


def insert_events(tenant_id, document_ids: list[str], count: int) -> None:
    with clickhouse.session() as client:
        client.command(
            LOAD_EVENTS,
            parameters={"tenant": str(tenant_id), "documents": document_ids, "events": count},
        )


def count_events(tenant_id, document_ids: list[str]) -> int:
    with clickhouse.session() as client:
        return client.query(
            "SELECT count() FROM events WHERE tenant_id = {tenant:UUID} AND "
            "JSONExtractString(event_data, 'document_id') IN {documents:Array(String)}",
            parameters={"tenant": str(tenant_id), "documents": document_ids},
        ).result_rows[0][0]


def export_now() -> None:
    """One current Parquet export holding everyone's rows (the subject's included)."""
    exports.export_run()
    exports.export_prune(keep=1)


@dataclass
class Others:
    """The data around the subject that must survive every erasure."""

    tenant: object
    folders: list[str]
    document_ids: list[str]
    elsewhere_tenant: object
    elsewhere_ids: list[str]
    versions: int
    events: int


def seed_others(client, tenant, elsewhere, sizes: Sizes) -> Others:
    """Other borrowers of the tenant, and the same reference in another tenant."""
    counts = [sizes.versions_of(n) for n in range(sizes.other_documents)]
    stored = put_versions(client, tenant.pk, counts, "other borrowers' objects")
    ids: list[str] = []
    for start in range(0, len(stored), 50):  # fifty documents per other borrower
        ids += create_rows(tenant, stored[start : start + 50], f"CUST-OTHER-{start // 50}")
    theirs = put_versions(client, elsewhere.pk, [sizes.versions] * 10, "other tenant's objects")
    elsewhere_ids = create_rows(elsewhere, theirs, SUBJECT)
    insert_events(tenant.pk, ids, sizes.other_events)
    insert_events(elsewhere.pk, elsewhere_ids, sizes.other_events // 10)
    return Others(
        tenant=tenant,
        folders=sorted({key.rsplit("/", 1)[0] + "/" for folder in stored for key, _ in folder}),
        document_ids=ids,
        elsewhere_tenant=elsewhere,
        elsewhere_ids=elsewhere_ids,
        versions=sum(counts),
        events=sizes.other_events,
    )


def check_others(client, others: Others) -> None:
    """Every other subject's versions, rows and events are still there."""
    versions = 0
    for folder in others.folders:
        pages = client.get_paginator("list_object_versions").paginate(Bucket=BUCKET, Prefix=folder)
        versions += sum(len(page.get("Versions", [])) for page in pages)
    assert versions == others.versions, (versions, others.versions)
    with db.tenant_context(others.tenant.pk):
        assert Document.objects.filter(pk__in=others.document_ids).count() == len(
            others.document_ids
        )
    with db.tenant_context(others.elsewhere_tenant.pk):
        assert Document.objects.filter(pk__in=others.elsewhere_ids).count() == len(
            others.elsewhere_ids
        )
    assert count_events(others.tenant.pk, others.document_ids) == others.events


# --- The two sides -----------------------------------------------------------------------------


@contextlib.contextmanager
def timed_steps(spent: dict[str, float]) -> Iterator[None]:
    """Wrap each step's function so its time adds up in `spent`; unwrap afterwards."""
    originals = []
    for module, name, label in STEPS:
        original = getattr(module, name)
        originals.append((module, name, original))

        def timed(*args, _original=original, _label=label, **kwargs):
            started = time.perf_counter()
            try:
                return _original(*args, **kwargs)
            finally:
                spent[_label] = spent.get(_label, 0.0) + time.perf_counter() - started

        setattr(module, name, timed)
    try:
        yield
    finally:
        for module, name, original in originals:
            setattr(module, name, original)


def run_app(tenant, staff, approver, spent: dict[str, float]) -> float:
    with db.tenant_context(tenant.pk):
        request = privacy_services.erasure_request_create(
            tenant=tenant, kind="borrower", ref=SUBJECT, staff=staff
        )
        privacy_services.erasure_request_approve(request=request, staff=approver)
    with timed_steps(spent):
        started = time.perf_counter()
        receipt = run.erasure_run(request_id=request.pk, tenant_id=tenant.pk)
        elapsed = time.perf_counter() - started
    with db.tenant_context(tenant.pk):
        request.refresh_from_db()
    assert request.status == ErasureStatus.DONE, (request.status, request.error)
    assert not any(receipt["verified"].values()), receipt["verified"]
    return elapsed


def run_raw(client, folders: list[str]) -> tuple[float, int]:
    started = time.perf_counter()
    deleted = 0
    for folder in folders:
        pages = client.get_paginator("list_object_versions").paginate(Bucket=BUCKET, Prefix=folder)
        for page in pages:
            for entry in page.get("Versions", []) + page.get("DeleteMarkers", []):
                client.delete_object(Bucket=BUCKET, Key=entry["Key"], VersionId=entry["VersionId"])
                deleted += 1
    return time.perf_counter() - started, deleted


def folders_left(client, folders: list[str]) -> int:
    left = 0
    for folder in folders:
        page = client.list_object_versions(Bucket=BUCKET, Prefix=folder)
        left += len(page.get("Versions", [])) + len(page.get("DeleteMarkers", []))
    return left


# --- Main --------------------------------------------------------------------------------------


def main() -> None:
    sizes = parse_sizes()
    print(
        f"scratch database {DATABASE}, a private SeaweedFS and chdb: starting "
        f"({sizes.documents:,} documents, {sizes.object_versions:,} object versions and "
        f"{sizes.events:,} events per erasure; {sizes.rounds} rounds)",
        flush=True,
    )
    work = tempfile.TemporaryDirectory(prefix="metis-bench-erasure-")
    server = SeaweedS3(data_dir=Path(work.name) / "seaweed")
    try:
        server.start()
        client = server.client()
        client.create_bucket(Bucket=BUCKET)
        client.put_bucket_versioning(Bucket=BUCKET, VersioningConfiguration={"Status": "Enabled"})
        configure(server, Path(work.name) / "chdb")
        scratch.scratch_database_create(DATABASE)
        schema.migrate()
        tenant = tenant_services.tenant_create(name="Bench Lender", subdomain="bench")
        elsewhere = tenant_services.tenant_create(name="Other Lender", subdomain="elsewhere")
        raw_tenant = tenant_services.tenant_create(name="Raw Loop", subdomain="rawloop")
        users = get_user_model().objects
        staff = users.create_user("bench-staff", "staff@bench.example", "x", is_staff=True)
        approver = users.create_user("bench-approver", "ap@bench.example", "x", is_staff=True)
        others = seed_others(client, tenant, elsewhere, sizes)
        counts = [sizes.versions_of(n) for n in range(sizes.documents)]

        totals: dict[str, list[float]] = {side: [] for side in SIDES}
        steps: list[dict[str, float]] = []
        for round_number in range(sizes.rounds):
            order = SIDES if round_number % 2 == 0 else SIDES[::-1]
            print(f"round {round_number + 1}/{sizes.rounds}: {', '.join(order)}", flush=True)
            for side in order:
                if side == "app":
                    stored = put_versions(client, tenant.pk, counts, "the subject's objects")
                    ids = create_rows(tenant, stored, SUBJECT)
                    insert_events(tenant.pk, ids, sizes.events)
                    export_now()
                    assert count_events(tenant.pk, ids) == sizes.events
                    spent: dict[str, float] = {}
                    elapsed = run_app(tenant, staff, approver, spent)
                    steps.append(spent)
                    assert count_events(tenant.pk, ids) == 0
                    folders = sorted({k.rsplit("/", 1)[0] + "/" for f in stored for k, _ in f})
                else:
                    stored = put_versions(client, raw_tenant.pk, counts, "raw loop's objects")
                    folders = sorted({k.rsplit("/", 1)[0] + "/" for f in stored for k, _ in f})
                    elapsed, deleted = run_raw(client, folders)
                    assert deleted == sizes.object_versions, deleted
                assert folders_left(client, folders) == 0
                totals[side].append(elapsed)
                print(f"  {side:10} {elapsed:8.2f} s", flush=True)
            check_others(client, others)
        report(sizes, totals, steps)
    finally:
        scratch.scratch_database_drop(DATABASE)
        server.stop()
        work.cleanup()
        print(f"\nscratch database {DATABASE} dropped, SeaweedFS and chdb removed")


def report(sizes: Sizes, totals: dict[str, list[float]], steps: list[dict[str, float]]) -> None:
    baseline = statistics.median(totals["raw loop"])
    print(
        f"\nErasure of one borrower: {sizes.documents:,} documents, "
        f"{sizes.object_versions:,} object versions, {sizes.events:,} events; around it "
        f"{sizes.other_documents:,} other documents and {sizes.other_events:,} other events "
        f"(median of {sizes.rounds} rounds)"
    )
    print(f"  {'':34}{'seconds':>10}{'vs raw loop':>14}")
    for side in SIDES:
        median = statistics.median(totals[side])
        print(f"  {side:34}{median:10.2f}{median / baseline:13.2f}x")
    print("\n  app, per step")
    for _, _, label in STEPS:
        median = statistics.median(spent.get(label, 0.0) for spent in steps)
        print(f"  {label:34}{median:10.2f}{median / baseline:13.2f}x")


if __name__ == "__main__":
    main()
