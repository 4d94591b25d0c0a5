"""An embedder wrapper that records what it is asked to embed, for tests of caching around embedders."""

from __future__ import annotations

from collections.abc import Sequence

from memlora_engine.embeddings.base import Embedder


class RecordingEmbedder:
    """Embeds with ``inner`` (a real embedder) and records each batch it is asked for."""

    def __init__(self, inner: Embedder) -> None:
        self.inner = inner
        self.batches: list[list[str]] = []

    @property
    def name(self) -> str:
        return self.inner.name

    @property
    def texts(self) -> int:
        """How many texts it has embedded in all."""
        return sum(len(b) for b in self.batches)

    def embed(self, texts: Sequence[str]) -> list[list[float]]:
        self.batches.append(list(texts))
        return self.inner.embed(texts)
