"""The backup catalog: every backup, archive check, verification and drill as a row.

System tables, not tenant data: staff read them in the admin; no tenant context applies.
A backup is "good" only once it succeeded, was verified and a restore of it was tested.
"""

from __future__ import annotations

import datetime

from django.db import models
from django.utils import timezone


class JobStatus(models.TextChoices):
    RUNNING = "running", "Running"
    SUCCEEDED = "succeeded", "Succeeded"
    FAILED = "failed", "Failed"


class JobQuerySet(models.QuerySet):
    def running(self) -> JobQuerySet:
        return self.filter(status=JobStatus.RUNNING)

    def finished_before(self, moment: datetime.datetime) -> JobQuerySet:
        return self.exclude(status=JobStatus.RUNNING).filter(started_at__lt=moment)


class Job(models.Model):
    """A long-running job: who runs it (pid, host) and when it last said it was alive."""

    status = models.CharField(max_length=16, choices=JobStatus, default=JobStatus.RUNNING)
    started_at = models.DateTimeField(default=timezone.now)
    finished_at = models.DateTimeField(null=True, blank=True)
    heartbeat_at = models.DateTimeField(default=timezone.now)
    progress = models.PositiveSmallIntegerField(default=0, help_text="Percent done.")
    pid = models.PositiveIntegerField(null=True, blank=True)
    host = models.CharField(max_length=255, blank=True)
    error = models.TextField(blank=True)

    objects = JobQuerySet.as_manager()

    class Meta:
        abstract = True

    @property
    def duration(self) -> datetime.timedelta | None:
        return self.finished_at - self.started_at if self.finished_at else None


class BackupKind(models.TextChoices):
    FULL = "full", "Full (physical)"
    INCR = "incr", "Incremental (physical)"
    DIFF = "diff", "Differential (physical)"
    LOGICAL = "logical", "Logical (pg_dump)"
    TENANT_EXPORT = "tenant-export", "Tenant export"
    ANALYTICS = "analytics", "Analytics events"
    ARCHIVE_COPY = "archive-copy", "Archive copy (long-term)"


PHYSICAL_KINDS = (BackupKind.FULL, BackupKind.INCR, BackupKind.DIFF)


class BackupRunQuerySet(JobQuerySet):
    def good(self) -> BackupRunQuerySet:
        return self.filter(status=JobStatus.SUCCEEDED, verified=True, restore_tested=True)

    def physical(self) -> BackupRunQuerySet:
        return self.filter(kind__in=PHYSICAL_KINDS)


class BackupRun(Job):
    kind = models.CharField(max_length=16, choices=BackupKind)
    label = models.CharField(max_length=64, blank=True, help_text="pgBackRest backup label.")
    size_bytes = models.BigIntegerField(null=True, blank=True, help_text="Database size.")
    stored_bytes = models.BigIntegerField(
        null=True, blank=True, help_text="Size in the repository (compressed, encrypted)."
    )
    checksum = models.CharField(max_length=128, blank=True)
    location = models.CharField(max_length=1024, blank=True)
    wal_start = models.CharField(max_length=24, blank=True)
    wal_stop = models.CharField(max_length=24, blank=True)
    verified = models.BooleanField(default=False)
    verified_at = models.DateTimeField(null=True, blank=True)
    restore_tested = models.BooleanField(default=False)
    restore_tested_at = models.DateTimeField(null=True, blank=True)
    expired_at = models.DateTimeField(
        null=True, blank=True, help_text="Removed from the repository by retention."
    )
    repo = models.PositiveSmallIntegerField(
        default=1, help_text="pgBackRest repository: 1 the primary, 2 the second region."
    )
    # Only for tenant exports; the catalog stays a system table (tenants.rls.EXEMPT_TABLES).
    tenant = models.ForeignKey(
        "tenants.Tenant", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    details = models.JSONField(default=dict, blank=True)

    objects = BackupRunQuerySet.as_manager()

    class Meta:
        ordering = ["-started_at"]
        indexes = [models.Index(fields=["kind", "status", "-started_at"])]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} {self.label or self.pk} ({self.status})"

    def is_good(self) -> bool:
        return self.status == JobStatus.SUCCEEDED and self.verified and self.restore_tested


class WalArchiveCheck(models.Model):
    """One look at continuous archiving: the newest archived segment and how old it is."""

    checked_at = models.DateTimeField(default=timezone.now)
    last_archived_wal = models.CharField(max_length=64, blank=True)
    last_archived_at = models.DateTimeField(null=True, blank=True)
    age_seconds = models.FloatField(null=True, blank=True)
    failed_count = models.BigIntegerField(default=0)
    last_failed_wal = models.CharField(max_length=64, blank=True)
    in_repository = models.BooleanField(default=False)
    ok = models.BooleanField(default=False)
    detail = models.TextField(blank=True)

    class Meta:
        ordering = ["-checked_at"]

    def __str__(self) -> str:
        return f"archive check {self.checked_at:%Y-%m-%d %H:%M} {'ok' if self.ok else 'FAILING'}"


class RestoreDrill(Job):
    """A restore of the latest backup into a scratch cluster, checked and timed."""

    backup = models.ForeignKey(BackupRun, null=True, blank=True, on_delete=models.SET_NULL)
    repo = models.PositiveSmallIntegerField(
        default=1,
        help_text="Repository restored from: 1 the primary, 2 the second region (region loss).",
    )
    target_time = models.DateTimeField(null=True, blank=True, help_text="Point replayed to.")
    reached_time = models.DateTimeField(null=True, blank=True)
    rto_seconds = models.FloatField(null=True, blank=True, help_text="Start to usable.")
    rpo_seconds = models.FloatField(
        null=True, blank=True, help_text="Committed data at risk: commit to archived."
    )
    rto_target_seconds = models.FloatField()
    rpo_target_seconds = models.FloatField()
    database_bytes = models.BigIntegerField(null=True, blank=True)
    checks_passed = models.BooleanField(default=False)
    checks = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["-started_at"]

    def __str__(self) -> str:
        return f"drill {self.started_at:%Y-%m-%d %H:%M} ({self.status})"

    def rto_met(self) -> bool:
        return self.rto_seconds is not None and self.rto_seconds <= self.rto_target_seconds

    def rpo_met(self) -> bool:
        return self.rpo_seconds is not None and self.rpo_seconds <= self.rpo_target_seconds


class FailoverDrill(Job):
    """A failover of the application's database to its standby, timed (manage.py failover_drill).

    RTO: seconds from stopping the primary until a tenant page answers 200 from the promoted
    standby. RPO: marker transactions whose commit the primary acknowledged (with
    `synchronous_commit = remote_apply`) that the promoted server does not have.
    """

    primary = models.CharField(max_length=500, help_text="The primary stopped (its data dir).")
    standby = models.CharField(max_length=500, help_text="The standby promoted (its data dir).")
    standby_server = models.CharField(
        max_length=255, blank=True, help_text="host:port/database the application moved to."
    )
    probe_host = models.CharField(max_length=255, blank=True, help_text="The tenant page's host.")
    synchronous_commit = models.CharField(max_length=32, default="remote_apply")
    rto_seconds = models.FloatField(
        null=True, blank=True, help_text="Primary stopped to a tenant page served."
    )
    rto_target_seconds = models.FloatField()
    markers_acknowledged = models.PositiveIntegerField(
        default=0, help_text="Marker commits the primary acknowledged before it stopped."
    )
    markers_found = models.PositiveIntegerField(
        default=0, help_text="Of those, present on the promoted server."
    )
    rpo_transactions_lost = models.PositiveIntegerField(
        null=True, blank=True, help_text="Acknowledged commits missing after the failover."
    )
    steps = models.JSONField(default=dict, blank=True, help_text="Seconds from the stop.")

    class Meta:
        ordering = ["-started_at"]

    def __str__(self) -> str:
        return f"failover drill {self.started_at:%Y-%m-%d %H:%M} ({self.status})"

    def rto_met(self) -> bool:
        return self.rto_seconds is not None and self.rto_seconds <= self.rto_target_seconds

    def rpo_met(self) -> bool:
        return self.rpo_transactions_lost == 0


class FailoverDrillMarker(models.Model):
    """One numbered transaction committed on the primary while a failover drill stopped it."""

    drill = models.ForeignKey(FailoverDrill, on_delete=models.CASCADE, related_name="markers")
    seq = models.PositiveIntegerField()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["drill", "seq"], name="backups_failover_marker_once")
        ]

    def __str__(self) -> str:
        return f"marker {self.seq} of failover drill {self.drill_id}"


class RetentionPolicy(models.Model):
    """How many full backups to keep; data staff edit it in the admin. The active one applies."""

    name = models.CharField(max_length=100, unique=True)
    keep_daily = models.PositiveSmallIntegerField(
        default=7, help_text="The newest N full backups (one a day by schedule)."
    )
    keep_weekly = models.PositiveSmallIntegerField(
        default=4, help_text="The newest full backup of each of the last M ISO weeks."
    )
    keep_monthly = models.PositiveSmallIntegerField(
        default=12, help_text="The newest full backup of each of the last K months."
    )
    is_active = models.BooleanField(default=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name_plural = "retention policies"
        constraints = [
            models.UniqueConstraint(
                fields=["is_active"],
                condition=models.Q(is_active=True),
                name="backups_one_active_retention_policy",
            ),
            models.CheckConstraint(
                condition=models.Q(keep_daily__gte=1), name="backups_retention_keeps_one"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.name}: {self.keep_daily}d/{self.keep_weekly}w/{self.keep_monthly}m"
