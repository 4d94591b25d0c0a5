"""Memories built straight from LoCoMo data, shared by evaluation and training (which never import each other).

:func:`observation_memory` stores LoCoMo's own ``observation`` facts of a conversation as
memories, dated with their session, each with its evidence turns as provenance: a
model-free memory to measure retrieval on (:mod:`memlora_engine.evaluation.retrieval`)
and to build generation examples from (:mod:`memlora_engine.training.unanswerable`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from memlora_engine.data.locomo import Conversation
from memlora_engine.embeddings.base import Embedder

__all__ = ["RetrievalTarget", "in_memory_memory", "observation_memory"]


@dataclass
class RetrievalTarget:
    """A memory to search, the scope it holds a conversation in, and each memory's source turns.

    Attributes:
        provenance: memory id -> the dia_ids it came from.
        sessions_done: how many sessions the memory has ingested.
    """

    memory: Any
    scope: str
    provenance: dict[str, list[str]]
    sessions_done: int


def in_memory_memory(embedder: Embedder, search_mode: str, **settings: Any) -> Any:
    """A fresh :class:`~memlora_engine.Memory` on the in-memory store, writing no file.

    ``settings``: other ``MemoryConfig`` fields (e.g. ``search_lexical_weight=None``
    for the vector order that scripts of earlier sessions measured).
    """
    from memlora_engine.config import MemoryConfig
    from memlora_engine.memory import Memory

    return Memory(MemoryConfig(store="memory", search_mode=search_mode, data_dir=None, **settings), embedder=embedder)


def observation_memory(conversation: Conversation, embedder: Embedder, *, search_mode: str = "vector",
                       **settings: Any) -> RetrievalTarget:
    """LoCoMo's observations of ``conversation`` as memories, written at their session's time (``settings``:
    other ``MemoryConfig`` fields)."""
    memory = in_memory_memory(embedder, search_mode, **settings)
    scope = f"locomo-{conversation.sample_id}"
    dates = {s.index: s.date_time for s in conversation.sessions}
    provenance: dict[str, list[str]] = {}
    for session in conversation.sessions:
        texts = [o for o in conversation.observations if o.session == session.index]
        if not texts:
            continue
        result = memory.add_many([o.text for o in texts], user_id=scope, timestamp=dates[session.index])
        by_text = {o.text.strip(): o for o in texts}
        for event in result.events:
            source = by_text.get(event.text)
            if source is not None:
                provenance.setdefault(event.id, []).extend(source.evidence)
    return RetrievalTarget(memory, scope, provenance, len(conversation.sessions))
