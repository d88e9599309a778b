"""Where backups come from and go to, read from settings at call time (never at import).

The cluster being backed up (`Target`) and the pgBackRest repository (`Repo`) are described by
BACKUP_* settings; BACKUP_REPO2_* add a second repository in another region (pgBackRest's
`repo2`), which `Repo.second` carries beside the first. Secrets (the repository cipher pass,
the S3 keys) only ever travel in the environment of the pgBackRest process; the configuration
file pgBackRest and PostgreSQL's `archive_command` read holds no secret, so it can never end up
beside the backups.
"""

from __future__ import annotations

import os
import pwd
from dataclasses import dataclass, field, replace
from pathlib import Path
from urllib.parse import urlsplit

from django.conf import settings

from metis.objectstore import store


@dataclass(frozen=True)
class Target:
    """The PostgreSQL cluster to back up (or a scratch cluster restored from it)."""

    stanza: str
    data_dir: Path
    port: int
    socket_dir: Path
    bin_dir: Path
    os_user: str
    database: str

    def with_data_dir(self, data_dir: Path, *, port: int | None = None) -> Target:
        return replace(self, data_dir=data_dir, port=port or self.port)

    def tool(self, name: str) -> str:
        return str(self.bin_dir / name)


@dataclass(frozen=True)
class Repo:
    """The pgBackRest repository: S3 (the configured object storage) or a local directory."""

    type: str  # "s3" or "posix"
    path: str
    bucket: str = ""
    endpoint_host: str = ""
    endpoint_port: int = 443
    region: str = "us-east-1"
    verify_tls: bool = True
    access_key: str = field(default="", repr=False)
    secret_key: str = field(default="", repr=False)
    cipher_pass: str = field(default="", repr=False)
    compress_type: str = "zst"
    # zst 1 stores these tables as small as zst 3 (entropy coding does the work) at half the
    # CPU (docs/benchmarks.md, "Backups"). None: pgBackRest's default for the type (zst 3).
    compress_level: int | None = None
    process_max: int = 2
    restore_process_max: int = 2
    buffer_size: str = ""  # "": pgBackRest's default (1MiB)
    upload_chunk_size: str = ""  # S3 multipart part size; "": pgBackRest's default
    # Small files in bundles: one S3 request per ~20 MiB, not per file. Off by default: with
    # pgBackRest 2.45 `verify` of a truncated bundle hung (tests/backups/test_physical.py).
    bundle: bool = False
    number: int = 1  # pgBackRest's repository index: 1 the primary, 2 the second region
    # The second region's repository (repo2), set on repo 1 only: every command gets both in
    # its configuration, so `archive-push` sends each WAL segment to both.
    second: Repo | None = None

    def repos(self) -> tuple[Repo, ...]:
        return (self,) if self.second is None else (self, self.second)

    def numbered(self, number: int) -> Repo:
        """Return repository `number` (1 or 2) of this configuration."""
        for candidate in self.repos():
            if candidate.number == number:
                return candidate
        raise BackupConfigError(
            f"there is no repository {number}: set BACKUP_REPO2_S3_ENDPOINT_URL and "
            "BACKUP_REPO2_S3_BUCKET for a second region"
        )

    @property
    def endpoint_url(self) -> str:
        return f"https://{self.endpoint_host}:{self.endpoint_port}"

    def location(self, suffix: str = "") -> str:
        base = f"s3://{self.bucket}{self.path}" if self.type == "s3" else self.path
        return f"{base}/{suffix}" if suffix else base


class BackupConfigError(RuntimeError):
    """Raised when the backup settings cannot work (no cipher pass, plain-http S3...)."""


def target() -> Target:
    return Target(
        stanza=settings.BACKUP_STANZA,
        data_dir=Path(settings.BACKUP_PG_DATA_DIR),
        port=settings.BACKUP_PG_PORT,
        socket_dir=Path(settings.BACKUP_PG_SOCKET_DIR),
        bin_dir=Path(settings.BACKUP_PG_BIN_DIR),
        os_user=settings.BACKUP_PG_OS_USER,
        database=settings.BACKUP_PG_DATABASE,
    )


def repo() -> Repo:
    cipher_pass = settings.BACKUP_REPO_CIPHER_PASS
    if not cipher_pass:
        raise BackupConfigError(
            "BACKUP_REPO_CIPHER_PASS is not set: the repository is always encrypted."
        )
    common = {
        "cipher_pass": cipher_pass,
        "compress_type": settings.BACKUP_COMPRESS_TYPE,
        "compress_level": settings.BACKUP_COMPRESS_LEVEL,
        "process_max": settings.BACKUP_PROCESS_MAX,
        "restore_process_max": settings.BACKUP_RESTORE_PROCESS_MAX,
        "buffer_size": settings.BACKUP_BUFFER_SIZE,
        "upload_chunk_size": settings.BACKUP_S3_UPLOAD_CHUNK_SIZE,
        "bundle": settings.BACKUP_REPO_BUNDLE,
    }
    second = second_repo(common)
    if settings.BACKUP_REPO_TYPE == "posix":
        return Repo(
            type="posix", path=str(settings.BACKUP_REPO_LOCAL_PATH), second=second, **common
        )
    backups = store.backups_store()  # the same bucket and keys the backup artifacts use
    endpoint = settings.BACKUP_REPO_S3_ENDPOINT_URL or backups.endpoint.url
    parts = _https_endpoint(
        endpoint or f"https://s3.{backups.endpoint.region}.amazonaws.com",
        "BACKUP_REPO_S3_ENDPOINT_URL",
    )
    return Repo(
        type="s3",
        path=settings.BACKUP_REPO_PATH,
        bucket=backups.bucket,
        endpoint_host=parts.hostname or "",
        endpoint_port=parts.port or 443,
        region=backups.endpoint.region,
        verify_tls=settings.BACKUP_REPO_S3_VERIFY_TLS,
        access_key=backups.endpoint.access_key,
        secret_key=backups.endpoint.secret_key,
        second=second,
        **common,
    )


def _https_endpoint(endpoint: str, setting: str):
    parts = urlsplit(endpoint)
    if parts.scheme != "https":
        # pgBackRest's S3 driver speaks TLS only (docs/operations.md, "Backups and recovery").
        raise BackupConfigError(
            f"pgBackRest needs an https S3 endpoint, got {endpoint!r}: "
            f"set {setting} to the TLS endpoint."
        )
    return parts


def second_repo(common: dict) -> Repo | None:
    """Return the second region's repository (repo2), or None when there is none."""
    endpoint, bucket = settings.BACKUP_REPO2_S3_ENDPOINT_URL, settings.BACKUP_REPO2_S3_BUCKET
    if not endpoint and not bucket:
        return None
    if not (endpoint and bucket):
        raise BackupConfigError(
            "a second region needs both BACKUP_REPO2_S3_ENDPOINT_URL and BACKUP_REPO2_S3_BUCKET"
        )
    if not settings.BACKUP_REPO2_CIPHER_PASS:
        raise BackupConfigError(
            "BACKUP_REPO2_CIPHER_PASS is not set: the second repository is always encrypted."
        )
    parts = _https_endpoint(endpoint, "BACKUP_REPO2_S3_ENDPOINT_URL")
    return Repo(
        type="s3",
        number=2,
        path=settings.BACKUP_REPO2_PATH or settings.BACKUP_REPO_PATH,
        bucket=bucket,
        endpoint_host=parts.hostname or "",
        endpoint_port=parts.port or 443,
        region=settings.BACKUP_REPO2_S3_REGION,
        verify_tls=settings.BACKUP_REPO2_S3_VERIFY_TLS,
        access_key=settings.BACKUP_REPO2_S3_KEY,
        secret_key=settings.BACKUP_REPO2_S3_SECRET,
        **{**common, "cipher_pass": settings.BACKUP_REPO2_CIPHER_PASS},
    )


def pgbackrest_config_path() -> Path:
    return Path(settings.BACKUP_PGBACKREST_CONFIG)


def pgbackrest_options(repo: Repo, target: Target) -> dict[str, dict[str, str]]:
    """Return the non-secret pgBackRest options, by config-file section."""
    work = Path(settings.BACKUP_WORK_DIR)
    glob: dict[str, str] = {}
    for each in repo.repos():
        glob |= _repo_options(each)
    glob |= {
        "compress-type": repo.compress_type,
        "process-max": str(repo.process_max),
        "start-fast": "y",
        "log-level-file": "off",
        "lock-path": str(work / "lock"),
        "spool-path": str(work / "spool"),
    }
    if repo.compress_level is not None and repo.compress_type != "none":
        glob["compress-level"] = str(repo.compress_level)
    if repo.buffer_size:
        glob["buffer-size"] = repo.buffer_size
    stanza = {
        "pg1-path": str(target.data_dir),
        "pg1-port": str(target.port),
        "pg1-socket-path": str(target.socket_dir),
        "pg1-user": "postgres",
    }
    # A restore is decompress, decrypt and write, file by file: it has its own process count
    # (pgBackRest reads `[global:restore]` for the restore command only).
    restore = {"process-max": str(repo.restore_process_max)}
    return {"global": glob, "global:restore": restore, target.stanza: stanza}


def _repo_options(repo: Repo) -> dict[str, str]:
    prefix = f"repo{repo.number}-"
    options = {"type": repo.type, "path": repo.path, "cipher-type": "aes-256-cbc"}
    if repo.bundle:
        options["bundle"] = "y"
    if repo.type == "s3":
        options |= {
            "s3-bucket": repo.bucket,
            "s3-endpoint": repo.endpoint_host,
            "storage-port": str(repo.endpoint_port),
            "s3-region": repo.region,
            "s3-uri-style": "path",
            "storage-verify-tls": "y" if repo.verify_tls else "n",
        }
        if repo.upload_chunk_size:
            options["storage-upload-chunk-size"] = repo.upload_chunk_size
    return {prefix + name: value for name, value in options.items()}


def pgbackrest_config_text(repo: Repo, target: Target) -> str:
    lines = []
    for section, options in pgbackrest_options(repo, target).items():
        lines.append(f"[{section}]")
        lines.extend(f"{name}={value}" for name, value in options.items())
        lines.append("")
    return "\n".join(lines)


def secret_environment(repo: Repo) -> dict[str, str]:
    """Return the environment variables that carry the repositories' secrets to pgBackRest."""
    secrets = {}
    for each in repo.repos():
        prefix = f"PGBACKREST_REPO{each.number}_"
        secrets[prefix + "CIPHER_PASS"] = each.cipher_pass
        if each.type == "s3":
            secrets |= {
                prefix + "S3_KEY": each.access_key,
                prefix + "S3_KEY_SECRET": each.secret_key,
            }
    return secrets


def write_pgbackrest_config(repo: Repo, target: Target) -> Path:
    """Write the (secret-free) pgBackRest config and its work directories; return its path."""
    path = pgbackrest_config_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(pgbackrest_config_text(repo, target))
    path.chmod(0o644)
    work = Path(settings.BACKUP_WORK_DIR)
    folders = [work, work / "lock", work / "spool"]
    if repo.type == "posix":
        # pgBackRest runs as the PostgreSQL OS user (archive_command too): its repository must
        # be that user's to write.
        folders.append(Path(repo.path))
    for folder in folders:
        folder.mkdir(parents=True, exist_ok=True)
        chown_to(folder, target.os_user)
    return path


def archive_command(target: Target) -> str:
    return (
        f"pgbackrest --config={pgbackrest_config_path()} --stanza={target.stanza} archive-push %p"
    )


def postgresql_settings(target: Target) -> dict[str, str]:
    """Return the postgresql.conf settings continuous archiving needs."""
    return {
        "wal_level": "replica",
        "archive_mode": "on",
        "archive_command": archive_command(target),
        "archive_timeout": f"{settings.BACKUP_ARCHIVE_TIMEOUT_SECONDS}s",
        "max_wal_senders": "3",
    }


def running_as_root() -> bool:
    return os.geteuid() == 0


def as_os_user(argv: list[str], os_user: str) -> list[str]:
    """Prefix `argv` to run as the PostgreSQL OS user when we are root (PostgreSQL refuses root)."""
    if running_as_root() and os_user and os_user != "root":
        return ["runuser", "-u", os_user, "--", *argv]
    return argv


def chown_to(path: Path, os_user: str) -> None:
    if running_as_root() and os_user:
        entry = pwd.getpwnam(os_user)
        os.chown(path, entry.pw_uid, entry.pw_gid)
