"""Set up a bucket: existence, versioning, default encryption, policy, lifecycle, CORS.

`bucket_setup` compares each setting with what the server reports and writes only what
differs, so a second run changes nothing. Every step ends as one of:

- applied: written now;
- already: the server already had it;
- refused: the server does not implement it (SeaweedFS answers 501 NotImplemented to lifecycle
  Transitions); the rest is still applied;
- failed: any other error (access denied, a bad key id...); the run goes on and reports it;
- noted: nothing to write here, and why (the DR replication rule without a role to assume).

`dr_bucket_setup` does the same for the disaster-recovery bucket (versioning, encryption) and
writes the primary's replication rule where S3 replication can run (AWS, with a role).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import ClientError
from django.conf import settings

from metis.objectstore import encryption
from metis.objectstore.errors import describe, error_code, error_status, is_unsupported
from metis.objectstore.store import ObjectStore

APPLIED, ALREADY, REFUSED, FAILED = "applied", "already", "refused", "failed"
NOTED = "noted"

TIERING_RULE_ID = "metis-tenants-tiering"
RETENTION_RULE_ID = "metis-tenants-retention"
CORS_RULE_ID = "metis-browser-uploads"
REPLICATION_RULE_ID = "metis-documents-dr"


@dataclass(frozen=True)
class SetupStep:
    name: str
    outcome: str  # APPLIED, ALREADY, REFUSED, FAILED or NOTED
    detail: str = ""

    def __str__(self) -> str:
        return f"{self.name}: {self.outcome}" + (f" ({self.detail})" if self.detail else "")


def bucket_policy(bucket: str) -> dict:
    """The spec's policy: the app's principal may get and put objects under `tenants/`."""
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "MetisAppTenantObjects",
                "Effect": "Allow",
                "Principal": {"AWS": settings.AWS_S3_APP_PRINCIPAL_ARN},
                "Action": ["s3:GetObject", "s3:PutObject"],
                "Resource": f"arn:aws:s3:::{bucket}/tenants/*",
            }
        ],
    }


def tiering_rule() -> dict:
    """Standard → IA → Glacier by age, as the tiering job does; old copies go to Glacier."""
    return {
        "ID": TIERING_RULE_ID,
        "Status": "Enabled",
        "Filter": {"Prefix": "tenants/"},
        "Transitions": [
            {"Days": settings.DOCUMENT_TIER_IA_AFTER_DAYS, "StorageClass": "STANDARD_IA"},
            {"Days": settings.DOCUMENT_TIER_GLACIER_AFTER_DAYS, "StorageClass": "GLACIER"},
        ],
        # A tiering copy leaves the previous (Standard) version behind as noncurrent.
        "NoncurrentVersionTransitions": [{"NoncurrentDays": 30, "StorageClass": "GLACIER"}],
    }


def retention_rule() -> dict:
    """Expire noncurrent versions after the retention period; drop abandoned multipart parts."""
    return {
        "ID": RETENTION_RULE_ID,
        "Status": "Enabled",
        "Filter": {"Prefix": "tenants/"},
        "NoncurrentVersionExpiration": {
            "NoncurrentDays": settings.DOCUMENT_NONCURRENT_VERSION_DAYS
        },
        "AbortIncompleteMultipartUpload": {"DaysAfterInitiation": 2},
    }


def cors_rule() -> dict:
    """Browsers on the tenant pages PUT upload parts straight here (presigned URLs) and read each
    part's ETag, which the multipart completion names: so ETag is exposed, and the signed
    checksum header may be sent. Nothing else: downloads are navigations, not fetches."""
    return {
        "ID": CORS_RULE_ID,
        "AllowedOrigins": list(settings.AWS_S3_CORS_ORIGINS),
        "AllowedMethods": ["PUT"],
        "AllowedHeaders": ["content-type", "x-amz-checksum-sha256"],
        "ExposeHeaders": ["ETag"],
        "MaxAgeSeconds": 3600,
    }


def _rules_match(current: list[dict], wanted: list[dict]) -> bool:
    # Servers add defaults to what they echo back; compare only the keys we send.
    by_id = {rule.get("ID"): rule for rule in current}
    if set(by_id) != {rule["ID"] for rule in wanted}:
        return False
    return all(
        all(by_id[rule["ID"]].get(key) == value for key, value in rule.items()) for rule in wanted
    )


class _Steps:
    """Collects step outcomes and echoes each to `report` as it happens."""

    def __init__(self, report: Callable[[SetupStep], None]) -> None:
        self.done: list[SetupStep] = []
        self._report = report

    def add(self, name: str, outcome: str, detail: str = "") -> SetupStep:
        step = SetupStep(name, outcome, detail)
        self.done.append(step)
        self._report(step)
        return step

    def error(self, name: str, error: ClientError) -> SetupStep:
        return self.add(name, REFUSED if is_unsupported(error) else FAILED, describe(error))


def _ensure_bucket(client, bucket: str, steps: _Steps, *, region: str = "") -> bool:
    try:
        client.head_bucket(Bucket=bucket)
        steps.add("bucket", ALREADY, bucket)
        return True
    except ClientError as error:
        if error_status(error) != 404:
            steps.error("bucket", error)
            return False
    arguments: dict[str, Any] = {"Bucket": bucket}
    region = region or settings.AWS_S3_REGION_NAME
    if region and region != "us-east-1":  # us-east-1 rejects an explicit LocationConstraint
        arguments["CreateBucketConfiguration"] = {"LocationConstraint": region}
    try:
        client.create_bucket(**arguments)
    except ClientError as error:
        if error_code(error) != "BucketAlreadyOwnedByYou":  # a concurrent run made it
            steps.error("bucket", error)
            return False
    steps.add("bucket", APPLIED, f"created {bucket}")
    return True


def _ensure_versioning(client, bucket: str, steps: _Steps) -> None:
    try:
        if client.get_bucket_versioning(Bucket=bucket).get("Status") == "Enabled":
            steps.add("versioning", ALREADY, "Enabled")
            return
        client.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
        steps.add("versioning", APPLIED, "Enabled")
    except ClientError as error:
        steps.error("versioning", error)


def _ensure_encryption(client, bucket: str, steps: _Steps, *, kms_key_id: str = "") -> None:
    wanted = encryption.default_encryption_rule()
    if kms_key_id and wanted["ApplyServerSideEncryptionByDefault"]["SSEAlgorithm"] == "aws:kms":
        wanted["ApplyServerSideEncryptionByDefault"]["KMSMasterKeyID"] = kms_key_id
    algorithm = wanted["ApplyServerSideEncryptionByDefault"]["SSEAlgorithm"]
    try:
        current = client.get_bucket_encryption(Bucket=bucket)
        rules = current["ServerSideEncryptionConfiguration"]["Rules"]
        defaults = [rule.get("ApplyServerSideEncryptionByDefault") for rule in rules]
        if defaults == [wanted["ApplyServerSideEncryptionByDefault"]]:
            steps.add("default encryption", ALREADY, algorithm)
            return
    except ClientError as error:
        if error_code(error) != "ServerSideEncryptionConfigurationNotFoundError":
            steps.error("default encryption", error)
            return
    try:
        client.put_bucket_encryption(
            Bucket=bucket, ServerSideEncryptionConfiguration={"Rules": [wanted]}
        )
        steps.add("default encryption", APPLIED, algorithm)
    except ClientError as error:
        steps.error("default encryption", error)


def _ensure_policy(client, bucket: str, steps: _Steps) -> None:
    wanted = bucket_policy(bucket)
    detail = f"Get/PutObject on tenants/* for {settings.AWS_S3_APP_PRINCIPAL_ARN}"
    try:
        if json.loads(client.get_bucket_policy(Bucket=bucket)["Policy"]) == wanted:
            steps.add("bucket policy", ALREADY, detail)
            return
    except ClientError as error:
        if error_code(error) != "NoSuchBucketPolicy":
            steps.error("bucket policy", error)
            return
    try:
        client.put_bucket_policy(Bucket=bucket, Policy=json.dumps(wanted))
        steps.add("bucket policy", APPLIED, detail)
    except ClientError as error:
        steps.error("bucket policy", error)


def _ensure_lifecycle(client, bucket: str, steps: _Steps) -> None:
    tiering, retention = tiering_rule(), retention_rule()
    tiering_detail = (
        f"STANDARD_IA after {settings.DOCUMENT_TIER_IA_AFTER_DAYS} days, "
        f"GLACIER after {settings.DOCUMENT_TIER_GLACIER_AFTER_DAYS}"
    )
    retention_detail = (
        f"noncurrent versions expire after {settings.DOCUMENT_NONCURRENT_VERSION_DAYS} days"
    )
    try:
        current = client.get_bucket_lifecycle_configuration(Bucket=bucket).get("Rules", [])
    except ClientError as error:
        if error_code(error) != "NoSuchLifecycleConfiguration":
            steps.error("lifecycle", error)
            return
        current = []
    if _rules_match(current, [tiering, retention]):
        steps.add("lifecycle: tier transitions", ALREADY, tiering_detail)
        steps.add("lifecycle: retention", ALREADY, retention_detail)
        return
    try:
        client.put_bucket_lifecycle_configuration(
            Bucket=bucket, LifecycleConfiguration={"Rules": [tiering, retention]}
        )
        steps.add("lifecycle: tier transitions", APPLIED, tiering_detail)
        steps.add("lifecycle: retention", APPLIED, retention_detail)
        return
    except ClientError as error:
        if not is_unsupported(error):
            steps.error("lifecycle", error)
            return
        steps.add(
            "lifecycle: tier transitions",
            REFUSED,
            f"{describe(error)}; the tier_documents job moves documents instead",
        )
    # Without transitions, the retention rule alone (SeaweedFS accepts it).
    if _rules_match(current, [retention]):
        steps.add("lifecycle: retention", ALREADY, retention_detail)
        return
    try:
        client.put_bucket_lifecycle_configuration(
            Bucket=bucket, LifecycleConfiguration={"Rules": [retention]}
        )
        steps.add("lifecycle: retention", APPLIED, retention_detail)
    except ClientError as error:
        steps.error("lifecycle: retention", error)


def _ensure_cors(client, bucket: str, steps: _Steps) -> None:
    wanted = cors_rule()
    detail = f"PUT from {', '.join(wanted['AllowedOrigins'])}, ETag exposed"
    try:
        current = client.get_bucket_cors(Bucket=bucket).get("CORSRules", [])
    except ClientError as error:
        if error_code(error) != "NoSuchCORSConfiguration":
            steps.error("cors", error)
            return
        current = []
    if _rules_match(current, [wanted]):
        steps.add("cors", ALREADY, detail)
        return
    try:
        client.put_bucket_cors(Bucket=bucket, CORSConfiguration={"CORSRules": [wanted]})
        steps.add("cors", APPLIED, detail)
    except ClientError as error:
        steps.error("cors", error)


def bucket_setup(
    *, store: ObjectStore, report: Callable[[SetupStep], None] = lambda step: None
) -> list[SetupStep]:
    """Bring the store's bucket to the configured state; return (and report) every step."""
    client, bucket = store.client, store.bucket
    steps = _Steps(report)
    if not _ensure_bucket(client, bucket, steps):
        return steps.done
    _ensure_versioning(client, bucket, steps)
    _ensure_encryption(client, bucket, steps)
    _ensure_policy(client, bucket, steps)
    _ensure_lifecycle(client, bucket, steps)
    _ensure_cors(client, bucket, steps)
    return steps.done


def replication_configuration(*, dr_bucket: str) -> dict:
    """S3 replication of every new version under `tenants/` to the DR bucket, encrypted as the
    source is (a KMS-encrypted object with the DR region's key). Deletes are not replicated:
    erasure deletes in both buckets itself, naming each version."""
    destination: dict[str, Any] = {"Bucket": f"arn:aws:s3:::{dr_bucket}"}
    rule: dict[str, Any] = {
        "ID": REPLICATION_RULE_ID,
        "Status": "Enabled",
        "Priority": 1,
        "Filter": {"Prefix": "tenants/"},
        "DeleteMarkerReplication": {"Status": "Disabled"},
        "Destination": destination,
    }
    if settings.AWS_S3_SSE == "aws:kms":
        key = settings.DOCUMENTS_DR_SSE_KMS_KEY_ID or settings.AWS_S3_SSE_KMS_KEY_ID
        rule["SourceSelectionCriteria"] = {"SseKmsEncryptedObjects": {"Status": "Enabled"}}
        destination["EncryptionConfiguration"] = {"ReplicaKmsKeyID": key}
    return {"Role": settings.DOCUMENTS_DR_REPLICATION_ROLE_ARN, "Rules": [rule]}


def _ensure_replication(client, bucket: str, dr_bucket: str, steps: _Steps) -> None:
    if not settings.DOCUMENTS_DR_REPLICATION_ROLE_ARN:
        steps.add(
            "replication",
            NOTED,
            "no DOCUMENTS_DR_REPLICATION_ROLE_ARN (S3 replication needs one, AWS only): the "
            "Celery replicator (documents.replicate_*) copies each version",
        )
        return
    wanted = replication_configuration(dr_bucket=dr_bucket)
    detail = f"tenants/ to {dr_bucket} as {wanted['Role']}"
    try:
        current = client.get_bucket_replication(Bucket=bucket)["ReplicationConfiguration"]
        if current.get("Role") == wanted["Role"] and _rules_match(
            current.get("Rules", []), wanted["Rules"]
        ):
            steps.add("replication", ALREADY, detail)
            return
    except ClientError as error:
        if error_code(error) != "ReplicationConfigurationNotFoundError":
            steps.error("replication", error)
            return
    try:
        client.put_bucket_replication(Bucket=bucket, ReplicationConfiguration=wanted)
        steps.add("replication", APPLIED, detail)
    except ClientError as error:
        # SeaweedFS routes PUT ?replication to CreateBucket and answers BucketAlreadyOwnedByYou.
        if is_unsupported(error) or error_code(error) == "BucketAlreadyOwnedByYou":
            steps.add(
                "replication",
                REFUSED,
                f"{describe(error)}; the Celery replicator copies each version instead",
            )
            return
        steps.error("replication", error)


def dr_bucket_setup(
    *,
    store: ObjectStore,
    dr_store: ObjectStore,
    report: Callable[[SetupStep], None] = lambda step: None,
) -> list[SetupStep]:
    """Bring the DR bucket to the configured state (it exists, versioned, encrypted as the
    primary) and write the primary bucket's replication rule; return every step."""
    client, bucket = dr_store.client, dr_store.bucket
    steps = _Steps(report)
    if not _ensure_bucket(client, bucket, steps, region=dr_store.endpoint.region):
        return steps.done
    _ensure_versioning(client, bucket, steps)
    _ensure_encryption(client, bucket, steps, kms_key_id=settings.DOCUMENTS_DR_SSE_KMS_KEY_ID)
    _ensure_replication(store.client, store.bucket, bucket, steps)
    return steps.done
