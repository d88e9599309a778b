"""The outbox moved from analytics to metis.events in Django's state only: the table, its rows
and its RLS policies are the same before and after."""

from io import StringIO

from django.core.management import call_command
from django.db import connections, transaction
from django.db.migrations.executor import MigrationExecutor

from metis.events.models import EventOutbox
from tenants import db

BEFORE_MOVE = [("analytics", "0011_schedule_duckdb_jobs"), ("events", None)]


def _policies(connection) -> list[tuple]:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT polname, pg_get_expr(polqual, polrelid) FROM pg_policy "
            "WHERE polrelid = 'analytics_event_outbox'::regclass ORDER BY polname"
        )
        return cursor.fetchall()


def test_outbox_rows_survive_the_move_to_events(committed_db):
    owner = connections["owner"]
    executor = MigrationExecutor(owner)
    latest = executor.loader.graph.leaf_nodes()
    policies = _policies(owner)
    try:
        executor.migrate(BEFORE_MOVE)
        old_apps = executor.loader.project_state(BEFORE_MOVE[:1]).apps
        assert "eventoutbox" in old_apps.all_models["analytics"]
        tenant = (
            old_apps.get_model("tenants", "Tenant")
            .objects.using("owner")
            .create(name="Before the move", subdomain="before")
        )
        OldOutbox = old_apps.get_model("analytics", "EventOutbox")
        # Back then the policies trusted a plain setting (see tenants.rls, sealed=False).
        with transaction.atomic(using="owner"), owner.cursor() as cursor:
            cursor.execute("SELECT set_config('app.current_tenant', %s, true)", [str(tenant.pk)])
            old = OldOutbox.objects.using("owner").create(
                tenant_id=tenant.pk, event_type="auth.sign_in", data={"n": 1}
            )
    finally:
        executor = MigrationExecutor(owner)
        executor.migrate(latest)

    # The move dropped nothing: the same policies guard the table (the seal migration after it
    # recreated them with the same names and expressions).
    assert _policies(owner) == policies
    with db.tenant_context(tenant.pk):  # as the app role, under RLS
        moved = EventOutbox.objects.get(pk=old.pk)
    assert (moved.event_type, moved.data, moved.tenant_id) == ("auth.sign_in", {"n": 1}, tenant.pk)
    assert not EventOutbox.objects.filter(pk=old.pk).exists()  # no context: no rows
    out = StringIO()
    call_command("rls_audit", stdout=out)
    assert "analytics_event_outbox" in out.getvalue()
