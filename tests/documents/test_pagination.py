"""Keyset pages of the document list: every row once, in order; cursors bound to their tenant;
the index used; counts estimated for large results."""

import itertools
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from django.core import signing
from django.db import connection
from django.test.utils import CaptureQueriesContext

from documents import pagination
from documents.models import Document, DocumentVersion
from tenants import db

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def add_documents(tenant, count: int, *, same_time: bool = False, prefix: str = "doc") -> None:
    """Insert rows directly (no S3): the list reads rows only."""
    with db.tenant_context(tenant.pk):
        for n in range(count):
            document_id = uuid.uuid4()
            created = T0 if same_time else T0 + timedelta(minutes=n)
            Document.objects.create(
                id=document_id,
                tenant=tenant,
                document_type="pan",
                original_filename=f"{prefix}-{n:03d}.pdf",
                content_type="application/pdf",
                size_bytes=1000,
                sha256=f"{n:064d}",
                storage_key=f"tenants/{tenant.pk}/documents/{document_id}.pdf",
            )
            Document.objects.filter(pk=document_id).update(created_at=created)
            DocumentVersion.objects.create(
                tenant=tenant,
                document_id=document_id,
                number=1,
                original_filename=f"{prefix}-{n:03d}.pdf",
                content_type="application/pdf",
                size_bytes=1000,
                sha256=f"{n:064d}",
                storage_key=f"tenants/{tenant.pk}/documents/{document_id}.pdf",
            )


def walk(tenant, size: int, direction: str = pagination.OLDER) -> list[list[str]]:
    """Every page from the newest (or, going back, from the oldest page reached) as names."""
    pages: list[list[str]] = []
    cursor = None
    with db.tenant_context(tenant.pk):
        queryset = Document.objects.for_tenant(tenant).live()
        while True:
            page = pagination.keyset_page(queryset, tenant_id=tenant.pk, cursor=cursor, size=size)
            pages.append([d.original_filename for d in page])
            cursor = page.older if direction == pagination.OLDER else page.newer
            if cursor is None:
                return pages


def ordered_names(tenant) -> list[str]:
    with db.tenant_context(tenant.pk):
        rows = Document.objects.for_tenant(tenant).order_by("-created_at", "-pk")
        return [d.original_filename for d in rows]


def test_pages_hold_every_document_once_newest_first(tenant):
    add_documents(tenant, 11)
    pages = walk(tenant, 3)
    assert [len(p) for p in pages] == [3, 3, 3, 2]
    assert list(itertools.chain(*pages)) == ordered_names(tenant)
    assert pages[0][0] == "doc-010.pdf"


def test_documents_stored_in_the_same_instant_are_neither_skipped_nor_repeated(tenant):
    add_documents(tenant, 8, same_time=True)
    names = list(itertools.chain(*walk(tenant, 3)))
    assert sorted(names) == sorted(set(names)) and len(names) == 8
    assert names == ordered_names(tenant)


def test_the_newer_link_goes_back_to_the_page_before(tenant):
    add_documents(tenant, 10)
    with db.tenant_context(tenant.pk):
        queryset = Document.objects.for_tenant(tenant).live()
        first = pagination.keyset_page(queryset, tenant_id=tenant.pk, cursor=None, size=3)
        second = pagination.keyset_page(queryset, tenant_id=tenant.pk, cursor=first.older, size=3)
        third = pagination.keyset_page(queryset, tenant_id=tenant.pk, cursor=second.older, size=3)
        back = pagination.keyset_page(queryset, tenant_id=tenant.pk, cursor=third.newer, size=3)
        top = pagination.keyset_page(queryset, tenant_id=tenant.pk, cursor=second.newer, size=3)
    assert first.newer is None
    assert [d.pk for d in back] == [d.pk for d in second]
    assert [d.pk for d in top] == [d.pk for d in first] and top.newer is None


def test_the_list_page_links_through_every_document(tenant, tenant_client, monkeypatch):
    monkeypatch.setattr("documents.views.PAGE_SIZE", 4)
    add_documents(tenant, 9)
    seen, path = [], "/documents/"
    while path:
        response = tenant_client.get(path)
        assert response.status_code == 200
        page = response.context["documents"]
        seen += [d.original_filename for d in page]
        path = f"/documents/?after={page.older}" if page.older else ""
    assert seen == ordered_names(tenant)
    assert b"(9)" in tenant_client.get("/documents/").content


# --- Attacks on the cursor ----------------------------------------------------------------------


def test_another_tenants_cursor_is_refused(tenant, other_tenant, tenant_client):
    add_documents(tenant, 3)
    add_documents(other_tenant, 5, prefix="globex-secret")
    with db.tenant_context(other_tenant.pk):
        theirs = Document.objects.for_tenant(other_tenant).order_by("-created_at").first()
    stolen = pagination.cursor_make(
        tenant_id=other_tenant.pk, row=theirs, direction=pagination.OLDER
    )
    response = tenant_client.get(f"/documents/?after={stolen}")
    assert response.status_code == 400
    assert b"globex-secret" not in response.content


@pytest.mark.parametrize(
    "tamper",
    [
        lambda token: token[:-1] + ("A" if token[-1] != "A" else "B"),  # signature
        lambda token: "x" + token,  # payload
        lambda token: "not-a-cursor",
        lambda token: "",  # empty: the newest page, not an error
    ],
)
def test_an_altered_cursor_is_refused(tenant, tenant_client, tamper):
    add_documents(tenant, 3)
    with db.tenant_context(tenant.pk):
        row = Document.objects.for_tenant(tenant).order_by("-created_at").first()
    token = pagination.cursor_make(tenant_id=tenant.pk, row=row, direction=pagination.OLDER)
    forged = tamper(token)
    response = tenant_client.get("/documents/", {"after": forged})
    assert response.status_code == (200 if forged == "" else 400)


def test_a_cursor_forged_with_the_key_still_shows_only_the_tenants_rows(
    tenant, other_tenant, tenant_client
):
    """Even one who could sign (the key leaked) gets no other tenant's row: the query is the
    tenant's, and RLS is under it. The cursor names the other tenant's newest document."""
    add_documents(tenant, 2, prefix="acme")
    add_documents(other_tenant, 4, prefix="globex-secret")
    with db.tenant_context(other_tenant.pk):
        theirs = Document.objects.for_tenant(other_tenant).order_by("created_at").first()
    payload = [str(tenant.pk), (T0 + timedelta(days=1)).isoformat(), str(theirs.pk), "older"]
    forged = signing.dumps(payload, salt="documents.pagination.cursor")
    response = tenant_client.get("/documents/", {"after": forged})
    assert response.status_code == 200
    assert b"globex-secret" not in response.content
    assert response.content.count(b"acme-") == 2
    for direction in ("newer",):
        payload[3] = direction
        payload[1] = (T0 - timedelta(days=1)).isoformat()
        response = tenant_client.get(
            "/documents/", {"after": signing.dumps(payload, salt="documents.pagination.cursor")}
        )
        assert response.status_code == 200
        assert b"globex-secret" not in response.content


def test_a_cursor_with_an_unknown_direction_is_refused(tenant):
    payload = [str(tenant.pk), T0.isoformat(), str(uuid.uuid4()), "sideways"]
    with pytest.raises(pagination.BadCursor):
        pagination.cursor_read(
            signing.dumps(payload, salt="documents.pagination.cursor"), tenant_id=tenant.pk
        )


# --- The index, and counts -----------------------------------------------------------------------


def plan(sql: str, params) -> str:
    with connection.cursor() as cursor:
        # A test table is tiny, where a sequential scan is cheapest: take that choice away, so
        # the plan shows which index the query can use (bench/scale_documents.py shows the
        # planner choosing it on its own over a million rows).
        cursor.execute("SET LOCAL enable_seqscan = off")
        cursor.execute(f"EXPLAIN {sql}", params)
        return "\n".join(row[0] for row in cursor.fetchall())


def test_a_deep_page_seeks_the_keyset_index(tenant):
    add_documents(tenant, 20)
    with db.tenant_context(tenant.pk):
        queryset = Document.objects.for_tenant(tenant).live().with_version_count()
        row = queryset.order_by("-created_at")[10]
        cursor = pagination.cursor_make(tenant_id=tenant.pk, row=row, direction=pagination.OLDER)
        with CaptureQueriesContext(connection) as captured:
            pagination.keyset_page(queryset, tenant_id=tenant.pk, cursor=cursor, size=5)
        query = next(q["sql"] for q in captured.captured_queries if "LIMIT 6" in q["sql"])
        shown = plan(query, None)
    assert "Index Scan using documents_tenant_created_id on documents" in shown
    assert "Index Cond: ((tenant_id = " in shown and "created_at <= " in shown
    assert "Sort" not in shown.split("SubPlan")[0]  # the index gives the order
    assert "document_versions_newest" in shown or "document_versions_document_id" in shown


def test_a_small_result_is_counted_exactly(tenant):
    add_documents(tenant, 3)
    with db.tenant_context(tenant.pk):
        assert pagination.count_estimate(Document.objects.for_tenant(tenant)) == (3, False)


def test_a_large_result_is_estimated_without_counting(tenant, monkeypatch):
    add_documents(tenant, 3)
    monkeypatch.setattr(pagination, "EXACT_COUNT_BELOW", 0)
    with db.tenant_context(tenant.pk), CaptureQueriesContext(connection) as captured:
        count, estimated = pagination.count_estimate(Document.objects.for_tenant(tenant))
    assert estimated is True and count >= 1
    assert not any("COUNT(" in q["sql"].upper() for q in captured.captured_queries)


def test_the_admin_changelist_runs_no_count_over_a_large_tenant(staff_client, tenant, monkeypatch):
    add_documents(tenant, 3)
    monkeypatch.setattr(pagination, "EXACT_COUNT_BELOW", 0)
    response = staff_client.post("/admin/tenant-context/", {"tenant": tenant.pk})
    assert response.status_code == 302
    with CaptureQueriesContext(connection) as captured:
        response = staff_client.get("/admin/documents/document/")
    assert response.status_code == 200
    assert b"doc-002.pdf" in response.content
    counts = [q["sql"] for q in captured.captured_queries if 'COUNT(*) AS "__count"' in q["sql"]]
    assert counts == []
