"""Private PostgreSQL and Redis servers a test can stop and start (outage and health tests),
and real Celery worker and beat processes of the project pointed at them.

PostgreSQL: `initdb` from the machine's binaries into a temporary directory (as `postgres` when
we are root, through backups.cluster), trust auth, TCP on a free port of 127.0.0.1. Redis: the
machine's `redis-server` on a free port, no persistence. Both restart on the same port, so the
application's pools find them again by themselves. The machine's own servers are never touched.
"""

from __future__ import annotations

import contextlib
import copy
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
import redis
from django.conf import settings

from backups import cluster, config
from tests.support.ports import free_port

PG_BIN_DIR = Path("/usr/lib/postgresql/15/bin")
ROOT = Path(__file__).resolve().parents[2]


@dataclass
class PrivatePostgres:
    target: config.Target | None = None
    root: Path | None = None

    @property
    def port(self) -> int:
        assert self.target is not None
        return self.target.port

    def url(self, user: str, database: str) -> str:
        return f"postgres://{user}@127.0.0.1:{self.port}/{database}"

    def create(self, **postgresql: str) -> PrivatePostgres:
        os_user = "postgres" if config.running_as_root() else ""
        self.root = cluster.scratch_directory(os_user, prefix="metis-private-pg-")
        self.target = config.Target(
            stanza=f"private{uuid.uuid4().hex[:8]}",
            data_dir=self.root / "data",
            port=free_port(),
            socket_dir=self.root,
            bin_dir=PG_BIN_DIR,
            os_user=os_user,
            database="postgres",
        )
        cluster.initdb(self.target)
        cluster.write_settings(
            self.target,
            {
                "port": str(self.port),
                "listen_addresses": "127.0.0.1",
                "unix_socket_directories": str(self.root),
                "max_connections": "60",
                "fsync": "off",  # a throw-away cluster: speed over durability
                "synchronous_commit": "off",
                **postgresql,
            },
        )
        self.start()
        return self

    def start(self) -> None:
        assert self.target is not None
        cluster.start(self.target, timeout=60)
        deadline = time.monotonic() + 30
        while True:
            try:
                psycopg.connect(self.url("postgres", "postgres"), connect_timeout=2).close()
                return
            except psycopg.OperationalError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)

    def stop(self) -> None:
        assert self.target is not None
        cluster.stop(self.target, mode="fast")

    def destroy(self) -> None:
        if self.target is not None:
            cluster.remove(self.target)
        if self.root is not None:
            shutil.rmtree(self.root, ignore_errors=True)

    def point_settings_at(self, database: str) -> None:
        """Point every database URL and alias at this server (scratch.scratch_database_create
        then makes `database` there, as the test database is made)."""
        settings.DATABASE_ADMIN_URL = self.url("postgres", "postgres")
        settings.DATABASE_URL = self.url("metis_app", database)
        settings.DATABASE_OWNER_URL = self.url("metis_owner", database)
        settings.DATABASE_STAFF_READ_URL = self.url("metis_staff_read", database)
        for alias in ("default", "owner", "staff_read"):
            settings.DATABASES[alias].update(HOST="127.0.0.1", PORT=self.port, NAME=database)


DATABASE_SETTINGS = (
    "DATABASE_ADMIN_URL",
    "DATABASE_URL",
    "DATABASE_OWNER_URL",
    "DATABASE_STAFF_READ_URL",
)


@contextlib.contextmanager
def database_settings_kept():
    """Put the database URLs and aliases back as they were (connections closed meanwhile)."""
    from tests.support import scratch

    urls = {name: getattr(settings, name) for name in DATABASE_SETTINGS}
    aliases = {alias: copy.deepcopy(settings.DATABASES[alias]) for alias in settings.DATABASES}
    try:
        yield
    finally:
        scratch.close_all_connections()
        for name, value in urls.items():
            setattr(settings, name, value)
        for alias, values in aliases.items():
            settings.DATABASES[alias].clear()
            settings.DATABASES[alias].update(values)


@dataclass
class PrivateRedis:
    port: int = field(default_factory=free_port)
    process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> PrivateRedis:
        binary = shutil.which("redis-server")
        if binary is None:
            raise RuntimeError("redis-server is not installed (apt-get install redis-server)")
        self.process = subprocess.Popen(
            [
                *(binary, "--port", str(self.port), "--bind", "127.0.0.1"),
                *("--save", "", "--appendonly", "no", "--protected-mode", "no"),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while True:
            try:
                redis.Redis.from_url(self.url, socket_connect_timeout=1).ping()
                return self
            except redis.ConnectionError:
                if time.monotonic() > deadline or self.process.poll() is not None:
                    raise
                time.sleep(0.05)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=10)
        self.process = None

    def caches(self, throttle_prefix: str = "") -> dict:
        """settings.CACHES with every Redis alias pointed at this server."""
        caches = {alias: {**values} for alias, values in settings.CACHES.items()}
        for values in caches.values():
            if values["BACKEND"].startswith("django_redis"):
                values["LOCATION"] = self.url
        if throttle_prefix:
            caches["throttle"]["KEY_PREFIX"] = throttle_prefix
        return caches


@dataclass
class CeleryProcess:
    """`celery -A metis worker` or `celery -A metis beat` as the Procfile runs it, in a child:
    under scripts/supervise.py, which starts it again when it dies.

    `environment` names the services (see `celery_environment`); the output goes to `log`.
    The supervisor leads its own session, so `kill` and `stop` reach celery and a worker's pool
    processes too; `celery_pid` is the celery process the supervisor started last.
    """

    arguments: list[str]
    environment: dict[str, str]
    log: Path
    process: subprocess.Popen | None = None

    def start(self) -> CeleryProcess:
        celery = str(Path(sys.executable).with_name("celery"))
        supervisor = [sys.executable, str(ROOT / "scripts" / "supervise.py"), "--"]
        with self.log.open("ab") as out:
            self.process = subprocess.Popen(
                [*supervisor, celery, "-A", "metis", *self.arguments],
                cwd=ROOT,
                env=self.environment,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        # The supervisor names its first child once Python is up: wait, so pids are comparable.
        deadline = time.monotonic() + 30
        while not self.celery_pids():
            assert self.alive() and time.monotonic() < deadline, self.output()
            time.sleep(0.05)
        return self

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def kill(self, sig: int = signal.SIGKILL) -> None:
        if self.alive():
            assert self.process is not None
            os.killpg(self.process.pid, sig)
            self.process.wait(timeout=30)

    def stop(self) -> None:
        """Stop it warmly (TERM), then hard if it lingers."""
        if not self.alive():
            return
        assert self.process is not None
        os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.kill()

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def celery_pids(self) -> list[int]:
        """Every celery process the supervisor started, in order."""
        return [int(pid) for pid in re.findall(r"supervise: started pid (\d+)", self.output())]


def celery_environment(
    *,
    postgres: PrivatePostgres,
    database: str,
    redis_server: PrivateRedis,
    clickhouse_dir: Path,
    s3=None,
    bucket: str = "",
    **extra: str,
) -> dict[str, str]:
    """This process's environment with every service pointed at the private ones."""
    environment = {
        **os.environ,
        "DATABASE_URL": postgres.url("metis_app", database),
        "DATABASE_OWNER_URL": postgres.url("metis_owner", database),
        "DATABASE_STAFF_READ_URL": postgres.url("metis_staff_read", database),
        "REDIS_URL": redis_server.url,
        "CELERY_BROKER_URL": redis_server.url,
        "CELERY_RESULT_BACKEND": redis_server.url,
        "CLICKHOUSE_URL": "",
        "CLICKHOUSE_CHDB_PATH": str(clickhouse_dir),
        "PROMETHEUS_MULTIPROC_DIR": str(clickhouse_dir.parent / "prometheus"),
        "LOG_FORMAT": "text",
        **extra,
    }
    if s3 is not None:
        environment |= {
            "AWS_STORAGE_BUCKET_NAME": bucket,
            "AWS_S3_ENDPOINT_URL": s3.endpoint_url,
            "AWS_ACCESS_KEY_ID": s3.access_key,
            "AWS_SECRET_ACCESS_KEY": s3.secret_key,
            "AWS_S3_REGION_NAME": "us-east-1",
            "AWS_S3_ADDRESSING_STYLE": "path",
        }
    return environment


def celery_worker(environment: dict[str, str], log: Path, *, name: str) -> CeleryProcess:
    return CeleryProcess(
        [
            *("worker", "-Q", "celery", "-P", "prefork", "--concurrency=1"),
            *(f"--hostname={name}@%h", "--without-mingle", "--without-gossip"),
            "--loglevel=INFO",
        ],
        environment,
        log,
    )


def celery_beat(environment: dict[str, str], log: Path) -> CeleryProcess:
    # A tick every second at most: the test's schedules are seconds apart.
    return CeleryProcess(["beat", "--loglevel=INFO", "--max-interval=1"], environment, log)
