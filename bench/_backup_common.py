"""Shared set-up for the backup benchmarks: Django on a scratch catalog database, a private
TLS SeaweedFS and a private PostgreSQL cluster archiving into it (tests.support.backup_sandbox).

Nothing here touches the live database: the catalog is the scratch database `bench_backups`,
the cluster backed up is a throw-away one in a temp dir.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import time
import uuid
from contextlib import contextmanager
from pathlib import Path

import django

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run as a script from anywhere
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "metis.settings")
django.setup()

from django.conf import settings  # noqa: E402

from backups import cluster, config  # noqa: E402
from tests.support import backup_sandbox as sandbox  # noqa: E402
from tests.support import scratch  # noqa: E402

CATALOG_DATABASE = "bench_backups"


@contextmanager
def backup_sandbox(
    *,
    archive_timeout: str | None = None,
    overrides: dict | None = None,
    second_region: bool = False,
):
    """Yield an archiving SandboxCluster (stanza created) with settings pointing at it.

    pgBackRest's tuning (process counts, compression, buffers) stays as configured (BACKUP_*,
    .env.example) unless `overrides` says otherwise: the benches measure the shipped defaults.
    `second_region`: a second TLS SeaweedFS holds repo2 (the box's `s3` is the first region's).
    """
    tuning = {
        name: getattr(settings, name)
        for name in ("BACKUP_PROCESS_MAX", "BACKUP_RESTORE_PROCESS_MAX", "BACKUP_COMPRESS_TYPE")
    }
    scratch.scratch_database_create(CATALOG_DATABASE)
    server, https_endpoint = sandbox.tls_s3_server()
    bucket = f"bench-backups-{uuid.uuid4().hex[:8]}"
    server.client().create_bucket(Bucket=bucket)
    region2 = None
    if second_region:
        region2, https_endpoint2 = sandbox.tls_s3_server()
        bucket2 = f"bench-backups-region2-{uuid.uuid4().hex[:8]}"
        region2.client().create_bucket(Bucket=bucket2)
        overrides = {
            **(overrides or {}),
            **sandbox.second_region_settings(
                s3=region2, https_endpoint=https_endpoint2, bucket=bucket2
            ),
        }
    work = Path(tempfile.mkdtemp(prefix="metis-bench-backup-"))
    work.chmod(0o755)
    box = None
    try:
        box = sandbox.archiving_sandbox(
            settings=settings,
            server=server,
            https_endpoint=https_endpoint,
            bucket=bucket,
            work=work,
            overrides={**tuning, **(overrides or {})},
            postgresql={
                **({"archive_timeout": archive_timeout} if archive_timeout else {}),
                "shared_buffers": "256MB",
                "max_wal_size": "4GB",
                "checkpoint_timeout": "30min",
            },
        )
        yield box
    finally:
        if box is not None:
            box.destroy()
        sandbox.tls_s3_stop(server)
        if region2 is not None:
            sandbox.tls_s3_stop(region2)
        shutil.rmtree(work, ignore_errors=True)
        scratch.scratch_database_drop(CATALOG_DATABASE)


def load_table(box, *, megabytes: int, table: str = "ledger", tables: int = 1) -> int:
    """Fill tenant tables with ~`megabytes` of moderately compressible rows; return the
    database's size.

    Rows carry hex digests (about 2:1 under compression), like ids and hashes in real tables.
    `tables` > 1 spreads the same bytes over that many tables (`ledger_1`, ...), as a real
    database spreads them over tables, partitions and indexes: each is its own files, which
    pgBackRest's processes share out (one file is one process's work).
    """
    rows = megabytes * 1024 * 1024 // 300
    tenants = [str(uuid.uuid4()) for _ in range(10)]
    names = [table] if tables == 1 else [f"{table}_{n}" for n in range(1, tables + 1)]
    with box.connect(autocommit=True) as conn:
        started = time.monotonic()
        for index, name in enumerate(names):
            conn.execute(
                f"CREATE TABLE {name} (id bigint PRIMARY KEY, tenant_id uuid NOT NULL, "
                "body text NOT NULL, created_at timestamptz NOT NULL DEFAULT now())"
            )
            first, last = index * rows // len(names) + 1, (index + 1) * rows // len(names)
            conn.execute(
                f"INSERT INTO {name} (id, tenant_id, body) "
                "SELECT g, (%s::uuid[])[1 + g %% 10], "
                "md5(g::text) || md5((g * 3)::text) || md5((g * 7)::text) "
                "|| md5((g * 11)::text) || md5((g * 13)::text) || md5((g * 17)::text) "
                "|| md5((g * 19)::text) FROM generate_series(%s, %s) g",
                [tenants, first, last],
            )
        conn.execute("CHECKPOINT")
        size = conn.execute("SELECT pg_database_size(current_database())").fetchone()[0]
    print(
        f"loaded {rows:,} rows, database {size / 1e6:.0f} MB in {time.monotonic() - started:.0f}s"
    )
    return size


def wait_archive_idle(box, timeout: float = 600) -> None:
    """Wait until every WAL segment written so far is archived (loading makes a backlog)."""
    with box.connect(autocommit=True) as conn:
        sandbox.switch_wal_and_wait(conn, timeout=timeout)


def postmaster_pid(box) -> int:
    return int((box.target.data_dir / "postmaster.pid").read_text().split()[0])


def du(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def as_user(argv: list[str], box) -> list[str]:
    return config.as_os_user(argv, box.target.os_user)


__all__ = [
    "as_user",
    "backup_sandbox",
    "cluster",
    "du",
    "load_table",
    "postmaster_pid",
    "wait_archive_idle",
]
