"""Data subjects and where their data is: the one lookup erasure and portability share.

A subject is a tenant user (their account, the documents they uploaded, their events, their
access-log rows, their sessions) or a borrower named by the subject reference the tenant gave
documents at upload (`Document.metadata["subject_ref"]`, served by the GIN index
`documents_metadata_gin` through `metadata @> {"subject_ref": ...}`).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from django.db.models import Q

from documents.models import Document, DocumentQuerySet, DocumentVersion
from documents.validation import DocumentRejected, check_subject_ref
from privacy.exports.models import Export, ExportQuerySet, ExportScope, ExportStatus
from privacy.models import SubjectKind
from tenants import db
from tenants.models import TenantUser

SUBJECT_REF_KEY = "subject_ref"


class UnknownSubject(LookupError):
    """The subject named is not one of this tenant's (or not a valid reference at all)."""


@dataclass(frozen=True)
class Subject:
    tenant_id: uuid.UUID
    kind: str  # SubjectKind
    ref: str  # the borrower's subject reference, or the tenant user's id as text

    @property
    def user_id(self) -> uuid.UUID | None:
        return uuid.UUID(self.ref) if self.kind == SubjectKind.USER else None

    def __str__(self) -> str:
        return f"{self.kind}:{self.ref}"


def subject_named(*, tenant_id: uuid.UUID, kind: str, ref: str) -> Subject:
    """Return the subject `kind`/`ref` of this tenant; raise UnknownSubject for anything else.

    A user must exist in this tenant (RLS and the filter both say so); a borrower reference
    must be well formed (it need not match a document: erasing nobody is a valid answer).
    """
    db.require_tenant_context(tenant_id)
    if kind == SubjectKind.USER:
        try:
            user_id = uuid.UUID(ref)
        except ValueError:
            raise UnknownSubject(f"“{ref[:64]}” is not a user id.") from None
        if not TenantUser.objects.for_tenant(tenant_id).filter(pk=user_id).exists():
            raise UnknownSubject("No such user in this organisation.")
        return Subject(tenant_id=tenant_id, kind=kind, ref=str(user_id))
    if kind == SubjectKind.BORROWER:
        try:
            cleaned = check_subject_ref(ref)
        except DocumentRejected as exc:
            raise UnknownSubject(exc.messages[0]) from None
        if not cleaned:
            raise UnknownSubject("Give the borrower's subject reference.")
        return Subject(tenant_id=tenant_id, kind=kind, ref=cleaned)
    raise UnknownSubject(f"Unknown subject kind “{kind[:20]}”.")


def documents_of(subject: Subject) -> DocumentQuerySet:
    """Every document of the subject, deleted ones included (their objects are still stored).

    A user's are those they uploaded any version of that name no borrower; a borrower's,
    those carrying their reference. A tenant user is usually the lender's employee: the
    borrower's PAN card they uploaded is the borrower's data, not theirs, so their erasure
    keeps it (without their name on it) and their export leaves it out. Erasure and
    portability both ask here, so they agree on what is the subject's.
    """
    db.require_tenant_context(subject.tenant_id)
    documents = Document.objects.for_tenant(subject.tenant_id)
    if subject.kind == SubjectKind.USER:
        uploaded = (
            DocumentVersion.objects.for_tenant(subject.tenant_id)
            .filter(uploaded_by_id=subject.user_id)
            .values("document_id")
        )
        return documents.filter(Q(uploaded_by_id=subject.user_id) | Q(pk__in=uploaded)).exclude(
            metadata__has_key=SUBJECT_REF_KEY
        )
    return documents.filter(metadata__contains={SUBJECT_REF_KEY: subject.ref})


def exports_holding(subject: Subject, *, document_ids: list[str]) -> ExportQuerySet:
    """The portability exports whose ZIP (still stored, or being built) may hold the subject.

    The subject's own, every whole-tenant export, and the exports of other subjects that share
    these documents, either way (uploader and borrower). Wider than `documents_of` on
    purpose: a document tagged with a borrower after a user's export was built is in that ZIP.
    """
    db.require_tenant_context(subject.tenant_id)
    documents = Document.objects.for_tenant(subject.tenant_id).filter(pk__in=document_ids)
    uploaders = {
        *documents.exclude(uploaded_by=None).values_list("uploaded_by_id", flat=True),
        *DocumentVersion.objects.for_tenant(subject.tenant_id)
        .filter(document_id__in=document_ids)
        .exclude(uploaded_by=None)
        .values_list("uploaded_by_id", flat=True),
    }
    refs = {
        ref
        for ref in documents.values_list(f"metadata__{SUBJECT_REF_KEY}", flat=True)
        if isinstance(ref, str) and ref
    }
    if subject.kind == SubjectKind.USER:
        uploaders.add(subject.user_id)
    else:
        refs.add(subject.ref)
    return (
        Export.objects.for_tenant(subject.tenant_id)
        .exclude(status__in=[ExportStatus.EXPIRED, ExportStatus.ERASED])
        .filter(
            Q(scope=ExportScope.TENANT)
            | Q(scope=ExportScope.USER, subject_user_id__in=uploaders)
            | Q(scope=ExportScope.BORROWER, subject_ref__in=refs)
        )
    )
