"""The restore command refuses what it must not overwrite, with a clear error."""

from __future__ import annotations

import pytest
from django.core.management import CommandError, call_command


@pytest.fixture
def backup_settings(settings, tmp_path):
    settings.BACKUP_REPO_CIPHER_PASS = "unit-test"
    settings.BACKUP_REPO_TYPE = "posix"  # these refusals come before any repository access
    settings.BACKUP_PG_DATA_DIR = str(tmp_path / "live")
    (tmp_path / "live").mkdir()
    (tmp_path / "live" / "PG_VERSION").write_text("15\n")
    return tmp_path


def test_restore_command_refuses_the_live_data_directory(backup_settings):
    with pytest.raises(CommandError, match="live cluster's data directory"):
        call_command(
            "restore", "--to", "2026-11-28 01:00", "--target", str(backup_settings / "live")
        )
    assert (backup_settings / "live" / "PG_VERSION").read_text() == "15\n"


def test_restore_command_rejects_a_bad_timestamp(backup_settings):
    with pytest.raises(CommandError, match="not a timestamp"):
        call_command("restore", "--to", "yesterday-ish", "--target", str(backup_settings / "new"))
    assert not (backup_settings / "new").exists()


def test_backup_run_command_backs_up_verifies_and_shows_progress(db, pg_sandbox):
    from io import StringIO

    from backups.models import BackupRun
    from tests.support.terminal import Terminal

    out, err = StringIO(), Terminal()

    call_command("backup_run", "full", "--verify", stdout=out, stderr=err)

    run = BackupRun.objects.get()
    assert run.is_good()
    assert f"full backup {run.label}: succeeded" in out.getvalue()
    assert "verified=True restore_tested=True" in out.getvalue()
    drawn = [frame for frame in err.getvalue().split("\r") if frame.startswith("backup full:")]
    assert drawn and drawn[-1].startswith("backup full: 100.0%|##########|")
