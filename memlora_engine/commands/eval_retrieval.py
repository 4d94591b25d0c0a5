"""``memlora eval retrieval``: evidence recall@k of search settings, on a cached memory, without re-ingesting.

With ``--run CACHE/CONFIG`` the memory is the one a ``memlora eval locomo`` run
built (a run that stopped part-way counts: only questions whose evidence lies in
its ingested sessions are asked), and the run's extraction is scored against the
observations too. Without it the memory is LoCoMo's observation facts
(:func:`~memlora_engine.evaluation.retrieval.observation_memory`): model-free, the
way ``answer_top_k`` is chosen on the validation conversation.

``--answer`` also answers the questions with the model (``--adapters-dir``) under
each search mode, with and without dated memories (``--dated both``), and reports
LoCoMo F1 per category: the generation stage measured on a fixed memory.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

__all__ = ["add_parser", "run"]


def add_parser(sub: Any) -> None:
    p = sub.add_parser("retrieval", help="Evidence recall@k of search settings on a cached (or observation) memory.",
                       description=__doc__.split("\n\n")[1] if __doc__ else None)
    p.add_argument("--data", default=os.environ.get("MEMLORA_LOCOMO_PATH"),
                   required=os.environ.get("MEMLORA_LOCOMO_PATH") is None, help="a LoCoMo-format JSON file")
    p.add_argument("--conversations", help="comma-separated sample ids (default: the --split)")
    p.add_argument("--split", default="test", help="train | validation | test | all (default: test)")
    p.add_argument("--run", type=Path, help="a configuration's run cache (CACHE/CONFIG) holding the memories")
    p.add_argument("--modes", default="vector,hybrid", help="search modes to compare (default: vector,hybrid)")
    p.add_argument("--k", default="1,3,5,10,15,20", help="the k of recall@k (default: 1,3,5,10,15,20)")
    p.add_argument("--embedder", default="minilm", choices=("minilm", "deterministic"),
                   help="the memory's embedder (default: all-MiniLM-L6-v2, as eval locomo)")
    p.add_argument("--answer", action="store_true", help="also answer with the model and score LoCoMo F1")
    p.add_argument("--adapters-dir", help="with --answer: the adapters (extraction/, update/, generation/)")
    p.add_argument("--model", default="gemma-3-270m", help="with --answer: the backbone")
    p.add_argument("--answer-top-k", type=int, default=10, help="with --answer: memories given to generation")
    p.add_argument("--dated", default="both", choices=("off", "on", "both"), help="with --answer: dated memories")
    p.add_argument("--threads", type=int, help="with --answer: torch threads")
    p.add_argument("--answer-limit", type=int, help="with --answer: answer only the first N scored questions")
    p.add_argument("--out", type=Path, help="write the summary (aggregates only) as JSON here")


def _embedder(name: str) -> Any:
    if name == "minilm":
        from memlora_engine.embeddings.sentence_transformers import SentenceTransformerEmbedder

        return SentenceTransformerEmbedder()
    from memlora_engine.embeddings.hashing import HashingEmbedder

    return HashingEmbedder()


def _answers(target: Any, conversation: Any, questions: list[Any], generator: Any, top_k: int,
             dated: bool) -> dict[str, Any]:
    """LoCoMo F1 per category (cat 5: refusal score) of the model's answers on ``target``'s memory."""
    from memlora_engine.evaluation import metrics as m
    from memlora_engine.types import Operation

    memory = target.memory
    memory.generator = generator
    memory.config.answer_top_k = top_k
    memory.config.dated_memories = dated
    stamps = [s.date_time for s in conversation.sessions[: target.sessions_done] if s.date_time is not None]
    per: dict[str, list[float]] = {}
    tokens_in = 0
    for qa in questions:
        before = memory.stats[Operation.GENERATION].input_tokens
        answer = memory.answer(qa.question, user_id=target.scope, timestamp=stamps[-1] if stamps else None)
        tokens_in += memory.stats[Operation.GENERATION].input_tokens - before
        score = m.adversarial_score(answer.text) if qa.category == 5 else m.locomo_score(
            answer.text, qa.reference, qa.category)
        per.setdefault(str(qa.category), []).append(float(score))
    main = [v for c, values in per.items() if c != "5" for v in values]
    return {"overall_f1": round(sum(main) / len(main), 4) if main else None,
            "per_category": {c: {"count": len(v), "score": round(sum(v) / len(v), 4)} for c, v in sorted(per.items())},
            "input_tokens_per_answer": round(tokens_in / len(questions), 1) if questions else None}


def run(args: argparse.Namespace) -> int:
    from memlora_engine.data.locomo import load_locomo
    from memlora_engine.data.splits import select_conversations
    from memlora_engine.evaluation.extraction import extraction_coverage
    from memlora_engine.evaluation.recording import read_jsonl
    from memlora_engine.evaluation.retrieval import (
        cached_memory,
        evidence_recall_at_k,
        observation_memory,
        scored_questions,
    )

    ks = [int(k) for k in args.k.split(",")]
    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    conversations = select_conversations(load_locomo(args.data), ids=args.conversations, splits=args.split,
                                         source=str(args.data))
    embedder = _embedder(args.embedder)
    generator = None
    if args.answer:
        from memlora_engine.backbone import load_backbone

        adapters = {s: str(Path(args.adapters_dir) / s) for s in ("generation",)} if args.adapters_dir else None
        generator = load_backbone(args.model, adapters=adapters, dtype="auto", num_threads=args.threads)
    summary: dict[str, Any] = {"memory": str(args.run.name) if args.run else "observations", "k": ks, "conversations": {}}
    for conversation in conversations:
        entry: dict[str, Any] = {"modes": {}}
        for mode in modes:
            target = (cached_memory(args.run / conversation.sample_id, embedder, search_mode=mode) if args.run
                      else observation_memory(conversation, embedder, search_mode=mode))
            questions = scored_questions(conversation, target.sessions_done)
            recall = evidence_recall_at_k(target, questions, ks)
            entry["sessions"] = target.sessions_done
            entry["memories"] = len(target.memory.get_all(user_id=target.scope))
            entry["modes"][mode] = {"overall": recall["overall"], "per_category": recall["per_category"]}
            if generator is not None:
                for dated in ([False, True] if args.dated == "both" else [args.dated == "on"]):
                    key = f"answers{'-dated' if dated else ''}"
                    entry["modes"][mode][key] = _answers(target, conversation, questions[: args.answer_limit],
                                                         generator, args.answer_top_k, dated)
            target.memory.close()
        if args.run and (args.run / conversation.sample_id / "ingest.jsonl").exists():
            entry["extraction"] = extraction_coverage(read_jsonl(args.run / conversation.sample_id / "ingest.jsonl"),
                                                      conversation, embedder)
        summary["conversations"][conversation.sample_id] = entry
    text = json.dumps(summary, indent=1)
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text + "\n", encoding="utf-8")
    print(text, file=sys.stdout)
    return 0
