"""Tenant pages at <subdomain>.<base domain>: sign in, sign out, home, team."""

from __future__ import annotations

from functools import wraps

from django import forms
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_POST

from tenants import auth, client_ip, throttle
from tenants.http import TenantRequest
from tenants.models import TenantUser


class LoginForm(forms.Form):
    email = forms.EmailField()
    password = forms.CharField(strip=False, widget=forms.PasswordInput)


def safe_next_url(request: HttpRequest, *, fallback: str) -> str:
    """Return the POSTed `next` URL if it stays on this host, else `fallback`."""
    next_url = request.POST.get("next", "")
    allowed = url_has_allowed_host_and_scheme(next_url, allowed_hosts={request.get_host()})
    return next_url if next_url and allowed else fallback


def tenant_login_required(view):
    @wraps(view)
    def wrapper(request: TenantRequest, *args, **kwargs) -> HttpResponse:
        if request.tenant_user is None:
            return redirect(f"{reverse('tenants:login')}?next={request.get_full_path()}")
        return view(request, *args, **kwargs)

    return wrapper


def login_view(request: TenantRequest) -> HttpResponse:
    form = LoginForm(request.POST or None)
    status = 400 if request.method == "POST" else 200
    lock = None
    if request.method == "POST" and form.is_valid():
        email, ip = form.cleaned_data["email"], client_ip.client_ip(request)
        lock = throttle.sign_in_lock(tenant=request.tenant, account=email, ip=ip)
        user = None
        if lock is None:
            user = auth.tenant_user_authenticate(
                tenant=request.tenant, email=email, password=form.cleaned_data["password"]
            )
        if user is not None:
            throttle.sign_in_succeeded(tenant=request.tenant, account=email)
            auth.tenant_login(request, user)
            return redirect(safe_next_url(request, fallback=reverse("tenants:home")))
        auth.tenant_login_failed(request, email=email)
        lock = throttle.sign_in_failed(
            tenant=request.tenant, account=email, ip=ip, refused=lock is not None
        )
        if lock is None:
            form.add_error(None, "Email or password is not right for this organisation.")
        else:
            form.add_error(None, lock.message())
            status = 429
    context = {"form": form, "next": request.GET.get("next", "")}
    response = render(request, "tenants/login.html", context, status=status)
    if lock is not None:
        response["Retry-After"] = str(lock.retry_after())
    return response


@require_POST
def logout_view(request: TenantRequest) -> HttpResponse:
    auth.tenant_logout(request)
    return redirect("tenants:login")


TEAM_PAGE_SIZE = 50


@tenant_login_required
def home_view(request: TenantRequest) -> HttpResponse:
    team = TenantUser.objects.for_tenant(request.tenant).active()
    page = Paginator(team, TEAM_PAGE_SIZE).get_page(request.GET.get("page"))
    return render(request, "tenants/home.html", {"team": page})


@tenant_login_required
def team_member_view(request: TenantRequest, user_id) -> HttpResponse:
    member = get_object_or_404(TenantUser.objects.for_tenant(request.tenant), pk=user_id)
    return render(request, "tenants/team_member.html", {"member": member})
