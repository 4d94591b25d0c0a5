"""Count a cached run's memories that relate their subject to itself ("Jon is supportive of Jon's dreams").

Usage::

    python results/answers/scripts/self_relations.py CACHE/memlora/conv-30 [...]

A memory counts when its leading name (:func:`memlora_engine.subjects.subject_of`) appears again later
in its text. Prints the count and the number of current memories per run (no text: LoCoMo stays out).
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

from memlora_engine.subjects import subject_of


def self_relations(texts: list[str]) -> int:
    count = 0
    for text in texts:
        subject = subject_of(text)
        if subject and re.search(rf"\b{re.escape(subject)}\b", text.lstrip()[len(subject):]):
            count += 1
    return count


def main() -> None:
    for run in sys.argv[1:]:
        lines = Path(run, "memories.jsonl").read_text(encoding="utf-8").splitlines()
        texts = [json.loads(line)["text"] for line in lines if line.strip()]
        print(f"{run}: {self_relations(texts)} of {len(texts)} memories relate their subject to itself")


if __name__ == "__main__":
    main()
