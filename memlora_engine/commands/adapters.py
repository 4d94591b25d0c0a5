"""``memlora adapters``: list, show, push and pull expert adapters (directories with a card.json).

Imported by the ``memlora`` command at start-up: argparse-level code only.

Examples::

    memlora adapters list                                  # the adapters shipped in the package
    memlora adapters show ./runs/extraction/best
    memlora adapters push ./my-extraction --registry /shared/memlora-adapters
    memlora adapters pull gemma-3-270m extraction --registry /shared/memlora-adapters --to ./extraction
    memlora adapters export --format peft --format gguf --out ./experts   # for vLLM, SGLang, llama.cpp
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

__all__ = ["add_arguments", "run"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="adapters_command", required=True)
    listing = sub.add_parser("list", help="List the adapters of a registry (default: the shipped ones).")
    listing.add_argument("--registry", help="registry directory (<model>/<operation>/)")
    show = sub.add_parser("show", help="Print an adapter's card.")
    show.add_argument("path")
    push = sub.add_parser("push", help="Copy an adapter directory (with card.json) into a registry.")
    push.add_argument("path")
    push.add_argument("--registry", required=True)
    pull = sub.add_parser("pull", help="Copy a registry's adapter to a directory.")
    pull.add_argument("model")
    pull.add_argument("operation")
    pull.add_argument("--registry", help="registry directory (default: the shipped adapters)")
    pull.add_argument("--to", required=True, help="destination directory")
    export = sub.add_parser("export", help="Write the shipped adapters for a serving engine (docs/scaling.md).")
    export.add_argument("--model", default="gemma-3-270m", help="the built-in model (default: %(default)s)")
    export.add_argument("--format", action="append", dest="formats", choices=("peft", "gguf"),
                        help="peft: OUT/<operation>/ for vLLM, SGLang, LoRAX; gguf: OUT/<operation>.gguf for "
                             "llama.cpp (repeatable; default: peft)")
    export.add_argument("--out", required=True, help="destination directory")
    export.add_argument("--base-model", help="base_model_name_or_path to record in adapter_config.json")
    export.add_argument("--with-base", action="store_true",
                        help="also write the base model the adapters were trained on: OUT/base/ (safetensors, "
                             "for peft) and the GGUF file (for gguf)")


def run(args: argparse.Namespace) -> int:
    from memlora_engine.adapters import shipped_dir
    from memlora_engine.errors import MemLoRAError
    from memlora_engine.training.cards import pull_adapter, push_adapter, read_card

    try:
        if args.adapters_command == "list":
            root = Path(args.registry) if args.registry else shipped_dir()
            for card_path in sorted(root.glob("*/*/card.json")):
                card = read_card(card_path.parent)
                val = card.validation.get("val_loss")
                print(f"{card.base_model}/{card.operation}: prompts {card.prompt_version}, "
                      f"val loss {val:.4f}" if isinstance(val, float) else f"{card.base_model}/{card.operation}")
        elif args.adapters_command == "show":
            print(json.dumps(read_card(args.path).to_dict(), indent=1))
        elif args.adapters_command == "export":
            _export(args)
        elif args.adapters_command == "push":
            print(push_adapter(args.path, args.registry))
        else:
            print(pull_adapter(args.registry or shipped_dir(), args.model, args.operation, args.to))
        return 0
    except MemLoRAError as exc:
        print(f"memlora adapters: {exc}", file=sys.stderr)
        return 2


def _export(args: argparse.Namespace) -> None:
    import shutil

    from memlora_engine.adapters.export import export_shipped
    from memlora_engine.backbone.models import MODELS, resolve_model

    formats = args.formats or ["peft"]
    out = Path(args.out)
    for fmt, paths in export_shipped(args.model, out, formats=formats, base_model=args.base_model).items():
        for path in paths:
            print(f"{fmt}: {path}")
    if args.with_base:
        if "peft" in formats:
            source = Path(resolve_model(args.model).source)  # the dequantised weights the adapters were trained on
            shutil.copytree(source, out / "base", dirs_exist_ok=True, ignore=shutil.ignore_patterns("memlora-*"))
            print(f"base: {out / 'base'}")
        if "gguf" in formats and args.model in MODELS:
            print(f"base: {MODELS[args.model].gguf(out)}")
