"""The tenant seal: a MAC that proves to PostgreSQL which tenant a transaction serves.

A setting alone cannot be trusted: any SQL the runtime role runs may call `set_config`. So the
application seals each transaction with HMAC-SHA256(key, tenant | backend pid | transaction
start in microseconds) and sets `app.tenant_seal` to `<tenant>.<mac>`. The policies call
`metis_sealed_tenant()`, a SECURITY DEFINER function owned by the owner role, which recomputes
the MAC with the key in `metis_private.tenant_seal_key` (a schema the runtime role cannot even
look into) and returns the tenant only if it matches. A seal read elsewhere (pg_stat_activity,
a log) names another backend or another transaction, so it cannot be replayed.

The key never reaches the runtime role: the owner installs it at every `migrate` (post_migrate),
derived from TENANT_SEAL_KEY. pgserver has no pgcrypto, so the HMAC is built from core
`sha256()` with the key's inner and outer pads stored precomputed (RFC 2104).
"""

from __future__ import annotations

import hashlib
import hmac
import uuid

from django.conf import settings

SEAL_SETTING = "app.tenant_seal"
# The accounts seal (tenants/accounts_seal.py): a MAC over `accounts:<pid>:<start-µs>`, set
# around each statement that may write staff-account tables.
ACCOUNTS_SEAL_SETTING = "app.accounts_seal"
ACCOUNTS_PURPOSE = "accounts"
PRIVATE_SCHEMA = "metis_private"
# A NOLOGIN role the staff read connection's role belongs to; the only path to every tenant.
ALL_TENANTS_READER = "metis_read_all_tenants"
_BLOCK = 64  # SHA-256 block size: HMAC pads the key to it

# The transaction start, as an integer that reads the same whatever DateStyle or TimeZone.
TRANSACTION_MICROS_SQL = "(extract(epoch FROM transaction_timestamp()) * 1000000)::bigint"

CREATE_SQL = f"""
CREATE SCHEMA IF NOT EXISTS {PRIVATE_SCHEMA};
REVOKE ALL ON SCHEMA {PRIVATE_SCHEMA} FROM PUBLIC;
CREATE TABLE {PRIVATE_SCHEMA}.tenant_seal_key (
    id integer PRIMARY KEY CHECK (id = 1),
    inner_pad bytea NOT NULL CHECK (length(inner_pad) = {_BLOCK}),
    outer_pad bytea NOT NULL CHECK (length(outer_pad) = {_BLOCK})
);
REVOKE ALL ON {PRIVATE_SCHEMA}.tenant_seal_key FROM PUBLIC;

-- Returns the tenant a valid seal names, NULL without a seal, and refuses a forged one.
-- STABLE, and called as a scalar subquery by the policies: once per statement (an InitPlan).
CREATE FUNCTION public.metis_sealed_tenant() RETURNS uuid
LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    seal text := current_setting('{SEAL_SETTING}', true);
    tenant text;
    pads record;
BEGIN
    IF seal IS NULL OR seal = '' THEN
        RETURN NULL;
    END IF;
    tenant := split_part(seal, '.', 1);
    SELECT k.inner_pad, k.outer_pad INTO pads
    FROM {PRIVATE_SCHEMA}.tenant_seal_key k WHERE k.id = 1;
    IF pads IS NULL OR encode(sha256(pads.outer_pad || sha256(pads.inner_pad || convert_to(
            tenant || ':' || pg_backend_pid() || ':' || {TRANSACTION_MICROS_SQL}, 'UTF8'))),
            'hex') <> split_part(seal, '.', 2) THEN
        RAISE EXCEPTION 'tenant seal refused'
            USING ERRCODE = 'insufficient_privilege',
                  HINT = 'Tenant rows are reached only through tenants.db.tenant_context; '
                         'if the application itself gets this, run migrate to install its key.';
    END IF;
    RETURN tenant::uuid;
END
$$;
REVOKE ALL ON FUNCTION public.metis_sealed_tenant() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION public.metis_sealed_tenant() TO PUBLIC;
"""

DROP_SQL = f"""
DROP FUNCTION IF EXISTS public.metis_sealed_tenant();
DROP SCHEMA IF EXISTS {PRIVATE_SCHEMA} CASCADE;
"""


def seal_key() -> bytes:
    """Return the seal key: TENANT_SEAL_KEY, or one derived from SECRET_KEY."""
    configured = getattr(settings, "TENANT_SEAL_KEY", "")
    secret = configured or f"metis.tenant-seal:{settings.SECRET_KEY}"
    return hashlib.sha256(secret.encode()).digest()


def _pads(key: bytes) -> tuple[bytes, bytes]:
    padded = key.ljust(_BLOCK, b"\0")
    return bytes(b ^ 0x36 for b in padded), bytes(b ^ 0x5C for b in padded)


def seal_for(tenant_id: uuid.UUID, backend_pid: int, transaction_micros: int) -> str:
    """Return the `app.tenant_seal` value for this tenant, backend and transaction."""
    message = f"{tenant_id}:{backend_pid}:{transaction_micros}".encode()
    return f"{tenant_id}.{hmac.new(seal_key(), message, hashlib.sha256).hexdigest()}"


def accounts_seal_for(backend_pid: int, transaction_micros: int) -> str:
    """Return the `app.accounts_seal` value for this backend and transaction.

    The same key as the tenant seal, another message: a tenant seal's message starts with a
    UUID, this one with `accounts`, so neither MAC passes for the other.
    """
    message = f"{ACCOUNTS_PURPOSE}:{backend_pid}:{transaction_micros}".encode()
    return hmac.new(seal_key(), message, hashlib.sha256).hexdigest()


def seal_key_install(connection) -> None:
    """Store the current key's pads (as the owner: the runtime role cannot write or read it)."""
    inner, outer = _pads(seal_key())
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {PRIVATE_SCHEMA}.tenant_seal_key (id, inner_pad, outer_pad) "
            "VALUES (1, %s, %s) ON CONFLICT (id) DO UPDATE "
            "SET inner_pad = EXCLUDED.inner_pad, outer_pad = EXCLUDED.outer_pad",
            [inner, outer],
        )
