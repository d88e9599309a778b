"""`record(...)`: the one call that adds a row to the audit log, in the caller's transaction.

Reads of personal data (audit/middleware.py), staff actions, erasures and retention runs call it;
writes to tenant tables are recorded by the database's own triggers (audit/schema.py) and need
no call. A row belongs to the active tenant context's chain; outside one (staff, system jobs,
all-tenants mode) it joins the system chain, which only staff read.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from django.core.serializers.json import DjangoJSONEncoder
from django.db import connections

from audit import context
from tenants import db

_INSERT_SQL = """
INSERT INTO audit_log (tenant_id, action, actor_type, actor_id, target_type, target_id,
                       ip_address, request_id, metadata)
VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s::jsonb)
"""
# A tenant's own rows come back for the caller. System rows (no tenant) cannot: RETURNING needs
# the row to pass a SELECT policy, and only staff's read role may read the system chain.
_RETURNING_SQL = " RETURNING id, seq, hash"


@dataclass(frozen=True)
class Recorded:
    id: int
    seq: int
    hash: str


def record(
    *,
    action: str,
    target_type: str = "",
    target_id: Any = "",
    metadata: dict[str, Any] | None = None,
    tenant: Any = None,
    actor: context.Actor | None = None,
) -> Recorded | None:
    """Append `action` on `target` to the audit log and return its place in the chain (None
    for a system row: the runtime role may add to the system chain but not read it).

    `tenant`, when given, must be the active tenant context's (the row goes to that tenant's
    chain, under its RLS); without it, the active context decides. `actor` defaults to the one
    bound by the request or task (audit.context.acting).
    """
    tenant_id = db.require_tenant_context(tenant) if tenant is not None else None
    tenant_id = tenant_id or db.current_tenant_id()
    who = actor or context.current_actor() or context.Actor(type="system")
    with connections["default"].cursor() as cursor:
        cursor.execute(
            _INSERT_SQL + (_RETURNING_SQL if tenant_id else ""),
            [
                tenant_id,
                action,
                who.type,
                str(who.id)[:64],
                target_type,
                str(target_id)[:64],
                who.ip_address,
                who.request_id[:64],
                json.dumps(metadata or {}, cls=DjangoJSONEncoder, sort_keys=True),
            ],
        )
        if not tenant_id:
            return None
        row = cursor.fetchone()
    return Recorded(id=row[0], seq=row[1], hash=row[2].strip())
