"""The ``memlora`` command line: ``memlora demo``, ``memlora bench`` ...

Each subcommand is a module of this package with ``add_arguments(parser)`` and
``run(args) -> int``; it holds only the argument parsing and the glue, the work is
done by the library (:mod:`memlora_engine`, :mod:`memlora_engine.training`,
:mod:`memlora_engine.evaluation`). Commands may import training and evaluation both;
the library packages never import each other or this package.
"""

from __future__ import annotations

import argparse
import importlib
from collections.abc import Sequence

__all__ = ["main"]

# subcommand -> module with ``add_arguments(parser)`` and ``run(args) -> int``
_COMMANDS = {
    "demo": ("memlora_engine.commands.demo", "Ingest a short conversation and answer questions from memory."),
    "bench": ("memlora_engine.commands.bench", "Measure the on-device backbone: load time, tok/s, per-operation cost, memory."),
    "bench-load": ("memlora_engine.commands.bench_load", "Load-test the shared services: N workers x M users on a Chroma server and PostgreSQL; turns/s, p50/p99, memories lost."),
    "bench-store": ("memlora_engine.commands.bench_store", "Measure the store: 100k-memory ingestion, search and add latency, RSS."),
    "eval": ("memlora_engine.commands.eval", "Evaluate on LoCoMo (`memlora eval locomo`), compare runs (`memlora eval report`), build and score the VQA benchmark (`memlora eval vqa-build`, `memlora eval vqa`), check consolidation (`memlora eval consolidation`)."),
    "distill": ("memlora_engine.commands.distill", "Build (or resume) the cached teacher data for the expert adapters."),
    "train": ("memlora_engine.commands.train", "Train one operation's LoRA expert (optionally a tiny two-tier search)."),
    "adapters": ("memlora_engine.commands.adapters", "List, show, push, pull and export (for vLLM, SGLang, llama.cpp) expert adapters."),
    "serve": ("memlora_engine.commands.serve", "Serve the backbone and its experts behind an OpenAI-compatible API (/v1/chat/completions)."),
}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="memlora", description="On-device long-term memory for agents.")
    sub = parser.add_subparsers(dest="command", required=True)
    for name, (module_name, help_text) in _COMMANDS.items():
        module = importlib.import_module(module_name)
        module.add_arguments(sub.add_parser(name, help=help_text, description=help_text))
    args = parser.parse_args(argv)
    module = importlib.import_module(_COMMANDS[args.command][0])
    return int(module.run(args) or 0)

