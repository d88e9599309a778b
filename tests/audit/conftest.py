from __future__ import annotations

import pytest
from django.db import connections

from audit import recorder
from tenants import db


def entries(tenant) -> list[tuple]:
    """The tenant's audit rows (action, actor type, target, ip, request id), oldest first, as the
    runtime role sees them in the tenant's context."""
    with db.tenant_context(tenant.pk), connections["default"].cursor() as cursor:
        cursor.execute(
            "SELECT action, actor_type, actor_id, target_id, ip_address, request_id, seq "
            "FROM audit_log ORDER BY seq"
        )
        return cursor.fetchall()


def record_some(tenant, count: int = 5) -> list[recorder.Recorded]:
    with db.tenant_context(tenant.pk):
        return [
            recorder.record(action="test.read", target_type="thing", target_id=i)
            for i in range(count)
        ]


def owner_execute(*statements: str, params=None) -> None:
    """Run statements as the owner role, committed."""
    owner = connections["owner"]
    with owner.cursor() as cursor:
        for statement in statements:
            cursor.execute(statement, params)


@pytest.fixture
def versioned_bucket(s3_server, s3_bucket):
    """The anchors' bucket without Object Lock: versioning on, as storage_setup leaves it."""
    s3_server.client().put_bucket_versioning(
        Bucket=s3_bucket, VersioningConfiguration={"Status": "Enabled"}
    )
    return s3_bucket


@pytest.fixture
def locked_bucket(s3_server, s3_bucket, settings):
    """A bucket made with S3 Object Lock, for the anchors alone (AUDIT_ANCHOR_BUCKET)."""
    bucket = s3_bucket + "-lock"
    s3_server.client().create_bucket(Bucket=bucket, ObjectLockEnabledForBucket=True)
    settings.AUDIT_ANCHOR_BUCKET = bucket
    settings.AUDIT_ANCHOR_LOCK_DAYS = 1
    # Locked versions cannot be deleted: the bucket stays until the test server goes.
    return bucket
