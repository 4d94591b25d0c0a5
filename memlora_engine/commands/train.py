"""``memlora train <operation>``: train one expert adapter (with an optional tiny search) and save it with a card.

Imported by the ``memlora`` command at start-up: argparse-level code only.

Examples::

    memlora train extraction --max-steps 60 --save-to ./adapters/gemma-3-270m/extraction
    memlora train generation --lr 2e-4,1e-3 --batch-size 4 \\
        --outer-data locomo_dev.json --outer-limit-sessions 1 --save-to ./adapters/gemma-3-270m/generation
    memlora train vqa --bench vqa_bench.jsonl --model OpenGVLab/InternVL3-1B-hf --device cuda \\
        --save-to ./adapters/InternVL3-1B/vqa

``vqa`` (MemLoRA-V) trains on an image-text model from the VQA benchmark's records
(``memlora eval vqa-build``): ``--bench`` replaces ``--data-dir`` and the conversation
splits are the records' ``split`` field (``--train-split`` / ``--val-split``).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

__all__ = ["add_arguments", "run"]


def _floats(text: str) -> list[float]:
    return [float(x) for x in text.split(",") if x.strip()]


def _ints(text: str) -> list[int]:
    return [int(x) for x in text.split(",") if x.strip()]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from memlora_engine.types import Operation

    parser.add_argument("operation", choices=[op.value for op in Operation])
    parser.add_argument("--data-dir", help="distilled data (default: where `memlora distill` writes)")
    parser.add_argument("--out", help="run directory (default: <memlora cache>/training/runs/<operation>)")
    parser.add_argument("--model", help="backbone to train on: a built-in name, a model directory or a hub id "
                                         "(default: gemma-3-270m; for vqa OpenGVLab/InternVL3-1B-hf, an "
                                         "image-text model)")
    parser.add_argument("--bench", help="vqa: the VQA benchmark JSONL (records with image, question, answer, reason)")
    parser.add_argument("--train-split", default="train", help="vqa: benchmark split to train on")
    parser.add_argument("--val-split", default="validation", help="vqa: benchmark split for the validation loss")
    parser.add_argument("--image-dir", help="vqa: re-resolve each photo by URL in this image cache "
                                            "(default: the records' image paths)")
    parser.add_argument("--train-conversations", help="sample ids (default: the dev train split)")
    parser.add_argument("--val-conversations", help="sample ids (default: the dev validation split)")
    parser.add_argument("--with-synthetic", action="store_true",
                        help="update: add the synthetic update conflicts (`memlora distill --synthetic-update N`) to "
                             "the training examples")
    parser.add_argument("--with-unanswerable", action="store_true",
                        help="generation: add the unanswerable examples (`memlora distill --unanswerable N`, target "
                             "\"No information available.\") to the training examples")
    parser.add_argument("--with-current-state", action="store_true",
                        help="generation: add the current-state examples (`memlora distill --current-state N`, target "
                             "the attribute's newest value) to the training examples")
    parser.add_argument("--with-chat-windows", action="store_true",
                        help="extraction: add the chat-shaped extraction calls (`memlora distill --chat-windows N`, "
                             "target <data>/extraction/chat-windows.jsonl)")
    parser.add_argument("--with-multi-fact", action="store_true",
                        help="extraction: add the multi-fact extraction calls (`memlora distill --multi-fact-windows "
                             "N`) to the training examples")
    parser.add_argument("--lr", default="2e-4", help="learning rate(s), comma-separated: more than one is a search")
    parser.add_argument("--batch-size", default="4", help="batch size(s), comma-separated")
    parser.add_argument("--max-steps", type=int, default=200)
    parser.add_argument("--eval-every", type=int, default=10)
    parser.add_argument("--patience", type=int, default=3)
    parser.add_argument("--val-examples", type=int, default=32)
    parser.add_argument("--max-length", type=int, default=0,
                        help="skip longer examples (prompt + target tokens; default 512, 4096 for vqa)")
    parser.add_argument("--rank", type=int, default=16)
    parser.add_argument("--alpha", type=int, help="LoRA alpha (default: 2 x rank)")
    parser.add_argument("--dropout", type=float, default=0.1)
    parser.add_argument("--target-modules", help="comma-separated module names, all-linear, or a regex on full module "
                                                  "names (when it holds one of *()|\\); default per operation")
    parser.add_argument("--dtype", default="auto", help="auto | float32 | bfloat16 (backbone weights)")
    parser.add_argument("--autocast", action="store_true", help="bf16 autocast (with --dtype float32)")
    parser.add_argument("--threads", type=int, help="torch threads (default: all usable cores)")
    parser.add_argument("--device", default="cpu", help="torch device: cpu | cuda")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--init-adapter", default=None,
                        help="warm start from this saved adapter directory (same rank and target modules; "
                             "fresh optimizer and schedule: pass another --seed than its run)")
    parser.add_argument("--max-empty-share", type=float,
                        help='extraction: at most this share of training windows with {"facts": []} (default: all kept)')
    parser.add_argument("--warmup-steps", type=int, default=5)
    parser.add_argument("--max-minutes", type=float,
                        help="wall-clock budget per candidate: then it finishes with its best adapter so far")
    parser.add_argument("--outer-data", help="LoCoMo file: enables the outer tier (pipeline metric on the validation "
                                             "conversations)")
    parser.add_argument("--outer-limit-sessions", type=int, help="outer tier: first K sessions only")
    parser.add_argument("--outer-limit-questions", type=int, help="outer tier: at most N questions")
    parser.add_argument("--outer-max-new-tokens", help="outer tier: per-stage caps, e.g. extraction=96,update=160")
    parser.add_argument("--save-to", help="copy the selected adapter here with its card.json")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")


def _target_modules(text: str | None) -> list[str] | str | None:
    if not text:
        return None
    if text == "all-linear" or any(c in text for c in "*()|\\"):
        return text  # peft: "all-linear", or a regex matched against full module names
    return text.split(",")


def _card(args: argparse.Namespace, summary: dict[str, Any], data: dict[str, Any]) -> Any:
    from memlora_engine.prompts import prompt_version
    from memlora_engine.training.cards import AdapterCard

    best = next(r for r in summary["candidates"] if r["candidate"] == summary["best"])
    result = json.loads((Path(best["adapter_dir"]).parent / "result.json").read_text(encoding="utf-8"))
    return AdapterCard(
        operation=args.operation,
        base_model=result["config"]["model"],
        prompt_style="memlora",
        prompt_version=prompt_version(args.operation),
        data={
            **data,
            "train_examples": result["train_examples"],
            "validation_examples_scored": result["val_examples"],
            "skipped_too_long": result["skipped_too_long"],
        },
        hyperparameters=result["config"],
        training={"steps": result["steps"], "best_step": result["best_step"], "seconds": result["seconds"],
                  "stopped": result["stopped"], "search": [
                      {k: r.get(k) for k in ("candidate", "best_val_loss", "steps", "best_step")} |
                      ({"outer": r["outer"].get("metric")} if r.get("outer") else {})
                      for r in summary["candidates"]], "selection": summary["selection"]},
        validation={"base_val_loss": result["base_val_loss"], "val_loss": result["best_val_loss"],
                    **({"pipeline": best["outer"]} if best.get("outer") else {})},
    )


def _text_data(args: argparse.Namespace) -> tuple[list[dict[str, Any]], list[dict[str, Any]], dict[str, Any]]:
    """Distilled examples of a text operation, and what the card says about them."""
    from memlora_engine.commands.distill import default_data_dir
    from memlora_engine.data.splits import DEV_SPLITS
    from memlora_engine.errors import ConfigError
    from memlora_engine.training.chat_windows import CHAT_WINDOWS_ID
    from memlora_engine.training.current_state import CURRENT_STATE_ID
    from memlora_engine.training.data import load_examples
    from memlora_engine.training.multi_fact import MULTI_FACT_ID
    from memlora_engine.training.synthetic_update import SYNTHETIC_ID
    from memlora_engine.training.unanswerable import UNANSWERABLE_ID

    data_dir = Path(args.data_dir) if args.data_dir else default_data_dir()
    train_ids = args.train_conversations.split(",") if args.train_conversations else list(DEV_SPLITS["train"])
    val_ids = args.val_conversations.split(",") if args.val_conversations else list(DEV_SPLITS["validation"])
    # Each generated data set is read like one more training conversation of its operation.
    generated = [(args.with_synthetic, "--with-synthetic", "update", SYNTHETIC_ID),
                 (args.with_unanswerable, "--with-unanswerable", "generation", UNANSWERABLE_ID),
                 (args.with_current_state, "--with-current-state", "generation", CURRENT_STATE_ID),
                 (args.with_multi_fact, "--with-multi-fact", "extraction", MULTI_FACT_ID),
                 (args.with_chat_windows, "--with-chat-windows", "extraction", CHAT_WINDOWS_ID)]
    for wanted, option, operation, source_id in generated:
        if wanted:
            if args.operation != operation:
                raise ConfigError(f"{option} applies to the {operation} operation only")
            train_ids.append(source_id)
    train = load_examples(data_dir, args.operation, train_ids)
    val = load_examples(data_dir, args.operation, val_ids)
    manifest_path = data_dir / "manifest.json"
    manifest = json.loads(manifest_path.read_text(encoding="utf-8")) if manifest_path.exists() else {}
    card = {
        "source": manifest.get("source"),
        "teacher": manifest.get("teachers", {}).get(args.operation),
        "embedder": manifest.get("embedder"),
        "train_conversations": train_ids,
        "validation_conversations": val_ids,
    }
    if args.operation == "generation":
        card["listing"] = manifest.get("listing")  # the memory listing the prompts were rendered with
    if args.with_synthetic or args.with_multi_fact:
        card["synthetic"] = manifest.get("synthetic", {}).get(args.operation)
    if args.with_unanswerable:
        card["unanswerable"] = manifest.get("unanswerable", {}).get(args.operation)
    if args.with_current_state:
        card["current_state"] = manifest.get("current_state", {}).get(args.operation)
    if args.with_chat_windows:
        card["chat_windows"] = manifest.get("chat_windows", {}).get(args.operation)
    return train, val, card


def _vqa_data(args: argparse.Namespace) -> tuple[list[dict[str, Any]], list[dict[str, Any]], dict[str, Any]]:
    """VQA benchmark records as training examples, and what the card says about them."""
    from memlora_engine.errors import ConfigError
    from memlora_engine.evaluation.vqa import ONE_WORD_HINT, load_vqa_benchmark
    from memlora_engine.training.vqa import benchmark_examples

    if not args.bench:
        raise ConfigError("memlora train vqa needs --bench FILE.jsonl (the VQA benchmark: memlora eval vqa-build)")
    if args.outer_data:
        raise ConfigError("--outer-data is the LoCoMo pipeline tier of the text operations; it does not apply to vqa")
    splits = {}
    for name in (args.train_split, args.val_split):
        splits[name] = benchmark_examples(load_vqa_benchmark(args.bench, name), image_dir=args.image_dir)
        if not splits[name]:
            raise ConfigError(f"{args.bench} has no usable record in split {name!r}")
    train, val = splits[args.train_split], splits[args.val_split]
    card = {
        "source": Path(args.bench).name,
        "teacher": sorted({str(r["teacher"]) for r in train + val if r.get("teacher")}) or None,
        "train_split": args.train_split,
        "validation_split": args.val_split,
        "question_hint": ONE_WORD_HINT,
    }
    return train, val, card


def _run(args: argparse.Namespace) -> int:
    from memlora_engine.evaluation.pipeline import pipeline_metric
    from memlora_engine.training.cards import save_adapter
    from memlora_engine.training.config import TrainConfig
    from memlora_engine.training.search import search_stage

    vqa = args.operation == "vqa"
    config = TrainConfig(
        operation=args.operation, model=args.model or "", rank=args.rank, alpha=args.alpha or 2 * args.rank,
        dropout=args.dropout, target_modules=_target_modules(args.target_modules),
        max_steps=args.max_steps, eval_every=args.eval_every, patience=args.patience, val_examples=args.val_examples,
        max_length=args.max_length, warmup_steps=args.warmup_steps, dtype=args.dtype, autocast=args.autocast,
        num_threads=args.threads, seed=args.seed, max_empty_share=args.max_empty_share, device=args.device,
        init_adapter=args.init_adapter,
    )
    train, val, data = _vqa_data(args) if vqa else _text_data(args)
    if args.out:
        out = Path(args.out)
    else:
        from memlora_engine.backbone.models import default_cache_dir

        out = default_cache_dir() / "training" / "runs" / args.operation
    outer = None
    if args.outer_data:
        from memlora_engine.data.locomo import load_locomo
        from memlora_engine.embeddings.sentence_transformers import SentenceTransformerEmbedder
        from memlora_engine.evaluation.configs import parse_token_caps

        by_id = {c.sample_id: c for c in load_locomo(args.outer_data)}
        outer = pipeline_metric([by_id[i] for i in data["validation_conversations"]], out / "outer",
                                model=config.model, embedder=SentenceTransformerEmbedder(),
                                limit_sessions=args.outer_limit_sessions, limit_questions=args.outer_limit_questions,
                                dtype=args.dtype, num_threads=args.threads,
                                max_new_tokens=parse_token_caps(args.outer_max_new_tokens) or None)
    summary = search_stage(config, _floats(args.lr), _ints(args.batch_size), train, val, out, outer=outer,
                           progress=not args.quiet,
                           max_seconds_per_candidate=args.max_minutes * 60 if args.max_minutes else None)
    for row in summary["candidates"]:
        metric = (row.get("outer") or {}).get("metric")
        print(f"{row['candidate']}: val loss {row['base_val_loss']:.4f} -> {row['best_val_loss']:.4f} "
              f"(step {row['best_step']}/{row['steps']})" + (f", pipeline {metric:.4f}" if metric is not None else ""))
    print(f"selected {summary['best']} ({summary['selection']})")
    if args.save_to:
        save_adapter(summary["best_adapter_dir"], args.save_to, _card(args, summary, data))
        print(f"saved adapter with card: {args.save_to}")
    return 0


def run(args: argparse.Namespace) -> int:
    from memlora_engine.errors import MemLoRAError

    try:
        return _run(args)
    except (MemLoRAError, FileNotFoundError) as exc:
        print(f"memlora train: {exc}", file=sys.stderr)
        return 2
