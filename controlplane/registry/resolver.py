"""Pick, per node, which variant of a registered model it runs.

An assignment names a model and a variant: an exact quantization ("Q4_K_M") or "auto". "auto"
follows the usual advice for small models on edge hardware: the smallest variant that keeps the
quality you need, Q4_K_M as the balanced default, Q8_0 where the device has memory to spare.
So it takes the assignment's `prefer` variant (default Q4_K_M; a fleet layer or a label layer sets
it, e.g. `prefer: "Q8_0"` for nodes labelled `gpu`) when its weights plus the KV cache for the
assigned context fit in the node's memory less a headroom fraction (EDGEFLEET_MODEL_MEMORY_HEADROOM,
default 25%, for the OS, the runtime and llama.cpp's compute buffers); else the next smaller
variant that fits; where none at or below the preference is registered, the closest one above it.
Full-precision variants (F32, F16, BF16) are candidates only when `prefer` names one or no quantized
variant is registered. The memory is the node's reported VRAM when the assignment offloads every
layer to a GPU (n_gpu_layers -1) and the node has one, else its RAM. The result always says why,
and "nothing fits" is an error the node and the drift view show, never a silent skip.

Pure Python over preloaded rows: resolving 10,000 nodes takes milliseconds (bench/registry.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

MB = 1 << 20

# The quantization ladder, most bits first, with each variant's nominal bits per weight (llama.cpp's
# figures for 7B-class models; a small model's measured figure is higher: embeddings weigh more).
LADDER = {
    "Q8_0": 8.5,
    "Q6_K": 6.56,
    "Q5_K_M": 5.69,
    "Q5_K_S": 5.54,
    "Q4_K_M": 4.85,
    "Q4_0": 4.55,
    "Q3_K_M": 3.91,
    "Q2_K": 3.35,
}
FULL_PRECISION = ("F32", "F16", "BF16")
DEFAULT_PREFERENCE = "Q4_K_M"


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


def hardware_class(hardware: dict[str, Any]) -> str:
    """Nodes that run a model alike: the same GPU, or (without one) the same CPU model and core
    count. "" when the node reported neither."""
    if hardware.get("gpu") and hardware.get("vram_mb"):
        return f"gpu:{hardware['gpu']}"
    if hardware.get("cpu_model"):
        return f"cpu:{hardware['cpu_model']}/{hardware.get('cpu_cores') or '?'}"
    return ""


def order(variants: list[Variant], prefer: str) -> list[Variant]:
    """Candidates for "auto" in the order they are tried: the preferred variant and those below
    it (most bits first), then those above it (closest first)."""
    quantized = [v for v in variants if v.variant not in FULL_PRECISION]
    pool = variants if prefer in FULL_PRECISION or not quantized else quantized
    named = next((v for v in pool if v.variant == prefer), None)
    ceiling = named.bits_per_weight if named else LADDER.get(prefer, 32.0)
    below = [v for v in pool if v.bits_per_weight <= ceiling]
    above = [v for v in pool if v.bits_per_weight > ceiling]
    return below + above[::-1]


def choose(
    variants: list[Variant],
    wanted: str,
    hardware: dict[str, Any],
    *,
    n_ctx: int,
    n_gpu_layers: int = 0,
    headroom: float = 0.25,
    prefer: str = "",
    speeds: dict[str, float] | None = None,
    min_tokens_per_s: float | None = None,
) -> Choice:
    """`variants` are one model's, sorted by bits per weight, most first. `speeds`: tokens/s the
    fleet measured per variant (by the first 12 characters of its sha256) on this node's
    hardware class; with
    `min_tokens_per_s`, "auto" skips the variants measured below it."""
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
    prefer = prefer or DEFAULT_PREFERENCE
    usable = int(total * (1 - headroom))
    tried: list[Variant] = []
    slow: list[str] = []
    for v in order(variants, prefer):
        need = v.need_bytes(n_ctx)
        if need > usable:
            tried.append(v)
            continue
        measured = (speeds or {}).get(v.sha256[:12])
        if min_tokens_per_s and measured is not None and measured < min_tokens_per_s:
            slow.append(
                f"{v.variant} runs at {measured:.1f} tokens/s on this hardware class, under "
                f"the floor of {min_tokens_per_s:g}"
            )
            continue
        why = (
            f"{v.variant} ({v.bits_per_weight:.2f} bits/weight): {_mb(v.size)} weights + "
            f"{_mb(v.kv_cache_bytes(n_ctx))} KV cache for n_ctx {n_ctx} = {_mb(need)}, within "
            f"{_mb(usable)} ({100 - round(headroom * 100)}% of {_mb(total)} {kind})"
        )
        if v.variant != prefer:
            why += "; " + _not_preferred(variants, prefer, tried, n_ctx)
        if v.variant in FULL_PRECISION and prefer not in FULL_PRECISION:
            why += "; no quantized variant is registered (quantize one: smaller and faster)"
        if slow:
            why += "; " + "; ".join(slow) + " (fleet telemetry)"
        return Choice(v, why)
    if slow:
        return Choice(None, "no variant fits fast enough: " + "; ".join(slow))
    smallest = min(tried, key=lambda v: v.need_bytes(n_ctx))
    return Choice(
        None,
        f"no variant fits: the smallest, {smallest.variant}, needs "
        f"{_mb(smallest.need_bytes(n_ctx))} (weights + KV cache for n_ctx {n_ctx}) but only "
        f"{_mb(usable)} of {_mb(total)} {kind} may be used ({round(headroom * 100)}% headroom)",
    )


def _not_preferred(variants: list[Variant], prefer: str, tried: list[Variant], n_ctx: int) -> str:
    """Why the preferred variant is not the one chosen: not registered, too big, or (said after
    this) too slow."""
    if not any(v.variant == prefer for v in variants):
        return f"the registry has no {prefer} variant, the preferred one"
    named = next((v for v in tried if v.variant == prefer), None)
    if named is not None:
        return f"{prefer}, the preferred variant, needs {_mb(named.need_bytes(n_ctx))}"
    return f"{prefer} is the preferred variant"
