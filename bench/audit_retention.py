"""Cost of cutting one month of the audit log: export to Parquet, store, read back, check row by
row, walk the chains, record the cuts and drop, against reading the partition's rows once.

    METIS_ENV_FILE=var/test.env .venv/bin/python bench/audit_retention.py [rows] [tenants]

Runs in a scratch database (tests/support/scratch.py) and a private SeaweedFS server (versioned
bucket). The rows are written through the chain trigger this month; the run is timed with the
clock moved past retention, so this month's partition is the one cut.
"""

from __future__ import annotations

import os
import sys
import time
import uuid
from datetime import timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "metis.settings")

import django

django.setup()

from django.db import connections  # noqa: E402
from django.test import override_settings  # noqa: E402
from django.utils import timezone  # noqa: E402

from tests.support import scratch  # noqa: E402
from tests.support.seaweedfs import SeaweedS3  # noqa: E402

BUCKET = "bench-audit-retention"
SEED_SQL = """
INSERT INTO audit_log (tenant_id, action, actor_type, actor_id, target_type, target_id,
                       ip_address, request_id, metadata)
SELECT %s, 'bench.read', 'tenant_user', '42', 'document', i::text, '203.0.113.9',
       md5(i::text), jsonb_build_object('status', 200, 'view', 'documents:detail')
FROM generate_series(1, %s) AS i
"""


def main(rows: int, tenants: int) -> None:
    name = f"bench_audit_retention_{os.getpid()}"
    scratch.scratch_database_create(name)
    try:
        from audit import retention
        from tenants import db
        from tenants.models import Tenant

        started = time.perf_counter()
        for _ in range(tenants):
            tenant = Tenant.objects.create(name="Bench", subdomain=f"b{uuid.uuid4().hex[:8]}")
            with db.tenant_context(tenant.pk), connections["default"].cursor() as cursor:
                cursor.execute(SEED_SQL, [tenant.pk, rows // tenants])
        print(f"seeded {rows} rows in {tenants} chains: {time.perf_counter() - started:.1f} s")
        partition = f"audit_log_{timezone.now():%Y_%m}"
        started = time.perf_counter()
        with connections["owner"].cursor() as cursor:
            cursor.execute(f"SELECT * FROM {partition}")
            read = len(cursor.fetchall())
        baseline = time.perf_counter() - started
        next_month = (timezone.now().replace(day=1) + timedelta(days=32)).replace(day=1)
        with SeaweedS3() as server:
            client = server.client()
            client.create_bucket(Bucket=BUCKET)
            client.put_bucket_versioning(
                Bucket=BUCKET, VersioningConfiguration={"Status": "Enabled"}
            )
            with override_settings(
                AWS_STORAGE_BUCKET_NAME=BUCKET,
                AWS_S3_ENDPOINT_URL=server.endpoint_url,
                AWS_ACCESS_KEY_ID=server.access_key,
                AWS_SECRET_ACCESS_KEY=server.secret_key,
                AWS_S3_SSE="AES256",
                AUDIT_ANCHOR_BUCKET="",
                AUDIT_RETENTION_DAYS=30,
            ):
                started = time.perf_counter()
                (cut,) = retention.retention_run(
                    now=next_month + timedelta(days=31), report=lambda line: None
                )
                total = time.perf_counter() - started
                size = client.head_object(Bucket=BUCKET, Key=cut.key)["ContentLength"]
        print(f"partition {partition}: {cut.rows} rows ({read} read by the baseline)")
        print(f"baseline, SELECT * of the partition: {baseline:6.2f} s")
        rate = cut.rows / total
        print(f"retention cut, end to end:           {total:6.2f} s  ({rate:,.0f} rows/s)")
        print(f"ratio: {total / baseline:.1f}x; Parquet {size / cut.rows:.0f} bytes/row")
    finally:
        scratch.close_all_connections()
        scratch.scratch_database_drop(name)


if __name__ == "__main__":
    main(
        int(sys.argv[1]) if len(sys.argv) > 1 else 100_000,
        int(sys.argv[2]) if len(sys.argv) > 2 else 10,
    )
