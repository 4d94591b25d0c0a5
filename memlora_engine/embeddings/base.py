"""The embedder protocol."""

from __future__ import annotations

import math
import threading
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from typing import Protocol, runtime_checkable

__all__ = ["CachedEmbedder", "Embedder", "blend", "cosine", "max_marginal_relevance", "unit"]


def cosine(a: Sequence[float], b: Sequence[float]) -> float:
    """The cosine similarity of two vectors (0.0 when either is all zeros)."""
    norm = math.sqrt(sum(x * x for x in a)) * math.sqrt(sum(y * y for y in b))
    return sum(x * y for x, y in zip(a, b, strict=True)) / norm if norm else 0.0


def unit(vector: Sequence[float]) -> list[float]:
    """``vector`` scaled to length 1 (a zero vector stays zero)."""
    norm = math.sqrt(sum(x * x for x in vector))
    return [x / norm for x in vector] if norm else list(vector)


def blend(vector: Sequence[float], other: Sequence[float], weight: float) -> list[float]:
    """The unit vector along ``vector`` + ``weight`` x ``other``, each first scaled to unit length."""
    return unit([x + weight * y for x, y in zip(unit(vector), unit(other), strict=True)])


def max_marginal_relevance(relevance: Sequence[float], vectors: Sequence[Sequence[float]], k: int,
                           weight: float) -> list[int]:
    """Indices of ``k`` items chosen by maximal marginal relevance (Carbonell & Goldstein, 1998).

    Each pick maximises ``weight * relevance[i] - (1 - weight) * max cosine(i, picked)``:
    relevant, and unlike what is already picked. ``weight`` 1.0 is plain relevance
    order. Written here rather than taken from LangChain's ``maximal_marginal_relevance``
    because the engine does not depend on LangChain; it is a few lines over
    :func:`cosine`.
    """
    chosen: list[int] = []
    left = list(range(len(vectors)))
    closest = [-1.0] * len(vectors)  # each item's highest cosine to a chosen one
    while left and len(chosen) < k:
        best = max(left, key=lambda i: weight * relevance[i] - (1.0 - weight) * (closest[i] if chosen else 0.0))
        chosen.append(best)
        left.remove(best)
        for i in left:
            closest[i] = max(closest[i], cosine(vectors[i], vectors[best]))
    return chosen


@runtime_checkable
class Embedder(Protocol):
    """Turns texts into fixed-size vectors (compared by cosine similarity)."""

    @property
    def name(self) -> str:
        """A stable identifier of the model (recorded with the store)."""
        ...

    def embed(self, texts: Sequence[str]) -> list[list[float]]:
        """One vector per text, in order."""
        ...


class CachedEmbedder:
    """An :class:`Embedder` with a text -> vector cache (the vectors are the wrapped embedder's).

    A replay embeds the same facts many times, and ``Memory.answer``'s other-subject check
    embeds the same masked memories question after question; a cached text is a
    dictionary lookup. ``max_entries`` bounds the cache, the least recently used text
    going first; None keeps every text. ``batch=False`` embeds each missing text alone,
    so that a text's vector never depends on the texts it was first embedded with (a
    transformer's padded batches differ in the last bits, enough to move a decision
    that sits on a threshold). Safe to share between threads.
    """

    def __init__(self, inner: Embedder, max_entries: int | None = None, *, batch: bool = True) -> None:
        if max_entries is not None and max_entries < 1:
            raise ValueError(f"max_entries must be >= 1 or None, got {max_entries}")
        self.inner = inner
        self.max_entries = max_entries
        self.batch = batch
        self._cache: OrderedDict[str, list[float]] = OrderedDict()
        self._lock = threading.Lock()

    @property
    def name(self) -> str:
        return self.inner.name

    def clear(self) -> None:
        """Forget every cached text."""
        with self._lock:
            self._cache.clear()

    def prime(self, texts: Iterable[str]) -> None:
        """Embed the texts not cached yet (in one batch unless ``batch=False``)."""
        self.embed(list(texts))

    def embed(self, texts: Sequence[str]) -> list[list[float]]:
        with self._lock:
            found = {t: self._cache[t] for t in texts if t in self._cache}
            for text in found:
                self._cache.move_to_end(text)
        missing = list(dict.fromkeys(t for t in texts if t not in found))
        if missing:
            # Embedded outside the lock: another thread's lookups need not wait for the model.
            vectors = self.inner.embed(missing) if self.batch else [self.inner.embed([t])[0] for t in missing]
            found.update(zip(missing, vectors, strict=True))
            with self._lock:
                for text in missing:
                    self._cache[text] = found[text]
                while self.max_entries is not None and len(self._cache) > self.max_entries:
                    self._cache.popitem(last=False)
        return [found[t] for t in texts]
