"""Record platform events: `record_event(tenant=..., event_type=..., data=..., user=...)`.

The event is a row in the PostgreSQL outbox, written in the caller's transaction: it exists
exactly when the business write committed, and a rollback takes it away. The drain
(analytics/services.py) delivers it to ClickHouse later, once.
"""

from __future__ import annotations

import json
import uuid

from django.db import transaction

from analytics.models import EventOutbox
from tenants import db

# The event types the platform records. Names are `<area>.<what happened>`; the ClickHouse table
# refuses any other shape. `data` keys are listed where the dashboards read them.
SIGN_IN = "auth.sign_in"
SIGN_OUT = "auth.sign_out"
SIGN_IN_FAILED = "auth.sign_in_failed"  # data: email_domain
STAFF_TENANT_ACCESS = "staff.tenant_access"  # staff_id set; data: path
DOCUMENT_UPLOADED = "document.uploaded"  # data: document_id, document_type, size_bytes
DOCUMENT_DOWNLOADED = "document.downloaded"  # data: document_id, document_type
DOCUMENT_DELETED = "document.deleted"  # data: document_id, document_type
DOCUMENT_TIER_CHANGED = "document.tier_changed"  # data: document_id, from_class, to_class
DOCUMENT_RESTORE_REQUESTED = "document.restore_requested"  # data: document_id
DOCUMENT_RESTORED = "document.restored"  # data: document_id
BACKUP_SUCCEEDED = "backup.run_succeeded"  # data: backup_id, kind, size_bytes
BACKUP_FAILED = "backup.run_failed"  # data: backup_id, kind, error

EVENT_TYPES = frozenset(
    {
        SIGN_IN,
        SIGN_OUT,
        SIGN_IN_FAILED,
        STAFF_TENANT_ACCESS,
        DOCUMENT_UPLOADED,
        DOCUMENT_DOWNLOADED,
        DOCUMENT_DELETED,
        DOCUMENT_TIER_CHANGED,
        DOCUMENT_RESTORE_REQUESTED,
        DOCUMENT_RESTORED,
        BACKUP_SUCCEEDED,
        BACKUP_FAILED,
    }
)
MAX_DATA_BYTES = 16 * 1024


def record_event(
    *, tenant, event_type: str, data: dict | None = None, user=None, staff=None
) -> EventOutbox:
    """Write one event for `tenant` to the outbox, inside the caller's transaction.

    `user` is the tenant user (TenantUser) who acted, `staff` the staff member (auth.User).
    An unknown type or data that is not a small JSON object raises ValueError and writes nothing.
    """
    if event_type not in EVENT_TYPES:
        raise ValueError(f"unknown event type {event_type!r}: add it to analytics.events")
    data = dict(data or {})
    encoded = json.dumps(data, default=str)
    if len(encoded.encode()) > MAX_DATA_BYTES:
        raise ValueError(f"event data is larger than {MAX_DATA_BYTES} bytes")
    tenant_id = getattr(tenant, "pk", tenant)
    user_id = getattr(user, "pk", user)
    if user is not None and getattr(user, "tenant_id", tenant_id) != tenant_id:
        raise ValueError("the event's user belongs to another tenant")
    # A savepoint inside the caller's transaction (or a transaction of its own in autocommit):
    # RLS lets the outbox row in only under its tenant's context.
    with transaction.atomic(), db.tenant_context(tenant_id):
        return EventOutbox.objects.create(
            tenant_id=tenant_id,
            event_type=event_type,
            data=json.loads(encoded),
            user_id=uuid.UUID(str(user_id)) if user_id else None,
            staff_id=getattr(staff, "pk", staff),
        )
