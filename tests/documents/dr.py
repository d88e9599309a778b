"""The disaster-recovery bucket for tests: a second SeaweedFS server, its own process, so the
primary can be stopped while the DR copy stays up. Fixtures to import where they are used."""

from __future__ import annotations

import contextlib
import hashlib
import uuid

import pytest

from documents import replication
from documents.models import DocumentVersion
from metis.objectstore.errors import STORE_ERRORS
from tenants import db
from tests.conftest import bucket_delete, point_storage_at
from tests.support.seaweedfs import SeaweedS3


@pytest.fixture(scope="session")
def dr_server():
    """A second SeaweedFS S3 server: the DR region."""
    server = SeaweedS3().start()
    yield server
    server.stop()


def point_dr_at(settings, server, bucket: str) -> None:
    settings.DOCUMENTS_DR_BUCKET = bucket
    settings.DOCUMENTS_DR_S3_ENDPOINT_URL = server.endpoint_url
    settings.DOCUMENTS_DR_ACCESS_KEY_ID = server.access_key
    settings.DOCUMENTS_DR_SECRET_ACCESS_KEY = server.secret_key
    settings.DOCUMENTS_DR_S3_REGION_NAME = "us-east-1"


@pytest.fixture
def dr_bucket(dr_server, settings):
    """A fresh versioned bucket on the DR server, configured as DOCUMENTS_DR_BUCKET."""
    bucket = f"metis-dr-{uuid.uuid4().hex[:12]}"
    client = dr_server.client()
    client.create_bucket(Bucket=bucket)
    client.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    point_dr_at(settings, dr_server, bucket)
    replication._primary_answers.clear()
    yield bucket
    replication._primary_answers.clear()
    with contextlib.suppress(*STORE_ERRORS):
        bucket_delete(client, bucket)


@pytest.fixture
def versioned_primary(s3_server, s3_bucket):
    s3_server.client().put_bucket_versioning(
        Bucket=s3_bucket, VersioningConfiguration={"Status": "Enabled"}
    )
    return s3_bucket


@pytest.fixture
def own_primary(settings):
    """A primary S3 server this test owns (and may stop), with a versioned bucket."""
    server = SeaweedS3().start()
    bucket = "metis-primary"
    client = server.client()
    client.create_bucket(Bucket=bucket)
    client.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    point_storage_at(settings, server, bucket)
    # A stopped server must be noticed at once, not after botocore's retries.
    settings.AWS_S3_CONNECT_TIMEOUT = 1
    settings.AWS_S3_MAX_ATTEMPTS = 1
    yield server
    server.stop()


def dr_versions(server, bucket: str, key: str) -> list[dict]:
    listing = server.client().list_object_versions(Bucket=bucket, Prefix=key)
    return [v for v in listing.get("Versions", []) if v["Key"] == key]


def dr_bytes(server, bucket: str, key: str, version_id: str) -> bytes:
    got = server.client().get_object(Bucket=bucket, Key=key, VersionId=version_id)
    return got["Body"].read()


def versions_of(document) -> list[DocumentVersion]:
    with db.tenant_context(document.tenant_id):
        return list(DocumentVersion.objects.filter(document_id=document.pk).order_by("number"))


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
