"""storage_setup brings a real (SeaweedFS) bucket to the configured state and is safe to rerun."""

from __future__ import annotations

import contextlib
import http.client
import io
import json
import re
import uuid

import pytest
from botocore.exceptions import ClientError
from django.core.management import CommandError, call_command

from metis.objectstore import bucket, encryption
from tests.conftest import bucket_delete


@pytest.fixture
def missing_bucket(s3_bucket, s3_server, settings):
    """Storage configured for a bucket that does not exist yet."""
    name = f"metis-setup-{uuid.uuid4().hex[:12]}"
    settings.AWS_STORAGE_BUCKET_NAME = name
    yield name
    with contextlib.suppress(ClientError):
        bucket_delete(s3_server.client(), name)


def storage_setup() -> list[str]:
    out = io.StringIO()
    call_command("storage_setup", stdout=out, no_color=True)
    return [line.strip() for line in out.getvalue().splitlines()]


_STEP = re.compile(r"^(?P<name>.+?): (?P<outcome>applied|already|refused|failed)\b")


def outcomes(lines: list[str]) -> dict[str, str]:
    """Map each step to its outcome, from lines like `versioning: applied (Enabled)`."""
    matches = (_STEP.match(line) for line in lines)
    return {match["name"]: match["outcome"] for match in matches if match}


def test_storage_setup_applies_everything_and_reports_the_lifecycle_refusal(
    s3_server, missing_bucket, settings
):
    settings.AWS_S3_APP_PRINCIPAL_ARN = "arn:aws:iam::123456789012:role/MetisAppRole"
    lines = storage_setup()

    assert outcomes(lines) == {
        "bucket": "applied",
        "versioning": "applied",
        "default encryption": "applied",
        "bucket policy": "applied",
        "lifecycle: tier transitions": "refused",
        "lifecycle: retention": "applied",
        "cors": "applied",
    }
    refusal = next(line for line in lines if line.startswith("lifecycle: tier transitions"))
    assert "501 NotImplemented" in refusal
    assert any(line.startswith("the server refused: lifecycle: tier transitions") for line in lines)

    client = s3_server.client()
    assert client.get_bucket_versioning(Bucket=missing_bucket)["Status"] == "Enabled"
    rules = client.get_bucket_encryption(Bucket=missing_bucket)[
        "ServerSideEncryptionConfiguration"
    ]["Rules"]
    assert rules[0]["ApplyServerSideEncryptionByDefault"] == {"SSEAlgorithm": "AES256"}
    policy = json.loads(client.get_bucket_policy(Bucket=missing_bucket)["Policy"])
    assert policy["Statement"] == [
        {
            "Sid": "MetisAppTenantObjects",
            "Effect": "Allow",
            "Principal": {"AWS": "arn:aws:iam::123456789012:role/MetisAppRole"},
            "Action": ["s3:GetObject", "s3:PutObject"],
            "Resource": f"arn:aws:s3:::{missing_bucket}/tenants/*",
        }
    ]
    lifecycle = client.get_bucket_lifecycle_configuration(Bucket=missing_bucket)["Rules"]
    assert [rule["ID"] for rule in lifecycle] == [bucket.RETENTION_RULE_ID]
    assert lifecycle[0]["NoncurrentVersionExpiration"] == {"NoncurrentDays": 1825}


def test_bucket_default_encryption_encrypts_an_object_put_without_asking(s3_server, missing_bucket):
    storage_setup()
    client = s3_server.client()
    client.put_object(Bucket=missing_bucket, Key="tenants/x/plain.txt", Body=b"no SSE header")
    head = client.head_object(Bucket=missing_bucket, Key="tenants/x/plain.txt")
    assert head["ServerSideEncryption"] == "AES256"


def test_storage_setup_twice_reports_everything_already_applied(s3_server, missing_bucket):
    storage_setup()
    second = storage_setup()

    assert outcomes(second) == {
        "bucket": "already",
        "versioning": "already",
        "default encryption": "already",
        "bucket policy": "already",
        "lifecycle: tier transitions": "refused",  # asked again, refused again, nothing lost
        "lifecycle: retention": "already",
        "cors": "already",
    }


def test_storage_setup_rewrites_only_what_the_settings_changed(s3_server, missing_bucket, settings):
    storage_setup()
    settings.DOCUMENT_NONCURRENT_VERSION_DAYS = 3650
    settings.AWS_S3_APP_PRINCIPAL_ARN = "arn:aws:iam::123456789012:role/OtherRole"

    steps = outcomes(storage_setup())

    assert steps["lifecycle: retention"] == "applied"
    assert steps["bucket policy"] == "applied"
    assert steps["versioning"] == steps["default encryption"] == "already"
    client = s3_server.client()
    rule = client.get_bucket_lifecycle_configuration(Bucket=missing_bucket)["Rules"][0]
    assert rule["NoncurrentVersionExpiration"] == {"NoncurrentDays": 3650}


def preflight(s3_server, bucket_name: str, origin: str) -> dict[str, str]:
    """What the S3 server answers a browser's CORS preflight for a part PUT from `origin`."""
    connection = http.client.HTTPConnection("127.0.0.1", s3_server.ports["s3.port"], timeout=10)
    connection.request(
        "OPTIONS",
        f"/{bucket_name}/tenants/x/part?uploadId=u&partNumber=1",
        headers={
            "Origin": origin,
            "Access-Control-Request-Method": "PUT",
            "Access-Control-Request-Headers": "x-amz-checksum-sha256",
        },
    )
    response = connection.getresponse()
    response.read()
    connection.close()
    return {"status": str(response.status), **{k.lower(): v for k, v in response.headers.items()}}


def test_storage_setup_lets_tenant_pages_put_parts_and_read_their_etag(
    s3_server, missing_bucket, settings
):
    settings.AWS_S3_CORS_ORIGINS = ["https://*.metis.example"]
    storage_setup()

    allowed = preflight(s3_server, missing_bucket, "https://acme.metis.example")
    assert allowed["status"] == "200"
    assert allowed["access-control-allow-origin"] == "https://acme.metis.example"
    assert "ETag" in allowed["access-control-expose-headers"]
    assert "x-amz-checksum-sha256" in allowed["access-control-allow-headers"].lower()
    foreign = preflight(s3_server, missing_bucket, "https://evil.example")
    assert "access-control-allow-origin" not in foreign


def test_storage_setup_rewrites_the_cors_rule_when_the_origins_change(
    s3_server, missing_bucket, settings
):
    settings.AWS_S3_CORS_ORIGINS = ["https://*.metis.example"]
    storage_setup()
    settings.AWS_S3_CORS_ORIGINS = ["https://*.metis.example", "https://*.metis.test"]

    assert outcomes(storage_setup())["cors"] == "applied"
    assert outcomes(storage_setup())["cors"] == "already"
    rules = s3_server.client().get_bucket_cors(Bucket=missing_bucket)["CORSRules"]
    assert rules[0]["AllowedOrigins"] == ["https://*.metis.example", "https://*.metis.test"]


def test_storage_setup_fails_loudly_when_the_server_denies_access(
    s3_server, missing_bucket, settings
):
    settings.AWS_SECRET_ACCESS_KEY = "wrong"
    out = io.StringIO()
    with pytest.raises(CommandError, match="failed at: bucket"):
        call_command("storage_setup", stdout=out, no_color=True)
    assert "bucket: failed (403" in out.getvalue()
    with pytest.raises(ClientError):
        s3_server.client().head_bucket(Bucket=missing_bucket)  # nothing was created


def test_lifecycle_rules_use_the_tiering_settings(settings):
    settings.DOCUMENT_TIER_IA_AFTER_DAYS = 45
    settings.DOCUMENT_TIER_GLACIER_AFTER_DAYS = 180
    assert bucket.tiering_rule()["Transitions"] == [
        {"Days": 45, "StorageClass": "STANDARD_IA"},
        {"Days": 180, "StorageClass": "GLACIER"},
    ]


def test_kms_encryption_names_the_key(settings):
    # SeaweedFS has no KMS, so this configuration is checked as data only.
    settings.AWS_S3_SSE = "aws:kms"
    settings.AWS_S3_SSE_KMS_KEY_ID = "arn:aws:kms:ap-south-1:123456789012:key/abc"
    assert encryption.default_encryption_rule() == {
        "ApplyServerSideEncryptionByDefault": {
            "SSEAlgorithm": "aws:kms",
            "KMSMasterKeyID": "arn:aws:kms:ap-south-1:123456789012:key/abc",
        }
    }
    assert encryption.sse_parameters() == {
        "ServerSideEncryption": "aws:kms",
        "SSEKMSKeyId": "arn:aws:kms:ap-south-1:123456789012:key/abc",
    }
