"""Point-in-time restore into a new cluster beside the live one.

    python manage.py restore --to "2026-11-28 01:30:00+00" --target /srv/pg-restore [--port N]

Never over the live data directory or a non-empty directory unless --force.
"""

from __future__ import annotations

import datetime
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError
from django.utils.dateparse import parse_datetime

from backups.management.commands import _common
from backups.services import restore


class Command(BaseCommand):
    help = "Restore the backups into a new cluster, replayed to a point in time."

    def add_arguments(self, parser) -> None:
        parser.add_argument(
            "--to",
            help="Timestamp to replay to (ISO 8601; UTC if no zone). "
            "Omit to replay to the end of the archive.",
        )
        parser.add_argument("--target", required=True, type=Path, help="New data directory.")
        parser.add_argument("--port", type=int, help="Port of the restored cluster.")
        parser.add_argument(
            "--force",
            action="store_true",
            help="Allow a non-empty target or the live data directory.",
        )
        parser.add_argument(
            "--repo",
            type=int,
            choices=[1, 2],
            help="Read only this repository (2: the second region, when the first is lost).",
        )

    def handle(
        self,
        *args,
        to: str | None,
        target: Path,
        port: int | None,
        force: bool,
        repo: int | None,
        **options,
    ):
        moment = None
        if to:
            moment = parse_datetime(to)
            if moment is None:
                raise CommandError(f"not a timestamp: {to!r}")
            if moment.tzinfo is None:
                moment = moment.replace(tzinfo=datetime.UTC)
        bar = _common.progress(self, "restore")
        try:
            outcome = restore.restore_point_in_time(
                data_dir=target,
                to=moment,
                port=port,
                force=force,
                repo=repo,
                on_progress=bar.update,
            )
        except _common.EXPECTED_ERRORS as exc:
            raise _common.fail(exc) from exc
        bar.update(100)
        self.stdout.write(
            f"Restored into {outcome.data_dir}, running on port {outcome.port} "
            f"(socket {outcome.socket_dir}).\n"
            f"Target: {moment.isoformat() if moment else 'end of archive'}; "
            f"reached: last transaction replayed at {outcome.reached_time}.\n"
            f"Usable after {outcome.usable_after_seconds:.1f}s."
        )
