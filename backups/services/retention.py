"""Retention: keep N daily, M weekly, K monthly full backups; expire the rest with pgBackRest.

Which full backups to keep is decided here from the active RetentionPolicy; removing them is
left to pgBackRest's own `expire`, which also removes the differential and incremental backups
that depend on them. WAL is expired with the archive retention set to the number of full
backups kept, so every segment from the oldest kept backup onward stays: each kept backup can
be restored and replayed to the end of the archive.
"""

from __future__ import annotations

import datetime

from django.db import transaction
from django.utils import timezone

from backups import pgbackrest
from backups.models import BackupRun, RetentionPolicy


def _stopped_at(backup: dict) -> datetime.datetime:
    return datetime.datetime.fromtimestamp(backup["timestamp"]["stop"], tz=datetime.UTC)


def retention_keep(
    *, full_backups: list[dict], policy: RetentionPolicy, now: datetime.datetime
) -> set[str]:
    """Return the labels of the full backups `policy` keeps."""
    newest_first = sorted(full_backups, key=_stopped_at, reverse=True)
    keep = {b["label"] for b in newest_first[: policy.keep_daily]}

    def newest_per(period_of, periods: set) -> set[str]:
        chosen: dict = {}
        for backup in newest_first:
            period = period_of(_stopped_at(backup))
            if period in periods and period not in chosen:
                chosen[period] = backup["label"]
        return set(chosen.values())

    weeks = {
        (now - datetime.timedelta(weeks=i)).isocalendar()[:2] for i in range(policy.keep_weekly)
    }
    keep |= newest_per(lambda moment: moment.isocalendar()[:2], weeks)
    months = set()
    year, month = now.year, now.month
    for _ in range(policy.keep_monthly):
        months.add((year, month))
        year, month = (year, month - 1) if month > 1 else (year - 1, 12)
    keep |= newest_per(lambda moment: (moment.year, moment.month), months)
    return keep


def retention_apply(
    *, policy: RetentionPolicy | None = None, ctx: pgbackrest.Context | None = None
) -> list[str]:
    """Expire the full backups the policy does not keep, then the WAL no kept backup needs, in
    every repository (the second region's keeps the same policy over its own backups).

    Return the expired labels. Idempotent.
    """
    policy = policy or RetentionPolicy.objects.filter(is_active=True).first()
    if policy is None:
        return []
    ctx = ctx or pgbackrest.Context.current()
    expired: list[str] = []
    for repo in ctx.repo.repos():
        expired += _retention_apply_repo(ctx=ctx, policy=policy, number=repo.number)
    return expired


def _retention_apply_repo(
    *, ctx: pgbackrest.Context, policy: RetentionPolicy, number: int
) -> list[str]:
    fulls = [b for b in pgbackrest.backups(ctx, repo=number) if b["type"] == "full"]
    keep = retention_keep(full_backups=fulls, policy=policy, now=timezone.now())
    expired = [b["label"] for b in fulls if b["label"] not in keep]
    for label in expired:
        pgbackrest.run(ctx, "expire", f"--repo={number}", f"--set={label}", timeout=3600)
    if keep:
        count = str(len(keep))
        pgbackrest.run(
            ctx,
            "expire",
            f"--repo={number}",
            f"--repo{number}-retention-full={count}",
            f"--repo{number}-retention-archive={count}",
            f"--repo{number}-retention-archive-type=full",
            timeout=3600,
        )
    remaining = {b["label"] for b in pgbackrest.backups(ctx, repo=number)}
    with transaction.atomic():
        BackupRun.objects.physical().filter(repo=number, expired_at__isnull=True).exclude(
            label=""
        ).exclude(label__in=remaining).update(expired_at=timezone.now())
    return expired
