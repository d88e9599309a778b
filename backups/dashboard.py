"""The backup dashboard's tiles: one per target, green only when the latest evidence meets it."""

from __future__ import annotations

import datetime
from dataclasses import dataclass

from django.conf import settings
from django.utils import timezone

from backups.models import BackupRun, RestoreDrill, WalArchiveCheck

SPEC_RPO_SECONDS = 15 * 60  # data-storage.md, "RTO/RPO Targets"
SPEC_RTO_SECONDS = 4 * 60 * 60


@dataclass(frozen=True)
class Tile:
    name: str
    ok: bool
    value: str
    target: str
    evidence: str


def _seconds(value: float | None) -> str:
    return "—" if value is None else f"{value:.1f} s"


def tiles(now: datetime.datetime | None = None) -> list[Tile]:
    """Return the RPO, RTO, archiving and good-backup tiles from the latest catalog rows."""
    now = now or timezone.now()
    drill = RestoreDrill.objects.exclude(status="running").first()
    check = WalArchiveCheck.objects.first()
    good = BackupRun.objects.good().physical().first()
    rpo_target, rto_target = settings.BACKUP_RPO_TARGET_SECONDS, settings.BACKUP_RTO_TARGET_SECONDS
    drill_ok = drill is not None and drill.status == "succeeded" and drill.checks_passed
    drill_note = f"drill of {drill.started_at:%Y-%m-%d %H:%M}Z" if drill else "no drill yet"
    # Archiving must be healthy now for the drill's RPO to still hold.
    archive_fresh = (
        check is not None and check.ok and now - check.checked_at < datetime.timedelta(hours=2)
    )
    return [
        Tile(
            "RPO",
            drill_ok and drill.rpo_met() and archive_fresh,
            _seconds(drill.rpo_seconds if drill else None),
            f"≤ {rpo_target:.0f} s (spec {SPEC_RPO_SECONDS // 60} min)",
            f"{drill_note}; archiving {'healthy' if archive_fresh else 'NOT verified healthy'}",
        ),
        Tile(
            "RTO",
            drill_ok and drill.rto_met(),
            _seconds(drill.rto_seconds if drill else None),
            f"≤ {rto_target:.0f} s for 1 GB (spec {SPEC_RTO_SECONDS // 3600} h)",
            drill_note
            + (f", {drill.database_bytes / 1e9:.2f} GB" if drill and drill.database_bytes else ""),
        ),
        Tile(
            "WAL archiving",
            archive_fresh,
            _seconds(check.age_seconds if check else None),
            "checked hourly, reaching the repository",
            f"check of {check.checked_at:%Y-%m-%d %H:%M}Z: {check.last_archived_wal}"
            if check
            else "never checked",
        ),
        Tile(
            "Good backup",
            good is not None and now - good.started_at < datetime.timedelta(hours=36),
            f"{good.label}" if good else "—",
            "a verified, restore-tested full backup in the last 36 h",
            f"{good.started_at:%Y-%m-%d %H:%M}Z" if good else "none verified yet",
        ),
    ]
