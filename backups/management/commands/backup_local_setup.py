"""Back up the cluster `make run` owns: archiving on, the stanza, a first good backup and drill.

`make run` runs this before it starts the processes. It acts only on the embedded cluster
(BACKUP_LOCAL_SETUP, which scripts/local_services.py writes for it); on a PostgreSQL of your
own it says how to set one up. Without pgBackRest it says what to install. It exits 0 whatever
happens, loudly: the demo runs without backups, and the dashboard shows what is missing.
"""

from __future__ import annotations

import time

from django.conf import settings
from django.core.management.base import BaseCommand

from backups import pgbackrest
from backups.management.commands import _common
from backups.services import bootstrap


class Command(BaseCommand):
    help = __doc__.splitlines()[0]

    def handle(self, *args, **options) -> None:
        out = self.stdout.write
        if not settings.BACKUP_LOCAL_SETUP:
            out(
                "Backups: not set up by make run (the database is your own): "
                "`manage.py backup_configure` prints what archiving needs (docs/operations.md)."
            )
            return
        notice = pgbackrest.missing_notice()
        if notice:
            out(self.style.WARNING(f"Backups: {notice}"))
            return
        started = time.monotonic()

        def step(message: str) -> None:
            self.stderr.write(f"backups: {message} ({time.monotonic() - started:.0f} s)")

        try:
            tiles = bootstrap.local_backups_ensure(
                step=step,
                progress_for=lambda label: _common.progress(self, label).update,
            )
        except _common.EXPECTED_ERRORS as exc:
            out(self.style.ERROR(f"Backups: NOT set up: {exc}{_hint(str(exc))}"))
            return
        for tile in tiles:
            mark = "ok " if tile.ok else "RED"
            out(f"Backups: {mark} {tile.name}: {tile.value} ({tile.evidence})")


def _hint(error: str) -> str:
    if "VersionNotSupportedError" not in error:
        return ""
    # pgBackRest reads each PostgreSQL major version from a release on: an older one refuses.
    return (
        "\n  This pgBackRest cannot read the embedded server's PostgreSQL version. Install a "
        "newer pgBackRest, or recreate the demo database on the machine's PostgreSQL: "
        "`make stop && rm -rf var/pgdata var/backups && make run` (see README, Backups)."
    )
