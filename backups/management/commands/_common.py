"""Shared bits of the backup commands: progress on stderr, clean errors."""

from __future__ import annotations

from django.core.management.base import CommandError

from backups import cluster, config, crypto, pgbackrest
from backups.progress import Progress
from backups.services import restore

# Failures a command reports as a clear one-line error rather than a traceback.
EXPECTED_ERRORS = (
    pgbackrest.PgBackRestError,
    cluster.ClusterError,
    config.BackupConfigError,
    crypto.DecryptionError,
    restore.RestoreRefused,
    ValueError,
    RuntimeError,
)


def progress(command, label: str) -> Progress:
    return Progress(label, stream=command.stderr._out)


def fail(exc: Exception) -> CommandError:
    return CommandError(f"{type(exc).__name__}: {exc}")
