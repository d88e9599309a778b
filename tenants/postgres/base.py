"""Django's PostgreSQL backend, sealing each transaction for the tenant context it runs in.

Set as every alias's ENGINE (metis/settings.py). Before a statement runs, the connection makes
sure its transaction carries the seal of the current tenant context (tenants.db), or none: a
statement outside any transaction (autocommit) inside a tenant context gets a short transaction
of its own. The seal is per transaction, so the wrapper forgets it at every commit, rollback or
savepoint rollback (which undoes a seal set inside the savepoint).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from django.db import transaction
from django.db.backends.postgresql import base
from psycopg.errors import error_from_result
from psycopg.pq import ExecStatus, TransactionStatus

from tenants import db, seal

_UNKNOWN = object()  # the transaction's seal is not known: set it before the next statement


class DatabaseWrapper(base.DatabaseWrapper):
    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.sealed_for: object = None  # the tenant this transaction is sealed for, if any
        self.controlling_transaction = False
        self.execute_wrappers.append(_seal_before_execute)

    def _commit(self):
        self.sealed_for = None
        return super()._commit()  # type: ignore[misc]  # private in the stubs

    def _rollback(self):
        self.sealed_for = None
        return super()._rollback()  # type: ignore[misc]  # private in the stubs

    # Savepoint statements go through the execute wrappers too: they run as they are.
    def _savepoint(self, sid):
        with self._transaction_control():
            return super()._savepoint(sid)  # type: ignore[misc]  # private in the stubs

    def _savepoint_commit(self, sid):
        with self._transaction_control():
            return super()._savepoint_commit(sid)  # type: ignore[misc]  # private in the stubs

    def _savepoint_rollback(self, sid):
        with self._transaction_control():
            super()._savepoint_rollback(sid)  # type: ignore[misc]  # private in the stubs
        self.sealed_for = _UNKNOWN

    @contextmanager
    def _transaction_control(self) -> Iterator[None]:
        self.controlling_transaction = True
        try:
            yield
        finally:
            self.controlling_transaction = False

    def _close(self):
        self.sealed_for = None
        return super()._close()  # type: ignore[misc]  # private in the stubs

    def transaction_seal(self, tenant_id) -> None:
        """Seal the open transaction for `tenant_id`, or clear its seal (None)."""
        with self.connection.cursor() as cursor:  # psycopg's own: no execute wrappers
            if tenant_id is None:
                cursor.execute("SELECT set_config(%s, '', true)", [seal.SEAL_SETTING])
            else:
                pid, micros = self._transaction_identity(cursor)
                value = seal.seal_for(tenant_id, pid, micros)
                cursor.execute("SELECT set_config(%s, %s, true)", [seal.SEAL_SETTING, value])
        self.sealed_for = tenant_id

    def _transaction_identity(self, cursor) -> tuple[int, int]:
        """Return the backend pid and transaction start (µs) the seal is bound to.

        A transaction not yet begun on the server is begun by the same query ("BEGIN; SELECT
        ..." in one simple-protocol message), sparing the round trip psycopg's own BEGIN
        would take; psycopg then finds the transaction open and sends no BEGIN of its own.
        """
        query = f"SELECT pg_backend_pid(), {seal.TRANSACTION_MICROS_SQL}"
        pg = self.connection
        if pg.info.transaction_status != TransactionStatus.IDLE:
            cursor.execute(query)
            return cursor.fetchone()
        with pg.lock:
            result = pg.pgconn.exec_(f"BEGIN; {query}".encode())
        if result.status != ExecStatus.TUPLES_OK:
            raise error_from_result(result, encoding=pg.info.encoding)
        return int(result.get_value(0, 0)), int(result.get_value(0, 1))


def _seal_before_execute(execute, sql, params, many, context):
    connection = context["connection"]
    if connection.controlling_transaction:
        return execute(sql, params, many, context)
    wanted = db.current_tenant_id()
    if not connection.get_autocommit():
        if connection.sealed_for is _UNKNOWN or connection.sealed_for != wanted:
            connection.transaction_seal(wanted)
        return execute(sql, params, many, context)
    if wanted is None:
        return execute(sql, params, many, context)
    with transaction.atomic(using=connection.alias):
        connection.transaction_seal(wanted)
        return execute(sql, params, many, context)
