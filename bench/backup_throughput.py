"""Backup throughput: pgBackRest (zst, AES-256, to S3 over TLS) vs a raw pg_basebackup.

Both copy the same cluster in the same run; the baseline is `pg_basebackup -Fp -X fetch` to a
local directory (no compression, no encryption, no network). Figures: MB/s of each and their
ratio (> 1 means pgBackRest is faster). Run:

    METIS_ENV_FILE=var/test.env .venv/bin/python bench/backup_throughput.py [--mb 1024]
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import time

from _backup_common import as_user, backup_sandbox, cluster, load_table, wait_archive_idle
from django.conf import settings

from backups.services import physical


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--mb", type=int, default=1024)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--compress-type", default="zst", choices=["zst", "lz4", "gz", "none"])
    args = parser.parse_args()
    with backup_sandbox() as box:
        settings.BACKUP_COMPRESS_TYPE = args.compress_type
        size = load_table(box, megabytes=args.mb)
        wait_archive_idle(box)
        results = {"pg_basebackup": [], "pgbackrest": []}
        stored = 0
        for round_number in range(1, args.rounds + 1):
            destination = cluster.scratch_directory(box.target.os_user, prefix="metis-basebackup-")
            started = time.monotonic()
            subprocess.run(
                as_user(
                    [
                        box.target.tool("pg_basebackup"),
                        "-h",
                        str(box.target.socket_dir),
                        "-p",
                        str(box.target.port),
                        "-U",
                        "postgres",
                        "-D",
                        str(destination / "copy"),
                        "-Fp",
                        "-X",
                        "fetch",
                        "-c",
                        "fast",
                    ],
                    box,
                ),
                check=True,
                cwd="/",
            )
            results["pg_basebackup"].append(time.monotonic() - started)
            shutil.rmtree(destination)
            started = time.monotonic()
            run = physical.backup_run_physical(kind="full")
            results["pgbackrest"].append(time.monotonic() - started)
            stored = run.stored_bytes
            print(
                f"round {round_number}: pg_basebackup {results['pg_basebackup'][-1]:.1f}s, "
                f"pgbackrest {results['pgbackrest'][-1]:.1f}s"
            )
        best = {name: min(times) for name, times in results.items()}
        rate = {name: size / 1e6 / seconds for name, seconds in best.items()}
        print(
            f"\ndatabase {size / 1e6:.0f} MB; repository copy {stored / 1e6:.0f} MB "
            f"({size / stored:.1f}x smaller: {args.compress_type} + AES-256)"
        )
        for name in best:
            print(f"{name:14s} best {best[name]:6.1f}s  {rate[name]:7.1f} MB/s")
        ratio = rate["pgbackrest"] / rate["pg_basebackup"]
        print(f"ratio pgbackrest / pg_basebackup throughput: {ratio:.2f}")


if __name__ == "__main__":
    main()
