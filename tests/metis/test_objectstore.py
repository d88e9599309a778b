"""The object-storage room against a real S3 server (SeaweedFS with auth on)."""

import io
import re
import threading
import time
import urllib.request
from pathlib import Path

import boto3
import pytest
from botocore.exceptions import ClientError
from django.core.exceptions import ImproperlyConfigured
from django.core.files.storage import default_storage

from metis.objectstore import clients, prefixes, store
from metis.objectstore.errors import StorageUnavailable


def test_s3_server_rejects_a_wrong_secret(s3_server):
    # Built here on purpose: the room would never hold a wrong secret.
    intruder = boto3.client(
        "s3",
        endpoint_url=s3_server.endpoint_url,
        aws_access_key_id=s3_server.access_key,
        aws_secret_access_key="not-the-secret",
        region_name="us-east-1",
    )
    with pytest.raises(ClientError) as error:
        intruder.list_buckets()
    assert error.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403


def test_one_client_per_endpoint_shared_by_threads(s3_bucket):
    seen = []
    threads = [
        threading.Thread(target=lambda: seen.append(store.documents_store().client))
        for _ in range(8)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len({id(client) for client in seen}) == 1
    other = clients.Endpoint(
        url="http://127.0.0.1:9", region="us-east-1", access_key="a", secret_key="b"
    )
    assert clients.client_for(other) is not seen[0]


def test_writes_are_encrypted_versioned_and_purged_with_every_version(s3_bucket, s3_server):
    documents = store.documents_store()
    s3_server.client().put_bucket_versioning(
        Bucket=s3_bucket, VersioningConfiguration={"Status": "Enabled"}
    )
    first = documents.put_bytes(key="tenants/x/a.txt", data=b"one", content_type="text/plain")
    second = documents.put_fileobj(
        key="tenants/x/a.txt", file=io.BytesIO(b"two"), content_type="text/plain"
    )
    assert first and second and first != second
    head = documents.head("tenants/x/a.txt")
    assert head["ServerSideEncryption"] == "AES256"
    assert documents.read_bytes("tenants/x/a.txt") == b"two"
    documents.purge("tenants/x/a.txt")
    listing = s3_server.client().list_object_versions(Bucket=s3_bucket)
    assert listing.get("Versions", []) == [] and listing.get("DeleteMarkers", []) == []
    assert documents.read_bytes("tenants/x/a.txt") is None


def test_purge_prefixes_removes_every_version_and_marker_of_many_folders_and_no_other(
    s3_bucket, s3_server
):
    documents = store.documents_store()
    s3_server.client().put_bucket_versioning(
        Bucket=s3_bucket, VersioningConfiguration={"Status": "Enabled"}
    )
    folders = [f"tenants/x/documents/{n}/" for n in range(12)]
    for folder in [*folders, "tenants/x/documents/kept/"]:
        for version in range(2):
            documents.put_bytes(key=f"{folder}v.pdf", data=b"%d" % version, content_type="x/y")
    documents.client.delete_object(Bucket=s3_bucket, Key=f"{folders[0]}v.pdf")  # a marker

    assert len(documents.version_entries_many(folders)) == 12 * 2 + 1
    assert documents.purge_prefixes(folders) == (24, 1)
    assert documents.version_entries_many(folders) == []
    assert len(list(documents.version_entries("tenants/x/documents/kept/"))) == 2
    with pytest.raises(ValueError, match="ending in '/'"):
        documents.purge_prefixes(["tenants/x/documents/kept"])


def test_presigned_url_serves_the_pinned_version_with_its_filename(s3_bucket, s3_server):
    documents = store.documents_store()
    s3_server.client().put_bucket_versioning(
        Bucket=s3_bucket, VersioningConfiguration={"Status": "Enabled"}
    )
    old = documents.put_bytes(key="tenants/x/b.pdf", data=b"old", content_type="application/pdf")
    documents.put_bytes(key="tenants/x/b.pdf", data=b"new", content_type="application/pdf")
    url = documents.presigned_get_url(key="tenants/x/b.pdf", version_id=old, filename="Ä b.pdf")
    assert url.startswith(s3_server.endpoint_url)
    with urllib.request.urlopen(url) as response:
        assert response.read() == b"old"
        assert "filename*=UTF-8''%C3%84%20b.pdf" in response.headers["Content-Disposition"]


def test_presigned_origin_is_where_presigned_urls_point(s3_bucket, s3_server):
    documents = store.documents_store()
    url = documents.presigned_get_url(key="tenants/x/b.pdf")
    assert url.startswith(documents.presigned_origin() + "/")
    assert documents.presigned_origin() == s3_server.endpoint_url.rstrip("/")


@pytest.mark.parametrize(
    ("endpoint", "region", "style", "origin"),
    [
        ("", "eu-west-1", "virtual", "https://metis-docs.s3.eu-west-1.amazonaws.com"),
        ("", "eu-west-1", "path", "https://s3.eu-west-1.amazonaws.com"),
        ("", "us-east-1", "virtual", "https://metis-docs.s3.amazonaws.com"),
        (
            "https://s3.example.com:9000",
            "us-east-1",
            "virtual",
            "https://metis-docs.s3.example.com:9000",
        ),
        ("http://127.0.0.1:8333", "us-east-1", "virtual", "http://127.0.0.1:8333"),
    ],
)
def test_presigned_origin_follows_boto3s_host_rules(settings, endpoint, region, style, origin):
    # Signing is local: no request leaves the machine.
    settings.AWS_STORAGE_BUCKET_NAME = "metis-docs"
    settings.AWS_S3_ENDPOINT_URL = endpoint
    settings.AWS_S3_REGION_NAME = region
    settings.AWS_S3_ADDRESSING_STYLE = style
    settings.AWS_ACCESS_KEY_ID, settings.AWS_SECRET_ACCESS_KEY = "AKIDEXAMPLE", "secret"
    assert store.documents_store().presigned_origin() == origin


def test_a_failed_write_is_storage_unavailable_and_leaves_nothing(s3_bucket, settings):
    settings.AWS_SECRET_ACCESS_KEY = "not-the-secret"
    with pytest.raises(StorageUnavailable):
        store.documents_store().put_bytes(key="tenants/x/c", data=b"x", content_type="text/plain")


def test_no_bucket_configured_is_a_clear_error(settings):
    settings.AWS_STORAGE_BUCKET_NAME = ""
    with pytest.raises(ImproperlyConfigured, match="AWS_STORAGE_BUCKET_NAME"):
        store.documents_store()


def test_backups_use_their_own_bucket_setting(s3_bucket, settings):
    settings.BACKUP_REPO_BUCKET = "metis-backups"
    assert store.backups_store().bucket == "metis-backups"
    assert store.documents_store().bucket == s3_bucket
    assert store.backups_store().client is store.documents_store().client  # same endpoint


def test_django_default_storage_is_the_documents_bucket_encrypted(s3_bucket):
    name = default_storage.save("tenants/probe/reports/probe.txt", io.BytesIO(b"probe"))
    head = store.documents_store().head(name)
    assert head["ServerSideEncryption"] == "AES256"
    assert default_storage.open(name).read() == b"probe"


def test_tenant_prefix_check_refuses_other_tenants_and_dot_dot():
    tenant = "6f1c1c64-5a43-4c38-9a4c-3d0f5d0d0a01"
    other = "0b7e7d1e-3b0a-4a57-9b38-6a1f9e0c2b02"
    assert prefixes.key_belongs_to_tenant(f"tenants/{tenant}/documents/pan/x.pdf", tenant)
    assert not prefixes.key_belongs_to_tenant(f"tenants/{other}/documents/pan/x.pdf", tenant)
    assert not prefixes.key_belongs_to_tenant(f"tenants/{tenant}/../{other}/x.pdf", tenant)


def _app_sources():
    root = Path(__file__).resolve().parents[2]
    for package in ("metis", "tenants", "documents", "analytics", "backups", "scripts"):
        for path in sorted((root / package).rglob("*.py")):
            if "migrations" not in path.parts:
                yield path.relative_to(root).as_posix(), path.read_text()


def test_only_the_room_builds_s3_clients():
    builders = re.compile(r"boto3\.(client|resource|session)\b|botocore\.session|\bSession\(\)")
    building = [name for name, text in _app_sources() if builders.search(text)]
    assert building == ["metis/objectstore/clients.py"]


def test_nothing_outside_the_room_branches_on_the_storage_backend():
    branches = re.compile(r"\bis_s3\b|FileSystemStorage|AWS_STORAGE_BUCKET_NAME")
    branching = [
        name
        for name, text in _app_sources()
        if branches.search(text) and not name.startswith("metis/objectstore/")
    ]
    # settings.py declares the setting; scripts/local_services.py writes it for make run; the
    # deploy check (metis/checks.py) refuses production without it.
    assert branching == ["metis/checks.py", "metis/settings.py", "scripts/local_services.py"]


def test_get_file_copies_an_object_to_disk_and_a_missing_one_is_unavailable(s3_bucket, tmp_path):
    documents = store.documents_store()
    documents.put_bytes(key="system/x.bin", data=b"\x00parquet\xff", content_type="x/y")
    documents.get_file(key="system/x.bin", path=str(tmp_path / "x.bin"))
    assert (tmp_path / "x.bin").read_bytes() == b"\x00parquet\xff"
    with pytest.raises(StorageUnavailable):
        documents.get_file(key="system/missing.bin", path=str(tmp_path / "missing.bin"))


# --- Timeouts: a down S3 server is a 503 in seconds, not botocore's minutes ------------------


@pytest.fixture
def stopped_s3(tmp_path, settings):
    """A private SeaweedFS with a bucket, pointed at, then stopped: its port refuses."""
    from tests.conftest import point_storage_at
    from tests.support.seaweedfs import SeaweedS3

    server = SeaweedS3(data_dir=tmp_path / "s3").start()
    server.client().create_bucket(Bucket="stopped")
    point_storage_at(settings, server, "stopped")
    server.stop()
    return server


@pytest.fixture
def hung_s3(settings):
    """An S3 endpoint whose connects never complete: a listener whose accept queue is full, so
    the kernel drops each new SYN (a server that hangs, not one that refuses)."""
    import socket

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    host, port = listener.getsockname()
    queued = []
    while len(queued) < 8:  # fill the queue (backlog 0 holds one); the next connect hangs
        try:
            queued.append(socket.create_connection((host, port), timeout=0.5))
        except TimeoutError:
            break
    settings.AWS_S3_ENDPOINT_URL = f"http://{host}:{port}"
    settings.AWS_STORAGE_BUCKET_NAME = "hung"
    settings.AWS_ACCESS_KEY_ID, settings.AWS_SECRET_ACCESS_KEY = "hung", "hung-secret"
    settings.AWS_S3_CONNECT_TIMEOUT = 0.5
    yield
    for sock in [*queued, listener]:
        sock.close()


def test_the_client_has_short_timeouts_and_standard_retries(s3_bucket):
    config = store.documents_store().client.meta.config

    assert (config.connect_timeout, config.read_timeout) == (3, 30)
    assert config.retries == {"mode": "standard", "total_max_attempts": 3}


def test_a_stopped_s3_server_is_a_503_within_seconds(stopped_s3, tenant_client):
    from tests.documents.conftest import pdf_bytes, uploaded

    started = time.monotonic()
    response = tenant_client.post(
        "/documents/upload/",
        {"document_type": "bank-statement", "file": uploaded(pdf_bytes())},
        HTTP_ACCEPT="application/json",
    )
    took = time.monotonic() - started

    assert response.status_code == 503, response.content
    assert "The document store is not reachable right now" in response.content.decode()
    assert took < 5  # botocore's defaults: up to five attempts with a 60 s connect timeout


def test_an_s3_server_that_never_accepts_gives_up_after_the_connect_timeout(hung_s3):
    from botocore.exceptions import ConnectTimeoutError

    from metis import unavailable

    started = time.monotonic()
    with pytest.raises(ConnectTimeoutError) as error:
        store.documents_store().head("tenants/x/a.txt")
    took = time.monotonic() - started

    # Three attempts of 0.5 s with the standard mode's backoff (at most 1 + 2 s) between them.
    assert 1.4 < took < 6
    assert unavailable.outage_of(error.value).service == "s3"
