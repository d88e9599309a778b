"""`audit_verify` names every tampering the owner role can do: a changed, removed or swapped row,
and a tail rewritten with a recomputed chain (caught by the anchor in object storage)."""

from __future__ import annotations

import io

import pytest
from botocore.exceptions import ClientError
from django.core.management import CommandError, call_command
from django.db import connections

from audit import anchors, chain
from tests.audit.conftest import owner_execute, record_some

pytestmark = pytest.mark.committed


def verify(tenant=None) -> tuple[bool, str]:
    out, err = io.StringIO(), io.StringIO()
    args = ["--tenant", str(tenant.pk)] if tenant else []
    try:
        call_command("audit_verify", *args, stdout=out, stderr=err)
    except CommandError:
        return False, err.getvalue()
    return True, out.getvalue()


def tampered(*statements: str, params=None) -> None:
    """Do what an owner could: switch the guard off, change the rows, switch it back on."""
    owner_execute(
        "ALTER TABLE audit_log DISABLE TRIGGER audit_log_no_update",
        "ALTER TABLE audit_log DISABLE TRIGGER audit_log_no_delete",
    )
    try:
        owner_execute(*statements, params=params)
    finally:
        owner_execute(
            "ALTER TABLE audit_log ENABLE TRIGGER audit_log_no_update",
            "ALTER TABLE audit_log ENABLE TRIGGER audit_log_no_delete",
        )


def test_an_untouched_log_verifies(tenant, other_tenant, versioned_bucket):
    record_some(tenant, 3)
    record_some(other_tenant, 2)
    anchors.anchor_all()
    ok, output = verify()
    assert ok, output
    assert "every chain checks out" in output


def test_a_changed_row_is_named(tenant, versioned_bucket):
    rows = record_some(tenant, 4)
    tampered("UPDATE audit_log SET target_id = 'other' WHERE id = %s", params=[rows[2].id])
    ok, output = verify(tenant)
    assert not ok
    assert f"row id {rows[2].id} (seq {rows[2].seq}): content changed" in output


def test_a_removed_row_is_named(tenant, versioned_bucket):
    rows = record_some(tenant, 4)
    tampered("DELETE FROM audit_log WHERE id = %s", params=[rows[1].id])
    ok, output = verify(tenant)
    assert not ok
    assert f"row id {rows[2].id} (seq {rows[2].seq}): seq {rows[2].seq} where" in output
    assert "rows removed or reordered" in output


def test_two_swapped_rows_are_named(tenant, versioned_bucket):
    rows = record_some(tenant, 4)
    a, b = rows[1], rows[2]
    tampered(
        "UPDATE audit_log SET seq = CASE id WHEN %s THEN %s ELSE %s END WHERE id IN (%s, %s)",
        params=[a.id, b.seq, a.seq, a.id, b.id],
    )
    ok, output = verify(tenant)
    assert not ok
    assert f"row id {b.id} (seq {a.seq})" in output


def test_a_tail_rewritten_with_a_recomputed_chain_is_caught_by_the_anchor(tenant, versioned_bucket):
    rows = record_some(tenant, 5)
    anchors.anchor_all()
    # The owner rewrites rows 3..5 and recomputes every hash after them, heads included:
    # the chain is consistent again, only the anchor remembers.
    tampered(
        "UPDATE audit_log SET target_id = 'hidden' WHERE id IN (%s, %s, %s)",
        params=[r.id for r in rows[2:]],
    )
    with connections["owner"].cursor() as cursor:
        cursor.execute(chain.ROWS_SQL, [tenant.pk])
        all_rows = cursor.fetchall()
        previous = all_rows[0][12]
        for row in all_rows:
            digest = chain.row_hash(previous, row)
            tampered(
                "UPDATE audit_log SET prev_hash = %s, hash = %s WHERE id = %s",
                params=[previous, digest, row[0]],
            )
            previous = digest
        cursor.execute(
            "UPDATE audit_chain_heads SET hash = %s WHERE chain = %s", [previous, tenant.pk]
        )
    walk = chain.chain_walk(tenant.pk, all_rows[:0] or _rows(tenant))
    assert walk.findings == []  # the recomputed chain is internally sound
    ok, output = verify(tenant)
    assert not ok
    assert f"row id {rows[-1].id} (seq {rows[-1].seq}): does not match the anchor" in output


def test_rows_removed_from_the_end_are_caught_by_the_anchor(tenant, versioned_bucket):
    rows = record_some(tenant, 3)
    anchors.anchor_all()
    tampered("DELETE FROM audit_log WHERE id = %s", params=[rows[-1].id])
    ok, output = verify(tenant)
    assert not ok
    assert f"names seq {rows[-1].seq}, but the chain ends at {rows[-2].seq}" in output


def test_a_forged_anchor_version_does_not_hide_the_true_one(tenant, versioned_bucket):
    """Without Object Lock, a later write adds a version: verify reads every version."""
    rows = record_some(tenant, 2)
    (anchor,) = [a for a in anchors.anchor_all() if a.chain == str(tenant.pk)]
    tampered("UPDATE audit_log SET target_id = 'x' WHERE id = %s", params=[rows[-1].id])
    # A recomputed chain and an anchor overwritten to match it:
    with connections["owner"].cursor() as cursor:
        cursor.execute(chain.ROWS_SQL, [tenant.pk])
        all_rows = cursor.fetchall()
    digest = chain.row_hash(all_rows[-1][12].strip(), all_rows[-1])
    tampered("UPDATE audit_log SET hash = %s WHERE id = %s", params=[digest, rows[-1].id])
    from metis.objectstore import store

    store.audit_store().put_bytes(
        key=anchor.key,
        data=(
            f'{{"chain": "{anchor.chain}", "seq": {anchor.seq}, "hash": "{digest}", '
            f'"at": "{anchor.at}"}}'
        ).encode(),
        content_type="application/json",
    )
    ok, output = verify(tenant)
    assert not ok
    assert f"row id {rows[-1].id} (seq {rows[-1].seq}): does not match the anchor" in output


def _rows(tenant):
    with connections["owner"].cursor() as cursor:
        cursor.execute(chain.ROWS_SQL, [tenant.pk])
        return cursor.fetchall()


def test_an_unsafe_anchor_bucket_is_refused(tenant, s3_bucket):
    record_some(tenant, 1)
    with pytest.raises(anchors.AnchorStoreUnsafe, match="neither Object Lock nor versioning"):
        anchors.anchor_all()


def test_anchors_are_locked_where_the_server_has_object_lock(tenant, s3_server, locked_bucket):
    record_some(tenant, 2)
    (anchor,) = [a for a in anchors.anchor_all() if a.chain == str(tenant.pk)]
    client = s3_server.client()  # the application's own credentials
    retention = client.get_object_retention(
        Bucket=locked_bucket, Key=anchor.key, VersionId=anchor.version_id
    )
    assert retention["Retention"]["Mode"] == "COMPLIANCE"
    with pytest.raises(ClientError, match="AccessDenied"):
        client.delete_object(Bucket=locked_bucket, Key=anchor.key, VersionId=anchor.version_id)
    ok, output = verify(tenant)
    assert ok, output
