"""What an erasure keeps on purpose, and why: named on the receipt beside what it erased.

GDPR Art. 17(3) lets a controller keep personal data it must keep by law (b) or to establish
and defend legal claims (e). Two stores fall under it and are never rewritten by an erasure:
- the audit log: append-only and hash-chained (a rewritten row would break the chain the
  regulator relies on); its rows about the subject (their user id as actor, their documents as
  targets, the client addresses they came from) go when their month passes
  AUDIT_RETENTION_DAYS and is archived, and then with the archive;
- the erasure ledger: ids and the subject reference, no names, kept so that every restore of an
  older backup erases the subject again.
"""

from __future__ import annotations

import datetime as dt

from django.conf import settings
from django.db.models import Q

from audit.models import AuditEntry
from privacy.erasure.plan import ErasurePlan

AUDIT_LOG_WHY = (
    "GDPR Art. 17(3)(b) and (e): the tamper-evident audit trail is kept by law (RBI KYC and "
    "PMLA record keeping) and for legal claims; its rows are never rewritten"
)
LEDGER_WHY = (
    "GDPR Art. 17(3)(b): ids and the subject reference only, kept so that a restore of an "
    "older backup erases the subject again"
)


def kept_on_purpose(plan: ErasurePlan, *, subject_user_id: str | None) -> list[dict]:
    """The receipt's `kept` entries: the audit rows naming the subject and the ledger entry.

    Runs in the tenant's context (the audit log is under RLS)."""
    naming = Q(target_id__in=plan.document_ids) if plan.document_ids else Q(pk__in=[])
    if subject_user_id:
        naming |= Q(actor_id=subject_user_id) | Q(target_id=subject_user_id)
    rows = AuditEntry.objects.filter(tenant_id=plan.tenant_uuid).filter(naming)
    newest = rows.order_by("-created_at").values_list("created_at", flat=True).first()
    kept: list[dict] = [
        {
            "store": "audit_log",
            "rows": rows.count(),
            "why": AUDIT_LOG_WHY,
            "until": (
                (newest + dt.timedelta(days=settings.AUDIT_RETENTION_DAYS)).date().isoformat()
                if newest is not None
                else None
            ),
        }
    ]
    if not plan.is_empty():
        kept.append({"store": "erasure_ledger", "rows": 1, "why": LEDGER_WHY, "until": None})
    return kept
