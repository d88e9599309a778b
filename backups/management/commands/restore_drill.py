"""Run a restore drill: latest backup -> scratch cluster -> checks, RTO and RPO recorded.

`--repo 2` is the region-loss drill: backup, WAL and restore from the second region alone.
"""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from backups.management.commands import _common
from backups.services import drill


class Command(BaseCommand):
    help = __doc__

    def add_arguments(self, parser) -> None:
        parser.add_argument(
            "--force-wal-switch",
            action="store_true",
            help="Do not wait for archive_timeout (the RPO measured is then ~0).",
        )
        parser.add_argument(
            "--repo",
            type=int,
            choices=[1, 2],
            default=1,
            help="Repository to restore from; 2: the second region alone (region-loss drill).",
        )

    def handle(self, *args, force_wal_switch: bool, repo: int, **options) -> None:
        bar = _common.progress(self, "drill")
        try:
            result = drill.drill_run(
                force_wal_switch=force_wal_switch,
                repo=repo,
                on_progress=bar.update,
                on_step=bar.step,
            )
        except _common.EXPECTED_ERRORS as exc:
            raise _common.fail(exc) from exc
        self.stdout.write(
            f"Drill {result.pk} (repository {result.repo}): "
            f"checks {'passed' if result.checks_passed else 'FAILED'} "
            f"({result.checks.get('tables')} tenant tables, {result.checks.get('rows')} rows); "
            f"RTO {result.rto_seconds:.1f}s (target {result.rto_target_seconds:.0f}s), "
            f"RPO {result.rpo_seconds:.1f}s (target {result.rpo_target_seconds:.0f}s)"
        )
        if not result.checks_passed:
            raise CommandError(str(result.checks))
