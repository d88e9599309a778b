"""Physical backups with pgBackRest: full/diff/incremental runs, verification, archive copies.

A run is catalogued `running` before pgBackRest starts and `succeeded` only when it exits
cleanly; it is "good" only after `backup_verify` has checked every file against its checksum
(pgBackRest `verify`) and restored it into a scratch cluster that started and passed pg_amcheck.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable

from django.db import transaction
from django.utils import timezone

from backups import cluster, config, pgbackrest
from backups.models import PHYSICAL_KINDS, BackupKind, BackupRun, JobStatus
from backups.services import runs

_LABEL = re.compile(r"new backup label = (\S+)")


def stanza_ensure(*, ctx: pgbackrest.Context | None = None) -> None:
    """Create the pgBackRest stanza in the repository (idempotent) and check archiving works."""
    ctx = ctx or pgbackrest.Context.current()
    pgbackrest.run(ctx, "stanza-create", timeout=300)


def backup_run_physical(
    *,
    kind: str = BackupKind.FULL,
    repo: int = 1,
    on_progress: Callable[[float], None] | None = None,
    ctx: pgbackrest.Context | None = None,
) -> BackupRun:
    """Take a full, differential or incremental backup into repository `repo` (2: the second
    region); return its catalog row."""
    if kind not in PHYSICAL_KINDS:
        raise ValueError(f"not a physical backup kind: {kind!r}")
    ctx = ctx or pgbackrest.Context.current()
    into = ctx.repo.numbered(repo)
    # pgBackRest takes one backup of a stanza at a time, whatever its type and repository.
    with runs.job_run_exclusive(
        BackupRun, lock="physical-backup", kind=kind, repo=repo, location=into.location()
    ) as run:
        heartbeat = runs.Heartbeat(run, on_progress=on_progress)
        output = pgbackrest.run_streaming(
            ctx, "backup", f"--type={kind}", f"--repo={repo}", on_progress=heartbeat
        )
        match = _LABEL.search(output)
        if match is None:
            raise pgbackrest.PgBackRestError("pgBackRest did not report a backup label")
        label = match.group(1)
        entry = pgbackrest.backup_by_label(ctx, label, repo=repo) or {}
        manifest = pgbackrest.run(
            ctx, "repo-get", f"--repo={repo}", f"backup/{ctx.target.stanza}/{label}/backup.manifest"
        )
        runs.job_succeed(
            run,
            label=label,
            location=into.location(f"backup/{ctx.target.stanza}/{label}"),
            size_bytes=entry.get("info", {}).get("size"),
            stored_bytes=entry.get("info", {}).get("repository", {}).get("size"),
            wal_start=entry.get("archive", {}).get("start") or "",
            wal_stop=entry.get("archive", {}).get("stop") or "",
            checksum="sha256:" + hashlib.sha256(manifest.encode()).hexdigest(),
            details={"prior": entry.get("prior"), "lsn": entry.get("lsn")},
        )
    return run


def backup_verify(
    *,
    run: BackupRun,
    restore_test: bool = True,
    on_progress: Callable[[float], None] | None = None,
    ctx: pgbackrest.Context | None = None,
) -> BackupRun:
    """Verify a backup's files and WAL, then restore-test it; mark it good only if both pass."""
    from backups.services import restore

    if run.kind not in PHYSICAL_KINDS or run.status != JobStatus.SUCCEEDED or not run.label:
        raise ValueError(f"{run} is not a finished physical backup")
    ctx = ctx or pgbackrest.Context.current()
    result = pgbackrest.verify(ctx, repo=run.repo)
    ok = result.backup_ok(run.label)
    with transaction.atomic():
        run.verified = ok
        run.verified_at = timezone.now()
        run.restore_tested = False if not ok else run.restore_tested
        run.details = {**run.details, "verify_report": result.report[-5000:]}
        if not ok:
            run.error = "Verification failed:\n" + result.report[-5000:]
        run.save()
    if not ok or not restore_test:
        return run
    scratch = cluster.scratch_directory(ctx.target.os_user, prefix="metis-restore-test-")
    target = ctx.target.with_data_dir(scratch / "data", port=cluster.free_port())
    target = config.Target(**{**target.__dict__, "socket_dir": scratch})
    try:
        outcome = restore.restore_cluster(
            ctx=ctx,
            target=target,
            set_label=run.label,
            immediate=True,
            repo=run.repo,
            on_progress=on_progress,
        )
        cluster.amcheck(target)
    except (cluster.ClusterError, pgbackrest.PgBackRestError) as exc:
        with transaction.atomic():
            run.restore_tested = False
            run.error = f"Restore test failed: {exc}"
            run.save()
        return run
    finally:
        cluster.remove(target)
        cluster.remove_directory(scratch)
    with transaction.atomic():
        run.restore_tested = True
        run.restore_tested_at = timezone.now()
        run.details = {**run.details, "restore_test_seconds": outcome.usable_after_seconds}
        run.save()
    return run


def backup_run_every_repo(
    *, kind: str = BackupKind.FULL, verify: bool = False, ctx: pgbackrest.Context | None = None
) -> list[BackupRun]:
    """Back up into every repository in turn (repo 1, then the second region's); return the runs.

    A failure in one region does not keep the other from its backup: it is raised once every
    repository had its turn. A lock held by another backup is raised at once (nothing runs).
    """
    ctx = ctx or pgbackrest.Context.current()
    taken: list[BackupRun] = []
    failures: list[Exception] = []
    for repo in ctx.repo.repos():
        try:
            run = backup_run_physical(kind=kind, repo=repo.number, ctx=ctx)
        except runs.JobLocked:
            raise
        except Exception as exc:  # catalogued as failed by job_run_exclusive; try the next
            failures.append(exc)
            continue
        if verify:
            run = backup_verify(run=run, ctx=ctx)
        taken.append(run)
    if failures:
        raise failures[0]
    return taken
