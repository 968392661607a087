#!/usr/bin/env python3
"""Verify an edgefleet audit export offline: no Django or database; Python 3.10+ and cryptography.

    python verify_export.py audit.jsonl audit.manifest.json --public-key edgefleet-signing.pub

Checks, in order: the manifest's Ed25519 signature (with the public key you obtained from the
control plane beforehand; the one inside the manifest is only compared against it), the file's
sha256 and record count, every record's hash over its content, that the columns agree with the
hashed content, and, for a complete export (a time range with no other filter), that each record
links to the one before it and that every signed checkpoint in the range matches. Exit status 0 when
everything holds; 1 with the first problem named otherwise; 2 for unusable input.
"""

from __future__ import annotations

import argparse
import base64
import csv
import hashlib
import json
import sys

CHECKED_COLUMNS = (
    "seq",
    "ts",
    "actor",
    "fleet",
    "action",
    "object_type",
    "object_id",
    "request_id",
)


def canonical(data) -> str:
    return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


def link(prev_hash: str, content: str) -> str:
    return hashlib.sha256((prev_hash + content).encode()).hexdigest()


def _signature_ok(public, data: bytes, signature: str) -> bool:
    from cryptography.exceptions import InvalidSignature

    try:
        public.verify(base64.b64decode(signature), data)
    except (InvalidSignature, ValueError):
        return False
    return True


def _records(path: str, fmt: str):
    with open(path, encoding="utf-8", newline="") as f:
        if fmt == "csv":
            csv.field_size_limit(sys.maxsize)
            for row in csv.DictReader(f):
                row["seq"] = int(row["seq"])
                row["fleet"] = int(row["fleet"]) if row["fleet"] else None
                yield row
        else:
            for line in f:
                if line.strip():
                    yield json.loads(line)


def verify(path: str, manifest_path: str, public_pem: bytes) -> str | None:
    """None when the export verifies, else the first problem."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    public = serialization.load_pem_public_key(public_pem)
    if not isinstance(public, Ed25519PublicKey):
        return "the public key is not an Ed25519 key"
    with open(manifest_path, encoding="utf-8") as f:
        signed = json.load(f)
    body, signature = signed["manifest"], signed["signature"]
    if not _signature_ok(public, canonical(body).encode(), signature):
        return (
            "the manifest's signature is not valid for this public key "
            "(manifest altered or another key)"
        )
    sha = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            sha.update(block)
    if sha.hexdigest() != body["file_sha256"]:
        return "the file's sha256 differs from the manifest's (file altered, truncated or extended)"
    checkpoints = {c["seq"]: c for c in body["checkpoints"]}
    for cp in checkpoints.values():
        payload = canonical({k: cp[k] for k in ("seq", "hash", "ts", "key_id")}).encode()
        if not _signature_ok(public, payload, cp["signature"]):
            return f"checkpoint #{cp['seq']}: invalid signature"
    count, prev, prev_seq = 0, None, 0
    for rec in _records(path, body["format"]):
        count += 1
        seq = rec["seq"]
        if link(rec["prev_hash"], rec["content"]) != rec["hash"]:
            return f"record #{seq}: content does not match its hash"
        content = json.loads(rec["content"])
        for column in CHECKED_COLUMNS:
            if content.get(column) != rec[column]:
                return f"record #{seq}: column '{column}' disagrees with the hashed content"
        if body["complete"] and prev is not None:
            if seq != prev_seq + 1:
                return f"record #{prev_seq + 1} is missing"
            if rec["prev_hash"] != prev:
                return f"record #{seq} does not link to record #{prev_seq}"
        cp = checkpoints.get(seq)
        if cp is not None and cp["hash"] != rec["hash"]:
            return f"record #{seq} differs from its signed checkpoint"
        prev, prev_seq = rec["hash"], seq
    if count != body["records"]:
        return f"the file holds {count} records, the manifest says {body['records']}"
    return None


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description="Verify an edgefleet audit export offline.")
    parser.add_argument("export", help="the exported .csv or .jsonl file")
    parser.add_argument("manifest", help="its signed manifest (.json)")
    parser.add_argument(
        "--public-key",
        required=True,
        help="the control plane's public key (PEM), obtained separately",
    )
    args = parser.parse_args(argv)
    try:
        with open(args.public_key, "rb") as f:
            pem = f.read()
        problem = verify(args.export, args.manifest, pem)
    except (OSError, ValueError, KeyError, TypeError) as exc:
        print(f"cannot verify: {exc}", file=sys.stderr)
        return 2
    if problem:
        print(f"FAILED: {problem}")
        return 1
    with open(args.manifest, encoding="utf-8") as f:
        body = json.load(f)["manifest"]
    kind = "complete range" if body["complete"] else "filtered selection"
    print(
        f"OK: {body['records']} records #{body['first_seq']}..#{body['last_seq']} ({kind}), "
        f"{len(body['checkpoints'])} signed checkpoints, signed by key {body['key_id']}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
