"""What would answering a "When ...?" question with its memory's written day score? (model-free)

Usage::

    python results/answers/scripts/written_dates_sim.py RUN/scored.jsonl CACHE/memlora/conv-30/memories.jsonl [updated]

Session 31's check before ``MemoryConfig.written_date_answers``. Over a finished answers run (its
``scored.jsonl``) and the memory it answered from, every category 1-4 question that asks when
(:func:`~memlora_engine.dates.asks_when`), was not declined, and none of whose listed memories states a
date (:func:`~memlora_engine.dates.date_phrase`) has its prediction replaced by the day its *first
listed* memory was written (``created_at``; with ``updated``, ``updated_at`` first), as "16 March 2023".
The engine picks the listed memory whose own text is nearest the question instead, so its rows differ a
little (results/answers/README.md, "Session 31"). Prints each changed answer and LoCoMo F1 before and after.
"""

from __future__ import annotations

import json
import sys
from datetime import datetime

from memlora_engine.dates import asks_when, date_phrase, format_day
from memlora_engine.evaluation.metrics import locomo_score


def main(scored: str, memories: str, updated: bool = False) -> None:
    written = {}
    with open(memories, encoding="utf-8") as handle:
        for line in handle:
            record = json.loads(line)
            written[record["id"]] = (record.get("updated_at") if updated else None) or record["created_at"]
    with open(scored, encoding="utf-8") as handle:
        rows = [json.loads(line) for line in handle]
    answered = [r for r in rows if r["category"] != 5]
    before = after = 0.0
    changed = 0
    for r in answered:
        old = locomo_score(r["prediction"], r["reference"], r["category"])
        new = old
        listed = r["retrieved"]
        if (asks_when(r["question"]) and not r.get("declined") and listed
                and not any(date_phrase(m["text"]) for m in listed) and listed[0]["id"] in written):
            day = format_day(datetime.fromisoformat(written[listed[0]["id"]]).date())
            new = locomo_score(day, r["reference"], r["category"])
            changed += 1
            print(f"{old:.2f} -> {new:.2f} | {r['question'][:60]} | reference {r['reference']!r} | "
                  f"{r['prediction'][:30]!r} -> {day!r}")
        before += old
        after += new
    print(f"changed {changed}; LoCoMo F1 1-4 {before / len(answered):.3f} -> {after / len(answered):.3f} "
          f"(n={len(answered)})")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], updated=len(sys.argv) > 3 and sys.argv[3] == "updated")
