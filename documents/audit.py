"""One record per document action: a row in the tenant's access log and an analytics event,
both written in the caller's transaction, so they exist exactly when the action committed."""

from __future__ import annotations

from documents import events
from documents.models import AccessAction, Document, DocumentAccess
from metis.events import recorder

_EVENT_OF_ACTION = {
    AccessAction.UPLOAD: events.UPLOADED,
    AccessAction.REPLACE: events.UPLOADED,
    AccessAction.DOWNLOAD: events.DOWNLOADED,
    AccessAction.DELETE: events.DELETED,
    AccessAction.TIER_CHANGE: events.TIER_CHANGED,
    AccessAction.RESTORE_REQUEST: events.RESTORE_REQUESTED,
}


def document_access_record(
    *,
    document: Document,
    action: str,
    user=None,
    staff=None,
    ip_address: str | None = None,
    **event_data,
) -> None:
    """Log who did `action` to `document` and record the matching analytics event."""
    DocumentAccess.objects.create(
        tenant_id=document.tenant_id,
        document_id=document.pk,
        action=action,
        user=user,
        staff=staff,
        ip_address=ip_address,
    )
    document_event_record(
        document=document,
        event_type=_EVENT_OF_ACTION[AccessAction(action)],
        user=user,
        staff=staff,
        **event_data,
    )


def document_event_record(
    *, document: Document, event_type: str, user=None, staff=None, **data
) -> None:
    """Record one document event; every event names the document and its type."""
    recorder.record_event(
        tenant=document.tenant_id,
        event_type=event_type,
        data={"document_id": str(document.pk), "document_type": document.document_type, **data},
        user=user,
        staff=staff,
    )


def documents_access_record_many(
    *, tenant_id, action: str, documents_and_data: list[tuple[Document, dict]]
) -> None:
    """Log `action` (done by the system) on many documents and record their events: one insert
    for the log rows and one for the events, however many documents (a tiering batch)."""
    if not documents_and_data:
        return
    DocumentAccess.objects.bulk_create(
        DocumentAccess(tenant_id=tenant_id, document_id=document.pk, action=action)
        for document, _ in documents_and_data
    )
    event_type = _EVENT_OF_ACTION[AccessAction(action)]
    recorder.record_events(
        tenant=tenant_id,
        events=[
            (
                event_type,
                {"document_id": str(document.pk), "document_type": document.document_type, **data},
            )
            for document, data in documents_and_data
        ],
    )
