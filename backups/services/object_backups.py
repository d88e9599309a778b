"""Verification of the backups kept as objects: logical dumps, tenant and analytics exports.

Verified means: every stored object's bytes hash to the checksum recorded when it was written,
and the whole stream decrypts (each chunk authenticates, the last one is there); a logical dump
must also be readable by `pg_restore --list`. Anything less leaves `verified` false.
"""

from __future__ import annotations

import hashlib
import subprocess

from django.db import transaction
from django.utils import timezone

from backups import artifacts, config, crypto
from backups.models import BackupKind, BackupRun, JobStatus

OBJECT_KINDS = (BackupKind.LOGICAL, BackupKind.TENANT_EXPORT, BackupKind.ANALYTICS)


class _Hashing:
    def __init__(self, body) -> None:
        self.body = body
        self.sha256 = hashlib.sha256()

    def read(self, size: int = -1) -> bytes:
        data = self.body.read(size)
        self.sha256.update(data)
        return data


def _check_object(key: str, checksum: str, key_bytes: bytes, sink=None) -> None:
    body = artifacts.object_open(key)
    try:
        reader = _Hashing(body)
        for chunk in crypto.decrypt_stream(reader.read, key_bytes):
            if sink is not None:
                sink(chunk)
    finally:
        body.close()
    if "sha256:" + reader.sha256.hexdigest() != checksum:
        raise crypto.DecryptionError(f"{key}: checksum differs from the one recorded")


def object_backup_verify(*, run: BackupRun) -> BackupRun:
    """Check a logical dump or export end to end; record the verdict on the run."""
    if run.kind not in OBJECT_KINDS or run.status != JobStatus.SUCCEEDED:
        raise ValueError(f"{run} is not a finished logical backup or export")
    key_bytes = crypto.key_from_settings()
    error = ""
    try:
        if run.kind == BackupKind.ANALYTICS:
            for part in run.details["partitions"].values():
                _check_object(part["key"], part["checksum"], key_bytes)
        elif run.kind == BackupKind.LOGICAL:
            target = config.target()
            lister = subprocess.Popen(
                config.as_os_user([target.tool("pg_restore"), "--list"], target.os_user),
                stdin=subprocess.PIPE,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                cwd="/",
            )
            try:
                _check_object(
                    artifacts.key_of_location(run.location),
                    run.checksum,
                    key_bytes,
                    sink=lister.stdin.write,
                )
            finally:
                lister.stdin.close()
                stderr = lister.stderr.read().decode(errors="replace")
                if lister.wait() != 0:
                    error = f"pg_restore --list cannot read the dump: {stderr[-1000:]}"
        else:
            _check_object(artifacts.key_of_location(run.location), run.checksum, key_bytes)
    except (crypto.DecryptionError, OSError) as exc:
        error = str(exc)
    except Exception as exc:
        error = f"{type(exc).__name__}: {exc}"
    with transaction.atomic():
        run.verified = not error
        run.verified_at = timezone.now()
        if error:
            run.error = f"Verification failed: {error}"
        run.save()
    return run
