"""What one erasure removes, by id only: the ledger keeps it and replays it after restores.

No name, email or file content is kept here: ids, the subject's reference (the tenant's own
customer id, needed to find documents again in a restored database) and SHA-256 digests of the
account's email (to find its sign-in lockouts, which name the email as typed).
"""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import asdict, dataclass, field


def email_digest(email: str) -> str:
    return hashlib.sha256(email.strip().lower().encode()).hexdigest()


@dataclass
class ErasurePlan:
    tenant_id: str
    kind: str
    ref: str
    user_ids: list[str] = field(default_factory=list)
    document_ids: list[str] = field(default_factory=list)
    email_digests: list[str] = field(default_factory=list)
    # One folder per stored version, `tenants/{tenant}/.../{document-id}/`.
    object_prefixes: list[str] = field(default_factory=list)
    # Portability exports holding the subject: their rows (marked erased) and ZIPs (purged).
    export_ids: list[str] = field(default_factory=list)
    export_keys: list[str] = field(default_factory=list)

    def as_json(self) -> dict:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict) -> ErasurePlan:
        return cls(**{name: data[name] for name in cls.__dataclass_fields__ if name in data})

    @property
    def tenant_uuid(self) -> uuid.UUID:
        return uuid.UUID(self.tenant_id)

    def is_empty(self) -> bool:
        return not (self.user_ids or self.document_ids)


def folder_of(key: str) -> str:
    """The folder a stored version lives in: every version of a document has its own."""
    return key.rsplit("/", 1)[0] + "/"
