"""Tenant password reset by email (tenants.passwords, tenants.password_views): a link that works
once, expires, is stored only as a hash and only on its own tenant's host."""

from __future__ import annotations

import hashlib
import re
from datetime import timedelta

import pytest
from django.db import DatabaseError, connection, transaction
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from metis.celery import app
from metis.events.models import EventOutbox
from tenants import db, events, password_views, passwords
from tenants.models import PasswordResetToken, TenantUser
from tests.conftest import host_of
from tests.factories import TEST_PASSWORD, TenantUserFactory
from tests.tenants.test_passwords import NEW_PASSWORD, WEAK_PASSWORDS

LINK = re.compile(r"^(https?://\S+/password-reset/([A-Za-z0-9_-]+)/)$", re.M)


@pytest.fixture(autouse=True)
def eager():
    """Run the reset task here, as a worker would, with its errors raised in the test."""
    # Celery's settings object cannot be monkeypatched (it has no attribute to delete back).
    previous = app.conf.task_always_eager, app.conf.task_eager_propagates
    app.conf.task_always_eager = app.conf.task_eager_propagates = True
    yield
    app.conf.task_always_eager, app.conf.task_eager_propagates = previous


@pytest.fixture
def ask(django_capture_on_commit_callbacks):
    """Ask for a reset link on a tenant's host; the task runs once the request's work commits."""

    def ask(tenant, email: str, client: Client | None = None):
        client = client or Client(HTTP_HOST=host_of(tenant))
        with django_capture_on_commit_callbacks(execute=True):
            return client.post("/password-reset/", {"email": email})

    return ask


def token_in(mail) -> str:
    return LINK.search(mail.body).group(2)


def tokens_of(tenant) -> list[PasswordResetToken]:
    with db.tenant_context(tenant.pk):
        return list(PasswordResetToken.objects.for_tenant(tenant).order_by("created_at", "pk"))


def open_link(tenant, token: str) -> Client:
    """Follow the emailed link in a fresh browser; return it on the set-password page."""
    client = Client(HTTP_HOST=host_of(tenant))
    response = client.get(f"/password-reset/{token}/")
    assert response.status_code == 302, response.content
    assert response.url == "/password-reset/set/"
    return client


def set_password(client: Client, password: str = NEW_PASSWORD):
    return client.post(
        "/password-reset/set/", {"new_password1": password, "new_password2": password}
    )


def signs_in(tenant, email: str, password: str) -> bool:
    response = Client(HTTP_HOST=host_of(tenant)).post(
        "/login/", {"email": email, "password": password}
    )
    return response.status_code == 302


def test_sign_in_page_links_to_password_reset(tenant):
    content = Client(HTTP_HOST=host_of(tenant)).get("/login/").content.decode()
    assert 'href="/password-reset/">Forgot your password?</a>' in content


def test_reset_mails_a_link_to_the_tenants_host(tenant, tenant_user, ask, mailoutbox, settings):
    settings.DEFAULT_FROM_EMAIL = "Metis <no-reply@metis.example>"
    response = ask(tenant, "Alice@Acme.example ")
    assert response.status_code == 302 and response.url == "/password-reset/sent/"
    [mail] = mailoutbox
    assert mail.to == [tenant_user.email]
    assert mail.from_email == "Metis <no-reply@metis.example>"
    assert "Acme Lending" in mail.subject
    link = LINK.search(mail.body).group(1)
    assert link == f"http://{host_of(tenant)}/password-reset/{token_in(mail)}/"
    assert "30 minutes" in mail.body


def test_reset_link_sets_a_new_password_then_signs_in(tenant, tenant_user, ask, mailoutbox):
    ask(tenant, tenant_user.email)
    client = open_link(tenant, token_in(mailoutbox[0]))
    page = client.get("/password-reset/set/")
    assert page.status_code == 200 and b"Set a new password" in page.content
    response = set_password(client)
    assert response.status_code == 302 and response.url == "/login/"
    assert b"Your password is set. Sign in with it." in client.get("/login/").content
    assert signs_in(tenant, tenant_user.email, NEW_PASSWORD)
    assert not signs_in(tenant, tenant_user.email, TEST_PASSWORD)


def test_reset_link_works_once(tenant, tenant_user, ask, mailoutbox):
    ask(tenant, tenant_user.email)
    token = token_in(mailoutbox[0])
    client = open_link(tenant, token)
    assert set_password(client).status_code == 302
    again = Client(HTTP_HOST=host_of(tenant)).get(f"/password-reset/{token}/")
    assert again.status_code == 410
    assert b"This link has expired or was already used" in again.content
    assert b'href="/password-reset/">Ask for a new one</a>' in again.content
    # Nor can the browser that used it set a second password with its session.
    assert set_password(client, "another-fine-password-7").status_code == 410
    assert signs_in(tenant, tenant_user.email, NEW_PASSWORD)


def test_of_two_browsers_on_one_link_only_the_first_sets_a_password(
    tenant, tenant_user, ask, mailoutbox
):
    ask(tenant, tenant_user.email)
    token = token_in(mailoutbox[0])
    first, second = open_link(tenant, token), open_link(tenant, token)
    assert set_password(first).status_code == 302
    assert set_password(second, "another-fine-password-7").status_code == 410
    assert signs_in(tenant, tenant_user.email, NEW_PASSWORD)


def test_a_token_found_before_it_was_spent_is_refused_when_spent(tenant, tenant_user, ask):
    # Two requests that both found the token usable: the database, not the row each holds,
    # decides, and only the first sets a password.
    ask(tenant, tenant_user.email)
    [row] = tokens_of(tenant)
    with db.tenant_context(tenant.pk):
        found = passwords.reset_token_find(tenant=tenant, token_hash=row.token_hash)
        stale = passwords.reset_token_find(tenant=tenant, token_hash=row.token_hash)
        assert passwords.password_reset_complete(token=found, password=NEW_PASSWORD)
        assert not passwords.password_reset_complete(token=stale, password="another-fine-pw-7")
    assert signs_in(tenant, tenant_user.email, NEW_PASSWORD)


def test_the_link_redirects_to_a_page_without_the_token(tenant, tenant_user, ask, mailoutbox):
    ask(tenant, tenant_user.email)
    token = token_in(mailoutbox[0])
    client = Client(HTTP_HOST=host_of(tenant))
    response = client.get(f"/password-reset/{token}/", follow=True)
    assert [url for url, _ in response.redirect_chain] == ["/password-reset/set/"]
    assert token not in response.content.decode()
    assert response["Cache-Control"].startswith("max-age=0")  # never_cache


def test_link_opened_is_not_spent_until_the_password_is_set(tenant, tenant_user, ask, mailoutbox):
    # Mail scanners open links before people do: opening alone must not spend it.
    ask(tenant, tenant_user.email)
    token = token_in(mailoutbox[0])
    open_link(tenant, token)
    assert set_password(open_link(tenant, token)).status_code == 302


def test_unknown_email_gets_the_same_page_and_no_mail(tenant, tenant_user, ask, mailoutbox):
    known = ask(tenant, tenant_user.email)
    unknown = ask(tenant, "nobody@acme.example")
    assert (unknown.status_code, unknown.url) == (known.status_code, known.url)
    sent = Client(HTTP_HOST=host_of(tenant)).get(unknown.url)
    assert b"If an account of Acme Lending uses that address" in sent.content
    assert [mail.to for mail in mailoutbox] == [[tenant_user.email]]
    assert len(tokens_of(tenant)) == 1


def test_known_and_unknown_emails_cost_the_request_the_same_work(
    tenant, tenant_user, django_capture_on_commit_callbacks
):
    # The request only queues the task, whatever the email: the same queries, no lookup of the
    # user, no write. Nothing in its time or its answer tells whether the account exists.
    client = Client(HTTP_HOST=host_of(tenant))
    client.get("/password-reset/")  # the host's tenant lookup is cached from here on
    work = []
    for email in (tenant_user.email, "nobody@acme.example"):
        with (
            django_capture_on_commit_callbacks() as queued,
            CaptureQueriesContext(connection) as queries,
        ):
            response = client.post("/password-reset/", {"email": email})
        assert response.status_code == 302
        work.append((len(queued), [query["sql"] for query in queries.captured_queries]))
    assert work[0] == work[1]
    assert work[0][0] == 1
    assert not any("users" in sql or "password_reset" in sql for sql in work[0][1])
    assert tokens_of(tenant) == []


def test_inactive_user_gets_no_mail(tenant, ask, mailoutbox):
    user = TenantUserFactory(tenant=tenant, email="gone@acme.example")
    with db.tenant_context(tenant.pk):
        TenantUser.objects.filter(pk=user.pk).update(is_active=False)
    assert ask(tenant, user.email).status_code == 302
    assert mailoutbox == []


def test_malformed_email_is_refused_on_the_form(tenant, ask, mailoutbox):
    response = ask(tenant, "not an email")
    assert response.status_code == 400
    assert b"Enter a valid email address." in response.content
    assert mailoutbox == []


def test_expiry_comes_from_the_setting(tenant, tenant_user, ask, settings):
    settings.TENANT_PASSWORD_RESET_MINUTES = 5
    before = timezone.now()
    ask(tenant, tenant_user.email)
    [token] = tokens_of(tenant)
    assert (
        before + timedelta(minutes=5) <= token.expires_at <= timezone.now() + timedelta(minutes=5)
    )


def expire(tenant) -> None:
    with db.tenant_context(tenant.pk):
        PasswordResetToken.objects.for_tenant(tenant).update(
            expires_at=timezone.now() - timedelta(seconds=1)
        )


def test_expired_link_gives_the_clear_page(tenant, tenant_user, ask, mailoutbox):
    ask(tenant, tenant_user.email)
    expire(tenant)
    response = Client(HTTP_HOST=host_of(tenant)).get(f"/password-reset/{token_in(mailoutbox[0])}/")
    assert response.status_code == 410
    assert b"This link has expired or was already used" in response.content


def test_link_expiring_before_the_form_is_sent_sets_nothing(tenant, tenant_user, ask, mailoutbox):
    ask(tenant, tenant_user.email)
    client = open_link(tenant, token_in(mailoutbox[0]))
    expire(tenant)
    response = set_password(client)
    assert response.status_code == 410
    assert signs_in(tenant, tenant_user.email, TEST_PASSWORD)


@pytest.mark.parametrize(
    "token",
    ["x" * 43, "short", "a" * 5000, "%00%ff", hashlib.sha256(b"guess").hexdigest()],
    ids=["unknown", "short", "huge", "bytes", "hex"],
)
def test_unknown_token_gives_the_clear_page_not_an_error(tenant, tenant_user, token):
    response = Client(HTTP_HOST=host_of(tenant)).get(f"/password-reset/{token}/")
    assert response.status_code == 410
    assert b"This link has expired or was already used" in response.content


def test_set_page_without_a_link_gives_the_clear_page(tenant, tenant_user):
    client = Client(HTTP_HOST=host_of(tenant))
    assert client.get("/password-reset/set/").status_code == 410
    assert set_password(client).status_code == 410


def test_stored_hash_is_not_a_link(tenant, tenant_user, ask, mailoutbox):
    # What the table holds, sent as a link, is an unknown token.
    ask(tenant, tenant_user.email)
    [token] = tokens_of(tenant)
    response = Client(HTTP_HOST=host_of(tenant)).get(f"/password-reset/{token.token_hash}/")
    assert response.status_code == 410


def test_token_is_stored_only_as_its_sha256(tenant, tenant_user, ask, mailoutbox):
    ask(tenant, tenant_user.email)
    raw = token_in(mailoutbox[0])
    assert len(raw) >= 43  # 32 random bytes, URL-safe base64
    with db.tenant_context(tenant.pk), connection.cursor() as cursor:
        cursor.execute("SELECT t::text, token_hash FROM password_reset_tokens AS t")
        [(row, stored)] = cursor.fetchall()
    assert stored == hashlib.sha256(raw.encode()).hexdigest()
    assert raw not in row


def test_the_raw_token_never_reaches_the_database(tenant, tenant_user, ask, mailoutbox):
    # Not in a row, not in a statement (which pg_stat_activity and logs show), not in the
    # session: the link's browser holds the hash, which the table has anyway.
    with CaptureQueriesContext(connection) as queries:
        ask(tenant, tenant_user.email)
        raw = token_in(mailoutbox[0])
        client = open_link(tenant, raw)
        assert set_password(client).status_code == 302
    statements = [query["sql"] for query in queries.captured_queries]
    assert any("password_reset_tokens" in sql for sql in statements)
    assert not [sql for sql in statements if raw in sql]


def test_the_session_holds_the_tokens_hash_not_the_token(tenant, tenant_user, ask, mailoutbox):
    ask(tenant, tenant_user.email)
    raw = token_in(mailoutbox[0])
    session = open_link(tenant, raw).session
    assert session[password_views.RESET_SESSION_KEY] == passwords.token_hash(raw)
    assert raw not in str(dict(session.items()))


def test_using_a_link_spends_the_users_other_links(tenant, tenant_user, ask, mailoutbox):
    ask(tenant, tenant_user.email)
    ask(tenant, tenant_user.email)
    first, second = (token_in(mail) for mail in mailoutbox)
    assert set_password(open_link(tenant, second)).status_code == 302
    response = Client(HTTP_HOST=host_of(tenant)).get(f"/password-reset/{first}/")
    assert response.status_code == 410


def test_a_new_request_clears_the_users_spent_and_expired_rows(tenant, tenant_user, ask):
    ask(tenant, tenant_user.email)
    expire(tenant)
    ask(tenant, tenant_user.email)
    [token] = tokens_of(tenant)
    assert token.expires_at > timezone.now()


def test_password_change_spends_outstanding_links(
    tenant, tenant_user, tenant_client, ask, mailoutbox
):
    ask(tenant, tenant_user.email)
    response = tenant_client.post(
        "/account/password/",
        {
            "old_password": TEST_PASSWORD,
            "new_password1": NEW_PASSWORD,
            "new_password2": NEW_PASSWORD,
        },
    )
    assert response.status_code == 302
    response = Client(HTTP_HOST=host_of(tenant)).get(f"/password-reset/{token_in(mailoutbox[0])}/")
    assert response.status_code == 410


@pytest.mark.parametrize("case", sorted(WEAK_PASSWORDS))
def test_weak_password_is_refused_with_djangos_message(tenant, tenant_user, ask, mailoutbox, case):
    password, message = WEAK_PASSWORDS[case]
    ask(tenant, tenant_user.email)
    client = open_link(tenant, token_in(mailoutbox[0]))
    response = set_password(client, password)
    assert response.status_code == 400
    assert message in response.content.decode()
    assert signs_in(tenant, tenant_user.email, TEST_PASSWORD)
    assert set_password(client).status_code == 302  # the link still works for a good one


def test_password_like_the_users_email_is_refused(tenant, tenant_user, ask, mailoutbox):
    ask(tenant, tenant_user.email)
    response = set_password(open_link(tenant, token_in(mailoutbox[0])), "alice@acme.example")
    assert response.status_code == 400
    assert "The password is too similar to the email." in response.content.decode()


def test_the_two_passwords_must_match(tenant, tenant_user, ask, mailoutbox):
    ask(tenant, tenant_user.email)
    client = open_link(tenant, token_in(mailoutbox[0]))
    response = client.post(
        "/password-reset/set/",
        {"new_password1": NEW_PASSWORD, "new_password2": NEW_PASSWORD + "x"},
    )
    assert response.status_code == 400
    assert (
        "The two password fields didn\N{RIGHT SINGLE QUOTATION MARK}t match."
        in response.content.decode()
    )


def test_reset_signs_the_user_out_everywhere(tenant, tenant_user, tenant_client, ask, mailoutbox):
    assert tenant_client.get("/").status_code == 200
    ask(tenant, tenant_user.email)
    assert set_password(open_link(tenant, token_in(mailoutbox[0]))).status_code == 302
    response = tenant_client.get("/")
    assert response.status_code == 302 and response.url.startswith("/login/")


def test_request_and_completion_are_recorded_without_address_or_token(
    tenant, tenant_user, ask, mailoutbox
):
    ask(tenant, "nobody@acme.example")  # no account: no event
    ask(tenant, tenant_user.email)
    raw = token_in(mailoutbox[0])
    set_password(open_link(tenant, raw))
    with db.tenant_context(tenant.pk):
        recorded = sorted(EventOutbox.objects.values_list("event_type", "user_id", "data"))
    assert recorded == [
        (events.PASSWORD_RESET_COMPLETED, tenant_user.pk, {}),
        (events.PASSWORD_RESET_REQUESTED, tenant_user.pk, {}),
    ]


# --- Isolation: another tenant's tokens, through every door ------------------------------------


def test_token_of_one_tenant_does_not_work_on_another_tenants_host(
    tenant, tenant_user, other_tenant, ask, mailoutbox
):
    ask(tenant, tenant_user.email)
    token = token_in(mailoutbox[0])
    response = Client(HTTP_HOST=host_of(other_tenant)).get(f"/password-reset/{token}/")
    assert response.status_code == 410
    assert set_password(open_link(tenant, token)).status_code == 302  # still good at home


def test_other_tenants_host_mails_nothing_for_this_tenants_user(
    tenant_user, other_tenant, ask, mailoutbox
):
    # The task runs in the other tenant's context: RLS hides this tenant's user from it.
    assert ask(other_tenant, tenant_user.email).status_code == 302
    assert mailoutbox == []
    assert tokens_of(other_tenant) == []


@pytest.fixture
def both(tenant, tenant_user, other_tenant, other_tenant_user, ask):
    ask(tenant, tenant_user.email)
    ask(other_tenant, other_tenant_user.email)
    return tokens_of(tenant)[0], tokens_of(other_tenant)[0]


def test_orm_sees_only_the_current_tenants_tokens(both, tenant):
    mine, theirs = both
    with db.tenant_context(tenant.pk):
        assert list(PasswordResetToken.objects.all()) == [mine]
        assert not PasswordResetToken.objects.filter(pk=theirs.pk).exists()


def test_raw_sql_as_the_app_role_sees_only_the_current_tenants_tokens(both, tenant):
    with db.tenant_context(tenant.pk), connection.cursor() as cursor:
        cursor.execute("SELECT DISTINCT tenant_id FROM password_reset_tokens")
        assert cursor.fetchall() == [(tenant.pk,)]
    with connection.cursor() as cursor:  # no tenant context: nothing at all
        cursor.execute("SELECT count(*) FROM password_reset_tokens")
        assert cursor.fetchone() == (0,)


def test_tokens_of_another_tenant_cannot_be_written(both, tenant, other_tenant, other_tenant_user):
    _, theirs = both
    with db.tenant_context(tenant.pk):
        with pytest.raises(DatabaseError, match="row-level security"), transaction.atomic():
            PasswordResetToken.objects.create(
                tenant=other_tenant,
                user=other_tenant_user,
                token_hash="0" * 64,
                expires_at=timezone.now() + timedelta(days=1),
            )
        with connection.cursor() as cursor:
            cursor.execute(
                "UPDATE password_reset_tokens SET expires_at = now() + interval '1 year' "
                "WHERE id = %s",
                [theirs.pk],
            )
            assert cursor.rowcount == 0


def test_tokens_have_no_admin_page(staff_client, both, tenant):
    # Deliberately not in the admin: a hash tells staff nothing, and the events record requests.
    staff_client.post("/admin/tenant-context/", {"tenant": str(tenant.pk)})
    assert staff_client.get("/admin/tenants/passwordresettoken/").status_code == 404


def test_rls_audit_lists_the_token_table_as_guarded():
    from tenants import rls

    assert "password_reset_tokens" in rls.declared_tenant_tables()


@pytest.mark.django_db
def test_token_table_has_rls_enabled_and_forced():
    from tenants import rls

    [status] = [
        s for s in rls.tenant_tables_status(connection) if s.table == "password_reset_tokens"
    ]
    assert status.ok, status


def test_link_host_follows_the_request(tenant, tenant_user, ask, mailoutbox):
    ask(tenant, tenant_user.email, Client(HTTP_HOST=f"{host_of(tenant)}:8000"))
    assert f"http://{host_of(tenant)}:8000/password-reset/{token_in(mailoutbox[0])}/" in (
        mailoutbox[0].body
    )


def test_link_is_https_where_cookies_are(tenant, tenant_user, ask, mailoutbox, settings):
    # Behind a proxy that ends TLS the request looks like http; the link must not.
    settings.SESSION_COOKIE_SECURE = True
    ask(tenant, tenant_user.email)
    assert f"https://{host_of(tenant)}/password-reset/{token_in(mailoutbox[0])}/" in (
        mailoutbox[0].body
    )


def test_a_mailbox_gets_at_most_three_reset_mails_an_hour(tenant, tenant_user, ask, mailoutbox):
    answers = [ask(tenant, tenant_user.email) for _ in range(4)]
    assert [a.status_code for a in answers] == [302, 302, 302, 429]
    assert "Too many password reset requests" in answers[-1].content.decode()
    assert len(mailoutbox) == 3
    # The limit counts any email asked for: it tells nobody which accounts exist.
    unknown = [ask(tenant, "nobody@acme.example") for _ in range(4)]
    assert [a.status_code for a in unknown] == [302, 302, 302, 429]


def test_one_address_asking_for_many_emails_is_stopped(tenant, ask, settings):
    settings.PASSWORD_RESET_REQUESTS_PER_HOUR = 5
    client = Client(HTTP_HOST=host_of(tenant), REMOTE_ADDR="198.51.100.66")
    answers = [ask(tenant, f"user{n}@acme.example", client) for n in range(6)]
    assert [a.status_code for a in answers][-2:] == [302, 429]
    assert "your network address" in answers[-1].content.decode()
