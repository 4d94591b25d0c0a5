"""Evidence recall@10 if each memory were stored under its text plus a weight times its source window (model-free).

Usage::

    python results/answers/scripts/source_weight_recall.py ../shared/data/locomo_dev.json CACHE/memlora/conv-30 conv-30

Session 24's choice of ``MemoryConfig.source_weight`` on the validation conversation.
Reads a run cache made *without* sources (``memories.jsonl`` and the provenance in
``checkpoint.json``), takes each memory's source to be the last two turns of its
provenance (the window that wrote it last, ``"Speaker: text"`` lines as the engine
renders them) and, for each weight, ranks every memory by the cosine of the question
(all-MiniLM-L6-v2) with ``blend(text, source, weight)``
(:func:`memlora_engine.embeddings.base.blend`, what the engine stores). Prints the share of
category 1-4 questions with a memory from an evidence turn among the top 10, per weight.
Current memories only (the engine's answers also rank superseded records), so the
numbers differ a little from a run's report.
"""

from __future__ import annotations

import sys

from memlora_engine.data.locomo import load_locomo
from memlora_engine.embeddings.base import blend, cosine
from memlora_engine.embeddings.sentence_transformers import SentenceTransformerEmbedder
from memlora_engine.evaluation.retrieval import cached_memory, scored_questions

WEIGHTS = (0.0, 0.3, 0.5, 0.7, 1.0, 2.0)


def main() -> None:
    data, run, sample_id = sys.argv[1:4]
    embedder = SentenceTransformerEmbedder()
    conversation = {c.sample_id: c for c in load_locomo(data)}[sample_id]
    target = cached_memory(run, embedder, search_lexical_weight=None)
    turns = {t.dia_id: f"{t.speaker}: {t.text}" for s in conversation.sessions for t in s.turns}
    memories = target.memory.get_all(user_id=target.scope)
    provenance = [list(target.provenance.get(m.id, [])) for m in memories]
    sources = ["\n".join(turns[d] for d in p[-2:] if d in turns) or m.text for p, m in zip(provenance, memories)]
    texts = embedder.embed([m.text for m in memories])
    windows = embedder.embed(sources)
    questions = [q for q in scored_questions(conversation, target.sessions_done) if q.category != 5]
    asked = embedder.embed([q.question for q in questions])
    for weight in WEIGHTS:
        stored = [blend(t, w, weight) for t, w in zip(texts, windows)]
        found = 0
        for question, vector in zip(questions, asked):
            ranked = sorted(range(len(memories)), key=lambda i: -cosine(vector, stored[i]))[:10]
            found += any(set(question.evidence) & set(provenance[i]) for i in ranked)
        print(f"{sample_id} source_weight {weight}: evidence recall@10 {found / len(questions):.3f}")


if __name__ == "__main__":
    main()
