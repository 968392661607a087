"""Signed artifact manifests: the control plane vouches for a model file, the node checks.

A manifest names one artifact (model name, variant, sha256, size) and is signed with the control
plane's Ed25519 key over its canonical JSON. A node pins that key's public half at enrollment and
loads a model only when the manifest's signature verifies, the manifest's sha256 is the one the
desired state asks for, and the downloaded file hashes to it. Both sides import this module, so
the canonical form cannot drift between them.
"""

from __future__ import annotations

import base64
import hashlib
import json
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

VERSION = 1


class ManifestError(Exception):
    """The manifest is missing, malformed, not signed by the pinned key, or names another file."""


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(1 << 20):
            h.update(block)
    return h.hexdigest()


def canonical(manifest: dict[str, Any]) -> bytes:
    return json.dumps(manifest, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def build(*, name: str, variant: str, sha256: str, size: int | None, key_id: str) -> dict[str, Any]:
    manifest: dict[str, Any] = {"v": VERSION, "name": name, "variant": variant, "sha256": sha256}
    if size is not None:
        manifest["size"] = size
    manifest["key_id"] = key_id
    return manifest


def sign(manifest: dict[str, Any], key: Ed25519PrivateKey) -> str:
    return base64.b64encode(key.sign(canonical(manifest))).decode()


def load_public(pem: str) -> Ed25519PublicKey:
    try:
        key = serialization.load_pem_public_key(pem.encode())
    except ValueError as exc:
        raise ManifestError(f"the pinned signing key is not a PEM public key: {exc}") from None
    if not isinstance(key, Ed25519PublicKey):
        raise ManifestError("the pinned signing key is not an Ed25519 key")
    return key


def check(
    manifest: dict[str, Any] | None, signature: str | None, public_pem: str, sha256: str
) -> dict[str, Any]:
    """Raise ManifestError unless `manifest` is signed by `public_pem` and names `sha256`."""
    if not manifest or not signature:
        raise ManifestError("no signed manifest came with the model")
    try:
        raw = base64.b64decode(signature, validate=True)
        load_public(public_pem).verify(raw, canonical(manifest))
    except (InvalidSignature, ValueError):
        raise ManifestError(
            "the manifest's signature does not verify with the pinned key"
        ) from None
    if manifest.get("v") != VERSION:
        raise ManifestError(f"unsupported manifest version {manifest.get('v')!r}")
    if manifest.get("sha256") != sha256:
        raise ManifestError(
            f"the manifest is for sha256 {manifest.get('sha256')}, not the assigned {sha256}"
        )
    return manifest
