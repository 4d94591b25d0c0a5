"""What the answer's re-ranking by words costs: ``Memory.answer`` latency with and without it (no model).

Usage::

    python results/answers/scripts/answer_rerank_latency.py [MEMORIES] [QUESTIONS]

Imports MEMORIES memories (default 10000) into a persistent Chroma store (a temporary
directory), each with a two-turn source window as the engine's own adds keep, then times ``Memory.answer`` on QUESTIONS questions
(default 200) with ``answer_lexical_weight`` None and 0.4. The generator is scripted, so
the time is the retrieval, the listing and the re-ranking: embedding the question
(all-MiniLM-L6-v2), the store query (20 candidates without the re-ranking, 120 with it)
and the BM25 over the candidates. Prints p50 / p90 in milliseconds per setting.
"""

from __future__ import annotations

import hashlib
import json
import random
import statistics
import sys
import tempfile
import time
import uuid

from memlora_engine import Memory, MemoryConfig, SentenceTransformerEmbedder
from memlora_engine.testing import ScriptedGenerator

WORDS = ("coffee tea hiking paris lisbon dog cat piano guitar sister brother allergy peanuts vegan running chess "
         "python teacher nurse garden birthday march april soccer novel jazz sushi marley flooring studio").split()


def main() -> None:
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 10_000
    questions = int(sys.argv[2]) if len(sys.argv) > 2 else 200
    rng = random.Random(0)
    embedder = SentenceTransformerEmbedder()
    with tempfile.TemporaryDirectory() as tmp:
        lines = []
        for i in range(count):
            text = f"Cleo likes {' '.join(rng.choice(WORDS) for _ in range(5))} ({i})."
            lines.append(json.dumps({"id": str(uuid.uuid5(uuid.NAMESPACE_OID, str(i))), "text": text,
                                     "hash": hashlib.sha256(text.encode()).hexdigest(),
                                     "created_at": "2024-05-01T00:00:00+00:00", "metadata": {}, "user_id": "u",
                                     "source": f"Cleo: I said {text.lower()}\nDev: Nice."}))
        asked = [f"What does Cleo say about {rng.choice(WORDS)} and {rng.choice(WORDS)}?" for _ in range(questions)]
        results = {}
        for weight in (None, 0.4):
            # decline_other_subject=None: the answer path as measured in session 25, without the check
            memory = Memory(MemoryConfig(data_dir=f"{tmp}/{weight}", answer_lexical_weight=weight,
                                         decline_other_subject=None),
                            generator=ScriptedGenerator({"generation": ["ok"]}), embedder=embedder)
            memory.import_(lines, user_id="u")
            memory.answer(asked[0], user_id="u")  # warm
            times = []
            for question in asked:
                start = time.perf_counter()
                memory.answer(question, user_id="u")
                times.append((time.perf_counter() - start) * 1000)
            times.sort()
            results[weight] = (statistics.median(times), times[int(0.9 * len(times))])
        for weight, (p50, p90) in results.items():
            print(f"{count} memories, answer_lexical_weight {weight}: answer p50 {p50:.1f} ms, p90 {p90:.1f} ms")


if __name__ == "__main__":
    main()
