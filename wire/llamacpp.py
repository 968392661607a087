"""llama.cpp helpers that both sides use (the agent runs models, the registry quantizes them)."""

from __future__ import annotations

import sys


def quiet_llama_logs() -> None:
    """llama.cpp logs every tensor to stderr; keep errors only."""
    import llama_cpp

    if getattr(quiet_llama_logs, "callback", None) is not None:
        return

    @llama_cpp.llama_log_callback
    def _log(level, text, user_data):  # pragma: no cover - called from C
        if level == 4 and sys is not None:  # GGML_LOG_LEVEL_ERROR
            sys.stderr.write(text.decode(errors="replace"))

    quiet_llama_logs.callback = _log  # type: ignore[attr-defined]  # keep a reference
    llama_cpp.llama_log_set(_log, None)
