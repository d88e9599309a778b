"""Export one tenant's rows from the shared schema, and restore them, nobody else's.

Every read and write runs inside `tenant_context(tenant)` as the application role, so
row-level security itself guarantees that the export holds only that tenant's rows and that
the import cannot write a row of any other tenant (the policies' WITH CHECK refuses it).
Tables go in foreign-key order: parents first on import, children first on delete.
The export is JSON lines, gzip-compressed and AES-256-GCM encrypted, in object storage.
"""

from __future__ import annotations

import gzip
import io
import json
import uuid
from collections.abc import Callable, Iterator

from django.apps import apps
from django.db import connections, models, transaction
from django.utils import timezone

from backups import artifacts, crypto
from backups.models import BackupKind, BackupRun, JobStatus
from backups.services import runs
from privacy.erasure import ledger
from tenants import db as tenant_db
from tenants import rls
from tenants.models import Tenant

FORMAT = "metis-tenant-export/1"
BATCH = 500


class TenantRestoreRefused(RuntimeError):
    """Raised when an import would overwrite or mix rows it must not."""


def tenant_models_in_fk_order() -> list[type[models.Model]]:
    """Return the tenant-owned models, every model after the tenant-owned models it refers to."""
    tables = rls.declared_tenant_tables()
    # Tables the application does not manage (the append-only audit log, written only by its
    # triggers and recorder) are not the tenant's data to export or put back: a restore adds
    # to the audit chain, it never rewinds it. Nor are derived rows (`derived_rows`): the
    # triggers that keep them count the restored rows as they go in.
    owned = [
        m
        for m in apps.get_models()
        if m._meta.db_table in tables
        and not m._meta.proxy
        and m._meta.managed
        and not getattr(m, "derived_rows", False)
    ]
    ordered: list[type[models.Model]] = []
    visiting: set = set()

    def visit(model) -> None:
        if model in ordered or model in visiting:
            return  # a cycle goes through a nullable FK; the database checks at commit
        visiting.add(model)
        for field in model._meta.concrete_fields:
            related = getattr(field, "related_model", None)
            if field.is_relation and related in owned and related is not model:
                visit(related)
        visiting.discard(model)
        ordered.append(model)

    for model in sorted(owned, key=lambda m: m._meta.db_table):
        visit(model)
    return ordered


def _rows(table: str, tenant_id: uuid.UUID) -> Iterator[dict]:
    with connections["default"].cursor() as cursor:
        cursor.execute(f'SELECT to_jsonb(t) FROM "{table}" t WHERE tenant_id = %s', [tenant_id])
        while batch := cursor.fetchmany(BATCH):
            for (row,) in batch:
                yield row if isinstance(row, dict) else json.loads(row)


def _export_lines(tenant: Tenant, counts: dict[str, int]) -> Iterator[bytes]:
    tenant_row = {
        "id": str(tenant.pk),
        "name": tenant.name,
        "subdomain": tenant.subdomain,
        "is_active": tenant.is_active,
    }
    order = [m._meta.db_table for m in tenant_models_in_fk_order()]
    yield json.dumps({"format": FORMAT, "tenant": tenant_row, "tables": order}).encode() + b"\n"
    with tenant_db.tenant_context(tenant.pk):
        for table in order:
            counts[table] = 0
            for row in _rows(table, tenant.pk):
                counts[table] += 1
                yield json.dumps({"t": table, "r": row}).encode() + b"\n"


def _gzip(lines: Iterator[bytes]) -> Iterator[bytes]:
    buffer = io.BytesIO()
    with gzip.GzipFile(fileobj=buffer, mode="wb") as zipped:
        for line in lines:
            zipped.write(line)
            if buffer.tell() > 256 * 1024:
                yield buffer.getvalue()
                buffer.seek(0)
                buffer.truncate()
    yield buffer.getvalue()


def tenant_export(
    *, tenant: Tenant, on_progress: Callable[[float], None] | None = None
) -> BackupRun:
    """Export every row `tenant` owns to object storage; return the catalog row."""
    key_bytes = crypto.key_from_settings()
    stamp = timezone.now().strftime("%Y%m%dT%H%M%SZ")
    key = artifacts.key_for("tenants", str(tenant.pk), f"{stamp}.jsonl.gz.enc")
    run = runs.job_start(BackupRun, kind=BackupKind.TENANT_EXPORT, label=stamp, tenant=tenant)
    with runs.job_guard(run):
        counts: dict[str, int] = {}
        location, stored, checksum = artifacts.object_put_stream(
            key, crypto.encrypt_stream(_gzip(_export_lines(tenant, counts)), key_bytes)
        )
        if on_progress:
            on_progress(100)
        runs.job_succeed(
            run,
            location=location,
            stored_bytes=stored,
            checksum=checksum,
            details={"counts": counts, "tenant": str(tenant.pk)},
        )
    return run


def _read_export(run: BackupRun) -> Iterator[dict]:
    body = artifacts.object_open(artifacts.key_of_location(run.location))
    try:
        plain = b"".join(crypto.decrypt_stream(body.read, crypto.key_from_settings()))
    finally:
        body.close()
    for line in gzip.decompress(plain).splitlines():
        yield json.loads(line)


def _nullable_outside_refs(model) -> list[tuple[str, str, str]]:
    """(column, table, pk column) of nullable FKs to tables outside the tenant's export."""
    tables = rls.declared_tenant_tables() | {Tenant._meta.db_table}
    refs = []
    for field in model._meta.concrete_fields:
        related = getattr(field, "related_model", None)
        outside = related is not None and related._meta.db_table not in tables
        if field.is_relation and outside and field.null:
            refs.append((field.column, related._meta.db_table, related._meta.pk.column))
    return refs


def tenant_restore(*, run: BackupRun, replace: bool = False) -> dict[str, int]:
    """Restore a tenant export into this database; return the rows restored per table.

    Into an empty database (no such tenant yet) the tenant is created. Back into place, the
    tenant's current rows must be absent, or `replace` deletes them first (children first).
    References to rows outside the tenant (a staff user, say) that do not exist here are
    cleared when the column allows it. All or nothing: one transaction.
    """
    if run.kind != BackupKind.TENANT_EXPORT or run.status != JobStatus.SUCCEEDED:
        raise ValueError(f"{run} is not a finished tenant export")
    records = _read_export(run)
    header = next(records)
    if header.get("format") != FORMAT:
        raise TenantRestoreRefused(f"unknown export format {header.get('format')!r}")
    tenant_id = uuid.UUID(header["tenant"]["id"])
    by_table: dict[str, list[dict]] = {table: [] for table in header["tables"]}
    for record in records:
        if record["r"].get("tenant_id") != str(tenant_id):
            raise TenantRestoreRefused("the export holds a row of another tenant")
        by_table.setdefault(record["t"], []).append(record["r"])
    model_of = {m._meta.db_table: m for m in tenant_models_in_fk_order()}
    unknown = set(by_table) - set(model_of)
    if unknown:
        raise TenantRestoreRefused(f"tables unknown here: {', '.join(sorted(unknown))}")
    order = [t for t in model_of if t in by_table]
    restored: dict[str, int] = {}
    with transaction.atomic():
        Tenant.objects.get_or_create(
            pk=tenant_id,
            defaults={k: v for k, v in header["tenant"].items() if k != "id"},
        )
        with tenant_db.tenant_context(tenant_id), connections["default"].cursor() as cursor:
            existing = {}
            for table in order:
                cursor.execute(f'SELECT count(*) FROM "{table}" WHERE tenant_id = %s', [tenant_id])
                existing[table] = cursor.fetchone()[0]
            if any(existing.values()) and not replace:
                raise TenantRestoreRefused(
                    f"tenant {tenant_id} already has rows here; restore with replace=True"
                )
            cursor.execute("SET CONSTRAINTS ALL DEFERRED")
            for table in reversed(order):
                cursor.execute(f'DELETE FROM "{table}" WHERE tenant_id = %s', [tenant_id])
            for table in order:
                rows = by_table[table]
                for column, other, pk in _nullable_outside_refs(model_of[table]):
                    wanted = {row[column] for row in rows if row.get(column) is not None}
                    if wanted:
                        cursor.execute(
                            f'SELECT "{pk}"::text FROM "{other}" WHERE "{pk}"::text = ANY(%s)',
                            [[str(v) for v in wanted]],
                        )
                        present = {value for (value,) in cursor.fetchall()}
                        for row in rows:
                            if row.get(column) is not None and str(row[column]) not in present:
                                row[column] = None
                for start in range(0, len(rows), BATCH):
                    cursor.execute(
                        f'INSERT INTO "{table}" SELECT * FROM '
                        f'jsonb_populate_recordset(NULL::"{table}", %s::jsonb)',
                        [json.dumps(rows[start : start + BATCH])],
                    )
                restored[table] = len(rows)
        _advance_sequences(model_of, by_table)
    # The export may predate erasures: the ledger (outside the database) erases them again.
    restored["erasures_replayed"] = ledger.ledger_replay(tenant_id=tenant_id)["entries"]
    runs.restore_tested_mark(run)
    return restored


def _advance_sequences(model_of: dict, by_table: dict[str, list[dict]]) -> None:
    # Restored rows keep their ids; a sequence behind them would hand the same ids out again.
    # The owner owns the sequences (the app role may only use them); setval never goes back.
    with connections["owner"].cursor() as cursor:
        for table, rows in by_table.items():
            pk = model_of[table]._meta.pk
            if not rows or not isinstance(pk, models.AutoField | models.BigAutoField):
                continue
            cursor.execute("SELECT pg_get_serial_sequence(%s, %s)", [f'"{table}"', pk.column])
            sequence = cursor.fetchone()[0]
            if sequence:
                highest = max(int(row[pk.column]) for row in rows)
                cursor.execute(
                    f"SELECT setval(%s, GREATEST(%s, (SELECT last_value FROM {sequence})))",
                    [sequence, highest],
                )
