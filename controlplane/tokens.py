"""Secrets handed to people and machines: prefixed, random, shown once, stored only as a hash.

A token looks like ``efn_3kq9...``: the prefix says what kind it is (so leaked tokens can be
recognised by secret scanners), the rest is 32 random bytes in URL-safe base64. The database keeps
the SHA-256 of the whole token (unique, indexed: one lookup per request) and the first 12
characters for display. SHA-256 rather than a slow KDF is right here because the secret has 256 bits
of entropy: brute force is not the threat that slow hashing defends against.
"""

import hashlib
import secrets

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
