"""RPO under a steady write load, with archive_timeout = BACKUP_ARCHIVE_TIMEOUT_SECONDS.

A writer commits one small row every 50 ms (20 tx/s, far too little to fill a 16 MB WAL
segment, so archive_timeout is what ships WAL: the worst case). Two measures, same run:

- exposure: for each commit, the time until the archiver had pushed its WAL segment (the
  window in which losing the server would lose it), sampled from pg_stat_archiver;
- disaster: at a random moment the primary is killed (pg_ctl stop -m immediate, the
  unarchived WAL lost with it); the backups are restored to the end of the archive and the
  last recovered commit is compared with the last acknowledged commit. That gap is the RPO.

Ratios: against the 60 s target and the spec's 15 min. Run:

    METIS_ENV_FILE=var/test.env .venv/bin/python bench/backup_rpo.py [--seconds 150]
"""

from __future__ import annotations

import argparse
import datetime
import random
import statistics
import threading
import time

import psycopg
from _backup_common import backup_sandbox, cluster
from django.conf import settings

from backups import config, pgbackrest
from backups.services import physical, restore


def writer(box, stop: threading.Event, commits: list) -> None:
    with box.connect(autocommit=True) as conn:
        conn.execute(
            "CREATE TABLE IF NOT EXISTS heartbeat (id bigserial PRIMARY KEY, "
            "tenant_id uuid, at timestamptz NOT NULL)"
        )
        while not stop.is_set():
            try:
                row_id, at, segment = conn.execute(
                    "INSERT INTO heartbeat (at) VALUES (clock_timestamp()) "
                    "RETURNING id, at, pg_walfile_name(pg_current_wal_insert_lsn())"
                ).fetchone()
            except psycopg.OperationalError:
                return  # the disaster: the server is gone
            commits.append((row_id, at, segment))  # acknowledged: autocommit returned
            time.sleep(0.05)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=int, default=150)
    parser.add_argument("--archive-timeout", help="e.g. 60s (default: the setting, 30 s)")
    args = parser.parse_args()
    with backup_sandbox(archive_timeout=args.archive_timeout) as box:
        physical.backup_run_physical(kind="full")
        stop, commits = threading.Event(), []
        thread = threading.Thread(target=writer, args=(box, stop, commits), daemon=True)
        thread.start()
        archived_at: dict[str, datetime.datetime] = {}
        crash_after = args.seconds - random.uniform(0, 60)
        started = time.monotonic()
        with box.connect(dbname="postgres", autocommit=True) as monitor:
            while time.monotonic() - started < crash_after:
                wal, at = monitor.execute(
                    "SELECT last_archived_wal, last_archived_time FROM pg_stat_archiver"
                ).fetchone()
                if wal and wal[:24] not in archived_at:
                    archived_at[wal[:24]] = at
                time.sleep(0.2)
        # Disaster: the server dies now, with whatever WAL it had not archived.
        cluster.stop(box.target, mode="immediate")
        stop.set()
        thread.join()
        last_id, last_at, _ = commits[-1]

        exposures = []
        for _row_id, at, segment in commits:
            done = [moment for name, moment in archived_at.items() if name >= segment]
            if done:
                exposures.append((min(done) - at).total_seconds())

        ctx = pgbackrest.Context.current()
        scratch = cluster.scratch_directory(box.target.os_user, prefix="metis-rpo-")
        target = config.Target(
            **{
                **box.target.__dict__,
                "data_dir": scratch / "data",
                "port": cluster.free_port(),
                "socket_dir": scratch,
            }
        )
        try:
            restore.restore_cluster(ctx=ctx, target=target)
            with cluster.connect(target) as conn:
                recovered_id, recovered_at = conn.execute(
                    "SELECT id, at FROM heartbeat ORDER BY id DESC LIMIT 1"
                ).fetchone()
        finally:
            cluster.remove(target)
            cluster.remove_directory(scratch)

        rpo = (last_at - recovered_at).total_seconds()
        target_rpo = settings.BACKUP_RPO_TARGET_SECONDS
        print(
            f"{len(commits):,} commits over {crash_after:.0f}s; killed the primary after row "
            f"{last_id}; the restore recovered up to row {recovered_id}"
        )
        print(
            f"exposure (commit -> archived), {len(exposures):,} commits: median "
            f"{statistics.median(exposures):.1f}s, max {max(exposures):.1f}s"
        )
        print(
            f"disaster RPO (last acknowledged commit - last recovered commit): {rpo:.1f}s, "
            f"{last_id - recovered_id} commits lost"
        )
        print(
            f"ratio max exposure / target {target_rpo:.0f}s: {max(exposures) / target_rpo:.2f}; "
            f"disaster RPO / target: {rpo / target_rpo:.2f}; disaster RPO / spec 15 min: "
            f"{rpo / 900:.3f}"
        )


if __name__ == "__main__":
    main()
