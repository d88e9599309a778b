"""A subject's analytics events, read from ClickHouse page by page."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

from analytics import clickhouse
from privacy.exports.models import ExportScope
from privacy.exports.rows import Subject

PAGE_EVENTS = 5000
COLUMNS = ("event_id", "event_type", "event_data", "user_id", "timestamp")


def _condition(subject: Subject, document_ids: list[str]) -> tuple[str, dict[str, Any]]:
    if subject.scope == ExportScope.USER:
        return "user_id = {user:UUID}", {"user": str(subject.user_id)}
    if subject.scope == ExportScope.BORROWER:
        # A borrower acts on nothing; what the events say about them is their documents.
        return (
            "has({documents:Array(String)}, JSONExtractString(event_data, 'document_id'))",
            {"documents": document_ids},
        )
    return "1", {}


def subject_event_count(tenant_id: uuid.UUID, subject: Subject, document_ids: list[str]) -> int:
    condition, parameters = _condition(subject, document_ids)
    with clickhouse.session() as client:
        return int(
            client.query(
                f"SELECT count() FROM events WHERE tenant_id = {{tenant:UUID}} AND {condition}",
                parameters={"tenant": str(tenant_id), **parameters},
            ).result_rows[0][0]
        )


def subject_events(
    tenant_id: uuid.UUID, subject: Subject, document_ids: list[str], *, size: int = PAGE_EVENTS
) -> Iterator[list[dict[str, Any]]]:
    """Yield the subject's events in (timestamp, event_id) order, `size` at a time.

    Each page is one short ClickHouse session (the embedded engine is shared by processes),
    and the next page starts after the last row seen, so memory stays bounded.
    """
    condition, parameters = _condition(subject, document_ids)
    after = ""
    last: dict[str, Any] = {}
    while True:
        sql = (
            f"SELECT {', '.join(COLUMNS)}, toUnixTimestamp64Milli(timestamp) FROM events "
            f"WHERE tenant_id = {{tenant:UUID}} AND {condition}{after} "
            "ORDER BY timestamp, event_id LIMIT {size:UInt32}"
        )
        with clickhouse.session() as client:
            rows = client.query(
                sql, parameters={"tenant": str(tenant_id), "size": size, **parameters, **last}
            ).result_rows
        if not rows:
            return
        yield [dict(zip(COLUMNS, row[:-1], strict=True)) for row in rows]
        # Milliseconds, not a datetime parameter: the keyset must keep the fraction.
        after = (
            " AND (toUnixTimestamp64Milli(timestamp), event_id)"
            " > ({after_ms:Int64}, {after_id:UUID})"
        )
        last = {"after_ms": rows[-1][-1], "after_id": str(rows[-1][0])}
