"""Sessions stored under a keyed hash of the cookie, so the cookie is never in SQL or Redis.

The threat is one SQL injection: it runs arbitrary SQL as the runtime role, which can read
`django_session`. With Django's own backends that table (and Redis) holds every tenant user's
and staff member's session key, the very value their cookie carries. Here the row's primary key
and the cache key are `stored_key(cookie)`, an HMAC-SHA256 keyed by SECRET_KEY: reading it gives
nothing to send back, and without SECRET_KEY no one can compute the row of a cookie they chose.

The signed session data is bound to its row as well (the signing salt names the stored key), so
SQL that copies a staff member's `session_data` into the attacker's own row yields an empty
session instead of a staff one.

Everything else is Django's `cached_db`: Redis first, PostgreSQL behind it (a Redis miss or flush
costs a query, not a sign-in), `cycle_key`, `flush` and `clearsessions` unchanged.
"""

from __future__ import annotations

from django.contrib.sessions.backends import cached_db
from django.contrib.sessions.base_session import AbstractBaseSession
from django.utils import timezone
from django.utils.crypto import salted_hmac

# `django_session.session_key` is varchar(40): 40 hex digits are the first 160 bits of the
# HMAC. Cookies are 32 random characters of [a-z0-9] (~165 bits), so 160 bits of a keyed hash
# neither collide in practice nor can be inverted; 128 would already be enough.
STORED_KEY_LENGTH = 40
_SALT = "tenants.sessions.stored_key"


def stored_key(session_key: str) -> str:
    """Return the key the session with this cookie value is stored under (row and cache)."""
    # Rotating SECRET_KEY (fallbacks included) changes every stored key: everyone signs in again.
    digest = salted_hmac(_SALT, session_key, algorithm="sha256").hexdigest()
    return digest[:STORED_KEY_LENGTH]


class SessionStore(cached_db.SessionStore):
    # A prefix of our own: the plain-text entries Django's backend left in Redis are never read.
    cache_key_prefix = "tenants.sessions.hashed:"

    def _stored_key(self) -> str:
        # Django encodes the data and builds the cache key only once the session has a key.
        if self.session_key is None:
            raise RuntimeError("this session has no key yet")
        return stored_key(self.session_key)

    @property
    def key_salt(self) -> str:
        return f"tenants.sessions.{self._stored_key()}"

    @property
    def cache_key(self) -> str:
        return self.cache_key_prefix + self._stored_key()

    async def acache_key(self) -> str:
        return self.cache_key_prefix + self._stored_key()

    def _get_session_from_db(self) -> AbstractBaseSession | None:
        row = (
            self.model.objects.filter(
                session_key=stored_key(self.session_key), expire_date__gt=timezone.now()
            ).first()
            if self.session_key
            else None
        )
        if row is None:
            self._session_key = None  # an unknown cookie never becomes a session's key
        return row

    async def _aget_session_from_db(self) -> AbstractBaseSession | None:
        row = (
            await self.model.objects.filter(
                session_key=stored_key(self.session_key), expire_date__gt=timezone.now()
            ).afirst()
            if self.session_key
            else None
        )
        if row is None:
            self._session_key = None
        return row

    def create_model_instance(self, data: dict) -> AbstractBaseSession:
        row = super().create_model_instance(data)
        row.session_key = stored_key(row.session_key)
        return row

    async def acreate_model_instance(self, data: dict) -> AbstractBaseSession:
        row = await super().acreate_model_instance(data)
        row.session_key = stored_key(row.session_key)
        return row

    # Django's exists() and delete() look the key up as given, in the cache (prefix + key) and
    # in the table: hand them the stored key and both find the hashed entries.

    def exists(self, session_key: str) -> bool:
        return bool(session_key) and super().exists(stored_key(session_key))

    async def aexists(self, session_key: str) -> bool:
        return bool(session_key) and await super().aexists(stored_key(session_key))

    def delete(self, session_key: str | None = None) -> None:
        session_key = session_key or self.session_key
        if session_key:
            super().delete(stored_key(session_key))

    async def adelete(self, session_key: str | None = None) -> None:
        session_key = session_key or self.session_key
        if session_key:
            await super().adelete(stored_key(session_key))
