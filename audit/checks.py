"""Start-up checks: the audit log must be append-only for the runtime role, in grants and
triggers both (`audit.E001`, `audit.E002`); the web server, workers and beat refuse to start."""

from __future__ import annotations

from django.core import checks
from django.db import connections
from django.db.utils import OperationalError, ProgrammingError

GUARDS = ("audit_log_chain", "audit_log_no_update", "audit_log_no_delete", "audit_log_no_truncate")

_GRANTS_SQL = """
SELECT privilege FROM unnest(ARRAY['UPDATE', 'DELETE', 'TRUNCATE']) AS privilege
WHERE has_table_privilege(current_user, 'audit_log', privilege)
"""
_TRIGGERS_SQL = """
SELECT tgname FROM pg_trigger
WHERE tgrelid = 'audit_log'::regclass AND tgenabled <> 'D' AND NOT tgisinternal
"""


def audit_posture_errors(connection) -> list[checks.CheckMessage]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT to_regclass('audit_log')")
        if cursor.fetchone()[0] is None:
            return []  # not migrated yet: tenants' checks and migrate say so
        cursor.execute(_GRANTS_SQL)
        granted = [row[0] for row in cursor.fetchall()]
        cursor.execute(_TRIGGERS_SQL)
        missing = sorted(set(GUARDS) - {row[0] for row in cursor.fetchall()})
    errors = []
    if granted:
        errors.append(
            checks.Error(
                f"The runtime role may {', '.join(granted)} the audit log.",
                hint="Run `python manage.py db_roles`, then migrate (audit/schema.py GRANTS_SQL).",
                id="audit.E001",
            )
        )
    if missing:
        errors.append(
            checks.Error(
                f"The audit log's guard triggers are missing or disabled: {', '.join(missing)}.",
                hint="Run migrate; re-enable them as the owner (ALTER TABLE ... ENABLE TRIGGER).",
                id="audit.E002",
            )
        )
    return errors


@checks.register(checks.Tags.database)
def check_audit_log(databases=None, **kwargs) -> list[checks.CheckMessage]:
    if not databases or "default" not in databases:
        return []
    try:
        return audit_posture_errors(connections["default"])
    except (OperationalError, ProgrammingError):
        return []  # tenants.E005 reports a database it cannot reach
