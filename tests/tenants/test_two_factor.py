"""Staff two-factor: no admin on a password alone; codes computed with pyotp, as a phone would."""

import io
import re
import time

import pyotp
import pytest
from django.conf import settings
from django.core.management import call_command
from django.test import Client

from tenants import two_factor
from tenants.models import StaffTenantAccess
from tests.factories import TEST_PASSWORD
from tests.support import staff

WORKBENCH = "/admin/analytics/workbench/"


def staff_host() -> Client:
    return Client(HTTP_HOST=settings.METIS_BASE_DOMAIN)


def password_step(client: Client, password: str = TEST_PASSWORD):
    return client.post("/admin/login/?next=/admin/", {"username": "staffer", "password": password})


def test_a_password_alone_does_not_open_the_admin(staff_user):
    staff.authenticator_app(staff_user)
    client = staff_host()
    step = password_step(client)
    assert step.status_code == 302 and step["Location"].startswith("/admin/two-factor/verify/")
    assert client.get("/admin/").status_code == 302  # still to the sign-in page
    assert "_auth_user_id" not in client.session


def test_a_session_signed_in_without_a_second_factor_is_refused(staff_user):
    client = staff_host()
    client.force_login(staff_user)  # as an old, pre-two-factor session would be
    response = client.get("/admin/")
    assert response.status_code == 302 and response["Location"].startswith("/admin/login/")


def test_password_then_app_code_signs_in_on_a_new_session_key(staff_user):
    app = staff.authenticator_app(staff_user)
    client = staff_host()
    client.get("/admin/login/")
    before = client.cookies.get(settings.SESSION_COOKIE_NAME)
    step = password_step(client)
    done = client.post(step["Location"], {"code": app.now()})
    assert done.status_code == 302 and done["Location"] == "/admin/"
    assert client.get("/admin/").status_code == 200
    assert before is None or client.cookies[settings.SESSION_COOKIE_NAME].value != before.value


def test_a_wrong_or_replayed_code_is_refused(staff_user):
    app = staff.authenticator_app(staff_user)
    first = staff_host()
    code = app.now()
    step = password_step(first)
    wrong = first.post(step["Location"], {"code": "000000" if code != "000000" else "111111"})
    assert b"not right" in wrong.content and first.get("/admin/").status_code == 302
    time.sleep(1.1)  # django-otp refuses any code for a second after a wrong one
    assert first.post(step["Location"], {"code": code}).status_code == 302
    second = staff_host()
    step = password_step(second)
    replay = second.post(step["Location"], {"code": code})
    assert replay.status_code == 200 and b"not right, or was already used" in replay.content
    assert second.get("/admin/").status_code == 302


def test_a_wrong_password_never_reaches_the_code_step(staff_user):
    staff.authenticator_app(staff_user)
    client = staff_host()
    assert password_step(client, "wrong").status_code == 200
    assert client.get("/admin/two-factor/verify/").status_code == 302


def test_staff_without_an_app_enrol_one_and_get_backup_codes(staff_user):
    client = staff_host()
    step = password_step(client)
    assert step["Location"].startswith("/admin/two-factor/setup/")
    page = client.get(step["Location"]).content.decode()
    assert "<svg" in page and "otpauth" not in page  # the QR code is drawn, not linked
    secret = re.search(r'id="two-factor-secret">([A-Z2-7 ]+)<', page).group(1).replace(" ", "")
    assert client.get(step["Location"]).content.decode().count(secret[:4]) >= 1  # stable on reload
    done = client.post(step["Location"], {"code": pyotp.TOTP(secret).now()})
    codes = re.findall(r"<li><code>(\w+)</code></li>", done.content.decode())
    assert len(codes) == two_factor.BACKUP_CODES
    assert client.get("/admin/").status_code == 200

    # A backup code signs in once.
    again = staff_host()
    assert again.post(password_step(again)["Location"], {"code": codes[0]}).status_code == 302
    assert again.get("/admin/").status_code == 200
    third = staff_host()
    assert third.post(password_step(third)["Location"], {"code": codes[0]}).status_code == 200


def test_a_wrong_first_code_does_not_enrol(staff_user):
    client = staff_host()
    step = password_step(client)
    client.get(step["Location"])
    assert client.post(step["Location"], {"code": "123456"}).status_code == 200
    assert not two_factor.has_second_factor(staff_user)
    assert client.get("/admin/").status_code == 302


def stale(client: Client) -> None:
    session = client.session
    session[two_factor.CONFIRMED_AT_KEY] = time.time() - settings.STAFF_RECONFIRM_MINUTES * 60 - 1
    session.save()


@pytest.mark.committed
def test_all_tenants_mode_asks_again_after_the_window(staff_user, tenant_user):
    client = staff_host()
    app = staff.authenticator_app(staff_user)
    staff.sign_in(client, username="staffer", password=TEST_PASSWORD, app=app)
    assert client.post("/admin/tenant-context/", {"tenant": "all"}).status_code == 302
    assert client.get("/admin/tenants/tenantuser/").context["staff_all_tenants"]

    stale(client)
    # The mode already entered lapses with the window...
    assert not client.get("/admin/tenants/tenantuser/").context["staff_all_tenants"]
    # ...and entering it again asks for a code first.
    asked = client.post("/admin/tenant-context/", {"tenant": "all"})
    assert asked["Location"].startswith("/admin/two-factor/confirm/")
    assert StaffTenantAccess.objects.count() == 1
    confirmed = client.post(asked["Location"], {"code": staff.next_code(app, steps_ahead=1)})
    assert confirmed["Location"] == "/admin/tenant-context/"
    client.post("/admin/tenant-context/", {"tenant": "all"})
    assert StaffTenantAccess.objects.count() == 2


def test_the_workbench_asks_again_after_the_window(s3_bucket, staff_user):
    client = staff_host()
    app = staff.authenticator_app(staff_user)
    staff.sign_in(client, username="staffer", password=TEST_PASSWORD, app=app)
    assert client.get(WORKBENCH).status_code == 200
    stale(client)
    asked = client.get(WORKBENCH)
    assert asked.status_code == 302 and asked["Location"].startswith("/admin/two-factor/confirm/")
    wrong = client.post(asked["Location"], {"code": "000000"})
    assert wrong.status_code == 200 and client.get(WORKBENCH).status_code == 302
    time.sleep(1.1)  # django-otp refuses any code for a second after a wrong one
    client.post(asked["Location"], {"code": staff.next_code(app, steps_ahead=1)})
    assert client.get(WORKBENCH).status_code == 200


def test_new_backup_codes_replace_the_old(staff_client, staff_user):
    page = staff_client.post("/admin/two-factor/")
    codes = re.findall(r"<li><code>(\w+)</code></li>", page.content.decode())
    assert len(codes) == two_factor.BACKUP_CODES
    renewed = staff_client.post("/admin/two-factor/")
    assert codes[0] not in renewed.content.decode()
    assert two_factor.device_for_code(user=staff_user, code=codes[0]) is None


def test_the_reset_command_makes_the_next_sign_in_enrol_anew(staff_user):
    staff.authenticator_app(staff_user)
    two_factor.backup_codes_renew(user=staff_user)
    out = io.StringIO()
    call_command("staff_two_factor_reset", "staffer", stdout=out)
    assert "Removed 2 device(s)" in out.getvalue()
    step = password_step(staff_host())
    assert step["Location"].startswith("/admin/two-factor/setup/")


def test_a_superuser_removes_a_lost_phone_from_the_user_admin(staff_client, staff_user_model):
    lost = staff_user_model.objects.create_user("lost", password=TEST_PASSWORD, is_staff=True)
    staff.authenticator_app(lost)
    action = {"action": "second_factors_remove", "_selected_action": [str(lost.pk)]}
    staff_client.post("/admin/auth/user/", action)
    assert not two_factor.has_second_factor(lost)


def test_removing_devices_needs_a_recent_second_factor(staff_client, staff_user_model):
    lost = staff_user_model.objects.create_user("lost", password=TEST_PASSWORD, is_staff=True)
    staff.authenticator_app(lost)
    stale(staff_client)
    action = {"action": "second_factors_remove", "_selected_action": [str(lost.pk)]}
    staff_client.post("/admin/auth/user/", action)
    assert two_factor.has_second_factor(lost)
