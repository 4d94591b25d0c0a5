"""``memlora adapters``: list, show, push and pull expert adapters (directories with a card.json).

Imported by the ``memlora`` command at start-up: argparse-level code only.

Examples::

    memlora adapters list                                  # the adapters shipped in the package
    memlora adapters show ./runs/extraction/best
    memlora adapters push ./my-extraction --registry /shared/memlora-adapters
    memlora adapters pull gemma-3-270m extraction --registry /shared/memlora-adapters --to ./extraction
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
        elif args.adapters_command == "push":
            print(push_adapter(args.path, args.registry))
        else:
            print(pull_adapter(args.registry or shipped_dir(), args.model, args.operation, args.to))
        return 0
    except MemLoRAError as exc:
        print(f"memlora adapters: {exc}", file=sys.stderr)
        return 2
