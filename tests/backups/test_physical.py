"""Physical backups: verified and restore-tested before they are good; damage is caught."""

from __future__ import annotations

import uuid

from backups.models import BackupRun
from backups.services import physical
from tests.backups.conftest import repo_keys
from tests.support import backup_sandbox as sandbox


def test_full_backup_is_good_only_after_verification_and_a_restore_test(db, pg_sandbox):
    with pg_sandbox.connect(autocommit=True) as conn:
        conn.execute("CREATE TABLE loans AS SELECT g AS id FROM generate_series(1, 1000) g")

    run = physical.backup_run_physical(kind="full")

    assert run.status == "succeeded" and run.label.endswith("F")
    assert run.size_bytes > 0 and run.stored_bytes > 0 and run.checksum.startswith("sha256:")
    assert not run.is_good() and not BackupRun.objects.good().exists()
    physical.backup_verify(run=run)
    run.refresh_from_db()
    assert run.verified and run.restore_tested, run.error
    assert run.is_good() and list(BackupRun.objects.good()) == [run]


def _damage_one_file(box, label: str, how: str) -> tuple[str, bytes]:
    client = box.s3.client()
    key = next(k for k in repo_keys(box, f"backup/{box.stanza}/{label}/pg_data/base/") if "/1" in k)
    original = client.get_object(Bucket=box.bucket, Key=key)["Body"].read()
    if how == "truncated":
        damaged = original[: len(original) // 2]
    else:  # same size, flipped bytes in the middle
        middle = len(original) // 2
        damaged = original[:middle] + bytes(b ^ 0xFF for b in original[middle : middle + 16])
        damaged += original[middle + 16 :]
    client.put_object(Bucket=box.bucket, Key=key, Body=damaged)
    return key, original


def test_truncated_or_corrupted_backup_file_fails_verification_and_is_never_good(db, pg_sandbox):
    run = physical.backup_run_physical(kind="full")
    client = pg_sandbox.s3.client()

    for how in ("truncated", "corrupted"):
        key, original = _damage_one_file(pg_sandbox, run.label, how)
        physical.backup_verify(run=run)
        run.refresh_from_db()
        assert not run.verified and not run.restore_tested, how
        assert not run.is_good() and "Verification failed" in run.error
        assert run.label in run.error
        client.put_object(Bucket=pg_sandbox.bucket, Key=key, Body=original)

    # The same backup, undamaged again, passes: the failures above were the damage.
    physical.backup_verify(run=run, restore_test=False)
    run.refresh_from_db()
    assert run.verified


def test_encrypted_repository_does_not_contain_a_marker_rows_text(db, pg_sandbox, settings):
    # No compression, so only the encryption can hide the text.
    settings.BACKUP_COMPRESS_TYPE = "none"
    marker = f"METIS-PLAINTEXT-MARKER-{uuid.uuid4().hex}".encode()
    with pg_sandbox.connect(autocommit=True) as conn:
        conn.execute("CREATE TABLE secrets (note text)")
        conn.execute("INSERT INTO secrets VALUES (%s)", [marker.decode()])
        conn.execute("CHECKPOINT")
    physical.backup_run_physical(kind="full")
    with pg_sandbox.connect(autocommit=True) as conn:
        conn.execute("INSERT INTO secrets VALUES (%s)", [marker.decode()])  # into the WAL too
        sandbox.switch_wal_and_wait(conn)

    # The scan can find the text: it is in the cluster's own (unencrypted) files.
    found_in_data_dir = any(
        marker in path.read_bytes()
        for path in pg_sandbox.target.data_dir.rglob("*")
        if path.is_file() and path.stat().st_size < 64 * 1024 * 1024
    )
    assert found_in_data_dir
    client = pg_sandbox.s3.client()
    keys = repo_keys(pg_sandbox)
    assert any("/archive/" in k for k in keys) and any("/pg_data/" in k for k in keys)
    wal = [k for k in keys if "/archive/" in k and k.rsplit("/", 1)[-1].startswith("0000")]
    assert any(not k.endswith(".zst") for k in wal)  # stored uncompressed: only encrypted
    leaking = [
        key
        for key in keys
        if marker in client.get_object(Bucket=pg_sandbox.bucket, Key=key)["Body"].read()
    ]
    assert leaking == []
