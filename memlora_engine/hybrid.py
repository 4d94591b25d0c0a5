"""Hybrid search: BM25 over a scope's memory texts, fused with the vector hits by reciprocal rank.

``MemoryConfig(search_mode="hybrid")`` turns it on. Vector search alone misses
memories that share the question's rare words (a name, a place, "Lisbon") but not
its overall meaning; BM25 finds those, and reciprocal-rank fusion (RRF, Cormack et
al. 2009) merges the two rankings without calibrating their scores.

The BM25 index (the ``bm25s`` package, ``pip install "memlora[hybrid]"``) is
derived data, never the source of truth: it is built from the store's records on
the first search of a scope, kept **in this process's memory only** (nothing is
written to disk, so a forgotten text cannot linger in an index file), and rebuilt
when the history's write generation moved -- every committed batch and every
forget in any process moves it, so the index never serves a deleted or outdated
text. ``delete_all`` and ``reset`` drop the scope's index at once.

The scores returned stay cosine similarities (a memory found by BM25 alone is
embedded to get one), so ``threshold`` keeps its meaning; the order is the fused
one.

:func:`lexical_rerank` is the other use of BM25 here, on by default in ``Memory.answer``
and ``Memory.search`` (``MemoryConfig.answer_lexical_weight``, ``search_lexical_weight``):
the vector candidates re-ordered by their words too, each memory read with the
conversation it came from. It needs no index (a throwaway one over the candidates), so
its own cost is the same at any store size.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

from memlora_engine.embeddings.base import Embedder, cosine
from memlora_engine.errors import require
from memlora_engine.store.base import Store
from memlora_engine.types import MemoryRecord, Scope

__all__ = ["RERANK_POOL", "RRF_K", "SEARCH_MODES", "SEARCH_RERANK_POOL", "LexicalIndex", "hybrid_search",
           "lexical_rerank", "lexical_tokens", "rrf_fuse"]

SEARCH_MODES = ("vector", "hybrid")
"""``MemoryConfig.search_mode`` values."""

RRF_K = 60
"""The rank offset of reciprocal-rank fusion (the value of the original paper and of most engines)."""

_CANDIDATES = 50
"""Each ranking contributes its top ``max(_CANDIDATES, 3 * k)`` hits to the fusion."""

# Function words carry no evidence; the question words would otherwise match every
# memory that happens to contain "what" or "did".
_STOPWORDS = frozenset(
    "a about after again all also am an and any are as at be been before being both but by can could did do does "
    "doing done for from had has have having he her here hers him his how i if in into is it its itself just me "
    "more most my no nor not now of off on once only or other our ours out over own same she should so some such "
    "than that the their theirs them then there these they this those through to too under until up very was we "
    "were what when where which while who whom why will with would you your yours".split()
)
_WORD = re.compile(r"[^\W_]+", re.UNICODE)
_POSSESSIVE = re.compile(r"['\u2019]s\b")


def lexical_tokens(text: str) -> list[str]:
    """Lower-cased word tokens of ``text`` without function words, lightly stemmed.

    The stemming is cheap and deliberate: a possessive ``'s`` and a plural ``s``
    go (``"Alice's dogs"`` -> ``alice``, ``dog``), so a question and a memory that
    inflect a name or noun differently still match.
    """
    tokens = []
    for word in _WORD.findall(_POSSESSIVE.sub("", text.lower())):
        if word in _STOPWORDS:
            continue
        if len(word) > 3 and word.endswith("s") and not word.endswith("ss"):
            word = word[:-1]
        tokens.append(word)
    return tokens


def rrf_fuse(rankings: Sequence[Sequence[str]], k: int = RRF_K) -> list[str]:
    """Ids ordered by reciprocal-rank fusion of ``rankings`` (each best first); ties keep first-seen order."""
    scores: dict[str, float] = {}
    for ranking in rankings:
        for rank, id_ in enumerate(ranking):
            scores[id_] = scores.get(id_, 0.0) + 1.0 / (k + rank + 1)
    order = {id_: i for i, id_ in enumerate(scores)}
    return sorted(scores, key=lambda id_: (-scores[id_], order[id_]))


def _bm25s() -> Any:
    return require("bm25s", "hybrid")


RERANK_POOL = 120
"""How many vector candidates ``Memory.answer`` re-orders with :func:`lexical_rerank` (at least)."""

SEARCH_RERANK_POOL = 50
"""How many vector candidates ``Memory.search`` re-orders with :func:`lexical_rerank` (at least).

Fewer than ``answer``'s: a search is the integrations' hot path (p50 under 10 ms at 100k
memories, ``memlora bench-store``), an answer waits on a generation call anyway. Evidence
recall over the top 10 at this pool (session 25's grid, ``results/answers/scripts/lexical_rankings.py``):
conv-30 0.579 -> 0.653, conv-26 0.613 -> 0.658 (0.692 / 0.712 at 120).
"""


def lexical_rerank(query: str, records: Sequence[MemoryRecord], weight: float) -> list[MemoryRecord]:
    """``records`` ordered by their cosine ``score`` plus ``weight`` times their BM25 match with ``query``.

    Each record is read as its text followed by its ``source`` (the conversation window
    it was extracted from, when it has one): a question shares rare words ("Marley
    flooring", "charity race") with what was said more often than with the one-line
    fact the extraction expert wrote. The BM25 statistics are those of ``records``
    alone, and the scores are divided by the best one, so the best word match gains
    ``weight`` and the others their share of it: the cosine keeps the order where no
    word is shared. Ties keep the given order; ``score`` stays the cosine.
    """
    if weight == 0:
        return list(records)
    vocabulary: dict[str, int] = {}
    corpus = [[vocabulary.setdefault(t, len(vocabulary)) for t in lexical_tokens(f"{r.text} {r.source or ''}")]
              for r in records]
    terms = [vocabulary[t] for t in dict.fromkeys(lexical_tokens(query)) if t in vocabulary]
    if not terms:
        return list(records)
    bm25 = _bm25s().BM25()
    # bm25s takes (ids, vocabulary) as its own tokenizer's output; our tokens keep query and corpus alike.
    bm25.index((corpus, vocabulary), show_progress=False)
    lexical = bm25.get_scores(terms)
    best = float(lexical.max())
    if best <= 0:
        return list(records)
    fused = [(r.score or 0.0) + weight * float(s) / best for r, s in zip(records, lexical, strict=True)]
    return [records[i] for i in sorted(range(len(records)), key=lambda i: -fused[i])]


@dataclass
class _ScopeIndex:
    generation: int
    ids: list[str]
    vocabulary: dict[str, int]
    bm25: Any  # bm25s.BM25, or None for a scope without a single indexable word


class LexicalIndex:
    """Per-scope BM25 indexes, held in memory and rebuilt when the store changed.

    Thread-safe: one lock guards the table; a rebuild happens outside it is not
    worth the complexity here (a rebuild is rare, and it holds the lock).
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._indexes: dict[str, _ScopeIndex] = {}

    def discard(self, scope: Scope | None = None) -> None:
        """Drop the scope's index (every index when None), e.g. when the scope is forgotten."""
        with self._lock:
            if scope is None:
                self._indexes.clear()
            else:
                self._indexes.pop(scope.key, None)

    def _build(self, generation: int, records: Sequence[MemoryRecord]) -> _ScopeIndex:
        vocabulary: dict[str, int] = {}
        corpus = [[vocabulary.setdefault(t, len(vocabulary)) for t in lexical_tokens(r.text)] for r in records]
        bm25 = None
        if vocabulary:
            bm25 = _bm25s().BM25()
            # bm25s takes (ids, vocabulary) as its own tokenizer's output; our tokens keep query and corpus alike.
            bm25.index((corpus, vocabulary), show_progress=False)
        return _ScopeIndex(generation, [r.id for r in records], vocabulary, bm25)

    def top(self, scope: Scope, query: str, k: int, generation: int,
            load: Callable[[], Sequence[MemoryRecord]]) -> list[str]:
        """The ids of the scope's ``k`` best BM25 matches for ``query`` (only those sharing a word).

        Args:
            generation: the store's current write generation; an index built at
                another one is rebuilt from ``load()`` (every record of the scope).
        """
        with self._lock:
            index = self._indexes.get(scope.key)
            if index is None or index.generation != generation:
                index = self._build(generation, load())
                self._indexes[scope.key] = index
        terms = [index.vocabulary[t] for t in dict.fromkeys(lexical_tokens(query)) if t in index.vocabulary]
        if not terms or index.bm25 is None or k <= 0:
            return []
        found, scores = index.bm25.retrieve([terms], k=min(k, len(index.ids)), show_progress=False, n_threads=1)
        return [index.ids[int(i)] for i, s in zip(found[0], scores[0]) if s > 0]


def hybrid_search(
    store: Store,
    lexical: LexicalIndex,
    embedder: Embedder,
    scope: Scope,
    query: str,
    vector: Sequence[float],
    k: int,
    filters: dict[str, Any] | None,
    generation: int,
    *,
    superseded: bool = False,
) -> list[MemoryRecord]:
    """The scope's ``k`` best memories for ``query`` by RRF of vector and BM25 rankings (see the module docstring).

    With ``filters``, BM25 hits are kept only when the store lists them under the
    same filter (one extra store read, done only for filtered searches).
    ``superseded``: the vector ranking includes superseded records (the BM25 index
    holds the current memories only).
    """
    pool = max(_CANDIDATES, 3 * k)
    by_vector = store.query(scope, vector, pool, filters, superseded=superseded)
    lexical_ids = lexical.top(scope, query, pool, generation, lambda: store.list(scope))
    if filters is not None and lexical_ids:
        allowed = {r.id for r in store.list(scope, filters)}
        lexical_ids = [i for i in lexical_ids if i in allowed]
    known = {r.id: r for r in by_vector}
    chosen = rrf_fuse([[r.id for r in by_vector], lexical_ids])[:k]
    missing = [i for i in chosen if i not in known]
    if missing:
        fetched = store.fetch(scope, missing)  # an id gone since the index was built is simply skipped
        vectors = embedder.embed([r.text for r in fetched]) if fetched else []
        for record, emb in zip(fetched, vectors):
            known[record.id] = replace(record, score=cosine(vector, emb))
    return [known[i] for i in chosen if i in known]
