"""Evidence recall over the top 10 of several word / vector rankings of a cached run's memory (model-free).

Usage::

    python results/answers/scripts/lexical_rankings.py ../shared/data/locomo_dev.json CACHE/memlora/conv-30 conv-30

Session 25's comparison before ``MemoryConfig.answer_lexical_weight``: on a run cache made with
sources (``memories.jsonl`` keeps each memory's window), every category 1-4 question is ranked by
the cosine of the stored (source-blended) vectors, by BM25 alone (``bm25s``, the engine's
:func:`~memlora_engine.hybrid.lexical_tokens`) over the memory texts or over text + source, by
reciprocal-rank fusion of the two (:func:`~memlora_engine.hybrid.rrf_fuse`, k = 60), and by the
cosine plus 0.3 x BM25 / best BM25, over the whole scope and over the cosine's top 120 only
(:func:`~memlora_engine.hybrid.lexical_rerank`; at weight 0.4 also with BM25 over the texts alone).
Then the choice of ``answer_lexical_weight``: the
cosine's top 20 / 50 / 80 / 120 re-ordered with ``lexical_rerank`` at each weight. Prints, per
ranking, the share of each question's evidence turns that produced one of the top 10 memories,
averaged (the eval report's evidence recall), and for the grid also the share of questions with at
least one (evidence recall@k). Current memories only (the engine's answers also rank superseded
records), so the numbers differ a little from a run's report.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import replace

import bm25s
import numpy as np

from memlora_engine.data.locomo import load_locomo
from memlora_engine.embeddings.sentence_transformers import SentenceTransformerEmbedder
from memlora_engine.evaluation.retrieval import cached_memory, scored_questions
from memlora_engine.hybrid import lexical_rerank, lexical_tokens, rrf_fuse

K = 10
POOLS = (20, 50, 80, 120)
WEIGHTS = (None, 0.2, 0.3, 0.4, 0.5, 0.7)


def main() -> None:
    data, run, sample_id = sys.argv[1:4]
    embedder = SentenceTransformerEmbedder()
    conversation = {c.sample_id: c for c in load_locomo(data)}[sample_id]
    target = cached_memory(run, embedder, search_lexical_weight=None)
    questions = [q for q in scored_questions(conversation, target.sessions_done) if q.category != 5]
    records = target.memory.get_all(user_id=target.scope)
    ids = [r.id for r in records]

    def index(texts: list[str]) -> bm25s.BM25:
        bm25 = bm25s.BM25()
        bm25.index([lexical_tokens(t) for t in texts], show_progress=False)
        return bm25

    by_text = index([r.text for r in records])
    by_source = index([f"{r.text} {r.source or ''}" for r in records])

    def bm25_scores(bm25: bm25s.BM25, question: str) -> np.ndarray:
        scores = np.zeros(len(ids))
        tokens = lexical_tokens(question)
        if tokens:
            found, values = bm25.retrieve([tokens], k=len(ids), show_progress=False)
            scores[found[0]] = values[0]
        return scores

    def bm25_ranking(bm25: bm25s.BM25, question: str) -> list[str]:
        scores = bm25_scores(bm25, question)
        return [ids[i] for i in np.argsort(-scores, kind="stable") if scores[i] > 0]

    def cosine_ranking(question: str, k: int = len(ids)) -> list[str]:
        return [h.id for h in target.memory.search(question, user_id=target.scope, limit=k)]

    def whole_scope(question: str) -> list[str]:
        cosine = {h.id: h.score or 0.0 for h in target.memory.search(question, user_id=target.scope, limit=len(ids))}
        lexical = bm25_scores(by_source, question)
        best = max(float(lexical.max()), 1e-9)
        fused = [cosine.get(i, 0.0) + 0.3 * float(s) / best for i, s in zip(ids, lexical, strict=True)]
        return [ids[i] for i in np.argsort(-np.array(fused), kind="stable")]

    candidates = {q.question: target.memory.search(q.question, user_id=target.scope, limit=max(POOLS))
                  for q in questions}

    def reranked(pool: int, weight: float | None, *, sources: bool = True) -> Callable[[str], list[str]]:
        def rank(question: str) -> list[str]:
            found = candidates[question][:pool]
            if not sources:
                found = [replace(m, source=None) for m in found]
            return [m.id for m in (found if weight is None else lexical_rerank(question, found, weight))]
        return rank

    def evidence(rank: Callable[[str], list[str]]) -> tuple[float, float]:
        """(mean share of a question's evidence turns in the top K, share of questions with one)."""
        shares = []
        for question in questions:
            turns = {d for i in rank(question.question)[:K] for d in target.provenance.get(i, [])}
            shares.append(sum(e in turns for e in question.evidence) / len(question.evidence))
        return sum(shares) / len(shares), sum(s > 0 for s in shares) / len(shares)

    rankings: dict[str, Callable[[str], list[str]]] = {
        "cosine of the stored vectors": cosine_ranking,
        "BM25 over the memory texts": lambda q: bm25_ranking(by_text, q),
        "BM25 over text + source": lambda q: bm25_ranking(by_source, q),
        "RRF of cosine and BM25 over texts": lambda q: rrf_fuse([cosine_ranking(q, 60), bm25_ranking(by_text, q)[:60]]),
        "RRF of cosine and BM25 over text + source":
            lambda q: rrf_fuse([cosine_ranking(q, 60), bm25_ranking(by_source, q)[:60]]),
        "cosine + 0.3 x BM25(text + source) / best, whole scope": whole_scope,
        "the same over the cosine's top 120": reranked(120, 0.3),
        "the cosine's top 120 re-ordered at weight 0.4, BM25 over the memory texts alone":
            reranked(120, 0.4, sources=False),
    }
    for name, rank in rankings.items():
        print(f"{sample_id} {name}: evidence recall {evidence(rank)[0]:.3f}")
    for pool in POOLS:
        for weight in WEIGHTS:
            share, hit = evidence(reranked(pool, weight))
            print(f"{sample_id} pool {pool} weight {weight}: evidence recall {share:.3f}, @k {hit:.3f}")


if __name__ == "__main__":
    main()
