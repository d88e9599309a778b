"""Record platform events: `recorder.record_event(tenant=..., event_type=..., data=..., user=...)`.

A small shared recorder, each event type defined beside its feature (as Sentry's analytics):
an app declares its types in `<app>/events.py` with `register("<area>.<what>", data=(...))`,
and this module refuses any type nobody registered. The event is a row in the PostgreSQL outbox,
written in the caller's transaction and tenant context: it exists exactly when the business
write committed, and a rollback takes it away. `analytics` delivers it to ClickHouse later, once.
"""

from __future__ import annotations

import json
import re
import uuid
from dataclasses import dataclass

from django.db import transaction

from metis.events.models import EventOutbox
from tenants import db

MAX_DATA_BYTES = 16 * 1024
# The ClickHouse table refuses any other shape (a CHECK constraint on event_type).
_NAME = re.compile(r"^[a-z][a-z_]*(\.[a-z_]+)+$")


@dataclass(frozen=True)
class EventType:
    name: str
    data: tuple[str, ...]  # the data keys it carries (documentation; dashboards read these)


_registry: dict[str, EventType] = {}


def register(name: str, *, data: tuple[str, ...] = ()) -> str:
    """Declare an event type (`<area>.<what happened>`) and return its name.

    Call it at import time in the feature's own `events.py`. Declaring the same name twice,
    differently, is a mistake and raises ValueError.
    """
    if not _NAME.match(name):
        raise ValueError(f"event type {name!r} is not `<area>.<what>` in lowercase")
    event = EventType(name=name, data=tuple(data))
    if _registry.setdefault(name, event) != event:
        raise ValueError(f"event type {name!r} is already declared differently")
    return name


def event_types() -> frozenset[str]:
    """Return the names of every registered event type."""
    return frozenset(_registry)


def event_type_check(event_type: str) -> None:
    """Raise ValueError unless `event_type` was registered."""
    if event_type not in _registry:
        raise ValueError(f"unknown event type {event_type!r}: register it in its app's events.py")


def record_event(
    *, tenant, event_type: str, data: dict | None = None, user=None, staff=None
) -> EventOutbox:
    """Write one event for `tenant` to the outbox, inside the caller's transaction.

    Requires the caller's tenant context to be `tenant`'s (TenantContextError otherwise): this
    records, it never opens a context. `user` is the tenant user (TenantUser) who acted, `staff`
    the staff member (auth.User). An unknown type, data that is not a small JSON object, or a
    user of another tenant raises ValueError and writes nothing.
    """
    (row,) = _rows(tenant=tenant, events=[(event_type, data or {})], user=user, staff=staff)
    # A savepoint: a failed insert rolls back only the event, and the caller's transaction
    # stays usable (its own error handling decides what happens next).
    with transaction.atomic():
        row.save(force_insert=True)
    return row


def record_events(
    *, tenant, events: list[tuple[str, dict]], user=None, staff=None
) -> list[EventOutbox]:
    """Write several `(event_type, data)` events for `tenant` in one insert, as record_event.

    For batch jobs (tiering a few hundred documents): one round trip instead of one a row.
    Any invalid event raises ValueError and writes none.
    """
    rows = _rows(tenant=tenant, events=events, user=user, staff=staff)
    with transaction.atomic():
        return EventOutbox.objects.bulk_create(rows)


def _rows(*, tenant, events: list[tuple[str, dict]], user, staff) -> list[EventOutbox]:
    tenant_id = db.parse_tenant_id(getattr(tenant, "pk", tenant))
    user_id = getattr(user, "pk", user)
    if user is not None and getattr(user, "tenant_id", tenant_id) != tenant_id:
        raise ValueError("the event's user belongs to another tenant")
    db.require_tenant_context(tenant_id)
    rows = []
    for event_type, data in events:
        event_type_check(event_type)
        encoded = json.dumps(dict(data or {}), default=str)
        if len(encoded.encode()) > MAX_DATA_BYTES:
            raise ValueError(f"event data is larger than {MAX_DATA_BYTES} bytes")
        rows.append(
            EventOutbox(
                tenant_id=tenant_id,
                event_type=event_type,
                data=json.loads(encoded),
                user_id=uuid.UUID(str(user_id)) if user_id else None,
                staff_id=getattr(staff, "pk", staff),
            )
        )
    return rows
