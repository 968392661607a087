"""Quantize a GGUF file with llama.cpp's quantizer (through llama-cpp-python): what the model
registry's background jobs run (controlplane/registry/services.py), and what tests use to make small
quantized models from generated ones (controlplane/registry/tinymodel.py)."""

from __future__ import annotations

import ctypes
from pathlib import Path

from wire.llamacpp import quiet_llama_logs

# llama.cpp's file types (enum llama_ftype) by the variant names the registry uses.
QUANT_TYPES = {
    "Q8_0": 7,
    "Q6_K": 18,
    "Q5_K_M": 17,
    "Q5_K_S": 16,
    "Q4_K_M": 15,
    "Q4_0": 2,
    "Q3_K_M": 12,
    "Q2_K": 10,
    "F16": 1,
}


def quantize(src: str | Path, dst: str | Path, qtype: str, threads: int = 0) -> Path:
    """Write `src` quantized to `qtype` as `dst` (threads 0: all cores)."""
    import llama_cpp

    quiet_llama_logs()
    if qtype not in QUANT_TYPES:
        raise ValueError(f"unknown quantization {qtype!r}; known: {', '.join(QUANT_TYPES)}")
    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = QUANT_TYPES[qtype]
    params.nthread = threads
    rc = llama_cpp.llama_model_quantize(str(src).encode(), str(dst).encode(), ctypes.byref(params))
    if rc != 0:
        raise RuntimeError(f"llama_model_quantize failed with code {rc} for {qtype}")
    return Path(dst)
