"""Restore time of a 1 GB database (RTO), measured by a real restore drill.

Loads ~1 GB into the sandbox cluster, takes a full backup, writes more after it (so recovery
replays WAL), and runs `drill_run`: restore from the S3 repository into a scratch cluster,
replay to the drill's marker, promote, usable. The baseline is a plain local copy (`cp -a`) of
the same data directory: the floor any restore of these bytes has on this machine.
Figures: RTO, its ratio to the copy and to the 120 s target. Run:

    METIS_ENV_FILE=var/test.env .venv/bin/python bench/backup_restore_rto.py [--mb 1024]
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import time

from backup_common import backup_sandbox, cluster, du, load_table, wait_archive_idle
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
        subprocess.run(["cp", "-a", str(box.target.data_dir), str(copy_root / "data")], check=True)
        subprocess.run(["sync"], check=True)
        copy_seconds = time.monotonic() - started
        data_dir_bytes = du(copy_root / "data")
        shutil.rmtree(copy_root)

        result = drill.drill_run(force_wal_switch=True, on_step=print)
        print(f"\ndata directory {data_dir_bytes / 1e9:.2f} GB, database {size / 1e9:.2f} GB")
        print(f"baseline cp -a of the data directory: {copy_seconds:.1f}s")
        print(
            f"drill RTO (restore start -> usable): {result.rto_seconds:.1f}s; "
            f"checks passed: {result.checks_passed} ({result.checks.get('rows'):,} rows)"
        )
        print(f"ratio RTO / local copy: {result.rto_seconds / copy_seconds:.2f}")
        print(
            f"ratio RTO / target {settings.BACKUP_RTO_TARGET_SECONDS:.0f}s: "
            f"{result.rto_seconds / settings.BACKUP_RTO_TARGET_SECONDS:.2f} "
            f"(spec 4 h: {result.rto_seconds / 14400:.4f})"
        )


if __name__ == "__main__":
    main()
