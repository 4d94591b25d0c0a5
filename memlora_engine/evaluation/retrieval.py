"""Retrieval measured apart from generation: evidence recall@k per category, from a cached memory.

A question's retrieval is a hit at ``k`` when at least one of its top-``k`` memories
came from one of its evidence turns (``evidence_hit``). A memory's source turns are
its provenance: the dia_ids of the ``add`` windows that ADDed or UPDATEd it, kept
in the run cache's ``checkpoint.json`` (:mod:`memlora_engine.evaluation.runner`).

Two memories to measure on:

* :func:`cached_memory` -- the memory a ``memlora eval locomo`` run built, loaded
  from its cache (``memories.jsonl``, with the provenance); a run that stopped
  part-way counts: only the questions whose evidence lies in its ingested sessions
  are asked. Re-scoring it under several search settings needs no model.
* :func:`observation_memory` -- LoCoMo's own ``observation`` facts stored as
  memories (dated with their session, provenance = their evidence turns): a
  model-free memory, used to compare search settings and choose ``answer_top_k``
  on the validation conversation without ingesting it.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from memlora_engine.data.locomo import QA, Conversation, session_of
from memlora_engine.data.memories import RetrievalTarget, observation_memory
from memlora_engine.data.memories import in_memory_memory as _memory
from memlora_engine.embeddings.base import Embedder

__all__ = ["RetrievalTarget", "cached_memory", "evidence_recall_at_k", "observation_memory", "scored_questions"]


def cached_memory(conversation_dir: str | Path, embedder: Embedder, *, search_mode: str = "vector",
                  **settings: Any) -> RetrievalTarget:
    """The memory cached in ``<cache>/<config>/<sample_id>/`` (finished or not), in a fresh in-memory store
    (``settings``: other ``MemoryConfig`` fields)."""
    directory = Path(conversation_dir)
    checkpoint = json.loads((directory / "checkpoint.json").read_text(encoding="utf-8"))
    scope = f"locomo-{directory.name}"
    memory = _memory(embedder, search_mode, **settings)
    if (directory / "memories.jsonl").exists() and checkpoint["sessions_done"]:
        memory.import_(directory / "memories.jsonl", user_id=scope)
    return RetrievalTarget(memory, scope, checkpoint["provenance"], checkpoint["sessions_done"])


def scored_questions(conversation: Conversation, sessions_done: int) -> list[QA]:
    """The questions with evidence, all of it in the first ``sessions_done`` sessions."""
    return [q for q in conversation.qa if q.evidence and all(session_of(e) <= sessions_done for e in q.evidence)]


def evidence_recall_at_k(
    target: RetrievalTarget, questions: Sequence[QA], ks: Sequence[int],
    search: Callable[[str, int], list[Any]] | None = None,
) -> dict[str, Any]:
    """Share of questions with an evidence-turn memory among the top ``k``, per category and overall (1-4).

    Each question is searched once per ``k`` with ``limit=k``, as ``Memory.answer``
    searches: hybrid fusion draws ``max(50, 3 * k)`` candidates from each ranking, so
    the top ``k`` of a longer search is not always the search at ``k``.

    Returns:
        ``{"overall": {"count", "k=5": ...}, "per_category": {"1": {...}}, "questions": [...]}``
        where ``questions`` lists, per question, the rank of the first evidence hit in
        the search at ``max(ks)`` (or None).
    """
    search = search or (lambda q, k: target.memory.search(q, user_id=target.scope, limit=k))
    rows = []
    for qa in questions:
        evidence = set(qa.evidence)
        found: dict[int, bool] = {}
        first = None
        for k in sorted(set(ks)):
            hits = search(qa.question, k)
            first = next((rank for rank, h in enumerate(hits, 1) if evidence & set(target.provenance.get(h.id, []))),
                         None)
            found[k] = first is not None
        rows.append({"question_index": qa.index, "category": qa.category, "first_hit_rank": first, "found": found})

    def summary(subset: list[dict[str, Any]]) -> dict[str, Any]:
        out: dict[str, Any] = {"count": len(subset)}
        for k in ks:
            hit = sum(r["found"][k] for r in subset)
            out[f"k={k}"] = round(hit / len(subset), 4) if subset else None
        return out

    categories: set[int] = {qa.category for qa in questions}
    per_category = {str(c): summary([r for r in rows if r["category"] == c]) for c in sorted(categories)}
    return {"overall": summary([r for r in rows if r["category"] in (1, 2, 3, 4)]), "per_category": per_category,
            "questions": [{k: v for k, v in r.items() if k != "found"} for r in rows]}
