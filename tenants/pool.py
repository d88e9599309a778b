"""The runtime database pool: what a returned connection forgets, and when to return one.

Django's psycopg pool hands a connection to one thread at a time. A connection held while a
client trickles a body, a password is hashed or S3 answers is one the others wait for, so code
gives it back (`connection_release`) as soon as its database work is done; and whatever a
connection's last user set for the session (settings, temporary objects, advisory locks) is
discarded on the way back, so it never reaches the next user.
"""

from __future__ import annotations

from django.db import connections

# DISCARD ALL, as PostgreSQL documents it, but keeping cached plans (DISCARD PLANS): a plan
# carries nothing of a user's, and re-planning the seal check after every return cost ~0.5 ms
# per transaction (bench/rls_overhead.py). One simple-protocol round trip.
SESSION_RESET_SQL = (
    "CLOSE ALL; SET SESSION AUTHORIZATION DEFAULT; RESET ALL; DEALLOCATE ALL; UNLISTEN *; "
    "SELECT pg_advisory_unlock_all(); DISCARD SEQUENCES; DISCARD TEMP"
)


def connection_reset(conn) -> None:
    """The pool's reset hook: leave nothing of the last user's session on the connection."""
    conn.autocommit = True  # the reset cannot run inside a transaction block
    conn.execute(SESSION_RESET_SQL)


def connection_release(using: str = "default") -> None:
    """Give the alias's connection back to its pool, unless a transaction still needs it.

    Only pooled aliases: without a pool, closing would mean reconnecting at the next query
    (and behind transaction-mode PgBouncer an idle client connection holds no server anyway).
    """
    connection = connections[using]
    if (
        connection.connection is not None
        and not connection.in_atomic_block
        and connection.settings_dict["OPTIONS"].get("pool")
    ):
        connection.close()
