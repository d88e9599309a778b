"""Insert cost of the audit log's hash chain: `audit.record()` against a plain insert into an
unchained copy of the table, same columns, same session, same tenant context.

    METIS_ENV_FILE=var/test.env .venv/bin/python bench/audit_insert.py [rows]

Runs in a scratch database (tests/support/scratch.py), migrated as the owner; prints µs per row
and the ratio.
"""

from __future__ import annotations

import os
import sys
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "metis.settings")
os.environ.setdefault("METIS_TEST_DB_PREFIX", "bench_audit")

import django

django.setup()

from django.db import connections  # noqa: E402

from tests.support import scratch  # noqa: E402

PLAIN_SQL = """
INSERT INTO bench_plain_log (tenant_id, action, actor_type, actor_id, target_type, target_id,
                             ip_address, request_id, metadata)
VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s::jsonb)
"""


def main(rows: int) -> None:
    name = f"bench_audit_{os.getpid()}"
    scratch.scratch_database_create(name)
    try:
        from audit import recorder
        from tenants import db
        from tenants.models import Tenant

        with connections["owner"].cursor() as cursor:
            cursor.execute(
                "CREATE TABLE bench_plain_log (LIKE audit_log INCLUDING DEFAULTS "
                "INCLUDING IDENTITY); "
                "GRANT SELECT, INSERT ON bench_plain_log TO PUBLIC"
            )
        tenant = Tenant.objects.create(name="Bench", subdomain=f"b{uuid.uuid4().hex[:8]}")
        with db.tenant_context(tenant.pk), connections["default"].cursor() as cursor:
            started = time.perf_counter()
            for i in range(rows):
                cursor.execute(
                    PLAIN_SQL,
                    [tenant.pk, "bench.read", "system", "", "thing", str(i), None, "", "{}"],
                )
            plain = (time.perf_counter() - started) / rows
            started = time.perf_counter()
            for i in range(rows):
                recorder.record(action="bench.read", target_type="thing", target_id=i)
            chained = (time.perf_counter() - started) / rows
        print(f"rows per variant: {rows}, one transaction each")
        print(f"plain insert:   {plain * 1e6:8.1f} µs/row")
        print(f"chained insert: {chained * 1e6:8.1f} µs/row")
        print(f"ratio: {chained / plain:.2f}x")
    finally:
        scratch.close_all_connections()
        scratch.scratch_database_drop(name)


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 5000)
