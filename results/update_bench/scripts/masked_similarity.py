"""How far apart a fact and the memory it changes are, with and without the people's names (session 20).

Model-free. For each threshold, prints the share kept of: the update benchmark's gold
UPDATE/DELETE pairs (fact, named memory); the successive facts of each history in the
given consolidation runs (each fact of turn i against each fact of turn i-1, a pair once);
and, for each gold ADD, its closest old memory of the same person (what an overwrite
would name). "masked" compares the texts with their leading names masked
(``ops.unrelated_changes``, ``MemoryConfig.update_min_similarity``); "raw" the whole texts.

Usage::

    python results/update_bench/scripts/masked_similarity.py results/consolidation/s1[389]*.json
"""

from __future__ import annotations

import json
import sys

import numpy as np

from memlora_engine.embeddings.base import cosine
from memlora_engine.embeddings.sentence_transformers import SentenceTransformerEmbedder
from memlora_engine.evaluation.update_bench import load_update_cases
from memlora_engine.ops import masked_pair
from memlora_engine.subjects import subject_of
from memlora_engine.training import CachedEmbedder

THRESHOLDS = (0.15, 0.2, 0.25, 0.45)


def main(runs: list[str]) -> None:
    embedder = CachedEmbedder(SentenceTransformerEmbedder())

    def cos(a: str, b: str, masked: bool) -> float:
        return cosine(*embedder.embed(list(masked_pair(a, b) if masked else (a, b))))

    changes: list[tuple[str, str]] = []
    adds: list[tuple[str, list[str]]] = []
    for case in load_update_cases():
        for fact, decision in zip(case.facts, case.gold, strict=True):
            if decision.event in ("UPDATE", "DELETE"):
                changes.append((fact, case.old[int(decision.id or 0)]))
            elif decision.event == "ADD":
                same = [o for o in case.old if subject_of(o) == subject_of(fact)] or list(case.old)
                adds.append((fact, same))
    successive: dict[tuple[str, str], None] = {}
    for path in runs:
        for row in json.load(open(path, encoding="utf-8"))["rows"]:
            turns = row["facts"]
            for i in range(1, len(turns)):
                successive.update({(f, o): None for f in turns[i] for o in turns[i - 1]})
    print(f"gold changes {len(changes)}, successive facts {len(successive)}, gold ADDs {len(adds)}")
    for masked in (True, False):
        a = np.array([cos(f, m, masked) for f, m in changes])
        c = np.array([cos(f, o, masked) for f, o in successive])
        b = np.array([max(cos(f, o, masked) for o in same) for f, same in adds])
        for t in THRESHOLDS:
            print(f"{'masked' if masked else 'raw':6} >= {t:.2f}: gold changes kept {np.mean(a >= t):.2f}, "
                  f"successive facts kept {np.mean(c >= t):.2f}, gold ADDs' closest same-person memory passing "
                  f"{np.mean(b >= t):.2f}")


if __name__ == "__main__":
    main(sys.argv[1:])
