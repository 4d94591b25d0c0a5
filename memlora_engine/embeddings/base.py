"""The embedder protocol."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Protocol, runtime_checkable

__all__ = ["Embedder", "blend", "cosine", "max_marginal_relevance", "unit"]


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
