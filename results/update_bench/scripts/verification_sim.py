"""What checking the update expert's NONE and UPDATE against the memory they name would change (a simulation).

A NONE says "this fact is already known" and names the old memory that holds it; an
UPDATE names the old memory the fact changes. Neither claim is checked today: a NONE
whose memory says something else loses the fact (session 13 saw the rich v1 candidate
NONE a changed value, e.g. "switched to swimming" over "plays squash"). This script
re-scores a finished ``memlora eval update`` run as if the engine had required, for each
per-fact call, cosine(fact, named memory) >= ``--none`` for a NONE and >= ``--update`` for
an UPDATE (all-MiniLM-L6-v2, the engine's embedder), ADDing the fact instead where the
check fails. No model runs: the raw outputs are the run's, one line per fact. It also
prints the cosine of each gold NONE / UPDATE pair and of each gold ADD fact to its
closest old memory, which is where thresholds come from.

Usage::

    python results/update_bench/scripts/verification_sim.py RUN.json [RUN.json ...] [--none 0.8 --update 0.55]
"""

from __future__ import annotations

import argparse
import json
from collections import Counter

import numpy as np

from memlora_engine.embeddings.base import cosine
from memlora_engine.embeddings.sentence_transformers import SentenceTransformerEmbedder
from memlora_engine.evaluation.update_bench import load_update_cases
from memlora_engine.training import CachedEmbedder


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", help="`memlora eval update --out` JSON files (one row each)")
    parser.add_argument("--none", type=float, action="append", help="NONE threshold(s); default 0.75 and 0.8")
    parser.add_argument("--update", type=float, action="append", help="UPDATE threshold(s); default 0, 0.5, 0.55")
    args = parser.parse_args()
    embedder = CachedEmbedder(SentenceTransformerEmbedder())

    def cos(a: str, b: str) -> float:
        return cosine(*embedder.embed([a, b]))

    cases = {c.id: c for c in load_update_cases()}
    gold_sims: dict[str, list[float]] = {"NONE": [], "UPDATE": [], "ADD (closest old)": []}
    for case in cases.values():
        for fact, decision in zip(case.facts, case.gold, strict=True):
            if decision.event == "ADD":
                gold_sims["ADD (closest old)"].append(max(cos(old, fact) for old in case.old))
            elif decision.event in ("NONE", "UPDATE"):
                gold_sims[decision.event].append(cos(case.old[int(decision.id or 0)], fact))
    for name, sims in gold_sims.items():
        print(f"gold {name}: n={len(sims)} min {min(sims):.2f} p5 {np.percentile(sims, 5):.2f} "
              f"median {np.median(sims):.2f} max {max(sims):.2f}")

    for path in args.runs:
        run = json.load(open(path, encoding="utf-8"))
        (row,) = run["rows"].values()
        rows = row["rows"]
        base = sum(r["exact"] for r in rows)
        for t_none in args.none or [0.75, 0.8]:
            for t_update in args.update or [0.0, 0.5, 0.55]:
                exact = 0
                for r in rows:
                    case = cases[r["id"]]
                    lines = r["raw"].split("\n") if r["raw"] else []
                    if r["error"] or len(lines) != len(case.facts):
                        exact += r["exact"]
                        continue
                    predicted = Counter((e, None if e == "ADD" else i) for e, i in r["predicted"])
                    for fact, line in zip(case.facts, lines, strict=True):
                        try:
                            ops = json.loads(line)["memory"]
                        except (ValueError, KeyError, TypeError):
                            continue
                        for op in ops:
                            event, old_id = str(op.get("event", "")).upper(), op.get("id")
                            if old_id not in {str(k) for k in range(len(case.old))}:
                                continue
                            similarity = cos(case.old[int(old_id)], fact)
                            if event == "NONE" and similarity < t_none:
                                predicted[("ADD", None)] += 1
                            elif event == "UPDATE" and similarity < t_update and predicted[("UPDATE", old_id)]:
                                predicted[("UPDATE", old_id)] -= 1
                                predicted[("ADD", None)] += 1
                    gold = Counter((d.event, None if d.event == "ADD" else d.id) for d in case.gold if d.event != "NONE")
                    exact += gold == +predicted
                print(f"{path}: NONE >= {t_none}, UPDATE >= {t_update}: exact {base} -> {exact} of {len(rows)}")


if __name__ == "__main__":
    main()
