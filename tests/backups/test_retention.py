"""Retention expiry never removes WAL that a kept backup needs."""

from __future__ import annotations

import datetime

from backups import cluster, config, pgbackrest
from backups.models import BackupRun, RetentionPolicy
from backups.services import physical, restore, retention
from tests.backups.conftest import repo_keys
from tests.support import backup_sandbox as sandbox


def _full(n: int) -> dict:
    stop = datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC) + datetime.timedelta(days=n)
    return {"label": f"full{n}", "timestamp": {"stop": int(stop.timestamp())}}


def test_retention_keeps_the_newest_daily_and_the_newest_of_each_week_and_month():
    fulls = [_full(n) for n in range(0, 70)]  # one a day from 2026-01-01 to 2026-03-11
    policy = RetentionPolicy(keep_daily=3, keep_weekly=2, keep_monthly=3)
    now = datetime.datetime(2026, 3, 11, 12, tzinfo=datetime.UTC)

    keep = retention.retention_keep(full_backups=fulls, policy=policy, now=now)

    daily = {"full69", "full68", "full67"}  # 03-11, 03-10, 03-09
    weekly = {"full69", "full66"}  # newest of ISO week 11 (Wed 03-11) and week 10 (Sun 03-08)
    monthly = {"full69", "full58", "full30"}  # newest of March, February (02-28), January
    assert keep == daily | weekly | monthly


def test_expiry_keeps_every_wal_segment_the_oldest_kept_backup_needs(db, pg_sandbox):
    with pg_sandbox.connect(autocommit=True) as conn:
        conn.execute("CREATE TABLE payments (id int PRIMARY KEY)")
        runs = []
        for batch in range(3):
            conn.execute(
                "INSERT INTO payments SELECT g FROM generate_series(%s::int, %s::int) g",
                [batch * 100 + 1, batch * 100 + 100],
            )
            runs.append(physical.backup_run_physical(kind="full"))
        conn.execute("INSERT INTO payments SELECT g FROM generate_series(301, 350) g")
        sandbox.switch_wal_and_wait(conn)
    oldest, kept_oldest, _newest = runs
    ctx = pgbackrest.Context.current()
    archive_before = pgbackrest.info(ctx)["archive"][0]["min"]

    # Staff set the policy in the admin; the active one applies.
    RetentionPolicy.objects.filter(is_active=True).update(
        keep_daily=2, keep_weekly=0, keep_monthly=0
    )

    expired = retention.retention_apply()

    assert expired == [oldest.label]
    assert repo_keys(pg_sandbox, f"backup/{pg_sandbox.stanza}/{oldest.label}/") == []
    assert BackupRun.objects.get(pk=oldest.pk).expired_at is not None
    assert BackupRun.objects.get(pk=kept_oldest.pk).expired_at is None
    archive_after = pgbackrest.info(ctx)["archive"][0]["min"]
    assert archive_before < archive_after <= kept_oldest.wal_start  # old WAL did go

    # The oldest kept backup restores and replays every segment to the end of the archive.
    scratch = cluster.scratch_directory(pg_sandbox.target.os_user, prefix="metis-retention-")
    target = config.Target(
        **{
            **pg_sandbox.target.__dict__,
            "data_dir": scratch / "data",
            "port": cluster.free_port(),
            "socket_dir": scratch,
        }
    )
    try:
        restore.restore_cluster(ctx=ctx, target=target, set_label=kept_oldest.label)
        with cluster.connect(target) as conn:
            assert conn.execute("SELECT count(*), max(id) FROM payments").fetchone() == (350, 350)
    finally:
        cluster.remove(target)
        cluster.remove_directory(scratch)
