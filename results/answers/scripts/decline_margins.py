"""The other-subject decline check over a cached run's memory, at several margins (model-free).

Usage::

    python results/answers/scripts/decline_margins.py ../shared/data/locomo_dev.json CACHE/memlora/conv-26 conv-26 OUT.json

Each question is checked as ``Memory.answer`` would (:func:`memlora_engine.subjects.check_question`,
answer_top_k 10); prints the share of category 5 declined and of categories 1-4 falsely declined
at each margin. OUT.json keeps each question's margin (it quotes LoCoMo: keep it out of the repository).
"""

from __future__ import annotations

import json
import sys

from memlora_engine.data.locomo import load_locomo
from memlora_engine.embeddings.sentence_transformers import SentenceTransformerEmbedder
from memlora_engine.evaluation.retrieval import cached_memory
from memlora_engine.subjects import check_question


def main() -> None:
    data, run, sample_id, out = sys.argv[1:5]
    embedder = SentenceTransformerEmbedder()
    conversation = {c.sample_id: c for c in load_locomo(data)}[sample_id]
    target = cached_memory(run, embedder, search_lexical_weight=None)

    def search(text: str) -> list[str]:
        return [m.text for m in target.memory.search(text, user_id=target.scope, limit=10)]

    rows = []
    for qa in conversation.qa:
        check = check_question(qa.question, search(qa.question), search, embedder)
        rows.append({"category": qa.category, "question": qa.question, "margin": check.margin})
    with open(out, "w", encoding="utf-8") as f:
        json.dump(rows, f, indent=1)
    adversarial = [r for r in rows if r["category"] == 5]
    answerable = [r for r in rows if r["category"] != 5]
    for margin in (0.02, 0.04, 0.06, 0.08, 0.10, 0.12, 0.15, 0.20):
        def declined(group: list[dict], margin: float = margin) -> float:
            return sum(r["margin"] is not None and r["margin"] > margin for r in group) / len(group)
        print(f"margin {margin:.2f}: category 5 declined {declined(adversarial):.3f}, "
              f"false refusals 1-4 {declined(answerable):.3f}")


if __name__ == "__main__":
    main()
