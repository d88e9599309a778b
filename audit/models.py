"""The audit log, read through the ORM. Its table is made by migration 0001 (audit/schema.py):
partitioned, hash-chained and append-only, none of which a Django model can declare."""

from __future__ import annotations

import uuid
from typing import Self

from django.db import models

from tenants.rls import RowLevelSecurity


class AuditEntryQuerySet(models.QuerySet):
    def for_tenant(self, tenant) -> Self:
        return self.filter(tenant_id=getattr(tenant, "pk", tenant))

    def system(self) -> Self:
        """Staff and system rows: the ones no tenant owns."""
        return self.filter(tenant_id__isnull=True)


class AuditEntry(models.Model):
    """One audited action. `seq` and `hash` place it in its tenant's chain (the database sets
    them); staff and system actions have no tenant and chain together."""

    # The table's key is (id, created_at), as partitioning asks; id alone is unique too.
    id = models.BigIntegerField(primary_key=True)
    created_at = models.DateTimeField()
    tenant_id = models.UUIDField(null=True)
    seq = models.BigIntegerField()
    prev_hash = models.CharField(max_length=64)
    hash = models.CharField(max_length=64)
    action = models.CharField(max_length=100)
    actor_type = models.CharField(max_length=20)
    actor_id = models.CharField(max_length=64)
    target_type = models.CharField(max_length=50)
    target_id = models.CharField(max_length=64)
    # NULL when no address is known (a task), as the log's other rows record it.
    ip_address = models.CharField(max_length=45, null=True)  # noqa: DJ001
    request_id = models.CharField(max_length=64)
    metadata = models.JSONField(default=dict)

    objects = AuditEntryQuerySet.as_manager()

    class Meta:
        managed = False
        db_table = "audit_log"
        ordering = ["-created_at", "-id"]
        verbose_name_plural = "audit entries"
        # Declared so the all-tenants router reads it through the staff read role, and so the
        # RLS checks know it; the migration writes its policies (audit/schema.py).
        constraints = [RowLevelSecurity(name="audit_log_rls", sealed=True)]

    def __str__(self) -> str:
        return f"#{self.seq} {self.action} at {self.created_at:%Y-%m-%d %H:%M:%S}"

    @property
    def chain(self) -> uuid.UUID | None:
        return self.tenant_id
