"""Measure the Parquet export and the SQL workbench against plain baselines in the same run.

- export: `exports.export_run()` (keyset pages, Arrow conversion, Parquet + zstd, atomic object
  writes, manifest) against a raw read of the same columns of the same tables in one
  all-tenants transaction with a psycopg cursor (no Parquet, no files), alternated run by run;
- workbench: `workbench.workbench_query_run()` (statement check, audit row, a local copy of the
  export, locked connection, worker thread, row cap) against the same SQL on a plain DuckDB
  connection with the same views over S3, alternated query by query.

It builds a scratch database (`bench_metis_export`), seeds 4 tenants x 50,000 documents and
1,000 users each, writes the exports to a temporary local object store, and drops the database
at the end, also on error:

    METIS_ENV_FILE=var/test.env .venv/bin/python bench/export_parquet.py
"""

from __future__ import annotations

import os
import statistics
import sys
import time
import uuid
from pathlib import Path

import django

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run as a script from anywhere
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "metis.settings")
django.setup()

import duckdb  # noqa: E402
from django.conf import settings  # noqa: E402
from django.contrib.auth.models import User  # noqa: E402
from django.db import connections  # noqa: E402
from django.test import override_settings  # noqa: E402

from analytics import duck, exports, workbench  # noqa: E402
from documents.models import Document  # noqa: E402
from tenants import db, services  # noqa: E402
from tenants.models import TenantUser  # noqa: E402
from tests.support import scratch  # noqa: E402
from tests.support.seaweedfs import SeaweedS3  # noqa: E402

BUCKET = "metis-bench-export"
DATABASE = "bench_metis_export"
TENANTS = 4
DOCUMENTS_PER_TENANT = 50_000
USERS_PER_TENANT = 1_000
EXPORT_ROUNDS = 3
QUERY_RUNS = 20
TYPES = ["pan", "aadhar", "bank-statement", "image"]
TIERS = ["STANDARD", "STANDARD_IA", "GLACIER"]
QUERY = (
    "SELECT t.subdomain, d.document_type, d.storage_class, count(*) AS n, sum(d.size_bytes) AS b "
    "FROM documents d JOIN tenants t ON t.id = d.tenant_id WHERE d.deleted_at IS NULL "
    "GROUP BY ALL ORDER BY ALL"
)


def seed() -> None:
    for n in range(TENANTS):
        tenant = services.tenant_create(name=f"Bench Lender {n}", subdomain=f"bench{n}")
        with db.tenant_context(tenant.pk):
            TenantUser.objects.bulk_create(
                TenantUser(tenant=tenant, email=f"u{i}@bench{n}.example", name=f"User {i}")
                for i in range(USERS_PER_TENANT)
            )
            for start in range(0, DOCUMENTS_PER_TENANT, 5000):
                Document.objects.bulk_create(
                    Document(
                        id=uuid.uuid4(),
                        tenant=tenant,
                        document_type=TYPES[i % len(TYPES)],
                        original_filename=f"doc-{i}.pdf",
                        content_type="application/pdf",
                        size_bytes=1000 + i,
                        sha256=f"{i:064x}",
                        storage_key=f"tenants/{tenant.pk}/documents/pan/{uuid.uuid4()}/x.pdf",
                        storage_class=TIERS[i % len(TIERS)],
                        metadata={"applicant": i},
                    )
                    for i in range(start, min(start + 5000, DOCUMENTS_PER_TENANT))
                )


def raw_read() -> int:
    """Baseline: the exported columns of every table, read and discarded, one transaction."""
    rows = 0
    with db.all_tenants_context(), connections["default"].cursor() as cursor:
        for table in exports.TABLES:
            # The exported names are the columns' own names.
            columns = ", ".join(connections["default"].ops.quote_name(n) for n in table.columns)
            cursor.execute(f"SELECT {columns} FROM {table.model._meta.db_table}")
            while batch := cursor.fetchmany(5000):
                rows += len(batch)
    return rows


def timed(action) -> float:
    started = time.perf_counter()
    action()
    return time.perf_counter() - started


def private_s3(server: SeaweedS3) -> override_settings:
    """Settings that point the object-storage room at the benchmark's own server."""
    server.client().create_bucket(Bucket=BUCKET)
    return override_settings(
        AWS_STORAGE_BUCKET_NAME=BUCKET,
        AWS_S3_ENDPOINT_URL=server.endpoint_url,
        AWS_ACCESS_KEY_ID=server.access_key,
        AWS_SECRET_ACCESS_KEY=server.secret_key,
        AWS_S3_SSE="AES256",
    )


def parquet_bytes(server: SeaweedS3) -> int:
    listing = server.client().list_objects_v2(Bucket=BUCKET, Prefix=exports.EXPORT_PREFIX)
    return sum(o["Size"] for o in listing.get("Contents", []) if o["Key"].endswith(".parquet"))


def main() -> None:
    print(f"scratch database {DATABASE}: creating, migrating, seeding")
    try:
        scratch.scratch_database_create(DATABASE)
        seed()
        total_rows = TENANTS * (1 + USERS_PER_TENANT + DOCUMENTS_PER_TENANT)
        with SeaweedS3() as server, private_s3(server):
            assert raw_read() == total_rows

            print("timing the export…", flush=True)
            export_s, raw_s = [], []
            for round_number in range(EXPORT_ROUNDS):
                sides = [("export", export_s, exports.export_run), ("raw", raw_s, raw_read)]
                for _, samples, action in sides if round_number % 2 == 0 else sides[::-1]:
                    samples.append(timed(action))
            manifest = exports.latest_export()
            assert sum(t["rows"] for t in manifest["tables"].values()) == total_rows
            size = parquet_bytes(server) / EXPORT_ROUNDS

            print("timing workbench queries…", flush=True)
            staff = User.objects.create_superuser("bench", "bench@metis.example", "x")
            views = {name: manifest["tables"][name]["key"] for name in exports.TABLE_NAMES}
            plain = duckdb.connect(config={"threads": settings.DUCKDB_THREADS})
            plain.execute(f"LOAD {duck.quote_literal(str(duck.httpfs_extension_path()))}")
            plain.execute(duck.s3_secret_sql(duck.object_url("")))
            for name, key in views.items():
                plain.execute(
                    f"CREATE VIEW {name} AS SELECT * FROM read_parquet("
                    f"{duck.quote_literal(duck.object_url(key))})"
                )
            expected = plain.execute(QUERY).fetchall()
            bench_s, plain_s = [], []
            for run in range(QUERY_RUNS):

                def locked():
                    result = workbench.workbench_query_run(staff=staff, sql=QUERY)
                    assert result.rows == expected, result.error

                def bare():
                    plain.execute(QUERY).fetchmany(settings.DUCKDB_WORKBENCH_MAX_ROWS + 1)

                sides = [(bench_s, locked), (plain_s, bare)]
                for samples, action in sides if run % 2 == 0 else sides[::-1]:
                    samples.append(timed(action))
            plain.close()

        export_med, raw_med = statistics.median(export_s), statistics.median(raw_s)
        print(f"\nExport of {total_rows:,} rows ({TENANTS} tenants), {EXPORT_ROUNDS} runs per side")
        print(f"  export_run (Parquet, to S3)      : median {export_med:.2f} s")
        print(f"    = {total_rows / export_med:,.0f} rows/s, {size / 1e6:.1f} MB of Parquet")
        print(f"  raw read of the same columns:      median {raw_med:.2f} s")
        print(f"  ratio export / raw read: {export_med / raw_med:.2f}x")
        bench_med, plain_med = statistics.median(bench_s), statistics.median(plain_s)
        p95 = statistics.quantiles(bench_s, n=20)[-1]
        print(f"\nWorkbench query over the export ({QUERY_RUNS} runs per side)")
        print(f"  workbench_query_run: median {bench_med * 1000:.1f} ms, p95 {p95 * 1000:.1f} ms")
        print(f"  plain DuckDB, same views: median {plain_med * 1000:.1f} ms")
        print(f"  ratio workbench / plain: {bench_med / plain_med:.2f}x")
    finally:
        scratch.scratch_database_drop(DATABASE)
        print(f"\nscratch database {DATABASE}: dropped")


if __name__ == "__main__":
    main()
