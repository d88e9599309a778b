"""The PostgreSQL part of an erasure: statements by id, run on any DB-API cursor.

The same statements erase in the live database (a Django cursor inside the tenant's context, so
RLS still guards them) and replay the ledger in a restored cluster (a psycopg cursor as its
owner). Children go first; rows that must stay are pseudonymised instead:

- access-log rows about an erased document are deleted with it (the log's PROTECT reference
  would otherwise keep the document; the receipt keeps their count);
- access-log rows of an erased user about documents that stay keep what happened to which
  document, but lose who and from where (`user_id`, `ip_address` set to NULL): irreversible;
- a held document uploaded by an erased user stays, without `uploaded_by`;
- a portability export holding the subject keeps its row (what was asked, when) marked
  `erased`, its file list cut to row counts (the ZIP itself is purged from S3 first); an
  erased user's name goes from every export row as subject or requester.

Every statement is idempotent: a replay over rows already gone changes nothing.
"""

from __future__ import annotations

from privacy.erasure.plan import ErasurePlan

_IN_TENANT = "tenant_id = %(tenant)s::uuid"
_DOCUMENTS = "%(documents)s::uuid[]"
_USERS = "%(users)s::uuid[]"
_EXPORTS = "%(exports)s::uuid[]"

# (table, what the count means, statement)
STATEMENTS: list[tuple[str, str, str]] = [
    (
        "document_access_log",
        "deleted",
        f"DELETE FROM document_access_log WHERE {_IN_TENANT} AND document_id = ANY({_DOCUMENTS})",
    ),
    (
        "document_access_log",
        "pseudonymised",
        "UPDATE document_access_log SET user_id = NULL, ip_address = NULL "
        f"WHERE {_IN_TENANT} AND user_id = ANY({_USERS})",
    ),
    (
        "document_versions",
        "deleted",
        f"DELETE FROM document_versions WHERE {_IN_TENANT} AND document_id = ANY({_DOCUMENTS})",
    ),
    (
        "document_versions",
        "pseudonymised",
        "UPDATE document_versions SET uploaded_by_id = NULL "
        f"WHERE {_IN_TENANT} AND uploaded_by_id = ANY({_USERS})",
    ),
    (
        "documents",
        "pseudonymised",
        "UPDATE documents SET uploaded_by_id = CASE WHEN uploaded_by_id = ANY("
        f"{_USERS}) THEN NULL ELSE uploaded_by_id END, restore_requested_by_id = CASE WHEN "
        f"restore_requested_by_id = ANY({_USERS}) THEN NULL ELSE restore_requested_by_id END "
        f"WHERE {_IN_TENANT} AND NOT (id = ANY({_DOCUMENTS})) AND (uploaded_by_id = ANY("
        f"{_USERS}) OR restore_requested_by_id = ANY({_USERS}))",
    ),
    (
        "documents",
        "deleted",
        f"DELETE FROM documents WHERE {_IN_TENANT} AND id = ANY({_DOCUMENTS})",
    ),
    (
        "analytics_event_outbox",
        "deleted",
        f"DELETE FROM analytics_event_outbox WHERE {_IN_TENANT} AND (user_id = ANY({_USERS}) "
        "OR data->>'document_id' = ANY(%(documents)s::text[]))",
    ),
    (
        # Events the drain has claimed but not yet delivered wait in batch rows: the subject's
        # events leave each batch (it keeps its token: a batch ClickHouse already took is
        # dropped as a repeat when re-sent, and ClickHouse's own erasure covers what landed).
        "events_outbox_batch",
        "rewritten",
        "UPDATE events_outbox_batch b SET (size, oldest_at, event_ids, event_types, event_data, "
        "user_ids, staff_ids, occurred_ats) = (SELECT count(*), coalesce(min(e.occurred_at), "
        "b.oldest_at), coalesce(array_agg(e.id ORDER BY e.n), '{}'), coalesce(array_agg("
        "e.event_type ORDER BY e.n), '{}'), coalesce(array_agg(e.data ORDER BY e.n), '{}'), "
        "coalesce(array_agg(e.user_id ORDER BY e.n), '{}'), coalesce(array_agg(e.staff_id "
        "ORDER BY e.n), '{}'), coalesce(array_agg(e.occurred_at ORDER BY e.n), '{}') "
        "FROM unnest(b.event_ids, b.event_types, b.event_data, b.user_ids, b.staff_ids, "
        "b.occurred_ats) WITH ORDINALITY AS e(id, event_type, data, user_id, staff_id, "
        f"occurred_at, n) WHERE NOT coalesce(e.user_id = ANY({_USERS}) OR "
        "e.data->>'document_id' = ANY(%(documents)s::text[]), false)) "
        f"WHERE {_IN_TENANT} AND (b.user_ids && {_USERS} OR EXISTS (SELECT 1 FROM "
        "unnest(b.event_data) AS d(data) WHERE d.data->>'document_id' = "
        "ANY(%(documents)s::text[])))",
    ),
    (
        "password_reset_tokens",
        "deleted",
        f"DELETE FROM password_reset_tokens WHERE {_IN_TENANT} AND user_id = ANY({_USERS})",
    ),
    (
        "sign_in_lockouts",
        "deleted",
        f"DELETE FROM sign_in_lockouts WHERE {_IN_TENANT} AND account <> '' AND "
        "encode(sha256(convert_to(lower(account), 'UTF8')), 'hex') = ANY(%(emails)s::text[])",
    ),
    (
        "privacy_exports",
        "erased",
        "UPDATE privacy_exports SET status = 'erased', deleted_at = coalesce(deleted_at, now()), "
        "progress_note = 'deleted: its subject was erased', "
        "summary = jsonb_build_object('rows', summary->'rows') "
        f"WHERE {_IN_TENANT} AND id = ANY({_EXPORTS}) AND status <> 'erased'",
    ),
    (
        "privacy_exports",
        "pseudonymised",
        "UPDATE privacy_exports SET subject_user_id = CASE WHEN subject_user_id = ANY("
        f"{_USERS}) THEN NULL ELSE subject_user_id END, requested_by_id = CASE WHEN "
        f"requested_by_id = ANY({_USERS}) THEN NULL ELSE requested_by_id END "
        f"WHERE {_IN_TENANT} AND (subject_user_id = ANY({_USERS}) "
        f"OR requested_by_id = ANY({_USERS}))",
    ),
    ("users", "deleted", f"DELETE FROM users WHERE {_IN_TENANT} AND id = ANY({_USERS})"),
]

# Reading afterwards: each must count zero.
CHECKS: dict[str, str] = {
    "documents": f"SELECT count(*) FROM documents WHERE {_IN_TENANT} AND id = ANY({_DOCUMENTS})",
    "document_versions": f"SELECT count(*) FROM document_versions WHERE {_IN_TENANT} AND "
    f"(document_id = ANY({_DOCUMENTS}) OR uploaded_by_id = ANY({_USERS}))",
    "document_access_log": f"SELECT count(*) FROM document_access_log WHERE {_IN_TENANT} AND "
    f"(document_id = ANY({_DOCUMENTS}) OR user_id = ANY({_USERS}))",
    "analytics_event_outbox": f"SELECT count(*) FROM analytics_event_outbox WHERE {_IN_TENANT} "
    f"AND (user_id = ANY({_USERS}) OR data->>'document_id' = ANY(%(documents)s::text[]))",
    "events_outbox_batch": "SELECT count(*) FROM events_outbox_batch b, unnest(b.user_ids, "
    f"b.event_data) AS e(user_id, data) WHERE {_IN_TENANT} AND (e.user_id = ANY({_USERS}) "
    "OR e.data->>'document_id' = ANY(%(documents)s::text[]))",
    "privacy_exports": f"SELECT count(*) FROM privacy_exports WHERE {_IN_TENANT} AND "
    f"((id = ANY({_EXPORTS}) AND status <> 'erased') OR subject_user_id = ANY({_USERS}) "
    f"OR requested_by_id = ANY({_USERS}))",
    "users": f"SELECT count(*) FROM users WHERE {_IN_TENANT} AND id = ANY({_USERS})",
    "password_reset_tokens": f"SELECT count(*) FROM password_reset_tokens WHERE {_IN_TENANT} "
    f"AND user_id = ANY({_USERS})",
}


def parameters(plan: ErasurePlan) -> dict:
    return {
        "tenant": plan.tenant_id,
        "documents": list(plan.document_ids),
        "users": list(plan.user_ids),
        "emails": list(plan.email_digests),
        "exports": list(plan.export_ids),
    }


def rows_erase(cursor, plan: ErasurePlan, *, tables: set[str] | None = None) -> dict:
    """Run the statements (only on `tables` when given); return {table: {what: rows}}."""
    counts: dict[str, dict[str, int]] = {}
    params = parameters(plan)
    cursor.execute("SET CONSTRAINTS ALL DEFERRED")
    for table, what, sql in STATEMENTS:
        if tables is not None and table not in tables:
            continue
        cursor.execute(sql, params)
        per_table = counts.setdefault(table, {})
        per_table[what] = per_table.get(what, 0) + max(cursor.rowcount, 0)
    return counts


def rows_remaining(cursor, plan: ErasurePlan, *, tables: set[str] | None = None) -> dict:
    """Count what is left of the subject in each table (all zero after an erasure)."""
    params = parameters(plan)
    remaining = {}
    for table, sql in CHECKS.items():
        if tables is not None and table not in tables:
            continue
        cursor.execute(sql, params)
        remaining[table] = cursor.fetchone()[0]
    return remaining
