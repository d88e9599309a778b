"""Objects written before the rows that reference them: deleted again unless those rows commit.

The protocol is "object first, row second": an object without a row is harmless for a moment
and easy to find, a row without an object is a broken promise. So each upload writes its object,
then its rows in a transaction, and registers the object here. The object stays only if that
transaction commits, including an outer transaction (a request's tenant context) that commits
later, or fails at COMMIT time. Once no transaction is open any more, `purge_uncommitted()`
deletes what did not make it. If even that delete fails (the store is down), the
`reconcile_storage` command finds the object later.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from django.db import transaction

from metis.objectstore import store

PENDING_ATTRIBUTE = "metis_uncommitted_objects"


@dataclass
class _WrittenObject:
    key: str
    committed: bool = False

    def mark_committed(self) -> None:
        self.committed = True


def purge_unless_committed(key: str, *, using: str = "default") -> None:
    """Delete the object at `key` unless the current transaction (and all outer ones) commit."""
    connection = transaction.get_connection(using)
    written = _WrittenObject(key)
    connection.__dict__.setdefault(PENDING_ATTRIBUTE, []).append(written)
    # Django drops this callback if the savepoint or the transaction rolls back.
    transaction.on_commit(written.mark_committed, using=using)


def purge_uncommitted(*, using: str = "default") -> list[str]:
    """Once no transaction is open, delete the objects whose rows did not commit; return keys."""
    connection = transaction.get_connection(using)
    if connection.in_atomic_block:
        return []  # the outcome is not known yet; an outer caller sweeps
    pending = connection.__dict__.pop(PENDING_ATTRIBUTE, [])
    lost = [written.key for written in pending if not written.committed]
    for key in lost:
        store.documents_store().purge_quietly(key)
    return lost


class PurgeUncommittedObjectsMiddleware:
    """Sweep after the request's tenant transaction ended (sits outside TenantMiddleware)."""

    def __init__(self, get_response: Callable) -> None:
        self.get_response = get_response

    def __call__(self, request):
        try:
            return self.get_response(request)
        finally:
            purge_uncommitted()
