"""The files prometheus_client's multiprocess mode keeps in PROMETHEUS_MULTIPROC_DIR.

Every process that counts writes a file of its own there, and a scrape sums them all, those of
processes long gone too. So the directory is emptied before a run's processes start (a previous
run's files would carry its counters), and the gunicorn arbiter marks each worker that exits
dead, which drops its live gauges.
"""

from __future__ import annotations

from pathlib import Path

from django.conf import settings


def directory_reset(directory: Path | None = None) -> int:
    """Delete every metrics file in the directory (created if missing); return how many."""
    directory = Path(directory or settings.PROMETHEUS_MULTIPROC_DIR)
    directory.mkdir(parents=True, exist_ok=True)
    removed = 0
    for path in directory.glob("*.db"):
        path.unlink(missing_ok=True)
        removed += 1
    return removed


def process_dead_mark(pid: int) -> None:
    """Drop the live gauges of process `pid`, which has exited (its counters keep counting)."""
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(pid, path=settings.PROMETHEUS_MULTIPROC_DIR)
