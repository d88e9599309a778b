"""Logical backups for deployments without file access to the database server.

`pg_dump -Fc` (compressed custom format) streams through AES-256-GCM (backups.crypto) into
object storage: nothing unencrypted touches disk. `logical_restore` streams it back through
`pg_restore` into a database that must be empty (or is cleaned when asked).
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable, Iterator
from urllib.parse import urlsplit, urlunsplit

import psycopg
from django.conf import settings
from django.utils import timezone

from backups import artifacts, cluster, config, crypto
from backups.models import BackupKind, BackupRun, JobStatus
from backups.services import runs

READ_SIZE = 256 * 1024


def _dump_database(target: config.Target) -> str:
    url = settings.BACKUP_LOGICAL_DATABASE_URL
    return urlsplit(url).path.lstrip("/") if url else target.database


def _connection_args(target: config.Target, dbname: str) -> list[str]:
    if settings.BACKUP_LOGICAL_DATABASE_URL:  # managed PostgreSQL: no socket, no file access
        return ["--dbname", _url_for(dbname)]
    return [
        "--host",
        str(target.socket_dir),
        "--port",
        str(target.port),
        "--username",
        "postgres",
        "--dbname",
        dbname,
    ]


def _url_for(dbname: str) -> str:
    parts = urlsplit(settings.BACKUP_LOGICAL_DATABASE_URL)
    return urlunsplit(parts._replace(path=f"/{dbname}"))


def _connect(target: config.Target, dbname: str) -> psycopg.Connection:
    if settings.BACKUP_LOGICAL_DATABASE_URL:
        return psycopg.connect(_url_for(dbname), autocommit=True)
    return cluster.connect(target, dbname=dbname, autocommit=True)


def _database_size(target: config.Target) -> int:
    with _connect(target, _dump_database(target)) as conn:
        return conn.execute("SELECT pg_database_size(current_database())").fetchone()[0]


def backup_run_logical(*, on_progress: Callable[[float], None] | None = None) -> BackupRun:
    """Dump the target database with pg_dump -Fc, encrypted, to object storage."""
    target = config.target()
    key_bytes = crypto.key_from_settings()
    stamp = timezone.now().strftime("%Y%m%dT%H%M%SZ")
    key = artifacts.key_for("logical", _dump_database(target), f"{stamp}.dump.enc")
    with runs.job_run_exclusive(
        BackupRun, lock="logical-backup", kind=BackupKind.LOGICAL, label=stamp
    ) as run:
        size = _database_size(target)
        heartbeat = runs.Heartbeat(run, on_progress=on_progress)
        process = subprocess.Popen(
            config.as_os_user(
                [
                    target.tool("pg_dump"),
                    "-Fc",
                    "-Z",
                    "6",
                    *_connection_args(target, target.database),
                ],
                target.os_user,
            ),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            cwd="/",
        )

        def dump_chunks() -> Iterator[bytes]:
            done = 0
            while chunk := process.stdout.read(READ_SIZE):
                done += len(chunk)
                # The compressed dump is smaller than the database: a lower bound, capped.
                heartbeat(min(99.0, 100.0 * done / max(size, 1)))
                yield chunk

        location, stored, checksum = artifacts.object_put_stream(
            key, crypto.encrypt_stream(dump_chunks(), key_bytes)
        )
        error = process.stderr.read().decode(errors="replace")
        if process.wait() != 0:
            raise cluster.ClusterError(f"pg_dump failed: {error[-2000:]}")
        heartbeat(100)
        runs.job_succeed(
            run,
            location=location,
            size_bytes=size,
            stored_bytes=stored,
            checksum=checksum,
            details={"database": _dump_database(target), "format": "pg_dump -Fc, AES-256-GCM"},
        )
    return run


def logical_restore(
    *,
    run: BackupRun,
    dbname: str,
    clean: bool = False,
    on_progress: Callable[[float], None] | None = None,
) -> None:
    """Restore a logical backup into `dbname` on the target cluster (created if missing)."""
    if run.kind != BackupKind.LOGICAL or run.status != JobStatus.SUCCEEDED:
        raise ValueError(f"{run} is not a finished logical backup")
    target = config.target()
    key_bytes = crypto.key_from_settings()
    with _connect(target, "postgres") as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [dbname]).fetchone()
        if not exists:
            conn.execute(f'CREATE DATABASE "{dbname}"')
    argv = [
        target.tool("pg_restore"),
        "--no-owner",
        "--exit-on-error",
        *(["--clean", "--if-exists"] if clean else []),
        *_connection_args(target, dbname),
    ]
    process = subprocess.Popen(
        config.as_os_user(argv, target.os_user),
        stdin=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd="/",
    )
    body = artifacts.object_open(artifacts.key_of_location(run.location))
    done = 0
    try:
        for chunk in crypto.decrypt_stream(body.read, key_bytes):
            process.stdin.write(chunk)
            done += len(chunk)
            if on_progress and run.stored_bytes:
                on_progress(min(99.0, 100.0 * done / run.stored_bytes))
    except crypto.DecryptionError:
        process.kill()
        process.wait()
        raise
    finally:
        body.close()
    process.stdin.close()
    error = process.stderr.read().decode(errors="replace")
    if process.wait() != 0:
        raise cluster.ClusterError(f"pg_restore failed: {error[-2000:]}")
    if on_progress:
        on_progress(100)
    runs.restore_tested_mark(run)
