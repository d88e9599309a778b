"""A private PostgreSQL that speaks TLS only, with a server certificate from a CA made here.

For the tests that connect the way production should (`sslmode=verify-full` and the CA file in
DATABASE_URL); the machine's own server is never touched. The cluster runs in a temp dir on a
free port of 127.0.0.1, as the `postgres` OS user when we are root (initdb refuses root), and its
pg_hba refuses every TCP connection without TLS.
"""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from backups import cluster, config
from tests.support.backup_sandbox import default_os_user


def _openssl(*args: str) -> None:
    subprocess.run(["openssl", *args], check=True, capture_output=True)


def certificate_authority(directory: Path, name: str) -> tuple[Path, Path]:
    """Make a self-signed CA in `directory`; return its certificate and key."""
    cert, key = directory / f"{name}.crt", directory / f"{name}.key"
    _openssl(
        "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
        "-keyout", str(key), "-out", str(cert), "-subj", f"/CN={name}",
        "-addext", "basicConstraints=critical,CA:TRUE",
        "-addext", "keyUsage=critical,keyCertSign,cRLSign",
    )  # fmt: skip
    return cert, key


def server_certificate(directory: Path, ca: tuple[Path, Path]) -> tuple[Path, Path]:
    """Make a certificate for 127.0.0.1 and localhost signed by `ca`; return it and its key."""
    cert, key = directory / "server.crt", directory / "server.key"
    request, extensions = directory / "server.csr", directory / "server.ext"
    extensions.write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    _openssl(
        "req", "-new", "-newkey", "rsa:2048", "-nodes",
        "-keyout", str(key), "-out", str(request), "-subj", "/CN=127.0.0.1",
    )  # fmt: skip
    _openssl(
        "x509", "-req", "-in", str(request), "-CA", str(ca[0]), "-CAkey", str(ca[1]),
        "-CAcreateserial", "-days", "2", "-out", str(cert), "-extfile", str(extensions),
    )  # fmt: skip
    return cert, key


@dataclass
class TlsPostgres:
    """The running cluster: connect to 127.0.0.1:`port` as `postgres`, trusting `ca_file`."""

    root: Path
    target: config.Target
    ca_file: Path
    other_ca_file: Path  # a CA that did not sign the server's certificate

    @property
    def port(self) -> int:
        return self.target.port

    def url(self, *, ca_file: Path | None = None, sslmode: str = "verify-full") -> str:
        query = f"sslmode={sslmode}&sslrootcert={ca_file or self.ca_file}"
        return f"postgres://postgres@127.0.0.1:{self.port}/postgres?{query}"

    def stop(self) -> None:
        cluster.remove(self.target)
        shutil.rmtree(self.root, ignore_errors=True)


def tls_postgres_start() -> TlsPostgres:
    """Start the cluster with ssl=on; stop it with `.stop()`."""
    os_user = default_os_user()
    root = cluster.scratch_directory(os_user, prefix="metis-pg-tls-")
    target = config.Target(
        stanza="tls",
        data_dir=root / "data",
        port=cluster.free_port(),
        socket_dir=root,
        bin_dir=Path("/usr/lib/postgresql/15/bin"),
        os_user=os_user,
        database="postgres",
    )
    try:
        certs = root / "certs"
        certs.mkdir()
        ca = certificate_authority(certs, "metis-test-ca")
        other_ca, _ = certificate_authority(certs, "some-other-ca")
        server_cert, server_key = server_certificate(certs, ca)
        cluster.initdb(target)
        # The server reads its key only if the key is its own and private.
        for path in (server_cert, server_key):
            shutil.copy(path, target.data_dir / path.name)
            (target.data_dir / path.name).chmod(0o600)
            config.chown_to(target.data_dir / path.name, os_user)
        (target.data_dir / "pg_hba.conf").write_text(
            "local all all trust\n"
            "hostssl all all 127.0.0.1/32 trust\n"
            "hostnossl all all 0.0.0.0/0 reject\n"
        )
        cluster.write_settings(
            target,
            {
                "listen_addresses": "127.0.0.1",
                "ssl": "on",
                "ssl_cert_file": "server.crt",
                "ssl_key_file": "server.key",
                "max_connections": "20",
                "shared_buffers": "16MB",
            },
        )
        cluster.start(target)
    except BaseException:
        cluster.remove(target)
        shutil.rmtree(root, ignore_errors=True)
        raise
    return TlsPostgres(root=root, target=target, ca_file=ca[0], other_ca_file=other_ca)
