"""What the other-subject check costs ``Memory.answer``, on a cached run's memory (no model).

Usage::

    python results/answers/scripts/decline_latency.py ../shared/data/locomo_dev.json CACHE/memlora/conv-26 conv-26

Loads the run's memory (superseded records too) into the in-memory store, then times
``Memory.answer`` on each of the conversation's questions with ``decline_other_subject``
None and 0.10, the rest ``MemoryConfig``'s defaults. The generator is scripted, so the
time is retrieval, the re-ordering, the check (a second search with the asked name
masked, and the masked candidates embedded), and the date pick. Prints p50 / p90 in
milliseconds, and how many questions the check declined.
"""

from __future__ import annotations

import statistics
import sys
import time

from memlora_engine.data.locomo import load_locomo
from memlora_engine.embeddings.sentence_transformers import SentenceTransformerEmbedder
from memlora_engine.evaluation.retrieval import cached_memory
from memlora_engine.testing import ScriptedGenerator


def main() -> None:
    data, run, sample_id = sys.argv[1:4]
    embedder = SentenceTransformerEmbedder()
    conversation = {c.sample_id: c for c in load_locomo(data)}[sample_id]
    questions = [qa.question for qa in conversation.qa]
    for margin in (None, 0.10):
        target = cached_memory(run, embedder, decline_other_subject=margin)
        target.memory.generator = ScriptedGenerator({"generation": ["ok"]})
        target.memory.answer(questions[0], user_id=target.scope)  # warm
        times, declined = [], 0
        for question in questions:
            start = time.perf_counter()
            answer = target.memory.answer(question, user_id=target.scope)
            times.append((time.perf_counter() - start) * 1000)
            declined += answer.declined is not None
        times.sort()
        print(f"{sample_id}, decline_other_subject {margin}: answer p50 {statistics.median(times):.1f} ms, "
              f"p90 {times[int(0.9 * len(times))]:.1f} ms over {len(times)} questions, {declined} declined")
        target.memory.close()


if __name__ == "__main__":
    main()
