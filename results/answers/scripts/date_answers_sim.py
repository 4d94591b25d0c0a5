"""Re-score a LoCoMo run's answers as if `MemoryConfig.date_answers` had answered them.

Usage: python date_answers_sim.py RUN_CACHE/CONFIG/scored.jsonl [...]

For each "When ...?" question of categories 1-4 the prediction is replaced by the date
phrase of the best-ranked retrieved memory that states one (the engine's own
`asks_when` and `date_phrase`): "always" does so for every such question (what the
engine does), "ungrounded" only where the generated answer's date phrase is in none of
the listed memories. Prints LoCoMo F1 before -> after, per category, and how many answers
changed. In session 15 both conversations were re-scored at once (conv-30 validation,
conv-26 test); "always" was better on both, and no threshold was chosen.
"""

from __future__ import annotations

import json
import sys

from memlora_engine.dates import asks_when, date_phrase
from memlora_engine.evaluation.metrics import locomo_score


def rescore(path: str, mode: str) -> str:
    per: dict[int, list[float]] = {}
    for line in open(path, encoding="utf-8"):
        row = json.loads(line)
        category = row["category"]
        if category == 5:
            continue
        prediction = new = row["prediction"]
        if asks_when(row["question"]):
            texts = [m["text"] for m in row["retrieved"]]
            own = date_phrase(prediction)
            grounded = own is not None and any(own.lower() in t.lower() for t in texts)
            if mode == "always" or not grounded:
                new = next((p for p in map(date_phrase, texts) if p is not None), prediction)
        before, after = locomo_score(prediction, row["answer"], category), locomo_score(new, row["answer"], category)
        per.setdefault(category, [0.0, 0.0, 0, 0])
        per[category][0] += before
        per[category][1] += after
        per[category][2] += 1
        per[category][3] += new != prediction
    n = sum(v[2] for v in per.values())
    cats = {c: f"{v[0] / v[2]:.3f}->{v[1] / v[2]:.3f} ({v[3]} changed)" for c, v in sorted(per.items())}
    return (f"{path} [{mode}] F1 {sum(v[0] for v in per.values()) / n:.4f} -> "
            f"{sum(v[1] for v in per.values()) / n:.4f}; per category {cats}")


if __name__ == "__main__":
    for arg in sys.argv[1:]:
        for how in ("ungrounded", "always"):
            print(rescore(arg, how))
