"""The outbox moved from analytics to metis.events in Django's state only: the table, its rows
and its RLS policies are the same before and after."""

import json
import uuid
from io import StringIO

from django.core.management import call_command
from django.db import connections, transaction
from django.db.migrations.executor import MigrationExecutor

from metis.events.models import EventOutbox, EventOutboxBatch
from tenants import db
from tenants.models import Tenant

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


BEFORE_BATCHES = [("events", "0002_seal_tenant_policies")]


def _claims(owner) -> list[tuple]:
    with owner.cursor() as cursor:
        cursor.execute(
            "SELECT id, status, batch_token FROM analytics_event_outbox ORDER BY occurred_at"
        )
        return cursor.fetchall()


def test_claims_of_the_old_drain_become_batches_under_their_tokens_and_back(committed_db):
    owner = connections["owner"]
    executor = MigrationExecutor(owner)
    latest = executor.loader.graph.leaf_nodes()
    tenant = Tenant.objects.create(name="Before batches", subdomain="before")
    token, ids = uuid.uuid4(), [uuid.uuid4() for _ in range(4)]
    try:
        executor.migrate(BEFORE_BATCHES)
        # A drain of the old kind claimed two rows (perhaps ClickHouse took them) and died.
        with transaction.atomic(using="owner"), owner.cursor() as cursor:
            cursor.execute("ALTER TABLE analytics_event_outbox NO FORCE ROW LEVEL SECURITY")
            for n, (pk, status, claim) in enumerate(
                [
                    (ids[0], "sent", uuid.uuid4()),
                    (ids[1], "pending", token),
                    (ids[2], "pending", token),
                    (ids[3], "pending", None),
                ]
            ):
                cursor.execute(
                    "INSERT INTO analytics_event_outbox (id, tenant_id, event_type, data, "
                    "occurred_at, status, batch_token, attempts, last_error) VALUES "
                    "(%s, %s, 'auth.sign_in', %s, now() - make_interval(mins => %s), %s, %s, "
                    "1, '')",
                    [pk, tenant.pk, json.dumps({"n": n}), 10 - n, status, claim],
                )
            cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
            cursor.execute("ALTER TABLE analytics_event_outbox FORCE ROW LEVEL SECURITY")
        executor.loader.build_graph()
        executor.migrate(latest)
        with db.tenant_context(tenant.pk):  # as the app role, under RLS
            batch = EventOutboxBatch.objects.get()
            left = sorted(EventOutbox.objects.values_list("pk", "status"))
        # The claim is a batch under its token, events in time order, free to be re-sent.
        assert (batch.token, batch.size, batch.claimed_at) == (token, 2, None)
        assert (batch.event_ids, batch.event_data) == (ids[1:3], [{"n": 1}, {"n": 2}])
        assert left == sorted([(ids[0], "sent"), (ids[3], "pending")])

        executor.loader.build_graph()
        executor.migrate(BEFORE_BATCHES)  # and back: the batch is claimed rows again
        with transaction.atomic(using="owner"), owner.cursor() as cursor:
            cursor.execute("ALTER TABLE analytics_event_outbox NO FORCE ROW LEVEL SECURITY")
            claims = _claims(owner)
            cursor.execute("ALTER TABLE analytics_event_outbox FORCE ROW LEVEL SECURITY")
        assert [(pk, claim == token) for pk, _, claim in claims] == [
            (ids[0], False),
            (ids[1], True),
            (ids[2], True),
            (ids[3], False),
        ]
    finally:
        executor = MigrationExecutor(owner)
        executor.migrate(latest)


def test_the_outbox_is_vacuumed_after_a_fixed_number_of_dead_rows(db):
    # The table is nearly empty between drains: a fraction of its live rows would let every
    # drained event's dead row pile up under the claims.
    with connections["default"].cursor() as cursor:
        cursor.execute(
            "SELECT relname, reloptions FROM pg_class "
            "WHERE relname IN ('analytics_event_outbox', 'events_outbox_batch') ORDER BY relname"
        )
        options = dict(cursor.fetchall())
    assert set(options) == {"analytics_event_outbox", "events_outbox_batch"}
    for table, settings in options.items():
        assert "autovacuum_vacuum_scale_factor=0" in settings, table
        assert "autovacuum_vacuum_threshold=5000" in settings, table
