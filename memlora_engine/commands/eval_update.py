"""``memlora eval update``: score update experts on the hand-written update benchmark.

Each ``--row`` is one generator: ``base`` (the model without adapters: the engine then
uses the base prompt style), ``shipped`` (the model's shipped update expert) or a
directory holding a candidate update adapter. Imported by ``memlora eval`` at start-up,
so only argparse is imported here; the engine and the model load when the command runs.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import shlex
import sys
from pathlib import Path
from typing import Any

from memlora_engine.commands._options import add_runtime_argument, chosen_runtime, number_or_off, threshold

__all__ = ["add_parser", "run"]


def add_parser(sub: Any) -> None:
    """Register ``update`` on the ``memlora eval`` subparsers."""
    parser = sub.add_parser(
        "update", help="Score update experts on the hand-written update benchmark.",
        description="Run each hand-written update case through the engine's update step and print the exact-match "
                    "rate of the (event, id) changes and a per-event confusion matrix, for each --row.",
    )
    parser.add_argument("--row", action="append", dest="rows", metavar="SPEC",
                        help="base | shipped | DIR (a candidate update adapter); repeat to compare "
                             "(default: base and shipped)")
    parser.add_argument("--model", default="gemma-3-270m", help="backbone model (default: gemma-3-270m)")
    parser.add_argument("--cases", help="a case file (default: the shipped hand-written cases)")
    parser.add_argument("--limit", type=int, help="run the first N cases")
    parser.add_argument("--max-new-tokens", type=int, help="the update output cap (default: MemoryConfig's)")
    parser.add_argument("--uncovered-facts", choices=("add", "ignore"), default="add",
                        help="the engine's policy for facts the output leaves undecided (MemoryConfig.uncovered_facts); "
                             "ignore scores the expert's own decisions only (default: add, as the engine runs)")
    parser.add_argument("--update-calls", choices=("per_fact", "batch"), default="per_fact",
                        help="one update call per new fact (default, as the engine runs) or one per case "
                             "(MemoryConfig.update_calls)")
    parser.add_argument("--none-min-similarity", type=number_or_off, metavar="COSINE",
                        help="check each NONE against the memory it names with the engine's embedder "
                             "(MemoryConfig.none_min_similarity; default: the engine's default); "
                             "'off' scores without the check")
    parser.add_argument("--update-min-similarity", type=number_or_off, metavar="COSINE",
                        help="check each UPDATE and DELETE against the memory it names, names masked "
                             "(MemoryConfig.update_min_similarity; default: the engine's default); "
                             "'off' scores without the check")
    parser.add_argument("--batch-generation", action="store_true",
                        help="decode each case's per-fact update calls in one batch (load_backbone(batch_generation=True)); "
                             "compare with a run without it to check the outputs stay the same")
    parser.add_argument("--dtype", default="auto", help="auto | float32 | bfloat16 (the transformers runtime's)")
    parser.add_argument("--threads", type=int, help="torch (or llama.cpp) threads (default: all usable cores)")
    add_runtime_argument(parser)
    parser.add_argument("--out", help="write the summaries and per-case records (JSON) here")
    parser.add_argument("--quiet", action="store_true", help="no progress on stderr")


def _load(spec: str, args: argparse.Namespace) -> Any:
    from memlora_engine.adapters import shipped_adapters
    from memlora_engine.backbone import load_backbone
    from memlora_engine.errors import ConfigError

    if spec == "base":
        adapters: dict[str, Any] | None = None
    elif spec == "shipped":
        shipped = shipped_adapters(args.model)
        if "update" not in shipped:
            raise ConfigError(f"no shipped update adapter for model {args.model!r}")
        adapters = {"update": shipped["update"]}
    elif Path(spec).is_dir():
        adapters = {"update": spec}
    else:
        raise ConfigError(f"--row wants base, shipped or an adapter directory, got {spec!r}")
    return load_backbone(args.model, adapters=adapters, dtype=args.dtype, num_threads=args.threads,
                         batch_generation=args.batch_generation, runtime=args.runtime)


def run(args: argparse.Namespace) -> int:
    """Run ``memlora eval update`` (errors propagate to ``memlora eval``'s handler)."""
    from memlora_engine.config import MemoryConfig
    from memlora_engine.errors import ConfigError
    from memlora_engine.evaluation.update_bench import default_cases_path, evaluate_update, load_update_cases
    from memlora_engine.evaluation.update_scoring import format_summary

    args.runtime = chosen_runtime(args, dtype=args.dtype, batch_generation=args.batch_generation)
    cases = load_update_cases(args.cases)[: args.limit]
    if not cases:
        raise ConfigError("no update case to run")
    config = MemoryConfig(uncovered_facts=args.uncovered_facts, update_calls=args.update_calls)
    # replace() validates each new value like the constructor.
    if args.none_min_similarity is not None:
        config = dataclasses.replace(config, none_min_similarity=threshold(args.none_min_similarity))
    if args.update_min_similarity is not None:
        config = dataclasses.replace(config, update_min_similarity=threshold(args.update_min_similarity))
    embedder = None
    if config.none_min_similarity is not None or config.update_min_similarity is not None:
        from memlora_engine.embeddings.sentence_transformers import SentenceTransformerEmbedder

        embedder = SentenceTransformerEmbedder(config.embedding_model)
    if args.max_new_tokens:
        config.max_new_tokens["update"] = args.max_new_tokens
    rows = list(dict.fromkeys(args.rows or ["base", "shipped"]))

    def progress(done: int, total: int) -> None:
        if not args.quiet and (done % 10 == 0 or done == total):
            print(f"  {done}/{total} cases", file=sys.stderr, flush=True)

    results: dict[str, Any] = {}
    for spec in rows:
        generator = _load(spec, args)
        if not args.quiet:
            print(f"{spec}: {len(cases)} cases", file=sys.stderr, flush=True)
        results[spec] = evaluate_update(generator, cases, config, progress, embedder)
        del generator  # one model in memory at a time
        print(format_summary(results[spec]["summary"], spec))
    if args.out:
        out = Path(args.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        command = "memlora eval " + " ".join(shlex.quote(a) for a in sys.argv[2:]) if len(sys.argv) > 2 else None
        report = {"model": args.model, "runtime": args.runtime, "cases": Path(args.cases).name if args.cases else default_cases_path().name,
                  "count": len(cases), "command": command, "max_new_tokens": config.max_new_tokens["update"],
                  "uncovered_facts": config.uncovered_facts, "update_calls": config.update_calls,
                  "none_min_similarity": config.none_min_similarity,
                  "update_min_similarity": config.update_min_similarity,
                  "rows": results}
        out.write_text(json.dumps(report, indent=1, ensure_ascii=False), encoding="utf-8")
        print(f"written: {out}")
    return 0
