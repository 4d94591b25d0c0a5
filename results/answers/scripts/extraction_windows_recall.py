"""Extraction fact recall on one conversation's distilled two-turn windows, for several extraction experts.

A quicker guard than a whole ``memlora eval locomo`` run (which ingests, updates and
answers, ~30 min a conversation here): every extraction window of the conversation as
``memlora distill`` cached it (``<data>/extraction/<id>.jsonl``: the engine's prompt and
LoCoMo's observations as the target) goes through the engine's extraction step with
each expert, and the facts are scored per session against the conversation's
observations by :func:`memlora_engine.evaluation.extraction.extraction_coverage` (the
report's own measure, cosine >= 0.8 with all-MiniLM-L6-v2). Also counts the windows
whose target holds a fact but the expert gave none, and the reverse.

Usage::

    python results/answers/scripts/extraction_windows_recall.py --data ../shared/data/locomo_dev.json \\
        --windows $DATA/extraction/conv-30.jsonl [--adapter shipped] [--adapter DIR ...] [--threads 1]
"""

from __future__ import annotations

import argparse
import json

from memlora_engine.adapters import shipped_adapters
from memlora_engine.backbone import load_backbone
from memlora_engine.backbone.models import DEFAULT_MODEL
from memlora_engine.config import MemoryConfig
from memlora_engine.data.locomo import load_locomo
from memlora_engine.embeddings.sentence_transformers import SentenceTransformerEmbedder
from memlora_engine.errors import ModelOutputError
from memlora_engine.evaluation.extraction import extraction_coverage
from memlora_engine.stats import Stats
from memlora_engine.steps import ModelCaller, extract_facts
from memlora_engine.training.cleaning import prompt_values
from memlora_engine.types import Operation


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True, help="the LoCoMo file holding the conversation")
    parser.add_argument("--windows", required=True, help="a distilled <data>/extraction/<conversation>.jsonl")
    parser.add_argument("--adapter", action="append", default=[], help="an extraction adapter dir, or 'shipped'")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    records = [json.loads(line) for line in open(args.windows, encoding="utf-8") if line.strip()]
    conversation = next(c for c in load_locomo(args.data) if c.sample_id == records[0]["conversation"])
    embedder = SentenceTransformerEmbedder()
    for expert in args.adapter or ["shipped"]:
        adapters = dict(shipped_adapters(DEFAULT_MODEL))
        if expert != "shipped":
            adapters["extraction"] = expert
        caller = ModelCaller(MemoryConfig(), load_backbone(adapters=adapters, num_threads=args.threads), Stats())
        ingest, missed, invented, failures = [], 0, 0, 0
        for record in records:
            values = prompt_values("memlora", Operation.EXTRACTION, record["messages"])
            try:
                facts = extract_facts(caller, values["conversation"], date=values["date"])
            except ModelOutputError:
                facts, failures = [], failures + 1
            target = json.loads(record["target"])["facts"]
            missed += bool(target) and not facts
            invented += not target and bool(facts)
            ingest.append({"session": record["context"]["session"], "facts": facts})
        overall = extraction_coverage(ingest, conversation, embedder)["overall"]
        print(f"{expert}: fact recall {overall['recall']:.3f}, precision {overall['precision']:.3f} "
              f"({overall['facts']} facts, {overall['observations']} observations); windows with a fact but none "
              f"extracted {missed}, without a fact but some extracted {invented}, of {len(records)}; "
              f"unparsed {failures}")


if __name__ == "__main__":
    main()
