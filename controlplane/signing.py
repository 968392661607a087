"""The control plane's Ed25519 signing key: audit checkpoints and export manifests.

The private key lives in a file outside the database (EDGEFLEET_SIGNING_KEY_FILE), so someone who
can rewrite the database cannot forge signatures. Outside production a missing key is generated on
first use; in production it must be provisioned (the system check says so).
"""

from __future__ import annotations

import base64
import hashlib
import os
from functools import lru_cache
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from django.conf import settings

from wire import manifest


class SigningKeyMissing(Exception):
    pass


def key_path() -> Path:
    return Path(settings.EDGEFLEET["SIGNING_KEY_FILE"])


@lru_cache(maxsize=4)
def _load(path: str) -> Ed25519PrivateKey:
    p = Path(path)
    if not p.exists():
        if settings.PRODUCTION:
            raise SigningKeyMissing(
                f"signing key {p} does not exist; create one with `manage.py audit keygen`"
            )
        generate(p)
    key = serialization.load_pem_private_key(p.read_bytes(), password=None)
    if not isinstance(key, Ed25519PrivateKey):
        raise SigningKeyMissing(f"{p} is not an Ed25519 private key")
    return key


def generate(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    pem = Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(pem)


def private_key() -> Ed25519PrivateKey:
    return _load(str(key_path()))


def public_pem() -> str:
    return (
        private_key()
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )


def key_id(public: Ed25519PublicKey | None = None) -> str:
    public = public or private_key().public_key()
    raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16]


def sign(data: bytes) -> str:
    return base64.b64encode(private_key().sign(data)).decode()


def sign_manifest(
    *, name: str, variant: str, sha256: str, size: int | None
) -> tuple[dict[str, Any], str]:
    """A model artifact's manifest (wire/manifest.py) and its signature by this key."""
    m = manifest.build(name=name, variant=variant, sha256=sha256, size=size, key_id=key_id())
    return m, manifest.sign(m, private_key())


def load_public(pem: str | bytes) -> Ed25519PublicKey:
    key = serialization.load_pem_public_key(pem.encode() if isinstance(pem, str) else pem)
    if not isinstance(key, Ed25519PublicKey):
        raise ValueError("not an Ed25519 public key")
    return key


def verify(public: Ed25519PublicKey, data: bytes, signature: str) -> bool:
    try:
        public.verify(base64.b64decode(signature), data)
    except (InvalidSignature, ValueError):
        return False
    return True
