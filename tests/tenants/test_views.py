"""Tenant pages: sign-in on the tenant's own host only, and only the tenant's rows shown."""

from django.test import Client

from tests.conftest import host_of
from tests.factories import TEST_PASSWORD, TenantUserFactory


def login(client: Client, email: str, password: str = TEST_PASSWORD):
    return client.post("/login/", {"email": email, "password": password})


def test_home_requires_sign_in(tenant):
    response = Client(HTTP_HOST=host_of(tenant)).get("/")
    assert response.status_code == 302
    assert response.url.startswith("/login/")


def test_signed_in_home_shows_tenant_and_user(tenant_client):
    response = tenant_client.get("/")
    assert response.status_code == 200
    assert b"Acme Lending" in response.content
    assert b"Signed in as Alice Acme (alice@acme.example)" in response.content


def test_wrong_password_is_refused_with_a_clear_error(tenant, tenant_user):
    response = login(Client(HTTP_HOST=host_of(tenant)), tenant_user.email, "wrong")
    assert response.status_code == 400
    assert b"Email or password is not right" in response.content


def test_user_of_one_tenant_cannot_sign_in_on_another_tenants_host(tenant_user, other_tenant):
    response = login(Client(HTTP_HOST=host_of(other_tenant)), tenant_user.email)
    assert response.status_code == 400
    assert "_tenant_user_id" not in response.wsgi_request.session


def test_same_email_signs_in_to_each_tenant_with_its_own_password(tenant, other_tenant):
    TenantUserFactory(tenant=tenant, email="sam@shared.example", password="acme-secret-1")
    TenantUserFactory(tenant=other_tenant, email="sam@shared.example", password="globex-secret-2")
    acme, globex = Client(HTTP_HOST=host_of(tenant)), Client(HTTP_HOST=host_of(other_tenant))
    assert login(acme, "sam@shared.example", "globex-secret-2").status_code == 400
    assert login(acme, "sam@shared.example", "acme-secret-1").status_code == 302
    assert login(globex, "sam@shared.example", "globex-secret-2").status_code == 302


def test_session_of_one_tenant_does_not_sign_in_on_another_host(tenant_client, other_tenant):
    # Replay tenant A's session cookie against tenant B's host.
    replay = Client(HTTP_HOST=host_of(other_tenant))
    replay.cookies = tenant_client.cookies
    response = replay.get("/")
    assert response.status_code == 302
    assert response.url.startswith("/login/")


def test_home_lists_only_the_tenants_own_team(tenant_client, other_tenant_user):
    content = tenant_client.get("/").content
    assert b"alice@acme.example" in content
    assert other_tenant_user.email.encode() not in content


def test_other_tenants_team_member_page_is_a_404(tenant_client, tenant_user, other_tenant_user):
    assert tenant_client.get(f"/team/{tenant_user.pk}/").status_code == 200
    assert tenant_client.get(f"/team/{other_tenant_user.pk}/").status_code == 404


def test_logout_ends_the_session(tenant_client):
    assert tenant_client.post("/logout/").status_code == 302
    assert tenant_client.get("/").status_code == 302


def test_safe_next_redirect_only(tenant, tenant_user):
    client = Client(HTTP_HOST=host_of(tenant))
    response = client.post(
        "/login/",
        {"email": tenant_user.email, "password": TEST_PASSWORD, "next": "https://evil.example/"},
    )
    assert response.url == "/"


def test_home_page_query_count_does_not_grow_with_the_team(
    tenant_client, tenant, django_assert_max_num_queries
):
    for n in range(15):
        TenantUserFactory(tenant=tenant, email=f"member{n}@acme.example")
    # tenant, set_config, signed-in user, team count and page; plus, in tests only, the
    # savepoint pair and the restore of the outer (empty) tenant setting.
    with django_assert_max_num_queries(8):
        response = tenant_client.get("/")
    assert response.content.count(b"@acme.example</td>") == 16


def test_home_page_pages_a_large_team(tenant_client, tenant, settings):
    from tenants import views

    for n in range(views.TEAM_PAGE_SIZE + 5):
        TenantUserFactory(tenant=tenant, email=f"m{n:03}@acme.example")
    first = tenant_client.get("/").content
    second = tenant_client.get("/?page=2").content
    assert first.count(b"@acme.example</td>") == views.TEAM_PAGE_SIZE
    assert second.count(b"@acme.example</td>") == 6  # 55 members + Alice, 50 per page
    assert b"Page 2 of 2" in second
