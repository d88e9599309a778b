"""backup_configure prints what archiving needs, and never a secret."""

from __future__ import annotations

import io
from pathlib import Path

from django.core.management import call_command

from backups import cluster


def test_backup_configure_prints_the_settings_and_no_secret(settings, tmp_path):
    settings.BACKUP_REPO_CIPHER_PASS = "very-secret-cipher-pass"
    settings.AWS_SECRET_ACCESS_KEY = "very-secret-s3-key"
    settings.BACKUP_REPO_BUCKET = "metis-backups"
    settings.BACKUP_REPO_S3_ENDPOINT_URL = "https://s3.example.com:9443"
    settings.BACKUP_PGBACKREST_CONFIG = str(tmp_path / "pgbackrest.conf")
    out = io.StringIO()

    call_command("backup_configure", stdout=out)

    text = out.getvalue()
    assert "ALTER SYSTEM SET archive_mode = 'on';" in text
    assert "ALTER SYSTEM SET archive_timeout = '30s';" in text
    assert "ALTER SYSTEM SET wal_level = 'replica';" in text
    assert f"--config={tmp_path / 'pgbackrest.conf'} --stanza=metis archive-push %p" in text
    assert "repo1-s3-endpoint=s3.example.com" in text and "repo1-storage-port=9443" in text
    assert "PGBACKREST_REPO1_CIPHER_PASS=<secret>" in text
    # The tuning (docs/benchmarks.md, "Backups"): zst level 1, parallel restore, no bundles.
    assert "compress-type=zst" in text and "compress-level=1" in text
    assert "repo1-bundle" not in text and "process-max=2" in text
    assert "[global:restore]" in text
    assert "very-secret" not in text
    assert not (tmp_path / "pgbackrest.conf").exists()  # printing only, without --apply


def test_backup_configure_apply_turns_archiving_on_in_a_cluster(settings, pg_sandbox):
    with pg_sandbox.connect(dbname="postgres", autocommit=True) as conn:
        conn.execute("ALTER SYSTEM SET archive_timeout = '300s'")
        conn.execute("SELECT pg_reload_conf()")

    call_command("backup_configure", "--apply", stdout=io.StringIO())

    with cluster.connect(pg_sandbox.target, dbname="postgres") as conn:
        assert conn.execute("SHOW archive_timeout").fetchone()[0] == "30s"
        assert "archive-push" in conn.execute("SHOW archive_command").fetchone()[0]
    config = Path(settings.BACKUP_PGBACKREST_CONFIG).read_text()
    assert "cipher-pass" not in config and settings.BACKUP_REPO_CIPHER_PASS not in config
