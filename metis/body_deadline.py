"""Read each request body in full, against a deadline, before Django sees the request.

Without a buffering proxy in front, Django reads the body while the request runs: a client
trickling its upload keeps a server thread, and whatever the request already holds (a pooled
database connection is checked out by the first query and only returned when the response
ends), for as long as it likes. This WSGI middleware reads the body first, into memory or a
temporary file, and hands Django a complete one; a client that sends too slowly gets a 408 and
Django never runs.

The deadline is Apache mod_reqtimeout's `body=20,MinRate=500`: `timeout` seconds, plus one
second for every `min_rate` bytes received. An upload at a decent rate always finishes however
large it is; a client sending a byte every few seconds is cut off after about `timeout` seconds.

gunicorn reads a body in blocking steps of at least 1 KiB, so a socket timeout alone cannot cut
off a client that sends one byte just inside it, again and again: one watchdog thread per
process shuts the read side of a socket whose deadline passed, which ends the blocked read.

A chunked body (Transfer-Encoding: chunked, no Content-Length) is refused with a 411 before
anything reads it, on every endpoint. gunicorn hands such a body to the app without a length,
Django reads it as empty (so no view can use it), and whatever is left unread gunicorn drains
before the connection's next request, in a server thread, with no deadline: a client trickling
chunks would hold that thread for as long as it liked. The refusal shuts the socket's read side,
so gunicorn closes the connection after the 411 instead of draining. Clients send uploads with a
Content-Length (browsers always do; the presigned multipart API sends parts straight to S3).
"""

from __future__ import annotations

import contextlib
import json
import socket
import tempfile
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

Environ = dict[str, Any]
StartResponse = Callable[..., Any]
Application = Callable[[Environ, StartResponse], Iterable[bytes]]

# Bodies up to this size stay in memory; larger ones go to a temporary file.
_IN_MEMORY = 1024 * 1024
_TIMEOUT_BODY = b"Request Timeout: the request body arrived too slowly.\n"
CHUNKED_MESSAGE = (
    "The body came chunked (Transfer-Encoding: chunked), without a Content-Length header; "
    "this server does not read such bodies and saved nothing. Send it again with its "
    "Content-Length."
)


class _Watchdog:
    """Shut the read side of each watched socket once its deadline has passed."""

    def __init__(self) -> None:
        self._deadlines: dict[socket.socket, float] = {}
        self._expired: set[socket.socket] = set()
        self._changed = threading.Condition()
        self._thread: threading.Thread | None = None

    def watch(self, sock: socket.socket, deadline: float) -> None:
        with self._changed:
            new = sock not in self._deadlines
            self._deadlines[sock] = deadline
            if self._thread is None:
                # Started on first use, in the worker process (after gunicorn's fork).
                self._thread = threading.Thread(target=self._run, name="body-deadline", daemon=True)
                self._thread.start()
            if new:  # a later deadline needs no wake-up: the thread re-reads it when it wakes
                self._changed.notify()

    def forget(self, sock: socket.socket) -> bool:
        """Stop watching `sock`; return whether its deadline passed while it was watched."""
        with self._changed:
            self._deadlines.pop(sock, None)
            if sock in self._expired:
                self._expired.discard(sock)
                return True
            return False

    def _run(self) -> None:
        with self._changed:
            while True:
                now = time.monotonic()
                for sock, deadline in list(self._deadlines.items()):
                    if deadline <= now:
                        # Under the lock: the reader cannot forget (and gunicorn close) the socket
                        # between our check and the shutdown.
                        del self._deadlines[sock]
                        self._expired.add(sock)
                        with contextlib.suppress(OSError):  # the client has gone already
                            sock.shutdown(socket.SHUT_RD)
                wait = min(self._deadlines.values(), default=now + 60) - now
                self._changed.wait(timeout=max(wait, 0.01))


_watchdog = _Watchdog()


class RequestBodyDeadline:
    """WSGI middleware: buffer the request body under a deadline, or answer 408."""

    def __init__(
        self, app: Application, *, timeout: float, min_rate: float, max_bytes: int
    ) -> None:
        self.app = app
        self.timeout = timeout
        self.min_rate = min_rate
        self.max_bytes = max_bytes
        # Each read must be able to finish within the deadline at the minimum rate.
        self.step = max(1024, min(64 * 1024, int(min_rate * timeout / 2)))

    def __call__(self, environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        if _chunked(environ):
            return _refuse_chunked(environ, start_response)
        try:
            length = int(environ.get("CONTENT_LENGTH") or 0)
        except ValueError:
            length = 0  # Django treats it the same way
        # Only gunicorn hands us its socket; without it (runserver, tests) there is no deadline.
        sock = environ.get("gunicorn.socket")
        # A body larger than the app accepts is refused unread by Django: never buffer it.
        if not self.timeout or sock is None or not 0 < length <= self.max_bytes:
            return self.app(environ, start_response)
        body = tempfile.SpooledTemporaryFile(max_size=_IN_MEMORY)  # noqa: SIM115 (handed on)
        if not self._read(environ["wsgi.input"], sock, length, body):
            body.close()
            start_response(
                "408 Request Timeout",
                [("Content-Type", "text/plain"), ("Content-Length", str(len(_TIMEOUT_BODY)))],
            )
            return [_TIMEOUT_BODY]
        body.seek(0)
        # A short body (the client closed early) goes on as received: Django refuses it as
        # it would have anyway. The spool is unlinked already; it goes when the environ does.
        environ["wsgi.input"] = body
        return self.app(environ, start_response)

    def _read(self, stream, sock: socket.socket, length: int, body) -> bool:
        """Copy up to `length` bytes of `stream` into `body`; return False past the deadline."""
        start = time.monotonic()
        received = 0
        _watchdog.watch(sock, start + self.timeout)
        try:
            while received < length:
                chunk = stream.read(min(self.step, length - received))
                if not chunk:
                    break
                body.write(chunk)
                received += len(chunk)
                _watchdog.watch(sock, start + self.timeout + received / self.min_rate)
        finally:
            expired = _watchdog.forget(sock)
        return not expired or received == length


def _chunked(environ: Environ) -> bool:
    encoding = environ.get("HTTP_TRANSFER_ENCODING", "").lower()
    return "chunked" in encoding and not environ.get("CONTENT_LENGTH")


def _refuse_chunked(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
    """Answer 411 without reading the body; under gunicorn, end the connection after it."""
    sock = environ.get("gunicorn.socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RD)
    accept = environ.get("HTTP_ACCEPT", "")
    if (
        "application/json" in accept
        or environ.get("CONTENT_TYPE", "").startswith("application/json")
        or environ.get("PATH_INFO", "").startswith("/documents/multipart/")
    ):
        body, content_type = json.dumps({"error": CHUNKED_MESSAGE}).encode(), "application/json"
    else:
        body, content_type = (CHUNKED_MESSAGE + "\n").encode(), "text/plain; charset=utf-8"
    start_response(
        "411 Length Required",
        [("Content-Type", content_type), ("Content-Length", str(len(body)))],
    )
    return [body]
