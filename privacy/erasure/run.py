"""Run one approved erasure across every store, verify each by reading it back, and receipt it.

An entry point like the backup jobs: it opens the tenant context for each database step and
calls S3, ClickHouse and Redis between them, with no transaction open. Order matters for a run
that fails half-way and is run again: the ledger entry first (a restore replays it even if the
run dies), the objects (documents, then portability ZIPs) before the rows that name them, the
rows, then events, caches, Parquet exports.
"""

from __future__ import annotations

import datetime as dt
import uuid

from django.db import connection, transaction
from django.utils import timezone

from audit import recorder as audit_recorder
from documents.models import DocumentVersion
from privacy import retention, subjects
from privacy.erasure import kept, ledger, postgres, stores
from privacy.erasure.plan import ErasurePlan, email_digest, folder_of
from privacy.models import ErasureRequest, ErasureStatus, SubjectKind
from tenants import db
from tenants.models import TenantUser


class ErasureIncomplete(RuntimeError):
    """A store still holds some of the subject after its erasure; the run is to be repeated."""


def recorded(request: ErasureRequest, run: dict) -> None:
    """The one place an erasure run is recorded: on the request's receipt, and in the tenant's
    audit chain in the same transaction (counts and holds, ids only, as the receipt)."""
    runs = request.receipt.setdefault("runs", [])
    runs.append(run)
    audit_recorder.record(
        action="privacy.erasure_run",
        target_type="erasure_request",
        target_id=request.pk,
        metadata={"kind": request.kind, "run": run},
        tenant=request.tenant_id,
    )


def _plan(request: ErasureRequest, today: dt.date) -> tuple[ErasurePlan, list]:
    subject = subjects.Subject(tenant_id=request.tenant_id, kind=request.kind, ref=request.ref)
    plan = ErasurePlan(tenant_id=str(request.tenant_id), kind=request.kind, ref=request.ref)
    documents = list(subjects.documents_of(subject))
    holds = retention.holds_for(subject, documents, today=today)
    erasable = [d for d in documents if d.pk not in holds]
    plan.document_ids = [str(d.pk) for d in erasable]
    keys = {d.storage_key for d in erasable} | set(
        DocumentVersion.objects.for_tenant(request.tenant_id)
        .filter(document_id__in=[d.pk for d in erasable])
        .values_list("storage_key", flat=True)
    )
    plan.object_prefixes = sorted({folder_of(key) for key in keys})
    if subject.kind == SubjectKind.USER and retention.subject_hold(subject) is None:
        user = TenantUser.objects.for_tenant(request.tenant_id).filter(pk=subject.user_id).first()
        plan.user_ids = [subject.ref]
        plan.email_digests = [email_digest(user.email)] if user is not None else []
    if not plan.is_empty():
        exports = subjects.exports_holding(subject, document_ids=plan.document_ids)
        found = sorted(exports.values_list("pk", "object_key"))
        plan.export_ids = [str(pk) for pk, _ in found]
        plan.export_keys = sorted({key for _, key in found if key})
    return plan, sorted(holds.values(), key=lambda hold: str(hold.document_id))


def erasure_run(
    *, request_id: uuid.UUID, tenant_id: uuid.UUID, now: dt.datetime | None = None
) -> dict:
    """Erase the approved request's subject everywhere except held parts; return this run's
    receipt. Held parts with a date are scheduled for it (`next_run_at`)."""
    if db.current_tenant_id() is not None:
        raise db.TenantContextError("an erasure runs outside any tenant context")
    now = now or timezone.now()
    with db.tenant_context(tenant_id):
        request = ErasureRequest.objects.for_tenant(tenant_id).get(pk=request_id)
        if request.status not in (ErasureStatus.APPROVED, ErasureStatus.HELD, ErasureStatus.FAILED):
            raise ValueError(f"erasure request {request_id} is {request.status}, not approved")
        plan, holds = _plan(request, now.date())
    run: dict = {"run_at": now.isoformat(), "subject": {"kind": plan.kind, "ref": plan.ref}}
    try:
        if not plan.is_empty():
            run["ledger_key"] = ledger.ledger_append(plan, request_id=str(request_id))
        run["erased"] = _erase(plan)
        run["verified"] = _verify(plan)
        left = {name: count for name, count in run["verified"].items() if count}
        if left:
            raise ErasureIncomplete(f"still holding the subject: {left}")
    except Exception as exc:
        run["error"] = str(exc)[:2000]
        _finish(request_id, tenant_id, run, status=ErasureStatus.FAILED, error=run["error"])
        raise
    run["held"] = [hold.as_receipt() for hold in holds]
    with db.tenant_context(tenant_id):
        run["kept"] = kept.kept_on_purpose(
            plan,
            subject_user_id=plan.ref if plan.kind == SubjectKind.USER else None,
        )
    dated = [hold.until for hold in holds if hold.until is not None]
    next_run = dt.datetime.combine(min(dated), dt.time.min, tzinfo=dt.UTC) if dated else None
    status = ErasureStatus.HELD if holds else ErasureStatus.DONE
    _finish(request_id, tenant_id, run, status=status, next_run_at=next_run)
    return run


def _erase(plan: ErasurePlan) -> dict:
    erased: dict = {"s3": stores.objects_erase(plan), "s3_dr": stores.dr_objects_erase(plan)}
    erased["portability_exports"] = stores.export_files_erase(plan)
    with db.tenant_context(plan.tenant_uuid), connection.cursor() as cursor:
        erased["postgresql"] = postgres.rows_erase(cursor, plan)
        erased["postgresql"]["django_session"] = {"deleted": stores.sessions_erase(plan)}
    erased["clickhouse"] = {"events": stores.events_erase(plan)}
    erased["cache"] = {"dashboard_entries": stores.caches_erase(plan)}
    erased["parquet_exports"] = stores.exports_erase(plan)
    return erased


def _verify(plan: ErasurePlan) -> dict:
    with db.tenant_context(plan.tenant_uuid), connection.cursor() as cursor:
        remaining = {f"postgresql.{t}": n for t, n in postgres.rows_remaining(cursor, plan).items()}
        remaining["postgresql.django_session"] = stores.sessions_remaining(plan)
    remaining["s3.versions_and_markers"] = stores.objects_remaining(plan)
    remaining["s3_dr.versions_and_markers"] = stores.dr_objects_remaining(plan)
    remaining["portability_exports.versions_and_markers"] = stores.export_files_remaining(plan)
    remaining["clickhouse.events"] = stores.events_remaining(plan)
    remaining["cache.dashboard_entries"] = stores.caches_remaining(plan)
    remaining["parquet_exports.rows"] = stores.exports_remaining(plan)
    return remaining


def _finish(
    request_id, tenant_id, run: dict, *, status: str, error: str = "", next_run_at=None
) -> None:
    with db.tenant_context(tenant_id), transaction.atomic():
        request = (
            ErasureRequest.objects.for_tenant(tenant_id).select_for_update().get(pk=request_id)
        )
        recorded(request, run)
        request.status = status
        request.error = error
        request.next_run_at = next_run_at
        if status in (ErasureStatus.DONE, ErasureStatus.HELD):
            request.completed_at = timezone.now()
        request.save()
