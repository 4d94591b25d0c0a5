"""Where a consolidation run loses the newest value: extraction, update, or the answer.

Reads a ``memlora eval consolidation --out`` JSON and counts per history length, by a
case-insensitive substring match of the history's values (the check's own verdict
matches aliases too, so a spelling variant such as "lasagna" for "lasagne" counts as
missing here but not there):

* ``in facts``: the newest value is in some extracted fact (what extraction let through);
* ``in memories``: it is in a memory at the end (what the update step kept);
* ``alone``: it is, and no older value is (the update step consolidated);
* ``newest``: the run's verdict was "newest", and of those, how many were ``alone``.

Usage::

    python results/consolidation/scripts/ceiling.py RUN.json [RUN.json ...]
"""

from __future__ import annotations

import argparse
import json
from collections import Counter


def ceiling(run: dict) -> dict[int, Counter[str]]:
    by_length: dict[int, Counter[str]] = {}
    for row in run["rows"]:
        newest = row["newest"].lower()
        facts = " ".join(f for call in row["facts"] for f in call).lower()
        memories = " ".join(row["memories"]).lower()
        in_memory = newest in memories
        alone = in_memory and not any(old.lower() in memories for old in row["older"])
        answered = row["verdict"] == "newest"
        counts = by_length.setdefault(row["length"], Counter())
        counts.update(histories=1, in_facts=newest in facts, in_memories=in_memory, alone=alone,
                      newest=answered, newest_alone=answered and alone)
    return by_length


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", help="`memlora eval consolidation --out` JSONs")
    args = parser.parse_args()
    print("| run | length | histories | newest in facts | in memories | alone | answered newest (of them alone) |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for path in args.runs:
        for length, c in sorted(ceiling(json.load(open(path, encoding="utf-8"))).items()):
            print(f"| {path.rsplit('/', 1)[-1]} | {length} | {c['histories']} | {c['in_facts']} | "
                  f"{c['in_memories']} | {c['alone']} | {c['newest']} ({c['newest_alone']}) |")


if __name__ == "__main__":
    main()
