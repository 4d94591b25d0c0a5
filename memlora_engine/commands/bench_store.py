"""``memlora bench-store``: sustained ingestion and search on a large store.

Fills one scope with ``--memories`` memories through the bulk path
(:meth:`Memory.add_many`, journalled batches), then times searches and single
adds on the full store, and reports throughput, p50/p99 latency and peak RSS.
The embedder is the deterministic hashed one by default (it measures the store,
not the embedding model); ``--embedder minilm`` uses all-MiniLM-L6-v2.
"""

from __future__ import annotations

import argparse
import json
import random
import resource
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

__all__ = ["add_arguments", "run"]

_WORDS = ("coffee tea hiking paris lisbon dog cat piano guitar sister brother allergy peanuts vegan running "
          "chess python teacher nurse garden birthday march april soccer novel jazz sushi").split()


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--memories", type=int, default=100_000, help="memories to ingest (default 100000)")
    parser.add_argument("--batch-size", type=int, default=1000, help="texts per journalled batch")
    parser.add_argument("--searches", type=int, default=500, help="timed searches on the full store")
    parser.add_argument("--adds", type=int, default=200, help="timed single adds on the full store")
    parser.add_argument("--embedder", choices=("deterministic", "minilm"), default="deterministic")
    parser.add_argument("--dim", type=int, default=384, help="dimension of the deterministic embedder")
    parser.add_argument("--data-dir", type=Path, default=None, help="store directory (a temporary one by default)")
    parser.add_argument("--search-mode", choices=("vector", "hybrid"), default="vector",
                        help="MemoryConfig.search_mode (hybrid: BM25 + vector; the first search builds the BM25 "
                             "index, timed apart as index_build_s)")
    parser.add_argument("--json", type=Path, default=None, help="also write the figures to this file")


def _text(rng: random.Random, i: int) -> str:
    return f"memory {i}: " + " ".join(rng.choice(_WORDS) for _ in range(8))


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


def _percentiles(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    return {
        "p50_ms": 1000 * statistics.median(ordered),
        "p99_ms": 1000 * ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))],
    }


def run(args: argparse.Namespace) -> int:
    from memlora_engine import Memory, MemoryConfig
    from memlora_engine.embeddings.hashing import HashingEmbedder

    embedder: Any
    if args.embedder == "minilm":
        from memlora_engine.embeddings.sentence_transformers import SentenceTransformerEmbedder

        embedder = SentenceTransformerEmbedder("all-MiniLM-L6-v2")
    else:
        embedder = HashingEmbedder(args.dim)
    data_dir = args.data_dir or Path(tempfile.mkdtemp(prefix="memlora-bench-"))
    memory = Memory(MemoryConfig(data_dir=data_dir, search_mode=args.search_mode), embedder=embedder)
    rng = random.Random(0)
    report: dict[str, Any] = {"memories": args.memories, "embedder": args.embedder, "search_mode": args.search_mode,
                              "data_dir": str(data_dir)}

    start = time.perf_counter()
    batch_times: list[float] = []
    done = 0
    while done < args.memories:
        size = min(args.batch_size, args.memories - done)
        t0 = time.perf_counter()
        memory.add_many([_text(rng, done + j) for j in range(size)], user_id="bench")
        batch_times.append(time.perf_counter() - t0)
        done += size
    ingest_s = time.perf_counter() - start
    report["ingest"] = {"seconds": ingest_s, "memories_per_s": args.memories / ingest_s,
                        "batch": _percentiles(batch_times), "rss_mb": _rss_mb()}

    if args.search_mode == "hybrid":  # the BM25 index is built on the first search after a write
        t0 = time.perf_counter()
        memory.search("coffee", user_id="bench", limit=10)
        report["index_build_s"] = time.perf_counter() - t0
    search_times = []
    for _ in range(args.searches):
        query = " ".join(rng.choice(_WORDS) for _ in range(3))
        t0 = time.perf_counter()
        memory.search(query, user_id="bench", limit=10)
        search_times.append(time.perf_counter() - t0)
    report["search"] = {"per_s": len(search_times) / sum(search_times), **_percentiles(search_times)}

    add_times = []
    for i in range(args.adds):
        t0 = time.perf_counter()
        memory.add(_text(rng, args.memories + i), user_id="bench", infer=False)
        add_times.append(time.perf_counter() - t0)
    report["single_add"] = {"per_s": len(add_times) / sum(add_times), **_percentiles(add_times)}
    report["count"] = len(memory.get_all(user_id="bench"))
    report["peak_rss_mb"] = _rss_mb()
    memory.close()
    text = json.dumps(report, indent=2)
    print(text)
    if args.json is not None:
        args.json.write_text(text + "\n", encoding="utf-8")
    return 0
