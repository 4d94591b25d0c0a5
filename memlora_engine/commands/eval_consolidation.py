"""``memlora eval consolidation``: is the newest of several contradicting values the one answered?

The backbone is the model with its shipped adapters by default; ``--base`` runs every
stage on the base model, ``--adapter STAGE=PATH`` / ``--update-adapter DIR`` put one
stage on another adapter (a candidate update expert: before and after). The work is
:mod:`memlora_engine.evaluation.consolidation`; this module holds the options and the
glue, and imports only argparse-level code until the command runs.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from pathlib import Path
from typing import Any

from memlora_engine.commands._options import add_memory_switches, add_runtime_argument, chosen_runtime, memory_switches
from memlora_engine.evaluation.configs import memory_settings

__all__ = ["add_parser", "run"]


def add_parser(sub: Any) -> None:
    """Register ``consolidation`` on the ``memlora eval`` subparsers."""
    parser = sub.add_parser(
        "consolidation", help="Ask for the newest of 2, 3 or 5 contradicting values (hand-written histories).",
        description="Ingest each hand-written history (one attribute stated several times, each time with a new "
                    "value) through Memory.add, ask for the current value, and print per length the share of "
                    "answers with the newest value, with a stale value, both, or neither, and the events applied.",
    )
    parser.add_argument("--model", default="gemma-3-270m", help="backbone model (default: gemma-3-270m)")
    parser.add_argument("--base", action="store_true",
                        help="run every stage on the base model (default: the model's shipped adapters)")
    parser.add_argument("--adapter", action="append", default=[], metavar="STAGE=PATH",
                        help="one stage's adapter instead of the shipped one (repeatable)")
    parser.add_argument("--update-adapter", metavar="DIR", help="the update stage's adapter (same as --adapter update=DIR)")
    parser.add_argument("--histories", help="a histories JSONL (default: the shipped hand-written ones)")
    parser.add_argument("--lengths", default="2,3,5", help="history lengths to run (default: 2,3,5)")
    parser.add_argument("--limit", type=int, help="run the first N histories of each length")
    parser.add_argument("--embedder", default="minilm", choices=("minilm", "hashing"),
                        help="memory embedder: minilm (the engine's default) or hashing (fast, offline, for tests)")
    parser.add_argument("--max-new-tokens", metavar="STAGE=N,...", help="per-stage output caps (default: MemoryConfig's)")
    add_memory_switches(parser)
    parser.add_argument("--dtype", default="auto", help="auto | float32 | bfloat16")
    parser.add_argument("--threads", type=int, help="torch (or llama.cpp) threads (default: all usable cores)")
    add_runtime_argument(parser)
    parser.add_argument("--out", help="write the summary and per-history records (JSON) here")
    parser.add_argument("--quiet", action="store_true", help="no progress on stderr")


def _lengths(text: str) -> list[int]:
    from memlora_engine.errors import ConfigError

    try:
        lengths = sorted({int(part) for part in text.split(",") if part.strip()})
    except ValueError as exc:
        raise ConfigError(f"--lengths wants comma-separated integers, got {text!r}") from exc
    if not lengths:
        raise ConfigError("--lengths names no length")
    return lengths


def _adapters(args: argparse.Namespace) -> tuple[Any, dict[str, str]]:
    """What ``load_backbone`` gets, and stage -> ``"shipped"`` or the directory given (for the report)."""
    from memlora_engine.adapters import shipped_adapters
    from memlora_engine.errors import ConfigError

    shipped = {} if args.base else {stage: str(path) for stage, path in shipped_adapters(args.model).items()}
    labels = dict.fromkeys(shipped, "shipped")
    overrides = list(args.adapter) + ([f"update={args.update_adapter}"] if args.update_adapter else [])
    if not overrides:
        return (None if args.base else "shipped"), labels
    paths = dict(shipped)
    for item in overrides:
        stage, sep, path = item.partition("=")
        if not sep or not path.strip():
            raise ConfigError(f"--adapter wants STAGE=PATH, got {item!r}")
        if not Path(path.strip()).is_dir():
            raise ConfigError(f"adapter directory not found: {path.strip()}")
        paths[stage.strip()] = labels[stage.strip()] = path.strip()
    return paths, labels


def _embedder(name: str) -> Any:
    if name == "hashing":
        from memlora_engine.embeddings.hashing import HashingEmbedder

        return HashingEmbedder()
    from memlora_engine.embeddings.sentence_transformers import SentenceTransformerEmbedder

    return SentenceTransformerEmbedder()


def run(args: argparse.Namespace) -> int:
    """Run ``memlora eval consolidation`` (errors propagate to ``memlora eval``'s handler)."""
    from collections import defaultdict

    from memlora_engine.backbone import load_backbone
    from memlora_engine.config import MemoryConfig
    from memlora_engine.errors import ConfigError
    from memlora_engine.evaluation.configs import parse_token_caps
    from memlora_engine.evaluation.consolidation import (
        default_histories_path,
        evaluate_consolidation,
        format_summary,
        load_histories,
    )

    args.runtime = chosen_runtime(args, dtype=args.dtype)
    lengths = _lengths(args.lengths)
    per_length: dict[int, list[Any]] = defaultdict(list)
    for history in load_histories(args.histories, lengths):
        if args.limit is None or len(per_length[history.length]) < args.limit:
            per_length[history.length].append(history)
    histories = [h for length in sorted(per_length) for h in per_length[length]]
    if not histories:
        raise ConfigError(f"no history of length {args.lengths} to run")
    caps = parse_token_caps(args.max_new_tokens)
    config = MemoryConfig(store="memory", **memory_switches(args))
    config.max_new_tokens.update(caps)
    adapters, labels = _adapters(args)
    generator = load_backbone(args.model, adapters=adapters, dtype=args.dtype, num_threads=args.threads,
                              runtime=args.runtime)
    embedder = _embedder(args.embedder)

    def progress(done: int, total: int) -> None:
        if not args.quiet:
            print(f"  {done}/{total} histories", file=sys.stderr, flush=True)

    result = evaluate_consolidation(histories, generator, embedder, config=config, progress=progress)
    described = ", ".join(f"{stage}={label}" for stage, label in sorted(labels.items())) or "none (base model)"
    print(f"{args.model}, adapters: {described}; embedder: {args.embedder}")
    print(format_summary(result["summary"]))
    if args.out:
        out = Path(args.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        command = "memlora eval " + " ".join(shlex.quote(a) for a in sys.argv[2:]) if len(sys.argv) > 2 else None
        report = {
            "command": command, "model": args.model, "adapters": labels, "embedder": args.embedder,
            "histories": Path(args.histories).name if args.histories else default_histories_path().name,
            "lengths": lengths, "limit": args.limit, "threads": args.threads, "dtype": args.dtype, "runtime": args.runtime,
            # Every MemoryConfig value in effect (max_new_tokens, dated_memories, anchor_dates, ...)
            # under one key; reports written before session 18 also have the first three at the top.
            "memory": memory_settings(config), **result,
        }
        out.write_text(json.dumps(report, indent=1, ensure_ascii=False), encoding="utf-8")
        print(f"written: {out}")
    return 0
