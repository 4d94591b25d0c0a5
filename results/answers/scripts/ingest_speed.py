"""Seconds per `add` and per update call of cached LoCoMo runs (from their ingest.jsonl and calls.jsonl).

Usage::

    python results/answers/scripts/ingest_speed.py CACHE_A/memlora/conv-26 CACHE_B/memlora/conv-26

Prints, per run, the mean seconds per `add` over all sessions and over sessions 4 and later
(where the store is fuller and the update listings longer), and the mean seconds and input
tokens per update call. Only runs made one at a time on an otherwise idle machine are speed
figures.
"""

from __future__ import annotations

import json
import statistics
import sys
from pathlib import Path


def main() -> None:
    for run in map(Path, sys.argv[1:]):
        adds = [json.loads(line) for line in (run / "ingest.jsonl").open(encoding="utf-8")]
        calls = [json.loads(line) for line in (run / "calls.jsonl").open(encoding="utf-8")]
        updates = [c for c in calls if c["operation"] == "update"]
        late = [a for a in adds if a["session"] >= 4]
        late_updates = [c for c in updates if c["session"] >= 4]

        def mean(values: list[float]) -> str:
            return f"{statistics.mean(values):.2f}" if values else "-"

        print(f"{run}: {len(adds)} adds, {mean([a['seconds'] for a in adds])} s each; sessions 4+: {len(late)} adds, "
              f"{mean([a['seconds'] for a in late])} s each, {len(late_updates)} update calls, "
              f"{mean([c['seconds'] for c in late_updates])} s and {mean([c['input_tokens'] for c in late_updates])} "
              f"tokens in each; all {len(updates)} update calls {mean([c['seconds'] for c in updates])} s, "
              f"{mean([c['input_tokens'] for c in updates])} tokens in")


if __name__ == "__main__":
    main()
