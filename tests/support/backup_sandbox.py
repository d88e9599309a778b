"""A private S3 server with TLS and a private PostgreSQL cluster archiving into it.

For the tests and benchmarks only: the live database is never touched. pgBackRest's S3 driver
speaks https only, so SeaweedFS gets a self-signed certificate (made here with openssl) and
pgBackRest runs with repo1-storage-verify-tls=n against it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import psycopg

from backups import cluster, config
from tests.support.ports import free_port
from tests.support.seaweedfs import SeaweedS3


def _self_signed_certificate(directory: Path) -> tuple[Path, Path]:
    cert, key = directory / "s3.crt", directory / "s3.key"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "2",
            "-keyout",
            str(key),
            "-out",
            str(cert),
            "-subj",
            "/CN=127.0.0.1",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
        ],
        check=True,
        capture_output=True,
    )
    return cert, key


def tls_s3_server() -> tuple[SeaweedS3, str]:
    """Start SeaweedFS serving S3 on http (boto3) and https (pgBackRest); return it and the
    https endpoint URL. Stop it with `tls_s3_stop`."""
    root = Path(tempfile.mkdtemp(prefix="metis-s3-tls-"))
    cert, key = _self_signed_certificate(root)
    https_port = free_port()
    server = SeaweedS3(
        data_dir=root / "weed",
        extra_args=(f"-s3.cert.file={cert}", f"-s3.key.file={key}", f"-s3.port.https={https_port}"),
    )
    try:
        server.start()
    except Exception:
        shutil.rmtree(root, ignore_errors=True)
        raise
    return server, f"https://127.0.0.1:{https_port}"


def tls_s3_restart(server: SeaweedS3) -> None:
    """Start a stopped server again on the same ports, with the data it had."""
    server.keep_ports = True
    server.start()


def tls_s3_stop(server: SeaweedS3) -> None:
    """Stop the server and delete its data and certificate."""
    server.stop()
    shutil.rmtree(server.data_dir.parent, ignore_errors=True)


def backup_settings(
    *,
    s3: SeaweedS3,
    https_endpoint: str,
    bucket: str,
    work: Path,
    pg: config.Target,
    repo_path: str,
) -> dict:
    """Django settings that point the backup services at the sandbox."""
    return {
        "BACKUP_STANZA": pg.stanza,
        "BACKUP_PG_BIN_DIR": str(pg.bin_dir),
        "BACKUP_PG_DATA_DIR": str(pg.data_dir),
        "BACKUP_PG_PORT": pg.port,
        "BACKUP_PG_SOCKET_DIR": str(pg.socket_dir),
        "BACKUP_PG_OS_USER": pg.os_user,
        "BACKUP_PG_DATABASE": pg.database,
        "BACKUP_REPO_BUCKET": bucket,
        "BACKUP_REPO_PATH": repo_path,
        "BACKUP_REPO_S3_ENDPOINT_URL": https_endpoint,
        "BACKUP_REPO_S3_VERIFY_TLS": False,
        "AWS_S3_ENDPOINT_URL": s3.endpoint_url,
        "AWS_ACCESS_KEY_ID": s3.access_key,
        "AWS_SECRET_ACCESS_KEY": s3.secret_key,
        "BACKUP_REPO_CIPHER_PASS": "sandbox-cipher-" + uuid.uuid4().hex,
        "BACKUP_PGBACKREST_CONFIG": str(work / "pgbackrest.conf"),
        "BACKUP_WORK_DIR": str(work / "work"),
        "BACKUP_PROCESS_MAX": 1,
    }


def second_region_settings(*, s3: SeaweedS3, https_endpoint: str, bucket: str) -> dict:
    """Django settings for a second region (repo2) on another S3 server, with its own keys and
    cipher pass."""
    return {
        "BACKUP_REPO2_S3_ENDPOINT_URL": https_endpoint,
        "BACKUP_REPO2_S3_BUCKET": bucket,
        "BACKUP_REPO2_S3_REGION": "eu-central-1",
        "BACKUP_REPO2_S3_KEY": s3.access_key,
        "BACKUP_REPO2_S3_SECRET": s3.secret_key,
        "BACKUP_REPO2_S3_VERIFY_TLS": False,
        "BACKUP_REPO2_CIPHER_PASS": "sandbox-region2-cipher-" + uuid.uuid4().hex,
    }


def default_os_user() -> str:
    return "postgres" if config.running_as_root() else os.environ.get("USER", "")


@dataclass
class SandboxCluster:
    """A private PostgreSQL cluster in a temp dir, archiving with pgBackRest."""

    stanza: str = field(default_factory=lambda: f"sandbox{uuid.uuid4().hex[:8]}")
    bin_dir: Path = Path("/usr/lib/postgresql/15/bin")
    root: Path | None = None
    target: config.Target | None = None
    # Set by archiving_sandbox: the S3 server, bucket, repository and settings it used.
    s3: SeaweedS3 | None = None
    bucket: str = ""
    repo: config.Repo | None = None
    overrides: dict = field(default_factory=dict)

    def create(self) -> config.Target:
        os_user = default_os_user()
        self.root = cluster.scratch_directory(os_user, prefix="metis-sandbox-")
        self.target = config.Target(
            stanza=self.stanza,
            data_dir=self.root / "data",
            port=cluster.free_port(),
            socket_dir=self.root,
            bin_dir=self.bin_dir,
            os_user=os_user,
            database="metis",
        )
        cluster.initdb(self.target)
        return self.target

    def start_archiving(
        self, secret_env: dict[str, str], extra: dict[str, str] | None = None
    ) -> None:
        """Configure continuous archiving (the settings backup_configure prints) and start."""
        settings = {
            **cluster.local_settings(self.target),
            **config.postgresql_settings(self.target),
            "max_connections": "30",
            "shared_buffers": "64MB",
            **(extra or {}),
        }
        cluster.write_settings(self.target, settings)
        cluster.start(self.target, env=secret_env)
        with cluster.connect(self.target, dbname="postgres", autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{self.target.database}"')

    def connect(self, **kwargs) -> psycopg.Connection:
        return cluster.connect(self.target, **kwargs)

    def destroy(self) -> None:
        if self.target is not None:
            cluster.remove(self.target)
        if self.root is not None:
            shutil.rmtree(self.root, ignore_errors=True)


def archiving_sandbox(
    *,
    settings,
    server: SeaweedS3,
    https_endpoint: str,
    bucket: str,
    work: Path,
    overrides: dict | None = None,
    postgresql: dict[str, str] | None = None,
) -> SandboxCluster:
    """Create a cluster archiving into `bucket`, point `settings` at it, create its stanza.

    `overrides` are more Django settings; `postgresql` more postgresql.conf settings. The
    caller destroys the returned cluster. Shared by the backup tests and the benchmarks.
    """
    from backups.services import physical

    box = SandboxCluster()
    target = box.create()
    values = backup_settings(
        s3=server,
        https_endpoint=https_endpoint,
        bucket=bucket,
        work=work,
        pg=target,
        repo_path=f"/system/backups/{target.stanza}",
    )
    values |= overrides or {}
    for name, value in values.items():
        setattr(settings, name, value)
    repo = config.repo()
    config.write_pgbackrest_config(repo, target)
    box.start_archiving(config.secret_environment(repo), extra=postgresql)
    physical.stanza_ensure()
    box.s3 = server
    box.bucket = bucket
    box.repo = repo
    box.overrides = values
    return box


def switch_wal_and_wait(conn: psycopg.Connection, *, timeout: float = 60) -> str:
    """Close the current WAL segment and wait until the archiver has pushed it; return its name."""
    segment = conn.execute("SELECT pg_walfile_name(pg_switch_wal())").fetchone()[0]
    cluster.wait_archived(conn, segment, timeout=timeout)
    return segment
