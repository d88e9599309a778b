"""Sign-in throttling: failures counted per account and per client address, in the cache.

Two rules, both over a window of SIGN_IN_WINDOW_MINUTES: SIGN_IN_ACCOUNT_FAILURES failures for one
account (a tenant's email, or a staff username) lock that account; SIGN_IN_ADDRESS_FAILURES
failures from one client address (an IPv6 /64, which one client can hold whole) lock the address,
whatever accounts it tries. A lock lasts SIGN_IN_LOCKOUT_MINUTES, writes an audit row (and, on a
tenant's host, an event) and can be released by staff in the admin.

The account rule counts any email tried, whether or not it names an account, and a lock answers
the same in both cases: the throttle tells an attacker nothing about who exists. Keys are keyed
hashes, so the cache (Redis) holds no email address. The counters are the cache's own atomic
increments; the lock is `add`, so one request, and one only, records each lockout.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.core.cache import caches
from django.utils import timezone
from django.utils.crypto import salted_hmac

from metis.events import recorder
from tenants import events
from tenants.models import LockoutFields, LockoutScope, SignInLockout, StaffSignInLockout, Tenant

logger = logging.getLogger("metis.security")

STAFF_REALM = "staff"


@dataclass(frozen=True)
class Lock:
    scope: str
    until: datetime
    what: str = "failed sign-ins"

    def message(self) -> str:
        """Return what the person at the sign-in page reads."""
        minutes = max(1, round((self.until - timezone.now()).total_seconds() / 60))
        whose = "this account" if self.scope == LockoutScope.ACCOUNT else "your network address"
        return (
            f"Too many {self.what} for {whose}. Try again after "
            f"{self.until:%H:%M} UTC (in about {minutes} minute{'s' if minutes != 1 else ''})."
        )

    def retry_after(self) -> int:
        return max(1, int((self.until - timezone.now()).total_seconds()))


def _cache():
    # Fails closed: with Redis unreachable this raises, and sign-in (and reset mails) answer 503
    # "try again shortly" (metis/unavailable.py) while signed-in pages keep working. Failing open
    # would hand whoever can slow or stop Redis unthrottled password guesses; an outage of
    # sign-in for the minutes Redis is down is the cheaper loss. The other caches degrade.
    return caches["throttle"]


def _realm(tenant: Tenant | None) -> str:
    return STAFF_REALM if tenant is None else str(tenant.pk)


def _keys(realm: str, account: str, ip: str | None) -> dict[str, str]:
    digest = salted_hmac(
        "tenants.throttle", f"{realm}:{account.strip().lower()}", algorithm="sha256"
    ).hexdigest()
    keys: dict[str, str] = {LockoutScope.ACCOUNT: f"account:{digest}"}
    if ip:
        address = ipaddress.ip_address(ip)
        if address.version == 6:
            address = ipaddress.ip_network(f"{ip}/64", strict=False)  # type: ignore[assignment]
        keys[LockoutScope.ADDRESS] = f"address:{address}"
    return keys


def _limits() -> dict[str, int]:
    return {
        LockoutScope.ACCOUNT: settings.SIGN_IN_ACCOUNT_FAILURES,
        LockoutScope.ADDRESS: settings.SIGN_IN_ADDRESS_FAILURES,
    }


def sign_in_lock(*, tenant: Tenant | None, account: str, ip: str | None) -> Lock | None:
    """Return the lock in force for this account or address (the longer one), or None."""
    keys = _keys(_realm(tenant), account, ip)
    found = _cache().get_many([f"lock:{key}" for key in keys.values()])
    locks = [
        Lock(scope=scope, until=datetime.fromtimestamp(found[f"lock:{key}"], tz=dt.UTC))
        for scope, key in keys.items()
        if f"lock:{key}" in found
    ]
    return max(locks, key=lambda lock: lock.until, default=None)


def _count(key: str, window: int) -> int:
    cache = _cache()
    cache.add(key, 0, timeout=window)
    try:
        return cache.incr(key)
    except ValueError:  # it expired between add and incr: this failure starts a new window
        cache.add(key, 1, timeout=window)
        return 1


def sign_in_failed(
    *, tenant: Tenant | None, account: str, ip: str | None, refused: bool = False
) -> Lock | None:
    """Count a failed sign-in; lock what reached its limit; return the lock now in force.

    `refused`: the attempt was refused by a lock without checking the password. It still counts
    against the address (a client hammering a locked account is throttled as a client), not
    against the account, whose lock is already in force.
    """
    window = settings.SIGN_IN_WINDOW_MINUTES * 60
    lockout = settings.SIGN_IN_LOCKOUT_MINUTES * 60
    limits = _limits()
    for scope, key in _keys(_realm(tenant), account, ip).items():
        if refused and scope == LockoutScope.ACCOUNT:
            continue
        failures = _count(f"fail:{key}", window)
        if failures < limits[scope]:
            continue
        until = timezone.now() + timedelta(seconds=lockout)
        if _cache().add(f"lock:{key}", until.timestamp(), timeout=lockout):
            _lockout_record(
                tenant=tenant, scope=scope, account=account, ip=ip, failures=failures, until=until
            )
    return sign_in_lock(tenant=tenant, account=account, ip=ip)


def password_reset_limit(*, tenant: Tenant, email: str, ip: str | None) -> Lock | None:
    """Count a request for a reset mail; return a lock if this email or address asked too often.

    Keyed like sign-in (any email counts, existing or not), so the limit reveals no account; it
    spares a user's mailbox from being flooded and the mail server from being used to do it.
    """
    window = 60 * 60
    limits: dict[str, int] = {
        LockoutScope.ACCOUNT: settings.PASSWORD_RESET_EMAILS_PER_HOUR,
        LockoutScope.ADDRESS: settings.PASSWORD_RESET_REQUESTS_PER_HOUR,
    }
    over = [
        scope
        for scope, key in _keys(_realm(tenant), email, ip).items()
        if _count(f"reset:{key}", window) > limits[scope]
    ]
    if not over:
        return None
    until = timezone.now() + timedelta(seconds=window)
    return Lock(scope=over[-1], until=until, what="password reset requests")


def sign_in_succeeded(*, tenant: Tenant | None, account: str) -> None:
    """Forget the account's failures (not the address's: one success does not vouch for it)."""
    key = _keys(_realm(tenant), account, None)[LockoutScope.ACCOUNT]
    _cache().delete(f"fail:{key}")


def _lockout_record(
    *, tenant: Tenant | None, scope: str, account: str, ip: str | None, failures: int, until
) -> None:
    fields = {
        "scope": scope,
        "account": account.strip().lower()[:255] if scope == LockoutScope.ACCOUNT else "",
        "ip_address": ip,
        "failures": failures,
        "locked_until": until,
    }
    logger.warning(
        "sign-in locked: %s %s on %s until %s",
        scope,
        fields["account"] or ip,
        "the staff admin" if tenant is None else f"tenant {tenant.pk}",
        until.isoformat(),
    )
    if tenant is None:
        StaffSignInLockout.objects.create(**fields)
        return
    # The sign-in page runs in the tenant's context (the middleware's scope): the row and the
    # event are the tenant's. No address in analytics: the scope only.
    SignInLockout.objects.create(tenant=tenant, **fields)
    recorder.record_event(tenant=tenant, event_type=events.SIGN_IN_LOCKED, data={"scope": scope})


def lockout_release(*, lockout: LockoutFields, staff) -> None:
    """Lift the lock this row recorded (and forget its failures); record who lifted it."""
    tenant = lockout.tenant if isinstance(lockout, SignInLockout) else None
    key = _keys(_realm(tenant), lockout.account, lockout.ip_address)[lockout.scope]
    _cache().delete_many([f"lock:{key}", f"fail:{key}"])
    if lockout.released_at is None:
        lockout.released_at = timezone.now()
        lockout.released_by = staff
        lockout.save(update_fields=["released_at", "released_by"])
