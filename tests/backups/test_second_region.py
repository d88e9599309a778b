"""A second region for backups: pgBackRest's repo2 on another S3 server.

WAL and full backups reach both repositories; the region-loss drill restores from the second
one alone while the first region's S3 server is stopped; the weekly archive copy is made there.
"""

from __future__ import annotations

import socket
import uuid
from dataclasses import replace
from urllib.parse import urlsplit

import pytest
from django.core.management import CommandError, call_command

from backups import config, pgbackrest
from backups.models import BackupRun, RestoreDrill
from backups.services import archive_copy, drill, physical
from privacy.erasure import ledger
from privacy.erasure.plan import ErasurePlan
from tests.support import backup_sandbox as sandbox

SCHEMA = "CREATE TABLE loans (id serial PRIMARY KEY, tenant_id uuid NOT NULL, amount numeric)"
# The columns of the application's documents table the erasure ledger's statements use.
DOCUMENTS = (
    "CREATE TABLE documents (id uuid PRIMARY KEY, tenant_id uuid NOT NULL, "
    "metadata jsonb, uploaded_by_id uuid, restore_requested_by_id uuid)"
)


def _insert(conn, tenant: uuid.UUID, rows: int) -> None:
    conn.execute(
        "INSERT INTO loans (tenant_id, amount) SELECT %s, g FROM generate_series(1, %s) g",
        [tenant, rows],
    )


def _keys(server, bucket: str, prefix: str) -> list[str]:
    pages = server.client().get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
    return [obj["Key"] for page in pages for obj in page.get("Contents", [])]


def _refuses_connections(https_endpoint: str) -> bool:
    parts = urlsplit(https_endpoint)
    try:
        socket.create_connection((parts.hostname, parts.port), timeout=2).close()
    except OSError:
        return True
    return False


def test_the_second_region_gets_its_own_repository_options_and_secrets(settings, tmp_path):
    settings.BACKUP_REPO_CIPHER_PASS = "first"
    settings.BACKUP_REPO_TYPE = "posix"
    settings.BACKUP_REPO_LOCAL_PATH = str(tmp_path)
    settings.BACKUP_REPO2_S3_ENDPOINT_URL = "https://s3.eu-central-1.example.net:9443"
    settings.BACKUP_REPO2_S3_BUCKET = "metis-dr"
    settings.BACKUP_REPO2_S3_REGION = "eu-central-1"
    settings.BACKUP_REPO2_S3_KEY = "key-2"
    settings.BACKUP_REPO2_S3_SECRET = "secret-2"
    settings.BACKUP_REPO2_CIPHER_PASS = "pass-of-region-2"

    repo = config.repo()
    glob = config.pgbackrest_options(repo, config.target())["global"]
    secrets = config.secret_environment(repo)

    assert glob["repo1-type"] == "posix" and glob["repo2-type"] == "s3"
    assert glob["repo2-s3-bucket"] == "metis-dr" and glob["repo2-s3-region"] == "eu-central-1"
    assert glob["repo2-s3-endpoint"] == "s3.eu-central-1.example.net"
    assert glob["repo2-storage-port"] == "9443" and glob["repo2-cipher-type"] == "aes-256-cbc"
    assert secrets == {
        "PGBACKREST_REPO1_CIPHER_PASS": "first",
        "PGBACKREST_REPO2_CIPHER_PASS": "pass-of-region-2",
        "PGBACKREST_REPO2_S3_KEY": "key-2",
        "PGBACKREST_REPO2_S3_KEY_SECRET": "secret-2",
    }
    text = config.pgbackrest_config_text(repo, config.target())
    assert "pass-of-region-2" not in text and "secret-2" not in text  # in the environment only


def test_a_half_configured_or_unencrypted_second_region_is_refused(settings, tmp_path):
    settings.BACKUP_REPO_CIPHER_PASS = "first"
    settings.BACKUP_REPO_TYPE = "posix"
    settings.BACKUP_REPO2_S3_BUCKET = "metis-dr"
    with pytest.raises(config.BackupConfigError, match="BACKUP_REPO2_S3_ENDPOINT_URL"):
        config.repo()
    settings.BACKUP_REPO2_S3_ENDPOINT_URL = "https://s3.eu-central-1.example.net"
    with pytest.raises(config.BackupConfigError, match="BACKUP_REPO2_CIPHER_PASS"):
        config.repo()
    settings.BACKUP_REPO2_CIPHER_PASS = "pass-of-region-2"
    settings.BACKUP_REPO2_S3_ENDPOINT_URL = "http://s3.eu-central-1.example.net"
    with pytest.raises(config.BackupConfigError, match="https"):
        config.repo()
    settings.BACKUP_REPO2_S3_ENDPOINT_URL = settings.BACKUP_REPO2_S3_BUCKET = ""
    assert config.repo().second is None  # unset: one repository, as before


def test_wal_and_full_backups_reach_both_repositories(db, pg_sandbox_two_regions, tls_s3_region2):
    box = pg_sandbox_two_regions
    server2, _endpoint2, bucket2 = tls_s3_region2
    with box.connect(autocommit=True) as conn:
        conn.execute(SCHEMA)
        _insert(conn, uuid.uuid4(), 100)

    first, second = physical.backup_run_every_repo(kind="full", verify=True)

    with box.connect(autocommit=True) as conn:  # after the backups: only in the WAL
        _insert(conn, uuid.uuid4(), 10)
        segment = sandbox.switch_wal_and_wait(conn)
    assert (first.repo, second.repo) == (1, 2)
    assert first.is_good() and second.is_good(), (first.error, second.error)
    assert second.location.startswith(f"s3://{bucket2}/")
    ctx = pgbackrest.Context.current()
    # `pgbackrest info --repo=2` reads the second region alone: its backup and the new WAL.
    assert [b["label"] for b in pgbackrest.backups(ctx, repo=2)] == [second.label]
    assert [b["label"] for b in pgbackrest.backups(ctx, repo=1)] == [first.label]
    for repo in (1, 2):
        assert pgbackrest.newest_archived_wal(ctx, repo=repo) >= segment
    # The objects are on the second server itself, in its own bucket, encrypted by pgBackRest.
    root = ctx.repo.second.path.strip("/")
    wal = _keys(server2, bucket2, f"{root}/archive/{box.stanza}/")
    assert any(key.rsplit("/", 1)[-1].startswith(segment) for key in wal)
    assert _keys(server2, bucket2, f"{root}/backup/{box.stanza}/{second.label}/")
    info_key = f"{root}/backup/{box.stanza}/backup.info"
    info = server2.client().get_object(Bucket=bucket2, Key=info_key)
    assert b"backup-current" not in info["Body"].read()  # ciphertext, not pgBackRest's INI


def test_region_loss_drill_restores_from_the_second_region_with_the_first_stopped(
    db, pg_sandbox_region1_owned, region1_s3_owned
):
    box = pg_sandbox_region1_owned
    region1, https_endpoint1, _bucket1 = region1_s3_owned
    acme, globex, erased, kept = uuid.uuid4(), uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    with box.connect(autocommit=True) as conn:
        conn.execute(SCHEMA)
        _insert(conn, acme, 40)
        conn.execute(DOCUMENTS)
        conn.execute(
            "INSERT INTO documents (id, tenant_id) VALUES (%s, %s), (%s, %s)",
            [erased, acme, kept, acme],
        )
    physical.backup_run_every_repo(kind="full")  # the backups still hold the erased subject
    with box.connect(autocommit=True) as conn:  # after the backups: only in the WAL
        _insert(conn, globex, 25)
        _insert(conn, acme, 5)
        ledger.ledger_append(
            ErasurePlan(str(acme), "borrower", "CUST-1", document_ids=[str(erased)]),
            request_id="region-loss-drill",
        )
        conn.execute("DELETE FROM documents WHERE id = %s", [erased])

    def lose_the_first_region(step: str) -> None:
        # The marker is written and its WAL archived (in both regions); then region 1 is lost,
        # and everything the restore reads must come from the second region.
        if step.startswith("restoring"):
            region1.stop()

    try:
        drill.drill_run(repo=2, force_wal_switch=True, on_step=lose_the_first_region)
        assert _refuses_connections(https_endpoint1)  # down the whole restore long
        result = RestoreDrill.objects.get()
        with box.connect(autocommit=True) as conn:
            live = dict(
                conn.execute("SELECT tenant_id::text, count(*) FROM loans GROUP BY 1").fetchall()
            )
    finally:
        sandbox.tls_s3_restart(region1)

    assert result.repo == 2 and result.status == "succeeded", result.error
    assert result.backup.repo == 2 and result.backup.location.startswith(
        "s3://metis-backups-region2"
    )
    assert result.checks_passed and result.checks["counts_match"], result.checks
    # The restored rows are exactly the marker's, which are the live rows at the marker.
    assert live == {str(acme): 45, str(globex): 25}
    assert result.checks["rows"] == 70 + 1  # the loans and the kept document
    # The erasure ledger came from the second region too: the erased subject stays erased.
    assert result.checks["erased_rows_left"] == {}
    assert result.rto_seconds > 0 and result.rpo_seconds >= 0
    assert result.rto_met() and result.rpo_met()
    # The first region is back, with its data (its repository still lists its backup). Whether
    # archiving resumes at once depends on an archive-push that may still be waiting on the dead
    # endpoint (minutes: docs/operations.md), so it is not asserted here.
    ctx = pgbackrest.Context.current()
    assert len(pgbackrest.backups(ctx, repo=1)) == 1


def test_weekly_archive_copy_goes_to_the_second_region(
    db, pg_sandbox_two_regions, tls_s3, tls_s3_region2
):
    server1, _endpoint1, bucket1 = tls_s3
    server2, _endpoint2, bucket2 = tls_s3_region2
    runs = physical.backup_run_every_repo(kind="full")
    BackupRun.objects.filter(pk__in=[r.pk for r in runs]).update(verified=True, restore_tested=True)
    second = next(r for r in runs if r.repo == 2)

    copy = archive_copy.backup_archive_copy()

    ctx = pgbackrest.Context.current()
    prefix = f"{ctx.repo.second.path.strip('/')}-archive/{second.label}/"
    assert copy.status == "succeeded" and copy.repo == 2 and copy.label == second.label
    assert copy.location == f"s3://{bucket2}/{prefix.rstrip('/')}"
    keys = _keys(server2, bucket2, prefix)
    assert len(keys) == copy.details["objects"] > 10
    assert _keys(server1, bucket1, f"{ctx.repo.path.strip('/')}-archive/") == []
    sample = keys[:: max(1, len(keys) // 20)]
    classes = {
        server2.client().head_object(Bucket=bucket2, Key=key)["StorageClass"] for key in sample
    }
    assert classes == {"GLACIER"}
    # pgBackRest reads the copy as a second-region repository holding that backup, intact.
    archived = replace(
        ctx,
        repo=replace(ctx.repo, second=replace(ctx.repo.second, path="/" + prefix.rstrip("/"))),
    )
    assert [b["label"] for b in pgbackrest.backups(archived, repo=2)] == [second.label]
    assert pgbackrest.verify(archived, repo=2).backup_ok(second.label)


def test_region_loss_drill_without_a_second_region_is_a_clear_error(db, settings, tmp_path):
    settings.BACKUP_REPO_CIPHER_PASS = "first"
    settings.BACKUP_REPO_TYPE = "posix"
    settings.BACKUP_REPO_LOCAL_PATH = str(tmp_path)

    with pytest.raises(CommandError, match=r"no repository 2.*BACKUP_REPO2_S3_ENDPOINT_URL"):
        call_command("restore_drill", "--repo", "2")
    assert not RestoreDrill.objects.exists()  # nothing was started
