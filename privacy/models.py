"""Retention rules, what is known of each data subject, legal holds, and erasure requests.

A subject is a tenant user or a borrower (`Document.metadata["subject_ref"]`); see
privacy/subjects.py. Retention rules are platform-wide (staff edit them); the relationship's
end date and a subject's legal hold are per tenant and subject.
"""

from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models
from django.db.models.functions import Now

from documents.models import Document, DocumentType

# Each part of the app may keep its models in its own package; Django finds them through here.
from privacy.exports.models import Export, ExportScope, ExportStatus  # noqa: F401
from tenants.foreign_keys import TenantForeignKey
from tenants.models import TenantOwnedModel, TenantOwnedQuerySet


class SubjectKind(models.TextChoices):
    USER = "user", "Tenant user"
    BORROWER = "borrower", "Borrower (subject reference)"


class RetentionBasis(models.TextChoices):
    RELATIONSHIP_END = "relationship-end", "after the relationship's end date"
    UPLOAD = "upload", "after the document was uploaded"


class RetentionRule(models.Model):
    """Keep documents of one type for `years` after the basis date; erasure waits until then.

    A system table (no tenant column): the law, not the tenant, sets these periods.
    """

    name = models.CharField(max_length=100, help_text="Named in refusals, e.g. “KYC: 5 years”.")
    document_type = models.CharField(max_length=20, choices=DocumentType.choices, unique=True)
    years = models.PositiveSmallIntegerField()
    basis = models.CharField(
        max_length=20, choices=RetentionBasis.choices, default=RetentionBasis.RELATIONSHIP_END
    )
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        db_table = "privacy_retention_rules"
        ordering = ["document_type"]

    def __str__(self) -> str:
        return self.name


class SubjectRecord(TenantOwnedModel):
    """What the tenant told us about one subject: the relationship's end, and a legal hold."""

    kind = models.CharField(max_length=10, choices=SubjectKind.choices)
    # A borrower's subject reference, or a tenant user's id as text.
    ref = models.CharField(max_length=64)
    relationship_ended_on = models.DateField(
        null=True, blank=True, help_text="Empty: the relationship is ongoing (rules do not run)."
    )
    legal_hold = models.BooleanField(default=False)
    legal_hold_reason = models.CharField(max_length=255, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        db_table = "privacy_subject_records"
        ordering = ["kind", "ref"]
        constraints = [
            *TenantOwnedModel.Meta.constraints,
            models.UniqueConstraint(
                fields=["tenant", "kind", "ref"], name="privacy_subject_records_key"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} {self.ref}"


class DocumentLegalHold(TenantOwnedModel):
    """A legal hold on one document: no erasure touches it while the row exists."""

    document = models.ForeignKey(
        Document, on_delete=models.PROTECT, related_name="+", db_constraint=False
    )
    reason = models.CharField(max_length=255)
    placed_at = models.DateTimeField(db_default=Now(), editable=False)

    class Meta:
        db_table = "privacy_document_holds"
        ordering = ["-placed_at"]
        constraints = [
            *TenantOwnedModel.Meta.constraints,
            TenantForeignKey(field="document", name="privacy_document_holds_document_same_tenant"),
        ]

    def __str__(self) -> str:
        return f"hold on {self.document_id}: {self.reason}"


class ErasureStatus(models.TextChoices):
    REQUESTED = "requested", "Awaiting approval"
    APPROVED = "approved", "Approved, erasing"
    HELD = "held", "Erased except held parts (scheduled)"
    DONE = "done", "Erased"
    FAILED = "failed", "Failed (run again)"
    REJECTED = "rejected", "Rejected"


class ErasureRequestQuerySet(TenantOwnedQuerySet):
    def due(self, now) -> ErasureRequestQuerySet:
        """Held requests whose next scheduled run has come."""
        return self.filter(status=ErasureStatus.HELD, next_run_at__lte=now)


class ErasureRequest(TenantOwnedModel):
    """One request to erase a subject: asked by staff or a tenant admin, approved by staff.

    Its `receipt` lists every run (what was erased where, counts, what was held and why).
    """

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    kind = models.CharField(max_length=10, choices=SubjectKind.choices)
    ref = models.CharField(max_length=64)
    reason = models.CharField(max_length=255, blank=True)
    status = models.CharField(
        max_length=10, choices=ErasureStatus.choices, default=ErasureStatus.REQUESTED
    )
    requested_by_staff = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    # An id, not a reference: the requesting tenant admin may be erased later, the request stays.
    requested_by_user_id = models.UUIDField(null=True, blank=True)
    approved_by_staff = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(db_default=Now(), editable=False)
    approved_at = models.DateTimeField(null=True, blank=True)
    completed_at = models.DateTimeField(null=True, blank=True)
    next_run_at = models.DateTimeField(null=True, blank=True)
    error = models.TextField(blank=True)
    receipt = models.JSONField(default=dict, blank=True)

    objects = ErasureRequestQuerySet.as_manager()  # type: ignore[misc]

    class Meta:
        db_table = "privacy_erasure_requests"
        ordering = ["-created_at"]
        constraints = [*TenantOwnedModel.Meta.constraints]
        indexes = [
            models.Index(
                fields=["status", "next_run_at"],
                name="privacy_erasure_due",
                condition=models.Q(status="held"),
            )
        ]

    def __str__(self) -> str:
        return f"erase {self.kind} {self.ref} ({self.get_status_display()})"
