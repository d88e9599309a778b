"""A tenant's row cannot reference another tenant's document or user, and the refusal tells
nothing: it is the same as for an id that exists nowhere.

The foreign keys are checked at COMMIT (deferred, like Django's), so these tests commit for real
(`committed_db`) and insert with raw SQL as the runtime role, inside the tenant's own context.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

import psycopg
import pytest
from django.db import IntegrityError, connections
from django.db.models import ProtectedError

from documents.models import Document, DocumentAccess, DocumentVersion
from tenants import db
from tenants.models import TenantUser
from tests.factories import TenantFactory, TenantUserFactory

# One insert per reference between tenant tables; %(ref)s is the id it references.
INSERTS = {
    "document_access_log.document_id": (
        "INSERT INTO document_access_log (tenant_id, action, document_id) "
        "VALUES (%(tenant)s, 'download', %(ref)s)"
    ),
    "document_access_log.user_id": (
        "INSERT INTO document_access_log (tenant_id, action, document_id, user_id) "
        "VALUES (%(tenant)s, 'download', %(document)s, %(ref)s)"
    ),
    "document_versions.document_id": (
        "INSERT INTO document_versions (tenant_id, number, original_filename, content_type, "
        "size_bytes, sha256, storage_key, version_id, document_id) "
        "VALUES (%(tenant)s, 7, 'x.pdf', 'application/pdf', 1, '', 'k', '', %(ref)s)"
    ),
    "document_versions.uploaded_by_id": (
        "INSERT INTO document_versions (tenant_id, number, original_filename, content_type, "
        "size_bytes, sha256, storage_key, version_id, document_id, uploaded_by_id) "
        "VALUES (%(tenant)s, 8, 'x.pdf', 'application/pdf', 1, '', 'k', '', %(document)s, "
        "%(ref)s)"
    ),
    "documents.uploaded_by_id": (
        "INSERT INTO documents (tenant_id, document_type, original_filename, content_type, "
        "size_bytes, sha256, storage_key, version_id, storage_class, restore_status, "
        "updated_at, uploaded_by_id) "
        "VALUES (%(tenant)s, 'pan', 'x.pdf', 'application/pdf', 1, '', gen_random_uuid(), '', "
        "'STANDARD', '', now(), %(ref)s)"
    ),
}


@dataclass
class Side:
    tenant_id: uuid.UUID
    user_id: uuid.UUID
    document_id: uuid.UUID

    def row_of(self, reference: str) -> uuid.UUID:
        """Return this tenant's id of the kind `reference` points at (a document or a user)."""
        return self.document_id if reference.endswith("document_id") else self.user_id


def side_create(marker: str) -> Side:
    """A tenant with a user and a document, committed."""
    tenant = TenantFactory(subdomain=f"{marker}-{uuid.uuid4().hex[:8]}")
    user = TenantUserFactory(tenant=tenant)
    with db.tenant_context(tenant.pk):
        document = Document.objects.create(
            tenant=tenant,
            document_type="pan",
            original_filename="pan.pdf",
            content_type="application/pdf",
            size_bytes=1,
            sha256="0" * 64,
            storage_key=f"tenants/{tenant.pk}/{uuid.uuid4()}",
            uploaded_by=user,
        )
    return Side(tenant.pk, user.pk, document.pk)


@pytest.fixture
def sides(committed_db) -> tuple[Side, Side]:
    return side_create("a"), side_create("b")


def commit_as(side: Side, reference: str, ref: uuid.UUID | None) -> psycopg.Error | None:
    """Insert a row of `side` with `reference` set to `ref`, as the runtime role, and commit.

    Return the database's refusal, or None when the row committed.
    """
    params = {"tenant": side.tenant_id, "document": side.document_id, "ref": ref}
    try:
        with db.tenant_context(side.tenant_id), connections["default"].cursor() as cursor:
            cursor.execute(INSERTS[reference], params)
    except IntegrityError as exc:
        assert isinstance(exc.__cause__, psycopg.Error)
        return exc.__cause__
    return None


def fingerprint(error: psycopg.Error | None, ref: uuid.UUID) -> tuple:
    """Everything the refusal tells the caller, with the id they sent replaced."""
    assert error is not None, "the row committed"
    diag = error.diag
    text = f"{diag.message_primary}\n{diag.message_detail}".replace(str(ref), "<id>")
    return (error.sqlstate, diag.constraint_name, text)


@pytest.mark.parametrize("reference", sorted(INSERTS))
def test_reference_to_other_tenants_row_is_refused_like_a_missing_id(sides, reference):
    a, b = sides
    theirs = b.row_of(reference)
    nowhere = uuid.uuid4()

    refused_theirs = commit_as(a, reference, theirs)
    refused_nowhere = commit_as(a, reference, nowhere)

    assert refused_theirs is not None, f"tenant A's row committed pointing at B's {reference}"
    assert refused_theirs.sqlstate == "23503"  # foreign_key_violation, at COMMIT
    assert fingerprint(refused_theirs, theirs) == fingerprint(refused_nowhere, nowhere)


@pytest.mark.parametrize("reference", sorted(INSERTS))
def test_reference_to_own_tenants_row_commits(sides, reference):
    a, _ = sides
    assert commit_as(a, reference, a.row_of(reference)) is None


@pytest.mark.parametrize(
    "reference",
    ["document_access_log.user_id", "document_versions.uploaded_by_id", "documents.uploaded_by_id"],
)
def test_empty_nullable_reference_commits(sides, reference):
    a, _ = sides
    assert commit_as(a, reference, None) is None


def test_on_delete_still_runs_in_python(sides):
    a, _ = sides
    with db.tenant_context(a.tenant_id):
        document = Document.objects.get(pk=a.document_id)
        DocumentVersion.objects.create(
            tenant_id=a.tenant_id,
            document=document,
            number=1,
            original_filename="pan.pdf",
            content_type="application/pdf",
            size_bytes=1,
            sha256="0" * 64,
            storage_key=document.storage_key,
            uploaded_by_id=a.user_id,
        )
        DocumentAccess.objects.create(
            tenant_id=a.tenant_id, document=document, action="download", user_id=a.user_id
        )
    with db.tenant_context(a.tenant_id):  # SET_NULL on three references
        TenantUser.objects.filter(pk=a.user_id).delete()
    with db.tenant_context(a.tenant_id):
        assert Document.objects.get(pk=a.document_id).uploaded_by_id is None
        assert DocumentVersion.objects.get(document_id=a.document_id).uploaded_by_id is None
        assert DocumentAccess.objects.get(document_id=a.document_id).user_id is None
        with pytest.raises(ProtectedError):  # PROTECT from the access log
            Document.objects.filter(pk=a.document_id).delete()
    with db.tenant_context(a.tenant_id):  # CASCADE to the versions once the log is gone
        DocumentAccess.objects.filter(document_id=a.document_id).delete()
        Document.objects.filter(pk=a.document_id).delete()
    with db.tenant_context(a.tenant_id):
        assert not DocumentVersion.objects.filter(document_id=a.document_id).exists()
