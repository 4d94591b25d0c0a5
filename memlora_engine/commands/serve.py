"""``memlora serve``: the experts behind an OpenAI-compatible API, for several worker processes.

Imported by the ``memlora`` command at start-up: argparse-level code only.

Examples::

    memlora serve                                   # gemma-3-270m + shipped experts on 127.0.0.1:8000
    memlora serve --port 8100 --api-key "$KEY"      # Bearer check on every /v1 request
    memlora serve --adapter extraction=./runs/extraction/best --adapter update=./runs/update/best

Workers then use ``OpenAICompatibleGenerator("http://127.0.0.1:8000/v1")`` (see docs/scaling.md).
"""

from __future__ import annotations

import argparse
import os
import sys

__all__ = ["add_arguments", "run"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", default="gemma-3-270m", help="backbone model (default: %(default)s)")
    parser.add_argument("--adapter", action="append", default=[], metavar="OPERATION=PATH",
                        help="an adapter directory per operation (repeatable; default: the shipped experts)")
    parser.add_argument("--no-adapters", action="store_true", help="serve the base model only")
    parser.add_argument("--host", default="127.0.0.1",
                        help="address to bind (default: loopback only; 0.0.0.0 exposes it to the network)")
    parser.add_argument("--port", type=int, default=8000, help="port (default: %(default)s)")
    parser.add_argument("--api-key", default=os.environ.get("MEMLORA_API_KEY"),
                        help="require 'Authorization: Bearer KEY' (default: $MEMLORA_API_KEY; none: open)")
    parser.add_argument("--base-name", help="the base model's name in /v1/models (default: --model)")
    parser.add_argument("--dtype", default="auto", help="auto | float32 | bfloat16")
    parser.add_argument("--threads", type=int, help="torch threads (default: all usable cores)")
    parser.add_argument("--device", default="cpu", help="torch device (default: %(default)s)")
    parser.add_argument("--log-level", default="info", help="uvicorn log level (default: %(default)s)")


def run(args: argparse.Namespace) -> int:
    from memlora_engine.errors import ConfigError, MemLoRAError, require

    try:
        adapters: dict[str, str] | str | None = "shipped"
        if args.no_adapters:
            adapters = None
        elif args.adapter:
            adapters = {}
            for item in args.adapter:
                operation, sep, path = item.partition("=")
                if not sep:
                    raise ConfigError(f"--adapter wants OPERATION=PATH, got {item!r}")
                adapters[operation.strip()] = path.strip()
        if args.host not in ("127.0.0.1", "localhost", "::1") and not args.api_key:
            print(f"memlora serve: warning: listening on {args.host} without --api-key", file=sys.stderr)
        uvicorn = require("uvicorn", "serve")
        from memlora_engine.backbone import load_backbone
        from memlora_engine.serving import create_app, served_models

        backbone = load_backbone(args.model, adapters, dtype=args.dtype, num_threads=args.threads,
                                 device=args.device)
        base_name = args.base_name or os.path.basename(os.fspath(args.model).rstrip("/")) or "base"
        models = served_models(backbone, base_name)
        app = create_app(backbone, models=models, api_key=args.api_key)
    except MemLoRAError as exc:
        print(f"memlora serve: {exc}", file=sys.stderr)
        return 2
    print(f"memlora serve: http://{args.host}:{args.port}/v1 models: {', '.join(m.name for m in models)}",
          file=sys.stderr)
    uvicorn.run(app, host=args.host, port=args.port, log_level=args.log_level)
    return 0
