"""The errors an object store raises, and how to read a server's refusal."""

from __future__ import annotations

from boto3.exceptions import S3UploadFailedError
from botocore.exceptions import BotoCoreError, ClientError

# boto3's transfer manager wraps errors in S3UploadFailedError (a plain Exception subclass);
# OSError covers a spooled file that vanished and a socket that died mid-stream.
STORE_ERRORS = (BotoCoreError, ClientError, S3UploadFailedError, OSError)

# Error codes by which a server says "I do not implement this" rather than "you may not".
_UNSUPPORTED = {"NotImplemented", "MethodNotAllowed", "UnsupportedOperation"}
_UNSUPPORTED_STATUS = {405, 501}


class StorageUnavailable(RuntimeError):
    """The object store refused or could not be reached; nothing was kept."""


def error_code(error: ClientError) -> str:
    return str(error.response.get("Error", {}).get("Code", ""))


def error_status(error: ClientError) -> int | None:
    return error.response.get("ResponseMetadata", {}).get("HTTPStatusCode")


def is_unsupported(error: ClientError) -> bool:
    """True when the server refuses because it lacks the feature (not for lack of rights)."""
    return error_code(error) in _UNSUPPORTED or error_status(error) in _UNSUPPORTED_STATUS


def is_missing(error: ClientError) -> bool:
    """True when the server says there is no such key (or version)."""
    return error_code(error) in {"404", "NoSuchKey", "NoSuchVersion"} or error_status(error) == 404


def describe(error: ClientError) -> str:
    body = error.response.get("Error", {})
    return f"{error_status(error)} {body.get('Code', '')}: {body.get('Message', '')}".strip()
