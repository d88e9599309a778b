"""The client's address, as the audit trail and sign-in throttling record it.

Behind a proxy `REMOTE_ADDR` is the proxy. `X-Forwarded-For` names the client, but any client can
send that header, so it counts only when the connection comes from a proxy listed in
TRUSTED_PROXIES, and then only as far as the chain of trusted proxies reaches: walking the chain
from the right (nearest hop first), the first address that is not a trusted proxy is the client
(nginx's `real_ip_recursive`). An untrusted peer's header is ignored. python-ipware parses the
header (ports, brackets, IPv6, RFC 7239 elements).
"""

from __future__ import annotations

import ipaddress
from functools import lru_cache

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.http import HttpRequest
from python_ipware.modern.parsers import parse_ip, split_proxy_chain

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Address = ipaddress.IPv4Address | ipaddress.IPv6Address

_ATTRIBUTE = "_metis_client_ip"


@lru_cache(maxsize=4)
def trusted_networks(proxies: tuple[str, ...]) -> tuple[Network, ...]:
    """Return TRUSTED_PROXIES as networks; a bad entry stops start-up, not a request."""
    try:
        return tuple(ipaddress.ip_network(proxy.strip(), strict=False) for proxy in proxies)
    except ValueError as error:
        raise ImproperlyConfigured(f"TRUSTED_PROXIES: {error}") from error


def _is_trusted(address: Address, networks: tuple[Network, ...]) -> bool:
    return any(address.version == net.version and address in net for net in networks)


def client_ip(request: HttpRequest) -> str | None:
    """Return the address of the client that made this request (remembered on the request)."""
    if not hasattr(request, _ATTRIBUTE):
        setattr(request, _ATTRIBUTE, _resolve(request.META))
    return getattr(request, _ATTRIBUTE)


def _resolve(meta) -> str | None:
    peer = parse_ip(meta.get("REMOTE_ADDR"))
    if peer is None:
        return None
    networks = trusted_networks(tuple(settings.TRUSTED_PROXIES))
    if not _is_trusted(peer, networks):
        return str(peer)
    # A malformed chain from our own proxy is not trusted in part: the proxy is the client then.
    chain = split_proxy_chain(meta.get("HTTP_X_FORWARDED_FOR"), strict=True)
    hops = [*(chain or []), peer]
    for hop in reversed(hops):
        if not _is_trusted(hop, networks):
            return str(hop)
    return str(hops[0])  # every hop is ours (a health check from inside, say)
