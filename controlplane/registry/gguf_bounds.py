"""A bounded walk over a GGUF file's header before anything else reads it.

The `gguf` package trusts the counts and lengths a file declares: an upload whose header claims an
array of 2**50 elements kept a worker busy for minutes (found by tests/test_registry.py's crafted
files). This walk reads every metadata entry and tensor description in a few small reads, checks
each declared count and length against what the file can hold and against sane limits, and raises
ValueError saying which entry lies, in milliseconds, before the real reader runs.
"""

from __future__ import annotations

import struct
from pathlib import Path
from typing import BinaryIO

MAX_TENSORS = 1_000_000
MAX_ENTRIES = 100_000
MAX_DIMS = 8
# Fixed-size value types by GGUF type id: uint8, int8, uint16, int16, uint32, int32, float32,
# bool, (8: string), (9: array), uint64, int64, float64.
SIZES = {0: 1, 1: 1, 2: 2, 3: 2, 4: 4, 5: 4, 6: 4, 7: 1, 10: 8, 11: 8, 12: 8}
STRING, ARRAY = 8, 9


class _Walk:
    def __init__(self, f: BinaryIO, size: int):
        self.f, self.size = f, size

    def left(self) -> int:
        return self.size - self.f.tell()

    def read(self, n: int, what: str) -> bytes:
        if n > self.left():
            raise ValueError(f"{what} runs past the end of the file (truncated or lying)")
        return self.f.read(n)

    def u32(self, what: str) -> int:
        return struct.unpack("<I", self.read(4, what))[0]

    def u64(self, what: str) -> int:
        return struct.unpack("<Q", self.read(8, what))[0]

    def skip(self, n: int, what: str) -> None:
        if n > self.left():
            raise ValueError(f"{what} claims {n} bytes, more than the file holds")
        self.f.seek(n, 1)

    def string(self, what: str) -> bytes:
        n = self.u64(what)
        if n > self.left():
            raise ValueError(f"{what} claims a {n}-byte string, more than the file holds")
        return self.f.read(n)

    def value(self, kind: int, what: str) -> None:
        if kind in SIZES:
            self.skip(SIZES[kind], what)
        elif kind == STRING:
            self.string(what)
        elif kind == ARRAY:
            inner, count = self.u32(what), self.u64(what)
            if inner in SIZES:
                if count * SIZES[inner] > self.left():
                    raise ValueError(f"{what} claims {count} elements, more than the file holds")
                self.skip(count * SIZES[inner], what)
            elif inner == STRING:
                if count * 8 > self.left():
                    raise ValueError(f"{what} claims {count} strings, more than the file holds")
                for _ in range(count):
                    self.string(what)
            else:
                raise ValueError(f"{what} is an array of unsupported type {inner}")
        else:
            raise ValueError(f"{what} has unknown value type {kind}")


def check(path: Path) -> None:
    """Raise ValueError unless every count and length in `path`'s header fits the file."""
    size = path.stat().st_size
    with open(path, "rb") as f:
        walk = _Walk(f, size)
        if walk.read(4, "the magic bytes") != b"GGUF":
            raise ValueError("the file does not start with the GGUF magic bytes")
        version = walk.u32("the version")
        if version not in (2, 3):
            raise ValueError(f"GGUF version {version} is not supported (2 or 3)")
        tensors, entries = walk.u64("the tensor count"), walk.u64("the metadata count")
        if tensors > MAX_TENSORS:
            raise ValueError(f"it declares {tensors} tensors (at most {MAX_TENSORS})")
        if entries > MAX_ENTRIES:
            raise ValueError(f"it declares {entries} metadata entries (at most {MAX_ENTRIES})")
        alignment = 32
        for i in range(entries):
            key = walk.string(f"metadata entry {i}'s key")
            name = key[:64].decode(errors="replace")
            kind = walk.u32(f"metadata '{name}'")
            if key == b"general.alignment" and kind == 4:
                alignment = max(1, struct.unpack("<I", walk.read(4, "the alignment"))[0])
            else:
                walk.value(kind, f"metadata '{name}'")
        end = 0  # where the last tensor's data ends, relative to the data section
        for i in range(tensors):
            name = walk.string(f"tensor {i}'s name")[:64].decode(errors="replace")
            dims = walk.u32(f"tensor '{name}'")
            if dims > MAX_DIMS:
                raise ValueError(f"tensor '{name}' declares {dims} dimensions (at most {MAX_DIMS})")
            shape = struct.unpack(f"<{dims}Q", walk.read(8 * dims, f"tensor '{name}'"))
            kind, offset = struct.unpack("<IQ", walk.read(12, f"tensor '{name}'"))
            end = max(end, offset + _nbytes(shape, kind, name))
        data = -(-f.tell() // alignment) * alignment
        if data + end > size:
            raise ValueError(
                f"the tensor data is truncated: the tensors need {data + end} bytes, the file "
                f"has {size}"
            )


def _nbytes(shape: tuple[int, ...], kind: int, name: str) -> int:
    from gguf import GGML_QUANT_SIZES, GGMLQuantizationType

    try:
        block, size = GGML_QUANT_SIZES[GGMLQuantizationType(kind)]
    except (ValueError, KeyError):
        raise ValueError(f"tensor '{name}' has unknown type {kind}") from None
    elements = 1
    for n in shape:
        elements *= n
    return elements // block * size
