"""Evidence recall of the answer listing if its vector candidates were re-ordered by their words (model-free).

Usage::

    python results/answers/scripts/lexical_rerank_recall.py ../shared/data/locomo_dev.json CACHE/memlora/conv-30 conv-30

Session 25's choice of ``MemoryConfig.answer_lexical_weight`` on the validation conversation.
Reads a run cache made with sources (``memories.jsonl`` keeps each memory's window; the
provenance in ``checkpoint.json``), searches each category 1-4 question for its ``pool``
best memories by cosine (the stored, source-blended vectors) and re-orders them with
:func:`memlora_engine.hybrid.lexical_rerank` (cosine + weight x BM25 of the question over
text and source, scaled by the best BM25). Prints, per pool and weight, the two measures
of the eval report over the top 10: evidence recall (the share of a question's evidence
turns that produced a listed memory) and evidence recall@k (the share of questions with
at least one). Current memories only (the engine's answers also rank superseded
records), so the numbers differ a little from a run's report.
"""

from __future__ import annotations

import sys

from memlora_engine.data.locomo import load_locomo
from memlora_engine.embeddings.sentence_transformers import SentenceTransformerEmbedder
from memlora_engine.evaluation.retrieval import cached_memory, scored_questions
from memlora_engine.hybrid import lexical_rerank

POOLS = (20, 50, 80, 120)
WEIGHTS = (None, 0.2, 0.3, 0.4, 0.5, 0.7)
K = 10


def main() -> None:
    data, run, sample_id = sys.argv[1:4]
    embedder = SentenceTransformerEmbedder()
    conversation = {c.sample_id: c for c in load_locomo(data)}[sample_id]
    target = cached_memory(run, embedder)
    questions = [q for q in scored_questions(conversation, target.sessions_done) if q.category != 5]
    found = {q.index: target.memory.search(q.question, user_id=target.scope, limit=max(POOLS)) for q in questions}
    for pool in POOLS:
        for weight in WEIGHTS:
            share = hit = 0.0
            for question in questions:
                candidates = found[question.index][:pool]
                listed = candidates if weight is None else lexical_rerank(question.question, candidates, weight)
                turns = {d for m in listed[:K] for d in target.provenance.get(m.id, [])}
                covered = sum(e in turns for e in question.evidence) / len(question.evidence)
                share += covered
                hit += covered > 0
            print(f"{sample_id} pool {pool} weight {weight}: evidence recall {share / len(questions):.3f}, "
                  f"@k {hit / len(questions):.3f}")


if __name__ == "__main__":
    main()
