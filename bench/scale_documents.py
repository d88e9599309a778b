"""One tenant with a million documents: the list page, the admin changelist, the tiering plan.

Figures, each against a baseline measured in the same run on the same rows:

- the tenant's document list (keyset pages, documents/pagination.py, rows of the page's columns
  only, documents/list_rows.py) at the newest page, the middle, the oldest page and a "newer"
  page from the middle, through the test client, the whole request: p50 and p95 against the
  50 ms goal; the baselines are the page's previous query (Django's Paginator: COUNT(*) and
  OFFSET, versions counted by a grouped join) at the same depth, and the same page of a
  2,000-document tenant;
- the admin document changelist under the tenant's context (estimated count, the storage
  summary read from the usage rows of documents/usage_sql.py): p50 and p95 against 500 ms; the
  baselines are the 2,000-document tenant's changelist and the exact COUNT(*) it skips;
- `manage.py tier_documents --dry-run` (the partial index `documents_tier_due` over
  `stored_at`) against 10 s; the baseline is one COUNT(*) of the same tenant's live documents
  older than the IA cut-off.

It builds a scratch database (`bench_scale_documents`), seeds with COPY (bench/_scale_common.py;
`stored_at` is each row's `created_at`, one version each; the usage triggers count each chunk
as it is moved in), and drops the database at the end, also on error. Seeding a million rows
takes about 3 minutes on a quiet two-core machine:

    METIS_ENV_FILE=var/test.env .venv/bin/python bench/scale_documents.py [--documents 1000000]
"""

from __future__ import annotations

import argparse
import io
import logging
import os
import random
import sys
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import django
from tqdm import tqdm

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run as a script from anywhere
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "metis.settings")
django.setup()

from django.conf import settings  # noqa: E402
from django.contrib.auth import get_user_model  # noqa: E402
from django.core.management import call_command  # noqa: E402
from django.core.paginator import Paginator  # noqa: E402
from django.db import close_old_connections, connections  # noqa: E402
from django.db.models import Count  # noqa: E402
from django.test import Client  # noqa: E402

from bench import _scale_common as common  # noqa: E402
from documents import pagination  # noqa: E402
from documents.models import Document  # noqa: E402
from tenants import db, services  # noqa: E402
from tests.support import scratch  # noqa: E402
from tests.support import staff as staff_support  # noqa: E402

DATABASE = "bench_scale_documents"
PASSWORD = "bench password, not a secret"
CHUNK = 100_000
OTHER_DOCUMENTS = 2_000  # a second tenant, so every page must leave its rows out
SPAN = timedelta(days=3 * 365)  # created_at spread over three years: most are due for tiering
TYPES = ["pan", "aadhar", "bank-statement", "image", "report"]
CLASSES = ["STANDARD"] * 5 + ["STANDARD_IA"] * 3 + ["GLACIER"] * 2

DOCUMENT_COLUMNS = [
    "id",
    "tenant_id",
    "document_type",
    "original_filename",
    "content_type",
    "size_bytes",
    "sha256",
    "storage_key",
    "version_id",
    "storage_class",
    "storage_class_changed_at",
    "restore_status",
    "created_at",
    "stored_at",
    "updated_at",
]


def document_rows(tenant_id: uuid.UUID, start: int, stop: int, count: int, now: datetime):
    rng = random.Random(start)
    step = SPAN / count
    for n in range(start, stop):
        document_id = uuid.uuid4()
        created = now - SPAN + step * n  # distinct and ascending with n
        yield (
            document_id,
            tenant_id,
            rng.choice(TYPES),
            f"document-{n:07d}.pdf",
            "application/pdf",
            rng.randint(20_000, 5_000_000),
            rng.randbytes(32).hex(),
            f"tenants/{tenant_id}/documents/{document_id}/v1.pdf",
            "",
            rng.choice(CLASSES),
            created,
            "",
            created,
            created,
            created,
        )


def seed_documents(tenant_id: uuid.UUID, count: int, now: datetime, label: str) -> None:
    """COPY `count` documents (and one version each) into the tenant, chunk by chunk."""
    versions = (
        "INSERT INTO document_versions (tenant_id, document_id, number, original_filename,"
        " content_type, size_bytes, sha256, storage_key, version_id, created_at)"
        " SELECT tenant_id, id, 1, original_filename, content_type, size_bytes, sha256,"
        " storage_key, version_id, created_at FROM documents_seed"
    )
    with (
        common.staging_table("documents", DOCUMENT_COLUMNS) as staging,
        tqdm(total=count, desc=f"seeding {label}", unit="doc", mininterval=5) as bar,
    ):
        for start in range(0, count, CHUNK):
            stop = min(start + CHUNK, count)
            common.copy_rows(
                staging, DOCUMENT_COLUMNS, document_rows(tenant_id, start, stop, count, now)
            )
            common.move_rows(
                staging, "documents", DOCUMENT_COLUMNS, tenant_id=tenant_id, extra=[versions]
            )
            bar.update(stop - start)


def row_at(tenant_id: uuid.UUID, offset: int) -> Document:
    with db.tenant_context(tenant_id):
        return (
            Document.objects.for_tenant(tenant_id)
            .live()
            .order_by("-created_at", "-pk")
            .only("created_at")[offset : offset + 1]
            .get()
        )


def explain(tenant_id: uuid.UUID, cursor: str) -> str:
    at = pagination.cursor_read(cursor, tenant_id=tenant_id)
    with db.tenant_context(tenant_id), connections["default"].cursor() as c:
        queryset = (
            Document.objects.for_tenant(tenant_id)
            .live()
            .filter(created_at__lte=at.created_at)
            .order_by("-created_at", "-pk")[:51]
        )
        sql, params = queryset.query.sql_with_params()
        c.execute(f"EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) {sql}", params)
        return "\n".join(row[0] for row in c.fetchall())


def old_page_query(tenant_id: uuid.UUID, number: int) -> None:
    """The list's query before keyset pages: Paginator (COUNT, OFFSET) over a grouped join."""
    with db.tenant_context(tenant_id):
        documents = (
            Document.objects.for_tenant(tenant_id)
            .live()
            .annotate(version_count=Count("versions"))
            .order_by("-created_at", "pk")
        )
        page = Paginator(documents, 50).get_page(number)
        assert len(list(page)) > 0


def exact_count(tenant_id: uuid.UUID) -> None:
    with db.tenant_context(tenant_id), connections["default"].cursor() as c:
        c.execute("SELECT count(*) FROM documents WHERE tenant_id = %s", [tenant_id])
        c.fetchone()


def due_count(tenant_id: uuid.UUID, now: datetime) -> None:
    cut = now - timedelta(days=settings.DOCUMENT_TIER_IA_AFTER_DAYS)
    with db.tenant_context(tenant_id), connections["default"].cursor() as c:
        c.execute(
            "SELECT count(*) FROM documents WHERE tenant_id = %s AND deleted_at IS NULL"
            " AND created_at <= %s",
            [tenant_id, cut],
        )
        c.fetchone()


def staff_client(tenant_id: uuid.UUID, username: str = "bench-staff") -> Client:
    user = get_user_model().objects.create_user(
        username, f"{username}@bench.example", PASSWORD, is_staff=True, is_superuser=True
    )
    client = Client(HTTP_HOST=settings.METIS_BASE_DOMAIN)
    client.force_login(user)
    staff_support.mark_verified(client, user)
    response = client.post("/admin/tenant-context/", {"tenant": str(tenant_id)})
    assert response.status_code == 302, response.content[:300]
    close_old_connections()
    return client


def line(label: str, samples: list[float], goal: float | None = None) -> None:
    verdict = ""
    if goal is not None:
        verdict = "  met" if common.p95(samples) <= goal else "  NOT met"
    print(
        f"  {label:34}{common.ms(common.p50(samples))}{common.ms(common.p95(samples))}"
        f"  ({len(samples)} runs){verdict}"
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--documents", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=40)
    args = parser.parse_args()
    logging.getLogger("metis.request").setLevel(logging.WARNING)  # one line per request
    count = args.documents
    print(f"scratch database {DATABASE}: creating and migrating", flush=True)
    try:
        scratch.scratch_database_create(DATABASE)
        tenant = services.tenant_create(name="Big Lender", subdomain="big")
        other = services.tenant_create(name="Other Lender", subdomain="other")
        for t in (tenant, other):
            with db.tenant_context(t.pk):
                services.tenant_user_create(
                    tenant=t, email=f"user@{t.subdomain}.example", name="User", password=PASSWORD
                )
        now = datetime.now(UTC)
        started = common.time.perf_counter()
        with common.audit_trigger_off("documents"):
            seed_documents(tenant.pk, count, now, "big")
            seed_documents(other.pk, OTHER_DOCUMENTS, now, "other")
        seeded = common.time.perf_counter() - started
        common.owner_execute("VACUUM ANALYZE documents")
        common.owner_execute("VACUUM ANALYZE document_versions")
        print(f"seeded {count + OTHER_DOCUMENTS:,} documents and versions in {seeded:.1f} s")

        client = common.tenant_client("big", "user@big.example", PASSWORD)
        small_client = common.tenant_client("other", "user@other.example", PASSWORD)
        middle = row_at(tenant.pk, count // 2)
        last = row_at(tenant.pk, count - 30)  # the oldest page: 30 rows left after it
        cursors = {
            "newest page": None,
            "middle": pagination.cursor_make(
                tenant_id=tenant.pk, row=middle, direction=pagination.OLDER
            ),
            "oldest page": pagination.cursor_make(
                tenant_id=tenant.pk, row=last, direction=pagination.OLDER
            ),
            "newer from the middle": pagination.cursor_make(
                tenant_id=tenant.pk, row=middle, direction=pagination.NEWER
            ),
        }
        body = common.get_page(client, "/documents/")
        assert body.count(b"/download/") + body.count(b"restore") >= 50
        assert b"Other Lender" not in body

        print("\nTenant document list, keyset pages of 50 (goal: p95 <= 50 ms on any page)")
        print(f"  {'page':34}{'p50':>12}{'p95':>12}")
        samples = {}
        for label, cursor in cursors.items():
            path = "/documents/" + (f"?after={cursor}" if cursor else "")
            samples[label] = common.page_samples(client, path, args.runs)
            line(label, samples[label], goal=0.050)
        # A minute a run over a million rows (measured): one run each.
        print("  baseline, the previous query (COUNT, OFFSET, grouped join), 1 run each:")
        baseline = {}
        for label, number in [("newest", 1), ("middle", count // 100)]:
            baseline[label] = [common.timed(lambda n=number: old_page_query(tenant.pk, n))]
            line(f"OFFSET {label}", baseline[label])
        ratio = common.p50(samples["middle"]) / common.p50(baseline["middle"])
        print(f"  ratio keyset page / OFFSET page, middle: {ratio:.3f}x")
        small = common.page_samples(small_client, "/documents/", args.runs)
        line(f"baseline: {OTHER_DOCUMENTS:,}-document tenant", small)
        worst = max(common.p50(s) for s in samples.values()) / common.p50(small)
        print(f"  ratio slowest page / the small tenant's page: {worst:.2f}x")
        print("\n  EXPLAIN ANALYZE of the oldest page's query:")
        print("    " + explain(tenant.pk, cursors["oldest page"]).replace("\n", "\n    "))

        print("\nAdmin document changelist, tenant context chosen (goal: p95 <= 500 ms)")
        admin = staff_client(tenant.pk)
        changelist = "/admin/documents/document/"
        assert b"Big Lender" in common.get_page(admin, changelist)
        runs = max(10, args.runs // 4)
        admin_samples = common.page_samples(admin, changelist, runs)
        line("changelist, first page", admin_samples, goal=0.5)
        second = common.page_samples(admin, changelist + "?p=2", runs)
        line("changelist, page 2", second, goal=0.5)
        small = staff_client(other.pk, username="bench-staff-2")
        small_samples = common.page_samples(small, changelist, runs)
        line(f"baseline: {OTHER_DOCUMENTS:,}-document tenant", small_samples)
        ratio = common.p50(admin_samples) / common.p50(small_samples)
        print(f"  ratio {count:,} / {OTHER_DOCUMENTS:,} documents: {ratio:.2f}x")
        counts = [common.timed(lambda: exact_count(tenant.pk)) for _ in range(5)]
        line("baseline: exact COUNT(*) it skips", counts)

        print("\ntier_documents --dry-run, every tenant (goal: <= 10 s)")
        dry = []
        for _ in range(3):
            out = io.StringIO()
            dry.append(
                common.timed(lambda o=out: call_command("tier_documents", "--dry-run", stdout=o))
            )
        plan = out.getvalue().strip().splitlines()
        print("    " + "\n    ".join(plan))
        line("tier_documents --dry-run", dry, goal=10.0)
        base = [common.timed(lambda: due_count(tenant.pk, now)) for _ in range(3)]
        line("baseline: COUNT(*) older than IA", base)
        print(f"  ratio dry run / count: {common.p50(dry) / common.p50(base):.2f}x")
    finally:
        scratch.scratch_database_drop(DATABASE)
        print(f"\nscratch database {DATABASE}: dropped")


if __name__ == "__main__":
    main()
