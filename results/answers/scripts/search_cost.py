"""Search cost on the persisted 100k bench store: wall and CPU (process_time) per search, with a breakdown.

Usage: search_cost.py DATA_DIR N [part,...] (DATA_DIR: a store filled by `memlora bench-store --data-dir`)
The machine is shared (load average > 20): CPU time per search is the robust figure; wall time is inflated.
"""
import json, random, statistics, sys, time
from memlora_engine import Memory, MemoryConfig
from memlora_engine.embeddings.hashing import HashingEmbedder
from memlora_engine import hybrid as H
from memlora_engine.types import Scope

data_dir, n = sys.argv[1], int(sys.argv[2])
_WORDS = ("coffee tea hiking paris lisbon dog cat piano guitar sister brother allergy peanuts vegan running "
          "chess python teacher nurse garden birthday march april soccer novel jazz sushi").split()
emb = HashingEmbedder(384)
out = {}

def timed(fn, queries):
    wall, cpu = [], []
    for q in queries:
        w0, c0 = time.perf_counter(), time.process_time()
        fn(q)
        cpu.append(time.process_time() - c0); wall.append(time.perf_counter() - w0)
    return {"cpu_p50_ms": round(1000 * statistics.median(cpu), 2), "wall_p50_ms": round(1000 * statistics.median(wall), 2),
            "cpu_p90_ms": round(1000 * sorted(cpu)[int(0.9 * len(cpu))], 2)}

rng = random.Random(0)
queries = [" ".join(rng.choice(_WORDS) for _ in range(3)) for _ in range(n)]
memory = Memory(MemoryConfig(data_dir=data_dir, search_mode="hybrid", search_lexical_weight=None), embedder=emb)
scope = Scope("bench", None, None)
c0, w0 = time.process_time(), time.perf_counter()
memory.search("coffee", user_id="bench", limit=10)
out["index_build"] = {"cpu_s": round(time.process_time() - c0, 2), "wall_s": round(time.perf_counter() - w0, 2)}
print(out, flush=True)
vec = {q: emb.embed([q])[0] for q in queries}
gen = memory._repo.history.generation()
parts = sys.argv[3].split(",") if len(sys.argv) > 3 else ["hybrid", "vector", "query10", "query20", "query50", "bm25", "generation", "embed"]
for part in parts:
    if part == "hybrid":
        memory.config.search_mode = "hybrid"
        fn = lambda q: memory.search(q, user_id="bench", limit=10)
    elif part == "vector":
        memory.config.search_mode = "vector"
        fn = lambda q: memory.search(q, user_id="bench", limit=10)
    elif part.startswith("query"):
        k = int(part[5:])
        fn = lambda q, k=k: memory.store.query(scope, vec[q], k, None)
    elif part == "bm25":
        fn = lambda q: memory._lexical.top(scope, q, 50, gen, lambda: memory.store.list(scope))
    elif part == "generation":
        fn = lambda q: memory._repo.history.generation()
    elif part == "embed":
        fn = lambda q: emb.embed([q])
    out[part] = timed(fn, queries)
    print(part, out[part], flush=True)
memory.close()
json.dump(out, open("search_cost_100k.json", "w"), indent=1)
