"""The weekly archive copy: a complete, restorable repository in the Glacier storage class."""

from __future__ import annotations

from dataclasses import replace

from backups import pgbackrest
from backups.models import BackupRun
from backups.services import archive_copy, physical
from tests.backups.conftest import repo_keys


def test_archive_copy_holds_a_good_backup_in_glacier_and_is_a_valid_repository(db, pg_sandbox):
    run = physical.backup_run_physical(kind="full")
    # Only a good backup is archived; its verification is tested elsewhere.
    assert archive_copy.BackupRun.objects.good().count() == 0
    BackupRun.objects.filter(pk=run.pk).update(verified=True, restore_tested=True)

    copy = archive_copy.backup_archive_copy()

    assert copy.status == "succeeded" and copy.label == run.label
    client = pg_sandbox.s3.client()
    prefix = f"{pg_sandbox.repo.path.strip('/')}-archive/{run.label}/"
    keys = [
        obj["Key"]
        for page in client.get_paginator("list_objects_v2").paginate(
            Bucket=pg_sandbox.bucket, Prefix=prefix
        )
        for obj in page.get("Contents", [])
    ]
    assert len(keys) == copy.details["objects"] > 10
    sample = keys[:: max(1, len(keys) // 40)]  # HEAD every object would dominate the test
    classes = {client.head_object(Bucket=pg_sandbox.bucket, Key=k)["StorageClass"] for k in sample}
    assert classes == {"GLACIER"}
    assert any(k.endswith("backup.info") for k in keys) and any("/archive/" in k for k in keys)
    assert len(keys) < len(repo_keys(pg_sandbox)) + 1
    # pgBackRest itself reads the copy as a repository holding that backup, checksums intact.
    ctx = pgbackrest.Context.current()
    archived = replace(ctx, repo=replace(ctx.repo, path="/" + prefix.rstrip("/")))
    assert [b["label"] for b in pgbackrest.backups(archived)] == [run.label]
    assert pgbackrest.verify(archived).backup_ok(run.label)
