"""Region-loss restore time (RTO): 1 GB restored from the second region's repository alone.

Loads ~1 GB into a sandbox cluster archiving into two TLS SeaweedFS servers (repo1 and repo2,
two "regions"), takes a full backup into each, writes more after them (so recovery replays
WAL), then runs two restore drills in the same run: from repo 1 with both regions up (the
baseline), and from repo 2 with the first region's S3 server stopped once the marker's WAL is
archived (`drill_run(repo=2)`: backup, WAL and erasure ledger read from the second region).
Figures: both RTOs, their ratio, and repo 2's RTO against the 10-minute goal. Run:

    METIS_ENV_FILE=var/test.env .venv/bin/python bench/backup_region_loss.py [--mb 1024]
"""

from __future__ import annotations

import argparse
import os
import time

from _backup_common import backup_sandbox, load_table, wait_archive_idle

from backups.models import RestoreDrill
from backups.services import drill, physical
from tests.support import backup_sandbox as sandbox

GOAL_SECONDS = 600  # issue 15: 1 GB from the second region in at most 10 minutes


def timed_drill(*, repo: int, on_restore=None) -> RestoreDrill:
    started = time.monotonic()

    def step(message: str) -> None:
        print(f"  repo {repo} {time.monotonic() - started:6.1f}s {message}")
        if on_restore is not None and message.startswith("restoring"):
            on_restore()

    return drill.drill_run(repo=repo, force_wal_switch=True, on_step=step)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--mb", type=int, default=1024)
    args = parser.parse_args()
    with backup_sandbox(second_region=True) as box:
        size = load_table(box, megabytes=args.mb)
        wait_archive_idle(box)
        for run in physical.backup_run_every_repo(kind="full"):
            print(
                f"full backup into repo {run.repo} ({run.label}): "
                f"{run.duration.total_seconds():.1f}s, {run.stored_bytes / 1e6:.0f} MB stored"
            )
        with box.connect(autocommit=True) as conn:  # changes only the WAL can bring back
            conn.execute("UPDATE ledger SET created_at = now() WHERE id % 50 = 0")

        first = timed_drill(repo=1)
        region1 = box.s3
        try:
            second = timed_drill(repo=2, on_restore=region1.stop)
        finally:
            sandbox.tls_s3_restart(region1)
        load = os.getloadavg()
        print(f"\ndatabase {size / 1e9:.2f} GB; load average {load[0]:.2f} {load[1]:.2f}")
        for result in (first, second):
            print(
                f"repo {result.repo}: RTO {result.rto_seconds:.1f}s, "
                f"RPO {result.rpo_seconds:.1f}s, checks passed: {result.checks_passed} "
                f"({result.checks.get('rows'):,} rows)"
            )
        print(
            f"ratio RTO repo 2 (first region stopped) / RTO repo 1: "
            f"{second.rto_seconds / first.rto_seconds:.2f}"
        )
        print(
            f"ratio RTO repo 2 / {GOAL_SECONDS} s goal for 1 GB: "
            f"{second.rto_seconds / GOAL_SECONDS:.3f}"
        )
        if not (first.checks_passed and second.checks_passed):
            raise SystemExit("a drill failed its checks")


if __name__ == "__main__":
    main()
