"""Celery tasks run inside the tenant context their message carries, or not at all."""

import uuid

import pytest
from django.db import connection

from metis.celery import app
from tenants import db as tenant_db
from tenants.models import TenantUser
from tenants.tasks import TenantTask, clear_expired_sessions, enqueue_for_tenant
from tests.factories import TenantFactory, TenantUserFactory


@app.task(base=TenantTask, name="tests.visible_user_emails")
def visible_user_emails() -> list[str]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT email FROM users ORDER BY email")
        raw = [row[0] for row in cursor.fetchall()]
    orm = list(TenantUser.objects.values_list("email", flat=True).order_by("email"))
    assert raw == orm
    return orm


@app.task(base=TenantTask, name="tests.rename_everyone")
def rename_everyone(name: str) -> int:
    return TenantUser.objects.update(name=name)


def test_task_sees_only_its_tenants_rows(tenant_user, other_tenant_user):
    result = visible_user_emails.apply(kwargs={"tenant_id": str(tenant_user.tenant_id)})
    assert result.get() == ["alice@acme.example"]
    result = visible_user_emails.apply(kwargs={"tenant_id": str(other_tenant_user.tenant_id)})
    assert result.get() == ["gina@globex.example"]


def test_task_sent_without_tenant_fails_loudly_and_does_nothing(tenant_user):
    result = rename_everyone.apply(args=["pwned"])
    with pytest.raises(tenant_db.TenantContextError, match="without tenant_id"):
        result.get()
    with tenant_db.tenant_context(tenant_user.tenant_id):
        assert TenantUser.objects.get().name == "Alice Acme"


def test_task_for_unknown_or_inactive_tenant_fails(tenant_user):
    tenant = tenant_user.tenant
    tenant.is_active = False
    tenant.save()
    with pytest.raises(tenant_db.TenantContextError, match="no active tenant"):
        rename_everyone.apply(args=["x"], kwargs={"tenant_id": str(tenant.pk)}).get()
    with pytest.raises(tenant_db.TenantContextError):
        rename_everyone.apply(args=["x"], kwargs={"tenant_id": "not-a-uuid"}).get()


def test_task_writes_stay_in_its_tenant(tenant_user, other_tenant_user):
    assert (
        rename_everyone.apply(
            args=["Renamed"], kwargs={"tenant_id": str(tenant_user.tenant_id)}
        ).get()
        == 1
    )
    with tenant_db.tenant_context(other_tenant_user.tenant_id):
        assert TenantUser.objects.get().name == "Gina Globex"


@pytest.fixture
def celery_worker_queue(committed_db, settings):
    """A real worker thread consuming a private queue on the real broker (Redis)."""
    if not settings.REDIS_URL:
        pytest.skip("needs a real Redis broker (REDIS_URL)")
    from celery.contrib.testing.worker import start_worker

    queue = f"test-{uuid.uuid4().hex}"
    with start_worker(
        app, pool="solo", queues=[queue], perform_ping_check=False, shutdown_timeout=10
    ):
        yield queue


@pytest.mark.redis
def test_task_through_the_broker_sees_only_its_tenants_rows(celery_worker_queue):
    acme = TenantFactory(subdomain="acme")
    globex = TenantFactory(subdomain="globex")
    TenantUserFactory(tenant=acme, email="alice@acme.example")
    TenantUserFactory(tenant=globex, email="gina@globex.example")
    sent = {
        tenant.subdomain: visible_user_emails.apply_async(
            kwargs={"tenant_id": str(tenant.pk)}, queue=celery_worker_queue
        )
        for tenant in (acme, globex, acme, globex)
    }
    assert sent["acme"].get(timeout=20) == ["alice@acme.example"]
    assert sent["globex"].get(timeout=20) == ["gina@globex.example"]
    unscoped = visible_user_emails.apply_async(queue=celery_worker_queue)
    with pytest.raises(tenant_db.TenantContextError):
        unscoped.get(timeout=20)


def test_enqueue_for_tenant_sends_on_commit_only(tenant, django_capture_on_commit_callbacks):
    from unittest import mock

    with (
        mock.patch.object(visible_user_emails, "apply_async") as apply_async,
        django_capture_on_commit_callbacks(execute=True) as callbacks,
    ):
        enqueue_for_tenant(visible_user_emails, tenant)
        assert not apply_async.called  # nothing leaves before the commit
    assert len(callbacks) == 1
    apply_async.assert_called_once_with(args=(), kwargs={"tenant_id": str(tenant.pk)})


def test_sessions_are_cleared_daily_by_beat(db):
    from django_celery_beat.models import PeriodicTask

    task = PeriodicTask.objects.get(task="tenants.clear_expired_sessions")
    assert task.enabled and task.crontab.hour == "3"
    clear_expired_sessions.apply().get()
