"""KYC documents held in object storage, their versions, and the log of every access.

References between these tenant tables have `db_constraint=False`: the database constraint is
the TenantForeignKey in Meta, a (tenant_id, fk) key that cannot reach another tenant's row.
"""

from __future__ import annotations

from django.conf import settings
from django.contrib.postgres.functions import RandomUUID
from django.contrib.postgres.indexes import GinIndex
from django.db import models
from django.db.models import Count, OuterRef, Subquery
from django.db.models.functions import Coalesce, Now

from tenants.foreign_keys import TenantForeignKey, TenantKey
from tenants.models import Tenant, TenantOwnedModel, TenantOwnedQuerySet, TenantUser


class DocumentType(models.TextChoices):
    PAN = "pan", "PAN card"
    AADHAR = "aadhar", "Aadhaar"
    BANK_STATEMENT = "bank-statement", "Bank statement"
    IMAGE = "image", "Image"
    REPORT = "report", "Report"


class StorageClass(models.TextChoices):
    STANDARD = "STANDARD", "Standard"
    STANDARD_IA = "STANDARD_IA", "Infrequent access"
    GLACIER = "GLACIER", "Glacier"


class RestoreStatus(models.TextChoices):
    NONE = "", "Not requested"
    REQUESTED = "requested", "Restore requested"
    READY = "ready", "Restored (temporary copy available)"
    FAILED = "failed", "Restore failed"


class DocumentQuerySet(TenantOwnedQuerySet):
    def live(self) -> DocumentQuerySet:
        return self.filter(deleted_at__isnull=True)

    def in_tier(self, storage_class: str) -> DocumentQuerySet:
        return self.filter(storage_class=storage_class)

    def with_version_count(self) -> DocumentQuerySet:
        """Annotate `version_count`, counted for each row returned (a correlated subquery):
        a join grouped by document would count every document's versions before a LIMIT."""
        versions = (
            DocumentVersion.objects.filter(document=OuterRef("pk"), tenant=OuterRef("tenant"))
            .order_by()
            .values("document")
            .annotate(count=Count("*"))
            .values("count")
        )
        return self.annotate(version_count=Coalesce(Subquery(versions), 0))


class DocumentVersionQuerySet(TenantOwnedQuerySet):
    def unreplicated(self) -> DocumentVersionQuerySet:
        """Versions whose copy in the DR bucket is still to be made (or remade)."""
        return self.filter(dr_replicated_at__isnull=True)


class Document(TenantOwnedModel):
    """One KYC document; its fields describe the current version (see DocumentVersion)."""

    id = models.UUIDField(primary_key=True, db_default=RandomUUID(), editable=False)
    tenant = models.ForeignKey(Tenant, on_delete=models.PROTECT, related_name="+", db_index=False)
    document_type = models.CharField(max_length=20, choices=DocumentType.choices)
    original_filename = models.CharField(max_length=255)
    content_type = models.CharField(max_length=100)  # sniffed from the bytes, never the client's
    size_bytes = models.BigIntegerField()
    sha256 = models.CharField(max_length=64)
    storage_key = models.CharField(max_length=500, unique=True)
    version_id = models.CharField(max_length=200, blank=True)  # S3 version id; empty on local
    # The current version's S3 ETag, as the server quoted it: tiering copies the object only if
    # it still has this tag (CopySourceIfMatch), so a change behind the row's back is noticed
    # without a HEAD. Empty on rows stored before it was kept (tiering then checks with a HEAD).
    etag = models.CharField(max_length=200, default="", db_default="", blank=True)
    storage_class = models.CharField(
        max_length=20, choices=StorageClass.choices, default=StorageClass.STANDARD
    )
    storage_class_changed_at = models.DateTimeField(db_default=Now())
    # A tiering run's claim, committed before it copies the object and cleared with the row's
    # update: a claim left behind names a run that died in between (documents/tiering.py).
    # A database default too: rows inserted by SQL (restores, tests of references) need none.
    tiering_target = models.CharField(
        max_length=20, choices=StorageClass.choices, default="", db_default="", blank=True
    )
    tiering_started_at = models.DateTimeField(null=True, blank=True)
    restore_status = models.CharField(
        max_length=20, choices=RestoreStatus.choices, default="", blank=True
    )
    restore_requested_at = models.DateTimeField(null=True, blank=True)
    restore_expires_at = models.DateTimeField(null=True, blank=True)
    # Who asked for the current restore (a tenant user; none when staff did), and when that
    # user was mailed that it is ready (documents/restore_mail.py): once per restore.
    restore_requested_by = models.ForeignKey(
        TenantUser,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        db_constraint=False,
    )
    restore_notified_at = models.DateTimeField(null=True, blank=True)
    last_accessed_at = models.DateTimeField(null=True, blank=True)
    metadata = models.JSONField(default=dict, db_default={}, blank=True)
    uploaded_by = models.ForeignKey(
        TenantUser,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        db_constraint=False,
    )
    uploaded_by_staff = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(db_default=Now(), editable=False)
    # When the current version was stored: `created_at`, moved forward by a trigger on each
    # new version (documents/stored_at_sql.py). Tiering ages a document from here.
    stored_at = models.DateTimeField(db_default=Now(), editable=False)
    updated_at = models.DateTimeField(auto_now=True)
    deleted_at = models.DateTimeField(null=True, blank=True)  # soft delete; objects kept

    objects = DocumentQuerySet.as_manager()

    class Meta:
        db_table = "documents"
        ordering = ["-created_at"]
        constraints = [
            *TenantOwnedModel.Meta.constraints,
            TenantKey(name="documents_tenant_id_key"),
            TenantForeignKey(field="uploaded_by", name="documents_uploaded_by_same_tenant"),
            TenantForeignKey(
                field="restore_requested_by", name="documents_restore_requested_by_same_tenant"
            ),
        ]
        indexes = [
            # Every list is one tenant's, newest first, paged by keyset on (created_at, id)
            # (documents/pagination.py); tiering scans one class by age.
            models.Index(
                fields=["tenant", "-created_at", "-id"], name="documents_tenant_created_id"
            ),
            models.Index(fields=["tenant", "document_type"], name="documents_tenant_type"),
            models.Index(fields=["tenant", "sha256"], name="documents_tenant_sha256"),
            models.Index(fields=["storage_class", "created_at"], name="documents_class_created"),
            models.Index(
                fields=["tenant", "tiering_started_at"],
                name="documents_tiering_claimed",
                condition=models.Q(tiering_started_at__isnull=False),
            ),
            GinIndex(fields=["metadata"], name="documents_metadata_gin"),
            # The tiering plan: a tenant's live documents not yet in Glacier, oldest first, up
            # to the IA cut-off; class and claim are included, so counting what is due reads
            # the index alone.
            models.Index(
                fields=["tenant", "stored_at"],
                include=["storage_class", "tiering_started_at"],
                name="documents_tier_due",
                condition=models.Q(
                    deleted_at__isnull=True,
                    storage_class__in=[StorageClass.STANDARD, StorageClass.STANDARD_IA],
                ),
            ),
        ]

    def __str__(self) -> str:
        return f"{self.get_document_type_display()}: {self.original_filename}"

    def is_archived(self) -> bool:
        return self.storage_class == StorageClass.GLACIER

    def is_deleted(self) -> bool:
        return self.deleted_at is not None


class DocumentVersion(TenantOwnedModel):
    """Every stored version of a document, the current one included; replacing adds a row."""

    id = models.BigAutoField(primary_key=True)
    document = models.ForeignKey(
        Document, on_delete=models.CASCADE, related_name="versions", db_constraint=False
    )
    number = models.PositiveIntegerField()
    original_filename = models.CharField(max_length=255)
    content_type = models.CharField(max_length=100)
    size_bytes = models.BigIntegerField()
    sha256 = models.CharField(max_length=64)
    storage_key = models.CharField(max_length=500)
    version_id = models.CharField(max_length=200, blank=True)
    uploaded_by = models.ForeignKey(
        TenantUser,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        db_constraint=False,
    )
    uploaded_by_staff = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(db_default=Now(), editable=False)
    # The copy in the disaster-recovery bucket (documents/replication.py): which primary version
    # it copies (tiering rewrites a version in place, giving it a new id), its own version id
    # there, and when it was verified. NULL `dr_replicated_at` means a copy is due, since
    # `dr_pending_since` (the lag figure's clock).
    dr_source_version_id = models.CharField(max_length=200, default="", db_default="", blank=True)
    dr_version_id = models.CharField(max_length=200, default="", db_default="", blank=True)
    dr_replicated_at = models.DateTimeField(null=True, blank=True)
    dr_pending_since = models.DateTimeField(db_default=Now(), editable=False)

    objects = DocumentVersionQuerySet.as_manager()

    class Meta:
        db_table = "document_versions"
        ordering = ["document", "-number"]
        constraints = [
            *TenantOwnedModel.Meta.constraints,
            models.UniqueConstraint(
                fields=["document", "number"], name="document_versions_document_number_key"
            ),
            TenantForeignKey(field="document", name="document_versions_document_same_tenant"),
            TenantForeignKey(field="uploaded_by", name="document_versions_uploaded_by_same_tenant"),
        ]
        indexes = [
            models.Index(fields=["tenant", "document"], name="document_versions_tenant"),
            # A document's newest version, read per document by the tiering plan: an index-only
            # probe (the policy's tenant_id is included), no sort of the document's versions.
            models.Index(
                fields=["document", "-created_at"],
                include=["tenant"],
                name="document_versions_newest",
            ),
            # The replicator's sweep and the lag figure read only versions still to copy.
            models.Index(
                fields=["dr_pending_since"],
                include=["tenant"],
                name="document_versions_dr_pending",
                condition=models.Q(dr_replicated_at__isnull=True),
            ),
        ]

    def __str__(self) -> str:
        return f"{self.document_id} v{self.number}"

    def is_replicated(self) -> bool:
        """Whether the DR bucket holds a verified copy of this version as it is now."""
        return self.dr_replicated_at is not None and self.dr_source_version_id == self.version_id


class AccessAction(models.TextChoices):
    DOWNLOAD = "download", "Download"
    UPLOAD = "upload", "Upload"
    REPLACE = "replace", "Replace"
    DELETE = "delete", "Delete"
    RESTORE_REQUEST = "restore-request", "Restore request"
    TIER_CHANGE = "tier-change", "Tier change"


class DocumentAccess(TenantOwnedModel):
    """Audit trail: who did what to which document, and when. Rows are only ever added."""

    id = models.BigAutoField(primary_key=True)
    tenant = models.ForeignKey(Tenant, on_delete=models.PROTECT, related_name="+", db_index=False)
    document = models.ForeignKey(
        Document, on_delete=models.PROTECT, related_name="accesses", db_constraint=False
    )
    action = models.CharField(max_length=20, choices=AccessAction.choices)
    user = models.ForeignKey(
        TenantUser,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        db_constraint=False,
    )
    staff = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    ip_address = models.GenericIPAddressField(null=True, blank=True)
    at = models.DateTimeField(db_default=Now(), editable=False)

    class Meta:
        db_table = "document_access_log"
        ordering = ["-at"]
        verbose_name_plural = "document access log"
        constraints = [
            *TenantOwnedModel.Meta.constraints,
            TenantForeignKey(field="document", name="document_access_log_document_same_tenant"),
            TenantForeignKey(field="user", name="document_access_log_user_same_tenant"),
        ]
        indexes = [models.Index(fields=["tenant", "-at"], name="document_access_tenant_at")]

    def __str__(self) -> str:
        who = self.user or self.staff or "system"
        return f"{who} {self.action} {self.document_id} at {self.at:%Y-%m-%d %H:%M}"


class DocumentUsage(TenantOwnedModel):
    """Storage a tenant uses in one class: its documents (deleted ones too: their objects are
    kept) and their current versions' bytes. Derived rows, kept exact by PostgreSQL triggers on
    `documents` (documents/usage_sql.py): the admin's summary reads them instead of summing a
    million rows. Never written by the application."""

    derived_rows = True

    id = models.BigAutoField(primary_key=True)
    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="+", db_index=False)
    storage_class = models.CharField(max_length=20, choices=StorageClass.choices)
    documents = models.BigIntegerField(default=0)
    current_bytes = models.BigIntegerField(default=0)

    class Meta:
        db_table = "document_usage"
        constraints = [
            *TenantOwnedModel.Meta.constraints,
            models.UniqueConstraint(
                fields=["tenant", "storage_class"], name="document_usage_tenant_class_key"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.tenant_id} {self.storage_class}: {self.documents} documents"


class VersionUsage(TenantOwnedModel):
    """Every stored version of a tenant's documents and their bytes; derived rows, kept by
    triggers on `document_versions` like DocumentUsage."""

    derived_rows = True

    id = models.BigAutoField(primary_key=True)
    tenant = models.OneToOneField(Tenant, on_delete=models.CASCADE, related_name="+")
    versions = models.BigIntegerField(default=0)
    stored_bytes = models.BigIntegerField(default=0)

    class Meta:
        db_table = "document_version_usage"
        constraints = [*TenantOwnedModel.Meta.constraints]

    def __str__(self) -> str:
        return f"{self.tenant_id}: {self.versions} versions"
