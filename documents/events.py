"""Analytics events for document writes, recorded in the same transaction as the write."""

from __future__ import annotations

from analytics import events
from documents.models import Document


def document_event_record(
    *, document: Document, event_type: str, user=None, staff=None, **data
) -> None:
    """Record one document event; every event names the document and its type."""
    events.record_event(
        tenant=document.tenant_id,
        event_type=event_type,
        data={"document_id": str(document.pk), "document_type": document.document_type, **data},
        user=user,
        staff=staff,
    )
