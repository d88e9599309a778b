"""Django's PostgreSQL backend, sealing each transaction for the tenant context it runs in.

Set as every alias's ENGINE (metis/settings.py). Before a statement runs, the connection makes
sure its transaction carries the seal of the current tenant context (tenants.db), or none: a
statement outside any transaction (autocommit) inside a tenant context gets a short transaction
of its own. The seal is per transaction, so the wrapper forgets it at every commit, rollback or
savepoint rollback (which undoes a seal set inside the savepoint).

Statements that may write staff-account tables (tenants/accounts_seal.py) get a second seal,
for accounts, set just before the statement and cleared just after it: a later statement of the
same transaction, injected or not, is not covered. A statement may write them while an ORM
write of such a model is under way (between its pre_ and post_ signals) or inside an explicit
`tenants.db.accounts_write()` block.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import psycopg
from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, transaction
from django.db.backends.postgresql import base
from psycopg.errors import error_from_result
from psycopg.pq import ExecStatus, TransactionStatus

from tenants import db, replica, seal
from tenants import pool as connection_pool

_UNKNOWN = object()  # the transaction's seal is not known: set it before the next statement


class DatabaseWrapper(base.DatabaseWrapper):
    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.sealed_for: object = None  # the tenant this transaction is sealed for, if any
        self.controlling_transaction = False
        # Open tenants.db.accounts_write() blocks: they end in a `finally`, so they count exactly.
        self.account_write_blocks = 0
        # ORM writes of account models between their pre_ and post_ signals. A write that raises
        # never sends its post_ signal, so these also end with the transaction (in autocommit,
        # that is the statement) and with a savepoint rollback.
        self.account_writes_pending = 0
        self.execute_wrappers.append(_seal_before_execute)
        if self.alias == DEFAULT_DB_ALIAS:
            # Read-your-writes: a request that wrote reads the primary from then on.
            self.execute_wrappers.append(replica.note_write_before_execute)

    @property
    def pool(self):
        pool = super().pool
        # Django passes the pool psycopg's plain check (CONN_HEALTH_CHECKS); ours also tells a
        # restarted server from a stopped one (tenants/pool.py). No constructor argument for
        # it: Django names `check` itself.
        if pool is not None and pool._check is not None:
            pool._check = connection_pool.connection_check
        return pool

    def get_new_connection(self, conn_params):
        # PostgreSQL refused us a moment ago: fail now rather than wait out the pool's timeout.
        if self.pool is not None and settings.DATABASE_DOWN_BREAKER:
            connection_pool.breaker.check(self.pool, conn_params)
        try:
            return super().get_new_connection(conn_params)
        except connection_pool.ServerDown as down:
            message = f"PostgreSQL is not accepting connections: {down}"
            raise psycopg.OperationalError(message) from down

    def account_write_begins(self) -> None:
        self.account_writes_pending += 1

    def account_write_ends(self) -> None:
        self.account_writes_pending = max(0, self.account_writes_pending - 1)

    def account_writes_open(self) -> bool:
        """True while a statement may write staff-account tables (it is sealed for accounts)."""
        return self.account_write_blocks > 0 or self.account_writes_pending > 0

    def _commit(self):
        self.sealed_for = None
        self.account_writes_pending = 0
        return super()._commit()  # type: ignore[misc]  # private in the stubs

    def _rollback(self):
        self.sealed_for = None
        self.account_writes_pending = 0
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
        self.account_writes_pending = 0

    @contextmanager
    def _transaction_control(self) -> Iterator[None]:
        self.controlling_transaction = True
        try:
            yield
        finally:
            self.controlling_transaction = False

    def _close(self):
        self.sealed_for = None
        self.account_writes_pending = 0
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

    def accounts_seal(self, *, sealed: bool) -> None:
        """Seal the open transaction for account writes (beginning it if need be), or clear it.

        Bound parameters on the server, unlike Django's client-side binding: the MAC never
        appears in the query text other sessions read in pg_stat_activity, so while it is set
        only this backend can see it. Never prepared (PgBouncer in transaction mode).
        """
        with psycopg.Cursor(self.connection) as cursor:
            value = ""
            if sealed:
                value = seal.accounts_seal_for(*self._transaction_identity(cursor))
            cursor.execute(
                "SELECT set_config(%s, %s, true)",
                [seal.ACCOUNTS_SEAL_SETTING, value],
                prepare=False,
            )

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
    accounts = connection.account_writes_open()
    if connection.get_autocommit():
        if wanted is None and not accounts:
            return execute(sql, params, many, context)
        with transaction.atomic(using=connection.alias):
            _tenant_seal_ensure(connection, wanted)
            if accounts:  # dies with this one statement's transaction: nothing to clear
                connection.accounts_seal(sealed=True)
            return execute(sql, params, many, context)
    _tenant_seal_ensure(connection, wanted)
    if not accounts:
        return execute(sql, params, many, context)
    connection.accounts_seal(sealed=True)
    try:
        return execute(sql, params, many, context)
    finally:
        # After a failed statement the transaction is aborted, and the rollback that must come
        # (of it, or of a savepoint taken before the seal was set) removes the seal.
        if connection.connection.info.transaction_status == TransactionStatus.INTRANS:
            connection.accounts_seal(sealed=False)


def _tenant_seal_ensure(connection, wanted) -> None:
    if connection.sealed_for is _UNKNOWN or connection.sealed_for != wanted:
        connection.transaction_seal(wanted)
