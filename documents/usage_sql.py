"""The triggers that keep `document_usage` and `document_version_usage` exact, and their backfill.

The admin's storage summary once summed every document and version in scope: 18 s for a tenant
with a million documents. Now each statement that inserts, updates or deletes documents (or
versions) adds its net change to the tenant's usage rows, in the same transaction: one AFTER
... FOR EACH STATEMENT trigger per operation, reading the statement's transition tables, so a
bulk insert (a restore, the benchmarks' seeding) costs one grouped upsert, not one per row. The
upserts run as the writer, in its tenant context: RLS checks the usage rows like any others.

The trade-off: every transaction that adds a tenant's documents updates that tenant's usage row
of the class, so concurrent uploads to one tenant queue on that row's lock from the upsert to
their commit (a few milliseconds of an upload that takes far longer in S3). A statement that
touches several classes takes their rows in (tenant, class) order.

A tenant export leaves these rows out (`derived_rows`): restoring the documents counts them.
"""

from __future__ import annotations

# PostgreSQL allows a transition table only on a trigger for a single operation: three each.
_OPERATIONS = {
    "INSERT": "REFERENCING NEW TABLE AS new_rows",
    "UPDATE": "REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows",
    "DELETE": "REFERENCING OLD TABLE AS old_rows",
}

# Each operation's rows as signed changes: +1 for a new row, -1 for an old one.
_CHANGES = {
    "INSERT": "SELECT {keys}, 1 AS n, size_bytes AS b FROM new_rows",
    "DELETE": "SELECT {keys}, -1 AS n, -size_bytes AS b FROM old_rows",
    "UPDATE": (
        "SELECT {keys}, 1 AS n, size_bytes AS b FROM new_rows"
        " UNION ALL SELECT {keys}, -1, -size_bytes FROM old_rows"
    ),
}


def _function(name: str, table: str, keys: str, count: str, size: str) -> str:
    branches = []
    for operation, changes in _CHANGES.items():
        branches.append(
            f"""{"IF" if not branches else "ELSIF"} TG_OP = '{operation}' THEN
    INSERT INTO {table} AS u ({keys}, {count}, {size})
    SELECT {keys}, sum(n), sum(b) FROM ({changes.format(keys=keys)}) AS changes
    GROUP BY {keys} HAVING sum(n) <> 0 OR sum(b) <> 0 ORDER BY {keys}
    ON CONFLICT ({keys}) DO UPDATE
    SET {count} = u.{count} + excluded.{count}, {size} = u.{size} + excluded.{size};"""
        )
    body = "\n  ".join(branches)
    return f"""
CREATE FUNCTION {name}() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  {body}
  END IF;
  RETURN NULL;
END $$;"""


def _triggers(name: str, table: str) -> str:
    return "\n".join(
        f"CREATE TRIGGER {name}_{operation.lower()} AFTER {operation} ON {table} {referencing}"
        f" FOR EACH STATEMENT EXECUTE FUNCTION {name}();"
        for operation, referencing in _OPERATIONS.items()
    )


def _drop(name: str, table: str) -> str:
    drops = [f"DROP TRIGGER IF EXISTS {name}_{op.lower()} ON {table};" for op in _OPERATIONS]
    return "\n".join([*drops, f"DROP FUNCTION IF EXISTS {name}();"])


CREATE_TRIGGERS = "\n".join(
    [
        _function(
            "document_usage_count",
            "document_usage",
            "tenant_id, storage_class",
            "documents",
            "current_bytes",
        ),
        _triggers("document_usage_count", "documents"),
        _function(
            "document_version_usage_count",
            "document_version_usage",
            "tenant_id",
            "versions",
            "stored_bytes",
        ),
        _triggers("document_version_usage_count", "document_versions"),
    ]
)

DROP_TRIGGERS = "\n".join(
    [
        _drop("document_usage_count", "documents"),
        _drop("document_version_usage_count", "document_versions"),
    ]
)

# Run by the migration as the tables' owner. The policies are forced on the owner too, so they
# are lifted for the backfill's transaction only; the migration's ACCESS EXCLUSIVE locks keep
# every writer out until the triggers and the backfill commit together.
_TABLES = ("documents", "document_versions", "document_usage", "document_version_usage")
BACKFILL = "\n".join(
    [
        *(f"ALTER TABLE {table} NO FORCE ROW LEVEL SECURITY;" for table in _TABLES),
        "DELETE FROM document_usage;",
        "DELETE FROM document_version_usage;",
        "INSERT INTO document_usage (tenant_id, storage_class, documents, current_bytes)"
        " SELECT tenant_id, storage_class, count(*), sum(size_bytes) FROM documents"
        " GROUP BY tenant_id, storage_class;",
        "INSERT INTO document_version_usage (tenant_id, versions, stored_bytes)"
        " SELECT tenant_id, count(*), sum(size_bytes) FROM document_versions GROUP BY tenant_id;",
        *(f"ALTER TABLE {table} FORCE ROW LEVEL SECURITY;" for table in _TABLES),
    ]
)
