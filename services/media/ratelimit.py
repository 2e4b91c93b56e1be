"""Which client a request to media's public endpoints is accounted to, for the per-address rate
limits (the token buckets are services/common/ratelimit.py).

The client address is the TCP peer, unless that peer is one of the configured proxies
(MEDIA_TRUSTED_PROXIES): then it is the right-most X-Forwarded-For address that is not a trusted
proxy. A forwarded-for header from anyone else is ignored, so a client cannot pick its own bucket.
"""
from __future__ import annotations

import ipaddress
from collections.abc import Iterable

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def parse_networks(items: Iterable[str]) -> tuple[Network, ...]:
    return tuple(ipaddress.ip_network(item.strip(), strict=False) for item in items if item.strip())


def client_address(peer: str | None, forwarded_for: str | None, trusted: tuple[Network, ...]) -> str:
    """The address a request is accounted to (see the module docstring)."""
    peer = peer or "unknown"
    if not trusted or not forwarded_for or not _in(peer, trusted):
        return peer
    for hop in reversed([h.strip() for h in forwarded_for.split(",")]):
        try:
            ipaddress.ip_address(hop)
        except ValueError:
            return peer  # a malformed chain: account it to the proxy itself
        if not _in(hop, trusted):
            return hop
    return peer


def _in(address: str, networks: tuple[Network, ...]) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in net for net in networks)
