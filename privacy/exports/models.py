"""One export of a subject's data: what was asked, by whom, its progress, and what it held."""

from __future__ import annotations

from datetime import datetime
from typing import Self

from django.contrib.postgres.functions import RandomUUID
from django.db import models
from django.db.models.functions import Now

from tenants.foreign_keys import TenantForeignKey
from tenants.models import Tenant, TenantOwnedModel, TenantOwnedQuerySet, TenantUser


class ExportScope(models.TextChoices):
    USER = "user", "Tenant user"
    BORROWER = "borrower", "Borrower (subject reference)"
    TENANT = "tenant", "Whole tenant"


class ExportStatus(models.TextChoices):
    QUEUED = "queued", "Queued"
    RUNNING = "running", "Running"
    READY = "ready", "Ready"
    FAILED = "failed", "Failed"
    EXPIRED = "expired", "Expired (file deleted)"
    ERASED = "erased", "Deleted (its subject was erased)"


class ExportQuerySet(TenantOwnedQuerySet):
    def visible_to(self, user: TenantUser) -> Self:
        """A user's own exports; a tenant admin's tenant's, all of them."""
        mine = self.for_tenant(user.tenant_id)
        return mine if user.is_admin else mine.filter(requested_by=user)

    def due_for_deletion(self, now: datetime) -> Self:
        return self.filter(status=ExportStatus.READY, expires_at__lte=now)


class Export(TenantOwnedModel):
    """A ZIP of one subject's (or the whole tenant's) data under tenants/{id}/exports/.

    The row outlives its file: once the file is deleted (`expires_at`), `summary`, `size_bytes`
    and `sha256` still say what the export held.
    """

    id = models.UUIDField(primary_key=True, db_default=RandomUUID(), editable=False)
    # The (tenant, -created_at) index below leads with tenant_id: no separate FK index.
    tenant = models.ForeignKey(Tenant, on_delete=models.PROTECT, related_name="+", db_index=False)
    scope = models.CharField(max_length=10, choices=ExportScope.choices)
    subject_user = models.ForeignKey(
        TenantUser,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        db_constraint=False,
    )
    subject_ref = models.CharField(max_length=255, blank=True)
    requested_by = models.ForeignKey(
        TenantUser,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        db_constraint=False,
    )
    status = models.CharField(
        max_length=10, choices=ExportStatus.choices, default=ExportStatus.QUEUED
    )
    progress_percent = models.FloatField(default=0)
    progress_note = models.CharField(max_length=255, blank=True)
    object_key = models.CharField(max_length=500, blank=True)
    version_id = models.CharField(max_length=200, blank=True)
    size_bytes = models.BigIntegerField(null=True, blank=True)
    sha256 = models.CharField(max_length=64, blank=True)
    summary = models.JSONField(default=dict, blank=True)  # rows and files per kind, skipped files
    error = models.TextField(blank=True)
    created_at = models.DateTimeField(db_default=Now(), editable=False)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    expires_at = models.DateTimeField(null=True, blank=True)  # the file is deleted then
    deleted_at = models.DateTimeField(null=True, blank=True)

    objects = ExportQuerySet.as_manager()  # type: ignore[misc]  # see TenantUser.objects

    class Meta:
        db_table = "privacy_exports"
        ordering = ["-created_at"]
        constraints = [
            *TenantOwnedModel.Meta.constraints,
            TenantForeignKey(field="subject_user", name="privacy_exports_subject_same_tenant"),
            TenantForeignKey(field="requested_by", name="privacy_exports_requester_same_tenant"),
            models.CheckConstraint(
                # A user export's subject may later be erased (SET_NULL): the row stays.
                condition=models.Q(scope="user", subject_ref="")
                | models.Q(scope="borrower", subject_user__isnull=True) & ~models.Q(subject_ref="")
                | models.Q(scope="tenant", subject_user__isnull=True, subject_ref=""),
                name="privacy_exports_subject_matches_scope",
            ),
        ]
        indexes = [
            models.Index(fields=["tenant", "-created_at"], name="privacy_exports_tenant_created"),
            models.Index(
                fields=["expires_at"],
                name="privacy_exports_due",
                condition=models.Q(status="ready"),
            ),
        ]

    def __str__(self) -> str:
        return f"export {self.id} ({self.describe_subject()}, {self.status})"

    def describe_subject(self) -> str:
        if self.scope == ExportScope.USER:
            return f"user {self.subject_user_id}"
        if self.scope == ExportScope.BORROWER:
            return f"borrower {self.subject_ref}"
        return "whole tenant"

    def is_ready(self) -> bool:
        return self.status == ExportStatus.READY

    def is_finished(self) -> bool:
        return self.status in {
            ExportStatus.READY,
            ExportStatus.FAILED,
            ExportStatus.EXPIRED,
            ExportStatus.ERASED,
        }
