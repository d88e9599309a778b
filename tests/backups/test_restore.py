"""Point-in-time restore into a new cluster beside the live one."""

from __future__ import annotations

import datetime
import shutil
import time

import pytest

from backups import cluster
from backups.services import physical, restore
from tests.support import backup_sandbox as sandbox


def test_restore_to_a_time_brings_back_exactly_the_rows_committed_before_it(
    db, pg_sandbox, tmp_path
):
    with pg_sandbox.connect(autocommit=True) as conn:
        conn.execute("CREATE TABLE loans (id int PRIMARY KEY, note text)")
    physical.backup_run_physical(kind="full")
    # pgBackRest records a backup's stop time in whole seconds and picks a backup that stopped
    # strictly before the target: keep T in a later second than the backup's end.
    time.sleep(1.1)
    with pg_sandbox.connect(autocommit=True) as conn:
        conn.execute("INSERT INTO loans SELECT g, 'before' FROM generate_series(1, 50) g")
        time.sleep(0.05)
        point = conn.execute("SELECT clock_timestamp()").fetchone()[0]
        time.sleep(0.05)
        conn.execute("INSERT INTO loans SELECT g, 'after' FROM generate_series(51, 80) g")
        sandbox.switch_wal_and_wait(conn)

    data_dir = cluster.scratch_directory(pg_sandbox.target.os_user, prefix="metis-pitr-") / "data"
    try:
        outcome = restore.restore_point_in_time(data_dir=data_dir, to=point)
        restored = pg_sandbox.target.with_data_dir(data_dir, port=outcome.port)
        restored = type(restored)(**{**restored.__dict__, "socket_dir": outcome.socket_dir})
        with cluster.connect(restored) as conn:
            rows = conn.execute("SELECT id, note FROM loans ORDER BY id").fetchall()
        assert rows == [(i, "before") for i in range(1, 51)]
        assert outcome.reached_time is not None and outcome.reached_time <= point
    finally:
        cluster.remove(restored) if "restored" in locals() else None
        shutil.rmtree(data_dir.parent, ignore_errors=True)


def test_restore_refuses_the_live_data_directory_and_a_non_empty_target(db, pg_sandbox, tmp_path):
    with pytest.raises(restore.RestoreRefused, match="live cluster"):
        restore.restore_point_in_time(data_dir=pg_sandbox.target.data_dir, to=None)
    occupied = tmp_path / "occupied"
    occupied.mkdir()
    (occupied / "something").write_text("keep me")
    with pytest.raises(restore.RestoreRefused, match="not empty"):
        restore.restore_point_in_time(data_dir=occupied, to=datetime.datetime.now(datetime.UTC))
    assert (occupied / "something").read_text() == "keep me"
