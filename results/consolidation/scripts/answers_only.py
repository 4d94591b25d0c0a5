"""Re-answer a finished consolidation run's histories with other generation experts (a screen, not the check).

``memlora eval consolidation`` ingests every history through extraction and update
(about 15 minutes on two CPU cores) before it asks one question per history. To compare
*generation* experts on the same memories, this script reads a run's JSON (``rows[*]
.memories``: each history's memories at the end, in the order the store returns them),
writes them into a fresh in-memory ``Memory`` (one ``add_many``, so retrieval ranks the
same texts with the same embedder as in the run; the listing is undated, as the run's
was unless it says ``dated_memories``), asks the history's question with each generation
expert and scores the answer with the check's own :func:`verdict`. About a minute per
expert. The memories' dates are not kept, so runs with ``dated_memories`` are refused.

Usage::

    python results/consolidation/scripts/answers_only.py RUN.json [--generation DIR ...] [--threads 1]

(``--generation shipped`` is the shipped expert; the default compares just that one.)
"""

from __future__ import annotations

import argparse
import json
from collections import Counter
from datetime import datetime

from memlora_engine import Memory, MemoryConfig
from memlora_engine.adapters import shipped_adapters
from memlora_engine.backbone import load_backbone
from memlora_engine.backbone.models import DEFAULT_MODEL
from memlora_engine.embeddings.sentence_transformers import SentenceTransformerEmbedder
from memlora_engine.evaluation.consolidation import load_histories

_WHEN = datetime(2025, 1, 1, 12, 0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", help="a `memlora eval consolidation --out` JSON")
    parser.add_argument("--generation", action="append", default=[], help="a generation adapter dir, or 'shipped'")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", help="write the per-expert answers here (JSON)")
    args = parser.parse_args()
    run = json.load(open(args.run, encoding="utf-8"))
    if run.get("memory", run).get("dated_memories"):  # top-level in reports before session 18
        raise SystemExit("the run listed dated memories; this replay does not keep the dates")
    histories = {h.id: h for h in load_histories()}
    embedder = SentenceTransformerEmbedder()
    results = {}
    for expert in args.generation or ["shipped"]:
        adapters = dict(shipped_adapters(DEFAULT_MODEL))
        if expert != "shipped":
            adapters["generation"] = expert
        backbone = load_backbone(adapters=adapters, num_threads=args.threads)
        memory = Memory(MemoryConfig(store="memory", data_dir=None), generator=backbone, embedder=embedder)
        rows = []
        try:
            for row in run["rows"]:
                history = histories[row["id"]]
                if row["memories"]:
                    memory.add_many(row["memories"], user_id=history.user_id, timestamp=_WHEN)
                answer = memory.answer(history.question, user_id=history.user_id, timestamp=_WHEN).text
                rows.append({"id": row["id"], "length": row["length"], "answer": answer,
                             "verdict": history.score(answer), "run_verdict": row["verdict"]})
        finally:
            memory.close()
        by_length: dict[int, Counter[str]] = {}
        for r in rows:
            by_length.setdefault(r["length"], Counter())[r["verdict"]] += 1
        same = sum(r["verdict"] == r["run_verdict"] for r in rows)
        print(f"{expert}: newest " + " / ".join(
            f"{by_length[n]['newest']}/{sum(by_length[n].values())}" for n in sorted(by_length))
              + f" at lengths {sorted(by_length)}; verdict as in the run for {same}/{len(rows)}")
        results[expert] = rows
    if args.out:
        json.dump({"run": args.run, "experts": results}, open(args.out, "w", encoding="utf-8"), indent=1)


if __name__ == "__main__":
    main()
