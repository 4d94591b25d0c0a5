"""``python -m memlora_engine.commands.train_report``: the training report (see ``results/training/README.md``).

Writes the search tables and loss curves (``--runs``), the held-out losses
(``--heldout``) and runs one Table-4 pipeline configuration (``--pipeline``); the
pieces live in :mod:`memlora_engine.training.report` and
:func:`memlora_engine.evaluation.pipeline_eval`.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from pathlib import Path

from memlora_engine.evaluation.configs import parse_token_caps
from memlora_engine.evaluation.pipeline import pipeline_eval
from memlora_engine.training.report import collect_search, heldout_losses

__all__ = ["main"]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m memlora_engine.commands.train_report")
    parser.add_argument("--runs", help="run directories root (<root>/<stage>/search.json)")
    parser.add_argument("--pipeline", metavar="SPEC", help="run one harness configuration (adapters=..., memlora)")
    parser.add_argument("--locomo", help="LoCoMo file (for --pipeline)")
    parser.add_argument("--eval-dir", help="harness output and cache root (for --pipeline; outside the repository)")
    parser.add_argument("--limit-sessions", type=int, default=1)
    parser.add_argument("--max-new-tokens", default="extraction=96,update=160",
                        help="per-stage caps for --pipeline, e.g. extraction=96,update=160")
    parser.add_argument("--out", default="results/training")
    parser.add_argument("--heldout", type=int, default=0, help="held-out examples per stage (0: skip)")
    parser.add_argument("--data-dir", help="distilled data (for --heldout)")
    parser.add_argument("--conversations", default="conv-26", help="held-out conversation ids")
    parser.add_argument("--adapters-dir", help="<dir>/<stage>/ adapters for --heldout")
    parser.add_argument("--model", default="gemma-3-270m")
    parser.add_argument("--threads", type=int)
    args = parser.parse_args(argv)
    if args.pipeline:
        caps = parse_token_caps(args.max_new_tokens)
        result = pipeline_eval(args.locomo, args.pipeline, args.adapters_dir, args.eval_dir, model=args.model,
                               limit_sessions=args.limit_sessions, max_new_tokens=caps, num_threads=args.threads)
        for name, r in result["configs"].items():
            print(name, json.dumps(r["scores"]["overall"]))
        return 0
    if args.runs:
        rows = collect_search(args.runs, args.out)
        print(f"{len(rows)} search rows -> {args.out}/search.md")
    if args.heldout:
        from memlora_engine.operations import PIPELINE_OPERATIONS

        stages = [op.value for op in PIPELINE_OPERATIONS]
        adapters = {op: str(Path(args.adapters_dir) / op) for op in stages
                    if (Path(args.adapters_dir) / op / "adapter_model.safetensors").exists()}
        losses = heldout_losses(args.model, adapters, args.data_dir, args.conversations.split(","),
                                examples=args.heldout, num_threads=args.threads)
        (Path(args.out) / "heldout_losses.json").write_text(json.dumps(losses, indent=1), encoding="utf-8")
        print(json.dumps(losses, indent=1))
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
