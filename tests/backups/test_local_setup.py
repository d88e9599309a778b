"""`make run`'s backups: archiving on the embedded cluster, a good backup, green tiles.

The cluster is started as scripts/local_services.py starts `make run`'s (in a temp dir instead
of var/pgdata), with the settings it writes; `backup_local_setup` is the step `make run` runs.
The catalog is in the test database, as in the other backup tests.
"""

from __future__ import annotations

import importlib.util
import io
import shutil
import sys
import tempfile
from pathlib import Path

import pytest
from django.core.management import call_command

from backups import dashboard, pgbackrest
from backups.models import BackupRun, RestoreDrill

ROOT = Path(__file__).resolve().parents[2]
DASHBOARD = "/admin/backups/backuprun/dashboard/"

needs_pgbackrest = pytest.mark.skipif(
    not shutil.which("pgbackrest"), reason="no pgBackRest here (apt-get install pgbackrest)"
)


def _local_services():
    spec = importlib.util.spec_from_file_location(
        "local_services", ROOT / "scripts" / "local_services.py"
    )
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def make_run_cluster(settings, monkeypatch):
    """The embedded cluster and backup settings of `make run`, in a temp dir of their own."""
    local_services = _local_services()
    root = Path(tempfile.mkdtemp(prefix="metis-make-run-"))
    root.chmod(0o755)  # the PostgreSQL OS user reaches its data directory and the repository
    # backup_secrets puts the cipher pass into this process's environment for the server.
    monkeypatch.setenv("PGBACKREST_REPO1_CIPHER_PASS", "")
    values = local_services.backup_secrets(root / "local.env")
    cluster = local_services.embedded_postgres(root / "pgdata")
    try:
        values |= cluster.backup_settings()
        for name, value in values.items():
            setattr(settings, name, value)
        settings.BACKUP_PG_PORT = int(values["BACKUP_PG_PORT"])
        settings.BACKUP_LOCAL_SETUP = True
        settings.BACKUP_REPO_LOCAL_PATH = str(root / "backups" / "repo")
        settings.BACKUP_PGBACKREST_CONFIG = str(root / "backups" / "pgbackrest.conf")
        settings.BACKUP_WORK_DIR = str(root / "backups" / "work")
        # The drill waits for its marker's segment to be archived: keep that short here.
        settings.BACKUP_ARCHIVE_TIMEOUT_SECONDS = 5
        settings.BACKUP_PROCESS_MAX = 1
        import psycopg

        with psycopg.connect(cluster.admin_url(), autocommit=True) as conn:
            conn.execute("CREATE DATABASE metis")
        yield cluster
    finally:
        local_services.stop_embedded_postgres(root / "pgdata")
        shutil.rmtree(root, ignore_errors=True)


def _setup() -> str:
    """Run make run's backup step; return what it printed (its steps go to stderr)."""
    out, err = io.StringIO(), io.StringIO()
    call_command("backup_local_setup", stdout=out, stderr=err)
    return err.getvalue() + out.getvalue()


@needs_pgbackrest
def test_make_run_setup_archives_backs_up_and_turns_every_tile_green(
    make_run_cluster, staff_client
):
    printed = _setup()

    info = pgbackrest.info(pgbackrest.Context.current())
    assert [backup["type"] for backup in info["backup"]] == ["full"], printed
    assert info["status"]["message"] == "ok"
    assert info["archive"][0]["max"]  # WAL segments reached the repository
    assert all(tile.ok for tile in dashboard.tiles()), printed
    html = staff_client.get(DASHBOARD).content.decode()
    assert html.count('data-ok="true"') == 4 and 'data-ok="false"' not in html
    assert "pgbackrest-missing" not in html

    # A second `make run` reuses the stanza and takes nothing that is not due.
    again = _setup()
    assert "no new one" in again
    assert BackupRun.objects.physical().count() == 1
    assert RestoreDrill.objects.count() == 1
    assert len(pgbackrest.info(pgbackrest.Context.current())["backup"]) == 1


def test_without_pgbackrest_make_run_and_the_dashboard_say_what_to_install(
    settings, monkeypatch, staff_client, tmp_path
):
    settings.BACKUP_LOCAL_SETUP = True
    bin_dir = tmp_path / "bin"  # a PATH with Python but no pgbackrest
    bin_dir.mkdir()
    monkeypatch.setenv("PATH", str(bin_dir))

    printed = _setup()

    assert "apt-get install pgbackrest" in printed
    html = staff_client.get(DASHBOARD).content.decode()
    assert 'data-notice="pgbackrest-missing"' in html
    assert "apt-get install pgbackrest" in html


@needs_pgbackrest
def test_settings_apply_names_the_settings_that_wait_for_a_restart(make_run_cluster):
    from backups.services import bootstrap

    ctx = pgbackrest.Context.current()

    # At once, without waiting for the reload to land: a fresh cluster archives nothing yet.
    assert set(bootstrap.settings_apply(ctx=ctx)) == {"archive_mode", "max_wal_senders"}
