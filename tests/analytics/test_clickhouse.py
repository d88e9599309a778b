"""The ClickHouse client module: one process at a time on the embedded engine, failures named."""

import fcntl
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from analytics import clickhouse

ROOT = Path(__file__).resolve().parents[2]


def test_session_reaches_the_migrated_database(clickhouse_db):
    with clickhouse.session() as client:
        assert client.query("SELECT currentDatabase()").result_rows == [(clickhouse_db,)]
        with clickhouse.session() as nested:  # nested sessions share the open engine
            assert nested is client


def test_lock_held_by_another_opener_makes_clickhouse_unavailable(clickhouse_db, settings):
    settings.CLICKHOUSE_LOCK_TIMEOUT = 0.2
    lock_path = clickhouse._lock_path(Path(settings.CLICKHOUSE_CHDB_PATH).resolve())
    with open(lock_path, "a+") as other:  # a second open file: flock treats it as another owner
        fcntl.flock(other, fcntl.LOCK_EX)
        with (
            pytest.raises(clickhouse.ClickHouseUnavailable, match="held the embedded"),
            clickhouse.session(),
        ):
            pass
        fcntl.flock(other, fcntl.LOCK_UN)
    with clickhouse.session() as client:
        assert client.query("SELECT 1").result_rows == [(1,)]


def test_another_process_uses_the_embedded_engine_between_our_operations(clickhouse_db, settings):
    script = textwrap.dedent(f"""
        import os, sys
        sys.path.insert(0, {str(ROOT)!r})
        os.environ["DJANGO_SETTINGS_MODULE"] = "metis.settings"
        os.environ["CLICKHOUSE_CHDB_PATH"] = {str(settings.CLICKHOUSE_CHDB_PATH)!r}
        os.environ["CLICKHOUSE_DATABASE"] = {clickhouse_db!r}
        os.environ.pop("CLICKHOUSE_URL", None)
        import django; django.setup()
        from analytics import clickhouse
        for n in range(3):
            with clickhouse.session() as client:
                client.command("INSERT INTO events (event_id, tenant_id, event_type, event_data, "
                               "timestamp) SELECT generateUUIDv4(), generateUUIDv4(), "
                               "'auth.sign_in', '{{}}', now64(3)")
        print("child done")
    """)
    child = subprocess.Popen(
        [sys.executable, "-c", script], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    ours = 0
    deadline = time.monotonic() + 60
    while child.poll() is None and time.monotonic() < deadline:
        with clickhouse.session() as client:
            client.command(
                "INSERT INTO events (event_id, tenant_id, event_type, event_data, timestamp) "
                "SELECT generateUUIDv4(), generateUUIDv4(), 'auth.sign_out', '{}', now64(3)"
            )
            ours += 1
        time.sleep(0.05)
    _out, err = child.communicate(timeout=60)
    assert child.returncode == 0, err.decode()[-2000:]
    with clickhouse.session() as client:
        counts = dict(
            client.query("SELECT event_type, count() FROM events GROUP BY event_type").result_rows
        )
    assert counts == {"auth.sign_in": 3, "auth.sign_out": ours}


def test_unreachable_server_is_unavailable_not_an_error_in_the_data(settings):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # closed once we leave: nothing listens there
    settings.CLICKHOUSE_URL = f"http://default:@127.0.0.1:{port}/metis"
    with pytest.raises(clickhouse.ClickHouseUnavailable), clickhouse.session() as client:
        client.query("SELECT 1")
