"""Secrets handed to people and machines: prefixed, random, shown once, stored only as a hash.

A token looks like ``efn_3kq9...``: the prefix says what kind it is (so leaked tokens can be
recognised by secret scanners), the rest is 32 random bytes in URL-safe base64. The database keeps
the SHA-256 of the whole token (unique, indexed: one lookup per request) and the first 12
characters for display. SHA-256 rather than a slow KDF is right here because the secret has 256 bits
of entropy: brute force is not the threat that slow hashing defends against.

`client_ip` is the one answer to "which address presented this": the throttles of guessed tokens
(accounts/guesses.py) and of failed logins (accounts/auth.py) both count by it.
"""

from __future__ import annotations

import hashlib
import ipaddress
import secrets
from collections.abc import Mapping, Sequence
from typing import Any

from django.conf import settings

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

ENROLLMENT_PREFIX = "efe_"
NODE_PREFIX = "efn_"
PERSONAL_PREFIX = "efp_"
DISPLAY_CHARS = 12


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def new_token(prefix: str) -> tuple[str, str, str]:
    """Return (plaintext, sha256 hex, display prefix)."""
    plaintext = prefix + secrets.token_urlsafe(32)
    return plaintext, hash_token(plaintext), plaintext[:DISPLAY_CHARS]


# --- the address a secret (or a password) is presented from ------------------------------------


def _address(text: str) -> IPAddress | None:
    """An address as a proxy writes it in X-Forwarded-For: `1.2.3.4`, `1.2.3.4:5678`, `2001:db8::1`
    or `[2001:db8::1]:5678`; None when it is none of these."""
    text = text.strip()
    if text.startswith("["):
        text = text[1:].split("]", 1)[0]
    elif text.count(":") == 1:
        text = text.split(":", 1)[0]
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


def _trusted(address: IPAddress, proxies: Sequence[IPNetwork]) -> bool:
    return any(address in network for network in proxies)


def client_ip(meta: Mapping[str, Any]) -> str | None:
    """The client's address, for the login throttle and the token-guess throttle alike.

    `REMOTE_ADDR`, unless it is one of the trusted proxies (EDGEFLEET_TRUSTED_PROXIES, empty by
    default): then the rightmost address of X-Forwarded-For that is not a trusted proxy itself.
    Everything left of it was written by the client and is never believed; a malformed entry
    stops the walk at the last trusted hop. `meta` is a request's META or a WSGI environ."""
    remote = meta.get("REMOTE_ADDR") or None
    proxies: Sequence[IPNetwork] = settings.EDGEFLEET["TRUSTED_PROXIES"]
    if not proxies or remote is None:
        return remote
    hop = _address(remote)
    if hop is None or not _trusted(hop, proxies):
        return remote
    for text in reversed(str(meta.get("HTTP_X_FORWARDED_FOR", "")).split(",")):
        forwarded = _address(text)
        if forwarded is None:
            break
        hop = forwarded
        if not _trusted(hop, proxies):
            break
    return str(hop)


def scope_meta(scope: Mapping[str, Any]) -> dict[str, Any]:
    """The part of an ASGI scope `client_ip` reads, as a request's META would hold it."""
    client = scope.get("client") or (None, None)
    meta: dict[str, Any] = {"REMOTE_ADDR": client[0]}
    for name, value in scope.get("headers", ()):
        if name.lower() == b"x-forwarded-for":
            meta["HTTP_X_FORWARDED_FOR"] = value.decode("latin-1")
    return meta


def throttle_address(ip: str | None) -> str | None:
    """The address a throttle counts under: an IPv4-mapped IPv6 address as the IPv4 one, any other
    IPv6 address as its /64 (the base address), the smallest block one subscriber is given, so
    rotating through a free /64 is one guesser, not 2^64; IPv4 as it is."""
    address = _address(ip or "")
    if address is None:
        return ip
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        return str(ipaddress.IPv6Network((address, 64), strict=False).network_address)
    return str(address)
