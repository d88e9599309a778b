"""Shared by the documents benchmarks: a private SeaweedFS, a scratch database, and the Metis
app served over real HTTP from a subprocess (so its memory can be measured on its own), by
wsgiref or, as in production, by gunicorn with metis/gunicorn.py.

Not a benchmark itself (the leading underscore keeps `make bench`-style globbing off it).
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import http.client
import io
import itertools
import json
import os
import queue
import random
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from http.cookies import SimpleCookie
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.support import pdfs, scratch  # noqa: E402
from tests.support.ports import free_port  # noqa: E402
from tests.support.seaweedfs import SeaweedS3  # noqa: E402

BUCKET = "bench-documents"
PASSWORD = "bench password, not a secret"
MiB = 1024 * 1024


def database_url(url: str, name: str) -> str:
    parts = urllib.parse.urlsplit(url)
    return urllib.parse.urlunsplit(parts._replace(path=f"/{name}"))


def app_environment(server, database: str) -> dict[str, str]:
    """The environment the app subprocess runs with: scratch database, private S3 with SSE."""
    from django.conf import settings

    return {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "metis.settings",
        "DATABASE_URL": database_url(settings.DATABASE_URL, database),
        "DATABASE_OWNER_URL": database_url(settings.DATABASE_OWNER_URL, database),
        "AWS_STORAGE_BUCKET_NAME": BUCKET,
        "AWS_S3_ENDPOINT_URL": server.endpoint_url,
        "AWS_ACCESS_KEY_ID": server.access_key,
        "AWS_SECRET_ACCESS_KEY": server.secret_key,
        "AWS_S3_SSE": "AES256",
        "DOCUMENT_MAX_UPLOAD_BYTES": str(1024 * MiB),
        "LOG_LEVEL": "WARNING",
        "PYTHONPATH": str(ROOT),
    }


SERVE_CODE = """
import sys, django
from wsgiref.simple_server import WSGIRequestHandler, make_server
django.setup()
from django.core.wsgi import get_wsgi_application

class Quiet(WSGIRequestHandler):
    def log_message(self, *args):
        pass

server = make_server("127.0.0.1", int(sys.argv[1]), get_wsgi_application(), handler_class=Quiet)
server.serve_forever()
"""


@contextmanager
def app_server(environment: dict[str, str]):
    """Run the Metis WSGI app (wsgiref, one request at a time) in a subprocess; yield it."""
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-c", SERVE_CODE, str(port)], env=environment, cwd=ROOT
    )
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                time.sleep(0.2)
        process.port = port
        yield process
    finally:
        process.terminate()
        process.wait(timeout=15)


class TenantSession:
    """A signed-in tenant user talking HTTP to the app server, as a browser would."""

    timeout = 600  # seconds a request may take (a large upload); lower it to count hangs

    def __init__(self, port: int, host: str, email: str) -> None:
        self.port, self.host, self.cookies = port, host, SimpleCookie()
        self._cookies_lock = threading.Lock()  # upload_browser_style's lanes share the session
        page = self.request("GET", "/login/")
        token = re.search(rb'name="csrfmiddlewaretoken" value="([^"]+)"', page[2]).group(1)
        form = urllib.parse.urlencode(
            {"email": email, "password": PASSWORD, "csrfmiddlewaretoken": token.decode()}
        )
        status, _, _ = self.request(
            "POST",
            "/login/",
            form.encode(),
            {"Content-Type": "application/x-www-form-urlencoded"},
        )
        assert status == 302, status

    def _headers(self, extra: dict) -> dict:
        with self._cookies_lock:
            cookie = "; ".join(f"{k}={v.value}" for k, v in self.cookies.items())
        headers = {"Host": self.host, "Cookie": cookie, **extra}
        if "csrftoken" in self.cookies:
            headers["X-CSRFToken"] = self.cookies["csrftoken"].value
        return headers

    def request(self, method: str, path: str, body=None, headers: dict | None = None):
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=self.timeout)
        connection.request(method, path, body=body, headers=self._headers(headers or {}))
        response = connection.getresponse()
        data = response.read()
        with self._cookies_lock:
            for header in response.headers.get_all("Set-Cookie") or []:
                self.cookies.load(header)
        connection.close()
        return response.status, response.headers, data

    def upload_page(self, path: Path, document_type: str = "bank-statement"):
        """POST the file as multipart/form-data, streamed from disk (never read whole)."""
        boundary = uuid.uuid4().hex
        head = (
            f'--{boundary}\r\nContent-Disposition: form-data; name="document_type"\r\n\r\n'
            f"{document_type}\r\n--{boundary}\r\n"
            f'Content-Disposition: form-data; name="file"; filename="{path.name}"\r\n'
            "Content-Type: application/octet-stream\r\n\r\n"
        ).encode()
        tail = f"\r\n--{boundary}--\r\n".encode()

        def body():
            yield head
            with open(path, "rb") as file:
                while chunk := file.read(MiB):
                    yield chunk
            yield tail

        length = len(head) + path.stat().st_size + len(tail)
        status, _, data = self.request(
            "POST",
            "/documents/upload/",
            body(),
            {
                "Content-Type": f"multipart/form-data; boundary={boundary}",
                "Content-Length": str(length),
                "Accept": "application/json",
            },
        )
        assert status == 201, (status, data[:500])
        return json.loads(data)

    def post_json(self, path: str, payload: dict):
        status, _, data = self.request(
            "POST", path, json.dumps(payload).encode(), {"Content-Type": "application/json"}
        )
        assert status in (200, 201), (status, data[:500])
        return json.loads(data)

    def upload_presigned(self, path: Path):
        """The presigned multipart flow: start, PUT each part straight to S3, complete."""
        size = path.stat().st_size
        started = self.post_json(
            "/documents/multipart/start/",
            {
                "document_type": "bank-statement",
                "filename": path.name,
                "size": size,
                "sha256": sha256_of(path),
                "content_type": "application/pdf",
            },
        )
        parts = []
        with open(path, "rb") as file:
            for part in started["parts"]:
                file.seek((part["number"] - 1) * started["part_size"])
                parts.append(
                    {
                        "number": part["number"],
                        "etag": put(part["url"], file.read(started["part_size"])),
                    }
                )
        return self.post_json(
            "/documents/multipart/complete/", {"ticket": started["ticket"], "parts": parts}
        )

    def upload_browser_style(self, path: Path, *, parallel: int = 4, part_size: int = 8 * MiB):
        """What documents/static/documents/upload.js does, from Python: the file's SHA-256
        starts at once, beside everything else (`digest(file)`); start a checksummed upload;
        the parts are hashed a batch at a time, the batch's digests side by side (the page's
        `Promise.all` of `crypto.subtle.digest`), and their URLs asked for with the digests, the
        first part alone and then a lane-full at a time; `parallel` lanes PUT the parts to S3
        with their digests as the URLs come; then complete. Same part size and concurrency as
        the page."""
        size = path.stat().st_size
        with ThreadPoolExecutor(max_workers=2 * parallel + 2) as pool:
            whole = pool.submit(sha256_of, path)
            started = self.post_json(
                "/documents/multipart/start/",
                {
                    "document_type": "bank-statement",
                    "filename": path.name,
                    "size": size,
                    "content_type": "application/pdf",
                    "part_size": part_size,
                    "checksummed": True,
                },
            )
            count = started["part_count"]
            ready: queue.Queue = queue.Queue()
            checksums: list[str] = [""] * count
            etags: dict[int, str] = {}

            def part_digest(number: int) -> str:
                with open(path, "rb") as file:
                    file.seek((number - 1) * part_size)
                    return base64.b64encode(hashlib.sha256(file.read(part_size)).digest()).decode()

            def signer() -> None:
                try:
                    first = 1
                    while first <= count:
                        last = min(count, first if first == 1 else first + parallel - 1)
                        batch = list(range(first, last + 1))
                        digests = hashers.map(part_digest, batch)
                        for number, digest in zip(batch, digests, strict=True):
                            checksums[number - 1] = digest
                        answer = self.post_json(
                            "/documents/multipart/parts/",
                            {
                                "ticket": started["ticket"],
                                "part_numbers": batch,
                                "part_checksums": [checksums[n - 1] for n in batch],
                            },
                        )
                        for part in answer["parts"]:
                            ready.put((part["number"], part["url"]))
                        first = last + 1
                finally:  # the lanes stop, also when signing failed
                    for _ in range(parallel):
                        ready.put(None)

            def lane() -> None:
                with open(path, "rb") as file:
                    while (item := ready.get()) is not None:
                        number, url = item
                        file.seek((number - 1) * part_size)
                        etags[number] = put(
                            url,
                            file.read(part_size),
                            {"x-amz-checksum-sha256": checksums[number - 1]},
                        )

            with ThreadPoolExecutor(max_workers=parallel) as hashers:
                signed = pool.submit(signer)
                for future in [pool.submit(lane) for _ in range(parallel)]:
                    future.result()
                signed.result()
            sha256 = whole.result()
        return self.post_json(
            "/documents/multipart/complete/",
            {
                "ticket": started["ticket"],
                "sha256": sha256,
                "part_checksums": checksums,
                "parts": [{"number": n, "etag": etags[n]} for n in sorted(etags)],
            },
        )


def put(url: str, data: bytes, headers: dict | None = None) -> str:
    parts = urllib.parse.urlsplit(url)
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=600)
    connection.request("PUT", f"{parts.path}?{parts.query}", body=data, headers=headers or {})
    response = connection.getresponse()
    response.read()
    assert response.status == 200, response.status
    connection.close()
    return response.headers["ETag"]


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        while chunk := file.read(MiB):
            digest.update(chunk)
    return digest.hexdigest()


def make_pdf(path: Path, size: int) -> None:
    """A well-formed PDF (uploads must parse) of random, incompressible filler."""
    with open(path, "wb") as file:
        pdfs.write_pdf(file, size, filler=os.urandom)


def make_unique(path: Path) -> None:
    """Change a few bytes near the start (in the filler), so the next upload is not a duplicate."""
    with open(path, "r+b") as file:
        file.seek(len(pdfs.HEADER) + 1)
        file.write(uuid.uuid4().bytes)


def seed_tenant():
    """A tenant and a user in the scratch database; return (tenant, email)."""
    from tenants import db, services

    tenant = services.tenant_create(name="Bench Lender", subdomain="bench")
    email = "bench@bench.example"
    with db.tenant_context(tenant.pk):  # a script is an entry point
        services.tenant_user_create(tenant=tenant, email=email, name="Bench", password=PASSWORD)
    return tenant, email


def seed_documents(tenant, email: str, count: int) -> list[uuid.UUID]:
    """Upload `count` small PDFs as the user, the way seed_documents does; return their ids."""
    from documents import consistency, services
    from tenants import db
    from tenants.models import TenantUser

    with db.tenant_context(tenant.pk):
        user = TenantUser.objects.for_tenant(tenant).get(email=email)
    ids = []
    for number in range(count):
        content = pdfs.pdf_around(f"% statement {number} {uuid.uuid4()}\n".encode() * 50)
        # The script is the entry point: it opens the context, and sweeps once it ended.
        with contextlib.ExitStack() as after:
            after.callback(consistency.purge_uncommitted)
            after.enter_context(db.tenant_context(tenant.pk))
            document = services.document_upload(
                tenant=tenant,
                document_type="bank-statement",
                file=io.BytesIO(content),
                filename=f"statement-{number}.pdf",
                user=user,
            )
        ids.append(document.pk)
    return ids


@dataclass(frozen=True)
class Stack:
    """What a gunicorn benchmark serves: its tenant's host, one user, a few documents."""

    work: Path  # a scratch directory, removed at the end
    host: str
    email: str
    documents: list[uuid.UUID]
    environment: dict[str, str]  # the app's, for gunicorn_server


@contextmanager
def documents_stack(database: str, documents: int, *, prefix: str) -> Iterator[Stack]:
    """A private SeaweedFS and a scratch database with a tenant, a user and `documents` PDFs."""
    from django.conf import settings
    from django.test import override_settings

    work = Path(tempfile.mkdtemp(prefix=f"metis-bench-{prefix}-"))
    server = SeaweedS3(data_dir=work / "seaweed").start()
    try:
        server.client().create_bucket(Bucket=BUCKET)
        scratch.scratch_database_create(database)
        tenant, email = seed_tenant()
        with override_settings(
            AWS_STORAGE_BUCKET_NAME=BUCKET,
            AWS_S3_ENDPOINT_URL=server.endpoint_url,
            AWS_ACCESS_KEY_ID=server.access_key,
            AWS_SECRET_ACCESS_KEY=server.secret_key,
        ):
            ids = seed_documents(tenant, email, documents)
        scratch.close_all_connections()  # the server needs no connection of ours
        yield Stack(
            work=work,
            host=f"{tenant.subdomain}.{settings.METIS_BASE_DOMAIN}",
            email=email,
            documents=ids,
            environment={**app_environment(server, database), "CACHE_KEY_PREFIX": prefix},
        )
    finally:
        scratch.scratch_database_drop(database)
        server.stop()
        shutil.rmtree(work, ignore_errors=True)


@contextmanager
def gunicorn_server(environment: dict[str, str], log_path: Path, host: str) -> Iterator[int]:
    """Run gunicorn with metis/gunicorn.py on a free port; yield the port once pages answer."""
    port = free_port()
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            [str(Path(sys.executable).parent / "gunicorn"), "-c", "python:metis.gunicorn"],
            env={**environment, "GUNICORN_BIND": f"127.0.0.1:{port}"},
            cwd=ROOT,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 60
        while not page_answers(port, host):
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"gunicorn did not start; see {log_path}")
            time.sleep(0.3)
        yield port
    finally:
        process.terminate()
        process.wait(timeout=60)


def page_answers(port: int, host: str) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
            sock.sendall(f"GET /login/ HTTP/1.1\r\nHost: {host}\r\n\r\n".encode())
            return sock.recv(12).startswith(b"HTTP/1.1 200")
    except OSError:
        return False


def browsing(documents: list[uuid.UUID]) -> Iterator[str]:
    """The pages an ordinary client opens, in turn: the list, a document, the sign-in page."""
    rng = random.Random()
    for page in itertools.cycle(["/documents/", "a document", "/login/"]):
        yield f"/documents/{rng.choice(documents)}/" if page == "a document" else page
