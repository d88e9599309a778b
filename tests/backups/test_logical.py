"""Logical backups: pg_dump, encrypted, in object storage, restorable; damage is refused."""

from __future__ import annotations

import pytest

from backups import cluster, crypto
from backups.services import logical, object_backups


@pytest.mark.parametrize("connection", ["socket", "url"])
def test_logical_backup_is_encrypted_verified_and_restores_into_a_new_database(
    db, pg_sandbox, backup_objects, settings, connection
):
    server, bucket = backup_objects
    if connection == "url":  # as for managed PostgreSQL: a URL, no file access
        target = pg_sandbox.target
        settings.BACKUP_LOGICAL_DATABASE_URL = (
            f"postgresql://postgres@/{target.database}?host={target.socket_dir}&port={target.port}"
        )
    with pg_sandbox.connect(autocommit=True) as conn:
        conn.execute("CREATE TABLE borrowers (id int PRIMARY KEY, name text)")
        conn.execute(
            "INSERT INTO borrowers SELECT g, 'LOGICAL-MARKER-' || g FROM generate_series(1, 500) g"
        )

    run = logical.backup_run_logical()
    assert run.status == "succeeded" and not run.verified
    stored = (
        server.client().get_object(Bucket=bucket, Key=run.location.split("/", 3)[3])["Body"].read()
    )
    assert stored.startswith(crypto.MAGIC) and b"LOGICAL-MARKER-" not in stored
    assert object_backups.object_backup_verify(run=run).verified

    logical.logical_restore(run=run, dbname="restored_copy")
    target = pg_sandbox.target
    with cluster.connect(target, dbname="restored_copy") as conn:
        assert conn.execute("SELECT count(*), min(name) FROM borrowers").fetchone() == (
            500,
            "LOGICAL-MARKER-1",
        )
    run.refresh_from_db()
    assert run.restore_tested and run.is_good()


def test_truncated_logical_dump_fails_verification_and_restore(db, pg_sandbox, backup_objects):
    server, bucket = backup_objects
    run = logical.backup_run_logical()
    key = run.location.split("/", 3)[3]
    client = server.client()
    whole = client.get_object(Bucket=bucket, Key=key)["Body"].read()
    client.put_object(Bucket=bucket, Key=key, Body=whole[:-100])

    assert not object_backups.object_backup_verify(run=run).verified
    assert "truncated" in run.error or "authentication" in run.error
    with pytest.raises(crypto.DecryptionError):
        logical.logical_restore(run=run, dbname="never_restored")
    run.refresh_from_db()
    assert not run.is_good()
