"""The tenant page's "request restore" button (documents.restore_views), through the test client."""

from __future__ import annotations

import pytest
from django.contrib.messages import get_messages
from django.template.loader import render_to_string
from django.test import Client
from django.urls import set_urlconf

from documents.models import RestoreStatus, StorageClass
from tests.conftest import host_of
from tests.documents.stored_documents import enable_versioning, put_document, reload


@pytest.fixture
def s3(s3_server, s3_bucket):
    client = s3_server.client()
    enable_versioning(client, s3_bucket)
    return client


def restore_url(document) -> str:
    return f"/documents/{document.pk}/restore/"


def test_tenant_requests_a_restore_and_is_sent_back_with_the_outcome(
    s3, s3_bucket, tenant, tenant_client
):
    document = put_document(s3, s3_bucket, tenant, storage_class=StorageClass.GLACIER)

    response = tenant_client.post(restore_url(document), {"next": "/?page=2"})

    assert response.status_code == 302
    assert response["Location"] == "/?page=2"
    notes = [str(message) for message in get_messages(response.wsgi_request)]
    assert any("does not restore from Glacier" in note for note in notes)
    assert reload(document).restore_status == RestoreStatus.READY


def test_restore_of_a_document_not_in_glacier_shows_an_error(s3, s3_bucket, tenant, tenant_client):
    document = put_document(s3, s3_bucket, tenant)
    response = tenant_client.post(restore_url(document), {"next": "https://evil.example/"})
    assert response["Location"] == "/"  # an off-site next is ignored
    notes = [str(message) for message in get_messages(response.wsgi_request)]
    assert notes == ["This document is not archived in Glacier: it can be downloaded."]


def test_tenant_cannot_request_restore_of_another_tenants_document(
    s3, s3_bucket, other_tenant, tenant_client
):
    theirs = put_document(s3, s3_bucket, other_tenant, storage_class=StorageClass.GLACIER)
    assert tenant_client.post(restore_url(theirs)).status_code == 404
    assert reload(theirs).restore_status == RestoreStatus.NONE


def test_restore_needs_a_signed_in_user_and_a_post(s3, s3_bucket, tenant, tenant_client):
    document = put_document(s3, s3_bucket, tenant, storage_class=StorageClass.GLACIER)
    assert tenant_client.get(restore_url(document)).status_code == 405
    anonymous = Client(HTTP_HOST=host_of(tenant))
    response = anonymous.post(restore_url(document))
    assert response.status_code == 302 and response["Location"].startswith("/login/")
    assert reload(document).restore_status == RestoreStatus.NONE


def test_restore_button_posts_to_the_restore_view_for_glacier_documents_only(
    s3, s3_bucket, tenant, rf
):
    archived = put_document(s3, s3_bucket, tenant, storage_class=StorageClass.GLACIER)
    current = put_document(s3, s3_bucket, tenant)
    request = rf.get("/documents/?page=3")
    set_urlconf("metis.tenant_urls")
    try:
        html = render_to_string(
            "documents/_restore_button.html", {"document": archived}, request=request
        )
        assert f'action="{restore_url(archived)}"' in html
        assert 'value="/documents/?page=3"' in html
        assert "csrfmiddlewaretoken" in html
        button = render_to_string("documents/_restore_button.html", {"document": current})
        assert "form" not in button
    finally:
        set_urlconf(None)
