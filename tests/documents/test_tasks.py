"""Beat schedules the tiering and restore checks; each fans out one task per active tenant."""

from __future__ import annotations

import pytest
from django_celery_beat.models import PeriodicTask

from documents import tasks
from documents.models import RestoreStatus, StorageClass
from metis.celery import app
from tests.documents.stored_documents import (
    enable_versioning,
    put_document,
    reload,
    set_restore,
    storage_class_of,
)
from tests.factories import TenantFactory


@pytest.fixture
def eager():
    # Celery's settings object cannot be monkeypatched (it has no attribute to delete back).
    previous = app.conf.task_always_eager
    app.conf.task_always_eager = True
    yield
    app.conf.task_always_eager = previous


def test_tiering_and_restore_checks_are_scheduled_by_beat(db):
    tiering = PeriodicTask.objects.get(task="documents.tier_all_tenants")
    assert tiering.enabled and tiering.crontab is not None
    assert (tiering.crontab.hour, tiering.crontab.minute) == ("2", "40")
    restores = PeriodicTask.objects.get(task="documents.check_restores")
    assert restores.enabled and (restores.interval.every, restores.interval.period) == (
        15,
        "minutes",
    )


def test_daily_tiering_runs_every_active_tenant_in_batches(
    s3_server, s3_bucket, tenant, other_tenant, settings, eager, django_capture_on_commit_callbacks
):
    settings.DOCUMENT_TIER_BATCH_SIZE = 1  # three tasks for acme's two documents
    client = s3_server.client()
    enable_versioning(client, s3_bucket)
    ours = [put_document(client, s3_bucket, tenant, days_old=100) for _ in range(2)]
    theirs = put_document(client, s3_bucket, other_tenant, days_old=40)
    dormant_tenant = TenantFactory(subdomain="dormant", is_active=False)
    dormant = put_document(client, s3_bucket, dormant_tenant, days_old=100)

    with django_capture_on_commit_callbacks(execute=True):
        assert tasks.tier_all_tenants() == 2

    for document in ours:
        assert reload(document).storage_class == StorageClass.GLACIER
        assert storage_class_of(client, s3_bucket, document.storage_key) == "GLACIER"
    assert reload(theirs).storage_class == StorageClass.STANDARD_IA
    assert reload(dormant).storage_class == StorageClass.STANDARD


def test_restore_check_runs_for_every_active_tenant(
    s3_server, s3_bucket, tenant, other_tenant, eager, django_capture_on_commit_callbacks
):
    client = s3_server.client()
    documents = [
        put_document(client, s3_bucket, t, storage_class=StorageClass.GLACIER)
        for t in (tenant, other_tenant)
    ]
    for document in documents:
        set_restore(document, restore_status=RestoreStatus.REQUESTED)

    with django_capture_on_commit_callbacks(execute=True):
        assert tasks.check_restores() == 2

    assert [reload(d).restore_status for d in documents] == [RestoreStatus.READY] * 2


def test_tier_task_for_one_tenant_leaves_the_other_tenants_documents(
    s3_server, s3_bucket, tenant, other_tenant
):
    client = s3_server.client()
    ours = put_document(client, s3_bucket, tenant, days_old=100)
    theirs = put_document(client, s3_bucket, other_tenant, days_old=100)

    outcomes = tasks.tier_tenant.apply(kwargs={"tenant_id": str(tenant.pk)}).get()

    assert outcomes == {"moved": 1}
    assert reload(ours).storage_class == StorageClass.GLACIER
    assert reload(theirs).storage_class == StorageClass.STANDARD
    assert storage_class_of(client, s3_bucket, theirs.storage_key) == "STANDARD"
