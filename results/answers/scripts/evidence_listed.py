"""Where a run loses its points: answers whose evidence was listed against those whose evidence was not (model-free)

Usage::

    python results/answers/scripts/evidence_listed.py RUN/scored.jsonl

Over a finished run's ``scored.jsonl``, each category 1-4 question counts as "listed" when one of the
memories its answer call listed (``retrieved``) was written from one of its evidence turns. Per category:
how many were listed and their mean LoCoMo F1, the same for the rest, and how many were declined. Low F1 on
listed questions is lost by the answer; on the rest, by extraction or retrieval.
"""

from __future__ import annotations

import json
import sys
from collections import defaultdict


def main(scored: str) -> None:
    groups: dict[str, list[tuple[bool, float, bool]]] = defaultdict(list)
    with open(scored, encoding="utf-8") as handle:
        for line in handle:
            row = json.loads(line)
            if row["category"] == 5:
                continue
            listed_turns = {dia_id for memory in row["retrieved"] for dia_id in memory.get("dia_ids", [])}
            listed = bool(set(row["evidence"]) & listed_turns)
            groups[row["category_name"]].append((listed, row["metrics"]["locomo_f1"], row["declined"] is not None))
    print("| category | n | evidence listed: n, LoCoMo F1 | not listed: n, LoCoMo F1 | declined |")
    print("|---|---|---|---|---|")
    for name, rows in sorted(groups.items()):
        hit = [f1 for listed, f1, _ in rows if listed]
        miss = [f1 for listed, f1, _ in rows if not listed]
        declined = sum(d for _, _, d in rows)
        print(f"| {name} | {len(rows)} | {len(hit)}, {sum(hit) / max(1, len(hit)):.3f} | "
              f"{len(miss)}, {sum(miss) / max(1, len(miss)):.3f} | {declined} |")


if __name__ == "__main__":
    main(sys.argv[1])
