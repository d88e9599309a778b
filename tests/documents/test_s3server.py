"""The SeaweedFS server the documents tests rely on behaves like authenticated, encrypting S3."""

import io

import boto3
import pytest
from botocore.exceptions import ClientError

from documents.storage import document_storage, s3_client


def test_s3_server_rejects_a_wrong_secret(s3_server):
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


def test_configured_storage_writes_encrypted_objects_to_the_test_bucket(s3_bucket):
    storage = document_storage()
    name = storage.save("tenants/probe/reports/probe.txt", io.BytesIO(b"probe"))
    head = s3_client().head_object(Bucket=s3_bucket, Key=name)
    assert head["ServerSideEncryption"] == "AES256"
    assert storage.open(name).read() == b"probe"
