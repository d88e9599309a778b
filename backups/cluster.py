"""Start, stop and query PostgreSQL clusters other than the application's own.

Restores, drills and the tests run clusters from a data directory of their own (a scratch
cluster beside the live one). PostgreSQL refuses to run as root, so when we are root every
binary runs as the target's OS user (`postgres`), and the directories are handed to that user.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path

import psycopg

from backups import config


class ClusterError(RuntimeError):
    """Raised when a PostgreSQL tool fails; carries its output."""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def run_tool(
    argv: list[str],
    *,
    os_user: str,
    env: Mapping[str, str] | None = None,
    timeout: float | None = None,
) -> str:
    """Run a PostgreSQL/pgBackRest tool as `os_user`; return its output or raise ClusterError."""
    completed = subprocess.run(
        config.as_os_user(argv, os_user),
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd="/",  # the OS user may not be allowed into our working directory
    )
    if completed.returncode != 0:
        raise ClusterError(
            f"{Path(argv[0]).name} failed ({completed.returncode}): "
            f"{(completed.stderr or completed.stdout).strip()[-2000:]}"
        )
    return completed.stdout


def scratch_directory(os_user: str, prefix: str = "metis-pg-") -> Path:
    """Return a new empty directory (in the system temp dir) owned by `os_user`."""
    path = Path(tempfile.mkdtemp(prefix=prefix))
    path.chmod(0o700)
    config.chown_to(path, os_user)
    return path


def prepare_data_dir(path: Path, os_user: str) -> None:
    """Create `path` for a cluster: owned by the OS user, mode 0700, parents traversable."""
    path.mkdir(parents=True, exist_ok=True)
    path.chmod(0o700)
    config.chown_to(path, os_user)


def initdb(target: config.Target) -> None:
    prepare_data_dir(target.data_dir, target.os_user)
    run_tool(
        [target.tool("initdb"), "-D", str(target.data_dir), "-A", "trust", "-U", "postgres"],
        os_user=target.os_user,
    )


def write_settings(target: config.Target, values: Mapping[str, str]) -> None:
    """Append settings to the cluster's postgresql.auto.conf (the last value wins)."""
    path = target.data_dir / "postgresql.auto.conf"
    lines = [
        f"{name} = '{str(value).replace(chr(39), chr(39) * 2)}'" for name, value in values.items()
    ]
    with path.open("a") as handle:
        handle.write("\n".join(lines) + "\n")


def local_settings(target: config.Target) -> dict[str, str]:
    """Settings that keep a scratch cluster private: its own socket and port, no TCP."""
    return {
        "port": str(target.port),
        "listen_addresses": "",
        "unix_socket_directories": str(target.socket_dir),
    }


def start(
    target: config.Target, *, env: Mapping[str, str] | None = None, timeout: int = 120
) -> None:
    log = target.data_dir.parent / f"{target.data_dir.name}.log"
    try:
        _pg_ctl_start(target, log, env, timeout)
    except ClusterError as exc:
        tail = log.read_text(errors="replace")[-1500:] if log.exists() else ""
        raise ClusterError(f"{exc}\n{tail}") from exc


def _pg_ctl_start(target: config.Target, log: Path, env, timeout: int) -> None:
    run_tool(
        [
            target.tool("pg_ctl"),
            "-D",
            str(target.data_dir),
            "-l",
            str(log),
            "-o",
            f"-p {target.port} -k {target.socket_dir}",
            "-w",
            "-t",
            str(timeout),
            "start",
        ],
        os_user=target.os_user,
        env=env,
        timeout=timeout + 10,
    )


def restart(target: config.Target, *, env: Mapping[str, str], log: Path) -> None:
    """Restart a running cluster with `env` in its environment, keeping its command line.

    pg_ctl reuses the options the server was started with (postmaster.opts: its socket
    directory, no TCP); the server log goes to `log`.
    """
    run_tool(
        [
            *(target.tool("pg_ctl"), "-D", str(target.data_dir), "-l", str(log)),
            *("-m", "fast", "-w", "-t", "120", "restart"),
        ],
        os_user=target.os_user,
        env=env,
        timeout=130,
    )


def postmaster_environment(target: config.Target) -> dict[str, str] | None:
    """Return the running server's environment, or None if it cannot be read (not running,
    not Linux, or another user's process)."""
    try:
        pid = int((target.data_dir / "postmaster.pid").read_text().split()[0])
        raw = Path(f"/proc/{pid}/environ").read_bytes()
    except (OSError, ValueError, IndexError):
        return None
    pairs = (item.split(b"=", 1) for item in raw.split(b"\0") if b"=" in item)
    return {name.decode(errors="replace"): value.decode(errors="replace") for name, value in pairs}


def stop(target: config.Target, *, mode: str = "fast") -> None:
    if not (target.data_dir / "postmaster.pid").exists():
        return
    run_tool(
        [target.tool("pg_ctl"), "-D", str(target.data_dir), "-m", mode, "-w", "stop"],
        os_user=target.os_user,
        timeout=120,
    )


def remove(target: config.Target) -> None:
    """Stop the cluster (if running) and delete its data directory."""
    with contextlib.suppress(ClusterError):
        stop(target, mode="immediate")
    shutil.rmtree(target.data_dir, ignore_errors=True)
    log = target.data_dir.parent / f"{target.data_dir.name}.log"
    log.unlink(missing_ok=True)


def connect(target: config.Target, *, dbname: str | None = None, **kwargs) -> psycopg.Connection:
    return psycopg.connect(
        host=str(target.socket_dir),
        port=target.port,
        user="postgres",
        dbname=dbname or target.database,
        **kwargs,
    )


def wait_until_usable(target: config.Target, *, timeout: float = 600) -> None:
    """Wait until the cluster accepts writes (recovery finished and promoted)."""
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        try:
            with connect(target, dbname="postgres", connect_timeout=2) as conn:
                if not conn.execute("SELECT pg_is_in_recovery()").fetchone()[0]:
                    return
        except psycopg.OperationalError as exc:
            last_error = exc
        time.sleep(0.2)
    raise ClusterError(f"cluster on port {target.port} not usable after {timeout}s: {last_error}")


def amcheck(target: config.Target) -> str:
    """Check every table and index of every database with pg_amcheck; raise on corruption."""
    with connect(target, dbname=target.database, autocommit=True) as conn:
        conn.execute("CREATE EXTENSION IF NOT EXISTS amcheck")
    return run_tool(
        [
            target.tool("pg_amcheck"),
            "--host",
            str(target.socket_dir),
            "--port",
            str(target.port),
            "--username",
            "postgres",
            "--install-missing",
            "--heapallindexed",
            "--all",
        ],
        os_user=target.os_user,
        timeout=3600,
    )


def remove_directory(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)


def wait_archived(conn: psycopg.Connection, segment: str, *, timeout: float = 90) -> None:
    """Wait until the archiver has pushed WAL segment `segment` (or a later one)."""
    deadline = time.monotonic() + timeout
    failed = ""
    while time.monotonic() < deadline:
        last, failed = conn.execute(
            "SELECT coalesce(last_archived_wal, ''), coalesce(last_failed_wal, '') "
            "FROM pg_stat_archiver"
        ).fetchone()
        if last[:24] >= segment:
            return
        time.sleep(0.1)
    raise ClusterError(f"WAL segment {segment} not archived after {timeout}s (failed: {failed})")
