"""Which rows belong to a subject, and each row as the export writes it (JSON and CSV).

`subject_rows` turns a subject into the rows the export writes; which documents are the
subject's is privacy/subjects.py's `documents_of`, the one definition erasure uses too. Rows
are read page by page by primary key: memory stays bounded whatever the subject's size, and no
transaction stays open between pages.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from django.db.models import Model, QuerySet

from documents.models import Document, DocumentAccess, DocumentVersion
from privacy import subjects
from privacy.exports.models import ExportScope
from tenants import db
from tenants.models import TenantUser

PAGE_ROWS = 1000


@dataclass(frozen=True)
class Subject:
    """Whose data: one tenant user, one borrower reference, or the whole tenant."""

    scope: str
    user_id: uuid.UUID | None = None
    ref: str = ""


@dataclass(frozen=True)
class SubjectRows:
    users: QuerySet[TenantUser]
    documents: QuerySet[Document]
    versions: QuerySet[DocumentVersion]
    access_log: QuerySet[DocumentAccess]


def subject_rows(subject: Subject) -> SubjectRows:
    """Return the querysets of the subject's rows in the active tenant context.

    A tenant user: their account, the documents they uploaded (any version), every version of
    those, and the access-log rows of what they did. A borrower: the documents whose metadata
    carries their `subject_ref` (the GIN index serves `@>`), those documents' versions and
    access-log rows. The whole tenant: every row of those tables.
    """
    tenant_id = db.require_tenant_context()
    users = TenantUser.objects.for_tenant(tenant_id)
    documents = Document.objects.for_tenant(tenant_id)
    versions = DocumentVersion.objects.for_tenant(tenant_id)
    access_log = DocumentAccess.objects.for_tenant(tenant_id)
    if subject.scope == ExportScope.USER:
        documents = subjects.documents_of(
            subjects.Subject(tenant_id=tenant_id, kind=subject.scope, ref=str(subject.user_id))
        )
        return SubjectRows(
            users=users.filter(pk=subject.user_id),
            documents=documents,
            versions=versions.filter(document_id__in=documents.values("pk")),
            access_log=access_log.filter(user_id=subject.user_id),
        )
    if subject.scope == ExportScope.BORROWER:
        documents = subjects.documents_of(
            subjects.Subject(tenant_id=tenant_id, kind=subject.scope, ref=subject.ref)
        )
        return SubjectRows(
            users=users.none(),
            documents=documents,
            versions=versions.filter(document_id__in=documents.values("pk")),
            access_log=access_log.filter(document_id__in=documents.values("pk")),
        )
    if subject.scope == ExportScope.TENANT:
        return SubjectRows(users, documents, versions, access_log)
    raise ValueError(f"unknown export scope {subject.scope!r}")


def pages(queryset: QuerySet, *, size: int = PAGE_ROWS) -> Iterator[list[Model]]:
    """Yield the queryset's rows in primary-key order, `size` at a time (keyset pagination)."""
    queryset = queryset.order_by("pk")
    last = None
    while True:
        page = list((queryset if last is None else queryset.filter(pk__gt=last))[:size])
        if not page:
            return
        yield page
        last = page[-1].pk


def _user(user: TenantUser) -> dict[str, Any]:
    # Never the password hash: it is ours to check, not the subject's data.
    return {
        "id": user.pk,
        "email": user.email,
        "name": user.name,
        "is_active": user.is_active,
        "is_admin": user.is_admin,
        "metadata": user.metadata,
        "created_at": user.created_at,
        "last_login": user.last_login,
    }


def _document(document: Document) -> dict[str, Any]:
    return {
        "id": document.pk,
        "document_type": document.document_type,
        "original_filename": document.original_filename,
        "content_type": document.content_type,
        "size_bytes": document.size_bytes,
        "sha256": document.sha256,
        "storage_class": document.storage_class,
        "metadata": document.metadata,
        "uploaded_by_id": document.uploaded_by_id,
        "uploaded_by_staff": document.uploaded_by_staff_id is not None,
        "created_at": document.created_at,
        "updated_at": document.updated_at,
        "deleted_at": document.deleted_at,
    }


def _version(version: DocumentVersion) -> dict[str, Any]:
    return {
        "id": version.pk,
        "document_id": version.document_id,
        "number": version.number,
        "original_filename": version.original_filename,
        "content_type": version.content_type,
        "size_bytes": version.size_bytes,
        "sha256": version.sha256,
        "uploaded_by_id": version.uploaded_by_id,
        "uploaded_by_staff": version.uploaded_by_staff_id is not None,
        "created_at": version.created_at,
    }


def _access(access: DocumentAccess) -> dict[str, Any]:
    # Which staff member acted is the lender's and ours to know; that staff acted is theirs.
    return {
        "id": access.pk,
        "document_id": access.document_id,
        "action": access.action,
        "user_id": access.user_id,
        "by_staff": access.staff_id is not None,
        "ip_address": access.ip_address,
        "at": access.at,
    }


@dataclass(frozen=True)
class Table:
    name: str
    columns: tuple[str, ...]
    row: Callable[[Any], dict[str, Any]]
    rows: Callable[[SubjectRows], QuerySet]


TABLES = (
    Table(
        "users",
        ("id", "email", "name", "is_active", "is_admin", "metadata", "created_at", "last_login"),
        _user,
        lambda s: s.users,
    ),
    Table(
        "documents",
        (
            "id",
            "document_type",
            "original_filename",
            "content_type",
            "size_bytes",
            "sha256",
            "storage_class",
            "metadata",
            "uploaded_by_id",
            "uploaded_by_staff",
            "created_at",
            "updated_at",
            "deleted_at",
        ),
        _document,
        lambda s: s.documents,
    ),
    Table(
        "document_versions",
        (
            "id",
            "document_id",
            "number",
            "original_filename",
            "content_type",
            "size_bytes",
            "sha256",
            "uploaded_by_id",
            "uploaded_by_staff",
            "created_at",
        ),
        _version,
        lambda s: s.versions,
    ),
    Table(
        "access_log",
        ("id", "document_id", "action", "user_id", "by_staff", "ip_address", "at"),
        _access,
        lambda s: s.access_log,
    ),
)
