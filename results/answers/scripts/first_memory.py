"""Does the first memory an answer lists hold the answer? Orders of the listing compared (model-free).

Usage::

    python results/answers/scripts/first_memory.py ../shared/data/locomo_dev.json CACHE/memlora/conv-30 conv-30

Session 30's check before ``MemoryConfig.answer_turns``. On a run cache made with sources, each category
1 / 2 / 4 question is ranked as ``Memory.answer`` ranks it (the cosine's top ``RERANK_POOL`` re-ordered by
:func:`~memlora_engine.hybrid.lexical_rerank` at 0.4; current memories only), and the top 10 are then
ordered five ways: as the engine lists them, by the cosine of the question with each memory's own text,
and by that cosine plus 0.2 / 0.4 / 0.8 x BM25 over the texts alone. Printed per order: the share of
questions whose first memory came from an evidence turn (evidence@1), and whose first memory's text holds
at least half of the reference answer's words (answer-words@1, :func:`~memlora_engine.hybrid.lexical_tokens`),
beside the share for which any of the 10 does. Then, for the engine's order, the same answer-words share
for the first 1 / 2 / 3 memories' texts, their source windows, and either (what listing a memory's source
could add), and the source windows' length in words.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from dataclasses import replace

import numpy as np

from memlora_engine.data.locomo import load_locomo
from memlora_engine.embeddings.base import cosine
from memlora_engine.embeddings.sentence_transformers import SentenceTransformerEmbedder
from memlora_engine.evaluation.retrieval import cached_memory, scored_questions
from memlora_engine.hybrid import RERANK_POOL, lexical_rerank, lexical_tokens
from memlora_engine.types import MemoryRecord


def holds(text: str, reference: object) -> bool:
    """Whether ``text`` holds at least half of the reference answer's content words."""
    wanted = set(lexical_tokens(str(reference)))
    return bool(wanted) and len(wanted & set(lexical_tokens(text))) / len(wanted) >= 0.5


def main() -> None:
    data, run, sample_id = sys.argv[1:4]
    embedder = SentenceTransformerEmbedder()
    conversation = {c.sample_id: c for c in load_locomo(data)}[sample_id]
    target = cached_memory(run, embedder, search_lexical_weight=None)
    questions = [q for q in scored_questions(conversation, target.sessions_done) if q.category in (1, 2, 4)]
    rows = []
    for question in questions:
        candidates = target.memory.search(question.question, user_id=target.scope, limit=RERANK_POOL)
        listed = lexical_rerank(question.question, candidates, 0.4)[:10]
        vector = embedder.embed([question.question])[0]
        own = [cosine(vector, v) for v in embedder.embed([m.text for m in listed])]
        rows.append((question, listed, own))

    Order = Callable[[str, Sequence[MemoryRecord], Sequence[float]], list[int]]

    def with_words(weight: float) -> Order:
        def order(question: str, listed: Sequence[MemoryRecord], own: Sequence[float]) -> list[int]:
            texts = [replace(m, source=None, score=own[i]) for i, m in enumerate(listed)]
            position = {m.id: i for i, m in enumerate(listed)}
            return [position[m.id] for m in lexical_rerank(question, texts, weight)]
        return order

    orders: dict[str, Order] = {
        "the engine's order": lambda q, listed, own: list(range(len(listed))),
        "own-text cosine": lambda q, listed, own: sorted(range(len(listed)), key=lambda i: -own[i]),
        **{f"own-text cosine + {w} x BM25(text)": with_words(w) for w in (0.2, 0.4, 0.8)},
    }
    for name, order in orders.items():
        evidence = answer = anywhere = 0
        for question, listed, own in rows:
            first = listed[order(question.question, listed, own)[0]]
            evidence += bool(set(question.evidence) & set(target.provenance.get(first.id, [])))
            answer += holds(first.text, question.reference)
            anywhere += any(holds(m.text, question.reference) for m in listed)
        n = len(rows)
        print(f"{sample_id} {name}: evidence@1 {evidence / n:.3f}, answer-words@1 {answer / n:.3f} "
              f"(any of 10: {anywhere / n:.3f}), n={n}")
    for k in (1, 2, 3):
        text = source = either = 0
        for question, listed, _ in rows:
            in_text = any(holds(m.text, question.reference) for m in listed[:k])
            in_source = any(holds(m.source or "", question.reference) for m in listed[:k])
            text, source, either = text + in_text, source + in_source, either + (in_text or in_source)
        n = len(rows)
        print(f"{sample_id} first {k}: answer words in a text {text / n:.3f}, in a source window {source / n:.3f}, "
              f"either {either / n:.3f}")
    words = [len((listed[0].source or "").split()) for _, listed, _ in rows]
    print(f"{sample_id} the first memory's source window: {np.mean(words):.0f} words (median {np.median(words):.0f})")


if __name__ == "__main__":
    main()
