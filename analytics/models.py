"""Analytics models: the DuckDB workbench audit. (The event outbox lives in metis.events.)"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models.functions import Now


class WorkbenchQueryStatus(models.TextChoices):
    RUNNING = "running", "Running"
    OK = "ok", "Succeeded"
    REFUSED = "refused", "Refused"
    FAILED = "failed", "Failed"
    TIMED_OUT = "timed-out", "Timed out"


class WorkbenchQuery(models.Model):
    """Audit: one SQL workbench run by a staff member, refused runs included.

    Not tenant-owned (no tenant column): a staff action over the all-tenants export.
    """

    staff = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    sql = models.TextField()
    export_run_id = models.CharField(max_length=40, blank=True)
    started_at = models.DateTimeField(db_default=Now(), editable=False)
    duration_ms = models.PositiveIntegerField(null=True, blank=True)
    row_count = models.PositiveIntegerField(null=True, blank=True)
    truncated = models.BooleanField(default=False)
    status = models.CharField(
        max_length=20, choices=WorkbenchQueryStatus.choices, default=WorkbenchQueryStatus.RUNNING
    )
    error = models.TextField(blank=True)
    ip_address = models.GenericIPAddressField(null=True, blank=True)

    class Meta:
        db_table = "analytics_workbench_queries"
        ordering = ["-started_at"]
        verbose_name_plural = "workbench queries"
        indexes = [models.Index(fields=["staff", "-started_at"], name="workbench_staff_started")]

    def __str__(self) -> str:
        return f"{self.staff} {self.status} at {self.started_at:%Y-%m-%d %H:%M:%S}"
