"""A fast offline embedder: hashed bag-of-words vectors, no model, no download.

Texts that share words are similar and the same text always gets the same vector,
in every process. It does not know synonyms, so retrieval quality is far below a
sentence-transformers model: use it where the embedding hardly matters or must be
cheap -- store benchmarks (``memlora bench-store``), distillation replays
(``memlora distill --embedder deterministic``), one-turn VQA scopes
(``memlora eval vqa``) -- and in tests (:mod:`memlora_engine.testing` exports it as
``DeterministicEmbedder``).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence

from memlora_engine.embeddings.base import unit

__all__ = ["HashingEmbedder"]

_WORD = re.compile(r"[a-z0-9]+")


class HashingEmbedder:
    """Hashed bag-of-words vectors: texts sharing words are similar; same text, same vector.

    Stable across processes (no reliance on Python's randomised ``hash``). Its
    :attr:`name` (``deterministic-<dimension>``) is recorded with stored memories and
    evaluation runs, so it keeps the name it had as ``DeterministicEmbedder``.

    Args:
        dimension: the vector length.
    """

    def __init__(self, dimension: int = 64) -> None:
        self.dimension = dimension

    @property
    def name(self) -> str:
        return f"deterministic-{self.dimension}"

    def _vector(self, text: str) -> list[float]:
        vec = [0.0] * self.dimension
        words = _WORD.findall(text.lower()) or ["<empty>"]
        owner: dict[int, str] = {}  # bucket -> the word of this text that holds it
        for word in words:
            digest = hashlib.sha256(word.encode()).digest()
            index = int.from_bytes(digest[:4], "little") % self.dimension
            # Two words of one text never share a bucket while free ones are left:
            # with opposite signs they would cancel, and a text could embed to the
            # zero vector, which no search finds.
            for _ in range(self.dimension):
                if owner.setdefault(index, word) == word:
                    break
                index = (index + 1) % self.dimension
            vec[index] += 1.0 if digest[4] & 1 else -1.0
        return unit(vec)

    def embed(self, texts: Sequence[str]) -> list[list[float]]:
        """One unit vector per text."""
        return [self._vector(t) for t in texts]
