"""Which of a subject's documents must stay: retention rules and legal holds.

A retention rule keeps a document type for N years after a basis date (the relationship's end,
recorded per subject, or the upload). Until the relationship has ended the period has not even
started, so such documents are held with no date. A legal hold (on the subject or on one
document) holds until staff lift it.
"""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass

from documents.models import Document
from privacy.models import DocumentLegalHold, RetentionBasis, RetentionRule, SubjectRecord
from privacy.subjects import Subject


@dataclass(frozen=True)
class Hold:
    document_id: uuid.UUID
    document_type: str
    rule: str  # the rule or hold named in the refusal
    until: dt.date | None  # None: until lifted, or until the relationship ends

    def as_receipt(self) -> dict:
        return {
            "document_id": str(self.document_id),
            "document_type": self.document_type,
            "rule": self.rule,
            "until": self.until.isoformat() if self.until else None,
        }


def years_after(day: dt.date, years: int) -> dt.date:
    try:
        return day.replace(year=day.year + years)
    except ValueError:  # 29 February into a common year
        return day.replace(year=day.year + years, day=28)


def subject_record(subject: Subject) -> SubjectRecord | None:
    return (
        SubjectRecord.objects.for_tenant(subject.tenant_id)
        .filter(kind=subject.kind, ref=subject.ref)
        .first()
    )


def subject_hold(subject: Subject) -> str | None:
    """The legal hold on the subject as a whole, named; None when there is none."""
    record = subject_record(subject)
    if record is not None and record.legal_hold:
        return f"legal hold on the subject: {record.legal_hold_reason or 'no reason given'}"
    return None


def holds_for(subject: Subject, documents: list[Document], *, today: dt.date) -> dict:
    """Return document id -> Hold for each of `documents` that must not be erased `today`."""
    record = subject_record(subject)
    rules = {rule.document_type: rule for rule in RetentionRule.objects.all()}
    held_documents = dict(
        DocumentLegalHold.objects.for_tenant(subject.tenant_id)
        .filter(document_id__in=[d.pk for d in documents])
        .values_list("document_id", "reason")
    )
    holds = {}
    for document in documents:
        hold = None
        if record is not None and record.legal_hold:
            hold = Hold(document.pk, document.document_type, subject_hold(subject) or "", None)
        elif document.pk in held_documents:
            reason = f"legal hold on the document: {held_documents[document.pk]}"
            hold = Hold(document.pk, document.document_type, reason, None)
        elif (rule := rules.get(document.document_type)) is not None:
            hold = _rule_hold(rule, document, record, today)
        if hold is not None:
            holds[document.pk] = hold
    return holds


def _rule_hold(
    rule: RetentionRule, document: Document, record: SubjectRecord | None, today: dt.date
) -> Hold | None:
    if rule.basis == RetentionBasis.UPLOAD:
        until = years_after(document.created_at.date(), rule.years)
    elif record is None or record.relationship_ended_on is None:
        return Hold(document.pk, document.document_type, f"{rule} (relationship ongoing)", None)
    else:
        until = years_after(record.relationship_ended_on, rule.years)
    return Hold(document.pk, document.document_type, str(rule), until) if today < until else None
