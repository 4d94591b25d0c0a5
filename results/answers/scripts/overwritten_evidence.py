"""Which applied UPDATEs replaced a memory that LoCoMo questions cite as evidence (model-free).

Usage::

    python results/answers/scripts/overwritten_evidence.py CACHE/memlora [CACHE2/memlora ...] [--conversation conv-26]

For each run (the ``--cache`` directory's config folder, holding ``scored.jsonl`` and the
conversation's ``ingest.jsonl``): replays the applied events in order, so that each memory id
knows the dialogue turns its current text came from, and for every applied UPDATE reports
whether the text it replaced came from a turn that a category 1-4 question names as evidence,
with the masked cosine of the new text and the replaced one (the people's names masked as
``memlora_engine.ops.unrelated_changes`` masks them; all-MiniLM-L6-v2).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from memlora_engine.embeddings.base import cosine
from memlora_engine.embeddings.sentence_transformers import SentenceTransformerEmbedder
from memlora_engine.ops import masked_pair


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("runs", nargs="+", type=Path)
    parser.add_argument("--conversation", default="conv-26")
    args = parser.parse_args()
    embedder = SentenceTransformerEmbedder()
    for run in args.runs:
        cited: dict[str, list[str]] = {}
        for line in (run / "scored.jsonl").open(encoding="utf-8"):
            question = json.loads(line)
            if question["conversation"] == args.conversation and question["category"] != 5:
                for turn in question["evidence"]:
                    cited.setdefault(turn, []).append(question["question"])
        source: dict[str, tuple[list[str], str]] = {}
        updates: list[tuple[list[str], str, str]] = []
        for line in (run / args.conversation / "ingest.jsonl").open(encoding="utf-8"):
            record = json.loads(line)
            for event in record["results"]:
                if event["event"] == "UPDATE" and event["id"] in source:
                    turns, old = source[event["id"]]
                    updates.append((turns, old, event["text"]))
                if event["event"] in ("ADD", "UPDATE"):
                    source[event["id"]] = (record["dia_ids"], event["text"])
        rows = []
        for turns, old, new in updates:
            masked_new, masked_old = masked_pair(new, old)
            vectors = embedder.embed([masked_new, masked_old])
            questions = [q for turn in turns for q in cited.get(turn, [])]
            rows.append((cosine(vectors[0], vectors[1]), bool(questions), old, new, questions))
        hits = sum(1 for row in rows if row[1])
        print(f"{run}: {len(rows)} applied UPDATEs, {hits} replaced a memory cited as evidence (categories 1-4)")
        for score, hit, old, new, questions in sorted(rows):
            print(f"  {score:.2f} {'EVIDENCE' if hit else '        '} {old[:70]!r} -> {new[:70]!r}")
            for question in questions[:2]:
                print(f"         for: {question}")


if __name__ == "__main__":
    main()
