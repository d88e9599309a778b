"""Alert fixtures: a real SMTP server (aiosmtpd) and a real HTTP server for the webhook, each on a
free port of 127.0.0.1, and settings that send every notification to them."""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from email import message_from_bytes
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from aiosmtpd.controller import Controller
from celery import current_app

from monitoring.alerts import services
from tests.support.ports import free_port

ALERT_EMAIL = "ops@metis.example"


@dataclass
class SmtpServer:
    port: int = field(default_factory=free_port)
    messages: list[Message] = field(default_factory=list)
    controller: Controller | None = None

    async def handle_DATA(self, server, session, envelope) -> str:  # aiosmtpd's handler hook
        self.messages.append(message_from_bytes(envelope.content))
        return "250 OK"

    def start(self) -> SmtpServer:
        self.controller = Controller(self, hostname="127.0.0.1", port=self.port)
        self.controller.start()
        return self

    def stop(self) -> None:
        if self.controller is not None:
            self.controller.stop()
            self.controller = None

    def subjects(self) -> list[str]:
        return [" ".join(str(m["Subject"]).split()) for m in self.messages]


@dataclass
class WebhookServer:
    """Records every POST; answers `status` (set it to 503 to play a webhook that is down)."""

    status: int = 200
    posts: list[tuple[int, dict]] = field(default_factory=list)
    server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        assert self.server is not None
        return f"http://127.0.0.1:{self.server.server_address[1]}/hooks/alerts"

    def start(self) -> WebhookServer:
        hook = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                hook.posts.append((hook.status, json.loads(body)))
                self.send_response(hook.status)
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()

    def delivered(self) -> list[str]:
        """The texts of the posts answered 2xx."""
        return [body["text"] for status, body in self.posts if status < 300]


@pytest.fixture
def smtp_server():
    server = SmtpServer().start()
    yield server
    server.stop()


@pytest.fixture
def webhook_server():
    server = WebhookServer().start()
    yield server
    server.stop()


def point_mail_at(settings, port: int) -> None:
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT = "127.0.0.1", port
    settings.EMAIL_HOST_USER = settings.EMAIL_HOST_PASSWORD = ""
    settings.EMAIL_USE_TLS = settings.EMAIL_USE_SSL = False


@pytest.fixture
def alerting(settings, smtp_server, webhook_server):
    """Notifications to the real SMTP and HTTP servers, sent here once the evaluation commits
    (eager tasks); alerts resolve at the first clear evaluation unless a test says otherwise."""
    point_mail_at(settings, smtp_server.port)
    settings.ALERT_EMAILS = [ALERT_EMAIL]
    settings.ALERT_WEBHOOK_URL = webhook_server.url
    settings.ALERT_RESOLVE_AFTER_SECONDS = 0
    previous = current_app.conf.task_always_eager
    current_app.conf.task_always_eager = True
    yield Notified(smtp_server, webhook_server)
    current_app.conf.task_always_eager = previous


@dataclass
class Notified:
    smtp: SmtpServer
    webhook: WebhookServer

    def counts(self) -> tuple[int, int]:
        return len(self.smtp.messages), len(self.webhook.delivered())

    def assert_once(self, headline: str, *, total: int) -> None:
        """Exactly one mail and one webhook post with `headline`, `total` of each so far."""
        assert self.counts() == (total, total), (self.smtp.subjects(), self.webhook.posts)
        assert sum(headline in s for s in self.smtp.subjects()) == 1, self.smtp.subjects()
        assert sum(text.startswith(headline) for text in self.webhook.delivered()) == 1


def evaluate(rule: str, **kwargs):
    evaluation = services.alerts_evaluate(only=[rule], **kwargs)
    assert not evaluation.failed_rules and not evaluation.skipped
    return evaluation
