"""Find or start the services Metis needs on this machine; write their URLs to an env file.

    python scripts/local_services.py run  [--env-file var/local.env]
    python scripts/local_services.py test [--env-file var/test.env]
    python scripts/local_services.py stop

`run`: DATABASE_URL from the environment, else an embedded PostgreSQL (the pgserver wheel, data in
var/pgdata); REDIS_URL only from the environment (else the settings' file cache and filesystem
broker). `test`: the environment, else servers already running on this machine, else the embedded
ones. Variables already set in the environment are left alone.
"""

from __future__ import annotations

import argparse
import os
import socket
import sys
from pathlib import Path
from urllib.parse import quote

ROOT = Path(__file__).resolve().parent.parent
PGDATA = ROOT / "var" / "pgdata"
APP_ROLE, OWNER_ROLE, DATABASE = "metis_app", "metis_owner", "metis"


def _answers(host: str, port: int, probe: bytes, expect: bytes) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1) as sock:
            sock.sendall(probe)
            return expect in sock.recv(64)
    except OSError:
        return False


def machine_postgres() -> str | None:
    """Return an admin URL for a trusting PostgreSQL on 127.0.0.1:5432, if one answers."""
    try:
        import psycopg

        url = "postgres://postgres@127.0.0.1:5432/postgres"
        with psycopg.connect(url, connect_timeout=2) as conn:
            conn.execute("SELECT 1")
        return url
    except Exception:
        return None


def embedded_postgres() -> str:
    """Start (or reuse) the embedded server in var/pgdata; return its superuser URL."""
    import logging

    import pgserver

    logging.getLogger("pgserver").setLevel(logging.WARNING)
    PGDATA.parent.mkdir(parents=True, exist_ok=True)
    server = pgserver.get_server(PGDATA, cleanup_mode=None)  # keep running after we exit
    socket_dir = server.get_postmaster_info().socket_dir
    return f"postgres://postgres@{quote(str(socket_dir), safe='')}/postgres"


def stop_embedded_postgres() -> None:
    if not (PGDATA / "postmaster.pid").exists():
        print("embedded PostgreSQL is not running")
        return
    import pgserver
    from pgserver._commands import pg_ctl

    server = pgserver.get_server(PGDATA, cleanup_mode=None)
    pg_ctl(["-w", "stop"], pgdata=server.pgdata, user=server.system_user)
    print("embedded PostgreSQL stopped")


def _role_url(admin_url: str, role: str) -> str:
    scheme, rest = admin_url.split("://", 1)
    host_and_db = rest.split("@", 1)[-1]
    host = host_and_db.split("/", 1)[0]
    return f"{scheme}://{role}@{host}/{DATABASE}"


def resolve(mode: str) -> dict[str, str]:
    # A local run is a development server: DEBUG also serves the admin's static files.
    found: dict[str, str] = {"DJANGO_DEBUG": "true"} if mode == "run" else {}
    if "DATABASE_URL" not in os.environ:
        admin = os.environ.get("DATABASE_ADMIN_URL") or (
            machine_postgres() if mode == "test" else None
        )
        if admin is None:
            admin = embedded_postgres()
            print(f"PostgreSQL: embedded (pgserver), data in {PGDATA}")
        else:
            print(f"PostgreSQL: {admin.split('@')[-1]}")
        found |= {
            "DATABASE_ADMIN_URL": admin,
            "DATABASE_URL": _role_url(admin, APP_ROLE),
            "DATABASE_OWNER_URL": _role_url(admin, OWNER_ROLE),
        }
    else:
        print("PostgreSQL: DATABASE_URL from the environment")
    if "REDIS_URL" not in os.environ:
        if mode == "test" and _answers("127.0.0.1", 6379, b"PING\r\n", b"+PONG"):
            found["REDIS_URL"] = "redis://127.0.0.1:6379/0"
            print("Redis: 127.0.0.1:6379")
        else:
            for folder in ("broker/queue", "broker/processed", "celery-results", "cache"):
                (ROOT / "var" / folder).mkdir(parents=True, exist_ok=True)
            print("Redis: none; file cache and filesystem broker under var/")
    else:
        print("Redis: REDIS_URL from the environment")
    return found


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("mode", choices=["run", "test", "stop"])
    parser.add_argument("--env-file", type=Path)
    args = parser.parse_args()
    if args.mode == "stop":
        stop_embedded_postgres()
        return 0
    env_file = args.env_file or ROOT / "var" / ("local.env" if args.mode == "run" else "test.env")
    values = resolve(args.mode)
    env_file.parent.mkdir(parents=True, exist_ok=True)
    env_file.write_text("".join(f"{key}={value}\n" for key, value in values.items()))
    print(f"wrote {env_file.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
