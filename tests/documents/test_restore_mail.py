"""The "your restore is ready" mail: sent by the restore check's task, once, to the tenant user
who asked for the restore and nobody else, with a link to the document's page."""

from __future__ import annotations

import pytest
from celery.exceptions import Retry
from django.core import mail
from django.utils import timezone

from documents import restore_mail
from documents.models import RestoreStatus, StorageClass
from documents.tasks import check_restores_for_tenant, mail_restore_ready
from metis.celery import app
from tenants import db
from tests.documents.stored_documents import enable_versioning, put_document, reload, set_restore
from tests.factories import TenantUserFactory
from tests.support import ports


@pytest.fixture(autouse=True)
def eager():
    """Run the tasks the check sends here, as a worker would, with their errors raised."""
    previous = app.conf.task_always_eager, app.conf.task_eager_propagates
    app.conf.task_always_eager = app.conf.task_eager_propagates = True
    yield
    app.conf.task_always_eager, app.conf.task_eager_propagates = previous


@pytest.fixture
def requested(s3_server, s3_bucket, tenant, tenant_user, settings):
    """A Glacier document whose restore `tenant_user` asked for, as left by an S3 that accepted
    the request (SeaweedFS has no Glacier: the check proves the object readable instead)."""
    settings.TENANT_SITE_URL = "https://{subdomain}.metis.example"
    enable_versioning(s3_server.client(), s3_bucket)
    document = put_document(
        s3_server.client(), s3_bucket, tenant, storage_class=StorageClass.GLACIER
    )
    set_restore(
        document,
        restore_status=RestoreStatus.REQUESTED,
        restore_requested_at=timezone.now(),
        restore_requested_by=tenant_user,
    )
    return document


@pytest.fixture
def check(django_capture_on_commit_callbacks, tenant):
    """Run the periodic restore check for the tenant; the mail task leaves on its commit."""

    def check(for_tenant=tenant):
        with django_capture_on_commit_callbacks(execute=True):
            return check_restores_for_tenant.apply(kwargs={"tenant_id": str(for_tenant.pk)}).get()

    return check


def test_the_requester_is_mailed_once_the_restore_is_ready(requested, check, tenant, tenant_user):
    TenantUserFactory(tenant=tenant, email="bob@acme.example")  # a colleague: not mailed
    assert check() == {RestoreStatus.READY: 1}

    (sent,) = mail.outbox
    assert sent.to == [tenant_user.email]
    assert "is restored" in sent.subject
    assert f"https://acme.metis.example/documents/{requested.pk}/" in sent.body
    assert reload(requested).restore_notified_at is not None


def test_the_mail_goes_once_when_the_check_and_its_task_run_again(
    requested, check, tenant, django_capture_on_commit_callbacks
):
    check()
    check()
    # A redelivered mail task, too.
    mail_restore_ready.apply(kwargs={"document_id": str(requested.pk), "tenant_id": str(tenant.pk)})
    assert len(mail.outbox) == 1


def test_a_restore_not_ready_yet_mails_nobody(requested, tenant):
    assert (
        mail_restore_ready.apply(
            kwargs={"document_id": str(requested.pk), "tenant_id": str(tenant.pk)}
        ).get()
        is False
    )
    assert mail.outbox == []


def test_another_tenants_check_or_task_never_mails_for_this_document(
    requested, check, other_tenant, other_tenant_user
):
    assert check(other_tenant) == {}
    set_restore(requested, restore_status=RestoreStatus.READY)
    # The task in the other tenant's context cannot see the row (RLS and the scoped query).
    sent = mail_restore_ready.apply(
        kwargs={"document_id": str(requested.pk), "tenant_id": str(other_tenant.pk)}
    ).get()
    assert sent is False
    assert mail.outbox == []
    assert reload(requested).restore_notified_at is None


def test_a_restore_staff_requested_mails_nobody(requested, check):
    set_restore(requested, restore_requested_by=None)
    assert check() == {RestoreStatus.READY: 1}
    assert mail.outbox == []


def test_the_send_service_requires_the_tenant_context(requested):
    with pytest.raises(db.TenantContextError):
        restore_mail.restore_ready_mail_send(document_id=requested.pk)


def test_a_mail_server_away_is_retried_and_the_mail_sent_once_it_is_back(
    requested, check, settings, tenant_user
):
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT = "127.0.0.1", ports.free_port()  # nobody there
    with pytest.raises(Retry, match="ConnectionRefusedError"):
        check()  # the mail task asks Celery to try again later
    document = reload(requested)
    assert document.restore_status == RestoreStatus.READY
    assert document.restore_notified_at is None  # not sent, so not recorded

    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    mail_restore_ready.apply(
        kwargs={"document_id": str(requested.pk), "tenant_id": str(requested.tenant_id)}
    )
    assert [m.to for m in mail.outbox] == [[tenant_user.email]]
    assert reload(requested).restore_notified_at is not None


def test_a_new_restore_request_records_its_requester(s3_server, s3_bucket, tenant, tenant_user):
    from documents import restore

    enable_versioning(s3_server.client(), s3_bucket)
    document = put_document(
        s3_server.client(), s3_bucket, tenant, storage_class=StorageClass.GLACIER
    )
    set_restore(document, restore_notified_at=timezone.now())  # a previous restore's mail
    with db.tenant_context(tenant.pk):
        restore.document_restore_request(document=document, requested_by=tenant_user)
    restored = reload(document)
    assert restored.restore_requested_by_id == tenant_user.pk
    assert restored.restore_notified_at is None
