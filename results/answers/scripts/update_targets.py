"""Which old memory the update expert's UPDATEs name, per cached LoCoMo run (model-free).

Usage::

    python results/answers/scripts/update_targets.py CACHE/memlora/conv-26 [CACHE2/memlora/conv-26 ...]

For each run: the UPDATE ops the expert wrote (from ``calls.jsonl``), the ids they name, where
the named memory ranks among the call's listed memories by cosine to the call's fact
(all-MiniLM-L6-v2; rank 0 = the most similar), the mean of that cosine, and, from
``ingest.jsonl``, the applied UPDATEs whose new text keeps under half of the old memory's
content words (``memlora_engine.ops.covers``) or names another first word (person).
"""

from __future__ import annotations

import json
import sys
from collections import Counter
from pathlib import Path

from memlora_engine.embeddings.base import cosine
from memlora_engine.embeddings.sentence_transformers import SentenceTransformerEmbedder
from memlora_engine.ops import covers


def _listing(prompt: str) -> tuple[list[str], str]:
    memories = json.loads(prompt.split("Existing memories:\n", 1)[1].split("\n\nNew facts:", 1)[0])
    fact = json.loads(prompt.split("New facts:\n", 1)[1])[0]
    return [m["text"] for m in memories], fact


def main() -> None:
    embedder = SentenceTransformerEmbedder()
    for run in map(Path, sys.argv[1:]):
        ids: Counter[str] = Counter()
        ranks: Counter[int] = Counter()
        sims: list[float] = []
        listed: list[int] = []
        for line in (run / "calls.jsonl").open(encoding="utf-8"):
            call = json.loads(line)
            if call["operation"] != "update":
                continue
            texts, fact = _listing(call["messages"][-1]["content"])
            listed.append(len(texts))
            try:
                ops = json.loads(call["output"]).get("memory", [])
            except (json.JSONDecodeError, AttributeError):
                continue
            for op in ops:
                if not isinstance(op, dict) or op.get("event") != "UPDATE" or not str(op.get("id", "")).isdigit():
                    continue
                index = int(op["id"])
                if index >= len(texts):
                    continue
                ids[op["id"]] += 1
                vectors = embedder.embed([fact, *texts])
                similarity = [cosine(vectors[0], v) for v in vectors[1:]]
                ranks[sorted(range(len(texts)), key=lambda i: -similarity[i]).index(index)] += 1
                sims.append(similarity[index])
        applied = lost = other = 0
        for line in (run / "ingest.jsonl").open(encoding="utf-8"):
            for event in json.loads(line)["results"]:
                if event["event"] == "UPDATE":
                    applied += 1
                    lost += not covers(event["text"], event["old_memory"])
                    other += event["text"].split()[0] != event["old_memory"].split()[0]
        memories = sum(1 for _ in (run / "memories.jsonl").open(encoding="utf-8"))
        print(f"{run}: {len(listed)} update calls listing {sum(listed) / max(1, len(listed)):.1f} memories on average; "
              f"{sum(ids.values())} UPDATE ops written, ids {dict(ids.most_common(4))}, "
              f"similarity rank of the named memory {dict(sorted(ranks.items()))}, "
              f"mean cosine to the fact {sum(sims) / max(1, len(sims)):.3f}; "
              f"{applied} UPDATEs applied, {lost} keep under half the old memory's words, {other} change its first word; "
              f"{memories} memories at the end")


if __name__ == "__main__":
    main()
