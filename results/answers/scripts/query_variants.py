"""Query-side variants on LoCoMo observation memories (model-free). Usage: query_variants.py CONV[,CONV...] [variant ...]

Each question's vector ranking (per query form) and BM25 ranking (per boost) are computed once at
the largest pool; a ranking truncated to a smaller pool is the same ranking, so every variant and
every k is fused from those cached lists exactly as memlora_engine.hybrid.hybrid_search fuses them.
"""
import json, re, sys
from memlora_engine.data.locomo import load_locomo
from memlora_engine.embeddings.sentence_transformers import SentenceTransformerEmbedder
from memlora_engine.evaluation.retrieval import observation_memory, scored_questions, evidence_recall_at_k
from memlora_engine import hybrid as H
from memlora_engine.types import Scope

KS = [1, 3, 5, 8, 10, 12, 15, 20, 25, 30]
MAXPOOL = 300
ALL = {c.sample_id: c for c in load_locomo("/work/shared/data/locomo_dev.json")}
emb = SentenceTransformerEmbedder()
convs = sys.argv[1].split(",")
names = sys.argv[2:]
for conv_id in convs:
    c = ALL[conv_id]
    target = observation_memory(c, emb, search_mode="vector")
    mem = target.memory
    scope = Scope(target.scope, None, None)
    qs = scored_questions(c, target.sessions_done)
    speakers = {c.speaker_a.lower(), c.speaker_b.lower()}

    _LEAD = re.compile(r"^\s*(what|when|where|which|who|whom|whose|why|how( long| many| much| often| old)?)\b\s*"
                       r"((is|are|was|were|do|does|did|has|have|had|can|could|would|will|should|might)\b\s*)?", re.I)

    def rewrite(q):
        return _LEAD.sub("", q).rstrip("?").strip() or q

    def proper_nouns(q):
        words = re.findall(r"[^\W_]+", q)
        return [w for i, w in enumerate(words) if i > 0 and w[:1].isupper()]

    mem._lexical.top(scope, "x", 1, mem._repo.history.generation(), lambda: mem.store.list(scope))
    index = mem._lexical._indexes[scope.key]
    _vec, _lex = {}, {}

    def vec_ranking(query):
        if query not in _vec:
            v = emb.embed([query])[0]
            _vec[query] = [r.id for r in mem.store.query(scope, v, MAXPOOL, None)]
        return _vec[query]

    def lex_ranking(query, boost, boost_speakers):
        key = (query, boost, boost_speakers)
        if key not in _lex:
            terms = [index.vocabulary[t] for t in dict.fromkeys(H.lexical_tokens(query)) if t in index.vocabulary]
            if boost > 1:
                names = {t for n in proper_nouns(query) for t in H.lexical_tokens(n)}
                if not boost_speakers:
                    names -= speakers
                terms += [index.vocabulary[t] for t in sorted(names) if t in index.vocabulary] * (boost - 1)
            if not terms:
                _lex[key] = []
            else:
                found, scores = index.bm25.retrieve([terms], k=min(MAXPOOL, len(index.ids)), show_progress=False, n_threads=1)
                _lex[key] = [index.ids[int(i)] for i, s in zip(found[0], scores[0]) if s > 0]
        return _lex[key]

    class R:
        def __init__(s, i): s.id = i

    def make(vector_query=lambda q: q, lexical=True, boost=1, boost_speakers=True, rrf_k=60, lex_weight=1.0, pool_min=50):
        def search(q, k):
            pool = max(pool_min, 3 * k)
            by_vector = vec_ranking(vector_query(q))
            if not lexical:
                return [R(i) for i in by_vector[:k]]
            lex = lex_ranking(q, boost, boost_speakers)[:pool]
            scores = {}
            for w, ranking in ((1.0, by_vector[:pool]), (lex_weight, lex)):
                for rank, i in enumerate(ranking):
                    scores[i] = scores.get(i, 0.0) + w / (rrf_k + rank + 1)
            order = {i: n for n, i in enumerate(scores)}
            return [R(i) for i in sorted(scores, key=lambda i: (-scores[i], order[i]))[:k]]
        return search

    VARIANTS = {
        "vector": make(lexical=False),
        "hybrid": make(),
        "bm25-only": make(lex_weight=1e6, pool_min=MAXPOOL),
        "vector+rewrite": make(vector_query=rewrite, lexical=False),
        "hybrid+rewrite": make(vector_query=rewrite),
        "hybrid+names2": make(boost=2),
        "hybrid+names2-nospk": make(boost=2, boost_speakers=False),
        "hybrid+names3-nospk": make(boost=3, boost_speakers=False),
        "hybrid-lex0.5": make(lex_weight=0.5),
        "hybrid-lex2": make(lex_weight=2.0),
        "hybrid-rrf10": make(rrf_k=10),
        "hybrid-pool20": make(pool_min=20),
        "hybrid-pool100": make(pool_min=100),
    }
    names = names or list(VARIANTS)
    out = {}
    for name in names:
        r = evidence_recall_at_k(target, qs, KS, search=VARIANTS[name])
        out[name] = {"overall": r["overall"], "per_category": r["per_category"]}
        o = r["overall"]
        print(f"{name:22} 1-4 n={o['count']} " + " ".join(f"@{k}:{o[f'k={k}']:.3f}" for k in KS)
              + " | cat5 @5/10/20 " + " ".join(f"{r['per_category'].get('5', {}).get(f'k={k}', 0):.3f}" for k in (5, 10, 20)), flush=True)
    json.dump({"conversation": conv_id, "memories": len(index.ids), "k": KS, "variants": out},
              open(f"query_variants_{conv_id}.json", "w"), indent=1)
