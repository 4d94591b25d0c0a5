"""Fakes for tests, docs and demos: a scripted generator, a deterministic embedder, an in-memory store.

They stand in for the parts *around* the unit under test (the model, the embedding
model, the vector store); the engine and the history run for real.
"""

from __future__ import annotations

import dataclasses
import hashlib
import math
import re
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from memlora_engine.errors import GeneratorError, StorageError
from memlora_engine.generator import Generation, GenerationRequest
from memlora_engine.store.filters import to_chroma_where
from memlora_engine.types import MemoryRecord, Operation, Scope

__all__ = ["DeterministicEmbedder", "InMemoryStore", "ScriptedGenerator"]

Response = str | Callable[[GenerationRequest], str]


class ScriptedGenerator:
    """Answers each operation from a script.

    Args:
        script: per operation, either a list of outputs returned in order (the last
            one repeats once the list is used up, unless ``strict``), or a function
            of the request.
        adapters: operations reported as having a trained adapter (all by default),
            which decides the prompt style the engine renders.
        strict: raise instead of repeating the last output.
        supports_images: act as a vision model (the engine then sends images with
            extraction and routes image questions to ``vqa``); the images a request
            carried are in ``calls[i].images``.

    ``calls`` keeps every request, for assertions on prompts.
    """

    def __init__(
        self,
        script: Mapping[str | Operation, Sequence[str] | Callable[[GenerationRequest], str]] | None = None,
        *,
        adapters: Iterable[str | Operation] | None = None,
        strict: bool = False,
        supports_images: bool = False,
    ) -> None:
        self._script = {Operation(k): (v if callable(v) else list(v)) for k, v in (script or {}).items()}
        self._positions = {op: 0 for op in self._script}
        self._adapters = set(Operation) if adapters is None else {Operation(a) for a in adapters}
        self._strict = strict
        self.supports_images = supports_images
        self._lock = threading.Lock()
        self.calls: list[GenerationRequest] = []

    def has_adapter(self, operation: Operation) -> bool:
        return Operation(operation) in self._adapters

    def generate(self, request: GenerationRequest) -> Generation:
        with self._lock:
            self.calls.append(request)
            entry = self._script.get(request.operation)
            if entry is None:
                raise GeneratorError(f"ScriptedGenerator has no script for {request.operation.value!r}")
            if callable(entry):
                text = entry(request)
            else:
                position = self._positions[request.operation]
                if position >= len(entry) and (self._strict or not entry):
                    raise GeneratorError(f"ScriptedGenerator script for {request.operation.value!r} is used up")
                text = entry[min(position, len(entry) - 1)]
                self._positions[request.operation] = position + 1
        prompt_words = sum(len(str(m.get("content", "")).split()) for m in request.messages)
        return Generation(text=text, input_tokens=prompt_words, output_tokens=len(text.split()))


_WORD = re.compile(r"[a-z0-9]+")


class DeterministicEmbedder:
    """Hashed bag-of-words vectors: texts sharing words are similar; same text, same vector.

    Stable across processes (no reliance on Python's randomised ``hash``).
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
        norm = math.sqrt(sum(v * v for v in vec)) or 1.0
        return [v / norm for v in vec]

    def embed(self, texts: Sequence[str]) -> list[list[float]]:
        return [self._vector(t) for t in texts]


def _same(stored: Any, wanted: Any) -> bool:
    # As in Chroma: booleans equal only booleans; ints and floats compare as numbers.
    if isinstance(stored, bool) or isinstance(wanted, bool):
        return isinstance(stored, bool) and isinstance(wanted, bool) and stored == wanted
    return bool(stored == wanted)


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


_RANGES: dict[str, Callable[[Any, Any], bool]] = {
    "$gt": lambda a, b: a > b, "$gte": lambda a, b: a >= b, "$lt": lambda a, b: a < b, "$lte": lambda a, b: a <= b,
}


def _matches(where: dict[str, Any], metadata: dict[str, Any]) -> bool:
    """Evaluate a ``where`` of :func:`~memlora_engine.store.filters.to_chroma_where` as Chroma does.

    A negation (``$ne``, ``$nin``) also matches a record without the key; a range
    matches numbers only.
    """
    if "$and" in where:
        return all(_matches(w, metadata) for w in where["$and"])
    if "$or" in where:
        return any(_matches(w, metadata) for w in where["$or"])
    ((key, condition),) = where.items()
    ((op, wanted),) = condition.items()
    present = key in metadata
    value = metadata.get(key)
    if op in ("$eq", "$ne"):
        return (present and _same(value, wanted)) == (op == "$eq")
    if op in ("$in", "$nin"):
        return (present and any(_same(value, w) for w in wanted)) == (op == "$in")
    return present and _number(value) and _RANGES[op](value, wanted)


def _cosine(a: Sequence[float], b: Sequence[float]) -> float:
    norms = math.sqrt(sum(x * x for x in a)) * math.sqrt(sum(y * y for y in b))
    return sum(x * y for x, y in zip(a, b)) / norms if norms else 0.0


class InMemoryStore:
    """A :class:`~memlora_engine.store.base.Store` in plain Python: exact cosine search, Chroma's filters.

    For tests of code above the store (no Chroma needed). Not persistent, not
    shared between processes (``lock_directory`` is None). Thread-safe.

    Args:
        max_batch_size: the largest atomic upsert; small values exercise batch splitting.
    """

    def __init__(self, *, max_batch_size: int = 1000) -> None:
        self._max_batch = max_batch_size
        self._lock = threading.Lock()
        self._scopes: dict[str, Scope] = {}
        self._rows: dict[str, dict[str, tuple[MemoryRecord, list[float]]]] = {}

    @property
    def lock_directory(self) -> Path | None:
        return None

    @property
    def max_batch_size(self) -> int:
        return self._max_batch

    def refresh(self, generation: int, *, mine: bool = False) -> None:
        """Nothing to reload: every handle is this object."""

    @staticmethod
    def _copy(record: MemoryRecord, score: float | None = None) -> MemoryRecord:
        return dataclasses.replace(record, metadata=dict(record.metadata), score=score)

    def upsert(self, scope: Scope, records: Sequence[MemoryRecord], embeddings: Sequence[Sequence[float]]) -> None:
        if not records:
            return
        if len(records) != len(embeddings):
            raise StorageError("one embedding per record")
        with self._lock:
            self._scopes.setdefault(scope.key, scope)
            rows = self._rows.setdefault(scope.key, {})
            for record, vector in zip(records, embeddings):
                rows[record.id] = (self._copy(record), [float(v) for v in vector])

    def delete(self, scope: Scope, ids: Sequence[str]) -> None:
        with self._lock:
            rows = self._rows.get(scope.key, {})
            for id_ in ids:
                rows.pop(id_, None)

    def _records(self, scope: Scope) -> list[tuple[MemoryRecord, list[float]]]:
        with self._lock:
            return list(self._rows.get(scope.key, {}).values())

    def fetch(self, scope: Scope, ids: Sequence[str]) -> list[MemoryRecord]:
        by_id = {r.id: r for r, _ in self._records(scope)}
        return [self._copy(by_id[i]) for i in ids if i in by_id]

    def query(
        self, scope: Scope, embedding: Sequence[float], k: int, filters: dict[str, Any] | None = None
    ) -> list[MemoryRecord]:
        where = to_chroma_where(filters)
        if k <= 0:
            return []
        hits = [(_cosine(embedding, v), r) for r, v in self._records(scope) if where is None or _matches(where, r.metadata)]
        hits.sort(key=lambda hit: -hit[0])
        return [self._copy(r, score) for score, r in hits[:k]]

    def count(self, scope: Scope) -> int:
        return len(self._records(scope))

    def hashes_present(self, scope: Scope, hashes: Sequence[str]) -> set[str]:
        wanted = set(hashes)
        return {r.hash for r, _ in self._records(scope) if r.hash in wanted}

    def ids_with_hash(self, scope: Scope, hash_: str) -> list[str]:
        return [r.id for r, _ in self._records(scope) if r.hash == hash_]

    def scopes(self) -> list[Scope]:
        with self._lock:
            return list(self._scopes.values())

    def drop(self, scope: Scope) -> None:
        with self._lock:
            self._scopes.pop(scope.key, None)
            self._rows.pop(scope.key, None)

    def reset(self) -> None:
        with self._lock:
            self._scopes.clear()
            self._rows.clear()

    def close(self) -> None:
        """Nothing to release."""

    # Last: below it, ``list`` in an annotation would name this method.
    def list(self, scope: Scope, filters: dict[str, Any] | None = None, limit: int | None = None) -> list[MemoryRecord]:
        where = to_chroma_where(filters)
        found = [self._copy(r) for r, _ in self._records(scope) if where is None or _matches(where, r.metadata)]
        found.sort(key=lambda r: (r.created_at, r.id))
        return found if limit is None else found[:limit]
