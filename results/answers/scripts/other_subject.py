"""Choose ``MemoryConfig.decline_other_subject`` model-free: LoCoMo's observations as the memory.

For each question of each conversation, the observation memory (LoCoMo's own facts,
:func:`~memlora_engine.data.memories.observation_memory`) is searched as ``Memory.answer``
searches it (``answer_top_k`` = 10, vector) and :func:`memlora_engine.subjects.check_question`
gives the other-subject margin. A question is declined at threshold ``t`` when its
margin is above ``t``. Prints, per threshold, the share of category-5 questions declined
and the share of categories 1-4 declined (false refusals), pooled over the training
conversations, then for the validation and test conversations; writes every margin.

Usage::

    python results/answers/scripts/other_subject.py ../shared/data/locomo_dev.json --out margins.json
"""

from __future__ import annotations

import argparse
import json

from memlora_engine.data.locomo import load_locomo
from memlora_engine.data.memories import observation_memory
from memlora_engine.embeddings.sentence_transformers import SentenceTransformerEmbedder
from memlora_engine.subjects import check_question

TRAIN = ["conv-41", "conv-42", "conv-43", "conv-44", "conv-47", "conv-49"]
GROUPS = {"training (pooled)": TRAIN, "validation conv-30": ["conv-30"], "test conv-26": ["conv-26"]}
THRESHOLDS = [0.03, 0.04, 0.05, 0.06, 0.07, 0.08, 0.1, 0.12]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data")
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--out")
    args = parser.parse_args()
    embedder = SentenceTransformerEmbedder()
    conversations = {c.sample_id: c for c in load_locomo(args.data)}
    margins: dict[str, list[dict]] = {}
    for sample_id in [c for group in GROUPS.values() for c in group]:
        target = observation_memory(conversations[sample_id], embedder, search_lexical_weight=None)

        def search(text: str, target=target) -> list[str]:
            return [m.text for m in target.memory.search(text, user_id=target.scope, limit=args.k)]

        margins[sample_id] = [
            {"category": qa.category,  # no question text: the LoCoMo data stays out of the repository
             "margin": check_question(qa.question, search(qa.question), search, embedder).margin}
            for qa in conversations[sample_id].qa
        ]
    table = {}
    for name, group in GROUPS.items():
        rows = [r for c in group for r in margins[c]]
        adversarial = [r for r in rows if r["category"] == 5]
        answerable = [r for r in rows if r["category"] != 5]
        for t in THRESHOLDS:
            def declined(subset: list[dict], t: float = t) -> int:
                return sum(r["margin"] is not None and r["margin"] > t for r in subset)
            table.setdefault(name, {})[t] = {
                "declined": round(declined(adversarial) / len(adversarial), 3), "n5": len(adversarial),
                "false_refusals": round(declined(answerable) / len(answerable), 3), "n1_4": len(answerable)}
            print(f"{name:20} t={t:.2f}: category 5 declined {table[name][t]['declined']:.3f} of {len(adversarial)}, "
                  f"false refusals {table[name][t]['false_refusals']:.3f} of {len(answerable)}")
    if args.out:
        with open(args.out, "w", encoding="utf-8") as f:
            json.dump({"k": args.k, "table": table, "margins": margins}, f, indent=1)


if __name__ == "__main__":
    main()
