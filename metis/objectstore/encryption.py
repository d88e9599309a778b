"""Server-side encryption, derived once from the settings for every write and copy."""

from __future__ import annotations

from django.conf import settings


def sse_parameters() -> dict[str, str]:
    """The encryption arguments for put, copy and multipart requests (AES256 or aws:kms)."""
    algorithm = settings.AWS_S3_SSE
    if algorithm == "aws:kms":
        return {"ServerSideEncryption": "aws:kms", "SSEKMSKeyId": settings.AWS_S3_SSE_KMS_KEY_ID}
    return {"ServerSideEncryption": algorithm} if algorithm else {}


def default_encryption_rule() -> dict:
    """The bucket's default encryption, matching what every write sends."""
    default = {"SSEAlgorithm": settings.AWS_S3_SSE or "AES256"}
    if default["SSEAlgorithm"] == "aws:kms" and settings.AWS_S3_SSE_KMS_KEY_ID:
        default["KMSMasterKeyID"] = settings.AWS_S3_SSE_KMS_KEY_ID
    return {"ApplyServerSideEncryptionByDefault": default}
