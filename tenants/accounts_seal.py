"""Sealed writes to staff-account tables: an injection cannot make itself a superuser.

Injected SQL runs as the runtime role, which may write every table it can read. Tenant rows are
guarded by the tenant seal; the staff accounts are not tenant rows, and one `UPDATE auth_user
SET is_superuser = true, password = ...` plus a two-factor device of the attacker's own would
give an admin session over every tenant. So each table that decides who is staff and how they
sign in has a statement-level trigger that refuses any INSERT, UPDATE, DELETE or TRUNCATE unless
the transaction carries the accounts seal: `app.accounts_seal` = HMAC(key, accounts:pid:start-µs),
checked by `metis_accounts_sealed()` with the tenant seal's key (tenants/seal.py). Only Python
can compute it, and only around a write our code makes (tenants/postgres):

- a save, delete or many-to-many change of these models, from its pre_ to its post_ signal
  (the receivers below), which covers the ORM, the admin, django-otp and Django's commands;
- `tenants.db.accounts_write()`, for bulk writes that send no signal.

The seal is cleared right after each such statement, so a later statement of the same
transaction is refused again. A session logged in as (a member of) the table's owner is let
through: it could drop the trigger anyway, and migrate and the tests' TRUNCATE run as it.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group, Permission
from django.db import connections
from django.db.models import Model, signals
from django_otp.plugins.otp_static.models import StaticDevice, StaticToken
from django_otp.plugins.otp_totp.models import TOTPDevice

from tenants import seal

TRIGGER = "metis_accounts_write_seal"
GUARD_FUNCTION = "public.metis_accounts_write_guard()"
SEALED_FUNCTION = "public.metis_accounts_sealed()"
# pg_trigger.tgtype of a BEFORE ... FOR EACH STATEMENT trigger on INSERT, DELETE, UPDATE and
# TRUNCATE: BEFORE 2 | INSERT 4 | DELETE 8 | UPDATE 16 | TRUNCATE 32 (and no ROW bit, 1).
TRIGGER_TYPE = 2 | 4 | 8 | 16 | 32

FUNCTIONS_SQL = f"""
-- True with a valid accounts seal, false without one; a forged or replayed seal is an error.
CREATE FUNCTION {SEALED_FUNCTION} RETURNS boolean
LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    seal text := current_setting('{seal.ACCOUNTS_SEAL_SETTING}', true);
    pads record;
BEGIN
    IF seal IS NULL OR seal = '' THEN
        RETURN false;
    END IF;
    SELECT k.inner_pad, k.outer_pad INTO pads
    FROM {seal.PRIVATE_SCHEMA}.tenant_seal_key k WHERE k.id = 1;
    IF pads IS NULL OR encode(sha256(pads.outer_pad || sha256(pads.inner_pad || convert_to(
            '{seal.ACCOUNTS_PURPOSE}:' || pg_backend_pid() || ':' || {seal.TRANSACTION_MICROS_SQL},
            'UTF8'))), 'hex') <> seal THEN
        RAISE EXCEPTION 'accounts seal refused'
            USING ERRCODE = 'insufficient_privilege',
                  HINT = 'Staff accounts are written only by the application''s own writes; '
                         'if the application itself gets this, run migrate to install its key.';
    END IF;
    RETURN true;
END
$$;
REVOKE ALL ON FUNCTION {SEALED_FUNCTION} FROM PUBLIC;
GRANT EXECUTE ON FUNCTION {SEALED_FUNCTION} TO PUBLIC;

-- Runs as the caller. session_user, not current_user: SET ROLE cannot change it.
CREATE FUNCTION {GUARD_FUNCTION} RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF pg_has_role(session_user,
                   (SELECT c.relowner FROM pg_class c WHERE c.oid = TG_RELID), 'MEMBER') THEN
        RETURN NULL;  -- the owner could drop this trigger: migrate, the tests' TRUNCATE
    END IF;
    IF {SEALED_FUNCTION} THEN
        RETURN NULL;
    END IF;
    RAISE EXCEPTION '% on % refused: staff accounts are written only in a transaction sealed '
                    'for account writes', TG_OP, TG_TABLE_NAME
        USING ERRCODE = 'insufficient_privilege',
              HINT = 'Write through the ORM (save, delete, many-to-many) or inside '
                     'tenants.db.accounts_write().';
END
$$;
"""


def create_sql(tables: tuple[str, ...]) -> str:
    """Return the SQL that creates both functions and guards `tables` with the trigger."""
    triggers = "".join(
        f"CREATE TRIGGER {TRIGGER} BEFORE INSERT OR UPDATE OR DELETE OR TRUNCATE ON {table} "
        f"FOR EACH STATEMENT EXECUTE FUNCTION {GUARD_FUNCTION};\n"
        for table in tables
    )
    return FUNCTIONS_SQL + triggers


def drop_sql(tables: tuple[str, ...]) -> str:
    """Return the SQL that undoes create_sql(tables)."""
    triggers = "".join(f"DROP TRIGGER IF EXISTS {TRIGGER} ON {table};\n" for table in tables)
    return (
        triggers
        + f"DROP FUNCTION IF EXISTS {GUARD_FUNCTION};\nDROP FUNCTION IF EXISTS {SEALED_FUNCTION};\n"
    )


def _many_to_many_tables() -> list[type[Model]]:
    user = get_user_model()
    return [user.groups.through, user.user_permissions.through, Group.permissions.through]


def _saved_models() -> list[type[Model]]:
    return [get_user_model(), TOTPDevice, StaticDevice, StaticToken]


def protected_tables() -> list[str]:
    """Return the tables that decide who is staff and how they sign in."""
    return [model._meta.db_table for model in _saved_models() + _many_to_many_tables()]


def _write_begins(sender, using: str, **kwargs) -> None:
    connections[using].account_write_begins()  # type: ignore[attr-defined]  # tenants.postgres


def _write_ends(sender, using: str, **kwargs) -> None:
    connections[using].account_write_ends()  # type: ignore[attr-defined]  # tenants.postgres


def _many_to_many_changed(sender, action: str, using: str, **kwargs) -> None:
    (_write_begins if action.startswith("pre_") else _write_ends)(sender, using)


def receivers_connect() -> None:
    """Seal the statements of every save, delete and many-to-many change of account models.

    Deleting a group or a permission (or a content type, whose permissions go with it) deletes
    rows of the many-to-many tables, so those deletes are sealed too. With a receiver, Django
    deletes these models row by row through signals instead of one fast DELETE: fine for them.
    """
    for model in _saved_models():
        signals.pre_save.connect(_write_begins, sender=model)
        signals.post_save.connect(_write_ends, sender=model)
    deleted: list[type[Model]] = [*_saved_models(), Group, Permission]
    for model in deleted:
        signals.pre_delete.connect(_write_begins, sender=model)
        signals.post_delete.connect(_write_ends, sender=model)
    for through in _many_to_many_tables():
        signals.m2m_changed.connect(_many_to_many_changed, sender=through)


@dataclass(frozen=True)
class TableGuard:
    table: str
    guarded: bool  # the trigger exists, is enabled, and runs our guard on every write
    alterable: bool  # the connected role owns the table (or may become its owner)


def table_guards(connection) -> list[TableGuard]:
    """Return, for each protected table, whether it is guarded and the current role may unguard
    it (only the owner may disable or drop a trigger)."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT t.name, "
            "  EXISTS (SELECT FROM pg_trigger g WHERE g.tgrelid = c.oid AND g.tgname = %s "
            "          AND g.tgenabled <> 'D' AND g.tgtype = %s "
            "          AND g.tgfoid = to_regprocedure(%s) "
            "          AND to_regprocedure(%s) IS NOT NULL), "
            "  COALESCE(pg_has_role(current_user, c.relowner, 'MEMBER'), false) "
            "FROM unnest(%s::text[]) WITH ORDINALITY AS t(name, n) "
            "LEFT JOIN pg_class c ON c.oid = to_regclass(t.name) ORDER BY t.n",
            [TRIGGER, TRIGGER_TYPE, GUARD_FUNCTION, SEALED_FUNCTION, protected_tables()],
        )
        return [TableGuard(*row) for row in cursor.fetchall()]
