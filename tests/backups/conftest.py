"""A private PostgreSQL cluster per test, archiving into a private TLS SeaweedFS per session.

The backup catalog lives in the normal test database; the cluster being backed up is the
sandbox one, so the live database is never touched.
"""

from __future__ import annotations

import shutil
import tempfile
import uuid
from pathlib import Path

import pytest

from tests.support import backup_sandbox as sandbox


def _tls_s3_with_bucket(prefix: str):
    """A TLS SeaweedFS with one empty bucket named from `prefix`: (server, endpoint, bucket)."""
    server, https_endpoint = sandbox.tls_s3_server()
    bucket = f"{prefix}-{uuid.uuid4().hex[:8]}"
    server.client().create_bucket(Bucket=bucket)
    yield server, https_endpoint, bucket
    sandbox.tls_s3_stop(server)


@pytest.fixture(scope="session")
def tls_s3():
    yield from _tls_s3_with_bucket("metis-backups")


@pytest.fixture
def pg_sandbox(tls_s3, settings):
    """A fresh archiving cluster with its own stanza and repository path; settings point at it."""
    server, https_endpoint, bucket = tls_s3
    work = Path(tempfile.mkdtemp(prefix="metis-backup-work-"))
    work.chmod(0o755)
    box = sandbox.archiving_sandbox(
        settings=settings, server=server, https_endpoint=https_endpoint, bucket=bucket, work=work
    )
    yield box
    box.destroy()
    shutil.rmtree(work, ignore_errors=True)


def repo_keys(box, prefix: str = "") -> list[str]:
    client = box.s3.client()
    base = box.repo.path.lstrip("/") + "/" + prefix
    pages = client.get_paginator("list_objects_v2").paginate(Bucket=box.bucket, Prefix=base)
    return [obj["Key"] for page in pages for obj in page.get("Contents", [])]


@pytest.fixture
def backup_objects(tls_s3, settings):
    """Logical dumps and exports go to the sandbox S3 bucket, encrypted with a test key."""
    import base64
    import os

    server, _https_endpoint, bucket = tls_s3
    settings.BACKUP_REPO_BUCKET = bucket
    settings.AWS_S3_ENDPOINT_URL = server.endpoint_url
    settings.AWS_ACCESS_KEY_ID = server.access_key
    settings.AWS_SECRET_ACCESS_KEY = server.secret_key
    settings.BACKUP_LOGICAL_KEY = base64.urlsafe_b64encode(os.urandom(32)).decode()
    return server, bucket


@pytest.fixture(scope="session")
def tls_s3_region2():
    """The second region: another TLS SeaweedFS (its own endpoint and bucket), once a session."""
    yield from _tls_s3_with_bucket("metis-backups-region2")


def _two_region_sandbox(settings, region1, region2):
    server, https_endpoint, bucket = region1
    server2, https_endpoint2, bucket2 = region2
    work = Path(tempfile.mkdtemp(prefix="metis-backup-work-"))
    work.chmod(0o755)
    box = sandbox.archiving_sandbox(
        settings=settings,
        server=server,
        https_endpoint=https_endpoint,
        bucket=bucket,
        work=work,
        overrides=sandbox.second_region_settings(
            s3=server2, https_endpoint=https_endpoint2, bucket=bucket2
        ),
    )
    return box, work


@pytest.fixture
def pg_sandbox_two_regions(tls_s3, tls_s3_region2, settings):
    """`pg_sandbox` with a second repository (repo2) on the second region's S3 server."""
    box, work = _two_region_sandbox(settings, tls_s3, tls_s3_region2)
    yield box
    box.destroy()
    shutil.rmtree(work, ignore_errors=True)


@pytest.fixture
def region1_s3_owned():
    """A first-region S3 server this test owns, so it may stop it (and start it again)."""
    yield from _tls_s3_with_bucket("metis-backups-region1")


@pytest.fixture
def pg_sandbox_region1_owned(region1_s3_owned, tls_s3_region2, settings):
    """A two-region sandbox whose first region is `region1_s3_owned`."""
    box, work = _two_region_sandbox(settings, region1_s3_owned, tls_s3_region2)
    yield box
    box.destroy()
    shutil.rmtree(work, ignore_errors=True)
