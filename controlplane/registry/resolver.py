"""Pick, per node, which variant of a registered model it runs.

An assignment names a model and a variant: an exact quantization ("Q4_K_M") or "auto". For "auto"
the resolver takes the variant with the most bits per weight (the least lossy quantization) whose
weights plus the KV cache for the assigned context fit in the node's memory less a headroom
fraction (EDGEFLEET_MODEL_MEMORY_HEADROOM, default 25%, for the OS, the runtime and llama.cpp's
compute buffers). The memory is the node's reported VRAM when the assignment offloads every layer
to a GPU (n_gpu_layers -1) and the node has one, else its RAM. The result always says why, and
"nothing fits" is an error the node and the drift view show, never a silent skip.

Pure Python over preloaded rows: resolving 10,000 nodes takes milliseconds (bench/registry.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

MB = 1 << 20


@dataclass(frozen=True, slots=True)
class Variant:
    name: str
    variant: str
    sha256: str
    size: int
    bits_per_weight: float
    n_layer: int
    n_embd: int
    n_head: int
    n_head_kv: int
    manifest: dict[str, Any]
    signature: str

    def kv_cache_bytes(self, n_ctx: int) -> int:
        """K and V in f16, every layer: 2 * layers * n_ctx * (n_embd * kv heads / heads) * 2 B."""
        if not (self.n_layer and self.n_embd and self.n_head):
            return 0
        n_embd_kv = self.n_embd * (self.n_head_kv or self.n_head) // self.n_head
        return 2 * self.n_layer * n_ctx * n_embd_kv * 2

    def need_bytes(self, n_ctx: int) -> int:
        return self.size + self.kv_cache_bytes(n_ctx)


@dataclass(frozen=True, slots=True)
class Choice:
    variant: Variant | None
    explanation: str  # why this variant; or, with variant None, why none


def _mb(n: float) -> str:
    return f"{n / MB:,.1f} MB"


def budget(hardware: dict[str, Any], n_gpu_layers: int) -> tuple[int, str]:
    """Bytes available for weights + KV cache on this node, before headroom, and which memory."""
    vram = int(hardware.get("vram_mb") or 0)
    if n_gpu_layers == -1 and vram:
        return vram * MB, "VRAM"
    return int(hardware.get("ram_mb") or 0) * MB, "RAM"


def choose(
    variants: list[Variant],
    wanted: str,
    hardware: dict[str, Any],
    *,
    n_ctx: int,
    n_gpu_layers: int = 0,
    headroom: float = 0.25,
) -> Choice:
    """`variants` are one model's, sorted by bits per weight, most first."""
    if not variants:
        return Choice(None, "the registry has no variant of this model")
    if wanted != "auto":
        for v in variants:
            if v.variant == wanted:
                return Choice(v, f"{wanted} named by the assignment")
        have = ", ".join(v.variant for v in variants)
        return Choice(None, f"the registry has no {wanted} variant of this model (it has {have})")
    total, kind = budget(hardware, n_gpu_layers)
    if not total:
        return Choice(
            None,
            "the node reported no memory size, so no variant can be chosen automatically; "
            "name a variant in the assignment",
        )
    usable = int(total * (1 - headroom))
    too_big: Variant | None = None
    for v in variants:
        need = v.need_bytes(n_ctx)
        if need <= usable:
            why = (
                f"{v.variant} ({v.bits_per_weight:.2f} bits/weight): {_mb(v.size)} weights + "
                f"{_mb(v.kv_cache_bytes(n_ctx))} KV cache for n_ctx {n_ctx} = {_mb(need)}, within "
                f"{_mb(usable)} ({100 - round(headroom * 100)}% of {_mb(total)} {kind})"
            )
            if too_big is not None:
                why += (
                    f"; {too_big.variant}, the next better variant, needs "
                    f"{_mb(too_big.need_bytes(n_ctx))}"
                )
            return Choice(v, why)
        too_big = v
    smallest = variants[-1]
    return Choice(
        None,
        f"no variant fits: the smallest, {smallest.variant}, needs "
        f"{_mb(smallest.need_bytes(n_ctx))} (weights + KV cache for n_ctx {n_ctx}) but only "
        f"{_mb(usable)} of {_mb(total)} {kind} may be used ({round(headroom * 100)}% headroom)",
    )
