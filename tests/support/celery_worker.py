"""A real Celery worker process of the project, on the real Redis broker, for tests.

`start` runs this module as a child process: the project's Celery app, with broker transport
options of the test's own (a private key prefix, so its short visibility timeout restores no
other test's messages; the timeout itself), pointed at the test database, consuming a private
queue. `connection` is the matching broker connection for sending to it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import quote

from django.conf import settings
from kombu import Connection

ROOT = Path(__file__).resolve().parents[2]


def environment(**overrides: str) -> dict[str, str]:
    """This process's environment with the database URLs of the test database."""

    def url(alias: str) -> str:
        db = settings.DATABASES[alias]
        password = f":{quote(db['PASSWORD'], safe='')}" if db.get("PASSWORD") else ""
        host = quote(db["HOST"], safe="")  # a socket directory travels percent-encoded
        return f"postgres://{db['USER']}{password}@{host}:{db['PORT'] or 5432}/{db['NAME']}"

    return {
        **os.environ,
        "DATABASE_URL": url("default"),
        "DATABASE_OWNER_URL": url("owner"),
        **overrides,
    }


def start(
    *,
    queue: str,
    transport_options: dict,
    log: Path,
    concurrency: int = 1,
    include: str = "",
) -> subprocess.Popen:
    """Start a prefork worker consuming `queue`; its output goes to `log`. Kill it yourself."""
    argv = [
        sys.executable,
        "-m",
        "tests.support.celery_worker",
        json.dumps(transport_options),
        "-Q",
        queue,
        "-P",
        "prefork",
        f"--concurrency={concurrency}",
        f"--hostname={queue}@%h",
        "--without-mingle",
        "--without-gossip",
        "--without-heartbeat",
        "--loglevel=INFO",
        *([f"--include={include}"] if include else []),
    ]
    with log.open("ab") as out:
        return subprocess.Popen(
            argv,
            cwd=ROOT,
            env=environment(),
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # killpg reaches the pool processes too
        )


def connection(transport_options: dict) -> Connection:
    """A broker connection with the same key prefix as the worker's."""
    return Connection(settings.CELERY_BROKER_URL, transport_options=transport_options)


def wait_for(predicate, *, timeout: float = 30, what: str = "condition"):
    """Return the first true value of `predicate()`, polled every 0.1 s; fail after `timeout`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = predicate()
        if result:
            return result
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def main(argv: list[str]) -> None:
    from metis.celery import app

    options = json.loads(argv[0])
    app.conf.broker_transport_options = {**app.conf.broker_transport_options, **options}
    app.worker_main(["worker", *argv[1:]])


if __name__ == "__main__":
    main(sys.argv[1:])
