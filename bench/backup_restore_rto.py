"""Restore time of a 1 GB database (RTO), measured by a real restore drill.

Loads ~1 GB into the sandbox cluster, takes a full backup, writes more after it (so recovery
replays WAL), and runs `drill_run`: restore from the S3 repository into a scratch cluster,
replay to the drill's marker, promote, usable. The baseline is a plain local copy (tar | tar,
without pg_wal) of the same data directory: the floor any restore of these bytes has here.
Figures: RTO, its ratio to the copy and to the 120 s target. Run:

    METIS_ENV_FILE=var/test.env .venv/bin/python bench/backup_restore_rto.py [--mb 1024]
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import time

from _backup_common import backup_sandbox, cluster, du, load_table, wait_archive_idle
from django.conf import settings

from backups.services import drill, physical


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--mb", type=int, default=1024)
    args = parser.parse_args()
    with backup_sandbox() as box:
        size = load_table(box, megabytes=args.mb)
        wait_archive_idle(box)
        backup = physical.backup_run_physical(kind="full")
        print(
            f"full backup {backup.label}: {backup.duration.total_seconds():.1f}s, "
            f"{backup.stored_bytes / 1e6:.0f} MB stored"
        )
        with box.connect(autocommit=True) as conn:  # changes only the WAL can bring back
            conn.execute("UPDATE ledger SET created_at = now() WHERE id % 50 = 0")

        copy_root = cluster.scratch_directory("root", prefix="metis-copy-")
        started = time.monotonic()
        # The files a restore lays down: everything but pg_wal (replayed WAL is extra work).
        subprocess.run(
            f"tar -C {box.target.data_dir} --exclude=./pg_wal -cf - . "
            f"| tar -C {copy_root} -xf - && sync",
            shell=True,
            check=True,
        )
        copy_seconds = time.monotonic() - started
        data_dir_bytes = du(copy_root)
        shutil.rmtree(copy_root)

        drill_started = time.monotonic()
        result = drill.drill_run(
            force_wal_switch=True,
            on_step=lambda step: print(f"{time.monotonic() - drill_started:6.1f}s {step}"),
        )
        print(
            f"\ndata directory without WAL {data_dir_bytes / 1e9:.2f} GB, "
            f"database {size / 1e9:.2f} GB"
        )
        print(f"baseline local copy of the data directory (no pg_wal): {copy_seconds:.1f}s")
        print(
            f"drill RTO (restore start -> usable): {result.rto_seconds:.1f}s; "
            f"checks passed: {result.checks_passed} ({result.checks.get('rows'):,} rows)"
        )
        print(f"ratio RTO / local copy: {result.rto_seconds / copy_seconds:.2f}")
        print(
            f"ratio RTO / 30 s goal for 1 GB (issue 14), restore process-max "
            f"{settings.BACKUP_RESTORE_PROCESS_MAX}: {result.rto_seconds / 30:.2f}"
        )
        print(
            f"ratio RTO / target {settings.BACKUP_RTO_TARGET_SECONDS:.0f}s: "
            f"{result.rto_seconds / settings.BACKUP_RTO_TARGET_SECONDS:.2f} "
            f"(spec 4 h: {result.rto_seconds / 14400:.4f})"
        )


if __name__ == "__main__":
    main()
